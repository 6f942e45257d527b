import AoECore
import AoEProtocol
import AoETestSupport
import Testing

/// Two disks with the same shelf.slot, size and IDENTIFY strings (as two qaoed targets are):
/// a candidate path carries I/O only once it proved to reach the target's disk.
@Suite("Engine core: a second disk that answers IDENTIFY alike")
struct IdentityProofTests {
    static let otherMAC = MACAddress(0x02, 0x11, 0x22, 0x33, 0x44, 0x77)

    /// Two blank disks posing as e10.3 on one link; returns the simulation once e10.3 is up.
    static func twins(otherLBA0: [UInt8]? = nil) -> Simulation {
        var other = MemoryTarget(address: e103, mac: otherMAC)
        if let s = otherLBA0 { other.store(s, at: 0) }
        var sim = Simulation(
            links: [(link0, 9000)],
            targets: [(MemoryTarget(address: e103, mac: targetMAC), [link0]), (other, [link0])])
        _ = sim.run(for: .seconds(10)) { $0.target?.state == .up && $0.target?.paths.count == 2 }
        return sim
    }

    @Test("two blank disks: the second is refused at the first write, and no byte of any write reaches it")
    func blankTwinRefusedAtFirstWrite() throws {
        var sim = Self.twins()
        #expect(sim.run(for: .seconds(5)) { $0.log.contains { $0.contains("carries I/O once a write") } })
        #expect(sim.target?.paths.contains { $0.state == .proving } == true)
        let verified = try #require(sim.target?.paths.first { $0.state.isHealthy }?.mac)
        let (mine, twin) = verified == targetMAC ? (0, 1) : (1, 0)
        let data = pattern(4 << 20, seed: 31)
        #expect(sim.writeThenRead(data, at: 64) == data)
        #expect(sim.targets[mine].bytes(at: 64 * 512, count: data.count) == data)
        #expect(sim.targets[twin].storage.isEmpty, "no byte of the write on the other disk")
        #expect(sim.run(for: .seconds(5)) { $0.target?.paths.contains { $0.state == .duplicate } == true })
        #expect(sim.log.contains { $0.contains("did not reach it") && $0.contains("another disk") })
        #expect(sim.target?.counters.duplicates == 1)
        let again = pattern(1 << 20, seed: 32)
        #expect(sim.writeThenRead(again, at: 20_000) == again)
        #expect(sim.targets[twin].storage.isEmpty)
    }

    @Test("a second disk whose LBA 0 differs is refused before any write")
    func differentSectorsRefused() {
        var sim = Self.twins(otherLBA0: [UInt8](repeating: 0xA5, count: 512))
        // Whichever disk was taken as e10.3, the other reads differently at LBA 0.
        #expect(sim.run(for: .seconds(5)) { $0.target?.paths.contains { $0.state == .duplicate } == true })
        #expect(sim.log.contains { $0.contains("LBA 0 reads differently") })
    }

    @Test("one disk on two links: the second path is proved by the first write and then carries I/O")
    func realSecondPathProved() throws {
        var sim = Simulation(
            links: [(link0, 9000), (link1, 9000)],
            targets: [(MemoryTarget(address: e103, mac: targetMAC), [link0, link1])])
        #expect(sim.run(for: .seconds(5)) { $0.target?.paths.contains { $0.state == .proving } == true })
        let data = pattern(2 << 20, seed: 33)
        #expect(sim.writeThenRead(data, at: 0) == data)
        #expect(sim.run(for: .seconds(5)) { $0.target?.paths.allSatisfy { $0.state.isHealthy } == true })
        #expect(sim.log.contains { $0.contains("reads back through it: the same disk") })
        let more = pattern(2 << 20, seed: 34)
        #expect(sim.writeThenRead(more, at: 8192) == more)
        let paths = try #require(sim.target?.paths)
        #expect(paths.allSatisfy { $0.sent > 10 }, "both paths carry frames: \(paths.map(\.sent))")
    }

    @Test("a write whose data is already on the disk proves nothing; a later one does")
    func writeOfSameDataProvesNothing() {
        var sim = Simulation(
            links: [(link0, 9000), (link1, 9000)],
            targets: [(MemoryTarget(address: e103, mac: targetMAC), [link0, link1])])
        #expect(sim.run(for: .seconds(5)) { $0.target?.paths.contains { $0.state == .proving } == true })
        let zeros = [UInt8](repeating: 0, count: 64 << 10)
        #expect(sim.writeThenRead(zeros, at: 0) == zeros)
        #expect(sim.target?.paths.contains { $0.state == .proving } == true, "zeros over zeros prove nothing")
        sim.advance(.milliseconds(200))
        let data = pattern(64 << 10, seed: 35)
        #expect(sim.writeThenRead(data, at: 0) == data)
        #expect(sim.run(for: .seconds(5)) { $0.target?.paths.allSatisfy { $0.state.isHealthy } == true })
    }
}

import AoECore
import AoEProtocol
import AoETestSupport
import Testing

/// Paths are earned, not claimed: what a LAN full of announcements, a second disk with the
/// same shelf.slot, and a target whose MAC changes do to the paths of a target.
@Suite("Engine core: paths are earned")
struct PathTests {
    static func impostor(_ i: Int) -> MACAddress { MACAddress(rawValue: 0x0A00_0000_0000 | UInt64(i)) }

    @Test("200 MACs announce e10.3 and answer nothing: the write completes, paths never pass the cap")
    func impostorsCarryNoIO() throws {
        var sim = upSimulation()
        let data = pattern(8 << 20, seed: 21)
        let w = sim.submit(.write, e103, lba: 0, sectors: data.count / 512, buffer: IOBuffer(data))
        for i in 0..<200 {
            sim.inject(
                MemoryTarget(address: e103, mac: Self.impostor(i)).announcement(), on: link0,
                after: .microseconds(Int64(20 * i)))
        }
        var most = 0
        #expect(
            sim.run(for: .seconds(60)) { s in
                most = max(most, s.target?.paths.count ?? 0)
                return s.isDone(w)
            })
        #expect(sim.outcome(w) == .ok)
        #expect(sim.targets[0].bytes(at: 0, count: data.count) == data)
        #expect(most <= 8, "at most maxpaths paths per interface: saw \(most)")
        let t = try #require(sim.target)
        #expect(t.paths.filter { $0.state == .ok || $0.state == .probing }.map(\.mac) == [targetMAC])
        // The candidates' IDENTIFYs time out and they are dropped; only the real path is left.
        #expect(sim.run(for: .seconds(30)) { $0.target?.paths.count == 1 })
        #expect(sim.target?.counters.candidatesDropped ?? 0 > 0)
        #expect(sim.log.filter { $0.contains("does not answer IDENTIFY") }.count <= 5, "rate-limited")
    }

    /// `make bench`'s flood row started `aoefs bench` while a host flooded announcements: the
    /// impostors filled the paths (8 per interface) before the real target's answer came, its
    /// answer found no room, and IDENTIFY went round the impostors for good ("did not answer").
    @Test(
        "an initiator started while 200 MACs announce e10.3 by broadcast: the target's own answer to our query gets a path, and it comes up"
    )
    func identifiedDuringAFlood() throws {
        var sim = Simulation(links: [(link0, 9000)], targets: [(MemoryTarget(address: e103, mac: targetMAC), [link0])])
        // The flood is on before the target's answer arrives, and goes on for 10 s.
        for i in 0..<2000 {
            sim.inject(
                MemoryTarget(address: e103, mac: Self.impostor(i % 200)).announcement(), on: link0,
                after: .microseconds(Int64(5 * i)))
        }
        for i in 0..<2000 {
            sim.inject(
                MemoryTarget(address: e103, mac: Self.impostor(i % 200)).announcement(), on: link0,
                after: .milliseconds(10 + Int64(5 * i)))
        }
        #expect(sim.run(for: .seconds(5)) { $0.target?.state == .up }, "\(sim.log.suffix(8))")
        let t = try #require(sim.target)
        #expect(t.paths.filter { $0.state == .ok || $0.state == .probing }.map(\.mac) == [targetMAC])
        #expect(t.paths.count <= 8)
        let data = pattern(1 << 20, seed: 23)
        let back = sim.writeThenRead(data, at: 0)
        #expect(back.map { $0 == data } == true, "1 MiB written and read back")
    }

    @Test("a second disk answering as e10.3: logged as a duplicate shelf.slot, never carries I/O")
    func duplicateShelfSlot() throws {
        var other = MemoryTarget(address: e103, mac: MACAddress(0x02, 0x11, 0x22, 0x33, 0x44, 0x55), sectors: 1 << 20)
        other.writeCache = false
        var sim = Simulation(
            links: [(link0, 9000)],
            targets: [(MemoryTarget(address: e103, mac: targetMAC), [link0]), (other, [link0])])
        #expect(
            sim.run(for: .seconds(10)) { s in
                s.target?.state == .up && s.target?.paths.contains { $0.state == .duplicate } == true
            })
        #expect(sim.log.contains { $0.contains("a duplicate shelf.slot") })
        let data = pattern(2 << 20, seed: 22)
        #expect(sim.writeThenRead(data, at: 100) == data)
        let commandsBefore = sim.targets[1].commands
        _ = sim.writeThenRead(data, at: 5000)
        #expect(sim.targets[1].commands == commandsBefore, "the duplicate got no I/O")
        #expect(sim.target?.identity?.sectors == 1 << 21)
    }

    @Test("a second box announcing e10.3 that never answers ATA: no stall, one line in the log")
    func silentAnnouncer() throws {
        var silent = MemoryTarget(address: e103, mac: MACAddress(0x02, 0x11, 0x22, 0x33, 0x44, 0x66))
        silent.ignoresATA = true
        var sim = Simulation(
            links: [(link0, 9000)],
            targets: [(MemoryTarget(address: e103, mac: targetMAC), [link0]), (silent, [link0])])
        #expect(sim.run(for: .seconds(10)) { $0.target?.state == .up })
        let data = pattern(4 << 20, seed: 23)
        #expect(sim.writeThenRead(data, at: 0, limit: .seconds(10)) == data)
        #expect(sim.run(for: .seconds(30)) { $0.log.contains { $0.contains("does not answer IDENTIFY") } })
        #expect(sim.target?.paths.count == 1)
    }

    @Test("the target's MAC changes mid-write (a NIC swap): it continues on the new MAC, the old path is ejected")
    func macChange() throws {
        var sim = upSimulation()
        let data = pattern(16 << 20, seed: 24)
        let w = sim.submit(.write, e103, lba: 0, sectors: data.count / 512, buffer: IOBuffer(data))
        sim.advance(.milliseconds(20))
        #expect(!sim.isDone(w))
        let newMAC = MACAddress(0xCA, 0x55, 0x0A, 0x0A, 0xBD, 0x01)
        sim.targets[0].mac = newMAC
        sim.inject(sim.targets[0].announcement(), on: link0)
        #expect(sim.run(for: .seconds(30)) { $0.isDone(w) })
        #expect(sim.outcome(w) == .ok)
        #expect(sim.targets[0].bytes(at: 0, count: data.count) == data)
        #expect(sim.run(for: .seconds(10)) { $0.target?.paths.map(\.mac) == [newMAC] }, "\(sim.target?.paths ?? [])")
        #expect(sim.target?.counters.ejected == 1)
        #expect(sim.log.contains { $0.contains("ejected") })
    }
}

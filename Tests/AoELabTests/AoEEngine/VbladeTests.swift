import AoELinux
import AoEProtocol
import AoETestSupport
import Foundation
import Testing

/// First end-to-end tests: AoELinux + AoEProtocol against the Debian vblade in a lab namespace.
@Suite("vblade end to end", .enabled(if: LabGate.labShouldRun, Comment(rawValue: LabGate.labSkipReason)))
struct VbladeTests {
    /// A lab with one vblade serving e10.3 from a sparse file, and an initiator pointed at it.
    struct Setup {
        let lab: Lab
        let net: Lab.Direct
        let file: URL
        let vblade: Vblade
        let link: PacketLink
    }

    func setUp(mtu: Int, size: UInt64, flags: [String] = []) throws -> Setup {
        let lab = try Lab()
        do {
            let net = try lab.direct(mtu: mtu)
            let file = try lab.sparseFile("e10.3.img", size: size)
            let vblade = try lab.startVblade(
                shelf: 10, slot: 3, interface: net.target, namespace: net.targetNamespace,
                file: file, flags: flags)
            let link = try PacketLink(interface: net.initiator)
            return Setup(lab: lab, net: net, file: file, vblade: vblade, link: link)
        } catch {
            lab.teardown()
            throw error
        }
    }

    /// Discovers e10.3 and returns an initiator aimed at its MAC.
    func connect(_ s: Setup) throws -> (RawInitiator, QueryConfig) {
        let initiator = RawInitiator(link: s.link)
        let answers = try initiator.discover()
        try #require(answers.count == 1, "one target answers the broadcast, got \(answers.count)")
        initiator.target = answers[0].header.source
        initiator.address = answers[0].header.target
        guard case .queryConfig(let config) = answers[0].body else { throw LabFailure("not a config response") }
        return (initiator, config)
    }

    @Test(
        "broadcast Query Config finds e10.3 with vblade's buffer count and sectors per frame",
        arguments: [(9000, 17), (1500, 2)])
    func discovery(mtu: Int, sectors: Int) throws {
        let s = try setUp(mtu: mtu, size: 64 << 20, flags: ["-b", "24"])
        defer { s.lab.teardown() }
        let (initiator, config) = try connect(s)
        #expect(initiator.address == TargetAddress(10, 3))
        #expect(initiator.address.description == "e10.3")
        #expect(config.bufferCount == 24)
        #expect(Int(config.sectorsPerCommand) == sectors)
        #expect(config.aoeVersion == 1)
        let sysMAC = try Command.run(["ip", "-n", s.net.targetNamespace, "-o", "link", "show", s.net.target])
        #expect(sysMAC.contains("link/ether \(initiator.target)"), "the answer comes from vblade's interface")
    }

    @Test("IDENTIFY reports LBA48 and the backing file's size in sectors")
    func identify() throws {
        let size: UInt64 = 130 << 30
        let s = try setUp(mtu: 9000, size: size)
        defer { s.lab.teardown() }
        let (initiator, _) = try connect(s)
        let (responses, _) = try initiator.run([.identify()], window: 1)
        #expect(!responses[0].status.isFailure)
        let id = try ATAIdentity(parsing: responses[0].data)
        #expect(id.supportsLBA48)
        #expect(id.sectors == size / 512)
        #expect(!id.model.isEmpty)
    }

    @Test("64 MiB of random data written above LBA 2^28 reads back, and is in the backing file")
    func writeThenReadAboveLBA28() throws {
        let s = try setUp(mtu: 9000, size: 130 << 30)
        defer { s.lab.teardown() }
        let (initiator, config) = try connect(s)
        let sectorsPerFrame = Int(config.sectorsPerCommand)
        let totalSectors = (64 << 20) / 512
        let startLBA: UInt64 = (1 << 28) + 12345  // above what LBA28 can address
        var rng = SystemRandomNumberGenerator()
        var data = [UInt8](repeating: 0, count: totalSectors * 512)
        data.withUnsafeMutableBytes { raw in
            for i in 0..<(raw.count / 8) { raw.storeBytes(of: rng.next(), toByteOffset: i * 8, as: UInt64.self) }
        }
        var writes: [ATAMessage] = []
        var reads: [ATAMessage] = []
        var sector = 0
        while sector < totalSectors {
            let n = min(sectorsPerFrame, totalSectors - sector)
            let lba = startLBA + UInt64(sector)
            writes.append(.write(lba: lba, data: Array(data[(sector * 512)..<((sector + n) * 512)])))
            reads.append(.read(lba: lba, sectors: UInt8(n)))
            sector += n
        }
        let window = min(8, Int(config.bufferCount))
        let (written, _) = try initiator.run(writes, window: window)
        #expect(written.allSatisfy { !$0.status.isFailure })
        let (readBack, _) = try initiator.run(reads, window: window)
        #expect(readBack.allSatisfy { !$0.status.isFailure })
        var got: [UInt8] = []
        got.reserveCapacity(data.count)
        for (request, response) in zip(reads, readBack) {
            got += response.data.prefix(Int(request.sectorCount) * 512)
        }
        #expect(got.count == data.count)
        #expect(got == data, "bytes read equal bytes written")
        let h = try FileHandle(forReadingFrom: s.file)
        try h.seek(toOffset: startLBA * 512)
        let onDisk = try h.read(upToCount: data.count) ?? Data()
        try h.close()
        #expect(onDisk == Data(data), "the backing file holds what was written")
    }

    @Test("a read past the end gets the ATA error status, decoded")
    func readPastTheEnd() throws {
        let size: UInt64 = 64 << 20
        let s = try setUp(mtu: 9000, size: size)
        defer { s.lab.teardown() }
        let (initiator, _) = try connect(s)
        let (responses, _) = try initiator.run([.read(lba: size / 512 - 1, sectors: 2)], window: 1)
        let r = responses[0]
        #expect(r.status.isFailure)
        #expect(r.status.contains(.error))
        #expect(r.status.description.contains("ERR"))
        #expect(r.errorRegister.rawValue != 0)
        #expect(r.errorRegister.description.contains("("), "decoded: \(r.errorRegister)")
        // A read that ends exactly at the last sector still works.
        let (ok, _) = try initiator.run([.read(lba: size / 512 - 2, sectors: 2)], window: 1)
        #expect(!ok[0].status.isFailure)
    }
}

import AoECore
import AoEEngine
import AoEProtocol
import AoETestSupport
import Testing

/// TRIM requests in the scheduler and `Engine.discard` (issue 33), against the in-memory target.
@Suite("Discard: TRIM requests and byte-range discards")
struct DiscardTests {
    func trimmingTarget(blocks: UInt16 = 1, sectors: UInt64 = 1 << 21) -> MemoryTarget {
        var t = MemoryTarget(address: e103, mac: targetMAC, sectors: sectors)
        t.offersTrim = true
        t.trimBlocks = blocks
        return t
    }

    @Test(
        "a trim names exactly its sectors, in frames of as many entries as the payload and word 105 allow",
        arguments: [(9000, UInt16(1), 1), (9000, 8, 8), (1500, 8, 2), (9000, 0, 1)])
    func trimFrames(mtu: Int, word105: UInt16, blocksPerFrame: Int) throws {
        var t = trimmingTarget(blocks: max(word105, 1), sectors: 1 << 28)
        t.reportedTrimBlocks = word105  // 0: IDENTIFY says nothing, and the target takes one block
        var sim = upSimulation(mtu: mtu, target: t)
        let sectors = 100_000_000, lba: UInt64 = 12_345
        let before = sim.targets[0].commands
        let id = sim.submit(.trim, e103, lba: lba, sectors: sectors)
        #expect(sim.run(for: .seconds(10)) { $0.isDone(id) })
        #expect(sim.outcome(id) == .ok)
        let ranges = sim.targets[0].trimmed
        #expect(ranges.reduce(0) { $0 + $1.sectors } == sectors && ranges.first?.lba == lba)
        #expect(zip(ranges, ranges.dropFirst()).allSatisfy { $0.lba + UInt64($0.sectors) == $1.lba }, "contiguous")
        let perFrame = DataSetManagement.sectors(coveredBy: blocksPerFrame)
        #expect(
            sim.targets[0].commands - before == (sectors + perFrame - 1) / perFrame, "one DSM per \(perFrame) sectors")
        #expect(sim.target?.counters.discards == 1 && sim.target?.counters.sectorsTrimmed == UInt64(sectors))
        #expect(sim.target?.io.discard.ios == 1)
    }

    @Test("a target without TRIM (or without zeros after it) gets no DSM frame: the trim fails at once")
    func noTrimNoFrame() throws {
        var t = trimmingTarget()
        t.offersTrim = false
        var sim = upSimulation(target: t)
        let before = sim.targets[0].commands
        let id = sim.submit(.trim, e103, lba: 0, sectors: 8)
        #expect(sim.outcome(id) == .failed(.trimNotOffered(e103)))
        sim.run(for: .seconds(1)) { _ in false }
        #expect(sim.targets[0].commands == before)
    }

    @Test("trims under loss, duplicates and reordering complete and name every sector once at least")
    func trimUnderLoss() throws {
        var faults = Simulation.Faults()
        faults.drop = 0.1
        faults.duplicate = 0.05
        faults.reorder = 0.1
        var sim = upSimulation(target: trimmingTarget(), faults: faults, seed: 7)
        let ids = (0..<20).map { sim.submit(.trim, e103, lba: UInt64($0) * 100_000, sectors: 70_000) }
        #expect(sim.run(for: .seconds(60)) { s in ids.allSatisfy { s.isDone($0) } })
        #expect(ids.allSatisfy { sim.outcome($0) == .ok })
        var covered = Set<UInt64>()
        for r in sim.targets[0].trimmed {
            for s in 0..<UInt64(r.sectors) where s % 1000 == 0 || s == UInt64(r.sectors) - 1 {
                covered.insert(r.lba + s)
            }
        }
        for i in 0..<20 {
            #expect(covered.contains(UInt64(i) * 100_000) && covered.contains(UInt64(i) * 100_000 + 69_999))
        }
    }

    @Test("a flush waits for the trims submitted before it")
    func flushAfterTrim() throws {
        var sim = upSimulation(target: trimmingTarget())
        let t = sim.submit(.trim, e103, lba: 0, sectors: 500_000)
        let f = sim.submit(.flush, e103, lba: 0, sectors: 0)
        #expect(!sim.isDone(f))
        #expect(sim.run(for: .seconds(5)) { $0.isDone(f) })
        #expect(sim.isDone(t) && sim.outcome(f) == .ok)
    }
}

@Suite("Discard over an in-memory link: partial sectors zeroed, whole ones trimmed", .timeLimit(.minutes(1)))
struct EngineDiscardTests {
    func started(_ t: MemoryTarget) throws -> (MemoryLink, Engine) {
        let link = try MemoryLink(target: t)
        let engine = Engine(links: [link])
        engine.start()
        try #require(engine.waitUntilSettled(timeout: .seconds(10)), "e10.3 came up: \(engine.targets())")
        return (link, engine)
    }

    func target(trim: Bool) -> MemoryTarget {
        var t = MemoryTarget(address: e103, mac: MACAddress(0x02, 0, 0, 0, 0, 0x10), sectors: 1 << 16)
        t.offersTrim = trim
        return t
    }

    @Test("bytes 1000..<41000: sectors 2..<80 trimmed, the partial ends written as zeros, the rest intact")
    func edges() throws {
        let (link, engine) = try started(target(trim: true))
        defer { engine.shutdown() }
        let data = pattern(64 << 10, seed: 33)
        #expect(
            engine.waitSync { engine.write(e103, offset: 0, count: data.count, from: IOBuffer(data), completion: $0) }
                .error == nil)
        #expect(engine.trimsToZeros(e103) == true)
        #expect(
            engine.waitSync {
                engine.discard(
                    e103, offset: 1000, count: 40_000, writeZerosOtherwise: false,
                    completion: $0)
            }.error == nil)
        var want = data
        want.replaceSubrange(1000..<41_000, with: [UInt8](repeating: 0, count: 40_000))
        #expect(link.target.bytes(at: 0, count: data.count) == want)
        #expect(link.target.trimmed == [DataSetManagement.Range(lba: 2, sectors: 78)])
        #expect(engine.target(e103)?.counters.rmwOps == 2, "the two partial sectors")
    }

    @Test("without TRIM: a hole fails with nothing sent; zeroing writes zeros, no DSM")
    func withoutTrim() throws {
        let (link, engine) = try started(target(trim: false))
        defer { engine.shutdown() }
        let data = pattern(8192, seed: 34)
        #expect(
            engine.waitSync { engine.write(e103, offset: 0, count: data.count, from: IOBuffer(data), completion: $0) }
                .error == nil)
        let before = link.target.commands
        #expect(
            engine.waitSync {
                engine.discard(
                    e103, offset: 0, count: 4096, writeZerosOtherwise: false,
                    completion: $0)
            }.error == .trimNotOffered(e103))
        #expect(link.target.commands == before, "nothing was sent")
        #expect(
            engine.waitSync {
                engine.discard(
                    e103, offset: 100, count: 5000, writeZerosOtherwise: true,
                    completion: $0)
            }.error == nil)
        var want = data
        want.replaceSubrange(100..<5100, with: [UInt8](repeating: 0, count: 5000))
        #expect(link.target.bytes(at: 0, count: data.count) == want)
        #expect(link.target.trimmed.isEmpty)
    }
}

@Suite("Frames that wait on the medium (FLUSH, TRIM): their time is the disk's, not the path's")
struct MediumFrameTests {
    @Test(
        "a target that takes 300 ms to punch holes or flush: no RTT sample, no window cut, no raised RTO floor; I/O after it unhurt",
        arguments: [IOKind.trim, .flush])
    func slowMedium(kind: IOKind) throws {
        var t = MemoryTarget(address: e103, mac: targetMAC)
        t.offersTrim = true
        t.abortsFlushExt = false
        t.mediumDelay = .milliseconds(300)
        var sim = upSimulation(target: t)
        let before = try #require(sim.target?.paths.first)
        let ids = (0..<4).map { sim.submit(kind, e103, lba: UInt64($0) * 1000, sectors: kind == .trim ? 100 : 0) }
        #expect(sim.run(for: .seconds(10)) { s in ids.allSatisfy { s.isDone($0) } })
        #expect(ids.allSatisfy { sim.outcome($0) == .ok })
        let after = try #require(sim.target?.paths.first)
        #expect(after.rto <= before.rto * 2, "RTO \(before.rto) → \(after.rto)")
        #expect(after.window >= before.window, "window \(before.window) → \(after.window)")
        #expect(sim.target?.counters.spurious == 0 && sim.target?.counters.lossEvents == 0)
        #expect(sim.target?.counters.retries == 0, "not resent: 300 ms is under the medium's timeout")
    }

    @Test("a lost TRIM is still resent, after the medium's timeout, and completes")
    func lostTrimResent() throws {
        var t = MemoryTarget(address: e103, mac: targetMAC)
        t.offersTrim = true
        var sim = upSimulation(target: t)
        sim.faults[link0] = {
            var f = Simulation.Faults(); f.cut = true; return f
        }()
        let id = sim.submit(.trim, e103, lba: 0, sectors: 8)
        sim.run(for: .milliseconds(100)) { _ in false }
        sim.faults[link0] = Simulation.Faults()
        #expect(sim.run(for: .seconds(5)) { $0.isDone(id) })
        #expect(sim.outcome(id) == .ok && sim.targets[0].trimmed.count == 1)
        #expect((sim.target?.counters.retries ?? 0) >= 1)
    }
}

import AoECore
import AoEProtocol
import AoETestSupport
import Testing

@Suite("Engine core: discovery and negotiation")
struct DiscoveryTests {
    @Test func discoversIdentifiesAndNegotiatesJumbo() throws {
        let sim = upSimulation(mtu: 9000)
        let t = try #require(sim.target)
        #expect(t.state == .up)
        #expect(t.identity?.supportsLBA48 == true)
        #expect(t.identity?.sectors == 1 << 21)
        #expect(t.payload == 8704, "17 sectors per command at MTU 9000, proven by a probe")
        #expect(t.counters.probes >= 1)
        #expect(sim.log.contains { $0.contains("payload 1024 → 8704") })
    }

    @Test func mtu1500UsesTwoSectorsWithoutProbing() throws {
        var target = MemoryTarget(address: e103, mac: targetMAC)
        target.sectorsPerCommand = 2
        let sim = upSimulation(mtu: 1500, target: target)
        let t = try #require(sim.target)
        #expect(t.payload == 1024)
        #expect(t.counters.probes == 0, "1024 bytes cross every Ethernet; no probe needed")
    }

    @Test func userCapAndTargetSectorsBoundThePayload() throws {
        var c = EngineConfiguration()
        c.maxPayload = 4096
        #expect(upSimulation(mtu: 9000, configuration: c).target?.payload == 4096)
        var target = MemoryTarget(address: e103, mac: targetMAC)
        target.sectorsPerCommand = 8
        #expect(upSimulation(mtu: 9000, target: target).target?.payload == 4096)
    }

    @Test func broadcastAddressedRepliesAreIgnoredAndAnnouncementsAdd() throws {
        var sim = Simulation(links: [(link0, 1500)], targets: [])
        var bogus = MemoryTarget(address: .broadcast, mac: targetMAC)
        bogus.address = TargetAddress(shelf: .broadcast, slot: Slot(3))
        sim.inject(bogus.announcement(), on: link0)
        sim.advance(.milliseconds(10))
        #expect(sim.core.snapshot(now: sim.now).isEmpty)
        // An unsolicited config response (a target powering on) adds it at once.
        sim.targets.append(MemoryTarget(address: e103, mac: targetMAC))
        sim.attachments.append([link0])
        sim.inject(sim.targets[0].announcement(), on: link0)
        #expect(sim.run(for: .seconds(1)) { $0.target?.state == .up })
    }

    @Test("jumbo black hole: probes fail, binary search settles on 1024 in under 2 s, and the log says so")
    func blackHoleFallsBackQuickly() throws {
        var f = Simulation.Faults()
        f.mtuLimit = 1500
        var sim = Simulation(links: [(link0, 9000)], targets: [(MemoryTarget(address: e103, mac: targetMAC), [link0])])
        sim.faults[link0] = f
        let start = sim.now
        #expect(sim.run(for: .seconds(10)) { $0.target?.paths.first?.state == .ok })
        #expect(sim.now - start < .seconds(2))
        let t = try #require(sim.target)
        #expect(t.payload == 1024)
        #expect(sim.log.contains { $0.contains("black-holed") })
        let data = pattern(64 * 1024, seed: 3)
        #expect(sim.writeThenRead(data, at: 100) == data)
    }

    @Test("a switch that starts black-holing jumbo frames mid-transfer: fall back, re-split, data intact")
    func liveFallBack() throws {
        var sim = upSimulation()
        #expect(sim.target?.payload == 8704)
        let data = pattern(8 << 20, seed: 11)
        let w = sim.submit(.write, e103, lba: 0, sectors: data.count / 512, buffer: IOBuffer(data))
        sim.advance(.milliseconds(3))
        sim.faults[link0] = {
            var f = Simulation.Faults(); f.mtuLimit = 1500; return f
        }()
        #expect(sim.run(for: .seconds(30)) { $0.isDone(w) })
        #expect(sim.outcome(w) == .ok)
        #expect(sim.targets[0].bytes(at: 0, count: data.count) == data)
        #expect(sim.target?.payload == 1024)
        #expect(sim.log.contains { $0.contains("vanish while 1024-byte frames cross") })
    }

    @Test("a stall that delays every frame is not mistaken for a black hole")
    func stallIsNotABlackHole() throws {
        var sim = upSimulation()
        let data = pattern(4 << 20, seed: 12)
        let w = sim.submit(.write, e103, lba: 0, sectors: data.count / 512, buffer: IOBuffer(data))
        sim.advance(.milliseconds(2))
        sim.latency = .milliseconds(150)  // the target (or host) stalls: everything arrives late
        sim.advance(.milliseconds(400))
        sim.latency = .microseconds(100)
        #expect(sim.run(for: .seconds(30)) { $0.isDone(w) })
        #expect(sim.outcome(w) == .ok)
        #expect(sim.targets[0].bytes(at: 0, count: data.count) == data)
        #expect(sim.run(for: .seconds(5)) { $0.target?.paths.first?.state == .ok })
        #expect(sim.target?.payload == 8704, "the payload survives a stall")
        #expect(!sim.log.contains { $0.contains("falling back") })
    }

    @Test("a size between 1024 and the ceiling is found by binary search")
    func binarySearchFindsTheLargestSize() throws {
        var f = Simulation.Faults()
        f.mtuLimit = 4200  // 4096 + 22 fits; 4608 + 22 does not
        var sim = Simulation(links: [(link0, 9000)], targets: [(MemoryTarget(address: e103, mac: targetMAC), [link0])])
        sim.faults[link0] = f
        #expect(sim.run(for: .seconds(10)) { $0.target?.paths.first?.state == .ok })
        #expect(sim.target?.payload == 4096)
    }
}

@Suite("Engine core: scheduler under faults")
struct SchedulerFaultTests {
    @Test func cleanRoundTripOf4MiB() throws {
        var sim = upSimulation()
        let data = pattern(4 << 20, seed: 1)
        #expect(sim.writeThenRead(data, at: 1000) == data)
        #expect(sim.targets[0].bytes(at: 1000 * 512, count: data.count) == data)
        let c = try #require(sim.target?.counters)
        #expect(c.retries == 0)
        #expect(c.bytesWritten == UInt64(data.count) && c.bytesRead == UInt64(data.count))
        #expect(c.writes == 1 && c.reads == 1)
    }

    @Test(arguments: [1 as UInt64, 2, 3])
    func lossDuplicatesAndReorderingKeepDataIntact(seed: UInt64) throws {
        var f = Simulation.Faults()
        f.drop = 0.10
        f.duplicate = 0.05
        f.reorder = 0.2
        var sim = upSimulation(faults: f, seed: seed)
        let data = pattern(1 << 20, seed: seed)
        #expect(sim.writeThenRead(data, at: 77) == data)
        #expect(sim.targets[0].bytes(at: 77 * 512, count: data.count) == data)
        let c = try #require(sim.target?.counters)
        #expect(c.retries > 0 && c.errtimeout > 0)
        #expect(c.softerr > 0, "late duplicates after retransmits are recognised and dropped")
    }

    @Test func spoofedAndTruncatedResponsesAreCountedAndDropped() throws {
        var f = Simulation.Faults()
        f.spoof = 0.3
        f.truncate = 0.05
        var sim = upSimulation(faults: f)
        let data = pattern(512 << 10, seed: 9)
        #expect(sim.writeThenRead(data, at: 5) == data)
        let c = try #require(sim.target?.counters)
        #expect(c.errwmsg > 0, "forged responses from another MAC are rejected")
        #expect(c.errtrunc > 0, "short responses are rejected")
    }

    @Test func windowGrowsToBufferCountAndHalvesOnLoss() throws {
        var sim = upSimulation()
        let start = try #require(sim.target?.paths.first?.window)
        #expect(start == 8, "starts at half of bufcnt 16")
        let data = pattern(2 << 20, seed: 2)
        _ = sim.writeThenRead(data, at: 0)
        #expect(sim.target?.paths.first?.window == 16, "grows to bufcnt")
        sim.faults[link0] = {
            var f = Simulation.Faults(); f.drop = 1; return f
        }()
        let r = sim.submit(.read, e103, lba: 0, sectors: 512, buffer: IOBuffer(count: 512 * 512))
        sim.advance(.milliseconds(300))
        let shrunk = try #require(sim.target?.paths.first?.window)
        #expect(shrunk < 16 && shrunk >= 1)
        sim.faults[link0] = Simulation.Faults()
        #expect(sim.run(for: .seconds(20)) { $0.isDone(r) })
    }

    @Test func bufferCountOneWorks() throws {
        var target = MemoryTarget(address: e103, mac: targetMAC)
        target.bufferCount = 1
        var sim = upSimulation(target: target)
        #expect(sim.target?.paths.first?.window == 1)
        let data = pattern(256 << 10, seed: 4)
        #expect(sim.writeThenRead(data, at: 9) == data)
    }

    @Test func rtoDoublesOnEachRetransmissionOfTheSameFrame() {
        var rtt = RTTEstimator(initial: .milliseconds(200), minimum: .milliseconds(5), maximum: .seconds(5))
        for _ in 0..<20 { rtt.sample(.microseconds(100)) }
        #expect(rtt.timeout == .milliseconds(5), "clamped to the minimum")  // this estimator's own minimum
        #expect(rtt.timeout(afterRetries: 1) == .milliseconds(10))
        #expect(rtt.timeout(afterRetries: 3) == .milliseconds(40))
        #expect(rtt.timeout(afterRetries: 20) == .seconds(5), "capped")
        rtt.sample(.milliseconds(50))
        #expect(rtt.timeout > .milliseconds(5), "a slow sample raises the RTO")
    }

    @Test("a silent target is asked again with doubling timeouts, not hammered")
    func backoffAgainstASilentTarget() throws {
        var c = EngineConfiguration()
        c.deadsecs = 0
        var sim = upSimulation(configuration: c)
        sim.targets[0].silent = true
        let before = sim.sentToTargets
        _ = sim.submit(.read, e103, lba: 0, sectors: 1, buffer: IOBuffer(count: 512))
        sim.advance(.seconds(20))
        let sends = sim.sentToTargets - before
        // 2 ms doubling to the 5 s cap: 13 sends in the first 8.2 s, then one per 5 s: ~15, not thousands.
        #expect(sends >= 10 && sends <= 17, "\(sends) sends")
    }
}

@Suite("Engine core: failure handling")
struct FailureTests {
    @Test func deadsecsTakesTheTargetDownAndAConfigAnswerBringsItBack() throws {
        var c = EngineConfiguration()
        c.deadsecs = 5
        var sim = upSimulation(configuration: c)
        sim.targets[0].silent = true
        let start = sim.now
        let r = sim.submit(.read, e103, lba: 0, sectors: 8, buffer: IOBuffer(count: 4096))
        #expect(sim.run(for: .seconds(30)) { $0.isDone(r) })
        #expect(sim.now - start < .seconds(6))
        #expect(sim.outcome(r) == .failed(.targetDown(e103)))
        #expect(sim.target?.state == .down)
        #expect(sim.log.contains { $0.contains("target down") })
        // New I/O fails at once while down.
        let r2 = sim.submit(.read, e103, lba: 0, sectors: 1, buffer: IOBuffer(count: 512))
        #expect(sim.outcome(r2) == .failed(.targetDown(e103)))
        // The target returns: the engine's periodic query finds it, and it is up again.
        sim.targets[0].silent = false
        #expect(sim.run(for: .seconds(5)) { $0.target?.state == .up })
        let data = pattern(8192, seed: 5)
        #expect(sim.writeThenRead(data, at: 0) == data)
    }

    @Test func ataErrorsFailAtOnceWithoutRetries() throws {
        var target = MemoryTarget(address: e103, mac: targetMAC)
        target.readOnly = true
        var sim = upSimulation(target: target)
        let w = sim.submit(.write, e103, lba: 0, sectors: 1, buffer: IOBuffer(count: 512))
        #expect(sim.run(for: .seconds(1)) { $0.isDone(w) })
        guard case .failure(.ataError(_, let status, let error, _)) = sim.completions[w] else {
            Issue.record("expected an ATA error, got \(String(describing: sim.completions[w]))")
            return
        }
        #expect(status.contains(.error) && error.contains(.aborted))
        #expect(sim.target?.counters.errata == 1)
        #expect(sim.target?.counters.retries == 0)
        #expect(sim.log.contains { $0.contains("ABRT") })
    }

    @Test func aoeErrorResponsesFailAtOnce() throws {
        var sim = upSimulation()
        sim.targets[0].aoeError = .targetReserved
        let r = sim.submit(.read, e103, lba: 0, sectors: 1, buffer: IOBuffer(count: 512))
        #expect(sim.run(for: .seconds(1)) { $0.isDone(r) })
        #expect(sim.outcome(r) == .failed(.aoeError(e103, .targetReserved)))
        #expect(sim.target?.counters.erraoe == 1)
    }

    @Test func beyondTheEndIsRefusedBeforeSending() {
        var sim = upSimulation()
        let r = sim.submit(.read, e103, lba: (1 << 21) - 1, sectors: 2, buffer: IOBuffer(count: 1024))
        #expect(sim.outcome(r) == .failed(.beyondEnd(e103, lba: (1 << 21) - 1, sectors: 2, capacity: 1 << 21)))
    }

    @Test func flushWaitsForEarlierWritesAndFallsBackToFlushCache() throws {
        var sim = upSimulation()
        let w = sim.submit(.write, e103, lba: 0, sectors: 256, buffer: IOBuffer(pattern(256 * 512, seed: 6)))
        let f = sim.submit(.flush, e103, lba: 0, sectors: 0)
        #expect(sim.run(for: .seconds(5)) { $0.isDone(f) })
        #expect(sim.isDone(w))
        #expect(sim.outcome(f) == .ok)
        #expect(sim.targets[0].flushes == 1, "0xea was aborted, 0xe7 reached the target")
        #expect(sim.target?.counters.flushes == 1)
        #expect(sim.target?.flushMode == .e7, "later flushes go straight to 0xe7")
    }

    @Test("a write-through target (no write cache in IDENTIFY): a flush waits for earlier writes, sends nothing")
    func flushOnWriteThroughTarget() throws {
        var t = MemoryTarget(address: e103, mac: targetMAC)
        t.writeCache = false
        var sim = Simulation(links: [(link0, 9000)], targets: [(t, [link0])])
        #expect(sim.run(for: .seconds(5)) { $0.target?.isSettled == true && $0.target?.state == .up })
        #expect(sim.target?.flushMode == FlushMode.none)
        let w = sim.submit(.write, e103, lba: 0, sectors: 256, buffer: IOBuffer(pattern(256 * 512, seed: 6)))
        let f = sim.submit(.flush, e103, lba: 0, sectors: 0)
        #expect(!sim.isDone(f), "the flush waits for the write before it")
        #expect(sim.run(for: .seconds(5)) { $0.isDone(f) })
        #expect(sim.isDone(w) && sim.outcome(f) == .ok)
        #expect(sim.targets[0].flushes == 0 && sim.target?.counters.flushes == 0)
        #expect(sim.target?.counters.localFlushes == 1)
    }

    @Test("a target that offers FLUSH but aborts both: logged once, and every fsync succeeds")
    func flushAbortedByTarget() throws {
        var t = MemoryTarget(address: e103, mac: targetMAC)
        t.abortsFlush = true
        var sim = Simulation(links: [(link0, 9000)], targets: [(t, [link0])])
        #expect(sim.run(for: .seconds(5)) { $0.target?.isSettled == true && $0.target?.state == .up })
        for _ in 0..<3 {
            let f = sim.submit(.flush, e103, lba: 0, sectors: 0)
            #expect(sim.run(for: .seconds(5)) { $0.isDone(f) })
            #expect(sim.outcome(f) == .ok)
        }
        #expect(sim.log.filter { $0.contains("fsync is answered without a flush") }.count == 1)
        #expect(sim.target?.flushMode == FlushMode.none)
        #expect(sim.target?.counters.localFlushes == 3)
    }
}

@Suite("Engine core: multipath")
struct MultipathTests {
    @Test func bothPathsCarryFramesAndACutLinkIsSurvived() throws {
        var sim = Simulation(
            links: [(link0, 9000), (link1, 9000)],
            targets: [(MemoryTarget(address: e103, mac: targetMAC), [link0, link1])])
        #expect(sim.run(for: .seconds(5)) { $0.target?.state == .up && $0.target?.paths.count == 2 })
        let data = pattern(2 << 20, seed: 8)
        #expect(sim.writeThenRead(data, at: 0) == data)
        let paths = try #require(sim.target?.paths)
        #expect(paths.allSatisfy { $0.sent > 10 }, "both paths carry frames: \(paths.map(\.sent))")
        // Cut link 1 in the middle of a transfer: it completes on link 0.
        let big = pattern(4 << 20, seed: 10)
        let w = sim.submit(.write, e103, lba: 10_000, sectors: big.count / 512, buffer: IOBuffer(big))
        sim.advance(.milliseconds(2))
        sim.faults[link1] = {
            var f = Simulation.Faults(); f.cut = true; return f
        }()
        #expect(sim.run(for: .seconds(30)) { $0.isDone(w) })
        #expect(sim.outcome(w) == .ok)
        #expect(sim.targets[0].bytes(at: 10_000 * 512, count: big.count) == big)
    }
}

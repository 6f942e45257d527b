import AoECore
import AoEEngine
import Testing

@Suite("MTU negotiator, table-driven")
struct NegotiatorTests {
    @Test(
        "the ceiling is the smallest of MTU − 22, the target's sectors and the cap, in whole sectors",
        arguments: [
            (9000, 17, nil as Int?, 17),  // 8978 → 8704 bytes
            (1500, 2, nil, 2),  // 1478 → 1024
            (1500, 17, nil, 2),
            (4200, 17, nil, 8),  // 4178 → 4096 (Linux's example)
            (9000, 8, nil, 8),  // the target allows less
            (9000, 17, 4096, 8),  // the user's cap
            (9000, 17, 1000, 1),  // caps round down, never below one sector
            (576, 17, nil, 1),
        ])
    func ceiling(mtu: Int, targetSectors: Int, cap: Int?, expected: Int) {
        let n = MTUNegotiator(mtu: mtu, targetSectors: targetSectors, cap: cap)
        #expect(n.ceilingSectors == expected)
        #expect(n.payload == min(expected, 2) * 512, "only up to 1024 bytes is trusted before a probe")
    }

    /// Probe outcomes as a path of MTU 9000 would see them through a switch passing at most
    /// `limit` sectors: the sequence of sizes probed, and where it settles.
    @Test(
        "binary search over sector counts",
        arguments: [
            (17, [17], 17),
            (2, [17, 17, 9, 9, 5, 5, 3, 3], 2),
            (8, [17, 17, 9, 9, 5, 7, 8], 8),
            (12, [17, 17, 9, 13, 13, 11, 12], 12),
        ])
    func search(limit: Int, probes: [Int], settles: Int) {
        var n = MTUNegotiator(mtu: 9000, targetSectors: 17, cap: nil)
        var seen: [Int] = []
        while let s = n.startProbe(), seen.count < 40 {
            seen.append(s)
            if s <= limit { n.probeSucceeded(sectors: s) } else { _ = n.probeTimedOut() }
        }
        #expect(seen == probes)
        #expect(n.provenSectors == settles)
        #expect(n.isSettled)
    }

    /// Issue 31: a size that failed is tried again — 5 s after the search ended, then 10, 20, …
    /// up to 640 s — until the switch lets it through; then back to the shortest wait.
    /// `opensAt`: the second from which the path carries the ceiling (nil: never).
    @Test(
        "upward tries in virtual time: when each starts, and where the path settles",
        arguments: [
            // A port that never passes jumbo frames: tries at 5, 15, 35, 75, 155, 315, 635, 1275, 1915 s.
            (nil as Int?, [5, 15, 35, 75, 155, 315, 635, 1275, 1915], 2),
            // Fixed after 12 s: the try at 15 s finds it.
            (12, [5, 15], 17),
            // Fixed at once: the first try.
            (1, [5], 17),
        ])
    func raiseTries(opensAt: Int?, expectedTries: [Int], settles: Int) {
        var n = MTUNegotiator(mtu: 9000, targetSectors: 17, cap: nil)
        var tries: [Int] = []
        // The switch passes 2 sectors until `opensAt`, then everything. A probe resolves at once.
        func probe(at second: Int) {
            while let s = n.startProbe() {
                let passes = s <= 2 || (opensAt.map { second >= $0 } ?? false)
                if passes { n.probeSucceeded(sectors: s) } else { _ = n.probeTimedOut() }
            }
        }
        probe(at: 0)
        #expect(n.provenSectors == 2 && n.isBelowCeiling)
        _ = n.raiseIfDue(now: .zero)
        for second in 0...2000 {
            let now = Instant(nanoseconds: UInt64(second) * 1_000_000_000)
            if n.raiseIfDue(now: now) == .probe {
                tries.append(second)
                probe(at: second)
                _ = n.raiseIfDue(now: now)  // the tick after the last probe schedules the next try
            }
        }
        #expect(tries == expectedTries)
        #expect(n.provenSectors == settles)
        if settles == 17 {
            #expect(n.raiseAt == nil && !n.isBelowCeiling && n.raiseWait == MTUNegotiator.firstRaiseWait)
        } else {
            #expect(n.raiseWait == MTUNegotiator.longestRaiseWait, "the wait stops doubling at about ten minutes")
        }
    }

    @Test("evidence (a larger frame answered on the same link) tries at once and from the shortest wait")
    func raiseSoonOnEvidence() {
        var n = MTUNegotiator(mtu: 9000, targetSectors: 17, cap: nil)
        while let s = n.startProbe() { if s <= 2 { n.probeSucceeded(sectors: s) } else { _ = n.probeTimedOut() } }
        let t0 = Instant(nanoseconds: 1_000_000_000)
        let scheduled = n.raiseIfDue(now: t0)
        #expect(scheduled == nil, "the first call schedules")
        #expect(n.raiseAt == t0 + .seconds(5))
        n.raiseSoon(sectors: 2, now: t0)
        #expect(n.raiseAt == t0 + .seconds(5), "no larger than what the path has: no evidence")
        n.raiseSoon(sectors: 17, now: t0 + .seconds(1))
        let due = n.raiseIfDue(now: t0 + .seconds(1))
        #expect(due == .probe, "due at once")
        let next = n.startProbe()
        #expect(next == 17)
        let settled = MTUNegotiator(mtu: 1500, targetSectors: 17, cap: nil)
        var m = settled
        m.raiseSoon(sectors: 17, now: t0)
        #expect(m == settled, "a path at our own MTU's ceiling has nothing to try")
    }

    /// Issue 31's case: our MTU raised while the target's is still low, so its config offers 2
    /// sectors; only its config can say when it offers more, so the upward try asks for it.
    @Test("a target that offers less than our end takes: its config is asked for again at 5, 15, 35 s …")
    func targetLimitedAsksConfig() {
        var n = MTUNegotiator(mtu: 9000, targetSectors: 2, cap: nil)
        #expect(n.targetLimited && n.isSettled && n.payload == 1024)
        var asks: [Int] = []
        for second in 0...80 {
            if n.raiseIfDue(now: Instant(nanoseconds: UInt64(second) * 1_000_000_000)) == .askConfig {
                asks.append(second)
            }
        }
        #expect(asks == [5, 15, 35, 75])
        #expect(n.startProbe() == nil, "nothing to probe: the ceiling is the target's")
        let capped = MTUNegotiator(mtu: 9000, targetSectors: 17, cap: 1024)
        #expect(!capped.targetLimited && !capped.isBelowCeiling, "a cap of ours is no reason to ask")
    }

    @Test("suspicion: black hole only when small frames cross and large ones do not")
    func suspicionVerdicts() {
        func suspect() -> MTUNegotiator {
            var n = MTUNegotiator(mtu: 9000, targetSectors: 17, cap: nil)
            _ = n.startProbe()
            n.probeSucceeded(sectors: 17)
            let l1 = n.frameLost(sectors: 17)
            let l2 = n.frameLost(sectors: 17)
            let l3 = n.frameLost(sectors: 17)
            #expect(!l1 && !l2)
            #expect(l3, "the third large loss in a row makes the path suspect")
            return n
        }
        var a = suspect()
        let a1 = a.suspicionAliveProbe(answered: true)
        #expect(a1.verdict == .pending)
        let a2 = a.suspicionSizeProbe(answered: false)
        #expect(a2.retry && a2.verdict == .pending)
        let a3 = a.suspicionSizeProbe(answered: false)
        #expect(a3.verdict == .blackHole)
        #expect(a.payload == 1024)
        let next = a.startProbe()
        #expect(next == 9, "searches below the failed size")

        var b = suspect()
        let b1 = b.suspicionSizeProbe(answered: true)
        #expect(b1.verdict == .stall)
        #expect(b.payload == 8704)

        var c = suspect()
        _ = c.suspicionSizeProbe(answered: false)
        _ = c.suspicionSizeProbe(answered: false)
        _ = c.suspicionAliveProbe(answered: false)
        let c1 = c.suspicionAliveProbe(answered: false)
        #expect(c1.verdict == .silent)
        #expect(c.payload == 8704, "a dead path keeps its size; deadsecs decides")
    }

    @Test("a check whose probes were forgotten (target down, disabled) is abandoned, and losses count afresh")
    func abandonedCheck() {
        var n = MTUNegotiator(mtu: 9000, targetSectors: 17, cap: nil)
        _ = n.startProbe()
        n.probeSucceeded(sectors: 17)
        for _ in 0..<3 { _ = n.frameLost(sectors: 17) }
        #expect(n.suspicion != nil && !n.isSettled)
        n.abandonCheck()
        #expect(n.suspicion == nil && n.isSettled, "nothing left to learn at 17 sectors")
        #expect(n.payload == 17 * 512, "the proven payload stays")
        #expect(
            !n.frameLost(sectors: 17) && !n.frameLost(sectors: 17) && n.frameLost(sectors: 17),
            "three new losses make it suspect again")
    }

    @Test("small-frame losses never make a path suspect")
    func smallLossesAreNotJumboEvidence() {
        var n = MTUNegotiator(mtu: 9000, targetSectors: 17, cap: nil)
        _ = n.startProbe()
        n.probeSucceeded(sectors: 17)
        for _ in 0..<10 {
            let lost = n.frameLost(sectors: 2)
            #expect(!lost)
        }
        #expect(n.suspicion == nil)
    }
}

@Suite("Congestion window, table-driven")
struct WindowTests {
    @Test(
        "start, slow start, congestion avoidance",
        arguments: [
            (16, 128, 8, 16),
            (1, 128, 1, 1),
            (200, 128, 64, 128),
            (16, 4, 2, 4),
        ])
    func growth(bufcnt: Int, maxout: Int, start: Int, limit: Int) {
        var w = CongestionWindow(bufferCount: bufcnt, maxOutstanding: maxout)
        #expect(w.size == start)
        #expect(w.limit == limit)
        for _ in 0..<10_000 { w.onResponse() }
        #expect(w.size == limit)
    }

    @Test func halvesOncePerLossEventAndNeverBelowOne() {
        var w = CongestionWindow(bufferCount: 16, maxOutstanding: 128)
        for _ in 0..<1000 { w.onResponse() }
        let t1 = Instant(nanoseconds: 1_000_000)
        let t2 = Instant(nanoseconds: 2_000_000)
        w.onLoss(sentAt: t1, now: t2)
        #expect(w.size == 8)
        w.onLoss(sentAt: t1, now: t2)  // another frame of the same flight: same event
        #expect(w.size == 8)
        // Each further loss is of a frame sent after the previous cut: a new event each time.
        func event(_ i: UInt64) {
            w.onLoss(sentAt: Instant(nanoseconds: 10_000_000 * i), now: Instant(nanoseconds: 10_000_000 * i + 1))
        }
        event(1)
        event(2)
        event(3)
        #expect(w.size == 1)
        event(4)
        #expect(w.size == 1, "never below one")
        w.undoLoss()
        #expect(w.size == 1, "undo restores the size before the last cut only")
        event(5)
        w.onResponse()
        w.onResponse()
        let before = w.size
        event(6)
        w.undoLoss()
        #expect(w.size == before, "a spurious timeout's cut is undone")
    }
}

/// A target that queues `capacity` frames: of a window of `size` frames sent at once, those
/// beyond `capacity` are lost (the tail of the burst), as qaoed's socket buffer does.
private struct OverrunModel {
    var capacity: Int
    var clock: UInt64 = 0
    var answers = 0
    var lost = 0
    var lossEvents = 0

    /// Sends one window's worth and feeds the window what came back.
    mutating func round(_ w: inout CongestionWindow) {
        clock += 1_000_000
        let sent = Instant(nanoseconds: clock)
        let n = w.size
        let over = max(0, n - capacity)
        for _ in 0..<(n - over) { w.onResponse() }
        answers += n - over
        for _ in 0..<over {
            if w.onLoss(sentAt: sent, now: Instant(nanoseconds: clock + 500_000)) { lossEvents += 1 }
        }
        lost += over
    }
}

@Suite("Congestion window: a target that overstates its Buffer Count")
struct OverstatedBufferTests {
    @Test(
        "learns the ceiling; losses well under 1 % of frames; never above Buffer Count",
        arguments: [(20, 13), (20, 8), (20, 3), (64, 40), (8, 7)])
    func learnsCeiling(bufcnt: Int, capacity: Int) {
        var w = CongestionWindow(bufferCount: bufcnt, maxOutstanding: 128)
        #expect(w.size < bufcnt || bufcnt == 1, "starts below Buffer Count")
        var m = OverrunModel(capacity: capacity)
        var top = 0
        for _ in 0..<50_000 {
            m.round(&w)
            top = max(top, w.size)
        }
        #expect(top <= bufcnt)
        #expect(
            w.ceiling == capacity + 1 || w.ceiling == nil && capacity >= bufcnt,
            "ceiling \(String(describing: w.ceiling))")
        let share = Double(m.lost) / Double(m.answers + m.lost)
        #expect(share < 0.01, "lost \(m.lost) of \(m.answers + m.lost)")
        // The window works near the capacity, not at half of it.
        var sizes = 0
        for _ in 0..<1000 { m.round(&w); sizes += w.size }
        #expect(Double(sizes) / 1000 >= Double(min(capacity, bufcnt)) * 0.6, "mean window \(Double(sizes) / 1000)")
    }

    @Test("a target whose load falls is given more again: the ceiling is tried after answers without loss")
    func probesTheCeiling() {
        var w = CongestionWindow(bufferCount: 20, maxOutstanding: 128)
        var m = OverrunModel(capacity: 10)
        for _ in 0..<2_000 { m.round(&w) }
        #expect(w.ceiling == 11)
        #expect(w.cap == 10)
        m.capacity = 20
        for _ in 0..<20_000 { m.round(&w) }
        #expect(w.size == 20 && w.ceiling == nil)
    }

    @Test("failed tries at the ceiling double the wait before the next")
    func backsOff() {
        var w = CongestionWindow(bufferCount: 20, maxOutstanding: 128)
        var m = OverrunModel(capacity: 10)
        for _ in 0..<2_000 { m.round(&w) }
        let interval = w.probeInterval
        let (events, answers) = (m.lossEvents, m.answers)
        for _ in 0..<100_000 { m.round(&w) }
        #expect(w.probeInterval > interval)
        let rate = Double(m.lossEvents - events) / Double(m.answers - answers)
        #expect(rate < 1.0 / 4096, "\(m.lossEvents - events) loss events in \(m.answers - answers) answers")
    }

    @Test("random loss of 1 % keeps the window small, not at one: the tries at the ceiling lift it")
    func randomLoss() {
        var w = CongestionWindow(bufferCount: 20, maxOutstanding: 128)
        var seed: UInt64 = 42
        var clock: UInt64 = 0
        var sizes = 0
        for i in 0..<200_000 {
            seed = seed &* 6364136223846793005 &+ 1442695040888963407
            clock += 10_000
            if (seed >> 33) % 100 == 0 {
                w.onLoss(sentAt: Instant(nanoseconds: clock), now: Instant(nanoseconds: clock + 1))
            } else {
                w.onResponse()
            }
            if i >= 100_000 { sizes += w.size }
        }
        #expect(Double(sizes) / 100_000 >= 2, "mean window \(Double(sizes) / 100_000)")
    }
}

@Suite("RTO after spurious timeouts")
struct SpuriousTimeoutTests {
    @Test("the RTO follows RTT and variance down to the 2 ms floor, and a spurious timeout backs it off, then decays")
    func backoff() {
        var r = RTTEstimator(initial: .milliseconds(200), minimum: .milliseconds(2), maximum: .seconds(5))
        for _ in 0..<100 { r.sample(.microseconds(150)) }
        #expect(r.timeout == .milliseconds(2), "RTT 150 µs: the floor")
        for i in 0..<100 { r.sample(.microseconds(i % 2 == 0 ? 1000 : 3000)) }
        #expect(r.timeout > .milliseconds(5), "variance counts: \(r.timeout)")
        for _ in 0..<100 { r.sample(.microseconds(150)) }
        r.spuriousTimeout(late: .milliseconds(30))
        #expect(r.timeout >= .milliseconds(60), "twice the late answer: \(r.timeout)")
        let raised = r.timeout
        for _ in 0..<RTTEstimator.floorDecaySamples { r.sample(.microseconds(150)) }
        #expect(r.timeout < raised, "decays while answers come on time")
        for _ in 0..<(RTTEstimator.floorDecaySamples * 40) { r.sample(.microseconds(150)) }
        #expect(r.timeout == .milliseconds(2), "and is forgotten: \(r.timeout)")
    }
}

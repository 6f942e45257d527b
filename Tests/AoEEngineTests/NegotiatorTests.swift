import AoECore
import AoEEngine
import Testing

@Suite("MTU negotiator, table-driven")
struct NegotiatorTests {
    @Test("the ceiling is the smallest of MTU − 22, the target's sectors and the cap, in whole sectors",
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
    @Test("binary search over sector counts", arguments: [
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
        #expect(!n.frameLost(sectors: 17) && !n.frameLost(sectors: 17) && n.frameLost(sectors: 17),
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
    @Test("start, slow start, congestion avoidance", arguments: [
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
        func event(_ i: UInt64) { w.onLoss(sentAt: Instant(nanoseconds: 10_000_000 * i), now: Instant(nanoseconds: 10_000_000 * i + 1)) }
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

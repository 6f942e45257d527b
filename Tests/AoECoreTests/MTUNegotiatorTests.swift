import AoECore
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

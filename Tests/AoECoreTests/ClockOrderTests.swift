import AoEProtocol
import AoETestSupport
import Testing

@testable import AoECore

/// Issue 30: instants read on two threads reach the core out of order (each thread reads the
/// clock, then takes the lock). The daemon trapped in `IOAccount.busy` when a `stats` reader's
/// earlier `now` met a `busySince` stamped later by the receive thread.
@Suite("Time that runs backwards at the core's door")
struct ClockOrderTests {
    /// The crash of the soak, replayed: a request in flight since t, a snapshot asked for at an
    /// instant before t. Trapped (arithmetic overflow) before the fix.
    @Test("a snapshot at an instant before the latest request's start neither traps nor reads centuries")
    func snapshotBeforeBusySince() {
        var sim = upSimulation()
        sim.faults[link0]?.cut = true  // keep the request in flight
        let earlier = sim.now
        sim.advance(.milliseconds(5))
        _ = sim.submit(.read, e103, lba: 0, sectors: 8)
        guard let t = sim.core.snapshot(of: e103, now: earlier) else {
            Issue.record("no target")
            return
        }
        #expect(t.io.inFlight == 1)
        #expect(t.busyNanoseconds < 60_000_000_000, "busy \(t.busyNanoseconds) ns")
    }

    /// The core clamps every `now` to the latest it has seen: requests completed with an earlier
    /// instant than their submission record zero, not 2⁶⁴ − ε nanoseconds of latency.
    @Test("a completion stamped before its submission records no time, and the core's clock never goes back")
    func completionBeforeSubmission() {
        var core = EngineCore()
        var out: [EngineAction] = []
        let late = Instant(nanoseconds: 10_000_000_000)
        core.tick(now: late, &out)
        core.tick(now: Instant(nanoseconds: 1), &out)
        #expect(core.latestNow == late)
    }

    /// Property: whatever order `began`, `ended` and `busy` see their instants in, nothing traps,
    /// busy time never exceeds the span of the instants seen, and latency sums stay within the
    /// spans of the requests.
    @Test("IOAccount under 10 000 random, non-monotonic instants", arguments: [UInt64(1), 2, 3, 42, 1234])
    func ioAccountProperty(seed: UInt64) {
        var rng = SplitMixRNG(seed)
        var io = IOAccount()
        var open: [Instant] = []
        var lo = UInt64.max, hi = UInt64.min
        for _ in 0..<10_000 {
            // Instants jitter around a rising base, as two threads' readings do; a few far apart.
            let base = UInt64(open.count + 1) * 1_000_000
            let jitter = rng.next() % 3_000_000
            let now = Instant(nanoseconds: rng.next() % 97 == 0 ? rng.next() % 1_000 : base &+ jitter)
            lo = min(lo, now.nanoseconds)
            hi = max(hi, now.nanoseconds)
            switch rng.next() % 3 {
            case 0:
                io.began(now: now)
                open.append(now)
            case 1 where !open.isEmpty:
                let submitted = open.removeLast()
                io.ended(.read, bytes: 4096, submitted: submitted, ok: rng.next() % 5 != 0, now: now)
            default:
                let busy = io.busy(now: now)
                #expect(busy <= UInt64(10_001) * (hi - lo), "busy \(busy)")
            }
        }
        #expect(io.read.nanos <= UInt64(io.read.ios) * (hi - lo))
        #expect(io.inFlight == open.count)
        io.abandonAll()
        #expect(io.inFlight == 0)
    }

    @Test("sums of time saturate instead of trapping")
    func saturatingSums() {
        #expect(IOAccount.sum(.max - 1, 5) == .max)
        #expect(IOAccount.sum(1, 2) == 3)
    }
}

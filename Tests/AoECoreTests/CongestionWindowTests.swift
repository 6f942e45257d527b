import AoECore
import Testing

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

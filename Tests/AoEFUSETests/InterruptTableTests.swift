import Testing

@testable import AoEFUSE

/// INTERRUPTs and the requests they name, in either order (over the ring a request and its
/// INTERRUPT come by two ways and are reaped in either order).
@Suite("interrupt table: an INTERRUPT wakes its parked request, whichever came first")
struct InterruptTableTests {
    @Test("parked first, then interrupted: the waiter is woken once")
    func parkedThenInterrupted() {
        var t = InterruptTable()
        #expect(t.watch(7, 100) == false)
        #expect(t.interrupt(7) == 100)
        #expect(t.interrupt(7) == nil, "a second INTERRUPT finds nobody")
    }

    @Test("interrupted before it was parked: parking answers at once")
    func interruptedThenParked() {
        var t = InterruptTable()
        #expect(t.interrupt(9) == nil)
        #expect(t.watch(9, 100) == true, "the early INTERRUPT is not lost")
        #expect(t.watch(9, 101) == false, "and is used once")
    }

    @Test("an answered request forgets its early INTERRUPT; the table stays bounded")
    func answeredAndBounded() {
        var t = InterruptTable()
        _ = t.interrupt(5)
        t.answered(5)
        #expect(t.watch(5, 1) == false)
        for u in 0..<UInt64(1000) { _ = t.interrupt(10_000 + u) }
        #expect(t.early.count == InterruptTable.earlyLimit)
        #expect(t.watch(10_999, 2) == true, "the newest are kept")
    }
}

/// Locks on sector ranges of one target, granted first come, first served: a write holds the
/// sectors it touches, so a read-modify-write of an edge sector and another write to the same
/// sector never interleave (no lost update). Pure: grants are returned, not called.
struct RangeLocks<Grant: Sendable>: Sendable {
    struct Waiter {
        var id: UInt64
        var range: Range<UInt64>
        var grant: Grant
    }
    private var held: [UInt64: Range<UInt64>] = [:]
    private var waiting: [Waiter] = []

    init() {}

    /// Asks for `range`. Returns the grant to run now, or nil if it must wait.
    mutating func acquire(_ id: UInt64, _ range: Range<UInt64>, grant: Grant) -> Grant? {
        // Also wait behind earlier waiters that overlap, or a stream of small writes could starve a large one.
        if held.values.contains(where: { $0.overlaps(range) }) || waiting.contains(where: { $0.range.overlaps(range) })
        {
            waiting.append(Waiter(id: id, range: range, grant: grant))
            return nil
        }
        held[id] = range
        return grant
    }

    /// Releases `id`'s range. Returns the grants now due, in arrival order.
    mutating func release(_ id: UInt64) -> [Grant] {
        held[id] = nil
        var granted: [Grant] = []
        var blocked: [Range<UInt64>] = []
        var still: [Waiter] = []
        for w in waiting {
            if held.values.contains(where: { $0.overlaps(w.range) })
                || blocked.contains(where: { $0.overlaps(w.range) })
            {
                blocked.append(w.range)
                still.append(w)
            } else {
                held[w.id] = w.range
                granted.append(w.grant)
            }
        }
        waiting = still
        return granted
    }
}

/// Values by request id, in a direct-mapped table: an id's slot is `id & mask`. Ids come from
/// one counter and most requests finish in about the order they came, so the ids alive at once
/// fall in distinct slots; a collision (a request that waits while many newer ones pass it)
/// doubles the table. Lookups on the per-frame path are an index and a compare, not a hash.
///
/// Inlinable, so the driver's `RequestTable<IOCompletion>` is specialized, not generic at run
/// time. The subset of `Dictionary` the scheduler and the driver use, in no particular order.
public struct RequestTable<Value>: Sendable where Value: Sendable {
    @usableFromInline var slots: [(key: RequestID, value: Value)?] = Array(repeating: nil, count: 64)
    @usableFromInline var mask = 63
    @usableFromInline var _count = 0
    @inlinable public var count: Int { _count }

    @inlinable
    public init() {}

    @inlinable
    public var isEmpty: Bool { _count == 0 }

    @inlinable
    func slot(_ key: RequestID) -> Int { Int(truncatingIfNeeded: key.rawValue) & mask }

    @inlinable
    public subscript(key: RequestID) -> Value? {
        get {
            guard let e = slots[slot(key)], e.key == key else { return nil }
            return e.value
        }
        set {
            guard let newValue else { return _ = removeValue(forKey: key) }
            insert(newValue, forKey: key)
        }
    }

    @inlinable
    mutating func insert(_ value: Value, forKey key: RequestID) {
        if (_count + 1) * 2 > slots.count { grow() }
        var i = slot(key)
        while let e = slots[i], e.key != key {
            grow()
            i = slot(key)
        }
        if slots[i] == nil { _count += 1 }
        slots[i] = (key, value)
    }

    @inlinable
    mutating func grow() {
        let old = slots
        slots = Array(repeating: nil, count: old.count * 2)
        mask = slots.count - 1
        for case let e? in old { slots[slot(e.key)] = e }
    }

    /// Changes the value for `key` in place; nil if there is none.
    @inlinable
    public mutating func modify<R>(_ key: RequestID, _ body: (inout Value) -> R) -> R? {
        let i = slot(key)
        guard slots[i]?.key == key else { return nil }
        return body(&slots[i]!.value)
    }

    @inlinable
    public func contains(_ key: RequestID) -> Bool { slots[slot(key)]?.key == key }

    @discardableResult
    @inlinable
    public mutating func removeValue(forKey key: RequestID) -> Value? {
        let i = slot(key)
        guard let e = slots[i], e.key == key else { return nil }
        slots[i] = nil
        _count -= 1
        return e.value
    }

    @inlinable
    public mutating func removeAll() {
        slots = Array(repeating: nil, count: 64)
        mask = 63
        _count = 0
    }

    @inlinable
    public var keys: [RequestID] { slots.compactMap { $0?.key } }
    @inlinable
    public var values: [Value] { slots.compactMap { $0?.value } }
}

import AoEProtocol

/// A key of a `DirectTable`: its slot is `slotKey & mask`.
public protocol DirectTableKey: Equatable, Sendable {
    var slotKey: UInt64 { get }
}

extension RequestID: DirectTableKey {
    @inlinable public var slotKey: UInt64 { rawValue }
}

extension Tag: DirectTableKey {
    @inlinable public var slotKey: UInt64 { UInt64(rawValue) }
}

/// Values by a counter-issued key (request ids, AoE tags), in a direct-mapped table: a key's
/// slot is `key & mask`. Keys come from one counter and mostly finish in about the order they
/// came, so the keys alive at once fall in distinct slots; a collision (one that waits while many
/// newer ones pass it) or a table half full doubles it. A lookup on the per-frame path is an
/// index and a compare, not a hash (Docs/performance.md, issue 14).
///
/// Inlinable, so the driver's `RequestTable<IOCompletion>` is specialized, not generic at run
/// time. The subset of `Dictionary` the router, the scheduler and the driver use, in no
/// particular order.
public struct DirectTable<Key: DirectTableKey, Value: Sendable>: Sendable {
    @usableFromInline var slots: [(key: Key, value: Value)?] = Array(repeating: nil, count: 64)
    @usableFromInline var mask = 63
    @usableFromInline var _count = 0
    @inlinable public var count: Int { _count }

    @inlinable
    public init() {}

    @inlinable
    public var isEmpty: Bool { _count == 0 }

    @inlinable
    func slot(_ key: Key) -> Int { Int(truncatingIfNeeded: key.slotKey) & mask }

    @inlinable
    public subscript(key: Key) -> Value? {
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
    mutating func insert(_ value: Value, forKey key: Key) {
        if (_count + 1) * 2 > slots.count { grow() }
        var i = slot(key)
        // Another key in the slot: grow until the two part; they differ in some bit.
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

    /// Whether `key`'s slot is empty (a fresh key that will not collide).
    @inlinable
    public func isSlotFree(for key: Key) -> Bool { slots[slot(key)] == nil }

    /// Changes the value for `key` in place; nil if there is none.
    @inlinable
    public mutating func modify<R>(_ key: Key, _ body: (inout Value) -> R) -> R? {
        let i = slot(key)
        guard slots[i]?.key == key else { return nil }
        return body(&slots[i]!.value)
    }

    @inlinable
    public func contains(_ key: Key) -> Bool { slots[slot(key)]?.key == key }

    @discardableResult
    @inlinable
    public mutating func removeValue(forKey key: Key) -> Value? {
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
    public var keys: [Key] { slots.compactMap { $0?.key } }
    @inlinable
    public var values: [Value] { slots.compactMap { $0?.value } }
    /// Calls `body` with every entry, in no particular order, without building an array.
    @inlinable
    public func forEach(_ body: (Key, Value) -> Void) {
        for case let e? in slots { body(e.key, e.value) }
    }

    /// Every entry, in no particular order.
    @inlinable
    public var entries: [(key: Key, value: Value)] { slots.compactMap { $0 } }
}

/// Pending requests and their completions, by request id.
public typealias RequestTable<Value: Sendable> = DirectTable<RequestID, Value>

/// A point on the engine's monotonic clock, in nanoseconds. State machines take it as an
/// argument (postgres-nio's pool habit): they never read a clock themselves, so tests drive time.
public struct Instant: Comparable, Hashable, Sendable, CustomStringConvertible {
    public var nanoseconds: UInt64
    public init(nanoseconds: UInt64) { self.nanoseconds = nanoseconds }
    public static let zero = Instant(nanoseconds: 0)

    public static func < (a: Instant, b: Instant) -> Bool { a.nanoseconds < b.nanoseconds }
    public static func + (a: Instant, d: Duration) -> Instant { Instant(nanoseconds: a.nanoseconds &+ d.nanoseconds) }
    /// The time from `b` to `a`; zero if `b` is later.
    public static func - (a: Instant, b: Instant) -> Duration {
        a < b ? .zero : .nanoseconds(Int64(a.nanoseconds - b.nanoseconds))
    }
    public var description: String { "\(Double(nanoseconds) / 1e9)s" }

    /// `self + .nanoseconds(n)` without `Duration`'s 128-bit arithmetic (the per-frame path).
    public func advanced(byNanoseconds n: Int64) -> Instant { Instant(nanoseconds: nanoseconds &+ UInt64(max(0, n))) }
    /// Nanoseconds from `earlier` to `self`; zero if `earlier` is later.
    public func nanoseconds(since earlier: Instant) -> UInt64 { self < earlier ? 0 : nanoseconds - earlier.nanoseconds }
}

extension Duration {
    /// Whole nanoseconds (saturating; durations here are short).
    public var nanoseconds: UInt64 {
        let (s, atto) = components
        if s < 0 { return 0 }
        return UInt64(s) &* 1_000_000_000 &+ UInt64(atto / 1_000_000_000)
    }
    /// Microseconds, for counters.
    public var microseconds: UInt64 { nanoseconds / 1000 }
    /// Milliseconds, for log lines.
    public var milliseconds: UInt64 { nanoseconds / 1_000_000 }
}

/// Where the driver reads the time.
public protocol EngineClock: Sendable {
    func now() -> Instant
    /// A clock whose time moves only when told (tests): the event loops then never wait for a
    /// deadline on the wall clock; they sleep until woken, and the clock wakes them when it
    /// moves (`onAdvance`).
    var isVirtual: Bool { get }
    /// Calls `body` after every move of a virtual clock (the engine wakes its timer loop).
    func onAdvance(_ body: @escaping @Sendable () -> Void)
}

extension EngineClock {
    public var isVirtual: Bool { false }
    public func onAdvance(_ body: @escaping @Sendable () -> Void) {}
}

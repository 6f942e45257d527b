/// What a target's block requests did, as `/proc/diskstats` counts it for a disk: requests,
/// bytes and time per kind, requests in flight, and the time with at least one in flight
/// (`io_ticks`, iostat's %util). `aoefs iostat` reads it from `stats`; `metrics` exports it.
///
/// Pure and per request (never per frame): the scheduler calls `began` when it accepts a request
/// and `ended` when it completes or fails it.
///
/// Arithmetic never traps (issue 30: a `now` read before another thread stamped `busySince`
/// wrapped `now - busySince` to ~2⁶⁴, and the `+` beside it killed the daemon): a time span whose
/// end is before its start counts as zero; sums of time saturate at `UInt64.max` (584 years);
/// the counts wrap as `/proc/diskstats`' counters do (`iostat` takes differences), which at one
/// request per nanosecond takes 584 years.
public struct IOAccount: Sendable, Hashable {
    /// Per kind of request.
    public struct Kind: Sendable, Hashable, Codable {
        /// Requests completed (successfully or not).
        public var ios: UInt64 = 0
        /// Bytes of the requests completed successfully.
        public var bytes: UInt64 = 0
        /// Summed time from submission to completion, in nanoseconds.
        public var nanos: UInt64 = 0
        /// Requests that failed.
        public var errors: UInt64 = 0

        public init() {}
    }

    public var read = Kind()
    public var write = Kind()
    public var flush = Kind()
    /// TRIMs (diskstats' discard fields); bytes are those trimmed.
    public var discard = Kind()
    public private(set) var inFlight = 0
    private var busyNanos: UInt64 = 0
    private var busySince: Instant = .zero

    public init() {}

    /// Time with at least one request in flight, up to `now`.
    public func busy(now: Instant) -> UInt64 {
        inFlight > 0 ? Self.sum(busyNanos, now.nanoseconds(since: busySince)) : busyNanos
    }

    mutating func began(now: Instant) {
        if inFlight == 0 { busySince = now }
        inFlight &+= 1  // bounded by the requests in memory, far below Int.max
    }

    mutating func ended(_ kind: IOKind, bytes: Int, submitted: Instant, ok: Bool, now: Instant) {
        let t = now.nanoseconds(since: submitted)
        switch kind {
        case .read: Self.add(&read, bytes, t, ok)
        case .write: Self.add(&write, bytes, t, ok)
        case .flush: Self.add(&flush, bytes, t, ok)
        case .trim: Self.add(&discard, bytes, t, ok)
        }
        guard inFlight > 0 else { return }
        inFlight -= 1
        if inFlight == 0 { busyNanos = Self.sum(busyNanos, now.nanoseconds(since: busySince)) }
    }

    private static func add(_ k: inout Kind, _ bytes: Int, _ t: UInt64, _ ok: Bool) {
        k.ios &+= 1
        k.nanos = sum(k.nanos, t)
        if ok { k.bytes &+= UInt64(clamping: bytes) } else { k.errors &+= 1 }
    }

    /// `a + b`, or `UInt64.max` where that would overflow.
    static func sum(_ a: UInt64, _ b: UInt64) -> UInt64 {
        let (s, over) = a.addingReportingOverflow(b)
        return over ? .max : s
    }

    /// Every request in flight failed at once, when no clock was at hand (the target forgotten
    /// or disabled): nothing is in flight any more. Those requests are not counted (no op, no
    /// error, no time) and the busy period ends where it was last accounted.
    mutating func abandonAll() {
        inFlight = 0
    }
}

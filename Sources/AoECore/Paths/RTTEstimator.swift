/// Round-trip time and retransmission timeout of one path.
///
/// Jacobson & Karels, "Congestion Avoidance and Control" (1988), as in RFC 6298: gains 1/8 for
/// the mean and 1/4 for the deviation, RTO = srtt + 4·rttvar, clamped. Linux's aoe driver uses a
/// gain of 1/256 and starts at an RTO of 16.5 s (reference §3); Plan 9 uses 1/4. Karn's rule
/// (no samples from retransmitted frames) is the caller's job.
///
/// Kept in integer nanoseconds: it is fed on every answer and asked on every frame sent, and
/// `Duration` arithmetic goes through 128-bit multiplication and division (a profile showed
/// ~1,700 instructions per 4 KiB request in it). `Duration` is the interface for everyone else.
public struct RTTEstimator: Sendable, Hashable {
    private var smoothedNanos: Int64?
    private var deviationNanos: Int64 = 0
    private let minimumNanos: Int64
    private let maximumNanos: Int64
    private let initialNanos: Int64

    public var smoothed: Duration? { smoothedNanos.map { .nanoseconds($0) } }
    public var deviation: Duration { .nanoseconds(deviationNanos) }
    public var minimum: Duration { .nanoseconds(minimumNanos) }
    public var maximum: Duration { .nanoseconds(maximumNanos) }

    public init(initial: Duration = .milliseconds(200), minimum: Duration = .milliseconds(5),
                maximum: Duration = .seconds(5)) {
        initialNanos = Int64(clamping: initial.nanoseconds)
        minimumNanos = Int64(clamping: minimum.nanoseconds)
        maximumNanos = Int64(clamping: maximum.nanoseconds)
    }

    /// Feeds one measured round trip.
    public mutating func sample(_ rtt: Duration) { sample(nanoseconds: rtt.nanoseconds) }

    /// Feeds one measured round trip, in nanoseconds.
    public mutating func sample(nanoseconds: UInt64) {
        let rtt = Int64(clamping: nanoseconds)
        guard let s = smoothedNanos else {
            smoothedNanos = rtt
            deviationNanos = rtt / 2
            return
        }
        let err = rtt - s
        smoothedNanos = s + err / 8
        deviationNanos += (abs(err) - deviationNanos) / 4
    }

    /// The current RTO: srtt + 4·rttvar within [minimum, maximum]; `initial` before any sample.
    public var timeout: Duration { .nanoseconds(timeoutNanoseconds) }

    var timeoutNanoseconds: Int64 {
        guard let s = smoothedNanos else { return initialNanos }
        return min(max(s + deviationNanos * 4, minimumNanos), maximumNanos)
    }

    /// The RTO for a frame already retransmitted `retries` times: doubled each time, capped.
    public func timeout(afterRetries retries: Int) -> Duration { .nanoseconds(timeoutNanoseconds(afterRetries: retries)) }

    /// `timeout(afterRetries:)` in nanoseconds, for the per-frame path.
    public func timeoutNanoseconds(afterRetries retries: Int) -> Int64 {
        var t = timeoutNanoseconds
        for _ in 0..<min(retries, 16) where t < maximumNanos { t *= 2 }
        return min(t, maximumNanos)
    }
}

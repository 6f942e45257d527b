/// Round-trip time and retransmission timeout of one path.
///
/// Jacobson & Karels, "Congestion Avoidance and Control" (1988), as in RFC 6298: gains 1/8 for
/// the mean and 1/4 for the deviation, RTO = srtt + 4·rttvar, clamped. Linux's aoe driver uses a
/// gain of 1/256 and starts at an RTO of 16.5 s (reference §3); Plan 9 uses 1/4. Karn's rule
/// (no samples from retransmitted frames) is the caller's job.
///
/// A spurious timeout (the original frame answered after it was resent: every transmission has
/// its own tag, so the late answer is unambiguous) is what a loaded machine or a busy target
/// produces; Eifel (RFC 4015 §2) answers it by taking the late round trip as the new estimate.
/// Here it also raises a floor under the RTO to twice that round trip, which decays by an eighth
/// every `floorDecaySamples` on-time answers, so a stall that repeats is waited out instead of
/// retransmitted, and a stall that does not is forgotten within seconds.
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
    /// The floor that spurious timeouts raised (0: none), and on-time samples since it last moved.
    private var floorNanos: Int64 = 0
    private var samplesSinceFloor = 0
    public static let floorDecaySamples = 2048

    public var smoothed: Duration? { smoothedNanos.map { .nanoseconds($0) } }
    public var deviation: Duration { .nanoseconds(deviationNanos) }
    public var minimum: Duration { .nanoseconds(minimumNanos) }
    public var maximum: Duration { .nanoseconds(maximumNanos) }
    /// No defaults: the path's come from `EngineConfiguration` (initialRTO, minimumRTO,
    /// maximumRTO), the one place they are set.
    public init(initial: Duration, minimum: Duration, maximum: Duration) {
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
        if floorNanos > 0 {
            samplesSinceFloor += 1
            if samplesSinceFloor >= Self.floorDecaySamples {
                samplesSinceFloor = 0
                floorNanos = floorNanos * 7 / 8
                if floorNanos < minimumNanos { floorNanos = 0 }
            }
        }
    }

    /// A frame that timed out was answered after all, `late` after it was sent: the timeout was
    /// spurious. Takes the late round trip as the estimate (RFC 4015's response) and raises the
    /// floor to twice it, so the next stall of that length is waited out.
    public mutating func spuriousTimeout(late: Duration) {
        let rtt = Int64(clamping: late.nanoseconds)
        smoothedNanos = max(smoothedNanos ?? rtt, rtt)
        deviationNanos = max(deviationNanos, rtt / 2)
        floorNanos = min(max(floorNanos, rtt * 2), maximumNanos)
        samplesSinceFloor = 0
    }

    /// The current RTO: srtt + 4·rttvar, at least the spurious-timeout floor, within [minimum, maximum]; `initial` before any sample.
    public var timeout: Duration { .nanoseconds(timeoutNanoseconds) }

    var timeoutNanoseconds: Int64 {
        guard let s = smoothedNanos else { return initialNanos }
        return min(max(s + deviationNanos * 4, minimumNanos, floorNanos), maximumNanos)
    }

    /// The RTO for a frame already retransmitted `retries` times: doubled each time, capped.
    public func timeout(afterRetries retries: Int) -> Duration {
        .nanoseconds(timeoutNanoseconds(afterRetries: retries))
    }

    /// `timeout(afterRetries:)` in nanoseconds, for the per-frame path.
    public func timeoutNanoseconds(afterRetries retries: Int) -> Int64 {
        var t = timeoutNanoseconds
        for _ in 0..<min(retries, 16) where t < maximumNanos { t *= 2 }
        return min(t, maximumNanos)
    }
}

/// Round-trip time and retransmission timeout of one path.
///
/// Jacobson & Karels, "Congestion Avoidance and Control" (1988), as in RFC 6298: gains 1/8 for
/// the mean and 1/4 for the deviation, RTO = srtt + 4·rttvar, clamped. Linux's aoe driver uses a
/// gain of 1/256 and starts at an RTO of 16.5 s (reference §3); Plan 9 uses 1/4. Karn's rule
/// (no samples from retransmitted frames) is the caller's job.
public struct RTTEstimator: Sendable, Hashable {
    public private(set) var smoothed: Duration?
    public private(set) var deviation: Duration = .zero
    public let minimum: Duration
    public let maximum: Duration
    private let initial: Duration

    public init(initial: Duration = .milliseconds(200), minimum: Duration = .milliseconds(5),
                maximum: Duration = .seconds(5)) {
        self.initial = initial
        self.minimum = minimum
        self.maximum = maximum
    }

    /// Feeds one measured round trip.
    public mutating func sample(_ rtt: Duration) {
        guard let s = smoothed else {
            smoothed = rtt
            deviation = rtt / 2
            return
        }
        let err = rtt - s
        let absErr = err < .zero ? .zero - err : err
        smoothed = s + err / 8
        deviation = deviation + (absErr - deviation) / 4
    }

    /// The current RTO: srtt + 4·rttvar within [minimum, maximum]; `initial` before any sample.
    public var timeout: Duration {
        guard let s = smoothed else { return initial }
        return min(max(s + deviation * 4, minimum), maximum)
    }

    /// The RTO for a frame already retransmitted `retries` times: doubled each time, capped.
    public func timeout(afterRetries retries: Int) -> Duration {
        var t = timeout
        for _ in 0..<min(retries, 16) where t < maximum { t = t * 2 }
        return min(t, maximum)
    }
}

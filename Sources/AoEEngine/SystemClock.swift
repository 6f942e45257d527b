import AoECore

/// CLOCK_MONOTONIC through `ContinuousClock`.
public struct SystemClock: EngineClock {
    private let origin = ContinuousClock.now
    public init() {}
    public func now() -> Instant { Instant(nanoseconds: (ContinuousClock.now - origin).nanoseconds + 1) }
}

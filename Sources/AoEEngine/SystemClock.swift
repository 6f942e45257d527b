import AoECore
import AoELinux

/// CLOCK_MONOTONIC, from when the clock was made (so instants are small and never zero).
public struct SystemClock: EngineClock {
    private let origin = monotonicNanoseconds()
    public init() {}
    public func now() -> Instant { Instant(nanoseconds: monotonicNanoseconds() &- origin &+ 1) }
}

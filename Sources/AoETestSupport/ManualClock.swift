import AoECore
import AoEEngine
import AoELinux
import Synchronization

/// Virtual time for the driver's tests (issue 34): an `EngineClock` that moves only when told.
/// The engine's loops then never wait for a deadline on the wall clock; `drive` moves the clock
/// step by step and lets the loops do what each step brought, so a test of minutes of timers
/// runs in a moment and never depends on the machine's speed.
public final class ManualClock: EngineClock, Sendable {
    private let nanos = Atomic<UInt64>(1)
    private let observers = Locked<[@Sendable () -> Void]>([])

    public init() {}

    public var isVirtual: Bool { true }
    public func now() -> Instant { Instant(nanoseconds: nanos.load(ordering: .acquiring)) }
    public func onAdvance(_ body: @escaping @Sendable () -> Void) { observers.withLock { $0.append(body) } }

    /// Moves the time on by `d` and wakes whoever asked to know.
    public func advance(by d: Duration) {
        nanos.add(UInt64(max(0, d.nanoseconds)), ordering: .releasing)
        for o in observers.withLock({ $0 }) { o() }
    }

    /// Moves the clock in `step`s, letting `engine` do what each brought (`Engine.settle`, until
    /// none of `links` holds an answer), until `condition` holds of its targets or `limit` of
    /// virtual time has passed. Returns whether the condition held.
    public func drive(
        _ engine: Engine, links: [MemoryLink], step: Duration = .milliseconds(10), for limit: Duration,
        until condition: ([TargetSnapshot]) -> Bool
    ) -> Bool {
        var elapsed = Duration.zero
        while true {
            engine.settle { links.allSatisfy { $0.queued == 0 } }
            if engine.wait(timeout: .zero, until: condition) { return true }
            if elapsed >= limit { return false }
            advance(by: step)
            elapsed += step
        }
    }

    /// As `drive`, for `limit` of virtual time whatever happens (a test that something does
    /// not happen meanwhile).
    public func pass(_ limit: Duration, _ engine: Engine, links: [MemoryLink], step: Duration = .milliseconds(10)) {
        _ = drive(engine, links: links, step: step, for: limit) { _ in false }
    }
}

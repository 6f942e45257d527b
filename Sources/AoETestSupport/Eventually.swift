import Foundation

/// Checks `condition` until it holds or `timeout` has passed, and returns whether it held (it is
/// checked once more at the end). The one place where tests wait for state outside this process
/// (a name in a mounted directory, a counter in a file, a frame on a socket): that state wakes
/// no one, so it is looked at every `interval`. State inside the engine is waited for with
/// `Engine.wait(timeout:until:)`, which changes wake.
///
/// A negative check (something must *not* happen within a time) is `!eventually(…)`.
@discardableResult
public func eventually(
    timeout: Duration, every interval: Duration = .milliseconds(20),
    _ condition: () throws -> Bool
) rethrows -> Bool {
    let end = ContinuousClock.now + timeout
    while ContinuousClock.now < end {
        if try condition() { return true }
        if interval > .zero {
            let left = end - ContinuousClock.now
            let pause = min(interval, max(left, .zero))
            Thread.sleep(
                forTimeInterval: Double(pause.components.seconds) + Double(pause.components.attoseconds) / 1e18)
        }
    }
    return try condition()
}

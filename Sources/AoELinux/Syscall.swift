import CAoELinux

#if canImport(Glibc)
    import Glibc
#endif

/// Calls `body`, a system call that fails with -1 and errno, again while it fails with EINTR
/// (a signal arrived before it did anything). aoefs's one EINTR loop on the Swift side (the C
/// shim has its own, `AOEL_RETRY`).
@inline(__always)
public func retryingEINTR<T: BinaryInteger>(_ body: () -> T) -> T {
    while true {
        let r = body()
        if r < 0 && errno == EINTR { continue }
        return r
    }
}

/// Waits up to `timeout` (nil: no limit) for `descriptor` to be readable or closed
/// (poll(2)). Returns true if it is, false on timeout or error.
public func waitReadable(_ descriptor: Int32, timeout: Duration?) -> Bool {
    aoel_wait_readable(descriptor, timeout.map(milliseconds) ?? -1) > 0
}

/// Whole milliseconds for poll(2), rounded up so a short wait does not become a busy one.
func milliseconds(_ d: Duration) -> Int32 {
    let (s, atto) = d.components
    if s < 0 || (s == 0 && atto <= 0) { return 0 }
    let ms = s * 1000 + (atto + 999_999_999_999_999) / 1_000_000_000_000_000
    return Int32(clamping: ms)
}

/// CLOCK_MONOTONIC in nanoseconds (a vDSO call): the engine reads it once per batch of frames,
/// and `ContinuousClock.now - origin` would add a `Duration` subtraction and conversion
/// (128-bit arithmetic) each time.
public func monotonicNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
}

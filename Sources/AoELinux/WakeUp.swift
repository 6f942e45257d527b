import CAoELinux

#if canImport(Glibc)
    import Glibc
#endif

/// An eventfd(2) one thread waits on beside its other descriptors and any thread signals: how an
/// event loop is told there is work that is not on its descriptors (shutdown, a link event to
/// apply, a timer made earlier by another thread). Signals before the wait are not lost (the
/// counter stays readable until drained); several signals wake it once.
public final class WakeUp: Sendable {
    /// The descriptor to watch for readability.
    public let descriptor: Int32

    /// - Throws: `ProcessError` when no eventfd can be made (out of descriptors).
    public init() throws(ProcessError) {
        let fd = aoel_eventfd()
        guard fd >= 0 else { throw ProcessError("eventfd: \(String(cString: strerror(-fd)))") }
        descriptor = fd
    }

    deinit { _ = aoel_close(descriptor) }

    /// Wakes the waiting thread (from any thread).
    public func signal() {
        var one: UInt64 = 1
        _ = retryingEINTR { write(descriptor, &one, 8) }
    }

    /// Takes the signals (the waiting thread, after it woke): the descriptor is quiet again.
    public func drain() {
        var count: UInt64 = 0
        _ = retryingEINTR { read(descriptor, &count, 8) }
    }
}

/// Waits up to `timeout` (negative: no limit) for any of `descriptors` (at most 4; -1 entries are
/// ignored) to be readable or closed. Bit i of the result says descriptors[i] is; 0 after the
/// timeout (or an error).
public func waitReadable(any descriptors: [Int32], timeout: Duration) -> UInt32 {
    let ms = timeout < .zero ? -1 : milliseconds(timeout)
    let r = descriptors.withUnsafeBufferPointer { aoel_wait_any($0.baseAddress, Int32($0.count), ms) }
    return r > 0 ? UInt32(r) : 0
}

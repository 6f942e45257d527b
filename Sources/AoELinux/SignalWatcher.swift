import CAoELinux
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Runs a handler on a thread of its own when one of the given signals arrives: the signal's
/// handler only writes to a pipe, which that thread reads (the self-pipe trick), so what the
/// signal means is done as ordinary code and nothing polls a flag.
///
/// One per process at a time (signal dispositions are process-wide).
public final class SignalWatcher: Sendable {
    private let signals: [Int32]

    /// Installs the handlers and starts the thread; `handler` gets each signal's number.
    public init(signals: [Int32] = [SIGINT, SIGTERM, SIGHUP], handler: @escaping @Sendable (Int32) -> Void)
        throws(ProcessError)
    {
        self.signals = signals
        let fd = signals.withUnsafeBufferPointer { aoel_signal_pipe_open($0.baseAddress, Int32($0.count)) }
        guard fd >= 0 else { throw ProcessError("cannot install signal handlers: \(String(cString: strerror(-fd)))") }
        let t = Thread {
            while case let s = aoel_signal_pipe_next(), s > 0 { handler(s) }
        }
        t.name = "aoefs-signals"
        t.stackSize = 1 << 18
        t.start()
    }

    /// Puts the signals back to their default action and ends the thread.
    public func stop() {
        _ = signals.withUnsafeBufferPointer { aoel_signal_pipe_restore($0.baseAddress, Int32($0.count)) }
    }
}

import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A child's stdout and stderr through a pipe: a thread blocked in read(2) appends what comes to
/// a log file and keeps it, so a caller can wait for a line (a target saying it serves) without
/// polling the file.
public final class OutputCapture: Sendable {
    private struct Seen {
        var text = ""
        var closed = false
    }
    /// Give this to the child as stdout and stderr, then call `childStarted()`.
    public let writeEnd: Int32
    private let seen = Locked(Seen())

    /// - Parameter path: the log file, appended to.
    public init(appendingTo path: String) throws(ProcessError) {
        guard let fds = closeOnExecPipe() else { throw ProcessError("pipe: \(String(cString: strerror(errno)))") }
        let log = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard log >= 0 else {
            close(fds[0])
            close(fds[1])
            throw ProcessError("\(path): \(String(cString: strerror(errno)))")
        }
        writeEnd = fds[1]
        let readEnd = fds[0]
        let t = Thread { [seen] in
            var buffer = [UInt8](repeating: 0, count: 4096)
            while case let n = retryingEINTR({ read(readEnd, &buffer, buffer.count) }), n > 0 {
                _ = buffer.withUnsafeBytes { b in retryingEINTR { write(log, b.baseAddress, n) } }
                let chunk = String(decoding: buffer[0..<n], as: UTF8.self)
                seen.withLock { $0.text += chunk }
                seen.broadcast()
            }
            close(readEnd)
            close(log)
            seen.withLock { $0.closed = true }
            seen.broadcast()
        }
        t.name = "aoefs-capture"
        t.stackSize = 1 << 18
        t.start()
    }

    /// Closes this process's copy of the write end, so the pipe ends when the child does.
    public func childStarted() { close(writeEnd) }

    /// Everything captured so far.
    public var text: String { seen.withLock { $0.text } }

    /// Waits up to `timeout` until `needle` has been written. False on timeout, or when the
    /// child closed its output (exited) without writing it.
    public func wait(for needle: String, timeout: Duration) -> Bool {
        seen.wait(timeout: timeout) { $0.text.contains(needle) || $0.closed }
        return text.contains(needle)
    }
}

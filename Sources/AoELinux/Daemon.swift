import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Running as a daemon: `aoefs mount` without `-f` returns once the mount is usable.
public enum Daemon {
    /// Forks; call it before any thread exists. In the parent, waits for the child's one line
    /// and returns nil when the mount is ready, or throws the reason the child gave (or that it
    /// died). In the child, which has left the caller's session, has stdio on /dev/null and
    /// keeps nothing else the caller had open, returns the `Readiness` to report through.
    public static func fork() throws(ProcessError) -> Readiness? {
        // Close-on-exec: libfuse's fusermount3 watchdog (auto_unmount) must not inherit the write end.
        guard let fds = closeOnExecPipe() else { throw ProcessError("pipe: \(String(cString: strerror(errno)))") }
        let pid = Glibc.fork()
        if pid < 0 { throw ProcessError("fork: \(String(cString: strerror(errno)))") }
        if pid > 0 {
            close(fds[1])
            // One line: "ok", or the reason the mount failed.
            var line: [UInt8] = []
            var byte: UInt8 = 0
            while retryingEINTR({ read(fds[0], &byte, 1) }) == 1 && byte != 0x0A { line.append(byte) }
            close(fds[0])
            let text = String(decoding: line, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            if text == "ok" { return nil }
            throw ProcessError(text.isEmpty ? "the daemon died before the mount was ready" : text)
        }
        close(fds[0])
        setsid()
        // A daemon keeps nothing its caller opened: a leaked pipe would keep the caller's reader
        // (a script's `$(aoefs mount …)`) waiting forever.
        for fd in ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []).compactMap({
            Int32($0)
        })
        where fd > 2 && fd != fds[1] {
            close(fd)
        }
        let null = open("/dev/null", O_RDWR)
        dup2(null, 0)
        dup2(null, 1)
        dup2(null, 2)
        if null > 2 { close(null) }
        return Readiness(fds[1])
    }
}

/// The daemon's end of the readiness pipe: one line, "ok" or why the mount failed.
public final class Readiness: Sendable {
    private let fd: Int32
    init(_ fd: Int32) { self.fd = fd }

    /// The mount is usable: the waiting parent returns.
    public func ready() { say("ok") }

    /// The mount failed: the parent prints `reason` and exits non-zero.
    public func failed(_ reason: String) { say(reason) }

    private func say(_ line: String) {
        let bytes = Array((line + "\n").utf8)
        _ = bytes.withUnsafeBytes { b in retryingEINTR { write(fd, b.baseAddress, b.count) } }
        close(fd)
    }
}

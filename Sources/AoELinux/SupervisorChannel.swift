import CAoELinux
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// One end of the channel between a mount's supervisor and its daemon (issue 30): a
/// SOCK_SEQPACKET socketpair (message boundaries kept, EOF when the other process is gone) that
/// carries short text messages, one of which also carries the mount's /dev/fuse descriptor.
///
/// The messages, one line each:
/// - daemon → supervisor: `mount OPTIONS` (ask for the descriptor; the first daemon's mount is
///   made then), `targets e10.3 e10.4` (what a successor must wait for), `ready`, `failed REASON`.
/// - supervisor → daemon: `mounted` or `resumed INCARNATION RESTARTS TARGETS|CAUSE` with the
///   descriptor, `refused REASON`, `handover` (finish what was read, exit 75: a restart).
public final class SupervisorChannel: Sendable {
    /// The socket.
    public let descriptor: Int32
    /// The environment variable that tells a daemon which descriptor is its channel.
    public static let environmentName = "AOEFS_SUPERVISOR_FD"
    /// The descriptor number a daemon finds its channel at.
    public static let daemonDescriptor: Int32 = 3
    /// A daemon's exit status that asks for its successor (a hand-over, not a death).
    public static let handedOverStatus: Int32 = 75

    public init(descriptor: Int32) { self.descriptor = descriptor }

    /// A connected pair, both ends close-on-exec (the child gets its end by dup2).
    public static func pair() throws(ProcessError) -> (SupervisorChannel, SupervisorChannel) {
        var fds: [Int32] = [-1, -1]
        let r = aoel_seqpacket_pair(&fds, 1)
        guard r == 0 else { throw ProcessError("socketpair: \(String(cString: strerror(-r)))") }
        return (SupervisorChannel(descriptor: fds[0]), SupervisorChannel(descriptor: fds[1]))
    }

    /// The channel this process was started with, if a supervisor started it.
    public static func inherited() -> SupervisorChannel? {
        guard let v = ProcessInfo.processInfo.environment[environmentName], let fd = Int32(v), fd >= 0,
            fcntl(fd, F_GETFD) >= 0
        else { return nil }
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)  // not to the daemon's own children (fusermount3, …)
        unsetenv(environmentName)
        return SupervisorChannel(descriptor: fd)
    }

    /// Sends `text` (one message) and `fd` with it when not negative; false if the other end is gone.
    @discardableResult
    public func send(_ text: String, descriptor fd: Int32 = -1) -> Bool {
        let bytes = Array(text.utf8.prefix(Self.maximumMessage))
        return bytes.withUnsafeBytes { b in aoel_send_message(descriptor, b.baseAddress, b.count, fd) } >= 0
    }

    /// Waits for one message; nil once the other end is gone (or the socket failed).
    public func receive() -> (text: String, descriptor: Int32?)? {
        var buffer = [UInt8](repeating: 0, count: Self.maximumMessage)
        var fd: Int32 = -1
        let n = buffer.withUnsafeMutableBytes { b in aoel_receive_message(descriptor, b.baseAddress, b.count, &fd) }
        guard n > 0 else {
            if fd >= 0 { Glibc.close(fd) }
            return nil
        }
        return (String(decoding: buffer[0..<Int(n)], as: UTF8.self), fd >= 0 ? fd : nil)
    }

    public func close() { _ = aoel_close(descriptor) }

    static let maximumMessage = 64 * 1024
}

/// A pidfd: readable once the process has exited.
public func processExitDescriptor(_ pid: pid_t) -> Int32 { aoel_pidfd_open(pid) }

/// A crash signal ends this process once the Swift runtime's backtracer has printed its trace,
/// also when another process sent it (`kill -ABRT`), which the backtracer alone survives: a
/// supervised daemon must die so that its successor takes over.
public func dieAfterCrashHandlers() {
    let signals: [Int32] = [SIGQUIT, SIGABRT, SIGBUS, SIGFPE, SIGILL, SIGSEGV, SIGTRAP]
    _ = signals.withUnsafeBufferPointer { aoel_die_after_crash_handlers($0.baseAddress, Int32($0.count)) }
}

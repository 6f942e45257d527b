import CAoELinux
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A child process started with `posix_spawnp`, with an empty signal mask and every signal at
/// its default action.
///
/// Why not Foundation's `Process`: a child inherits its parent thread's signal mask and ignored
/// signals, and tests spawn from Swift's pool threads, which block SIGINT and SIGTERM. A vblade
/// started that way ignores SIGTERM, and an aoe-lab ignores Ctrl-C.
public final class ChildProcess: Sendable {
    public let pid: pid_t
    public let argv: [String]
    /// The raw wait status, once reaped.
    private let status = Locked<Int32?>(nil)

    /// Starts `argv[0]` (looked up in PATH) with `argv`.
    /// - Parameters:
    ///   - stdin, stdout, stderr: file descriptors for the child (nil: /dev/null).
    ///   - ownProcessGroup: the child gets a process group of its own, so a Ctrl-C in the
    ///     terminal reaches only us, and we end it in our order (the demo's target).
    ///   - inherit: more descriptors for the child, each `source` as `target` (the supervisor's
    ///     channel to its daemon).
    ///   - environment: variables set for the child on top of ours (`NAME=value`).
    public init(
        _ argv: [String], stdin: Int32? = nil, stdout: Int32? = nil, stderr: Int32? = nil,
        ownProcessGroup: Bool = false, inherit: [(source: Int32, target: Int32)] = [],
        environment: [String] = []
    ) throws {
        self.argv = argv
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        for (fd, target) in [(stdin, Int32(0)), (stdout, 1), (stderr, 2)] {
            if let fd {
                posix_spawn_file_actions_adddup2(&actions, fd, target)
            } else {
                posix_spawn_file_actions_addopen(&actions, target, "/dev/null", target == 0 ? O_RDONLY : O_WRONLY, 0)
            }
        }
        for (source, target) in inherit { posix_spawn_file_actions_adddup2(&actions, source, target) }
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        var empty = sigset_t()
        sigemptyset(&empty)
        var all = sigset_t()
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attr, &empty)
        posix_spawnattr_setsigdefault(&attr, &all)
        if ownProcessGroup { posix_spawnattr_setpgroup(&attr, 0) }
        posix_spawnattr_setflags(
            &attr,
            Int16(
                POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF
                    | (ownProcessGroup ? POSIX_SPAWN_SETPGROUP : 0)))
        var cargs = argv.map { strdup($0) } + [nil]
        defer { for p in cargs { free(p) } }
        var pid: pid_t = 0
        let names = Set(environment.compactMap { $0.split(separator: "=", maxSplits: 1).first.map(String.init) })
        var env: [UnsafeMutablePointer<CChar>?] = environment.map { strdup($0) }
        var p = environ
        while let e = p.pointee {
            let entry = String(cString: e)
            if !names.contains(String(entry.split(separator: "=", maxSplits: 1).first ?? "")) { env.append(strdup(e)) }
            p += 1
        }
        env.append(nil)
        defer { for e in env { free(e) } }
        let r = posix_spawnp(&pid, argv[0], &actions, &attr, &cargs, &env)
        guard r == 0 else { throw ProcessError("cannot start \(argv[0]): \(String(cString: strerror(r)))") }
        self.pid = pid
    }

    /// True until the process has exited (and been reaped by us).
    public var isRunning: Bool {
        status.withLock { status in
            if status != nil { return false }
            var s: Int32 = 0
            let r = waitpid(pid, &s, WNOHANG)
            if r == pid { status = s }
            return r == 0
        }
    }

    /// Sends `sig` if the process still runs.
    public func signal(_ sig: Int32) { if isRunning { kill(pid, sig) } }

    /// Waits for exit; returns the raw wait status.
    @discardableResult
    public func wait() -> Int32 {
        status.withLock { status in
            if let status { return status }
            var s: Int32 = 0
            _ = retryingEINTR { waitpid(pid, &s, 0) }
            status = s
            return s
        }
    }

    /// Waits up to `limit`; true if it exited (it is then reaped).
    public func wait(upTo limit: Duration) -> Bool {
        guard isRunning else { return true }
        _ = aoel_wait_exit(pid, milliseconds(limit))
        return !isRunning
    }

    /// The exit code, or nil if it was killed by a signal (or still runs).
    public var exitCode: Int32? {
        guard !isRunning, let s = status.withLock({ $0 }) else { return nil }
        return s & 0x7F == 0 ? (s >> 8) & 0xFF : nil
    }

    /// The signal that ended it, or nil.
    public var terminatingSignal: Int32? {
        guard !isRunning, let s = status.withLock({ $0 }) else { return nil }
        return s & 0x7F != 0 ? s & 0x7F : nil
    }
}

/// True when `pid` no longer runs: gone, or a zombie nobody has reaped yet (a process whose
/// parent died is reaped by init, which in a container may never happen).
public func processIsGone(_ pid: pid_t) -> Bool {
    if kill(pid, 0) != 0 { return true }
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
        let close = stat.lastIndex(of: ")")
    else { return true }
    return stat[stat.index(close, offsetBy: 2)] == "Z"
}

/// A process could not be started (or a pipe or temporary file for it made), in one line.
public struct ProcessError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// pipe(2) with both ends close-on-exec, so no child but the one given an end (by dup2, which
/// clears the flag on the copy) inherits it: a leaked write end keeps a reader waiting forever.
/// - Returns: `[read, write]`, or nil on failure (errno says why).
public func closeOnExecPipe() -> [Int32]? {
    // pipe2 sets the flag atomically: a child spawned by another thread in between a pipe() and
    // an fcntl() would otherwise inherit both ends.
    var fds: [Int32] = [0, 0]
    guard aoel_pipe_cloexec(&fds) == 0 else { return nil }
    return fds
}

import AoECore
import AoELinux
import CAoELinux
import CFuse3
import Foundation

/// The process that keeps a mount alive when its daemon dies (issue 30).
///
/// A FUSE connection lives as long as someone holds its /dev/fuse descriptor. The supervisor
/// holds it — and libfuse's session, whose auto_unmount watchdog unmounts once the supervisor is
/// gone — and does nothing risky: no engine, no frames, no requests. It starts the daemon (this
/// binary, from its path on disk, so an upgraded binary is the one started), hands it the
/// descriptor over a socketpair (`SupervisorChannel`), and when the daemon dies starts another,
/// which finds its targets again and has the kernel resend what was in flight
/// (FUSE_NOTIFY_RESEND). Writers see a pause, not an error; dirty pages wait in the kernel.
///
/// - A daemon that exits 0 ended the mount (unmounted, or stopped by a signal): so does this.
/// - One that exits `SupervisorChannel.handedOverStatus` was asked to hand over (SIGHUP here,
///   `aoefs restart`): its successor starts at once, not counted as a death.
/// - Any other end is a death: `RestartPolicy` says when to start the next, or (a crash loop)
///   to unmount and exit 1 with one line saying why.
/// - SIGTERM and SIGINT are passed to the daemon, which drains and unmounts; SIGHUP asks it to
///   hand over.
public final class Supervisor {
    /// What the supervisor runs and says.
    public struct Settings: Sendable {
        public var mountpoint: String
        /// The daemon's program and arguments (`aoefs mount …` as the user gave them).
        public var executable: String
        public var arguments: [String]
        /// Variables for every daemon (`NAME=value`).
        public var environment: [String]
        public var policy: RestartPolicy

        public init(
            mountpoint: String, executable: String, arguments: [String], environment: [String] = [],
            policy: RestartPolicy = RestartPolicy()
        ) {
            self.mountpoint = mountpoint
            self.executable = executable
            self.arguments = arguments
            self.environment = environment
            self.policy = policy
        }
    }

    private var settings: Settings
    private let readiness: Readiness?
    private let log: (String) -> Void
    private let clock = ContinuousClock()
    private let origin = ContinuousClock.now

    private var session: OpaquePointer?
    private var child: ChildProcess?
    private var channel: SupervisorChannel?
    private var exitWatch: Int32 = -1
    private var incarnation = 0
    private var handovers = 0
    private var everReady = false
    private var stopping = false
    private var handingOver = false
    private var failure: String?
    private var previousEnd = ""
    private var targets = ""
    /// When the daemon that is being replaced stopped serving (for the pause in the log).
    private var pausedSince: ContinuousClock.Instant?

    /// - Parameters:
    ///   - readiness: where `aoefs mount` (daemonised) waits for "the mount is usable".
    ///   - log: one line at a time (stderr in the foreground, syslog in a daemon).
    public init(_ settings: Settings, readiness: Readiness?, log: @escaping (String) -> Void) {
        self.settings = settings
        self.readiness = readiness
        self.log = log
    }

    /// Runs until the mount ends; returns the exit status for this process.
    public func run() -> Int32 {
        let signals: [Int32] = [SIGTERM, SIGINT, SIGHUP]
        let signalPipe = signals.withUnsafeBufferPointer { aoel_signal_pipe_open($0.baseAddress, Int32($0.count)) }
        guard signalPipe >= 0 else { return fail("cannot install signal handlers") }
        defer { _ = signals.withUnsafeBufferPointer { aoel_signal_pipe_restore($0.baseAddress, Int32($0.count)) } }
        if let problem = spawn() { return fail(problem) }
        while true {
            let fds: [Int32] = [signalPipe, channel?.descriptor ?? -1, exitWatch]
            let ready = fds.withUnsafeBufferPointer { aoel_wait_any($0.baseAddress, 3, -1) }
            if ready < 0 { return fail("poll: \(String(cString: strerror(-ready)))") }
            if ready & 1 != 0 { signal(aoel_signal_pipe_next()) }
            if ready & 2 != 0 { message() }
            if ready & 4 != 0, let status = reap() { return status }
        }
    }

    // MARK: - Events

    private func signal(_ s: Int32) {
        switch s {
        case SIGTERM, SIGINT:
            stopping = true
            if let child { kill(child.pid, SIGTERM) }
        case SIGHUP:
            guard everReady, let channel, !handingOver else { return }
            handingOver = true
            log("aoefs: \(settings.mountpoint): restart asked for: the daemon hands over to a new one")
            channel.send("handover")
        default: break
        }
    }

    private func message() {
        guard let channel else { return }
        guard let m = channel.receive() else {
            // The daemon's end closed: it is exiting; its exit is reaped through `exitWatch`.
            channel.close()
            self.channel = nil
            return
        }
        if let fd = m.descriptor { close(fd) }  // daemons send none
        let fields = m.text.split(separator: "\t", omittingEmptySubsequences: false)
        switch fields.first {
        case "mount"?:
            answerMount(options: fields.count > 1 ? String(fields[1]) : "")
        case "targets"?:
            targets = fields.count > 1 ? String(fields[1]) : ""
        case "ready"?:
            if !everReady {
                everReady = true
                readiness?.ready()
            }
            if let since = pausedSince {
                let ms = (ContinuousClock.now - since).milliseconds
                log(
                    "aoefs: \(settings.mountpoint): daemon \(incarnation) (pid \(child?.pid ?? 0)) serves the live mount; "
                        + "requests waited \(ms) ms")
                pausedSince = nil
            }
        case "failed"?:
            failure = fields.dropFirst().joined(separator: " ")
        default:
            log("aoefs: \(settings.mountpoint): the daemon said something unknown: \(m.text.prefix(80))")
        }
    }

    /// The first daemon's mount is made now; later daemons get the live mount's descriptor.
    private func answerMount(options: String) {
        guard let channel else { return }
        let counts = "\(incarnation)\t\(settings.policy.totalDeaths)\t\(handovers)\t\(targets)\t\(previousEnd)"
        if let session {
            channel.send("resumed\t" + counts, descriptor: fuse_session_fd(session))
            return
        }
        do {
            session = try AoEFileSystem.makeSession(mountpoint: settings.mountpoint, options: options)
            channel.send("mounted\t" + counts, descriptor: fuse_session_fd(session))
        } catch {
            channel.send("refused\t\(error)")
        }
    }

    /// The daemon exited: ends the run (its status) or starts the next daemon (nil).
    private func reap() -> Int32? {
        guard let child else { return nil }
        let status = child.wait()
        close(exitWatch)
        exitWatch = -1
        channel?.close()
        channel = nil
        self.child = nil
        let code = status & 0x7F == 0 ? (status >> 8) & 0xFF : -1
        let cause = Self.describe(status)
        if stopping || code == 0 {
            finish(unmount: session != nil && code != 0)
            return code == 0 || stopping ? 0 : 1
        }
        if code == SupervisorChannel.handedOverStatus && handingOver {
            handingOver = false
            handovers += 1
            previousEnd = "handed over on request"
            pausedSince = .now
            return spawn().map(fail)
        }
        handingOver = false
        guard everReady, session != nil else {
            let reason = failure ?? "the daemon \(cause) before the mount was ready"
            finish(unmount: session != nil)
            readiness?.failed(reason)
            if readiness == nil { log("aoefs: \(reason)") }
            return 1
        }
        pausedSince = pausedSince ?? .now
        previousEnd = cause
        let now = Instant(nanoseconds: (ContinuousClock.now - origin).nanoseconds)
        switch settings.policy.died(now: now) {
        case .restart(let pause):
            log(
                "aoefs: \(settings.mountpoint): daemon \(incarnation) \(cause); starting another under the live mount"
                    + (pause > .zero ? " in \(pause.milliseconds) ms" : ""))
            if pause > .zero { Thread.sleep(forTimeInterval: Double(pause.nanoseconds) / 1e9) }
            return spawn().map(fail)
        case .giveUp(let deaths, let window):
            log(
                "aoefs: \(settings.mountpoint): the daemon died \(deaths) times within \(window.milliseconds / 1000) s "
                    + "(last: \(cause)); unmounted")
            finish(unmount: true)
            return 1
        }
    }

    // MARK: - Daemons

    /// Starts the next daemon; returns why it could not.
    private func spawn() -> String? {
        incarnation += 1
        let pair: (SupervisorChannel, SupervisorChannel)
        do { pair = try SupervisorChannel.pair() } catch { return "\(error)" }
        defer { pair.1.close() }
        let fd = SupervisorChannel.daemonDescriptor
        let env =
            settings.environment + ["\(SupervisorChannel.environmentName)=\(fd)", "AOEFS_INCARNATION=\(incarnation)"]
        do {
            child = try ChildProcess(
                [settings.executable] + settings.arguments, stdout: 1, stderr: 2,
                inherit: [(pair.1.descriptor, fd)], environment: env)
        } catch {
            pair.0.close()
            return "\(error)"
        }
        channel = pair.0
        exitWatch = processExitDescriptor(child!.pid)
        guard exitWatch >= 0 else { return "pidfd_open: \(String(cString: strerror(-exitWatch)))" }
        return nil
    }

    /// Unmounts (when the daemon could not) and lets go of the session.
    private func finish(unmount: Bool) {
        guard let se = session else { return }
        if unmount { _ = aoefs_umount_detach(settings.mountpoint) }
        // Closes /dev/fuse (the connection ends: anything still waiting gets ENOTCONN) and
        // fusermount3's socket (its watchdog finds nothing left to unmount).
        fuse_session_destroy(se)
        session = nil
    }

    private func fail(_ problem: String) -> Int32 {
        if let child {
            kill(child.pid, SIGTERM)
            child.wait()
        }
        finish(unmount: true)
        if everReady { log("aoefs: \(settings.mountpoint): \(problem)") } else { readiness?.failed(problem) }
        if readiness == nil { log("aoefs: \(problem)") }
        return 1
    }

    /// "exited with status 3", "was killed by signal 9 (SIGKILL)".
    static func describe(_ status: Int32) -> String {
        if status & 0x7F == 0 { return "exited with status \((status >> 8) & 0xFF)" }
        let s = status & 0x7F
        let name =
            [
                SIGKILL: "SIGKILL", SIGABRT: "SIGABRT", SIGSEGV: "SIGSEGV", SIGILL: "SIGILL (a trap)",
                SIGTRAP: "SIGTRAP (a trap)", SIGBUS: "SIGBUS", SIGTERM: "SIGTERM", SIGINT: "SIGINT",
                SIGFPE: "SIGFPE",
            ][s] ?? "signal \(s)"
        return "was killed by signal \(s) (\(name))"
    }
}

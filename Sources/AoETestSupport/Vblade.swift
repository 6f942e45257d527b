import AoELinux
import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A vblade process (the Debian package's AoE target) serving a file in a lab namespace.
///
/// Started through `nsenter --net`, which execs vblade in place, so the PID we hold is
/// vblade's own: we stop only what we started, by PID.
public final class Vblade: @unchecked Sendable {
    // @unchecked: `process` is guarded by `lock`.
    public let namespace: String?
    public let arguments: [String]
    /// `["vblade"]` or `["/…/aoefs", "serve"]`.
    public let program: [String]
    private unowned let lab: Lab
    private let lock = Locked<ChildProcess?>(nil)
    private let logURL: URL

    init(lab: Lab, namespace: String?, program: [String] = ["vblade"], arguments: [String]) {
        self.lab = lab
        self.program = program
        self.namespace = namespace
        self.arguments = arguments
        self.logURL = lab.directory.appendingPathComponent("vblade-\(UUID().uuidString.prefix(8)).log")
    }

    /// The running process's PID, or nil.
    public var pid: Int32? { lock.withLock { p in p.flatMap { $0.isRunning ? $0.pid : nil } } }

    /// True while the process runs.
    public var isRunning: Bool { pid != nil }

    /// What vblade printed.
    public var log: String { (try? String(contentsOf: logURL, encoding: .utf8)) ?? "" }

    /// Starts vblade and waits (up to 5 s) until it has opened its file and socket.
    public func start() throws {
        let capture: OutputCapture? = try lock.withLock { (current: inout ChildProcess?) throws -> OutputCapture? in
            if let p = current, p.isRunning { return nil }
            // The log is appended to across restarts; this start waits for its own output.
            let capture = try OutputCapture(appendingTo: logURL.path)
            defer { capture.childStarted() }
            // nsenter --net, not `ip netns exec`: the latter also makes a private mount namespace
            // holding a copy of every mount, so a FUSE mount made before vblade started would
            // outlive its unmount (the daemon never sees the connection close) until vblade exits.
            let enter = namespace.map { ["nsenter", "--net=/run/netns/\($0)"] } ?? []
            let p = try ChildProcess(enter + program + arguments, stdout: capture.writeEnd, stderr: capture.writeEnd)
            lab.ledger.record(.process(p.pid))
            current = p
            return capture
        }
        guard let capture else { return }
        // vblade prints "pid N: eS.L, N sectors O_RDWR" once it serves (vblade.c main); so does
        // `aoefs serve`.
        if capture.wait(for: "sectors", timeout: .seconds(5)) { return }
        if !isRunning { throw LabError("vblade \(arguments.joined(separator: " ")) exited: \(log)") }
        throw LabError("vblade \(arguments.joined(separator: " ")) did not start within 5 s: \(log)")
    }

    /// Kills vblade with SIGKILL (a target crash) and waits for it to exit.
    public func kill() {
        lock.withLock { current in
            guard let p = current else { return }
            p.signal(SIGKILL)
            p.wait()
            current = nil
        }
    }

    /// Stops vblade: SIGTERM, then SIGKILL after a second.
    public func stop() {
        lock.withLock { current in
            guard let p = current else { return }
            p.signal(SIGTERM)
            if !p.wait(upTo: .seconds(1)) { p.signal(SIGKILL) }
            p.wait()
            current = nil
        }
    }

    /// Starts vblade again with the same arguments (a target coming back after a crash).
    public func restart() throws {
        kill()
        try start()
    }
}

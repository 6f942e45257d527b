import AoECore
import AoEEngine
import AoEFUSE
import AoELinux
import ArgumentParser
import Foundation

struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Try aoefs with nothing to set up: a private network, a built-in target and a mount.",
        discussion: """
            Creates a private network namespace joined to this one by a veth pair (MTU
            9000), starts `aoefs serve` there on a sparse file (target e10.3), and mounts
            the tree (default ./aoe-demo). It then prints what to try, and removes
            everything it made (mount, target, namespace, links, file) on Ctrl-C.

            With `-- COMMAND`, it runs COMMAND against the mount instead (AOEFS_MOUNT names
            the mountpoint, AOEFS_IFACE the veth on this side), tears everything down when
            it finishes, and exits with its status. Needs root; needs nothing but this
            binary, libfuse3 and iproute2.

            Examples:
              sudo aoefs demo
              sudo aoefs demo -- sh -c 'dd if=/dev/zero of=aoe-demo/e10.3 bs=1M count=64 \\
                  oflag=direct conv=notrunc; cat aoe-demo/sys/e10.3/stats'
            """)

    @Option(name: .customLong("mount"), help: ArgumentHelp("Where to mount (created if missing).", valueName: "DIR"))
    var mountpoint = "./aoe-demo"

    @Option(help: "Size of the demo disk (sparse): 64M, 1G, …")
    var size = "1G"

    @Flag(name: .shortAndLong, help: "-v shows the engine's diagnostics, -vv also settings.")
    var verbose: Int

    @Argument(parsing: .postTerminator, help: "A command to run against the mount (after --).")
    var command: [String] = []

    func validate() throws {
        guard let s = parseSize(size), s >= 1 << 20 else {
            throw ValidationError("--size: give at least 1M (e.g. 64M, 1G)")
        }
    }

    func run() throws {
        guard geteuid() == 0 else {
            throw CLIError("the demo needs root (network namespaces, raw Ethernet, FUSE): sudo aoefs demo")
        }
        for tool in ["ip", "nsenter"] where !Command.exists(tool) {
            throw CLIError(
                "the demo needs `\(tool)` (Debian: apt-get install \(tool == "ip" ? "iproute2" : "util-linux"))")
        }
        Log.setUp(verbosity: verbose)
        // Ctrl-C works from here on, before anything is made: it cancels the start (each step
        // checks) or ends serving, and the teardown below removes what was made either way.
        let setupHolder = Locked<DemoSetup?>(nil)
        let early = Locked(false)
        let signals: SignalWatcher
        do {
            signals = try SignalWatcher { _ in
                if let s = setupHolder.withLock({ $0 }) { s.cancel() } else { early.withLock { $0 = true } }
            }
        } catch { throw CLIError("\(error)") }
        defer { signals.stop() }
        DemoSetup.sweepStale()
        let setup = try DemoSetup(size: parseSize(size)!, mountpoint: mountpoint)
        defer { setup.tearDown() }
        setupHolder.withLock { $0 = setup }
        if early.withLock({ $0 }) { setup.cancel() }
        try setup.start()
        let status = try setup.serve(command: command)
        if status != 0 { throw ExitCode(status) }
    }
}

/// Everything the demo makes, and its removal. Names are 8 letters (the namespace and links add
/// one) starting `aoed`, or with what `AOEFS_DEMO_PREFIX` says (4–5 lowercase letters starting
/// `aoe`): the test suite runs the demo with `aoetd`, inside `aoet`, its devices' prefix.
final class DemoSetup: @unchecked Sendable {
    // @unchecked: used from the main thread; `target` and `engine` are set in `start` and read
    // afterwards; the signal thread and the child waiter only touch `cancelled` and `session`
    // (each behind its lock) and call `session.stop()`, which is thread-safe.
    let name: String
    let namespace: String
    let localLink: String
    let remoteLink: String
    let ledger: ResourceLedger
    let file: String
    let mountpoint: String
    let size: UInt64
    private var createdMountpoint = false
    private var target: ChildProcess?
    private var engine: Engine?
    private let session = Locked<MountSession?>(nil)
    /// Set by Ctrl-C (SIGINT, SIGTERM, SIGHUP): the start stops at its next step.
    private let cancelled = Locked(false)

    static let base = "/tmp"
    /// How the demo's namespace, links and directory begin.
    static let namePrefix: String = {
        let p = ProcessInfo.processInfo.environment["AOEFS_DEMO_PREFIX"] ?? ""
        return (4...5).contains(p.count) && p.hasPrefix("aoe") && p.allSatisfy({ ("a"..."z").contains($0) })
            ? p : "aoed"
    }()
    static var prefix: String { "aoefs-demo-" + namePrefix }

    init(size: UInt64, mountpoint: String) throws {
        let letters = Array("abcdefghijklmnopqrstuvwxyz0123456789")
        name = Self.namePrefix + String((0..<(8 - Self.namePrefix.count)).map { _ in letters.randomElement()! })
        namespace = name + "t"
        localLink = name + "i"
        remoteLink = name + "t"
        ledger = try ResourceLedger(directory: "\(Self.base)/aoefs-demo-\(name)")
        file = ledger.directory + "/disk.img"
        self.size = size
        self.mountpoint = URL(fileURLWithPath: mountpoint).standardizedFileURL.path
    }

    /// Ctrl-C: stops the start at its next step, or ends serving; a second one stops waiting
    /// for I/O the target does not answer.
    func cancel() {
        let again = cancelled.withLock { c in
            defer { c = true }; return c
        }
        cancelled.broadcast()  // a step whose command died of the same Ctrl-C waits for this
        if again { session.withLock { $0 }?.hurry() } else { session.withLock { $0 }?.stop() }
    }

    private func checkCancelled() throws {
        if cancelled.withLock({ $0 }) { throw ExitCode(130) }
    }

    /// Network, file, engine, target, mount.
    func start() throws {
        ledger.record(.namespace(namespace))
        try checkCancelled()
        try run(["ip", "netns", "add", namespace])
        ledger.record(.link(localLink))
        try run([
            "ip", "link", "add", localLink, "mtu", "9000", "type", "veth", "peer", "name", remoteLink, "mtu", "9000",
            "netns", namespace,
        ])
        try run(["ip", "link", "set", localLink, "up"])
        try run(["ip", "-n", namespace, "link", "set", remoteLink, "up"])
        try run(["ip", "-n", namespace, "link", "set", "lo", "up"])
        try checkCancelled()
        guard FileManager.default.createFile(atPath: file, contents: nil), truncate(file, off_t(size)) == 0 else {
            throw CLIError("\(file): cannot create the demo disk: \(String(cString: strerror(errno)))")
        }
        var isDir: ObjCBool = false
        if !FileManager.default.fileExists(atPath: mountpoint, isDirectory: &isDir) {
            try FileManager.default.createDirectory(atPath: mountpoint, withIntermediateDirectories: true)
            createdMountpoint = true
        } else if !isDir.boolValue {
            throw CLIError("\(mountpoint): not a directory")
        }
        let link: PacketLink
        do { link = try PacketLink(interface: localLink) } catch { throw CLIError("\(error)") }
        let engine = Engine(links: [link], onLog: { line in Log.logger.info("\(line)") })
        self.engine = engine
        engine.start()
        // The target: this very binary, as `aoefs serve`, inside the namespace. It says
        // "… sectors …" once it serves.
        let exe = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path
        let output = try OutputCapture(appendingTo: ledger.directory + "/target.log")
        let target = try ChildProcess(
            ["nsenter", "--net=/run/netns/\(namespace)", exe, "serve", "-v", "10", "3", remoteLink, file],
            stdout: output.writeEnd, stderr: output.writeEnd, ownProcessGroup: true)
        output.childStarted()
        ledger.record(.process(target.pid))
        self.target = target
        let started = output.wait(for: "sectors", timeout: .seconds(5))
        try checkCancelled()
        guard started else { throw CLIError("the demo target did not start: \(output.text)") }
        let session = MountSession(engine: engine, mountpoint: mountpoint)
        self.session.withLock { $0 = session }
        // A Ctrl-C from here on reaches the session through `cancel`, which stops it; its start
        // then ends early, or its serving ends at once.
        do { try session.start(settle: .seconds(5), handleSignals: false) } catch {
            try checkCancelled()
            throw CLIError("\(error)")
        }
        if cancelled.withLock({ $0 }) { session.stop() }
    }

    /// Serves until Ctrl-C, or runs `command` against the mount; returns the exit status.
    func serve(command: [String]) throws -> Int32 {
        guard let session = session.withLock({ $0 }) else { return 1 }
        if command.isEmpty {
            let rel = Self.relative(mountpoint)
            let aoefs = Self.commandName()
            FileHandle.standardOutput.write(
                Data(
                    """
                    aoefs demo: target e10.3 (a \(size >> 20) MiB sparse file, \(file)) is served by `aoefs serve` in
                    network namespace \(namespace), reached over veth \(localLink) (MTU 9000), and mounted at \(mountpoint).

                    Try, in another terminal:
                      ls \(rel)
                      \(aoefs) stat \(rel)
                      cat \(rel)/sys/e10.3/stats
                      dd if=/dev/zero of=\(rel)/e10.3 bs=1M count=256 oflag=direct conv=notrunc
                      losetup -fP --show \(rel)/e10.3        # then mkfs.ext4 /dev/loopN, mount it, …; losetup -d /dev/loopN
                      fstrim -v /where/you/mounted/it         # deleted files' space leaves the sparse file: du -h \(file)
                      cat \(rel)/etherd/err                  # blocks until something happens

                    Ctrl-C ends the demo and removes everything it made.

                    """.utf8))
            session.serve()
            session.finish()
            return 0  // Ctrl-C is how this mode ends
        }
        setenv("AOEFS_MOUNT", mountpoint, 1)
        setenv("AOEFS_IFACE", localLink, 1)
        let child: ChildProcess
        do { child = try ChildProcess(command, stdin: 0, stdout: 1, stderr: 2) } catch {
            session.stop()
            session.serve()
            session.finish()
            throw CLIError("\(command[0]): \(error)")
        }
        // Serve until the command ends (its waiter stops the session) or Ctrl-C ends serving
        // (then the command is asked to stop).
        let waiterDone = Locked(false)
        let waiter = Thread {
            child.wait()
            session.stop()
            waiterDone.withLock { $0 = true }
            waiterDone.broadcast()
        }
        waiter.name = "aoefs-demo-child"
        waiter.start()
        session.serve()
        if child.isRunning {
            child.signal(SIGTERM)
            if !child.wait(upTo: .seconds(3)) { child.signal(SIGKILL) }
        }
        child.wait()
        waiterDone.wait(timeout: nil) { $0 }  // its stop() is done before the session goes
        session.finish()
        if let s = child.terminatingSignal { return 128 + s }
        return child.exitCode ?? 1
    }

    /// Removes what was made, in reverse order; safe to call after a partial start.
    func tearDown() {
        engine?.shutdown()
        if let t = target {
            t.signal(SIGTERM)
            if !t.wait(upTo: .seconds(2)) { t.signal(SIGKILL) }
            t.wait()
        }
        ledger.releaseAll()
        if createdMountpoint { rmdir(mountpoint) }
    }

    /// `path` as the user would type it from the current directory: relative when it lies below
    /// it. Pure string work: nothing here may stat the mountpoint (Foundation's URL(fileURLWithPath:)
    /// would, to learn whether it is a directory).
    static func relative(_ path: String) -> String {
        let cwd = FileManager.default.currentDirectoryPath
        let base = cwd.hasSuffix("/") ? cwd : cwd + "/"
        return path.hasPrefix(base) && path.count > base.count ? String(path.dropFirst(base.count)) : path
    }

    /// How to run this binary from the current directory: `aoefs` when that name on PATH is this
    /// very file, else its path (after `make demo` it is .build/release/aoefs).
    static func commandName() -> String {
        let me = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? "aoefs"
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":") {
            let candidate = "\(dir)/aoefs"
            if access(candidate, X_OK) == 0 {
                let real = realpath(candidate, nil).map { p in
                    defer { free(p) }; return String(cString: p)
                }
                return real == me ? "aoefs" : relative(me)
            }
        }
        return relative(me)
    }

    private func run(_ argv: [String]) throws {
        do { _ = try Command.run(argv) } catch {
            // The terminal's Ctrl-C reaches the command too, and it may die of it before our
            // signal thread has marked the start cancelled: give that thread a moment to say so.
            _ = cancelled.wait(timeout: .seconds(1)) { $0 }
            try checkCancelled()
            throw CLIError("\(error)")
        }
    }

    /// Removes what demos killed with SIGKILL left: their target, namespace and links (the
    /// mount went with fusermount3's auto_unmount watchdog).
    static func sweepStale() { ResourceLedger.sweep(base: base, prefix: prefix) }
}

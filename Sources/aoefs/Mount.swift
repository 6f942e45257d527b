import AoECore
import AoEEngine
import AoEFUSE
import AoELinux
import AoEProtocol
import ArgumentParser
import Foundation

struct Mount: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Discover AoE targets and serve them as files under MOUNTPOINT.",
        discussion: """
            Each target appears as a raw image, MOUNTPOINT/eS.L (shelf S, slot L), beside
            sys/eS.L/ (state, mac, netif, fwver, payload, ident, config, paths, stats,
            conf) and etherd/ (discover, interfaces, err, revalidate, flush, disable,
            enable, probe). Without -f the command returns once the mount is usable and a
            daemon serves it; unmount with `fusermount3 -u MOUNTPOINT` or `umount
            MOUNTPOINT`.

            Partitions (MBR primaries and logicals, GPT) appear as eS.LpN beside the image,
            with sys/eS.LpN/ (start, size, type, name); a table written with sfdisk, sgdisk
            or fdisk on eS.L is read again when that file is closed, and on revalidate.

            Examples:
              aoefs mount /mnt/aoe --iface eth1
              dd if=/mnt/aoe/e10.3 of=/dev/null bs=1M
              cat /mnt/aoe/sys/e10.3/stats
              sfdisk /mnt/aoe/e10.3 < layout && mkfs.ext4 /mnt/aoe/e10.3p1
            """)

    @Argument(help: "An existing, empty directory.")
    var mountpoint: String

    @OptionGroup var network: NetworkOptions

    @Flag(name: .short, help: "Stay in the foreground (do not daemonise).")
    var foreground = false

    @Flag(
        help: ArgumentHelp(
            "No supervisor: the mount ends when its daemon does. By default a small supervisor process holds the mount and starts a new daemon under it when one dies (any signal, any trap), so writers see a pause, not an error; `aoefs restart MOUNTPOINT` replaces the daemon the same way. FUSE over io_uring (asked for by name) implies this."
        ))
    var noSupervise = false

    @Option(
        name: .short,
        help: ArgumentHelp(
            "Mount options, comma-separated: FUSE's (allow_other, ro, …) and aoefs's own as key=value (iface=eth1:eth3, deadsecs=, maxout=, maxdata=, mtu=, busy_poll=, config=, wait=, threads=, fuse_transport=, io_uring, io_uring_q_depth=), as in an fstab line.",
            valueName: "OPTIONS"))
    var options: [String] = []

    @Option(help: "Seconds to wait for targets before serving (they may also appear later).")
    var wait: Double = 3

    @Option(
        help: ArgumentHelp(
            "How aoefs's FUSE core talks to the kernel: auto (FUSE over io_uring when the fuse module offers it, else /dev/fuse), device (/dev/fuse) or io_uring (the same as -o io_uring).",
            valueName: "auto|device|io_uring"))
    var fuseTransport: String = "auto"

    @Option(
        help: ArgumentHelp(
            "Ring entries per CPU queue (FUSE over io_uring): requests one CPU's callers can have in flight.",
            valueName: "N"))
    var ioUringDepth: Int = FUSETransportChoice.defaultDepth

    @Option(
        help: ArgumentHelp(
            "Threads that serve the kernel's requests. 1 (the default): the link's receive thread serves them between frames, which costs no wake-up per request. More: over io_uring each thread has a ring of its own, and the kernel's copies of that ring's requests and replies run on it; over /dev/fuse they read requests in parallel. More threads pay a wake-up per hand-over: worth it only with spare CPUs (measured slower on 2 CPUs shared with the target).",
            valueName: "N"))
    var threads: Int = FUSETransportChoice.defaultThreads

    func validate() throws {
        // A daemon started by its supervisor: the user's command was checked, and a successor's
        // mountpoint is mounted (the live mount it takes over).
        if ProcessInfo.processInfo.environment[SupervisorChannel.environmentName] != nil { return }
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: mountpoint, isDirectory: &isDir) else {
            throw ValidationError("\(mountpoint): no such directory")
        }
        guard isDir.boolValue else { throw ValidationError("\(mountpoint): not a directory") }
        if let mounts = try? String(contentsOfFile: "/proc/mounts", encoding: .utf8),
            let real = URL(fileURLWithPath: mountpoint).resolvingSymlinksInPath().path as String?,
            mounts.split(separator: "\n").contains(where: {
                $0.split(separator: " ").dropFirst().first.map(String.init) == real
            })
        {
            throw ValidationError("\(mountpoint): something is already mounted there")
        }
    }

    /// aoefs's own settings given as `-o key=value` (an fstab line has only options), moved to
    /// their flags unless the flag was given too; what is left are FUSE's options.
    mutating func absorbMountOptions() throws {
        var fuse: [String] = []
        for item in options.flatMap({ $0.split(separator: ",").map(String.init) }) {
            let parts = item.split(separator: "=", maxSplits: 1).map(String.init)
            let key = parts[0], value = parts.count > 1 ? parts[1] : nil
            func number<T: LosslessStringConvertible>(_ type: T.Type) throws -> T {
                guard let v = value, let n = T(v) else { throw ValidationError("-o \(item): expected \(key)=NUMBER") }
                return n
            }
            switch key {
            case "iface":
                guard let v = value, !v.isEmpty else { throw ValidationError("-o \(item): expected iface=IF[:IF…]") }
                network.interfaces += v.split(separator: ":").map(String.init)
            case "deadsecs": network.deadsecs = try network.deadsecs ?? number(Int.self)
            case "maxout": network.maxout = try network.maxout ?? number(Int.self)
            case "maxdata": network.maxdata = try network.maxdata ?? number(Int.self)
            case "mtu": network.mtu = try network.mtu ?? number(Int.self)
            case "busy_poll": network.busyPoll = try network.busyPoll ?? number(Int.self)
            case "config":
                guard let v = value else { throw ValidationError("-o \(item): expected config=FILE") }
                network.config = network.config ?? v
            case "wait": wait = try number(Double.self)
            case "threads": threads = try number(Int.self)
            case "fuse_threads", "fuse_core":
                // Gone with libfuse's session loop (issue 15): aoefs's own core serves. An fstab
                // line that has them still mounts.
                FileHandle.standardError.write(
                    Data(
                        "aoefs: -o \(item): ignored (aoefs's own FUSE core serves; -o threads=N sets its threads)\n"
                            .utf8))
            case "read_replies":
                // Replies gathered from the frames measured slower than copied ones and went
                // (issue 22); an fstab line that has the option still mounts.
                FileHandle.standardError.write(
                    Data("aoefs: -o \(item): ignored (READ replies are always sent from one buffer)\n".utf8))
            case "fuse_transport": fuseTransport = value ?? ""
            case "no_supervise": noSupervise = true
            // libfuse 3.18's spellings: the ring, which only our core speaks here.
            case "io_uring": fuseTransport = "io_uring"
            case "io_uring_q_depth": ioUringDepth = try number(Int.self)
            // mount(8) passes these for every filesystem; they mean nothing to FUSE here.
            case "_netdev", "nofail", "auto", "noauto", "user", "nouser", "users", "defaults": break
            default: fuse.append(item)
            }
        }
        try network.validate()
        options = fuse
        // Seconds become a Duration in milliseconds: past a day is a typo, and past 2⁶³ ms a trap.
        guard wait.isFinite, (0...86_400).contains(wait) else {
            throw ValidationError("--wait \(wait): expected 0 to 86400 seconds")
        }
        guard FUSETransportChoice(rawValue: fuseTransport) != nil else {
            throw ValidationError("--fuse-transport \(fuseTransport): expected auto, device or io_uring")
        }
        guard (1...256).contains(ioUringDepth) else {
            throw ValidationError("--io-uring-depth \(ioUringDepth): expected 1 to 256")
        }
        guard (1...256).contains(threads) else {
            throw ValidationError("--threads \(threads): expected 1 to 256")
        }
    }

    func run() throws {
        var me = self
        try me.absorbMountOptions()
        // Started by a supervisor (issue 30): serve the mount it holds.
        if let channel = SupervisorChannel.inherited() { me.serveSupervised(channel) }
        try me.start()
    }

    /// A supervisor holds the mount unless asked not to, or unless FUSE over io_uring is asked
    /// for by name: a ring's entries die with the daemon that registered them, with the requests
    /// they held, which FUSE_NOTIFY_RESEND does not send again (it re-queues /dev/fuse's).
    private var supervised: Bool { !noSupervise && fuseTransport != FUSETransportChoice.ioURing.rawValue }

    private func start() throws {
        if foreground {
            guard supervised else { return try serve(ready: nil) }
            let status = supervise(readiness: nil, syslog: false)
            if status != 0 { Foundation.exit(status) }
            return
        }
        // Daemonise before any thread exists; the daemon reports readiness (or the reason it
        // could not mount) through a pipe, and this process exits once it has.
        let readiness: Readiness
        do {
            guard let r = try Daemon.fork() else { return }
            readiness = r
        } catch { throw CLIError("\(error)") }
        Log.switchToSyslog()
        if supervised { Foundation.exit(supervise(readiness: readiness, syslog: true)) }
        do {
            try serve(ready: readiness)
        } catch {
            readiness.failed("\(error)")
            Foundation.exit(1)
        }
        Foundation.exit(0)
    }

    /// Runs the supervisor of the mount: it starts this binary again as the daemon (with the same
    /// arguments), holds the mount, and restarts the daemon when it dies.
    private func supervise(readiness: Readiness?, syslog: Bool) -> Int32 {
        let exe =
            (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        // After a package upgrade /proc/self/exe names the old, deleted file: the path is the new one.
        let path = exe.hasSuffix(" (deleted)") ? String(exe.dropLast(" (deleted)".count)) : exe
        let settings = Supervisor.Settings(
            mountpoint: mountpoint, executable: path, arguments: invocation.withLock { $0 },
            environment: syslog ? ["AOEFS_LOG=syslog"] : [])
        return Supervisor(settings, readiness: readiness) { line in
            if syslog {
                SystemLog.write(.notice, line)
            } else {
                FileHandle.standardError.write(Data((line + "\n").utf8))
            }
        }.run()
    }

    /// The daemon under a supervisor: as `serve`, but the supervisor makes (or hands over) the
    /// mount, hears "ready" and restarts this process if it dies; exits 0 when the mount ended,
    /// `SupervisorChannel.handedOverStatus` after a hand-over, 1 if it could not serve.
    private func serveSupervised(_ channel: SupervisorChannel) -> Never {
        if ProcessInfo.processInfo.environment["AOEFS_LOG"] == "syslog" { Log.switchToSyslog() }
        dieAfterCrashHandlers()
        PlantedTrap.atStart()
        Heap.keepLargeBuffers()
        let engine: Engine
        do { engine = try network.startEngine(defaultToAllEthernet: true) } catch {
            channel.send("failed\t\(error)")
            Foundation.exit(1)
        }
        // Auto means /dev/fuse here: a restart continues on it (see `supervised`).
        let transport =
            FUSETransportChoice(rawValue: fuseTransport) == .auto
            ? .device
            : FUSETransportChoice(rawValue: fuseTransport) ?? .device
        let session = MountSession(
            engine: engine, mountpoint: mountpoint, options: options, transport: transport,
            depth: ioUringDepth, threads: threads)
        do {
            try session.start(settle: .milliseconds(Int64(wait * 1000)), supervisor: channel)
        } catch {
            engine.shutdown()
            channel.send("failed\t\(error)")
            Foundation.exit(1)
        }
        PlantedTrap.arm(session.fileSystem)
        channel.send("ready")
        let listener = Thread {
            while let m = channel.receive() {
                if m.text == "handover" { session.handOver() }
            }
            // The supervisor is gone: the mount goes with it (its watchdog unmounts); drain and end.
            session.stop()
        }
        listener.name = "aoefs-supervisor"
        listener.stackSize = 1 << 18
        listener.start()
        session.serve()
        session.finish()
        Foundation.exit(session.handedOver ? SupervisorChannel.handedOverStatus : 0)
    }

    /// Starts the engine, mounts, reports readiness, serves until unmounted or signalled, then
    /// drains in-flight writes and tears down.
    func serve(ready: Readiness?) throws {
        Heap.keepLargeBuffers()  // no page faults per request (see Heap)
        let engine = try network.startEngine(defaultToAllEthernet: true)
        let session = MountSession(
            engine: engine, mountpoint: mountpoint, options: options,
            transport: FUSETransportChoice(rawValue: fuseTransport) ?? .auto, depth: ioUringDepth,
            threads: threads)
        do {
            try session.start(settle: .milliseconds(Int64(wait * 1000)))
        } catch {
            engine.shutdown()
            throw CLIError("\(error)")
        }
        ready?.ready()
        session.serve()
        session.finish()
    }
}

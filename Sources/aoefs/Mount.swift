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
            sys/eS.L/ (state, mac, netif, fwver, payload, ident, config, paths, stats, conf) and
            etherd/ (discover, interfaces, err, revalidate, flush). Without -f the command
            returns once the mount is usable and a daemon serves it; unmount with
            `fusermount3 -u MOUNTPOINT` or `umount MOUNTPOINT`.

            Examples:
              aoefs mount /mnt/aoe --iface eth1
              dd if=/mnt/aoe/e10.3 of=/dev/null bs=1M
              cat /mnt/aoe/sys/e10.3/stats
            """)

    @Argument(help: "An existing, empty directory.")
    var mountpoint: String

    @OptionGroup var network: NetworkOptions

    @Flag(name: .short, help: "Stay in the foreground (do not daemonise).")
    var foreground = false

    @Option(name: .short, help: ArgumentHelp("Mount options, comma-separated: FUSE's (allow_other, ro, …) and aoefs's own as key=value (iface=eth1:eth3, deadsecs=, maxout=, maxdata=, mtu=, config=, wait=, fuse_threads=), as in an fstab line.", valueName: "OPTIONS"))
    var options: [String] = []

    @Option(help: "Seconds to wait for targets before serving (they may also appear later).")
    var wait: Double = 3

    @Option(help: ArgumentHelp("Serve FUSE requests on N libfuse worker threads. 0, the default, reads them on the engine's receive thread, which is faster on few cores (Docs/performance.md).", valueName: "N"))
    var fuseThreads: Int = 0

    func validate() throws {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: mountpoint, isDirectory: &isDir) else {
            throw ValidationError("\(mountpoint): no such directory")
        }
        guard isDir.boolValue else { throw ValidationError("\(mountpoint): not a directory") }
        guard (0...64).contains(fuseThreads) else { throw ValidationError("--fuse-threads \(fuseThreads): expected 0 to 64") }
        if let mounts = try? String(contentsOfFile: "/proc/mounts", encoding: .utf8),
            let real = URL(fileURLWithPath: mountpoint).resolvingSymlinksInPath().path as String?,
            mounts.split(separator: "\n").contains(where: { $0.split(separator: " ").dropFirst().first.map(String.init) == real })
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
            case "config":
                guard let v = value else { throw ValidationError("-o \(item): expected config=FILE") }
                network.config = network.config ?? v
            case "wait": wait = try number(Double.self)
            case "fuse_threads": fuseThreads = try number(Int.self)
            // mount(8) passes these for every filesystem; they mean nothing to FUSE here.
            case "_netdev", "nofail", "auto", "noauto", "user", "nouser", "users", "defaults": break
            default: fuse.append(item)
            }
        }
        try network.validate()
        options = fuse
    }

    func run() throws {
        var me = self
        try me.absorbMountOptions()
        try me.start()
    }

    private func start() throws {
        if foreground { return try serve(ready: nil) }
        // Daemonise before any thread exists: the child serves and reports readiness (or the
        // reason it could not mount) through a pipe; the parent waits for that one line.
        var fds: [Int32] = [0, 0]
        // Close-on-exec: libfuse's fusermount3 watchdog (auto_unmount) must not inherit the write end.
        guard pipe(&fds) == 0 else { throw CLIError("pipe: \(String(cString: strerror(errno)))") }
        _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
        let pid = fork()
        if pid < 0 { throw CLIError("fork: \(String(cString: strerror(errno)))") }
        if pid > 0 {
            close(fds[1])
            // One line: "ok", or the reason the mount failed.
            var line: [UInt8] = []
            var byte: UInt8 = 0
            while read(fds[0], &byte, 1) == 1 && byte != 0x0A { line.append(byte) }
            close(fds[0])
            let text = String(decoding: line, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            if text == "ok" { return }
            throw CLIError(text.isEmpty ? "the daemon died before the mount was ready" : text)
        }
        close(fds[0])
        setsid()
        // A daemon keeps nothing its caller opened: a leaked pipe would keep the caller's reader
        // (a script's `$(aoefs mount …)`) waiting forever.
        for fd in ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []).compactMap({ Int32($0) })
        where fd > 2 && fd != fds[1] {
            close(fd)
        }
        let null = open("/dev/null", O_RDWR)
        dup2(null, 0)
        dup2(null, 1)
        dup2(null, 2)
        Log.switchToSyslog()
        do {
            try serve(ready: fds[1])
        } catch {
            let line = "\(error)\n"
            _ = line.withCString { write(fds[1], $0, strlen($0)) }
            Foundation.exit(1)
        }
        Foundation.exit(0)
    }

    /// Starts the engine, mounts, reports readiness, serves until unmounted or signalled, then
    /// drains in-flight writes and tears down.
    func serve(ready: Int32?) throws {
        Heap.keepLargeBuffers()  // no page faults per request (see Heap)
        let engine = try network.startEngine(defaultToAllEthernet: true)
        engine.waitUntilSettled(timeout: .milliseconds(Int64(wait * 1000)))
        let fs = AoEFileSystem(engine: engine, mountpoint: mountpoint)
        engine.addLogObserver { [weak fs] _ in fs?.logged() }
        do {
            try fs.mount(options: options)
        } catch {
            engine.shutdown()
            throw CLIError("\(error)")
        }
        fs.handleSignals()
        if let ready {
            _ = "ok\n".withCString { write(ready, $0, 3) }
            close(ready)
        }
        fs.run(threads: fuseThreads)
        fs.teardown()
        engine.shutdown()
    }
}

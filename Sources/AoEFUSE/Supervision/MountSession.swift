import AoECore
import AoEEngine
import AoELinux
import AoEProtocol
import Foundation

/// One mount's whole life, the same for `aoefs mount` and `aoefs demo`: wait for the targets to
/// settle, mount, serve until unmounted or signalled, drain the I/O still in the engine, tear
/// down. (Running as a daemon, with its readiness pipe, is `Daemon`.)
public final class MountSession: Sendable {
    public let fileSystem: AoEFileSystem
    private let options: [String]
    private let transport: FUSETransportChoice
    private let depth: Int
    private let threads: Int
    private let signals = Locked<SignalWatcher?>(nil)

    /// - Parameters:
    ///   - options: FUSE's `-o` options (allow_other, ro, …).
    ///   - transport: how our core talks to the kernel (`FUSETransportChoice`).
    ///   - threads: how many threads serve the kernel's requests (1: the link's event loop).
    public init(
        engine: Engine, mountpoint: String, options: [String] = [], transport: FUSETransportChoice = .auto,
        depth: Int = FUSETransportChoice.defaultDepth, threads: Int = 1
    ) {
        self.depth = depth
        self.threads = threads
        self.transport = transport
        fileSystem = AoEFileSystem(engine: engine, mountpoint: mountpoint)
        self.options = options
    }

    public var engine: Engine { fileSystem.engine }

    /// How long a resumed daemon waits for its predecessor's targets before it serves when
    /// `deadsecs` is 0 (never down): the requests waiting meanwhile are the callers' pause, but
    /// one for a target not yet found again would fail. Otherwise it waits up to `deadsecs`.
    public static let resumeSettle: Duration = .seconds(180)

    /// A resumed daemon: the predecessor's targets found again and settled, and their partition
    /// tables read, before any request is read (bounded by `settle`); handles numbered past any
    /// predecessor's; one line in the err log.
    private func resume(waitingFor wanted: [String], settle: Duration) {
        let start = ContinuousClock.now
        let found = engine.wait(timeout: settle) { snaps in
            wanted.allSatisfy { name in snaps.contains { $0.address.description == name && $0.isSettled } }
        }
        let targets = wanted.compactMap { TargetAddress(parsing: $0) }
        let left = max(.zero, settle - (ContinuousClock.now - start))
        let tables = fileSystem.tables.waitUntilRead(targets, timeout: left)
        let info = fileSystem.daemonInfo.withLock { $0 }
        fileSystem.handles.numberFrom(UInt64(max(1, info.incarnation)) << 40)
        let took = ContinuousClock.now - start
        engine.note(
            "daemon: took over the live mount (daemon \(info.incarnation); the previous one \(info.previousEnd)); "
                + "\(wanted.count) target(s) \(found && tables ? "found again" : "NOT all found again") in \(took.milliseconds) ms"
        )
    }

    /// Tells the supervisor which targets have images, whenever that changes: what a successor
    /// must find again before it serves.
    private func reportTargets(to supervisor: SupervisorChannel) {
        let last = Locked("")
        let report: @Sendable () -> Void = { [weak fileSystem] in
            guard let fs = fileSystem else { return }
            let names = fs.imageTargets().map(\.address.description).joined(separator: " ")
            let changed = last.withLock { l in
                defer { l = names }
                return l != names
            }
            if changed { supervisor.send("targets\t" + names) }
        }
        engine.addTargetObserver(report)
        report()
    }

    /// Ends serving without unmounting: the requests already read are answered, then this
    /// daemon exits and its supervisor starts a successor on the live mount (`aoefs restart`).
    public func handOver() { fileSystem.handOver() }

    /// True once `handOver` was asked for.
    public var handedOver: Bool { fileSystem.handingOver.load(ordering: .relaxed) }

    /// Waits up to `settle` for the targets to settle (identified, payload negotiated; they may
    /// also appear later), mounts, and starts serving at once. SIGINT, SIGTERM and SIGHUP end it
    /// from the first line on (unless `handleSignals` is false: the caller has its own watcher and
    /// calls `stop()`); a signal during the wait cancels the start.
    ///
    /// When this returns, the mount answers requests: this process may touch it.
    ///
    /// Under a supervisor (`supervisor`, issue 30) the supervisor makes the mount, or hands over
    /// the live one a predecessor served: then this waits (up to `settle`, at least
    /// `resumeSettle`) for the predecessor's targets and their partition tables, and has the
    /// kernel send again what the predecessor left unanswered.
    public func start(settle: Duration, handleSignals: Bool = true, supervisor: SupervisorChannel? = nil)
        throws(FUSEError)
    {
        if handleSignals {
            do {
                let fs = fileSystem
                // The first signal ends serving; a second one stops waiting for I/O a dead
                // target will not answer (teardown's drain).
                let watcher = try SignalWatcher { _ in
                    if fs.exitRequested { fs.hurry() } else { fs.stop() }
                }
                signals.withLock { $0 = watcher }
            } catch {
                throw FUSEError("\(error)")
            }
        }
        // In slices, so a signal (which sets `exitRequested`) ends the wait within 100 ms.
        let deadline = ContinuousClock.now + settle
        while !fileSystem.exitRequested, case let left = deadline - .now, left > .zero {
            if engine.waitUntilSettled(timeout: min(left, .milliseconds(100))) { break }
        }
        guard !fileSystem.exitRequested else { throw FUSEError("interrupted before the mount was made") }
        engine.addLogObserver { [weak fileSystem] _ in fileSystem?.logged() }
        if let supervisor {
            let wanted = try fileSystem.mount(options: options, supervisor: supervisor)
            if fileSystem.resumed {
                // Until the targets are back, as long as a target may be silent before its I/O
                // fails (deadsecs): a request served before would fail at once (ENODEV).
                let dead = engine.configuration.deadsecs
                resume(waitingFor: wanted, settle: max(settle, dead > 0 ? .seconds(dead) : Self.resumeSettle))
            }
            reportTargets(to: supervisor)
        } else {
            try fileSystem.mount(options: options)
        }
        do {
            try fileSystem.beginServing(transport: transport, depth: depth, threads: threads)
        } catch {
            fileSystem.teardown(drain: .zero)
            throw error
        }
        // Readahead as the kernel's aoe driver gets it (aoeblk.c: io_opt 2 MiB, so the block
        // layer reads ahead 2 × io_opt); FUSE's default is 128 KiB. Needs root; without it the
        // default stays, with one log line.
        if let problem = setReadahead(of: fileSystem.mountpoint, kilobytes: AoEFileSystem.readaheadKB) {
            engine.note("fuse: readahead stays at the kernel's default: \(problem)")
        }
    }

    /// Serves until unmounted, a signal, or `stop()`; blocks. Returns 0 after a clean unmount,
    /// or the error that ended serving.
    @discardableResult
    public func serve() -> Int32 { fileSystem.run() }

    /// Ends serving, from any thread.
    public func stop() { fileSystem.stop() }

    /// Stops waiting for I/O still in the engine at teardown (a second Ctrl-C), from any thread.
    public func hurry() { fileSystem.hurry() }

    /// After `serve`: waits up to `drain` for the I/O still in the engine (writes in flight
    /// reach the target), unmounts, puts the signals back, and shuts the engine down.
    public func finish(drain: Duration = .seconds(30)) {
        fileSystem.teardown(drain: drain)
        signals.withLock { $0?.stop() }
        engine.shutdown()
    }
}

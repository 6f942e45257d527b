import AoECore
import AoEEngine
import AoELinux
import CFuse3
import Foundation

/// The FUSE session: mount, serve, stop, tear down. `MountSession` drives these in order.
extension AoEFileSystem {
    /// Creates the session and mounts it. `options` are `-o` options (e.g. `allow_other`).
    /// Internal: only `MountSession.start` calls it, immediately followed by `beginServing`, so
    /// nothing can touch the mount between the two.
    func mount(options: [String] = []) throws(FUSEError) {
        session = try Self.makeSession(mountpoint: mountpoint, options: Self.fuseOptions(options))
    }

    /// The `-o` string libfuse mounts with: ours and the caller's FUSE options.
    static func fuseOptions(_ options: [String]) -> String {
        var opts = ["fsname=aoefs", "subtype=aoefs", "default_permissions"] + options
        if geteuid() == 0 || options.contains("auto_unmount") == false { opts.append("auto_unmount") }
        return Array(Set(opts)).sorted().joined(separator: ",")
    }

    /// Mounts `mountpoint` through libfuse (with auto_unmount: fusermount3 unmounts it once the
    /// process holding the session is gone) and returns the session; its descriptor is
    /// `fuse_session_fd`. The supervisor of a supervised mount calls this too.
    static func makeSession(mountpoint: String, options: String) throws(FUSEError) -> OpaquePointer {
        let argv = ["aoefs", "-o", options]
        var cargs = argv.map { strdup($0) }
        defer { cargs.forEach { free($0) } }
        // No operations: libfuse only mounts (fusermount3, auto_unmount); our core reads the
        // session's descriptor and speaks the protocol itself (`run`).
        // (No operations, so no user data: libfuse never calls back.)
        var ops = fuse_lowlevel_ops()
        let se: OpaquePointer? = cargs.withUnsafeMutableBufferPointer { p in
            var args = fuse_args(argc: Int32(p.count), argv: p.baseAddress, allocated: 0)
            return fuse_session_new(&args, &ops, MemoryLayout<fuse_lowlevel_ops>.size, nil)
        }
        guard let se else {
            throw FUSEError("cannot create a FUSE session (is /dev/fuse there? is the fuse module loaded?)")
        }
        guard fuse_session_mount(se, mountpoint) == 0 else {
            fuse_session_destroy(se)
            throw FUSEError("\(mountpoint): cannot mount (see the message above; is it an existing, empty directory?)")
        }
        return se
    }

    /// A supervised daemon's mount (issue 30): the supervisor mounts (the first daemon) or hands
    /// over the live mount's descriptor (every later one). Returns the targets the predecessor
    /// served, which a resumed daemon waits for before it serves.
    func mount(options: [String], supervisor: SupervisorChannel) throws(FUSEError) -> [String] {
        guard supervisor.send("mount\t" + Self.fuseOptions(options)), let answer = supervisor.receive() else {
            throw FUSEError("\(mountpoint): the supervisor is gone")
        }
        let fields = answer.text.split(separator: "\t", omittingEmptySubsequences: false)
        switch fields.first {
        case "mounted"?, "resumed"?:
            guard let fd = answer.descriptor, let (info, targets) = DaemonInfo.parse(fields) else {
                throw FUSEError("\(mountpoint): the supervisor's answer is malformed: \(answer.text)")
            }
            var d = info
            d.supervisorPID = getppid()
            daemonInfo.withLock { $0 = d }
            adoptedDevice = fd
            resumed = fields.first == "resumed"
            return targets
        default:
            if let fd = answer.descriptor { close(fd) }
            throw FUSEError(fields.dropFirst().joined(separator: " "))
        }
    }

    /// Starts serving the mount made by `mount`: from here on the kernel's requests are
    /// answered, so anything in this process may touch the mountpoint. Call it right after
    /// `mount`, before anything else: a `stat` of the mountpoint from this process before it
    /// would wait for an INIT reply that nobody sends (the demo hang of issue 21).
    ///
    /// Our own protocol core (`KernelChannel`, over /dev/fuse or a ring) serves; libfuse only
    /// mounted. With one thread, requests are served on the engine's receive thread
    /// (`Engine.attach`), between batches of frames: the thread that sends a reply is awake to
    /// take the request the reply released, so a small request costs no thread wake-up. With
    /// more, by `threads` serving threads (`ServingThreads`), so that no one thread bounds the
    /// mount.
    func beginServing(transport: FUSETransportChoice, depth: Int, threads: Int = 1) throws(FUSEError) {
        let device = session.map { fuse_session_fd($0) } ?? adoptedDevice
        guard device >= 0 else { throw FUSEError("\(mountpoint): not mounted") }
        try serve(device: device, transport: resolve(transport, depth: depth), threads: threads)
    }

    /// Serves the FUSE connection on `device` (the mounted session's /dev/fuse; in tests, one
    /// end of an in-memory wire, `FUSEWire`) on the engine's first event loop (`threads` 1) or
    /// on serving threads of its own.
    func serve(device: Int32, transport: FUSETransport, threads: Int = 1) throws(FUSEError) {
        guard
            let own = KernelChannel(
                device: device, fs: self, transport: transport, threads: threads,
                onEnd: { [weak self] in self?.end() })
        else {
            stop()
            throw FUSEError("cannot serve \(mountpoint): /dev/fuse cannot be made non-blocking, or no memory")
        }
        notifications.serve(own)
        if resumed {
            // The requests the previous daemon read and never answered go back to the kernel's
            // queue; we read them like new ones (FUSE_NOTIFY_RESEND, Linux 6.9). A WRITE, READ,
            // FSYNC served twice does what it did once.
            let r = own.notify(.resend)
            engine.note(
                r == 0
                    ? "fuse: the requests the previous daemon left unanswered are sent again (FUSE_NOTIFY_RESEND)"
                    : "fuse: FUSE_NOTIFY_RESEND failed (\(String(cString: strerror(-r))); Linux 6.9 or later has it): "
                        + "requests the previous daemon had read wait until their callers give up")
        }
        guard own.startServing() else {
            stop()
            throw FUSEError("cannot serve \(mountpoint): the engine has no event loop (not started?)")
        }
        let on = own.threads.isEmpty ? "on the link's event loop" : "on \(own.threads.count) threads"
        engine.note("fuse: aoefs's own protocol core serves \(mountpoint) \(on) (libfuse only mounted it)")
    }

    /// Waits until serving ends (unmounted, `stop()`, a signal); returns 0 on a clean unmount,
    /// or the error that ended serving.
    @discardableResult
    func run() -> Int32 {
        guard let own = channel else { return -EIO }
        ended.wait(timeout: nil) { $0 }
        own.stopServing()
        stop()
        return own.error
    }

    /// The transport our core will use: the ring when asked for (or by default) and the fuse
    /// module offers it; one log line when it was asked for and is not there.
    private func resolve(_ choice: FUSETransportChoice, depth: Int) -> FUSETransport {
        switch (choice, fuseURingEnabled()) {
        case (.device, _), (.auto, false?), (.auto, nil): return .device
        case (.auto, true?), (.ioURing, true?): return .ring(depth: depth)
        case (.ioURing, false?):
            engine.note(
                "fuse: FUSE over io_uring asked for, but /sys/module/fuse/parameters/enable_uring is N "
                    + "(root can: echo Y > it); serving over /dev/fuse")
            return .device
        case (.ioURing, nil):
            engine.note(
                "fuse: FUSE over io_uring asked for, but this kernel has none (Linux 6.14+ with "
                    + "CONFIG_FUSE_IO_URING); serving over /dev/fuse")
            return .device
        }
    }

    /// True once serving must end: unmounted, `stop()`, or a signal.
    public var exitRequested: Bool { ended.withLock { $0 } }

    /// Marks serving as ended and wakes whoever waits for that.
    func end() {
        ended.withLock { $0 = true }
        ended.broadcast()
    }

    /// Asks serving to end (from any thread): the session exits and the mount is detached.
    public func stop() {
        end()
        // Handing over to a successor: the mount stays (the supervisor holds it).
        if handingOver.load(ordering: .relaxed) { return }
        // Under the lock: a second stop (the signal thread's and the run thread's) waits for the
        // first's umount instead of failing beside it, and teardown sees what it did.
        detached.withLock { done in
            if !done { done = aoefs_umount_detach(mountpoint) == 0 }
        }
    }

    /// Ends serving without unmounting (issue 30): the supervisor keeps the mount and starts a
    /// successor, which reads the requests this one left in the kernel's queue.
    func handOver() {
        handingOver.store(true, ordering: .relaxed)
        end()
    }

    /// A second Ctrl-C: teardown stops waiting for I/O still in the engine (a target that does
    /// not answer), fails it (EIO) and unmounts now.
    public func hurry() {
        hurried.store(true, ordering: .relaxed)
        waiting.broadcast()
    }

    /// After `run` returned: waits (up to `drain`) for image I/O still in the engine, answers
    /// parked readers, unmounts and destroys the session. Never replies after this.
    public func teardown(drain: Duration = .seconds(30)) {
        waiting.wait(timeout: drain, until: { $0 == 0 || hurried.load(ordering: .relaxed) })
        if waiting.withLock({ $0 }) > 0 {
            // Still waiting after the drain, or hurried (a target that does not answer): end the engine now,
            // which fails every waiting request, so each is answered (EIO) while the session is
            // alive. Replying after fuse_session_destroy would be a use-after-free (pitfall 9).
            engine.shutdown()
            waiting.wait(timeout: .seconds(5)) { $0 == 0 }
        }
        let unanswered = waiting.withLock { $0 }
        errReaders.close()
        // No notification after this (one being written is waited for, a while).
        let quiet = notifications.stop()
        channel?.close()  // no reply after this: libfuse closes the descriptor below
        if adoptedDevice >= 0 {
            // The supervisor's copy keeps the connection (and the mount) alive.
            close(adoptedDevice)
            adoptedDevice = -1
        }
        if let se = session {
            // Detached by `stop`: nothing left to unmount (libfuse would umount again and print
            // "failed to unmount … Invalid argument" while a reader still holds a file open);
            // fuse_session_destroy closes the descriptor, which ends the connection.
            if !detached.withLock({ $0 }) { fuse_session_unmount(se) }
            // A request still unanswered keeps the session: leaking it beats a late reply into
            // freed memory; the process is about to exit anyway.
            if unanswered == 0 && quiet { fuse_session_destroy(se) }
            session = nil
        }
        replies.stop()
        tables.stop()
    }
}

/// A malloc'd block, freed when the last reference goes (an adopted request buffer: a large
/// WRITE's data, sent to the wire from where the kernel put it).
final class MallocBlock: @unchecked Sendable {
    // @unchecked: immutable; the block is only freed in deinit.
    let base: UnsafeMutableRawPointer
    init(_ base: UnsafeMutableRawPointer) { self.base = base }
    deinit { free(base) }
}

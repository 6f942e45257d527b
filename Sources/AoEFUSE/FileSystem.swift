import AoECore
import AoEEngine
import AoELinux
import AoEProtocol
import CFuse3
import Foundation
import Synchronization

/// A failure to mount, in one line.
public struct FUSEError: Error, CustomStringConvertible {
    public var description: String
    public init(_ d: String) { description = d }
}

/// The aoefs tree served over libfuse3's low-level API (DESIGN §2, §5): `eS.L` images,
/// `sys/eS.L/` attributes and `etherd/` controls.
///
/// Callbacks never block: image I/O is handed to the engine and answered from its completion,
/// on the engine's thread. A read of `etherd/err` with nothing to say is parked and answered
/// when a line arrives, or with EINTR when the reader is interrupted.
public final class AoEFileSystem: @unchecked Sendable {
    // @unchecked: `session` is set once in `mount` before any loop thread starts and cleared in
    // `teardown` after they have all stopped; `serving` is set in `run` before the engine is
    // given the source (its lock orders the two) and cleared after `detach`; everything else
    // that changes is in `state`.
    public let engine: Engine
    public let mountpoint: String
    let state = Locked(State())
    /// Sends large read replies, so the engine's receive thread goes back to its frames while
    /// the kernel copies a big reply into the reader's pages. A 1 MiB `fuse_reply_buf` is a
    /// 1 MiB copy inside `writev`; on the receive thread it stalls every other response (the
    /// window drains). Small replies stay on the receive thread, where a hop costs more than
    /// the copy (reference notes: ~40 % for 4 KiB I/O on 2 cores).
    let replies = WorkerPool(threads: 1, name: "aoefs-reply")
    /// Replies of at least this many bytes go through `replies`, unless nothing else is waiting
    /// (a reader at queue depth 1): then no other response can be held up, and the hop would only
    /// add a wake-up to the reader's critical path.
    static let largeReply = 256 * 1024
    /// Writes of at least this many bytes keep libfuse's request buffer instead of copying it.
    static let adoptedWrite = 64 * 1024
    /// Requests handed to the engine and not yet answered (teardown drains them).
    let waiting = Atomic<Int>(0)
    var session: OpaquePointer?
    /// The session's requests as the engine's event source, while `run` serves them that way.
    var serving: SessionSource?
    let mountTime = time(nil)
    let owner = (uid: getuid(), gid: getgid())
    private var retained: Unmanaged<AoEFileSystem>?

    struct State {
        var inodes = InodeTable()
        var openImages: [TargetAddress: Int] = [:]
        var errCursor: [UInt64: UInt64] = [:]
        var errWaiters: [UInt64: (reply: Reply, handle: UInt64)] = [:]
        var nextHandle: UInt64 = 1
        var nextWaiter: UInt64 = 1
        var allowList: [String] = []
        var tornDown = false
    }

    public init(engine: Engine, mountpoint: String) {
        self.engine = engine
        self.mountpoint = mountpoint
    }

    /// Called with every diagnostic line the engine logs: wakes readers of `etherd/err`.
    public func logged() {
        let ready: [(Reply, [UInt8])] = state.withLock { s in
            var out: [(Reply, [UInt8])] = []
            for (id, w) in s.errWaiters {
                let cursor = s.errCursor[w.handle] ?? 0
                if let line = engine.errorLines(after: cursor).first {
                    s.errCursor[w.handle] = line.0
                    s.errWaiters[id] = nil
                    out.append((w.reply, Array((line.1 + "\n").utf8)))
                }
            }
            return out
        }
        for (r, b) in ready { r.bytes(b) }
    }

    // MARK: - Mounting

    /// Creates the session and mounts it. `options` are `-o` options (e.g. `allow_other`).
    public func mount(options: [String] = []) throws(FUSEError) {
        var opts = ["fsname=aoefs", "subtype=aoefs", "default_permissions"] + options
        if geteuid() == 0 || options.contains("auto_unmount") == false { opts.append("auto_unmount") }
        let argv = ["aoefs", "-o", Array(Set(opts)).sorted().joined(separator: ",")]
        var cargs = argv.map { strdup($0) }
        defer { cargs.forEach { free($0) } }
        var ops = makeOperations()
        let me = Unmanaged.passRetained(self)
        retained = me
        let se: OpaquePointer? = cargs.withUnsafeMutableBufferPointer { p in
            var args = fuse_args(argc: Int32(p.count), argv: p.baseAddress, allocated: 0)
            return fuse_session_new(&args, &ops, MemoryLayout<fuse_lowlevel_ops>.size, me.toOpaque())
        }
        guard let se else {
            me.release()
            retained = nil
            throw FUSEError("cannot create a FUSE session (is /dev/fuse there? is the fuse module loaded?)")
        }
        guard fuse_session_mount(se, mountpoint) == 0 else {
            fuse_session_destroy(se)
            me.release()
            retained = nil
            throw FUSEError("\(mountpoint): cannot mount (see the message above; is it an existing, empty directory?)")
        }
        session = se
    }

    /// Serves requests until unmounted or `stop()`; blocks. Returns 0 on a clean unmount, or
    /// libfuse's error.
    ///
    /// With `threads` 0, requests are read by the engine's receive thread (`Engine.attach`),
    /// between batches of frames: the thread that sends a reply is awake to take the request the
    /// reply released, so a small request costs no thread wake-up. With `threads` > 0, or when
    /// the engine cannot (no link that can watch a descriptor), libfuse's multi-threaded loop
    /// runs with that many workers (8 if 0) instead.
    @discardableResult
    public func run(threads: Int = 0) -> Int32 {
        guard let se = session else { return -1 }
        if threads == 0, let source = SessionSource(session: se) {
            serving = source
        }
        if let source = serving, engine.attach(source) {
            // libfuse's signal handlers and the source itself (on unmount) only set the
            // session's exit flag: watch it.
            while !exitRequested { usleep(20_000) }
            engine.detach()
            stop()
            return source.error
        }
        serving = nil
        let cfg = fuse_loop_cfg_create()
        defer { fuse_loop_cfg_destroy(cfg) }
        fuse_loop_cfg_set_max_threads(cfg, UInt32(threads > 0 ? threads : 8))
        fuse_loop_cfg_set_clone_fd(cfg, 0)
        // libfuse's signal handler only sets the session's exit flag; the loop notices it when the
        // signal interrupts its own wait or a worker's read(2) of /dev/fuse. When the loop runs
        // on another thread than the one the signal hits (aoefs demo) and the mount is idle,
        // neither happens and the loop never ends. A watcher turns the flag into `stop()`.
        let looping = Atomic<Bool>(true)
        let watcher = Thread { [self] in
            while looping.load(ordering: .relaxed) {
                if exitRequested {
                    stop()
                    return
                }
                usleep(20_000)
            }
        }
        watcher.name = "aoefs-fuse-watch"
        watcher.start()
        defer { looping.store(false, ordering: .relaxed) }
        return fuse_session_loop_mt(se, cfg)
    }

    /// Installs libfuse's SIGINT/SIGTERM/SIGHUP handlers: they end the loop.
    public func handleSignals() {
        if let se = session { fuse_set_signal_handlers(se) }
    }

    /// True once a signal (or `stop`) asked the session to end. libfuse's handler only sets a
    /// flag: a loop running on another thread than the one the signal hit keeps waiting until a
    /// worker's read returns, so whoever watches the loop calls `stop()` when this turns true.
    public var exitRequested: Bool {
        guard let se = session else { return false }
        return fuse_session_exited(se) != 0
    }

    /// Asks the loop to end (from any thread): the session exits and the mount is detached.
    public func stop() {
        if let se = session { fuse_session_exit(se) }
        _ = aoefs_umount_detach(mountpoint)
    }

    /// After `run` returned: waits (up to `drain`) for image I/O still in the engine, answers
    /// parked readers, unmounts and destroys the session. Never replies after this.
    public func teardown(drain: Duration = .seconds(30)) {
        let deadline = ContinuousClock.now + drain
        while waiting.load(ordering: .acquiring) > 0 && ContinuousClock.now < deadline { usleep(10_000) }
        if waiting.load(ordering: .acquiring) > 0 {
            // Still waiting after the drain (a target that does not answer): end the engine now,
            // which fails every waiting request, so each is answered (EIO) while the session is
            // alive. Replying after fuse_session_destroy would be a use-after-free (pitfall 9).
            engine.shutdown()
            let last = ContinuousClock.now + .seconds(5)
            while waiting.load(ordering: .acquiring) > 0 && ContinuousClock.now < last { usleep(10_000) }
        }
        let unanswered = waiting.load(ordering: .acquiring)
        let parked: [Reply] = state.withLock { s in
            s.tornDown = true
            let r = s.errWaiters.values.map(\.reply)
            s.errWaiters.removeAll()
            return r
        }
        for r in parked { r.error(EINTR) }
        if let se = session {
            fuse_remove_signal_handlers(se)
            fuse_session_unmount(se)
            // A request still unanswered keeps the session: leaking it beats a late reply into
            // freed memory; the process is about to exit anyway.
            if unanswered == 0 { fuse_session_destroy(se) }
            session = nil
        }
        replies.stop()
        retained?.release()
        retained = nil
    }

    // MARK: - Nodes

    func node(_ ino: fuse_ino_t) -> Node? { state.withLock { $0.inodes.node(UInt64(ino)) } }
    func inode(_ n: Node) -> fuse_ino_t { fuse_ino_t(state.withLock { $0.inodes.inode(n) }) }

    /// Targets that have an image: identified at least once.
    func imageTargets() -> [TargetSnapshot] { engine.targets().filter { $0.identity != nil } }

    func snapshot(_ t: TargetAddress) -> TargetSnapshot? { imageTargets().first { $0.address == t } }

    func children(_ n: Node) -> [(String, Node)]? {
        switch n {
        case .root:
            return imageTargets().map { ($0.address.description, Node.image($0.address)) }
                + [("etherd", .etherdDir), ("sys", .sysDir)]
        case .sysDir: return imageTargets().map { ($0.address.description, Node.targetDir($0.address)) }
        case .etherdDir: return ControlFile.allCases.map { ($0.rawValue, Node.control($0)) }
        case .targetDir(let t): return SysFile.allCases.map { ($0.rawValue, Node.targetFile(t, $0)) }
        default: return nil
        }
    }

    func exists(_ n: Node) -> Bool {
        switch n {
        case .root, .sysDir, .etherdDir, .control: true
        case .image(let t), .targetDir(let t), .targetFile(let t, _): snapshot(t) != nil
        }
    }

    func attributes(_ n: Node) -> stat? {
        guard exists(n) else { return nil }
        var st = stat()
        st.st_ino = __ino_t(inode(n))
        st.st_uid = owner.uid
        st.st_gid = owner.gid
        st.st_atim.tv_sec = mountTime
        st.st_mtim.tv_sec = mountTime
        st.st_ctim.tv_sec = mountTime
        st.st_blksize = 4096
        switch n {
        case .root, .sysDir, .etherdDir, .targetDir:
            st.st_mode = S_IFDIR | 0o755
            st.st_nlink = 2
        case .image(let t):
            let s = snapshot(t)!
            st.st_mode = S_IFREG | 0o660
            st.st_nlink = 1
            st.st_size = Int(s.identity!.capacity)
            st.st_blocks = st.st_size / 512
            st.st_blksize = max(s.payload, 512)
        case .targetFile:
            st.st_mode = S_IFREG | 0o444
            if case .targetFile(_, .config) = n { st.st_mode = S_IFREG | 0o644 }
            st.st_nlink = 1
            st.st_size = 4096  // pseudo-files are read with direct I/O; the size is a hint
        case .control(let c):
            st.st_mode = S_IFREG | (c == .err ? 0o444 : c == .interfaces ? 0o644 : 0o200)
            st.st_nlink = 1
            st.st_size = 0
        }
        return st
    }

    // MARK: - Operations (called on libfuse's threads)

    func lookup(_ r: Reply, parent: fuse_ino_t, name: String) {
        guard let p = node(parent), let kids = children(p), let child = kids.first(where: { $0.0 == name })?.1,
            let st = attributes(child)
        else { return r.error(ENOENT) }
        var e = fuse_entry_param()
        e.ino = inode(child)
        e.attr = st
        e.attr_timeout = 1
        e.entry_timeout = 1
        r.entry(e)
    }

    func getattr(_ r: Reply, ino: fuse_ino_t) {
        guard let n = node(ino), let st = attributes(n) else { return r.error(ENOENT) }
        r.attributes(st, timeout: 1)
    }

    /// Truncation is accepted and ignored: `echo > etherd/discover` opens with O_TRUNC, and an
    /// image's size is the target's capacity.
    func setattr(_ r: Reply, ino: fuse_ino_t) { getattr(r, ino: ino) }

    func readdir(_ r: Reply, ino: fuse_ino_t, size: Int, offset: Int) {
        guard let n = node(ino), let kids = children(n) else { return r.error(ENOTDIR) }
        let entries = [(".", n), ("..", Node.root)] + kids
        var buf = [CChar](repeating: 0, count: size)
        var used = 0
        for (i, (name, child)) in entries.enumerated() where i >= offset {
            var st = stat()
            st.st_ino = __ino_t(inode(child))
            st.st_mode = attributes(child)?.st_mode ?? S_IFREG
            let need = buf.withUnsafeMutableBufferPointer { b in
                fuse_add_direntry(r.request, b.baseAddress! + used, size - used, name, &st, off_t(i + 1))
            }
            if need > size - used { break }
            used += need
        }
        buf.withUnsafeBytes { r.buffer($0.baseAddress, used) }
    }

    func open(_ r: Reply, ino: fuse_ino_t, fi: UnsafeMutablePointer<fuse_file_info>) {
        guard let n = node(ino), exists(n) else { return r.error(ENOENT) }
        // Direct I/O everywhere: the daemon sees every image I/O (nothing cached twice under a
        // loop device), and `cat` of a pseudo-file always sees fresh, whole contents.
        aoefs_fi_set_direct_io(fi, 1)
        let handle: UInt64 = state.withLock { s in
            defer { s.nextHandle += 1 }
            if case .image(let t) = n { s.openImages[t, default: 0] += 1 }
            return s.nextHandle
        }
        // A new reader of err starts at the lines logged from now on, like /dev/etherd/err.
        if case .control(.err) = n {
            let last = engine.errorLines(after: 0).last?.0 ?? 0
            state.withLock { $0.errCursor[handle] = last }
        }
        fi.pointee.fh = handle
        r.open(fi)
    }

    func release(_ r: Reply, ino: fuse_ino_t, fh: UInt64) {
        state.withLock { s in
            if case .image(let t)? = s.inodes.node(UInt64(ino)) { s.openImages[t, default: 1] -= 1 }
            s.errCursor[fh] = nil
        }
        r.error(0)
    }

    func read(_ r: Reply, ino: fuse_ino_t, size: Int, offset: Int, fh: UInt64) {
        guard let n = node(ino) else { return r.error(ENOENT) }
        switch n {
        case .image(let t):
            guard let capacity = engine.capacity(of: t).map({ Int($0) }) else { return r.error(ENODEV) }
            let count = max(0, min(size, capacity - offset))
            if count == 0 { return r.buffer(nil, 0) }
            let buffer = IOBuffer(uninitializedCount: count)
            track(+1)
            engine.read(t, offset: UInt64(offset), count: count, into: buffer) { [self] result in
                switch result {
                case .success where count >= Self.largeReply && waiting.load(ordering: .relaxed) > 1:
                    replies.async { [self] in
                        r.buffer(buffer.bytes.baseAddress, count)
                        track(-1)
                    }
                    return
                case .success: r.buffer(buffer.bytes.baseAddress, count)
                case .failure(let e): r.error(errnoValue(for: e))
                }
                track(-1)
            }
        case .targetFile(let t, let f):
            guard let s = snapshot(t) else { return r.error(ENODEV) }
            let open = state.withLock { $0.openImages[t] ?? 0 }
            let text = Array(Render.file(f, s, configuration: engine.configuration, openCount: open).utf8)
            r.bytes(Array(text.dropFirst(min(offset, text.count)).prefix(size)))
        case .control(.interfaces):
            let text = Array((engine.allowedInterfaces.joined(separator: " ") + "\n").utf8)
            r.bytes(Array(text.dropFirst(min(offset, text.count)).prefix(size)))
        case .control(.err):
            readErr(r, fh: fh, size: size)
        case .control:
            r.bytes([])
        default:
            r.error(EISDIR)
        }
    }

    /// One diagnostic line per read, blocking until one exists (Linux /dev/etherd/err).
    func readErr(_ r: Reply, fh: UInt64, size: Int) {
        let line: (UInt64, String)? = state.withLock { s in
            let cursor = s.errCursor[fh] ?? 0
            guard let l = engine.errorLines(after: cursor).first else { return nil }
            s.errCursor[fh] = l.0
            return l
        }
        if let line { return r.bytes(Array((line.1 + "\n").utf8.prefix(size))) }
        let id: UInt64? = state.withLock { s in
            if s.tornDown { return nil }
            let id = s.nextWaiter
            s.nextWaiter += 1
            s.errWaiters[id] = (r, fh)
            return id
        }
        guard let id else { return r.error(EINTR) }
        // An interrupted reader (Ctrl-C on `cat`) is answered EINTR at once.
        fuse_req_interrupt_func(r.request, { _, data in
            guard let data else { return }
            let box = Unmanaged<InterruptBox>.fromOpaque(data).takeUnretainedValue()
            box.fire()
        }, Unmanaged.passUnretained(InterruptBox.make(fs: self, id: id)).toOpaque())
        logged()  // a line may have arrived between the check and the parking
    }

    func interrupted(_ waiter: UInt64) {
        let r = state.withLock { $0.errWaiters.removeValue(forKey: waiter)?.reply }
        r?.error(EINTR)
    }

    func write(_ r: Reply, ino: fuse_ino_t, data: UnsafeRawBufferPointer, offset: Int) {
        guard let n = node(ino) else { return r.error(ENOENT) }
        switch n {
        case .image(let t):
            guard let capacity = engine.capacity(of: t) else { return r.error(ENODEV) }
            if offset + data.count > Int(capacity) { return r.error(ENOSPC) }
            // libfuse reuses its request buffer once this callback returns (pitfall 7). A large
            // write takes that buffer over instead (our own loop then gives libfuse a new one),
            // which saves copying a MiB on the receive thread; a small one is copied.
            let buffer: IOBuffer
            let block: MallocBlock?
            if data.count >= Self.adoptedWrite, let base = serving?.adoptBuffer() {
                block = MallocBlock(base)
                buffer = IOBuffer(borrowing: UnsafeMutableRawBufferPointer(mutating: data))
            } else {
                block = nil
                buffer = IOBuffer(uninitializedCount: data.count)
                buffer.bytes.copyMemory(from: data)
            }
            track(+1)
            let count = data.count
            engine.write(t, offset: UInt64(offset), count: count, from: buffer) { [self] result in
                withExtendedLifetime(block) {}
                switch result {
                case .success: r.written(count)
                case .failure(let e): r.error(errnoValue(for: e))
                }
                track(-1)
            }
        case .control(let c):
            let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            if let problem = control(c, text) {
                engine.note("etherd/\(c.rawValue): \(problem)")
                logged()
                return r.error(EINVAL)
            }
            r.written(data.count)
        case .targetFile(_, .config):
            r.error(EOPNOTSUPP)
        default:
            r.error(EACCES)
        }
    }

    /// Acts on a write to a control file. Returns a reason when it makes no sense.
    func control(_ c: ControlFile, _ text: String) -> String? {
        switch c {
        case .discover:
            if text.isEmpty {
                engine.discover()
            } else if let t = TargetAddress(parsing: text) {
                engine.discover(t)
            } else if let shelf = UInt16(text) {
                engine.discover(TargetAddress(shelf: Shelf(shelf), slot: .broadcast))
            } else {
                return "«\(text)» is not a shelf (10) or shelf.slot (10.3)"
            }
        case .interfaces:
            let names = text.split(whereSeparator: { " \t\n,".contains($0) }).map(String.init)
            let unknown = engine.setAllowedInterfaces(names)
            if !unknown.isEmpty { return "unknown interface \(unknown.joined(separator: ", "))" }
        case .revalidate:
            guard let t = TargetAddress(parsing: text), engine.targets().contains(where: { $0.address == t }) else {
                return "no target «\(text)» (write eS.L, e.g. e10.3)"
            }
            engine.revalidate(t)
        case .flush:
            let open = state.withLock { $0.openImages }
            let all = engine.targets()
            switch text {
            case "":
                for t in all where t.state == .down && (open[t.address] ?? 0) == 0 { engine.remove(t.address) }
            case "all":
                for t in all where (open[t.address] ?? 0) == 0 { engine.remove(t.address) }
            default:
                guard let t = TargetAddress(parsing: text), all.contains(where: { $0.address == t }) else {
                    return "no target «\(text)» (write \"\", \"all\" or eS.L)"
                }
                engine.remove(t)
            }
        case .err:
            return "err is read-only"
        }
        return nil
    }

    func fsync(_ r: Reply, ino: fuse_ino_t) {
        guard case .image(let t)? = node(ino) else { return r.error(0) }
        track(+1)
        engine.flush(t) { [self] result in
            switch result {
            case .success: r.error(0)
            case .failure(let e): r.error(errnoValue(for: e))
            }
            track(-1)
        }
    }

    func statfs(_ r: Reply) {
        var s = statvfs()
        s.f_bsize = 4096
        s.f_frsize = 4096
        s.f_blocks = fsblkcnt_t(imageTargets().compactMap(\.identity).map(\.capacity).reduce(0, +) / 4096)
        s.f_namemax = 255
        r.statfs(s)
    }

    /// Counts requests waiting for the engine, so teardown can drain them.
    func track(_ delta: Int) { waiting.add(delta, ordering: .acquiringAndReleasing) }
}

/// The FUSE session as an engine event source: reads requests from /dev/fuse without blocking
/// and dispatches them (libfuse's own single-threaded loop, one request at a time, turned inside
/// out so the engine's receive thread can run it between frames).
final class SessionSource: EventSource, @unchecked Sendable {
    // @unchecked: `buffer` and `error` are touched only inside `service()`, which the engine
    // runs on one thread at a time (under its source lock); `error` is read after `detach`.
    let session: OpaquePointer
    let descriptor: Int32
    private var buffer = fuse_buf()
    private var adopted = false
    /// libfuse's error if reading the device failed (0 after a clean unmount).
    private(set) var error: Int32 = 0

    init?(session: OpaquePointer) {
        self.session = session
        descriptor = fuse_session_fd(session)
        let flags = fcntl(descriptor, F_GETFL)
        guard descriptor >= 0, flags >= 0, fcntl(descriptor, F_SETFL, flags | O_NONBLOCK) == 0 else { return nil }
    }

    deinit { free(buffer.mem) }

    /// Called by a request handler during `service()`: the current request buffer becomes the
    /// caller's (free it with `free`) and libfuse gets a new one for the next request.
    func adoptBuffer() -> UnsafeMutableRawPointer? {
        guard let m = buffer.mem else { return nil }
        adopted = true
        return m
    }

    func service() -> Bool {
        // At most a few requests per call, so frames are not kept waiting behind a burst.
        for _ in 0..<32 {
            let r = fuse_session_receive_buf(session, &buffer)
            if r == -EINTR { continue }
            if r == -EAGAIN { return true }
            if r <= 0 {
                // 0: unmounted (libfuse has set the exit flag); < 0: the device failed.
                if r < 0 {
                    error = r
                    fuse_session_exit(session)
                }
                return false
            }
            fuse_session_process_buf(session, &buffer)
            if adopted {
                // A write kept the buffer: libfuse allocates a fresh one on the next read.
                buffer.mem = nil
                adopted = false
            }
            if fuse_session_exited(session) != 0 { return false }
        }
        return true
    }
}

/// A malloc'd block, freed when the last reference goes (an adopted libfuse request buffer).
final class MallocBlock: @unchecked Sendable {
    // @unchecked: immutable; the block is only freed in deinit.
    let base: UnsafeMutableRawPointer
    init(_ base: UnsafeMutableRawPointer) { self.base = base }
    deinit { free(base) }
}

/// Carries an interrupt from libfuse back to the parked `etherd/err` reader.
///
/// libfuse may call the interrupt function while (or just after) the request is answered, so a
/// box is not freed when its reader is answered: the last 4096 are kept, and older ones go.
final class InterruptBox: @unchecked Sendable {
    // @unchecked: immutable after creation; the table below (under `lock`) keeps it alive.
    let fs: AoEFileSystem
    let id: UInt64
    nonisolated(unsafe) static var live: [InterruptBox] = []
    static let lock = NSLockLite()
    static let keep = 4096

    private init(fs: AoEFileSystem, id: UInt64) {
        self.fs = fs
        self.id = id
    }

    static func make(fs: AoEFileSystem, id: UInt64) -> InterruptBox {
        let b = InterruptBox(fs: fs, id: id)
        lock.lock()
        live.append(b)
        if live.count > keep { live.removeFirst(live.count - keep) }
        lock.unlock()
        return b
    }

    func fire() { fs.interrupted(id) }
}

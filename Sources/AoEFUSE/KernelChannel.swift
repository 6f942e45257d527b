import AoECore
import AoEEngine
import AoELinux
import FUSEProtocol
import Foundation
import Synchronization

/// What the user asked of our core's transport (`aoefs mount --fuse-transport`, `-o io_uring`).
public enum FUSETransportChoice: String, Sendable, CaseIterable {
    /// FUSE over io_uring when the fuse module offers it (`enable_uring` is Y), else /dev/fuse.
    case auto
    /// /dev/fuse.
    case device
    /// FUSE over io_uring; /dev/fuse with one log line when the kernel does not offer it.
    case ioURing = "io_uring"

    /// Entries per queue: a queue serves the requests of one CPU's callers, so this many can
    /// be in flight from one CPU (fio at QD 32 on one CPU wants 32).
    public static let defaultDepth = 32

    /// Threads that serve the kernel's requests by default: one, the link's event loop. More
    /// (`--threads`) measured slower on a 2-CPU machine whose target shares the CPUs (issue 32,
    /// Docs/performance.md: 4 KiB reads at QD 1 0.57 × over io_uring, 0.88 × over /dev/fuse;
    /// 1 MiB reads 0.80–0.97 ×; 1 MiB writes 0.94–1.14 ×): each hand-over costs a wake-up, and
    /// one serving thread left only 7–17 % of the machine idle for others to use.
    public static let defaultThreads = 1
}

/// How our core takes requests from the kernel and answers them.
public enum FUSETransport: Sendable, Equatable {
    /// read(2) and writev(2) on /dev/fuse (transport 1).
    case device
    /// FUSE over io_uring (transport 2) with `depth` entries per queue; /dev/fuse if the kernel
    /// does not offer it (one log line says so).
    case ring(depth: Int)
}

/// Our FUSE session (issue 15): libfuse mounted the tree and gave us the /dev/fuse descriptor;
/// this takes each request without blocking, decodes it, calls the tree's operation, and sends
/// the reply, over /dev/fuse or a ring (`RingTransport`).
///
/// Who serves it (issue 32): with one thread, the engine's first event loop, in its passes beside
/// the link's frames (it is that loop's event source); with more, `ServingThreads` (one ring
/// each, or readers of /dev/fuse), so that the kernel's copies of requests and replies — which
/// run in the context of the thread that reads or commits — are spread over the CPUs instead of
/// all landing on the receive thread.
final class KernelChannel: EventSource, @unchecked Sendable {
    // @unchecked: `mainBuffer` is touched only inside `service`, which one event loop runs, and
    // each serving thread's buffer only by it; `state` (interrupt waiters, closed) is locked;
    // the counters are atomic.
    /// What the engine watches: the ring's descriptor when there is one, else /dev/fuse.
    let descriptor: Int32
    /// The session's /dev/fuse.
    let device: Int32
    /// The ring, when FUSE over io_uring was asked for and could be set up.
    let ring: RingTransport?
    /// A request was answered through the ring (the first one is logged; a load, not a
    /// read-modify-write, per request).
    private let ringServed = Atomic<Bool>(false)
    unowned let fs: AoEFileSystem
    private let onEnd: @Sendable () -> Void
    /// The buffer /dev/fuse is read into when the event loop serves.
    private let mainBuffer: RequestBuffer
    private let state = Locked(InterruptTable())
    /// The threads that serve, when more than one does (empty: the engine's first event loop).
    let threads: [ServingThread]
    /// Serving threads that have ended (`stopServing` waits for all of them).
    let threadsEnded = Locked(0)
    /// Serving threads whose ring entries are registered (the last one says so in the log).
    let threadsRegistered = Atomic<Int>(0)
    /// /dev/fuse said the session ended (its poll is not re-armed after that).
    let deviceEnded = Atomic<Bool>(false)
    private let endError = Atomic<Int32>(0)
    /// The error that ended serving (0 after a clean unmount).
    var error: Int32 { endError.load(ordering: .relaxed) }

    /// - Parameters:
    ///   - device: the mounted session's /dev/fuse descriptor.
    ///   - threads: how many threads serve (1: the engine's first event loop; see the type).
    init?(
        device: Int32, fs: AoEFileSystem, transport: FUSETransport = .device, threads: Int = 1,
        onEnd: @escaping @Sendable () -> Void
    ) {
        self.device = device
        let flags = fcntl(device, F_GETFL)
        guard device >= 0, flags >= 0, fcntl(device, F_SETFL, flags | O_NONBLOCK) == 0,
            let b = RequestBuffer()
        else { return nil }
        mainBuffer = b
        self.fs = fs
        self.onEnd = onEnd
        var ring: RingTransport?
        if case .ring(let depth) = transport {
            do throws(ProcessError) {
                ring = try RingTransport(fuseFD: device, queues: possibleCPUCount(), depth: depth, threads: threads)
            } catch {
                fs.engine.note("fuse: FUSE over io_uring: \(error); serving over /dev/fuse")
            }
        }
        self.ring = ring
        descriptor = ring?.rings[0].ring.descriptor ?? device
        // Over the ring, one thread per ring; over /dev/fuse, as many readers as asked for.
        let count = ring?.rings.count ?? max(1, threads)
        var made: [ServingThread] = []
        if count > 1 {
            for i in 0..<count {
                guard let t = try? ServingThread(index: i) else { return nil }
                made.append(t)
            }
        }
        self.threads = made
    }

    func service(_ outbox: inout Outbox) -> Bool {
        guard let ring else { return serviceDevice(limit: 32, buffer: mainBuffer, &outbox).alive }
        ring.rings[0].ring.reap { c in handle(c, ring: ring, buffer: mainBuffer, &outbox) }
        return !deviceEnded.load(ordering: .relaxed)
    }

    /// One completion of a ring: /dev/fuse readable (ring 0's poll), a serving thread's wake-up,
    /// a request in an entry, or an entry's command that failed.
    func handle(
        _ c: IORing.Completion, ring: RingTransport, buffer: RequestBuffer, thread: ServingThread? = nil,
        _ outbox: inout Outbox
    ) {
        if c.userData == RingTransport.pollTag {
            // /dev/fuse is readable: read it dry, since the multishot poll reports only new
            // readiness. INTERRUPTs, FORGETs, and every request until the ring is ready.
            guard !deviceEnded.load(ordering: .relaxed) else { return }
            if !serviceDevice(limit: .max, buffer: buffer, &outbox).alive { return }
            if c.flags & IORing.moreFlag == 0, !ring.rearmPoll() {
                fs.engine.note("fuse: cannot re-arm the ring's poll of /dev/fuse")
            }
        } else if c.userData == RingTransport.wakeTag, let thread {
            thread.wake.drain()
            if c.flags & IORing.moreFlag == 0, !thread.armWake(on: ring.rings[thread.index].ring) {
                fs.engine.note("fuse: cannot re-arm serving thread \(thread.index)'s wake-up")
            }
        } else if c.result == 0, c.userData < UInt64(ring.entries) {
            handleRing(slot: Int(c.userData), &outbox)
        } else {
            ringFailed(slot: Int(truncatingIfNeeded: c.userData), c.result)
        }
    }

    /// Flushes an outbox of replies made outside a pass (the engine sends its frames, the ring
    /// its commits).
    func flush(_ outbox: inout Outbox) { fs.engine.flush(&outbox) }

    /// Reads and serves up to `limit` requests from /dev/fuse into `buffer`: how many it read,
    /// and whether the session goes on (false once it ended).
    func serviceDevice(limit: Int, buffer: RequestBuffer, _ outbox: inout Outbox) -> (alive: Bool, served: Int) {
        var served = 0
        while served < limit {
            let n = read(device, buffer.base, RequestBuffer.size)
            if n <= 0 {
                // 0: the other end hung up (never from /dev/fuse; an in-memory wire in tests).
                switch n == 0 ? ENODEV : errno {
                case EAGAIN: return (true, served)
                case EINTR, ENOENT: continue  // ENOENT: the request was interrupted before we read it
                case ENODEV: break  // unmounted
                case let e: endError.store(-e, ordering: .relaxed)
                }
                ended()
                return (false, served)
            }
            served += 1
            let bytes = UnsafeRawBufferPointer(start: buffer.base, count: n)
            do throws(FUSEDecodeError) {
                let (header, request) = try FUSERequest.decode(bytes)
                dispatch(header, request, data: bytes, slot: -1, buffer: buffer, &outbox)
            } catch {
                undecodable(error, bytes, &outbox)
            }
            if !buffer.renew() {
                endError.store(-ENOMEM, ordering: .relaxed)
                ended()
                return (false, served)
            }
        }
        return (true, served)
    }

    /// The session ended (unmounted, or /dev/fuse failed): no reply after this; serving ends.
    private func ended() {
        deviceEnded.store(true, ordering: .relaxed)
        close()
        onEnd()
    }

    /// Serves the request the kernel put into ring entry `slot`.
    func handleRing(slot: Int, _ outbox: inout Outbox) {
        guard let ring else { return }
        let area = UnsafeRawBufferPointer(start: ring.header(slot), count: FUSERingLayout.headerAreaSize)
        let payload = UnsafeRawBufferPointer(start: ring.payload(slot), count: RingTransport.payloadSize)
        do throws(FUSEDecodeError) {
            let (header, request, commitID) = try FUSERequest.decode(ringHeader: area, payload: payload)
            if !ringServed.load(ordering: .relaxed), !ringServed.exchange(true, ordering: .relaxed) {
                fs.engine.note("fuse: FUSE over io_uring serves requests")
            }
            guard commitID == header.unique else {
                fs.engine.note("fuse: ring entry \(slot): commit id \(commitID) is not the request's \(header.unique)")
                return send(
                    FUSEReply.error(EIO).encoded(unique: commitID), unique: commitID, slot: Int32(slot), &outbox)
            }
            dispatch(header, request, data: payload, slot: Int32(slot), buffer: nil, &outbox)
        } catch {
            // Without a commit the entry would be lost; answer what can be read of the request.
            var r = FUSEReader(area, offset: FUSERingLayout.commitIDOffset)
            let unique = (try? r.u64("commit_id")) ?? 0
            fs.engine.note("fuse: a ring request we cannot decode (\(error)); answered EIO")
            send(FUSEReply.error(EIO).encoded(unique: unique), unique: unique, slot: Int32(slot), &outbox)
        }
    }

    /// A ring entry's command failed. At unmount every entry ends with ENOTCONN (or is
    /// cancelled): nothing to do. EAGAIN: registered before the kernel took the INIT reply; again.
    func ringFailed(slot: Int, _ result: Int32) {
        guard let ring, slot >= 0, slot < ring.entries else { return }
        switch -result {
        case ENOTCONN, ECANCELED, ECONNABORTED: return
        case EAGAIN where !state.withLock({ $0.closed }):
            if ring.register(slot: slot) != 0 { fs.engine.note("fuse: ring entry \(slot): cannot register it again") }
        default:
            // A refused REGISTER turns the ring off for the connection (dev_uring.c): the kernel
            // goes on over /dev/fuse.
            if ringErrors.add(1, ordering: .relaxed).oldValue == 0 {
                fs.engine.note(
                    "fuse: FUSE over io_uring: entry \(slot) failed: \(String(cString: strerror(-result))); "
                        + "requests go over /dev/fuse")
            }
        }
    }
    private let ringErrors = Atomic<Int>(0)

    /// No reply is written after this (teardown, before libfuse closes the descriptor).
    func close() {
        state.withLock { $0.closed = true }
        ring?.flushAll()  // commits queued before this reach the kernel
    }

    /// Sends one reply: `header` (the reply's header and arguments) then `payload`, in one
    /// writev on /dev/fuse, or into ring entry `slot` and committed.
    /// Over the ring the commit is queued, and handed to the kernel when `outbox` is flushed.
    func send(
        _ header: [UInt8], payload: UnsafeRawBufferPointer? = nil, unique: UInt64 = 0, slot: Int32 = -1,
        _ outbox: inout Outbox
    ) {
        header.withUnsafeBytes { h in
            if slot >= 0, let ring {
                let queued: RingQueue? = state.withLock { s in
                    s.answered(unique)
                    guard !s.closed else { return nil }
                    if let q = ring.commit(slot: Int(slot), unique: unique, encoded: h, data: payload) { return q }
                    // Too large for the entry (cannot be: max_write is its size), or the ring is gone.
                    return FUSEReply.error(EIO).encoded(unique: unique).withUnsafeBytes { e in
                        ring.commit(slot: Int(slot), unique: unique, encoded: e, data: nil)
                    }
                }
                if let queued { outbox.flushLater(queued) }
                return
            }
            // Two iovecs on the stack: the reply's header and, for a READ, its payload in place.
            var iov = (
                iovec(iov_base: UnsafeMutableRawPointer(mutating: h.baseAddress), iov_len: h.count),
                iovec(iov_base: UnsafeMutableRawPointer(mutating: payload?.baseAddress), iov_len: payload?.count ?? 0)
            )
            let count: Int32 = iov.1.iov_len > 0 ? 2 : 1
            withUnsafePointer(to: &iov) { p in
                p.withMemoryRebound(to: iovec.self, capacity: 2) { writeReply($0, count, unique: unique) }
            }
        }
    }

    /// Writes one reply, `count` iovecs at `v`, to /dev/fuse. One lock per reply: it forgets an
    /// interrupt watch on this request, and no reply is written once teardown closed the channel
    /// (the descriptor could be another file by then). ENOENT: the request was interrupted;
    /// nothing to do.
    private func writeReply(_ v: UnsafePointer<iovec>, _ count: Int32, unique: UInt64) {
        state.withLock { s in
            s.answered(unique)
            guard !s.closed else { return }
            _ = retryingEINTR { writev(device, v, count) }
        }
    }

    /// Writes a notification (unique 0) to /dev/fuse; dropped after teardown. Returns 0 or -errno
    /// (ENOENT: the kernel had no such entry cached).
    @discardableResult
    func notify(_ n: FUSENotification) -> Int32 {
        // Not under `state`: the kernel takes the directory's lock for an inval_entry and may wait
        // for a LOOKUP in it, whose reply needs `state`. The descriptor stays open meanwhile:
        // teardown destroys the session only after `Notifications.stop`.
        guard !state.withLock({ $0.closed }) else { return -EBADF }
        return n.encoded.withUnsafeBytes { b in
            retryingEINTR { write(device, b.baseAddress, b.count) } < 0 ? -errno : 0
        }
    }

    /// The ring entry's payload for a request in `slot`, for the reply's data to be received
    /// into (nil over /dev/fuse).
    func payload(slot: Int32, count: Int) -> UnsafeMutableRawBufferPointer? {
        guard slot >= 0, let ring, count <= RingTransport.payloadSize else { return nil }
        return UnsafeMutableRawBufferPointer(start: ring.payload(Int(slot)), count: count)
    }

    /// An INTERRUPT of `unique` is to wake err reader `waiter`. True when it came already (then
    /// the caller answers now).
    func watchInterrupt(of unique: UInt64, waiter: UInt64) -> Bool { state.withLock { $0.watch(unique, waiter) } }

    private func undecodable(_ error: FUSEDecodeError, _ bytes: UnsafeRawBufferPointer, _ outbox: inout Outbox) {
        fs.engine.note("fuse: a request we cannot decode (\(error)); answered EIO")
        if bytes.count >= 16 {
            var r = FUSEReader(bytes, offset: 8)
            if let unique = try? r.u64("unique") {
                send(FUSEReply.error(EIO).encoded(unique: unique), unique: unique, &outbox)
            }
        }
    }

    /// Calls the tree's operation for one request. `data` holds a WRITE's data at its
    /// `dataOffset`; `slot` is the ring entry the request came in (-1: /dev/fuse). Every request
    /// but FORGET and INTERRUPT is answered through its `Reply`, once.
    private func dispatch(
        _ header: FUSEInHeader, _ request: FUSERequest, data: UnsafeRawBufferPointer, slot: Int32,
        buffer: RequestBuffer?, _ outbox: inout Outbox
    ) {
        let ino = header.nodeID
        let r = Reply(channel: self, unique: header.unique, slot: slot)
        switch request {
        case .initialize(let i):
            guard i.major == FUSEVersion.major else { return r.send(.error(EPROTO), &outbox) }
            // Many direct I/O requests in flight; the page cache with write-back for buffered
            // opens (issue 23); and the ring, when we have one.
            var wanted =
                FUSEInitFlags.asyncRead | FUSEInitFlags.asyncDIO | FUSEInitFlags.bigWrites
                | FUSEInitFlags.maxPages | FUSEInitFlags.initExt | FUSEInitFlags.writebackCache
            if ring != nil { wanted |= FUSEInitFlags.overIOURing }
            var o = FUSEInitOut(
                maxReadahead: i.maxReadahead, flags: i.flags & wanted, maxBackground: 128,
                congestionThreshold: 96, maxWrite: UInt32(RingTransport.payloadSize), maxPages: 256)
            o.minor = min(i.minor, FUSEVersion.minor)
            r.send(.initialize(o), &outbox)
            // The entries can be registered only once the kernel has the INIT reply.
            fs.engine.flush(&outbox)
            if let ring { startRing(ring, offered: i.flags & FUSEInitFlags.overIOURing != 0) }
        case .lookup(let name): r.send(fs.lookup(parent: ino, name: String(decoding: name, as: UTF8.self)), &outbox)
        case .forget, .batchForget: r.noReply()  // no reply; inode numbers are never reused
        case .getattr: r.send(fs.getattr(ino: ino), &outbox)
        case .setattr: r.send(fs.setattr(ino: ino), &outbox)
        case .open(let flags): r.send(fs.open(ino: ino, flags: flags), &outbox)
        case .release(let fh, _, _): r.send(fs.release(fh: fh), &outbox)
        case .read(let fh, let offset, let size):
            // Offsets are clamped, never trapped on: the kernel keeps them within
            // MAX_LFS_FILESIZE (Int64.max), but this is input (issue 30's audit).
            r.send(fs.read(r, ino: ino, size: Int(size), offset: Int(clamping: offset), fh: fh, &outbox), &outbox)
        case .write(let fh, let offset, let size, let flags, let at):
            let data = UnsafeRawBufferPointer(rebasing: data[at..<(at + Int(size))])
            r.send(
                fs.write(
                    r, ino: ino, data: data, offset: Int(clamping: offset), fh: fh, writeFlags: flags,
                    adopt: { buffer?.adopt() }, &outbox), &outbox)
        case .flush(let fh): r.send(fs.flush(fh: fh), &outbox)
        case .releasedir: r.send(.error(0), &outbox)
        case .fsync(let fh, _): r.send(fs.fsync(r, ino: ino, fh: fh, &outbox), &outbox)
        case .opendir: r.send(.open(fh: 0, openFlags: 0), &outbox)
        case .readdir(_, let offset, let size, let plus):
            // READDIRPLUS is not asked for (no FUSE_DO_READDIRPLUS).
            r.send(
                plus ? .error(ENOSYS) : fs.readdir(ino: ino, size: Int(size), offset: Int(clamping: offset)), &outbox)
        case .statfs: r.send(fs.statfs(), &outbox)
        case .fallocate(let fh, let offset, let length, let mode):
            r.send(fs.fallocate(r, ino: ino, fh: fh, offset: offset, length: length, mode: mode, &outbox), &outbox)
        case .interrupt(let unique):
            r.noReply()  // no reply to an INTERRUPT
            if let waiter = state.withLock({ $0.interrupt(unique) }) {
                fs.errReaders.interrupted(waiter, &outbox)
            } else {
                // An image READ still waiting (a `dd` from a dead target, Ctrl-C): it fails with
                // EINTR now, not after deadsecs. dd catches SIGINT, so the kernel waits for our
                // answer. Nothing waits under that id: nothing happens.
                fs.engine.cancelRead(owner: unique, outbox: &outbox)
            }
        case .destroy: r.send(.error(0), &outbox)
        case .unknown: r.send(.error(ENOSYS), &outbox)
        }
    }

    /// After the INIT reply: registers the ring's entries if the kernel offered the ring, and
    /// says in one log line which transport serves.
    private func startRing(_ ring: RingTransport, offered: Bool) {
        guard offered else {
            return fs.engine.note(
                "fuse: the kernel did not offer FUSE over io_uring "
                    + "(/sys/module/fuse/parameters/enable_uring is N?); serving over /dev/fuse")
        }
        guard !threads.isEmpty else { return registered(ring, ring: 0, result: ring.registerAll(ring: 0)) }
        // Each ring's thread registers its own entries: the kernel hands an entry's requests to
        // the thread that submitted its command.
        for t in threads {
            t.post { [self] _ in registered(ring, ring: t.index, result: ring.registerAll(ring: t.index)) }
        }
    }

    /// Ring `index`'s entries were registered (`result` 0) or not; the last ring says so in the log.
    private func registered(_ ring: RingTransport, ring index: Int, result: Int32) {
        guard result == 0 else {
            return fs.engine.note(
                "fuse: FUSE over io_uring: cannot register the entries of ring \(index) "
                    + "(\(String(cString: strerror(-result)))); the kernel goes on over /dev/fuse")
        }
        guard threadsRegistered.add(1, ordering: .relaxed).newValue >= ring.rings.count else { return }
        fs.engine.note(
            "fuse: FUSE over io_uring: \(ring.queues) queues × \(ring.depth) entries registered"
                + (ring.rings.count > 1 ? ", served by \(ring.rings.count) threads" : ""))
    }
}

/// Which parked requests an INTERRUPT wakes, and the INTERRUPTs that came before their request
/// was parked. Over the ring a request arrives as a ring completion and its INTERRUPT on
/// /dev/fuse: the two are reaped in either order (the kernel posts the request's completion as
/// task work on our thread), so an INTERRUPT may name a request we have not seen yet. It is kept
/// until the request is parked or answered (libfuse keeps such early interrupts too, in
/// `se->interrupts`). Without this an interrupted `cat etherd/err` could stay in D state for good.
struct InterruptTable {
    var waiters: [UInt64: UInt64] = [:]
    /// INTERRUPTs of requests not (yet) parked, oldest first; a few at most (one per interrupted
    /// caller), bounded against a kernel that interrupts requests long answered.
    var early: [UInt64] = []
    var closed = false
    static let earlyLimit = 64

    /// Parks `unique` for `waiter`; true when its INTERRUPT came already.
    mutating func watch(_ unique: UInt64, _ waiter: UInt64) -> Bool {
        if let i = early.firstIndex(of: unique) {
            early.remove(at: i)
            return true
        }
        waiters[unique] = waiter
        return false
    }

    /// An INTERRUPT of `unique`: the waiter to wake, or nil (then it is kept as early).
    mutating func interrupt(_ unique: UInt64) -> UInt64? {
        if let w = waiters.removeValue(forKey: unique) { return w }
        early.append(unique)
        if early.count > Self.earlyLimit { early.removeFirst(early.count - Self.earlyLimit) }
        return nil
    }

    /// `unique` was answered: nothing wakes it any more.
    mutating func answered(_ unique: UInt64) {
        guard unique != 0 else { return }
        if !waiters.isEmpty { waiters[unique] = nil }
        if !early.isEmpty, let i = early.firstIndex(of: unique) { early.remove(at: i) }
    }
}

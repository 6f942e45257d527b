import AoECore
import AoEEngine
import AoELinux
import CFuse3
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
/// the reply, over /dev/fuse or a ring (`RingTransport`). It runs as the engine's event source,
/// on the receive thread, between frames, as `SessionSource` does for libfuse.
final class KernelChannel: EventSource, @unchecked Sendable {
    // @unchecked: `buffer` and `adopted` are touched only inside `service()`, which
    // the engine runs on one thread at a time; `state` (interrupt waiters, closed) is locked.
    /// What the engine watches: the ring's descriptor when there is one, else /dev/fuse.
    let descriptor: Int32
    /// The session's /dev/fuse.
    let device: Int32
    /// The ring, when FUSE over io_uring was asked for and could be set up.
    let ring: RingTransport?
    /// Requests answered through the ring (the first one is logged).
    private var ringRequests = 0
    /// READ replies sent from the frames their data came in (the first one is logged).
    private let gatheredReplies = Atomic<Int>(0)
    private unowned let fs: AoEFileSystem
    private let onEnd: @Sendable () -> Void
    /// One request: the largest WRITE (max_write, 1 MiB) and its headers.
    static let bufferSize = (1 << 20) + 4096
    private var buffer: UnsafeMutableRawPointer
    private var adopted = false
    private let state = Locked(InterruptTable())
    /// The error that ended serving (0 after a clean unmount).
    private(set) var error: Int32 = 0

    init?(session: OpaquePointer, fs: AoEFileSystem, transport: FUSETransport = .device,
          onEnd: @escaping @Sendable () -> Void) {
        device = fuse_session_fd(session)
        let flags = fcntl(device, F_GETFL)
        guard device >= 0, flags >= 0, fcntl(device, F_SETFL, flags | O_NONBLOCK) == 0,
              let b = malloc(Self.bufferSize) else { return nil }
        buffer = b
        self.fs = fs
        self.onEnd = onEnd
        var ring: RingTransport?
        if case .ring(let depth) = transport {
            do throws(ProcessError) {
                ring = try RingTransport(fuseFD: device, queues: possibleCPUCount(), depth: depth)
            } catch {
                fs.engine.note("fuse: FUSE over io_uring: \(error); serving over /dev/fuse")
            }
        }
        self.ring = ring
        descriptor = ring?.ring.descriptor ?? device
    }

    deinit { if !adopted { free(buffer) } }

    /// The current request's buffer becomes the caller's (freed with `free`, by `MallocBlock`);
    /// the next request is read into a new one. For large writes, whose data then need no copy.
    func adoptBuffer() -> UnsafeMutableRawPointer? {
        adopted = true
        return buffer
    }

    func service() -> Bool {
        guard let ring else { return serviceDevice(limit: 32) }
        var alive = true
        ring.serving()
        ring.ring.reap { c in
            if c.userData == RingTransport.pollTag {
                // /dev/fuse is readable: read it dry, since the multishot poll reports only new
                // readiness. INTERRUPTs, FORGETs, and every request until the ring is ready.
                if alive { alive = serviceDevice(limit: .max) }
                if alive, c.flags & IORing.moreFlag == 0, !ring.rearmPoll() {
                    fs.engine.note("fuse: cannot re-arm the ring's poll of /dev/fuse")
                }
            } else if c.result == 0, c.userData < UInt64(ring.entries) {
                handleRing(slot: Int(c.userData))
            } else {
                ringFailed(slot: Int(truncatingIfNeeded: c.userData), c.result)
            }
        }
        ring.flush()
        return alive
    }

    /// Reads and serves up to `limit` requests from /dev/fuse; false once the session ended.
    private func serviceDevice(limit: Int) -> Bool {
        var served = 0
        while served < limit {
            served += 1
            let n = read(device, buffer, Self.bufferSize)
            if n < 0 {
                switch errno {
                case EAGAIN: return true
                case EINTR, ENOENT: continue  // ENOENT: the request was interrupted before we read it
                case ENODEV: break  // unmounted
                default: error = -errno
                }
                close()
                onEnd()
                return false
            }
            let bytes = UnsafeRawBufferPointer(start: buffer, count: n)
            do throws(FUSEDecodeError) {
                let (header, request) = try FUSERequest.decode(bytes)
                dispatch(header, request, data: bytes, slot: -1)
            } catch {
                undecodable(error, bytes)
            }
            if adopted {
                guard let b = malloc(Self.bufferSize) else {
                    error = -ENOMEM
                    close()
                    onEnd()
                    return false
                }
                buffer = b
                adopted = false
            }
        }
        return true
    }

    /// Serves the request the kernel put into ring entry `slot`.
    private func handleRing(slot: Int) {
        guard let ring else { return }
        let area = UnsafeRawBufferPointer(start: ring.header(slot), count: FUSERingLayout.headerAreaSize)
        let payload = UnsafeRawBufferPointer(start: ring.payload(slot), count: RingTransport.payloadSize)
        do throws(FUSEDecodeError) {
            let (header, request, commitID) = try FUSERequest.decode(ringHeader: area, payload: payload)
            if ringRequests == 0 { fs.engine.note("fuse: FUSE over io_uring serves requests") }
            ringRequests += 1
            guard commitID == header.unique else {
                fs.engine.note("fuse: ring entry \(slot): commit id \(commitID) is not the request's \(header.unique)")
                return send(FUSEReply.error(EIO).encoded(unique: commitID), unique: commitID, slot: Int32(slot))
            }
            dispatch(header, request, data: payload, slot: Int32(slot))
        } catch {
            // Without a commit the entry would be lost; answer what can be read of the request.
            var r = FUSEReader(area, offset: FUSERingLayout.commitIDOffset)
            let unique = (try? r.u64("commit_id")) ?? 0
            fs.engine.note("fuse: a ring request we cannot decode (\(error)); answered EIO")
            send(FUSEReply.error(EIO).encoded(unique: unique), unique: unique, slot: Int32(slot))
        }
    }

    /// A ring entry's command failed. At unmount every entry ends with ENOTCONN (or is
    /// cancelled): nothing to do. EAGAIN: registered before the kernel took the INIT reply; again.
    private func ringFailed(slot: Int, _ result: Int32) {
        guard let ring, slot >= 0, slot < ring.entries else { return }
        switch -result {
        case ENOTCONN, ECANCELED, ECONNABORTED: return
        case EAGAIN where !state.withLock({ $0.closed }):
            if ring.register(slot: slot) != 0 { fs.engine.note("fuse: ring entry \(slot): cannot register it again") }
        default:
            // A refused REGISTER turns the ring off for the connection (dev_uring.c): the kernel
            // goes on over /dev/fuse.
            if ringErrors == 0 {
                fs.engine.note("fuse: FUSE over io_uring: entry \(slot) failed: \(String(cString: strerror(-result))); "
                               + "requests go over /dev/fuse")
            }
            ringErrors += 1
        }
    }
    private var ringErrors = 0

    /// No reply is written after this (teardown, before libfuse closes the descriptor).
    func close() {
        state.withLock { $0.closed = true }
        ring?.flush()  // replies queued on the receive thread before this reach the kernel
    }

    /// Sends one reply: `header` (the reply's header and arguments) then `payload`, in one
    /// writev on /dev/fuse, or into ring entry `slot` and committed.
    func send(_ header: [UInt8], payload: UnsafeRawBufferPointer? = nil, unique: UInt64 = 0, slot: Int32 = -1) {
        header.withUnsafeBytes { h in
            if slot >= 0, let ring {
                state.withLock { s in
                    s.answered(unique)
                    guard !s.closed else { return }
                    if !ring.commit(slot: Int(slot), unique: unique, encoded: h, data: payload) {
                        // Too large for the entry (cannot be: max_write is its size), or the ring is gone.
                        FUSEReply.error(EIO).encoded(unique: unique).withUnsafeBytes { e in
                            _ = ring.commit(slot: Int(slot), unique: unique, encoded: e, data: nil)
                        }
                    }
                }
                return
            }
            // Two iovecs on the stack: the reply's header and, for a READ, its payload in place.
            var iov = (iovec(iov_base: UnsafeMutableRawPointer(mutating: h.baseAddress), iov_len: h.count),
                       iovec(iov_base: UnsafeMutableRawPointer(mutating: payload?.baseAddress), iov_len: payload?.count ?? 0))
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
            _ = retryingNegativeEINTR { Int(writev(device, v, count)) < 0 ? -Int(errno) : 0 }
        }
    }

    /// The most pieces a gathered reply's data may come in: writev takes UIO_MAXIOV (1024)
    /// iovecs, one of them the header.
    static let maxReplyPieces = 1023

    /// Sends a READ's reply over /dev/fuse as `header` then `pieces` (the frames its data came
    /// in), in one writev: the data is not copied before the kernel copies it to the reader.
    /// - Precondition: at most `maxReplyPieces` pieces, and not a ring request (its data is
    ///   received into the entry).
    func send(_ header: [UInt8], pieces: [UnsafeRawBufferPointer], unique: UInt64) {
        precondition(pieces.count <= Self.maxReplyPieces, "more pieces than one writev takes")
        if pieces.count > 1, gatheredReplies.add(1, ordering: .relaxed).oldValue == 0 {
            fs.engine.note("fuse: READ replies are gathered from the frames")
        }
        header.withUnsafeBytes { h in
            withUnsafeTemporaryAllocation(of: iovec.self, capacity: pieces.count + 1) { v in
                v[0] = iovec(iov_base: UnsafeMutableRawPointer(mutating: h.baseAddress), iov_len: h.count)
                for (i, p) in pieces.enumerated() {
                    v[i + 1] = iovec(iov_base: UnsafeMutableRawPointer(mutating: p.baseAddress), iov_len: p.count)
                }
                writeReply(v.baseAddress!, Int32(pieces.count + 1), unique: unique)
            }
        }
    }

    /// Writes a notification (unique 0) to /dev/fuse; dropped after teardown. Returns 0 or -errno
    /// (ENOENT: the kernel had no such entry cached).
    @discardableResult
    func notify(_ n: FUSENotification) -> Int32 {
        // Not under `state`: the kernel takes the directory's lock for an inval_entry and may wait
        // for a LOOKUP in it, whose reply needs `state`. The descriptor stays open meanwhile:
        // teardown destroys the session only after the caller's `notificationsStopped`.
        guard !state.withLock({ $0.closed }) else { return -EBADF }
        return n.encoded.withUnsafeBytes { b in
            Int32(retryingNegativeEINTR { write(device, b.baseAddress, b.count) < 0 ? -Int(errno) : 0 })
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

    private func undecodable(_ error: FUSEDecodeError, _ bytes: UnsafeRawBufferPointer) {
        fs.engine.note("fuse: a request we cannot decode (\(error)); answered EIO")
        if bytes.count >= 16 {
            var r = FUSEReader(bytes, offset: 8)
            if let unique = try? r.u64("unique") { send(FUSEReply.error(EIO).encoded(unique: unique), unique: unique) }
        }
    }

    /// Calls the tree's operation for one request. `data` holds a WRITE's data at its
    /// `dataOffset`; `slot` is the ring entry the request came in (-1: /dev/fuse).
    private func dispatch(_ header: FUSEInHeader, _ request: FUSERequest, data: UnsafeRawBufferPointer, slot: Int32) {
        let ino = fuse_ino_t(header.nodeID)
        let r = Reply(channel: self, unique: header.unique, slot: slot)
        switch request {
        case .initialize(let i):
            guard i.major == FUSEVersion.major else { return r.error(EPROTO) }
            // What libfuse asked for before (FileSystem's init): many direct I/O requests in
            // flight; and the ring, when we have one.
            var wanted = FUSEInitFlags.asyncRead | FUSEInitFlags.asyncDIO | FUSEInitFlags.bigWrites
                | FUSEInitFlags.maxPages | FUSEInitFlags.initExt
            if ring != nil { wanted |= FUSEInitFlags.overIOURing }
            var o = FUSEInitOut(maxReadahead: i.maxReadahead, flags: i.flags & wanted, maxBackground: 128,
                                congestionThreshold: 96, maxWrite: UInt32(RingTransport.payloadSize), maxPages: 256)
            o.minor = min(i.minor, FUSEVersion.minor)
            send(FUSEReply.initialize(o).encoded(unique: header.unique), unique: header.unique)
            r.noReply()
            if let ring { startRing(ring, offered: i.flags & FUSEInitFlags.overIOURing != 0) }
        case .lookup(let name): fs.lookup(r, parent: ino, name: String(decoding: name, as: UTF8.self))
        case .forget, .batchForget: r.noReply()  // no reply; inode numbers are never reused
        case .getattr: fs.getattr(r, ino: ino)
        case .setattr: fs.setattr(r, ino: ino)
        case .open(let flags):
            var fi = fuse_file_info()
            fi.flags = Int32(bitPattern: flags)
            fs.open(r, ino: ino, fi: &fi)
        case .release(let fh, _, _): fs.release(r, ino: ino, fh: fh)
        case .read(let fh, let offset, let size): fs.read(r, ino: ino, size: Int(size), offset: Int(offset), fh: fh)
        case .write(let fh, let offset, let size, _, let at):
            fs.write(r, ino: ino, data: UnsafeRawBufferPointer(rebasing: data[at..<(at + Int(size))]), offset: Int(offset),
                     fh: fh)
        case .flush, .releasedir: r.error(0)
        case .fsync: fs.fsync(r, ino: ino)
        case .opendir:
            send(FUSEReply.open(fh: 0, openFlags: 0).encoded(unique: header.unique), unique: header.unique, slot: slot)
            r.noReply()
        case .readdir(_, let offset, let size, let plus):
            if plus { return r.error(ENOSYS) }  // not asked for (no FUSE_DO_READDIRPLUS)
            fs.readdir(r, ino: ino, size: Int(size), offset: Int(offset))
        case .statfs: fs.statfs(r)
        case .interrupt(let unique):
            r.noReply()  // no reply to an INTERRUPT
            if let waiter = state.withLock({ $0.interrupt(unique) }) { fs.interrupted(waiter) }
        case .destroy: r.error(0)
        case .unknown: r.error(ENOSYS)
        }
    }

    /// After the INIT reply: registers the ring's entries if the kernel offered the ring, and
    /// says in one log line which transport serves.
    private func startRing(_ ring: RingTransport, offered: Bool) {
        guard offered else {
            return fs.engine.note("fuse: the kernel did not offer FUSE over io_uring "
                                  + "(/sys/module/fuse/parameters/enable_uring is N?); serving over /dev/fuse")
        }
        let r = ring.registerAll()
        if r == 0 {
            fs.engine.note("fuse: FUSE over io_uring: \(ring.queues) queues × \(ring.depth) entries registered")
        } else {
            fs.engine.note("fuse: FUSE over io_uring: cannot register the entries (\(String(cString: strerror(-r)))); "
                           + "the kernel goes on over /dev/fuse")
        }
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

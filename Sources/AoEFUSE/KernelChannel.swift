import AoECore
import AoEEngine
import AoELinux
import CFuse3
import FUSEProtocol
import Foundation

/// Which code speaks the FUSE protocol: libfuse's session loop, or ours (`KernelChannel`).
public enum FUSECore: String, Sendable, CaseIterable {
    case libfuse
    /// Our own: requests read from /dev/fuse and decoded with FUSEProtocol, replies encoded and
    /// written back (a READ's payload gathered with its header, not copied). libfuse only mounts.
    case own
}

/// Our FUSE session on /dev/fuse (issue 15, transport 1): libfuse mounted the tree and gave us
/// the descriptor; this reads each request without blocking, decodes it, calls the tree's
/// operation, and writes the reply. It runs as the engine's event source, on the receive
/// thread, between frames, as `SessionSource` does for libfuse.
final class KernelChannel: EventSource, @unchecked Sendable {
    // @unchecked: `buffer`, `adopted` and `initialized` are touched only inside `service()`, which
    // the engine runs on one thread at a time; `state` (interrupt waiters, closed) is locked.
    let descriptor: Int32
    private unowned let fs: AoEFileSystem
    private let onEnd: @Sendable () -> Void
    /// One request: the largest WRITE (max_write, 1 MiB) and its headers.
    static let bufferSize = (1 << 20) + 4096
    private var buffer: UnsafeMutableRawPointer
    private var adopted = false
    private var initialized = false
    private let state = Locked((waiters: [UInt64: UInt64](), closed: false))
    /// The error that ended serving (0 after a clean unmount).
    private(set) var error: Int32 = 0

    init?(session: OpaquePointer, fs: AoEFileSystem, onEnd: @escaping @Sendable () -> Void) {
        descriptor = fuse_session_fd(session)
        let flags = fcntl(descriptor, F_GETFL)
        guard descriptor >= 0, flags >= 0, fcntl(descriptor, F_SETFL, flags | O_NONBLOCK) == 0,
              let b = malloc(Self.bufferSize) else { return nil }
        buffer = b
        self.fs = fs
        self.onEnd = onEnd
    }

    deinit { if !adopted { free(buffer) } }

    /// The current request's buffer becomes the caller's (freed with `free`, by `MallocBlock`);
    /// the next request is read into a new one. For large writes, whose data then need no copy.
    func adoptBuffer() -> UnsafeMutableRawPointer? {
        adopted = true
        return buffer
    }

    func service() -> Bool {
        for _ in 0..<32 {
            let n = read(descriptor, buffer, Self.bufferSize)
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
            handle(UnsafeRawBufferPointer(start: buffer, count: n))
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

    /// No reply is written after this (teardown, before libfuse closes the descriptor).
    func close() { state.withLock { $0.closed = true } }

    /// Writes one reply: `header` (with the reply's header) then `payload`, in one writev.
    func send(_ header: [UInt8], payload: UnsafeRawBufferPointer? = nil, unique: UInt64 = 0) {
        header.withUnsafeBytes { h in
            // Two iovecs on the stack: the reply's header and, for a READ, its payload in place.
            var iov = (iovec(iov_base: UnsafeMutableRawPointer(mutating: h.baseAddress), iov_len: h.count),
                       iovec(iov_base: UnsafeMutableRawPointer(mutating: payload?.baseAddress), iov_len: payload?.count ?? 0))
            let count: Int32 = iov.1.iov_len > 0 ? 2 : 1
            withUnsafePointer(to: &iov) { p in
                p.withMemoryRebound(to: iovec.self, capacity: 2) { v in
                    // One lock per reply: it forgets an interrupt watch on this request, and no
                    // reply is written once teardown closed the channel (the descriptor could be
                    // another file by then). ENOENT: the request was interrupted; nothing to do.
                    state.withLock { s in
                        if unique != 0, !s.waiters.isEmpty { s.waiters[unique] = nil }
                        guard !s.closed else { return }
                        _ = retryingNegativeEINTR { Int(writev(descriptor, v, count)) < 0 ? -Int(errno) : 0 }
                    }
                }
            }
        }
    }

    /// An INTERRUPT of `unique` is to wake err reader `waiter`.
    func watchInterrupt(of unique: UInt64, waiter: UInt64) { state.withLock { $0.waiters[unique] = waiter } }

    private func handle(_ bytes: UnsafeRawBufferPointer) {
        let header: FUSEInHeader
        let request: FUSERequest
        do throws(FUSEDecodeError) {
            (header, request) = try FUSERequest.decode(bytes)
        } catch {
            fs.engine.note("fuse: a request we cannot decode (\(error)); answered EIO")
            if bytes.count >= 16 {
                var r = FUSEReader(bytes, offset: 8)
                if let unique = try? r.u64("unique") { send(FUSEReply.error(EIO).encoded(unique: unique), unique: unique) }
            }
            return
        }
        let ino = fuse_ino_t(header.nodeID)
        let r = Reply(channel: self, unique: header.unique)
        switch request {
        case .initialize(let i):
            initialized = true
            guard i.major == FUSEVersion.major else { return r.error(EPROTO) }
            // What libfuse asked for before (FileSystem's init): many direct I/O requests in flight.
            let wanted = FUSEInitFlags.asyncRead | FUSEInitFlags.asyncDIO | FUSEInitFlags.bigWrites
                | FUSEInitFlags.maxPages | FUSEInitFlags.initExt
            let out = FUSEInitOut(maxReadahead: i.maxReadahead, flags: i.flags & wanted, maxBackground: 128,
                                  congestionThreshold: 96, maxWrite: 1 << 20, maxPages: 256)
            var o = out
            o.minor = min(i.minor, FUSEVersion.minor)
            send(FUSEReply.initialize(o).encoded(unique: header.unique), unique: header.unique)
            _ = r.take()
        case .lookup(let name): fs.lookup(r, parent: ino, name: String(decoding: name, as: UTF8.self))
        case .forget, .batchForget: _ = r.take()  // no reply; inode numbers are never reused
        case .getattr: fs.getattr(r, ino: ino)
        case .setattr: fs.setattr(r, ino: ino)
        case .open(let flags):
            var fi = fuse_file_info()
            fi.flags = Int32(bitPattern: flags)
            fs.open(r, ino: ino, fi: &fi)
        case .release(let fh, _, _): fs.release(r, ino: ino, fh: fh)
        case .read(let fh, let offset, let size): fs.read(r, ino: ino, size: Int(size), offset: Int(offset), fh: fh)
        case .write(let fh, let offset, let size, _, let at):
            fs.write(r, ino: ino, data: UnsafeRawBufferPointer(rebasing: bytes[at..<(at + Int(size))]), offset: Int(offset),
                     fh: fh)
        case .flush, .releasedir: r.error(0)
        case .fsync: fs.fsync(r, ino: ino)
        case .opendir: send(FUSEReply.open(fh: 0, openFlags: 0).encoded(unique: header.unique), unique: header.unique); _ = r.take()
        case .readdir(_, let offset, let size, let plus):
            if plus { return r.error(ENOSYS) }  // not asked for (no FUSE_DO_READDIRPLUS)
            fs.readdir(r, ino: ino, size: Int(size), offset: Int(offset))
        case .statfs: fs.statfs(r)
        case .interrupt(let unique):
            _ = r.take()  // no reply to an INTERRUPT
            if let waiter = state.withLock({ $0.waiters.removeValue(forKey: unique) }) { fs.interrupted(waiter) }
        case .destroy: r.error(0)
        case .unknown: r.error(ENOSYS)
        }
        _ = initialized
    }
}

import AoECore
import AoEEngine
import AoELinux
import CFuse3
import FUSEProtocol
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// One FUSE request's answer, sent exactly once: the libfuse contract ("must be passed to one of
/// the reply functions", fuse_lowlevel.h), and ours. A reply dropped unsent answers EIO rather
/// than leave a `dd` hanging forever (fuser's habit).
///
/// Two back ends: libfuse's request (its session loop), or our own channel on /dev/fuse
/// (`KernelChannel`, issue 15), which encodes with FUSEProtocol.
final class Reply: @unchecked Sendable {
    // @unchecked: the back end is used by whichever single thread completes the request; every
    // send path goes through `take()`, whose atomic exchange lets exactly one of them through.
    enum Backend {
        case libfuse(fuse_req_t)
        /// Our core; `slot` is the ring entry the request came in (-1: /dev/fuse).
        case kernel(KernelChannel, unique: UInt64, slot: Int32)
    }
    private let backend: Backend
    private let sent = Atomic<Bool>(false)

    init(_ raw: fuse_req_t) { backend = .libfuse(raw) }
    init(channel: KernelChannel, unique: UInt64, slot: Int32 = -1) {
        backend = .kernel(channel, unique: unique, slot: slot)
    }

    /// Where a READ's data should be received so that the reply needs no copy: the ring
    /// entry's payload (nil over /dev/fuse and libfuse; then the caller allocates).
    func dataBuffer(count: Int) -> UnsafeMutableRawBufferPointer? {
        guard case .kernel(let c, _, let slot) = backend else { return nil }
        return c.payload(slot: slot, count: count)
    }

    /// Whether a READ's reply can be gathered from the frames (our core over /dev/fuse).
    var gathers: Bool {
        if case .kernel(_, _, let slot) = backend { return slot < 0 }
        return false
    }

    /// Whether the request came in a ring entry. Then its bytes (a WRITE's data) stay put until
    /// this reply is sent — the kernel reuses the entry only after the commit — and the reply is
    /// best committed on the receive thread (see `read`).
    var viaRing: Bool {
        if case .kernel(_, _, let slot) = backend { return slot >= 0 }
        return false
    }

    @discardableResult
    func take() -> Backend? {
        sent.exchange(true, ordering: .acquiringAndReleasing) ? nil : backend
    }

    private func send(_ reply: FUSEReply, _ channel: KernelChannel, _ unique: UInt64, _ slot: Int32) {
        channel.send(reply.encoded(unique: unique), unique: unique, slot: slot)
    }

    func error(_ code: Int32) {
        switch take() {
        case .libfuse(let r)?: fuse_reply_err(r, code)
        case .kernel(let c, let u, let slot)?: send(.error(code), c, u, slot)
        case nil: return
        }
    }

    func buffer(_ p: UnsafeRawPointer?, _ count: Int) {
        switch take() {
        case .libfuse(let r)?: fuse_reply_buf(r, p?.assumingMemoryBound(to: CChar.self), count)
        case .kernel(let c, let u, let slot)?:
            // Header and payload gathered in one writev: the payload is not copied into a reply.
            c.send(FUSEReply.data(count: count).encoded(unique: u), payload: UnsafeRawBufferPointer(start: p, count: count),
                   unique: u, slot: slot)
        case nil: return
        }
    }

    /// A READ's `count` bytes from `buffer`: over /dev/fuse gathered from the frames the data
    /// came in (`IOBuffer(gathering:)`), else from its bytes.
    func read(_ buffer: IOBuffer, count: Int) {
        guard case .kernel(let c, let u, let slot) = backend, slot < 0, buffer.gathers else {
            return self.buffer(buffer.bytes.baseAddress, count)
        }
        guard take() != nil else { return }
        buffer.withGathered(0..<count, maxPieces: KernelChannel.maxReplyPieces) { pieces in
            c.send(FUSEReply.data(count: count).encoded(unique: u), pieces: pieces, unique: u)
        }
    }

    func bytes(_ b: [UInt8]) { b.withUnsafeBytes { buffer($0.baseAddress, $0.count) } }

    func written(_ count: Int) {
        switch take() {
        case .libfuse(let r)?: fuse_reply_write(r, count)
        case .kernel(let c, let u, let slot)?: send(.write(size: UInt32(count)), c, u, slot)
        case nil: return
        }
    }

    func attributes(_ st: stat, timeout: Double) {
        switch take() {
        case .libfuse(let r)?:
            var st = st
            fuse_reply_attr(r, &st, timeout)
        case .kernel(let c, let u, let slot)?: send(.attr(FUSEAttr(st), validSeconds: UInt64(timeout)), c, u, slot)
        case nil: return
        }
    }

    func entry(_ e: fuse_entry_param) {
        switch take() {
        case .libfuse(let r)?:
            var e = e
            fuse_reply_entry(r, &e)
        case .kernel(let c, let u, let slot)?:
            send(.entry(nodeID: UInt64(e.ino), attr: FUSEAttr(e.attr), entryValidSeconds: UInt64(e.entry_timeout),
                        attrValidSeconds: UInt64(e.attr_timeout)), c, u, slot)
        case nil: return
        }
    }

    /// Answers an OPEN: the handle in `fi`, always direct I/O (see `open`).
    func open(_ fi: UnsafeMutablePointer<fuse_file_info>) {
        switch take() {
        case .libfuse(let r)?: fuse_reply_open(r, fi)
        case .kernel(let c, let u, let slot)?: send(.open(fh: fi.pointee.fh, openFlags: FUSEOpenFlags.directIO), c, u, slot)
        case nil: return
        }
    }

    func statfs(_ s: statvfs) {
        switch take() {
        case .libfuse(let r)?:
            var s = s
            fuse_reply_statfs(r, &s)
        case .kernel(let c, let u, let slot)?:
            var out = FUSEStatfs(blocks: UInt64(s.f_blocks))
            out.bsize = UInt32(s.f_bsize)
            out.frsize = UInt32(s.f_frsize)
            out.namelen = UInt32(s.f_namemax)
            send(.statfs(out), c, u, slot)
        case nil: return
        }
    }

    /// A directory listing from `offset`: `(name, inode, is a directory)` each, as many as fit
    /// `size` bytes.
    func directory(_ entries: [(String, UInt64, Bool)], size: Int, offset: Int) {
        switch backend {
        case .libfuse(let r):
            var buf = [CChar](repeating: 0, count: size)
            var used = 0
            for (i, (name, ino, isDir)) in entries.enumerated() where i >= offset {
                var st = stat()
                st.st_ino = __ino_t(ino)
                st.st_mode = isDir ? S_IFDIR : S_IFREG
                let need = buf.withUnsafeMutableBufferPointer { b in
                    fuse_add_direntry(r, b.baseAddress! + used, size - used, name, &st, off_t(i + 1))
                }
                if need > size - used { break }
                used += need
            }
            buf.withUnsafeBytes { buffer($0.baseAddress, used) }
        case .kernel:
            var w = FUSEDirectoryWriter(limit: size)
            for (i, (name, ino, isDir)) in entries.enumerated() where i >= offset {
                if !w.add(name: Array(name.utf8), ino: ino, next: UInt64(i + 1), type: isDir ? 4 : 8) { break }
            }
            bytes(w.bytes)
        }
    }

    /// Calls `interrupted(id)` on `fs` if the kernel interrupts this request (a blocked reader).
    func onInterrupt(_ id: UInt64) {
        switch backend {
        case .libfuse(let r):
            // The interrupt function gets the request (whose userdata is the file system, alive
            // as long as the session) and the waiter's id as its data pointer: nothing is
            // allocated, so nothing can be freed too early when libfuse calls it just after the reply.
            fuse_req_interrupt_func(r, { req, data in
                guard let req, let userdata = fuse_req_userdata(req) else { return }
                let fs = Unmanaged<AoEFileSystem>.fromOpaque(userdata).takeUnretainedValue()
                fs.interrupted(UInt64(UInt(bitPattern: data)))
            }, UnsafeMutableRawPointer(bitPattern: UInt(id)))
        case .kernel(let c, let u, _): c.watchInterrupt(of: u, waiter: id)
        }
    }

    deinit {
        if !sent.load(ordering: .acquiring) {
            switch backend {
            case .libfuse(let r): fuse_reply_err(r, EIO)
            case .kernel(let c, let u, let slot): c.send(FUSEReply.error(EIO).encoded(unique: u), unique: u, slot: slot)
            }
        }
    }
}

extension FUSEAttr {
    /// A `stat` as the kernel's `fuse_attr`.
    init(_ st: stat) {
        self.init(ino: UInt64(st.st_ino), size: UInt64(max(st.st_size, 0)), blocks: UInt64(max(st.st_blocks, 0)),
                  atime: UInt64(max(st.st_atim.tv_sec, 0)), mtime: UInt64(max(st.st_mtim.tv_sec, 0)),
                  ctime: UInt64(max(st.st_ctim.tv_sec, 0)), mode: UInt32(st.st_mode), nlink: UInt32(st.st_nlink),
                  uid: st.st_uid, gid: st.st_gid, blksize: UInt32(max(st.st_blksize, 0)))
    }
}

/// The one place engine errors become errno values for FUSE.
func errnoValue(for error: AoEIOError) -> Int32 {
    switch error {
    case .beyondEnd: ENOSPC
    case .noSuchTarget: ENODEV
    case .targetDown, .disabled, .ataError, .aoeError, .shutdown: EIO
    }
}

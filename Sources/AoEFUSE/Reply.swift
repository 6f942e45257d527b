import AoECore
import AoEEngine
import AoELinux
import CFuse3
import FUSEProtocol
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// One FUSE request's answer, sent exactly once over our channel (`KernelChannel`, issue 15),
/// encoded with FUSEProtocol. A reply dropped unsent answers EIO rather than leave a `dd`
/// hanging forever (fuser's habit).
final class Reply: @unchecked Sendable {
    // @unchecked: used by whichever single thread completes the request; every send path goes
    // through `take()`, whose atomic exchange lets exactly one of them through.
    private let channel: KernelChannel
    private let unique: UInt64
    /// The ring entry the request came in (-1: /dev/fuse).
    private let slot: Int32
    private let sent = Atomic<Bool>(false)

    init(channel: KernelChannel, unique: UInt64, slot: Int32 = -1) {
        self.channel = channel
        self.unique = unique
        self.slot = slot
    }

    /// Where a READ's data should be received so that the reply needs no copy: the ring
    /// entry's payload (nil over /dev/fuse; then the caller allocates).
    func dataBuffer(count: Int) -> UnsafeMutableRawBufferPointer? { channel.payload(slot: slot, count: count) }

    /// Whether the request came in a ring entry. Then its bytes (a WRITE's data) stay put until
    /// this reply is sent — the kernel reuses the entry only after the commit — and the reply is
    /// best committed on the receive thread (see `read`).
    var viaRing: Bool { slot >= 0 }

    /// True for the one caller that may send; false once the reply is sent.
    private func take() -> Bool { !sent.exchange(true, ordering: .acquiringAndReleasing) }

    private func send(_ reply: FUSEReply) {
        guard take() else { return }
        channel.send(reply.encoded(unique: unique), unique: unique, slot: slot)
    }

    func error(_ code: Int32) { send(.error(code)) }

    /// The request takes no reply (FORGET, INTERRUPT) or has had one by other means.
    func noReply() { _ = take() }

    func buffer(_ p: UnsafeRawPointer?, _ count: Int) {
        guard take() else { return }
        // Header and payload gathered in one writev: the payload is not copied into a reply.
        channel.send(FUSEReply.data(count: count).encoded(unique: unique),
                     payload: UnsafeRawBufferPointer(start: p, count: count), unique: unique, slot: slot)
    }

    /// A READ's `count` bytes from `buffer`: over /dev/fuse gathered from the frames the data
    /// came in (`IOBuffer(gathering:)`), else from its bytes.
    func read(_ buffer: IOBuffer, count: Int) {
        guard slot < 0, buffer.gathers else { return self.buffer(buffer.bytes.baseAddress, count) }
        guard take() else { return }
        buffer.withGathered(0..<count, maxPieces: KernelChannel.maxReplyPieces) { pieces in
            channel.send(FUSEReply.data(count: count).encoded(unique: unique), pieces: pieces, unique: unique)
        }
    }

    func bytes(_ b: [UInt8]) { b.withUnsafeBytes { buffer($0.baseAddress, $0.count) } }

    func written(_ count: Int) { send(.write(size: UInt32(count))) }

    func attributes(_ st: stat, timeout: Double) { send(.attr(FUSEAttr(st), validSeconds: UInt64(timeout))) }

    func entry(_ e: fuse_entry_param) {
        send(.entry(nodeID: UInt64(e.ino), attr: FUSEAttr(e.attr), entryValidSeconds: UInt64(e.entry_timeout),
                    attrValidSeconds: UInt64(e.attr_timeout)))
    }

    /// Answers an OPEN: the handle in `fi`, always direct I/O (see `open`).
    func open(_ fi: UnsafeMutablePointer<fuse_file_info>) {
        send(.open(fh: fi.pointee.fh, openFlags: FUSEOpenFlags.directIO))
    }

    func statfs(_ s: statvfs) {
        var out = FUSEStatfs(blocks: UInt64(s.f_blocks))
        out.bsize = UInt32(s.f_bsize)
        out.frsize = UInt32(s.f_frsize)
        out.namelen = UInt32(s.f_namemax)
        send(.statfs(out))
    }

    /// A directory listing from `offset`: `(name, inode, is a directory)` each, as many as fit
    /// `size` bytes.
    func directory(_ entries: [(String, UInt64, Bool)], size: Int, offset: Int) {
        var w = FUSEDirectoryWriter(limit: size)
        for (i, (name, ino, isDir)) in entries.enumerated() where i >= offset {
            if !w.add(name: Array(name.utf8), ino: ino, next: UInt64(i + 1), type: isDir ? 4 : 8) { break }
        }
        bytes(w.bytes)
    }

    /// Calls `interrupted(id)` on the file system if the kernel interrupts this request (a
    /// blocked reader). True when the kernel interrupted it already: answer now.
    func onInterrupt(_ id: UInt64) -> Bool { channel.watchInterrupt(of: unique, waiter: id) }

    deinit {
        if !sent.load(ordering: .acquiring) {
            channel.send(FUSEReply.error(EIO).encoded(unique: unique), unique: unique, slot: slot)
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

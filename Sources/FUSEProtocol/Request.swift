/// FUSE kernel protocol 7.38 (Debian 12's `linux/fuse.h`), what aoefs's tree needs of it, plus
/// the 7.42 io_uring flag (`Constants.swift`). No I/O: bytes in, values out, and back.

/// The opcodes (`enum fuse_opcode`). Those the tree does not serve decode as `.unknown` and are
/// answered ENOSYS.
public enum FUSEOpcode: UInt32, Sendable, CaseIterable {
    case lookup = 1, forget = 2, getattr = 3, setattr = 4, readlink = 5, symlink = 6, mknod = 8, mkdir = 9
    case unlink = 10, rmdir = 11, rename = 12, link = 13, open = 14, read = 15, write = 16, statfs = 17
    case release = 18, fsync = 20, setxattr = 21, getxattr = 22, listxattr = 23, removexattr = 24, flush = 25
    case initialize = 26, opendir = 27, readdir = 28, releasedir = 29, fsyncdir = 30, getlk = 31, setlk = 32
    case setlkw = 33, access = 34, create = 35, interrupt = 36, bmap = 37, destroy = 38, ioctl = 39, poll = 40
    case notifyReply = 41, batchForget = 42, fallocate = 43, readdirplus = 44, rename2 = 45, lseek = 46
    case copyFileRange = 47, setupMapping = 48, removeMapping = 49, syncfs = 50, tmpfile = 51
}

/// `struct fuse_in_header`: 40 bytes before every request.
public struct FUSEInHeader: Sendable, Hashable {
    public static let size = 40
    public var length: UInt32
    public var opcode: UInt32
    public var unique: UInt64
    public var nodeID: UInt64
    public var uid: UInt32
    public var gid: UInt32
    public var pid: UInt32
    /// Length of extensions in 8-byte units (7.37+); aoefs asks for none.
    public var totalExtensionLength: UInt16

    public init(
        length: UInt32, opcode: UInt32, unique: UInt64, nodeID: UInt64, uid: UInt32 = 0, gid: UInt32 = 0,
        pid: UInt32 = 0, totalExtensionLength: UInt16 = 0
    ) {
        self.length = length
        self.opcode = opcode
        self.unique = unique
        self.nodeID = nodeID
        self.uid = uid
        self.gid = gid
        self.pid = pid
        self.totalExtensionLength = totalExtensionLength
    }
}

/// `struct fuse_init_in`.
public struct FUSEInitIn: Sendable, Hashable {
    public var major: UInt32
    public var minor: UInt32
    public var maxReadahead: UInt32
    /// `flags | flags2 << 32` (flags2 only when FUSE_INIT_EXT is set).
    public var flags: UInt64
    public init(major: UInt32, minor: UInt32, maxReadahead: UInt32, flags: UInt64) {
        self.major = major
        self.minor = minor
        self.maxReadahead = maxReadahead
        self.flags = flags
    }
}

/// `struct fuse_setattr_in`: which fields are valid, and those the tree looks at.
public struct FUSESetattrIn: Sendable, Hashable {
    public var valid: UInt32
    public var fh: UInt64
    public var size: UInt64
    public var mode: UInt32
    public var uid: UInt32
    public var gid: UInt32
    public init(valid: UInt32, fh: UInt64 = 0, size: UInt64 = 0, mode: UInt32 = 0, uid: UInt32 = 0, gid: UInt32 = 0) {
        self.valid = valid
        self.fh = fh
        self.size = size
        self.mode = mode
        self.uid = uid
        self.gid = gid
    }
}

/// One request, decoded. A WRITE's data is not copied: `dataOffset` says where it starts in
/// the buffer the request was read into (after the header and `fuse_write_in`).
public enum FUSERequest: Sendable, Hashable {
    case initialize(FUSEInitIn)
    case lookup(name: [UInt8])
    case forget(nlookup: UInt64)
    case batchForget([FUSEForget])
    case getattr(flags: UInt32, fh: UInt64)
    case setattr(FUSESetattrIn)
    case open(flags: UInt32)
    case release(fh: UInt64, flags: UInt32, releaseFlags: UInt32)
    case read(fh: UInt64, offset: UInt64, size: UInt32)
    case write(fh: UInt64, offset: UInt64, size: UInt32, writeFlags: UInt32, dataOffset: Int)
    case flush(fh: UInt64)
    case fsync(fh: UInt64, flags: UInt32)
    case opendir(flags: UInt32)
    case readdir(fh: UInt64, offset: UInt64, size: UInt32, plus: Bool)
    case releasedir(fh: UInt64)
    case statfs
    /// `fallocate(2)` on a file (`struct fuse_fallocate_in`); `mode` holds FALLOC_FL_* bits.
    case fallocate(fh: UInt64, offset: UInt64, length: UInt64, mode: UInt32)
    case interrupt(unique: UInt64)
    case destroy
    /// An opcode the tree does not serve (answered ENOSYS), or one not in 7.38 at all.
    case unknown(opcode: UInt32)
}

/// One entry of BATCH_FORGET (`struct fuse_forget_one`).
public struct FUSEForget: Sendable, Hashable {
    public var nodeID: UInt64
    public var nlookup: UInt64
    public init(nodeID: UInt64, nlookup: UInt64) {
        self.nodeID = nodeID
        self.nlookup = nlookup
    }
}

extension FUSERequest {
    /// Decodes one request as read from `/dev/fuse` (or a ring's header and payload joined).
    /// Never traps: every malformed input throws and says what is wrong.
    public static func decode(_ bytes: UnsafeRawBufferPointer) throws(FUSEDecodeError) -> (FUSEInHeader, FUSERequest) {
        var r = FUSEReader(bytes)
        let h = try header(&r)
        guard Int(h.length) == bytes.count else { throw .lengthMismatch(header: h.length, actual: bytes.count) }
        return (h, try body(h, &r, payload: nil))
    }

    /// `struct fuse_in_header`, read from the start of `r`.
    static func header(_ r: inout FUSEReader) throws(FUSEDecodeError) -> FUSEInHeader {
        let h = try FUSEInHeader(
            length: r.u32("in_header.len"), opcode: r.u32("in_header.opcode"),
            unique: r.u64("in_header.unique"), nodeID: r.u64("in_header.nodeid"),
            uid: r.u32("in_header.uid"), gid: r.u32("in_header.gid"),
            pid: r.u32("in_header.pid"), totalExtensionLength: r.u16("in_header.total_extlen"))
        try r.skip(2, "in_header.padding")
        return h
    }

    /// The request after its header: the per-opcode structure from `r`, and its variable part
    /// (a LOOKUP's name, a WRITE's data) from `r` too, or from `payload` when the request came
    /// through a ring, which keeps the two apart (then a WRITE's `dataOffset` is into `payload`).
    static func body(
        _ h: FUSEInHeader, _ r: inout FUSEReader,
        payload: UnsafeRawBufferPointer?
    ) throws(FUSEDecodeError) -> FUSERequest {
        guard let op = FUSEOpcode(rawValue: h.opcode) else { return .unknown(opcode: h.opcode) }
        let request: FUSERequest
        switch op {
        case .initialize:
            let major = try r.u32("init_in.major"), minor = try r.u32("init_in.minor")
            let readahead = try r.u32("init_in.max_readahead")
            var flags = try UInt64(r.u32("init_in.flags"))
            // flags2 exists from 7.36 on; a kernel older than that sends a 16-byte init_in.
            if minor >= 36, r.remaining >= 4, flags & FUSEInitFlags.initExt != 0 {
                flags |= try UInt64(r.u32("init_in.flags2")) << 32
            }
            request = .initialize(FUSEInitIn(major: major, minor: minor, maxReadahead: readahead, flags: flags))
        case .lookup:
            if let payload {
                var p = FUSEReader(payload)
                request = try .lookup(name: p.cString("lookup name"))
            } else {
                request = try .lookup(name: r.cString("lookup name"))
            }
        case .forget: request = try .forget(nlookup: r.u64("forget_in.nlookup"))
        case .batchForget:
            let count = try Int(r.u32("batch_forget_in.count"))
            try r.skip(4, "batch_forget_in.dummy")
            guard count <= r.remaining / 16 else { throw .tooMany("batch_forget_in.count", count) }
            var items: [FUSEForget] = []
            items.reserveCapacity(count)
            for _ in 0..<count {
                try items.append(FUSEForget(nodeID: r.u64("forget_one.nodeid"), nlookup: r.u64("forget_one.nlookup")))
            }
            request = .batchForget(items)
        case .getattr:
            let flags = try r.u32("getattr_in.getattr_flags")
            try r.skip(4, "getattr_in.dummy")
            request = try .getattr(flags: flags, fh: r.u64("getattr_in.fh"))
        case .setattr:
            let valid = try r.u32("setattr_in.valid")
            try r.skip(4, "setattr_in.padding")
            let fh = try r.u64("setattr_in.fh"), size = try r.u64("setattr_in.size")
            try r.skip(8 * 4 + 4 * 3, "setattr_in times")  // lock_owner, atime, mtime, ctime, *nsec
            let mode = try r.u32("setattr_in.mode")
            try r.skip(4, "setattr_in.unused4")
            let uid = try r.u32("setattr_in.uid"), gid = try r.u32("setattr_in.gid")
            try r.skip(4, "setattr_in.unused5")
            request = .setattr(FUSESetattrIn(valid: valid, fh: fh, size: size, mode: mode, uid: uid, gid: gid))
        case .open, .opendir:
            let flags = try r.u32("open_in.flags")
            try r.skip(4, "open_in.open_flags")
            request = op == .open ? .open(flags: flags) : .opendir(flags: flags)
        case .release, .releasedir:
            let fh = try r.u64("release_in.fh"), flags = try r.u32("release_in.flags")
            let releaseFlags = try r.u32("release_in.release_flags")
            try r.skip(8, "release_in.lock_owner")
            request = op == .release ? .release(fh: fh, flags: flags, releaseFlags: releaseFlags) : .releasedir(fh: fh)
        case .read, .readdir, .readdirplus:
            let fh = try r.u64("read_in.fh"), offset = try r.u64("read_in.offset"), size = try r.u32("read_in.size")
            try r.skip(4 + 8 + 4 + 4, "read_in.read_flags, lock_owner, flags, padding")
            request =
                op == .read
                ? .read(fh: fh, offset: offset, size: size)
                : .readdir(fh: fh, offset: offset, size: size, plus: op == .readdirplus)
        case .write:
            let fh = try r.u64("write_in.fh"), offset = try r.u64("write_in.offset"), size = try r.u32("write_in.size")
            let writeFlags = try r.u32("write_in.write_flags")
            try r.skip(8 + 4 + 4, "write_in.lock_owner, flags, padding")
            let room = payload?.count ?? r.remaining
            guard Int(size) <= room else { throw .truncated("write data", need: Int(size), have: room) }
            request = .write(
                fh: fh, offset: offset, size: size, writeFlags: writeFlags,
                dataOffset: payload == nil ? r.offset : 0)
        case .flush:
            let fh = try r.u64("flush_in.fh")
            try r.skip(4 + 4 + 8, "flush_in.unused, padding, lock_owner")
            request = .flush(fh: fh)
        case .fsync:
            let fh = try r.u64("fsync_in.fh"), flags = try r.u32("fsync_in.fsync_flags")
            try r.skip(4, "fsync_in.padding")
            request = .fsync(fh: fh, flags: flags)
        case .statfs: request = .statfs
        case .fallocate:
            let fh = try r.u64("fallocate_in.fh"), offset = try r.u64("fallocate_in.offset")
            let length = try r.u64("fallocate_in.length"), mode = try r.u32("fallocate_in.mode")
            try r.skip(4, "fallocate_in.padding")
            request = .fallocate(fh: fh, offset: offset, length: length, mode: mode)
        case .interrupt: request = try .interrupt(unique: r.u64("interrupt_in.unique"))
        case .destroy: request = .destroy
        default: request = .unknown(opcode: h.opcode)
        }
        return request
    }

    /// Decodes one request held in an array.
    public static func decode(_ bytes: [UInt8]) throws(FUSEDecodeError) -> (FUSEInHeader, FUSERequest) {
        let r: Result<(FUSEInHeader, FUSERequest), FUSEDecodeError> = bytes.withUnsafeBytes { b in
            do throws(FUSEDecodeError) { return .success(try decode(b)) } catch { return .failure(error) }
        }
        return try r.get()
    }

    /// The request's bytes as the kernel would send them (tests, fuzzing, and a peer in tests).
    public func encoded(unique: UInt64, nodeID: UInt64, writeData: [UInt8] = []) -> [UInt8] {
        var w = FUSEWriter()
        let opcode: UInt32
        switch self {
        case .initialize(let i):
            opcode = FUSEOpcode.initialize.rawValue
            w.u32(i.major); w.u32(i.minor); w.u32(i.maxReadahead); w.u32(UInt32(truncatingIfNeeded: i.flags))
            w.u32(UInt32(truncatingIfNeeded: i.flags >> 32)); w.zeros(11 * 4)
        case .lookup(let name): opcode = FUSEOpcode.lookup.rawValue; w.append(name); w.zeros(1)
        case .forget(let n): opcode = FUSEOpcode.forget.rawValue; w.u64(n)
        case .batchForget(let items):
            opcode = FUSEOpcode.batchForget.rawValue
            w.u32(UInt32(items.count)); w.zeros(4)
            for i in items { w.u64(i.nodeID); w.u64(i.nlookup) }
        case .getattr(let flags, let fh): opcode = FUSEOpcode.getattr.rawValue; w.u32(flags); w.zeros(4); w.u64(fh)
        case .setattr(let s):
            opcode = FUSEOpcode.setattr.rawValue
            w.u32(s.valid); w.zeros(4); w.u64(s.fh); w.u64(s.size); w.zeros(8 * 4 + 4 * 3); w.u32(s.mode); w.zeros(4)
            w.u32(s.uid); w.u32(s.gid); w.zeros(4)
        case .open(let flags): opcode = FUSEOpcode.open.rawValue; w.u32(flags); w.zeros(4)
        case .opendir(let flags): opcode = FUSEOpcode.opendir.rawValue; w.u32(flags); w.zeros(4)
        case .release(let fh, let flags, let rf):
            opcode = FUSEOpcode.release.rawValue; w.u64(fh); w.u32(flags); w.u32(rf); w.zeros(8)
        case .releasedir(let fh): opcode = FUSEOpcode.releasedir.rawValue; w.u64(fh); w.zeros(16)
        case .read(let fh, let offset, let size):
            opcode = FUSEOpcode.read.rawValue; w.u64(fh); w.u64(offset); w.u32(size); w.zeros(20)
        case .readdir(let fh, let offset, let size, let plus):
            opcode = (plus ? FUSEOpcode.readdirplus : .readdir).rawValue; w.u64(fh); w.u64(offset); w.u32(size);
            w.zeros(20)
        case .write(let fh, let offset, _, let wf, _):
            opcode = FUSEOpcode.write.rawValue
            w.u64(fh); w.u64(offset); w.u32(UInt32(writeData.count)); w.u32(wf); w.zeros(16); w.append(writeData)
        case .flush(let fh): opcode = FUSEOpcode.flush.rawValue; w.u64(fh); w.zeros(16)
        case .fsync(let fh, let flags): opcode = FUSEOpcode.fsync.rawValue; w.u64(fh); w.u32(flags); w.zeros(4)
        case .statfs: opcode = FUSEOpcode.statfs.rawValue
        case .fallocate(let fh, let offset, let length, let mode):
            opcode = FUSEOpcode.fallocate.rawValue; w.u64(fh); w.u64(offset); w.u64(length); w.u32(mode); w.zeros(4)
        case .interrupt(let u): opcode = FUSEOpcode.interrupt.rawValue; w.u64(u)
        case .destroy: opcode = FUSEOpcode.destroy.rawValue
        case .unknown(let op): opcode = op
        }
        var out = FUSEWriter(capacity: FUSEInHeader.size + w.bytes.count)
        out.u32(UInt32(FUSEInHeader.size + w.bytes.count)); out.u32(opcode); out.u64(unique); out.u64(nodeID)
        out.zeros(12 + 4)  // uid gid pid, total_extlen, padding
        out.append(w.bytes)
        return out.bytes
    }
}

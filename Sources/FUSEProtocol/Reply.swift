/// Replies (`struct fuse_out_header` and what follows) and notifications, as bytes for
/// `/dev/fuse` or a ring's payload. Pure.

/// `struct fuse_attr`.
public struct FUSEAttr: Sendable, Hashable {
    public var ino: UInt64
    public var size: UInt64
    public var blocks: UInt64
    public var atime: UInt64
    public var mtime: UInt64
    public var ctime: UInt64
    public var mode: UInt32
    public var nlink: UInt32
    public var uid: UInt32
    public var gid: UInt32
    public var blksize: UInt32

    public init(
        ino: UInt64, size: UInt64 = 0, blocks: UInt64 = 0, atime: UInt64 = 0, mtime: UInt64 = 0,
        ctime: UInt64 = 0, mode: UInt32, nlink: UInt32 = 1, uid: UInt32 = 0, gid: UInt32 = 0,
        blksize: UInt32 = 4096
    ) {
        self.ino = ino
        self.size = size
        self.blocks = blocks
        self.atime = atime
        self.mtime = mtime
        self.ctime = ctime
        self.mode = mode
        self.nlink = nlink
        self.uid = uid
        self.gid = gid
        self.blksize = blksize
    }

    static let size = 88

    func encode(_ w: inout FUSEWriter) {
        w.u64(ino); w.u64(size); w.u64(blocks); w.u64(atime); w.u64(mtime); w.u64(ctime)
        w.zeros(12)  // atimensec, mtimensec, ctimensec
        w.u32(mode); w.u32(nlink); w.u32(uid); w.u32(gid); w.u32(0)  // rdev
        w.u32(blksize); w.u32(0)  // flags
    }
}

/// `struct fuse_kstatfs`.
public struct FUSEStatfs: Sendable, Hashable {
    public var blocks: UInt64
    public var bfree: UInt64 = 0
    public var bavail: UInt64 = 0
    public var files: UInt64 = 0
    public var ffree: UInt64 = 0
    public var bsize: UInt32 = 4096
    public var namelen: UInt32 = 255
    public var frsize: UInt32 = 4096
    public init(blocks: UInt64) { self.blocks = blocks }
}

/// `struct fuse_init_out` fields aoefs sets.
public struct FUSEInitOut: Sendable, Hashable {
    public var minor: UInt32 = FUSEVersion.minor
    public var maxReadahead: UInt32
    public var flags: UInt64
    public var maxBackground: UInt16
    public var congestionThreshold: UInt16
    public var maxWrite: UInt32
    public var maxPages: UInt16
    public init(
        maxReadahead: UInt32, flags: UInt64, maxBackground: UInt16, congestionThreshold: UInt16,
        maxWrite: UInt32, maxPages: UInt16
    ) {
        self.maxReadahead = maxReadahead
        self.flags = flags
        self.maxBackground = maxBackground
        self.congestionThreshold = congestionThreshold
        self.maxWrite = maxWrite
        self.maxPages = maxPages
    }
}

/// One reply. `encoded(unique:)` gives its bytes; `.data` is the header of a reply whose
/// payload is sent from elsewhere (the request's buffer, as the second iovec of one `writev`, or
/// a ring entry's payload, where the engine received a READ's data).
public enum FUSEReply: Sendable, Hashable {
    /// An error (a positive errno), or 0 for "done, nothing to say" (RELEASE, FLUSH, FSYNC).
    case error(Int32)
    case initialize(FUSEInitOut)
    case entry(nodeID: UInt64, attr: FUSEAttr, entryValidSeconds: UInt64, attrValidSeconds: UInt64)
    case attr(FUSEAttr, validSeconds: UInt64)
    case open(fh: UInt64, openFlags: UInt32)
    case write(size: UInt32)
    case statfs(FUSEStatfs)
    /// Bytes of a READ or READDIR reply, here.
    case bytes([UInt8])
    /// Only the header of a reply with `count` payload bytes that follow from other buffers.
    case data(count: Int)

    public static let headerSize = 16

    /// The reply's bytes (for `.data`, only its header, whose length counts the payload).
    public func encoded(unique: UInt64) -> [UInt8] {
        // One array: the header with its length and error patched in once the body is written.
        var body = FUSEWriter(capacity: 96)
        body.zeros(Self.headerSize)
        var error: Int32 = 0
        var extra = 0
        switch self {
        case .error(let e): error = -abs(e)
        case .initialize(let i):
            body.u32(FUSEVersion.major); body.u32(i.minor); body.u32(i.maxReadahead)
            body.u32(UInt32(truncatingIfNeeded: i.flags)); body.u16(i.maxBackground); body.u16(i.congestionThreshold)
            body.u32(i.maxWrite); body.u32(1)  // time_gran: 1 ns
            body.u16(i.maxPages); body.u16(0)  // map_alignment
            body.u32(UInt32(truncatingIfNeeded: i.flags >> 32)); body.zeros(7 * 4)
        case .entry(let id, let attr, let ev, let av):
            body.u64(id); body.u64(0); body.u64(ev); body.u64(av); body.zeros(8)  // generation 0, nsecs 0
            attr.encode(&body)
        case .attr(let attr, let v): body.u64(v); body.zeros(8); attr.encode(&body)
        case .open(let fh, let flags): body.u64(fh); body.u32(flags); body.zeros(4)
        case .write(let size): body.u32(size); body.zeros(4)
        case .statfs(let s):
            body.u64(s.blocks); body.u64(s.bfree); body.u64(s.bavail); body.u64(s.files); body.u64(s.ffree)
            body.u32(s.bsize); body.u32(s.namelen); body.u32(s.frsize); body.zeros(4 + 6 * 4)
        case .bytes(let b): body.append(b)
        case .data(let count): extra = count
        }
        body.put(UInt64(UInt32(body.bytes.count + extra)) | UInt64(UInt32(bitPattern: error)) << 32, at: 0)
        body.put(unique, at: 8)
        return body.bytes
    }
}

/// READDIR and READDIRPLUS bodies: `struct fuse_dirent` (and `fuse_direntplus`), each padded
/// to 8 bytes; entries that do not fit the kernel's buffer are left for the next call.
public struct FUSEDirectoryWriter {
    public private(set) var bytes: [UInt8] = []
    public let limit: Int
    public init(limit: Int) { self.limit = limit }

    /// Adds an entry; false (and nothing added) when it does not fit. `next` is the offset the
    /// kernel passes back to continue after this entry; `type` is the file type (mode >> 12).
    public mutating func add(
        name: [UInt8], ino: UInt64, next: UInt64, type: UInt32,
        plus: (nodeID: UInt64, attr: FUSEAttr, validSeconds: UInt64)? = nil
    ) -> Bool {
        var w = FUSEWriter()
        if let plus {
            w.u64(plus.nodeID); w.u64(0); w.u64(plus.validSeconds); w.u64(plus.validSeconds); w.zeros(8)
            plus.attr.encode(&w)
        }
        w.u64(ino); w.u64(next); w.u32(UInt32(name.count)); w.u32(type); w.append(name); w.align8()
        guard bytes.count + w.bytes.count <= limit else { return false }
        bytes += w.bytes
        return true
    }
}

/// Notifications: unsolicited messages on `/dev/fuse` (unique 0, the code in `error`).
public enum FUSENotification: Sendable, Hashable {
    /// Forget the kernel's dentry `name` under `parent` (an image or partition went away).
    case invalEntry(parent: UInt64, name: [UInt8])
    /// Drop the cached attributes, and the pages of `length` bytes from `offset` (a length of 0
    /// or less: to the end; an offset below 0: no pages, attributes only).
    case invalInode(ino: UInt64, offset: Int64, length: Int64)
    /// Send again every request read and not answered: a daemon that took over from one that
    /// died (issue 30). No body.
    case resend

    public var encoded: [UInt8] {
        var body = FUSEWriter()
        let code: FUSENotifyCode
        switch self {
        case .invalEntry(let parent, let name):
            code = .invalEntry
            body.u64(parent); body.u32(UInt32(name.count)); body.u32(0); body.append(name); body.zeros(1)
        case .invalInode(let ino, let off, let len):
            code = .invalInode
            body.u64(ino); body.i64(off); body.i64(len)
        case .resend:
            code = .resend
        }
        var w = FUSEWriter()
        w.u32(UInt32(FUSEReply.headerSize + body.bytes.count)); w.i32(code.rawValue); w.u64(0)
        w.append(body.bytes)
        return w.bytes
    }
}

/// INIT flags (`FUSE_*` in `linux/fuse.h`): the low 32 bits are `flags`, the high 32 bits
/// `flags2` (sent only with `initExt`).
public enum FUSEInitFlags {
    public static let asyncRead: UInt64 = 1 << 0
    public static let bigWrites: UInt64 = 1 << 5
    public static let doReaddirplus: UInt64 = 1 << 13
    public static let asyncDIO: UInt64 = 1 << 15
    /// The kernel caches buffered writes and sends them later, page-aligned, as WRITEs with
    /// `FUSE_WRITE_CACHE` (write-back), and trusts its own idea of a regular file's size.
    public static let writebackCache: UInt64 = 1 << 16
    public static let parallelDirops: UInt64 = 1 << 18
    public static let maxPages: UInt64 = 1 << 22
    public static let initExt: UInt64 = 1 << 30
    /// FUSE-over-io_uring (protocol 7.42, Linux 6.14): `include/uapi/linux/fuse.h` defines
    /// `FUSE_OVER_IO_URING (1ULL << 41)`, bit 9 of `flags2`. Debian 12's header (7.38) lacks it.
    public static let overIOURing: UInt64 = 1 << 41
}

/// `enum fuse_notify_code`: the `error` field of an unsolicited message (unique 0).
public enum FUSENotifyCode: Int32, Sendable {
    case poll = 1, invalInode = 2, invalEntry = 3, store = 4, retrieve = 5, delete = 6
    /// FUSE_NOTIFY_RESEND (protocol 7.40, Linux 6.9): every request the kernel sent and got no
    /// reply to goes back to the pending queue, marked with `FUSEUnique.resend`, and is read again.
    case resend = 7
}

/// The protocol version aoefs speaks: 7.38 as in Debian 12's header; a newer kernel agrees to
/// it (the daemon answers INIT with its own minor when lower, fuse(4)).
public enum FUSEVersion {
    public static let major: UInt32 = 7
    public static let minor: UInt32 = 38
}

/// `FOPEN_*` flags of an OPEN reply.
public enum FUSEOpenFlags {
    /// Bypass the page cache for this open file.
    public static let directIO: UInt32 = 1 << 0
    /// Keep the pages cached for the inode when this file is opened (a block device's cache
    /// outlives its opens; it is dropped by FUSE_NOTIFY_INVAL_INODE).
    public static let keepCache: UInt32 = 1 << 1
    /// Direct writes to this file are not serialised by the inode lock (protocol 7.36).
    public static let parallelDirectWrites: UInt32 = 1 << 6
}

/// `FUSE_WRITE_*` flags of a WRITE request.
public enum FUSEWriteFlags {
    /// A write-back of cached pages (the handle may be any writable open of the file).
    public static let cache: UInt32 = 1 << 0
}

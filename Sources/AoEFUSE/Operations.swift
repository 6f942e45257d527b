import AoECore
import AoEEngine
import CFuse3

/// The filesystem a request belongs to, from the session's userdata.
private func fs(_ req: fuse_req_t?) -> AoEFileSystem {
    Unmanaged<AoEFileSystem>.fromOpaque(fuse_req_userdata(req)!).takeUnretainedValue()
}

/// The low-level operations table. Built in a nonisolated library function: closures written
/// in top-level code of main.swift would be main-actor isolated and trap on libfuse's threads
/// (reference/swift-fuse-and-packet-notes.md, pitfall 3). Each closure captures nothing.
func makeOperations() -> fuse_lowlevel_ops {
    var ops = fuse_lowlevel_ops()
    ops.`init` = { _, conn in
        guard let conn else { return }
        // Let the kernel keep many direct I/O requests in flight (async DIO, and a background
        // queue well above the default 12): without this a QD 32 reader runs at QD 1.
        if conn.pointee.capable & UInt32(FUSE_CAP_ASYNC_DIO) != 0 { conn.pointee.want |= UInt32(FUSE_CAP_ASYNC_DIO) }
        conn.pointee.max_background = 128
        conn.pointee.congestion_threshold = 96
        conn.pointee.max_write = 1 << 20
    }
    ops.lookup = { req, parent, name in
        fs(req).lookup(Reply(req!), parent: parent, name: String(cString: name!))
    }
    ops.getattr = { req, ino, _ in fs(req).getattr(Reply(req!), ino: ino) }
    ops.setattr = { req, ino, _, _, _ in fs(req).setattr(Reply(req!), ino: ino) }
    ops.open = { req, ino, fi in fs(req).open(Reply(req!), ino: ino, fi: fi!) }
    ops.release = { req, ino, fi in fs(req).release(Reply(req!), ino: ino, fh: fi?.pointee.fh ?? 0) }
    ops.read = { req, ino, size, off, fi in
        fs(req).read(Reply(req!), ino: ino, size: size, offset: Int(off), fh: fi?.pointee.fh ?? 0)
    }
    ops.write = { req, ino, buf, size, off, fi in
        fs(req).write(Reply(req!), ino: ino, data: UnsafeRawBufferPointer(start: buf, count: size), offset: Int(off),
                      fh: fi?.pointee.fh ?? 0)
    }
    ops.flush = { req, _, _ in fuse_reply_err(req, 0) }
    ops.fsync = { req, ino, _, _ in fs(req).fsync(Reply(req!), ino: ino) }
    ops.opendir = { req, _, fi in fuse_reply_open(req, fi) }
    ops.releasedir = { req, _, _ in fuse_reply_err(req, 0) }
    ops.readdir = { req, ino, size, off, _ in
        fs(req).readdir(Reply(req!), ino: ino, size: size, offset: Int(off))
    }
    ops.statfs = { req, _ in fs(req).statfs(Reply(req!)) }
    return ops
}

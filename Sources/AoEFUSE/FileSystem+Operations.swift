import AoECore
import AoEEngine
import AoEProtocol
import CFuse3
import Foundation

/// The FUSE operations, called on whichever thread serves the session.
extension AoEFileSystem {
    func lookup(_ r: Reply, parent: fuse_ino_t, name: String) {
        guard let p = node(parent), let child = child(of: p, named: name), let st = attributes(child)
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
        let entries = ([(".", n), ("..", Node.root)] + kids).map { ($0.0, UInt64(inode($0.1)), $0.1.isDirectory) }
        r.directory(entries, size: size, offset: offset)
    }

    func open(_ r: Reply, ino: fuse_ino_t, fi: UnsafeMutablePointer<fuse_file_info>) {
        guard let n = node(ino), attributes(n) != nil else { return r.error(ENOENT) }
        var opened: OpenFile?
        switch n {
        case .image(let t): opened = .image(t)
        case .partition(let p):
            guard let found = partition(p) else { return r.error(ENOENT) }
            opened = .partition(p, found)
        default: break
        }
        // Direct I/O everywhere: the daemon sees every image I/O (nothing cached twice under a
        // loop device), and `cat` of a pseudo-file always sees fresh, whole contents.
        aoefs_fi_set_direct_io(fi, 1)
        let handle: UInt64 = state.withLock { s in
            defer { s.nextHandle += 1 }
            if let opened {
                s.handles[s.nextHandle] = opened
                s.openImages[n.target!, default: 0] += 1
            }
            return s.nextHandle
        }
        if case .control(.err) = n { openedErr(handle) }
        fi.pointee.fh = handle
        r.open(fi)
    }

    func release(_ r: Reply, ino: fuse_ino_t, fh: UInt64) {
        let reread: TargetAddress? = state.withLock { s in
            s.errCursor[fh] = nil
            s.rendered[fh] = nil
            guard let h = s.handles.removeValue(forKey: fh) else { return nil }
            let t: TargetAddress
            switch h {
            case .image(let a): t = a
            case .partition(let p, _): t = p.target
            }
            s.openImages[t, default: 1] -= 1
            return s.tableWriters.remove(fh) != nil ? t : nil
        }
        // The handle wrote the partition table (fdisk, sfdisk, sgdisk): read it again, as
        // BLKRRPART would.
        if let reread { rereadTable(reread) }
        r.error(0)
    }

    /// Where a handle's I/O goes: the target, the byte offset of the file's start on it, and the
    /// file's length. Nil (EIO) for a partition the table no longer has as it was opened.
    private func extent(_ n: Node, fh: UInt64) -> (target: TargetAddress, base: UInt64, length: UInt64)? {
        switch n {
        case .image(let t):
            return engine.capacity(of: t).map { (t, 0, $0) }
        case .partition(let p):
            guard case .partition(_, let opened)? = state.withLock({ $0.handles[fh] }), partition(p) == opened,
                  engine.capacity(of: p.target) != nil else { return nil }
            return (p.target, opened.start * 512, opened.size * 512)
        default:
            return nil
        }
    }

    func read(_ r: Reply, ino: fuse_ino_t, size: Int, offset: Int, fh: UInt64) {
        guard let n = node(ino) else { return r.error(ENOENT) }
        switch n {
        case .image, .partition:
            guard let (t, base, length) = extent(n, fh: fh) else { return r.error(n.isImage ? ENODEV : EIO) }
            // Past the end a read gets 0 bytes, as from a block device.
            let count = max(0, min(size, Int(length) - offset))
            if count == 0 { return r.buffer(nil, 0) }
            // Over the ring the engine receives the data straight into the entry's payload, from
            // which the kernel takes the reply. Over /dev/fuse the data is copied into one buffer
            // as its frames arrive, unless `gatherReads`: then, while other requests wait for the
            // engine, the reply is gathered from the frames the data came in. Copying is the
            // default because it measured faster here: the kernel pins and copies a reply of 121
            // pieces at more cost than one buffer (perf, dd 1 MiB QD 1: the writev 13 % of the
            // daemon's time from one buffer, 19 % gathered; fio 1 MiB QD 4, 5 paired runs: 0.92 ×
            // gathered), and the user-space copy runs while the thread waits for frames anyway. A
            // read alone is never gathered (nothing else to do while its frames come).
            let gather = gatherReads && !r.viaRing && waiting.withLock({ $0 }) > 0
            let buffer = r.dataBuffer(count: count).map(IOBuffer.init(borrowing:))
                ?? (gather ? IOBuffer(gathering: count) : IOBuffer(uninitializedCount: count))
            track(+1)
            engine.read(t, offset: base + UInt64(offset), count: count, into: buffer) { [self] result in
                switch result {
                // Over the ring the reply stays on this thread: the kernel would hand the entry's
                // next request to the worker that committed it (task work on that thread, one more
                // wake-up); measured, fio 1 MiB QD 4 read 1.04 × without the hand-off.
                case .success where count >= Self.largeReply && !r.viaRing && waiting.withLock({ $0 }) > 1:
                    replies.async { [self] in
                        r.read(buffer, count: count)
                        track(-1)
                    }
                    return
                case .success: r.read(buffer, count: count)
                case .failure(let e): r.error(errnoValue(for: e))
                }
                track(-1)
            }
        case .targetFile(let t, let f):
            let text = renderedOnce(fh: fh, offset: offset) { () -> [UInt8]? in
                guard let s = sysSnapshot(t) else { return nil }
                let open = state.withLock { $0.openImages[t] ?? 0 }
                return Array(Render.file(f, s, configuration: engine.configuration, openCount: open).utf8)
            }
            guard let text else { return r.error(ENODEV) }
            r.bytes(Array(text.dropFirst(min(offset, text.count)).prefix(size)))
        case .partitionFile(let p, let f):
            let text = renderedOnce(fh: fh, offset: offset) { partition(p).map { Array(Render.file(f, $0).utf8) } }
            guard let text else { return r.error(ENOENT) }
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

    func write(_ r: Reply, ino: fuse_ino_t, data: UnsafeRawBufferPointer, offset: Int, fh: UInt64) {
        guard let n = node(ino) else { return r.error(ENOENT) }
        switch n {
        case .image, .partition:
            guard let (t, base, length) = extent(n, fh: fh) else { return r.error(n.isImage ? ENODEV : EIO) }
            // Past the end a write gets ENOSPC, as on a block device.
            if offset + data.count > Int(length) { return r.error(ENOSPC) }
            let bytes = base + UInt64(offset)..<base + UInt64(offset + data.count)
            if case .image = n, writeTouchesTable(t, bytes, capacity: length) {
                state.withLock { _ = $0.tableWriters.insert(fh) }
            }
            // The channel reads the next request into its buffer once this returns. A large write
            // takes that buffer over instead (the channel allocates a new one), which saves
            // copying a MiB on the receive thread; a small one is copied.
            let buffer: IOBuffer
            let block: MallocBlock?
            if r.viaRing {
                // A ring entry's payload: the kernel reuses it only after our reply.
                block = nil
                buffer = IOBuffer(borrowing: UnsafeMutableRawBufferPointer(mutating: data))
            } else if data.count >= Self.adoptedWrite, let base = channel?.adoptBuffer() {
                block = MallocBlock(base)
                buffer = IOBuffer(borrowing: UnsafeMutableRawBufferPointer(mutating: data))
            } else {
                block = nil
                buffer = IOBuffer(uninitializedCount: data.count)
                buffer.bytes.copyMemory(from: data)
            }
            track(+1)
            let count = data.count
            engine.write(t, offset: bytes.lowerBound, count: count, from: buffer) { [self] result in
                withExtendedLifetime(block) {}
                switch result {
                case .success: r.written(count)
                case .failure(let e): r.error(errnoValue(for: e))
                }
                track(-1)
            }
        case .control(let c):
            let text = String(decoding: data, as: UTF8.self)
            if let problem = perform(c, text) {
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

    func fsync(_ r: Reply, ino: fuse_ino_t) {
        guard let t = node(ino).flatMap({ $0.isImage || $0.isPartition ? $0.target : nil }) else { return r.error(0) }
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

    /// A pseudo-file's text as one open handle sees it: rendered at the read from offset 0 and
    /// kept until the handle is released, so a reader that needs several reads (or a table that
    /// changes between them) gets one consistent snapshot, as sysfs's seq_file gives. Without it
    /// a second read re-rendered the file and could return the tail of a newer text.
    func renderedOnce(fh: UInt64, offset: Int, _ render: () -> [UInt8]?) -> [UInt8]? {
        if offset > 0, let kept = state.withLock({ $0.rendered[fh] }) { return kept }
        guard let text = render() else { return nil }
        state.withLock { $0.rendered[fh] = text }
        return text
    }

    /// Counts requests waiting for the engine, so teardown can drain them.
    func track(_ delta: Int) {
        let drained = waiting.withLock { w in
            w += delta
            return w == 0
        }
        if drained { waiting.broadcast() }
    }
}

import AoECore
import AoEDoctor
import AoEEngine
import AoELinux
import AoEProtocol
import FUSEProtocol
import Foundation

/// The FUSE operations, called on whichever thread serves the session.
extension AoEFileSystem {
    func lookup(parent: UInt64, name: String) -> FUSEReply {
        guard let p = node(parent), let child = child(of: p, named: name), let attr = attributes(child)
        else { return .error(ENOENT) }
        return .entry(nodeID: attr.ino, attr: attr, entryValidSeconds: 1, attrValidSeconds: 1)
    }

    func getattr(ino: UInt64) -> FUSEReply {
        guard let n = node(ino), let attr = attributes(n) else { return .error(ENOENT) }
        return .attr(attr, validSeconds: 1)
    }

    /// Truncation is accepted and ignored: `echo > etherd/discover` opens with O_TRUNC, and an
    /// image's size is the target's capacity.
    func setattr(ino: UInt64) -> FUSEReply { getattr(ino: ino) }

    func readdir(ino: UInt64, size: Int, offset: Int) -> FUSEReply {
        guard let n = node(ino), let kids = children(n) else { return .error(ENOTDIR) }
        let entries = ([(".", n), ("..", Node.root)] + kids).map { ($0.0, inode($0.1), $0.1.isDirectory) }
        return .directory(entries, size: size, offset: offset)
    }

    func open(ino: UInt64, flags: UInt32) -> FUSEReply {
        guard let n = node(ino), attributes(n) != nil else { return .error(ENOENT) }
        var opened: Handles.OpenFile?
        switch n {
        case .image(let t): opened = .image(t)
        case .partition(let p):
            guard let found = partition(p) else { return .error(ENOENT) }
            opened = .partition(p, found)
        default: break
        }
        let handle = handles.open(opened)
        if case .control(.err) = n { errReaders.opened(handle) }
        return .open(fh: handle, openFlags: PageCachePolicy.openFlags(image: opened != nil, flags: flags))
    }

    /// FLUSH (each close of a file descriptor, after the kernel wrote its cached pages back):
    /// EIO when cached writes of the handle's target were lost since it was opened.
    func flush(fh: UInt64) -> FUSEReply { handles.lostWrites(since: fh) ? .error(EIO) : .error(0) }

    func release(fh: UInt64) -> FUSEReply {
        errReaders.released(fh)
        // The handle wrote the partition table (fdisk, sfdisk, sgdisk): read it again, as
        // BLKRRPART would.
        if let reread = handles.release(fh) { tables.reread(reread) }
        return .error(0)
    }

    /// Where a handle's I/O goes: the target, the byte offset of the file's start on it, and the
    /// file's length. Nil (EIO) for a partition the table no longer has as it was opened.
    func extent(_ n: Node, fh: UInt64) -> (target: TargetAddress, base: UInt64, length: UInt64)? {
        switch n {
        case .image(let t):
            if handles.file(fh) == nil && fh < handles.firstOwn { _ = handles.adopt(fh, .image(t)) }
            return engine.capacity(of: t).map { (t, 0, $0) }
        case .partition(let p):
            // A predecessor's handle (issue 30) is taken on with the partition as it is now.
            var file = handles.file(fh)
            if file == nil, fh < handles.firstOwn, let now = partition(p) {
                file = handles.adopt(fh, .partition(p, now))
            }
            guard case .partition(_, let opened)? = file, partition(p) == opened,
                engine.capacity(of: p.target) != nil
            else { return nil }
            return (p.target, opened.start * 512, opened.size * 512)
        default:
            return nil
        }
    }

    func read(_ r: Reply, ino: UInt64, size: Int, offset: Int, fh: UInt64, _ outbox: inout Outbox) -> Answer {
        guard let n = node(ino) else { return .now(.error(ENOENT)) }
        switch n {
        case .image, .partition:
            guard let (t, base, length) = extent(n, fh: fh) else { return .now(.error(n.isImage ? ENODEV : EIO)) }
            // Past the end a read gets 0 bytes, as from a block device.
            let count = max(0, min(size, Int(length) - offset))
            if count == 0 { return .now(.bytes([])) }
            // Over the ring the engine receives the data straight into the entry's payload, from
            // which the kernel takes the reply; over /dev/fuse into one buffer, sent with the
            // reply's header in one writev. (Replies gathered from the frames instead measured
            // 0.92 × of this, fio 1 MiB QD 4 read, 5 paired runs, and were removed: issue 22.)
            let buffer =
                r.dataBuffer(count: count).map(IOBuffer.init(borrowing:)) ?? IOBuffer(uninitializedCount: count)
            track(+1)
            // Named by the kernel's request id: its INTERRUPT (a reader's signal) cancels it.
            engine.read(t, offset: base + UInt64(offset), count: count, into: buffer, owner: r.unique, outbox: &outbox)
            {
                [self] result, outbox in
                switch result {
                case .success
                where ReplyRoute.read(bytes: count, viaRing: r.viaRing, waiting: waiting.withLock { $0 })
                    == .replyThread:
                    replies.async { [self] in
                        r.now { r, outbox in r.buffer(buffer.bytes.baseAddress, count, &outbox) }
                        track(-1)
                    }
                    return
                case .success: r.buffer(buffer.bytes.baseAddress, count, &outbox)
                case .failure(.interrupted):
                    r.error(EINTR, &outbox)  // the reader gave up (a signal): nothing to say in err
                case .failure(let e):
                    // The reader sees only EIO: err says why.
                    engine.note("\(t): a read of \(count) bytes at byte \(base + UInt64(offset)) failed: \(e)")
                    r.error(errnoValue(for: e), &outbox)
                }
                track(-1)
            }
            return .later
        case .targetFile(let t, let f):
            let text = handles.renderedOnce(fh, offset: offset) { () -> [UInt8]? in
                guard let s = sysSnapshot(t) else { return nil }
                let open = handles.openCount(t)
                return Array(Render.file(f, s, configuration: engine.configuration, openCount: open).utf8)
            }
            guard let text else { return .now(.error(ENODEV)) }
            return .now(.bytes(Array(text.dropFirst(min(offset, text.count)).prefix(size))))
        case .partitionFile(let p, let f):
            let text = handles.renderedOnce(fh, offset: offset) { partition(p).map { Array(Render.file(f, $0).utf8) } }
            guard let text else { return .now(.error(ENOENT)) }
            return .now(.bytes(Array(text.dropFirst(min(offset, text.count)).prefix(size))))
        case .metrics:
            let text = handles.renderedOnce(fh, offset: offset) { () -> [UInt8]? in
                Array(engine.metricsExposition(daemon: daemonInfo.withLock { $0 }.figures).utf8)
            }
            guard let text else { return .now(.error(EIO)) }
            return .now(.bytes(Array(text.dropFirst(min(offset, text.count)).prefix(size))))
        case .facts:
            let text =
                handles.renderedOnce(fh, offset: offset) {
                    Array(EngineFacts(engine, openCount: handles.openCount).json().utf8)
                } ?? []
            return .now(.bytes(Array(text.dropFirst(min(offset, text.count)).prefix(size))))
        case .daemon:
            let text =
                handles.renderedOnce(fh, offset: offset) { Array(daemonInfo.withLock { $0 }.rendered().utf8) } ?? []
            return .now(.bytes(Array(text.dropFirst(min(offset, text.count)).prefix(size))))
        case .control(.interfaces):
            let text = Array((engine.allowedInterfaces.joined(separator: " ") + "\n").utf8)
            return .now(.bytes(Array(text.dropFirst(min(offset, text.count)).prefix(size))))
        case .control(.err):
            return errReaders.read(r, handle: fh, size: size, &outbox)
        case .control:
            return .now(.bytes([]))
        default:
            return .now(.error(EISDIR))
        }
    }

    /// `writeFlags`: FUSE_WRITE_CACHE marks a write-back of cached pages, whose writer was told
    /// nothing yet: if it fails, `fsync` and `close` say so (`Handles.lostWrite`).
    func write(
        _ r: Reply, ino: UInt64, data: UnsafeRawBufferPointer, offset: Int, fh: UInt64, writeFlags: UInt32 = 0,
        adopt: () -> UnsafeMutableRawPointer?, _ outbox: inout Outbox
    ) -> Answer {
        guard let n = node(ino) else { return .now(.error(ENOENT)) }
        switch n {
        case .image, .partition:
            guard let (t, base, length) = extent(n, fh: fh) else {
                if writeFlags & FUSEWriteFlags.cache != 0 {
                    engine.note(
                        "\(n.target?.description ?? "?"): a cached write to a target not identified, or a "
                            + "partition gone, failed: fsync and close of the file will say EIO")
                }
                return .now(.error(n.isImage ? ENODEV : EIO))
            }
            if trapAfterWrites.load(ordering: .relaxed) > 0 { PlantedTrap.counted(self) }
            let cached = writeFlags & FUSEWriteFlags.cache != 0
            // Past the end a write gets ENOSPC, as on a block device. (A buffered write past the
            // end is cached by the kernel first; its write-back lands here, and close and fsync
            // then fail.)
            // Written so that it cannot overflow: `offset` may be up to Int.max (issue 30).
            if offset > Int(length) - data.count {
                if cached {
                    handles.lostWrite(t)
                    // The kernel grew its idea of the file's size when it cached the write; the
                    // name is dropped, so that once the file is closed the next lookup makes a
                    // fresh inode with the image's real size.
                    notifications.entriesGoneLater([
                        n.isImage ? t.description : (n.partitionName?.description ?? t.description)
                    ])
                }
                return .now(.error(ENOSPC))
            }
            let bytes = base + UInt64(offset)..<base + UInt64(offset + data.count)
            if case .image = n, tables.writeTouchesTable(t, bytes, capacity: length) { handles.wroteTable(fh) }
            // The channel reads the next request into its buffer once this returns. A large write
            // takes that buffer over instead (`adopt`: the channel allocates a new one), which
            // saves copying a MiB in the pass; a small one is copied.
            let buffer: IOBuffer
            let block: MallocBlock?
            if r.viaRing {
                // A ring entry's payload: the kernel reuses it only after our reply.
                block = nil
                buffer = IOBuffer(borrowing: UnsafeMutableRawBufferPointer(mutating: data))
            } else if data.count >= Self.adoptedWrite, let base = adopt() {
                block = MallocBlock(base)
                buffer = IOBuffer(borrowing: UnsafeMutableRawBufferPointer(mutating: data))
            } else {
                block = nil
                buffer = IOBuffer(uninitializedCount: data.count)
                buffer.bytes.copyMemory(from: data)
            }
            track(+1)
            let count = data.count
            engine.write(t, offset: bytes.lowerBound, count: count, from: buffer, outbox: &outbox) {
                [self] result, outbox in
                withExtendedLifetime(block) {}
                switch result {
                case .success: r.written(count, &outbox)
                case .failure(let e):
                    if cached {
                        handles.lostWrite(t)
                        // The writer learns it only at fsync or close: say here what was lost.
                        engine.note(
                            "\(t): a cached write of \(count) bytes at byte \(bytes.lowerBound) failed (\(e)): "
                                + "fsync and close of the file will say EIO")
                    } else {
                        engine.note("\(t): a write of \(count) bytes at byte \(bytes.lowerBound) failed: \(e)")
                    }
                    r.error(errnoValue(for: e), &outbox)
                }
                track(-1)
            }
            return .later
        case .control(let c):
            let text = String(decoding: data, as: UTF8.self)
            if let problem = perform(c, text) {
                engine.note("etherd/\(c.rawValue): \(problem)")
                return .now(.error(EINVAL))
            }
            return .now(.write(size: UInt32(data.count)))
        case .targetFile(_, .config):
            return .now(.error(EOPNOTSUPP))
        default:
            return .now(.error(EACCES))
        }
    }

    /// FSYNC (after the kernel wrote the file's cached pages back): FLUSH CACHE on the target;
    /// EIO when cached writes of the handle's target were lost since it was opened.
    func fsync(_ r: Reply, ino: UInt64, fh: UInt64, _ outbox: inout Outbox) -> Answer {
        guard let t = node(ino).flatMap({ $0.isImage || $0.isPartition ? $0.target : nil }) else {
            return .now(.error(0))
        }
        if handles.lostWrites(since: fh) { return .now(.error(EIO)) }
        track(+1)
        engine.flush(t, outbox: &outbox) { [self] result, outbox in
            switch result {
            case .success: r.error(0, &outbox)
            case .failure(let e): r.error(errnoValue(for: e), &outbox)
            }
            track(-1)
        }
        return .later
    }

    func statfs() -> FUSEReply {
        // Saturating: 128 targets that claim LBA48's largest capacity (2⁵⁷ bytes each; a forged
        // IDENTIFY can) would overflow a plain sum and trap `df` (issue 30's audit).
        let bytes = imageTargets().compactMap(\.identity).map(\.capacity).reduce(UInt64(0)) { sum, c in
            let (s, over) = sum.addingReportingOverflow(c)
            return over ? .max : s
        }
        return .statfs(FUSEStatfs(blocks: bytes / 4096))
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

import AoECore
import AoEEngine
import AoELinux
import FUSEProtocol

#if canImport(Glibc)
    import Glibc
#endif

/// FALLOCATE on images and partitions (issue 33): what a block device does with `fallocate(2)`,
/// which is what the loop driver asks of its backing file for a discard (`fstrim`, `blkdiscard`,
/// mkfs) and for write-zeroes. A hole becomes ATA TRIM on a target that offers it with zeros
/// after it; zeroing becomes TRIM there too, else written zeros. The kernel has already written
/// back the range's cached pages, and drops them once we answer (fuse_file_fallocate).
extension AoEFileSystem {
    /// fallocate(2)'s mode bits that FUSE passes on (linux/falloc.h).
    enum FallocateMode {
        static let keepSize: UInt32 = 0x01
        static let punchHole: UInt32 = 0x02
        static let zeroRange: UInt32 = 0x10
    }

    func fallocate(
        _ r: Reply, ino: UInt64, fh: UInt64, offset: UInt64, length: UInt64, mode: UInt32,
        _ outbox: inout Outbox
    ) -> Answer {
        guard let n = node(ino) else { return .now(.error(ENOENT)) }
        guard n.isImage || n.isPartition else { return .now(.error(EOPNOTSUPP)) }
        guard let (t, base, size) = extent(n, fh: fh) else { return .now(.error(n.isImage ? ENODEV : EIO)) }
        let keepSize = mode & FallocateMode.keepSize != 0
        let punch = mode & FallocateMode.punchHole != 0, zero = mode & FallocateMode.zeroRange != 0
        // Collapse, insert, unshare, …: a disk has no such thing.
        if mode & ~(FallocateMode.keepSize | FallocateMode.punchHole | FallocateMode.zeroRange) != 0 || (punch && zero)
        {
            return .now(.error(EOPNOTSUPP))
        }
        let (end, over) = offset.addingReportingOverflow(length)
        guard length > 0, !over else { return .now(.error(EINVAL)) }
        if !punch && !zero {
            // posix_fallocate: every sector of an image exists already. It cannot grow.
            return .now(.error(end <= size || keepSize ? 0 : ENOSPC))
        }
        // As blkdev_fallocate: a range from past the end is invalid; one that runs past it is cut
        // at the end when the size is kept, invalid otherwise.
        if offset >= size || (end > size && !keepSize) { return .now(.error(EINVAL)) }
        let count = min(end, size) - offset
        if punch && engine.trimsToZeros(t) != true {
            // Nothing is sent: the loop driver stops asking (it clears its discard limits) and
            // `fstrim` says the device does not support it.
            return .now(.error(EOPNOTSUPP))
        }
        let bytes = base + offset..<base + offset + count
        if case .image = n, tables.writeTouchesTable(t, bytes, capacity: size) { handles.wroteTable(fh) }
        track(+1)
        engine.discard(t, offset: bytes.lowerBound, count: count, writeZerosOtherwise: zero, outbox: &outbox) {
            [self] result, outbox in
            switch result {
            case .success: r.error(0, &outbox)
            case .failure(let e):
                engine.note(
                    "\(t): \(punch ? "a discard" : "zeroing") of \(count) bytes at byte \(bytes.lowerBound) "
                        + "failed: \(e)")
                r.error(errnoValue(for: e), &outbox)
            }
            track(-1)
        }
        return .later
    }
}

import AoELinux
import CAoELinux
import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Why a backing file could not be used, in one line.
public struct BackingFileError: Error, CustomStringConvertible {
    public let description: String
}

/// The file or block device a target exports, opened with vblade's modes.
///
/// `offset` (vblade `-o`, in bytes here) is added to every access, so the export is the window
/// `[offset, offset + size)` of the file.
public final class BackingFile: @unchecked Sendable {
    // @unchecked: immutable after init; pread/pwrite/fdatasync are safe from several threads.
    public let path: String
    public let size: UInt64
    public let offset: UInt64
    public let direct: Bool
    public let sync: Bool
    private let fd: Int32
    private let readNowaitUnsupported = Atomic<Bool>(false)
    private let nowaitUnsupported = Atomic<Bool>(false)

    /// Opens `path` read-only (`-r`) or read-write, with O_DIRECT (`-d`) and O_SYNC (`-s`).
    public init(
        path: String, readOnly: Bool, direct: Bool, sync: Bool, offsetSectors: UInt64 = 0,
        lengthSectors: UInt64? = nil
    ) throws(BackingFileError) {
        var flags = readOnly ? O_RDONLY : O_RDWR
        if direct { flags |= aoel_o_direct() }
        if sync { flags |= O_SYNC }
        let fd = open(path, flags | O_CLOEXEC)
        guard fd >= 0 else {
            throw BackingFileError(description: "\(path): cannot open: \(String(cString: strerror(errno)))")
        }
        // lseek to the end works for regular files and block devices alike.
        let end = lseek(fd, 0, SEEK_END)
        guard end >= 0 else {
            close(fd)
            throw BackingFileError(description: "\(path): cannot find its size: \(String(cString: strerror(errno)))")
        }
        let total = UInt64(end) / 512
        guard offsetSectors < total else {
            close(fd)
            throw BackingFileError(
                description: "\(path): offset \(offsetSectors) sectors is not inside the file (\(total) sectors)")
        }
        var sectors = total - offsetSectors
        if let l = lengthSectors {
            guard l >= 1, l <= sectors else {
                close(fd)
                throw BackingFileError(
                    description: "\(path): length \(l) sectors exceeds the \(sectors) sectors after the offset")
            }
            sectors = l
        }
        self.fd = fd
        self.path = path
        self.offset = offsetSectors * 512
        self.size = sectors * 512
        self.direct = direct
        self.sync = sync
    }

    deinit { close(fd) }

    /// Reads exactly `count` bytes at `at` into `into`; false on an error or a short read.
    public func read(into: UnsafeMutableRawPointer, count: Int, at: UInt64) -> Bool {
        if direct {
            return bounced(count) { b in
                guard fullIO(count, { done in pread(fd, b + done, count - done, off_t(offset + at) + off_t(done)) })
                else { return false }
                memcpy(into, b, count)
                return true
            }
        }
        return fullIO(count) { done in pread(fd, into + done, count - done, off_t(offset + at) + off_t(done)) }
    }

    /// Reads exactly `count` bytes at `at` if they are all in the page cache, without waiting for
    /// the disk. Returns nil when it would have to wait (or the file is O_DIRECT): use `read`.
    ///
    /// Where the filesystem cannot tell (tmpfs answers preadv2(RWF_NOWAIT) with EOPNOTSUPP on
    /// Linux 6.x; issue 21), the read is done at once, as for writes: such a file is memory.
    public func readCached(into: UnsafeMutableRawPointer, count: Int, at: UInt64) -> Bool? {
        if direct { return nil }
        if readNowaitUnsupported.load(ordering: .relaxed) { return read(into: into, count: count, at: at) }
        var done = 0
        while done < count {
            let n = aoel_pread_cached(fd, into + done, count - done, Int64(offset + at) + Int64(done))
            if n == -Int(EOPNOTSUPP) || n == -Int(EINVAL) {
                readNowaitUnsupported.store(true, ordering: .relaxed)
                return read(into: into + done, count: count - done, at: at + UInt64(done))
            }
            if n == -Int(EAGAIN) {
                return done == 0 ? nil : read(into: into + done, count: count - done, at: at + UInt64(done))
            }
            if n <= 0 { return false }
            done += n
        }
        return true
    }

    /// Writes exactly `count` bytes at `at` if that should not wait for the disk: a write into the
    /// page cache. Returns nil for O_DIRECT and O_SYNC files (they always wait): use `write`.
    ///
    /// pwritev2(RWF_NOWAIT) says when a buffered write would block where the filesystem can tell;
    /// where it cannot (ext4 here answers EOPNOTSUPP), the write is done at once, as vblade does
    /// every write: into the page cache, it waits only when the kernel throttles dirty pages.
    public func writeWithoutWaiting(from: UnsafeRawPointer, count: Int, at: UInt64) -> Bool? {
        if direct || sync { return nil }
        if nowaitUnsupported.load(ordering: .relaxed) { return write(from: from, count: count, at: at) }
        var done = 0
        while done < count {
            let n = aoel_pwrite_nowait(fd, from + done, count - done, Int64(offset + at) + Int64(done))
            if n == -Int(EOPNOTSUPP) || n == -Int(EINVAL) {
                nowaitUnsupported.store(true, ordering: .relaxed)
                return write(from: from + done, count: count - done, at: at + UInt64(done))
            }
            if n == -Int(EAGAIN) {
                return done == 0 ? nil : write(from: from + done, count: count - done, at: at + UInt64(done))
            }
            if n <= 0 { return false }
            done += n
        }
        return true
    }

    /// Writes exactly `count` bytes from `from` at `at`; false on an error.
    public func write(from: UnsafeRawPointer, count: Int, at: UInt64) -> Bool {
        if direct {
            return bounced(count) { b in
                memcpy(b, from, count)
                return fullIO(count) { done in pwrite(fd, b + done, count - done, off_t(offset + at) + off_t(done)) }
            }
        }
        return fullIO(count) { done in pwrite(fd, from + done, count - done, off_t(offset + at) + off_t(done)) }
    }

    /// Deallocates `count` bytes at `at` so that they read as zeros (fallocate(2) PUNCH_HOLE |
    /// KEEP_SIZE: a regular file gives the space back to its filesystem; a block device zeroes
    /// the range with the device's unmapping write-zeroes, never by writing zeros); false on an
    /// error.
    public func punch(count: UInt64, at: UInt64) -> Bool {
        let r = aoel_punch_hole(fd, Int64(offset + at), Int64(count))
        if r != 0 { errno = -r }
        return r == 0
    }

    /// Whether holes can be punched here, and if not why, for the log at start (issue 33): a
    /// regular file is asked with a punch past its end (which changes nothing where it is
    /// supported); a block device by its queue's write-zeroes limit in sysfs (the kernel punches a
    /// hole in one only with an unmapping write-zeroes, blkdev_fallocate).
    public func trimSupport() -> Result<Void, BackingFileError> {
        var st = stat()
        guard fstat(fd, &st) == 0 else { return .failure(BackingFileError(description: "fstat failed")) }
        if st.st_mode & S_IFMT == S_IFBLK {
            // glibc's gnu_dev_major/minor (macros, not visible to Swift).
            let d = UInt64(st.st_rdev)
            let major = (d >> 8) & 0xFFF | (d >> 32) & ~0xFFF, minor = d & 0xFF | (d >> 12) & ~0xFF
            let dev = "/sys/dev/block/\(major):\(minor)"
            let limit = ["\(dev)/queue/write_zeroes_max_bytes", "\(dev)/../queue/write_zeroes_max_bytes"]
                .lazy.compactMap { try? String(contentsOfFile: $0, encoding: .utf8) }.first
            guard let limit, let bytes = UInt64(limit.filter { $0.isNumber }), bytes > 0 else {
                return .failure(
                    BackingFileError(
                        description: "the block device offers no write-zeroes (its queue's write_zeroes_max_bytes is 0)"
                    ))
            }
            return .success(())
        }
        let past = (UInt64(st.st_size) + 4095) / 4096 * 4096
        let r = aoel_punch_hole(fd, Int64(past), 4096)
        if r != 0 {
            return .failure(
                BackingFileError(description: "its filesystem cannot punch holes (\(String(cString: strerror(-r))))"))
        }
        return .success(())
    }

    /// Makes every completed write durable: data and the metadata needed to read it back
    /// (fdatasync(2)); a block device is flushed to the disk's media.
    public func flush() -> Bool {
        retryingEINTR { fdatasync(fd) } == 0
    }

    private func fullIO(_ count: Int, _ op: (Int) -> Int) -> Bool {
        var done = 0
        while done < count {
            let n = retryingEINTR { op(done) }
            if n <= 0 { return false }
            done += n
        }
        return true
    }

    /// O_DIRECT needs sector-aligned memory: frames are not, so go through an aligned buffer.
    private func bounced(_ count: Int, _ body: (UnsafeMutableRawPointer) -> Bool) -> Bool {
        var p: UnsafeMutableRawPointer?
        guard posix_memalign(&p, 4096, max(count, 512)) == 0, let p else { return false }
        defer { free(p) }
        return body(p)
    }
}

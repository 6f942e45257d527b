import AoELinux
import AoETestSupport
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The images behave like a block device (issue 23): buffered I/O through the page cache, with
/// readahead and write-back; O_DIRECT uncached; the cache dropped when the target changes; no
/// data lost quietly.
@Suite(
    "images as block devices: page cache, O_DIRECT, coherence, no silent loss", .serialized,
    .enabled(if: LabGate.labShouldRun, Comment(rawValue: LabGate.labSkipReason)))
struct BlockDeviceTests {
    func sha(_ command: String) throws -> String { String(try must("\(command) | sha256sum").prefix(64)) }

    /// Writes `count` random bytes at `offset` of the backing file, behind aoefs's back (vblade
    /// serves the file as it is now); returns their sha256.
    func writeBehind(_ m: MountLab, offset: Int, count: Int) throws -> String {
        let src = m.lab.directory.appendingPathComponent("behind.bin").path
        try must("head -c \(count) /dev/urandom > \(src)")
        try must("dd if=\(src) of=\(m.file.path) bs=1M seek=\(offset) oflag=seek_bytes conv=notrunc,fsync status=none")
        return try sha("cat \(src)")
    }

    @Test(
        "dd without bs= and sha256sum read what the target holds; a change behind aoefs's back shows at once through O_DIRECT, and buffered after revalidate"
    )
    func bufferedReadsAndCoherence() throws {
        let m = try MountLab(size: 64 << 20)
        defer { m.tearDown() }
        _ = try writeBehind(m, offset: 0, count: 64 << 20)
        #expect(try sha("dd if=\(m.image) status=none") == sha("cat \(m.file.path)"), "dd with 512-byte reads")
        #expect(try sha("cat \(m.image)") == sha("cat \(m.file.path)"))
        // The image's first MiB is cached now. Another initiator (here: the file) changes it.
        let new = try writeBehind(m, offset: 0, count: 1 << 20)
        #expect(try sha("dd if=\(m.image) bs=1M count=1 iflag=direct status=none") == new, "O_DIRECT is not cached")
        try must("echo e10.3 > \(m.mnt)/etherd/revalidate")
        // The cache is dropped on aoefs's notify thread, a moment after the write returns.
        #expect(
            eventually(timeout: .seconds(10)) {
                (try? sha("dd if=\(m.image) bs=1M count=1 status=none")) == new
            }, "after revalidate, buffered reads see the target's bytes")
    }

    @Test("buffered writes of 4 KiB reach the target by fsync; past the end the write fails and the size stays")
    func bufferedWrites() throws {
        let m = try MountLab(size: 64 << 20)
        defer { m.tearDown() }
        let src = m.lab.directory.appendingPathComponent("src.bin").path
        try must("head -c \(32 << 20) /dev/urandom > \(src)")
        try must("dd if=\(src) of=\(m.image) bs=4k seek=1 conv=notrunc,nocreat,fsync status=none")
        #expect(
            try sha("dd if=\(m.file.path) bs=4k skip=1 count=8192 status=none") == sha("cat \(src)"),
            "the backing file holds what was written, after fsync")
        #expect(try sha("dd if=\(m.image) bs=4k skip=1 count=8192 status=none") == sha("cat \(src)"))
        // 8 KiB from 4 KiB before the end: a block device refuses what does not fit.
        let past = try sh(
            "dd if=/dev/zero of=\(m.image) bs=4k seek=\((64 << 20) / 4096 - 1) count=2 conv=notrunc,nocreat,fsync 2>&1")
        #expect(past.status != 0 && past.out.contains("No space left on device"), "\(past.out)")
        #expect(
            eventually(timeout: .seconds(10)) {
                (try? must("stat -c %s \(m.image)").trimmingCharacters(in: .whitespacesAndNewlines)) == "\(64 << 20)"
            }, "the image's size never changes")
        #expect(try must("stat -c %s \(m.file.path)").trimmingCharacters(in: .whitespacesAndNewlines) == "\(64 << 20)")
    }

    @Test(
        "no silent loss: the target killed under cached writes, fsync and close fail with EIO, every time; what fsync acknowledged before is on the target"
    )
    func lostWritesAreReported() throws {
        let m = try MountLab(size: 64 << 20, mountArgs: ["--deadsecs", "3"])
        defer { m.tearDown() }
        let dir = m.lab.directory.path
        try must("mkfifo \(dir)/go")
        // One file descriptor across the steps, as a program writing the image would have.
        let script = """
            import os, sys
            fd = os.open(sys.argv[1], os.O_WRONLY)
            a = os.urandom(4 << 20)
            os.pwrite(fd, a, 0)
            os.fsync(fd)
            open(sys.argv[2] + "/a.bin", "wb").write(a)
            print("synced", flush=True)
            open(sys.argv[2] + "/go").read()
            os.pwrite(fd, os.urandom(4 << 20), 8 << 20)
            for step in ("fsync1", "fsync2"):
                try:
                    os.fsync(fd); print(step, "ok", flush=True)
                except OSError as e:
                    print(step, e.errno, flush=True)
            try:
                os.close(fd); print("close ok", flush=True)
            except OSError as e:
                print("close", e.errno, flush=True)
            """
        try script.write(toFile: "\(dir)/writer.py", atomically: true, encoding: .utf8)
        let out = m.lab.directory.appendingPathComponent("writer.out")
        _ = FileManager.default.createFile(atPath: out.path, contents: nil)
        let outFD = open(out.path, O_WRONLY | O_APPEND)
        defer { close(outFD) }
        let writer = try ChildProcess(["python3", "\(dir)/writer.py", m.image, dir], stdout: outFD, stderr: outFD)
        func said() -> String { (try? String(contentsOf: out, encoding: .utf8)) ?? "" }
        try #require(eventually(timeout: .seconds(30)) { said().contains("synced") }, "\(said())")
        // A MiB read (and cached) before the target goes down, and changed on it meanwhile.
        try must("dd if=\(m.image) of=/dev/null bs=1M skip=16 count=1 status=none")
        m.vblades[0].kill()
        let changed = try writeBehind(m, offset: 16 << 20, count: 1 << 20)
        try must("echo > \(dir)/go")
        #expect(writer.wait(upTo: .seconds(60)), "the writer ends once the target is declared down")
        let lines = said()
        #expect(lines.contains("fsync1 \(EIO)") && lines.contains("fsync2 \(EIO)"), "every fsync fails: \(lines)")
        #expect(lines.contains("close \(EIO)"), "close fails too: \(lines)")
        try m.vblades[0].restart()
        #expect(
            try sha("dd if=\(m.file.path) bs=1M count=4 status=none") == sha("cat \(dir)/a.bin"),
            "what fsync acknowledged before the kill is on the target")
        // Back up: the cache of the image was dropped (the target may have changed while down).
        #expect(
            eventually(timeout: .seconds(20)) {
                (try? sha("dd if=\(m.image) bs=1M skip=16 count=1 status=none")) == changed
            }, "a target back from down is read anew")
    }
}

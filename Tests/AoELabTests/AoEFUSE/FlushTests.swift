import AoETestSupport
import Foundation
import Testing

/// Targets that need no flush, or cannot do one: what IDENTIFY offers decides (ACS-3 words 82–87).
extension MountTests {
    @Test("a write-through target (vblade: no write cache in IDENTIFY): fsync succeeds at once, no FLUSH frame")
    func fsyncOnWriteThroughTarget() throws {
        let m = try MountLab(program: .vblade)
        defer { m.tearDown() }
        let conf = try m.sys("conf")
        #expect(conf.contains("wcache 0\n") && conf.contains("flush none\n"), "\(conf)")
        try must("dd if=/dev/urandom of=\(m.image) bs=64k count=16 conv=notrunc,nocreat,fsync status=none")
        try must("sync \(m.image)")
        #expect(try m.stat("flushes") == 0, "no FLUSH command went to the target")
        #expect(try m.stat("flushes_local") >= 1, "the fsyncs were answered")
        // Buffered: the kernel's write-back sends the 1 MiB as it likes (fewer, larger WRITEs).
        #expect(try m.stat("bytes_written") >= 1 << 20)
    }

    @Test(
        "targets that cannot flush: mkfs.ext4, files and fsck -fn clean; one that aborts FLUSH is logged once",
        arguments: [["--write-through"], ["--abort-flush"]])
    func filesystemOnTargetWithoutFlush(_ flags: [String]) throws {
        let m = try MountLab(flags: flags, program: .aoefsServe)
        defer { m.tearDown() }
        try m.filesystemRoundTrip(files: 20, big: false)
        #expect(try m.stat("flushes") == 0, "no FLUSH command was answered")
        #expect(try m.stat("flushes_local") >= 1, "fsyncs were answered")
        let conf = try m.sys("conf")
        #expect(conf.contains("flush none\n"), "\(conf)")
        let aborts = m.log(of: m.lab).components(separatedBy: "fsync is answered without a flush").count - 1
        if flags == ["--abort-flush"] {
            #expect(conf.contains("wcache 1\n"), "\(conf)")
            #expect(aborts == 1, "one line for the aborted FLUSH: \(m.log(of: m.lab))")
        } else {
            #expect(conf.contains("wcache 0\n"), "\(conf)")
            #expect(aborts == 0)
        }
    }
}

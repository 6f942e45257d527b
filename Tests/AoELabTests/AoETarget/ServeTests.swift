import AoETestSupport
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// `aoefs serve` through its real use: started like vblade in a lab namespace, used through a
/// real mount. (The engine and mount suites also run against it: `make test` runs them a second
/// time with AOEFS_LAB_TARGET=serve.)
@Suite("aoefs serve", .serialized, .enabled(if: LabGate.labShouldRun, Comment(rawValue: LabGate.labSkipReason)))
struct ServeTests {
    @Test("-o and -l: the image is that window of the file, read and written")
    func window() throws {
        // A 4 MiB window starting 1 MiB into a 16 MiB file.
        let m = try MountLab(size: 16 << 20, flags: ["-o", "2048", "-l", "8192"], program: .aoefsServe)
        defer { m.tearDown() }
        #expect(try must("stat -c %s \(m.image)").trimmingCharacters(in: .whitespacesAndNewlines) == String(8192 * 512))
        let f = m.file.path
        try must(
            "head -c \(16 << 20) /dev/urandom > \(m.lab.directory.path)/orig && dd if=\(m.lab.directory.path)/orig of=\(f) conv=notrunc status=none"
        )
        let window = try must("dd if=\(f) bs=512 skip=2048 count=8192 status=none | sha256sum").prefix(64)
        #expect(try must("dd if=\(m.image) bs=1M iflag=direct status=none | sha256sum").prefix(64) == window)
        // Writing the whole image changes exactly the window of the file.
        try must("head -c \(4 << 20) /dev/urandom > \(m.lab.directory.path)/new")
        try must("dd if=\(m.lab.directory.path)/new of=\(m.image) bs=1M oflag=direct conv=notrunc,nocreat status=none")
        #expect(
            try must("dd if=\(f) bs=512 skip=2048 count=8192 status=none | sha256sum").prefix(64)
                == (try must("sha256sum < \(m.lab.directory.path)/new")).prefix(64))
        #expect(
            try must("head -c \(1 << 20) \(f) | sha256sum").prefix(64)
                == (try must("head -c \(1 << 20) \(m.lab.directory.path)/orig | sha256sum")).prefix(64),
            "before the window")
        #expect(
            try must("tail -c \(11 << 20) \(f) | sha256sum").prefix(64)
                == (try must("tail -c \(11 << 20) \(m.lab.directory.path)/orig | sha256sum")).prefix(64),
            "after the window")
        // Past the end of the window is past the end of the image.
        let r = try sh(
            "dd if=/dev/zero of=\(m.image) bs=512 seek=8192 count=1 conv=notrunc,nocreat oflag=direct status=none")
        #expect(r.status != 0)
    }

    @Test(
        "--model and --serial set what IDENTIFY says (to pose as another disk); --rcvbuf a small socket still serves; bad values are refused"
    )
    func identityAndBuffer() throws {
        let m = try MountLab(
            size: 16 << 20, flags: ["--model", "SAME DISK", "--serial", "S-0001", "--rcvbuf", "65536"],
            program: .aoefsServe)
        defer { m.tearDown() }
        let ident = try m.sys("ident")
        #expect(ident.contains("model: SAME DISK\n") && ident.contains("serial: S-0001\n"), "\(ident)")
        try must("head -c \(4 << 20) /dev/urandom > \(m.lab.directory.path)/src")
        try must("dd if=\(m.lab.directory.path)/src of=\(m.image) bs=1M oflag=direct conv=notrunc,nocreat status=none")
        #expect(
            try must("dd if=\(m.image) bs=1M count=4 iflag=direct status=none | sha256sum").prefix(64)
                == (try must("sha256sum < \(m.lab.directory.path)/src")).prefix(64))
        let exe = productsDirectory().appendingPathComponent("aoefs").path
        for bad in [
            ["--model", String(repeating: "M", count: 41)], ["--serial", String(repeating: "S", count: 21)],
            ["--rcvbuf", "100"],
        ] {
            let r = try sh("\(exe) serve \(bad.joined(separator: " ")) 10 3 lo /dev/null 2>&1")
            #expect(r.status != 0 && r.out.contains(bad[0]), "\(bad[0]): \(r.out)")
        }
    }

    @Test("a backing file on tmpfs (which refuses preadv2 RWF_NOWAIT) is read and written: dd round trip, ext4 + fsck")
    func tmpfsBackingFile() throws {
        let fs = try must("stat -f -c %T /dev/shm").trimmingCharacters(in: .whitespacesAndNewlines)
        try #require(fs == "tmpfs", "/dev/shm is \(fs)")
        let m = try MountLab(size: 64 << 20, program: .aoefsServe, fileDirectory: "/dev/shm")
        defer { m.tearDown() }
        let data = m.lab.directory.appendingPathComponent("data").path
        try must("head -c \(8 << 20) /dev/urandom > \(data)")
        try must("dd if=\(data) of=\(m.image) bs=1M oflag=direct conv=notrunc,nocreat status=none")
        // Buffered and direct reads, small and large: every read used to fail with EIO.
        #expect(
            try must("head -c \(8 << 20) \(m.image) | sha256sum").prefix(64)
                == (try must("sha256sum < \(data)")).prefix(64))
        #expect(
            try must("dd if=\(m.image) bs=4k count=2048 iflag=direct status=none | sha256sum").prefix(64)
                == (try must("sha256sum < \(data)")).prefix(64))
        #expect(
            try must("head -c \(8 << 20) \(m.file.path) | sha256sum").prefix(64)
                == (try must("sha256sum < \(data)")).prefix(64))
        try m.filesystemRoundTrip(files: 10, big: false)
    }

    @Test("-m: an initiator that is not listed gets no answer; a listed one does")
    func macMask() throws {
        let lab = try Lab()
        defer { lab.teardown() }
        let net = try lab.direct(mtu: 9000)
        let mine = try must("cat /sys/class/net/\(net.initiator)/address").trimmingCharacters(
            in: .whitespacesAndNewlines)
        let f1 = try lab.sparseFile("a.img", size: 64 << 20)
        let f2 = try lab.sparseFile("b.img", size: 64 << 20)
        _ = try lab.startVblade(
            shelf: 7, slot: 1, interface: net.target, namespace: net.targetNamespace, file: f1,
            flags: ["-m", "02:00:00:00:00:99"], program: .aoefsServe)
        _ = try lab.startVblade(
            shelf: 7, slot: 2, interface: net.target, namespace: net.targetNamespace, file: f2,
            flags: ["-m", "02:00:00:00:00:99," + mine.uppercased().replacingOccurrences(of: ":", with: "")],
            program: .aoefsServe)
        let r = try aoefs(["scan", "--iface", net.initiator, "--wait", "2"])
        #expect(r.status == 0, "\(r.err)")
        #expect(r.out.contains("e7.2"), "the listed initiator is answered: \(r.out)")
        #expect(!r.out.contains("e7.1"), "the unlisted initiator is not: \(r.out)")
    }

    @Test("FLUSH reaches the disk: sync on the image makes the target fdatasync the file")
    func flushIsDurable() throws {
        let m = try MountLab(flags: ["-v"], program: .aoefsServe)
        defer { m.tearDown() }
        let target = try #require(m.vblades.first)
        func fdatasyncs() -> Int { target.log.components(separatedBy: "fdatasync \(m.file.path) done").count - 1 }
        let before = fdatasyncs()
        let flushesBefore = try m.stat("flushes")
        try must("dd if=/dev/urandom of=\(m.image) bs=1M count=8 conv=notrunc,nocreat status=none && sync \(m.image)")
        #expect(eventually(timeout: .seconds(5)) { fdatasyncs() > before }, "the target's log: \(target.log)")
        #expect(try m.stat("flushes") > flushesBefore)
        // The summary on exit counts them too.
        target.stop()
        #expect(target.log.contains(" fdatasync)"), "\(target.log)")
        let summary = target.log.split(separator: "\n").last { $0.contains("flushes (") }.map(String.init) ?? ""
        let n = summary.components(separatedBy: "flushes (").last?.split(separator: " ").first.flatMap { Int($0) } ?? 0
        #expect(n >= 1, "summary: \(summary)")
    }

    @Test("it announces itself: a running mount shows a new target at once, without a discover")
    func announces() throws {
        let m = try MountLab(program: .aoefsServe)
        defer { m.tearDown() }
        let f = try m.lab.sparseFile("e10.5.img", size: 32 << 20)
        let start = ContinuousClock.now
        _ = try m.lab.startVblade(
            shelf: 10, slot: 5, interface: m.net.target, namespace: m.net.targetNamespace, file: f,
            program: .aoefsServe)
        try eventually(timeout: .seconds(5)) { try must("ls \(m.mnt)").contains("e10.5") }
        #expect(ContinuousClock.now - start < .seconds(2), "e10.5 appeared after \(ContinuousClock.now - start)")
    }

    @Test("bad arguments: one line, non-zero status")
    func badArguments() throws {
        let r1 = try aoefs(["serve", "10", "3", "lo", "/nonexistent/disk.img"])
        #expect(r1.status != 0 && r1.err.contains("/nonexistent/disk.img: cannot open"), "\(r1.err)")
        let r2 = try aoefs(["serve", "-m", "banana", "10", "3", "lo", "/dev/null"])
        #expect(r2.status != 0 && r2.err.contains("banana"), "\(r2.err)")
        let r3 = try aoefs(["serve", "10", "255", "lo", "/dev/null"])
        #expect(r3.status != 0 && r3.err.contains("broadcast"), "\(r3.err)")
    }
}

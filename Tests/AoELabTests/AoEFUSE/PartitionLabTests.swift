import AoELinux
import AoETestSupport
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// `cat etherd/err` in the background, into a file a test can look at.
final class ErrTail: @unchecked Sendable {
    // @unchecked: set once in init, read-only after.
    let child: ChildProcess
    let path: String

    init(_ m: MountLab) throws {
        path = m.lab.directory.appendingPathComponent("err-\(UInt32.random(in: 0...UInt32.max)).txt").path
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        defer { close(fd) }
        child = try ChildProcess(["cat", m.mnt + "/etherd/err"], stdout: fd)
    }

    var text: String { (try? String(contentsOfFile: path, encoding: .utf8)) ?? "" }

    func stop() {
        child.signal(SIGKILL)
        child.wait()
    }
}

/// Partitions in the tree: tables written by the tools users have, on a real mount of vblade.
@Suite("Partitions", .serialized, .enabled(if: LabGate.labShouldRun, Comment(rawValue: LabGate.labSkipReason)))
struct PartitionLabTests {
    func ls(_ m: MountLab) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: m.mnt)) ?? []).sorted()
    }

    func part(_ m: MountLab, _ name: String, _ file: String) throws -> String {
        try String(contentsOfFile: "\(m.mnt)/sys/\(name)/\(file)", encoding: .utf8)
    }

    @Test(
        "sfdisk writes three partitions: e10.3p1..p3 appear without remounting, sizes and offsets match, ext4 on p2 is clean, bounds hold, a deleted one goes"
    )
    func sfdiskThreePartitions() throws {
        let m = try MountLab(size: 256 << 20)
        defer { m.tearDown() }
        #expect(ls(m) == ["e10.3", "etherd", "sys"], "a blank disk has no partitions")
        let layout =
            "label: dos\\nstart=2048, size=40960, type=83\\nstart=43008, size=204800, type=83\\n"
            + "start=247808, size=100000, type=82\\n"
        try must("printf '\(layout)' | sfdisk -q --no-reread --no-tell-kernel \(m.image)")
        #expect(
            eventually(timeout: .seconds(5)) { ls(m) == ["e10.3", "e10.3p1", "e10.3p2", "e10.3p3", "etherd", "sys"] },
            "\(ls(m)) \(m.log(of: m.lab))")
        let p2 = m.mnt + "/e10.3p2"
        let size = try FileManager.default.attributesOfItem(atPath: p2)[.size] as? Int
        #expect(size == 204_800 * 512)
        #expect(try part(m, "e10.3p2", "start") == "43008\n")
        #expect(try part(m, "e10.3p2", "size") == "204800\n")
        #expect(try part(m, "e10.3p3", "type") == "0x82\n")
        #expect(try part(m, "e10.3p1", "size") == "40960\n")

        // ext4 on p2 through a loop device, files, fsck clean.
        let loop = try must("losetup -f --show \(p2)").trimmingCharacters(in: .whitespacesAndNewlines)
        let fsdir = m.lab.directory.appendingPathComponent("p2").path
        do {
            defer { _ = try? sh("umount \(fsdir) 2>/dev/null; losetup -d \(loop)") }
            try must("mkfs.ext4 -q -F \(loop) && mkdir -p \(fsdir) && mount \(loop) \(fsdir)")
            try must("for i in $(seq 20); do head -c $((i * 5000)) /dev/urandom > \(fsdir)/f$i; done; sync -f \(fsdir)")
            try must("umount \(fsdir)")
            let fsck = try sh("fsck.ext4 -fn \(loop)")
            #expect(fsck.status == 0, "fsck: \(fsck.out)")
        }
        // p2's bytes are at sector 43008 of vblade's backing file.
        let viaMount = try must("sha256sum < \(p2)").prefix(64)
        let inFile = try must("dd if=\(m.file.path) bs=512 skip=43008 count=204800 status=none | sha256sum").prefix(64)
        #expect(viaMount == inFile, "p2 is at the right offset of the target")
        #expect(
            try must("dd if=\(p2) bs=1024 skip=1 count=1 status=none | od -An -tx1 -j56 -N2").contains("53 ef"),
            "the ext4 magic is in p2's superblock")

        // A block device's bounds: a read past the end gets 0 bytes, a write past it ENOSPC, and
        // the neighbour is untouched.
        let p1 = m.mnt + "/e10.3p1"
        #expect(try must("dd if=\(p1) bs=512 skip=40960 count=1 iflag=direct status=none | wc -c") == "0\n")
        let over = try sh("dd if=/dev/zero of=\(p1) bs=512 seek=40960 count=1 oflag=direct conv=notrunc status=none")
        #expect(over.status != 0 && over.out.contains("No space left on device"), "\(over.out)")
        let straddle = try sh(
            "dd if=/dev/zero of=\(p1) bs=1024 seek=20479 count=2 oflag=direct conv=notrunc status=none")
        #expect(straddle.status != 0, "a write that runs past the end fails")
        #expect(try must("sha256sum < \(p2)").prefix(64) == viaMount, "p2 unchanged")

        // sfdisk --delete: p3's file goes.
        try must("sfdisk -q --no-reread --no-tell-kernel --delete \(m.image) 3")
        #expect(eventually(timeout: .seconds(5)) { !ls(m).contains("e10.3p3") }, "\(ls(m))")
        #expect(ls(m).contains("e10.3p2"))
        #expect(!FileManager.default.fileExists(atPath: m.mnt + "/sys/e10.3p3"))

        // Logicals in an extended partition are p5 and up.
        try must(
            "printf 'label: dos\\nstart=2048, size=40960, type=83\\nstart=43008, size=300000, type=5\\n"
                + "start=45056, size=20000, type=83\\nstart=67584, size=20000, type=83\\n' "
                + "| sfdisk -q --no-reread --no-tell-kernel \(m.image)")
        #expect(
            eventually(timeout: .seconds(5)) { ls(m) == ["e10.3", "e10.3p1", "e10.3p5", "e10.3p6", "etherd", "sys"] },
            "\(ls(m))")
        #expect(try part(m, "e10.3p6", "start") == "67584\n")
    }

    @Test(
        "a partition that goes is forgotten by the kernel at once (FUSE_NOTIFY_INVAL_ENTRY): stat fails within the 1 s entry timeout"
    )
    func goneEntryInvalidated() throws {
        let m = try MountLab(size: 64 << 20)
        defer { m.tearDown() }
        let two =
            "printf 'label: dos\\nstart=2048, size=8192, type=83\\nstart=10240, size=8192, type=83\\n' "
            + "| sfdisk -q --no-reread --no-tell-kernel \(m.image)"
        let p2 = m.mnt + "/e10.3p2"
        var conclusive = 0
        for attempt in 1...3 where conclusive == 0 {
            try must(two)
            #expect(eventually(timeout: .seconds(5)) { ls(m).contains("e10.3p2") }, "\(ls(m))")
            let seen = m.log(of: m.lab).components(separatedBy: "partition table mbr: e10.3p1\n").count
            #expect(FileManager.default.fileExists(atPath: p2))  // a stat: the kernel holds p2's entry for 1 s
            let start = ContinuousClock.now
            try must("sfdisk -q --no-reread --no-tell-kernel --delete \(m.image) 2")
            // The table pass notifies before it logs the new table.
            #expect(
                eventually(timeout: .seconds(5)) {
                    m.log(of: m.lab).components(separatedBy: "partition table mbr: e10.3p1\n").count > seen
                })
            let stillThere = FileManager.default.fileExists(atPath: p2)
            // Only a stat inside the entry timeout tells a notification from the timeout running out.
            guard ContinuousClock.now - start < .milliseconds(800) else { continue }
            conclusive = attempt
            #expect(!stillThere, "a stat of the deleted partition inside the entry timeout still found it")
        }
        #expect(conclusive > 0, "no attempt finished inside the entry timeout")
    }

    @Test("an open partition that goes away answers EIO until closed")
    func openPartitionGoes() throws {
        let m = try MountLab(size: 64 << 20)
        defer { m.tearDown() }
        try must(
            "printf 'label: dos\\nstart=2048, size=8192, type=83\\nstart=10240, size=8192, type=83\\n' "
                + "| sfdisk -q --no-reread --no-tell-kernel \(m.image)")
        #expect(eventually(timeout: .seconds(5)) { ls(m).contains("e10.3p2") }, "\(ls(m))")
        let fd = open(m.mnt + "/e10.3p2", O_RDONLY)
        #expect(fd >= 0)
        defer { close(fd) }
        var b = [UInt8](repeating: 0, count: 4096)
        #expect(pread(fd, &b, 4096, 0) == 4096)
        try must("sfdisk -q --no-reread --no-tell-kernel --delete \(m.image) 2")
        #expect(eventually(timeout: .seconds(5)) { !ls(m).contains("e10.3p2") }, "\(ls(m))")
        errno = 0
        #expect(pread(fd, &b, 4096, 0) == -1 && errno == EIO, "errno \(errno)")
    }

    @Test("a table written behind the mount's back (on the target's file) appears on revalidate")
    func revalidateReadsTheTable() throws {
        let m = try MountLab(size: 64 << 20)
        defer { m.tearDown() }
        try must("printf 'label: dos\\nstart=2048, size=8192, type=83\\n' | sfdisk -q \(m.file.path)")
        #expect(!eventually(timeout: .milliseconds(500)) { ls(m).contains("e10.3p1") }, "not without being asked")
        try must("echo e10.3 > \(m.mnt)/etherd/revalidate")
        #expect(eventually(timeout: .seconds(5)) { ls(m).contains("e10.3p1") }, "\(ls(m))")
    }

    @Test("sgdisk writes a GPT: partitions, names and type GUIDs; a corrupted primary header is read from the backup")
    func gptAndBackup() throws {
        let m = try MountLab(size: 128 << 20)
        defer { m.tearDown() }
        let err = try ErrTail(m)
        defer { err.stop() }
        // Not -q: sgdisk 1.0.9 quietly writes nothing with it.
        try must("sgdisk -n1:2048:+10M -n2:0:+50M -c2:data -t2:8200 -n3:0:+20M \(m.image) >/dev/null")
        #expect(
            eventually(timeout: .seconds(5)) { ls(m) == ["e10.3", "e10.3p1", "e10.3p2", "e10.3p3", "etherd", "sys"] },
            "\(ls(m)) \(err.text) \(m.log(of: m.lab))")
        #expect(try part(m, "e10.3p2", "name") == "data\n")
        #expect(try part(m, "e10.3p2", "type") == "0657fd6d-a4ab-43c4-84e5-0933c84b4f4f\n", "Linux swap")
        #expect(try part(m, "e10.3p1", "type") == "0fc63daf-8483-4772-8e79-3d69d8477de4\n", "Linux filesystem")
        #expect(try part(m, "e10.3p2", "size") == "\(50 << 11)\n")
        // Corrupt the primary header (sector 1): the backup at the end of the disk still holds.
        try must("printf 'garbage' | dd of=\(m.image) bs=512 seek=1 conv=notrunc status=none")
        #expect(
            eventually(timeout: .seconds(5)) { err.text.contains("primary GPT header: no EFI PART signature") },
            "\(err.text)")
        #expect(ls(m) == ["e10.3", "e10.3p1", "e10.3p2", "e10.3p3", "etherd", "sys"])
        #expect(try part(m, "e10.3p2", "name") == "data\n")
    }

    @Test("a hostile MBR (overlapping and out-of-range entries) yields the sound partitions and a line in err")
    func overlapping() throws {
        let m = try MountLab(size: 64 << 20)
        defer { m.tearDown() }
        let err = try ErrTail(m)
        defer { err.stop() }
        // Entries by hand (sfdisk refuses to write these): 1 sound, 2 overlaps 1, 3 past the end, 4 sound.
        let script = """
            import struct, sys
            mbr = bytearray(512)
            for i, (t, start, size) in enumerate([(0x83, 2048, 10000), (0x83, 5000, 10000),
                                                  (0x83, 100000, 1 << 20), (0x83, 20000, 1000)]):
                mbr[446 + 16 * i + 4] = t
                mbr[446 + 16 * i + 8:446 + 16 * i + 16] = struct.pack('<II', start, size)
            mbr[510:512] = b'\\x55\\xaa'
            with open(sys.argv[1], 'r+b') as f:
                f.write(mbr)
            """
        let py = m.lab.directory.appendingPathComponent("mbr.py").path
        try script.write(toFile: py, atomically: true, encoding: .utf8)
        try must("python3 \(py) \(m.image)")
        #expect(
            eventually(timeout: .seconds(5)) { ls(m) == ["e10.3", "e10.3p1", "e10.3p4", "etherd", "sys"] }, "\(ls(m))")
        #expect(
            eventually(timeout: .seconds(5)) {
                err.text.contains("partition 2 overlaps partition 1") && err.text.contains("partition 3 (start 100000")
            }, "\(err.text)")
        #expect(m.daemon?.isRunning == true)
    }
}

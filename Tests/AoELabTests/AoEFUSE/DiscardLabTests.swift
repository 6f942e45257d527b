import AoELinux
import AoEProtocol
import AoETestSupport
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Discard end to end (issue 33): `fstrim`, `blkdiscard` and `fallocate` through the mount, to
/// `aoefs serve` (TRIM punches holes in its file) and to vblade (no TRIM: nothing is sent).
@Suite("Discard end to end", .serialized, .enabled(if: LabGate.labShouldRun, Comment(rawValue: LabGate.labSkipReason)))
struct DiscardLabTests {
    /// 512-byte blocks the file holds on its filesystem (`stat -c %b`).
    func blocks(_ path: String) throws -> Int {
        Int(try must("stat -c %b \(path)").trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
    }

    /// tcpdump on the target's end of the link, writing AoE frames to `name`.pcap; stop with the
    /// returned closure, which returns the file's path.
    func capture(_ m: MountLab, _ name: String) throws -> () -> String {
        let cap = m.lab.directory.appendingPathComponent("\(name).pcap").path
        let output = try OutputCapture(appendingTo: m.lab.directory.appendingPathComponent("tcpdump.log").path)
        let dump = try ChildProcess(
            [
                "nsenter", "--net=/run/netns/\(m.net.targetNamespace)", "tcpdump", "-i", m.net.target,
                "-w", cap, "-U", "ether proto 0x88a2",
            ], stdout: output.writeEnd, stderr: output.writeEnd)
        output.childStarted()
        guard output.wait(for: "listening on", timeout: .seconds(5)) else {
            dump.signal(SIGKILL)
            dump.wait()
            throw LabFailure("tcpdump did not start: \(output.text)")
        }
        return {
            dump.signal(SIGINT)
            dump.wait()
            return cap
        }
    }

    /// tcpdump's reading of the DATA SET MANAGEMENT requests in `cap` (ATA command 0x06 in a
    /// request: byte 19 is the AoE command, bit 3 of byte 14 the response flag, byte 27 the ATA
    /// command).
    func dsmRequests(_ cap: String) throws -> String {
        try must("tcpdump -n -e -vv -r \(cap) 'ether[19] = 0 and ether[14] & 0x08 = 0 and ether[27] = 6' 2>/dev/null")
    }

    @Test(
        "fstrim of 512 MiB of deleted files on ext4 over an aoefs serve image: ≥ 95 % of their blocks leave the served file; fsck clean, kept files intact, DSM frames as tcpdump reads them"
    )
    func fstrimGivesSpaceBack() throws {
        let m = try MountLab(program: .aoefsServe)
        defer { m.tearDown() }
        let conf = try m.sys("conf")
        #expect(conf.contains("trim 1\n"), "IDENTIFY offers TRIM: \(conf)")
        let loop = try must("losetup -f --show \(m.image)").trimmingCharacters(in: .whitespacesAndNewlines)
        defer { _ = try? sh("losetup -d \(loop)") }
        let fs = m.lab.directory.appendingPathComponent("ext4").path
        let kept = m.lab.directory.appendingPathComponent("kept").path
        try must("mkfs.ext4 -q -F \(loop) && mkdir -p \(fs) \(kept) && mount \(loop) \(fs)")
        defer { _ = try? sh("umount \(fs)") }
        try must("sync -f \(fs)")
        let before = try blocks(m.file.path)
        try must("for i in 1 2; do head -c 4M /dev/urandom > \(kept)/k$i; done; cp \(kept)/k1 \(kept)/k2 \(fs)/")
        try must("for i in $(seq 8); do head -c 64M /dev/urandom > \(fs)/f$i; done; sync -f \(fs)")
        let written = try blocks(m.file.path)
        let deleted = (512 << 20) / 512
        #expect(written - before >= deleted, "the files reached the served file: \(before) → \(written) blocks")
        try must("rm \(fs)/f* && sync -f \(fs)")
        let stop = try capture(m, "fstrim")
        let start = ContinuousClock.now
        let said = try sh("fstrim -v \(fs)")
        let took = ContinuousClock.now - start
        // tcpdump reads what the kernel captured at its own pace: wait for it before stopping it.
        let path = m.lab.directory.appendingPathComponent("fstrim.pcap").path
        #expect(eventually(timeout: .seconds(5)) { !((try? dsmRequests(path)) ?? "").isEmpty }, "DSM frames captured")
        let cap = stop()
        #expect(said.status == 0, "fstrim: \(said.out) \(m.log(of: m.lab))")
        let after = try blocks(m.file.path)
        let returned = Double(written - after) / Double(deleted)
        let line =
            "fstrim: \(said.out.trimmingCharacters(in: .whitespacesAndNewlines)) in \(took); the served file held "
            + "\(before / 2048) MiB before, \(written / 2048) MiB with the files, \(after / 2048) MiB after fstrim "
            + "(\(Int(returned * 100)) % of the deleted files' blocks returned)"
        print(line)
        try? (line + "\n").write(
            toFile: m.lab.directory.appendingPathComponent("fstrim.txt").path, atomically: true, encoding: .utf8)
        #expect(returned >= 0.95, "\(line)")
        #expect(after - before <= (8 + 16) << 11, "within a few MiB of before, with the 8 MiB kept: \(line)")
        let dsm = try dsmRequests(cap)
        print("tcpdump, the first DSM request:\n" + dsm.split(separator: "\n").prefix(5).joined(separator: "\n"))
        #expect(
            dsm.contains("AFlags: [Ext48, Write], Err/Feature: 1, Sector Count: 1, Cmd/Status: 6"),
            "\(dsm.prefix(2000))")
        let stats = try m.sys("stats")
        #expect(try m.stat("discards") > 0 && m.stat("sectors_trimmed") >= deleted, "\(stats)")
        try must("umount \(fs)")
        let fsck = try sh("fsck.ext4 -fn \(loop)")
        #expect(fsck.status == 0, "fsck: \(fsck.out)")
        try must("mount -o ro \(loop) \(fs)")
        for f in ["k1", "k2"] {
            #expect(try must("sha256sum < \(fs)/\(f)") == must("sha256sum < \(kept)/\(f)"), "\(f) kept its bytes")
        }
    }

    @Test(
        "vblade (no TRIM in IDENTIFY): fstrim says not supported, a punched hole is EOPNOTSUPP, nothing changes, no DSM frame on the wire; zeroing writes zeros"
    )
    func targetWithoutTrim() throws {
        let m = try MountLab(size: 256 << 20, program: .vblade)
        defer { m.tearDown() }
        #expect(try m.sys("conf").contains("trim 0\n"))
        let stop = try capture(m, "vblade")
        let ref = m.lab.directory.appendingPathComponent("ref.bin").path
        try must(
            "head -c 8M /dev/urandom > \(ref) && dd if=\(ref) of=\(m.image) bs=1M conv=notrunc,nocreat,fsync status=none"
        )
        let punch = try sh("fallocate --punch-hole --offset 65536 --length 1048576 \(m.image)")
        // EOPNOTSUPP, which util-linux words as "keep size mode is unsupported".
        #expect(punch.status != 0 && punch.out.contains("unsupported"), "status \(punch.status): \(punch.out)")
        #expect(try must("head -c 8M \(m.image) | sha256sum") == must("sha256sum < \(ref)"), "nothing changed")
        // Zeroing an unaligned range works without TRIM: the engine writes zeros.
        try must("fallocate --zero-range --keep-size --offset 100000 --length 300000 \(m.image)")
        try must("fallocate --zero-range --keep-size --offset 100000 --length 300000 \(ref)")
        #expect(try must("head -c 8M \(m.image) | sha256sum") == must("sha256sum < \(ref)"), "zeros in the range only")
        let loop = try must("losetup -f --show \(m.image)").trimmingCharacters(in: .whitespacesAndNewlines)
        defer { _ = try? sh("losetup -d \(loop)") }
        let fs = m.lab.directory.appendingPathComponent("ext4").path
        try must("mkfs.ext4 -q -F \(loop) && mkdir -p \(fs) && mount \(loop) \(fs)")
        defer { _ = try? sh("umount \(fs)") }
        let trim = try sh("fstrim -v \(fs)")
        #expect(trim.status != 0 && trim.out.contains("not supported"), "\(trim.out)")
        // A marker read at LBA 0x050607: once tcpdump has written it, it has written every frame before it.
        try must("dd if=\(m.image) of=/dev/null bs=512 skip=\(0x050607) count=1 iflag=direct status=none")
        let path = m.lab.directory.appendingPathComponent("vblade.pcap").path
        #expect(
            eventually(timeout: .seconds(5)) {
                ((try? must("tcpdump -n -vv -r \(path) 2>/dev/null")) ?? "").contains("lba0: 7, lba1: 6, lba2: 5")
            }, "the marker read was captured")
        let cap = stop()
        #expect(try dsmRequests(cap).isEmpty, "no DSM frame went to vblade")
        #expect(try m.stat("discards") == 0)
    }

    @Test(
        "aoefs serve --no-trim: IDENTIFY offers no TRIM (its log says so at start), and a hole is refused with nothing sent"
    )
    func serveWithoutTrim() throws {
        let m = try MountLab(size: 64 << 20, flags: ["--no-trim"], program: .aoefsServe)
        defer { m.tearDown() }
        #expect(try m.sys("conf").contains("trim 0\n"))
        let target = try #require(m.vblades.first)
        #expect(target.log.contains("TRIM not offered (--no-trim)"), "\(target.log)")
        let punch = try sh("fallocate --punch-hole --offset 0 --length 1048576 \(m.image)")
        #expect(punch.status != 0 && punch.out.contains("unsupported"), "\(punch.out)")
        #expect(try m.stat("discards") == 0)
    }

    @Test(
        "partitions and ranges: blkdiscard of one partition trims only it; unaligned holes and zeroed ranges read back zeros, neighbours keep their bytes; past the end is refused"
    )
    func partitionsAndRanges() throws {
        let m = try MountLab(size: 256 << 20, program: .aoefsServe)
        defer { m.tearDown() }
        let layout =
            "label: dos\\nstart=2048, size=40960, type=83\\nstart=43008, size=204800, type=83\\n"
            + "start=247808, size=100000, type=83\\n"
        try must("printf '\(layout)' | sfdisk -q --no-reread --no-tell-kernel \(m.image)")
        let parts = ["p1", "p2", "p3"].map { m.mnt + "/e10.3" + $0 }
        #expect(eventually(timeout: .seconds(5)) { parts.allSatisfy { FileManager.default.fileExists(atPath: $0) } })
        var sums: [String] = []
        for p in parts {
            try must(
                "head -c $(stat -c %s \(p)) /dev/urandom | dd of=\(p) bs=1M conv=notrunc,nocreat,fsync status=none")
            sums.append(try must("sha256sum < \(p)"))
        }
        let full = try blocks(m.file.path)
        let loop = try must("losetup -f --show \(parts[1])").trimmingCharacters(in: .whitespacesAndNewlines)
        let discard = try sh("blkdiscard \(loop)")
        _ = try? sh("losetup -d \(loop)")
        #expect(discard.status == 0, "blkdiscard: \(discard.out)")
        #expect(try must("cmp -n 104857600 \(parts[1]) /dev/zero; echo $?").hasSuffix("0\n"), "p2 reads zeros")
        #expect(
            try must("sha256sum < \(parts[0])") == sums[0] && must("sha256sum < \(parts[2])") == sums[2],
            "p1 and p3 unchanged")
        let freed = full - (try blocks(m.file.path))
        #expect(freed >= 204_800 - 2048 && freed <= 204_800, "p2's 100 MiB left the served file (\(freed) blocks)")
        // Unaligned: a hole in p1 and a zeroed range in p3, against the same on a plain file.
        for (p, op) in [(parts[0], "--punch-hole"), (parts[2], "--zero-range --keep-size")] {
            let copy = m.lab.directory.appendingPathComponent("copy.bin").path
            try must("cat \(p) > \(copy)")
            try must(
                "fallocate \(op) --offset 1000 --length 100000 \(p) && fallocate \(op) --offset 1000 --length 100000 \(copy)"
            )
            #expect(try must("sha256sum < \(p)") == must("sha256sum < \(copy)"), "\(op): zeros in the range only")
            #expect(
                try must("dd if=\(p) bs=1000 skip=1 count=100 iflag=direct status=none | tr -d '\\0' | wc -c")
                    .trimmingCharacters(in: .whitespacesAndNewlines) == "0", "\(op): zeros read uncached too")
        }
        let size = try must("stat -c %s \(parts[2])").trimmingCharacters(in: .whitespacesAndNewlines)
        let past = try sh("fallocate --punch-hole --offset \(size) --length 4096 \(parts[2])")
        #expect(past.status != 0 && past.out.contains("Invalid argument"), "a hole past the end: \(past.out)")
        #expect(
            try sh("fallocate --offset 0 --length 1048576 \(m.image)").status == 0,
            "posix_fallocate inside: nothing to do")
        let grow = try sh("fallocate --offset 0 --length \(300 << 20) \(m.image)")
        #expect(grow.status != 0 && grow.out.contains("No space left"), "an image cannot grow: \(grow.out)")
        #expect(try must("sha256sum < \(parts[1])") == must("head -c 104857600 /dev/zero | sha256sum"))
    }

    @Test(
        "a DSM naming a range past the end, sent by a raw initiator: ABRT, and the served file is unchanged; a valid one punches its hole"
    )
    func rawTrimPastTheEnd() throws {
        let lab = try Lab()
        defer { lab.teardown() }
        let net = try lab.direct(mtu: 9000)
        let file = try lab.sparseFile("e10.3.img", size: 64 << 20)
        try must("head -c 64M /dev/urandom | dd of=\(file.path) conv=notrunc status=none")
        let sum = try must("sha256sum < \(file.path)")
        _ = try lab.startVblade(
            shelf: 10, slot: 3, interface: net.target, namespace: net.targetNamespace, file: file,
            program: .aoefsServe)
        let raw = RawInitiator(link: try PacketLink(interface: net.initiator))
        let answers = try raw.discover()
        try #require(answers.count == 1)
        raw.target = answers[0].header.source
        raw.address = answers[0].header.target
        let sectors = UInt64(64 << 20) / 512
        let (bad, _) = try raw.run([.trim(lba: sectors - 8, sectors: 9)], window: 1)
        #expect(bad[0].status.contains(.error) && bad[0].errorRegister == .aborted, "\(bad[0])")
        #expect(try must("sha256sum < \(file.path)") == sum, "nothing changed")
        let (ok, _) = try raw.run([.trim(lba: 2048, sectors: 2048)], window: 1)
        #expect(!ok[0].status.isFailure)
        #expect(
            try must("dd if=\(file.path) bs=512 skip=2048 count=2048 status=none | tr -d '\\0' | wc -c")
                .trimmingCharacters(in: .whitespacesAndNewlines) == "0")
        #expect(try must("sha256sum < \(file.path)") != sum)
    }
}

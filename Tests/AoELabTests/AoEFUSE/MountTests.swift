import AoELinux
import AoETestSupport
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@Suite("The mount", .serialized, .enabled(if: LabGate.labShouldRun, Comment(rawValue: LabGate.labSkipReason)))
struct MountTests {
    @Test("ls shows the image; stat gives the capacity; a second target appears after discover")
    func listingAndDiscover() throws {
        let m = try MountLab(size: 3 << 30)
        defer { m.tearDown() }
        #expect(try must("ls \(m.mnt)").split(separator: "\n") == ["e10.3", "etherd", "sys"])
        #expect(try must("stat -c %s \(m.image)").trimmingCharacters(in: .whitespacesAndNewlines) == String(3 << 30))
        let f2 = try m.lab.sparseFile("e10.4.img", size: 1 << 30)
        _ = try m.lab.startVblade(
            shelf: 10, slot: 4, interface: m.net.target, namespace: m.net.targetNamespace, file: f2)
        let start = ContinuousClock.now
        try must("echo > \(m.mnt)/etherd/discover")
        try eventually(timeout: .seconds(5)) { try must("ls \(m.mnt)").contains("e10.4") }
        #expect(ContinuousClock.now - start < .seconds(2), "e10.4 appeared in \(ContinuousClock.now - start)")
        #expect(
            try must("stat -c %s \(m.mnt)/e10.4").trimmingCharacters(in: .whitespacesAndNewlines) == String(1 << 30))
    }

    @Test("dd 512 MiB, buffered and direct: what was written, read and stored agree (sha256)")
    func ddRoundTrip() throws {
        let m = try MountLab()
        defer { m.tearDown() }
        let src = m.lab.directory.appendingPathComponent("src.bin").path
        for (wflag, rflag) in [("", ""), ("oflag=direct", "iflag=direct")] {
            try must("head -c \(512 << 20) /dev/urandom > \(src)")
            let want = try must("sha256sum < \(src)").prefix(64)
            try must("dd if=\(src) of=\(m.image) bs=1M conv=notrunc,nocreat \(wflag) status=none && sync")
            #expect(
                try must("dd if=\(m.image) bs=1M count=512 \(rflag) status=none | sha256sum").prefix(64) == want,
                "read back through the mount (\(wflag.isEmpty ? "buffered" : "direct"))")
            #expect(try must("head -c \(512 << 20) \(m.file.path) | sha256sum").prefix(64) == want, "the backing file")
        }
        #expect(try m.stat("bytes_written") >= 1 << 30)
        #expect(try m.stat("atasnd") > 100_000 / 2)
    }

    @Test(
        "--fuse-transport device (FUSEProtocol on /dev/fuse, libfuse only mounts): ls, stat, dd round trip, sys files, err interrupted"
    )
    func ownCore() throws {
        let m = try MountLab(size: 256 << 20, mountArgs: ["--fuse-transport", "device"])
        defer { m.tearDown() }
        try ownCoreChecks(m)
        #expect(!m.log(of: m.lab).contains("FUSE over io_uring serves"), "/dev/fuse, not the ring, served")
        #expect(!m.log(of: m.lab).contains("READ replies are gathered"), "the default copies")
    }

    @Test(
        "-o io_uring (FUSE over io_uring, enable_uring turned on for the test and restored): the same checks, served by the ring",
        .enabled(
            if: fuseURingEnabled() != nil, "this kernel has no FUSE over io_uring (Linux 6.14+, CONFIG_FUSE_IO_URING)"))
    func ringCore() throws {
        let restore = try EnableURing()
        defer { restore.undo() }
        let m = try MountLab(size: 256 << 20, mountArgs: ["-o", "io_uring"])
        defer { m.tearDown() }
        try ownCoreChecks(m)
        let log = m.log(of: m.lab)
        #expect(log.contains("queues × 32 entries registered"), "\(log)")
        #expect(log.contains("FUSE over io_uring serves requests"), "the ring, not /dev/fuse, served")
        // fsync through the ring (FSYNC is answered after the target's FLUSH).
        try must("dd if=/dev/zero of=\(m.image) bs=4k count=1 conv=notrunc,nocreat,fsync status=none")
    }

    @Test(
        "-o io_uring while enable_uring is N: one log line, and the mount serves over /dev/fuse",
        .enabled(if: fuseURingEnabled() == false, "enable_uring is on (or missing) on this machine"))
    func ringAskedButOff() throws {
        let m = try MountLab(size: 64 << 20, mountArgs: ["-o", "io_uring"])
        defer { m.tearDown() }
        m.expectRing = false
        #expect(
            try must("dd if=\(m.image) bs=1M count=4 iflag=direct status=none | wc -c").trimmingCharacters(
                in: .whitespacesAndNewlines) == "4194304")
        let log = m.log(of: m.lab)
        #expect(
            log.contains("FUSE over io_uring asked for, but /sys/module/fuse/parameters/enable_uring is N"), "\(log)")
    }

    func ownCoreChecks(_ m: MountLab) throws {
        #expect(try must("ls \(m.mnt)").split(separator: "\n") == ["e10.3", "etherd", "sys"])
        #expect(try stat("e10.3", in: m) == 256 << 20)
        let src = m.lab.directory.appendingPathComponent("src.bin").path
        try must("head -c \(32 << 20) /dev/urandom > \(src)")
        let want = try must("sha256sum < \(src)").prefix(64)
        try must("dd if=\(src) of=\(m.image) bs=1M seek=1 conv=notrunc,nocreat,fsync oflag=direct status=none")
        #expect(
            try must("dd if=\(m.image) bs=1M skip=1 count=32 iflag=direct status=none | sha256sum").prefix(64) == want)
        #expect(try must("dd if=\(m.file.path) bs=1M skip=1 count=32 status=none | sha256sum").prefix(64) == want)
        try must("printf abc | dd of=\(m.image) bs=1 seek=7 conv=notrunc,nocreat status=none")  // unaligned
        #expect(try must("dd if=\(m.image) bs=1 skip=7 count=3 status=none") == "abc")
        #expect(try m.sys("state") == "up\n")
        #expect(try m.stat("writes") > 0)
        let err = try ChildProcess(["cat", m.mnt + "/etherd/err"])
        #expect(!err.wait(upTo: .milliseconds(300)), "cat blocks until a line exists")
        err.signal(SIGINT)
        #expect(err.wait(upTo: .seconds(2)), "an interrupted read of etherd/err ends")
        #expect(m.daemon?.isRunning == true)
        #expect(m.log(of: m.lab).contains("aoefs's own protocol core serves"), "the own core, not libfuse, served")
    }

    func stat(_ name: String, in m: MountLab) throws -> Int {
        Int(try must("stat -c %s \(m.mnt)/\(name)").trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
    }

    @Test(
        "four readers at once over /dev/fuse, large replies handed to the reply thread: every range reads back what was written"
    )
    func concurrentReaders() throws {
        let m = try MountLab(size: 256 << 20, mountArgs: ["--fuse-transport", "device"])
        defer { m.tearDown() }
        let src = m.lab.directory.appendingPathComponent("src.bin").path
        try must("head -c \(128 << 20) /dev/urandom > \(src)")
        try must("dd if=\(src) of=\(m.image) bs=1M conv=notrunc,nocreat,fsync oflag=direct status=none")
        // Each reader takes its own 32 MiB, 1 MiB at a time, all four at once: a read then
        // finds others waiting, and its 1 MiB reply goes out on the reply thread.
        let sums = m.lab.directory.appendingPathComponent("sum").path
        try must(
            (0..<4).map { i in
                "(dd if=\(m.image) bs=1M skip=\(i * 32) count=32 iflag=direct status=none | sha256sum > \(sums).\(i)) &"
            }.joined(separator: " ") + " wait")
        for i in 0..<4 {
            let got = try String(contentsOfFile: "\(sums).\(i)", encoding: .utf8)
            let want = try must("dd if=\(src) bs=1M skip=\(i * 32) count=32 status=none | sha256sum")
            #expect(got.prefix(64) == want.prefix(64), "reader \(i)")
        }
    }

    @Test(
        "options of earlier days: -o fuse_threads=4,fuse_core=libfuse,read_replies=gather ignored with a line; --fuse-core and --read-replies refused"
    )
    func oldOptions() throws {
        let m = try MountLab(size: 64 << 20, mountArgs: ["-o", "fuse_threads=4,fuse_core=libfuse,read_replies=gather"])
        defer { m.tearDown() }
        #expect(
            try must("dd if=\(m.image) bs=1M count=4 iflag=direct status=none | wc -c").trimmingCharacters(
                in: .whitespacesAndNewlines) == "4194304")
        let log = m.log(of: m.lab)
        #expect(
            log.contains("-o fuse_threads=4: ignored") && log.contains("-o fuse_core=libfuse: ignored")
                && log.contains("-o read_replies=gather: ignored"), "\(log)")
        let empty = m.lab.directory.appendingPathComponent("mnt2").path
        let refused = try sh(
            "mkdir -p \(empty) && \(productsDirectory().appendingPathComponent("aoefs").path) mount \(empty) --fuse-core libfuse 2>&1"
        )
        #expect(refused.status != 0 && refused.out.contains("--fuse-core"), "\(refused.out)")
        let bad = try sh(
            "\(productsDirectory().appendingPathComponent("aoefs").path) mount \(empty) --read-replies gather 2>&1")
        #expect(bad.status != 0 && bad.out.contains("--read-replies"), "\(bad.out)")
    }

    @Test("losetup, mkfs.ext4, mount, copy files, fsck clean, remount and compare")
    func filesystemOnALoopDevice() throws {
        let m = try MountLab()
        defer { m.tearDown() }
        try m.filesystemRoundTrip(files: 50, big: true)
    }

    @Test("unaligned writes, alone and from several processes at once, read back exactly")
    func unalignedWrites() throws {
        let m = try MountLab(size: 256 << 20)
        defer { m.tearDown() }
        let blob = m.lab.directory.appendingPathComponent("blob").path
        try must("head -c 100000 /dev/urandom > \(blob)")
        try must("dd if=\(blob) of=\(m.image) bs=1000 seek=7 conv=notrunc,nocreat status=none")
        #expect(
            try must("dd if=\(m.image) bs=1000 skip=7 count=100 status=none | cmp - \(blob) && echo same") == "same\n")
        // 8 writers, each 333 bytes at 1000·k + 17, all inside the same few sectors, O_DIRECT:
        // the engine's read-modify-write of the edge sectors, under its range locks. (Buffered,
        // above, the kernel's page cache merges them.)
        var script = ""
        for k in 0..<8 {
            script +=
                "python3 -c \"import os; fd=os.open('\(m.image)', os.O_WRONLY | os.O_DIRECT); "
                + "os.pwrite(fd, bytes([\(k + 1)])*333, 3_000_017 + \(k) * 400)\" & "
        }
        try must(script + "wait")
        let check = try must(
            "python3 -c \"import os; fd=os.open('\(m.image)', os.O_RDONLY | os.O_DIRECT); d=os.pread(fd, 3200, 3_000_017); "
                + "print(all(d[k*400:k*400+333]==bytes([k+1])*333 for k in range(8)))\"")
        #expect(check == "True\n")
        #expect(try m.stat("rmw_ops") >= 8)
    }

    @Test("every sys file has its format; counters grow by what was done; conf maxbuf is vblade's -b")
    func sysFiles() throws {
        let m = try MountLab(flags: ["-b", "12"])
        defer { m.tearDown() }
        #expect(try m.sys("state") == "up\n")
        #expect(try m.sys("mac").range(of: "^[0-9a-f]{12}\n$", options: .regularExpression) != nil)
        #expect(try m.sys("netif") == m.net.initiator + "\n")
        #expect(try m.sys("fwver") == "0x4019\n")
        #expect(try m.sys("payload") == "8704\n")
        let ident = try m.sys("ident")
        for key in ["model: ", "serial: ", "firmware: ", "lba48: yes", "sectors: \(1 << 21)"] {
            #expect(ident.contains(key))
        }
        let paths = try m.sys("paths").split(separator: "\n")
        #expect(paths.first == "netif mac payload mtu rtt_us rto_us outstanding window sent lost state raise_in_s")
        #expect(paths.count == 2 && paths[1].split(separator: " ").count == 12)
        let conf = try m.sys("conf")
        #expect(conf.contains("maxbuf 12\n") && conf.contains("maxdata 8704\n") && conf.contains("deadsecs 180\n"))
        let names = try m.sys("stats").split(separator: "\n").map { $0.split(separator: " ")[0] }
        #expect(
            names.prefix(9) == [
                "atarcv", "atasnd", "erraoe", "errata", "errtimeout", "errtrunc", "errwmsg", "retries", "softerr",
            ])
        let sent0 = try m.stat("atasnd"), recv0 = try m.stat("atarcv"), written0 = try m.stat("bytes_written")
        try must("dd if=/dev/zero of=\(m.image) bs=1M count=8 oflag=direct conv=notrunc,nocreat status=none")
        #expect(try m.stat("bytes_written") - written0 == 8 << 20)
        #expect(try m.stat("atasnd") - sent0 >= (8 << 20) / 8704)
        #expect(try m.stat("atarcv") - recv0 >= (8 << 20) / 8704)
        #expect(try m.stat("writes") >= 8)
    }

    @Test("etherd: interfaces round-trips and rejects unknown names; revalidate shows a grown disk; err blocks")
    func controls() throws {
        let m = try MountLab(size: 1 << 30, mountArgs: ["--deadsecs", "3"])
        defer { m.tearDown() }
        try must("echo \(m.net.initiator) > \(m.mnt)/etherd/interfaces")
        #expect(try String(contentsOfFile: m.mnt + "/etherd/interfaces", encoding: .utf8) == m.net.initiator + "\n")
        let bad = try sh("echo eth-nope > \(m.mnt)/etherd/interfaces")
        #expect(bad.status != 0 && bad.out.contains("Invalid argument"))
        let badReval = try sh("echo e99.9 > \(m.mnt)/etherd/revalidate")
        #expect(badReval.status != 0)
        // Grow the backing file; vblade must restart to see it; revalidate shows the new size.
        try must("truncate -s 2G \(m.file.path)")
        try m.vblades[0].restart()
        try must("echo e10.3 > \(m.mnt)/etherd/revalidate")
        #expect(try eventually(timeout: .seconds(5)) { try must("stat -c %s \(m.image)") == "\(2 << 30)\n" })
        // A blocked reader of err is interruptible: Ctrl-C (SIGINT) ends it at once.
        let interrupted = try ChildProcess(["cat", m.mnt + "/etherd/err"])
        #expect(!interrupted.wait(upTo: .milliseconds(300)), "cat blocks while there is nothing to say")
        interrupted.signal(SIGINT)
        #expect(interrupted.wait(upTo: .seconds(2)), "cat of etherd/err did not end on SIGINT")
        #expect(interrupted.terminatingSignal == SIGINT)
        // err: a read blocks until a line exists; a target going down writes one.
        let errOut = m.lab.directory.appendingPathComponent("err.txt").path
        // One read(2), as a reader of /dev/etherd/err does: it blocks until a line exists.
        let reader = try ChildProcess([
            "/bin/sh", "-c", "dd if=\(m.mnt)/etherd/err bs=4096 count=1 status=none > \(errOut)",
        ])
        #expect(!reader.wait(upTo: .milliseconds(300)), "the read blocks while there is nothing to say")
        m.vblades[0].kill()
        _ = try? sh("dd if=\(m.image) of=/dev/null bs=4k count=1 iflag=direct status=none")
        #expect(reader.wait(upTo: .seconds(15)))
        #expect((try? String(contentsOfFile: errOut, encoding: .utf8))?.isEmpty == false)
        #expect(try m.sys("state").hasPrefix("down"))
        // flush "" removes the down, unused target's image.
        try must("echo > \(m.mnt)/etherd/flush")
        #expect(!(try must("ls \(m.mnt)")).contains("e10.3"))
    }

    @Test("fsync on a target with a write cache (aoefs serve) sends FLUSH CACHE on the wire and counts it")
    func fsyncFlushes() throws {
        let m = try MountLab(program: .aoefsServe)
        defer { m.tearDown() }
        let cap = m.lab.directory.appendingPathComponent("cap.pcap").path
        let output = try OutputCapture(appendingTo: m.lab.directory.appendingPathComponent("tcpdump.log").path)
        let dump = try ChildProcess(
            [
                "nsenter", "--net=/run/netns/\(m.net.targetNamespace)", "tcpdump", "-i", m.net.target, "-w", cap,
                "-U", "ether proto 0x88a2",
            ], stdout: output.writeEnd, stderr: output.writeEnd)
        output.childStarted()
        #expect(output.wait(for: "listening on", timeout: .seconds(5)), "tcpdump started: \(output.text)")
        let before = try m.stat("flushes")
        try must("dd if=/dev/zero of=\(m.image) bs=4k count=4 conv=notrunc,nocreat,fsync status=none")
        #expect(try m.stat("flushes") > before)
        // -U writes each packet as it is captured: wait until the flush is in the file.
        let flushOnWire = { () -> Bool in
            let text = (try? must("tcpdump -n -vv -r \(cap) 2>/dev/null")) ?? ""
            return text.contains("Cmd/Status: 234") || text.contains("Cmd/Status: 231")
        }
        #expect(eventually(timeout: .seconds(5), flushOnWire), "0xea or 0xe7 on the wire")
        dump.signal(SIGINT)
        dump.wait()
        let conf = try m.sys("conf")
        #expect(conf.contains("wcache 1\n") && conf.contains("flush ext\n"), "\(conf)")
    }

    @Test("vblade killed with --deadsecs 5: dd gets EIO within 10 s, state reads down, unmount works")
    func deadTarget() throws {
        let m = try MountLab(mountArgs: ["--deadsecs", "5"])
        defer { m.tearDown() }
        m.vblades[0].kill()
        let start = ContinuousClock.now
        let r = try sh("dd if=\(m.image) of=/dev/null bs=1M count=4 iflag=direct status=none")
        #expect(r.status != 0 && r.out.contains("Input/output error"), "\(r.out)")
        #expect(ContinuousClock.now - start < .seconds(10))
        #expect(try m.sys("state").hasPrefix("down"))
        try must("fusermount3 -u \(m.mnt)")
        #expect(m.daemon!.wait(upTo: .seconds(10)))
        #expect(!mounted(m.mnt))
    }

    /// dd catches SIGINT, so the kernel waits for the daemon's answer to its INTERRUPT: before,
    /// Ctrl-C on a dd from a dead target did nothing until deadsecs (180 s by default).
    @Test("Ctrl-C on a dd reading from a dead target: dd ends at once (EINTR), long before deadsecs")
    func interruptedRead() throws {
        let m = try MountLab()
        defer { m.tearDown() }
        m.vblades[0].kill()
        let dd = try ChildProcess(["dd", "if=\(m.image)", "of=/dev/null", "iflag=direct", "count=1", "skip=5"])
        defer {
            dd.signal(SIGKILL)
            dd.wait()
        }
        #expect(
            eventually(timeout: .seconds(10)) { ((try? m.sys("stats")) ?? "").contains("\nin_flight 1\n") },
            "the read waits in the engine")
        let start = ContinuousClock.now
        dd.signal(SIGINT)
        #expect(dd.wait(upTo: .seconds(5)), "dd ended after Ctrl-C")
        #expect(ContinuousClock.now - start < .seconds(5))
        #expect(try m.sys("state") == "up\n", "the target is not declared down: deadsecs has not passed")
    }

    @Test("SIGTERM during a write: the mount goes away, exit 0, acknowledged writes are on disk")
    func sigtermDuringWrite() throws {
        let m = try MountLab()
        defer { m.tearDown() }
        let aa = m.lab.directory.appendingPathComponent("aa.bin")
        try Data(repeating: 0xAA, count: 1 << 20).write(to: aa)
        // Each MiB is logged as done only after dd returned, i.e. after the write was acknowledged.
        let writer = try ChildProcess([
            "/bin/sh", "-c",
            "i=0; while [ $i -lt 400 ]; do dd if=\(aa.path) of=\(m.image) bs=1M seek=$i oflag=direct conv=notrunc,nocreat status=none || exit 1; echo $i >> \(m.lab.directory.path)/done; i=$((i+1)); done",
        ])
        let progress = m.lab.directory.path + "/done"
        #expect(
            eventually(timeout: .seconds(30)) {
                ((try? String(contentsOfFile: progress, encoding: .utf8)) ?? "").split(separator: "\n").count >= 3
            }, "the writer made progress")
        m.daemon!.signal(SIGTERM)
        #expect(m.daemon!.wait(upTo: .seconds(30)))
        #expect(m.daemon!.exitCode == 0)
        #expect(!mounted(m.mnt))
        writer.signal(SIGKILL)
        writer.wait()
        let done = ((try? String(contentsOfFile: m.lab.directory.path + "/done", encoding: .utf8)) ?? "")
            .split(separator: "\n").compactMap { Int($0) }
        #expect(!done.isEmpty)
        let h = try FileHandle(forReadingFrom: m.file)
        for i in done {
            try h.seek(toOffset: UInt64(i) << 20)
            #expect(
                try h.read(upToCount: 1 << 20) == Data(repeating: 0xAA, count: 1 << 20),
                "MiB \(i) acknowledged but not stored")
        }
    }

    @Test("bad mountpoint, unknown interface, not root: one line, non-zero status, nothing mounted")
    func badInput() throws {
        let lab = try Lab()
        defer { lab.teardown() }
        let net = try lab.direct(mtu: 1500)
        let mnt = lab.directory.appendingPathComponent("m").path
        try FileManager.default.createDirectory(atPath: mnt, withIntermediateDirectories: true)
        let r1 = try aoefs(["mount", lab.directory.path + "/nope", "--iface", net.initiator])
        #expect(r1.status != 0 && r1.err.hasPrefix("Error: ") && r1.err.contains("no such directory"))
        let r2 = try aoefs(["mount", mnt, "--iface", "aoetnosuch1"])
        #expect(r2.status != 0 && r2.err.contains("aoetnosuch1: no such network interface"))
        let exe = productsDirectory().appendingPathComponent("aoefs").path
        let r3 = try sh(
            "setpriv --reuid=65534 --regid=65534 --clear-groups \(exe) mount \(mnt) --iface \(net.initiator) 2>&1")
        #expect(r3.status != 0 && r3.out.contains("needs root or CAP_NET_RAW"), "\(r3.out)")
        #expect(!mounted(mnt))
    }
}

/// Turns the fuse module's `enable_uring` on for one test and puts back what it was: aoefs never
/// flips it (the user does), the test does so only for its own run.
struct EnableURing {
    static let path = "/sys/module/fuse/parameters/enable_uring"
    let previous: String

    init() throws {
        previous = try String(contentsOfFile: Self.path, encoding: .utf8).trimmingCharacters(
            in: .whitespacesAndNewlines)
        try "Y".write(toFile: Self.path, atomically: false, encoding: .utf8)
    }

    func undo() { try? previous.write(toFile: Self.path, atomically: false, encoding: .utf8) }
}

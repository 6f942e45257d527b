import AoELinux
import AoETestSupport
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Runs the built `aoefs` with `args`; returns (exit status, stdout, stderr).
func aoefs(_ args: [String]) throws -> (status: Int32, out: String, err: String) {
    let exe = productsDirectory().appendingPathComponent("aoefs").path
    let out = try #require(closeOnExecPipe()), err = try #require(closeOnExecPipe())
    let p = try ChildProcess([exe] + args, stdout: out[1], stderr: err[1])
    close(out[1])
    close(err[1])
    let o = FileHandle(fileDescriptor: out[0], closeOnDealloc: true).readDataToEndOfFile()
    let e = FileHandle(fileDescriptor: err[0], closeOnDealloc: true).readDataToEndOfFile()
    p.wait()
    return (p.exitCode ?? -1, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
}

@Suite("aoefs scan and bench", .enabled(if: LabGate.labShouldRun, Comment(rawValue: LabGate.labSkipReason)))
struct CLITests {
    @Test func scanListsTheTarget() throws {
        let lab = try Lab()
        defer { lab.teardown() }
        let net = try lab.direct(mtu: 9000)
        let file = try lab.sparseFile("e10.3.img", size: 3 << 30)
        _ = try lab.startVblade(
            shelf: 10, slot: 3, interface: net.target, namespace: net.targetNamespace, file: file,
            flags: ["-b", "20"])
        let r = try aoefs(["scan", "--iface", net.initiator, "--wait", "3"])
        #expect(r.status == 0, "\(r.err)")
        // While it waits, each target is reported on stderr as it answers.
        #expect(r.err.contains("e10.3 answered on \(net.initiator)") && r.err.contains("3.221GB"), "\(r.err)")
        let lines = r.out.split(separator: "\n")
        #expect(lines.count == 2)
        #expect(lines.first?.hasPrefix("TARGET") == true)
        let row = lines.last.map(String.init) ?? ""
        for cell in ["e10.3", net.initiator, "20", "8704", "0x4019", "3.221GB", "up"] {
            #expect(row.contains(cell), "scan row «\(row)» lacks \(cell)")
        }
        // --json: one document, the same values, numbers as numbers.
        let j = try aoefs(["scan", "--iface", net.initiator, "--wait", "3", "--json"])
        #expect(j.status == 0, "\(j.err)")
        let doc = try JSONSerialization.jsonObject(with: Data(j.out.utf8)) as? [[String: Any]]
        let t = try #require(doc?.first, "scan --json: \(j.out)")
        #expect(doc?.count == 1)
        #expect(t["target"] as? String == "e10.3" && t["state"] as? String == "up")
        #expect(t["bufcnt"] as? Int == 20 && t["payload"] as? Int == 8704 && t["firmware"] as? Int == 0x4019)
        #expect(t["size"] as? Int == 3 << 30 && t["interfaces"] as? [String] == [net.initiator])
    }

    @Test("the overview of aoefs --help reads cleanly at 80 columns: no line wrapped, each row whole")
    func overviewFitsEightyColumns() throws {
        let r = try aoefs(["--help"])
        #expect(r.status == 0)
        let lines = r.out.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines.allSatisfy { $0.count <= 80 }, "\(lines.filter { $0.count > 80 })")
        #expect(lines.contains { $0.contains("aoefs demo") && $0.contains("a private target and mount") })
        #expect(lines.contains { $0.contains("aoefs mount /mnt/aoe") && $0.contains("targets as files") })
        #expect(!lines.contains { $0.trimmingCharacters(in: .whitespaces) == "and" }, "a row broken mid-sentence")
    }

    @Test(
        "every subcommand's discussion is written for 80 columns: the help never re-wraps it",
        arguments: [
            "mount", "stat", "discover", "interfaces", "revalidate", "flush", "scan", "serve", "demo", "bench",
            "list", "disable", "enable", "probe", "metrics", "iostat", "doctor", "restart",
        ])
    func discussionFitsEightyColumns(command: String) throws {
        // Between the overview and USAGE: the same text at 80 columns as at 200 means no line
        // of it was broken by the help formatter (which breaks mid-sentence).
        func discussion(_ columns: Int) throws -> String {
            let out = try must(
                "COLUMNS=\(columns) \(productsDirectory().appendingPathComponent("aoefs").path) \(command) --help")
            let body = out.components(separatedBy: "\n\n").dropFirst()
            return body.prefix { !$0.hasPrefix("USAGE:") }.joined(separator: "\n\n")
        }
        let narrow = try discussion(80)
        #expect(!narrow.isEmpty)
        #expect(narrow == (try discussion(200)), "aoefs \(command) --help is re-wrapped at 80 columns:\n\(narrow)")
    }

    @Test func scanFindsNothingAndSaysSo() throws {
        let lab = try Lab()
        defer { lab.teardown() }
        let net = try lab.direct(mtu: 1500)
        let r = try aoefs(["scan", "--iface", net.initiator, "--wait", "1"])
        #expect(r.status != 0)
        #expect(r.err.contains("no AoE target answered on \(net.initiator)"))
    }

    @Test(
        "every subcommand's --help teaches with an example",
        arguments: [
            "mount", "stat", "discover", "interfaces", "revalidate", "flush", "scan", "serve", "demo", "bench",
            "list", "disable", "enable", "probe", "metrics", "iostat", "doctor", "restart",
        ])
    func helpHasExamples(command: String) throws {
        let r = try aoefs([command, "--help"])
        #expect(r.status == 0)
        let text = r.out + r.err
        #expect(text.contains("Example"), "aoefs \(command) --help has no example")
        #expect(text.contains("aoefs \(command)") || (command == "mount" && text.contains("aoefs mount")), "\(text)")
    }

    @Test func badInputGetsOneLineAndNonZeroStatus() throws {
        let r1 = try aoefs(["scan", "--iface", "aoetnosuch9"])
        #expect(r1.status != 0)
        #expect(r1.err.contains("aoetnosuch9: no such network interface"))
        let r2 = try aoefs(["scan"])
        #expect(r2.status != 0)
        #expect(r2.err.contains("--iface"))
        let r3 = try aoefs(["bench", "--iface", "lo", "--target", "banana"])
        #expect(r3.status != 0)
        #expect(r3.err.contains("--target must look like 10.3"))
        let r4 = try aoefs(["scan", "--iface", "lo", "--busy-poll=-5"])
        #expect(r4.status != 0)
        #expect(r4.err.contains("--busy-poll must be between 0 and 10000 microseconds"), "\(r4.err)")
    }

    @Test func benchReportsAndRefusesToWriteWithoutPermission() throws {
        let lab = try Lab()
        defer { lab.teardown() }
        let net = try lab.direct(mtu: 9000)
        let file = try lab.sparseFile("e10.3.img", size: 256 << 20)
        _ = try lab.startVblade(shelf: 10, slot: 3, interface: net.target, namespace: net.targetNamespace, file: file)
        let refused = try aoefs(["bench", "--iface", net.initiator, "--target", "10.3", "--test", "seqwrite"])
        #expect(refused.status != 0)
        #expect(refused.err.contains("without --write"))
        let attrs = try FileManager.default.attributesOfItem(atPath: file.path)
        #expect((attrs[.size] as? Int) == 256 << 20)
        let r = try aoefs([
            "bench", "--iface", net.initiator, "--target", "e10.3", "--seconds", "1",
            "--test", "seqread,randread,seqwrite", "--write", "--size", "64M",
        ])
        #expect(r.status == 0, "\(r.err)")
        for test in ["seqread", "randread", "seqwrite"] {
            let line = r.out.split(separator: "\n").first { $0.hasPrefix(test) }.map(String.init) ?? ""
            #expect(
                line.contains("MB/s=") && line.contains("IOPS=") && line.contains("p99=") && line.contains("cpu_s/GB="),
                "\(test): «\(line)»")
            #expect(line.contains("errors=0"), "\(line)")
        }
    }
}

@Suite(
    "aoefs demo and configuration", .serialized,
    .enabled(if: LabGate.labShouldRun, Comment(rawValue: LabGate.labSkipReason)))
struct DemoAndConfigTests {
    func leftovers() throws -> [String] { try demoLeftovers() }

    @Test("aoefs demo -- COMMAND runs it against a fresh mount, exits with its status, and leaves nothing behind")
    func demoRunsACommand() throws {
        demoTestSerial.lock()
        defer { demoTestSerial.unlock() }
        let before = try leftovers()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("aoefs-dtest-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let script = """
            cd \(dir.path) && AOEFS_DEMO_PREFIX=aoetd \(productsDirectory().appendingPathComponent("aoefs").path) demo --size 256M -- bash -c '
              set -e
              dd if=/dev/urandom of=aoe-demo/e10.3 bs=1M count=16 oflag=direct conv=notrunc,nocreat status=none
              test "$(stat -c %s aoe-demo/e10.3)" = 268435456
              grep -q "^bytes_written 16777216$" "$AOEFS_MOUNT/sys/e10.3/stats"
              cat aoe-demo/sys/e10.3/state'
            """
        let r = try sh(script)
        #expect(r.status == 0, "\(r.out)")
        #expect(r.out.contains("up"), "\(r.out)")
        let after = try leftovers()
        #expect(after == before, "the demo left something behind: \(after) (before: \(before))")
        let failing = try sh(
            "cd \(dir.path) && AOEFS_DEMO_PREFIX=aoetd \(productsDirectory().appendingPathComponent("aoefs").path) demo --size 64M -- sh -c 'exit 7'"
        )
        #expect(failing.status == 7)
        #expect(try leftovers() == before)
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("aoe-demo").path))
    }

    @Test("a configuration file with a typo is refused with its file, line and what was expected")
    func configTypo() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("aoefs-conf-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let conf = dir.appendingPathComponent("aoefs.conf").path
        try "deadsecs = 30\n\n[target e10.3]\nmaxout = 8\nmaxdtaa = 4096\n".write(
            toFile: conf, atomically: true, encoding: .utf8)
        let r = try aoefs(["scan", "--config", conf, "--iface", "lo", "--wait", "0.1"])
        #expect(r.status != 0)
        #expect(
            r.err.trimmingCharacters(in: .whitespacesAndNewlines)
                == "Error: \(conf):5: unknown key 'maxdtaa' in [target e10.3] (expected timeout, maxout or maxdata)",
            "\(r.err)")
        let missing = try aoefs(["scan", "--config", dir.appendingPathComponent("nope.conf").path, "--iface", "lo"])
        #expect(missing.status != 0 && missing.err.contains("nope.conf: cannot be read"), "\(missing.err)")
    }

    @Test("the configuration file's values reach the engine, and a flag wins over the file")
    func configApplies() throws {
        let m = try MountLab(mountArgs: ["--config", "/dev/null"])
        defer { m.tearDown() }
        let dir = m.lab.directory.path
        try "deadsecs = 42\nmaxout = 8\n[target e10.3]\nmaxdata = 4096\n".write(
            toFile: dir + "/a.conf", atomically: true, encoding: .utf8)
        let mnt2 = dir + "/mnt2"
        try FileManager.default.createDirectory(atPath: mnt2, withIntermediateDirectories: true)
        let r = try aoefs(["mount", mnt2, "--iface", m.net.initiator, "--config", dir + "/a.conf", "--deadsecs", "7"])
        #expect(r.status == 0, "\(r.err)")
        defer { _ = try? sh("fusermount3 -u \(mnt2)") }
        let conf = try String(contentsOfFile: mnt2 + "/sys/e10.3/conf", encoding: .utf8)
        #expect(
            conf.contains("deadsecs 7\n") && conf.contains("maxout 8\n") && conf.contains("maxdata 4096\n"), "\(conf)")
    }
}

@Suite(
    "mount(8), fstab and the man page", .serialized,
    .enabled(if: LabGate.labShouldRun, Comment(rawValue: LabGate.labSkipReason)))
struct EcosystemTests {
    /// mount.fuse3 runs `aoefs` from the default PATH (mount clears PATH); put the built binary
    /// there for the test, as `make install` puts the installed one in /usr/local/bin.
    func withHelperInPath(_ body: () throws -> Void) throws {
        let link = "/usr/local/sbin/aoefs"
        let exe = productsDirectory().appendingPathComponent("aoefs").path
        if let existing = try? FileManager.default.destinationOfSymbolicLink(atPath: link), existing == exe {
            try body()
            return
        }
        guard !FileManager.default.fileExists(atPath: link) else {
            Issue.record("\(link) exists and is not this build's aoefs; remove it to run this test")
            return
        }
        try FileManager.default.createDirectory(atPath: "/usr/local/sbin", withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: exe)
        defer { try? FileManager.default.removeItem(atPath: link) }
        try body()
    }

    /// `umount`, waiting up to 10 s while the kernel still calls it busy (a loaded machine once
    /// answered EBUSY right after `ls` and `cat` had ended); what holds it is printed if it stays.
    func umountWhenIdle(_ mnt: String) throws {
        var last = ""
        if eventually(
            timeout: .seconds(10), every: .milliseconds(100),
            {
                guard let r = try? sh("umount \(mnt)") else { return false }
                last = r.out
                return r.status == 0
            })
        {
            return
        }
        let holders =
            (try? sh(
                "grep -l \(mnt) /proc/[0-9]*/maps /proc/[0-9]*/mountinfo 2>/dev/null | head; ls -l /proc/[0-9]*/cwd 2>/dev/null | grep \(mnt)"
            ))?.out ?? ""
        throw LabFailure("umount \(mnt): \(last); holders: \(holders)")
    }

    @Test("an fstab line mounts with `mount -T FILE -a`, and `mount -t fuse.aoefs … -o iface=` works")
    func fstabAndMountT() throws {
        let lab = try Lab()
        defer { lab.teardown() }
        let net = try lab.direct(mtu: 9000)
        let file = try lab.sparseFile("e10.3.img", size: 256 << 20)
        _ = try lab.startVblade(shelf: 10, slot: 3, interface: net.target, namespace: net.targetNamespace, file: file)
        let mnt = lab.directory.appendingPathComponent("mnt").path
        try FileManager.default.createDirectory(atPath: mnt, withIntermediateDirectories: true)
        // A failure between mount and umount must not leave the mount (and its daemon) behind.
        defer { if mounted(mnt) { _ = try? sh("umount -l \(mnt)") } }
        try withHelperInPath {
            let fstab = lab.directory.appendingPathComponent("fstab").path
            try "aoefs \(mnt) fuse.aoefs iface=\(net.initiator),deadsecs=30,_netdev 0 0\n"
                .write(toFile: fstab, atomically: true, encoding: .utf8)
            let r = try sh("mount -T \(fstab) -a")
            #expect(r.status == 0, "\(r.out)")
            #expect(mounted(mnt))
            #expect(try must("ls \(mnt)").split(separator: "\n").contains("e10.3"))
            #expect(try String(contentsOfFile: mnt + "/sys/e10.3/conf", encoding: .utf8).contains("deadsecs 30\n"))
            try umountWhenIdle(mnt)
            let t = try sh("mount -t fuse.aoefs aoefs \(mnt) -o iface=\(net.initiator)")
            #expect(t.status == 0, "\(t.out)")
            #expect(
                try must("stat -c %s \(mnt)/e10.3").trimmingCharacters(in: .whitespacesAndNewlines) == String(256 << 20)
            )
            try umountWhenIdle(mnt)
            let bad = try sh("mount -t fuse.aoefs aoefs \(mnt) -o iface=aoetnosuch1")
            #expect(bad.status != 0 && bad.out.contains("aoetnosuch1"), "\(bad.out)")
            #expect(!mounted(mnt))
        }
    }

    @Test("the man page renders with man -l and covers every command")
    func manPage() throws {
        let page = packageRoot().appendingPathComponent("Docs/aoefs.8").path
        let text = try must("MANWIDTH=100 man -l \(page) 2>&1")
        for word in [
            "aoefs mount", "aoefs stat", "aoefs serve", "aoefs demo", "aoefs discover", "aoefs interfaces",
            "aoefs revalidate", "aoefs flush", "aoefs scan", "aoefs bench", "/etc/aoefs.conf", "fuse.aoefs",
            "etherd/err", "sys/", "SECURITY", "eS.LpN", "sys/eS.LpN/", "make deb", "--json",
            "aoefs list", "aoefs disable", "aoefs enable", "aoefs probe", "aoefs doctor", "aoefs metrics",
            "aoefs iostat", "sys/metrics", "aoefs restart", "sys/daemon", "--no-supervise",
        ] {
            #expect(text.contains(word), "the man page lacks \(word)")
        }
        #expect(!text.contains("warning"), "\(text)")
    }
}

@Suite("logging", .serialized, .enabled(if: LabGate.labShouldRun, Comment(rawValue: LabGate.labSkipReason)))
struct LoggingTests {
    @Test(
        "once daemonised, aoefs mount logs to syslog (/dev/log) as aoefs[PID]",
        .enabled(
            if: !FileManager.default.fileExists(atPath: "/dev/log"),
            "a real syslog daemon owns /dev/log here: the test does not take it over"))
    func daemonLogsToSyslog() throws {
        // Play syslogd: a datagram socket at /dev/log, for the length of the test.
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        #expect(fd >= 0)
        defer {
            close(fd)
            unlink("/dev/log")
        }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { p in
            _ = "/dev/log".withCString { strcpy(p.baseAddress!.assumingMemoryBound(to: CChar.self), $0) }
        }
        let bound = withUnsafePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        #expect(bound == 0, "bind /dev/log: \(String(cString: strerror(errno)))")
        var tv = timeval(tv_sec: 0, tv_usec: 200_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))

        let lab = try Lab()
        defer { lab.teardown() }
        let net = try lab.direct(mtu: 9000)
        let file = try lab.sparseFile("e10.3.img", size: 64 << 20)
        _ = try lab.startVblade(shelf: 10, slot: 3, interface: net.target, namespace: net.targetNamespace, file: file)
        let mnt = lab.directory.appendingPathComponent("mnt").path
        try FileManager.default.createDirectory(atPath: mnt, withIntermediateDirectories: true)
        let r = try aoefs(["mount", mnt, "--iface", net.initiator, "--config", "/dev/null"])
        #expect(r.status == 0, "\(r.err)")
        defer { _ = try? sh("fusermount3 -u \(mnt)") }
        var lines: [String] = []
        var buf = [UInt8](repeating: 0, count: 4096)
        let logged = eventually(timeout: .seconds(3), every: .zero) {
            // recv waits up to SO_RCVTIMEO (200 ms) for a datagram.
            let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n > 0 { lines.append(String(decoding: buf[0..<n], as: UTF8.self)) }
            return lines.contains { $0.contains("aoefs[") && $0.contains("e10.3") }
        }
        #expect(logged, "syslog got: \(lines)")
    }
}

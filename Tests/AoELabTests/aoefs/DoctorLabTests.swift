import AoELinux
import AoEProtocol
import AoETestSupport
import Foundation
import Synchronization
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Sets net.core.rmem_max and wmem_max for a test and puts the old values back.
final class SocketBufferLimits {
    let old: (String, String)
    init(_ bytes: Int) throws {
        old = (
            try must("cat /proc/sys/net/core/rmem_max").trimmingCharacters(in: .whitespacesAndNewlines),
            try must("cat /proc/sys/net/core/wmem_max").trimmingCharacters(in: .whitespacesAndNewlines)
        )
        try must("sysctl -qw net.core.rmem_max=\(bytes) net.core.wmem_max=\(bytes)")
    }
    func restore() { _ = try? must("sysctl -qw net.core.rmem_max=\(old.0) net.core.wmem_max=\(old.1)") }
}

/// `aoefs doctor` finds each planted fault with its fix and exit status, and nothing on a clean
/// lab; `sys/metrics` parses with Prometheus's own parser and counts what was done; `aoefs
/// iostat` agrees with fio.
@Suite(
    "aoefs doctor, metrics and iostat in the lab", .serialized,
    .enabled(if: LabGate.labShouldRun, Comment(rawValue: LabGate.labSkipReason)))
struct DoctorLabTests {
    /// Runs `aoefs doctor --json ARGS`: exit status and the findings that are not information.
    func doctor(_ args: [String]) throws -> (
        status: Int32, problems: [(check: String, severity: String, fix: String)], out: String
    ) {
        let r = try aoefs(["doctor", "--json", "--wait", "1"] + args)
        guard let data = r.out.data(using: .utf8),
            let doc = try JSONSerialization.jsonObject(with: data) as? [String: Any],
            let findings = doc["findings"] as? [[String: Any]]
        else { return (r.status, [], r.out + r.err) }
        let problems = findings.filter { ($0["severity"] as? String) != "info" }.map {
            (
                check: $0["check"] as? String ?? "", severity: $0["severity"] as? String ?? "",
                fix: $0["fix"] as? String ?? ""
            )
        }
        return (r.status, problems, r.out + r.err)
    }

    @Test("a clean lab: nothing to report, status 0, mounted and not")
    func cleanLab() throws {
        let limits = try SocketBufferLimits(16 << 20)
        defer { limits.restore() }
        let m = try MountLab(size: 64 << 20)
        defer { m.tearDown() }
        let mounted = try doctor(["--mount", m.mnt, "--listen", m.net.initiator])
        #expect(mounted.status == 0 && mounted.problems.isEmpty, "\(mounted.out)")
        let text = try aoefs(["doctor", "--mount", m.mnt, "--listen", m.net.initiator, "--wait", "1"])
        #expect(text.status == 0 && text.out.contains("no problems found: 1 target(s), 1 path(s)"), "\(text.out)")
        let own = try doctor(["--iface", m.net.initiator, "--listen", m.net.initiator])
        #expect(own.status == 0 && own.problems.isEmpty, "\(own.out)")
    }

    @Test(
        "planted on one lab: ends with different MTUs, IP on the AoE interface, small socket buffers, a target that never answers IDENTIFY, AoE on an interface not in use"
    )
    func plantedFaults() throws {
        let limits = try SocketBufferLimits(128 << 10)
        defer { limits.restore() }
        let lab = try Lab()
        defer { lab.teardown() }
        let net = try lab.direct(mtu: 9000)
        // The target's end at 1500: vblade offers 1024-byte frames.
        try lab.setMTU(net.target, namespace: net.targetNamespace, mtu: 1500)
        let f = try lab.sparseFile("e10.3.img", size: 64 << 20)
        _ = try lab.startVblade(shelf: 10, slot: 3, interface: net.target, namespace: net.targetNamespace, file: f)
        // e10.4 answers Query Config only.
        let rule = try lab.dropFrames(on: net.target, namespace: net.targetNamespace, percent: 100, ataToSlot: 4)
        defer { try? lab.remove(rule) }
        let f4 = try lab.sparseFile("e10.4.img", size: 64 << 20)
        _ = try lab.startVblade(shelf: 10, slot: 4, interface: net.target, namespace: net.targetNamespace, file: f4)
        try must("ip addr add 169.254.77.1/16 dev \(net.initiator)")
        // AoE on a second interface aoefs is not told to use: a target and an initiator talk there.
        let other = try lab.direct(mtu: 1500, index: 1, targetNamespace: try lab.addNamespace("u"))
        let f7 = try lab.sparseFile("e7.1.img", size: 16 << 20)
        _ = try lab.startVblade(shelf: 7, slot: 1, interface: other.target, namespace: other.targetNamespace, file: f7)
        let talking = Atomic<Bool>(true)
        let link = try PacketLink(interface: other.initiator)
        let chatter = Thread {
            let raw = RawInitiator(link: link)
            while talking.load(ordering: .relaxed) { _ = try? raw.discover(wait: .milliseconds(100)) }
        }
        chatter.start()
        defer { talking.store(false, ordering: .relaxed) }
        let r = try doctor(["--iface", net.initiator, "--listen", net.initiator, "--listen", other.initiator])
        let checks = Set(r.problems.map(\.check))
        #expect(checks == ["mtu-mismatch", "ip-on-aoe", "socket-buffers", "identify", "foreign-aoe"], "\(r.out)")
        #expect(r.status == 1, "warnings only: \(r.out)")
        #expect(r.problems.allSatisfy { !$0.fix.isEmpty })
        #expect(r.problems.contains { $0.check == "mtu-mismatch" && $0.fix.contains("mtu 9000") }, "\(r.out)")
        #expect(r.problems.contains { $0.check == "socket-buffers" && $0.fix.contains("sysctl -w net.core.rmem_max=") })
        #expect(r.problems.contains { $0.check == "foreign-aoe" && $0.fix.contains(other.initiator) })
    }

    /// One vblade disk on two paths: through a switch whose ports pass 1500 (jumbo frames
    /// black-holed), and direct at 9000.
    static func twoPaths(_ lab: Lab) throws -> (Lab.Switched, Lab.Direct) {
        let sw = try lab.switched(mtu: 9000, portMTU: 1500)
        let second = try lab.direct(mtu: 9000, index: 1, targetNamespace: sw.targetNamespace)
        let f = try lab.sparseFile("e10.3.img", size: 64 << 20)
        _ = try lab.startVblade(shelf: 10, slot: 3, interface: sw.target, namespace: sw.targetNamespace, file: f)
        _ = try lab.startVblade(shelf: 10, slot: 3, interface: second.target, namespace: sw.targetNamespace, file: f)
        return (sw, second)
    }

    static let verdictRuns = Int(ProcessInfo.processInfo.environment["AOEFS_DOCTOR_RUNS"] ?? "") ?? 10

    /// Issue 31: at the default --wait doctor said "no problems found" 7 times out of 7 while a
    /// path black-holed jumbo frames: it reported before the payload search was over. Now it
    /// waits for the search (at most --wait) and the verdict is the same every time.
    @Test(
        "without a mount, at the defaults: a port that drops jumbo frames on one of two paths is found every time, a clean lab is clean every time"
    )
    func verdictDoesNotRace() throws {
        let limits = try SocketBufferLimits(16 << 20)
        defer { limits.restore() }
        let lab = try Lab()
        defer { lab.teardown() }
        let (sw, second) = try Self.twoPaths(lab)
        var took: [Duration] = []
        for run in 1...Self.verdictRuns {
            let start = ContinuousClock.now
            let r = try aoefs([
                "doctor", "--json", "--iface", sw.initiator, "--iface", second.initiator,
                "--listen", sw.initiator, "--listen", second.initiator,
            ])
            took.append(ContinuousClock.now - start)
            if took.last! > .seconds(10) { print("slow doctor run \(run): \(r.out)") }
            let found = r.out.contains("\"check\":\"jumbo\"") && r.out.contains("raise the MTU of every switch port")
            // The second path cannot be proven one disk without a write: said, as pending.
            let unproven = r.out.contains("not yet proven one disk")
            let searching = r.out.contains("the payload search is not over")
            #expect(found && !searching && unproven && r.status == 1, "run \(run): \(r.out) \(r.err)")
        }
        print("doctor, two paths, one black-holed: \(took.map { "\($0.milliseconds) ms" })")
        // The clean half: the same host, the jumbo-capable path only.
        var clean: [Duration] = []
        for run in 1...Self.verdictRuns {
            let start = ContinuousClock.now
            let r = try aoefs(["doctor", "--iface", second.initiator, "--listen", second.initiator])
            clean.append(ContinuousClock.now - start)
            #expect(
                r.status == 0 && r.out.contains("no problems found: 1 target(s), 1 path(s)"),
                "run \(run): \(r.out) \(r.err)")
        }
        print("doctor, one clean path: \(clean.map { "\($0.milliseconds) ms" })")
    }

    @Test("planted: a port that drops jumbo frames on one of two paths, and a second disk with the same shelf.slot")
    func jumboOnOnePathAndDuplicate() throws {
        let limits = try SocketBufferLimits(16 << 20)
        defer { limits.restore() }
        let lab = try Lab()
        defer { lab.teardown() }
        let (sw, second) = try Self.twoPaths(lab)
        let mnt = lab.directory.appendingPathComponent("mnt").path
        try FileManager.default.createDirectory(atPath: mnt, withIntermediateDirectories: true)
        let exe = productsDirectory().appendingPathComponent("aoefs").path
        let daemon = try ChildProcess([exe, "mount", mnt, "--iface", sw.initiator, "--iface", second.initiator, "-f"])
        defer {
            _ = try? sh("fusermount3 -u \(mnt) || umount -l \(mnt)")
            if !daemon.wait(upTo: .seconds(20)) { daemon.signal(SIGKILL); _ = daemon.wait() }
        }
        #expect(eventually(timeout: .seconds(15)) { FileManager.default.fileExists(atPath: mnt + "/e10.3") })
        // Both paths to the disk (a vblade that started late missed the first Query Config: ask again).
        #expect(
            eventually(timeout: .seconds(10), every: .milliseconds(500)) {
                _ = try? must("echo > \(mnt)/etherd/discover")
                let p = (try? String(contentsOfFile: mnt + "/sys/e10.3/paths", encoding: .utf8)) ?? ""
                return p.contains(second.initiator)
            })
        // Then another disk (another size) answers as e10.3 behind the switch.
        let third = try lab.addTarget(to: sw, index: 2, mtu: 9000)
        let g = try lab.sparseFile("other.img", size: 32 << 20)
        _ = try lab.startVblade(shelf: 10, slot: 3, interface: third.target, namespace: third.targetNamespace, file: g)
        // A write proves the second path (IdentityProof); then both carry I/O. Asked again and
        // written again while it is not so: under load a candidate whose proof reads went
        // unanswered is dropped, and only a discover brings it back.
        // (Fresh data each time: a write of what a sector already holds proves nothing.)
        #expect(
            eventually(timeout: .seconds(30), every: .milliseconds(500)) {
                _ = try? must("echo > \(mnt)/etherd/discover")
                _ = try? must(
                    "head -c \(4 << 20) /dev/urandom > \(lab.directory.path)/src && dd if=\(lab.directory.path)/src "
                        + "of=\(mnt)/e10.3 bs=1M oflag=direct conv=notrunc,nocreat status=none")
                let p = (try? String(contentsOfFile: mnt + "/sys/e10.3/paths", encoding: .utf8)) ?? ""
                return p.split(separator: "\n").filter { $0.contains(" ok ") }.count == 2 && p.contains("duplicate")
            }, "\((try? String(contentsOfFile: mnt + "/sys/e10.3/paths", encoding: .utf8)) ?? "")")
        let r = try doctor(["--mount", mnt, "--listen", sw.initiator, "--listen", second.initiator])
        // Under make test's load vblade (-b 16) can really drop frames with 16 in flight on the
        // good path, and doctor then rightly warns of an overrun there (a full run saw it once);
        // the overrun check has its own planted test. Nothing else may appear.
        #expect(Set(r.problems.map(\.check)).subtracting(["overrun"]) == ["jumbo", "duplicate"], "\(r.out)")
        #expect(r.status == 2, "a duplicate is an error: \(r.out)")
        #expect(r.problems.contains { $0.check == "jumbo" && $0.fix.contains("switch port") })
    }

    @Test("planted: a target that overstates its Buffer Count (serve -b 20 --rcvbuf 32768), found after a write")
    func overstatedBufferCount() throws {
        let limits = try SocketBufferLimits(16 << 20)
        defer { limits.restore() }
        let m = try MountLab(size: 512 << 20, flags: ["-b", "20", "--rcvbuf", "32768"], program: .aoefsServe)
        defer { m.tearDown() }
        try must("dd if=/dev/zero of=\(m.image) bs=1M count=256 oflag=direct conv=notrunc,nocreat status=none")
        let r = try doctor(["--mount", m.mnt, "--listen", m.net.initiator])
        #expect(r.problems.map(\.check) == ["overrun"], "\(r.out)")
        #expect(r.status == 1)
        #expect(r.problems.first?.fix.contains("maxout =") == true)
    }

    @Test(
        "without a mount, doctor's own burst (padded reads, Buffer Count at once) finds the overstated Buffer Count; an honest one passes"
    )
    func burstFindsOverrun() throws {
        let limits = try SocketBufferLimits(16 << 20)
        defer { limits.restore() }
        let lab = try Lab()
        defer { lab.teardown() }
        let net = try lab.direct(mtu: 9000)
        let f = try lab.sparseFile("e10.3.img", size: 64 << 20)
        // A buffer that holds one jumbo frame, offering 20: with 32 KiB, a target thread that
        // drained the socket while the burst's softirq filled it sometimes lost nothing (in two
        // of three full runs of make test on 2026-12-06, with the machine loaded).
        let srv = try lab.startVblade(
            shelf: 10, slot: 3, interface: net.target, namespace: net.targetNamespace, file: f,
            flags: ["-b", "20", "--rcvbuf", "8192"], program: .aoefsServe)
        // A burst races the target's reader: on a loaded machine the target sometimes drained
        // even this buffer as fast as the frames came (once in the full make test of
        // 2026-12-07, "0 of 22 frames lost"). An admin runs doctor again; so does this, up to
        // three times, and the finding must come.
        var r = try doctor(["--iface", net.initiator, "--listen", net.initiator])
        for _ in 0..<2 where r.problems.isEmpty {
            r = try doctor(["--iface", net.initiator, "--listen", net.initiator])
        }
        #expect(r.problems.map(\.check) == ["overrun"], "\(r.out)")
        #expect(r.out.contains("of a burst of 20 full-size frames"), "\(r.out)")
        srv.stop()
        _ = try lab.startVblade(
            shelf: 10, slot: 3, interface: net.target, namespace: net.targetNamespace, file: f,
            flags: ["-b", "8"], program: .aoefsServe)
        let honest = try doctor(["--iface", net.initiator, "--listen", net.initiator])
        #expect(honest.status == 0 && honest.problems.isEmpty, "\(honest.out)")
    }

    @Test("sys/metrics parses with prometheus_client; the latency histograms count the requests done")
    func metricsParse() throws {
        let m = try MountLab(size: 64 << 20)
        defer { m.tearDown() }
        let script = """
            import sys
            from prometheus_client.parser import text_string_to_metric_families
            counts = {}
            for fam in text_string_to_metric_families(open(sys.argv[1]).read()):
                for s in fam.samples:
                    if s.name == 'aoefs_request_duration_seconds_count':
                        counts[s.labels['op']] = int(s.value)
            print(counts.get('read', 0), counts.get('write', 0))
            """
        try script.write(toFile: m.lab.directory.path + "/count.py", atomically: true, encoding: .utf8)
        func counts() throws -> (Int, Int) {
            try must("cat \(m.mnt)/sys/metrics > \(m.lab.directory.path)/metrics.txt")
            let f = try must("/usr/bin/python3 \(m.lab.directory.path)/count.py \(m.lab.directory.path)/metrics.txt")
                .split(separator: " ").map { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1 }
            return (f[0], f[1])
        }
        let before = try counts()
        // Away from LBA 0: a write there has the mount read the partition table again.
        try must("dd if=/dev/zero of=\(m.image) bs=64k seek=100 count=37 oflag=direct conv=notrunc,nocreat status=none")
        try must("dd if=\(m.image) of=/dev/null bs=64k skip=100 count=23 iflag=direct status=none")
        let after = try counts()
        let shown =
            (try? must("grep -E 'duration_seconds_count|requests_total' \(m.lab.directory.path)/metrics.txt")) ?? ""
        #expect(
            after.0 - before.0 == 23 && after.1 - before.1 == 37,
            "reads \(before.0)→\(after.0), writes \(before.1)→\(after.1)\n\(shown)")
        let text = try aoefs(["metrics", "--mount", m.mnt])
        #expect(
            text.status == 0 && text.out.contains("aoefs_path_rtt_seconds{target=\"e10.3\""), "\(text.out.prefix(500))")
    }

    @Test("aoefs iostat agrees with fio within 10 %: w/s and wMB/s under a steady rate")
    func iostatAgreesWithFio() throws {
        let m = try MountLab(size: 256 << 20)
        defer { m.tearDown() }
        let out = m.lab.directory.path + "/fio.json"
        let fio = try ChildProcess([
            "fio", "--name=w", "--filename=\(m.image)", "--ioengine=libaio", "--direct=1",
            "--rw=randwrite", "--bs=16k", "--iodepth=4", "--size=128m", "--rate_iops=400",
            "--runtime=7", "--time_based", "--output-format=json", "--output=\(out)",
        ])
        defer { if fio.isRunning { fio.signal(SIGKILL); _ = fio.wait() } }
        Thread.sleep(forTimeInterval: 2)
        let r = try aoefs(["iostat", "3", "1", "--json", "--mount", m.mnt])
        _ = fio.wait()
        let rows = try #require(
            try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [[String: Any]], "\(r.out) \(r.err)")
        let row = try #require(rows.first { ($0["device"] as? String) == "e10.3" })
        let ws = row["w_s"] as? Double ?? 0, wmb = row["wMB_s"] as? Double ?? 0
        let doc = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out))) as? [String: Any])
        let job = try #require((doc["jobs"] as? [[String: Any]])?.first?["write"] as? [String: Any])
        let iops = job["iops"] as? Double ?? 0
        #expect(abs(ws - iops) <= iops * 0.1, "iostat w/s \(ws), fio \(iops)")
        #expect(abs(wmb - iops * 16384 / 1e6) <= iops * 16384 / 1e6 * 0.1, "iostat wMB/s \(wmb)")
        #expect((row["util"] as? Double ?? 0) > 0 && (row["w_await"] as? Double ?? 0) > 0)
    }
}

import AoELinux
import AoETestSupport
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The long mix of issue 30, the way an admin runs a mount: two targets on two links with 1 %
/// (`aoefs serve` on the link that is flapped, vblade on the other)
/// of frames dropped each way, fio with crc32c verify on both images, and at the same time every
/// monitor reading (`Tests/stress/monitors.sh`: every sys/ and etherd/ file, sys/metrics,
/// iostat, doctor --mount, stat/list --json, discover and revalidate writes, a third target
/// disabled and enabled, an interface flapped). Passes when the daemon never died, fio saw no
/// error and no verify failure, and no monitor got an error.
///
/// `make test` runs it for 90 s; `make soak` for 30 minutes (AOEFS_STRESS_SECONDS), printing the
/// daemon's RSS and open descriptors each minute: they must plateau, not climb.
@Suite(
    "stress: two targets, loss, verify, monitors", .serialized,
    .enabled(if: LabGate.labShouldRun, Comment(rawValue: LabGate.labSkipReason)))
struct StressTests {
    static var punch: Bool { ProcessInfo.processInfo.environment["AOEFS_STRESS_PUNCH"] != "0" }
    static var seconds: Int { Int(ProcessInfo.processInfo.environment["AOEFS_STRESS_SECONDS"] ?? "") ?? 90 }

    /// RSS (KiB) and open descriptors of `pid`.
    static func footprint(_ pid: Int32) -> (rssKiB: Int, fds: Int) {
        let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        let rss =
            status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") }?
            .split(separator: " ").dropFirst().first.flatMap { Int($0) } ?? -1
        let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count) ?? -1
        return (rss, fds)
    }

    @Test("the mix: daemon alive and never restarted, fio verify clean on both targets, no monitor error")
    func mix() throws {
        let seconds = Self.seconds
        let lab = try Lab()
        defer { lab.teardown() }
        let a = try lab.direct(mtu: 9000, index: 0)
        let b = try lab.direct(mtu: 9000, index: 1, targetNamespace: lab.addNamespace("u"))
        let size: UInt64 = 512 << 20
        // The flapped link's targets are `aoefs serve`: vblade exits when a send fails with
        // ENOBUFS ("write to network: No buffer space available"), which a send during the
        // initiator's flap does — a dead target, after which deadsecs rightly fails the I/O (two
        // soaks ended so). vblade serves the other link, under loss and verify all the same.
        let targets: [(UInt16, UInt8, Lab.Direct, Lab.TargetProgram)] = [
            (10, 3, a, .aoefsServe), (11, 3, b, .vblade),
            (12, 1, a, .aoefsServe),
        ]
        var servers: [Vblade] = []
        for (shelf, slot, net, program) in targets {
            let f = try lab.sparseFile("e\(shelf).\(slot).img", size: size)
            servers.append(
                try lab.startVblade(
                    shelf: shelf, slot: slot, interface: net.target, namespace: net.targetNamespace, file: f,
                    program: program))
        }
        for net in [a, b] {
            _ = try lab.dropFrames(on: net.target, namespace: net.targetNamespace, percent: 1)
            _ = try lab.dropFrames(on: net.initiator, namespace: nil, percent: 1)
        }
        let mnt = lab.directory.appendingPathComponent("mnt").path
        try FileManager.default.createDirectory(atPath: mnt, withIntermediateDirectories: true)
        let exe = productsDirectory().appendingPathComponent("aoefs").path
        let logPath = lab.directory.appendingPathComponent("aoefs.log").path
        let logFD = open(logPath, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        defer { close(logFD) }
        let supervisor = try ChildProcess(
            [exe, "mount", mnt, "--iface", a.initiator, "--iface", b.initiator, "-f", "-v"],
            stdout: logFD, stderr: logFD)
        defer {
            if mounted(mnt) { _ = try? sh("fusermount3 -u \(mnt) || umount -l \(mnt)") }
            if !supervisor.wait(upTo: .seconds(30)) { supervisor.signal(SIGKILL); supervisor.wait() }
        }
        let log = { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }
        guard
            eventually(
                timeout: .seconds(30),
                { ["e10.3", "e11.3", "e12.1"].allSatisfy { FileManager.default.fileExists(atPath: mnt + "/" + $0) } })
        else { throw LabFailure("the three targets did not appear: \(log())") }
        let daemon = SupervisorTests.daemonFacts(mnt)
        guard let pid = Int32(daemon["daemon_pid"] ?? "") else { throw LabFailure("no sys/daemon: \(daemon)") }

        // fio: random writes verified as they go (verify_backlog), for the whole run.
        var fios: [(ChildProcess, String)] = []
        for t in ["e10.3", "e11.3"] {
            let out = lab.directory.appendingPathComponent("fio-\(t).out").path
            let p = try ChildProcess([
                "fio", "--name=\(t)", "--filename=\(mnt)/\(t)", "--direct=1", "--rw=randwrite",
                "--bs=16k", "--size=256m", "--iodepth=8", "--ioengine=libaio", "--verify=crc32c",
                "--verify_backlog=512", "--verify_fatal=1", "--verify_state_save=0", "--time_based",
                "--runtime=\(seconds)",
                "--output=\(out)",
            ])
            fios.append((p, out))
        }
        defer { for (p, _) in fios where p.isRunning { p.signal(SIGKILL); p.wait() } }
        let stop = lab.directory.appendingPathComponent("stop").path
        let monitorOut = lab.directory.appendingPathComponent("monitors.out").path
        let monitorFD = open(monitorOut, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        let script = packageRoot().appendingPathComponent("Tests/stress/monitors.sh").path
        let monitors = try ChildProcess(
            [
                "env", "MNT=\(mnt)", "AOEFS=\(exe)", "FLAP_IF=\(a.initiator)", "TOGGLE=12.1",
                // e10.3 is `aoefs serve`'s (TRIM); fio uses its first 256 MiB.
                // (AOEFS_STRESS_PUNCH=0 leaves the holes out.)
                "PUNCH=\(Self.punch ? mnt + "/e10.3" : "")", "PUNCH_FROM=\(256 << 20)",
                "STOP_FILE=\(stop)", script,
            ], stdout: monitorFD, stderr: monitorFD)
        close(monitorFD)
        defer { if monitors.isRunning { monitors.signal(SIGKILL); monitors.wait() } }

        // Sample the daemon each minute (and at the start and end) until fio ends.
        print("stress: \(seconds) s; minute  rss_kib  fds  incarnation")
        var samples: [(Int, Int, Int)] = []
        let start = ContinuousClock.now
        var minute = 0
        while fios.contains(where: { $0.0.isRunning }) {
            let f = Self.footprint(pid)
            if ContinuousClock.now - start >= .seconds(60 * minute) {
                let inc = SupervisorTests.daemonFacts(mnt)["incarnation"] ?? "?"
                print("stress: \(minute) \(f.rssKiB) \(f.fds) \(inc)")
                samples.append((minute, f.rssKiB, f.fds))
                minute += 1
            }
            _ = fios.first { $0.0.isRunning }?.0.wait(upTo: .seconds(5))
        }
        _ = FileManager.default.createFile(atPath: stop, contents: nil)
        #expect(monitors.wait(upTo: .seconds(60)), "the monitors ended")
        let end = Self.footprint(pid)
        print("stress: end \(end.rssKiB) \(end.fds)")

        #expect(!processIsGone(pid), "the first daemon is still alive: \(log().suffix(3000))")
        // A target that died takes its I/O with it after deadsecs: say so, not only "EIO".
        for s in servers {
            #expect(s.isRunning, "the target \(s.arguments.suffix(4).prefix(2)) is alive: \(s.log.suffix(500))")
        }
        #expect(SupervisorTests.daemonFacts(mnt)["restarts"] == "0", "\(SupervisorTests.daemonFacts(mnt))")
        for (p, out) in fios {
            let report = (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
            // The lines that say what went wrong first (a verify mismatch, an errno), then the tail.
            let said = report.split(separator: "\n").filter {
                $0.contains("err=") || $0.contains("verify") || $0.contains("error")
            }
            // And the daemon's word on it (-v: every failed request says why).
            let why = log().split(separator: "\n").filter {
                $0.contains("failed") || $0.contains("down") || $0.contains("error")
            }
            #expect(
                p.exitCode == 0 && report.contains("err= 0"),
                "\(said.prefix(20).joined(separator: "\n"))\n\(report.suffix(1500))\ndaemon:\n\(why.suffix(30).joined(separator: "\n"))"
            )
        }
        let monitorText = (try? String(contentsOfFile: monitorOut, encoding: .utf8)) ?? ""
        print("stress: " + (monitorText.split(separator: "\n").last.map(String.init) ?? "no monitor summary"))
        #expect(monitorText.contains(", 0 failures"), "\(monitorText.suffix(3000))")
        let stats = (try? String(contentsOfFile: mnt + "/sys/e10.3/stats", encoding: .utf8)) ?? ""
        let discards =
            stats.split(separator: "\n").first { $0.hasPrefix("discards ") }.flatMap { Int($0.dropFirst(9)) } ?? 0
        print("stress: e10.3 discards \(discards)")
        #expect(discards > 0 || !Self.punch, "the monitors' holes went to e10.3 as TRIM: \(stats)")
        // A leak grows with time; a plateau does not. Over a soak, the last third of the samples
        // may not sit far above the first third.
        if samples.count >= 6 {
            let third = samples.count / 3
            let early = samples[1...third].map(\.1).max() ?? 0
            let late = samples.suffix(third).map(\.1).max() ?? 0
            #expect(late <= early + early / 4 + 8192, "RSS climbs: \(samples)")
            let earlyFD = samples[1...third].map(\.2).max() ?? 0
            #expect((samples.suffix(third).map(\.2).max() ?? 0) <= earlyFD + 8, "descriptors climb: \(samples)")
        }
    }
}

import AoELinux
import AoETestSupport
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Issue 30: the daemon never takes the mount down. `aoefs mount -f` runs a supervisor (the
/// lab's child) that holds the mount; its daemon is killed — SIGKILL, SIGABRT, a planted trap —
/// in the middle of what users do, and what they do completes with nothing lost.
@Suite(
    "a daemon that dies comes back under the same mount", .serialized,
    .enabled(if: LabGate.labShouldRun, Comment(rawValue: LabGate.labSkipReason)))
struct SupervisorTests {
    /// `sys/daemon` as key → value.
    static func daemon(_ m: MountLab) -> [String: String] { daemonFacts(m.mnt) }

    /// `MNT/sys/daemon` as key → value.
    static func daemonFacts(_ mnt: String) -> [String: String] {
        let text = (try? String(contentsOfFile: mnt + "/sys/daemon", encoding: .utf8)) ?? ""
        var out: [String: String] = [:]
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: " ", maxSplits: 1)
            if parts.count == 2 { out[String(parts[0])] = String(parts[1]) }
        }
        return out
    }

    static func bytesWritten(_ m: MountLab) -> Int {
        Int(
            (try? m.sys("stats"))?.split(separator: "\n").first { $0.hasPrefix("bytes_written ") }?
                .split(separator: " ").last ?? "") ?? 0
    }

    /// Kills the serving daemon with `signal` once `ready` holds, and checks the mount answers
    /// `ls` with the next daemon within seconds, never gone. Returns the cause it recorded.
    @discardableResult
    static func killDaemon(_ m: MountLab, _ signal: Int32, when ready: () -> Bool) throws -> String {
        let before = daemon(m)
        guard let pid = Int32(before["daemon_pid"] ?? ""), let incarnation = Int(before["incarnation"] ?? "") else {
            throw LabFailure("no sys/daemon: \(before)")
        }
        #expect(before["supervised"] == "yes")
        let progressed = eventually(timeout: .seconds(30), ready)
        #expect(progressed, "the load made progress before the kill")
        kill(pid, signal)
        let start = ContinuousClock.now
        let back = eventually(timeout: .seconds(20)) { Int(daemon(m)["incarnation"] ?? "") == incarnation + 1 }
        #expect(back, "a new daemon serves: \(daemon(m)) \(m.log(of: m.lab).suffix(2000))")
        #expect(ContinuousClock.now - start < .seconds(10), "back in \(ContinuousClock.now - start)")
        #expect(mounted(m.mnt), "the mount was never gone")
        #expect(try must("ls \(m.mnt)").contains("e10.3"))
        return daemon(m)["previous_end"] ?? ""
    }

    /// A buffered `dd bs=1M conv=fsync` of 256 MiB with the daemon killed in the middle: rc 0,
    /// and the target holds every byte.
    func ddSurvives(_ signal: Int32, mountEnvironment: String = "", expect cause: String) throws {
        let m = try MountLab(size: 512 << 20, environment: mountEnvironment)
        defer { m.tearDown() }
        let src = m.lab.directory.appendingPathComponent("src.bin").path
        try must("head -c \(256 << 20) /dev/urandom > \(src)")
        let ddErr = m.lab.directory.appendingPathComponent("dd.err").path
        let errFD = open(ddErr, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        let dd = try ChildProcess(
            ["dd", "if=\(src)", "of=\(m.image)", "bs=1M", "conv=fsync", "status=none"], stderr: errFD)
        close(errFD)
        defer { if dd.isRunning { dd.signal(SIGKILL); dd.wait() } }
        if signal != 0 {
            let recorded = try Self.killDaemon(m, signal) { Self.bytesWritten(m) >= 32 << 20 }
            #expect(recorded.contains(cause), "\(recorded)")
        } else {
            // The planted trap fires by itself.
            #expect(
                eventually(timeout: .seconds(30)) { Int(Self.daemon(m)["incarnation"] ?? "") == 2 },
                "\(m.log(of: m.lab))")
            #expect(Self.daemon(m)["previous_end"]?.contains(cause) == true, "\(Self.daemon(m))")
        }
        dd.wait()
        let ddSaid = (try? String(contentsOfFile: ddErr, encoding: .utf8)) ?? ""
        #expect(
            dd.exitCode == 0, "dd exited \(String(describing: dd.exitCode)): \(ddSaid) \(m.log(of: m.lab).suffix(4000))"
        )
        #expect(
            try must("cmp -n \(256 << 20) \(src) \(m.file.path) && echo same").contains("same"),
            "the target holds what dd wrote")
        #expect(
            try must("cmp -n \(256 << 20) \(src) \(m.image) && echo same").contains("same"),
            "and the image reads it back")
        #expect(Self.daemon(m)["restarts"] == "1")
    }

    @Test("kill -9 of the daemon in a buffered dd bs=1M conv=fsync of 256 MiB: rc 0, every byte on the target")
    func killDuringBufferedDD() throws { try ddSurvives(SIGKILL, expect: "SIGKILL") }

    @Test("SIGABRT of the daemon in the same dd: rc 0, every byte on the target")
    func abortDuringBufferedDD() throws { try ddSurvives(SIGABRT, expect: "SIGABRT") }

    @Test("a trap in the daemon (planted at its 100th WRITE) in the same dd: rc 0, every byte on the target")
    func trapDuringBufferedDD() throws {
        try ddSurvives(0, mountEnvironment: "AOEFS_PLANT_TRAP=write:100", expect: "a trap")
    }

    @Test("kill -9 of the daemon under fio O_DIRECT random writes with crc32c verify: no error, verify clean")
    func killDuringFio() throws {
        let m = try MountLab(size: 512 << 20)
        defer { m.tearDown() }
        let (fio, out) = try Self.fioVerify(m, rw: "randwrite", blockSize: "16k", depth: 8)
        defer { if fio.isRunning { fio.signal(SIGKILL); fio.wait() } }
        try Self.killDaemon(m, SIGKILL) { Self.bytesWritten(m) >= 64 << 20 }
        fio.wait()
        let report = (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
        #expect(fio.exitCode == 0 && report.contains("err= 0"), "\(report)")
        // The writer's longest pause is its slowest write (fio's clat max): the figure of the note.
        print("killDuringFio: \(Self.slowest(report))")
    }

    /// fio on the image: O_DIRECT, 384 MiB, crc32c verify; returns it and its report's path.
    static func fioVerify(_ m: MountLab, rw: String, blockSize: String, depth: Int) throws -> (ChildProcess, String) {
        let out = m.lab.directory.appendingPathComponent("fio.out").path
        let fio = try ChildProcess([
            "fio", "--name=w", "--filename=\(m.image)", "--direct=1", "--rw=\(rw)", "--bs=\(blockSize)",
            "--size=384m", "--iodepth=\(depth)", "--ioengine=libaio", "--verify=crc32c",
            "--verify_fatal=1", "--verify_state_save=0", "--do_verify=1", "--output=\(out)",
        ])
        return (fio, out)
    }

    /// fio's write completion latency line ("clat (usec): min=…, max=…"), trimmed.
    static func slowest(_ report: String) -> String {
        let lines = report.split(separator: "\n")
        guard let w = lines.firstIndex(where: { $0.contains(" write: ") }) else { return "?" }
        return lines[w...].first { $0.contains(" clat (") }.map { "write " + $0.trimmingCharacters(in: .whitespaces) }
            ?? "?"
    }

    @Test("kill -9 of the daemon in mkfs.ext4 on losetup of the image: mkfs rc 0, fsck -fn clean")
    func killDuringMkfs() throws {
        let m = try MountLab(size: 1 << 30)
        defer { m.tearDown() }
        let loop = try must("losetup -f --show \(m.image)").trimmingCharacters(in: .whitespacesAndNewlines)
        defer { _ = try? sh("losetup -d \(loop)") }
        let mkfs = try ChildProcess(["mkfs.ext4", "-q", "-F", "-E", "nodiscard,lazy_itable_init=0", loop])
        defer { if mkfs.isRunning { mkfs.signal(SIGKILL); mkfs.wait() } }
        try Self.killDaemon(m, SIGKILL) { Self.bytesWritten(m) >= 4 << 20 }
        mkfs.wait()
        #expect(mkfs.exitCode == 0)
        let fsck = try sh("fsck.ext4 -fn \(loop)")
        #expect(fsck.status == 0, "\(fsck.out)")
    }

    @Test("five deaths within a minute: the supervisor unmounts with one line and exits 1, no spin")
    func crashLoopUnmounts() throws {
        let m = try MountLab(size: 64 << 20)
        defer { m.tearDown() }
        for round in 1...4 {
            try Self.killDaemon(m, SIGKILL) { true }
            #expect(Self.daemon(m)["restarts"] == String(round))
        }
        guard let pid = Int32(Self.daemon(m)["daemon_pid"] ?? "") else { throw LabFailure("no daemon") }
        kill(pid, SIGKILL)
        #expect(eventually(timeout: .seconds(20)) { !mounted(m.mnt) }, "unmounted")
        #expect(m.daemon?.wait(upTo: .seconds(10)) == true, "the supervisor ended")
        #expect(m.daemon?.exitCode == 1)
        let lines = m.log(of: m.lab).split(separator: "\n").filter { $0.contains("died 5 times within 60 s") }
        #expect(lines.count == 1, "\(m.log(of: m.lab).suffix(1500))")
    }

    @Test("kill -9 of the supervisor: the mount goes, the daemon ends, and what fsync acknowledged is on the target")
    func killSupervisor() throws {
        let m = try MountLab(size: 64 << 20)
        defer { m.tearDown() }
        let src = m.lab.directory.appendingPathComponent("src.bin").path
        try must("head -c \(16 << 20) /dev/urandom > \(src) && dd if=\(src) of=\(m.image) bs=1M conv=fsync status=none")
        guard let daemonPID = Int32(Self.daemon(m)["daemon_pid"] ?? "") else { throw LabFailure("no daemon") }
        m.daemon?.signal(SIGKILL)
        #expect(eventually(timeout: .seconds(20)) { !mounted(m.mnt) }, "the mount went with its supervisor")
        #expect(eventually(timeout: .seconds(30)) { processIsGone(daemonPID) }, "the daemon ended")
        #expect(try must("cmp -n \(16 << 20) \(src) \(m.file.path) && echo same").contains("same"))
    }

    @Test(
        "aoefs restart under fio: a new daemon serves the live mount, fio sees no error, the restart is counted as a hand-over"
    )
    func restartUnderLoad() throws {
        let m = try MountLab(size: 512 << 20)
        defer { m.tearDown() }
        let (fio, out) = try Self.fioVerify(m, rw: "randrw", blockSize: "64k", depth: 4)
        defer { if fio.isRunning { fio.signal(SIGKILL); fio.wait() } }
        let old = Self.daemon(m)
        #expect(eventually(timeout: .seconds(30)) { Self.bytesWritten(m) >= 32 << 20 })
        let r = try aoefs(["restart", m.mnt])
        #expect(r.status == 0, "\(r.out) \(r.err)")
        #expect(r.out.contains("restarted"), "\(r.out)")
        let now = Self.daemon(m)
        #expect(now["daemon_pid"] != old["daemon_pid"] && now["handovers"] == "1" && now["restarts"] == "0", "\(now)")
        fio.wait()
        let report = (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
        #expect(fio.exitCode == 0 && report.contains("err= 0"), "\(report)")
        print("restartUnderLoad: \(r.out.trimmingCharacters(in: .whitespacesAndNewlines)); \(Self.slowest(report))")
        let bad = try aoefs(["restart", m.lab.directory.path])
        #expect(bad.status != 0 && bad.err.split(separator: "\n").count == 1, "\(bad.err)")
    }
}

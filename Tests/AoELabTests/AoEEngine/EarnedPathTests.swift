import AoECore
import AoEEngine
import AoELinux
import AoEProtocol
import AoETestSupport
import Foundation
import Synchronization
import Testing

/// Paths are earned on a real LAN: a host flooding announcements and forged answers, a box that
/// announces e10.3 and answers nothing, a target whose NIC is swapped mid-write.
@Suite(
    "earned paths on a real LAN", .serialized,
    .enabled(if: LabGate.labShouldRun, Comment(rawValue: LabGate.labSkipReason)))
struct EarnedPathTests {
    /// `aoe-lab flood` in the target's namespace.
    func flood(_ l: EngineLab, namespace: String, interface: String, macs: Int, seconds: Double, ata: Bool = true)
        throws
        -> ChildProcess
    {
        let exe = productsDirectory().appendingPathComponent("aoe-lab").path
        let log = l.lab.directory.appendingPathComponent("flood.log").path
        let output = try OutputCapture(appendingTo: log)
        let p = try ChildProcess(
            [
                "nsenter", "--net=/run/netns/\(namespace)", exe, "flood", "--iface", interface,
                "--target", "10.3", "--macs", String(macs), "--seconds", String(seconds),
            ]
                + (ata ? [] : ["--no-ata"]), stdout: output.writeEnd, stderr: output.writeEnd)
        output.childStarted()
        l.lab.ledger.record(.process(p.pid))
        try #require(output.wait(for: "flooding", timeout: .seconds(5)), "aoe-lab flood started: \(output.text)")
        return p
    }

    @Test("128 MiB written while a host floods announcements from 200 MACs and forged answers: intact, ≤ 8 paths")
    func floodDuringWrite() throws {
        let l = try EngineLab.direct(mtu: 9000, size: 256 << 20)
        defer { l.tearDown() }
        try l.waitUp()
        let net = try #require(l.net)
        let flooder = try flood(l, namespace: net.targetNamespace, interface: net.target, macs: 200, seconds: 30)
        defer {
            flooder.signal(SIGTERM)
            flooder.wait()
        }
        let most = Atomic<Int>(0)
        let total: UInt64 = 128 << 20
        let err = l.writePattern(seed: 31, total: total) { _ in
            let n = l.target?.paths.count ?? 0
            if n > most.load(ordering: .relaxed) { most.store(n, ordering: .relaxed) }
        }
        #expect(err == nil)
        #expect(try l.verifyFile(seed: 31, total: total), "the target's file holds what was written")
        #expect(l.verifyPattern(seed: 31, total: total) == nil, "and it reads back")
        let mostPaths = most.load(ordering: .relaxed)
        #expect(mostPaths <= 8, "paths never pass maxpaths: \(mostPaths)")
        let t = try #require(l.target)
        #expect(t.paths.filter { $0.state.isHealthy }.count == 1, "\(t.paths)")
        let forged = t.counters.softerr + t.counters.errwmsg + t.counters.errtrunc
        #expect(forged > 0, "the forged answers were counted")
    }

    @Test("a box announcing e10.3 that never answers ATA: no stall, one line in err, gone from paths")
    func silentAnnouncer() throws {
        let l = try EngineLab.direct(mtu: 9000, size: 64 << 20)
        defer { l.tearDown() }
        try l.waitUp()
        let net = try #require(l.net)
        let box = try flood(l, namespace: net.targetNamespace, interface: net.target, macs: 1, seconds: 10, ata: false)
        defer {
            box.signal(SIGTERM)
            box.wait()
        }
        let start = ContinuousClock.now
        #expect(l.writePattern(seed: 32, total: 16 << 20) == nil)
        #expect(ContinuousClock.now - start < .seconds(10), "no stall")
        #expect(
            eventually(timeout: .seconds(15)) {
                l.engine.errorLines(after: 0).contains { $0.1.contains("does not answer IDENTIFY") }
            })
        #expect(l.target?.paths.filter { $0.state.isHealthy }.count == 1)
    }

    @Test(
        "the target's NIC is swapped mid-write (new MAC, target restarted): the write completes, the old path is ejected"
    )
    func macChange() throws {
        let l = try EngineLab.direct(mtu: 9000, size: 512 << 20)
        defer { l.tearDown() }
        try l.waitUp()
        let net = try #require(l.net)
        let old = try #require(l.target?.paths.first?.mac)
        let swapped = Atomic<Bool>(false)
        let swap = Locked(false)
        let vblade = l.vblades[0]
        let swapper = Thread {
            swap.wait(timeout: nil) { $0 }
            vblade.kill()
            _ = try? Command.run([
                "ip", "-n", net.targetNamespace, "link", "set", net.target, "address", "02:aa:bb:cc:dd:01",
            ])
            try? vblade.start()  // it announces itself with the new MAC
        }
        swapper.start()
        let total: UInt64 = 256 << 20
        let err = l.writePattern(seed: 33, total: total) { done in
            if done > total / 3, !swapped.exchange(true, ordering: .relaxed) {
                swap.withLock { $0 = true }
                swap.broadcast()
            }
        }
        let didSwap = swapped.load(ordering: .relaxed)
        #expect(didSwap)
        #expect(err == nil)
        #expect(try l.verifyFile(seed: 33, total: total))
        let new = MACAddress(0x02, 0xAA, 0xBB, 0xCC, 0xDD, 0x01)
        #expect(eventually(timeout: .seconds(10)) { l.target?.paths.map(\.mac) == [new] }, "\(l.target?.paths ?? [])")
        #expect(l.target?.paths.contains { $0.mac == old } == false)
        #expect((l.target?.counters.ejected ?? 0) >= 1)
    }

    @Test("dd writes 128 MiB (oflag=direct) through the mount while a host floods e10.3 from 200 MACs: all agree")
    func floodDuringDD() throws {
        let m = try MountLab(size: 256 << 20, program: .vblade)
        defer { m.tearDown() }
        let exe = productsDirectory().appendingPathComponent("aoe-lab").path
        let output = try OutputCapture(appendingTo: m.lab.directory.appendingPathComponent("flood.log").path)
        let flooder = try ChildProcess(
            [
                "nsenter", "--net=/run/netns/\(m.net.targetNamespace)", exe, "flood", "--iface",
                m.net.target, "--target", "10.3", "--macs", "200", "--seconds", "30",
            ],
            stdout: output.writeEnd, stderr: output.writeEnd)
        output.childStarted()
        m.lab.ledger.record(.process(flooder.pid))
        defer {
            flooder.signal(SIGTERM)
            flooder.wait()
        }
        try #require(output.wait(for: "flooding", timeout: .seconds(5)), "aoe-lab flood started: \(output.text)")
        let source = m.lab.directory.appendingPathComponent("source.bin").path
        try must("head -c \(128 << 20) /dev/urandom > \(source)")
        let dd = try ChildProcess([
            "dd", "if=\(source)", "of=\(m.image)", "bs=1M", "oflag=direct", "conv=notrunc,nocreat",
            "status=none",
        ])
        var most = 0
        let finished = eventually(timeout: .seconds(120)) {
            let rows = ((try? m.sys("paths")) ?? "").split(separator: "\n").count - 1
            most = max(most, rows)
            return !dd.isRunning
        }
        #expect(finished && dd.exitCode == 0, "dd completed")
        #expect(most <= 8, "sys/e10.3/paths showed \(most) paths")
        let sum = { (path: String, flag: String) in
            try must("dd if=\(path) bs=1M count=128 \(flag) status=none | sha256sum").prefix(64)
        }
        let want = try must("sha256sum \(source)").prefix(64)
        #expect(try sum(m.image, "iflag=direct") == want, "the bytes read back")
        #expect(try sum(m.file.path, "") == want, "the bytes on the target's file")
        let forged = try m.stat("softerr") + m.stat("errwmsg") + m.stat("errtrunc")
        #expect(forged > 0, "the forged answers were counted")
    }
}

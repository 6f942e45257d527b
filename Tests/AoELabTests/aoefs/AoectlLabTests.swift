import AoELinux
import AoETestSupport
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// aoectl's verbs against a real mount and vblade.
extension ControlCommandTests {
    @Test(
        "aoefs disable during a dd loop: EIO within a second, no frame after, discover leaves it, enable brings it back"
    )
    func disableDuringIO() throws {
        let m = try MountLab(size: 256 << 20)
        defer { m.tearDown() }
        let loop = try ChildProcess([
            "/bin/sh", "-c",
            "while dd if=\(m.image) of=/dev/null bs=1M count=16 iflag=direct status=none; do :; done; echo EIO",
        ])
        defer {
            loop.signal(SIGKILL)
            loop.wait()
        }
        #expect(eventually(timeout: .seconds(5)) { ((try? m.stat("reads")) ?? 0) > 16 }, "the loop reads")
        let start = ContinuousClock.now
        #expect(try aoefs(["disable", "--mount", m.mnt, "10.3"]).status == 0)
        #expect(loop.wait(upTo: .seconds(1)), "dd got an error within a second")
        #expect(ContinuousClock.now - start < .seconds(2))
        #expect(try m.sys("state") == "disabled\n")
        #expect(!(try must("ls \(m.mnt)")).contains("e10.3"), "the image is gone")
        #expect(try must("ls \(m.mnt)/sys").contains("e10.3"), "its sys/ stays")
        let stat = try aoefs(["stat", m.mnt])
        #expect(stat.out.contains("disabled"), "\(stat.out)")
        let sent = try m.stat("atasnd")
        // tcpdump on the target's end of the veth from now on: AoE frames, and which are to it.
        let cap = m.lab.directory.appendingPathComponent("disabled.pcap").path
        let output = try OutputCapture(appendingTo: m.lab.directory.appendingPathComponent("tcpdump.log").path)
        let dump = try ChildProcess(
            [
                "nsenter", "--net=/run/netns/\(m.net.targetNamespace)", "tcpdump", "-i", m.net.target,
                "-w", cap, "-U", "ether proto 0x88a2",
            ], stdout: output.writeEnd, stderr: output.writeEnd)
        output.childStarted()
        #expect(output.wait(for: "listening on", timeout: .seconds(5)), "tcpdump started: \(output.text)")
        #expect(try aoefs(["discover", "--mount", m.mnt]).status == 0)
        #expect(
            !eventually(timeout: .seconds(1)) { (try? must("ls \(m.mnt)"))?.contains("e10.3") == true },
            "discover does not bring it back")
        #expect(try m.stat("atasnd") == sent, "no frame went to the disabled target")
        let mac = try must("ip -n \(m.net.targetNamespace) -br link show \(m.net.target) | awk '{print $3}'")
            .trimmingCharacters(in: .whitespacesAndNewlines)
        // discover's broadcast Query Config is on the wire (the capture works); nothing is sent to the target itself.
        let captured = { (try? must("tcpdump -n -e -r \(cap) 2>/dev/null")) ?? "" }
        #expect(
            eventually(timeout: .seconds(3)) { captured().contains("> ff:ff:ff:ff:ff:ff") },
            "the broadcast Query Config was captured: \(captured()) \(m.log(of: m.lab))")
        dump.signal(SIGINT)
        dump.wait()
        let toTarget = try must("tcpdump -n -e -r \(cap) 'ether dst \(mac)' 2>/dev/null")
        #expect(!mac.isEmpty && toTarget.isEmpty, "frames to the disabled target \(mac): \(toTarget)")
        let list = try aoefs(["list", "--mount", m.mnt, "--json"])
        let doc = try JSONSerialization.jsonObject(with: Data(list.out.utf8)) as? [[String: Any]]
        #expect(
            doc?.first?["target"] as? String == "e10.3" && doc?.first?["state"] as? String == "disabled", "\(list.out)")
        #expect(try aoefs(["enable", "--mount", m.mnt, "e10.3"]).status == 0)
        #expect(eventually(timeout: .seconds(5)) { (try? m.sys("state")) == "up\n" })
        #expect(try must("dd if=\(m.image) of=/dev/null bs=1M count=4 iflag=direct status=none; echo ok") == "ok\n")
    }

    @Test("patterns: a shelf, a slot, eS.L; a pattern that matches nothing or is not one says so, non-zero")
    func patterns() throws {
        let m = try MountLab(size: 64 << 20)
        defer { m.tearDown() }
        for p in ["10", ".3", "e10.3", "10.3"] {
            let r = try aoefs(["list", "--mount", m.mnt, p])
            #expect(r.status == 0 && r.out.contains("e10.3"), "list \(p): \(r.out) \(r.err)")
        }
        let none = try aoefs(["list", "--mount", m.mnt, "11"])
        #expect(none.status != 0 && none.err.contains("no target matches '11.'"), "\(none.err)")
        let bad = try aoefs(["disable", "--mount", m.mnt, "x.y"])
        #expect(bad.status != 0 && bad.err.contains("not a target pattern"), "\(bad.err)")
        let nothing = try aoefs(["enable", "--mount", m.mnt, "12.1"])
        #expect(nothing.status != 0, "enable of nothing")
        #expect(try aoefs(["probe", "--mount", m.mnt, ".3"]).status == 0)
        #expect(try aoefs(["disable", "--mount", m.mnt, ".3"]).status == 0)
        #expect(try m.sys("state") == "disabled\n")
        #expect(try aoefs(["enable", "--mount", m.mnt, "10"]).status == 0)
        #expect(eventually(timeout: .seconds(5)) { (try? m.sys("state")) == "up\n" })
    }
}

import AoELinux
import AoETestSupport
import Foundation
import Testing

/// A target that answers Query Config but never IDENTIFY (issue 21: one such showed nowhere).
@Suite(
    "A target that is not identified", .serialized,
    .enabled(if: LabGate.labShouldRun, Comment(rawValue: LabGate.labSkipReason)))
struct UnidentifiedTargetTests {
    @Test(
        "it reads `identifying` in sys/ and aoefs stat, with the reason in err, has no image, and comes up once it answers"
    )
    func identifyingIsVisible() throws {
        let m = try MountLab(size: 64 << 20)
        defer { m.tearDown() }
        // e10.4's ATA commands are dropped at the target: it answers Query Config only.
        let rule = try m.lab.dropFrames(on: m.net.target, namespace: m.net.targetNamespace, percent: 100, ataToSlot: 4)
        let f2 = try m.lab.sparseFile("e10.4.img", size: 32 << 20)
        _ = try m.lab.startVblade(
            shelf: 10, slot: 4, interface: m.net.target, namespace: m.net.targetNamespace, file: f2)
        try must("echo > \(m.mnt)/etherd/discover")
        let state = m.mnt + "/sys/e10.4/state"
        #expect(
            eventually(timeout: .seconds(10)) {
                (try? String(contentsOfFile: state, encoding: .utf8)) == "identifying\n"
            },
            "sys/e10.4/state: \((try? String(contentsOfFile: state, encoding: .utf8)) ?? "missing")")
        #expect(try must("ls \(m.mnt)").split(separator: "\n") == ["e10.3", "etherd", "sys"], "no image for e10.4")
        #expect(try must("ls \(m.mnt)/sys").split(separator: "\n").contains("e10.4"))
        let stat = try aoefs(["stat", m.mnt])
        #expect(
            stat.out.split(separator: "\n").contains { $0.contains("e10.4") && $0.contains("identifying") },
            "\(stat.out)")
        let list = try aoefs(["list", "--mount", m.mnt])
        #expect(list.out.contains("e10.4") && list.out.contains("identifying"), "\(list.out) \(list.err)")
        #expect(
            eventually(timeout: .seconds(15)) {
                (try? sh("timeout 2 cat \(m.mnt)/etherd/err"))?.out.contains(
                    "e10.4: answers Query Config but not IDENTIFY") == true
            }, "etherd/err says why")
        #expect(try m.lab.droppedCount(rule) > 0)
        // It answers again: identified, image and up, without a discover.
        try m.lab.remove(rule)
        #expect(eventually(timeout: .seconds(15)) { (try? String(contentsOfFile: state, encoding: .utf8)) == "up\n" })
        #expect(
            try must("stat -c %s \(m.mnt)/e10.4").trimmingCharacters(in: .whitespacesAndNewlines) == String(32 << 20))
    }
}

import AoETestSupport
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// aoe-stat's line, written from its format string (aoe-stat.in): `%10s %15s %10s %-5s %-14s`.
func aoeStatLine(_ device: String, _ size: String, _ netif: String, _ payload: String, _ state: String) -> String {
    func right(_ s: String, _ w: Int) -> String { String(repeating: " ", count: max(0, w - s.count)) + s }
    func left(_ s: String, _ w: Int) -> String { s + String(repeating: " ", count: max(0, w - s.count)) }
    return [right(device, 10), right(size, 15), right(netif, 10), left(payload, 5), left(state, 14)].joined(
        separator: " ")
}

@Suite(
    "aoetools habits: stat, discover, interfaces, revalidate, flush", .serialized,
    .enabled(if: LabGate.labShouldRun, Comment(rawValue: LabGate.labSkipReason)))
struct ControlCommandTests {
    @Test("aoefs stat prints aoe-stat's table for two targets, sorted, and filters by regex")
    func stat() throws {
        let m = try MountLab(size: 3 << 30)
        defer { m.tearDown() }
        let f2 = try m.lab.sparseFile("e9.4.img", size: 1_500_000_000)
        _ = try m.lab.startVblade(
            shelf: 9, slot: 4, interface: m.net.target, namespace: m.net.targetNamespace, file: f2)
        try must("echo > \(m.mnt)/etherd/discover")
        #expect(try eventually(timeout: .seconds(5)) { try must("ls \(m.mnt)").contains("e9.4") })
        // 3 GiB = 6291456 sectors → 3221 MB; 1.5e9 bytes rounded down to sectors → 1499 MB.
        let want =
            [
                aoeStatLine("e9.4", "1.499GB", m.net.initiator, "8704", "up"),
                aoeStatLine("e10.3", "3.221GB", m.net.initiator, "8704", "up"),
            ].joined(separator: "\n") + "\n"
        let r = try aoefs(["stat", m.mnt])
        #expect(r.status == 0, "\(r.err)")
        #expect(r.out == want, "got:\n\(r.out)\nwant:\n\(want)")
        // --json: the same values as the table, numbers as numbers; python3's json.tool parses it.
        let j = try aoefs(["stat", m.mnt, "--json"])
        #expect(j.status == 0, "\(j.err)")
        #expect(try sh("echo '\(j.out)' | python3 -m json.tool > /dev/null").status == 0, "\(j.out)")
        let doc = try #require(try JSONSerialization.jsonObject(with: Data(j.out.utf8)) as? [[String: Any]])
        #expect(doc.map { $0["device"] as? String } == ["e9.4", "e10.3"])
        #expect(doc.last?["size"] as? Int == 3 << 30 && doc.last?["payload"] as? Int == 8704)
        #expect(doc.allSatisfy { $0["netif"] as? String == m.net.initiator && $0["state"] as? String == "up" })
        let only = try aoefs(["stat", m.mnt, "e10\\."])
        #expect(only.out == aoeStatLine("e10.3", "3.221GB", m.net.initiator, "8704", "up") + "\n")
        let notMounted = try aoefs(["stat", m.lab.directory.path])
        #expect(notMounted.status != 0 && notMounted.err.contains("not an aoefs mount"), "\(notMounted.err)")
    }

    @Test("discover, interfaces, revalidate and flush act through the mount's control files")
    func controls() throws {
        let m = try MountLab(size: 1 << 30)
        defer { m.tearDown() }
        // interfaces: reads back what was set; an unknown one is refused with one line.
        #expect(try aoefs(["interfaces", "--mount", m.mnt, m.net.initiator]).status == 0)
        #expect(try aoefs(["interfaces", "--mount", m.mnt]).out == m.net.initiator + "\n")
        let bad = try aoefs(["interfaces", "--mount", m.mnt, "aoetnosuch0"])
        #expect(
            bad.status != 0 && bad.err.split(separator: "\n").count == 1 && bad.err.contains("Invalid argument"),
            "\(bad.err)")
        // discover: a second target appears.
        let f2 = try m.lab.sparseFile("e10.4.img", size: 64 << 20)
        let t2 = try m.lab.startVblade(
            shelf: 10, slot: 4, interface: m.net.target, namespace: m.net.targetNamespace, file: f2)
        #expect(try aoefs(["discover", "--mount", m.mnt]).status == 0)
        #expect(try eventually(timeout: .seconds(3)) { try must("ls \(m.mnt)").contains("e10.4") })
        // revalidate: a grown backing file shows its new size.
        try must("truncate -s \(2 << 30) \(m.file.path)")
        m.vblades[0].stop()
        try m.vblades[0].start()
        #expect(try aoefs(["revalidate", "--mount", m.mnt, "e10.3"]).status == 0)
        #expect(
            try eventually(timeout: .seconds(5)) {
                try must("stat -c %s \(m.image)").trimmingCharacters(in: .whitespacesAndNewlines) == String(2 << 30)
            })
        // flush: a named target goes away.
        t2.stop()
        #expect(try aoefs(["flush", "--mount", m.mnt, "e10.4"]).status == 0)
        #expect(!(try must("ls \(m.mnt)")).contains("e10.4"))
        let nonsense = try aoefs(["revalidate", "--mount", m.mnt, "banana"])
        #expect(nonsense.status != 0 && nonsense.err.contains("banana"), "\(nonsense.err)")
        #expect(try aoefs(["discover", "--mount", m.lab.directory.path]).err.contains("not an aoefs mount"))
    }
}

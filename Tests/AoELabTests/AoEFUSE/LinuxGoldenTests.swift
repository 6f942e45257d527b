import AoELinux
import AoETestSupport
import Foundation
import Testing

/// Our `sys/` files and `aoefs stat` against what the Linux kernel's own aoe driver showed of the
/// same kind of target (Tests/linux-initiator/golden.txt, recorded by run.sh in a qemu guest):
/// the same words, in the same form, for the same facts.
@Suite(
    "sys/ against the Linux driver's sysfs", .serialized,
    .enabled(if: LabGate.labShouldRun, Comment(rawValue: LabGate.labSkipReason)))
struct LinuxGoldenTests {
    /// golden.txt's lines without comments: ("AOESTAT", line) or ("SYSFS", "file value").
    static func golden() throws -> [(kind: String, text: String)] {
        let url = packageRoot().appendingPathComponent("Tests/linux-initiator/golden.txt")
        return try String(contentsOf: url, encoding: .utf8).split(separator: "\n")
            .filter { !$0.hasPrefix("#") }
            .compactMap { line in
                line.split(separator: " ", maxSplits: 1).count == 2
                    ? (String(line.split(separator: " ")[0]), String(line.split(separator: " ", maxSplits: 1)[1])) : nil
            }
    }

    @Test(
        "state, mac, netif, payload, firmware-version and the aoe-stat line read as the Linux driver's for aoefs serve")
    func sameWords() throws {
        let lines = try Self.golden()
        try #require(lines.count >= 6, "golden.txt: \(lines)")
        // The guest's target: aoefs serve, 256 MiB, MTU 9000; its interface was eth0, ours is the lab's.
        let m = try MountLab(size: 256 << 20, program: .aoefsServe)
        defer { m.tearDown() }
        #expect(eventually(timeout: .seconds(10)) { (try? m.sys("payload")) == "8704\n" })
        func ours(_ text: String) -> String { text.replacingOccurrences(of: m.net.initiator, with: "eth0") }
        for (kind, text) in lines where kind == "SYSFS" {
            let parts = text.split(separator: " ", maxSplits: 1).map(String.init)
            var value = ours(try m.sys(parts[0])).trimmingCharacters(in: .newlines)
            if parts[1] == "MAC" {
                #expect(
                    value.count == 12 && value.allSatisfy(\.isHexDigit) && value == value.lowercased(), "mac: \(value)")
                value = "MAC"
            }
            #expect(value == parts[1], "sys/e10.3/\(parts[0]): ours «\(value)», Linux «\(parts[1])»")
        }
        let stat = try aoefs(["stat", m.mnt])
        let line =
            ours(stat.out).split(separator: "\n").first { $0.contains("e10.3") }
            .map { $0.split(separator: " ").joined(separator: " ") } ?? ""
        let want = lines.first { $0.kind == "AOESTAT" }?.text ?? "?"
        #expect(line == want, "aoefs stat: «\(line)», aoe-stat: «\(want)»")
    }
}

import AoELinux
import AoEProtocol
import AoETestSupport
import Foundation
import Testing

/// What tcpdump's AoE printer (print-aoe.c, written from AoEr11 by people who are not us)
/// must say about a frame we encoded: every field we set, with our value.
func tcpdumpExpectations(_ f: AoEFrame) -> [String] {
    let h = f.header
    var flagNames: [String] = []
    if h.flags.contains(.response) { flagNames.append("Response") }
    if h.flags.contains(.error) { flagNames.append("Error") }
    let commandName: String =
        switch h.command {
        case .ata: "Issue ATA Command"
        case .queryConfig: "Query Config Information"
        case .macMaskList: "MAC Mask List"
        case .reserveRelease: "Reserve/Release"
        default: "Unknown (0x\(String(format: "%02x", h.command.rawValue)))"
        }
    var lines = [
        "Ver 1, Flags: [\(flagNames.isEmpty ? "none" : flagNames.joined(separator: ", "))]",
        String(format: "Major: 0x%04x, Minor: 0x%02x, ", h.shelf.rawValue, h.slot.rawValue)
            + "Command: \(commandName), " + String(format: "Tag: 0x%08x", h.tag.rawValue),
    ]
    if h.isError {
        let names = [
            "Unrecognized command code", "Bad argument parameter", "Device unavailable",
            "Config string present", "Unsupported version", "Target is reserved",
        ]
        lines.append("Error: \(names[Int(h.error.rawValue) - 1])")
        return lines
    }
    switch f.body {
    case .ata(let m):
        let flagTable: [(ATAFlags, String)] = [
            (.extended, "Ext48"), (.device, "Device"), (.async, "Async"), (.write, "Write"),
        ]
        let set = flagTable.filter { m.flags.contains($0.0) }.map(\.1)
        lines.append(
            "AFlags: [\(set.isEmpty ? "none" : set.joined(separator: ", "))], Err/Feature: \(m.errorOrFeature), "
                + "Sector Count: \(m.sectorCount), Cmd/Status: \(m.commandOrStatus)")
        let lba = (0..<6).map { "lba\($0): \((m.lba >> (8 * UInt64($0))) & 0xFF)" }.joined(separator: ", ")
        lines.append(lba)
        if !m.data.isEmpty { lines.append("Data: \(m.data.count) bytes") }
    case .queryConfig(let c):
        let ccmd = [
            "read config string", "test config string", "test config string prefix", "set config string",
            "force set config string",
        ][Int(c.command.rawValue)]
        lines.append(
            "Buffer Count: \(c.bufferCount), Firmware Version: \(c.firmwareVersion), "
                + "Sector Count: \(c.sectorsPerCommand), AoE: \(c.aoeVersion), CCmd: \(ccmd)")
        if !c.configString.isEmpty {
            lines.append(
                "Config String (length \(c.configString.count)): \(String(decoding: c.configString, as: UTF8.self))")
        }
    case .macMaskList(let m):
        let mcmd = m.command == .read ? "Read Mac Mask List" : "Edit Mac Mask List"
        let merror = ["Unknown (0x00)", "Unspecified Error", "Bad DCmd directive", "Mask list full"][
            Int(m.error.rawValue)]
        lines.append("MCmd: \(mcmd), MError: \(merror), Dir Count: \(m.directives.count)")
        for d in m.directives {
            let dcmd = ["No Directive", "Add mac address to mask list", "Delete mac address from mask list"][
                Int(d.command.rawValue)]
            lines.append("DCmd: \(dcmd), Ethernet Address: \(d.mac)")
        }
    case .reserveRelease(let r):
        let rcmd = ["Read reserve list", "Set reserve list", "Force set reserve list"][Int(r.command.rawValue)]
        lines.append("RCmd: \(rcmd), NMacs: \(r.macs.count)")
        for (i, mac) in r.macs.enumerated() { lines.append("Ethernet Address \(i): \(mac)") }
    case .opaque:
        break
    }
    return lines
}

@Suite("Cross-check with tcpdump's AoE decoder")
struct TcpdumpCrossCheckTests {
    static let unavailable: String? = Command.exists("tcpdump") ? nil : "needs tcpdump (apt-get install tcpdump)"

    @Test(.enabled(if: LabGate.shouldRun(unless: unavailable), Comment(rawValue: unavailable ?? "")))
    func tcpdumpDecodesEveryFieldWeEncode() throws {
        if let reason = Self.unavailable { Issue.record("AOEFS_REQUIRE_LAB is set but: \(reason)"); return }
        // Every golden frame (all commands, requests and responses) plus frames built only by
        // the encoder's convenience constructors.
        var frames = goldenFrames.map(\.frame)
        let h = header(targetMAC, initiatorMAC, command: .ata, tag: 0x7FFF_0001)
        frames.append(
            AoEFrame(header: h, body: .ata(.write(lba: (1 << 47) + 5, data: [UInt8](repeating: 0xA5, count: 17 * 512))))
        )
        frames.append(AoEFrame(header: h, body: .ata(.read(lba: 0x0FFF_FFFF, sectors: 255, lba48: false))))
        frames.append(AoEFrame(header: h, body: .ata(.trim(lba: 123_456, sectors: 5_000_000))))

        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("aoefs-pcap-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("frames.pcap")
        var pcap = PcapWriter()
        for (i, f) in frames.enumerated() { pcap.append(f.encoded(), index: i) }
        try pcap.write(to: file)

        let output = try Command.run(["tcpdump", "-n", "-e", "-vv", "-t", "-r", file.path])
        // One packet per line that does not start with white space; its details follow on tab lines.
        var packets: [String] = []
        for line in output.split(separator: "\n", omittingEmptySubsequences: true) {
            if line.first == " " || line.first == "\t" {
                packets[packets.count - 1] += "\n" + line
            } else {
                packets.append(String(line))
            }
        }
        #expect(packets.count == frames.count)
        for (f, text) in zip(frames, packets) {
            for complaint in ["[|aoe]", "MBZ", "invalid", "truncated"] {
                #expect(
                    !text.contains(complaint), "tcpdump complains «\(complaint)» about \(f.header.command):\n\(text)")
            }
            #expect(text.contains("ethertype AoE (0x88a2)"), "\(text)")
            #expect(text.contains("AoE length \(f.encodedSize - 14)"), "\(text)")
            #expect(text.contains("\(f.header.source) > \(f.header.destination)"), "\(text)")
            for expected in tcpdumpExpectations(f) {
                #expect(text.contains(expected), "tcpdump output lacks «\(expected)»:\n\(text)")
            }
        }
    }
}

import AoEEngine
import AoELinux
import AoEProtocol
import ArgumentParser
import Foundation

/// Options every command that talks to the network shares.
struct NetworkOptions: ParsableArguments {
    @Option(name: .customLong("iface"), help: ArgumentHelp("An Ethernet interface to use (repeat for several).",
                                                           valueName: "IF"))
    var interfaces: [String] = []

    @Option(help: "Seconds without an answer, while I/O waits, before a target is declared down (0: never).")
    var deadsecs: Int = 180

    @Option(help: "The most frames in flight per path.")
    var maxout: Int = 128

    @Option(help: ArgumentHelp("Cap on data bytes per frame (a multiple of 512).", valueName: "BYTES"))
    var maxdata: Int?

    @Flag(name: .shortAndLong, help: "Print diagnostics (retransmits, payload changes, targets up/down) to stderr.")
    var verbose = false

    func validate() throws {
        if deadsecs < 0 { throw ValidationError("--deadsecs must be 0 or more") }
        if maxout < 1 { throw ValidationError("--maxout must be at least 1") }
        if let m = maxdata, m < 512 || m % 512 != 0 { throw ValidationError("--maxdata must be a multiple of 512") }
    }

    var engineConfiguration: EngineConfiguration {
        var c = EngineConfiguration()
        c.deadsecs = deadsecs
        c.maxOutstanding = maxout
        c.maxPayload = maxdata
        return c
    }

    /// Opens the links and starts an engine on them; exits with a one-line error on failure.
    func startEngine(defaultToAllEthernet: Bool = false) throws -> Engine {
        var names = interfaces
        if names.isEmpty {
            guard defaultToAllEthernet else { throw ValidationError("give at least one --iface (e.g. --iface eth1)") }
            names = allEthernetInterfaces()
            if names.isEmpty { throw CLIError("no Ethernet interface is up; give one with --iface") }
        }
        var links: [any Link] = []
        for name in names {
            do { links.append(try PacketLink(interface: name)) } catch { throw CLIError("\(error)") }
        }
        var log: (@Sendable (String) -> Void)?
        if verbose { log = { line in printErr("aoefs: " + line) } }
        let engine = Engine(links: links, configuration: engineConfiguration, onLog: log)
        engine.start()
        return engine
    }
}

/// A failure reported as one line on stderr with exit status 1.
struct CLIError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

func printErr(_ s: String) { FileHandle.standardError.write(Data((s + "\n").utf8)) }

/// Sizes like 512, 4K, 1M, 2G (powers of 1024).
func parseSize(_ text: String) -> UInt64? {
    let units: [Character: UInt64] = ["K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40]
    var t = text.uppercased()
    if t.hasSuffix("IB") { t.removeLast(2) } else if t.hasSuffix("B") { t.removeLast() }
    if let u = t.last.flatMap({ units[$0] }) { return UInt64(t.dropLast()).map { $0 * u } }
    return UInt64(t)
}

/// Bytes as GB with three decimals, like aoe-stat ("137.439GB").
func gigabytes(_ bytes: UInt64) -> String {
    let mb = bytes / 1_000_000
    return "\(mb / 1000).\(String(format: "%03d", Int(mb % 1000)))GB"
}

func pad(_ s: String, _ width: Int) -> String { s.count >= width ? s : s + String(repeating: " ", count: width - s.count) }

/// Every Ethernet interface that is up (what Linux's aoe uses when aoe_iflist is empty).
func allEthernetInterfaces() -> [String] {
    let names = (try? FileManager.default.contentsOfDirectory(atPath: "/sys/class/net")) ?? []
    return names.sorted().filter { n in
        let type = (try? String(contentsOfFile: "/sys/class/net/\(n)/type", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
        let flags = (try? String(contentsOfFile: "/sys/class/net/\(n)/flags", encoding: .utf8))
            .flatMap { UInt32($0.trimmingCharacters(in: .whitespacesAndNewlines).dropFirst(2), radix: 16) } ?? 0
        return type == "1" && flags & 1 != 0 && n != "lo"
    }
}

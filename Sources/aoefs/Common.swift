import AoECore
import AoEEngine
import AoELinux
import AoEProtocol
import ArgumentParser
import Foundation

/// Options every command that talks to the network shares. Each may also come from the
/// configuration file (`--config`, default /etc/aoefs.conf); a flag given here wins.
struct NetworkOptions: ParsableArguments {
    @Option(
        name: .customLong("iface"),
        help: ArgumentHelp(
            "An Ethernet interface to use (repeat for several).",
            valueName: "IF"))
    var interfaces: [String] = []

    @Option(
        help: "Seconds without an answer, while I/O waits, before a target is declared down (0: never; default 180).")
    var deadsecs: Int?

    @Option(help: "The most frames in flight per path (default 128; a target's buffer count also limits it).")
    var maxout: Int?

    @Option(help: ArgumentHelp("Cap on data bytes per frame (a multiple of 512).", valueName: "BYTES"))
    var maxdata: Int?

    @Option(
        help: ArgumentHelp("Cap on every interface's MTU (when the switches carry less than the NIC).", valueName: "N"))
    var mtu: Int?

    @Option(
        help: ArgumentHelp(
            "Microseconds a receive thread polls without sleeping before it sleeps (default 50; 0: sleep at once). Halves 4 KiB QD 1 latency on a VM for at most that much CPU per wait.",
            valueName: "US"))
    var busyPoll: Int?

    @Option(help: ArgumentHelp("Configuration file (default: /etc/aoefs.conf, if it exists).", valueName: "FILE"))
    var config: String?

    @Flag(
        name: .shortAndLong,
        help:
            "More on stderr: -v the engine's diagnostics (retransmits, payload changes, targets up/down), -vv also settings."
    )
    var verbose: Int

    func validate() throws {
        if let d = deadsecs, d < 0 { throw ValidationError("--deadsecs must be 0 or more") }
        if let m = maxout, m < 1 { throw ValidationError("--maxout must be at least 1") }
        if let m = maxdata, m < 512 || m % 512 != 0 { throw ValidationError("--maxdata must be a multiple of 512") }
        if let m = mtu, m < 534 || m > 65535 { throw ValidationError("--mtu must be between 534 and 65535") }
        if let b = busyPoll, b < 0 || b > 10000 {
            throw ValidationError("--busy-poll must be between 0 and 10000 microseconds")
        }
    }

    /// The configuration file: `--config FILE` (which must exist), else /etc/aoefs.conf if present.
    func configFile() throws -> AoEConfigFile? {
        let path = config ?? AoEConfigFile.defaultPath
        if config == nil && !FileManager.default.fileExists(atPath: path) { return nil }
        do {
            return try AoEConfigFile.load(path: path, read: readWholeFile)
        } catch { throw CLIError("\(error)") }
    }

    /// Defaults, then the file, then the flags.
    func engineConfiguration(file: AoEConfigFile?) -> EngineConfiguration {
        var c = EngineConfiguration()
        file?.apply(to: &c)
        // A flag wins over the file everywhere, per-target and per-interface values included.
        if let v = deadsecs {
            c.deadsecs = v
            for k in c.targets.keys { c.targets[k]?.deadsecs = nil }
        }
        if let v = maxout {
            c.maxOutstanding = v
            for k in c.targets.keys { c.targets[k]?.maxOutstanding = nil }
        }
        if let v = maxdata {
            c.maxPayload = v
            for k in c.targets.keys { c.targets[k]?.maxPayload = nil }
            for k in c.interfaces.keys { c.interfaces[k]?.maxPayload = nil }
        }
        if let v = mtu {
            c.mtu = v
            for k in c.interfaces.keys { c.interfaces[k]?.mtu = nil }
        }
        if let v = busyPoll { c.busyPoll = .microseconds(v) }
        // A switch for paired benchmarks (Benchmarks/, Docs/performance.md), not a setting:
        // receive placement has no case where it loses.
        if ProcessInfo.processInfo.environment["AOEFS_RECEIVE_PLACEMENT"] == "off" { c.receivePlacement = false }
        return c
    }

    /// Opens the links and starts an engine on them; a one-line error on failure.
    func startEngine(defaultToAllEthernet: Bool = false, searchWhileProving: Bool = false) throws -> Engine {
        Log.setUp(verbosity: verbose)
        let file = try configFile()
        var names = interfaces.isEmpty ? (file?.interfaces ?? []) : interfaces
        if names.isEmpty {
            guard defaultToAllEthernet else { throw ValidationError("give at least one --iface (e.g. --iface eth1)") }
            names = allEthernetInterfaces()
            if names.isEmpty { throw CLIError("no Ethernet interface is up; give one with --iface") }
        }
        var configuration = engineConfiguration(file: file)
        configuration.searchWhileProving = searchWhileProving
        Log.logger.debug(
            "settings: interfaces \(names.joined(separator: " ")), deadsecs \(configuration.deadsecs), maxout \(configuration.maxOutstanding), maxdata \(configuration.maxPayload.map(String.init) ?? "-"), mtu cap \(configuration.mtu.map(String.init) ?? "-"), busy poll \(configuration.busyPoll), \(configuration.targets.count) target and \(configuration.interfaces.count) interface sections"
        )
        var links: [any Link] = []
        for name in names {
            do { links.append(try PacketLink(interface: name)) } catch { throw CLIError("\(error)") }
            Log.logger.debug("\(name): MTU \(links.last!.mtu), MAC \(links.last!.macAddress)")
        }
        let engine = Engine(links: links, configuration: configuration, onLog: { line in Log.logger.info("\(line)") })
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
    // nil past 2⁶⁴ − 1, never a trap (issue 30: input reaches no trap).
    if let u = t.last.flatMap({ units[$0] }) {
        return UInt64(t.dropLast()).flatMap { n in
            let (v, over) = n.multipliedReportingOverflow(by: u)
            return over ? nil : v
        }
    }
    return UInt64(t)
}

/// Bytes as GB with three decimals, like aoe-stat ("137.439GB").
func gigabytes(_ bytes: UInt64) -> String {
    let mb = bytes / 1_000_000
    return "\(mb / 1000).\(String(format: "%03d", Int(mb % 1000)))GB"
}

func pad(_ s: String, _ width: Int) -> String {
    s.count >= width ? s : s + String(repeating: " ", count: width - s.count)
}

/// Every Ethernet interface that is up (what Linux's aoe uses when aoe_iflist is empty).
func allEthernetInterfaces() -> [String] {
    let names = (try? FileManager.default.contentsOfDirectory(atPath: "/sys/class/net")) ?? []
    return names.sorted().filter { n in
        let type = (try? String(contentsOfFile: "/sys/class/net/\(n)/type", encoding: .utf8))?.trimmingCharacters(
            in: .whitespacesAndNewlines)
        let flags =
            (try? String(contentsOfFile: "/sys/class/net/\(n)/flags", encoding: .utf8))
            .flatMap { UInt32($0.trimmingCharacters(in: .whitespacesAndNewlines).dropFirst(2), radix: 16) } ?? 0
        return type == "1" && flags & 1 != 0 && n != "lo"
    }
}

/// The bytes of a file (any kind: /dev/null, a pipe), as text; nil if it cannot be read.
func readWholeFile(_ path: String) -> String? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = retryingEINTR { chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) } }
        if n < 0 { return nil }
        if n == 0 { break }
        bytes += chunk[0..<n]
    }
    return String(decoding: bytes, as: UTF8.self)
}

/// The arguments this process was run with, after `AoEFS.main` rewrote mount.fuse3's form: what
/// a supervisor starts its daemon with (issue 30).
let invocation = Locked<[String]>([])

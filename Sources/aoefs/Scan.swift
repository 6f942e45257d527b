import AoECore
import AoEEngine
import AoEProtocol
import ArgumentParser
import Foundation

struct Scan: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the AoE targets that answer on the given interfaces.",
        discussion: """
            Broadcasts a Query Config, identifies every target that answers, negotiates the
            payload each path really carries (probing jumbo sizes), and prints one line per
            target. While it waits, each target is reported on stderr as it answers.

            Example:
              aoefs scan --iface eth1 --wait 3
            """)

    @OptionGroup var network: NetworkOptions

    @Option(help: "Seconds to wait for answers.")
    var wait: Double = 3

    @Flag(help: "Print one JSON document (an array of objects, numbers as numbers) instead of the table.")
    var json = false

    func validate() throws {
        guard wait.isFinite, wait > 0, wait <= 3600 else {
            throw ValidationError("--wait \(wait): expected 0 to 3600 seconds")
        }
    }

    func run() throws {
        let engine = try network.startEngine()
        defer { engine.shutdown() }
        // Wait the full time for stragglers, but stop early once targets have settled and a
        // second has passed with nothing new.
        let start = ContinuousClock.now
        var lastCount = -1
        var stableSince = ContinuousClock.now
        var reported = Set<TargetAddress>()
        while ContinuousClock.now - start < .milliseconds(Int64(wait * 1000)) {
            let ts = engine.targets()
            for t in ts where t.identity != nil && !reported.contains(t.address) {
                reported.insert(t.address)
                let elapsed = ContinuousClock.now - start
                let ms = elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000
                printErr(
                    "aoefs: \(t.address) answered on \(Set(t.paths.map(\.interface)).sorted().joined(separator: ",")) "
                        + "from \(t.paths.first?.mac.description ?? "?") after \(ms) ms: "
                        + "\(t.identity.map { gigabytes($0.capacity) } ?? "?"), \(t.identity?.model ?? "?")")
            }
            if ts.count != lastCount { lastCount = ts.count; stableSince = .now }
            let settled = ts.allSettled
            if settled && ContinuousClock.now - stableSince > .seconds(1) { break }
            // Wake when a target appears or is identified, when settledness changes, or (settled)
            // when the table has been stable for a second; at the latest at the end of the wait.
            let end = start + .milliseconds(Int64(wait * 1000))
            let until = settled ? min(end, stableSince + .milliseconds(1010)) : end
            let count = ts.count, identified = ts.filter { $0.identity != nil }.count
            engine.wait(timeout: until - ContinuousClock.now) { now in
                now.count != count || now.filter { $0.identity != nil }.count != identified || now.allSettled != settled
            }
        }
        let targets = engine.targets()
        if targets.isEmpty {
            printErr("aoefs: no AoE target answered on \(network.interfaces.joined(separator: ", ")) within \(wait) s")
            throw ExitCode(2)
        }
        if json { return print(jsonDocument(targets.map(Row.init))) }
        print(Self.table(targets))
    }

    /// One target for `--json`: the table's fields, numbers as numbers.
    struct Row: Encodable {
        var target: String
        var mac: String?
        var interfaces: [String]
        var bufcnt: Int?
        var payload: Int
        var firmware: Int?
        var size: UInt64?
        var state: String
        var model: String?

        init(_ t: TargetSnapshot) {
            target = t.address.description
            mac = (t.paths.first { $0.state.isHealthy } ?? t.paths.first)?.mac.description
            interfaces = Array(Set(t.paths.map(\.interface))).sorted()
            bufcnt = t.config.map { Int($0.bufferCount) }
            payload = t.payload
            firmware = t.config.map { Int($0.firmwareVersion) }
            size = t.identity?.capacity
            state = t.state.rawValue
            model = t.identity?.model
        }

        enum CodingKeys: String, CodingKey {
            case target, mac, interfaces, bufcnt, payload, firmware, size, state, model
        }

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(target, forKey: .target)
            try c.encode(mac, forKey: .mac)
            try c.encode(interfaces, forKey: .interfaces)
            try c.encode(bufcnt, forKey: .bufcnt)
            try c.encode(payload, forKey: .payload)
            try c.encode(firmware, forKey: .firmware)
            try c.encode(size, forKey: .size)
            try c.encode(state, forKey: .state)
            try c.encode(model, forKey: .model)
        }
    }

    static func table(_ targets: [TargetSnapshot]) -> String {
        let header = ["TARGET", "MAC", "INTERFACE", "BUFCNT", "PAYLOAD", "FIRMWARE", "SIZE", "STATE", "MODEL"]
        let rows = targets.map { t in
            [
                t.address.description, t.paths.first?.mac.description ?? "-",
                Array(Set(t.paths.map(\.interface))).sorted().joined(separator: ","),
                t.config.map { String($0.bufferCount) } ?? "-", String(t.payload),
                t.config.map { "0x" + String($0.firmwareVersion, radix: 16) } ?? "-",
                t.identity.map { gigabytes($0.capacity) } ?? "(NA)", t.state.rawValue, t.identity?.model ?? "-",
            ]
        }
        let widths = header.indices.map { i in ([header] + rows).map { $0[i].count }.max()! }
        return ([header] + rows).map { row in
            row.enumerated().map { i, cell in i == row.count - 1 ? cell : pad(cell, widths[i] + 2) }.joined()
        }.joined(separator: "\n")
    }
}

import AoECore
import AoEDoctor
import AoEProtocol
import ArgumentParser
import Foundation

/// Solaris `aoectl`'s verbs, through the mount's files like the other controls.
func parsePatterns(_ words: [String]) throws -> [TargetPattern] {
    try words.map { w in
        guard let p = TargetPattern(parsing: w) else {
            throw ValidationError("'\(w)' is not a target pattern (SHELF.SLOT, eSHELF.SLOT, SHELF or .SLOT)")
        }
        return p
    }
}

struct List: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the mount's targets: state, MAC, interface, payload (like Solaris aoectl list).",
        discussion: """
            A PATTERN is SHELF.SLOT, eSHELF.SLOT, SHELF (a whole shelf) or .SLOT (that slot
            on every shelf); an empty field is a wildcard. A pattern that matches nothing
            is an error. Disabled targets are listed too (state disabled).

            Examples:
              aoefs list
              aoefs list 10 .3 --json
            """)

    @OptionGroup var mount: MountOption

    @Argument(help: "Only the targets these patterns match.")
    var patterns: [String] = []

    @Flag(help: "Print one JSON document (an array of objects, numbers as numbers) instead of the table.")
    var json = false

    struct Row: Encodable {
        var target: String
        var state: String?
        var mac: String?
        var netif: String?
        var payload: Int?

        enum CodingKeys: String, CodingKey { case target, state, mac, netif, payload }
        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(target, forKey: .target)
            try c.encode(state, forKey: .state)
            try c.encode(mac, forKey: .mac)
            try c.encode(netif, forKey: .netif)
            try c.encode(payload, forKey: .payload)
        }
    }

    func run() throws {
        let wanted = try parsePatterns(patterns)
        let dir = mount.mountpoint
        try requireAoEFSMount(dir)
        // One read of sys/facts.json: the engine's targets, disabled ones too.
        let targets = try readFacts(dir).targets.compactMap { t in TargetAddress(parsing: t.target).map { (t, $0) } }
        for p in wanted where !targets.contains(where: { p.matches($0.1) }) {
            throw CLIError("no target matches '\(p)'")
        }
        let rows = targets.filter { a in wanted.isEmpty || wanted.contains { $0.matches(a.1) } }.map { t, _ in
            Row(
                target: t.target, state: t.status, mac: t.mac ?? "none",
                netif: TargetSnapshot.netif(t.interfaces), payload: t.payload)
        }
        if json { return print(jsonDocument(rows)) }
        let header = ["TARGET", "STATE", "MAC", "INTERFACE", "PAYLOAD"]
        let cells =
            [header]
            + rows.map {
                [
                    $0.target, $0.state ?? "(NA)", $0.mac ?? "(NA)", $0.netif ?? "(NA)",
                    $0.payload.map(String.init) ?? "(NA)",
                ]
            }
        let widths = header.indices.map { i in cells.map { $0[i].count }.max()! }
        for row in cells {
            print(row.enumerated().map { i, c in i == row.count - 1 ? c : pad(c, widths[i] + 2) }.joined())
        }
    }
}

/// `disable` and `enable`: one or more patterns, written to the control file of the same name.
protocol PatternVerb: ParsableCommand {
    var mount: MountOption { get }
    var patterns: [String] { get }
    static var controlFile: String { get }
}

extension PatternVerb {
    func validate() throws {
        if patterns.isEmpty { throw ValidationError("give at least one target pattern (e.g. 10.3)") }
        _ = try parsePatterns(patterns)
    }

    func run() throws { try writeControl(mount.mountpoint, Self.controlFile, patterns.joined(separator: " ")) }
}

struct Disable: PatternVerb {
    static let configuration = CommandConfiguration(
        abstract: "Disable targets: their images go, I/O to them fails, nothing is sent to them (aoectl disable).",
        discussion: """
            Writes the patterns to etherd/disable. Requests waiting for a disabled target
            fail with EIO at once, no frame goes to it, and discovery does not bring it
            back (a target that appears later and matches is disabled too). Its sys/
            directory stays, with state disabled. `aoefs enable` undoes it.

            Examples:
              aoefs disable 10.3
              aoefs disable 10          # all of shelf 10
            """)
    static let controlFile = "disable"

    @OptionGroup var mount: MountOption

    @Argument(help: "Target patterns: SHELF.SLOT, eSHELF.SLOT, SHELF or .SLOT.")
    var patterns: [String]
}

struct Enable: PatternVerb {
    static let configuration = CommandConfiguration(
        abstract: "Enable disabled targets again (aoectl enable).",
        discussion: """
            Writes the patterns to etherd/enable: the targets are asked for their config
            and identified again, and their images come back.

            Examples:
              aoefs enable 10.3
            """)
    static let controlFile = "enable"

    @OptionGroup var mount: MountOption

    @Argument(help: "Target patterns: SHELF.SLOT, eSHELF.SLOT, SHELF or .SLOT.")
    var patterns: [String]
}

struct Probe: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Send a targeted Query Config (aoectl probe).",
        discussion: """
            Writes the patterns to etherd/probe: a Query Config to the shelf and slot each
            names (a wildcard field goes to the broadcast address), everyone without a
            pattern.

            Examples:
              aoefs probe
              aoefs probe 10 .3
            """)

    @OptionGroup var mount: MountOption

    @Argument(help: "Target patterns: SHELF.SLOT, eSHELF.SLOT, SHELF or .SLOT.")
    var patterns: [String] = []

    func validate() throws { _ = try parsePatterns(patterns) }

    func run() throws { try writeControl(mount.mountpoint, "probe", patterns.joined(separator: " ")) }
}

import AoECore
import AoEDoctor
import AoELinux
import ArgumentParser
import Foundation

/// Where the aoetools-style commands find the tree: `--mount`, else $AOEFS_MOUNT, else /mnt/aoe.
struct MountOption: ParsableArguments {
    @Option(
        name: .customLong("mount"),
        help: ArgumentHelp("The aoefs mountpoint (default: $AOEFS_MOUNT or /mnt/aoe).", valueName: "DIR"))
    var path: String?

    var mountpoint: String { path ?? ProcessInfo.processInfo.environment["AOEFS_MOUNT"] ?? "/mnt/aoe" }
}

/// Checks that `dir` is an aoefs mount; the error says how to make one.
func requireAoEFSMount(_ dir: String) throws {
    let real = URL(fileURLWithPath: dir).resolvingSymlinksInPath().path
    let mounts = (try? String(contentsOfFile: "/proc/mounts", encoding: .utf8)) ?? ""
    let isOurs = mounts.split(separator: "\n").contains { line in
        let f = line.split(separator: " ")
        return f.count > 2 && f[1] == real && f[2] == "fuse.aoefs"
    }
    guard isOurs else { throw CLIError("\(dir): not an aoefs mount (mount one with: aoefs mount \(dir))") }
}

/// Writes `text` to a control file of the tree, as `echo text > DIR/etherd/NAME` would.
func writeControl(_ mountpoint: String, _ name: String, _ text: String) throws {
    try requireAoEFSMount(mountpoint)
    let path = mountpoint + "/etherd/" + name
    let fd = retryingEINTR { open(path, O_WRONLY) }
    guard fd >= 0 else { throw CLIError("\(path): \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    let bytes = Array((text + "\n").utf8)
    let n = bytes.withUnsafeBytes { b in retryingEINTR { write(fd, b.baseAddress, b.count) } }
    guard n == bytes.count else {
        let why = n < 0 ? String(cString: strerror(errno)) : "short write"
        throw CLIError("\(name) '\(text)': \(why) (details: cat \(mountpoint)/etherd/err)")
    }
}

/// Reads a small file of the tree, trimmed; nil if it cannot be read.
func readTreeFile(_ path: String) -> String? {
    guard let s = readWholeFile(path) else { return nil }
    let t = s.trimmingCharacters(in: .whitespacesAndNewlines)
    return t.isEmpty ? nil : t
}

/// What the mount's engine knows now (`sys/facts.json`, typed as `EngineFacts`): the one
/// source of `stat`, `list`, `iostat` and `doctor` on a mount. One read, however many targets.
func readFacts(_ mountpoint: String) throws -> EngineFacts {
    let path = mountpoint + "/sys/" + EngineFacts.fileName
    guard let text = readWholeFile(path) else { throw CLIError("\(path): cannot be read") }
    do { return try EngineFacts.decode(text) } catch {
        throw CLIError("\(path): not what this aoefs writes (\(error)); is the mount's daemon another version?")
    }
}

struct Stat: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print aoe-stat's table: device, size, interfaces, payload, state.",
        discussion: """
            One line per target of an aoefs mount, in aoe-stat's columns and widths, sorted
            by shelf and slot. "(NA)" marks what is not known (yet). REGEX keeps only
            devices it matches, like aoe-stat's argument.

            Examples:
              aoefs stat                      # the mount at /mnt/aoe
              aoefs stat /mnt/aoe 'e10\\.'     # shelf 10 only
            """)

    @Argument(help: "The aoefs mountpoint (default: $AOEFS_MOUNT or /mnt/aoe).")
    var mountpoint: String?

    @Argument(help: "Show only devices whose name matches this regular expression.")
    var regex: String?

    @Flag(
        help:
            "Print one JSON document (an array of objects, numbers as numbers, null for what is not known) instead of the table, like lsblk -J."
    )
    var json = false

    func run() throws {
        var dir = mountpoint ?? ProcessInfo.processInfo.environment["AOEFS_MOUNT"] ?? "/mnt/aoe"
        var pattern = regex
        // `aoefs stat REGEX` alone, as with aoe-stat, when the one argument is not a directory.
        if regex == nil, let m = mountpoint, !FileManager.default.fileExists(atPath: m) {
            pattern = m
            dir = ProcessInfo.processInfo.environment["AOEFS_MOUNT"] ?? "/mnt/aoe"
        }
        try requireAoEFSMount(dir)
        let filter: NSRegularExpression?
        do { filter = try pattern.map { try NSRegularExpression(pattern: $0) } } catch {
            throw CLIError("'\(pattern ?? "")' is not a regular expression")
        }
        // The engine's facts, which also has the disabled targets (their images are gone):
        // one read of sys/facts.json for the whole table.
        let all = try readFacts(dir).targets.filter { t in
            filter.map { $0.firstMatch(in: t.target, range: NSRange(t.target.startIndex..., in: t.target)) != nil }
                ?? true
        }.map(Row.init)
        if json { return print(jsonDocument(all)) }
        for r in all { print(r.line) }
    }

    /// One target of the table; nil ("(NA)") for a size not known yet.
    struct Row: Encodable {
        var device: String
        /// Bytes.
        var size: UInt64?
        var netif: String?
        var payload: Int?
        var state: String?

        enum CodingKeys: String, CodingKey { case device, size, netif, payload, state }

        /// The row of one target: what the engine knows, as `sys/eS.L/` shows it.
        init(_ t: TargetFacts) {
            device = t.target
            size = t.capacity > 0 ? t.capacity : nil
            netif = TargetSnapshot.netif(t.interfaces)
            payload = t.payload
            state = t.status
        }

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(device, forKey: .device)
            try c.encode(size, forKey: .size)  // null when not known: every object has every key
            try c.encode(netif, forKey: .netif)
            try c.encode(payload, forKey: .payload)
            try c.encode(state, forKey: .state)
        }

        /// aoe-stat's `"%10s %15s %10s %-5s %-14s"`: size is sectors × 512 / 10⁶ as `%04d` with a
        /// point before the last three digits, plus "GB"; "(NA)" for what is not known.
        var line: String {
            var sizeText = "(NA)"
            if let size, size > 0 {
                let mb = String(format: "%04llu", size / 1_000_000)
                sizeText = String(mb.dropLast(3)) + "." + String(mb.suffix(3)) + "GB"
            }
            func right(_ s: String, _ w: Int) -> String { String(repeating: " ", count: max(0, w - s.count)) + s }
            func left(_ s: String, _ w: Int) -> String { s + String(repeating: " ", count: max(0, w - s.count)) }
            return "\(right(device, 10)) \(right(sizeText, 15)) \(right(netif ?? "(NA)", 10)) "
                + "\(left(payload.map(String.init) ?? "(NA)", 5)) \(left(state ?? "(NA)", 14))"
        }
    }
}

/// One JSON document for `--json`, keys sorted. Types that want `null` for what is not known
/// (instead of leaving the key out) encode their optionals with `encode`, not `encodeIfPresent`.
func jsonDocument<T: Encodable>(_ value: T) -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
    guard let data = try? encoder.encode(value) else { return "[]" }
    return String(decoding: data, as: UTF8.self)
}

struct Discover: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Ask the network for AoE targets again (like aoe-discover).",
        discussion: """
            Writes to etherd/discover of the mount: a broadcast Query Config, or one aimed
            at a shelf (10) or a target (10.3). New targets appear as files within a second
            or two.

            Examples:
              aoefs discover
              aoefs discover 10.3 --mount /mnt/aoe
            """)

    @OptionGroup var mount: MountOption

    @Argument(help: "Only this shelf (10) or target (10.3).")
    var target: String?

    func run() throws { try writeControl(mount.mountpoint, "discover", target ?? "") }
}

struct Interfaces: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show or set the interfaces aoefs may use (like aoe-interfaces).",
        discussion: """
            Without arguments, prints the allow-list (empty: every Ethernet interface).
            With interface names, only those carry AoE from now on; --all lifts the
            restriction. An interface that does not exist is refused.

            Examples:
              aoefs interfaces
              aoefs interfaces eth1 eth3
              aoefs interfaces --all
            """)

    @OptionGroup var mount: MountOption

    @Flag(help: "Use every Ethernet interface again.")
    var all = false

    @Argument(help: "Interfaces to allow.")
    var names: [String] = []

    func validate() throws {
        if all && !names.isEmpty { throw ValidationError("give interfaces or --all, not both") }
    }

    func run() throws {
        let m = mount.mountpoint
        if names.isEmpty && !all {
            try requireAoEFSMount(m)
            let list = readTreeFile(m + "/etherd/interfaces") ?? ""
            print(list.isEmpty ? "(all Ethernet interfaces)" : list)
            return
        }
        try writeControl(m, "interfaces", names.joined(separator: " "))
    }
}

struct Revalidate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Re-query a target's config and size and renegotiate its payload (like aoe-revalidate).",
        discussion: """
            Use it after growing a target's backing file or changing the network's MTU.

            Example:
              aoefs revalidate e10.3
            """)

    @OptionGroup var mount: MountOption

    @Argument(help: "Targets, as eS.L.")
    var targets: [String]

    func validate() throws {
        if targets.isEmpty { throw ValidationError("name a target, e.g. e10.3") }
    }

    func run() throws {
        for t in targets { try writeControl(mount.mountpoint, "revalidate", t) }
    }
}

struct Flush: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Forget targets (like aoe-flush): down and unused ones, all, or those named.",
        discussion: """
            Without arguments, drops targets that are down and not open. -a drops every
            target that is not open. Named targets are dropped if not open. They come back
            when they answer a discovery.

            Examples:
              aoefs flush
              aoefs flush -a
              aoefs flush e10.3 e10.4
            """)

    @OptionGroup var mount: MountOption

    @Flag(name: .short, help: "All targets that are not open, not only those that are down.")
    var all = false

    @Argument(help: "Targets, as eS.L.")
    var targets: [String] = []

    func validate() throws {
        if all && !targets.isEmpty { throw ValidationError("give -a or targets, not both") }
    }

    func run() throws {
        if targets.isEmpty { return try writeControl(mount.mountpoint, "flush", all ? "all" : "") }
        for t in targets { try writeControl(mount.mountpoint, "flush", t) }
    }
}

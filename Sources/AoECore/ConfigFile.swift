import AoEProtocol

/// A mistake in the configuration file, with where it is.
public struct ConfigFileError: Error, Hashable, CustomStringConvertible {
    public let path: String
    /// 1-based; 0 when the file as a whole is the problem (cannot be read).
    public let line: Int
    public let message: String

    public var description: String { line > 0 ? "\(path):\(line): \(message)" : "\(path): \(message)" }
}

/// `/etc/aoefs.conf` (DESIGN §6, the Solaris `aoe.conf` idea): `key = value` lines, `#`
/// comments, and sections for one interface or one target.
///
/// ```
/// interfaces = eth1 eth3      # the allow-list (absent: every Ethernet interface)
/// deadsecs = 180
/// maxout = 128
/// maxdata = 8704
/// mtu = 9000
/// maxpaths = 8                # paths per target per interface (Linux NTARGETS)
/// busy_poll = 50              # microseconds of polling before the receive thread sleeps
///
/// [interface eth1]
/// mtu = 9000                  # what the switches between us and the targets carry
/// maxdata = 8192
///
/// [target e10.3]
/// timeout = 30                # seconds before this target is declared down (its deadsecs)
/// maxout = 16
/// maxdata = 4096
/// ```
/// Command-line flags win over the file.
public struct AoEConfigFile: Sendable, Hashable {
    public var interfaces: [String]?
    public var deadsecs: Int?
    public var maxOutstanding: Int?
    public var maxPayload: Int?
    public var mtu: Int?
    public var maxPaths: Int?
    /// `busy_poll`, in microseconds.
    public var busyPoll: Int?
    public var interfaceSettings: [String: InterfaceOverrides] = [:]
    public var targetSettings: [TargetAddress: TargetOverrides] = [:]

    public static let defaultPath = "/etc/aoefs.conf"

    public init() {}

    /// Parses the text of a configuration file; `path` is used in error messages.
    public init(parsing text: String, path: String) throws(ConfigFileError) {
        enum Section { case global, interface(String), target(TargetAddress) }
        var section = Section.global
        var seen: [String: Int] = [:]  // "section/key" → line, to refuse a key given twice
        for (i, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let n = i + 1
            func fail(_ m: String) -> ConfigFileError { ConfigFileError(path: path, line: n, message: m) }
            var line = Substring(raw)
            if let hash = line.firstIndex(of: "#") { line = line[..<hash] }
            let text = line.trimmingWhitespace()
            if text.isEmpty { continue }
            if text.hasPrefix("[") {
                guard text.hasSuffix("]") else { throw fail("a section header must end with ']'") }
                let words = text.dropFirst().dropLast().split(separator: " ", omittingEmptySubsequences: true)
                switch (words.first.map(String.init), words.count) {
                case ("interface", 2):
                    section = .interface(String(words[1]))
                case ("target", 2):
                    guard let t = TargetAddress(parsing: words[1]) else {
                        throw fail("'\(words[1])' is not a target (expected eS.L, e.g. e10.3)")
                    }
                    section = .target(t)
                default:
                    throw fail("unknown section \(text) (expected [interface NAME] or [target eS.L])")
                }
                continue
            }
            guard let eq = text.firstIndex(of: "=") else {
                throw fail("expected 'key = value', '[interface NAME]' or '[target eS.L]', got '\(text)'")
            }
            let key = String(text[..<eq]).trimmingWhitespace()
            let value = String(text[text.index(after: eq)...]).trimmingWhitespace()
            let scope: String
            switch section {
            case .global: scope = "global"
            case .interface(let name): scope = "interface \(name)"
            case .target(let t): scope = "target \(t)"
            }
            if let first = seen[scope + "/" + key] { throw fail("'\(key)' is set twice (first on line \(first))") }
            seen[scope + "/" + key] = n

            func number(_ least: Int, _ most: Int = Int.max, _ what: String) throws(ConfigFileError) -> Int {
                guard let v = Int(value), v >= least, v <= most else {
                    throw fail("\(key): expected \(what), got '\(value)'")
                }
                return v
            }
            func payload() throws(ConfigFileError) -> Int {
                let v = try number(512, 65536, "a multiple of 512 bytes (512, 1024, … 8704)")
                guard v % 512 == 0 else { throw fail("\(key): expected a multiple of 512 bytes, got '\(value)'") }
                return v
            }
            let mtuRange = "an MTU from 534 to 65535 (one sector plus the 22 header bytes, at least)"
            switch (section, key) {
            case (.global, "interfaces"):
                interfaces = value.split(whereSeparator: { $0 == " " || $0 == "," || $0 == "\t" }).map(String.init)
            case (.global, "deadsecs"), (.global, "timeout"): deadsecs = try number(0, 86400, "seconds (0 = never)")
            case (.global, "maxout"): maxOutstanding = try number(1, 65535, "a count of frames ≥ 1")
            case (.global, "maxdata"): maxPayload = try payload()
            case (.global, "mtu"): mtu = try number(534, 65535, mtuRange)
            case (.global, "maxpaths"): maxPaths = try number(1, 64, "a count of paths from 1 to 64")
            case (.global, "busy_poll"): busyPoll = try number(0, 10000, "microseconds from 0 (off) to 10000")
            case (.global, _):
                throw fail(
                    "unknown key '\(key)' (expected interfaces, deadsecs, maxout, maxdata, mtu, maxpaths or busy_poll)")
            case (.interface(let name), "mtu"):
                interfaceSettings[name, default: .init()].mtu = try number(534, 65535, mtuRange)
            case (.interface(let name), "maxdata"): interfaceSettings[name, default: .init()].maxPayload = try payload()
            case (.interface, _):
                throw fail("unknown key '\(key)' in [\(scope)] (expected mtu or maxdata)")
            case (.target(let t), "timeout"), (.target(let t), "deadsecs"):
                targetSettings[t, default: .init()].deadsecs = try number(0, 86400, "seconds (0 = never)")
            case (.target(let t), "maxout"):
                targetSettings[t, default: .init()].maxOutstanding = try number(1, 65535, "a count of frames ≥ 1")
            case (.target(let t), "maxdata"): targetSettings[t, default: .init()].maxPayload = try payload()
            case (.target, _):
                throw fail("unknown key '\(key)' in [\(scope)] (expected timeout, maxout or maxdata)")
            }
        }
    }

    /// Reads and parses `path`.
    public static func load(path: String, read: (String) -> String?) throws(ConfigFileError) -> AoEConfigFile {
        guard let text = read(path) else { throw ConfigFileError(path: path, line: 0, message: "cannot be read") }
        return try AoEConfigFile(parsing: text, path: path)
    }

    /// Puts the file's settings into `c` (before the command line's flags are applied).
    public func apply(to c: inout EngineConfiguration) {
        if let v = deadsecs { c.deadsecs = v }
        if let v = maxOutstanding { c.maxOutstanding = v }
        if let v = maxPayload { c.maxPayload = v }
        if let v = mtu { c.mtu = v }
        if let v = maxPaths { c.maxPathsPerInterface = v }
        if let v = busyPoll { c.busyPoll = .microseconds(v) }
        c.interfaces.merge(interfaceSettings) { _, new in new }
        c.targets.merge(targetSettings) { _, new in new }
    }
}

extension StringProtocol {
    func trimmingWhitespace() -> String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" || f == "\r" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" || l == "\r" { s = s.dropLast() }
        return String(s)
    }
}

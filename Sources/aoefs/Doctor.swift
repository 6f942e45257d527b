import AoECore
import AoEDoctor
import AoEEngine
import AoELinux
import ArgumentParser
import Foundation

struct Doctor: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check the SAN end to end and say how to fix what is wrong.",
        discussion: """
            With a mount (--mount, $AOEFS_MOUNT or /mnt/aoe, if mounted) it reads
            the mount's sys/metrics and etherd/interfaces; otherwise it runs its own
            short discovery on --iface and sends each path a burst of Buffer Count
            full-size frames (padded reads: nothing is written). Then it listens for
            a moment on every interface (read only) and checks, for each interface
            and target: the
            frame size that really crosses each path against both ends' MTU, targets
            that lose frames below their Buffer Count, socket buffers, targets
            missing on some interfaces, two disks with one shelf.slot, announcers
            that never answer IDENTIFY, AoE on interfaces aoefs does not use, IP on
            AoE interfaces, durability (write cache and FLUSH), RTT per path, and
            FUSE over io_uring. Each finding names the command that fixes it.

            Exit status: 0 nothing wrong, 1 warnings, 2 errors.

            Examples:
              aoefs doctor                      # the mount at /mnt/aoe
              aoefs doctor --iface eth1 --iface eth2
              aoefs doctor --json | jq '.findings[] | select(.severity != "info")'
            """)

    @OptionGroup var network: NetworkOptions

    @Option(
        name: .customLong("mount"),
        help: ArgumentHelp(
            "Examine this aoefs mount (default: $AOEFS_MOUNT or /mnt/aoe, when mounted; else run a discovery on --iface).",
            valueName: "DIR"))
    var mountpoint: String?

    @Option(
        help:
            "Without a mount: the most seconds to wait for every path's payload search, Buffer Count burst and identity proof to settle (doctor goes on as soon as all have); what has not settled by then is reported as pending."
    )
    var wait: Double = Self.defaultWait

    /// Long enough for a path that black-holes jumbo frames to be found (its search tries each
    /// size twice; about 3 s here) with a wide margin; a clean lab settles in well under a second.
    static let defaultWait: Double = 20
    /// How long each interface is listened on for foreign AoE and IP.
    static let listenTime: Duration = .seconds(2)

    @Option(
        name: .customLong("listen"),
        help: ArgumentHelp(
            "Listen on this interface for foreign AoE and IP (repeat; default: every Ethernet interface that is up).",
            valueName: "IF"))
    var listenOn: [String] = []

    @Flag(help: "Also print what is fine (RTT, durability, identity).")
    var all = false

    @Flag(help: "Print one JSON document: {\"status\": N, \"findings\": [{severity, subject, check, message, fix}]}.")
    var json = false

    func validate() throws {
        guard wait.isFinite, wait > 0 && wait <= 300 else {
            throw ValidationError("--wait must be between 0 and 300 seconds")
        }
    }

    /// The mount to examine, if any.
    func mount() throws -> String? {
        if let m = mountpoint {
            try requireAoEFSMount(m)
            return m
        }
        if !network.interfaces.isEmpty { return nil }
        let m = ProcessInfo.processInfo.environment["AOEFS_MOUNT"] ?? "/mnt/aoe"
        return (try? requireAoEFSMount(m)) != nil ? m : nil
    }

    func run() throws {
        var host = HostFacts()
        let facts: EngineFacts
        let allowList: [String]
        if let m = try mount() {
            host.mounted = true
            facts = try readFacts(m)
            allowList = (readTreeFile(m + "/etherd/interfaces") ?? "").split(separator: " ").map(String.init)
        } else {
            let engine = try network.startEngine(defaultToAllEthernet: true, searchWhileProving: true)
            defer { engine.shutdown() }
            let start = ContinuousClock.now
            let limit = Duration.milliseconds(Int64(wait * 1000))
            // Until every path's payload search and identity proof is over (issue 31: a verdict
            // made before that depended on a race), at least 500 ms (targets that answer late).
            // In slices: the engine wakes a waiter on its own changes, and the 500 ms pass is none.
            while case let left = limit - (ContinuousClock.now - start), left > .zero {
                let elapsed = ContinuousClock.now - start
                if engine.wait(timeout: min(left, .milliseconds(100)), until: { Self.settled($0, after: elapsed) }),
                    ContinuousClock.now - start >= .milliseconds(500)
                {
                    break
                }
            }
            // A burst of full-size frames, Buffer Count of them at once, on every path: does the
            // target queue what it offers? (Padded READs: nothing is written.)
            for t in engine.targets() where t.state == .up { engine.burst(t.address) }
            let left = max(limit - (ContinuousClock.now - start), .seconds(1))
            _ = engine.wait(timeout: left) { ts in
                ts.allSatisfy { $0.paths.allSatisfy { $0.burst?.isComplete ?? true } }
            }
            host.waited = ContinuousClock.now - start
            for t in engine.targets() {
                for p in t.paths where !(p.burst?.isComplete ?? true) {
                    host.pending.append(
                        PendingFact(
                            subject: "\(t.address) \(p.interface)→\(p.mac)",
                            what: "the Buffer Count burst (\(p.burst?.sent ?? 0) frames) is not back"))
                }
            }
            facts = EngineFacts(engine)
            allowList = engine.allowedInterfaces
        }
        let targets = facts.targets
        // The interfaces aoefs uses: its links, within the allow-list if one is set.
        let links = facts.links.map(\.name)
        let allowed = allowList.isEmpty ? links : links.filter(allowList.contains)
        host.interfaces = Self.interfaces(
            listenOn.isEmpty ? allEthernetInterfaces() : listenOn, allowed: Set(allowed),
            links: facts.links, listen: Self.listenTime)
        host.rmemMax = Int(readTreeFile("/proc/sys/net/core/rmem_max") ?? "") ?? 0
        host.wmemMax = Int(readTreeFile("/proc/sys/net/core/wmem_max") ?? "") ?? 0
        host.fuseUring = readTreeFile("/sys/module/fuse/parameters/enable_uring").map { $0 == "Y" || $0 == "1" }
        let findings = Diagnosis.run(targets: targets, host: host)
        let status = Diagnosis.status(findings)
        if json {
            struct Report: Encodable {
                var status: Int32
                var findings: [Finding]
            }
            let e = JSONEncoder()
            e.outputFormatting = [.sortedKeys]
            print(String(decoding: try e.encode(Report(status: status, findings: findings)), as: UTF8.self))
        } else {
            print(Self.text(findings, targets: targets, host: host, all: all), terminator: "")
        }
        if status != 0 { throw ExitCode(status) }
    }

    /// Every target identified and every path past its payload search and IDENTIFY. (Not the
    /// identity proof: a write proves a second path, and doctor writes nothing; a path still
    /// proving is reported as pending.)
    /// A target that answers Query Config and not IDENTIFY stops counting after
    /// `identifyGrace` (its three IDENTIFYs are over by then; the `identify` check reports it).
    static func settled(_ targets: [TargetSnapshot], after elapsed: Duration) -> Bool {
        let counted = targets.filter { $0.identity != nil || elapsed < identifyGrace }
        return !targets.isEmpty
            && counted.allSatisfy { t in
                t.isSettled && t.paths.allSatisfy { $0.state != .candidate && $0.searchSettled }
            }
    }

    static let identifyGrace: Duration = .seconds(3)

    /// The report for people: problems first, worst first, each with its fix.
    static func text(_ findings: [Finding], targets: [TargetFacts], host: HostFacts, all: Bool) -> String {
        // Information is shown with --all, or when it comes with a fix (a tip).
        let shown = findings.filter { all || $0.severity != .info || $0.fix != nil }.sorted {
            $0.severity > $1.severity
        }
        var out = ""
        for f in shown {
            let label = f.severity == .info ? (f.fix == nil ? "ok" : "tip") : f.severity.rawValue
            out +=
                "\(label.uppercased().padding(toLength: 8, withPad: " ", startingAt: 0))"
                + "\(f.subject): \(f.message)\n"
            if let fix = f.fix { out += "        fix: \(fix)\n" }
        }
        let paths = targets.map(\.paths.count).reduce(0, +)
        let problems = findings.filter { $0.severity != .info }.count
        out +=
            problems == 0
            ? "no problems found: \(targets.count) target(s), \(paths) path(s), \(host.interfaces.filter(\.allowed).count) interface(s)\n"
            : "\(problems) problem(s) in \(targets.count) target(s), \(paths) path(s)\n"
        return out
    }

    /// Every Ethernet interface that is up: MTU, addresses, and what a moment of listening heard.
    static func interfaces(_ listening: [String], allowed: Set<String>, links: [LinkFacts], listen: Duration)
        -> [InterfaceFacts]
    {
        let names = Array(Set(listening).union(allowed)).sorted()
        let addresses = ipAddresses()
        var out: [InterfaceFacts] = []
        // Listen on all at once: one thread each.
        let heard = Locked<[String: ([SegmentListener.Speaker], Int)]>([:])
        let group = DispatchGroup()
        for n in names where listening.contains(n) || allowed.contains(n) {
            DispatchQueue.global().async(group: group) {
                if let r = try? SegmentListener.listen(on: n, for: listen) {
                    heard.withLock { $0[n] = (r.speakers, r.ipFrames) }
                }
            }
        }
        group.wait()
        let got = heard.withLock { $0 }
        for n in names {
            let mtu = Int(readTreeFile("/sys/class/net/\(n)/mtu") ?? "") ?? 0
            var i = InterfaceFacts(
                name: n, mtu: mtu, up: readTreeFile("/sys/class/net/\(n)/operstate") != "down",
                allowed: allowed.contains(n))
            i.ipAddresses = addresses[n] ?? []
            if let (speakers, ip) = got[n] {
                i.ipFramesHeard = ip
                i.aoeHeard = speakers.map { "\($0.isTarget ? "target" : "initiator") \($0.mac) (\($0.target))" }
            }
            i.receiveBuffer = links.first { $0.name == n }?.receiveBuffer ?? 0
            out.append(i)
        }
        return out
    }

    /// Addresses other than link-local ones, by interface (`ip -o addr`).
    static func ipAddresses() -> [String: [String]] {
        guard let text = try? Command.run(["ip", "-o", "addr", "show"]) else { return [:] }
        var out: [String: [String]] = [:]
        for line in text.split(separator: "\n") {
            let f = line.split(separator: " ")
            guard f.count > 3, f[2] == "inet" || f[2] == "inet6" else { continue }
            let name = String(f[1].split(separator: "@").first ?? f[1])
            if line.contains("scope link") || line.contains("scope host") { continue }
            out[name, default: []].append(String(f[3]))
        }
        return out
    }
}

import AoECore

/// One thing `aoefs doctor` found: how bad, about what, what it means, and the exact command or
/// setting that fixes it.
public struct Finding: Sendable, Hashable, Codable {
    public enum Severity: String, Sendable, Hashable, Codable, Comparable {
        case info, warning, error
        public static func < (a: Severity, b: Severity) -> Bool { a.rank < b.rank }
        var rank: Int { self == .info ? 0 : self == .warning ? 1 : 2 }
    }

    public var severity: Severity
    /// What it is about: a target (`e10.3`), a path (`e10.3 eth1→00:11:22:33:44:55`), an
    /// interface, `host` or `fuse`.
    public var subject: String
    /// A short name of the check (`jumbo`, `mtu-mismatch`, `overrun`, …), for scripts.
    public var check: String
    public var message: String
    /// The command or setting that fixes it; nil for information.
    public var fix: String?

    public init(_ severity: Severity, _ subject: String, _ check: String, _ message: String, fix: String? = nil) {
        self.severity = severity
        self.subject = subject
        self.check = check
        self.message = message
        self.fix = fix
    }
}

/// The SAN check: findings from what the targets' metrics and the host say. Pure; gathering
/// the facts is the CLI's job.
public enum Diagnosis {
    /// The largest payload an MTU carries, in whole sectors (the engine's own rule).
    public static func payload(fitting mtu: Int) -> Int { maximumPayload(forMTU: mtu) }

    /// Exit status: 0 clean, 1 warnings, 2 errors.
    public static func status(_ findings: [Finding]) -> Int32 {
        let worst = findings.map(\.severity).max() ?? .info
        return worst == .error ? 2 : worst == .warning ? 1 : 0
    }

    public static func run(targets: [TargetFacts], host: HostFacts) -> [Finding] {
        var out: [Finding] = []
        let allowed = host.interfaces.filter { $0.allowed }
        if targets.isEmpty {
            let names = allowed.map(\.name).joined(separator: ", ")
            out.append(
                Finding(
                    .error, "host", "no-targets",
                    "no AoE target answered on \(names.isEmpty ? "any interface" : names)",
                    fix: "check that the target runs (vblade SHELF SLOT IFACE FILE) on the same segment, "
                        + "and the interface list: aoefs doctor --iface IFACE"))
        }
        for t in targets { out += target(t, host: host, allowed: allowed) }
        out += hostChecks(targets, host: host)
        for p in host.pending { out.append(pending(p.subject, p.what, host: host)) }
        return out
    }

    /// Something that had not settled when the report was made (issue 31): never silence, a
    /// warning that says what and how long doctor waited — a verdict must not depend on a race.
    static func pending(_ subject: String, _ what: String, host: HostFacts) -> Finding {
        let waited = host.waited.map { ", after \(format1(Double($0.nanoseconds) / 1e9)) s" } ?? ""
        return Finding(
            .warning, subject, "pending", "\(what)\(waited): this report cannot say yet what it finds there",
            fix: host.mounted
                ? "run aoefs doctor again in a minute (the mount is still finding out)"
                : "run aoefs doctor again with a longer --wait (e.g. --wait 60)")
    }

    static func target(_ t: TargetFacts, host: HostFacts, allowed: [InterfaceFacts]) -> [Finding] {
        var out: [Finding] = []
        let name = t.target
        if t.state == .identifying && t.model.isEmpty {
            out.append(
                Finding(
                    .warning, name, "identify",
                    "\(name) answers Query Config but not IDENTIFY: it has no image",
                    fix: "check the target's backing device and its log; then: aoefs revalidate \(name)"))
        }
        if t.state == .down {
            out.append(
                Finding(
                    .error, name, "down", "\(name) is down: it stopped answering",
                    fix: "restart the target or reconnect its link; aoefs brings it back when it answers"))
        }
        let refused = t.paths.filter { $0.state == .duplicate }
        if t.duplicates > 0 || !refused.isEmpty {
            let used = t.paths.filter { $0.state.isHealthy }.map(\.mac)
            out.append(
                Finding(
                    .error, name, "duplicate",
                    "two disks answer as \(name): \(used.joined(separator: ",")) is used, "
                        + "\(refused.map(\.mac).joined(separator: ",")) is another disk and refused",
                    fix: "give one of them another shelf.slot (on a vblade host: vblade SHELF SLOT IFACE FILE "
                        + "with a free SHELF SLOT)"))
        }
        if t.candidatesDropped > 0 {
            out.append(
                Finding(
                    .warning, name, "candidates",
                    "\(t.candidatesDropped) MAC(s) announced \(name) but never answered IDENTIFY",
                    fix: "find the box that announces \(name) (tcpdump -e -i IFACE ether proto 0x88a2) and "
                        + "stop it or give it another address"))
        }
        // Durability.
        if !t.model.isEmpty {
            if t.writeCache && t.flush == .none {
                out.append(
                    Finding(
                        .error, name, "durability",
                        "\(name) has a write cache but takes no FLUSH CACHE: fsync does not reach stable storage",
                        fix: "turn the target's write cache off (hdparm -W0 DEVICE on its host) or serve it "
                            + "with synchronous writes (vblade -s)"))
            } else {
                out.append(
                    Finding(
                        .info, name, "durability",
                        t.writeCache
                            ? "write cache on; fsync sends FLUSH CACHE (\(t.flush))"
                            : "no write cache: acknowledged writes are on stable storage"))
            }
            out.append(
                Finding(
                    .info, name, "identity",
                    "model \(t.model), serial \(t.serial), firmware \(t.firmware), "
                        + "Buffer Count \(t.bufferCount), \(t.maxPayload)-byte frames offered"))
        }
        // Multipath asymmetry: reachable on some allowed interfaces and not on others.
        let on = Set(t.paths.filter { $0.state != .duplicate }.map(\.interface))
        let upAllowed = allowed.filter(\.up).map(\.name)
        let missing = upAllowed.filter { !on.contains($0) }
        if !on.isEmpty && !missing.isEmpty && upAllowed.count > 1 {
            out.append(
                Finding(
                    .warning, name, "multipath",
                    "\(name) answers on \(on.sorted().joined(separator: ",")) but not on "
                        + "\(missing.joined(separator: ","))",
                    fix: missing.map { "check \($0)'s cable, VLAN and MTU to the target: aoefs scan --iface \($0)" }
                        .joined(separator: "; ")))
        }
        for p in t.paths where p.state != .duplicate { out += path(p, of: t, host: host) }
        return out
    }

    static func path(_ p: PathFacts, of t: TargetFacts, host: HostFacts = HostFacts()) -> [Finding] {
        var out: [Finding] = []
        let subject = "\(t.target) \(p.interface)→\(p.mac)"
        switch p.state {
        case .probing:
            out.append(
                pending(
                    subject,
                    "the payload search is not over (\(p.payload)-byte frames so far, "
                        + "\(t.maxPayload > 0 ? "\(t.maxPayload) offered" : "more may cross"))", host: host))
        case .proving:
            // Proved by a write seen through both paths (IdentityProof): doctor writes nothing.
            out.append(
                pending(
                    subject,
                    "two MACs answer as \(t.target); not yet proven one disk (the first write "
                        + "through the mount proves it)"
                        + (p.searchSettled
                            ? "" : "; the payload search on it is not over (\(p.payload)-byte frames so far)"),
                    host: host))
        case .candidate where !t.model.isEmpty:
            // (A target that never answered IDENTIFY at all has the `identify` finding instead.)
            out.append(pending(subject, "\(p.mac) announced \(t.target) and has not answered IDENTIFY yet", host: host))
        default: break
        }
        let local = payload(fitting: p.mtu)
        let offer = t.maxPayload
        let expected = min(local, offer > 0 ? offer : local)
        // A path still proving one disk has searched its payload too (reads only): its result counts.
        let searched = p.state == .ok || (p.state == .proving && p.searchSettled)
        if searched && p.payload > 0 && p.payload < expected {
            out.append(
                Finding(
                    .warning, subject, "jumbo",
                    "\(expected)-byte frames do not cross this path (both ends take them); it carries "
                        + "\(p.payload): a switch port or NIC between has a smaller MTU",
                    fix: "raise the MTU of every switch port on this path to \(p.mtu) (and the target's NIC: "
                        + "ip link set dev IFACE mtu \(p.mtu)), then: aoefs revalidate \(t.target)"))
        }
        if offer > 0 && local > 0 && offer != local {
            // The usual MTU that carries just the target's offer (1500 for 1024-byte frames).
            let targetMTU =
                [1500, 9000].first { payload(fitting: $0) == offer } ?? offer + aoeFrameOverhead
            if offer < local {
                out.append(
                    Finding(
                        .warning, subject, "mtu-mismatch",
                        "\(p.interface) has MTU \(p.mtu) but \(t.target) offers only \(offer)-byte frames "
                            + "(its MTU is \(targetMTU) or close): the ends differ",
                        fix: "on the target: ip link set dev IFACE mtu \(p.mtu) and restart it (vblade reads its "
                            + "MTU at start); or here, to match it: ip link set dev \(p.interface) mtu \(targetMTU)"))
            } else {
                out.append(
                    Finding(
                        .warning, subject, "mtu-mismatch",
                        "\(t.target) offers \(offer)-byte frames but \(p.interface) has MTU \(p.mtu): "
                            + "the ends differ",
                        fix: "ip link set dev \(p.interface) mtu \(targetMTU) (and every switch port between)"))
            }
        }
        let carries = p.state.isHealthy
        let learned = p.ceiling > 0 && t.bufferCount > 0 && p.ceiling <= t.bufferCount
        if carries && (learned || p.burstLost > 0) {
            let holds = learned ? max(1, p.ceiling - 1) : max(1, p.burstSent - p.burstLost)
            let seen =
                learned
                ? "lost frames with \(p.ceiling) in flight"
                : "lost \(p.burstLost) of a burst of \(p.burstSent) full-size frames"
            out.append(
                Finding(
                    .warning, subject, "overrun",
                    "\(t.target) offers Buffer Count \(t.bufferCount) but \(seen): it queues about \(holds); "
                        + "aoefs keeps its window below that",
                    // vblade asks for a 48000-byte receive buffer itself (ss -0 -m: rb48000), so
                    // only its count helps; rmem_max caps what any target may ask for.
                    fix: "on the target's host: an honest count (vblade -b \(holds)) or a larger receive buffer "
                        + "where the target takes one (aoefs serve --rcvbuf; net.core.rmem_max caps what it may "
                        + "ask); here, to start there: "
                        + "maxout = \(holds) under [target \(t.target)] in /etc/aoefs.conf"))
        }
        if p.state.isHealthy {
            out.append(
                Finding(
                    .info, subject, "path",
                    "RTT \(format1(p.rttSeconds * 1e3)) ms, payload \(p.payload), window \(p.window), "
                        + "\(p.lost) of \(p.sent) frames lost"))
        }
        return out
    }

    static func hostChecks(_ targets: [TargetFacts], host: HostFacts) -> [Finding] {
        var out: [Finding] = []
        // The socket buffers must hold every window's frames (the kernel counts about twice a
        // frame's size against them).
        var need = 0
        for t in targets {
            for p in t.paths where p.state.isHealthy {
                need += max(t.bufferCount, p.window) * (max(p.payload, 1024) + 512) * 2
            }
        }
        need = max(need, 1 << 20)
        if host.rmemMax > 0 && host.rmemMax < need || host.wmemMax > 0 && host.wmemMax < need {
            out.append(
                Finding(
                    .warning, "host", "socket-buffers",
                    "net.core.rmem_max \(host.rmemMax), wmem_max \(host.wmemMax): below the \(need) bytes the "
                        + "windows need; aoefs as root forces its own, but an initiator without CAP_NET_ADMIN "
                        + "and a target on this host (vblade) are held to them and drop frames",
                    fix: "sysctl -w net.core.rmem_max=\(need) net.core.wmem_max=\(need) (and in "
                        + "/etc/sysctl.d/90-aoe.conf to keep it)"))
        }
        for i in host.interfaces {
            if i.allowed && i.receiveBuffer > 0 && i.receiveBuffer < need / 2 {
                out.append(
                    Finding(
                        .warning, i.name, "socket-buffers",
                        "aoefs's socket on \(i.name) got a \(i.receiveBuffer)-byte receive buffer; its windows "
                            + "need about \(need / 2)",
                        fix: "run aoefs as root (it forces the size) or: sysctl -w net.core.rmem_max=\(need)"))
            }
            if i.allowed && !i.ipAddresses.isEmpty {
                out.append(
                    Finding(
                        .warning, i.name, "ip-on-aoe",
                        "\(i.name) carries AoE and IP (\(i.ipAddresses.joined(separator: ", "))): AoE has no "
                            + "security, anyone on the segment reads and writes the disks",
                        fix: "keep AoE on its own segment or VLAN: ip addr del \(i.ipAddresses[0]) dev \(i.name) "
                            + "(move IP to another interface)"))
            } else if i.allowed && i.ipFramesHeard > 0 {
                out.append(
                    Finding(
                        .warning, i.name, "ip-on-aoe",
                        "\(i.ipFramesHeard) IP frame(s) heard on \(i.name), an AoE interface: the segment is "
                            + "shared with IP traffic",
                        fix: "keep AoE on its own segment or VLAN (a separate switch, or a VLAN for AoE only)"))
            }
            if !i.allowed && !i.aoeHeard.isEmpty {
                out.append(
                    Finding(
                        .warning, i.name, "foreign-aoe",
                        "AoE heard on \(i.name), which aoefs does not use: \(i.aoeHeard.joined(separator: ", "))",
                        fix: "use it: aoefs mount … --iface \(i.name) (or echo \(i.name) >> the etherd/interfaces "
                            + "list); or keep AoE off that segment"))
            }
        }
        switch host.fuseUring {
        case true?:
            out.append(Finding(.info, "fuse", "fuse-uring", "FUSE over io_uring is on (aoefs mount uses it)"))
        case false?:
            // A faster transport, not a fault: information with its fix (shown as a tip).
            out.append(
                Finding(
                    .info, "fuse", "fuse-uring", "FUSE over io_uring is off: the mount serves over /dev/fuse",
                    fix: "echo Y > /sys/module/fuse/parameters/enable_uring (or fuse.enable_uring=1 on the "
                        + "kernel command line), then mount again"))
        case nil:
            out.append(
                Finding(.info, "fuse", "fuse-uring", "this kernel has no FUSE over io_uring (6.14 or later has it)"))
        }
        return out
    }

    /// One decimal place, without Foundation.
    static func format1(_ x: Double) -> String {
        let tenths = Int((x * 10).rounded())
        return "\(tenths / 10).\(abs(tenths % 10))"
    }
}

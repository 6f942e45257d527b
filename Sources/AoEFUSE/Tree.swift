import AoECore
import AoEEngine
import AoEProtocol

/// Everything in the mounted tree (DESIGN §2).
enum Node: Hashable, Sendable {
    case root
    case sysDir
    case etherdDir
    /// `eS.L`: the whole target as a raw image.
    case image(TargetAddress)
    /// `sys/eS.L/`.
    case targetDir(TargetAddress)
    /// `sys/eS.L/<file>`.
    case targetFile(TargetAddress, SysFile)
    /// `etherd/<file>`.
    case control(ControlFile)
    /// `eS.LpN`: one partition of a target, its I/O mapped onto the target.
    case partition(PartitionName)
    /// `sys/eS.LpN/`.
    case partitionDir(PartitionName)
    /// `sys/eS.LpN/<file>`.
    case partitionFile(PartitionName, PartitionFile)
    /// `sys/metrics`: every target's figures in the Prometheus text format.
    case metrics
    /// `sys/daemon`: the daemon serving the mount, its supervisor, and its restarts (issue 30).
    case daemon
    /// `sys/facts.json`: what the engine knows, typed (`EngineFacts`): what `aoefs doctor` and
    /// `aoefs iostat` read (issue 34).
    case facts

    var isDirectory: Bool {
        switch self {
        case .root, .sysDir, .etherdDir, .targetDir, .partitionDir: true
        case .image, .targetFile, .control, .partition, .partitionFile, .metrics, .daemon, .facts: false
        }
    }

    var isImage: Bool { if case .image = self { true } else { false } }
    var isPartition: Bool { if case .partition = self { true } else { false } }
    var partitionName: PartitionName? { if case .partition(let p) = self { p } else { nil } }

    /// The target a node belongs to, if any.
    var target: TargetAddress? {
        switch self {
        case .root, .sysDir, .etherdDir, .control, .metrics, .daemon, .facts: nil
        case .image(let t), .targetDir(let t), .targetFile(let t, _): t
        case .partition(let p), .partitionDir(let p), .partitionFile(let p, _): p.target
        }
    }
}

/// The files of `sys/eS.LpN/`, as `/sys/block/<disk>/<partition>/start` and `size` (sectors),
/// plus the table's type (MBR type byte or GPT type GUID) and GPT name.
enum PartitionFile: String, CaseIterable, Sendable {
    case start, size, type, name
}

/// The files of `sys/eS.L/`, in Linux sysfs and Solaris kstat wording.
enum SysFile: String, CaseIterable, Sendable {
    case state, mac, netif, fwver, payload, ident, config, paths, stats, conf
    /// `fwver` under the name Linux 4.x and later give it (/sys/block/etherd!eS.L/firmware-version).
    case firmwareVersion = "firmware-version"
}

/// The control files of `etherd/`, modelled on Linux's /dev/etherd.
enum ControlFile: String, CaseIterable, Sendable {
    case discover, interfaces, err, revalidate, flush
    /// aoectl's verbs (Solaris): a target pattern each.
    case disable, enable, probe
}

/// Inode numbers computed from the node, not handed out on first sight: the same node has the
/// same number in every daemon, so a daemon restarted under a live mount (issue 30) understands
/// the numbers its predecessor gave the kernel, and a target that comes back gets its old ones.
///
/// Layout (high to low): kind (8 bits), shelf (16), slot (8), partition number (24), file (8).
/// 1 root, 2 sys, 3 etherd, 4 sys/metrics, 5 sys/daemon, 6 sys/facts.json; 0 is never an inode.
struct InodeTable: Sendable {
    private enum Kind: UInt64 {
        case fixed = 0, control, image, targetDir, targetFile, partition, partitionDir, partitionFile
    }

    /// Partition numbers past 24 bits get no node (a hostile table's; Linux stops far below).
    static let maximumPartition = (1 << 24) - 1

    mutating func inode(_ n: Node) -> UInt64 { Self.inode(n) }
    func node(_ inode: UInt64) -> Node? { Self.node(inode) }

    static func inode(_ n: Node) -> UInt64 {
        func make(_ k: Kind, _ t: TargetAddress = TargetAddress(0, 0), part: Int = 0, file: Int = 0) -> UInt64 {
            k.rawValue << 56 | UInt64(t.shelf.rawValue) << 40 | UInt64(t.slot.rawValue) << 32
                | UInt64(min(max(part, 0), maximumPartition)) << 8 | UInt64(file & 0xFF)
        }
        switch n {
        case .root: return 1
        case .sysDir: return 2
        case .etherdDir: return 3
        case .metrics: return 4
        case .daemon: return 5
        case .facts: return 6
        case .control(let c): return make(.control, file: ControlFile.allCases.firstIndex(of: c) ?? 0)
        case .image(let t): return make(.image, t)
        case .targetDir(let t): return make(.targetDir, t)
        case .targetFile(let t, let f): return make(.targetFile, t, file: SysFile.allCases.firstIndex(of: f) ?? 0)
        case .partition(let p): return make(.partition, p.target, part: p.number)
        case .partitionDir(let p): return make(.partitionDir, p.target, part: p.number)
        case .partitionFile(let p, let f):
            return make(.partitionFile, p.target, part: p.number, file: PartitionFile.allCases.firstIndex(of: f) ?? 0)
        }
    }

    /// The node an inode number names; nil for a number no node has.
    static func node(_ number: UInt64) -> Node? {
        guard let kind = Kind(rawValue: number >> 56) else { return nil }
        let t = TargetAddress(UInt16(truncatingIfNeeded: number >> 40), UInt8(truncatingIfNeeded: number >> 32))
        let part = Int((number >> 8) & UInt64(maximumPartition))
        let file = Int(number & 0xFF)
        let n: Node?
        switch kind {
        case .fixed: n = [1: Node.root, 2: .sysDir, 3: .etherdDir, 4: .metrics, 5: .daemon, 6: .facts][number]
        case .control: n = ControlFile.allCases.indices.contains(file) ? .control(ControlFile.allCases[file]) : nil
        case .image: n = .image(t)
        case .targetDir: n = .targetDir(t)
        case .targetFile: n = SysFile.allCases.indices.contains(file) ? .targetFile(t, SysFile.allCases[file]) : nil
        case .partition: n = part > 0 ? .partition(PartitionName(target: t, number: part)) : nil
        case .partitionDir: n = part > 0 ? .partitionDir(PartitionName(target: t, number: part)) : nil
        case .partitionFile:
            n =
                part > 0 && PartitionFile.allCases.indices.contains(file)
                ? .partitionFile(PartitionName(target: t, number: part), PartitionFile.allCases[file]) : nil
        }
        // Only the canonical number of a node names it (no aliases from stray bits).
        return n.flatMap { inode(for: $0) == number ? $0 : nil }
    }

    private static func inode(for n: Node) -> UInt64 { Self.inode(n) }
}

/// Renders the pseudo-files. Pure: a snapshot in, text out.
enum Render {
    static func file(_ f: SysFile, _ t: TargetSnapshot, configuration c: EngineConfiguration, openCount: Int) -> String
    {
        switch f {
        case .state: return t.statusWord(openCount: openCount) + "\n"
        case .mac: return (t.mac?.compactHex ?? "none") + "\n"
        case .netif: return TargetSnapshot.netif(t.interfaces) + "\n"
        case .fwver, .firmwareVersion: return "0x" + String(format04x(t.config?.firmwareVersion ?? 0)) + "\n"
        case .payload: return "\(t.payload)\n"
        case .ident:
            guard let id = t.identity else { return "" }
            return "model: \(id.model)\nserial: \(id.serial)\nfirmware: \(id.firmware)\n"
                + "lba48: \(id.supportsLBA48 ? "yes" : "no")\nsectors: \(id.sectors)\n"
        case .config:
            return String(decoding: t.config?.configString ?? [], as: UTF8.self) + "\n"
        case .paths:
            // raise_in_s: seconds until a path below its ceiling tries larger frames again
            // (issue 31), "-" when it has nothing to try.
            var lines = ["netif mac payload mtu rtt_us rto_us outstanding window sent lost state raise_in_s"]
            for p in t.paths {
                let raise = p.nextRaise.map { String(($0.milliseconds + 999) / 1000) } ?? "-"
                lines.append(
                    [
                        p.interface, p.mac.compactHex, String(p.payload), String(p.mtu),
                        String(p.rtt?.microseconds ?? 0), String(p.rto.microseconds), String(p.outstanding),
                        String(p.window), String(p.sent), String(p.lost), p.state.rawValue, raise,
                    ].joined(separator: " "))
            }
            return lines.joined(separator: "\n") + "\n"
        case .stats:
            let k = t.counters
            let measured = t.paths.filter { $0.rtt != nil }
            let avg = measured.isEmpty ? 0 : measured.map { $0.rtt!.microseconds }.reduce(0, +) / UInt64(measured.count)
            let dev =
                measured.isEmpty ? 0 : measured.map(\.rttDeviation.microseconds).reduce(0, +) / UInt64(measured.count)
            let rows: [(String, UInt64)] = [
                ("atarcv", k.atarcv), ("atasnd", k.atasnd), ("erraoe", k.erraoe), ("errata", k.errata),
                ("errtimeout", k.errtimeout), ("errtrunc", k.errtrunc), ("errwmsg", k.errwmsg), ("retries", k.retries),
                ("softerr", k.softerr), ("bytes_read", k.bytesRead), ("bytes_written", k.bytesWritten),
                ("reads", k.reads), ("writes", k.writes), ("flushes", k.flushes), ("flushes_local", k.localFlushes),
                ("rmw_ops", k.rmwOps),
                ("rtt_avg_us", avg), ("rtt_dev_us", dev), ("rto_us", t.paths.first?.rto.microseconds ?? 0),
                ("window", UInt64(t.window)), ("outstanding", UInt64(t.outstanding)), ("probes", k.probes),
                ("lost_jumbo", k.lostJumbo), ("ejected", k.ejected), ("candidates_dropped", k.candidatesDropped),
                ("spurious", k.spurious), ("loss_events", k.lossEvents), ("duplicates", k.duplicates),
                ("reads_placed", k.readsPlaced), ("reads_copied", k.readsCopied),
                ("discards", k.discards), ("sectors_trimmed", k.sectorsTrimmed),
                // Requests as /proc/diskstats counts them (aoefs iostat reads these).
                ("rd_ios", t.io.read.ios), ("rd_bytes", t.io.read.bytes), ("rd_ticks_us", t.io.read.nanos / 1000),
                ("wr_ios", t.io.write.ios), ("wr_bytes", t.io.write.bytes), ("wr_ticks_us", t.io.write.nanos / 1000),
                ("fl_ios", t.io.flush.ios), ("fl_ticks_us", t.io.flush.nanos / 1000),
                ("dc_ios", t.io.discard.ios), ("dc_sectors", t.io.discard.bytes / 512),
                ("dc_ticks_us", t.io.discard.nanos / 1000),
                ("io_errors", t.io.read.errors + t.io.write.errors + t.io.flush.errors + t.io.discard.errors),
                ("in_flight", UInt64(t.io.inFlight)), ("io_ticks_us", t.busyNanoseconds / 1000),
            ]
            return rows.map { "\($0.0) \($0.1)" }.joined(separator: "\n") + "\n"
        case .conf:
            let sectors = t.identity?.sectors ?? 0
            let rows: [(String, String)] = [
                ("cylsize", "16065"),  // 255 heads × 63 sectors, the fake geometry Linux reports
                ("maxbuf", String(t.config?.bufferCount ?? 0)), ("maxdata", String(t.payload)),
                ("mibsize", String(sectors / 2048)), ("timeout", String(c.deadsecs(for: t.address))),
                ("maxout", String(c.maxOutstanding(for: t.address))), ("deadsecs", String(c.deadsecs(for: t.address))),
                ("wcache", t.identity?.writeCacheEnabled == true ? "1" : "0"), ("flush", t.flushMode.rawValue),
                // 1: discards (fstrim, blkdiscard) become TRIM; 0: the target offers no TRIM with zeros after it.
                ("trim", t.identity?.trimsToZeros == true ? "1" : "0"),
            ]
            return rows.map { "\($0.0) \($0.1)" }.joined(separator: "\n") + "\n"
        }
    }

    static func file(_ f: PartitionFile, _ p: Partition) -> String {
        switch f {
        case .start: "\(p.start)\n"
        case .size: "\(p.size)\n"
        case .type: p.type + "\n"
        case .name: p.name + "\n"
        }
    }

    static func format04x(_ v: UInt16) -> String {
        let h = String(v, radix: 16)
        return String(repeating: "0", count: max(0, 4 - h.count)) + h
    }
}

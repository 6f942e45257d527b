/// What `aoefs doctor` knows of one path, read from the metrics.
public struct PathFacts: Sendable, Hashable {
    public var interface: String
    public var mac: String
    public var state: String
    public var payload: Int
    public var mtu: Int
    public var rttSeconds: Double
    public var window: Int
    /// The smallest window that lost frames; 0 when none did.
    public var ceiling: Int
    public var sent: Int
    public var lost: Int
    /// The last burst (aoefs doctor's own): frames sent at once, and lost.
    public var burstSent = 0
    /// The payload search is over (a proving path's too); true when the metric is missing.
    public var searchSettled = true
    public var burstLost = 0

    public init(
        interface: String, mac: String, state: String, payload: Int, mtu: Int, rttSeconds: Double, window: Int,
        ceiling: Int, sent: Int, lost: Int
    ) {
        self.interface = interface
        self.mac = mac
        self.state = state
        self.payload = payload
        self.mtu = mtu
        self.rttSeconds = rttSeconds
        self.window = window
        self.ceiling = ceiling
        self.sent = sent
        self.lost = lost
    }
}

/// What `aoefs doctor` knows of one target, read from the metrics.
public struct TargetFacts: Sendable, Hashable {
    public var target: String
    public var state = "?"
    public var model = ""
    public var serial = ""
    public var firmware = ""
    public var bufferCount = 0
    /// The largest data payload the target offers (its sectors per command × 512).
    public var maxPayload = 0
    public var writeCache = false
    /// How fsync reaches it: ext, e7 or none (no FLUSH: its writes are durable, or not).
    public var flush = "ext"
    public var duplicates = 0
    public var candidatesDropped = 0
    public var lossEvents = 0
    public var retransmits = 0
    public var framesSent = 0
    public var paths: [PathFacts] = []

    public init(target: String) { self.target = target }
}

/// What `aoefs doctor` knows of one local interface.
public struct InterfaceFacts: Sendable, Hashable {
    public var name: String
    public var mtu: Int
    public var up: Bool
    /// Whether aoefs may use it (the allow-list).
    public var allowed: Bool
    /// Its IPv4/IPv6 addresses other than link-local ones.
    public var ipAddresses: [String] = []
    /// Frames heard on it while doctor listened: AoE (source MACs and what they were about),
    /// and IP.
    public var aoeHeard: [String] = []
    public var ipFramesHeard = 0
    /// The receive buffer aoefs's socket got on it (0: not known).
    public var receiveBuffer = 0

    public init(name: String, mtu: Int, up: Bool, allowed: Bool) {
        self.name = name
        self.mtu = mtu
        self.up = up
        self.allowed = allowed
    }
}

/// The host's side.
/// One thing that had not settled when doctor made its report.
public struct PendingFact: Sendable, Hashable {
    public var subject: String
    public var what: String
    public init(subject: String, what: String) {
        self.subject = subject
        self.what = what
    }
}

public struct HostFacts: Sendable, Hashable {
    public var interfaces: [InterfaceFacts] = []
    public var rmemMax = 0
    public var wmemMax = 0
    /// /sys/module/fuse/parameters/enable_uring: nil when the kernel has no such parameter.
    public var fuseUring: Bool?
    /// Whether a mount was examined (else doctor ran its own discovery).
    public var mounted = false
    /// Without a mount: how long doctor waited for its discovery to settle (issue 31), and what
    /// had not settled by then that the targets' states do not show (a burst still out).
    public var waited: Duration?
    public var pending: [PendingFact] = []

    public init() {}
}

extension TargetFacts {
    /// The targets in a metrics text (`sys/metrics`, or doctor's own engine's).
    public static func from(metrics samples: [MetricSample]) -> [TargetFacts] {
        var byTarget: [String: TargetFacts] = [:]
        var paths: [String: [String: PathFacts]] = [:]
        for s in samples {
            guard let t = s.labels["target"] else { continue }
            var f = byTarget[t] ?? TargetFacts(target: t)
            let v = Int(exactly: s.value.rounded()) ?? 0
            switch s.name {
            case "aoefs_target_info":
                f.state = s.labels["state"] ?? f.state
                f.model = s.labels["model"] ?? ""
                f.serial = s.labels["serial"] ?? ""
                f.firmware = s.labels["firmware"] ?? ""
            case "aoefs_buffer_count": f.bufferCount = v
            case "aoefs_max_payload_bytes": f.maxPayload = v
            case "aoefs_write_cache": f.writeCache = v != 0
            case "aoefs_flush_info": f.flush = s.labels["mode"] ?? f.flush
            case "aoefs_duplicate_paths_total": f.duplicates = v
            case "aoefs_candidates_dropped_total": f.candidatesDropped = v
            case "aoefs_loss_events_total": f.lossEvents = v
            case "aoefs_retransmits_total": f.retransmits = v
            case "aoefs_frames_sent_total": f.framesSent = v
            default:
                guard s.name.hasPrefix("aoefs_path_"), let iface = s.labels["interface"], let mac = s.labels["mac"]
                else { break }
                let key = iface + " " + mac
                var p =
                    paths[t]?[key]
                    ?? PathFacts(
                        interface: iface, mac: mac, state: "?", payload: 0, mtu: 0, rttSeconds: 0,
                        window: 0, ceiling: 0, sent: 0, lost: 0)
                switch s.name {
                case "aoefs_path_info": p.state = s.labels["state"] ?? p.state
                case "aoefs_path_payload_bytes": p.payload = v
                case "aoefs_path_payload_settled": p.searchSettled = v != 0
                case "aoefs_path_mtu_bytes": p.mtu = v
                case "aoefs_path_rtt_seconds": p.rttSeconds = s.value
                case "aoefs_path_window": p.window = v
                case "aoefs_path_window_ceiling": p.ceiling = v
                case "aoefs_path_frames_sent_total": p.sent = v
                case "aoefs_path_frames_lost_total": p.lost = v
                case "aoefs_path_burst_sent": p.burstSent = v
                case "aoefs_path_burst_lost": p.burstLost = v
                default: break
                }
                paths[t, default: [:]][key] = p
            }
            byTarget[t] = f
        }
        return byTarget.keys.sorted(by: Self.addressOrder).map { t in
            var f = byTarget[t]!
            f.paths = (paths[t] ?? [:]).keys.sorted().map { paths[t]![$0]! }
            return f
        }
    }

    /// eS.L by shelf, then slot.
    static func addressOrder(_ a: String, _ b: String) -> Bool {
        func key(_ s: String) -> (Int, Int) {
            let parts = s.dropFirst().split(separator: ".")
            return (Int(parts.first ?? "") ?? 0, Int(parts.last ?? "") ?? 0)
        }
        return key(a) < key(b)
    }
}

import AoEProtocol

/// A target's state, in Linux sysfs wording.
public enum TargetState: String, Sendable, Hashable, Codable {
    case identifying = "identifying"
    case up = "up"
    case down = "down"
    /// `aoefs disable`: no frame is sent to it, its image is gone, discovery leaves it alone.
    case disabled = "disabled"
}

/// How a target's fsyncs are carried out, decided from what its IDENTIFY offers (ACS-3 words
/// 82–87), shown as `flush` in `sys/eS.L/conf`.
public enum FlushMode: String, Sendable, Hashable, Codable {
    /// Answered at once, without a frame: no enabled write cache (acknowledged writes are
    /// durable), no flush command offered, or the target aborted the ones it offered.
    case none
    /// FLUSH CACHE EXT (0xEA).
    case ext
    /// FLUSH CACHE (0xE7).
    case e7

    /// What an identity calls for.
    public init(_ id: ATAIdentity) {
        if !id.writeCacheEnabled {
            self = .none
        } else if id.flushCacheExt && id.supportsLBA48 {
            self = .ext
        } else if id.flushCache {
            self = .e7
        } else {
            self = .none
        }
    }
}

/// A path's state, as the `paths` file words it.
public enum PathStatus: String, Sendable, Hashable, Codable {
    /// Carrying I/O at its negotiated payload.
    case ok = "ok"
    /// Carrying I/O while the payload search goes on.
    case probing = "probing"
    /// Announced itself (Query Config) and has not yet answered IDENTIFY as this target: no I/O.
    case candidate = "candidate"
    /// Answered IDENTIFY as this target while another path answers: reading sample sectors and
    /// waiting for a write to see through it, to prove it reaches the same disk. No I/O yet.
    case proving = "proving"
    /// Answered IDENTIFY as a different disk: a second box with the same shelf.slot. Never used.
    case duplicate = "duplicate"
    /// Its interface is down or not on the allow-list.
    case linkDown = "link-down"

    /// Whether the scheduler prefers this path.
    public var isHealthy: Bool { self == .ok || self == .probing }
}

/// What the `paths` file shows of one path.
public struct PathSnapshot: Sendable, Hashable {
    public var link: LinkID
    public var interface: String
    public var mac: MACAddress
    public var payload: Int
    public var mtu: Int
    public var rtt: Duration?
    /// The mean deviation of the round-trip time (RFC 6298's RTTVAR); zero before a sample.
    public var rttDeviation: Duration
    public var rto: Duration
    public var outstanding: Int
    public var window: Int
    public var sent: UInt64
    public var lost: UInt64
    public var state: PathStatus
    /// The window that lost frames (more than the target queues), nil while none did or a
    /// later try lifted it; `lowestCeiling` keeps the lowest ever learned.
    public var ceiling: Int?
    public var lowestCeiling: Int?
    /// The last burst on this path, if one was sent.
    public var burst: BurstResult?
    /// When the path, running below its ceiling because a larger size failed, tries upward
    /// again (issue 31); nil when there is nothing to try or the try is under way.
    public var nextRaise: Duration?
    /// The largest payload the path may reach (both ends' MTU, the target's offer, the cap).
    public var ceilingPayload: Int = 0
    /// The payload search is over (also on a path still proving, whose state says `proving`).
    public var searchSettled = true

    public init(
        link: LinkID, interface: String, mac: MACAddress, payload: Int, mtu: Int, rtt: Duration?, rto: Duration,
        outstanding: Int, window: Int, sent: UInt64, lost: UInt64, state: PathStatus,
        rttDeviation: Duration = .zero, ceiling: Int? = nil, lowestCeiling: Int? = nil,
        burst: BurstResult? = nil
    ) {
        self.link = link
        self.burst = burst
        self.ceiling = ceiling
        self.lowestCeiling = lowestCeiling
        self.rttDeviation = rttDeviation
        self.interface = interface
        self.mac = mac
        self.payload = payload
        self.mtu = mtu
        self.rtt = rtt
        self.rto = rto
        self.outstanding = outstanding
        self.window = window
        self.sent = sent
        self.lost = lost
        self.state = state
    }
}

/// A burst of full-size frames sent at once on a path (`aoefs doctor`): a target that queues
/// fewer frames than its Buffer Count loses some of them.
public struct BurstResult: Sendable, Hashable {
    public var sent: Int
    public var answered = 0
    public var lost = 0
    public var isComplete: Bool { answered + lost >= sent }

    public init(sent: Int) { self.sent = sent }
}

/// What the `sys/eS.L/` files show of one target.
public struct TargetSnapshot: Sendable, Hashable {
    public var address: TargetAddress
    public var state: TargetState
    public var config: QueryConfig?
    public var identity: ATAIdentity?
    public var paths: [PathSnapshot]
    public var counters: TargetCounters
    /// Data bytes per frame in use: the smallest over usable paths.
    public var payload: Int
    public var outstanding: Int
    public var window: Int
    /// How fsyncs reach this target.
    public var flushMode: FlushMode
    /// Its block requests, as /proc/diskstats counts a disk's.
    public var io: IOAccount
    /// Time with at least one request in flight, up to the snapshot (iostat's %util).
    public var busyNanoseconds: UInt64

    public init(
        address: TargetAddress, state: TargetState, config: QueryConfig?, identity: ATAIdentity?,
        paths: [PathSnapshot], counters: TargetCounters, payload: Int, outstanding: Int, window: Int,
        flushMode: FlushMode = .ext, io: IOAccount = IOAccount(), busyNanoseconds: UInt64 = 0
    ) {
        self.flushMode = flushMode
        self.io = io
        self.busyNanoseconds = busyNanoseconds
        self.address = address
        self.state = state
        self.config = config
        self.identity = identity
        self.paths = paths
        self.counters = counters
        self.payload = payload
        self.outstanding = outstanding
        self.window = window
    }

    /// Identified (or given up on) and done negotiating payload on every path: what `aoefs
    /// mount` and `aoefs scan` wait for before they show the table.
    public var isSettled: Bool { state != .identifying && paths.allSatisfy { $0.state != .probing } }
}

extension TargetSnapshot {
    /// The state word of `sys/eS.L/state`, `aoefs stat` and `aoefs list`: "up", "down", or
    /// "down,closewait" when an image is held open while down (Linux's wording); "disabled";
    /// "identifying" for a target that answered Query Config and was never identified (no image:
    /// its IDENTIFY failed or went unanswered; `etherd/err` says which).
    public func statusWord(openCount: Int) -> String {
        switch state {
        case .up: "up"
        case .disabled: "disabled"
        case .identifying where identity == nil: "identifying"
        case .down, .identifying: openCount > 0 ? "down,closewait" : "down"
        }
    }

    /// The interfaces its paths leave by, each once, in the paths' order (`sys/eS.L/netif`).
    public var interfaces: [String] {
        var seen: [String] = []
        for p in paths where !seen.contains(p.interface) { seen.append(p.interface) }
        return seen
    }

    /// `interfaces` as `sys/eS.L/netif`, `aoefs stat` and `aoefs list` write them: "eth1,eth2",
    /// or "none".
    public static func netif(_ interfaces: [String]) -> String {
        interfaces.isEmpty ? "none" : interfaces.joined(separator: ",")
    }

    /// The MAC it is reached at: the first healthy path's, else the first path's (`sys/eS.L/mac`).
    public var mac: MACAddress? { (paths.first { $0.state.isHealthy } ?? paths.first)?.mac }
}

extension Array where Element == TargetSnapshot {
    /// At least one target answered, and every one that did is settled.
    public var allSettled: Bool { !isEmpty && allSatisfy(\.isSettled) }
}

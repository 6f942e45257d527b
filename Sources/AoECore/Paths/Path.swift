import AoEProtocol

/// One path of a target: a position in its `PathSet`, stable for the target's lifetime (paths
/// are added, never removed).
public struct PathID: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var rawValue: Int
    public init(_ v: Int) { rawValue = v }
    public static func < (a: PathID, b: PathID) -> Bool { a.rawValue < b.rawValue }
    public var description: String { "path\(rawValue)" }
}

/// Why a probe was sent.
enum ProbeKind: Sendable, Hashable {
    /// The payload search (MTUNegotiator.startProbe).
    case search
    /// A suspect path: is the current size still answered?
    case suspectSize
    /// A suspect path: are small frames still answered?
    case alive
}

/// A local interface and a target MAC that answered on it (Linux `struct aoeif` within an
/// `aoetgt`): its own payload negotiation, congestion window and RTT.
struct Path: Sendable {
    var link: LinkID
    var mac: MACAddress
    /// The interface MTU when the path was made (the link's current one wins when known).
    var mtu: Int
    var negotiator: MTUNegotiator
    var rtt: RTTEstimator
    var window: CongestionWindow
    var outstanding = 0
    var sent: UInt64 = 0
    var lost: UInt64 = 0
    var lossesSinceAnswer = 0
    var setAsideUntil: Instant?
    /// The payload-search or suspect-size probe in flight.
    var probeTag: Tag?
    /// The small liveness probe in flight while the path is suspect.
    var aliveTag: Tag?

    init(link: LinkID, mac: MACAddress, mtu: Int, config: QueryConfig, configuration: EngineConfiguration,
         maxOutstanding: Int, maxPayload: Int?) {
        self.link = link
        self.mac = mac
        self.mtu = mtu
        negotiator = MTUNegotiator(mtu: mtu, targetSectors: Int(config.sectorsPerCommand), cap: maxPayload)
        rtt = RTTEstimator(initial: configuration.initialRTO, minimum: configuration.minimumRTO,
                           maximum: configuration.maximumRTO)
        window = CongestionWindow(bufferCount: Int(config.bufferCount), maxOutstanding: maxOutstanding)
    }

    /// Room for one more frame in the window.
    var hasRoom: Bool { outstanding < window.size }
}

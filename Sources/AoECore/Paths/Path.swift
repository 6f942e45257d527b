import AoEProtocol

/// One path of a target, numbered in the order its `PathSet` made them: never reused, so a frame
/// in flight on a path that was ejected finds no path rather than another one.
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
    /// A candidate path: does it answer IDENTIFY as this target? (Paths are earned, not claimed.)
    case verify
    /// A sample sector read through a candidate or a verified path, for the candidate's proof.
    case sample(candidate: PathID)
    /// The witness sector read through a candidate before or after a write (`IdentityProof`).
    case witness
    /// One of a burst of full-size frames (`aoefs doctor`): does the target queue its Buffer Count?
    case burst

    /// Reads whose data is kept for `IdentityProof`.
    var isIdentityProof: Bool {
        switch self {
        case .sample, .witness: return true
        default: return false
        }
    }
}

/// Where a path stands. Paths are earned, not claimed: a Query Config response from a new MAC
/// makes a candidate, and only an IDENTIFY answered with the target's identity makes it carry I/O.
enum PathStanding: Sendable, Hashable {
    case candidate
    case verified
    /// Answered IDENTIFY as this target while a verified path answers: it must show that it
    /// reaches the same disk (`IdentityProof`) before it carries I/O.
    case proving
    /// Another disk answering as this target (IDENTIFY, sample sectors or a write seen through
    /// it disagreed): a duplicate shelf.slot on the LAN.
    case duplicate
}

/// A local interface and a target MAC that answered on it (Linux `struct aoeif` within an
/// `aoetgt`): its own payload negotiation, congestion window and RTT.
struct Path: Sendable {
    let id: PathID
    var standing: PathStanding = .candidate
    /// The Query Config this path's MAC last sent.
    var config: QueryConfig
    /// When the path was made, and when a frame on it was last answered.
    let since: Instant
    var lastAnswer: Instant?
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
    /// The latest-sent answered frame larger than 1024 bytes: proof that its size crossed the
    /// path at that instant (a lost frame of that size sent no later was an overrun or a drop,
    /// not a black hole).
    var largeAnswered: (sentAt: Instant, sectors: Int) = (.zero, 0)
    /// The loss episode under way: when its last loss was, and frames lost in it. An episode
    /// ends after `Path.episodeQuiet` without a loss; `err` gets one line per episode.
    var lastLossAt: Instant?
    var episodeLost = 0
    /// A suspicion of this episode ended as a stall and was logged.
    var stallLogged = false
    static let episodeQuiet: Duration = .seconds(10)
    /// Of those, the frames another verified path answered something while they were out.
    var lossesWhileOthersAnswered = 0
    /// The last burst (`aoefs doctor`): frames sent, answered and lost.
    var burst: BurstResult?
    /// The proof under way while `proving`.
    var proof: IdentityProof?
    /// It answered a Query Config addressed to us (unicast), not only announced itself by
    /// broadcast: a target answers our query; a flood of announcements does not (see
    /// `SectorScheduler.heardConfig`).
    var answeredUs = false
    /// The verification IDENTIFY in flight, and how many were sent.
    var verifyTag: Tag?
    var verifyAttempts = 0
    /// The payload-search or suspect-size probe in flight.
    var probeTag: Tag?
    /// The small liveness probe in flight while the path is suspect.
    var aliveTag: Tag?

    init(
        id: PathID, link: LinkID, mac: MACAddress, mtu: Int, config: QueryConfig, configuration: EngineConfiguration,
        maxOutstanding: Int, maxPayload: Int?, now: Instant
    ) {
        self.id = id
        self.config = config
        since = now
        self.link = link
        self.mac = mac
        self.mtu = mtu
        negotiator = MTUNegotiator(mtu: mtu, targetSectors: Int(config.sectorsPerCommand), cap: maxPayload)
        rtt = RTTEstimator(
            initial: configuration.initialRTO, minimum: configuration.minimumRTO,
            maximum: configuration.maximumRTO)
        window = CongestionWindow(bufferCount: Int(config.bufferCount), maxOutstanding: maxOutstanding)
    }

    /// Room for one more frame in the window.
    var hasRoom: Bool { outstanding < window.size }
}

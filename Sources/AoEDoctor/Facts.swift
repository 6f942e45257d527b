import AoECore
import AoEEngine
import AoEProtocol
import Foundation

/// What `aoefs doctor` knows of one path: the engine's `PathSnapshot`, typed, in the form the
/// mount offers as JSON (`sys/facts.json`, `EngineFacts`) and the doctor reads back.
public struct PathFacts: Sendable, Hashable, Codable {
    public var interface: String
    public var mac: String
    public var state: PathStatus
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
    /// The payload search is over (a proving path's too).
    public var searchSettled = true
    public var burstLost = 0

    public init(
        interface: String, mac: String, state: PathStatus, payload: Int, mtu: Int, rttSeconds: Double, window: Int,
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

    /// The one mapping from the engine's snapshot.
    public init(_ p: PathSnapshot) {
        self.init(
            interface: p.interface, mac: p.mac.description, state: p.state, payload: p.payload, mtu: p.mtu,
            rttSeconds: Double(p.rtt?.nanoseconds ?? 0) / 1e9, window: p.window, ceiling: p.lowestCeiling ?? 0,
            sent: Int(clamping: p.sent), lost: Int(clamping: p.lost))
        searchSettled = p.searchSettled
        burstSent = p.burst?.sent ?? 0
        burstLost = p.burst?.lost ?? 0
    }
}

/// A target's block requests as `/proc/diskstats` counts them (`IOAccount`): what `aoefs
/// iostat` computes its rates from.
public struct IOFacts: Sendable, Hashable, Codable {
    /// Per kind of request: the engine's own counts (`IOAccount.Kind`).
    public typealias Kind = IOAccount.Kind

    public var read = Kind()
    public var write = Kind()
    public var flush = Kind()
    public var discard = Kind()
    public var inFlight = 0
    /// Time with at least one request in flight (iostat's %util), in nanoseconds.
    public var busyNanoseconds: UInt64 = 0

    public init() {}
}

/// What `aoefs doctor` and `aoefs iostat` know of one target: the engine's `TargetSnapshot`,
/// typed, as the mount offers it (`sys/facts.json`).
public struct TargetFacts: Sendable, Hashable, Codable {
    public var target: String
    public var state = TargetState.identifying
    public var model = ""
    public var serial = ""
    public var firmware = ""
    public var bufferCount = 0
    /// The largest data payload the target offers (its sectors per command × 512).
    public var maxPayload = 0
    public var writeCache = false
    /// How fsync reaches it (no FLUSH: its writes are durable, or not).
    public var flush = FlushMode.ext
    public var duplicates = 0
    public var candidatesDropped = 0
    public var lossEvents = 0
    public var retransmits = 0
    public var framesSent = 0
    public var paths: [PathFacts] = []
    public var io = IOFacts()
    /// What `aoefs stat` and `aoefs list` show, as `sys/eS.L/state`, `netif`, `mac`, `payload`
    /// and the image's size have it: the state word (it depends on the images held open, which
    /// the mount knows), the interfaces, the MAC it is reached at (12 hex digits), the payload
    /// in use, and the capacity in bytes (0 before IDENTIFY).
    public var status = "identifying"
    public var interfaces: [String] = []
    public var mac: String?
    public var payload = 0
    public var capacity: UInt64 = 0

    public init(target: String) { self.target = target }

    /// The one mapping from the engine's snapshot; `openCount` is how many of its images and
    /// partitions are open (the mount's count; 0 elsewhere).
    public init(_ t: TargetSnapshot, openCount: Int = 0) {
        target = t.address.description
        state = t.state
        status = t.statusWord(openCount: openCount)
        interfaces = t.interfaces
        mac = t.mac?.compactHex
        payload = t.payload
        capacity = t.identity?.capacity ?? 0
        model = t.identity?.model ?? ""
        serial = t.identity?.serial ?? ""
        firmware = t.identity?.firmware ?? ""
        bufferCount = Int(t.config?.bufferCount ?? 0)
        maxPayload = Int(t.config?.sectorsPerCommand ?? 0) * 512
        writeCache = t.identity?.writeCacheEnabled == true
        flush = t.flushMode
        let k = t.counters
        duplicates = Int(clamping: k.duplicates)
        candidatesDropped = Int(clamping: k.candidatesDropped)
        lossEvents = Int(clamping: k.lossEvents)
        retransmits = Int(clamping: k.retries)
        framesSent = Int(clamping: k.atasnd)
        paths = t.paths.map(PathFacts.init)
        io.read = t.io.read
        io.write = t.io.write
        io.flush = t.io.flush
        io.discard = t.io.discard
        io.inFlight = t.io.inFlight
        io.busyNanoseconds = t.busyNanoseconds
    }
}

/// One link of the engine: its interface, MTU and the receive buffer its socket got (the
/// engine's own figures, as `sys/metrics` renders them too).
public typealias LinkFacts = EngineMetrics.InterfaceFigures

/// Everything the engine knows that the doctor and iostat use: its targets and its links. A
/// mount offers it as `sys/facts.json`; the doctor without a mount makes it from its own engine.
/// One model, rendered as JSON and read back as the same types: no text is parsed by name.
public struct EngineFacts: Sendable, Hashable, Codable {
    public var targets: [TargetFacts]
    public var links: [LinkFacts]

    /// The file's name in the mount's `sys/`.
    public static let fileName = "facts.json"

    /// `openCount` says how many images of a target are open (a mount's; 0 without one).
    public init(
        targets: [TargetSnapshot], links: [LinkFacts], openCount: (TargetAddress) -> Int = { _ in 0 }
    ) {
        self.targets = targets.sorted { $0.address < $1.address }.map {
            TargetFacts($0, openCount: openCount($0.address))
        }
        self.links = links
    }

    /// What `engine` knows now.
    public init(_ engine: Engine, openCount: (TargetAddress) -> Int = { _ in 0 }) {
        self.init(targets: engine.targets(), links: engine.interfaceFigures(), openCount: openCount)
    }

    /// JSON, one line, keys sorted.
    public func json() -> String {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        return ((try? e.encode(self)).map { String(decoding: $0, as: UTF8.self) } ?? "{}") + "\n"
    }

    /// Reads what `json()` wrote. Throws a `DecodingError` that names what is wrong.
    public static func decode(_ text: String) throws -> EngineFacts {
        try JSONDecoder().decode(EngineFacts.self, from: Data(text.utf8))
    }
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

import AoEProtocol

/// A local network interface that carries AoE frames: the engine's only view of the network.
///
/// `AoELinux.PacketLink` implements it over AF_PACKET. (The simulation drives `EngineCore`
/// directly, without links.)
/// Frames are whole Ethernet frames (destination, source, ethertype 0x88a2, AoE header, argument).
public protocol Link: AnyObject, Sendable {
    /// The interface name, e.g. `eth1`.
    var name: String { get }
    /// The interface's hardware address, the source of every frame we send.
    var macAddress: MACAddress { get }
    /// The interface MTU: the most bytes after the Ethernet header.
    var mtu: Int { get }
    /// Sends `frames` in one batch where the link can. Frames the kernel cannot take right now
    /// are dropped and counted, as the wire would: the scheduler retransmits.
    /// - Returns: how many frames were handed to the link.
    @discardableResult
    func send(_ frames: [OutgoingFrame]) throws -> Int
    /// Waits up to `timeout` (negative: no limit) for frames and hands each (at most `limit`) to
    /// `body` without copying; the buffer is valid only during the call. While it waits it also
    /// watches `descriptors` (at most 3; -1 entries are ignored): the wait ends when one is
    /// readable or closed, and bit i of `ready` says descriptors[i] is. That is what lets one
    /// thread be an event loop: frames, a FUSE session, a wake-up (`Engine`'s `EventLoop`).
    func receive(
        limit: Int, timeout: Duration, alsoWatching descriptors: [Int32],
        _ body: (UnsafeRawBufferPointer) -> Void
    ) throws -> (frames: Int, ready: UInt32)
    /// As `receive(limit:timeout:alsoWatching:_:)`, placing READ answers' data where `placer`
    /// predicts (issue 32): right before each receive system call the link asks `placer` for
    /// the places of the next answers (`predict`) and scatters each message over {its slot's
    /// headers, the place, the rest of its slot}; right after, it settles each message
    /// (`ReceiveLayout.settle`) and tells `placer` the call is over (`release`) — before any
    /// frame is handed to `body`. A frame whose placement hit comes as headers plus data in
    /// place; every other frame whole, as without a placer. A link that cannot scatter ignores
    /// `placer` (the default).
    func receive(
        limit: Int, timeout: Duration, alsoWatching descriptors: [Int32], placer: (any ReceivePlacer)?,
        _ body: (ReceivedFrame) -> Void
    ) throws -> (frames: Int, ready: UInt32)
    /// Frames refused since the last call because they were longer than the interface's MTU
    /// (lowered under us); the driver then reads the MTU again. Asked after every send batch:
    /// a protocol requirement, so the question costs no dynamic cast.
    func takeOversized() -> UInt64

    // What the driver needs to follow the interface (issue 21) and to report on it: all here, so
    // no caller casts to a concrete link (issue 34).

    /// The interface's index: one deleted and created again under the same name comes back with
    /// a new one, and the link must then be opened anew (`reopen`).
    var interfaceIndex: Int32 { get }
    /// Bytes the link's receive buffer holds (SO_RCVBUF as granted), for metrics and the doctor.
    var receiveBufferSize: Int { get }
    /// How long a receive polls without sleeping before it sleeps (zero: it sleeps at once).
    var busyPoll: Duration { get set }
    /// Reads the interface's MTU again (after frames were refused as too long) and returns it.
    func refreshMTU() throws -> Int
    /// Records the MTU an interface event reported; returns the MTU in force (a link may cap it).
    func noteMTU(_ mtu: Int) -> Int
    /// Opens the interface of this name anew (it was deleted and created again); returns its MTU.
    func reopen() throws -> Int
    /// The interface as it is now, as an event would say it; nil when there is none.
    func currentState() -> LinkEvent?
    /// Asks the link to report its interface's changes to `handler` itself; false when it cannot,
    /// and the driver must follow the host's interfaces (rtnetlink) for it.
    func watchInterface(_ handler: @escaping @Sendable (LinkEvent?) -> Void) -> Bool
}

/// One change of a network interface, as rtnetlink reports it (`AoELinux.LinkMonitor`), or as a
/// link reports its own (`Link.watchInterface`).
public struct LinkEvent: Sendable, Hashable {
    /// The interface name.
    public var name: String
    /// Its index: a deleted and re-created interface comes back with a new one.
    public var index: Int32
    /// Deleted (RTM_DELLINK).
    public var deleted: Bool
    /// Administratively up (IFF_UP).
    public var up: Bool
    /// Has carrier (IFF_RUNNING): frames can cross.
    public var running: Bool
    /// The MTU, if the event carried it.
    public var mtu: Int?
    /// The hardware address, if the event carried it.
    public var mac: MACAddress?

    /// Whether frames can be sent and received now.
    public var usable: Bool { !deleted && up && running }

    public init(name: String, index: Int32, deleted: Bool, up: Bool, running: Bool, mtu: Int?, mac: MACAddress?) {
        self.name = name
        self.index = index
        self.deleted = deleted
        self.up = up
        self.running = running
        self.mtu = mtu
        self.mac = mac
    }
}

/// A frame a receive call hands over: whole, or (its placement hit) its headers with its data
/// already where it belongs.
public struct ReceivedFrame {
    /// The whole frame, or only its headers (`ReceiveLayout.headerBytes`) when `placedData` is set.
    public var bytes: UnsafeRawBufferPointer
    /// The frame's data, received in place.
    public var placedData: UnsafeRawBufferPointer?

    public init(bytes: UnsafeRawBufferPointer, placedData: UnsafeRawBufferPointer? = nil) {
        self.bytes = bytes
        self.placedData = placedData
    }
}

/// What a link asks around each receive system call when it places data (`Link.receive(…placer:…)`).
public protocol ReceivePlacer: AnyObject {
    /// Fills `list` with the places of the next answers expected (at most `limit`, each at most
    /// `largest` bytes), oldest first; they stay valid until `release()`.
    func predict(into list: inout [Placement], limit: Int, largest: Int)
    /// The receive system call is over: the places may be reused.
    func release()
}

extension Link {
    /// A link that cannot scatter receives as without a placer.
    public func receive(
        limit: Int, timeout: Duration, alsoWatching descriptors: [Int32], placer: (any ReceivePlacer)?,
        _ body: (ReceivedFrame) -> Void
    ) throws -> (frames: Int, ready: UInt32) {
        try receive(limit: limit, timeout: timeout, alsoWatching: descriptors) { body(ReceivedFrame(bytes: $0)) }
    }

    /// A link that cannot tell: none.
    public func takeOversized() -> UInt64 { 0 }

    /// Sends whole frames given as bytes (tools and tests).
    @discardableResult
    public func send(_ frames: [[UInt8]]) throws -> Int { try send(frames.map(OutgoingFrame.init(bytes:))) }

    /// Waits up to `timeout` and hands each received frame (at most `limit`) to `body` without
    /// copying; returns how many were handed over.
    @discardableResult
    public func receive(limit: Int, timeout: Duration, _ body: (UnsafeRawBufferPointer) -> Void) throws -> Int {
        try receive(limit: limit, timeout: timeout, alsoWatching: [], body).frames
    }

    /// Waits up to `timeout` for frames and returns copies of those that arrived (at most
    /// `limit`); empty when the timeout passed (tools and tests).
    public func receive(limit: Int, timeout: Duration) throws -> [[UInt8]] {
        var out: [[UInt8]] = []
        try receive(limit: limit, timeout: timeout) { out.append(Array($0)) }
        return out
    }
}

/// The most AoE payload (data bytes) one frame can carry on a link of MTU `mtu`: the MTU minus
/// the 10-byte AoE header and 12-byte ATA argument, rounded down to whole sectors
/// (DESIGN §4: 9000 → 8704, 1500 → 1024).
public func maximumPayload(forMTU mtu: Int) -> Int {
    max(0, (mtu - aoeFrameOverhead) / 512 * 512)
}

/// Bytes of an AoE frame besides its data, after the Ethernet header: the AoE header (10) and
/// the ATA argument (12).
public let aoeFrameOverhead = 22

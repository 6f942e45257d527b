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
    /// Waits up to `timeout` for frames and returns those that arrived (at most `limit`).
    /// An empty array means the timeout passed.
    func receive(limit: Int, timeout: Duration) throws -> [[UInt8]]
    /// Waits up to `timeout` and hands each received frame (at most `limit`) to `body` without
    /// copying; the buffer is valid only during the call. Returns how many were handed over.
    @discardableResult
    func receive(limit: Int, timeout: Duration, _ body: (UnsafeRawBufferPointer) -> Void) throws -> Int
    /// Frames refused since the last call because they were longer than the interface's MTU
    /// (lowered under us); the driver then reads the MTU again. Asked after every send batch:
    /// a protocol requirement, so the question costs no dynamic cast.
    func takeOversized() -> UInt64
}

/// A link whose wait for frames can also watch another file descriptor, so one thread serves
/// both (see `Engine.attach`), and which can lend received frames' memory past the receive
/// call (`FrameLoan`), so that a read's reply can be gathered from the frames its data came in.
public protocol DescriptorWaitingLink: Link {
    /// As `receive(limit:timeout:_:)`; the wait also ends when `descriptor` (unless -1) is
    /// readable or closed, and `otherReady` says so. Each frame comes with a loan of its slot
    /// when the link can spare it; a frame whose loan `body` marks taken stays valid until its
    /// lender is given it back.
    func receive(limit: Int, timeout: Duration, alsoWaitingFor descriptor: Int32,
                 lending body: (UnsafeRawBufferPointer, inout FrameLoan?) -> Void) throws -> (frames: Int, otherReady: Bool)
}

/// Work that shares a link's receive thread with its frames: a descriptor to watch while
/// waiting, and what to do when it is readable. aoefs's FUSE session is one.
public protocol EventSource: AnyObject, Sendable {
    /// The descriptor whose readability (or closing) means `service()` has work.
    var descriptor: Int32 { get }
    /// Handles what is ready without blocking. Returns false once the source has ended; it is
    /// then dropped.
    func service() -> Bool
}

extension Link {
    /// A link that cannot tell: none.
    public func takeOversized() -> UInt64 { 0 }

    /// Sends whole frames given as bytes (tools and tests).
    @discardableResult
    public func send(_ frames: [[UInt8]]) throws -> Int { try send(frames.map(OutgoingFrame.init(bytes:))) }

    /// Copies, for links that have no zero-copy path.
    @discardableResult
    public func receive(limit: Int, timeout: Duration, _ body: (UnsafeRawBufferPointer) -> Void) throws -> Int {
        let frames = try receive(limit: limit, timeout: timeout)
        for f in frames { f.withUnsafeBytes(body) }
        return frames.count
    }
}

/// The most AoE payload (data bytes) one frame can carry on a link of MTU `mtu`: the MTU minus
/// the 10-byte AoE header and 12-byte ATA argument, rounded down to whole sectors
/// (DESIGN §4: 9000 → 8704, 1500 → 1024).
public func maximumPayload(forMTU mtu: Int) -> Int {
    max(0, (mtu - 22) / 512 * 512)
}

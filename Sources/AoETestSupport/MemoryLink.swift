import AoECore
import AoELinux
import AoEProtocol

/// An in-memory `Link` with a `MemoryTarget` on its wire: what the engine sends is answered by
/// the target (or dropped by `drop`), and the answers wait in a queue until the engine's event
/// loop receives them. Its readiness is an eventfd, so the loop's poll watches it beside the
/// FUSE descriptor and its own wake-up exactly as it watches a packet socket: the engine, its
/// loops, timers and event sources run as in production, without root or a network
/// (swift-nio's `NIOEmbedded` is the model). The lab tests stay as the real thing.
public final class MemoryLink: Link, @unchecked Sendable {
    // @unchecked: everything that changes is in `wire`, behind its lock.
    public let name: String
    public let macAddress: MACAddress
    /// What a packet socket would be granted (PacketLink's default), for metrics.
    public let receiveBufferSize = 256 * 9216
    private let ready: WakeUp
    private let wire: Locked<Wire>

    struct Wire {
        var target: MemoryTarget
        var queue: [[UInt8]] = []
        var drop: (@Sendable ([UInt8]) -> Bool)?
        var shuffle: (@Sendable ([[UInt8]]) -> [[UInt8]])?
        var placedHits = 0
        var sent = 0
        var down = false
        /// The interface's MTU on the "host", and the one the link last read or was told.
        var hostMTU: Int
        var mtu: Int
        /// The interface's index on the "host", and the one the link is bound to (until `reopen`).
        var hostIndex: Int32 = 1
        var index: Int32 = 1
        var oversized: UInt64 = 0
        var busyPoll: Duration = .zero
        var busyPolls = 0
        var reopens = 0
        var watcher: (@Sendable (LinkEvent?) -> Void)?
    }

    /// - Parameters:
    ///   - target: the target on the other end.
    ///   - mtu: the link's MTU (the target's sectors per command is set to what fits).
    public init(
        name: String = "mem0", mac: MACAddress = MACAddress(0x02, 0, 0, 0, 0, 1), mtu: Int = 9000,
        target: MemoryTarget
    ) throws(ProcessError) {
        self.name = name
        self.macAddress = mac
        ready = try WakeUp()
        wire = Locked(Wire(target: target, hostMTU: mtu, mtu: mtu))
    }

    // MARK: - The interface, as a host would change it

    /// The MTU the link uses (last read, or told by an event).
    public var mtu: Int { wire.withLock { $0.mtu } }

    /// Changes the interface's MTU, as `ip link set mtu` would; with `announce` an event says so
    /// (rtnetlink's RTM_NEWLINK), without it the link finds out when a send is refused as too long.
    public func setMTU(_ mtu: Int, announce: Bool = true) {
        let watcher = wire.withLock { w in
            w.hostMTU = mtu
            return w.watcher
        }
        if announce { watcher?(currentState()) }
    }

    /// The interface deleted and created again under the same name (a new index): the driver
    /// must open it anew (`reopen`).
    public func recreate() {
        let watcher = wire.withLock { w in
            w.hostIndex += 1
            return w.watcher
        }
        watcher?(currentState())
    }

    /// Receive calls that polled (busy polling) before they slept, and links opened anew.
    public var busyPolls: Int { wire.withLock { $0.busyPolls } }
    /// Answers waiting for the engine to receive them.
    public var queued: Int { wire.withLock { $0.queue.count } }
    public var reopens: Int { wire.withLock { $0.reopens } }

    public var interfaceIndex: Int32 { wire.withLock { $0.index } }

    public var busyPoll: Duration {
        get { wire.withLock { $0.busyPoll } }
        set { wire.withLock { $0.busyPoll = newValue } }
    }

    public func refreshMTU() throws -> Int {
        try wire.withLock { w in
            if w.down {
                throw LinkError(
                    code: .interfaceDown, interface: name, errno: nil, operation: "reading the interface state")
            }
            w.mtu = w.hostMTU
            return w.mtu
        }
    }

    public func noteMTU(_ mtu: Int) -> Int {
        wire.withLock {
            $0.mtu = mtu; return mtu
        }
    }

    public func reopen() throws -> Int {
        wire.withLock { w in
            w.reopens += 1
            w.index = w.hostIndex
            w.mtu = w.hostMTU
            return w.mtu
        }
    }

    public func currentState() -> LinkEvent? {
        wire.withLock { w in
            LinkEvent(
                name: name, index: w.hostIndex, deleted: false, up: !w.down, running: !w.down, mtu: w.hostMTU,
                mac: macAddress)
        }
    }

    /// The link reports its own changes (`setMTU`, `setDown`, `recreate`) to the driver.
    public func watchInterface(_ handler: @escaping @Sendable (LinkEvent?) -> Void) -> Bool {
        wire.withLock { $0.watcher = handler }
        return true
    }

    public func takeOversized() -> UInt64 {
        wire.withLock { w in
            defer { w.oversized = 0 }; return w.oversized
        }
    }

    /// Frames the engine sent (every one, dropped or not).
    public var sentFrames: Int { wire.withLock { $0.sent } }

    /// The target as it is now (what was written to it).
    public var target: MemoryTarget { wire.withLock { $0.target } }

    /// Drops the frames (either way) for which `rule` is true: a lossy wire, a target that
    /// ignores one command. Nil: none.
    public func drop(_ rule: (@Sendable ([UInt8]) -> Bool)?) { wire.withLock { $0.drop = rule } }

    /// Rearranges each batch of answers before a receive takes it (reordered, duplicated,
    /// forged ones added): the misses of receive placement. Nil: as they came.
    public func shuffle(_ rule: (@Sendable ([[UInt8]]) -> [[UInt8]])?) { wire.withLock { $0.shuffle = rule } }

    /// READ answers received where they belong (receive placement).
    public var placedHits: Int { wire.withLock { $0.placedHits } }

    /// Changes the target in place (make it silent, read-only, …).
    public func withTarget(_ body: (inout MemoryTarget) -> Void) { wire.withLock { body(&$0.target) } }

    /// A link that is down: sends and receives fail, as ENETDOWN would. With `announce` an event
    /// says so, as rtnetlink does for `ip link set down`.
    public func setDown(_ down: Bool, announce: Bool = false) {
        let watcher = wire.withLock { w in
            w.down = down
            return w.watcher
        }
        ready.signal()
        if announce { watcher?(currentState()) }
    }

    @discardableResult
    public func send(_ frames: [OutgoingFrame]) throws -> Int {
        let answered: Bool = try wire.withLock { w in
            if w.down {
                throw LinkError(code: .interfaceDown, interface: name, errno: 100, operation: "sending frames")
            }
            var any = false
            for f in frames {
                let bytes = f.bytes
                // Longer than the interface takes: refused, as the kernel does with EMSGSIZE.
                if bytes.count > w.hostMTU + AoEHeader.ethernetSize {
                    w.oversized += 1
                    continue
                }
                w.sent += 1
                if w.drop?(bytes) == true { continue }
                for answer in w.target.handle(bytes) where w.drop?(answer) != true {
                    w.queue.append(answer)
                    any = true
                }
            }
            return any
        }
        if answered { ready.signal() }
        return frames.count
    }

    public func receive(
        limit: Int, timeout: Duration, alsoWatching descriptors: [Int32],
        _ body: (UnsafeRawBufferPointer) -> Void
    ) throws -> (frames: Int, ready: UInt32) {
        let (frames, ready) = try collect(limit: limit, timeout: timeout, alsoWatching: descriptors)
        for f in frames { f.withUnsafeBytes(body) }
        return (frames.count, ready)
    }

    /// Receives as a packet socket with scattered messages would (`ReceiveLayout.scatter`, what
    /// the kernel does with the iovecs), settled and released by the same code as `PacketLink`.
    public func receive(
        limit: Int, timeout: Duration, alsoWatching descriptors: [Int32], placer: (any ReceivePlacer)?,
        _ body: (ReceivedFrame) -> Void
    ) throws -> (frames: Int, ready: UInt32) {
        let (frames, ready) = try collect(limit: limit, timeout: timeout, alsoWatching: descriptors)
        guard let placer, !frames.isEmpty else {
            for f in frames { f.withUnsafeBytes { body(ReceivedFrame(bytes: $0)) } }
            return (frames.count, ready)
        }
        let slotSize = mtu + AoEHeader.ethernetSize
        var list: [Placement] = []
        placer.predict(into: &list, limit: frames.count, largest: slotSize - ReceiveLayout.headerBytes)
        let slots = UnsafeMutableRawPointer.allocate(byteCount: slotSize * frames.count, alignment: 16)
        defer { slots.deallocate() }
        var received: [ReceivedFrame] = []
        var hits = 0
        for (i, f) in frames.enumerated() {
            let slot = slots + i * slotSize
            guard i < list.count else {
                let n = min(f.count, slotSize)
                f.withUnsafeBytes { slot.copyMemory(from: $0.baseAddress!, byteCount: n) }
                received.append(ReceivedFrame(bytes: UnsafeRawBufferPointer(start: slot, count: n)))
                continue
            }
            let n = f.withUnsafeBytes { ReceiveLayout.scatter($0, slot: slot, slotSize: slotSize, placement: list[i]) }
            if ReceiveLayout.settle(slot: slot, slotSize: slotSize, length: n, placement: list[i]) {
                hits += 1
                received.append(
                    ReceivedFrame(
                        bytes: UnsafeRawBufferPointer(start: slot, count: ReceiveLayout.headerBytes),
                        placedData: UnsafeRawBufferPointer(start: list[i].destination, count: list[i].count)))
            } else {
                received.append(ReceivedFrame(bytes: UnsafeRawBufferPointer(start: slot, count: n)))
            }
        }
        placer.release()
        wire.withLock { $0.placedHits += hits }
        for r in received { body(r) }
        return (frames.count, ready)
    }

    private func collect(limit: Int, timeout: Duration, alsoWatching descriptors: [Int32]) throws -> ([[UInt8]], UInt32)
    {
        var ready: UInt32 = 0
        var frames = take(limit)
        let spin = wire.withLock { $0.busyPoll }
        if frames.isEmpty && timeout != .zero && spin > .zero {
            // Busy polling, as PacketLink does before it sleeps: look again until `spin` is over.
            wire.withLock { $0.busyPolls += 1 }
            let end = ContinuousClock.now + spin
            while frames.isEmpty && ContinuousClock.now < end { frames = take(limit) }
        }
        if frames.isEmpty && timeout != .zero {
            let bits = waitReadable(any: [self.ready.descriptor] + descriptors, timeout: timeout)
            ready = bits >> 1
            if bits & 1 != 0 {
                self.ready.drain()
                frames = take(limit)
            }
        }
        if wire.withLock({ $0.down }) {
            throw LinkError(code: .interfaceDown, interface: name, errno: 100, operation: "receiving frames")
        }
        return (frames, ready)
    }

    private func take(_ limit: Int) -> [[UInt8]] {
        wire.withLock { w in
            let n = min(limit, w.queue.count)
            defer { w.queue.removeFirst(n) }
            let batch = Array(w.queue.prefix(n))
            return w.shuffle.map { $0(batch) } ?? batch
        }
    }
}

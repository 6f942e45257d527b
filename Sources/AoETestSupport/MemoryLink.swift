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
    public let mtu: Int
    private let ready: WakeUp
    private let wire: Locked<Wire>

    struct Wire {
        var target: MemoryTarget
        var queue: [[UInt8]] = []
        var drop: (@Sendable ([UInt8]) -> Bool)?
        var sent = 0
        var down = false
    }

    /// - Parameters:
    ///   - target: the target on the other end.
    ///   - mtu: the link's MTU (the target's sectors per command is set to what fits).
    public init(name: String = "mem0", mac: MACAddress = MACAddress(0x02, 0, 0, 0, 0, 1), mtu: Int = 9000,
                target: MemoryTarget) throws(ProcessError) {
        self.name = name
        self.macAddress = mac
        self.mtu = mtu
        ready = try WakeUp()
        wire = Locked(Wire(target: target))
    }

    /// Frames the engine sent (every one, dropped or not).
    public var sentFrames: Int { wire.withLock { $0.sent } }

    /// The target as it is now (what was written to it).
    public var target: MemoryTarget { wire.withLock { $0.target } }

    /// Drops the frames (either way) for which `rule` is true: a lossy wire, a target that
    /// ignores one command. Nil: none.
    public func drop(_ rule: (@Sendable ([UInt8]) -> Bool)?) { wire.withLock { $0.drop = rule } }

    /// Changes the target in place (make it silent, read-only, …).
    public func withTarget(_ body: (inout MemoryTarget) -> Void) { wire.withLock { body(&$0.target) } }

    /// A link that is down: sends and receives fail, as ENETDOWN would.
    public func setDown(_ down: Bool) {
        wire.withLock { $0.down = down }
        ready.signal()
    }

    @discardableResult
    public func send(_ frames: [OutgoingFrame]) throws -> Int {
        let answered: Bool = try wire.withLock { w in
            if w.down { throw LinkError(code: .interfaceDown, interface: name, errno: 100, operation: "sending frames") }
            var any = false
            for f in frames {
                let bytes = f.bytes
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

    public func receive(limit: Int, timeout: Duration, alsoWatching descriptors: [Int32],
                        _ body: (UnsafeRawBufferPointer) -> Void) throws -> (frames: Int, ready: UInt32) {
        var ready: UInt32 = 0
        var frames = take(limit)
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
        for f in frames { f.withUnsafeBytes(body) }
        return (frames.count, ready)
    }

    private func take(_ limit: Int) -> [[UInt8]] {
        wire.withLock { w in
            let n = min(limit, w.queue.count)
            defer { w.queue.removeFirst(n) }
            return Array(w.queue.prefix(n))
        }
    }
}

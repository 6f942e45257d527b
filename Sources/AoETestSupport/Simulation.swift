import AoECore
import AoEEngine
import AoEProtocol

/// An in-memory network with fault injection, driving an `EngineCore` on a manual clock: the
/// state-machine test bench. Deterministic for a given seed.
///
/// Each target sits on one or more of the initiator's links. Frames cross after `latency`, and
/// can be dropped, duplicated, reordered (extra random delay), truncated, or black-holed above
/// a per-link size (a switch with a small MTU).
public struct Simulation {
    public var core: EngineCore
    public var targets: [MemoryTarget]
    /// Which links each target is reachable on.
    public var attachments: [[LinkID]]
    public private(set) var now: Instant = Instant(nanoseconds: 1_000_000)
    public var latency: Duration = .microseconds(100)
    /// Per-link faults.
    public var faults: [LinkID: Faults] = [:]
    public private(set) var completions: [RequestID: Result<Void, AoEIOError>] = [:]
    public private(set) var log: [String] = []
    public private(set) var sentToTargets = 0
    public private(set) var targetsChangedCount = 0
    /// Receive placement (issue 32): answers due at one instant on a link are received as one
    /// scattered receive call (`ReceiveLayout`), predicted for every link first and received
    /// last link first, so one link's pins are held while the others' answers are handled —
    /// the worst interleaving threads could produce. Completions a pin holds wait for it, as
    /// in the driver.
    public var placement = false
    /// READ answers received in place, and completions held back by a pin.
    public private(set) var placedHits = 0
    public private(set) var heldCompletions = 0
    private var held: [RequestID: Result<Void, AoEIOError>] = [:]
    private var queue: [Event] = []
    private var rng: SplitMixRNG
    private var order = 0

    /// What goes wrong on one link.
    public struct Faults: Sendable {
        public var drop = 0.0
        public var duplicate = 0.0
        /// Probability of an extra delay of up to `reorderDelay`, which reorders frames.
        public var reorder = 0.0
        public var reorderDelay: Duration = .milliseconds(2)
        public var truncate = 0.0
        /// Frames longer than this (bytes after the Ethernet header) vanish silently.
        public var mtuLimit: Int?
        /// The link is cut: nothing crosses.
        public var cut = false
        /// Probability that a response is preceded by a forged copy from another MAC with
        /// corrupted data (a spoofer on the LAN).
        public var spoof = 0.0
        public init() {}
    }

    struct Event {
        var at: Instant
        var order: Int
        var link: LinkID
        var toTarget: Int?  // nil: to the initiator
        var bytes: [UInt8]
    }

    /// - Parameters:
    ///   - links: (id, MTU) of the initiator's links; their MACs are 02:00:00:00:00:id.
    ///   - targets: the targets and the links they are on.
    public init(
        configuration: EngineConfiguration = EngineConfiguration(), links: [(LinkID, Int)],
        targets: [(MemoryTarget, [LinkID])], seed: UInt64 = 1
    ) {
        core = EngineCore(configuration: configuration)
        self.targets = targets.map(\.0)
        attachments = targets.map(\.1)
        rng = SplitMixRNG(seed)
        var out: [EngineAction] = []
        for (id, mtu) in links {
            core.addLink(id, name: "sim\(id.rawValue)", mac: Self.mac(id), mtu: mtu, now: now, &out)
        }
        perform(out)
    }

    /// The MAC of the initiator's link `id`.
    public static func mac(_ id: LinkID) -> MACAddress { MACAddress(rawValue: 0x0200_0000_0000 | UInt64(id.rawValue)) }

    /// Submits a request now.
    public mutating func submit(
        _ kind: IOKind, _ target: TargetAddress, lba: UInt64, sectors: Int,
        buffer: IOBuffer? = nil
    ) -> RequestID {
        let id = core.makeRequestID()
        var out: [EngineAction] = []
        core.submit(
            SectorRequest(id: id, target: target, kind: kind, lba: lba, sectors: sectors, buffer: buffer),
            now: now, &out)
        perform(out)
        return id
    }

    /// Delivers a frame to the initiator from outside (a spoofed or unsolicited frame).
    public mutating func inject(_ bytes: [UInt8], on link: LinkID, after delay: Duration = .zero) {
        schedule(Event(at: now + delay, order: 0, link: link, toTarget: nil, bytes: bytes))
    }

    /// Runs until `done` holds or `limit` of simulated time has passed. Returns whether `done` held.
    @discardableResult
    public mutating func run(for limit: Duration, until done: (Simulation) -> Bool = { _ in false }) -> Bool {
        let end = now + limit
        while !done(self) {
            let next = min(queue.first?.at ?? end, core.nextDeadline(now: now), end)
            if next >= end && (queue.first?.at ?? end) >= end && core.nextDeadline(now: now) >= end {
                now = end
                return done(self)
            }
            // Guarantee progress even if a deadline lies in the past.
            now = next > now ? next : now + .microseconds(10)
            if placement {
                deliverPlaced()
            } else {
                while let e = queue.first, e.at <= now {
                    queue.removeFirst()
                    deliver(e)
                }
            }
            var out: [EngineAction] = []
            core.tick(now: now, &out)
            perform(out)
        }
        return true
    }

    /// Advances time by `d`, processing everything on the way.
    public mutating func advance(_ d: Duration) { run(for: d) }

    /// Whether `id` has completed.
    public func isDone(_ id: RequestID) -> Bool { completions[id] != nil }

    /// Everything due now: frames to targets as they come, answers per link in placed batches.
    mutating func deliverPlaced() {
        var batches: [(LinkID, [[UInt8]])] = []
        while let e = queue.first, e.at <= now {
            queue.removeFirst()
            if e.toTarget != nil { deliver(e); continue }
            if let i = batches.firstIndex(where: { $0.0 == e.link }) {
                batches[i].1.append(e.bytes)
            } else {
                batches.append((e.link, [e.bytes]))
            }
        }
        guard !batches.isEmpty else { return }
        let slotSize = 9216 + 64
        var lists: [[Placement]] = []
        for (link, frames) in batches {
            var list: [Placement] = []
            core.predictPlacements(
                on: link, into: &list, limit: frames.count, largest: slotSize - ReceiveLayout.headerBytes)
            lists.append(list)
        }
        for b in batches.indices.reversed() {
            let (link, frames) = batches[b]
            let list = lists[b]
            let slots = UnsafeMutableRawPointer.allocate(byteCount: slotSize * frames.count, alignment: 16)
            defer { slots.deallocate() }
            var received: [(Int, Int, Placement?)] = []  // (index, length, placement if hit)
            for (i, f) in frames.enumerated() {
                let slot = slots + i * slotSize
                if i < list.count {
                    let n = f.withUnsafeBytes {
                        ReceiveLayout.scatter($0, slot: slot, slotSize: slotSize, placement: list[i])
                    }
                    let hit = ReceiveLayout.settle(slot: slot, slotSize: slotSize, length: n, placement: list[i])
                    received.append((i, n, hit ? list[i] : nil))
                } else {
                    let n = min(f.count, slotSize)
                    f.withUnsafeBytes { slot.copyMemory(from: $0.baseAddress!, byteCount: n) }
                    received.append((i, n, nil))
                }
            }
            var freed: [RequestID] = []
            core.releasePlacements(on: link, freed: &freed)
            for id in freed {
                if let r = held.removeValue(forKey: id) { perform([.complete(id, r)]) }
            }
            for (i, n, p) in received {
                let slot = slots + i * slotSize
                var out: [EngineAction] = []
                if let p {
                    placedHits += 1
                    core.receive(
                        UnsafeRawBufferPointer(start: slot, count: ReceiveLayout.headerBytes),
                        placedData: UnsafeRawBufferPointer(start: p.destination, count: p.count), on: link, now: now,
                        &out)
                } else {
                    core.receive(UnsafeRawBufferPointer(start: slot, count: n), on: link, now: now, &out)
                }
                perform(out)
            }
        }
    }

    mutating func deliver(_ e: Event) {
        if let t = e.toTarget {
            sentToTargets += 1
            let delay = targets[t].answerDelay(for: e.bytes)
            for r in targets[t].handle(e.bytes) { transmit(r, on: e.link, toTarget: nil, after: delay) }
        } else {
            var out: [EngineAction] = []
            core.receive(e.bytes, on: e.link, now: now, &out)
            perform(out)
        }
    }

    /// Carries out actions the test got from `core` directly (as the driver would).
    public mutating func perform(_ actions: [EngineAction]) {
        for a in actions {
            switch a {
            case .send(let link, let frame):
                let bytes = frame.bytes
                for (i, links) in attachments.enumerated() where links.contains(link) {
                    let dst = MACAddress(bytes: bytes.prefix(6))!
                    if dst == .broadcast || dst == targets[i].mac { transmit(bytes, on: link, toTarget: i) }
                }
            case .complete(let id, let result):
                if core.placementHolds(id) {
                    heldCompletions += 1
                    held[id] = result
                    continue
                }
                precondition(completions[id] == nil, "request \(id) completed twice")
                completions[id] = result
            case .log(let line): log.append(line)
            case .targetsChanged: targetsChangedCount += 1
            case .timing: break
            }
        }
    }

    mutating func transmit(_ bytes: [UInt8], on link: LinkID, toTarget: Int?, after delay: Duration = .zero) {
        let f = faults[link] ?? Faults()
        if f.cut { return }
        if let limit = f.mtuLimit, bytes.count - 14 > limit { return }
        if chance(f.drop) { return }
        var b = bytes
        if chance(f.truncate) && b.count > 40 { b = Array(b.prefix(Int(rng.next() % UInt64(b.count - 24)) + 24)) }
        var at = now + latency + delay
        if toTarget == nil && chance(f.spoof) {
            var forged = b
            forged[11] ^= 0x55  // another source MAC
            if forged.count > 40 { forged[40] ^= 0xFF }
            schedule(Event(at: at, order: 0, link: link, toTarget: nil, bytes: forged))
        }
        if chance(f.reorder) { at = at + .nanoseconds(Int64(rng.next() % max(f.reorderDelay.nanoseconds, 1))) }
        schedule(Event(at: at, order: 0, link: link, toTarget: toTarget, bytes: b))
        if chance(f.duplicate) {
            schedule(
                Event(
                    at: at + .microseconds(Int64(rng.next() % 3000)), order: 0, link: link, toTarget: toTarget, bytes: b
                ))
        }
    }

    mutating func schedule(_ e: Event) {
        var e = e
        order += 1
        e.order = order
        let i = queue.firstIndex { ($0.at, $0.order) > (e.at, e.order) } ?? queue.count
        queue.insert(e, at: i)
    }

    mutating func chance(_ p: Double) -> Bool { p > 0 && Double(rng.next() % 1_000_000) / 1_000_000 < p }
}

/// SplitMix64, seeded.
public struct SplitMixRNG: RandomNumberGenerator, Sendable {
    var state: UInt64
    public init(_ seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

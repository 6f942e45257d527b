import AoEProtocol

/// A local interface as the router knows it.
struct LinkInfo: Sendable {
    var name: String
    var mac: MACAddress
    var mtu: Int
    var up = true
    /// False when the allow-list excludes this link.
    var allowed = true
    var usable: Bool { up && allowed }
}

/// The links by id, in an array indexed by the id: a link is looked up for every frame sent
/// (is its path usable? what is its MAC?), and ids are small and dense (the driver numbers its
/// links from 0), so a hash per lookup buys nothing.
struct LinkTable: Sendable {
    private var slots: [LinkInfo?] = []

    subscript(id: LinkID) -> LinkInfo? {
        get { slots.indices.contains(id.rawValue) ? slots[id.rawValue] : nil }
        set {
            // Never reached from input (issue 30's audit): Link ids are the engine's own indices of its links.
            precondition(id.rawValue >= 0 && id.rawValue < 1 << 16, "link ids are small and dense")
            if id.rawValue >= slots.count { slots += Array(repeating: nil, count: id.rawValue - slots.count + 1) }
            slots[id.rawValue] = newValue
        }
    }

    /// The ids in use, in order.
    var keys: [LinkID] { slots.indices.filter { slots[$0] != nil }.map(LinkID.init) }
    var isEmpty: Bool { !slots.contains { $0 != nil } }
    func mapValues<T>(_ f: (LinkInfo) -> T) -> [LinkID: T] {
        var out: [LinkID: T] = [:]
        for (i, l) in slots.enumerated() { if let l { out[LinkID(i)] = f(l) } }
        return out
    }
}

/// What the target state machines share with the router to put frames on the wire: the
/// links, the tags in flight and the tunables. The router owns it and hands it (`inout`) to
/// the one target it is working on.
struct Wire: Sendable {
    var configuration: EngineConfiguration
    var links = LinkTable()
    var frames = FrameTable()
    /// READ frames in flight per link, for receive placement.
    var placements = ReceivePlacements()

    func isUsable(_ link: LinkID) -> Bool { links[link]?.usable ?? false }

    /// The usable links, in a stable order.
    var usableLinks: [LinkID] { links.keys.filter { links[$0]!.usable } }

    /// Broadcasts a Query Config on `link`: for all targets, or only `target` (a shelf with
    /// slot 0xff asks a whole shelf). AoEr11 §3.2.
    mutating func broadcastQuery(on link: LinkID, target: TargetAddress, _ out: inout [EngineAction]) {
        queryConfig(to: .broadcast, on: link, target: target, &out)
    }

    /// A Query Config to one MAC (a path's target) or the broadcast address.
    mutating func queryConfig(
        to destination: MACAddress, on link: LinkID, target: TargetAddress,
        _ out: inout [EngineAction]
    ) {
        guard let l = links[link] else { return }
        let f = AoEFrame(
            header: AoEHeader(
                destination: destination, source: l.mac, shelf: target.shelf, slot: target.slot,
                command: .queryConfig, tag: frames.allocate()),
            body: .queryConfig(QueryConfig()))
        out.append(.send(link, OutgoingFrame(bytes: f.encoded())))
    }

    /// An ATA header to `path` of `target` with a fresh tag; nil if the path's link is gone.
    mutating func ataHeader(to path: Path, of target: TargetAddress) -> AoEHeader? {
        guard let l = links[path.link] else { return nil }
        return AoEHeader(
            destination: path.mac, source: l.mac, shelf: target.shelf, slot: target.slot,
            command: .ata, tag: frames.allocate())
    }

    /// Records `frame` as in flight under `tag` and queues `bytes` on `link`.
    mutating func transmit(
        _ bytes: OutgoingFrame, tag: Tag, _ frame: FrameInFlight, on link: LinkID,
        _ out: inout [EngineAction]
    ) {
        frames.record(tag, frame)
        out.append(.send(link, bytes))
    }
}

import AoEProtocol

/// A target's paths and everything per path: which one carries the next frame, the payload
/// probes that drive each path's `MTUNegotiator`, the check of a suspect path, and setting
/// aside a path that keeps losing while another works (Linux aoecmd.c `ejectif`/taint).
///
/// Pure like the rest of the core: methods take `now` and append actions to `out`.
struct PathSet: Sendable {
    let address: TargetAddress
    private(set) var paths: [Path] = []
    private var roundRobin = 0

    init(address: TargetAddress) { self.address = address }

    subscript(id: PathID) -> Path {
        get { paths[id.rawValue] }
        _modify { yield &paths[id.rawValue] }
    }

    var ids: [PathID] { paths.indices.map(PathID.init) }
    var isEmpty: Bool { paths.isEmpty }
    func contains(_ id: PathID) -> Bool { paths.indices.contains(id.rawValue) }

    /// The path through `link` to `mac`, if there is one.
    func find(link: LinkID, mac: MACAddress) -> PathID? {
        paths.firstIndex { $0.link == link && $0.mac == mac }.map(PathID.init)
    }

    mutating func add(_ p: Path) -> PathID {
        paths.append(p)
        return PathID(paths.count - 1)
    }

    /// Usable now: its link is up and allowed, and it is not set aside.
    func isUsable(_ id: PathID, _ wire: Wire, now: Instant) -> Bool {
        wire.isUsable(self[id].link) && (self[id].setAsideUntil.map { now >= $0 } ?? true)
    }

    func status(_ id: PathID, _ wire: Wire) -> PathStatus {
        let p = self[id]
        if !wire.isUsable(p.link) { return .linkDown }
        if p.setAsideUntil != nil { return .setAside }
        return p.negotiator.isSettled ? .ok : .probing
    }

    /// Whether a path other than `id` is healthy (not set aside, link usable).
    func hasHealthyPath(besides id: PathID, _ wire: Wire) -> Bool {
        paths.indices.contains { $0 != id.rawValue && paths[$0].setAsideUntil == nil && wire.isUsable(paths[$0].link) }
    }

    /// The path for the next frame, round-robin among those with room in their window; one
    /// set aside is used only when no healthy one exists (Linux: tainted targets). A
    /// retransmission avoids the path that lost it (`avoiding`) when another has room.
    mutating func choose(avoiding: PathID?, _ wire: Wire) -> PathID? {
        let n = paths.count
        guard n > 0 else { return nil }
        let healthy = paths.indices.filter { paths[$0].setAsideUntil == nil && wire.isUsable(paths[$0].link) }
        let candidates = healthy.isEmpty ? paths.indices.filter { wire.isUsable(paths[$0].link) } : healthy
        for k in 0..<n {
            let i = (roundRobin + k) % n
            guard candidates.contains(i), paths[i].hasRoom else { continue }
            if i == avoiding?.rawValue && candidates.count > 1
                && candidates.contains(where: { $0 != i && paths[$0].hasRoom })
            {
                continue
            }
            roundRobin = (i + 1) % n
            return PathID(i)
        }
        return nil
    }

    // MARK: - Answers and losses

    /// A frame of work on `id` was answered.
    mutating func answered(_ id: PathID, _ f: FrameInFlight, now: Instant) {
        if f.range.retries == 0 { self[id].rtt.sample(now - f.sentAt) }  // Karn's rule
        self[id].window.onResponse()
        self[id].negotiator.frameAnswered(sectors: f.range.sectors)
        self[id].lossesSinceAnswer = 0
    }

    /// A late answer to a transmission that had timed out: the frame was not lost, the path
    /// was slow. Learn the real RTT and undo the window cut, so a stall does not cost a slow
    /// start.
    mutating func answeredLate(_ r: RetiredFrame, from mac: MACAddress, now: Instant) {
        guard contains(r.path), self[r.path].mac == mac else { return }
        self[r.path].rtt.sample(now - r.sentAt)
        self[r.path].window.undoLoss()
    }

    /// A frame of work on `id` timed out: cut the window, check large frames for a black hole,
    /// and set the path aside when it keeps losing while another works.
    mutating func lost(_ id: PathID, _ f: FrameInFlight, counters: inout TargetCounters, _ wire: inout Wire,
                       now: Instant, _ out: inout [EngineAction]) {
        self[id].window.onLoss(sentAt: f.sentAt, now: now)
        let before = self[id].negotiator.payload
        if f.range.sectors * 512 > 1024 { counters.lostJumbo += 1 }
        if self[id].negotiator.frameLost(sectors: f.range.sectors), let l = wire.links[self[id].link] {
            out.append(.log("\(address): large frames lost on \(l.name) → \(self[id].mac); "
                            + "checking \(before)-byte and 1024-byte frames"))
            sendSuspicionProbes(id, size: true, alive: true, counters: &counters, &wire, now: now, &out)
        }
        self[id].lossesSinceAnswer += 1
        if self[id].lossesSinceAnswer > 2 * self[id].window.limit, hasHealthyPath(besides: id, wire),
            self[id].setAsideUntil == nil, let l = wire.links[self[id].link]
        {
            self[id].setAsideUntil = now + wire.configuration.setAsideTime
            out.append(.log("\(address): path \(l.name) → \(self[id].mac) lost "
                            + "\(self[id].lossesSinceAnswer) frames in a row; set aside"))
        }
    }

    /// Set-aside paths come back for a re-probe when their time is up.
    mutating func endSetAside(now: Instant) {
        for i in paths.indices where paths[i].setAsideUntil.map({ now >= $0 }) ?? false {
            paths[i].setAsideUntil = nil
            paths[i].lossesSinceAnswer = 0
        }
    }

    /// The earliest end of a set-aside, if earlier than `bound`.
    func earliestSetAsideEnd(before bound: Instant) -> Instant {
        paths.compactMap(\.setAsideUntil).reduce(bound, min)
    }

    mutating func resetWindows(bufferCount: Int, maxOutstanding: Int) {
        for i in paths.indices { paths[i].window.reset(bufferCount: bufferCount, maxOutstanding: maxOutstanding) }
    }

    /// Starts every path's payload negotiation anew (etherd/revalidate).
    mutating func renegotiate(sectorsPerCommand: Int, _ wire: Wire) {
        for i in paths.indices {
            let link = wire.links[paths[i].link]
            paths[i].negotiator = MTUNegotiator(
                mtu: link?.mtu ?? paths[i].mtu, targetSectors: sectorsPerCommand,
                cap: wire.configuration.maxPayload(for: address, interface: link?.name))
        }
    }

    func snapshot(_ wire: Wire) -> [PathSnapshot] {
        ids.map { id in
            let p = self[id]
            let link = wire.links[p.link]
            return PathSnapshot(
                link: p.link, interface: link?.name ?? "?", mac: p.mac, payload: p.negotiator.payload,
                mtu: link?.mtu ?? p.mtu, rtt: p.rtt.smoothed, rto: p.rtt.timeout, outstanding: p.outstanding,
                window: p.window.size, sent: p.sent, lost: p.lost, state: status(id, wire))
        }
    }
}

import AoEProtocol

/// A target's paths and everything per path: which one carries the next frame, the payload
/// probes that drive each path's `MTUNegotiator`, the check of a suspect path, the verification
/// of candidates, and ejecting a path that stays silent while another answers (Linux aoecmd.c
/// `ejectif`).
///
/// Pure like the rest of the core: methods take `now` and append actions to `out`.
struct PathSet: Sendable {
    let address: TargetAddress
    private(set) var paths: [Path] = []
    private var roundRobin = 0
    private var nextID = 0
    /// Sectors per frame a payload probe just proved on a link (issue 31): evidence for the
    /// other paths there, which `EngineCore` takes and passes on.
    var proven: (link: LinkID, sectors: Int)?

    init(address: TargetAddress) { self.address = address }

    private func index(_ id: PathID) -> Int? {
        // Ids are handed out in order and paths are seldom removed, so an id is usually its
        // index: one comparison per lookup on the per-frame path instead of a search.
        if paths.indices.contains(id.rawValue), paths[id.rawValue].id == id { return id.rawValue }
        return paths.firstIndex { $0.id == id }
    }

    /// - Precondition: the path exists (`contains`).
    subscript(id: PathID) -> Path {
        get { paths[index(id)!] }
        _modify {
            let i = index(id)!
            yield &paths[i]
        }
    }

    var ids: [PathID] { paths.map(\.id) }
    var isEmpty: Bool { paths.isEmpty }
    func contains(_ id: PathID) -> Bool { index(id) != nil }

    /// The path through `link` to `mac`, if there is one.
    func find(link: LinkID, mac: MACAddress) -> PathID? { paths.first { $0.link == link && $0.mac == mac }?.id }

    /// How many paths (candidates and duplicates included) go through `link`.
    func count(on link: LinkID) -> Int { paths.filter { $0.link == link }.count }

    /// Adds a candidate path; `make` gets its id.
    mutating func add(_ make: (PathID) -> Path) -> PathID {
        let id = PathID(nextID)
        nextID += 1
        paths.append(make(id))
        return id
    }

    /// A candidate on `link` that only announced itself (never answered our query), the one
    /// with nothing in flight first: what gives way when an answer to our query finds no room.
    func announcedOnlyCandidate(on link: LinkID) -> PathID? {
        let all = paths.filter { $0.link == link && $0.standing == .candidate && !$0.answeredUs }
        return (all.first { $0.outstanding == 0 } ?? all.first)?.id
    }

    mutating func remove(_ id: PathID) {
        guard let i = index(id) else { return }
        paths.remove(at: i)
        if roundRobin > i { roundRobin -= 1 }
        if roundRobin >= paths.count { roundRobin = 0 }
    }

    /// Carries I/O now: verified, and its link is up and allowed.
    func isUsable(_ id: PathID, _ wire: Wire) -> Bool {
        guard let i = index(id) else { return false }
        return paths[i].standing == .verified && wire.isUsable(paths[i].link)
    }

    var hasVerified: Bool { paths.contains { $0.standing == .verified } }

    func status(_ p: Path, _ wire: Wire) -> PathStatus {
        if !wire.isUsable(p.link) { return .linkDown }
        switch p.standing {
        case .candidate: return .candidate
        case .proving: return .proving
        case .duplicate: return .duplicate
        case .verified: return p.negotiator.isSettled ? .ok : .probing
        }
    }

    /// The path for the next frame, round-robin among verified paths with room in their window.
    /// Only an IDENTIFY of a target that has no verified path yet (`forIdentify`) may go to a
    /// candidate: its answer is what verifies it. A retransmission avoids the path that lost it
    /// (`avoiding`) when another has room.
    mutating func choose(avoiding: PathID?, forIdentify: Bool, _ wire: Wire) -> PathID? {
        // Called for every frame: one pass, no allocation. The avoided path is remembered and
        // used only when no other eligible path has room.
        let n = paths.count
        guard n > 0 else { return nil }
        let candidatesToo = forIdentify && !hasVerified
        if candidatesToo {
            // A candidate that answered our query first: announcements cost a flood nothing.
            for i in paths.indices
            where paths[i].standing == .candidate && paths[i].answeredUs && paths[i].hasRoom
                && wire.isUsable(paths[i].link)
            {
                return paths[i].id
            }
        }
        var fallback: Int?
        for k in 0..<n {
            let i = (roundRobin + k) % n
            guard paths[i].hasRoom,
                paths[i].standing == .verified || (candidatesToo && paths[i].standing == .candidate),
                wire.isUsable(paths[i].link)
            else { continue }
            if paths[i].id == avoiding {
                fallback = fallback ?? i
                continue
            }
            roundRobin = (i + 1) % n
            return paths[i].id
        }
        guard let i = fallback else { return nil }
        roundRobin = (i + 1) % n
        return paths[i].id
    }

    // MARK: - Answers and losses

    /// A frame of work on `id` was answered.
    mutating func answered(_ id: PathID, _ f: FrameInFlight, now: Instant) {
        guard let i = index(id) else { return }
        // Karn's rule; and the medium's time is not the path's (`FrameKind.waitsOnMedium`).
        if f.range.retries == 0 && !f.range.kind.waitsOnMedium {
            paths[i].rtt.sample(nanoseconds: now.nanoseconds(since: f.sentAt))
        }
        paths[i].window.onResponse()
        paths[i].negotiator.frameAnswered(sectors: f.range.sectors)
        if f.range.sectors > MTUNegotiator.safeSectors, f.sentAt >= paths[i].largeAnswered.sentAt {
            paths[i].largeAnswered = (f.sentAt, f.range.sectors)
        }
        paths[i].lossesSinceAnswer = 0
        paths[i].lossesWhileOthersAnswered = 0
        paths[i].lastAnswer = now
    }

    /// A late answer to a transmission that had timed out: the frame was not lost, the path
    /// was slow. Learn the real RTT and undo the window cut, so a stall does not cost a slow
    /// start.
    /// Returns whether it was proof of a spurious timeout.
    @discardableResult
    mutating func answeredLate(_ r: RetiredFrame, from mac: MACAddress, now: Instant) -> Bool {
        guard contains(r.path), self[r.path].mac == mac else { return false }
        self[r.path].rtt.spuriousTimeout(late: now - r.sentAt)
        self[r.path].window.undoLoss()
        self[r.path].lastAnswer = now
        return true
    }

    /// A frame of work on `id` timed out: cut the window and check large frames for a black
    /// hole. Returns true when the path should be ejected: three frames in a row were lost on it
    /// while another verified path answered something during their flight, and it has answered
    /// nothing for four RTOs. (A stall of the target silences every path alike, so it ejects none.)
    mutating func lost(
        _ id: PathID, _ f: FrameInFlight, counters: inout TargetCounters, _ wire: inout Wire,
        now: Instant, _ out: inout [EngineAction]
    ) -> Bool {
        let sizeBefore = self[id].window.size
        let ceilingBefore = self[id].window.ceiling
        let newEvent = self[id].window.onLoss(sentAt: f.sentAt, now: now)
        if newEvent { counters.lossEvents += 1 }
        logLossEpisode(
            id, newEvent: newEvent, sizeBefore: sizeBefore, ceilingBefore: ceilingBefore, wire, now: now, &out)
        let before = self[id].negotiator.payload
        if f.range.sectors * 512 > 1024 { counters.lostJumbo += 1 }
        // A frame of this size sent at most a round trip before it (in the same burst) was
        // answered: the size crosses, so this loss is an overrun or a drop, not a black hole (an
        // MTU black hole loses every frame of that size from then on). An overrun drops the
        // tail of a burst, and the halved window sends nothing after it for a while, so the
        // proof is usually a frame sent just before the lost one.
        let proof = self[id].largeAnswered
        let margin = self[id].rtt.smoothed ?? .zero
        let sizeCrosses = proof.sectors >= f.range.sectors && proof.sentAt + margin >= f.sentAt
        if !sizeCrosses, self[id].negotiator.frameLost(sectors: f.range.sectors), let l = wire.links[self[id].link] {
            if self[id].episodeLost <= 1 || !self[id].stallLogged {
                out.append(
                    .log(
                        "\(address): large frames lost on \(l.name) → \(self[id].mac); "
                            + "checking \(before)-byte and 1024-byte frames"))
            }
            sendSuspicionProbes(id, size: true, alive: true, counters: &counters, &wire, now: now, &out)
        }
        self[id].lossesSinceAnswer += 1
        if paths.contains(where: { $0.id != id && $0.standing == .verified && ($0.lastAnswer ?? .zero) > f.sentAt }) {
            self[id].lossesWhileOthersAnswered += 1
        }
        let p = self[id]
        return p.lossesWhileOthersAnswered >= 3 && now - (p.lastAnswer ?? p.since) >= p.rtt.timeout * 4
    }

    /// One `err` line per loss episode (losses with less than `Path.episodeQuiet` between them),
    /// saying what the window did; later losses of the episode are counted, not logged.
    private mutating func logLossEpisode(
        _ id: PathID, newEvent: Bool, sizeBefore: Int, ceilingBefore: Int?,
        _ wire: Wire, now: Instant, _ out: inout [EngineAction]
    ) {
        let quiet = self[id].lastLossAt.map { now - $0 >= Path.episodeQuiet } ?? true
        self[id].lastLossAt = now
        self[id].episodeLost = quiet ? 1 : self[id].episodeLost + 1
        if quiet { self[id].stallLogged = false }
        guard quiet, newEvent else { return }
        let p = self[id]
        let name = wire.links[p.link]?.name ?? "?"
        let w = p.window
        var line = "\(address): frames unanswered on \(name) → \(p.mac) with \(sizeBefore) in flight"
        if let c = w.ceiling, c != ceilingBefore {
            line +=
                " (Buffer Count \(p.config.bufferCount)): window \(w.size), at most \(w.cap) from now on (a target "
                + "that queues fewer frames than it offers, or a stall: `spurious` in stats counts the late answers)"
        } else {
            line += ": window \(sizeBefore) → \(w.size)"
        }
        out.append(
            .log(
                line + "; retransmitting (more losses within \(Path.episodeQuiet.components.seconds) s are counted "
                    + "in stats, not logged)"))
    }

    /// A verified path to eject now that no frame of it is out: it lost three in a row, has
    /// answered nothing for a second (and four RTOs), and another verified path answered since.
    /// This is how a path left behind by a NIC swap goes once traffic has moved to the new one.
    func silentPath(now: Instant) -> PathID? {
        paths.first { p in
            let heard = p.lastAnswer ?? p.since
            return p.standing == .verified && p.outstanding == 0 && p.lossesSinceAnswer >= 3
                && now - heard >= max(.seconds(1), p.rtt.timeout * 4)
                && paths.contains { $0.id != p.id && $0.standing == .verified && ($0.lastAnswer ?? .zero) > heard }
        }?.id
    }

    /// When `silentPath` may next find a path to eject, if before `bound`.
    /// The next upward payload try of any verified path (issue 31), if before `bound`. Only
    /// while the target is up: that is when `raiseIfDue` runs (a deadline that passes without
    /// it would have the driver's timer spin).
    /// A frame of `sectors` was answered on `link`: paths there that run below it try upward now.
    mutating func raiseSoon(on link: LinkID, sectors: Int, now: Instant) {
        for i in paths.indices where paths[i].link == link && paths[i].standing == .verified {
            paths[i].negotiator.raiseSoon(sectors: sectors, now: now)
        }
    }

    func raiseDeadline(before bound: Instant) -> Instant {
        var d = bound
        for p in paths where p.standing == .verified { if let r = p.negotiator.raiseAt { d = min(d, r) } }
        return d
    }

    func silenceDeadline(before bound: Instant) -> Instant {
        var d = bound
        // Only paths `silentPath` would eject once the time has come: a deadline that passes
        // without an ejection would have the driver's timer spin.
        for p in paths where p.standing == .verified && p.outstanding == 0 && p.lossesSinceAnswer >= 3 {
            let heard = p.lastAnswer ?? p.since
            guard
                paths.contains(where: { $0.id != p.id && $0.standing == .verified && ($0.lastAnswer ?? .zero) > heard })
            else { continue }
            d = min(d, heard + max(.seconds(1), p.rtt.timeout * 4))
        }
        return d
    }

    mutating func resetWindows(bufferCount: Int, maxOutstanding: Int) {
        for i in paths.indices {
            paths[i].window.reset(bufferCount: bufferCount, maxOutstanding: maxOutstanding)
            paths[i].negotiator.abandonCheck()  // its probes went with the frames
        }
    }

    /// Starts every path's payload negotiation anew (etherd/revalidate).
    mutating func renegotiate(sectorsPerCommand: Int, _ wire: Wire) {
        for id in ids { renegotiate(id, sectorsPerCommand: sectorsPerCommand, wire) }
    }

    /// Starts one path's payload negotiation anew, within its link's MTU as it is now (the MTU
    /// changed under it): at 1024 bytes, probing up to the new ceiling.
    mutating func renegotiate(_ id: PathID, sectorsPerCommand: Int, _ wire: Wire) {
        let link = wire.links[self[id].link]
        self[id].negotiator = MTUNegotiator(
            mtu: link?.mtu ?? self[id].mtu, targetSectors: sectorsPerCommand,
            cap: wire.configuration.maxPayload(for: address, interface: link?.name))
    }

    func snapshot(_ wire: Wire, now: Instant) -> [PathSnapshot] {
        paths.map { p in
            let link = wire.links[p.link]
            var s = PathSnapshot(
                link: p.link, interface: link?.name ?? "?", mac: p.mac, payload: p.negotiator.payload,
                mtu: link?.mtu ?? p.mtu, rtt: p.rtt.smoothed, rto: p.rtt.timeout, outstanding: p.outstanding,
                window: p.window.size, sent: p.sent, lost: p.lost, state: status(p, wire),
                rttDeviation: p.rtt.smoothed == nil ? .zero : p.rtt.deviation, ceiling: p.window.ceiling,
                lowestCeiling: p.window.lowestCeiling, burst: p.burst)
            s.nextRaise = p.negotiator.raiseAt.map { $0 - now }
            s.ceilingPayload = p.negotiator.ceilingSectors * 512
            s.searchSettled = p.negotiator.isSettled
            return s
        }
    }
}

import AoEProtocol

/// The whole initiator as a pure state machine. This is its router: the links, the tags in
/// flight, discovery and the beacon, and the fan-out of received frames and timer ticks to the
/// targets. Each target is a `SectorScheduler` (queue, pending requests, flush barrier), which
/// owns a `PathSet` (paths earned by IDENTIFY, payload probes, ejection), which drives one `MTUNegotiator`,
/// `CongestionWindow` and `RTTEstimator` per path.
///
/// Every method takes `now` and appends what must happen to `out`; nothing here does I/O or
/// reads a clock (STYLE: postgres-nio's pool state machine). The driver (`Engine`) owns it behind
/// its lock and performs the actions after unlocking.
public struct EngineCore: Sendable {
    /// The links, the frames in flight and the tunables, which the targets share.
    var wire: Wire
    var targets: [TargetAddress: SectorScheduler] = [:]
    var nextBeacon: Instant = .zero
    var nextRequest: UInt64 = 1
    /// Frames that did not decode, or were requests from another initiator.
    public private(set) var malformedFrames: UInt64 = 0
    /// Responses for targets we do not know (stray).
    public private(set) var strayFrames: UInt64 = 0
    /// The links AoE may use (nil: all), Linux `aoe_iflist`.
    public private(set) var allowedLinks: Set<LinkID>?
    /// `aoefs disable`'s patterns: matching targets get no frame, and discovery leaves them alone.
    public private(set) var disabledPatterns: [TargetPattern] = []
    /// The latest instant the core has been given. Time that enters the core never goes
    /// backwards (issue 30): a driver reads its clock before it takes its lock, so a `now` can
    /// arrive after a later one another thread already passed in; every entry point clamps its
    /// `now` to this, so no state machine below ever sees time run backwards.
    public private(set) var latestNow: Instant = .zero

    /// - Parameter firstTag: where the frame tags start (the driver picks one at random, so a
    ///   restarted initiator does not reuse the tags of frames its predecessor left in flight).
    public init(configuration: EngineConfiguration = EngineConfiguration(), firstTag: UInt32 = 1) {
        wire = Wire(configuration: configuration)
        wire.frames = FrameTable(firstTag: firstTag)
    }

    /// The tunables in force.
    public var configuration: EngineConfiguration { wire.configuration }

    /// `now`, or the latest instant seen if that is later; remembered (mutating entry points).
    @inline(__always)
    mutating func monotonic(_ now: Instant) -> Instant {
        if now > latestNow { latestNow = now }
        return latestNow
    }

    /// A fresh request id.
    public mutating func makeRequestID() -> RequestID {
        defer { nextRequest += 1 }
        return RequestID(nextRequest)
    }

    /// Changes tunables (`deadsecs`, `maxout`, `maxdata`) for new paths and timers.
    public mutating func reconfigure(_ c: EngineConfiguration) { wire.configuration = c }

    /// Runs `body` on one target's state machine, in place: the dictionary yields the entry
    /// without copying it, so its own dictionaries and queues stay uniquely referenced (no
    /// copy-on-write per frame). `wire` is a separate stored property, so both can be mutated.
    @discardableResult
    mutating func withTarget<R>(_ address: TargetAddress, _ body: (inout SectorScheduler, inout Wire) -> R) -> R? {
        // One hash, and the entry changed in place: `targets[address] != nil` would copy the
        // whole scheduler out to test it (a profile showed two such copies per request).
        guard let i = targets.index(forKey: address) else { return nil }
        return body(&targets.values[i], &wire)
    }

    // MARK: - Links and discovery

    /// Adds an interface and broadcasts a Query Config on it.
    public mutating func addLink(
        _ id: LinkID, name: String, mac: MACAddress, mtu: Int, now: Instant,
        _ out: inout [EngineAction]
    ) {
        let now = monotonic(now)
        wire.links[id] = LinkInfo(name: name, mac: mac, mtu: configuration.mtu(for: name, reported: mtu))
        if nextBeacon == .zero { nextBeacon = now + configuration.beaconInterval }
        wire.broadcastQuery(on: id, target: .broadcast, &out)
    }

    /// One of our interfaces changed (rtnetlink, or a send that found the MTU lowered): it went
    /// down or away (`up` false), came back, or its MTU or MAC changed. nil keeps what is known.
    ///
    /// Down: the frames in flight on it go back to their targets' queues, and its paths carry
    /// nothing until it is up (deadsecs still counts). Up again: Query Config is broadcast on it
    /// and the queued work goes. A new MTU: every path on it negotiates its payload anew, from
    /// 1024 bytes up to the new ceiling, and frames in flight are sent again at the new size.
    public mutating func linkChanged(
        _ id: LinkID, up: Bool? = nil, mtu: Int? = nil, mac: MACAddress? = nil, now: Instant,
        _ out: inout [EngineAction]
    ) {
        let now = monotonic(now)
        guard var l = wire.links[id] else { return }
        let wasUp = l.up, oldMTU = l.mtu
        if let up { l.up = up }
        if let mtu { l.mtu = configuration.mtu(for: l.name, reported: mtu) }
        if let mac { l.mac = mac }
        wire.links[id] = l
        if l.up != wasUp { out.append(.log("\(l.name): interface \(l.up ? "up" : "down")")) }
        let mtuChanged = l.mtu != oldMTU
        if mtuChanged { out.append(.log("\(l.name): MTU \(oldMTU) → \(l.mtu); payloads on it negotiated again")) }
        if (wasUp && !l.up) || mtuChanged {
            for address in targets.keys {
                withTarget(address) { t, w in t.linkChanged(id, renegotiate: mtuChanged, &w, &out) }
            }
        }
        guard l.up, !wasUp || mtuChanged else { return }
        // Query Config on it: the targets say what they take now (vblade's sectors per frame
        // follow its own MTU, which may have changed with ours), and whether they are still there.
        if l.allowed { wire.broadcastQuery(on: id, target: .broadcast, &out) }
        // Probe now, not at the next timer tick (which may be far off when nothing is in flight).
        for address in targets.keys {
            withTarget(address) { t, w in
                t.probeAll(&w, now: now, &out)
                t.pump(&w, now: now, &out)
            }
        }
    }

    /// Whether the router counts link `id` as up.
    public func isLinkUp(_ id: LinkID) -> Bool { wire.links[id]?.up ?? false }

    /// Names of the links, by id.
    public var linkNames: [LinkID: String] { wire.links.mapValues(\.name) }

    /// Restricts traffic to `allowed` (nil: all links) and asks the newly allowed links for targets.
    public mutating func setAllowedLinks(_ allowed: Set<LinkID>?, now: Instant, _ out: inout [EngineAction]) {
        let now = monotonic(now)
        allowedLinks = allowed
        for id in wire.links.keys { wire.links[id]!.allowed = allowed?.contains(id) ?? true }
        discover(now: now, &out)
        let names = allowed.map { $0.compactMap { wire.links[$0]?.name }.sorted().joined(separator: " ") } ?? "all"
        out.append(.log("interfaces: \(names)"))
    }

    /// Broadcasts a Query Config on every usable link: for all targets, or only `target`
    /// (a shelf with slot 0xff asks a whole shelf).
    public mutating func discover(_ target: TargetAddress = .broadcast, now: Instant, _ out: inout [EngineAction]) {
        _ = monotonic(now)
        for id in wire.usableLinks { wire.broadcastQuery(on: id, target: target, &out) }
    }

    /// Sends a burst of full-size frames, as many as the target's Buffer Count (within maxout),
    /// on each of `target`'s paths that carry I/O (`aoefs doctor`). Results in the snapshot.
    public mutating func burst(_ target: TargetAddress, now: Instant, _ out: inout [EngineAction]) {
        let now = monotonic(now)
        let maxout = configuration.maxOutstanding(for: target)
        withTarget(target) { t, wire in
            let count = min(Int(t.config?.bufferCount ?? 0), maxout)
            for id in t.paths.ids where t.paths.isUsable(id, wire) {
                t.paths.sendBurst(id, count: count, counters: &t.counters, &wire, now: now, &out)
            }
        }
    }

    // MARK: - Receiving

    /// Handles one received frame: whole in `bytes`, or — received with a placement that hit
    /// (`ReceiveLayout.settle`: an ATA response) — its headers in `bytes` and its data already in
    /// place, `placedData`.
    public mutating func receive(
        _ bytes: UnsafeRawBufferPointer, placedData: UnsafeRawBufferPointer? = nil,
        on link: LinkID, now: Instant, _ out: inout [EngineAction]
    ) {
        let now = monotonic(now)
        guard wire.links[link]?.allowed ?? false else { return }  // not on the allow-list
        guard let header = try? AoEHeader(decoding: bytes), header.isResponse else {
            malformedFrames += 1
            return
        }
        switch header.command {
        case .ata:
            // The hot path: no AoEFrame, no copies until the data lands in the request's buffer.
            let view =
                header.isError
                ? nil
                : placedData.map { ATAView(headers: bytes, data: $0) } ?? ATAView(frame: bytes)
            if !header.isError && view == nil {
                malformedFrames += 1
                return
            }
            receiveATA(header, view, on: link, now: now, &out)
        case .queryConfig:
            guard let frame = try? AoEFrame(decoding: bytes) else {
                malformedFrames += 1
                return
            }
            receiveConfig(frame, on: link, now: now, &out)
        default: strayFrames += 1
        }
    }

    /// The places of the next READ answers expected on `link` (at most `limit`, each at most
    /// `largest` bytes), oldest first, pinned until `releasePlacements(on:)`: a link that can
    /// scatter receives their data there (issue 32).
    public mutating func predictPlacements(on link: LinkID, into list: inout [Placement], limit: Int, largest: Int) {
        wire.placements.predict(on: link, frames: wire.frames, into: &list, limit: limit, largest: largest)
    }

    /// `link`'s receive call is over: its placements are released. Adds to `freed` the requests
    /// no placement holds any more (`placementHolds`), whose completions the driver held back.
    public mutating func releasePlacements(on link: LinkID, freed: inout [RequestID]) {
        wire.placements.release(link, freed: &freed)
    }

    /// Whether a receive call under way may still write into `request`'s buffer: its
    /// completion (which hands the buffer back) must wait for `releasePlacements`.
    public func placementHolds(_ request: RequestID) -> Bool { wire.placements.holds(request) }

    /// Convenience for arrays.
    public mutating func receive(_ bytes: [UInt8], on link: LinkID, now: Instant, _ out: inout [EngineAction]) {
        let now = monotonic(now)
        bytes.withUnsafeBytes { receive($0, on: link, now: now, &out) }
    }

    mutating func receiveConfig(_ f: AoEFrame, on link: LinkID, now: Instant, _ out: inout [EngineAction]) {
        guard !f.header.isError, case .queryConfig(let config) = f.body, let l = wire.links[link] else { return }
        let address = f.header.target
        // Answers for the wildcard addresses are nonsense (Linux aoecmd_cfg_rsp ignores them).
        if address.shelf == .broadcast || address.slot == .broadcast { return }
        if address.shelf.rawValue == 0x0FFF {
            out.append(.log("\(f.header.source): shelf address is all ones (0xfff); check the shelf's dip switches"))
            return
        }
        if disabledPatterns.contains(where: { $0.matches(address) }) { return }  // aoefs disable
        let isNew = targets.index(forKey: address) == nil
        if isNew {
            targets[address] = SectorScheduler(address: address, now: now)
            out.append(
                .log(
                    "\(address): discovered at \(f.header.source) on \(l.name), "
                        + "bufcnt \(config.bufferCount), \(config.sectorsPerCommand) sectors per frame"))
            out.append(.targetsChanged)
        }
        withTarget(address) { t, wire in
            t.heardConfig(
                config, from: f.header.source, on: link, toUs: f.header.destination == l.mac, &wire, now: now, &out)
        }
    }

    mutating func receiveATA(
        _ header: AoEHeader, _ view: ATAView?, on link: LinkID, now: Instant,
        _ out: inout [EngineAction]
    ) {
        guard let flight = wire.frames[header.tag] else {
            // Not in flight: late (its frame timed out and was resent) or a duplicate.
            guard targets.index(forKey: header.target) != nil else {
                strayFrames += 1
                return
            }
            let retired = wire.frames.takeRetired(header.tag)
            withTarget(header.target) { t, _ in
                t.counters.softerr += 1
                if let r = retired, r.target == header.target, t.paths.answeredLate(r, from: header.source, now: now) {
                    t.counters.spurious += 1
                }
            }
            return
        }
        let proven: (link: LinkID, sectors: Int)?? = withTarget(flight.target) { t, wire in
            t.answer(header, view, on: link, for: flight, &wire, now: now, &out)
            guard flight.probe == .search, let p = t.paths.proven else { return nil }
            t.paths.proven = nil
            return p
        }
        // A payload probe proved a size on this link: every other target's paths there that run
        // below it try upward now (a switch port that got jumbo frames serves them all).
        if let p = proven ?? nil {
            for i in targets.values.indices where targets.values[i].address != flight.target {
                targets.values[i].paths.raiseSoon(on: p.link, sectors: p.sectors, now: now)
            }
        }
    }

    // MARK: - Requests

    /// Queues a sector request. Completion comes back as a `.complete` action.
    public mutating func submit(_ r: SectorRequest, now: Instant, _ out: inout [EngineAction]) {
        let now = monotonic(now)
        let done: Void? = withTarget(r.target) { t, wire in t.submit(r, &wire, now: now, &out) }
        if done == nil { out.append(.complete(r.id, .failure(.noSuchTarget(r.target)))) }
    }

    /// Fails the reads that `owner` submitted and that still wait, with `.interrupted` (their
    /// frames' late answers are dropped as for any failed request). Rare (a reader interrupted by
    /// a signal, waiting for a dead target): a scan of the waiting requests. Writes, flushes and
    /// trims are left to finish or to `deadsecs`: one given up on could still reach the disk.
    public mutating func cancelRead(owner: UInt64, now: Instant, _ out: inout [EngineAction]) {
        guard owner != 0 else { return }
        let now = monotonic(now)
        for address in Array(targets.keys) {
            withTarget(address) { t, _ in t.cancelRead(owner: owner, now: now, &out) }
        }
    }

    // MARK: - Time

    /// Expires frames, retransmits, declares targets down, re-probes, and sends the beacon.
    public mutating func tick(now: Instant, _ out: inout [EngineAction]) {
        let now = monotonic(now)
        var touched: Set<TargetAddress> = []
        for (tag, f) in wire.frames.expire(now: now) {
            let found: Void? = withTarget(f.target) { t, wire in t.timedOut(tag, f, &wire, now: now, &out) }
            if found != nil { touched.insert(f.target) }
        }
        for address in Array(targets.keys) {
            withTarget(address) { t, wire in t.tick(&wire, now: now, pumpAnyway: touched.contains(address), &out) }
        }
        if now >= nextBeacon && !wire.links.isEmpty {
            nextBeacon = now + configuration.beaconInterval
            discover(now: now, &out)
        }
    }

    /// When the driver must call `tick` next, at the latest.
    public func nextDeadline(now: Instant) -> Instant {
        let now = max(now, latestNow)
        var d = wire.frames.earliestDeadline(before: nextBeacon == .zero ? now + .seconds(1) : nextBeacon)
        for t in targets.values { d = t.nextDeadline(before: d, configuration) }
        return d
    }

    /// The earliest deadline of a frame sent since the last call: a driver whose timer sleeps
    /// until `nextDeadline` wakes it when this is earlier than the time it sleeps to.
    public mutating func takeEarliestNewDeadline() -> Instant? { wire.frames.takeEarliestNewDeadline() }

    // MARK: - Control

    /// Forgets `address` (etherd/flush). Its waiting requests fail.
    public mutating func remove(_ address: TargetAddress, _ out: inout [EngineAction]) {
        guard withTarget(address, { t, wire in t.forget(&wire, &out) }) != nil else { return }
        targets[address] = nil
        out.append(.targetsChanged)
    }

    /// Re-queries config, re-IDENTIFYs and re-negotiates payload (etherd/revalidate). A changed
    /// capacity or serial is accepted.
    public mutating func revalidate(_ address: TargetAddress, now: Instant, _ out: inout [EngineAction]) {
        let now = monotonic(now)
        guard withTarget(address, { t, wire in t.revalidate(wire) }) != nil else { return }
        discover(address, now: now, &out)
    }

    /// Disables every target that `pattern` matches, now and when discovered later. Returns the
    /// known targets it matched.
    @discardableResult
    public mutating func disable(_ pattern: TargetPattern, _ out: inout [EngineAction]) -> [TargetAddress] {
        if !disabledPatterns.contains(pattern) { disabledPatterns.append(pattern) }
        let matched = targets.keys.filter { pattern.matches($0) }.sorted()
        for a in matched { withTarget(a) { t, wire in t.disable(&wire, &out) } }
        return matched
    }

    /// Lifts the disabling of the targets `pattern` matches (and the patterns it covers) and asks
    /// them for their config. Returns the known targets it matched.
    @discardableResult
    public mutating func enable(_ pattern: TargetPattern, now: Instant, _ out: inout [EngineAction]) -> [TargetAddress]
    {
        let now = monotonic(now)
        let matched = targets.keys.filter { pattern.matches($0) }.sorted()
        disabledPatterns.removeAll { p in
            p == pattern || matched.contains { p.matches($0) } || (pattern.shelf == nil && pattern.slot == nil)
        }
        for a in matched {
            withTarget(a) { t, wire in t.enable(wire, &out) }
            discover(a, now: now, &out)
        }
        return matched
    }

    /// A target's capacity in bytes, if identified.
    public func capacity(of address: TargetAddress) -> UInt64? { targets[address]?.identity?.capacity }

    /// What the target's IDENTIFY said (nil until it answered one).
    public func identity(of address: TargetAddress) -> ATAIdentity? { targets[address]?.identity }

    /// Counts a read-modify-write (for `stats rmw_ops`).
    public mutating func noteReadModifyWrite(_ address: TargetAddress) { targets[address]?.counters.rmwOps += 1 }

    /// Every target, for the `sys/` files and `aoefs scan`.
    public func snapshot(now: Instant) -> [TargetSnapshot] {
        let now = max(now, latestNow)
        return targets.values.sorted { $0.address < $1.address }.map { $0.snapshot(wire, now: now) }
    }

    /// One target, for a `sys/` file or an image's attributes: no work for the others.
    public func snapshot(of address: TargetAddress, now: Instant) -> TargetSnapshot? {
        let now = max(now, latestNow)
        return targets[address]?.snapshot(wire, now: now)
    }
}

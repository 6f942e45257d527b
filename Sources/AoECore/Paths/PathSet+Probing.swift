import AoEProtocol

/// Payload probes (DESIGN §4, Linux probe(), commit bbb44e30): the search for the largest
/// payload that crosses a path, and the check of a path whose large frames are lost.
extension PathSet {
    /// Starts the next payload-search probe on `id`, if its negotiator wants one and none is in
    /// flight. The caller checks that the target is up. With `searchWhileProving` (`aoefs
    /// doctor`) a path still proving it reaches the same disk searches too, once its sample
    /// reads agree and it waits for a write (a probe is a READ of LBA 0).
    mutating func continueProbing(
        _ id: PathID, counters: inout TargetCounters, _ wire: inout Wire, now: Instant,
        _ out: inout [EngineAction]
    ) {
        guard contains(id), self[id].probeTag == nil,
            self[id].standing == .verified
                || (wire.configuration.searchWhileProving && self[id].standing == .proving
                    && self[id].proof?.stage == .awaitingWrite),
            wire.isUsable(self[id].link),
            let sectors = self[id].negotiator.startProbe()
        else { return }
        sendProbe(id, sectors: sectors, kind: .search, counters: &counters, &wire, now: now, &out)
    }

    /// Sends one probe: a READ of LBA 0 padded to the probed size, so the request crosses at
    /// full size one way and the data comes back at full size the other. Probes travel outside
    /// the window.
    mutating func sendProbe(
        _ id: PathID, sectors: Int, kind: ProbeKind, counters: inout TargetCounters,
        _ wire: inout Wire, now: Instant, _ out: inout [EngineAction]
    ) {
        let p = self[id]
        guard let header = wire.ataHeader(to: p, of: address) else { return }
        var bytes = AoEFrame(header: header, body: .ata(.read(lba: 0, sectors: UInt8(sectors), lba48: false))).encoded()
        bytes += [UInt8](repeating: 0, count: sectors * 512)
        let flight = FrameInFlight(
            target: address, path: id,
            range: WorkRange(request: nil, kind: .read, lba: 0, sectors: sectors, bufferOffset: 0),
            sentAt: now, deadline: now + Self.probeTimeout(p, kind, wire.configuration), probe: kind)
        if kind == .alive { self[id].aliveTag = header.tag } else if kind != .burst { self[id].probeTag = header.tag }
        self[id].outstanding += 1
        self[id].sent += 1
        counters.probes += 1
        wire.transmit(OutgoingFrame(bytes: bytes), tag: header.tag, flight, on: p.link, &out)
    }

    /// How long a probe waits for its answer: eight RTOs of the path (a large frame may wait
    /// behind a window of them), at least `probeTimeout`. A payload-search probe on a path with
    /// no sample yet (one still proving, which carries no I/O) waits two initial RTOs instead of
    /// eight: 1.6 s per try made `aoefs doctor`'s search on such a path take 13 s (issue 31),
    /// and a size failed by a slow answer is tried again (`raiseIfDue`). A proof's read keeps the
    /// long wait: its timeouts drop the path.
    static func probeTimeout(_ p: Path, _ kind: ProbeKind, _ c: EngineConfiguration) -> Duration {
        if kind == .search && p.rtt.smoothed == nil { return max(c.probeTimeout, c.initialRTO * 2) }
        return max(c.probeTimeout, p.rtt.timeout * 8)
    }

    /// Sends the probes that check a suspect path: one at the size in use, one of 1024 bytes.
    mutating func sendSuspicionProbes(
        _ id: PathID, size: Bool, alive: Bool, counters: inout TargetCounters,
        _ wire: inout Wire, now: Instant, _ out: inout [EngineAction]
    ) {
        guard let s = self[id].negotiator.suspicion else { return }
        if size && self[id].probeTag == nil {
            sendProbe(id, sectors: s.sectors, kind: .suspectSize, counters: &counters, &wire, now: now, &out)
        }
        if alive && self[id].aliveTag == nil {
            sendProbe(id, sectors: MTUNegotiator.safeSectors, kind: .alive, counters: &counters, &wire, now: now, &out)
        }
    }

    /// A probe was answered or timed out: feed the negotiator and act on what it concludes.
    mutating func probeFinished(
        _ f: FrameInFlight, answered: Bool, counters: inout TargetCounters, _ wire: inout Wire,
        now: Instant, _ out: inout [EngineAction]
    ) {
        let id = f.path
        let before = self[id].negotiator.payload
        let name = wire.links[self[id].link]?.name ?? "?"
        let peer = "\(address): \(name) → \(self[id].mac)"
        switch f.probe ?? .search {
        case .burst:
            if answered { self[id].burst?.answered += 1 } else { self[id].burst?.lost += 1 }
            return
        case .verify:
            return  // `verified` and `verifyTimedOut` handle these
        case .search:
            self[id].probeTag = nil
            if answered {
                self[id].negotiator.probeSucceeded(sectors: f.range.sectors)
                if f.range.sectors > MTUNegotiator.safeSectors {
                    proven = (self[id].link, f.range.sectors)
                    raiseSoon(on: self[id].link, sectors: f.range.sectors, now: now)
                }
            } else if self[id].negotiator.probeTimedOut() == nil {
                out.append(
                    .log(
                        "\(peer): no answer to a \(f.range.sectors * 512)-byte probe; "
                            + "that size is black-holed on this path"))
            }
        case let kind:
            if kind == .suspectSize { self[id].probeTag = nil } else { self[id].aliveTag = nil }
            let (retry, verdict) =
                kind == .suspectSize
                ? self[id].negotiator.suspicionSizeProbe(answered: answered)
                : self[id].negotiator.suspicionAliveProbe(answered: answered)
            switch verdict {
            case .blackHole:
                out.append(
                    .log(
                        "\(peer): \(before)-byte frames vanish while 1024-byte frames cross: "
                            + "falling back to 1024-byte frames and probing"))
            case .stall:
                // Once per loss episode: an overrun or a busy target stalls again and again.
                if !self[id].stallLogged {
                    self[id].stallLogged = true
                    out.append(
                        .log(
                            "\(peer): \(before)-byte frames answered again (a stall or an overrun, not a "
                                + "black hole; more such checks in this loss episode are not logged)"))
                }
            case .silent:
                out.append(.log("\(peer): no answer to any probe; the path or target is not answering"))
            case .pending:
                if retry {
                    sendSuspicionProbes(
                        id, size: kind == .suspectSize, alive: kind == .alive, counters: &counters,
                        &wire, now: now, &out)
                }
            }
        }
        let after = self[id].negotiator.payload
        if after != before, let l = wire.links[self[id].link] {
            out.append(
                .log(
                    "\(address): \(l.name) → \(self[id].mac): payload \(before) → \(after) bytes"
                        + (self[id].negotiator.isSettled ? "" : " (probing)")))
        }
    }

    /// Sends `count` full-size frames at once on `id` (READs of LBA 0 padded to the path's
    /// payload, so each request is as large as a write's): the burst `aoefs doctor` uses to see
    /// whether the target queues its Buffer Count, without writing.
    mutating func sendBurst(
        _ id: PathID, count: Int, counters: inout TargetCounters, _ wire: inout Wire, now: Instant,
        _ out: inout [EngineAction]
    ) {
        guard contains(id), isUsable(id, wire), count > 0 else { return }
        self[id].burst = BurstResult(sent: count)
        let sectors = max(1, self[id].negotiator.payload / 512)
        for _ in 0..<count { sendProbe(id, sectors: sectors, kind: .burst, counters: &counters, &wire, now: now, &out) }
    }

    // MARK: - Verification

    /// Sends a candidate its IDENTIFY (outside the window), unless one is in flight or its link
    /// is down. The deadline doubles with each attempt.
    mutating func sendVerify(
        _ id: PathID, counters: inout TargetCounters, _ wire: inout Wire, now: Instant,
        _ out: inout [EngineAction]
    ) {
        guard contains(id), self[id].standing == .candidate, self[id].verifyTag == nil, wire.isUsable(self[id].link)
        else { return }
        let p = self[id]
        guard let header = wire.ataHeader(to: p, of: address) else { return }
        let bytes = AoEFrame(header: header, body: .ata(.identify())).encoded()
        let wait = max(wire.configuration.probeTimeout, p.rtt.timeout * 2) * (1 << min(p.verifyAttempts, 6))
        let flight = FrameInFlight(
            target: address, path: id,
            range: WorkRange(request: nil, kind: .identify, lba: 0, sectors: 1, bufferOffset: 0),
            sentAt: now, deadline: now + wait, probe: .verify)
        self[id].verifyTag = header.tag
        self[id].verifyAttempts += 1
        self[id].outstanding += 1
        self[id].sent += 1
        counters.probes += 1
        wire.transmit(OutgoingFrame(bytes: bytes), tag: header.tag, flight, on: p.link, &out)
    }

    /// Sends IDENTIFY to every candidate that has none in flight.
    mutating func verifyCandidates(
        counters: inout TargetCounters, _ wire: inout Wire, now: Instant,
        _ out: inout [EngineAction]
    ) {
        for p in paths where p.standing == .candidate && p.verifyTag == nil {
            sendVerify(p.id, counters: &counters, &wire, now: now, &out)
        }
    }

    /// What a candidate's IDENTIFY answer makes of it.
    enum IdentifyVerdict { case verified, prove(against: PathID), duplicate }

    /// A candidate answered IDENTIFY with `seen`; the target is `identity`. The same capacity,
    /// serial and model make it another path to the same disk if no verified path answers to
    /// compare it with (the first path, or a NIC swapped), and a path to prove
    /// (`IdentityProof`) if one does; anything else is a second disk answering as this
    /// shelf.slot, which never carries I/O.
    mutating func verified(
        _ id: PathID, answering seen: ATAIdentity, target identity: ATAIdentity,
        counters: inout TargetCounters, _ wire: Wire, now: Instant,
        _ out: inout [EngineAction]
    ) -> IdentifyVerdict {
        let name = wire.links[self[id].link]?.name ?? "?"
        if seen.sectors == identity.sectors && seen.serial == identity.serial && seen.model == identity.model {
            if let v = liveVerified(except: id, wire) {
                self[id].standing = .proving
                let last = identity.sectors > 0 ? identity.sectors - 1 : 0
                self[id].proof = IdentityProof(sampleLBAs: last == 0 ? [0] : [0, last], now: now)
                return .prove(against: v)
            }
            self[id].standing = .verified
            out.append(.log("\(address): new path \(name) → \(self[id].mac)"))
            return .verified
        }
        self[id].standing = .duplicate
        counters.duplicates += 1
        out.append(
            .log(
                "\(address): \(self[id].mac) on \(name) also answers as \(address) but is another disk "
                    + "(\(seen.sectors) sectors, serial \(seen.serial.isEmpty ? "-" : seen.serial); this one has "
                    + "\(identity.sectors), \(identity.serial.isEmpty ? "-" : identity.serial)): a duplicate shelf.slot, "
                    + "not used"))
        return .duplicate
    }

    /// A candidate's IDENTIFY went unanswered: ask again, or drop the candidate once it had all
    /// its attempts (an announcement or a discover makes it a candidate again).
    mutating func verifyTimedOut(
        _ id: PathID, counters: inout TargetCounters, _ wire: inout Wire, now: Instant,
        _ out: inout [EngineAction]
    ) {
        guard contains(id) else { return }
        self[id].verifyTag = nil
        if self[id].verifyAttempts < wire.configuration.verifyAttempts {
            sendVerify(id, counters: &counters, &wire, now: now, &out)
        } else {
            counters.candidatesDropped += 1
            // A few lines, then one per hundred: a LAN flooded with impostors must not flood err.
            let n = counters.candidatesDropped
            if n <= 3 || n % 100 == 0 {
                let name = wire.links[self[id].link]?.name ?? "?"
                out.append(
                    .log(
                        "\(address): \(self[id].mac) on \(name) announces itself as \(address) but does not "
                            + "answer IDENTIFY: a duplicate shelf.slot or a stale announcement; not used "
                            + "(\(n) such so far)"))
            }
            remove(id)
        }
    }
}

import AoEProtocol

/// Answers, timeouts and the target's life (down, up, forgotten, revalidated).
extension SectorScheduler {
    // MARK: - Answers

    /// An ATA response whose tag is `flight`'s (the router found it in flight).
    mutating func answer(
        _ header: AoEHeader, _ m: ATAView?, on link: LinkID, for flight: FrameInFlight,
        _ wire: inout Wire, now: Instant, _ out: inout [EngineAction]
    ) {
        let path = flight.path
        // Accept only the answer the frame asked for: from the path's MAC, heard on the path's
        // link, for the right shelf.slot. Anything else is spoofed or stray: count, drop, and
        // keep waiting for the genuine answer.
        guard paths.contains(path), header.source == paths[path].mac, link == paths[path].link,
            header.target == flight.target
        else {
            counters.errwmsg += 1
            return
        }
        if let m, !m.status.isFailure, flight.range.kind.expectsData, m.data.count < flight.expectedDataBytes {
            // Truncated: count it and leave the frame in flight; its timeout sends it again. (Not
            // "lost now": a short frame forged by anyone on the LAN must not cancel the real
            // answer on its way.)
            counters.errtrunc += 1
            return
        }
        wire.frames.remove(header.tag)
        paths[path].outstanding -= 1
        lastHeard = now
        counters.atarcv += 1

        if flight.probe == .verify {
            paths[path].verifyTag = nil
            let seen = m.flatMap { $0.status.isFailure ? nil : try? ATAIdentity(parsing: $0.data) }
            if let seen, let mine = identity {
                candidateIdentified(path, answering: seen, target: mine, &wire, now: now, &out)
            } else {
                paths.verifyTimedOut(path, counters: &counters, &wire, now: now, &out)  // not an IDENTIFY answer
            }
            return pump(&wire, now: now, &out)
        }
        if flight.probe?.isIdentityProof == true {
            let data = m.flatMap {
                $0.status.isFailure || $0.data.count < 512 || header.isError
                    ? nil : Array(UnsafeRawBufferPointer(rebasing: $0.data[0..<512]))
            }
            proofRead(flight, data: data, &wire, now: now, &out)
            return pump(&wire, now: now, &out)
        }
        if flight.probe != nil {
            let ok = m.map { !$0.status.isFailure } ?? false
            paths.probeFinished(flight, answered: ok, counters: &counters, &wire, now: now, &out)
            if state == .up { paths.continueProbing(path, counters: &counters, &wire, now: now, &out) }
            return pump(&wire, now: now, &out)
        }

        paths.answered(path, flight, now: now)
        let range = flight.range
        if header.isError {
            counters.erraoe += 1
            out.append(.log("\(address): AoE error from \(header.source): \(header.error) (tag \(header.tag))"))
            if range.kind == .identify {
                identifyQueued = false
            } else if let id = range.request {
                fail(id, .aoeError(address, header.error), now: now, &out)
            }
            return pump(&wire, now: now, &out)
        }
        guard let m else { return }  // the router passes no view only with the error flag

        if m.status.isFailure {
            if range.kind == .flushExt && m.errorRegister.contains(.aborted) && identity?.flushCache ?? true {
                // Older disks abort FLUSH CACHE EXT they offered: use FLUSH CACHE (0xe7).
                flushMode = .e7
                var r = range
                r.kind = .flush28
                queue.prepend(r)
            } else if range.kind.isFlush && m.errorRegister.contains(.aborted) {
                // Every flush it offers aborted: it cannot flush, so asking again would only fail
                // every fsync (mkfs.ext4 dies of that). Answer this one and all later ones at once.
                if !flushAbortLogged {
                    out.append(
                        .log(
                            "\(address): aborts \(range.kind) although IDENTIFY offers it; "
                                + "fsync is answered without a flush from now on"))
                    flushAbortLogged = true
                }
                flushMode = .none
                if let id = range.request, let p = pending.removeValue(forKey: id) {
                    counters.localFlushes += 1
                    ended(p, ok: true, now: now, &out)
                    out.append(.complete(id, .success(())))
                    if pending.isEmpty { workSince = nil }
                }
                releaseFlushes(now: now, &out)
            } else if range.kind == .identify {
                out.append(.log("\(address): IDENTIFY failed: status \(m.status), error \(m.errorRegister)"))
                identifyQueued = false
            } else if let id = range.request {
                counters.errata += 1
                out.append(
                    .log(
                        "\(address): ATA error on \(range.kind) at LBA \(range.lba): status \(m.status), "
                            + "error \(m.errorRegister)"))
                fail(id, .ataError(address, status: m.status, error: m.errorRegister, lba: range.lba), now: now, &out)
            }
            return pump(&wire, now: now, &out)
        }

        switch range.kind {
        case .identify:
            identifyQueued = false
            if let id = try? ATAIdentity(parsing: m.data) {
                // A candidate that answers the target's IDENTIFY defines (or confirms) who the
                // target is: it is the first verified path.
                if paths[path].standing == .candidate {
                    paths[path].standing = .verified
                    if config == nil { config = paths[path].config }
                }
                identified(id, &out)
            }
            probeAll(&wire, now: now, &out)
        case .read:
            if let id = range.request, let buffer = pending[id]?.request.buffer {
                let count = range.sectors * 512
                // Never reached from input (issue 30's audit): A short answer was turned away above (`expectedDataBytes`); ranges are cut inside their buffers.
                precondition(
                    range.bufferOffset >= 0 && range.bufferOffset + count <= buffer.count
                        && m.data.count >= count, "read range outside its buffer or frame")
                if wire.placements.accept(
                    m.data.baseAddress!, count: count, at: buffer.bytes.baseAddress! + range.bufferOffset,
                    buffer: buffer)
                {
                    counters.readsPlaced += 1
                } else {
                    counters.readsCopied += 1
                }
            }
            finish(range, now: now, &out)
        case .write:
            witnessWritten(range, &wire, now: now, &out)
            finish(range, now: now, &out)
        case .flushExt, .flush28:
            counters.flushes += 1
            finish(range, now: now, &out)
        case .trim:
            finish(range, now: now, &out)
        }
        pump(&wire, now: now, &out)
    }

    // MARK: - Time

    /// `flight` (tag `tag`) timed out: feed the path's negotiator or window, and queue the
    /// work again at the front (probes are not resent, their negotiator decides).
    mutating func timedOut(
        _ tag: Tag, _ flight: FrameInFlight, _ wire: inout Wire, now: Instant,
        _ out: inout [EngineAction]
    ) {
        let path = flight.path
        guard paths.contains(path) else {
            // Its path is gone: the work goes out again on another.
            if flight.probe == nil {
                var r = flight.range
                r.retries += 1
                if r.kind == .identify { identifyQueued = true }
                queue.prepend(r)
            }
            return
        }
        paths[path].outstanding -= 1
        paths[path].lost += 1
        counters.errtimeout += 1
        if flight.probe == .verify {
            return paths.verifyTimedOut(path, counters: &counters, &wire, now: now, &out)
        }
        if flight.probe?.isIdentityProof == true {
            proofRead(flight, data: nil, &wire, now: now, &out)
            return pump(&wire, now: now, &out)
        }
        if flight.probe != nil {
            paths.probeFinished(flight, answered: false, counters: &counters, &wire, now: now, &out)
            if state == .up { paths.continueProbing(path, counters: &counters, &wire, now: now, &out) }
            return
        }
        // A frame that waits on the medium says nothing about the path (`waitsOnMedium`): it is
        // sent again, but its timeout cuts no window, and its late answer proves no spurious timeout.
        let medium = flight.range.kind.waitsOnMedium
        if !medium { wire.frames.retire(tag, flight) }
        let eject = medium ? false : paths.lost(path, flight, counters: &counters, &wire, now: now, &out)
        var r = flight.range
        r.retries += 1
        // The loss episode has its line (PathSet.lost); a frame lost again and again is news.
        if let l = wire.links[paths[path].link], r.retries == 3 || r.retries % 10 == 0 {
            out.append(
                .log(
                    "\(address): retransmit \(r.kind) LBA \(r.lba)+\(r.sectors) tag \(tag) "
                        + "via \(l.name) (retry \(r.retries))"))
        }
        if r.kind == .identify {
            identifyQueued = true
            if identity == nil && r.retries == 3 {
                out.append(
                    .log(
                        "\(address): answers Query Config but not IDENTIFY (3 tries); it stays `identifying`, "
                            + "without an image, and is asked again"))
            }
        }
        queue.prepend(r)
        if eject { self.eject(path, &wire, now: now, &out) }
    }

    /// The target's timers: `deadsecs`, the query while down, probes and verifications, and
    /// sending what is queued (`pumpAnyway`: a frame of this target expired in this tick).
    mutating func tick(_ wire: inout Wire, now: Instant, pumpAnyway: Bool, _ out: inout [EngineAction]) {
        // deadsecs: I/O has waited, and nothing was heard, for that long.
        let dead = wire.configuration.deadsecs(for: address)
        if dead > 0, state != .down, let since = workSince, now - max(since, lastHeard) >= .seconds(dead) {
            goDown(&wire, now: now, &out)
        }
        if state == .down {
            if now >= nextDownQuery {
                nextDownQuery = now + wire.configuration.downQueryInterval
                for id in wire.usableLinks { wire.broadcastQuery(on: id, target: address, &out) }
                return
            }
        }
        if state == .identifying, now >= nextDownQuery {
            // Identifying is a state with a way out, always: every `downQueryInterval` without an
            // IDENTIFY queued or in flight, the target is asked for its config, whose answer
            // queues one (a lost answer or a lost IDENTIFY must not leave it here for good).
            nextDownQuery = now + wire.configuration.downQueryInterval
            let inFlight = wire.frames.all.contains {
                $0.1.target == address && $0.1.range.kind == .identify && $0.1.probe == nil
            }
            if !inFlight && !queue.contains(where: { $0.kind == .identify }) {
                identifyQueued = false
                for id in wire.usableLinks { wire.broadcastQuery(on: id, target: address, &out) }
            }
        }
        if let silent = paths.silentPath(now: now) { eject(silent, &wire, now: now, &out) }
        proofTick(&wire, now: now, &out)
        probeAll(&wire, now: now, &out)
        if pumpAnyway || !queue.isEmpty { pump(&wire, now: now, &out) }
    }

    /// When this target's timers next need a tick, if before `bound`.
    func nextDeadline(before bound: Instant, _ configuration: EngineConfiguration) -> Instant {
        var d = bound
        if state == .down || state == .identifying { d = min(d, nextDownQuery) }
        if state == .up { d = paths.raiseDeadline(before: d) }
        let dead = configuration.deadsecs(for: address)
        if let s = workSince, dead > 0 { d = min(d, max(s, lastHeard) + .seconds(dead)) }
        return paths.silenceDeadline(before: d)
    }

    // MARK: - Life

    /// No answer for `deadsecs` while I/O waited: every waiting request fails, frames in flight
    /// are forgotten, and the target is asked for every `downQueryInterval` until it answers.
    mutating func goDown(_ wire: inout Wire, now: Instant, _ out: inout [EngineAction]) {
        state = .down
        revalidating = true
        nextDownQuery = now + wire.configuration.downQueryInterval
        out.append(
            .log(
                "\(address): no response for \(wire.configuration.deadsecs(for: address)) s while I/O waited: target down"
            ))
        failEverything(.targetDown(address), now: now, &wire, &out)
        paths.resetWindows(
            bufferCount: Int(config?.bufferCount ?? 1),
            maxOutstanding: wire.configuration.maxOutstanding(for: address))
        out.append(.targetsChanged)
    }

    /// The target is being forgotten (etherd/flush): its frames go and its requests fail.
    mutating func forget(_ wire: inout Wire, _ out: inout [EngineAction]) {
        failEverything(.targetDown(address), now: nil, &wire, &out)
    }

    /// Fails every waiting request with `error` (in the order they came) and forgets the frames
    /// in flight and the queue: what going down, being forgotten and being disabled share.
    private mutating func failEverything(
        _ error: AoEIOError, now: Instant?, _ wire: inout Wire,
        _ out: inout [EngineAction]
    ) {
        for f in wire.frames.removeAll(for: address) where paths.contains(f.path) { paths[f.path].outstanding -= 1 }
        queue.removeAll()
        identifyQueued = false
        for id in pending.keys.sorted(by: { $0.rawValue < $1.rawValue }) {
            if let now, let p = pending[id] { ended(p, ok: false, now: now, &out) }
            out.append(.complete(id, .failure(error)))
        }
        if now == nil { io.abandonAll() }
        pending.removeAll()
        flushWaiting.removeAll()
        workSince = nil
    }

    /// `aoefs disable`: every waiting request fails at once, nothing more is sent, and the
    /// paths' windows start afresh when it is enabled again.
    mutating func disable(_ wire: inout Wire, _ out: inout [EngineAction]) {
        guard state != .disabled else { return }
        failEverything(.disabled(address), now: nil, &wire, &out)
        for id in paths.ids { paths[id].probeTag = nil; paths[id].aliveTag = nil; paths[id].verifyTag = nil }
        state = .disabled
        out.append(.log("\(address): disabled"))
        out.append(.targetsChanged)
    }

    /// `aoefs enable`: identified again through its verified paths (the router asks for its config).
    mutating func enable(_ wire: Wire, _ out: inout [EngineAction]) {
        guard state == .disabled else { return }
        state = .identifying
        revalidating = true
        paths.resetWindows(
            bufferCount: Int(config?.bufferCount ?? 1), maxOutstanding: wire.configuration.maxOutstanding(for: address))
        out.append(.log("\(address): enabled"))
    }

    /// etherd/revalidate: identify again (accepting a changed capacity or serial) and negotiate
    /// every path's payload anew. The router then asks for the target's config.
    mutating func revalidate(_ wire: Wire) {
        guard state != .disabled else { return }
        acceptNewIdentity = true
        revalidating = true
        state = .identifying
        paths.renegotiate(sectorsPerCommand: Int(config?.sectorsPerCommand ?? 2), wire)
    }

    func snapshot(_ wire: Wire, now: Instant) -> TargetSnapshot {
        let rows = paths.snapshot(wire, now: now)
        let usable = rows.filter { $0.state.isHealthy }
        return TargetSnapshot(
            address: address, state: state, config: config, identity: identity, paths: rows,
            counters: counters, payload: (usable.isEmpty ? rows : usable).map(\.payload).min() ?? 0,
            outstanding: rows.map(\.outstanding).reduce(0, +), window: rows.map(\.window).reduce(0, +),
            flushMode: flushMode, io: io, busyNanoseconds: io.busy(now: now))
    }
}

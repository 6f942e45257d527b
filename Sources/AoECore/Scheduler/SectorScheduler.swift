import AoEProtocol
import DequeModule

/// One target's state machine (DESIGN §3's sector request scheduler): its identity and state,
/// the queue of work, the requests pending, the flush barrier, and its `PathSet`. It cuts queued
/// work into frames for paths with room in their window, completes requests from the answers,
/// retransmits what timed out, and takes the target down after `deadsecs` of silence.
///
/// Pure: methods take `now`, get the router's `Wire` to send frames on, and append actions.
struct SectorScheduler: Sendable {
    let address: TargetAddress
    var state: TargetState = .identifying
    var config: QueryConfig?
    var identity: ATAIdentity?
    var paths: PathSet
    var queue: Deque<WorkRange> = []
    var pending = RequestTable<PendingRequest>()
    /// Flushes waiting for the writes submitted before them (DESIGN §4 "Flush").
    var flushWaiting: [RequestID] = []
    var sequence: UInt64 = 0
    var lastHeard: Instant
    /// Since when I/O has waited (nil: nothing pending): the start of the `deadsecs` clock.
    var workSince: Instant?
    var nextDownQuery: Instant = .zero
    var identifyQueued = false
    /// Set from going down (or revalidate) until the next IDENTIFY is answered.
    var revalidating = false
    /// A revalidate accepts a changed capacity or serial.
    var acceptNewIdentity = false
    /// How fsyncs are carried out: from IDENTIFY, then down to `.e7` or `.none` when the target
    /// aborts what it offered.
    var flushMode: FlushMode = .ext
    /// The abort of every offered flush was logged (once per target).
    var flushAbortLogged = false
    var counters = TargetCounters()
    var io = IOAccount()

    init(address: TargetAddress, now: Instant) {
        self.address = address
        self.lastHeard = now
        paths = PathSet(address: address)
    }

    // MARK: - Discovery

    /// A Query Config response from `mac` on `link`. From a verified path it refreshes the
    /// target (and brings a down one back to identifying); from a new MAC it makes a candidate
    /// path, which carries no I/O until it answers IDENTIFY as this target. Only a verified path
    /// counts as hearing from the target: a LAN that repeats announcements cannot keep a dead
    /// target from going down. `toUs`: the frame was addressed to this link's MAC (an answer to
    /// our query), not broadcast (an announcement).
    mutating func heardConfig(
        _ config: QueryConfig, from mac: MACAddress, on link: LinkID, toUs: Bool,
        _ wire: inout Wire, now: Instant, _ out: inout [EngineAction]
    ) {
        let maxout = wire.configuration.maxOutstanding(for: address)
        if toUs, paths.find(link: link, mac: mac) == nil,
            paths.count(on: link) >= wire.configuration.maxPathsPerInterface,
            let victim = paths.announcedOnlyCandidate(on: link)
        {
            // The paths of this link are full, and an answer to our own query comes from a MAC
            // without one: a flood of broadcast announcements (make bench's flood row, started
            // during the flood) must not keep the target that answers us out. A candidate that
            // has only announced itself gives way; its IDENTIFY in flight goes to another path.
            requeueInFlight(on: victim, &wire)
            paths.remove(victim)
            counters.candidatesDropped += 1
        }
        if let id = paths.find(link: link, mac: mac) {
            if toUs { paths[id].answeredUs = true }
            let before = paths[id].config.sectorsPerCommand
            paths[id].config = config
            switch paths[id].standing {
            case .verified:
                if config.sectorsPerCommand != before {
                    // The target changed what one frame may carry (vblade derives it from its
                    // MTU, changed with ours): this path's ceiling moves, down or up.
                    out.append(
                        .log(
                            "\(address): now takes \(config.sectorsPerCommand) sectors per frame "
                                + "(was \(before)); payload negotiated again"))
                    if config.sectorsPerCommand < before { requeueInFlight(on: id, &wire) }
                    paths.renegotiate(id, sectorsPerCommand: Int(config.sectorsPerCommand), wire)
                    if state == .up { paths.continueProbing(id, counters: &counters, &wire, now: now, &out) }
                }
                lastHeard = now
                self.config = config
                if paths[id].window.limit != max(1, min(Int(config.bufferCount), maxout)) {
                    paths[id].window.reset(bufferCount: Int(config.bufferCount), maxOutstanding: maxout)
                }
                if state == .down {
                    state = .identifying
                    revalidating = true
                    out.append(.log("\(address): answered again; re-identifying"))
                }
            case .candidate:
                if identity != nil { paths.sendVerify(id, counters: &counters, &wire, now: now, &out) }
            case .proving, .duplicate:
                break
            }
        } else if let l = wire.links[link], paths.count(on: link) < wire.configuration.maxPathsPerInterface {
            if self.config == nil { self.config = config }
            let id = paths.add { id in
                Path(
                    id: id, link: link, mac: mac, mtu: l.mtu, config: config, configuration: wire.configuration,
                    maxOutstanding: maxout, maxPayload: wire.configuration.maxPayload(for: address, interface: l.name),
                    now: now)
            }
            paths[id].answeredUs = toUs
            // Known identity: check the candidate's at once. Unknown: the queued IDENTIFY checks it.
            if identity != nil { paths.sendVerify(id, counters: &counters, &wire, now: now, &out) }
        }
        if state == .identifying && !identifyQueued {
            queue.prepend(WorkRange(request: nil, kind: .identify, lba: 0, sectors: 1, bufferOffset: 0))
            identifyQueued = true
        }
        pump(&wire, now: now, &out)
    }

    mutating func identified(_ id: ATAIdentity, _ out: inout [EngineAction]) {
        if let old = identity, revalidating, old.sectors != id.sectors || old.serial != id.serial, !acceptNewIdentity {
            // Linux: "don't change users' perspective". The image stays down until flushed.
            state = .down
            out.append(
                .log(
                    "\(address): came back with \(id.sectors) sectors, serial \(id.serial) "
                        + "(was \(old.sectors), \(old.serial)); stays down until flushed"))
            out.append(.targetsChanged)
            return
        }
        if identity == nil || acceptNewIdentity { flushMode = FlushMode(id) }
        identity = id
        revalidating = false
        acceptNewIdentity = false
        state = .up
        workSince = nil
        out.append(
            .log(
                "\(address): up, \(id.sectors) sectors (\(id.supportsLBA48 ? "LBA48" : "LBA28")), "
                    + "model \(id.model.isEmpty ? "-" : id.model)"))
        out.append(.targetsChanged)
    }

    // MARK: - Requests

    /// Accepts a request, or completes it at once when it cannot be served.
    mutating func submit(_ r: SectorRequest, _ wire: inout Wire, now: Instant, _ out: inout [EngineAction]) {
        if state == .down { return out.append(.complete(r.id, .failure(.targetDown(address)))) }
        if state == .disabled { return out.append(.complete(r.id, .failure(.disabled(address)))) }
        if let id = identity, r.kind != .flush, r.lba + UInt64(r.sectors) > id.sectors {
            return out.append(
                .complete(
                    r.id,
                    .failure(
                        .beyondEnd(
                            address, lba: r.lba, sectors: r.sectors,
                            capacity: id.sectors))))
        }
        if r.kind == .trim, identity?.trimsToZeros != true {
            // Never a DSM frame to a target that did not offer it (or offers no zeros after it).
            return out.append(.complete(r.id, .failure(.trimNotOffered(address))))
        }
        if r.sectors == 0 && r.kind != .flush { return out.append(.complete(r.id, .success(()))) }
        sequence += 1
        pending[r.id] = PendingRequest(
            request: r, remaining: r.kind == .flush ? 1 : r.sectors, sequence: sequence,
            submitted: now)
        io.began(now: now)
        if workSince == nil { workSince = now }
        switch r.kind {
        case .read:
            queue.append(
                WorkRange(request: r.id, kind: .read, lba: r.lba, sectors: r.sectors, bufferOffset: r.bufferOffset))
        case .write:
            queue.append(
                WorkRange(request: r.id, kind: .write, lba: r.lba, sectors: r.sectors, bufferOffset: r.bufferOffset))
        case .trim:
            queue.append(WorkRange(request: r.id, kind: .trim, lba: r.lba, sectors: r.sectors, bufferOffset: 0))
        case .flush:
            flushWaiting.append(r.id)
            releaseFlushes(now: now, &out)
        }
        pump(&wire, now: now, &out)
    }

    /// Sends each waiting flush whose earlier writes have all completed, or answers it at once
    /// when the target needs none (`FlushMode.none`: its acknowledged writes are durable).
    mutating func releaseFlushes(now: Instant, _ out: inout [EngineAction]) {
        guard !flushWaiting.isEmpty else { return }
        let oldestWrite = pending.values.filter { $0.request.kind.changesSectors }.map(\.sequence).min() ?? .max
        while let id = flushWaiting.first, let p = pending[id], p.sequence < oldestWrite {
            flushWaiting.removeFirst()
            switch flushMode {
            case .none:
                pending[id] = nil
                counters.localFlushes += 1
                ended(p, ok: true, now: now, &out)
                out.append(.complete(id, .success(())))
                if pending.isEmpty { workSince = nil }
            case .ext: queue.append(WorkRange(request: id, kind: .flushExt, lba: 0, sectors: 0, bufferOffset: 0))
            case .e7: queue.append(WorkRange(request: id, kind: .flush28, lba: 0, sectors: 0, bufferOffset: 0))
            }
        }
    }

    /// `range` was answered: count it, and complete its request when nothing of it is left.
    mutating func finish(_ range: WorkRange, now: Instant, _ out: inout [EngineAction]) {
        // One hash for the whole of it (this runs for every frame answered).
        guard let id = range.request,
            let p = pending.modify(
                id,
                { p in
                    p.remaining -= range.kind.isFlush ? 1 : range.sectors
                    return p
                })
        else { return }
        switch range.kind {
        case .read: counters.bytesRead += UInt64(range.sectors * 512)
        case .write: counters.bytesWritten += UInt64(range.sectors * 512)
        case .trim: counters.sectorsTrimmed += UInt64(range.sectors)
        default: break
        }
        if p.remaining > 0 { return }
        pending.removeValue(forKey: id)
        switch p.request.kind {
        case .read: counters.reads += 1
        case .write: counters.writes += 1
        case .trim: counters.discards += 1
        case .flush: break  // counted as the command was answered
        }
        ended(p, ok: true, now: now, &out)
        out.append(.complete(id, .success(())))
        if p.request.kind.changesSectors { releaseFlushes(now: now, &out) }
        if pending.isEmpty { workSince = nil }
    }

    mutating func fail(_ id: RequestID, _ error: AoEIOError, now: Instant, _ out: inout [EngineAction]) {
        guard let p = pending.removeValue(forKey: id) else { return }
        flushWaiting.removeAll { $0 == id }
        ended(p, ok: false, now: now, &out)
        out.append(.complete(id, .failure(error)))
        if p.request.kind.changesSectors { releaseFlushes(now: now, &out) }
        if pending.isEmpty { workSince = nil }
    }

    /// `EngineCore.cancelRead(owner:)` for this target.
    mutating func cancelRead(owner: UInt64, now: Instant, _ out: inout [EngineAction]) {
        var mine: [RequestID] = []
        pending.forEach { id, p in
            if p.request.owner == owner && p.request.kind == .read { mine.append(id) }
        }
        for id in mine { fail(id, .interrupted, now: now, &out) }
    }

    /// Accounts for a request that ends now (`IOAccount`, and the engine's latency histograms).
    mutating func ended(_ p: PendingRequest, ok: Bool, now: Instant, _ out: inout [EngineAction]) {
        let kind = p.request.kind
        io.ended(kind, bytes: kind == .flush ? 0 : p.request.sectors * 512, submitted: p.submitted, ok: ok, now: now)
        out.append(.timing(address, kind, nanoseconds: now.nanoseconds(since: p.submitted), ok: ok))
    }

    // MARK: - Sending

    /// Sends queued work on paths with room in their window, round-robin.
    mutating func pump(_ wire: inout Wire, now: Instant, _ out: inout [EngineAction]) {
        // Until the target is identified only IDENTIFY goes, so it must be first: frames taken
        // back from a link that went down come back in tag order, which is not the order they
        // were sent, and could put it behind writes that wait for it (the stress mix of issue
        // 30 stalled a target in `identifying` that way, for good).
        if state != .up, queue.first?.kind != .identify, let i = queue.firstIndex(where: { $0.kind == .identify }) {
            queue.prepend(queue.remove(at: i))
        }
        while let r = queue.first {
            if r.kind != .identify {
                guard state == .up else { return }
                if let id = r.request, !pending.contains(id) {  // failed meanwhile
                    queue.removeFirst()
                    continue
                }
            }
            if r.kind == .write && paths.anyProving {
                // A proving path watches this write (`IdentityProof`); writes wait while the
                // witness sector is read through it.
                witnessWrite(r, &wire, now: now, &out)
                if paths.holdsWrites(now: now) { return }
            }
            // A trim is no witness (it carries no sectors to compare), but it changes them: it
            // waits with the writes while a witness is read.
            if r.kind == .trim && paths.anyProving && paths.holdsWrites(now: now) { return }
            guard let p = paths.choose(avoiding: r.lastPath, forIdentify: r.kind == .identify, wire) else { return }
            var piece = r
            let most =
                switch r.kind {
                case .read, .write: paths[p].negotiator.payload / 512
                case .trim: trimSectorsPerFrame(payload: paths[p].negotiator.payload)
                default: Int.max
                }
            if r.sectors > most {
                piece.sectors = most
                var rest = r
                rest.lba += UInt64(most)
                rest.sectors -= most
                rest.bufferOffset += most * 512
                queue[0] = rest
            } else {
                queue.removeFirst()
            }
            send(piece, on: p, &wire, now: now, &out)
        }
    }

    /// The soonest a FLUSH or TRIM frame is resent (doubling with each retry, up to 16 ×):
    /// `FrameKind.waitsOnMedium`.
    static let mediumTimeout: Duration = .milliseconds(500)

    /// The most sectors one TRIM frame names on a path with `payload` bytes of data: the blocks
    /// of entries that fit it, no more than IDENTIFY word 105 allows per command (0, not
    /// reported, taken as one block, as Linux's libata does), nor than the count byte holds.
    func trimSectorsPerFrame(payload: Int) -> Int {
        let offered = max(1, Int(identity?.trimBlocksPerCommand ?? 1))
        return DataSetManagement.sectors(coveredBy: max(1, min(payload / 512, offered, 255)))
    }

    /// Encodes `range` as one frame to `path` and puts it in flight.
    mutating func send(
        _ range: WorkRange, on path: PathID, _ wire: inout Wire, now: Instant,
        _ out: inout [EngineAction]
    ) {
        var range = range
        if range.firstSent == nil { range.firstSent = now }
        range.lastPath = path
        let p = paths[path]
        guard let header = wire.ataHeader(to: p, of: address) else { return }
        let lba48 = identity?.supportsLBA48 ?? true
        var message: ATAMessage
        var trimEntries: IOBuffer?
        switch range.kind {
        case .read: message = .read(lba: range.lba, sectors: UInt8(range.sectors), lba48: lba48)
        case .write:
            message = .write(lba: range.lba, data: [], lba48: lba48)
            message.sectorCount = UInt8(range.sectors)
        case .flushExt: message = .flush(lba48: true)
        case .flush28: message = .flush(lba48: false)
        case .identify: message = .identify()
        case .trim:
            // The range entries are the frame's data: made here, at each send, so a retransmit
            // or a re-split after a payload change names exactly the range it carries.
            let entries = IOBuffer(uninitializedCount: DataSetManagement.blocks(for: range.sectors) * 512)
            DataSetManagement.encode(lba: range.lba, sectors: range.sectors, into: entries.bytes)
            trimEntries = entries
            message = ATAMessage(
                flags: [.extended, .write], errorOrFeature: DataSetManagement.trimFeature,
                sectorCount: UInt8(entries.count / 512),
                commandOrStatus: ATAOpcode.dataSetManagement.rawValue)
        }
        // No allocation: the headers are encoded into the frame's inline storage, and a write's
        // data stays in the request's buffer until the link copies it into its send slot.
        let frame = AoEFrame(header: header, body: .ata(message))
        let source = range.kind == .write ? range.request.flatMap { pending[$0]?.request.buffer } : nil
        let bytes =
            if let trimEntries {
                OutgoingFrame(
                    headers: { frame.encode(into: $0) }, data: trimEntries, offset: 0, count: trimEntries.count)
            } else {
                OutgoingFrame(
                    headers: { frame.encode(into: $0) }, data: source, offset: range.bufferOffset,
                    count: source == nil ? 0 : range.sectors * 512)
            }
        var timeout = p.rtt.timeoutNanoseconds(afterRetries: range.retries)
        if range.kind.waitsOnMedium {
            timeout = max(timeout, Int64(Self.mediumTimeout.nanoseconds) << Int64(min(range.retries, 4)))
        }
        let flight = FrameInFlight(
            target: address, path: path, range: range, sentAt: now,
            deadline: now.advanced(byNanoseconds: timeout))
        paths[path].outstanding += 1
        paths[path].sent += 1
        counters.atasnd += 1
        if range.retries > 0 { counters.retries += 1 }
        wire.transmit(bytes, tag: header.tag, flight, on: p.link, &out)
        if range.kind == .read, wire.configuration.receivePlacement, let id = range.request,
            let buffer = pending[id]?.request.buffer
        {
            wire.placements.sent(
                header.tag, on: p.link, request: id, buffer: buffer, offset: range.bufferOffset,
                count: range.sectors * 512)
        }
    }

    /// Starts payload probes on every path that wants one (only while the target is up), and
    /// checks the candidates once the target's identity is known.
    mutating func probeAll(_ wire: inout Wire, now: Instant, _ out: inout [EngineAction]) {
        guard state != .disabled else { return }
        if identity != nil { paths.verifyCandidates(counters: &counters, &wire, now: now, &out) }
        guard state == .up else { return }
        for id in paths.ids {
            if paths[id].standing == .verified, let raise = paths[id].negotiator.raiseIfDue(now: now),
                let l = wire.links[paths[id].link]
            {
                let n = paths[id].negotiator
                switch raise {
                case .probe:
                    out.append(
                        .log(
                            "\(address): \(l.name) → \(paths[id].mac): trying \(n.ceilingSectors * 512)-byte "
                                + "frames again (payload \(n.payload); next try in \(n.raiseWait.milliseconds / 1000) s "
                                + "if they fail)"))
                case .askConfig:
                    // Its answer renegotiates the path if the target offers more now (`heardConfig`).
                    wire.queryConfig(to: paths[id].mac, on: paths[id].link, target: address, &out)
                }
            }
            paths.continueProbing(id, counters: &counters, &wire, now: now, &out)
        }
    }

    /// A candidate is verified: it carries I/O from now on. The config it announced becomes the
    /// target's if it has none, and a target that was down is identified again through it.
    mutating func pathVerified(_ id: PathID, _ wire: inout Wire, now: Instant, _ out: inout [EngineAction]) {
        lastHeard = now
        if config == nil { config = paths[id].config }
        if state == .down {
            state = .identifying
            revalidating = true
            out.append(.log("\(address): answered again on a new path; re-identifying"))
            if !identifyQueued {
                queue.prepend(WorkRange(request: nil, kind: .identify, lba: 0, sectors: 1, bufferOffset: 0))
                identifyQueued = true
            }
        }
    }

    /// One of our links changed under this target's paths on it: it went down (or away), or its
    /// MTU changed. Their frames in flight will not be answered, or no longer fit: each goes back
    /// to the queue at once, not counted as lost (no retry, no black-hole suspicion, no window
    /// cut), to be sent again, re-split to the payload then in force, when a path can take it.
    /// Probes in flight are dropped; with `renegotiate` the paths' payload search starts anew.
    mutating func linkChanged(_ link: LinkID, renegotiate: Bool, _ wire: inout Wire, _ out: inout [EngineAction]) {
        for id in paths.ids where paths[id].link == link {
            requeueInFlight(on: id, &wire)
            paths[id].verifyTag = nil
            if renegotiate { paths.renegotiate(id, sectorsPerCommand: Int(config?.sectorsPerCommand ?? 2), wire) }
        }
    }

    /// Takes path `id`'s frames in flight back into the queue, oldest first, as not sent (no
    /// retry counted); its probes are dropped and a black-hole check under way is abandoned.
    mutating func requeueInFlight(on id: PathID, _ wire: inout Wire) {
        // Prepended newest first, so the oldest ends up first (the table's order is its slots').
        for f in wire.frames.removeAll(for: address, path: id).sorted(by: { $0.sentAt > $1.sentAt }) {
            paths[id].outstanding -= 1
            guard f.probe == nil else { continue }
            if f.range.kind == .identify { identifyQueued = true }
            queue.prepend(f.range)
        }
        paths[id].probeTag = nil
        paths[id].aliveTag = nil
        paths[id].negotiator.abandonCheck()
    }

    /// Ejects a verified path that stays silent while another answers (Linux `ejectif`): its
    /// frames in flight are sent again on the others, and only an announcement or a discover
    /// brings it back, as a candidate.
    mutating func eject(_ id: PathID, _ wire: inout Wire, now: Instant, _ out: inout [EngineAction]) {
        let p = paths[id]
        let quiet = now - (p.lastAnswer ?? p.since)
        out.append(
            .log(
                "\(address): path \(wire.links[p.link]?.name ?? "?") → \(p.mac) answered nothing for "
                    + "\(quiet.milliseconds) ms while another path did; ejected"))
        counters.ejected += 1
        for f in wire.frames.removeAll(for: address, path: id) where f.probe == nil {
            var r = f.range
            r.retries += 1
            if r.kind == .identify { identifyQueued = true }
            queue.prepend(r)
        }
        paths.remove(id)
    }
}

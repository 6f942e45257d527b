import AoEProtocol

/// The proof that a candidate path reaches the same disk as the target's verified paths.
///
/// IDENTIFY proves identity only when its strings are unique, and nothing says they are: qaoed's
/// model is a constant and its serial the first 19 bytes of its backing path, so two qaoed
/// disks of one size with the same shelf.slot answer IDENTIFY alike. Taken as two paths of one
/// target, a write is split over both disks (issue 24). So a candidate whose IDENTIFY matches
/// while a verified path answers must also:
/// 1. **read alike** (`sampling`): LBA 0 and the last sector, read through it and through a
///    verified path, must agree; a disagreement makes it a duplicate at once;
/// 2. **see a write** (`awaitingWrite` → `readingBefore` → `writing` → `readingAfter`): sectors
///    that agree may still be two blank disks, or clones. So the next write's first sector is
///    read through the candidate first (the write waits that one round trip); if the data there
///    differs from what is about to be written, the write goes out through a verified path as
///    usual and, once answered, the sector is read through the candidate again. The new data
///    there proves the same disk; the old data proves another disk (a duplicate). A write whose
///    data is already there proves nothing, and the next write is tried.
///
/// Until then the candidate carries no I/O at all (reads from another disk would be as wrong as
/// writes to it). A candidate whose IDENTIFY matches while no verified path answers (the
/// target's NIC swapped, the target restarted on another port) has nothing to be compared with
/// and is taken as the target, as before.
struct IdentityProof: Sendable {
    enum Stage: Sendable, Hashable {
        case sampling, awaitingWrite, readingBefore, writing, readingAfter
    }

    private(set) var stage: Stage = .sampling
    private(set) var stageSince: Instant
    /// The sample sectors, by LBA, as read through the candidate and through a verified path.
    private var viaCandidate: [UInt64: [UInt8]] = [:]
    private var viaVerified: [UInt64: [UInt8]] = [:]
    let sampleLBAs: [UInt64]
    /// Rounds of sample reads sent so far (the scheduler gives up after its `verifyAttempts`).
    private(set) var sampleAttempts = 0
    /// The witness sector, the data a write puts there, and what the candidate read there before.
    private(set) var lba: UInt64 = 0
    private(set) var written: [UInt8] = []
    private var before: [UInt8] = []
    /// No witness is tried before this (after one that proved nothing).
    private(set) var nextTry: Instant = .zero
    /// The line saying it waits for a write was logged.
    private var waitLogged = false

    /// How long a stage may wait for an answer that a dropped probe will never bring.
    static let staleAfter: Duration = .seconds(5)
    /// A write's witness waits this many times `staleAfter`: the write itself may be retried.
    static let writingStaleFactor = 6
    /// After a witness that proved nothing, the next write is tried no sooner than this.
    static let retryAfter: Duration = .milliseconds(100)
    /// After a witness read that went unanswered, no sooner than this.
    static let retryAfterSilence: Duration = .seconds(1)

    init(sampleLBAs: [UInt64], now: Instant) {
        self.sampleLBAs = sampleLBAs
        stageSince = now
    }

    private mutating func enter(_ s: Stage, now: Instant) {
        stage = s
        stageSince = now
    }

    // MARK: - Events and what they mean

    /// A round of sample reads goes out (both paths read every sample sector).
    mutating func samplesSent(now: Instant) {
        viaCandidate = [:]
        viaVerified = [:]
        sampleAttempts += 1
        enter(.sampling, now: now)
    }

    enum SampleVerdict: Equatable {
        /// Not the proof's business now, or more answers are due.
        case waiting
        /// A sample read went unanswered: try again or give up (the scheduler's call).
        case failed
        /// The sector reads differently through the two paths: another disk.
        case differs(lba: UInt64)
        /// Every sample agrees: the proof waits for a write; `log` the first time.
        case agree(log: Bool)
    }

    /// A sample read of `lba` was answered with `data` (nil: it timed out), through the
    /// candidate or through the verified path.
    mutating func sampleRead(lba: UInt64, viaCandidate candidate: Bool, data: [UInt8]?, now: Instant) -> SampleVerdict {
        guard stage == .sampling else { return .waiting }
        guard let data else { return .failed }
        if candidate { viaCandidate[lba] = data } else { viaVerified[lba] = data }
        guard sampleLBAs.allSatisfy({ viaCandidate[$0] != nil && viaVerified[$0] != nil }) else { return .waiting }
        if let differs = sampleLBAs.first(where: { viaCandidate[$0] != viaVerified[$0] }) {
            return .differs(lba: differs)
        }
        enter(.awaitingWrite, now: now)
        defer { waitLogged = true }
        return .agree(log: !waitLogged)
    }

    /// Whether a write may be taken as the witness now.
    func awaitsWitness(now: Instant) -> Bool { stage == .awaitingWrite && now >= nextTry }

    /// Whether writes wait: the witness sector is being read before its write goes out (not past
    /// `staleAfter`: a dropped read must not hold writes for good).
    func holdsWrites(now: Instant) -> Bool { stage == .readingBefore && now - stageSince < Self.staleAfter }

    /// A write's first sector, `data` at `lba`, is the witness: read it through the candidate
    /// before the write goes out.
    mutating func witnessChosen(lba: UInt64, data: [UInt8], now: Instant) {
        self.lba = lba
        written = data
        enter(.readingBefore, now: now)
    }

    /// Whether the write answered, covering `range` of sectors, carried the witness: then read it
    /// through the candidate again.
    mutating func writeAnswered(lba first: UInt64, sectors: Int, now: Instant) -> Bool {
        guard stage == .writing, first <= lba, lba < first + UInt64(sectors) else { return false }
        enter(.readingAfter, now: now)
        return true
    }

    enum WitnessVerdict: Equatable {
        /// Not the proof's business now.
        case ignored
        /// The sector read before the write: the write may go out.
        case writeMayGo
        /// This write proves nothing (its data was there already, a later write changed the
        /// sector, or a read went unanswered): the next write is tried.
        case retry
        /// The write reads back through the candidate: the same disk.
        case sameDisk
        /// The sector reads as before the write: the write did not reach this disk.
        case otherDisk
    }

    /// The witness read through the candidate was answered with `data` (nil: it timed out).
    mutating func witnessRead(data: [UInt8]?, now: Instant) -> WitnessVerdict {
        switch stage {
        case .readingBefore:
            if let data, data != written {
                before = data
                enter(.writing, now: now)
                return .writeMayGo
            }
            return retry(silent: data == nil, now: now)
        case .readingAfter:
            if data == written { return .sameDisk }
            if data != nil && data == before { return .otherDisk }
            return retry(silent: data == nil, now: now)
        default:
            return .ignored
        }
    }

    private mutating func retry(silent: Bool, now: Instant) -> WitnessVerdict {
        nextTry = now + (silent ? Self.retryAfterSilence : Self.retryAfter)
        enter(.awaitingWrite, now: now)
        return .retry
    }

    enum TickVerdict: Equatable {
        case none
        /// The sample reads will not all come back: as a failed sample read.
        case samplesStale
        /// A witness stage's answer will not come: the proof waits for another write.
        case restarted
    }

    /// Time passes: a stage whose answer a dropped probe (or a failed write) will never bring
    /// ends.
    mutating func tick(now: Instant) -> TickVerdict {
        guard stage != .awaitingWrite,
            now - stageSince >= Self.staleAfter * (stage == .writing ? Self.writingStaleFactor : 1)
        else { return .none }
        if stage == .sampling { return .samplesStale }
        enter(.awaitingWrite, now: now)
        return .restarted
    }
}

extension PathSet {
    /// A verified path other than `id` that is answering, if any: a candidate must prove itself
    /// against it.
    func liveVerified(except id: PathID, _ wire: Wire) -> PathID? {
        paths.first { $0.id != id && $0.standing == .verified && wire.isUsable($0.link) && $0.lossesSinceAnswer < 2 }?
            .id
    }

    /// Whether a path is proving itself: checked on every write frame, so an index loop that
    /// copies no path.
    var anyProving: Bool {
        for i in paths.indices where paths[i].standing == .proving { return true }
        return false
    }

    /// The proving path waiting for a write to witness, if any may try now.
    func awaitingWitness(now: Instant) -> PathID? {
        paths.first { p in p.standing == .proving && p.proof?.awaitsWitness(now: now) == true }?.id
    }

    /// Whether writes wait: a witness sector is being read before its write goes out.
    func holdsWrites(now: Instant) -> Bool {
        paths.contains { p in p.proof?.holdsWrites(now: now) == true }
    }

    /// Sends a one-sector READ of `lba` on `id` as a probe (outside the window) that brings its
    /// data back for the proof of `candidate`.
    mutating func sendProofRead(
        _ id: PathID, lba: UInt64, kind: ProbeKind, lba48: Bool, counters: inout TargetCounters,
        _ wire: inout Wire, now: Instant, _ out: inout [EngineAction]
    ) {
        let p = self[id]
        guard let header = wire.ataHeader(to: p, of: address) else { return }
        let bytes = AoEFrame(header: header, body: .ata(.read(lba: lba, sectors: 1, lba48: lba48))).encoded()
        let flight = FrameInFlight(
            target: address, path: id,
            range: WorkRange(request: nil, kind: .read, lba: lba, sectors: 1, bufferOffset: 0),
            sentAt: now, deadline: now + max(wire.configuration.probeTimeout, p.rtt.timeout * 8), probe: kind)
        self[id].outstanding += 1
        self[id].sent += 1
        counters.probes += 1
        wire.transmit(OutgoingFrame(bytes: bytes), tag: header.tag, flight, on: p.link, &out)
    }

    /// Reads the sample sectors through candidate `id` and verified path `v`.
    mutating func sendSamples(
        _ id: PathID, against v: PathID, lba48: Bool, counters: inout TargetCounters,
        _ wire: inout Wire, now: Instant, _ out: inout [EngineAction]
    ) {
        guard var pr = self[id].proof else { return }
        pr.samplesSent(now: now)
        self[id].proof = pr
        for lba in pr.sampleLBAs {
            sendProofRead(
                id, lba: lba, kind: .sample(candidate: id), lba48: lba48, counters: &counters, &wire, now: now, &out)
            sendProofRead(
                v, lba: lba, kind: .sample(candidate: id), lba48: lba48, counters: &counters, &wire, now: now, &out)
        }
    }

    /// Candidate `id` is another disk: it never carries I/O, and `err` says why, with both MACs.
    mutating func refuseDuplicate(
        _ id: PathID, because why: String, counters: inout TargetCounters, _ wire: Wire,
        _ out: inout [EngineAction]
    ) {
        self[id].standing = .duplicate
        self[id].proof = nil
        counters.duplicates += 1
        let name = wire.links[self[id].link]?.name ?? "?"
        let other = paths.first { $0.standing == .verified }
        let otherName = other.map { "\(wire.links[$0.link]?.name ?? "?") → \($0.mac)" } ?? "the verified path"
        out.append(
            .log(
                "\(address): \(self[id].mac) on \(name) answers IDENTIFY as \(address) (same model, serial and "
                    + "size) but is another disk: \(why) than through \(otherName); not used. Two disks share "
                    + "shelf.slot \(address): give one of them another address"))
    }

    /// Candidate `id` proved to reach the target's disk: it carries I/O from now on.
    mutating func accept(_ id: PathID, because why: String, _ wire: Wire, _ out: inout [EngineAction]) {
        self[id].standing = .verified
        self[id].proof = nil
        let name = wire.links[self[id].link]?.name ?? "?"
        out.append(.log("\(address): new path \(name) → \(self[id].mac) (\(why))"))
    }
}

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

    var stage: Stage = .sampling
    var stageSince: Instant
    /// The sample sectors, by LBA, as read through the candidate and through a verified path.
    var viaCandidate: [UInt64: [UInt8]] = [:]
    var viaVerified: [UInt64: [UInt8]] = [:]
    var sampleLBAs: [UInt64]
    var sampleAttempts = 0
    /// The witness sector, the data a write puts there, and what the candidate read there before.
    var lba: UInt64 = 0
    var written: [UInt8] = []
    var before: [UInt8] = []
    /// No witness is tried before this (after one that proved nothing).
    var nextTry: Instant = .zero
    /// The line saying it waits for a write was logged.
    var waitLogged = false

    init(sampleLBAs: [UInt64], now: Instant) {
        self.sampleLBAs = sampleLBAs
        stageSince = now
    }

    mutating func enter(_ s: Stage, now: Instant) {
        stage = s
        stageSince = now
    }

    /// Both reads of every sample sector are in.
    var samplesComplete: Bool {
        sampleLBAs.allSatisfy { viaCandidate[$0] != nil && viaVerified[$0] != nil }
    }

    /// The first sample sector that reads differently through the two paths.
    var disagreement: UInt64? { sampleLBAs.first { viaCandidate[$0] != viaVerified[$0] } }

    /// How long a stage may wait for an answer that a dropped probe will never bring.
    static let staleAfter: Duration = .seconds(5)
    /// After a witness that proved nothing, the next write is tried no sooner than this.
    static let retryAfter: Duration = .milliseconds(100)
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
        paths.first { p in
            guard p.standing == .proving, let pr = p.proof else { return false }
            return pr.stage == .awaitingWrite && now >= pr.nextTry
        }?.id
    }

    /// Whether writes wait: a witness sector is being read before its write goes out.
    func holdsWrites(now: Instant) -> Bool {
        paths.contains { p in
            guard let pr = p.proof else { return false }
            return pr.stage == .readingBefore && now - pr.stageSince < IdentityProof.staleAfter
        }
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
        pr.viaCandidate = [:]
        pr.viaVerified = [:]
        pr.sampleAttempts += 1
        pr.enter(.sampling, now: now)
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

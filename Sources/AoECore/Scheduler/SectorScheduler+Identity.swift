import AoEProtocol

/// The scheduler's half of `IdentityProof`: the proof's state machine says what each answer,
/// write and tick means (its verdicts); this sends its reads and acts on its verdicts (accept,
/// refuse, try again).
extension SectorScheduler {
    private var lba48: Bool { identity?.supportsLBA48 ?? true }

    /// A candidate answered IDENTIFY: verify it, start its proof, or refuse it.
    mutating func candidateIdentified(
        _ id: PathID, answering seen: ATAIdentity, target mine: ATAIdentity,
        _ wire: inout Wire, now: Instant, _ out: inout [EngineAction]
    ) {
        switch paths.verified(id, answering: seen, target: mine, counters: &counters, wire, now: now, &out) {
        case .verified:
            pathVerified(id, &wire, now: now, &out)
            if state == .up { paths.continueProbing(id, counters: &counters, &wire, now: now, &out) }
        case .prove(let v):
            paths.sendSamples(id, against: v, lba48: lba48, counters: &counters, &wire, now: now, &out)
        case .duplicate:
            break
        }
    }

    /// A proof read was answered with `data` (its first sector), or timed out (nil): the proof
    /// (`IdentityProof`) says what it means, and this does it.
    mutating func proofRead(
        _ flight: FrameInFlight, data: [UInt8]?, _ wire: inout Wire, now: Instant,
        _ out: inout [EngineAction]
    ) {
        switch flight.probe {
        case .sample(let c)?:
            guard paths.contains(c), var pr = paths[c].proof else { return }
            let verdict = pr.sampleRead(lba: flight.range.lba, viaCandidate: flight.path == c, data: data, now: now)
            paths[c].proof = pr
            switch verdict {
            case .waiting: break
            case .failed: samplesFailed(c, &wire, now: now, &out)
            case .differs(let lba):
                paths.refuseDuplicate(
                    c, because: "LBA \(lba) reads differently through it", counters: &counters, wire, &out)
            case .agree(let log):
                guard log else { break }
                let name = wire.links[paths[c].link]?.name ?? "?"
                out.append(
                    .log(
                        "\(address): \(paths[c].mac) on \(name) answers IDENTIFY and reads as \(address); it "
                            + "carries I/O once a write through a verified path is seen through it (two disks may "
                            + "share IDENTIFY strings and blank sectors)"))
            }
        case .witness?:
            let c = flight.path
            guard paths.contains(c), var pr = paths[c].proof else { return }
            let verdict = pr.witnessRead(data: data, now: now)
            paths[c].proof = pr
            switch verdict {
            case .ignored, .writeMayGo, .retry: break
            case .sameDisk:
                let v = paths.paths.first { $0.standing == .verified }
                let via = v.map { "\(wire.links[$0.link]?.name ?? "?") → \($0.mac)" } ?? "a verified path"
                paths.accept(c, because: "a write through \(via) reads back through it: the same disk", wire, &out)
                pathVerified(c, &wire, now: now, &out)
                if state == .up { paths.continueProbing(c, counters: &counters, &wire, now: now, &out) }
            case .otherDisk:
                paths.refuseDuplicate(
                    c,
                    because: "a write to LBA \(pr.lba) did not reach it: the sector reads as "
                        + "before the write through it, and as written", counters: &counters, wire, &out)
            }
        default:
            break
        }
    }

    /// The sample reads of candidate `c` went (partly) unanswered.
    private mutating func samplesFailed(_ c: PathID, _ wire: inout Wire, now: Instant, _ out: inout [EngineAction]) {
        guard let pr = paths[c].proof else { return }
        if paths.liveVerified(except: c, wire) == nil {
            // The verified paths went silent meanwhile (a NIC swap): nothing to compare with.
            paths.accept(c, because: "the other paths stopped answering", wire, &out)
            pathVerified(c, &wire, now: now, &out)
        } else if let v = paths.liveVerified(except: c, wire), pr.sampleAttempts < wire.configuration.verifyAttempts {
            paths.sendSamples(c, against: v, lba48: lba48, counters: &counters, &wire, now: now, &out)
        } else {
            counters.candidatesDropped += 1
            out.append(
                .log(
                    "\(address): \(paths[c].mac) answered IDENTIFY but not the reads that would prove it the "
                        + "same disk; dropped"))
            paths.remove(c)
        }
    }

    /// Before the first piece of write `r` goes out: if a proving path waits for a write, read
    /// the write's first sector through it, and hold writes until that answer is in.
    mutating func witnessWrite(_ r: WorkRange, _ wire: inout Wire, now: Instant, _ out: inout [EngineAction]) {
        guard let c = paths.awaitingWitness(now: now), paths.liveVerified(except: c, wire) != nil,
            let id = r.request, let buffer = pending[id]?.request.buffer, r.bufferOffset + 512 <= buffer.count,
            var pr = paths[c].proof
        else { return }
        pr.witnessChosen(
            lba: r.lba,
            data: Array(UnsafeRawBufferPointer(rebasing: buffer.bytes[r.bufferOffset..<(r.bufferOffset + 512)])),
            now: now)
        paths[c].proof = pr
        paths.sendProofRead(c, lba: r.lba, kind: .witness, lba48: lba48, counters: &counters, &wire, now: now, &out)
    }

    /// A write frame was answered: if it carried a witness sector, read it through the candidate.
    mutating func witnessWritten(_ range: WorkRange, _ wire: inout Wire, now: Instant, _ out: inout [EngineAction]) {
        guard paths.anyProving else { return }  // every write frame passes here
        for c in paths.ids {
            guard var pr = paths[c].proof, pr.writeAnswered(lba: range.lba, sectors: range.sectors, now: now)
            else { continue }
            paths[c].proof = pr
            paths.sendProofRead(
                c, lba: pr.lba, kind: .witness, lba48: lba48, counters: &counters, &wire, now: now, &out)
        }
    }

    /// Stages whose answer will not come (its probe dropped with a link, its write failed)
    /// start again.
    mutating func proofTick(_ wire: inout Wire, now: Instant, _ out: inout [EngineAction]) {
        for c in paths.ids {
            guard var pr = paths[c].proof else { continue }
            let verdict = pr.tick(now: now)
            paths[c].proof = pr
            if verdict == .samplesStale { return samplesFailed(c, &wire, now: now, &out) }
        }
    }
}

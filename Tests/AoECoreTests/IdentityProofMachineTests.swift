import Testing

@testable import AoECore

/// `IdentityProof` as a state machine (issue 34): each event and the verdict it gives, as
/// tables, with no scheduler, paths or wire (IdentityProofTests drives the whole engine).
@Suite("Identity proof: events and verdicts, table-driven")
struct IdentityProofMachineTests {
    static let zeros = [UInt8](repeating: 0, count: 512)
    static let ones = [UInt8](repeating: 1, count: 512)
    static let twos = [UInt8](repeating: 2, count: 512)
    static func at(_ ms: Int64) -> Instant { Instant(nanoseconds: UInt64(ms) * 1_000_000) }

    /// A proof sampling LBAs 0 and 99, both read through both paths with `candidate` / `verified`.
    static func sampled(candidate: [UInt8] = zeros, verified: [UInt8] = zeros) -> (
        IdentityProof, [IdentityProof.SampleVerdict]
    ) {
        var p = IdentityProof(sampleLBAs: [0, 99], now: at(0))
        p.samplesSent(now: at(0))
        var v: [IdentityProof.SampleVerdict] = []
        for lba: UInt64 in [0, 99] {
            v.append(p.sampleRead(lba: lba, viaCandidate: true, data: candidate, now: at(1)))
            v.append(p.sampleRead(lba: lba, viaCandidate: false, data: verified, now: at(1)))
        }
        return (p, v)
    }

    @Test("samples: agreeing sectors wait for a write (logged once); a differing one is another disk; silence fails")
    func samples() {
        let (p, v) = Self.sampled()
        #expect(v == [.waiting, .waiting, .waiting, .agree(log: true)])
        #expect(p.stage == .awaitingWrite && p.awaitsWitness(now: Self.at(1)))
        let (q, w) = Self.sampled(candidate: Self.ones)
        #expect(w.last == .differs(lba: 0) && q.stage == .sampling)
        var r = IdentityProof(sampleLBAs: [0], now: Self.at(0))
        r.samplesSent(now: Self.at(0))
        #expect(r.sampleRead(lba: 0, viaCandidate: true, data: nil, now: Self.at(1)) == .failed)
        // A second round that agrees does not log again.
        var again = p
        again.samplesSent(now: Self.at(2))
        #expect(again.sampleAttempts == 2)
        _ = again.sampleRead(lba: 0, viaCandidate: true, data: Self.zeros, now: Self.at(3))
        _ = again.sampleRead(lba: 0, viaCandidate: false, data: Self.zeros, now: Self.at(3))
        _ = again.sampleRead(lba: 99, viaCandidate: true, data: Self.zeros, now: Self.at(3))
        #expect(again.sampleRead(lba: 99, viaCandidate: false, data: Self.zeros, now: Self.at(3)) == .agree(log: false))
        // Outside sampling, sample answers are not its business.
        var late = p
        #expect(late.sampleRead(lba: 0, viaCandidate: true, data: nil, now: Self.at(4)) == .waiting)
    }

    struct WitnessRow: Sendable, CustomTestStringConvertible {
        var name: String
        /// What the write puts at the witness LBA, what the candidate reads there before it, and after.
        var written: [UInt8]
        var before: [UInt8]?
        var after: [UInt8]?
        var verdicts: [IdentityProof.WitnessVerdict]
        var stage: IdentityProof.Stage
        var testDescription: String { name }
    }

    static let witnessRows: [WitnessRow] = [
        WitnessRow(
            name: "the write reads back through the candidate: the same disk", written: ones, before: zeros,
            after: ones, verdicts: [.writeMayGo, .sameDisk], stage: .readingAfter),
        WitnessRow(
            name: "the sector reads as before: the write did not reach it", written: ones, before: zeros,
            after: zeros, verdicts: [.writeMayGo, .otherDisk], stage: .readingAfter),
        WitnessRow(
            name: "a later write changed the sector meanwhile: try again", written: ones, before: zeros,
            after: twos, verdicts: [.writeMayGo, .retry], stage: .awaitingWrite),
        WitnessRow(
            name: "the write's data is there already: proves nothing", written: zeros, before: zeros,
            after: nil, verdicts: [.retry], stage: .awaitingWrite),
        WitnessRow(
            name: "the read before goes unanswered: try again later", written: ones, before: nil,
            after: nil, verdicts: [.retry], stage: .awaitingWrite),
        WitnessRow(
            name: "the read after goes unanswered: try again later", written: ones, before: zeros,
            after: nil, verdicts: [.writeMayGo, .retry], stage: .awaitingWrite),
    ]

    @Test("a write as witness", arguments: witnessRows)
    func witness(_ row: WitnessRow) {
        var (p, _) = Self.sampled()
        p.witnessChosen(lba: 7, data: row.written, now: Self.at(10))
        #expect(p.holdsWrites(now: Self.at(11)), "writes wait for the read before")
        #expect(!p.holdsWrites(now: Self.at(10) + IdentityProof.staleAfter), "not past staleAfter")
        var got = [p.witnessRead(data: row.before, now: Self.at(12))]
        if got == [.writeMayGo] {
            #expect(!p.holdsWrites(now: Self.at(12)))
            let missed = p.writeAnswered(lba: 8, sectors: 8, now: Self.at(13))
            #expect(!missed, "a write that missed the witness")
            let covered = p.writeAnswered(lba: 0, sectors: 16, now: Self.at(13))
            #expect(covered)
            got.append(p.witnessRead(data: row.after, now: Self.at(14)))
        }
        #expect(got == row.verdicts)
        #expect(p.stage == row.stage)
        if row.verdicts.last == .retry {
            let silent = (got.count == 1 ? row.before : row.after) == nil
            let wait = silent ? IdentityProof.retryAfterSilence : IdentityProof.retryAfter
            let when = got.count == 1 ? Self.at(12) : Self.at(14)
            #expect(!p.awaitsWitness(now: when) && p.awaitsWitness(now: when + wait))
        }
    }

    @Test(
        "ticks: a stage whose answer will not come ends after staleAfter (a write's after 6 ×); waiting for a write never does"
    )
    func ticks() {
        var s = IdentityProof(sampleLBAs: [0], now: Self.at(0))
        s.samplesSent(now: Self.at(0))
        let stale = IdentityProof.staleAfter
        #expect(s.tick(now: Self.at(0) + (stale - Duration.milliseconds(1))) == .none)
        #expect(s.tick(now: Self.at(0) + IdentityProof.staleAfter) == .samplesStale)
        var (p, _) = Self.sampled()
        #expect(p.tick(now: Self.at(1_000_000)) == .none, "awaiting a write waits as long as it takes")
        p.witnessChosen(lba: 0, data: Self.ones, now: Self.at(10))
        #expect(p.tick(now: Self.at(10) + IdentityProof.staleAfter) == .restarted && p.stage == .awaitingWrite)
        p.witnessChosen(lba: 0, data: Self.ones, now: Self.at(20))
        _ = p.witnessRead(data: Self.zeros, now: Self.at(21))
        #expect(p.stage == .writing)
        let writing = IdentityProof.staleAfter * IdentityProof.writingStaleFactor
        #expect(p.tick(now: Self.at(21) + (writing - Duration.milliseconds(1))) == .none)
        #expect(p.tick(now: Self.at(21) + writing) == .restarted)
    }
}

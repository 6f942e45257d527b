import AoEProtocol
import AoETarget
import Testing

@Suite("aoefs serve: DATA SET MANAGEMENT (TRIM)")
struct TargetTrimTests {
    func trimming(_ configure: (inout TargetSettings) -> Void = { _ in }) -> TargetCore {
        core(sectors: 1 << 20) { s in
            s.trim = true
            configure(&s)
        }
    }

    func isAbort(_ a: TargetAction) -> Bool {
        guard let m = ata(a) else { return false }
        return m.status.contains(.error) && m.errorRegister == .aborted
    }

    @Test(
        "IDENTIFY offers TRIM with deterministic zeros after it (words 169, 69) and 8 blocks per command (105) only when on"
    )
    func identify() throws {
        var on = trimming()
        let id = try ATAIdentity(parsing: try #require(ata(on.answer(frame(.ata(.identify()))))).data)
        #expect(id.trim && id.deterministicReadAfterTrim && id.readsZerosAfterTrim && id.trimBlocksPerCommand == 8)
        var off = core(sectors: 1 << 20)
        let plain = try ATAIdentity(parsing: try #require(ata(off.answer(frame(.ata(.identify()))))).data)
        #expect(!plain.trim && !plain.trimsToZeros)
    }

    @Test("a TRIM becomes hole punches of its ranges, in bytes; the answer is the request's header")
    func trimIsDiskWork() throws {
        var c = trimming()
        let a = c.answer(frame(.ata(.trim(lba: 100, sectors: 70_000))))
        guard case .disk(.trim(let header, let ranges)) = a else { Issue.record("not disk work: \(a)"); return }
        let offsets: [UInt64] = [51_200, 33_605_120]  // LBAs 100 and 100 + 65 535
        let counts: [UInt64] = [33_553_920, 2_286_080]  // 65 535 and 4 465 sectors
        #expect(ranges.map(\.offset) == offsets)
        #expect(ranges.map(\.count) == counts)
        let answer = try AoEFrame(decoding: header)
        #expect(answer.header.isResponse && answer.header.tag == Tag(7))
        #expect(c.counters.trims == 1 && c.counters.sectorsTrimmed == 70_000)
    }

    @Test(
        "aborted with nothing to do: a range past the end, not offered (--no-trim), -r, no TRIM bit, too many blocks, data missing"
    )
    func aborts() throws {
        var c = trimming()
        #expect(isAbort(c.answer(frame(.ata(.trim(lba: (1 << 20) - 10, sectors: 11))))), "one sector past the end")
        // A second, valid range beside a bad one: the whole command is refused.
        var two = ATAMessage.trim(lba: 0, sectors: 8)
        two.data.replaceSubrange(
            8..<16, with: withUnsafeBytes(of: (UInt64(1 << 20) | 1 << 48).littleEndian, Array.init))
        #expect(isAbort(c.answer(frame(.ata(two)))))
        var notOffered = core(sectors: 1 << 20)
        #expect(isAbort(notOffered.answer(frame(.ata(.trim(lba: 0, sectors: 8))))))
        var readOnly = trimming { $0.readOnly = true }
        #expect(isAbort(readOnly.answer(frame(.ata(.trim(lba: 0, sectors: 8))))))
        var noBit = ATAMessage.trim(lba: 0, sectors: 8)
        noBit.errorOrFeature = 0
        #expect(isAbort(c.answer(frame(.ata(noBit)))))
        var nine = ATAMessage.trim(lba: 0, sectors: 8)
        nine.data += [UInt8](repeating: 0, count: 8 * 512)
        nine.sectorCount = 9
        #expect(isAbort(c.answer(frame(.ata(nine)))), "more blocks than word 105 offers")
        var none = ATAMessage.trim(lba: 0, sectors: 8)
        none.sectorCount = 0
        #expect(isAbort(c.answer(frame(.ata(none)))))
        #expect(c.counters.trims == 0 && notOffered.counters.trims == 0 && readOnly.counters.trims == 0)
    }
}

import AoEProtocol
import AoETestSupport
import Testing

@Suite("DATA SET MANAGEMENT (TRIM) entries and IDENTIFY's TRIM words")
struct DataSetManagementTests {
    @Test(
        "a range becomes entries of at most 65535 sectors, in order, in whole blocks; unused entries are zero",
        arguments: [
            (UInt64(0), 1, 1), (5, 65_535, 1), (5, 65_536, 1), (1 << 40, 64 * 65_535, 1),
            (7, 64 * 65_535 + 1, 2), (3, 1_048_576, 1),
        ])
    func encodesEntries(lba: UInt64, sectors: Int, blocks: Int) {
        let bytes = DataSetManagement.encoded(lba: lba, sectors: sectors)
        #expect(bytes.count == blocks * 512)
        #expect(DataSetManagement.blocks(for: sectors) == blocks)
        let ranges = bytes.withUnsafeBytes { DataSetManagement.decode($0, blocks: blocks) }
        #expect(ranges.allSatisfy { $0.sectors >= 1 && $0.sectors <= 65_535 })
        #expect(ranges.reduce(0) { $0 + $1.sectors } == sectors, "the entries cover exactly the range")
        var next = lba
        for r in ranges {
            #expect(r.lba == next, "contiguous, in order")
            next += UInt64(r.sectors)
        }
        // Everything after the last used entry is zero (ACS: a zero count is an unused entry).
        let used = ranges.count * 8
        #expect(bytes[used...].allSatisfy { $0 == 0 })
    }

    @Test("the entry layout is ACS-3's: LBA in bits 47:0, count in 63:48, little-endian")
    func entryLayout() {
        let bytes = DataSetManagement.encoded(lba: 0x0102_0304_0506, sectors: 0x0708)
        #expect(Array(bytes[0..<8]) == [0x06, 0x05, 0x04, 0x03, 0x02, 0x01, 0x08, 0x07])
        let m = ATAMessage.trim(lba: 0x0102_0304_0506, sectors: 0x0708)
        #expect(m.commandOrStatus == 0x06 && m.errorOrFeature == 1 && m.sectorCount == 1)
        #expect(m.flags == [.extended, .write])
        #expect(m.opcode.description == "DATA SET MANAGEMENT")
    }

    @Test("decoding never traps: random bytes, short data, counts larger than the data, zero and negative blocks")
    func decodeIsTotal() {
        var rng = SplitMixRNG(33)
        for _ in 0..<2000 {
            let n = Int(rng.next() % 1200)
            let data = (0..<n).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            let blocks = Int(rng.next() % 5) - 1
            let ranges = data.withUnsafeBytes { DataSetManagement.decode($0, blocks: blocks) }
            #expect(ranges.count <= min(max(blocks, 0) * 64, n / 8))
            #expect(ranges.allSatisfy { $0.lba < 1 << 48 && $0.sectors > 0 && $0.sectors <= 65_535 })
        }
    }

    @Test("IDENTIFY words 69, 105 and 169 round-trip; TRIM serves as a hole only with zeros after it")
    func identifyWords() throws {
        let offered = ATAIdentity(
            model: "m", serial: "s", firmware: "f", supportsLBA48: true, sectors: 1 << 21,
            trim: true, deterministicReadAfterTrim: true, readsZerosAfterTrim: true,
            trimBlocksPerCommand: 8)
        let bytes = offered.encoded()
        #expect(bytes[2 * 169] & 1 == 1)
        #expect(UInt16(bytes[2 * 69]) | UInt16(bytes[2 * 69 + 1]) << 8 == 0x4020)
        #expect(bytes[2 * 105] == 8)
        let parsed = try ATAIdentity(parsing: bytes)
        #expect(parsed == offered && parsed.trimsToZeros)
        var noZeros = offered
        noZeros.readsZerosAfterTrim = false
        #expect(try ATAIdentity(parsing: noZeros.encoded()).trimsToZeros == false, "TRIM without RZAT is no hole")
        let plain = ATAIdentity(model: "m", serial: "s", firmware: "f", supportsLBA48: true, sectors: 1 << 21)
        let p = try ATAIdentity(parsing: plain.encoded())
        #expect(!p.trim && !p.trimsToZeros && p.trimBlocksPerCommand == 0)
    }
}

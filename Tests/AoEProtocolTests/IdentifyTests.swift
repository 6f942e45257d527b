import AoEProtocol
import Testing

#if canImport(Glibc)
    import Glibc
#endif

func getenvString(_ name: String) -> String? { getenv(name).map { String(cString: $0) } }

@Suite("IDENTIFY DEVICE parsing")
struct IdentifyTests {
    /// IDENTIFY data as vblade builds it (vblade ata.c atainit): words 83 = 0x5400, 86 = 0x1400.
    func vbladeLike(sectors: UInt64) -> [UInt8] {
        var w = [UInt16](repeating: 0, count: 256)
        func put(_ s: String, _ first: Int) {
            let c = Array(s.utf8)
            for k in stride(from: 0, to: c.count, by: 2) { w[first + k / 2] = UInt16(c[k]) << 8 | UInt16(c[k + 1]) }
        }
        put("VBLADE10.3          ", 10)  // serial, 20 characters
        put("V25     ", 23)  // firmware, 8 characters
        put("Coraid EtherDrive vblade                ", 27)  // model, 40 characters
        w[47] = 0x8000
        w[49] = 0x0200
        w[60] = UInt16(truncatingIfNeeded: min(sectors, 0x0FFF_FFFF))
        w[61] = UInt16(truncatingIfNeeded: min(sectors, 0x0FFF_FFFF) >> 16)
        w[83] = 0x5400
        w[86] = 0x1400
        for k in 0..<4 { w[100 + k] = UInt16(truncatingIfNeeded: sectors >> (16 * UInt64(k))) }
        return w.flatMap { [UInt8(truncatingIfNeeded: $0), UInt8($0 >> 8)] }
    }

    @Test("words 82–87: vblade offers FLUSH CACHE but no write cache; our encoding round-trips each bit")
    func writeCacheAndFlushWords() throws {
        let v = try ATAIdentity(parsing: vbladeLike(sectors: 1 << 21))
        #expect(!v.writeCacheSupported && !v.writeCacheEnabled)
        #expect(v.flushCache && !v.flushCacheExt)
        for (wc, flush, ext) in [(true, true, true), (true, false, false), (false, true, false), (false, false, false)]
        {
            let id = ATAIdentity(
                model: "m", serial: "s", firmware: "f", supportsLBA48: true, sectors: 1 << 21,
                writeCacheSupported: wc, writeCacheEnabled: wc, flushCache: flush, flushCacheExt: ext)
            #expect(try ATAIdentity(parsing: id.encoded()) == id)
        }
        // Words 82–84 count only with word 83's bit 14 set and bit 15 clear (ACS-3 §7.12.7).
        var bytes = vbladeLike(sectors: 1 << 21)
        bytes[2 * 82] = 1 << 5
        bytes[2 * 83 + 1] = 0x94  // bit 15 set: the word is invalid
        let invalid = try ATAIdentity(parsing: bytes)
        #expect(!invalid.writeCacheSupported)
    }

    @Test func lba48CapacityFromWords100To103() throws {
        let sectors: UInt64 = 130 << 21  // 130 GiB
        let id = try ATAIdentity(parsing: vbladeLike(sectors: sectors))
        #expect(id.supportsLBA48)
        #expect(id.sectors == sectors)
        #expect(id.capacity == 130 << 30)
        #expect(id.model == "Coraid EtherDrive vblade")
        #expect(id.serial == "VBLADE10.3")
        #expect(id.firmware == "V25")
    }

    @Test("a forged IDENTIFY with all-ones words 100–103 is held to 2⁴⁸ sectors: no overflow of capacity (issue 30)")
    func lba48CapacityBeyond48Bits() throws {
        var bytes = vbladeLike(sectors: 1 << 20)
        for i in 200..<208 { bytes[i] = 0xFF }
        let id = try ATAIdentity(parsing: bytes)
        #expect(id.sectors == 1 << 48)
        #expect(id.capacity == 1 << 57)
        var made = id
        made.sectors = .max
        #expect(made.capacity == .max)
    }

    @Test func lba28CapacityFromWords60And61() throws {
        var bytes = vbladeLike(sectors: 0x0123_4567)
        bytes[2 * 83 + 1] = 0x40  // clear bit 10 in word 83 …
        bytes[2 * 83] = 0
        bytes[2 * 86 + 1] = 0x10  // … and in word 86
        bytes[2 * 86] = 0
        for k in 100..<104 { bytes[2 * k] = 0xFF }  // words 100–103 must now be ignored
        let id = try ATAIdentity(parsing: bytes)
        #expect(!id.supportsLBA48)
        #expect(id.sectors == 0x0123_4567)
    }

    @Test func encodedIdentityRoundTrips() throws {
        let id = ATAIdentity(
            model: "aoefs target", serial: "S1", firmware: "0.1", supportsLBA48: true,
            sectors: 1 << 40, cylinders: 16383, heads: 16, sectorsPerTrack: 63)
        #expect(try ATAIdentity(parsing: id.encoded()) == id)
    }

    @Test func shortDataIsRejected() {
        #expect(throws: AoEDecodeError.identifyTooShort(100)) {
            try ATAIdentity(parsing: [UInt8](repeating: 0, count: 100))
        }
    }

    @Test func statusAndErrorDecoding() {
        let m = ATAMessage(errorOrFeature: 0x10, commandOrStatus: 0x41)
        #expect(m.status.isFailure)
        #expect(m.status.description == "0x41 (DRDY|ERR)")
        #expect(m.errorRegister.description == "0x10 IDNF (sector not found)")
        #expect(!ATAStatus(rawValue: 0x40).isFailure)
        #expect(ATAStatus(rawValue: 0x80).isFailure)  // BSY counts as failure (Linux: cmdstat & 0xa9)
    }
}

@Suite("Wire primitives")
struct PrimitiveTests {
    @Test func macAddressForms() {
        let m = MACAddress(0xCA, 0x55, 0x0A, 0x0A, 0xBD, 0xFF)
        #expect(m.description == "ca:55:0a:0a:bd:ff")
        #expect(m.compactHex == "ca550a0abdff")
        #expect(MACAddress(parsing: "ca:55:0a:0a:bd:ff") == m)
        #expect(MACAddress(parsing: "CA550A0ABDFF") == m)
        #expect(MACAddress(parsing: "ca:55:0a:0a:bd") == nil)
        #expect(MACAddress(parsing: "+a:55:0a:0a:bd:ff") == nil)
    }

    @Test func targetAddressForms() {
        #expect(TargetAddress(parsing: "e10.3") == TargetAddress(10, 3))
        #expect(TargetAddress(parsing: "10.3") == TargetAddress(10, 3))
        #expect(TargetAddress(parsing: "e10") == nil)
        #expect(TargetAddress(parsing: "e10.256") == nil)
        #expect(TargetAddress(10, 3).description == "e10.3")
    }

    @Test func aoeErrorCodesInWords() {
        #expect(AoEErrorCode.targetReserved.description == "target is reserved")
        #expect(AoEErrorCode(rawValue: 9).description == "unknown error code 9")
    }
}

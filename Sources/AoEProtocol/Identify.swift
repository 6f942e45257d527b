// IDENTIFY DEVICE data: 256 little-endian 16-bit words (ATA/ATAPI-8 ACS §7.16; Linux
// ataid_complete). Strings are stored two characters per word, high byte first, which is why
// every driver "byte-swaps" them.

/// The facts aoefs needs from a target's IDENTIFY DEVICE response.
public struct ATAIdentity: Hashable, Sendable {
    /// Words 27–46, trimmed.
    public var model: String
    /// Words 10–19, trimmed.
    public var serial: String
    /// Words 23–26, trimmed.
    public var firmware: String
    /// Word 83 or 86, bit 10: the target takes 48-bit LBAs.
    public var supportsLBA48: Bool
    /// Addressable 512-byte sectors: words 100–103 for LBA48, else words 60–61.
    public var sectors: UInt64
    /// A volatile write cache: supported (word 82 bit 5) and enabled (word 85 bit 5), ACS-3
    /// §7.12.7. Without an enabled one a write is durable once acknowledged (write-through).
    public var writeCacheSupported: Bool
    public var writeCacheEnabled: Bool
    /// FLUSH CACHE (0xE7) and FLUSH CACHE EXT (0xEA) offered: word 83 bits 12 and 13 (or the
    /// enabled copies in word 86). Words 82–87 count only when word 83 (or 86) has bit 14 set
    /// and bit 15 clear, as ACS requires.
    public var flushCache: Bool
    public var flushCacheExt: Bool
    /// DATA SET MANAGEMENT with TRIM offered: word 169 bit 0 (ACS-3 §7.12.7.79).
    public var trim: Bool
    /// After a TRIM, reads of the range are deterministic (word 69 bit 14) and return zeros
    /// (word 69 bit 5, RZAT): what a hole must read as (ACS-3 §7.12.7.36).
    public var deterministicReadAfterTrim: Bool
    public var readsZerosAfterTrim: Bool
    /// The most 512-byte blocks of range entries one DSM command takes: word 105 (0: not
    /// reported, which Linux's libata reads as one).
    public var trimBlocksPerCommand: UInt16
    /// Cylinders, heads, sectors per track (words 1, 3, 6), for tools that still ask.
    public var cylinders: UInt16
    public var heads: UInt16
    public var sectorsPerTrack: UInt16

    /// The most sectors a 48-bit LBA addresses.
    public static let maximumSectors: UInt64 = 1 << 48

    /// TRIM may serve as a hole: offered, and the trimmed sectors read back as zeros.
    public var trimsToZeros: Bool { trim && readsZerosAfterTrim }

    /// Capacity in bytes (saturating: an identity made in code may hold any count).
    public var capacity: UInt64 {
        let (bytes, over) = sectors.multipliedReportingOverflow(by: 512)
        return over ? .max : bytes
    }

    public init(
        model: String, serial: String, firmware: String, supportsLBA48: Bool, sectors: UInt64,
        writeCacheSupported: Bool = false, writeCacheEnabled: Bool = false, flushCache: Bool = false,
        flushCacheExt: Bool = false, trim: Bool = false, deterministicReadAfterTrim: Bool = false,
        readsZerosAfterTrim: Bool = false, trimBlocksPerCommand: UInt16 = 0,
        cylinders: UInt16 = 0, heads: UInt16 = 0, sectorsPerTrack: UInt16 = 0
    ) {
        self.trim = trim
        self.deterministicReadAfterTrim = deterministicReadAfterTrim
        self.readsZerosAfterTrim = readsZerosAfterTrim
        self.trimBlocksPerCommand = trimBlocksPerCommand
        self.writeCacheSupported = writeCacheSupported
        self.writeCacheEnabled = writeCacheEnabled
        self.flushCache = flushCache
        self.flushCacheExt = flushCacheExt
        self.model = model
        self.serial = serial
        self.firmware = firmware
        self.supportsLBA48 = supportsLBA48
        self.sectors = sectors
        self.cylinders = cylinders
        self.heads = heads
        self.sectorsPerTrack = sectorsPerTrack
    }

    /// Parses the first 512 bytes of `data`.
    /// - Throws: `AoEDecodeError.identifyTooShort` when there are fewer.
    public init(parsing data: some Collection<UInt8>) throws(AoEDecodeError) {
        let bytes = Array(data.prefix(512))
        guard bytes.count == 512 else { throw .identifyTooShort(bytes.count) }
        func word(_ i: Int) -> UInt16 { UInt16(bytes[2 * i]) | UInt16(bytes[2 * i + 1]) << 8 }
        func string(_ first: Int, _ last: Int) -> String {
            var chars: [UInt8] = []
            for w in first...last {
                chars.append(bytes[2 * w + 1])
                chars.append(bytes[2 * w])
            }
            let printable = chars.map { $0 >= 0x20 && $0 < 0x7F ? $0 : 0x20 }
            return String(decoding: printable, as: UTF8.self).trimmingSpaces()
        }
        // ACS: a word of the command-set block is valid when bit 14 is 1 and bit 15 is 0.
        func valid(_ w: UInt16) -> Bool { w & 0xC000 == 0x4000 }
        let first = valid(word(83))  // words 82–84
        let second = valid(word(87))  // words 85–87
        let offered = (first ? word(83) : 0) | (second ? word(86) : 0)
        let lba48 = (word(83) | word(86)) & (1 << 10) != 0
        let sectors: UInt64
        if lba48 {
            // Words 100–103 form a QWORD, but a 48-bit LBA addresses at most 2⁴⁸ sectors (ACS-3
            // §7.12.7.54); more is a forged or broken answer, and would overflow `capacity`.
            let words = (0..<4).reduce(UInt64(0)) { $0 | UInt64(word(100 + $1)) << (16 * UInt64($1)) }
            sectors = min(words, Self.maximumSectors)
        } else {
            sectors = UInt64(word(60)) | UInt64(word(61)) << 16
        }
        self.init(
            model: string(27, 46), serial: string(10, 19), firmware: string(23, 26), supportsLBA48: lba48,
            sectors: sectors,
            writeCacheSupported: first && word(82) & (1 << 5) != 0,
            writeCacheEnabled: first && second && word(82) & (1 << 5) != 0 && word(85) & (1 << 5) != 0,
            flushCache: offered & (1 << 12) != 0,
            flushCacheExt: offered & (1 << 13) != 0,
            trim: word(169) & 1 != 0,
            deterministicReadAfterTrim: word(69) & (1 << 14) != 0,
            readsZerosAfterTrim: word(69) & (1 << 5) != 0,
            trimBlocksPerCommand: word(105),
            cylinders: word(1), heads: word(3), sectorsPerTrack: word(6))
    }

    /// The 512 bytes a target returns for this identity (used by aoefs's own target and tests).
    public func encoded() -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: 512)
        func set(_ i: Int, _ v: UInt16) {
            bytes[2 * i] = UInt8(truncatingIfNeeded: v)
            bytes[2 * i + 1] = UInt8(v >> 8)
        }
        func put(_ s: String, _ first: Int, _ last: Int) {
            var chars = Array(s.utf8.prefix(2 * (last - first + 1)))
            chars += [UInt8](repeating: 0x20, count: 2 * (last - first + 1) - chars.count)
            for (k, w) in (first...last).enumerated() { set(w, UInt16(chars[2 * k]) << 8 | UInt16(chars[2 * k + 1])) }
        }
        set(1, cylinders)
        set(3, heads)
        set(6, sectorsPerTrack)
        put(serial, 10, 19)
        put(firmware, 23, 26)
        put(model, 27, 46)
        set(49, 1 << 9)  // LBA supported
        let lba28 = min(sectors, 0x0FFF_FFFF)  // words 60–61 are capped for LBA48 disks
        set(60, UInt16(truncatingIfNeeded: lba28))
        set(61, UInt16(truncatingIfNeeded: lba28 >> 16))
        let commands: UInt16 =
            (supportsLBA48 ? 1 << 10 : 0) | (flushCache ? 1 << 12 : 0) | (flushCacheExt ? 1 << 13 : 0)
        set(82, writeCacheSupported ? 1 << 5 : 0)
        set(83, 0x4000 | commands)
        set(84, 0x4000)
        set(85, writeCacheEnabled ? 1 << 5 : 0)
        set(86, commands)
        set(87, 0x4000)
        set(69, (deterministicReadAfterTrim ? 1 << 14 : 0) | (readsZerosAfterTrim ? 1 << 5 : 0))
        set(105, trimBlocksPerCommand)
        set(169, trim ? 1 : 0)
        if supportsLBA48 {
            for k in 0..<4 { set(100 + k, UInt16(truncatingIfNeeded: sectors >> (16 * UInt64(k)))) }
        }
        return bytes
    }
}

extension String {
    func trimmingSpaces() -> String {
        var s = Substring(self)
        while s.first == " " { s = s.dropFirst() }
        while s.last == " " { s = s.dropLast() }
        return String(s)
    }
}

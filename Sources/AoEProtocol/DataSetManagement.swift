// ATA DATA SET MANAGEMENT (06h) with the TRIM bit: ACS-3 §7.5. A 48-bit command whose data (a
// data-out transfer) is a whole number of 512-byte blocks, named by the count register; each
// block holds 64 LBA range entries of 8 little-endian bytes: bits 47:0 the first LBA, bits 63:48
// the number of sectors from it. An entry with a count of zero is unused (ACS-3 §7.5.3.2). Over
// AoE the command travels as any write does: E and W set, the blocks as the frame's data. None
// of the other AoE stacks (the Linux driver, vblade, qaoed, ggaoed) sends or answers it.

/// Encoding and decoding of DATA SET MANAGEMENT's TRIM range entries.
public enum DataSetManagement {
    /// The feature register's TRIM bit.
    public static let trimFeature: UInt8 = 0x01
    /// Range entries in one 512-byte block.
    public static let entriesPerBlock = 64
    /// The most sectors one entry covers (its 16-bit count).
    public static let sectorsPerEntry = 0xFFFF
    /// The most sectors `blocks` blocks of entries cover.
    public static func sectors(coveredBy blocks: Int) -> Int { blocks * entriesPerBlock * sectorsPerEntry }

    /// The blocks needed to name `sectors` consecutive sectors (at least one).
    public static func blocks(for sectors: Int) -> Int {
        let entries = (max(sectors, 1) + sectorsPerEntry - 1) / sectorsPerEntry
        return (entries + entriesPerBlock - 1) / entriesPerBlock
    }

    /// One range to trim.
    public struct Range: Hashable, Sendable, CustomStringConvertible {
        public var lba: UInt64
        public var sectors: Int
        public init(lba: UInt64, sectors: Int) {
            self.lba = lba
            self.sectors = sectors
        }
        public var description: String { "LBA \(lba)+\(sectors)" }
    }

    /// Writes the entries for `sectors` sectors from `lba` into `destination`, which must hold
    /// `blocks(for: sectors)` blocks; unused entries are zeroed. Returns the bytes written (whole
    /// blocks).
    /// - Precondition: `destination` is large enough, and `lba + sectors` fits 48 bits.
    @discardableResult
    public static func encode(lba: UInt64, sectors: Int, into destination: UnsafeMutableRawBufferPointer) -> Int {
        let count = blocks(for: sectors) * 512
        // Never reached from input: the scheduler sizes the buffer with `blocks(for:)`, and the
        // capacity check before it keeps LBAs inside the target's 48 bits.
        precondition(destination.count >= count && lba + UInt64(max(sectors, 0)) <= 1 << 48, "DSM entries do not fit")
        destination.baseAddress!.initializeMemory(as: UInt8.self, repeating: 0, count: count)
        var at = lba, left = sectors, o = 0
        while left > 0 {
            let n = min(left, sectorsPerEntry)
            destination.storeBytes(of: (at | UInt64(n) << 48).littleEndian, toByteOffset: o, as: UInt64.self)
            at += UInt64(n)
            left -= n
            o += 8
        }
        return count
    }

    /// `encode` into a new array.
    public static func encoded(lba: UInt64, sectors: Int) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: blocks(for: sectors) * 512)
        _ = bytes.withUnsafeMutableBytes { encode(lba: lba, sectors: sectors, into: $0) }
        return bytes
    }

    /// The used entries of the first `blocks` blocks of `data`, in order. Never traps: fewer bytes
    /// than the blocks named reads what is there (whole entries only).
    public static func decode(_ data: UnsafeRawBufferPointer, blocks: Int) -> [Range] {
        let usable = min(max(blocks, 0) * 512, data.count) / 8 * 8
        var ranges: [Range] = []
        var o = 0
        while o < usable {
            let e = UInt64(littleEndian: data.loadUnaligned(fromByteOffset: o, as: UInt64.self))
            let n = Int(e >> 48)
            if n > 0 { ranges.append(Range(lba: e & 0xFFFF_FFFF_FFFF, sectors: n)) }
            o += 8
        }
        return ranges
    }
}

extension ATAMessage {
    /// DATA SET MANAGEMENT, TRIM of `sectors` sectors from `lba` (its entries as the data).
    public static func trim(lba: UInt64, sectors: Int) -> ATAMessage {
        let data = DataSetManagement.encoded(lba: lba, sectors: sectors)
        return ATAMessage(
            flags: [.extended, .write], errorOrFeature: DataSetManagement.trimFeature,
            sectorCount: UInt8(truncatingIfNeeded: data.count / 512),
            commandOrStatus: ATAOpcode.dataSetManagement.rawValue, data: data)
    }
}

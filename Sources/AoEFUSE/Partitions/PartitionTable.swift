/// One partition of a target, as the Linux driver would show it as `eS.LpN`.
public struct Partition: Sendable, Hashable {
    /// 1–4 for MBR primaries, 5 and up for logicals in an extended partition; the entry's
    /// position + 1 for GPT.
    public var number: Int
    /// First sector and length in sectors (as `/sys/block/…/eS.LpN/start` and `size`).
    public var start: UInt64
    public var size: UInt64
    /// The MBR type byte (`0x83`) or the GPT type GUID.
    public var type: String
    /// The GPT partition name ("" for MBR).
    public var name: String

    public init(number: Int, start: UInt64, size: UInt64, type: String, name: String = "") {
        self.number = number
        self.start = start
        self.size = size
        self.type = type
        self.name = name
    }
}

/// The partition table of a disk, read defensively: MBR primaries and the logicals of an
/// extended partition's chain, or GPT (behind a protective MBR; header and entries checked by
/// CRC32, the backup header used when the primary is bad). A malformed or hostile table yields
/// the partitions that are sound and a line in `problems` for each one that is not; reading
/// never traps and never loops (UEFI 2.10 §5.2–5.3; the MBR layout of Linux block/partitions/msdos.c).
///
/// Pure: `sector` returns the 512 bytes of a sector (nil if it cannot be read).
public struct PartitionTable: Sendable, Hashable {
    public enum Kind: String, Sendable, Hashable { case none, mbr, gpt }
    public var kind: Kind = .none
    public var partitions: [Partition] = []
    public var problems: [String] = []

    public init() {}

    /// Most logical partitions followed in an extended chain (Linux stops at a similar bound).
    public static let maxLogicals = 128
    /// Most GPT entries read (the usual array is 128 × 128 bytes).
    public static let maxGPTEntries = 256

    public static func read(capacity: UInt64, sector: (UInt64) -> [UInt8]?) -> PartitionTable {
        var t = PartitionTable()
        guard capacity > 1, let mbr = sector(0), mbr.count >= 512, mbr[510] == 0x55, mbr[511] == 0xAA else { return t }
        let entries = (0..<4).map { MBREntry(mbr, at: 446 + 16 * $0) }
        if entries.contains(where: { $0.type == 0xEE }) {
            t.kind = .gpt
            t.readGPT(capacity: capacity, sector: sector)
            return t
        }
        t.kind = .mbr
        for (i, e) in entries.enumerated() where e.type != 0 {
            if Self.isExtended(e.type) {
                t.readLogicals(extended: e, capacity: capacity, sector: sector)
            } else {
                t.accept(
                    Partition(
                        number: i + 1, start: UInt64(e.start), size: UInt64(e.size),
                        type: "0x" + hex(e.type)), capacity: capacity)
            }
        }
        t.partitions.sort { $0.number < $1.number }
        return t
    }

    static func isExtended(_ type: UInt8) -> Bool { type == 0x05 || type == 0x0F || type == 0x85 }

    /// Adds `p` if it lies inside the disk and overlaps no partition accepted before it.
    mutating func accept(_ p: Partition, capacity: UInt64) {
        guard p.size > 0, p.start > 0, p.start < capacity, p.size <= capacity - p.start else {
            return problems.append(
                "partition \(p.number) (start \(p.start), \(p.size) sectors) lies outside the disk "
                    + "(\(capacity) sectors); ignored")
        }
        if let other = partitions.first(where: { p.start < $0.start + $0.size && $0.start < p.start + p.size }) {
            return problems.append("partition \(p.number) overlaps partition \(other.number); ignored")
        }
        partitions.append(p)
    }

    mutating func readLogicals(extended: MBREntry, capacity: UInt64, sector: (UInt64) -> [UInt8]?) {
        let base = UInt64(extended.start)
        var next = base
        var seen: Set<UInt64> = []
        var number = 5
        while number < 5 + Self.maxLogicals {
            guard next < capacity, seen.insert(next).inserted else {
                if next < capacity {
                    problems.append("the extended partition's chain loops back to sector \(next); stopped")
                }
                return
            }
            guard let ebr = sector(next), ebr.count >= 512, ebr[510] == 0x55, ebr[511] == 0xAA else {
                return problems.append("no extended boot record at sector \(next); the chain stops there")
            }
            let logical = MBREntry(ebr, at: 446), link = MBREntry(ebr, at: 462)
            if logical.type != 0 {
                accept(
                    Partition(
                        number: number, start: next + UInt64(logical.start), size: UInt64(logical.size),
                        type: "0x" + hex(logical.type)), capacity: capacity)
                number += 1
            }
            guard Self.isExtended(link.type), link.start > 0 else { return }
            next = base + UInt64(link.start)
        }
        problems.append("more than \(Self.maxLogicals) logical partitions; the rest are ignored")
    }

    mutating func readGPT(capacity: UInt64, sector: (UInt64) -> [UInt8]?) {
        switch GPTHeader.read(at: 1, capacity: capacity, sector: sector) {
        case .success(let h): return readEntries(h, capacity: capacity, sector: sector)
        case .failure(let why):
            problems.append("primary GPT header: \(why); trying the backup at sector \(capacity - 1)")
        }
        switch GPTHeader.read(at: capacity - 1, capacity: capacity, sector: sector) {
        case .success(let h): readEntries(h, capacity: capacity, sector: sector)
        case .failure(let why): problems.append("backup GPT header: \(why); no partitions")
        }
    }

    mutating func readEntries(_ h: GPTHeader, capacity: UInt64, sector: (UInt64) -> [UInt8]?) {
        for (i, e) in h.entries.enumerated() where e.type != [UInt8](repeating: 0, count: 16) {
            guard e.last >= e.first, e.first >= h.firstUsable, e.last <= h.lastUsable else {
                problems.append(
                    "GPT entry \(i + 1) (sectors \(e.first)–\(e.last)) lies outside the usable area; ignored")
                continue
            }
            accept(
                Partition(
                    number: i + 1, start: e.first, size: e.last - e.first + 1, type: guidString(e.type),
                    name: e.name), capacity: capacity)
        }
        partitions.sort { $0.number < $1.number }
    }
}

/// One 16-byte MBR partition entry.
struct MBREntry: Sendable {
    var type: UInt8
    var start: UInt32
    var size: UInt32
    init(_ b: [UInt8], at o: Int) {
        type = b[o + 4]
        start = le32(b, o + 8)
        size = le32(b, o + 12)
    }
}

struct GPTEntry: Sendable {
    var type: [UInt8]
    var first: UInt64
    var last: UInt64
    var name: String
}

struct GPTHeader: Sendable {
    var firstUsable: UInt64
    var lastUsable: UInt64
    var entries: [GPTEntry]

    /// Reads and checks the header at `lba` and its entry array: signature, size, CRC32 of both.
    static func read(at lba: UInt64, capacity: UInt64, sector: (UInt64) -> [UInt8]?) -> Result<GPTHeader, GPTError> {
        guard let b = sector(lba), b.count >= 512 else { return .failure(GPTError("cannot be read")) }
        guard Array(b[0..<8]) == Array("EFI PART".utf8) else { return .failure(GPTError("no EFI PART signature")) }
        let size = Int(le32(b, 12))
        guard (92...512).contains(size) else { return .failure(GPTError("header size \(size)")) }
        var copy = Array(b[0..<size])
        copy.replaceSubrange(16..<20, with: [0, 0, 0, 0])
        guard crc32(copy) == le32(b, 16) else { return .failure(GPTError("bad header CRC32")) }
        let firstUsable = le64(b, 40), lastUsable = le64(b, 48)
        let entriesLBA = le64(b, 72), count = Int(le32(b, 80)), entrySize = Int(le32(b, 84))
        guard lastUsable < capacity, firstUsable <= lastUsable else {
            return .failure(GPTError("usable area \(firstUsable)–\(lastUsable) outside the disk"))
        }
        guard entrySize >= 128, entrySize <= 512, entrySize % 8 == 0, (0...PartitionTable.maxGPTEntries).contains(count)
        else { return .failure(GPTError("\(count) entries of \(entrySize) bytes")) }
        let bytes = count * entrySize
        let sectors = UInt64((bytes + 511) / 512)
        guard entriesLBA < capacity, sectors <= capacity - entriesLBA else {
            return .failure(GPTError("the entry array lies outside the disk"))
        }
        var array: [UInt8] = []
        for s in 0..<sectors {
            guard let d = sector(entriesLBA + s), d.count >= 512 else {
                return .failure(GPTError("entries cannot be read"))
            }
            array += d.prefix(512)
        }
        array = Array(array.prefix(bytes))
        guard crc32(array) == le32(b, 88) else { return .failure(GPTError("bad entry array CRC32")) }
        let entries = (0..<count).map { i -> GPTEntry in
            let o = i * entrySize
            let units = (0..<36).map { UInt16(array[o + 56 + 2 * $0]) | UInt16(array[o + 57 + 2 * $0]) << 8 }
            let name = String(decoding: units.prefix { $0 != 0 }, as: UTF16.self)
            return GPTEntry(
                type: Array(array[o..<(o + 16)]), first: le64(array, o + 32), last: le64(array, o + 40),
                name: name)
        }
        return .success(GPTHeader(firstUsable: firstUsable, lastUsable: lastUsable, entries: entries))
    }
}

struct GPTError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

func le32(_ b: [UInt8], _ o: Int) -> UInt32 { (0..<4).reduce(0) { $0 | UInt32(b[o + $1]) << (8 * UInt32($1)) } }
func le64(_ b: [UInt8], _ o: Int) -> UInt64 { (0..<8).reduce(0) { $0 | UInt64(b[o + $1]) << (8 * UInt64($1)) } }
func hex(_ v: UInt8) -> String { let h = String(v, radix: 16); return h.count == 1 ? "0" + h : h }

/// A GUID as text: the first three fields are little-endian on disk (UEFI 2.10 appendix A).
func guidString(_ g: [UInt8]) -> String {
    let order = [3, 2, 1, 0, -1, 5, 4, -1, 7, 6, -1, 8, 9, -1, 10, 11, 12, 13, 14, 15]
    return order.map { $0 < 0 ? "-" : hex(g[$0]) }.joined()
}

/// CRC-32 (IEEE 802.3, reflected, as GPT uses), a byte at a time through a 256-entry table.
public func crc32(_ bytes: [UInt8]) -> UInt32 {
    var c: UInt32 = 0xFFFF_FFFF
    for b in bytes { c = crcTable[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8) }
    return ~c
}

private let crcTable: [UInt32] = (0..<256).map { (n: UInt32) -> UInt32 in
    var c = n
    for _ in 0..<8 { c = (c >> 1) ^ (0xEDB8_8320 & (0 &- (c & 1))) }
    return c
}

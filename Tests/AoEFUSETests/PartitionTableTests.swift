import AoECore
import AoEFUSE
import AoETestSupport
import Testing

/// A disk in memory: sectors written so far, zeros elsewhere.
struct SectorDisk {
    var capacity: UInt64
    var sectors: [UInt64: [UInt8]] = [:]
    func read(_ lba: UInt64) -> [UInt8]? { lba < capacity ? sectors[lba] ?? [UInt8](repeating: 0, count: 512) : nil }
    mutating func put(_ lba: UInt64, _ bytes: [UInt8], at offset: Int = 0) {
        var s = sectors[lba] ?? [UInt8](repeating: 0, count: 512)
        s.replaceSubrange(offset..<(offset + bytes.count), with: bytes)
        sectors[lba] = s
    }
    func table() -> PartitionTable { PartitionTable.read(capacity: capacity) { read($0) } }
}

func le(_ v: UInt64, _ n: Int) -> [UInt8] { (0..<n).map { UInt8(truncatingIfNeeded: v >> (8 * UInt64($0))) } }

/// An MBR (or EBR) sector with up to four (type, start, size) entries.
func bootRecord(_ entries: [(UInt8, UInt32, UInt32)]) -> [UInt8] {
    var s = [UInt8](repeating: 0, count: 512)
    for (i, e) in entries.enumerated() {
        let o = 446 + 16 * i
        s[o + 4] = e.0
        s.replaceSubrange((o + 8)..<(o + 12), with: le(UInt64(e.1), 4))
        s.replaceSubrange((o + 12)..<(o + 16), with: le(UInt64(e.2), 4))
    }
    s[510] = 0x55
    s[511] = 0xAA
    return s
}

/// A GPT disk: protective MBR, primary header at 1 with entries at 2, backup at the end.
func gptDisk(capacity: UInt64, parts: [(first: UInt64, last: UInt64, name: String)], entryCount: Int = 128)
    -> SectorDisk
{
    var d = SectorDisk(capacity: capacity)
    d.put(0, bootRecord([(0xEE, 1, UInt32(min(capacity - 1, 0xFFFF_FFFF)))]))
    let linux: [UInt8] = [
        0xAF, 0x3D, 0xC6, 0x0F, 0x83, 0x84, 0x72, 0x47, 0x8E, 0x79, 0x3D, 0x69, 0xD8, 0x47, 0x7D, 0xE4,
    ]
    var entries = [UInt8](repeating: 0, count: entryCount * 128)
    let entrySectors = (entries.count + 511) / 512
    for (i, p) in parts.enumerated() {
        let o = 128 * i
        entries.replaceSubrange(o..<(o + 16), with: linux)
        entries[o + 16] = UInt8(i + 1)
        entries.replaceSubrange((o + 32)..<(o + 40), with: le(p.first, 8))
        entries.replaceSubrange((o + 40)..<(o + 48), with: le(p.last, 8))
        let name = Array(p.name.utf16).flatMap { [UInt8(truncatingIfNeeded: $0), UInt8($0 >> 8)] }
        entries.replaceSubrange((o + 56)..<(o + 56 + name.count), with: name)
    }
    let entriesCRC = crc32(entries)  // over the array itself, before it is padded to whole sectors
    func header(my: UInt64, alternate: UInt64, entriesAt: UInt64) -> [UInt8] {
        var h = [UInt8](repeating: 0, count: 92)
        h.replaceSubrange(0..<8, with: Array("EFI PART".utf8))
        h.replaceSubrange(8..<12, with: [0, 0, 1, 0])
        h.replaceSubrange(12..<16, with: le(92, 4))
        h.replaceSubrange(24..<32, with: le(my, 8))
        h.replaceSubrange(32..<40, with: le(alternate, 8))
        h.replaceSubrange(40..<48, with: le(34, 8))
        h.replaceSubrange(48..<56, with: le(capacity - 34, 8))
        h.replaceSubrange(72..<80, with: le(entriesAt, 8))
        h.replaceSubrange(80..<84, with: le(UInt64(entryCount), 4))
        h.replaceSubrange(84..<88, with: le(128, 4))
        h.replaceSubrange(88..<92, with: le(UInt64(entriesCRC), 4))
        h.replaceSubrange(16..<20, with: le(UInt64(crc32(h)), 4))
        return h
    }
    entries += [UInt8](repeating: 0, count: entrySectors * 512 - entries.count)
    for s in 0..<entrySectors { d.put(2 + UInt64(s), Array(entries[(512 * s)..<(512 * s + 512)])) }
    for s in 0..<entrySectors { d.put(capacity - 33 + UInt64(s), Array(entries[(512 * s)..<(512 * s + 512)])) }
    d.put(1, header(my: 1, alternate: capacity - 1, entriesAt: 2))
    d.put(capacity - 1, header(my: capacity - 1, alternate: 1, entriesAt: capacity - 33))
    return d
}

@Suite("partition tables: MBR and GPT, read defensively")
struct PartitionTableTests {
    @Test func crc32OfAKnownString() {
        #expect(crc32(Array("123456789".utf8)) == 0xCBF4_3926)
    }

    @Test("MBR: three primaries as sfdisk writes them")
    func mbrPrimaries() {
        var d = SectorDisk(capacity: 1 << 21)
        d.put(0, bootRecord([(0x83, 2048, 100_000), (0x83, 102_048, 200_000), (0x82, 302_048, 50_000)]))
        let t = d.table()
        #expect(t.kind == .mbr && t.problems.isEmpty)
        #expect(
            t.partitions == [
                Partition(number: 1, start: 2048, size: 100_000, type: "0x83"),
                Partition(number: 2, start: 102_048, size: 200_000, type: "0x83"),
                Partition(number: 3, start: 302_048, size: 50_000, type: "0x82"),
            ])
    }

    @Test("MBR: logicals in an extended partition are p5, p6; a loop in the chain stops it")
    func mbrLogicals() {
        var d = SectorDisk(capacity: 1 << 21)
        d.put(0, bootRecord([(0x83, 2048, 10_000), (0x05, 20_000, 100_000)]))
        d.put(20_000, bootRecord([(0x83, 2048, 10_000), (0x05, 30_000, 20_000)]))  // next EBR: 20,000 + 30,000
        d.put(50_000, bootRecord([(0x83, 2048, 5_000)]))
        let t = d.table()
        #expect(t.problems.isEmpty, "\(t.problems)")
        #expect(
            t.partitions == [
                Partition(number: 1, start: 2048, size: 10_000, type: "0x83"),
                Partition(number: 5, start: 22_048, size: 10_000, type: "0x83"),
                Partition(number: 6, start: 52_048, size: 5_000, type: "0x83"),
            ])
        var loop = d
        loop.put(50_000, bootRecord([(0x83, 2048, 5_000), (0x05, 30_000, 20_000)]))  // points back at itself
        let l = loop.table()
        #expect(l.partitions.map(\.number) == [1, 5, 6])
        #expect(l.problems.contains { $0.contains("loops back") }, "\(l.problems)")
    }

    @Test("overlapping or out-of-range entries: the sound ones, and a line for each other")
    func hostileEntries() {
        var d = SectorDisk(capacity: 1 << 20)
        d.put(0, bootRecord([(0x83, 2048, 10_000), (0x83, 5_000, 10_000), (0x83, 1 << 20, 10), (0x83, 20_000, 0)]))
        let t = d.table()
        #expect(t.partitions.map(\.number) == [1])
        #expect(t.problems.count == 3, "\(t.problems)")
        #expect(t.problems.contains { $0.contains("overlaps partition 1") })
    }

    @Test("GPT: three entries with names; the primary header corrupted, the backup is read")
    func gpt() {
        var d = gptDisk(
            capacity: 1 << 21,
            parts: [
                (2048, 104_447, "boot"), (104_448, 1_000_000, "root"),
                (1_000_001, 1_200_000, ""),
            ])
        let t = d.table()
        #expect(t.kind == .gpt && t.problems.isEmpty, "\(t.problems)")
        #expect(t.partitions.map(\.start) == [2048, 104_448, 1_000_001])
        #expect(t.partitions.map(\.size) == [102_400, 895_553, 200_000])
        #expect(t.partitions.map(\.name) == ["boot", "root", ""])
        #expect(t.partitions.first?.type == "0fc63daf-8483-4772-8e79-3d69d8477de4", "the Linux data GUID")
        d.put(1, [0xFF], at: 30)  // the primary header's CRC no longer holds
        let b = d.table()
        #expect(b.partitions == t.partitions)
        #expect(
            b.problems.count == 1 && b.problems[0].contains("primary GPT header: bad header CRC32"), "\(b.problems)")
    }

    @Test("every truncation of a sector and 100,000 seeded mutations: never a trap, never more than the table holds")
    func fuzz() {
        let base = gptDisk(capacity: 1 << 16, parts: [(40, 1000, "a"), (1001, 2000, "b")], entryCount: 4)
        var mbr = SectorDisk(capacity: 1 << 16)
        mbr.put(0, bootRecord([(0x83, 40, 1000), (0x05, 2000, 4000)]))
        mbr.put(2000, bootRecord([(0x83, 10, 100), (0x05, 200, 100)]))
        mbr.put(2200, bootRecord([(0x83, 10, 50)]))
        for disk in [base, mbr] {
            for lba in disk.sectors.keys {
                for n in stride(from: 0, through: 512, by: 7) {
                    var d = disk
                    d.sectors[lba] = Array(disk.sectors[lba]!.prefix(n))
                    _ = d.table()
                }
            }
        }
        var rng = SplitMixRNG(0x9A47)
        var bad: [Int] = []
        for i in 0..<100_000 {
            var d = i % 2 == 0 ? base : mbr
            let keys = d.sectors.keys.sorted()
            for _ in 0...(rng.next() % 4) {
                let lba = keys[Int(rng.next() % UInt64(keys.count))]
                var s = d.sectors[lba]!
                s[Int(rng.next() % 512)] = UInt8(truncatingIfNeeded: rng.next())
                d.sectors[lba] = s
            }
            let t = d.table()
            if t.partitions.count > PartitionTable.maxGPTEntries
                || !t.partitions.allSatisfy({ $0.start > 0 && $0.start + $0.size <= d.capacity })
            {
                bad.append(i)
            }
        }
        #expect(bad.isEmpty, "mutation cases with partitions outside the disk: \(bad.prefix(10))")
    }
}

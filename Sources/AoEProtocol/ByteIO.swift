// Big-endian reads and writes at byte offsets, bounds-checked by the callers. AoE is big-endian
// throughout (AoEr11 §2); the ATA LBA bytes are least significant first and are handled apart.

extension UnsafeRawBufferPointer {
    @inlinable func u8(_ at: Int) -> UInt8 { self[at] }
    @inlinable func be16(_ at: Int) -> UInt16 { UInt16(self[at]) << 8 | UInt16(self[at + 1]) }
    @inlinable func be32(_ at: Int) -> UInt32 {
        UInt32(self[at]) << 24 | UInt32(self[at + 1]) << 16 | UInt32(self[at + 2]) << 8 | UInt32(self[at + 3])
    }
    @inlinable func mac(_ at: Int) -> MACAddress {
        var v: UInt64 = 0
        for i in 0..<6 { v = v << 8 | UInt64(self[at + i]) }
        return MACAddress(rawValue: v)
    }
}

extension UnsafeMutableRawBufferPointer {
    @inlinable func put8(_ at: Int, _ v: UInt8) { self[at] = v }
    @inlinable func put16(_ at: Int, _ v: UInt16) {
        self[at] = UInt8(v >> 8)
        self[at + 1] = UInt8(truncatingIfNeeded: v)
    }
    @inlinable func put32(_ at: Int, _ v: UInt32) {
        self[at] = UInt8(v >> 24)
        self[at + 1] = UInt8(truncatingIfNeeded: v >> 16)
        self[at + 2] = UInt8(truncatingIfNeeded: v >> 8)
        self[at + 3] = UInt8(truncatingIfNeeded: v)
    }
    @inlinable func putMAC(_ at: Int, _ m: MACAddress) {
        for i in 0..<6 { self[at + i] = UInt8(truncatingIfNeeded: m.rawValue >> (40 - 8 * UInt64(i))) }
    }
    @inlinable func putBytes(_ at: Int, _ bytes: [UInt8]) {
        guard !bytes.isEmpty else { return }
        bytes.withUnsafeBytes { src in
            UnsafeMutableRawBufferPointer(rebasing: self[at..<(at + src.count)]).copyMemory(from: src)
        }
    }
}

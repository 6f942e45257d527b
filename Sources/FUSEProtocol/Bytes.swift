/// Reading and writing the kernel's FUSE structures. They are native-endian C structs; every
/// platform aoefs runs on (x86-64, arm64 Linux) is little-endian, so they are read and written
/// little-endian here, explicitly, byte by byte: no unaligned loads, no traps on short input.

/// A cursor over received bytes. Every read checks the length and throws; nothing here traps.
public struct FUSEReader {
    public let bytes: UnsafeRawBufferPointer
    public private(set) var offset: Int

    public init(_ bytes: UnsafeRawBufferPointer, offset: Int = 0) {
        self.bytes = bytes
        self.offset = offset
    }

    public var remaining: Int { bytes.count - offset }

    mutating func need(_ n: Int, _ what: StaticString) throws(FUSEDecodeError) {
        guard n >= 0, remaining >= n else { throw .truncated(what, need: n, have: max(remaining, 0)) }
    }

    /// A little-endian integer of `T`'s width.
    mutating func integer<T: FixedWidthInteger & UnsignedInteger>(_: T.Type, _ what: StaticString)
        throws(FUSEDecodeError) -> T
    {
        let n = T.bitWidth / 8
        try need(n, what)
        var v: T = 0
        for i in 0..<n { v |= T(bytes[offset + i]) << (8 * i) }
        offset += n
        return v
    }

    public mutating func u16(_ what: StaticString) throws(FUSEDecodeError) -> UInt16 { try integer(UInt16.self, what) }
    public mutating func u32(_ what: StaticString) throws(FUSEDecodeError) -> UInt32 { try integer(UInt32.self, what) }
    public mutating func u64(_ what: StaticString) throws(FUSEDecodeError) -> UInt64 { try integer(UInt64.self, what) }

    public mutating func skip(_ n: Int, _ what: StaticString) throws(FUSEDecodeError) {
        try need(n, what)
        offset += n
    }

    /// A NUL-terminated name (LOOKUP), without the NUL; at most `limit` bytes.
    public mutating func cString(_ what: StaticString, limit: Int = 4096) throws(FUSEDecodeError) -> [UInt8] {
        let end = min(bytes.count, offset + limit + 1)
        guard let nul = (offset..<end).first(where: { bytes[$0] == 0 }) else { throw .unterminatedName(what) }
        defer { offset = nul + 1 }
        return Array(bytes[offset..<nul])
    }
}

/// Appends the kernel's structures to a byte array.
public struct FUSEWriter {
    public var bytes: [UInt8] = []
    public init(capacity: Int = 64) { bytes.reserveCapacity(capacity) }

    public mutating func u16(_ v: UInt16) { bytes += [UInt8(v & 0xFF), UInt8(v >> 8)] }
    public mutating func u32(_ v: UInt32) {
        for i in 0..<4 { bytes.append(UInt8(truncatingIfNeeded: v >> (8 * UInt32(i)))) }
    }
    public mutating func i32(_ v: Int32) { u32(UInt32(bitPattern: v)) }
    public mutating func u64(_ v: UInt64) {
        for i in 0..<8 { bytes.append(UInt8(truncatingIfNeeded: v >> (8 * UInt64(i)))) }
    }
    public mutating func i64(_ v: Int64) { u64(UInt64(bitPattern: v)) }
    /// Overwrites 8 bytes at `offset` (already written) with `v`, little-endian.
    public mutating func put(_ v: UInt64, at offset: Int) {
        for i in 0..<8 { bytes[offset + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(i))) }
    }
    public mutating func zeros(_ n: Int) { bytes += [UInt8](repeating: 0, count: n) }
    public mutating func append(_ b: [UInt8]) { bytes += b }
    /// Pads with zeros to a multiple of 8 (directory entries, FUSE_DIRENT_ALIGN).
    public mutating func align8() { zeros((8 - bytes.count % 8) % 8) }
}

/// Why a request could not be decoded, in words.
public enum FUSEDecodeError: Error, Equatable, CustomStringConvertible {
    case truncated(StaticString, need: Int, have: Int)
    case lengthMismatch(header: UInt32, actual: Int)
    case unterminatedName(StaticString)
    case tooMany(StaticString, Int)

    public var description: String {
        switch self {
        case .truncated(let w, let need, let have): "\(w): truncated (need \(need) bytes, have \(have))"
        case .lengthMismatch(let h, let a): "header says \(h) bytes, \(a) arrived"
        case .unterminatedName(let w): "\(w): name without a terminating NUL"
        case .tooMany(let w, let n): "\(w): \(n) is more than the request holds"
        }
    }

    public static func == (a: FUSEDecodeError, b: FUSEDecodeError) -> Bool { a.description == b.description }
}

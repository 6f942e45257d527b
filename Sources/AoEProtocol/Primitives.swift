// Wire quantities as newtypes (STYLE: "Newtypes for wire quantities"), so a shelf can never be
// passed where a slot is expected and unknown values from the wire survive decoding.

/// The Ethernet type of ATA over Ethernet frames (AoEr11 §2).
public let aoeEtherType: UInt16 = 0x88A2

/// A 48-bit Ethernet address.
///
/// Stored in the low 48 bits of a `UInt64`, most significant byte first on the wire.
public struct MACAddress: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// The address in the low 48 bits; byte 0 on the wire is bits 40–47.
    public let rawValue: UInt64

    /// Creates an address from the low 48 bits of `rawValue`.
    public init(rawValue: UInt64) { self.rawValue = rawValue & 0xFFFF_FFFF_FFFF }

    /// Creates an address from its six bytes in wire order.
    public init(_ b0: UInt8, _ b1: UInt8, _ b2: UInt8, _ b3: UInt8, _ b4: UInt8, _ b5: UInt8) {
        var v = UInt64(b0)
        for b in [b1, b2, b3, b4, b5] { v = v << 8 | UInt64(b) }
        self.rawValue = v
    }

    /// Creates an address from the first six bytes of `bytes`; `nil` if there are fewer.
    public init?(bytes: some Sequence<UInt8>) {
        var v: UInt64 = 0
        var n = 0
        for b in bytes {
            v = v << 8 | UInt64(b)
            n += 1
            if n == 6 { break }
        }
        guard n == 6 else { return nil }
        self.rawValue = v
    }

    /// Parses `aa:bb:cc:dd:ee:ff`, `aa-bb-…` or twelve hex digits (Linux `%pm`).
    public init?(parsing text: some StringProtocol) {
        let hex = String(text.filter { $0 != ":" && $0 != "-" })
        guard hex.count == 12, hex.allSatisfy(\.isHexDigit), let v = UInt64(hex, radix: 16) else { return nil }
        self.rawValue = v
    }

    /// ff:ff:ff:ff:ff:ff, where discovery queries go (AoEr11 §3.2; Linux aoecmd_cfg_pkts).
    public static let broadcast = MACAddress(rawValue: 0xFFFF_FFFF_FFFF)
    /// 00:00:00:00:00:00.
    public static let zero = MACAddress(rawValue: 0)

    /// The six bytes in wire order.
    public var bytes: [UInt8] { (0..<6).map { UInt8(truncatingIfNeeded: rawValue >> (40 - 8 * UInt64($0))) } }

    /// `aa:bb:cc:dd:ee:ff`.
    public var description: String { bytes.map { hex2($0) }.joined(separator: ":") }

    /// Twelve lowercase hex digits without separators, as Linux prints `%pm` in sysfs `mac`.
    public var compactHex: String { bytes.map { hex2($0) }.joined() }

    public static func < (a: MACAddress, b: MACAddress) -> Bool { a.rawValue < b.rawValue }
}

/// Two lowercase hex digits.
@usableFromInline func hex2(_ b: UInt8) -> String {
    let digits: [Character] = Array("0123456789abcdef")
    return String([digits[Int(b >> 4)], digits[Int(b & 15)]])
}

/// An AoE shelf address, the header's 16-bit Major field (AoEr11 §2).
public struct Shelf: RawRepresentable, Hashable, Sendable, Comparable, CustomStringConvertible {
    public var rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    public init(_ value: UInt16) { self.rawValue = value }
    /// 0xffff: every shelf (broadcast queries).
    public static let broadcast = Shelf(0xFFFF)
    public var description: String { String(rawValue) }
    public static func < (a: Shelf, b: Shelf) -> Bool { a.rawValue < b.rawValue }
}

/// An AoE slot address, the header's 8-bit Minor field (AoEr11 §2).
public struct Slot: RawRepresentable, Hashable, Sendable, Comparable, CustomStringConvertible {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    public init(_ value: UInt8) { self.rawValue = value }
    /// 0xff: every slot (broadcast queries).
    public static let broadcast = Slot(0xFF)
    public var description: String { String(rawValue) }
    public static func < (a: Slot, b: Slot) -> Bool { a.rawValue < b.rawValue }
}

/// A target's address: shelf and slot, written `e10.3` as Linux names `/dev/etherd/e10.3`.
public struct TargetAddress: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var shelf: Shelf
    public var slot: Slot
    public init(shelf: Shelf, slot: Slot) {
        self.shelf = shelf
        self.slot = slot
    }
    public init(_ shelf: UInt16, _ slot: UInt8) { self.init(shelf: Shelf(shelf), slot: Slot(slot)) }

    /// Parses `e10.3` or `10.3`.
    public init?(parsing text: some StringProtocol) {
        var s = Substring(text)
        if s.first == "e" { s = s.dropFirst() }
        let parts = s.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 2, let shelf = UInt16(parts[0]), let slot = UInt8(parts[1]) else { return nil }
        self.init(shelf, slot)
    }

    /// The wildcard address that every target answers (Linux aoecmd_cfg_pkts).
    public static let broadcast = TargetAddress(shelf: .broadcast, slot: .broadcast)

    /// `e10.3`.
    public var description: String { "e\(shelf.rawValue).\(slot.rawValue)" }

    public static func < (a: TargetAddress, b: TargetAddress) -> Bool {
        (a.shelf.rawValue, a.slot.rawValue) < (b.shelf.rawValue, b.slot.rawValue)
    }
}

/// The header's 32-bit tag. The target echoes it; the initiator uses it to match responses.
///
/// Bit 31 is reserved for user-space tools such as `aoeping` (Linux `aoenet_rcv` drops such tags).
public struct Tag: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public init(_ value: UInt32) { self.rawValue = value }
    public var description: String { "0x" + String(rawValue, radix: 16) }
}

// The AoE common header (AoEr11 §2; Linux aoe.h struct aoe_hdr; vblade dat.h):
//
//   0  dst[6]  6 src[6]  12 type=0x88a2  14 ver(4)|flags(4)  15 error  16 major  18 minor
//   19 command  20 tag[4]  24 arg…
//
// Every multi-byte field is big-endian.

/// The low nibble of the Ver/Flags byte (AoEr11 §2).
public struct AoEFlags: OptionSet, Hashable, Sendable {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue & 0x0F }
    /// R: the frame is a response.
    public static let response = AoEFlags(rawValue: 0x08)
    /// E: the response reports an error in the header's Error field.
    public static let error = AoEFlags(rawValue: 0x04)
}

/// The header's Error field (AoEr11 §2.4); meaningful only when the E flag is set.
///
/// There are six codes; Linux's table stops at five (`NECODES`), which is why the sixth
/// ("target is reserved") shows there as unknown.
public struct AoEErrorCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    public static let none = AoEErrorCode(rawValue: 0)
    public static let unrecognizedCommand = AoEErrorCode(rawValue: 1)
    public static let badArgument = AoEErrorCode(rawValue: 2)
    public static let deviceUnavailable = AoEErrorCode(rawValue: 3)
    public static let configStringPresent = AoEErrorCode(rawValue: 4)
    public static let unsupportedVersion = AoEErrorCode(rawValue: 5)
    public static let targetReserved = AoEErrorCode(rawValue: 6)

    /// The meaning in words, as tcpdump prints it.
    public var description: String {
        switch rawValue {
        case 0: "no error"
        case 1: "unrecognized command code"
        case 2: "bad argument parameter"
        case 3: "device unavailable"
        case 4: "config string present"
        case 5: "unsupported version"
        case 6: "target is reserved"
        default: "unknown error code \(rawValue)"
        }
    }
}

/// The header's Command field (AoEr11 §2.5).
public struct AoECommand: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    public static let ata = AoECommand(rawValue: 0)
    public static let queryConfig = AoECommand(rawValue: 1)
    public static let macMaskList = AoECommand(rawValue: 2)
    public static let reserveRelease = AoECommand(rawValue: 3)
    /// 0xf0–0xff are vendor-specific.
    public var isVendorSpecific: Bool { rawValue >= 0xF0 }
    public var description: String {
        switch rawValue {
        case 0: "ATA"
        case 1: "query config"
        case 2: "MAC mask list"
        case 3: "reserve/release"
        default: isVendorSpecific ? "vendor command \(rawValue)" : "unknown command \(rawValue)"
        }
    }
}

/// Where each field of a frame lies, counted from the Ethernet header's first byte (AoE r11 §3.1
/// for the common header, §3.2 for the ATA argument): the codec's one statement of the layout,
/// for code that patches a frame in place (the target turns a request into its response).
public enum AoEOffset {
    public static let destination = 0, source = 6, etherType = 12
    /// Ver (high nibble) and Flags (low nibble).
    public static let versionFlags = 14
    public static let error = 15
    /// Major (shelf), two bytes big-endian; Minor (slot), one.
    public static let shelf = 16, slot = 18
    public static let command = 19, tag = 20
    /// The ATA argument (AoE r11 §3.2): AFlags, Err/Feature, Sector Count, Cmd/Status, LBA0–5.
    public static let ataFlags = 24, ataErrorOrFeature = 25, ataSectorCount = 26, ataCommandOrStatus = 27
    public static let ataLBA = 28
    /// The end of the ATA argument: the data starts here.
    public static let ataData = 36
}

/// The Ethernet and AoE common header: 24 bytes on the wire.
public struct AoEHeader: Hashable, Sendable {
    /// Bytes in the Ethernet header (6 + 6 + 2).
    public static let ethernetSize = 14
    /// Bytes in the Ethernet plus AoE common header.
    public static let size = 24

    public var destination: MACAddress
    public var source: MACAddress
    /// The protocol version, the high nibble of Ver/Flags. This codec speaks version 1.
    public var version: UInt8
    public var flags: AoEFlags
    /// The Error field; see `AoEErrorCode`.
    public var error: AoEErrorCode
    /// The Major field.
    public var shelf: Shelf
    /// The Minor field.
    public var slot: Slot
    public var command: AoECommand
    public var tag: Tag

    public init(
        destination: MACAddress, source: MACAddress, version: UInt8 = 1, flags: AoEFlags = [],
        error: AoEErrorCode = .none, shelf: Shelf, slot: Slot, command: AoECommand, tag: Tag
    ) {
        self.destination = destination
        self.source = source
        self.version = version
        self.flags = flags
        self.error = error
        self.shelf = shelf
        self.slot = slot
        self.command = command
        self.tag = tag
    }

    /// Shelf and slot together.
    public var target: TargetAddress {
        get { TargetAddress(shelf: shelf, slot: slot) }
        set {
            shelf = newValue.shelf
            slot = newValue.slot
        }
    }

    /// True when R is set.
    public var isResponse: Bool { flags.contains(.response) }
    /// True when E is set.
    public var isError: Bool { flags.contains(.error) }

    func encode(into b: UnsafeMutableRawBufferPointer) {
        b.putMAC(0, destination)
        b.putMAC(6, source)
        b.put16(12, aoeEtherType)
        b.put8(14, version << 4 | flags.rawValue)
        b.put8(15, error.rawValue)
        b.put16(16, shelf.rawValue)
        b.put8(18, slot.rawValue)
        b.put8(19, command.rawValue)
        b.put32(20, tag.rawValue)
    }

    /// Decodes the 24-byte header at the start of `b`.
    /// - Throws: `.runt` if fewer than 24 bytes, `.notAoE` for another ethertype, `.unsupportedVersion`
    ///   for a version above 1. Version 0 is accepted: vblade (through 25) sends its start-up
    ///   announcement (aoe.c `aoead`) with the version nibble left 0, and Linux's aoenet_rcv does
    ///   not check it; refusing it would leave a restarted vblade unseen until the next beacon.
    public init(decoding b: UnsafeRawBufferPointer) throws(AoEDecodeError) {
        guard b.count >= Self.size else { throw .runt(length: b.count, minimum: Self.size) }
        let type = b.be16(12)
        guard type == aoeEtherType else { throw .notAoE(etherType: type) }
        let verFlags = b.u8(14)
        guard verFlags >> 4 <= 1 else { throw .unsupportedVersion(verFlags >> 4) }
        self.init(
            destination: b.mac(0), source: b.mac(6), version: verFlags >> 4,
            flags: AoEFlags(rawValue: verFlags & 0x0F), error: AoEErrorCode(rawValue: b.u8(15)),
            shelf: Shelf(b.be16(16)), slot: Slot(b.u8(18)), command: AoECommand(rawValue: b.u8(19)),
            tag: Tag(b.be32(20)))
    }
}

/// Why a frame could not be decoded. Decoding never traps: every malformed input ends here.
public enum AoEDecodeError: Error, Hashable, Sendable, CustomStringConvertible {
    /// Shorter than the Ethernet + AoE header.
    case runt(length: Int, minimum: Int)
    /// The Ethernet type is not 0x88a2.
    case notAoE(etherType: UInt16)
    /// The Ver field is not 1.
    case unsupportedVersion(UInt8)
    /// The command's fixed argument does not fit in the frame.
    case truncatedArgument(command: AoECommand, length: Int, minimum: Int)
    /// A count or length field promises more bytes than the frame holds.
    case lengthMismatch(field: String, declared: Int, available: Int)
    /// The config string length exceeds the 1024 bytes AoEr11 §3.2 allows.
    case configStringTooLong(Int)
    /// The data is not a 512-byte IDENTIFY DEVICE block.
    case identifyTooShort(Int)

    public var description: String {
        switch self {
        case .runt(let n, let min): "runt frame: \(n) bytes, an AoE header needs \(min)"
        case .notAoE(let t): "not an AoE frame: ethertype 0x\(String(t, radix: 16))"
        case .unsupportedVersion(let v): "bad version: AoE version \(v), only version 1 is spoken"
        case .truncatedArgument(let c, let n, let min):
            "truncated \(c) argument: \(n) bytes, needs \(min)"
        case .lengthMismatch(let field, let declared, let available):
            "length mismatch: \(field) declares \(declared) bytes, the frame holds \(available)"
        case .configStringTooLong(let n): "config string too long: \(n) bytes, at most 1024"
        case .identifyTooShort(let n): "IDENTIFY data too short: \(n) bytes, needs 512"
        }
    }
}

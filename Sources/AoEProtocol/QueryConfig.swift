// The Query Config Information argument (AoEr11 §3.2; Linux aoe.h struct aoe_cfghdr):
//
//   24 buffer count[2]  26 firmware version[2]  28 sector count  29 ver(4)|ccmd(4)
//   30 config string length[2]  32 config string (at most 1024 bytes)

/// The CCmd nibble of a Query Config request (AoEr11 §3.2).
public struct ConfigCommand: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue & 0x0F }
    /// Read the config string.
    public static let read = ConfigCommand(rawValue: 0)
    /// Answer only if the config string equals the one sent.
    public static let test = ConfigCommand(rawValue: 1)
    /// Answer only if the config string starts with the one sent.
    public static let testPrefix = ConfigCommand(rawValue: 2)
    /// Set the config string if it is empty; error 4 (config string present) otherwise.
    public static let set = ConfigCommand(rawValue: 3)
    /// Set the config string unconditionally.
    public static let forceSet = ConfigCommand(rawValue: 4)
    public var description: String {
        switch rawValue {
        case 0: "read"
        case 1: "test"
        case 2: "test prefix"
        case 3: "set"
        case 4: "force set"
        default: "ccmd \(rawValue)"
        }
    }
}

/// A Query Config request or response.
public struct QueryConfig: Hashable, Sendable {
    /// Bytes before the config string.
    public static let argumentSize = 8
    /// The longest config string AoEr11 allows.
    public static let maxConfigStringLength = 1024

    /// How many outstanding messages the target can queue (responses only).
    public var bufferCount: UInt16
    /// The target's firmware version (responses only).
    public var firmwareVersion: UInt16
    /// The most sectors one ATA command may carry (responses only; vblade: `(mtu - 36) / 512`).
    public var sectorsPerCommand: UInt8
    /// The AoE protocol version the target speaks (high nibble of byte 29).
    public var aoeVersion: UInt8
    public var command: ConfigCommand
    /// The config string, opaque bytes.
    public var configString: [UInt8]

    public init(
        bufferCount: UInt16 = 0, firmwareVersion: UInt16 = 0, sectorsPerCommand: UInt8 = 0,
        aoeVersion: UInt8 = 0, command: ConfigCommand = .read, configString: [UInt8] = []
    ) {
        // Never reached from input (issue 30's audit): Decoding caps the length; code builds one from a string `serve` checked.
        precondition(configString.count <= Self.maxConfigStringLength, "config string over 1024 bytes")
        self.bufferCount = bufferCount
        self.firmwareVersion = firmwareVersion
        self.sectorsPerCommand = sectorsPerCommand
        self.aoeVersion = aoeVersion & 0x0F
        self.command = command
        self.configString = configString
    }

    var encodedSize: Int { Self.argumentSize + configString.count }

    func encode(into b: UnsafeMutableRawBufferPointer, at o: Int) {
        precondition(configString.count <= Self.maxConfigStringLength, "config string over 1024 bytes")
        b.put16(o, bufferCount)
        b.put16(o + 2, firmwareVersion)
        b.put8(o + 4, sectorsPerCommand)
        b.put8(o + 5, aoeVersion << 4 | command.rawValue)
        b.put16(o + 6, UInt16(configString.count))
        b.putBytes(o + 8, configString)
    }

    init(decoding b: UnsafeRawBufferPointer, at o: Int) throws(AoEDecodeError) {
        let available = b.count - o
        guard available >= Self.argumentSize else {
            throw .truncatedArgument(command: .queryConfig, length: available, minimum: Self.argumentSize)
        }
        let cslen = Int(b.be16(o + 6))
        guard cslen <= Self.maxConfigStringLength else { throw .configStringTooLong(cslen) }
        guard cslen <= available - Self.argumentSize else {
            throw .lengthMismatch(
                field: "config string length", declared: cslen, available: available - Self.argumentSize)
        }
        let start = o + Self.argumentSize
        let versionCommand = b.u8(o + 5)
        self.init(
            bufferCount: b.be16(o), firmwareVersion: b.be16(o + 2), sectorsPerCommand: b.u8(o + 4),
            aoeVersion: versionCommand >> 4, command: ConfigCommand(rawValue: versionCommand & 0x0F),
            configString: Array(b[start..<(start + cslen)]))
    }
}

// The ATA argument (AoEr11 §3.1; Linux aoe.h struct aoe_atahdr; vblade dat.h):
//
//   24 aflags  25 err/feature  26 sector count  27 cmd/status  28 lba0 … 33 lba5
//   34 reserved[2]  36 data…
//
// lba0 is the least significant byte. The request carries the ATA command in cmd/status and
// the feature in err/feature; the response carries the ATA status and error registers there.

/// The ATA argument's AFlags (AoEr11 §3.1). Bits 7, 5, 3 and 2 must be zero.
public struct ATAFlags: OptionSet, Hashable, Sendable {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    /// E: an LBA48 ("extended") command.
    public static let extended = ATAFlags(rawValue: 0x40)
    /// D: the device/head register's DEV bit.
    public static let device = ATAFlags(rawValue: 0x10)
    /// A: asynchronous write: the target may answer before the data is on the medium.
    public static let async = ATAFlags(rawValue: 0x02)
    /// W: the frame carries data to write.
    public static let write = ATAFlags(rawValue: 0x01)
}

/// ATA command opcodes that aoefs sends or a target answers (ATA/ATAPI-8 ACS §7).
public struct ATAOpcode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    /// DATA SET MANAGEMENT (TRIM): `DataSetManagement`.
    public static let dataSetManagement = ATAOpcode(rawValue: 0x06)
    public static let readSectors = ATAOpcode(rawValue: 0x20)
    public static let readSectorsExt = ATAOpcode(rawValue: 0x24)
    public static let writeSectors = ATAOpcode(rawValue: 0x30)
    public static let writeSectorsExt = ATAOpcode(rawValue: 0x34)
    public static let checkPowerMode = ATAOpcode(rawValue: 0xE5)
    public static let flushCache = ATAOpcode(rawValue: 0xE7)
    public static let flushCacheExt = ATAOpcode(rawValue: 0xEA)
    public static let identifyDevice = ATAOpcode(rawValue: 0xEC)
    public var description: String {
        switch rawValue {
        case 0x06: "DATA SET MANAGEMENT"
        case 0x20: "READ SECTORS"
        case 0x24: "READ SECTORS EXT"
        case 0x30: "WRITE SECTORS"
        case 0x34: "WRITE SECTORS EXT"
        case 0xE5: "CHECK POWER MODE"
        case 0xE7: "FLUSH CACHE"
        case 0xEA: "FLUSH CACHE EXT"
        case 0xEC: "IDENTIFY DEVICE"
        default: "ATA command 0x" + hex2(rawValue)
        }
    }
}

/// The ATA status register, returned in a response's cmd/status byte.
public struct ATAStatus: OptionSet, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    public static let busy = ATAStatus(rawValue: 0x80)
    public static let ready = ATAStatus(rawValue: 0x40)
    public static let deviceFault = ATAStatus(rawValue: 0x20)
    public static let dataRequest = ATAStatus(rawValue: 0x08)
    public static let error = ATAStatus(rawValue: 0x01)
    /// BSY, DF, DRQ or ERR: the command failed (Linux aoecmd `ktiocomplete`: `cmdstat & 0xa9`).
    public var isFailure: Bool { rawValue & 0xA9 != 0 }
    public var description: String {
        let names: [(ATAStatus, String)] = [
            (.busy, "BSY"), (.ready, "DRDY"), (.deviceFault, "DF"), (.dataRequest, "DRQ"), (.error, "ERR"),
        ]
        let set = names.filter { contains($0.0) }.map(\.1)
        return "0x" + hex2(rawValue) + (set.isEmpty ? "" : " (" + set.joined(separator: "|") + ")")
    }
}

/// The ATA error register, returned in a failed response's err/feature byte.
public struct ATAErrorRegister: OptionSet, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    public static let interfaceCRC = ATAErrorRegister(rawValue: 0x80)
    public static let uncorrectable = ATAErrorRegister(rawValue: 0x40)
    public static let idNotFound = ATAErrorRegister(rawValue: 0x10)
    public static let aborted = ATAErrorRegister(rawValue: 0x04)
    public static let noMedia = ATAErrorRegister(rawValue: 0x02)
    /// The meaning in words: "ABRT (command aborted)", "IDNF (sector not found)", ….
    public var description: String {
        let names: [(ATAErrorRegister, String)] = [
            (.interfaceCRC, "ICRC (interface CRC error)"), (.uncorrectable, "UNC (uncorrectable data)"),
            (.idNotFound, "IDNF (sector not found)"), (.aborted, "ABRT (command aborted)"),
            (.noMedia, "NM (no media)"),
        ]
        let set = names.filter { contains($0.0) }.map(\.1)
        return "0x" + hex2(rawValue) + (set.isEmpty ? "" : " " + set.joined(separator: ", "))
    }
}

/// An ATA command (request) or its completion (response), with its data.
public struct ATAMessage: Hashable, Sendable {
    /// Bytes in the ATA argument, before the data.
    public static let argumentSize = 12

    public var flags: ATAFlags
    /// Feature register in a request, error register in a response.
    public var errorOrFeature: UInt8
    /// Sectors to transfer (512 bytes each).
    public var sectorCount: UInt8
    /// The command in a request, the status register in a response.
    public var commandOrStatus: UInt8
    /// The six LBA bytes as one number, lba0 least significant. For LBA28 commands the top
    /// nibble of lba3 carries the device register (0xe0: LBA mode), as Linux sends it.
    public var lba: UInt64
    /// Write data in a request, read data in a response. On receive this includes any
    /// Ethernet padding; the engine trims it to `sectorCount × 512`.
    public var data: [UInt8]

    public init(
        flags: ATAFlags = [], errorOrFeature: UInt8 = 0, sectorCount: UInt8 = 0, commandOrStatus: UInt8,
        lba: UInt64 = 0, data: [UInt8] = []
    ) {
        self.flags = flags
        self.errorOrFeature = errorOrFeature
        self.sectorCount = sectorCount
        self.commandOrStatus = commandOrStatus
        self.lba = lba & 0xFFFF_FFFF_FFFF
        self.data = data
    }

    /// The LBA field for `lba` in an LBA48 or LBA28 command (Linux ata_rw_frameinit:
    /// `lba3 = (lba3 & 0x0f) | 0xe0` for LBA28).
    public static func lbaField(_ lba: UInt64, lba48: Bool) -> UInt64 {
        lba48 ? lba & 0xFFFF_FFFF_FFFF : (lba & 0x0FFF_FFFF) | 0xE000_0000
    }

    /// READ SECTORS (EXT) of `sectors` sectors at `lba`.
    public static func read(lba: UInt64, sectors: UInt8, lba48: Bool = true) -> ATAMessage {
        ATAMessage(
            flags: lba48 ? .extended : [], sectorCount: sectors,
            commandOrStatus: (lba48 ? ATAOpcode.readSectorsExt : .readSectors).rawValue,
            lba: lbaField(lba, lba48: lba48))
    }

    /// WRITE SECTORS (EXT) of `data` (a whole number of sectors) at `lba`.
    public static func write(lba: UInt64, data: [UInt8], lba48: Bool = true) -> ATAMessage {
        // Never reached from input (issue 30's audit): Only tests and tools build WRITEs from arrays; the engine encodes from requests it chunked.
        precondition(data.count % 512 == 0 && data.count <= 255 * 512, "write data must be whole sectors")
        return ATAMessage(
            flags: lba48 ? [.extended, .write] : .write, sectorCount: UInt8(data.count / 512),
            commandOrStatus: (lba48 ? ATAOpcode.writeSectorsExt : .writeSectors).rawValue,
            lba: lbaField(lba, lba48: lba48), data: data)
    }

    /// IDENTIFY DEVICE: one sector, lba3 = 0xa0 (Linux aoecmd_ata_id).
    public static func identify() -> ATAMessage {
        ATAMessage(sectorCount: 1, commandOrStatus: ATAOpcode.identifyDevice.rawValue, lba: 0xA0 << 24)
    }

    /// FLUSH CACHE EXT (0xea) for LBA48 targets, FLUSH CACHE (0xe7) otherwise.
    public static func flush(lba48: Bool = true) -> ATAMessage {
        ATAMessage(
            flags: lba48 ? .extended : [],
            commandOrStatus: (lba48 ? ATAOpcode.flushCacheExt : .flushCache).rawValue,
            lba: lba48 ? 0 : 0xE000_0000)
    }

    /// The response's status register.
    public var status: ATAStatus { ATAStatus(rawValue: commandOrStatus) }
    /// The response's error register.
    public var errorRegister: ATAErrorRegister { ATAErrorRegister(rawValue: errorOrFeature) }
    /// The request's opcode.
    public var opcode: ATAOpcode { ATAOpcode(rawValue: commandOrStatus) }

    var encodedSize: Int { Self.argumentSize + data.count }

    func encode(into b: UnsafeMutableRawBufferPointer, at o: Int) {
        b.put8(o, flags.rawValue)
        b.put8(o + 1, errorOrFeature)
        b.put8(o + 2, sectorCount)
        b.put8(o + 3, commandOrStatus)
        for i in 0..<6 { b.put8(o + 4 + i, UInt8(truncatingIfNeeded: lba >> (8 * UInt64(i)))) }
        b.put8(o + 10, 0)  // reserved, must be zero
        b.put8(o + 11, 0)
        b.putBytes(o + 12, data)
    }

    init(decoding b: UnsafeRawBufferPointer, at o: Int, isResponse: Bool) throws(AoEDecodeError) {
        let available = b.count - o
        guard available >= Self.argumentSize else {
            throw .truncatedArgument(command: .ata, length: available, minimum: Self.argumentSize)
        }
        var lba: UInt64 = 0
        for i in (0..<6).reversed() { lba = lba << 8 | UInt64(b.u8(o + 4 + i)) }
        let flags = ATAFlags(rawValue: b.u8(o))
        let sectorCount = b.u8(o + 2)
        let dataStart = o + Self.argumentSize
        // A write request must carry all the sectors it names (AoEr11 §3.1); anything short of
        // that would write garbage, so it is rejected here rather than trusted downstream.
        if !isResponse && flags.contains(.write) && b.count - dataStart < Int(sectorCount) * 512 {
            throw .lengthMismatch(
                field: "write sector count", declared: Int(sectorCount) * 512, available: b.count - dataStart)
        }
        self.init(
            flags: flags, errorOrFeature: b.u8(o + 1), sectorCount: sectorCount,
            commandOrStatus: b.u8(o + 3), lba: lba, data: Array(b[dataStart...]))
    }
}

/// An ATA argument read in place from a received frame: the engine's hot path, which copies
/// read data straight from the receive buffer into the request's memory instead of through an
/// `ATAMessage`. Valid only while the frame's buffer is.
public struct ATAView {
    public let flags: ATAFlags
    public let errorOrFeature: UInt8
    public let sectorCount: UInt8
    public let commandOrStatus: UInt8
    public let lba: UInt64
    /// The bytes after the argument (with any Ethernet padding).
    public let data: UnsafeRawBufferPointer

    /// Reads the argument of a whole frame (Ethernet header included); nil if it is too short.
    public init?(frame b: UnsafeRawBufferPointer) {
        guard b.count >= AoEOffset.ataData else { return nil }
        self.init(headers: b, data: UnsafeRawBufferPointer(rebasing: b[AoEOffset.ataData...]))
    }

    /// Reads the argument from a frame's headers (at least `AoEOffset.ataData` bytes) whose
    /// data was received elsewhere (receive placement); nil if the headers are too short.
    public init?(headers h: UnsafeRawBufferPointer, data: UnsafeRawBufferPointer) {
        guard h.count >= AoEOffset.ataData else { return nil }
        flags = ATAFlags(rawValue: h[AoEOffset.ataFlags])
        errorOrFeature = h[AoEOffset.ataErrorOrFeature]
        sectorCount = h[AoEOffset.ataSectorCount]
        commandOrStatus = h[AoEOffset.ataCommandOrStatus]
        var v: UInt64 = 0
        for i in (0..<6).reversed() { v = v << 8 | UInt64(h[AoEOffset.ataLBA + i]) }
        lba = v
        self.data = data
    }

    public var status: ATAStatus { ATAStatus(rawValue: commandOrStatus) }
    public var errorRegister: ATAErrorRegister { ATAErrorRegister(rawValue: errorOrFeature) }
}

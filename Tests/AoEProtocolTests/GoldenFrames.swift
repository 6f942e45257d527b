import AoEProtocol
import Testing

/// One frame as bytes on the wire and as the value the codec must produce for them.
struct Golden: Sendable, CustomTestStringConvertible {
    let name: String
    let bytes: [UInt8]
    let frame: AoEFrame
    var testDescription: String { name }
}

let initiatorMAC = MACAddress(0x02, 0x00, 0x00, 0x00, 0x00, 0x01)
let targetMAC = MACAddress(0xCA, 0x55, 0x0A, 0x0A, 0xBD, 0xFF)

// Ethernet header helpers: 6 + 6 bytes of address, then ethertype 0x88a2.
let toBroadcast: [UInt8] = [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x88, 0xA2]
let toTarget: [UInt8] = [0xCA, 0x55, 0x0A, 0x0A, 0xBD, 0xFF, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x88, 0xA2]
let toInitiator: [UInt8] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0xCA, 0x55, 0x0A, 0x0A, 0xBD, 0xFF, 0x88, 0xA2]

/// 512 bytes that are not all one value, so a misplaced byte shows.
let sectorPattern: [UInt8] = (0..<512).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 3) }

func header(
    _ dst: MACAddress, _ src: MACAddress, flags: AoEFlags = [], error: AoEErrorCode = .none,
    shelf: UInt16 = 10, slot: UInt8 = 3, command: AoECommand, tag: UInt32
) -> AoEHeader {
    AoEHeader(
        destination: dst, source: src, flags: flags, error: error, shelf: Shelf(shelf), slot: Slot(slot),
        command: command, tag: Tag(tag))
}

let goldenFrames: [Golden] = [
    Golden(
        name: "Query Config broadcast request (discovery)",
        bytes: toBroadcast + [
            0x10,  // ver 1, flags none (request)
            0x00,  // error
            0xFF, 0xFF,  // major 0xffff: every shelf
            0xFF,  // minor 0xff: every slot
            0x01,  // command 1: query config
            0x00, 0x00, 0x12, 0x34,  // tag
            0x00, 0x00,  // buffer count
            0x00, 0x00,  // firmware version
            0x00,  // sector count
            0x00,  // aoe version 0, ccmd 0 (read)
            0x00, 0x00,  // config string length 0
        ],
        frame: AoEFrame(
            header: header(.broadcast, initiatorMAC, shelf: 0xFFFF, slot: 0xFF, command: .queryConfig, tag: 0x1234),
            body: .queryConfig(QueryConfig()))),
    Golden(
        name: "Query Config response with config string",
        bytes: toInitiator + [
            0x18,  // ver 1, R
            0x00,  // error
            0x00, 0x0A,  // major 10
            0x03,  // minor 3
            0x01,  // query config
            0x00, 0x00, 0x12, 0x34,  // tag echoed
            0x00, 0x10,  // buffer count 16
            0x40, 0x19,  // firmware 0x4019 (vblade 25)
            0x11,  // 17 sectors per command (MTU 9000)
            0x10,  // aoe version 1, ccmd 0
            0x00, 0x05,  // config string length 5
            0x68, 0x65, 0x6C, 0x6C, 0x6F,  // "hello"
        ],
        frame: AoEFrame(
            header: header(initiatorMAC, targetMAC, flags: .response, command: .queryConfig, tag: 0x1234),
            body: .queryConfig(
                QueryConfig(
                    bufferCount: 16, firmwareVersion: 0x4019, sectorsPerCommand: 17,
                    aoeVersion: 1, command: .read, configString: Array("hello".utf8))))),
    Golden(
        name: "Query Config test request",
        bytes: toTarget + [
            0x10, 0x00, 0x00, 0x0A, 0x03, 0x01, 0x00, 0x00, 0x00, 0x02,
            0x00, 0x00, 0x00, 0x00, 0x00,
            0x01,  // ccmd 1: test
            0x00, 0x02, 0x61, 0x62,  // "ab"
        ],
        frame: AoEFrame(
            header: header(targetMAC, initiatorMAC, command: .queryConfig, tag: 2),
            body: .queryConfig(QueryConfig(command: .test, configString: Array("ab".utf8))))),
    Golden(
        name: "Query Config test-prefix request",
        bytes: toTarget + [
            0x10, 0x00, 0x00, 0x0A, 0x03, 0x01, 0x00, 0x00, 0x00, 0x03,
            0x00, 0x00, 0x00, 0x00, 0x00,
            0x02,  // ccmd 2: test prefix
            0x00, 0x01, 0x61,  // "a"
        ],
        frame: AoEFrame(
            header: header(targetMAC, initiatorMAC, command: .queryConfig, tag: 3),
            body: .queryConfig(QueryConfig(command: .testPrefix, configString: Array("a".utf8))))),
    Golden(
        name: "Query Config set request",
        bytes: toTarget + [
            0x10, 0x00, 0x00, 0x0A, 0x03, 0x01, 0x00, 0x00, 0x00, 0x04,
            0x00, 0x00, 0x00, 0x00, 0x00,
            0x03,  // ccmd 3: set
            0x00, 0x03, 0x61, 0x6F, 0x65,  // "aoe"
        ],
        frame: AoEFrame(
            header: header(targetMAC, initiatorMAC, command: .queryConfig, tag: 4),
            body: .queryConfig(QueryConfig(command: .set, configString: Array("aoe".utf8))))),
    Golden(
        name: "Query Config force-set request",
        bytes: toTarget + [
            0x10, 0x00, 0x00, 0x0A, 0x03, 0x01, 0x00, 0x00, 0x00, 0x05,
            0x00, 0x00, 0x00, 0x00, 0x00,
            0x04,  // ccmd 4: force set
            0x00, 0x01, 0x7A,  // "z"
        ],
        frame: AoEFrame(
            header: header(targetMAC, initiatorMAC, command: .queryConfig, tag: 5),
            body: .queryConfig(QueryConfig(command: .forceSet, configString: Array("z".utf8))))),
    Golden(
        name: "READ SECTORS EXT request above LBA 2^28",
        bytes: toTarget + [
            0x10, 0x00, 0x00, 0x0A, 0x03,
            0x00,  // command 0: ATA
            0x00, 0x01, 0x00, 0x07,  // tag 0x00010007
            0x40,  // aflags E (LBA48)
            0x00,  // feature
            0x02,  // 2 sectors
            0x24,  // READ SECTORS EXT
            0x00, 0x00, 0x00, 0x10, 0x00, 0x00,  // lba0..lba5: 0x0010000000 = 2^28
            0x00, 0x00,  // reserved
        ],
        frame: AoEFrame(
            header: header(targetMAC, initiatorMAC, command: .ata, tag: 0x0001_0007),
            body: .ata(.read(lba: 1 << 28, sectors: 2)))),
    Golden(
        name: "READ SECTORS (LBA28) request",
        bytes: toTarget + [
            0x10, 0x00, 0x00, 0x0A, 0x03, 0x00, 0x00, 0x00, 0x00, 0x08,
            0x00,  // aflags none (LBA28)
            0x00, 0x01,  // 1 sector
            0x20,  // READ SECTORS
            0x56, 0x34, 0x12, 0xE1,  // lba 0x1123456, lba3 = 0xe0 | 1 (LBA mode + bits 24–27)
            0x00, 0x00,  // lba4, lba5
            0x00, 0x00,
        ],
        frame: AoEFrame(
            header: header(targetMAC, initiatorMAC, command: .ata, tag: 8),
            body: .ata(.read(lba: 0x112_3456, sectors: 1, lba48: false)))),
    Golden(
        name: "WRITE SECTORS EXT request, one sector",
        bytes: toTarget + [
            0x10, 0x00, 0x00, 0x0A, 0x03, 0x00, 0x00, 0x00, 0x00, 0x09,
            0x41,  // aflags E|W
            0x00, 0x01,  // 1 sector
            0x34,  // WRITE SECTORS EXT
            0xFF, 0xEE, 0xDD, 0xCC, 0xBB, 0x00,  // lba 0xbbccddeeff
            0x00, 0x00,
        ] + sectorPattern,
        frame: AoEFrame(
            header: header(targetMAC, initiatorMAC, command: .ata, tag: 9),
            body: .ata(.write(lba: 0xBB_CCDD_EEFF, data: sectorPattern)))),
    Golden(
        name: "READ response with data",
        bytes: toInitiator + [
            0x18, 0x00, 0x00, 0x0A, 0x03, 0x00, 0x00, 0x01, 0x00, 0x07,
            0x40, 0x00, 0x01,
            0x40,  // status DRDY
            0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x00,
        ] + sectorPattern,
        frame: AoEFrame(
            header: header(initiatorMAC, targetMAC, flags: .response, command: .ata, tag: 0x0001_0007),
            body: .ata(
                ATAMessage(
                    flags: .extended, sectorCount: 1, commandOrStatus: 0x40, lba: 1 << 28,
                    data: sectorPattern)))),
    Golden(
        name: "ATA error response (IDNF: past the end)",
        bytes: toInitiator + [
            0x18, 0x00, 0x00, 0x0A, 0x03, 0x00, 0x00, 0x00, 0x00, 0x0A,
            0x40,
            0x10,  // error register: IDNF
            0x01,
            0x41,  // status DRDY|ERR
            0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,  // lba 2^32
        ],
        frame: AoEFrame(
            header: header(initiatorMAC, targetMAC, flags: .response, command: .ata, tag: 10),
            body: .ata(
                ATAMessage(
                    flags: .extended, errorOrFeature: 0x10, sectorCount: 1, commandOrStatus: 0x41,
                    lba: 1 << 32)))),
    Golden(
        name: "IDENTIFY DEVICE request",
        bytes: toTarget + [
            0x10, 0x00, 0x00, 0x0A, 0x03, 0x00, 0x00, 0x00, 0x00, 0x0B,
            0x00, 0x00, 0x01,  // aflags none, feature 0, 1 sector
            0xEC,  // IDENTIFY DEVICE
            0x00, 0x00, 0x00, 0xA0, 0x00, 0x00,  // lba3 = 0xa0 (obsolete bits, Linux aoecmd_ata_id)
            0x00, 0x00,
        ],
        frame: AoEFrame(header: header(targetMAC, initiatorMAC, command: .ata, tag: 11), body: .ata(.identify()))),
    Golden(
        name: "FLUSH CACHE EXT request",
        bytes: toTarget + [
            0x10, 0x00, 0x00, 0x0A, 0x03, 0x00, 0x00, 0x00, 0x00, 0x0C,
            0x40, 0x00, 0x00,  // aflags E, no sectors
            0xEA,  // FLUSH CACHE EXT
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        ],
        frame: AoEFrame(header: header(targetMAC, initiatorMAC, command: .ata, tag: 12), body: .ata(.flush()))),
    Golden(
        name: "FLUSH CACHE (LBA28) request",
        bytes: toTarget + [
            0x10, 0x00, 0x00, 0x0A, 0x03, 0x00, 0x00, 0x00, 0x00, 0x0D,
            0x00, 0x00, 0x00,
            0xE7,  // FLUSH CACHE
            0x00, 0x00, 0x00, 0xE0, 0x00, 0x00, 0x00, 0x00,  // lba3 0xe0: LBA mode
        ],
        frame: AoEFrame(
            header: header(targetMAC, initiatorMAC, command: .ata, tag: 13), body: .ata(.flush(lba48: false)))),
    Golden(
        name: "MAC Mask List read request",
        bytes: toTarget + [
            0x10, 0x00, 0x00, 0x0A, 0x03,
            0x02,  // command 2: MAC mask list
            0x00, 0x00, 0x00, 0x0E,
            0x00,  // reserved
            0x00,  // mcmd 0: read
            0x00,  // merror
            0x00,  // dir count 0
        ],
        frame: AoEFrame(
            header: header(targetMAC, initiatorMAC, command: .macMaskList, tag: 14),
            body: .macMaskList(MACMaskList(command: .read)))),
    Golden(
        name: "MAC Mask List edit request, add and delete",
        bytes: toTarget + [
            0x10, 0x00, 0x00, 0x0A, 0x03, 0x02, 0x00, 0x00, 0x00, 0x0F,
            0x00,
            0x01,  // mcmd 1: edit
            0x00,
            0x02,  // 2 directives
            0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01,  // reserved, dcmd 1 (add), 02:00:00:00:00:01
            0x00, 0x02, 0xCA, 0x55, 0x0A, 0x0A, 0xBD, 0xFF,  // reserved, dcmd 2 (delete), ca:55:0a:0a:bd:ff
        ],
        frame: AoEFrame(
            header: header(targetMAC, initiatorMAC, command: .macMaskList, tag: 15),
            body: .macMaskList(
                MACMaskList(
                    command: .edit,
                    directives: [
                        MACMaskDirective(command: .add, mac: initiatorMAC),
                        MACMaskDirective(command: .delete, mac: targetMAC),
                    ])))),
    Golden(
        name: "MAC Mask List response: list full",
        bytes: toInitiator + [
            0x18, 0x00, 0x00, 0x0A, 0x03, 0x02, 0x00, 0x00, 0x00, 0x0F,
            0x00, 0x01,
            0x03,  // merror 3: list full
            0x01,  // 1 directive
            0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01,
        ],
        frame: AoEFrame(
            header: header(initiatorMAC, targetMAC, flags: .response, command: .macMaskList, tag: 15),
            body: .macMaskList(
                MACMaskList(
                    command: .edit, error: .listFull,
                    directives: [MACMaskDirective(command: .add, mac: initiatorMAC)])))),
    Golden(
        name: "Reserve/Release read request",
        bytes: toTarget + [
            0x10, 0x00, 0x00, 0x0A, 0x03,
            0x03,  // command 3: reserve/release
            0x00, 0x00, 0x00, 0x10,
            0x00,  // rcmd 0: read
            0x00,  // nmacs 0
        ],
        frame: AoEFrame(
            header: header(targetMAC, initiatorMAC, command: .reserveRelease, tag: 16),
            body: .reserveRelease(ReserveRelease(command: .read)))),
    Golden(
        name: "Reserve/Release set request, two MACs",
        bytes: toTarget + [
            0x10, 0x00, 0x00, 0x0A, 0x03, 0x03, 0x00, 0x00, 0x00, 0x11,
            0x01,  // rcmd 1: set
            0x02,  // nmacs 2
            0x02, 0x00, 0x00, 0x00, 0x00, 0x01,
            0xCA, 0x55, 0x0A, 0x0A, 0xBD, 0xFF,
        ],
        frame: AoEFrame(
            header: header(targetMAC, initiatorMAC, command: .reserveRelease, tag: 17),
            body: .reserveRelease(ReserveRelease(command: .set, macs: [initiatorMAC, targetMAC])))),
    Golden(
        name: "Reserve/Release force-set response",
        bytes: toInitiator + [
            0x18, 0x00, 0x00, 0x0A, 0x03, 0x03, 0x00, 0x00, 0x00, 0x12,
            0x02,  // rcmd 2: force set
            0x01,  // nmacs 1
            0x02, 0x00, 0x00, 0x00, 0x00, 0x01,
        ],
        frame: AoEFrame(
            header: header(initiatorMAC, targetMAC, flags: .response, command: .reserveRelease, tag: 18),
            body: .reserveRelease(ReserveRelease(command: .forceSet, macs: [initiatorMAC])))),
    Golden(
        name: "AoE error response: target is reserved",
        bytes: toInitiator + [
            0x1C,  // ver 1, R|E
            0x06,  // error 6: target is reserved
            0x00, 0x0A, 0x03, 0x00, 0x00, 0x00, 0x00, 0x13,
            0x41, 0x00, 0x01, 0x34, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // the request's argument, echoed
        ],
        frame: AoEFrame(
            header: header(
                initiatorMAC, targetMAC, flags: [.response, .error], error: .targetReserved, command: .ata,
                tag: 19),
            body: .opaque([0x41, 0x00, 0x01, 0x34, 0, 0, 0, 0, 0, 0, 0, 0]))),
    Golden(
        name: "vendor-specific command",
        bytes: toTarget + [
            0x10, 0x00, 0x00, 0x0A, 0x03,
            0xF0,  // command 0xf0: vendor
            0x00, 0x00, 0x00, 0x14,
            0xDE, 0xAD, 0xBE, 0xEF,
        ],
        frame: AoEFrame(
            header: header(targetMAC, initiatorMAC, command: AoECommand(rawValue: 0xF0), tag: 20),
            body: .opaque([0xDE, 0xAD, 0xBE, 0xEF]))),
]

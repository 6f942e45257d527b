import AoELinux
import AoEProtocol
import Foundation

/// `aoe-lab flood`: a hostile or confused host on the LAN, for the tests. For `seconds` it sends
/// Query Config responses claiming `target` from `macs` random MACs, and forged ATA responses
/// (random tags, truncated, for the wrong shelf), in batches of 64 a millisecond at most.
///
///   aoe-lab flood --iface IF --target 10.3 [--macs 200] [--seconds 30] [--to MAC] [--no-ata]
func flood(_ arguments: [String]) -> Never {
    var args = ArraySlice(arguments)
    var iface: String?
    var target: TargetAddress?
    var macCount = 200
    var seconds = 30.0
    var destination = MACAddress.broadcast
    var forgeATA = true
    while let a = args.popFirst() {
        switch a {
        case "--iface": iface = args.popFirst()
        case "--target": target = args.popFirst().flatMap { TargetAddress(parsing: $0) }
        case "--macs": macCount = args.popFirst().flatMap { Int($0) } ?? -1
        case "--seconds": seconds = args.popFirst().flatMap { Double($0) } ?? -1
        case "--to": destination = args.popFirst().flatMap { MACAddress(parsing: $0) } ?? .zero
        case "--no-ata": forgeATA = false
        default: fail("flood: unknown argument \(a)")
        }
    }
    guard let iface, let target, macCount > 0, seconds > 0, seconds <= 600, destination != .zero else {
        fail("flood: usage: aoe-lab flood --iface IF --target S.L [--macs N] [--seconds S ≤ 600] [--to MAC] [--no-ata]")
    }
    let link: PacketLink
    do { link = try PacketLink(interface: iface) } catch { fail("flood: \(error)") }
    var rng = SystemRandomNumberGenerator()
    // Locally administered unicast MACs (02:…), never a real NIC's.
    let macs = (0..<macCount).map { _ in MACAddress(rawValue: 0x0200_0000_0000 | (rng.next() & 0x00FF_FFFF_FFFF)) }
    let end = ContinuousClock.now + .milliseconds(Int64(seconds * 1000))
    FileHandle.standardOutput.write(
        Data("flooding \(iface) as \(target) from \(macCount) MACs for \(seconds) s\n".utf8))
    var sent = 0
    while ContinuousClock.now < end {
        var batch: [[UInt8]] = []
        for _ in 0..<64 {
            let mac = macs[Int(rng.next() % UInt64(macs.count))]
            switch forgeATA ? rng.next() % 4 : 0 {
            case 0:
                batch.append(
                    AoEFrame(
                        header: AoEHeader(
                            destination: destination, source: mac, flags: .response, shelf: target.shelf,
                            slot: target.slot, command: .queryConfig, tag: Tag(UInt32(truncatingIfNeeded: rng.next()))),
                        body: .queryConfig(
                            QueryConfig(
                                bufferCount: 16, firmwareVersion: 0x4019, sectorsPerCommand: 17,
                                aoeVersion: 1))
                    ).encoded())
            case 1, 2:
                // A read answer with a random tag (bit 31 clear, as ours are), for this target or another shelf.
                let shelf = rng.next() % 2 == 0 ? target.shelf : Shelf(UInt16(truncatingIfNeeded: rng.next() % 4000))
                var m = ATAMessage.read(lba: rng.next() % 1_000_000, sectors: 2, lba48: true)
                m.commandOrStatus = ATAStatus.ready.rawValue
                m.data = [UInt8](repeating: 0xEE, count: 1024)
                var bytes = AoEFrame(
                    header: AoEHeader(
                        destination: destination, source: mac, flags: .response, shelf: shelf, slot: target.slot,
                        command: .ata, tag: Tag(UInt32(truncatingIfNeeded: rng.next()) & 0x7FFF_FFFF)),
                    body: .ata(m)
                ).encoded()
                if rng.next() % 2 == 0 { bytes = Array(bytes.prefix(24 + Int(rng.next() % 200))) }  // truncated
                batch.append(bytes)
            default:
                batch.append(
                    (0..<Int(14 + rng.next() % 60)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }.enumerated()
                        .map { i, b in i == 12 ? 0x88 : i == 13 ? 0xA2 : b })  // garbage with the AoE ethertype
            }
        }
        sent += (try? link.send(batch)) ?? 0
        Thread.sleep(forTimeInterval: 0.001)
    }
    FileHandle.standardOutput.write(Data("sent \(sent) frames\n".utf8))
    exit(0)
}

import AoELinux
import AoEProtocol
import AoETestSupport
import Foundation
import Testing

@Suite("AF_PACKET links", .enabled(if: LabGate.labShouldRun, Comment(rawValue: LabGate.labSkipReason)))
struct PacketLinkTests {
    @Test func noSuchInterfaceIsNamedInTheError() {
        do {
            _ = try PacketLink(interface: "aoetnosuch0")
            Issue.record("opening a missing interface succeeded")
        } catch {
            #expect(error.code == .noSuchInterface)
            #expect(error.description == "aoetnosuch0: no such network interface")
        }
    }

    @Test func interfaceDownIsReported() throws {
        let lab = try Lab()
        defer { lab.teardown() }
        let a = lab.name("a")
        try lab.addVethPair(local: a, remote: lab.name("b"), remoteNamespace: nil, mtu: 1500)
        try lab.setLink(a, namespace: nil, up: false)
        do {
            _ = try PacketLink(interface: a)
            Issue.record("opening a down interface succeeded")
        } catch {
            #expect(error.code == .interfaceDown)
            #expect(error.description.hasPrefix("\(a): interface is down"))
        }
    }

    @Test func readsMTUMACAndIndexLikeTheKernel() throws {
        let lab = try Lab()
        defer { lab.teardown() }
        let a = lab.name("a")
        try lab.addVethPair(local: a, remote: lab.name("b"), remoteNamespace: nil, mtu: 9000)
        let link = try PacketLink(interface: a)
        #expect(link.mtu == 9000)
        let sysMAC = try String(contentsOfFile: "/sys/class/net/\(a)/address", encoding: .utf8)
        #expect(link.macAddress.description == sysMAC.trimmingCharacters(in: .whitespacesAndNewlines))
        let sysIndex = try String(contentsOfFile: "/sys/class/net/\(a)/ifindex", encoding: .utf8)
        #expect(link.interfaceIndex == Int32(sysIndex.trimmingCharacters(in: .whitespacesAndNewlines)))
        // SO_RCVBUFFORCE as root: the kernel doubles what it grants (socket(7)), at least what we asked.
        #expect(link.receiveBufferSize >= PacketLink.defaultBufferSize)
        // An MTU change under an open link is seen on refresh.
        try lab.setMTU(a, namespace: nil, mtu: 1500)
        #expect(try link.refreshMTU() == 1500)
        #expect(link.mtu == 1500)
    }

    @Test func batchesCrossAVethPairAndOwnCopiesAreIgnored() throws {
        let lab = try Lab()
        defer { lab.teardown() }
        let (a, b) = (lab.name("a"), lab.name("b"))
        try lab.addVethPair(local: a, remote: b, remoteNamespace: nil, mtu: 9000)
        let left = try PacketLink(interface: a)
        let right = try PacketLink(interface: b)
        let frames: [[UInt8]] = (0..<100).map { i in
            AoEFrame(
                header: AoEHeader(
                    destination: right.macAddress, source: left.macAddress, shelf: Shelf(1),
                    slot: Slot(2), command: .ata, tag: Tag(UInt32(i))),
                body: .ata(.write(lba: UInt64(i), data: [UInt8](repeating: UInt8(i), count: 17 * 512)))
            ).encoded()
        }
        #expect(try left.send(frames) == 100)
        var got: [[UInt8]] = []
        try eventually(timeout: .seconds(5), every: .zero) {
            got += try right.receive(limit: 64, timeout: .milliseconds(100))
            return got.count >= 100
        }
        #expect(got == frames, "all 100 jumbo frames arrive whole and in order")
        // The sender must not see its own 100 frames come back.
        #expect(try left.receive(limit: 64, timeout: .milliseconds(200)).isEmpty)
    }

    @Test("a frame the kernel refuses (ENOBUFS) is counted as lost, not thrown")
    func refusedFramesAreLostNotFatal() throws {
        let lab = try Lab()
        defer { lab.teardown() }
        let (a, b) = (lab.name("a"), lab.name("b"))
        try lab.addVethPair(local: a, remote: b, remoteNamespace: nil, mtu: 9000)
        try lab.setMTU(b, namespace: nil, mtu: 1500)  // a veth refuses frames over its peer's MTU
        let left = try PacketLink(interface: a)
        let right = try PacketLink(interface: b)
        func frame(_ bytes: Int) -> [UInt8] {
            AoEFrame(
                header: AoEHeader(
                    destination: right.macAddress, source: left.macAddress, shelf: Shelf(1),
                    slot: Slot(2), command: .ata, tag: Tag(UInt32(bytes))),
                body: .ata(.write(lba: 0, data: [UInt8](repeating: 7, count: bytes)))
            ).encoded()
        }
        #expect(try left.send([frame(8704), frame(1024), frame(8704), frame(512)]) == 4)
        #expect(left.sendDrops == 2)
        var got: [[UInt8]] = []
        try eventually(timeout: .seconds(2), every: .zero) {
            got += try right.receive(limit: 8, timeout: .milliseconds(100))
            return got.count >= 2
        }
        #expect(got == [frame(1024), frame(512)], "the small frames around the refused ones still go")
    }
}

import AoECore
import AoEEngine
import AoELinux
import AoEProtocol
import AoETestSupport
import Foundation
import Synchronization
import Testing

/// AoE's only security is which interfaces carry it: a link must never see another interface's
/// frames, not even in the moment it opens.
@Suite("the interface allow-list", .enabled(if: LabGate.labShouldRun, Comment(rawValue: LabGate.labSkipReason)))
struct AllowListTests {
    @Test("while AoE floods another interface, 50 links opened on a quiet one never see a frame")
    func quietLinkSeesNothingWhileItOpens() throws {
        let lab = try Lab()
        defer { lab.teardown() }
        let (q0, q1, f0, f1) = (lab.name("q0"), lab.name("q1"), lab.name("f0"), lab.name("f1"))
        try lab.addVethPair(local: q0, remote: q1, remoteNamespace: nil, mtu: 1500)
        try lab.addVethPair(local: f0, remote: f1, remoteNamespace: nil, mtu: 1500)
        let flooder = try PacketLink(interface: f1)
        let frame = AoEFrame(
            header: AoEHeader(
                destination: .broadcast, source: flooder.macAddress, flags: .response, shelf: Shelf(10),
                slot: Slot(3), command: .queryConfig, tag: Tag(1)),
            body: .queryConfig(QueryConfig(bufferCount: 16, sectorsPerCommand: 2, aoeVersion: 1))
        ).encoded()
        let stop = Atomic<Bool>(false)
        let sent = Atomic<Int>(0)
        let flood = Thread {
            while !stop.load(ordering: .relaxed) {
                if let n = try? flooder.send([[UInt8]](repeating: frame, count: 32)) { sent.add(n, ordering: .relaxed) }
            }
        }
        flood.start()
        defer { stop.store(true, ordering: .relaxed) }
        #expect(eventually(timeout: .seconds(5)) { sent.load(ordering: .relaxed) > 1000 }, "the flood runs")
        var seen = 0
        for _ in 0..<50 {
            let quiet = try PacketLink(interface: q0)
            seen += try quiet.receive(limit: 64, timeout: .milliseconds(20)).count
        }
        #expect(seen == 0, "frames of \(f1) reached a link on \(q0)")
        // The flooded interface's own link does see them: the test can tell.
        let loud = try PacketLink(interface: f0)
        #expect(
            try eventually(timeout: .seconds(2), every: .zero) {
                try !loud.receive(limit: 64, timeout: .milliseconds(100)).isEmpty
            })
    }

    @Test("a target reachable only through an interface taken off the allow-list completes no request")
    func targetBehindARemovedInterface() throws {
        let lab = try Lab()
        defer { lab.teardown() }
        let a = try lab.direct(mtu: 9000, index: 0)
        let b = try lab.direct(mtu: 9000, index: 1, targetNamespace: a.targetNamespace)
        let file = try lab.sparseFile("e10.3.img", size: 64 << 20)
        _ = try lab.startVblade(shelf: 10, slot: 3, interface: a.target, namespace: a.targetNamespace, file: file)
        var c = EngineConfiguration()
        c.deadsecs = 2
        let engine = Engine(
            links: [try PacketLink(interface: a.initiator), try PacketLink(interface: b.initiator)],
            configuration: c)
        defer { engine.shutdown() }
        engine.start()
        let e103 = TargetAddress(10, 3)
        try #require(engine.wait(timeout: .seconds(10)) { $0.first { $0.address == e103 }?.state == .up })
        #expect(engine.setAllowedInterfaces([b.initiator]).isEmpty)
        #expect(engine.allowedInterfaces == [b.initiator])
        let sentBefore = engine.target(e103)?.counters.atasnd ?? 0
        let r = engine.waitSync {
            engine.read(e103, offset: 0, count: 4096, into: IOBuffer(count: 4096), completion: $0)
        }
        #expect(r.failure == .targetDown(e103), "\(r)")
        #expect(engine.target(e103)?.counters.atasnd == sentBefore, "no frame went out on \(a.initiator)")
    }
}

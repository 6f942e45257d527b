import AoECore
import AoEDoctor
import AoEEngine
import AoEProtocol
import AoETestSupport
import Foundation
import Testing

@Suite("aoefs doctor: typed facts, and the findings, table-driven")
struct DoctorTests {
    @Test("an engine's snapshot becomes facts, and the facts round-trip through the JSON a mount offers")
    func roundTrip() throws {
        var sim = upSimulation()
        let data = pattern(1 << 20, seed: 41)
        #expect(sim.writeThenRead(data, at: 0) == data)
        let t = try #require(sim.target)
        let facts = EngineFacts(targets: [t], links: [LinkFacts(name: "eth1", mtu: 9000, receiveBuffer: 1 << 21)])
        #expect(facts.targets.count == 1)
        let f = try #require(facts.targets.first)
        #expect(f.target == "e10.3" && f.state == .up && f.model == t.identity?.model && f.bufferCount == 16)
        #expect(f.maxPayload == 17 * 512)
        #expect(f.paths.count == 1 && f.paths[0].payload == t.paths[0].payload && f.paths[0].state == .ok)
        #expect(f.framesSent == Int(t.counters.atasnd))
        #expect(f.io.write.ios == 1 && f.io.write.bytes == 1 << 20 && f.io.read.ios == 1 && f.io.read.bytes == 1 << 20)
        // What the mount writes to sys/facts.json is read back as the same facts.
        let text = facts.json()
        #expect(text.hasSuffix("\n") && !text.dropLast().contains("\n"), "one line")
        #expect(try EngineFacts.decode(text) == facts)
        // A state the daemon renders that this build does not know is an error that names it.
        let odd = text.replacingOccurrences(of: "\"state\":\"up\"", with: "\"state\":\"sideways\"")
        #expect(throws: DecodingError.self) { try EngineFacts.decode(odd) }
    }

    static func healthy() -> (TargetFacts, HostFacts) {
        var t = TargetFacts(target: "e10.3")
        t.state = .up
        t.model = "M"
        t.serial = "S"
        t.firmware = "1"
        t.bufferCount = 16
        t.maxPayload = 8704
        t.writeCache = true
        t.flush = .ext
        t.paths = [
            PathFacts(
                interface: "eth1", mac: "02:00:00:00:00:01", state: .ok, payload: 8704, mtu: 9000,
                rttSeconds: 0.0002, window: 16, ceiling: 0, sent: 100, lost: 0)
        ]
        var h = HostFacts()
        h.interfaces = [InterfaceFacts(name: "eth1", mtu: 9000, up: true, allowed: true)]
        h.rmemMax = 16 << 20
        h.wmemMax = 16 << 20
        h.fuseUring = true
        return (t, h)
    }

    @Test("a healthy SAN: nothing but information, status 0")
    func clean() {
        let (t, h) = Self.healthy()
        let f = Diagnosis.run(targets: [t], host: h)
        #expect(f.allSatisfy { $0.severity == .info }, "\(f)")
        #expect(Diagnosis.status(f) == 0)
    }

    typealias Plant = @Sendable (inout TargetFacts, inout HostFacts) -> Void

    /// Issue 31: what has not settled is a warning that says what and how long doctor waited,
    /// never silence (a path still searching its payload read as "no problems found").
    @Test(
        "not settled: a path still probing, two MACs not yet proven one disk, a burst still out — each a pending warning",
        arguments: [
            (PathStatus.probing, "the payload search is not over"),
            (.proving, "two MACs answer as e10.3; not yet proven one disk"),
            (.candidate, "has not answered IDENTIFY"),
        ])
    func pending(state: PathStatus, says: String) throws {
        var (t, h) = Self.healthy()
        t.paths[0].state = state
        t.paths[0].payload = 1024
        h.waited = .seconds(20)
        let f = Diagnosis.run(targets: [t], host: h)
        let p = try #require(f.first { $0.check == "pending" }, "\(f)")
        #expect(p.severity == .warning && p.message.contains(says) && p.message.contains("after 20.0 s"), "\(p)")
        #expect(p.fix?.contains("--wait") == true)
        #expect(Diagnosis.status(f) == 1)
        h.mounted = true
        h.waited = nil
        let mounted = try #require(Diagnosis.run(targets: [t], host: h).first { $0.check == "pending" })
        #expect(!mounted.message.contains("after") && mounted.fix?.contains("again in a minute") == true)
    }

    @Test("a burst still out when doctor stopped waiting is a pending warning")
    func pendingBurst() {
        var (t, h) = Self.healthy()
        h.pending = [
            PendingFact(subject: "e10.3 eth1→02:00:00:00:00:01", what: "the Buffer Count burst (16 frames) is not back")
        ]
        h.waited = .milliseconds(20_500)
        let f = Diagnosis.run(targets: [t], host: h)
        #expect(
            f.contains { $0.check == "pending" && $0.message.contains("burst") && $0.message.contains("20.5 s") },
            "\(f)")
        t.paths = []
        #expect(Diagnosis.status(Diagnosis.run(targets: [t], host: h)) >= 1)
    }

    @Test(
        "each planted fault: its check, its severity, a fix",
        arguments: [
            (
                "jumbo", Finding.Severity.warning,
                { (t: inout TargetFacts, _: inout HostFacts) in t.paths[0].payload = 1024 } as Plant
            ),
            (
                "mtu-mismatch", .warning,
                { t, _ in
                    t.maxPayload = 1024; t.paths[0].payload = 1024
                }
            ),
            (
                "mtu-mismatch", .warning,
                { t, _ in
                    t.paths[0].mtu = 1500; t.paths[0].payload = 1024
                }
            ),
            ("overrun", .warning, { t, _ in t.paths[0].ceiling = 9 }),
            (
                "overrun", .warning,
                { t, _ in
                    t.paths[0].burstSent = 16; t.paths[0].burstLost = 5
                }
            ),
            (
                "duplicate", .error,
                { t, _ in
                    t.duplicates = 1
                    t.paths.append(
                        PathFacts(
                            interface: "eth1", mac: "02:00:00:00:00:09", state: .duplicate, payload: 1024,
                            mtu: 9000, rttSeconds: 0, window: 8, ceiling: 0, sent: 1, lost: 0))
                }
            ),
            (
                "identify", .warning,
                { t, _ in
                    t.state = .identifying; t.model = ""
                }
            ),
            ("candidates", .warning, { t, _ in t.candidatesDropped = 2 }),
            ("durability", .error, { t, _ in t.flush = .none }),
            (
                "multipath", .warning,
                { _, h in h.interfaces.append(InterfaceFacts(name: "eth2", mtu: 9000, up: true, allowed: true)) }
            ),
            ("socket-buffers", .warning, { _, h in h.rmemMax = 212_992 }),
            ("ip-on-aoe", .warning, { _, h in h.interfaces[0].ipAddresses = ["10.0.0.1/24"] }),
            ("ip-on-aoe", .warning, { _, h in h.interfaces[0].ipFramesHeard = 12 }),
            (
                "foreign-aoe", .warning,
                { _, h in
                    var i = InterfaceFacts(name: "eth3", mtu: 1500, up: true, allowed: false)
                    i.aoeHeard = ["target 02:00:00:00:00:07 (e7.1)"]
                    h.interfaces.append(i)
                }
            ),
        ] as [(String, Finding.Severity, Plant)])
    func planted(check: String, severity: Finding.Severity, plant: Plant) {
        var (t, h) = Self.healthy()
        plant(&t, &h)
        let f = Diagnosis.run(targets: [t], host: h).filter { $0.severity != .info }
        #expect(f.count == 1, "exactly the planted fault: \(f)")
        #expect(f.first?.check == check && f.first?.severity == severity, "\(f)")
        #expect(f.first?.fix?.isEmpty == false)
        #expect(Diagnosis.status(f) == (severity == .error ? 2 : 1))
    }

    @Test("FUSE over io_uring off: a tip with its fix, not a problem")
    func uringOff() {
        let (t, healthy) = Self.healthy()
        var h = healthy
        h.fuseUring = false
        let f = Diagnosis.run(targets: [t], host: h)
        #expect(
            f.contains { $0.check == "fuse-uring" && $0.severity == .info && $0.fix?.contains("enable_uring") == true })
        #expect(Diagnosis.status(f) == 0)
    }

    @Test("no target at all is an error")
    func nothing() {
        let (_, h) = Self.healthy()
        let f = Diagnosis.run(targets: [], host: h)
        #expect(f.contains { $0.check == "no-targets" && $0.severity == .error })
    }
}

@Suite("aoefs doctor: the MTU it suggests")
struct DoctorMTUTests {
    @Test("a target offering 4096-byte frames (neither 1500's nor 9000's) is said to have MTU 4096 + 22")
    func oddOffer() {
        var (t, h) = DoctorTests.healthy()
        t.maxPayload = 4096
        let f = Diagnosis.run(targets: [t], host: h).first { $0.check == "mtu-mismatch" }
        #expect(f?.message.contains("its MTU is 4118 or close") == true, "\(String(describing: f))")
    }
}

import AoECore
import AoEEngine
import AoELinux
import AoEProtocol
import AoETestSupport
import Synchronization
import Testing

/// The whole `Link` protocol over an in-memory link (issue 34): the driver follows the link's
/// own interface events, reads the MTU again when frames are refused, opens a recreated
/// interface anew, busy-polls, and reports the receive buffer — with no cast to PacketLink.
@Suite("engine over an in-memory link: interface changes, busy polling, buffer figures", .timeLimit(.minutes(1)))
struct LinkEventsTests {
    final class Lines: Sendable {
        let lines = Locked<[String]>([])
        func add(_ l: String) { lines.withLock { $0.append(l) } }
        func contains(_ s: String) -> Bool { lines.withLock { $0.contains { $0.contains(s) } } }
    }

    func started(mtu: Int = 9000, busyPoll: Duration = .zero) throws -> (MemoryLink, Engine, Lines) {
        let link = try MemoryLink(
            mtu: mtu,
            target: MemoryTarget(
                address: e103, mac: MACAddress(0x02, 0, 0, 0, 0, 0x10),
                sectors: 1 << 16))
        var c = EngineConfiguration()
        c.busyPoll = busyPoll
        let lines = Lines()
        let engine = Engine(links: [link], configuration: c, onLog: { lines.add($0) })
        engine.start()
        try #require(engine.waitUntilSettled(timeout: .seconds(10)), "e10.3 came up: \(engine.targets())")
        return (link, engine, lines)
    }

    func payload(_ engine: Engine) -> Int? { engine.target(e103)?.paths.first?.payload }
    /// For `Engine.wait`'s condition, which runs under the engine's lock: from its snapshots.
    func path(_ targets: [TargetSnapshot]) -> PathSnapshot? { targets.first { $0.address == e103 }?.paths.first }

    func roundTrip(_ engine: Engine, seed: UInt64) -> Bool {
        let data = pattern(1 << 20, seed: seed)
        guard
            engine.waitSync({
                engine.write(e103, offset: 4096, count: data.count, from: IOBuffer(data), completion: $0)
            })
            .error == nil
        else { return false }
        let back = IOBuffer(count: data.count)
        guard
            engine.waitSync({ engine.read(e103, offset: 4096, count: data.count, into: back, completion: $0) }).error
                == nil
        else { return false }
        return back.array() == data
    }

    @Test("an MTU lowered with an event: the payload follows it down, and up again when it is raised")
    func mtuEvent() throws {
        let (link, engine, _) = try started()
        defer { engine.shutdown() }
        #expect(payload(engine) == 8704)
        link.setMTU(1500)
        #expect(engine.wait(timeout: .seconds(5)) { path($0)?.payload == 1024 })
        #expect(link.mtu == 1500)
        #expect(roundTrip(engine, seed: 1))
        link.setMTU(9000)
        #expect(engine.wait(timeout: .seconds(30)) { path($0)?.payload == 8704 }, "payload \(payload(engine) ?? 0)")
    }

    @Test("an MTU lowered with no event: refused sends make the driver read it again; nothing is lost")
    func mtuWithoutEvent() throws {
        let (link, engine, lines) = try started()
        defer { engine.shutdown() }
        link.setMTU(1500, announce: false)
        #expect(roundTrip(engine, seed: 2))
        #expect(lines.contains("frames refused as longer than the MTU"))
        #expect(link.mtu == 1500 && payload(engine) == 1024)
    }

    @Test("a link down and up by events: the path is link-down meanwhile, I/O waits and then completes")
    func downAndUp() throws {
        let (link, engine, _) = try started()
        defer { engine.shutdown() }
        link.setDown(true, announce: true)
        #expect(engine.wait(timeout: .seconds(5)) { path($0)?.state == .linkDown })
        let done = Locked<Bool?>(nil)
        let data = IOBuffer(pattern(65_536, seed: 3))
        engine.write(e103, offset: 0, count: data.count, from: data) { r, _ in
            done.withLock { $0 = r.error == nil }
            done.broadcast()
        }
        #expect(!done.wait(timeout: .milliseconds(200)) { $0 != nil }, "waits while down")
        let up = ContinuousClock.now
        link.setDown(false, announce: true)
        #expect(done.wait(timeout: .seconds(10)) { $0 != nil } && done.withLock { $0 } == true)
        // Taken back at once when the link went down, sent again when it came up: no timeouts.
        #expect(ContinuousClock.now - up < .seconds(2), "\(ContinuousClock.now - up) after the link came up")
        #expect(link.target.bytes(at: 0, count: 65_536) == data.array())
    }

    @Test("an interface created again under the same name: the link is opened anew and carries I/O")
    func recreated() throws {
        let (link, engine, lines) = try started()
        defer { engine.shutdown() }
        link.recreate()
        #expect(engine.wait(timeout: .seconds(5)) { _ in link.reopens == 1 })
        #expect(eventually(timeout: .seconds(5)) { lines.contains("interface created again") }, "its log line")
        #expect(roundTrip(engine, seed: 4))
    }

    @Test(
        "busy polling: receives poll before they sleep when it is on, never when it is off; the buffer figure reaches metrics"
    )
    func busyPollAndBuffer() throws {
        let (link, engine, _) = try started(busyPoll: .microseconds(50))
        #expect(roundTrip(engine, seed: 5))
        #expect(link.busyPoll == .microseconds(50) && link.busyPolls > 0)
        #expect(engine.metricsExposition().contains("interface=\"mem0\"} \(link.receiveBufferSize)"))
        engine.shutdown()
        let (quiet, other, _) = try started(busyPoll: .zero)
        defer { other.shutdown() }
        #expect(roundTrip(other, seed: 6))
        #expect(quiet.busyPolls == 0)
    }
}

import AoECore
import AoEEngine
import AoELinux
import AoEProtocol
import AoETestSupport
import Synchronization
import Testing

/// The whole `Link` protocol over an in-memory link (issue 34): the driver follows the link's
/// own interface events, reads the MTU again when frames are refused, opens a recreated
/// interface anew, busy-polls, and reports the receive buffer — with no cast to PacketLink; on
/// virtual time (`ManualClock`): no sleep, no wall clock.
@Suite("engine over an in-memory link: interface changes, busy polling, buffer figures", .timeLimit(.minutes(1)))
struct LinkEventsTests {
    final class Lines: Sendable {
        let lines = Locked<[String]>([])
        func add(_ l: String) { lines.withLock { $0.append(l) } }
        func contains(_ s: String) -> Bool { lines.withLock { $0.contains { $0.contains(s) } } }
    }

    /// A started engine over an in-memory link, on virtual time: nothing here waits on the wall
    /// clock; `clock.drive` moves time until what a test waits for has happened.
    struct Rig {
        let link: MemoryLink
        let engine: Engine
        let lines: Lines
        let clock: ManualClock

        /// Moves virtual time (up to `limit`) until `condition` holds of the targets.
        func drive(for limit: Duration, until condition: ([TargetSnapshot]) -> Bool) -> Bool {
            clock.drive(engine, links: [link], for: limit, until: condition)
        }

        /// Moves virtual time (up to `limit`) until `done` says so (a completion, a log line).
        func drive(for limit: Duration, until done: @escaping () -> Bool) -> Bool {
            clock.drive(engine, links: [link], for: limit) { _ in done() }
        }

        /// Writes 1 MiB and reads it back, each waited for on virtual time.
        func roundTrip(seed: UInt64) -> Bool {
            let data = pattern(1 << 20, seed: seed)
            let back = IOBuffer(count: data.count)
            let result = Locked<[Bool]>([])
            engine.write(e103, offset: 4096, count: data.count, from: IOBuffer(data)) { r, _ in
                result.withLock { $0.append(r.error == nil) }
            }
            guard drive(for: .seconds(30), until: { result.withLock { $0.count == 1 } }) else { return false }
            engine.read(e103, offset: 4096, count: data.count, into: back) { r, _ in
                result.withLock { $0.append(r.error == nil) }
            }
            guard drive(for: .seconds(30), until: { result.withLock { $0.count == 2 } }) else { return false }
            return result.withLock { $0 } == [true, true] && back.array() == data
        }
    }

    func started(mtu: Int = 9000, busyPoll: Duration = .zero) throws -> Rig {
        let link = try MemoryLink(
            mtu: mtu,
            target: MemoryTarget(
                address: e103, mac: MACAddress(0x02, 0, 0, 0, 0, 0x10),
                sectors: 1 << 16))
        var c = EngineConfiguration()
        c.busyPoll = busyPoll
        let lines = Lines()
        let clock = ManualClock()
        let engine = Engine(links: [link], configuration: c, clock: clock, onLog: { lines.add($0) })
        engine.start()
        let rig = Rig(link: link, engine: engine, lines: lines, clock: clock)
        try #require(rig.drive(for: .seconds(30)) { $0.allSettled }, "e10.3 came up: \(engine.targets())")
        return rig
    }

    func payload(_ engine: Engine) -> Int? { engine.target(e103)?.paths.first?.payload }
    /// For `Engine.wait`'s condition, which runs under the engine's lock: from its snapshots.
    func path(_ targets: [TargetSnapshot]) -> PathSnapshot? { targets.first { $0.address == e103 }?.paths.first }

    @Test("an MTU lowered with an event: the payload follows it down, and up again when it is raised")
    func mtuEvent() throws {
        let r = try started()
        defer { r.engine.shutdown() }
        #expect(payload(r.engine) == 8704)
        r.link.setMTU(1500)
        #expect(r.drive(for: .seconds(5)) { path($0)?.payload == 1024 })
        #expect(r.link.mtu == 1500)
        #expect(r.roundTrip(seed: 1))
        r.link.setMTU(9000)
        #expect(r.drive(for: .seconds(30)) { path($0)?.payload == 8704 }, "payload \(payload(r.engine) ?? 0)")
    }

    @Test("an MTU lowered with no event: refused sends make the driver read it again; nothing is lost")
    func mtuWithoutEvent() throws {
        let r = try started()
        defer { r.engine.shutdown() }
        r.link.setMTU(1500, announce: false)
        #expect(r.roundTrip(seed: 2))
        #expect(r.lines.contains("frames refused as longer than the MTU"))
        #expect(r.link.mtu == 1500 && payload(r.engine) == 1024)
    }

    @Test("a link down and up by events: the path is link-down meanwhile, I/O waits and then completes")
    func downAndUp() throws {
        let r = try started()
        defer { r.engine.shutdown() }
        r.link.setDown(true, announce: true)
        #expect(r.drive(for: .seconds(5)) { path($0)?.state == .linkDown })
        let done = Locked<Bool?>(nil)
        let data = IOBuffer(pattern(65_536, seed: 3))
        r.engine.write(e103, offset: 0, count: data.count, from: data) { res, _ in
            done.withLock { $0 = res.error == nil }
        }
        #expect(!r.drive(for: .seconds(10)) { done.withLock { $0 } != nil }, "waits while down (10 s of virtual time)")
        let up = r.clock.now()
        r.link.setDown(false, announce: true)
        #expect(r.drive(for: .seconds(10)) { done.withLock { $0 } != nil } && done.withLock { $0 } == true)
        // Taken back at once when the link went down, sent again when it came up: no timeouts.
        #expect(r.clock.now() - up < .seconds(1), "\(r.clock.now() - up) of virtual time after the link came up")
        #expect(r.link.target.bytes(at: 0, count: 65_536) == data.array())
    }

    @Test("an interface created again under the same name: the link is opened anew and carries I/O")
    func recreated() throws {
        let r = try started()
        defer { r.engine.shutdown() }
        r.link.recreate()
        #expect(r.drive(for: .seconds(5)) { r.link.reopens == 1 })
        #expect(r.drive(for: .seconds(5)) { r.lines.contains("interface created again") }, "its log line")
        #expect(r.roundTrip(seed: 4))
    }

    @Test(
        "busy polling: receives poll before they sleep when it is on, never when it is off; the buffer figure reaches metrics"
    )
    func busyPollAndBuffer() throws {
        let r = try started(busyPoll: .microseconds(50))
        #expect(r.roundTrip(seed: 5))
        #expect(r.link.busyPoll == .microseconds(50) && r.link.busyPolls > 0)
        #expect(r.engine.metricsExposition().contains("interface=\"mem0\"} \(r.link.receiveBufferSize)"))
        r.engine.shutdown()
        let quiet = try started(busyPoll: .zero)
        defer { quiet.engine.shutdown() }
        #expect(quiet.roundTrip(seed: 6))
        #expect(quiet.link.busyPolls == 0)
    }
}

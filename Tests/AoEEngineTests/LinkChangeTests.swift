import AoECore
import AoEEngine
import AoEProtocol
import AoETestSupport
import Testing

/// `EngineCore.linkChanged`: what the router does when one of our interfaces goes down, comes
/// back, or changes its MTU (issue 21), in the simulation's explicit time.
@Suite("Engine core: the host's interfaces change")
struct LinkChangeTests {
    /// Tells the core what rtnetlink would, and performs what it says.
    func change(_ sim: inout Simulation, up: Bool? = nil, mtu: Int? = nil) {
        var out: [EngineAction] = []
        sim.core.linkChanged(link0, up: up, mtu: mtu, now: sim.now, &out)
        sim.perform(out)
    }

    @Test(
        "down mid-write: the frames in flight wait in the queue, not counted as lost; up: they go and the write completes"
    )
    func downThenUp() throws {
        var sim = upSimulation()
        let data = pattern(1 << 20, seed: 7)
        let w = sim.submit(.write, e103, lba: 64, sectors: data.count / 512, buffer: IOBuffer(data))
        sim.advance(.microseconds(50))  // frames on the wire
        #expect(try #require(sim.target).outstanding > 0)
        sim.faults[link0, default: .init()].cut = true
        change(&sim, up: false)
        #expect(try #require(sim.target).outstanding == 0, "nothing in flight on a link that is down")
        sim.advance(.seconds(3))
        let during = try #require(sim.target)
        #expect(sim.outcome(w) == .pending)
        #expect(
            during.counters.errtimeout == 0 && during.counters.retries == 0 && during.counters.lostJumbo == 0,
            "a link that is down loses nothing: \(during.counters)")
        #expect(during.payload == 8704, "no black-hole suspicion")
        sim.faults[link0] = Simulation.Faults()
        change(&sim, up: true)
        #expect(sim.run(for: .seconds(5)) { $0.isDone(w) }, "the write goes on at once when the link is back")
        #expect(sim.outcome(w) == .ok)
        #expect(sim.writeThenRead(data, at: 64) == data)
        #expect(sim.log.contains("sim0: interface down") && sim.log.contains("sim0: interface up"))
    }

    /// Found by the stress mix (issue 30): writes in flight, `revalidate` sends IDENTIFY, and the
    /// link goes down before it is answered. The frames came back to the queue oldest first, the
    /// IDENTIFY behind writes; pump stopped at the first write (no I/O before the identity), so
    /// the IDENTIFY never went and the target sat in `identifying` with its writes forever.
    @Test(
        "revalidate under writes, then the link down and up before IDENTIFY is answered: the target comes back and the writes complete"
    )
    func revalidateThenLinkFlap() throws {
        var sim = upSimulation()
        // 5 ms each way: the config answer comes 10 ms after revalidate, IDENTIFY is answered
        // 10 ms after that; writes sent meanwhile are in flight beside it.
        sim.latency = .milliseconds(5)
        let data = pattern(4 << 20, seed: 9)
        let w = sim.submit(.write, e103, lba: 128, sectors: data.count / 512, buffer: IOBuffer(data))
        sim.advance(.milliseconds(3))  // writes in flight
        var out: [EngineAction] = []
        sim.core.revalidate(e103, now: sim.now, &out)
        sim.perform(out)
        sim.advance(.milliseconds(14))  // IDENTIFY sent at +10 ms, not yet answered
        #expect(sim.target?.state == .identifying)
        sim.faults[link0, default: .init()].cut = true
        change(&sim, up: false)
        sim.advance(.milliseconds(100))
        sim.faults[link0] = Simulation.Faults()
        change(&sim, up: true)
        #expect(
            sim.run(for: .seconds(10)) { $0.isDone(w) }, "\(String(describing: sim.target?.state)) \(sim.log.suffix(6))"
        )
        #expect(sim.outcome(w) == .ok)
        #expect(sim.target?.state == .up)
        #expect(sim.writeThenRead(data, at: 128) == data)
    }

    /// Issue 31: the path falls back to 1024 when a switch stops passing jumbo frames; once the
    /// switch passes them again, nothing tells us — the path must find out by itself.
    @Test(
        "a switch that black-holes jumbo frames, then passes them again: back to 8704 within 30 s, with no event, data intact"
    )
    func climbsBackWithoutEvent() throws {
        var sim = upSimulation()
        let data = pattern(2 << 20, seed: 11)
        sim.faults[link0, default: .init()].mtuLimit = 1500
        let w = sim.submit(.write, e103, lba: 0, sectors: data.count / 512, buffer: IOBuffer(data))
        #expect(sim.run(for: .seconds(30)) { $0.isDone(w) })
        #expect(sim.outcome(w) == .ok)
        #expect(sim.target?.payload == 1024)
        #expect(sim.target?.paths.first?.nextRaise != nil, "an upward try is scheduled: \(sim.log.suffix(4))")
        sim.faults[link0] = Simulation.Faults()  // the switch passes jumbo frames again
        let fixed = sim.now
        #expect(sim.run(for: .seconds(60)) { ($0.target?.payload ?? 0) == 8704 }, "\(sim.log.suffix(6))")
        #expect(sim.now - fixed <= .seconds(30), "back in \(sim.now - fixed)")
        #expect(sim.writeThenRead(data, at: 0) == data)
        #expect(sim.log.contains { $0.contains("trying 8704-byte frames again") })
    }

    @Test(
        "MTU lowered mid-write: 1024-byte frames at once, the write completes; raised: back to 8704 without a revalidate"
    )
    func mtuDownThenUp() throws {
        var sim = upSimulation()
        let data = pattern(1 << 20, seed: 8)
        let w = sim.submit(.write, e103, lba: 0, sectors: data.count / 512, buffer: IOBuffer(data))
        sim.advance(.microseconds(50))
        sim.faults[link0, default: .init()].mtuLimit = 1500  // the wire now drops what is larger
        change(&sim, mtu: 1500)
        #expect(try #require(sim.target).payload == 1024)
        #expect(sim.run(for: .seconds(5)) { $0.isDone(w) })
        #expect(sim.outcome(w) == .ok)
        #expect(try #require(sim.target).counters.retries == 0, "the oversized frames went again without a timeout")
        #expect(sim.writeThenRead(data, at: 0) == data)
        sim.faults[link0] = Simulation.Faults()
        change(&sim, mtu: 9000)
        #expect(sim.run(for: .seconds(2)) { ($0.target?.payload ?? 0) == 8704 }, "\(sim.log.suffix(5))")
    }

    @Test("a target that announces fewer (or more) sectors per frame: the path's ceiling follows")
    func targetSectorsChange() throws {
        var sim = upSimulation()
        sim.targets[0].sectorsPerCommand = 2
        var out: [EngineAction] = []
        sim.core.discover(now: sim.now, &out)
        sim.perform(out)
        #expect(sim.run(for: .seconds(1)) { ($0.target?.payload ?? 0) == 1024 })
        #expect(sim.log.contains { $0.contains("now takes 2 sectors per frame (was 17)") })
        sim.targets[0].sectorsPerCommand = 17
        out = []
        sim.core.discover(now: sim.now, &out)
        sim.perform(out)
        #expect(sim.run(for: .seconds(2)) { ($0.target?.payload ?? 0) == 8704 })
    }
}

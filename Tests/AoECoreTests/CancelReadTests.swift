import AoECore
import AoEProtocol
import AoETestSupport
import Testing

/// A reader interrupted by a signal (Ctrl-C on a `dd` from a dead target) gives up on its read:
/// `EngineCore.cancelRead(owner:)` fails it at once instead of after `deadsecs`.
@Suite("Engine core: a read given up on")
struct CancelReadTests {
    func submit(_ sim: inout Simulation, _ kind: IOKind, owner: UInt64, lba: UInt64) -> RequestID {
        let id = sim.core.makeRequestID()
        let r = SectorRequest(
            id: id, target: e103, kind: kind, lba: lba, sectors: 8, buffer: IOBuffer(count: 8 * 512), owner: owner)
        var out: [EngineAction] = []
        sim.core.submit(r, now: sim.now, &out)
        sim.perform(out)
        return id
    }

    @Test(
        "the target stops answering: cancelling owner 7 fails its read with .interrupted; its write, another owner's read and owner 0 are untouched"
    )
    func cancelsOnlyThatOwnersReads() {
        var sim = upSimulation()
        sim.faults[link0] = {
            var f = Simulation.Faults()
            f.drop = 1
            return f
        }()
        let read7 = submit(&sim, .read, owner: 7, lba: 0)
        let write7 = submit(&sim, .write, owner: 7, lba: 100)
        let read8 = submit(&sim, .read, owner: 8, lba: 200)
        sim.advance(.milliseconds(200))
        #expect(sim.outcome(read7) == .pending && sim.outcome(read8) == .pending)
        var out: [EngineAction] = []
        sim.core.cancelRead(owner: 0, now: sim.now, &out)  // no owner: cancels nothing
        sim.core.cancelRead(owner: 7, now: sim.now, &out)
        sim.perform(out)
        #expect(sim.outcome(read7) == .failed(.interrupted))
        #expect(sim.outcome(write7) == .pending, "a write is left to finish or to deadsecs")
        #expect(sim.outcome(read8) == .pending)
        // The target answers again: the others complete, and the cancelled read's late frames
        // are dropped (it completes once, as failed).
        sim.faults[link0] = Simulation.Faults()
        #expect(sim.run(for: .seconds(30)) { $0.isDone(write7) && $0.isDone(read8) })
        #expect(sim.outcome(write7) == .ok && sim.outcome(read8) == .ok)
        #expect(sim.outcome(read7) == .failed(.interrupted))
        #expect(sim.target?.io.read.errors == 1)
    }
}

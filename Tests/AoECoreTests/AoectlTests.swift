import AoECore
import AoEProtocol
import AoETestSupport
import Testing

@Suite("aoectl: target patterns, disable and enable")
struct AoectlTests {
    @Test(
        "patterns as Solaris aoectl writes them",
        arguments: [
            ("10.3", TargetPattern(shelf: 10, slot: 3)), ("e10.3", TargetPattern(shelf: 10, slot: 3)),
            ("10", TargetPattern(shelf: 10, slot: nil)), ("10.", TargetPattern(shelf: 10, slot: nil)),
            (".3", TargetPattern(shelf: nil, slot: 3)), (".", TargetPattern(shelf: nil, slot: nil)),
        ])
    func parses(_ text: String, _ want: TargetPattern) {
        #expect(TargetPattern(parsing: text) == want)
    }

    @Test("not patterns", arguments: ["", "e", "x", "10.3.4", "65535", "10.255", "1.x", "-1", "10 3"])
    func refuses(_ text: String) {
        #expect(TargetPattern(parsing: text) == nil)
    }

    @Test func matching() {
        let t = TargetAddress(10, 3)
        #expect(TargetPattern(shelf: 10, slot: 3).matches(t) && TargetPattern(shelf: 10, slot: nil).matches(t))
        #expect(TargetPattern(shelf: nil, slot: 3).matches(t) && TargetPattern(shelf: nil, slot: nil).matches(t))
        #expect(!TargetPattern(shelf: 11, slot: nil).matches(t) && !TargetPattern(shelf: nil, slot: 4).matches(t))
        #expect(TargetPattern(shelf: nil, slot: 3).queryAddress == TargetAddress(shelf: .broadcast, slot: Slot(3)))
    }

    @Test("disabled mid-write: the write fails at once, no frame follows, discovery leaves it; enabled: it works")
    func disableAndEnable() throws {
        var sim = upSimulation()
        let data = pattern(8 << 20, seed: 41)
        let w = sim.submit(.write, e103, lba: 0, sectors: data.count / 512, buffer: IOBuffer(data))
        sim.advance(.milliseconds(1))
        var out: [EngineAction] = []
        #expect(sim.core.disable(TargetPattern(shelf: 10, slot: nil), &out) == [e103])
        sim.perform(out)
        #expect(sim.outcome(w) == .failed(.disabled(e103)))
        #expect(sim.target?.state == .disabled)
        let sent = sim.sentToTargets
        sim.inject(sim.targets[0].announcement(), on: link0)
        var discovery: [EngineAction] = []
        sim.core.discover(now: sim.now, &discovery)
        sim.perform(discovery)
        sim.advance(.seconds(2))
        #expect(sim.target?.state == .disabled, "discovery does not bring it back")
        #expect(sim.sentToTargets - sent <= 1, "only the broadcast query went out")
        let r = sim.submit(.read, e103, lba: 0, sectors: 8, buffer: IOBuffer(count: 4096))
        #expect(sim.outcome(r) == .failed(.disabled(e103)))
        out = []
        #expect(sim.core.enable(TargetPattern(shelf: 10, slot: 3), now: sim.now, &out) == [e103])
        sim.perform(out)
        #expect(sim.run(for: .seconds(5)) { $0.target?.state == .up })
        #expect(sim.writeThenRead(data, at: 0) == data)
    }
}

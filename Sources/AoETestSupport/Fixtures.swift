import AoECore
import AoEProtocol

// The fixtures the core's and the driver's tests share: one target, e10.3, on link 0 of a
// `Simulation`, and what a request came to.

/// The target of the fixtures, e10.3.
public let e103 = TargetAddress(10, 3)
/// Its MAC address.
public let targetMAC = MACAddress(0xCA, 0x55, 0x0A, 0x0A, 0xBD, 0xFF)
/// The links of the fixtures.
public let link0 = LinkID(0)
public let link1 = LinkID(1)

/// `count` bytes of a seeded pseudo-random pattern.
public func pattern(_ count: Int, seed: UInt64) -> [UInt8] {
    var rng = SplitMixRNG(seed)
    return (0..<count).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
}

/// A simulation with one target on link 0 (MTU `mtu`), run until the target is up.
public func upSimulation(
    mtu: Int = 9000, target: MemoryTarget? = nil, configuration: EngineConfiguration = .init(),
    faults: Simulation.Faults = .init(), seed: UInt64 = 1
) -> Simulation {
    var sim = Simulation(
        configuration: configuration, links: [(link0, mtu)],
        targets: [(target ?? MemoryTarget(address: e103, mac: targetMAC), [link0])], seed: seed)
    sim.faults[link0] = faults
    sim.run(for: .seconds(30)) { s in
        guard let t = s.core.snapshot(now: s.now).first else { return false }
        return t.state == .up && t.paths.allSatisfy { $0.state == .ok }
    }
    return sim
}

/// What a request came to.
public enum Outcome: Equatable, Sendable {
    case ok, failed(AoEIOError), pending
}

extension Simulation {
    public func outcome(_ id: RequestID) -> Outcome {
        switch completions[id] {
        case .success: .ok
        case .failure(let e): .failed(e)
        case nil: .pending
        }
    }

    public var target: TargetSnapshot? { core.snapshot(now: now).first { $0.address == e103 } }

    /// Writes `data` at `lba` and reads it back; returns what was read.
    public mutating func writeThenRead(_ data: [UInt8], at lba: UInt64, limit: Duration = .seconds(60)) -> [UInt8]? {
        let w = submit(.write, e103, lba: lba, sectors: data.count / 512, buffer: IOBuffer(data))
        guard run(for: limit, until: { $0.isDone(w) }), case .success = completions[w] else { return nil }
        let buffer = IOBuffer(count: data.count)
        let r = submit(.read, e103, lba: lba, sectors: data.count / 512, buffer: buffer)
        guard run(for: limit, until: { $0.isDone(r) }), case .success = completions[r] else { return nil }
        return buffer.array()
    }
}

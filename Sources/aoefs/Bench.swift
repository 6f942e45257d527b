import AoECore
import AoEEngine
import AoELinux
import AoEProtocol
import ArgumentParser
import Foundation
import Synchronization

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure a target through the engine: sequential and random I/O.",
        discussion: """
            Runs each test for --seconds (or until --size bytes are done) and prints MB/s,
            IOPS, latency percentiles and CPU seconds per GB of data. Tests: seqread,
            seqwrite, randread. Write tests overwrite the target's data and refuse to run
            without --write.

            Examples:
              aoefs bench --iface eth1 --target 10.3
              aoefs bench --iface eth1 --target 10.3 --test seqwrite --bs 1M --qd 8 --write
            """)

    @OptionGroup var network: NetworkOptions

    @Option(help: ArgumentHelp("The target, as SHELF.SLOT or eSHELF.SLOT.", valueName: "10.3"))
    var target: String

    @Option(help: "Comma-separated tests: seqread, seqwrite, randread.")
    var test: String = "seqread,randread"

    @Option(help: "Request size for sequential tests (e.g. 1M).")
    var bs: String = "1M"

    @Option(help: "Requests in flight for sequential tests.")
    var qd: Int = 4

    @Option(name: .customLong("rand-bs"), help: "Request size for random tests.")
    var randBS: String = "4K"

    @Option(name: .customLong("rand-qd"), help: "Requests in flight for random tests.")
    var randQD: Int = 32

    @Option(help: "Bytes of the target to use, from offset 0 (default: 1G or the whole target if smaller).")
    var size: String?

    @Option(help: "Seconds per test.")
    var seconds: Double = 5

    @Option(
        help: ArgumentHelp(
            "Stop each test after N requests (a fixed amount of work, for instruction counts: Benchmarks/cost.sh).",
            valueName: "N"))
    var count: Int?

    @Flag(help: "Allow write tests (they destroy the target's data in the range used).")
    var write = false

    func validate() throws {
        guard seconds.isFinite, seconds > 0, seconds <= 86_400 else {
            throw ValidationError("--seconds \(seconds): expected 0 to 86400 seconds")
        }
    }

    func run() throws {
        guard let address = TargetAddress(parsing: target) else {
            throw ValidationError("--target must look like 10.3 or e10.3")
        }
        let tests = test.split(separator: ",").map(String.init)
        for t in tests where !["seqread", "seqwrite", "randread"].contains(t) {
            throw ValidationError("unknown test \(t) (seqread, seqwrite, randread)")
        }
        if tests.contains("seqwrite") && !write {
            throw CLIError("refusing to run seqwrite on \(address) without --write: it overwrites the target's data")
        }
        guard let bsBytes = parseSize(bs), bsBytes >= 512, bsBytes % 512 == 0,
            let randBytes = parseSize(randBS), randBytes >= 512, randBytes % 512 == 0
        else { throw ValidationError("--bs and --rand-bs must be multiples of 512 (e.g. 4K, 1M)") }

        let engine = try network.startEngine()
        defer { engine.shutdown() }
        let ready = engine.wait(timeout: .seconds(5)) { ts in
            ts.contains { (t: TargetSnapshot) in t.address == address && t.state == .up && t.isSettled }
        }
        guard ready else {
            throw CLIError("\(address) did not answer on \(network.interfaces.joined(separator: ", "))")
        }
        let info = engine.targets().first { $0.address == address }!
        let capacity = info.identity!.capacity
        var span = size.flatMap(parseSize) ?? min(capacity, 1 << 30)
        span = min(span, capacity) / 4096 * 4096
        print(
            "\(address): \(gigabytes(capacity)), payload \(info.payload), bufcnt \(info.config?.bufferCount ?? 0), "
                + "span \(span >> 20) MiB")
        var before = info
        for t in tests {
            let random = t == "randread"
            let r = BenchRun.run(
                engine: engine, target: address, write: t == "seqwrite", random: random,
                blockSize: Int(random ? randBytes : bsBytes), depth: random ? randQD : qd,
                span: span, seconds: seconds, count: count)
            print(r.line(name: t))
            let after = engine.targets().first { $0.address == address } ?? before
            print(Self.frameLine(before: before, after: after))
            before = after
        }
    }
}

extension Bench {
    /// What the frames did during one test: retransmits as a share of frames sent, the spurious
    /// timeouts among them, loss events, and where the windows ended.
    static func frameLine(before: TargetSnapshot, after: TargetSnapshot) -> String {
        let a = after.counters, b = before.counters
        let sent = a.atasnd - b.atasnd, retries = a.retries - b.retries
        let share = sent == 0 ? 0 : Double(retries) * 100 / Double(sent)
        let windows = after.paths.map { p in "\(p.window)" + (p.ceiling.map { "<\($0)" } ?? "") }
        return "  frames sent=\(sent) retransmitted=\(retries) (\(String(format: "%.2f", share)) %) "
            + "spurious=\(a.spurious - b.spurious) loss_events=\(a.lossEvents - b.lossEvents) "
            + "window=\(windows.joined(separator: ",")) rto_us=\(after.paths.map { String($0.rto.microseconds) }.joined(separator: ","))"
    }
}

/// One benchmark: keeps `depth` requests in flight, each completion submitting the next.
final class BenchRun: Sendable {
    struct Result {
        var bytes: UInt64
        var ops: Int
        var elapsed: Double
        var latenciesMicros: [Double]
        var cpuSeconds: Double
        var errors: Int
        var blockSize: Int
        var depth: Int

        func line(name: String) -> String {
            let mbps = Double(bytes) / elapsed / 1e6
            let sorted = latenciesMicros.sorted()
            func pct(_ p: Double) -> Int {
                sorted.isEmpty ? 0 : Int(sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))])
            }
            let cpuPerGB = bytes > 0 ? cpuSeconds / (Double(bytes) / 1e9) : 0
            return String(
                format: "%-9@ bs=%d qd=%d MB/s=%.1f IOPS=%.0f lat_us p50=%d p99=%d max=%d cpu_s/GB=%.2f errors=%d",
                name as NSString, blockSize, depth, mbps, Double(ops) / elapsed, pct(0.5), pct(0.99),
                Int(sorted.last ?? 0), cpuPerGB, errors)
        }
    }

    struct State {
        var issued = 0
        var completed = 0
        var bytes: UInt64 = 0
        var latencies: [Double] = []
        var errors = 0
        var stop = false
        /// Not SystemRandomNumberGenerator: that is a getrandom(2) call per request, which the
        /// C yardstick's xorshift does not pay either.
        var rng = SplitMix64(seed: 0x9E37_79B9_7F4A_7C15)
    }

    /// SplitMix64 (Steele, Lea, Flood 2014): a cheap, well-mixed generator for random offsets.
    struct SplitMix64: RandomNumberGenerator {
        var state: UInt64
        init(seed: UInt64) { state = seed }
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    let state = Locked(State())
    /// Slots that have stopped issuing; the run ends when all have.
    let finished = Locked(0)
    let engine: Engine
    let target: TargetAddress
    let write: Bool
    let random: Bool
    let blockSize: Int
    let span: UInt64
    let deadline: ContinuousClock.Instant
    let count: Int
    let buffers: [IOBuffer]

    init(
        engine: Engine, target: TargetAddress, write: Bool, random: Bool, blockSize: Int, depth: Int, span: UInt64,
        seconds: Double, count: Int?
    ) {
        self.count = count ?? .max
        self.engine = engine
        self.target = target
        self.write = write
        self.random = random
        self.blockSize = blockSize
        self.span = span
        deadline = .now + .milliseconds(Int64(seconds * 1000))
        buffers = (0..<depth).map { _ in IOBuffer(count: blockSize) }
    }

    static func run(
        engine: Engine, target: TargetAddress, write: Bool, random: Bool, blockSize: Int, depth: Int,
        span: UInt64, seconds: Double, count: Int? = nil
    ) -> Result {
        let b = BenchRun(
            engine: engine, target: target, write: write, random: random, blockSize: blockSize,
            depth: depth, span: span, seconds: seconds, count: count)
        let cpu0 = cpuSeconds()
        let t0 = ContinuousClock.now
        var outbox = Outbox()
        for slot in 0..<depth { b.issue(slot, &outbox) }
        engine.flush(&outbox)
        b.finished.wait(timeout: nil) { $0 == depth }
        let elapsed = ContinuousClock.now - t0
        let s = b.state.withLock { $0 }
        return Result(
            bytes: s.bytes, ops: s.completed, elapsed: Double(elapsed.nanoseconds) / 1e9,
            latenciesMicros: s.latencies, cpuSeconds: cpuSeconds() - cpu0, errors: s.errors,
            blockSize: blockSize, depth: depth)
    }

    /// Issues the next request of `slot` into `outbox` (the pass of the completion that freed
    /// the slot, or the start's).
    func issue(_ slot: Int, _ outbox: inout Outbox) {
        let offset: UInt64? = state.withLock { s in
            if s.stop || s.issued >= count || ContinuousClock.now >= deadline { s.stop = true; return nil }
            let blocks = max(span / UInt64(blockSize), 1)
            let n = random ? UInt64.random(in: 0..<blocks, using: &s.rng) : UInt64(s.issued) % blocks
            s.issued += 1
            return n * UInt64(blockSize)
        }
        guard let offset else {
            finished.withLock { $0 += 1 }
            finished.broadcast()
            return
        }
        let start = ContinuousClock.now
        let finish: IOCompletion = { [self] r, outbox in
            let micros = Double((ContinuousClock.now - start).nanoseconds) / 1000
            state.withLock { s in
                s.completed += 1
                s.latencies.append(micros)
                if case .success = r { s.bytes += UInt64(blockSize) } else { s.errors += 1; s.stop = true }
            }
            issue(slot, &outbox)
        }
        if write {
            engine.write(
                target, offset: offset, count: blockSize, from: buffers[slot], outbox: &outbox, completion: finish)
        } else {
            engine.read(
                target, offset: offset, count: blockSize, into: buffers[slot], outbox: &outbox, completion: finish)
        }
    }
}

/// User plus system CPU time of this process.
func cpuSeconds() -> Double {
    var u = rusage()
    getrusage(RUSAGE_SELF.rawValue, &u)
    return Double(u.ru_utime.tv_sec + u.ru_stime.tv_sec) + Double(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6
}

import AoEDoctor
import ArgumentParser
import Foundation

struct Metrics: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the mount's metrics in the Prometheus text format.",
        discussion: """
            Prints DIR/sys/metrics: per target and per path the counters of `stats`,
            request latency histograms (aoefs_request_duration_seconds), bytes, requests
            in flight, windows, RTT and state, for node_exporter's textfile collector or
            any Prometheus scraper.

            Examples:
              aoefs metrics
              aoefs metrics --mount /mnt/aoe > /var/lib/node_exporter/aoefs.prom.$$ &&
                mv /var/lib/node_exporter/aoefs.prom.$$ /var/lib/node_exporter/aoefs.prom
            """)

    @OptionGroup var mount: MountOption

    func run() throws {
        try requireAoEFSMount(mount.mountpoint)
        guard let text = readWholeFile(mount.mountpoint + "/sys/metrics") else {
            throw CLIError("\(mount.mountpoint)/sys/metrics: cannot be read")
        }
        print(text, terminator: "")
    }
}

/// One target's request counters at one instant, from the mount's `sys/facts.json` (typed:
/// `IOFacts`, the engine's `IOAccount`).
struct IOSample {
    var io: IOFacts
    var at: Double
}

/// iostat -x's figures for one target over one interval.
struct IOStatRow: Codable, Equatable {
    var device: String
    var r_s: Double, w_s: Double, rMB_s: Double, wMB_s: Double
    var r_await: Double, w_await: Double, aqu_sz: Double, util: Double

    /// Figures between two samples, as iostat computes them from /proc/diskstats.
    init(device: String, from a: IOSample, to b: IOSample) {
        self.device = device
        let dt = max(b.at - a.at, 1e-6)
        // Differences of counters that only grow (a restarted daemon starts again from 0: none).
        func d(_ x: UInt64, _ y: UInt64) -> Double { y >= x ? Double(y - x) : 0 }
        let (p, q) = (a.io, b.io)
        let rd = d(p.read.ios, q.read.ios), wr = d(p.write.ios, q.write.ios)
        r_s = rd / dt
        w_s = wr / dt
        rMB_s = d(p.read.bytes, q.read.bytes) / dt / 1e6
        wMB_s = d(p.write.bytes, q.write.bytes) / dt / 1e6
        r_await = rd > 0 ? d(p.read.nanos, q.read.nanos) / rd / 1e6 : 0
        w_await = wr > 0 ? d(p.write.nanos, q.write.nanos) / wr / 1e6 : 0
        let waited =
            d(p.read.nanos, q.read.nanos) + d(p.write.nanos, q.write.nanos)
            + d(p.flush.nanos, q.flush.nanos)
        aqu_sz = waited / 1e9 / dt
        util = min(100, d(p.busyNanoseconds, q.busyNanoseconds) / 1e9 / dt * 100)
    }
}

struct IOStat: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "iostat",
        abstract: "Print per-target rates, latency and %util, as iostat -x does.",
        discussion: """
            Samples each target's counters (DIR/sys/facts.json) every INTERVAL seconds and
            prints, per target, r/s w/s rMB/s wMB/s r_await w_await (ms) aqu-sz and %util,
            computed as iostat -x computes them from /proc/diskstats. Without INTERVAL it
            prints the figures since the mount started. COUNT reports and stops.

            Examples:
              aoefs iostat 1            # every second, until Ctrl-C
              aoefs iostat 2 5 --json   # five reports, one JSON array per line
            """)

    @Argument(help: "Seconds between reports (default: one report since the mount started).")
    var interval: Double?

    @Argument(help: "Reports to print, then stop (default: until interrupted).")
    var count: Int?

    @Flag(help: "Print each report as one JSON array (one object per target).")
    var json = false

    @OptionGroup var mount: MountOption

    func validate() throws {
        if let i = interval, !(i > 0) { throw ValidationError("INTERVAL must be a positive number of seconds") }
        if let c = count, c < 1 { throw ValidationError("COUNT must be at least 1") }
    }

    /// Every target's counters now (disabled ones too: the engine knows them).
    func sample() throws -> [String: IOSample] {
        let now = Date().timeIntervalSince1970
        let facts = try readFacts(mount.mountpoint)
        return Dictionary(facts.targets.map { ($0.target, IOSample(io: $0.io, at: now)) }) { a, _ in a }
    }

    func report(_ a: [String: IOSample], _ b: [String: IOSample]) {
        let rows = b.keys.sorted().compactMap { name -> IOStatRow? in
            guard let from = a[name], let to = b[name] else { return nil }
            return IOStatRow(device: name, from: from, to: to)
        }
        if json {
            let data = (try? JSONEncoder().encode(rows)) ?? Data("[]".utf8)
            print(String(decoding: data, as: UTF8.self))
            return
        }
        print("Device            r/s     w/s     rMB/s     wMB/s   r_await w_await  aqu-sz  %util")
        for r in rows {
            print(
                r.device.padding(toLength: 12, withPad: " ", startingAt: 0)
                    + String(
                        format: " %8.2f %7.2f %9.2f %9.2f %9.2f %7.2f %7.2f %6.2f",
                        r.r_s, r.w_s, r.rMB_s, r.wMB_s, r.r_await, r.w_await, r.aqu_sz, r.util))
        }
        print("")
    }

    func run() throws {
        try requireAoEFSMount(mount.mountpoint)
        var last = try sample()
        guard let interval else {
            // Since the mount started: from zero counters over the mount's lifetime.
            let start =
                (try? FileManager.default.attributesOfItem(atPath: mount.mountpoint)[.modificationDate] as? Date)?
                .timeIntervalSince1970 ?? (last.values.first?.at ?? 0) - 1
            report(last.mapValues { _ in IOSample(io: IOFacts(), at: start) }, last)
            return
        }
        var done = 0
        while count.map({ done < $0 }) ?? true {
            Thread.sleep(forTimeInterval: interval)
            let now = try sample()
            report(last, now)
            last = now
            done += 1
        }
    }
}

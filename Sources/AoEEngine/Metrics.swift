import AoECore
import AoEProtocol
import Prometheus

/// The engine's metrics in the Prometheus text exposition format (`sys/metrics`, `aoefs
/// metrics`), written by swift-prometheus.
///
/// Two kinds of figures, kept apart so the per-frame path costs nothing more:
/// - **Request latency histograms** (`aoefs_request_duration_seconds`), recorded once per block
///   request when the core reports its end (`EngineAction.timing`), into swift-prometheus
///   `DurationHistogram`s that live as long as the engine.
/// - **Everything else** — counters, windows, RTTs, states — is what the core already keeps. It
///   is read at scrape time from the target snapshots into a registry made for that scrape.
public final class EngineMetrics: Sendable {
    private let histograms = PrometheusCollectorRegistry()

    /// Request latency buckets: 100 µs (a 4 KiB read on a quiet LAN) to 10 s (a retried frame
    /// near the RTO ceiling).
    public static let buckets: [Duration] = [
        .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .microseconds(2500),
        .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100),
        .milliseconds(250), .milliseconds(500), .seconds(1), .microseconds(2_500_000), .seconds(5), .seconds(10),
    ]

    /// A function, not a stored constant: the descriptor type is not Sendable.
    static func duration() -> MetricNameDescriptor {
        MetricNameDescriptor(
            namespace: "aoefs", metricName: "request_duration", unitName: "seconds",
            helpText: "Block requests from submission to completion, by target and op (read, write, flush).")
    }

    public init() {}

    /// The histogram of `target`'s `kind` requests (made on first use; the registry returns the
    /// same one for the same labels).
    func histogram(_ target: TargetAddress, _ kind: IOKind) -> DurationHistogram {
        histograms.makeDurationHistogram(
            descriptor: Self.duration(),
            labels: [("target", target.description), ("op", kind.metricName)],
            buckets: Self.buckets)
    }

    /// One interface the engine uses.
    public struct InterfaceFigures: Sendable, Hashable, Codable {
        public var name: String
        public var mtu: Int
        /// The receive buffer its socket got (0: not known).
        public var receiveBuffer: Int

        public init(name: String, mtu: Int, receiveBuffer: Int) {
            self.name = name
            self.mtu = mtu
            self.receiveBuffer = receiveBuffer
        }
    }

    /// The mount's daemon under its supervisor (issue 30).
    public struct DaemonFigures: Sendable {
        /// Which daemon this is under the mount: 1 for the first.
        public var incarnation: Int
        /// Daemons that died (any signal, any trap) and were replaced under the live mount.
        public var restarts: Int
        /// Daemons replaced on request (`aoefs restart`, SIGHUP), not counted in `restarts`.
        public var handovers: Int

        public init(incarnation: Int, restarts: Int, handovers: Int) {
            self.incarnation = incarnation
            self.restarts = restarts
            self.handovers = handovers
        }
    }

    /// The exposition of `targets` and `interfaces` (counters and gauges, read now) and the
    /// histograms.
    public func exposition(
        _ targets: [TargetSnapshot], interfaces: [InterfaceFigures] = [],
        daemon: DaemonFigures? = nil
    ) -> String {
        let r = PrometheusCollectorRegistry()
        if let d = daemon {
            Self.gauge(
                r, "daemon_incarnation", "", "Which daemon serves the mount (1: the first; more after restarts).", [],
                Double(d.incarnation))
            Self.counter(
                r, "daemon_restarts", "Daemons that died and were replaced under the live mount.", [],
                UInt64(max(0, d.restarts)))
            Self.counter(
                r, "daemon_handovers", "Daemons replaced on request (aoefs restart) under the live mount.", [],
                UInt64(max(0, d.handovers)))
        }
        for i in interfaces {
            let l = [("interface", i.name)]
            Self.gauge(r, "interface_mtu", "bytes", "MTU of an interface aoefs uses.", l, Double(i.mtu))
            Self.gauge(
                r, "interface_receive_buffer", "bytes", "Receive buffer of aoefs's socket on it.", l,
                Double(i.receiveBuffer))
        }
        for t in targets { Self.emit(t, into: r) }
        return r.emitToString() + histograms.emitToString()
    }

    private static func counter(
        _ r: PrometheusCollectorRegistry, _ name: String, _ help: String,
        _ labels: [(String, String)], _ value: UInt64
    ) {
        let d = MetricNameDescriptor(namespace: "aoefs", metricName: name, unitName: "total", helpText: help)
        r.makeCounter(descriptor: d, labels: labels).increment(by: Int64(clamping: value))
    }

    private static func gauge(
        _ r: PrometheusCollectorRegistry, _ name: String, _ unit: String, _ help: String,
        _ labels: [(String, String)], _ value: Double
    ) {
        let d = MetricNameDescriptor(namespace: "aoefs", metricName: name, unitName: unit, helpText: help)
        r.makeGauge(descriptor: d, labels: labels).set(to: value)
    }

    private static func emit(_ t: TargetSnapshot, into r: PrometheusCollectorRegistry) {
        let target = [("target", t.address.description)]
        gauge(
            r, "target_up", "", "1 while the target is up (answering and identified).", target, t.state == .up ? 1 : 0)
        gauge(
            r, "target_info", "", "The target's IDENTIFY strings and state, as labels.",
            target + [
                ("model", t.identity?.model ?? ""), ("serial", t.identity?.serial ?? ""),
                ("firmware", t.identity?.firmware ?? ""), ("state", t.state.rawValue),
            ], 1)
        gauge(r, "capacity", "bytes", "The target's size.", target, Double(t.identity?.capacity ?? 0))
        gauge(
            r, "buffer_count", "", "Frames the target says it can queue (Query Config).", target,
            Double(t.config?.bufferCount ?? 0))
        gauge(
            r, "max_payload", "bytes", "Data bytes per frame the target offers (Query Config).", target,
            Double(Int(t.config?.sectorsPerCommand ?? 0) * 512))
        gauge(
            r, "write_cache", "", "1 when IDENTIFY says the target's write cache is on.", target,
            t.identity?.writeCacheEnabled == true ? 1 : 0)
        gauge(
            r, "flush_info", "", "How fsync reaches the target, as the mode label (ext, e7, none).",
            target + [("mode", t.flushMode.rawValue)], 1)
        let k = t.counters
        let counters: [(String, String, UInt64)] = [
            ("frames_sent", "ATA frames sent, retransmissions included (atasnd).", k.atasnd),
            ("frames_received", "ATA answers accepted (atarcv).", k.atarcv),
            ("retransmits", "Frames sent again after a timeout (retries).", k.retries),
            ("timeouts", "Frames that timed out (errtimeout).", k.errtimeout),
            ("spurious_timeouts", "Timeouts proved spurious by a late answer.", k.spurious),
            ("loss_events", "Bursts of loss that cut a path's window.", k.lossEvents),
            ("late_answers", "Answers to frames already answered or resent (softerr).", k.softerr),
            ("aoe_errors", "AoE error answers (erraoe).", k.erraoe),
            ("ata_errors", "ATA error statuses (errata).", k.errata),
            ("truncated_answers", "Answers shorter than the data they promised (errtrunc).", k.errtrunc),
            ("stray_answers", "Answers from the wrong MAC, link or shelf.slot, dropped (errwmsg).", k.errwmsg),
            ("probes", "Payload, identity and liveness probes sent.", k.probes),
            ("lost_jumbo", "Large frames lost while their size was trusted.", k.lostJumbo),
            ("paths_ejected", "Paths removed for staying silent while another answered.", k.ejected),
            ("candidates_dropped", "Announcers that never answered IDENTIFY.", k.candidatesDropped),
            ("duplicate_paths", "Paths refused as another disk answering as this target.", k.duplicates),
            ("flush_commands", "FLUSH CACHE commands the target answered.", k.flushes),
            ("local_flushes", "fsyncs answered without a FLUSH (a target without a write cache).", k.localFlushes),
            (
                "read_answers_placed", "READ answers received where their data belongs (receive placement).",
                k.readsPlaced
            ),
            (
                "read_answers_copied", "READ answers received into the link's buffer and copied to their place.",
                k.readsCopied
            ),
            ("discards", "Discards (fallocate punching a hole or zeroing) completed with TRIM.", k.discards),
            ("trimmed_sectors", "Sectors trimmed (DATA SET MANAGEMENT).", k.sectorsTrimmed),
        ]
        for (name, help, v) in counters { counter(r, name, help, target, v) }
        for (op, a) in [("read", t.io.read), ("write", t.io.write), ("flush", t.io.flush), ("discard", t.io.discard)] {
            let labels = target + [("op", op)]
            counter(r, "requests", "Block requests completed, by op.", labels, a.ios)
            counter(r, "request_errors", "Block requests that failed, by op.", labels, a.errors)
            if op != "flush" { counter(r, "bytes", "Bytes of block requests completed, by op.", labels, a.bytes) }
        }
        gauge(
            r, "requests_in_flight", "", "Block requests submitted and not yet completed.", target,
            Double(t.io.inFlight))
        let busy = MetricNameDescriptor(
            namespace: "aoefs", metricName: "busy", unitName: "seconds_total",
            helpText: "Time with at least one request in flight (iostat's %util).")
        r.makeCounter(descriptor: busy, labels: target).increment(by: Double(t.busyNanoseconds) / 1e9)
        for p in t.paths {
            let labels = target + [("interface", p.interface), ("mac", p.mac.description)]
            gauge(r, "path_up", "", "1 while the path carries I/O (ok or probing).", labels, p.state.isHealthy ? 1 : 0)
            gauge(r, "path_info", "", "The path's state, as a label.", labels + [("state", p.state.rawValue)], 1)
            gauge(r, "path_rtt", "seconds", "Smoothed round-trip time.", labels, Double(p.rtt?.nanoseconds ?? 0) / 1e9)
            gauge(
                r, "path_rtt_deviation", "seconds", "Mean deviation of the round-trip time.", labels,
                Double(p.rttDeviation.nanoseconds) / 1e9)
            gauge(r, "path_rto", "seconds", "Retransmission timeout.", labels, Double(p.rto.nanoseconds) / 1e9)
            gauge(r, "path_window", "", "Frames the path may have in flight.", labels, Double(p.window))
            gauge(
                r, "path_window_ceiling", "", "Smallest window that lost frames (0: none seen).", labels,
                Double(p.lowestCeiling ?? 0))
            gauge(r, "path_outstanding", "", "Frames in flight.", labels, Double(p.outstanding))
            gauge(r, "path_payload", "bytes", "Data bytes per frame negotiated.", labels, Double(p.payload))
            gauge(
                r, "path_payload_settled", "",
                "1 once the path's payload search is over (also while it proves one disk).",
                labels, p.searchSettled ? 1 : 0)
            gauge(r, "path_mtu", "bytes", "The local interface's MTU.", labels, Double(p.mtu))
            if let b = p.burst {
                gauge(
                    r, "path_burst_sent", "", "Frames of the last burst (aoefs doctor) sent at once.", labels,
                    Double(b.sent))
                gauge(
                    r, "path_burst_lost", "", "Frames of the last burst that went unanswered.", labels, Double(b.lost))
            }
            counter(r, "path_frames_sent", "Frames sent on the path.", labels, p.sent)
            counter(r, "path_frames_lost", "Frames that timed out on the path.", labels, p.lost)
        }
    }
}

extension IOKind {
    /// The `op` label.
    var metricName: String {
        switch self {
        case .read: "read"
        case .write: "write"
        case .flush: "flush"
        case .trim: "discard"
        }
    }
}

/// The histograms by target and kind, looked up without the registry's lock or a label string
/// per request; kept in the engine's state, so recording takes only the histogram's own lock.
struct LatencyHistograms: Sendable {
    private struct Key: Hashable {
        var target: TargetAddress
        var kind: IOKind
    }

    private let metrics: EngineMetrics
    private var table: [Key: DurationHistogram] = [:]
    /// The last one used: a run of requests is usually of one target and kind (no hashing).
    private var last: (key: Key, histogram: DurationHistogram)?

    init(_ metrics: EngineMetrics) { self.metrics = metrics }

    mutating func record(_ target: TargetAddress, _ kind: IOKind, nanoseconds: UInt64) {
        let key = Key(target: target, kind: kind)
        let h: DurationHistogram
        if let last, last.key == key {
            h = last.histogram
        } else if let found = table[key] {
            h = found
        } else {
            h = metrics.histogram(target, kind)
            table[key] = h
        }
        last = (key, h)
        h.record(.nanoseconds(Int64(clamping: nanoseconds)))
    }
}

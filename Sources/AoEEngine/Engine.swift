import AoECore
import AoELinux
import AoEProtocol
import Foundation
import Synchronization

/// The initiator: runs `EngineCore` over real links, one event loop per link (a thread each,
/// not Swift's cooperative pool; the first loop also runs the timers), and offers the block API.
///
/// Every state change happens under one lock, in a pass that collects what follows — frames,
/// completions, log lines — in an `Outbox`; the pass flushes it after the lock is released
/// (`flush`). A loop's pass is: frames and other descriptors ready → core → outbox → links; work
/// started elsewhere (a CLI command, a control write) makes an outbox of its own and flushes it.
public final class Engine: Sendable {
    struct State {
        var core: EngineCore
        var callbacks = RequestTable<IOCompletion>()
        var locks: [TargetAddress: RangeLocks<RangeGrant>] = [:]
        var nextLock: UInt64 = 1
        var errors = ErrorLog()
        var running = false
        var stopped = false
        /// When the timer loop means to wake; a frame deadline earlier than this wakes it sooner.
        var timerWake: Instant = .zero
        /// Threads blocked in `wait(timeout:until:)`: while there are any, every change wakes them.
        var waiters = 0
        /// The request latency histograms, by target and kind (`EngineMetrics`).
        var latency: LatencyHistograms
        /// Completions held back while a receive call may still write into the request's
        /// buffer (receive placement: `EngineCore.placementHolds`); the loop that releases
        /// the placement takes them (`LoopPlacer`).
        var heldCompletions = RequestTable<(IOCompletion, Result<Void, AoEIOError>)>()

        /// Moves the core's actions out of `outbox.actions` into the outbox: frames per link, the
        /// completions of finished requests (their callbacks taken out of the table, here, under
        /// the lock), log lines (kept in the err ring here). Returns whether a thread waiting on
        /// the state must look again.
        mutating func collect(_ outbox: inout Outbox) -> Bool {
            for a in outbox.actions {
                switch a {
                case .send(let id, let frame): outbox.append(frame, to: id)
                case .complete(let id, let r):
                    guard let c = callbacks.removeValue(forKey: id) else { break }
                    if core.placementHolds(id) {
                        heldCompletions[id] = (c, r)
                    } else {
                        outbox.completions.append((c, r))
                    }
                case .log(let line):
                    errors.append(line)
                    outbox.logs.append(line)
                case .targetsChanged: outbox.targetsChanged = true
                case .timing(let target, let kind, let nanoseconds, _):
                    latency.record(target, kind, nanoseconds: nanoseconds)
                }
            }
            outbox.actions.removeAll(keepingCapacity: true)
            if let d = core.takeEarliestNewDeadline(), d < timerWake {
                timerWake = d
                if !outbox.ticksTimers { outbox.wakeTimer = true }
            }
            return waiters > 0
        }
    }

    /// A range lock's grant: runs the locked request with the outbox of the pass that granted it.
    typealias RangeGrant = @Sendable (inout Outbox) -> Void

    let state: Locked<State>
    let links: Locked<[LinkID: any Link]>
    let clock: any EngineClock
    /// The Prometheus metrics (`metricsExposition()`).
    public let metrics = EngineMetrics()
    private let onLog: (@Sendable (String) -> Void)?
    let observers = Locked<[@Sendable (String) -> Void]>([])
    /// Called (outside the lock) after a change of the target table: one appeared, went up or
    /// down, was removed, disabled or enabled.
    let targetObservers = Locked<[@Sendable () -> Void]>([])
    /// One per link (and one without a link when there is none, for the timers); the first runs
    /// the timers and serves an attached source.
    let loops = Locked<[EventLoop]>([])
    let stopFlag = Atomic<Bool>(false)
    /// Loops whose threads have ended (shutdown waits for all of them).
    private let finished = Locked(0)
    /// Follows the interfaces (rtnetlink): up, down, deleted, re-created, MTU (`Engine+Links`).
    let monitor = Locked<LinkMonitor?>(nil)
    /// Links whose sends fail, each logged once until a send succeeds again; `failingCount`
    /// keeps the check off the hot path while none fails.
    let failingSends = Locked<Set<LinkID>>([])
    let failingCount = Atomic<Int>(0)

    /// - Parameters:
    ///   - links: the interfaces to use.
    ///   - configuration: deadsecs, maxout, maxdata and timers.
    ///   - onLog: called (outside the lock) with every diagnostic line, e.g. to print with `-v`.
    public init(
        links: [any Link], configuration: EngineConfiguration = EngineConfiguration(),
        clock: any EngineClock = SystemClock(), onLog: (@Sendable (String) -> Void)? = nil
    ) {
        self.clock = clock
        self.onLog = onLog
        var table: [LinkID: any Link] = [:]
        for (i, l) in links.enumerated() {
            table[LinkID(i)] = l
            l.busyPoll = configuration.busyPoll
        }
        self.links = Locked(table)
        // Tags from a random place: a daemon restarted under a live mount must not reuse its
        // predecessor's tags, which the target may still answer (issue 30).
        let core = EngineCore(configuration: configuration, firstTag: UInt32.random(in: 1...0x7FFF_FFFF))
        state = Locked(State(core: core, latency: LatencyHistograms(metrics)))
    }

    /// Starts the loops and broadcasts the first Query Config on every link.
    public func start() {
        let now = clock.now()
        let all = links.withLock { $0 }
        let first = state.withLock { s in
            defer { s.running = true }
            return !s.running
        }
        guard first else { return }
        run { core, out in
            for id in all.keys.sorted() {
                let l = all[id]!
                core.addLink(id, name: l.name, mac: l.macAddress, mtu: l.mtu, now: now, &out)
            }
        }
        var made: [EventLoop] = []
        do {
            let ids = all.keys.sorted()
            for (i, id) in ids.enumerated() {
                made.append(try EventLoop(engine: self, id: id, link: all[id]!, ticksTimers: i == 0))
            }
            if ids.isEmpty { made.append(try EventLoop(engine: self, id: nil, link: nil, ticksTimers: true)) }
        } catch {
            // No eventfd (out of descriptors): nothing can run; say so, requests fail at once.
            note("cannot start the engine's loops: \(error)")
            state.withLock { $0.stopped = true }
            return
        }
        loops.withLock { $0 = made }
        // Virtual time: a move of the clock may bring a deadline; the timer loop looks.
        if clock.isVirtual { clock.onAdvance { [weak self] in self?.timerLoop?.wake.signal() } }
        for loop in made {
            let t = Thread { [self] in
                loop.run()
                finished.withLock { $0 += 1 }
                finished.broadcast()
            }
            t.name = loop.link.map { "aoefs-loop-\($0.name)" } ?? "aoefs-loop"
            t.stackSize = 1 << 20
            t.start()
        }
        followInterfaces()
    }

    /// Stops the loops and fails every waiting request with `.shutdown`.
    public func shutdown() {
        guard !stopFlag.exchange(true, ordering: .relaxed) else { return }
        monitor.withLock { $0 }?.stop()
        let all = loops.withLock { $0 }
        for l in all { l.wake.signal() }
        finished.wait(timeout: .seconds(5)) { $0 >= all.count }
        var outbox = Outbox()
        state.withLock { s in
            s.stopped = true
            for c in s.callbacks.values { outbox.completions.append((c, .failure(.shutdown))) }
            s.callbacks.removeAll()
        }
        flush(&outbox)
    }

    /// The loop that runs the timers and serves an attached source.
    var timerLoop: EventLoop? { loops.withLock { $0.first } }

    // MARK: - Event sources

    /// Serves `source` on the first link's event loop: its passes also watch `source.descriptor`
    /// and call `service` when it is readable, and after a pass that completed requests (the
    /// request a reply released is usually waiting by then). Returns false when the engine has
    /// no loop (not started, or could not start).
    ///
    /// Why: a FUSE request for 4 KiB otherwise wakes a FUSE worker thread, whose submit then
    /// contends with the receive thread for the engine lock; on two cores those wake-ups cost
    /// more than the request itself (Docs/performance.md).
    public func attach(_ source: any EventSource) -> Bool {
        guard let loop = timerLoop else { return false }
        loop.perform { loop, _ in loop.source = source }
        return true
    }

    /// Stops serving the attached source. When it returns, `service` is not running and will not
    /// be called again (the loop has taken the change, or has ended).
    public func detach() {
        timerLoop?.performAndWait { loop, _ in loop.source = nil }
    }

    // MARK: - Passes

    /// Runs `body` on the core under the lock; what it says goes into `outbox`.
    func withCore(_ outbox: inout Outbox, _ body: (inout EngineCore, inout [EngineAction]) -> Void) {
        let wake = state.withLock { s in
            body(&s.core, &outbox.actions)
            return s.collect(&outbox)
        }
        if wake { state.broadcast() }
    }

    /// Runs `body` on the core under the lock, then performs what it says (a pass of its own, for
    /// work started outside the loops: control verbs, link events).
    func run(_ body: (inout EngineCore, inout [EngineAction]) -> Void) {
        var outbox = Outbox()
        withCore(&outbox, body)
        flush(&outbox)
    }

    /// Does what `outbox` holds, outside the lock: each link's frames in one batch, log lines to
    /// observers, then completions (each may add to the outbox: its reply, its next request's
    /// frames — done in turn), then the channels, once. Leaves it empty for the next pass.
    public func flush(_ outbox: inout Outbox) {
        while !outbox.isIdle {
            if !outbox.frames.isEmpty {
                let sends = outbox.frames
                outbox.frames.removeAll(keepingCapacity: true)
                let failures = send(sends)
                if !failures.isEmpty {
                    state.withLock { s in for l in failures { s.errors.append(l) } }
                    outbox.logs += failures
                }
            }
            if !outbox.logs.isEmpty {
                let logs = outbox.logs
                outbox.logs.removeAll(keepingCapacity: true)
                if let onLog { for l in logs { onLog(l) } }
                for o in observers.withLock({ $0 }) { for l in logs { o(l) } }
                if state.withLock({ $0.waiters > 0 }) { state.broadcast() }
            }
            if !outbox.completions.isEmpty {
                swap(&outbox.completions, &outbox.calling)
                outbox.completed += outbox.calling.count
                for i in outbox.calling.indices {
                    let (c, r) = outbox.calling[i]
                    c(r, &outbox)
                }
                outbox.calling.removeAll(keepingCapacity: true)
            }
        }
        if !outbox.channels.isEmpty {
            for c in outbox.channels { c.flushOutbox() }
            outbox.channels.removeAll(keepingCapacity: true)
        }
        if outbox.targetsChanged {
            outbox.targetsChanged = false
            for o in targetObservers.withLock({ $0 }) { o() }
        }
        if outbox.wakeTimer {
            outbox.wakeTimer = false
            timerLoop?.wake.signal()
        }
    }

    /// Sends each link's frames in one batch; returns what failed, as log lines.
    private func send(_ sends: [(LinkID, [OutgoingFrame])]) -> [String] {
        let table = links.withLock { $0 }
        var failures: [String] = []
        for (id, batch) in sends {
            do {
                try table[id]?.send(batch)
                if failingCount.load(ordering: .relaxed) > 0 { sendsWork(on: id) }
            } catch {
                if sendsFail(on: id) {
                    failures.append("\(table[id]?.name ?? "?"): \(error) (said once until sends work again)")
                }
            }
            if let l = table[id], l.takeOversized() > 0 { mtuLowered(id, l) }
        }
        return failures
    }
}

/// Work that shares an event loop with a link's frames: a descriptor to watch, and what to do
/// when it is readable. aoefs's FUSE session is one.
public protocol EventSource: AnyObject, Sendable {
    /// The descriptor whose readability (or closing) means `service` has work.
    var descriptor: Int32 { get }
    /// Handles what is ready without blocking, putting what follows into `outbox` (the loop
    /// flushes it). Returns false once the source has ended; it is then dropped.
    func service(_ outbox: inout Outbox) -> Bool
}

/// The last 100 diagnostic lines, numbered (Linux's /dev/etherd/err keeps 100 messages).
struct ErrorLog: Sendable {
    private var ring: [(UInt64, String)] = []
    private var next: UInt64 = 1
    mutating func append(_ line: String) {
        ring.append((next, line))
        next += 1
        if ring.count > 100 { ring.removeFirst(ring.count - 100) }
    }
    func lines(after: UInt64) -> [(UInt64, String)] { ring.filter { $0.0 > after } }
}

import AoECore
import AoELinux
import AoEProtocol
import Foundation
import Synchronization

/// How a block request ends.
public typealias IOCompletion = @Sendable (Result<Void, AoEIOError>) -> Void

/// The initiator: runs `EngineCore` over real links on dedicated threads (one receive thread per
/// interface and one timer thread, not Swift's cooperative pool), and offers the block API.
///
/// Every state change happens under one lock; frames are sent and completions are called after
/// it is released, on the thread that caused them: a submitter's thread for the first frames of a
/// request, a link's receive thread for responses and completions (no extra thread hop for the
/// FUSE layer), the timer thread for retransmissions.
public final class Engine: Sendable {
    struct State {
        var core: EngineCore
        var callbacks = RequestTable<IOCompletion>()
        var locks: [TargetAddress: RangeLocks] = [:]
        var nextLock: UInt64 = 1
        var errors = ErrorLog()
        var running = false
        var stopped = false
        /// Set by `shutdown`: the threads end.
        var stopping = false
        /// When the timer thread means to wake; an earlier frame deadline wakes it sooner.
        var timerWake: Instant = .zero
        /// Threads blocked in `wait(timeout:until:)`: while there are any, every change wakes them.
        var waiters = 0

        /// After a change of the core: whether a thread waiting on the state must look again
        /// (the timer, for a frame whose deadline is earlier than its wake-up; or a `wait`er).
        mutating func noteChange() -> Bool {
            var wake = waiters > 0
            if let d = core.takeEarliestNewDeadline(), d < timerWake {
                timerWake = d
                wake = true
            }
            return wake
        }
    }

    let state: Locked<State>
    let links: Locked<[LinkID: any Link]>
    let clock: any EngineClock
    private let onLog: (@Sendable (String) -> Void)?
    let observers = Locked<[@Sendable (String) -> Void]>([])
    /// Called (outside the lock) after a change of the target table: one appeared, went up or
    /// down, was removed, disabled or enabled.
    let targetObservers = Locked<[@Sendable () -> Void]>([])
    private let threadCount = Atomic<Int>(0)
    private let stopFlag = Atomic<Bool>(false)
    /// Threads that have ended (shutdown waits for all of them).
    private let finished = Locked(0)
    /// Work served by one link's receive thread besides its frames (the FUSE session), if any.
    private let source = Locked<(link: LinkID, source: any EventSource)?>(nil)
    /// While the receive thread runs the source, the frames its requests send are collected here
    /// and sent in one batch per link afterwards: one system call, and one wake-up of the target,
    /// for all the requests one `service()` took instead of one each.
    private let deferred = Locked<(thread: pthread_t?, frames: [(LinkID, [OutgoingFrame])])>((nil, []))
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
    public init(links: [any Link], configuration: EngineConfiguration = EngineConfiguration(),
                clock: any EngineClock = SystemClock(), onLog: (@Sendable (String) -> Void)? = nil) {
        self.clock = clock
        self.onLog = onLog
        var table: [LinkID: any Link] = [:]
        for (i, l) in links.enumerated() {
            table[LinkID(i)] = l
            (l as? PacketLink)?.busyPoll = configuration.busyPoll
        }
        self.links = Locked(table)
        state = Locked(State(core: EngineCore(configuration: configuration)))
    }

    /// Starts the threads and broadcasts the first Query Config on every link.
    public func start() {
        let now = clock.now()
        let all = links.withLock { $0 }
        let actions: [EngineAction] = state.withLock { s in
            guard !s.running else { return [] }
            s.running = true
            var out: [EngineAction] = []
            for id in all.keys.sorted() {
                let l = all[id]!
                s.core.addLink(id, name: l.name, mac: l.macAddress, mtu: l.mtu, now: now, &out)
            }
            return out
        }
        perform(actions)
        var started: [Thread] = []
        for id in all.keys.sorted() {
            let link = all[id]!
            let t = Thread { [self] in receiveLoop(id, link) }
            t.name = "aoefs-rx-\(link.name)"
            t.stackSize = 1 << 20
            started.append(t)
        }
        let timer = Thread { [self] in timerLoop() }
        timer.name = "aoefs-timer"
        started.append(timer)
        threadCount.store(started.count, ordering: .relaxed)
        for t in started { t.start() }
        followInterfaces()
    }

    /// Stops the threads and fails every waiting request with `.shutdown`.
    public func shutdown() {
        guard !stopFlag.exchange(true, ordering: .relaxed) else { return }
        monitor.withLock { $0 }?.stop()
        state.withLock { $0.stopping = true }
        state.broadcast()
        let n = threadCount.load(ordering: .relaxed)
        // A receive thread ends within its 50 ms wait; the timer is woken above.
        finished.wait(timeout: .seconds(5)) { $0 >= n }
        let pending: [IOCompletion] = state.withLock { s in
            s.stopped = true
            let c = s.callbacks.values
            s.callbacks.removeAll()
            return c
        }
        for c in pending { c(.failure(.shutdown)) }
    }

    // MARK: - Threads

    /// Counts a thread's end for `shutdown`.
    private func threadEnded() {
        finished.withLock { $0 += 1 }
        finished.broadcast()
    }

    private func receiveLoop(_ id: LinkID, _ link: any Link) {
        defer { threadEnded() }
        var failing = false
        let watching = link as? any DescriptorWaitingLink
        var batchesSinceService = 0
        // One array for the actions of every batch, emptied and reused: a fresh one per batch
        // regrew several times as a batch's answers appended their sends and completions.
        var actions: [EngineAction] = []
        actions.reserveCapacity(256)
        while !stopFlag.load(ordering: .relaxed) {
            actions.removeAll(keepingCapacity: true)
            let descriptor = watching == nil ? -1 : sourceDescriptor(for: id)
            var sourceReady = false
            do {
                // Each frame is handled in place in the link's receive buffer, under the engine
                // lock. Read data is copied once, from that buffer into the request's memory —
                // or not at all, when the request gathers and the link lends the frame: its
                // reply is then sent from the frames.
                // One clock read per batch: the frames of one recvmmsg arrived together.
                var batchTime: Instant?
                let handleLoan = { (bytes: UnsafeRawBufferPointer, loan: inout FrameLoan?) in
                    let now = batchTime ?? self.clock.now()
                    batchTime = now
                    let wake = self.state.withLock { s in
                        s.core.receive(bytes, on: id, now: now, loan: &loan, &actions)
                        return s.noteChange()
                    }
                    if wake { self.state.broadcast() }
                }
                if let watching {
                    sourceReady = try watching.receive(limit: 64, timeout: .milliseconds(50), alsoWaitingFor: descriptor,
                                                       lending: handleLoan).otherReady
                } else {
                    try link.receive(limit: 64, timeout: .milliseconds(50)) { bytes in
                        var none: FrameLoan?
                        handleLoan(bytes, &none)
                    }
                }
                if failing {
                    failing = false
                    if monitor.withLock({ $0 == nil }) {
                        actions += withCore { core, out in core.linkChanged(id, up: true, now: clock.now(), &out) }
                    }
                }
            } catch {
                // The interface went away or down. Whether its paths carry frames is the link
                // monitor's word (rtnetlink), not this error's: one line, then keep trying (and
                // keep serving the attached source meanwhile). Without a monitor, this error is
                // all there is to go by.
                if !failing {
                    failing = true
                    let followed = monitor.withLock { $0 != nil }
                    actions += withCore { core, out in
                        out.append(.log("\(link.name): \(error)"))
                        if !followed { core.linkChanged(id, up: false, now: clock.now(), &out) }
                    }
                }
                perform(actions)
                // Try the link again in 100 ms; serve the source meanwhile, and end at once on
                // shutdown.
                for _ in 0..<10 {
                    if state.wait(timeout: .milliseconds(10), until: { $0.stopping }) { break }
                    if descriptor >= 0 { serviceSource(on: id) }
                }
                continue
            }
            let completed = actions.contains { if case .complete = $0 { true } else { false } }
            perform(actions)
            // After a completion went out, the request it released is usually already queued:
            // take it now, on this thread, which is awake anyway. Otherwise look when the wait
            // saw the descriptor ready, and every few batches (a busy link never waits), not
            // after every frame: a read that finds nothing is a wasted system call.
            batchesSinceService += 1
            if descriptor >= 0 && (completed || sourceReady || batchesSinceService >= 8) {
                batchesSinceService = 0
                serviceSource(on: id)
            }
        }
    }

    private func sourceDescriptor(for id: LinkID) -> Int32 {
        source.withLock { s in s.map { $0.link == id ? $0.source.descriptor : -1 } ?? -1 }
    }

    /// Lets the attached source handle what is ready; drops it when it has ended.
    private func serviceSource(on id: LinkID) {
        deferred.withLock { $0.thread = pthread_self() }
        source.withLock { s in
            guard let (link, src) = s, link == id else { return }
            if !src.service() { s = nil }
        }
        let frames = deferred.withLock { d in
            d.thread = nil
            defer { d.frames.removeAll(keepingCapacity: true) }
            return d.frames
        }
        if !frames.isEmpty {
            let failures = send(frames)
            if !failures.isEmpty { perform(failures.map { .log($0) }) }
        }
    }

    // MARK: - Event sources

    /// Serves `source` on a link's receive thread: while that thread waits for frames it also
    /// watches `source.descriptor`, and after every batch of frames it calls `service()`. Returns
    /// false (and attaches nothing) when no link can watch a descriptor.
    ///
    /// Why: a FUSE request for 4 KiB otherwise wakes a FUSE worker thread, whose submit then
    /// contends with the receive thread for the engine lock; on two cores those wake-ups cost
    /// more than the request itself (Docs/performance.md).
    public func attach(_ source: any EventSource) -> Bool {
        let all = links.withLock { $0 }
        guard let id = all.keys.sorted().first(where: { all[$0] is any DescriptorWaitingLink }) else { return false }
        self.source.withLock { $0 = (id, source) }
        return true
    }

    /// Stops serving the attached source. When it returns, `service()` is not running and will
    /// not be called again.
    public func detach() {
        source.withLock { $0 = nil }
    }

    /// Ticks the core at its next deadline. It sleeps until then, or until a frame is sent whose
    /// deadline is earlier (`State.noteChange` wakes it), or until shutdown.
    private func timerLoop() {
        defer { threadEnded() }
        while !stopFlag.load(ordering: .relaxed) {
            let now = clock.now()
            let (actions, next): ([EngineAction], Instant) = state.withLock { s in
                var out: [EngineAction] = []
                s.core.tick(now: now, &out)
                _ = s.core.takeEarliestNewDeadline()  // frames sent by this tick are within `next`
                let next = s.core.nextDeadline(now: now)
                s.timerWake = next
                return (out, next)
            }
            perform(actions)
            let wait = next - clock.now()
            if wait > .zero { state.wait(timeout: wait) { s in s.stopping || s.timerWake < next } }
        }
    }

    // MARK: - Actions

    /// Runs `body` on the core under the lock, collecting actions.
    func withCore(_ body: (inout EngineCore, inout [EngineAction]) -> Void) -> [EngineAction] {
        let (out, wake): ([EngineAction], Bool) = state.withLock { s in
            var out: [EngineAction] = []
            body(&s.core, &out)
            return (out, s.noteChange())
        }
        if wake { state.broadcast() }
        return out
    }

    /// Performs actions outside the lock: sends in one batch per link, then completions.
    func perform(_ actions: [EngineAction]) {
        guard !actions.isEmpty else { return }
        // Frames per link: an array searched linearly, not a dictionary (a hash per frame for
        // what is one link, or a few).
        var sends: [(LinkID, [OutgoingFrame])] = []
        var completions: [(RequestID, Result<Void, AoEIOError>)] = []
        var logs: [String] = []
        var targetsChanged = false
        for a in actions {
            switch a {
            case .send(let id, let bytes):
                if let i = sends.firstIndex(where: { $0.0 == id }) { sends[i].1.append(bytes) } else { sends.append((id, [bytes])) }
            case .complete(let id, let r): completions.append((id, r))
            case .log(let line): logs.append(line)
            case .targetsChanged: targetsChanged = true
            }
        }
        if !sends.isEmpty {
            let held = deferred.withLock { d in
                guard let t = d.thread, pthread_equal(t, pthread_self()) != 0 else { return false }
                for (id, batch) in sends {
                    if let i = d.frames.firstIndex(where: { $0.0 == id }) { d.frames[i].1 += batch } else { d.frames.append((id, batch)) }
                }
                return true
            }
            if !held { logs += send(sends) }
        }
        var callbacks: [(IOCompletion, Result<Void, AoEIOError>)] = []
        if !completions.isEmpty || !logs.isEmpty {
            let wake = state.withLock { s in
                for (id, r) in completions { if let c = s.callbacks.removeValue(forKey: id) { callbacks.append((c, r)) } }
                for l in logs { s.errors.append(l) }
                return s.waiters > 0 && !logs.isEmpty
            }
            if wake { state.broadcast() }
        }
        if let onLog { for l in logs { onLog(l) } }
        if !logs.isEmpty { for o in observers.withLock({ $0 }) { for l in logs { o(l) } } }
        for (c, r) in callbacks { c(r) }
        if targetsChanged { for o in targetObservers.withLock({ $0 }) { o() } }
    }

    /// Sends each link's frames in one batch; returns what failed, as log lines.
    @discardableResult
    private func send(_ sends: [(LinkID, [OutgoingFrame])]) -> [String] {
        let table = links.withLock { $0 }
        var failures: [String] = []
        for (id, batch) in sends {
            do {
                try table[id]?.send(batch)
                if failingCount.load(ordering: .relaxed) > 0 { sendsWork(on: id) }
            } catch {
                if sendsFail(on: id) { failures.append("\(table[id]?.name ?? "?"): \(error) (said once until sends work again)") }
            }
            if let l = table[id], l.takeOversized() > 0, let p = l as? PacketLink { mtuLowered(id, p) }
        }
        return failures
    }
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

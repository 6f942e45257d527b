import AoECore
import AoELinux
import Foundation
import Synchronization

/// One link's event loop, on a thread of its own. Each pass takes what is ready — the link's
/// frames, the attached source's requests (a FUSE session: /dev/fuse or its ring), the timers
/// (first loop only), work posted by other threads — runs the core for each, collecting sends,
/// completions and replies in the pass's `Outbox`, and flushes the outbox once, at the end.
///
/// It sleeps in one poll(2) on the link's socket, the source's descriptor and its `wake` eventfd,
/// until the next timer deadline (the first loop) or for as long as nothing comes (the others):
/// no periodic wake-up looks for work. Other threads reach it only through `wake`: `perform`
/// (shutdown, an interface re-created, a source attached), and a frame whose deadline is earlier
/// than the timer loop's sleep (`Outbox.wakeTimer`).
final class EventLoop: @unchecked Sendable {
    // @unchecked: `source` is touched only by the loop's thread (attach and detach go through
    // `perform`); `posted` is locked; the rest is immutable.
    unowned let engine: Engine
    let id: LinkID?
    let link: (any Link)?
    let ticksTimers: Bool
    let wake: WakeUp
    /// The work other threads posted, run at the start of the next pass.
    private let posted = Locked<[@Sendable (EventLoop, inout Outbox) -> Void]>([])
    private let hasPosted = Atomic<Bool>(false)
    /// Set once the loop's thread has ended (work posted after that runs on the poster's thread).
    private let ended = Locked(false)
    /// The attached source (the FUSE session), on the first loop.
    var source: (any EventSource)?
    /// Receive placement on this loop's link (nil when turned off).
    let placer: LoopPlacer?

    /// A link that fails is tried again after this; meanwhile the loop serves its other
    /// descriptors. (With rtnetlink the link's state comes from events; this only retries the
    /// socket.)
    static let retryFailedLink = Duration.milliseconds(100)
    /// Passes in a row that found frames without waiting see no readiness of the other
    /// descriptors (recvmmsg found frames, so poll was not called): every this many, the source
    /// is served anyway, so a busy link cannot starve it.
    static let busyPassesBeforeService = 8

    init(engine: Engine, id: LinkID?, link: (any Link)?, ticksTimers: Bool) throws(ProcessError) {
        self.engine = engine
        self.id = id
        self.link = link
        self.ticksTimers = ticksTimers
        wake = try WakeUp()
        let placing = engine.state.withLock { $0.core.configuration.receivePlacement }
        placer = placing ? id.map { LoopPlacer(engine: engine, id: $0) } : nil
    }

    /// Runs `work` on the loop's thread at its next pass (with that pass's outbox), waking it.
    /// After the loop ended, runs it here.
    func perform(_ work: @escaping @Sendable (EventLoop, inout Outbox) -> Void) {
        let queued = ended.withLock { done in
            guard !done else { return false }
            posted.withLock { $0.append(work) }
            hasPosted.store(true, ordering: .releasing)
            return true
        }
        if queued { return wake.signal() }
        var outbox = Outbox()
        work(self, &outbox)
        engine.flush(&outbox)
    }

    /// As `perform`, and returns once the work has run.
    func performAndWait(_ work: @escaping @Sendable (EventLoop, inout Outbox) -> Void) {
        let done = Locked(false)
        perform { loop, outbox in
            work(loop, &outbox)
            done.withLock { $0 = true }
            done.broadcast()
        }
        done.wait(timeout: nil) { $0 }
    }

    func run() {
        let virtualTime = engine.clock.isVirtual
        var outbox = Outbox(ticksTimers: ticksTimers)
        // Watched beside the socket: [wake-up, source]; the source's slot is -1 while none.
        var watched: [Int32] = [wake.descriptor, -1]
        // The link's socket failed (said once until it works again); resting: not tried this pass.
        var failing = false
        var resting = false
        var passesSinceService = 0
        while !engine.stopFlag.load(ordering: .relaxed) {
            outbox.reset()
            if hasPosted.load(ordering: .acquiring) { runPosted(&outbox) }
            watched[1] = source?.descriptor ?? -1
            var timeout = ticksTimers ? max(.zero, engine.tick(&outbox)) : .seconds(-1)
            // Virtual time (tests): a deadline comes when the clock is moved, which wakes this loop.
            if virtualTime && timeout > .zero { timeout = .seconds(-1) }
            // Work posted or timers fired: do that before sleeping.
            let wait: Duration = outbox.isIdle ? timeout : .zero
            var ready: UInt32 = 0
            var frames = 0
            if let link, let id, !resting {
                do {
                    // One clock read per batch: the frames of one recvmmsg arrived together.
                    var batchTime: Instant?
                    (frames, ready) = try link.receive(
                        limit: 64, timeout: wait, alsoWatching: watched,
                        placer: placer
                    ) { frame in
                        let now = batchTime ?? engine.clock.now()
                        batchTime = now
                        engine.receive(frame, on: id, now: now, &outbox)
                    }
                    if let placer, !placer.released.isEmpty { placer.takeReleased(into: &outbox) }
                    if failing {
                        failing = false
                        engine.receiveWorks(id, &outbox)
                    }
                } catch {
                    if !failing {
                        failing = true
                        engine.receiveFailed(id, link, error, &outbox)
                    }
                    resting = true
                }
            } else {
                // No link, or one that failed: its socket is tried again after a rest.
                let rest = resting ? (wait < .zero ? Self.retryFailedLink : min(wait, Self.retryFailedLink)) : wait
                ready = waitReadable(any: watched, timeout: rest)
                resting = false
            }
            if ready & 1 != 0 { wake.drain() }
            passesSinceService += 1
            if let source, ready & 2 != 0 || (frames > 0 && passesSinceService >= Self.busyPassesBeforeService) {
                passesSinceService = 0
                if !source.service(&outbox) { self.source = nil }
            }
            engine.flush(&outbox)
            // A completion's reply released a caller, whose next request is usually queued by
            // now: take it in this pass, on this thread, which is awake anyway.
            if outbox.completed > 0, let source {
                passesSinceService = 0
                if !source.service(&outbox) { self.source = nil }
                engine.flush(&outbox)
            }
        }
        // Work posted from now on runs on its poster's thread; what was posted runs now.
        ended.withLock { $0 = true }
        outbox.reset()
        runPosted(&outbox)
        engine.flush(&outbox)
        source = nil
    }

    private func runPosted(_ outbox: inout Outbox) {
        hasPosted.store(false, ordering: .relaxed)
        let work = posted.withLock { p in
            defer { p.removeAll() }
            return p
        }
        for w in work { w(self, &outbox) }
    }
}

/// A loop's side of receive placement (issue 32): the predictions its link asks for before each
/// receive system call and their release after it, under the engine's lock; the completions a
/// release lets go (held back while the call might still write into their buffers) wait here
/// for the loop's outbox.
final class LoopPlacer: ReceivePlacer, @unchecked Sendable {
    // @unchecked: used only by its loop's thread (inside that loop's receive call and pass).
    unowned let engine: Engine
    let id: LinkID
    private(set) var released: [(IOCompletion, Result<Void, AoEIOError>)] = []
    private var freed: [RequestID] = []

    init(engine: Engine, id: LinkID) {
        self.engine = engine
        self.id = id
    }

    func predict(into list: inout [Placement], limit: Int, largest: Int) {
        engine.state.withLock { $0.core.predictPlacements(on: id, into: &list, limit: limit, largest: largest) }
    }

    func release() {
        engine.state.withLock { s in
            s.core.releasePlacements(on: id, freed: &freed)
            guard !s.heldCompletions.isEmpty else { return }
            for r in freed {
                if let c = s.heldCompletions.removeValue(forKey: r) { released.append(c) }
            }
        }
        freed.removeAll(keepingCapacity: true)
    }

    func takeReleased(into outbox: inout Outbox) {
        outbox.completions += released
        released.removeAll(keepingCapacity: true)
    }
}

extension Engine {
    /// Handles one received frame, under the lock.
    func receive(_ frame: ReceivedFrame, on id: LinkID, now: Instant, _ outbox: inout Outbox) {
        withCore(&outbox) { core, out in core.receive(frame.bytes, placedData: frame.placedData, on: id, now: now, &out)
        }
    }

    /// Ticks the core if its next deadline has come; returns how long until the next one.
    func tick(_ outbox: inout Outbox) -> Duration {
        let now = clock.now()
        let next: Instant = state.withLock { s in
            guard now >= s.timerWake else { return s.timerWake }
            s.core.tick(now: now, &outbox.actions)
            _ = s.collect(&outbox)  // frames sent by this tick are due after `now`, within `next`
            s.timerWake = s.core.nextDeadline(now: now)
            return s.timerWake
        }
        return next - now
    }

    /// The link's socket failed (the interface went away or down). Whether its paths carry
    /// frames is the link monitor's word (rtnetlink), not this error's: one line, then the loop
    /// tries again after `EventLoop.retryFailedLink`, serving its other descriptors meanwhile.
    /// Without a monitor, this error is all there is to go by.
    func receiveFailed(_ id: LinkID, _ link: any Link, _ error: any Error, _ outbox: inout Outbox) {
        let followed = monitor.withLock { $0 != nil }
        let now = clock.now()
        withCore(&outbox) { core, out in
            out.append(.log("\(link.name): \(error)"))
            if !followed { core.linkChanged(id, up: false, now: now, &out) }
        }
    }

    /// The link's socket is tried again after a failure; without a monitor that means up.
    func receiveWorks(_ id: LinkID, _ outbox: inout Outbox) {
        guard monitor.withLock({ $0 == nil }) else { return }
        let now = clock.now()
        withCore(&outbox) { core, out in core.linkChanged(id, up: true, now: now, &out) }
    }
}

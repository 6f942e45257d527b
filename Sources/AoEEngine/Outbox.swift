import AoECore

/// How a block request ends: called once with its result and the outbox of the pass that ended
/// it, into which it puts what follows (a FUSE reply, the next request's frames).
public typealias IOCompletion = @Sendable (Result<Void, AoEIOError>, inout Outbox) -> Void

/// Something that holds back its output during a pass and hands it over once, when the pass's
/// outbox is flushed: a FUSE ring's commits (one io_uring_enter for every reply of a pass).
public protocol OutboxChannel: AnyObject, Sendable {
    /// Hands over what was held back (a system call, at most).
    func flushOutbox()
}

/// What one pass of a thread that ran the engine's core has to do once it lets go of the lock:
/// frames to send per link, requests' completions to call, log lines to hand to observers,
/// channels to flush. Passed down as a parameter (`inout`) from the pass — an event loop's, or a
/// caller's own for work started outside the loops — through the FUSE layer into the core, and
/// flushed once, by `Engine.flush`, after the lock is released. Nothing here depends on which
/// thread runs the pass: who flushes is whoever owns the outbox.
public struct Outbox {
    /// The core's actions of the current step (a scratch array, reused: the core appends to it).
    var actions: [EngineAction] = []
    /// Frames per link: an array searched linearly, not a dictionary (a hash per frame for what
    /// is one link, or a few).
    var frames: [(LinkID, [OutgoingFrame])] = []
    var completions: [(IOCompletion, Result<Void, AoEIOError>)] = []
    /// The completions being called (swapped with `completions`, so both keep their capacity).
    var calling: [(IOCompletion, Result<Void, AoEIOError>)] = []
    var logs: [String] = []
    var targetsChanged = false
    var channels: [any OutboxChannel] = []
    /// Set by the timer loop's own passes: a deadline they make earlier needs no wake-up.
    let ticksTimers: Bool
    /// A frame sent in this pass is due before the timer loop means to wake: wake it.
    var wakeTimer = false
    /// Requests completed in this pass (the event loop then looks for the requests they released).
    public internal(set) var completed = 0

    /// An empty outbox, for work started outside the engine's loops (then `Engine.flush` it).
    public init() { ticksTimers = false }

    init(ticksTimers: Bool) {
        self.ticksTimers = ticksTimers
        actions.reserveCapacity(256)
    }

    /// `channel` is flushed at the end of this pass (once, however often it is named).
    public mutating func flushLater(_ channel: any OutboxChannel) {
        if !channels.contains(where: { $0 === channel }) { channels.append(channel) }
    }

    mutating func append(_ frame: OutgoingFrame, to link: LinkID) {
        if let i = frames.firstIndex(where: { $0.0 == link }) {
            frames[i].1.append(frame)
        } else {
            frames.append((link, [frame]))
        }
    }

    /// Nothing to send, call or log.
    var isIdle: Bool { frames.isEmpty && completions.isEmpty && logs.isEmpty }

    /// Ready for the next pass (keeping the arrays' capacity).
    public mutating func reset() {
        completed = 0
        wakeTimer = false
        targetsChanged = false
    }
}

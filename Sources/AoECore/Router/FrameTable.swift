import AoEProtocol
import DequeModule

/// A frame sent and not yet answered or expired.
struct FrameInFlight: Sendable {
    var target: TargetAddress
    var path: PathID
    var range: WorkRange
    var sentAt: Instant
    var deadline: Instant
    /// Why it was sent, if it is a probe (probes travel outside the window and complete no
    /// request); nil for a frame of work.
    var probe: ProbeKind?
    var expectedDataBytes: Int { range.kind == .identify ? 512 : range.sectors * 512 }
}

/// A transmission that timed out recently.
struct RetiredFrame: Sendable {
    var target: TargetAddress
    var path: PathID
    var sentAt: Instant
}

/// Every frame in flight, by tag, and the recently expired ones (the router's half of Linux
/// aoecmd.c's frame lists).
///
/// Every transmission gets a fresh tag, so a late answer to a retransmitted frame finds no
/// entry here: it is counted and dropped as a late duplicate, but its tag is still among the
/// retired ones, which makes it an exact RTT sample (no Karn ambiguity) and proof that the
/// timeout was spurious.
struct FrameTable: Sendable {
    /// Frames in flight by tag, direct-mapped (`DirectTable`): tags come from one counter
    /// (fresh for 2³¹ transmissions) and allocation skips a tag whose slot is taken, so an
    /// answer is found by an index and a compare, not a hash.
    private var inFlight = DirectTable<Tag, FrameInFlight>()
    private var retired: [Tag: RetiredFrame] = [:]
    private var retiredOrder: Deque<Tag> = []
    static let retiredLimit = 8192
    private var lastTag: UInt32 = 1

    /// Tags start after `firstTag`. A daemon that took over a mount (issue 30) starts far from
    /// where its predecessor was: the target may still answer the predecessor's frames, and an
    /// answer whose tag a new frame reuses would be taken for that frame's (Linux's aoe driver
    /// mixes jiffies into its tags for the same reason).
    init(firstTag: UInt32 = 1) { lastTag = firstTag & 0x7FFF_FFFF }
    /// The earliest deadline among frames recorded since `takeEarliestNewDeadline()`.
    private var earliestNew: Instant?

    /// A fresh tag. Bit 31 stays clear: it is reserved for tools like aoeping (Linux
    /// aoenet_rcv); 0 is never used.
    mutating func allocate() -> Tag {
        repeat {
            lastTag = (lastTag &+ 1) & 0x7FFF_FFFF
        } while lastTag == 0 || !inFlight.isSlotFree(for: Tag(lastTag))
        return Tag(lastTag)
    }

    subscript(tag: Tag) -> FrameInFlight? { inFlight[tag] }

    /// Every frame in flight, in no particular order.
    var all: [(Tag, FrameInFlight)] { inFlight.entries.map { ($0.key, $0.value) } }

    mutating func record(_ tag: Tag, _ frame: FrameInFlight) {
        inFlight[tag] = frame
        if earliestNew.map({ frame.deadline < $0 }) ?? true { earliestNew = frame.deadline }
    }

    @discardableResult
    mutating func remove(_ tag: Tag) -> FrameInFlight? { inFlight.removeValue(forKey: tag) }

    /// Removes and returns the frames whose deadline has passed, oldest transmission first.
    mutating func expire(now: Instant) -> [(Tag, FrameInFlight)] {
        var expired: [(Tag, FrameInFlight)] = []
        inFlight.forEach { tag, f in if f.deadline <= now { expired.append((tag, f)) } }
        expired.sort { $0.1.sentAt < $1.1.sentAt }
        for (tag, _) in expired { remove(tag) }
        return expired
    }

    /// Remembers an expired transmission, so a late answer can still teach the RTT.
    mutating func retire(_ tag: Tag, _ f: FrameInFlight) {
        retired[tag] = RetiredFrame(target: f.target, path: f.path, sentAt: f.sentAt)
        retiredOrder.append(tag)
        if retiredOrder.count > Self.retiredLimit, let old = retiredOrder.popFirst() { retired[old] = nil }
    }

    mutating func takeRetired(_ tag: Tag) -> RetiredFrame? { retired.removeValue(forKey: tag) }

    /// Forgets every frame in flight to `target` (only those on `path`, if given) and returns them.
    mutating func removeAll(for target: TargetAddress, path: PathID? = nil) -> [FrameInFlight] {
        var gone: [FrameInFlight] = []
        for (tag, f) in all where f.target == target && (path == nil || f.path == path) {
            remove(tag)
            gone.append(f)
        }
        return gone.sorted { $0.sentAt < $1.sentAt }
    }

    /// The earliest deadline of a frame in flight, if earlier than `bound`.
    func earliestDeadline(before bound: Instant) -> Instant {
        var d = bound
        inFlight.forEach { _, f in if f.deadline < d { d = f.deadline } }
        return d
    }

    /// The earliest deadline recorded since the last call, for a driver whose timer sleeps
    /// until the next deadline and must be woken when an earlier one appears.
    mutating func takeEarliestNewDeadline() -> Instant? {
        defer { earliestNew = nil }
        return earliestNew
    }
}

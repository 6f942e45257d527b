import AoEProtocol
import DequeModule

/// What one frame asks of the target.
enum FrameKind: Sendable, Hashable, CustomStringConvertible {
    case read, write, flushExt, flush28, identify
    /// DATA SET MANAGEMENT, TRIM: its sectors are named by range entries, its data.
    case trim
    var carriesSectors: Bool { self == .read || self == .write }
    /// Answered once the target's medium has done it (FLUSH: an fdatasync; TRIM: holes punched,
    /// maybe after dirty pages are written back): its time is the disk's, not the path's. Such a
    /// frame gives no RTT sample, is resent after `SectorScheduler.mediumTimeout` at the
    /// soonest, and its timeout is no evidence of loss (no window cut, no spurious-timeout
    /// floor from its late answer) — a slow punch once raised a path's RTO from 2 to 259 ms, and
    /// under 1 % loss every lost frame then cost that much (issue 33's soak).
    var waitsOnMedium: Bool { isFlush || self == .trim }
    var expectsData: Bool { self == .read || self == .identify }
    var isFlush: Bool { self == .flushExt || self == .flush28 }
    var description: String {
        switch self {
        case .read: "read"
        case .write: "write"
        case .flushExt: "FLUSH CACHE EXT"
        case .flush28: "FLUSH CACHE"
        case .identify: "IDENTIFY"
        case .trim: "TRIM"
        }
    }
}

/// A run of sectors still to transfer for one request; cut into frames at send time, so a
/// payload change re-splits whatever has not been answered yet.
struct WorkRange: Sendable {
    /// The request this work completes; nil for the engine's own (IDENTIFY, probes).
    var request: RequestID?
    var kind: FrameKind
    var lba: UInt64
    var sectors: Int
    var bufferOffset: Int
    var retries = 0
    var firstSent: Instant?
    var lastPath: PathID?
}

/// A request the scheduler accepted and has not completed.
struct PendingRequest: Sendable {
    var request: SectorRequest
    /// Sectors (or, for a flush, commands) still unanswered.
    var remaining: Int
    /// Submission order, for the flush barrier.
    var sequence: UInt64
    /// When it was accepted (its latency, `IOAccount`).
    var submitted: Instant = .zero
}

extension Deque {
    mutating func prepend(_ e: Element) { insert(e, at: 0) }
}

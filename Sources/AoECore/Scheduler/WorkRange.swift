import AoEProtocol
import DequeModule

/// What one frame asks of the target.
enum FrameKind: Sendable, Hashable, CustomStringConvertible {
    case read, write, flushExt, flush28, identify
    /// DATA SET MANAGEMENT, TRIM: its sectors are named by range entries, its data.
    case trim
    var carriesSectors: Bool { self == .read || self == .write }
    /// Changes what the sectors hold (writes and trims): a flush waits for these.
    var modifies: Bool { self == .write || self == .trim }
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

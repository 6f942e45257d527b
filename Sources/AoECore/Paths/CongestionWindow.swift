/// How many frames one path may have outstanding.
///
/// Starts at half of min(target bufcnt, maxout), grows by one per response below ssthresh (slow
/// start) and by one per window of responses above it, halves on loss, and never drops below
/// one. That last rule is why a target with `bufcnt` 1 works here; Linux computes a window of 0
/// for it and silently never sends (OpenAoE/aoe #7).
public struct CongestionWindow: Sendable {
    /// The ceiling: min(bufcnt, maxout), at least 1.
    public private(set) var limit: Int
    public private(set) var size: Int
    public private(set) var threshold: Int
    private var acked = 0
    /// Losses of frames sent before this instant belong to a loss event already counted.
    private var recoveryStart: Instant = .zero
    /// The size and threshold before the last loss event, for undoing a spurious one.
    private var beforeLoss: (size: Int, threshold: Int)?

    public init(bufferCount: Int, maxOutstanding: Int) {
        limit = max(1, min(bufferCount, maxOutstanding))
        size = max(1, limit / 2)
        threshold = size
    }

    /// A response arrived.
    public mutating func onResponse() {
        guard size < limit else { return }
        if size < threshold {
            size += 1
        } else {
            acked += 1
            if acked >= size {
                size += 1
                acked = 0
            }
        }
    }

    /// A frame sent at `sentAt` was lost (timed out). Halves once per loss event: frames that were
    /// already in flight when the window last shrank do not shrink it again.
    public mutating func onLoss(sentAt: Instant, now: Instant) {
        guard sentAt >= recoveryStart else { return }
        beforeLoss = (size, threshold)
        threshold = max(1, size / 2)
        size = threshold
        acked = 0
        recoveryStart = now
    }

    /// A frame counted as lost was answered after all: the timeout was spurious (a stall, not a
    /// loss), so the last halving is undone (as TCP's Eifel response does, RFC 4015).
    public mutating func undoLoss() {
        guard let b = beforeLoss else { return }
        size = max(size, b.size)
        threshold = max(threshold, b.threshold)
        beforeLoss = nil
    }

    /// The target's buffer count changed (a new config response).
    public mutating func reset(bufferCount: Int, maxOutstanding: Int) {
        self = CongestionWindow(bufferCount: bufferCount, maxOutstanding: maxOutstanding)
    }
}

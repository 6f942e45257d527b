/// How many frames one path may have outstanding: a window that finds what the target can really
/// queue.
///
/// A target's Buffer Count is a ceiling, not a promise (AoEr11 §3.2): a target whose receive
/// queue holds fewer frames than it advertises loses the excess of every burst (qaoed at MTU
/// 9000 advertises 20 and holds about 13). So the window
/// - starts at half of min(bufcnt, maxout), never exceeds that limit and never drops below one
///   (a target with `bufcnt` 1 works here; Linux computes a window of 0 for it and silently never
///   sends, OpenAoE/aoe #7);
/// - grows by one per answer below `threshold` (slow start) and by one per window of answers
///   above it, and halves once per loss event (AIMD, as the Linux driver's `maxout` scheme in
///   aoecmd.c: `ssthresh = maxout / 2` on a timeout, +1 per answer below it, +1 per window above);
/// - learns a **ceiling**: the size at a loss event is more than the target takes. The window
///   regrows quickly (slow start) to one below the ceiling and stays there; every
///   `probeInterval` answers it tries the ceiling again (a target whose load fell may take
///   more): a whole window of frames sent at that size answered without a loss lifts the ceiling,
///   a loss doubles the wait. A target that overstates its buffers so costs a loss event every
///   few thousand answers instead of one every few windows.
/// - A link that drops frames at random is told apart by where its losses fall: an overrun
///   loses nothing below the ceiling, random loss loses there as much as anywhere. Once loss
///   events below the ceiling pass 1 in 256 answers there (at least 4 of them), the ceiling is
///   dropped: a smaller window does not cure random loss, it only slows every frame.
public struct CongestionWindow: Sendable {
    /// The ceiling: min(bufcnt, maxout), at least 1.
    public private(set) var limit: Int
    public private(set) var size: Int
    public private(set) var threshold: Int
    /// The smallest size known to lose frames (more than the target can queue); nil while none is.
    public private(set) var ceiling: Int?
    /// The lowest ceiling ever learned (kept when a later try lifts the ceiling): what `aoefs
    /// doctor` reports as the target's real capacity.
    public private(set) var lowestCeiling: Int?
    /// Answers without a loss needed before trying the ceiling again.
    public private(set) var probeInterval = CongestionWindow.baseProbeInterval
    /// Loss events so far.
    public private(set) var lossEvents = 0
    private var acked = 0
    /// Answers and loss events while the window was below the ceiling (where an overrun loses
    /// nothing), since the ceiling last changed.
    private var belowAnswers = 0
    private var belowEvents = 0
    /// Answers since the ceiling last moved or was tried, and since the size last changed.
    private var clean = 0
    private var atSize = 0
    /// Losses of frames sent before this instant belong to a loss event already counted.
    private var recoveryStart: Instant = .zero
    /// The state before the last loss event, for undoing a spurious one.
    private var beforeLoss: (size: Int, threshold: Int, ceiling: Int?, probeInterval: Int, lowest: Int?)?

    static let baseProbeInterval = 4096
    /// No ceiling below this: below it there is no room to see where losses fall (the random-loss
    /// test needs sizes under the ceiling), and a target that cannot queue 3 frames is rare.
    static let lowestCeilingAllowed = 4
    static let maxProbeInterval = 1 << 16

    public init(bufferCount: Int, maxOutstanding: Int) {
        limit = max(1, min(bufferCount, maxOutstanding))
        size = max(1, limit / 2)
        threshold = size
    }

    /// The largest size the window grows to on its own: below the ceiling, within the limit.
    public var cap: Int { min(limit, ceiling.map { max(1, $0 - 1) } ?? limit) }

    /// A response arrived.
    public mutating func onResponse() {
        clean += 1
        atSize += 1
        if let c = ceiling, size < c - 1 { belowAnswers += 1 }
        if let c = ceiling, size >= c {
            // A try at the ceiling that held for a whole window of frames sent at that size (the
            // first `size` answers after growing are of frames sent before): the target takes
            // more now.
            if atSize >= 2 * size {
                ceiling = nil
                probeInterval = Self.baseProbeInterval
            }
            return
        }
        if size >= cap {
            if let c = ceiling, c <= limit, clean >= probeInterval {
                clean = 0
                grow(to: c)
            }
            return
        }
        if size < threshold {
            grow(to: size + 1)
        } else {
            acked += 1
            if acked >= size { grow(to: size + 1) }
        }
    }

    private mutating func grow(to s: Int) {
        size = s
        acked = 0
        atSize = 0
    }

    /// A frame sent at `sentAt` was lost (timed out). Halves once per loss event: frames that were
    /// already in flight when the window last shrank do not shrink it again.
    /// - Returns: whether this loss began a new loss event.
    @discardableResult
    public mutating func onLoss(sentAt: Instant, now: Instant) -> Bool {
        guard sentAt >= recoveryStart else { return false }
        beforeLoss = (size, threshold, ceiling, probeInterval, lowestCeiling)
        lossEvents += 1
        if let c = ceiling, size < c - 1 {
            belowEvents += 1
            if belowEvents >= 4 && belowEvents * 256 > belowAnswers {
                // Losses where an overrun has none: random loss, which a ceiling does not cure.
                ceiling = nil
                belowEvents = 0
                belowAnswers = 0
            }
        }
        if let c = ceiling, size >= c {
            probeInterval = min(probeInterval * 2, Self.maxProbeInterval)  // the try at the ceiling failed
        } else if size >= Self.lowestCeilingAllowed, ceiling.map({ size >= $0 - 1 }) ?? true {
            ceiling = size  // more than the target takes
            lowestCeiling = min(lowestCeiling ?? size, size)
            clean = 0
            belowEvents = 0
            belowAnswers = 0
        }
        threshold = max(1, cap)
        grow(to: max(1, size / 2))
        recoveryStart = now
        return true
    }

    /// A frame counted as lost was answered after all: the timeout was spurious (a stall, not a
    /// loss), so the last loss event is undone (as TCP's Eifel response does, RFC 4015).
    public mutating func undoLoss() {
        guard let b = beforeLoss else { return }
        size = max(size, b.size)
        threshold = max(threshold, b.threshold)
        ceiling = b.ceiling
        lowestCeiling = b.lowest
        probeInterval = b.probeInterval
        beforeLoss = nil
    }

    /// The target's buffer count changed (a new config response).
    public mutating func reset(bufferCount: Int, maxOutstanding: Int) {
        self = CongestionWindow(bufferCount: bufferCount, maxOutstanding: maxOutstanding)
    }
}

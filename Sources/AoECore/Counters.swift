/// Per-target counters, shown in `sys/eS.L/stats`. The first nine carry the Solaris kstat names
/// (reference/seeds, CORDaoe `stats`), the rest are ours (DESIGN §2).
public struct TargetCounters: Sendable, Hashable {
    /// ATA responses received and accepted.
    public var atarcv: UInt64 = 0
    /// ATA frames sent (first sends and retransmissions).
    public var atasnd: UInt64 = 0
    /// AoE error responses (E flag).
    public var erraoe: UInt64 = 0
    /// ATA error statuses (ERR, DF).
    public var errata: UInt64 = 0
    /// Frames that timed out.
    public var errtimeout: UInt64 = 0
    /// Responses shorter than the data they promised.
    public var errtrunc: UInt64 = 0
    /// Responses that did not match what was asked (wrong MAC, shelf.slot, command): spoofed or stray.
    public var errwmsg: UInt64 = 0
    /// Retransmissions.
    public var retries: UInt64 = 0
    /// Late or duplicate responses (their frame was already answered or retransmitted).
    public var softerr: UInt64 = 0
    public var bytesRead: UInt64 = 0
    public var bytesWritten: UInt64 = 0
    public var reads: UInt64 = 0
    public var writes: UInt64 = 0
    /// FLUSH CACHE (EXT) commands the target answered.
    public var flushes: UInt64 = 0
    /// fsyncs answered without a frame (`FlushMode.none`).
    public var localFlushes: UInt64 = 0
    public var rmwOps: UInt64 = 0
    public var probes: UInt64 = 0
    /// Large frames lost while their size was trusted (jumbo black-hole evidence).
    public var lostJumbo: UInt64 = 0
    /// Verified paths ejected: silent while another path of the target answered.
    public var ejected: UInt64 = 0
    /// Candidate paths dropped: they announced themselves but never answered IDENTIFY.
    public var candidatesDropped: UInt64 = 0
    /// Timeouts proved spurious: the original frame was answered after it was resent.
    public var spurious: UInt64 = 0
    /// Loss events: bursts of lost frames that cut a path's window (once per event, not per frame).
    public var lossEvents: UInt64 = 0
    /// Paths refused as another disk answering as this target (IDENTIFY, sectors or a write
    /// seen through the other path disagreed).
    public var duplicates: UInt64 = 0
    /// READ answers whose data the link received where it belongs (receive placement, issue
    /// 32), and those it received into its own buffer and were copied to their place.
    public var readsPlaced: UInt64 = 0
    public var readsCopied: UInt64 = 0
    /// Discard requests (FUSE fallocate punching a hole or zeroing a range) completed with TRIM,
    /// and the sectors they trimmed (issue 33).
    public var discards: UInt64 = 0
    public var sectorsTrimmed: UInt64 = 0

    public init() {}
}

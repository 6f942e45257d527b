/// Finds the largest payload (data bytes per frame) that really crosses one path.
///
/// The ceiling is the largest multiple of 512 within all of: the interface MTU − 22 bytes of AoE
/// and ATA header, the target's sectors per command × 512, and the user's cap (DESIGN §4).
/// Sizes up to 1024 bytes are trusted without a probe: every Ethernet carries them. Above that,
/// a probe (a READ of LBA 0 whose request is padded to the size and whose response carries it,
/// so both directions cross at that size, Linux `probe()`) must succeed first. While probing, the
/// path uses the largest size proven so far. A probe unanswered twice means the size is
/// black-holed: binary search over sector counts between the largest proven and the smallest
/// failed size. Later, lost large frames make the path *suspect*: a probe at the current size and
/// a small liveness probe go out together. Only when the large probe goes unanswered twice while
/// the small one is answered (DESIGN §4: "no answer while small frames are answered") does the
/// path fall back to 1024 bytes and search again, without losing the I/O in flight (the
/// scheduler re-splits it). A stall of the target or host, which delays every frame alike, is
/// thereby not mistaken for a black hole; a dead path is left to `deadsecs`.
///
/// A size that failed is not failed for good (issue 31): a switch port gets jumbo frames, a
/// target's MTU is raised after ours. Once the search has ended below the ceiling, the ceiling is
/// tried again after `raiseWait` — 5 s after the first failure, doubling to about 10 minutes
/// (RFC 1191 §6.3, RFC 4821 §7.7, RFC 8899 §5.1.1's PMTU_RAISE_TIMER) — one probe at a time,
/// outside the window, so the I/O in flight is never disturbed. New evidence (`raiseSoon`: a
/// larger frame answered on the same link) tries at once and from the shortest wait again.
public struct MTUNegotiator: Sendable, Hashable {
    /// The most sectors any probe may try: the ceiling.
    public private(set) var ceilingSectors: Int
    /// Sectors per frame proven to cross (what the path uses now).
    public private(set) var provenSectors: Int
    /// The smallest sector count known to fail, if any.
    private var failedSectors: Int?
    /// The probe in flight: its size and how many times it was tried.
    public private(set) var probing: Probe?

    /// A probe under way: its size and how many times it was sent.
    public struct Probe: Sendable, Hashable {
        public var sectors: Int
        public var attempts: Int
    }
    /// Consecutive large frames lost without a large one answered in between.
    public private(set) var lostLarge = 0
    /// Set while large-frame losses are being checked against a small liveness probe.
    public private(set) var suspicion: Suspicion?

    /// The check of a suspected black hole.
    public struct Suspicion: Sendable, Hashable {
        /// Sectors per frame in use when the losses began: the size being checked.
        public var sectors: Int
        public var sizeAttempts = 0
        public var sizeFailed = false
        public var aliveAttempts = 0
        public var aliveAnswered = false
    }

    /// What a finished check concluded.
    public enum Verdict: Sendable, Hashable {
        /// Still checking.
        case pending
        /// The large size was answered: a stall, not a black hole. The payload stays.
        case stall
        /// Large frames vanish while small ones cross: fall back (done) and search again.
        case blackHole
        /// Nothing was answered: the path or target is dead; leave it to retransmits and deadsecs.
        case silent
    }

    /// When the ceiling is tried again (nil: nothing to try, or not scheduled yet).
    public private(set) var raiseAt: Instant?
    /// The wait before the next upward try.
    public private(set) var raiseWait: Duration = Self.firstRaiseWait
    /// The first wait after a failure: seconds, so a port fixed at once is used at once.
    public static let firstRaiseWait: Duration = .seconds(5)
    /// The longest wait: 5 s doubled seven times, about ten minutes (RFC 1191 §6.3).
    public static let longestRaiseWait: Duration = .seconds(640)

    public static let safeSectors = 2  // 1024 bytes
    public static let attemptsPerSize = 2
    /// Large frames lost in a row that make us suspect a black hole.
    public static let lossesBeforeFallback = 3

    /// - Parameters:
    ///   - mtu: the local interface MTU.
    ///   - targetSectors: the target's advertised sectors per command (Query Config `scnt`).
    ///   - cap: the user's cap in bytes (`--maxdata`), if any.
    public init(mtu: Int, targetSectors: Int, cap: Int?) {
        var local = min(maximumPayload(forMTU: mtu) / 512, 255)
        if let cap { local = min(local, max(cap / 512, 1)) }
        ceilingSectors = max(min(local, max(targetSectors, 1)), 1)
        targetLimited = targetSectors < local
        provenSectors = min(ceilingSectors, Self.safeSectors)
    }

    /// The target offers fewer sectors per frame than our MTU and cap allow (a target whose
    /// MTU is lower than ours, for now): only its config can raise the ceiling, so the upward
    /// try asks for it (issue 31: the host's MTU raised before the target's).
    public private(set) var targetLimited: Bool

    /// What an upward try does.
    public enum Raise: Sendable, Hashable {
        /// Probe the ceiling again (a size failed below it).
        case probe
        /// Ask the target for its config: it may offer more sectors per frame now.
        case askConfig
    }

    /// Bytes per frame to use now.
    public var payload: Int { provenSectors * 512 }

    /// True when the ceiling is proven or the search is over.
    public var isSettled: Bool { probing == nil && suspicion == nil && nextCandidate() == nil }

    /// The next size to probe, or nil when there is nothing left to learn.
    func nextCandidate() -> Int? {
        let hi = failedSectors ?? (ceilingSectors + 1)
        guard hi - provenSectors > 1 else { return nil }
        // First try the ceiling itself (the common case: jumbo works end to end), then bisect.
        return failedSectors == nil ? ceilingSectors : (provenSectors + hi) / 2
    }

    /// Starts (or continues) probing. Returns the sector count to probe now, or nil.
    public mutating func startProbe() -> Int? {
        if suspicion != nil { return nil }
        if let p = probing { return p.sectors }
        guard let c = nextCandidate() else { return nil }
        probing = Probe(sectors: c, attempts: 1)
        return c
    }

    /// The probe of `sectors` was answered: that size crosses.
    public mutating func probeSucceeded(sectors: Int) {
        guard probing?.sectors == sectors else { return }
        probing = nil
        provenSectors = max(provenSectors, sectors)
        lostLarge = 0
        if provenSectors >= ceilingSectors { raiseWait = Self.firstRaiseWait }
    }

    /// The path runs below what it could carry — a larger size failed, or the target offers less
    /// than our end takes: an upward try is due some time.
    public var isBelowCeiling: Bool { (failedSectors != nil && provenSectors < ceilingSectors) || targetLimited }

    /// On every tick: schedules the upward try once the search has ended below the ceiling, and
    /// when it is due, forgets the failed size so that `startProbe` tries the ceiling (then
    /// bisects). Returns true when a try starts now; the wait doubles for the next one.
    public mutating func raiseIfDue(now: Instant) -> Raise? {
        guard isBelowCeiling, probing == nil, suspicion == nil, nextCandidate() == nil else {
            if !isBelowCeiling { raiseAt = nil }
            return nil
        }
        guard let at = raiseAt else {
            raiseAt = now + raiseWait
            return nil
        }
        guard now >= at else { return nil }
        raiseAt = nil
        raiseWait = min(raiseWait * 2, Self.longestRaiseWait)
        if failedSectors != nil && provenSectors < ceilingSectors {
            failedSectors = nil
            return .probe
        }
        // Nothing to wait for: an answer that offers more starts a new negotiator.
        raiseAt = now + raiseWait
        return .askConfig
    }

    /// Evidence that `sectors` per frame may cross now (a frame that large answered on the same
    /// link): try at the next tick, and from the shortest wait again.
    public mutating func raiseSoon(sectors: Int, now: Instant) {
        guard isBelowCeiling, sectors > provenSectors, raiseAt.map({ $0 > now }) ?? true else { return }
        raiseWait = Self.firstRaiseWait
        raiseAt = now
    }

    /// The probe timed out. Returns the sectors to retry, or nil when this size is given up.
    public mutating func probeTimedOut() -> Int? {
        guard let p = probing else { return nil }
        if p.attempts < Self.attemptsPerSize {
            probing = Probe(sectors: p.sectors, attempts: p.attempts + 1)
            return p.sectors
        }
        probing = nil
        failedSectors = min(failedSectors ?? Int.max, p.sectors)
        return nil
    }

    /// The path's frames were all forgotten (the target went down or was disabled): a check
    /// under way can never conclude, since its probes are gone, and would block probing for
    /// good. Drop it; losses start counting afresh. A probe under way is simply sent again by
    /// the next `startProbe`.
    public mutating func abandonCheck() {
        suspicion = nil
        lostLarge = 0
    }

    /// A data frame of `sectors` was answered.
    public mutating func frameAnswered(sectors: Int) {
        if sectors > Self.safeSectors { lostLarge = 0 }
    }

    /// A data frame of `sectors` timed out. Returns true when the path just became suspect:
    /// the caller sends the size probe and the liveness probe.
    public mutating func frameLost(sectors: Int) -> Bool {
        guard sectors > Self.safeSectors, provenSectors > Self.safeSectors, suspicion == nil else { return false }
        lostLarge += 1
        guard lostLarge >= Self.lossesBeforeFallback else { return false }
        lostLarge = 0
        suspicion = Suspicion(sectors: provenSectors)
        return true
    }

    /// The size probe of a suspicion was answered (or not, `answered` false after a timeout).
    /// - Returns: whether to send it again, and the verdict so far.
    public mutating func suspicionSizeProbe(answered: Bool) -> (retry: Bool, verdict: Verdict) {
        guard var s = suspicion else { return (false, .pending) }
        if answered {
            suspicion = nil
            return (false, .stall)
        }
        s.sizeAttempts += 1
        if s.sizeAttempts < Self.attemptsPerSize {
            suspicion = s
            return (true, .pending)
        }
        s.sizeFailed = true
        suspicion = s
        return (false, conclude())
    }

    /// The liveness probe of a suspicion was answered (or timed out).
    public mutating func suspicionAliveProbe(answered: Bool) -> (retry: Bool, verdict: Verdict) {
        guard var s = suspicion else { return (false, .pending) }
        if answered { s.aliveAnswered = true } else { s.aliveAttempts += 1 }
        suspicion = s
        if !answered && s.aliveAttempts < Self.attemptsPerSize { return (true, .pending) }
        return (false, conclude())
    }

    private mutating func conclude() -> Verdict {
        guard let s = suspicion else { return .pending }
        if s.sizeFailed && s.aliveAnswered {
            // Fall back now and search from the old size down.
            suspicion = nil
            let old = provenSectors
            provenSectors = Self.safeSectors
            failedSectors = old
            probing = nil
            return .blackHole
        }
        if s.sizeFailed && s.aliveAttempts >= Self.attemptsPerSize {
            suspicion = nil
            return .silent
        }
        return .pending
    }
}

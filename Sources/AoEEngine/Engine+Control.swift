import AoECore
import AoELinux
import AoEProtocol

/// The target table, the control verbs (etherd/), the diagnostic log, and waiting for the table.
extension Engine {
    // MARK: - Table and control

    /// Every known target.
    public func targets() -> [TargetSnapshot] {
        let now = clock.now()
        return state.withLock { $0.core.snapshot(now: now) }
    }

    /// Every target's metrics in the Prometheus text exposition format (`sys/metrics`).
    public func metricsExposition(daemon: EngineMetrics.DaemonFigures? = nil) -> String {
        metrics.exposition(targets(), interfaces: interfaceFigures(), daemon: daemon)
    }

    /// Each link's interface, MTU and socket receive buffer, in link order.
    public func interfaceFigures() -> [EngineMetrics.InterfaceFigures] {
        links.withLock { table in
            table.keys.sorted().compactMap { id -> EngineMetrics.InterfaceFigures? in
                guard let l = table[id] else { return nil }
                return EngineMetrics.InterfaceFigures(name: l.name, mtu: l.mtu, receiveBuffer: l.receiveBufferSize)
            }
        }
    }

    /// One target, without the work of snapshotting the others (an image's `getattr`).
    public func target(_ address: TargetAddress) -> TargetSnapshot? {
        let now = clock.now()
        return state.withLock { $0.core.snapshot(of: address, now: now) }
    }

    /// Link names by id.
    public var linkNames: [LinkID: String] { state.withLock { $0.core.linkNames } }

    /// A target's capacity in bytes, if it is identified: cheap, for every FUSE request.
    public func capacity(of target: TargetAddress) -> UInt64? {
        state.withLock { $0.core.capacity(of: target) }
    }

    /// What the target's IDENTIFY said (nil until it answered one).
    public func identity(of target: TargetAddress) -> ATAIdentity? {
        state.withLock { $0.core.identity(of: target) }
    }

    /// The tunables in force.
    public var configuration: EngineConfiguration { state.withLock { $0.core.configuration } }

    /// Limits traffic to the links named (nil or empty: all), like Linux's `aoe_iflist`.
    /// - Returns: the names that are not links of this engine (nothing is changed then).
    public func setAllowedInterfaces(_ names: [String]?) -> [String] {
        let now = clock.now()
        var unknown: [String] = []
        run { core, out in
            let known = core.linkNames
            unknown = (names ?? []).filter { n in !known.values.contains(n) }
            guard unknown.isEmpty else { return }
            let allowed = (names ?? []).isEmpty ? nil : Set(known.filter { names!.contains($0.value) }.map(\.key))
            core.setAllowedLinks(allowed, now: now, &out)
        }
        return unknown
    }

    /// The allow-list in force (empty: all links).
    public var allowedInterfaces: [String] {
        state.withLock { s in s.core.allowedLinks.map { ids in ids.compactMap { s.core.linkNames[$0] }.sorted() } ?? []
        }
    }

    /// Broadcasts Query Config (all targets, or one shelf.slot).
    public func discover(_ target: TargetAddress = .broadcast) {
        let now = clock.now()
        run { core, out in core.discover(target, now: now, &out) }
    }

    /// Sends a burst of full-size frames on each of `target`'s paths (`aoefs doctor`); the
    /// results show in `targets()` (`PathSnapshot.burst`).
    public func burst(_ target: TargetAddress) {
        let now = clock.now()
        run { core, out in core.burst(target, now: now, &out) }
    }

    /// Fails the reads submitted with `owner` that still wait, with `.interrupted` (the FUSE
    /// layer: the kernel interrupted the reader, e.g. Ctrl-C on a `dd` from a dead target).
    /// Their failures (and the replies they make) go into `outbox`, this pass's.
    public func cancelRead(owner: UInt64, outbox: inout Outbox) {
        let now = clock.now()
        withCore(&outbox) { core, out in core.cancelRead(owner: owner, now: now, &out) }
    }

    /// Re-queries config, re-IDENTIFYs and re-negotiates one target.
    public func revalidate(_ target: TargetAddress) {
        let now = clock.now()
        run { core, out in core.revalidate(target, now: now, &out) }
    }

    /// Disables the targets `pattern` matches (and those that appear later): their waiting
    /// requests fail, nothing is sent to them, discovery leaves them alone. Returns those known.
    @discardableResult
    public func disable(_ pattern: TargetPattern) -> [TargetAddress] {
        var matched: [TargetAddress] = []
        run { core, out in matched = core.disable(pattern, &out) }
        return matched
    }

    /// Enables the targets `pattern` matches again and asks them for their config. Returns those known.
    @discardableResult
    public func enable(_ pattern: TargetPattern) -> [TargetAddress] {
        let now = clock.now()
        var matched: [TargetAddress] = []
        run { core, out in matched = core.enable(pattern, now: now, &out) }
        return matched
    }

    /// Forgets a target; its waiting requests fail.
    public func remove(_ target: TargetAddress) {
        run { core, out in core.remove(target, &out) }
    }

    /// Calls `observer` (outside the lock) with every diagnostic line from now on.
    public func addLogObserver(_ observer: @escaping @Sendable (String) -> Void) {
        observers.withLock { $0.append(observer) }
    }

    /// Calls `observer` (outside the lock, on an engine thread: it must not block) after every
    /// change of the target table from now on.
    public func addTargetObserver(_ observer: @escaping @Sendable () -> Void) {
        targetObservers.withLock { $0.append(observer) }
    }

    /// Adds a diagnostic line of the caller's (a bad control-file write) to the log.
    public func note(_ line: String) { run { _, out in out.append(.log(line)) } }

    /// Diagnostic lines with a sequence number above `after` (the `etherd/err` ring).
    public func errorLines(after: UInt64) -> [(UInt64, String)] { state.withLock { $0.errors.lines(after: after) } }

    /// Blocks until `condition` holds for the target table, or `timeout` passes; returns whether
    /// it holds. It is checked at once and after every change of the engine's state (a frame
    /// handled, a request submitted, a timer tick), not on a schedule.
    @discardableResult
    public func wait(timeout: Duration, until condition: ([TargetSnapshot]) -> Bool) -> Bool {
        state.withLock { $0.waiters += 1 }
        defer { state.withLock { $0.waiters -= 1 } }
        return state.wait(timeout: timeout) { s in condition(s.core.snapshot(now: clock.now())) }
    }

    /// Blocks until every target that answered is settled (identified, payload negotiated on
    /// every path: `TargetSnapshot.isSettled`), or `timeout` passes; returns whether they are.
    /// False also when no target answered at all.
    @discardableResult
    public func waitUntilSettled(timeout: Duration) -> Bool {
        wait(timeout: timeout) { $0.allSettled }
    }
}

import AoECore

/// When the supervisor starts its daemon again (issue 30). Pure, driven by an explicit clock.
///
/// A daemon that dies is started again at once the first time (every request in flight waits for
/// it), then after a pause that doubles with each death in the window (250 ms, 500 ms, 1 s, …), so
/// a daemon that cannot live does not spin. `maximumDeaths` deaths within `window` is a crash
/// loop: the supervisor gives up and unmounts, with one line saying why.
public struct RestartPolicy: Sendable, Equatable {
    /// What to do after a death.
    public enum Decision: Sendable, Equatable {
        /// Start the daemon again after this pause.
        case restart(after: Duration)
        /// A crash loop: unmount and exit.
        case giveUp(deaths: Int, within: Duration)
    }

    public var maximumDeaths: Int
    public var window: Duration
    public var firstPause: Duration
    /// Deaths within the window, oldest first.
    public private(set) var deaths: [Instant] = []
    /// Every death since the mount was made (for `sys/daemon` and the metrics).
    public private(set) var totalDeaths = 0

    public init(maximumDeaths: Int = 5, window: Duration = .seconds(60), firstPause: Duration = .milliseconds(250)) {
        self.maximumDeaths = max(1, maximumDeaths)
        self.window = window
        self.firstPause = firstPause
    }

    /// The daemon died at `now`.
    public mutating func died(now: Instant) -> Decision {
        totalDeaths += 1
        deaths.append(now)
        deaths.removeAll { now - $0 >= window }
        if deaths.count >= maximumDeaths { return .giveUp(deaths: deaths.count, within: window) }
        // The n-th death in the window: no pause for the first, then 250 ms · 2^(n−2).
        let n = deaths.count
        guard n > 1 else { return .restart(after: .zero) }
        return .restart(after: firstPause * (1 << min(n - 2, 16)))
    }
}

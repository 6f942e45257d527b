import AoECore

extension Engine {
    /// Tests on virtual time (`EngineClock.isVirtual`): returns once the event loops have done
    /// what is due now. Each round posts a no-op to every loop and waits for it (it runs at the
    /// start of a loop's next pass, so the pass before has finished); it ends when `quiet` says
    /// nothing is queued for them (an in-memory link's answers) twice in a row, or after
    /// `rounds` rounds.
    public func settle(rounds: Int = 10_000, quiet: () -> Bool) {
        let all = loops.withLock { $0 }
        var calm = 0
        for _ in 0..<rounds {
            for loop in all { loop.performAndWait { _, _ in } }
            calm = quiet() ? calm + 1 : 0
            if calm >= 2 { return }
        }
    }
}

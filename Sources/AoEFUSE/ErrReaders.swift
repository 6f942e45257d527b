import AoECore
import AoEEngine
import AoELinux
import FUSEProtocol

#if canImport(Glibc)
    import Glibc
#endif

/// `etherd/err` (Linux /dev/etherd/err): one diagnostic line per read, a read with nothing to
/// say parked until a line arrives; an interrupted reader (Ctrl-C on `cat`) is answered EINTR.
/// Owns its readers' cursors and the parked replies; one lock.
final class ErrReaders: Sendable {
    private struct State {
        /// Per open handle: the number of the last line it was given.
        var cursors: [UInt64: UInt64] = [:]
        var parked: [UInt64: (reply: Reply, handle: UInt64)] = [:]
        var nextWaiter: UInt64 = 1
        /// Set by teardown: nothing is parked after.
        var closed = false
    }

    private let engine: Engine
    private let state = Locked(State())

    init(engine: Engine) { self.engine = engine }

    /// A new reader starts at the lines logged from now on, like /dev/etherd/err.
    func opened(_ handle: UInt64) {
        let last = engine.errorLines(after: 0).last?.0 ?? 0
        state.withLock { $0.cursors[handle] = last }
    }

    func released(_ handle: UInt64) { state.withLock { _ = $0.cursors.removeValue(forKey: handle) } }

    /// A read of err: the next line, or parked until one is logged (or the read is interrupted).
    func read(_ r: Reply, handle: UInt64, size: Int, _ outbox: inout Outbox) -> Answer {
        if let line = take(handle) { return .now(.bytes(Array((line + "\n").utf8.prefix(size)))) }
        let id: UInt64? = state.withLock { s in
            if s.closed { return nil }
            let id = s.nextWaiter
            s.nextWaiter += 1
            s.parked[id] = (r, handle)
            return id
        }
        guard let id else { return .now(.error(EINTR)) }
        if r.onInterrupt(id) {
            interrupted(id, &outbox)
        } else {
            logged()  // a line may have arrived between the check and the parking
        }
        return .later
    }

    /// The next line for `handle`, moving its cursor.
    private func take(_ handle: UInt64) -> String? {
        state.withLock { s in
            guard let l = engine.errorLines(after: s.cursors[handle] ?? 0).first else { return nil }
            s.cursors[handle] = l.0
            return l.1
        }
    }

    /// Called with every diagnostic line the engine logs (from any thread): answers the parked
    /// readers that have a line now.
    func logged() {
        let ready: [(Reply, [UInt8])] = state.withLock { s in
            var out: [(Reply, [UInt8])] = []
            for (id, w) in s.parked {
                if let line = engine.errorLines(after: s.cursors[w.handle] ?? 0).first {
                    s.cursors[w.handle] = line.0
                    s.parked[id] = nil
                    out.append((w.reply, Array((line.1 + "\n").utf8)))
                }
            }
            return out
        }
        for (r, b) in ready { r.now { r, outbox in r.bytes(b, &outbox) } }
    }

    /// The kernel interrupted parked reader `waiter`: EINTR.
    func interrupted(_ waiter: UInt64, _ outbox: inout Outbox) {
        let r = state.withLock { $0.parked.removeValue(forKey: waiter)?.reply }
        r?.error(EINTR, &outbox)
    }

    /// Teardown: every parked reader is answered EINTR now, and none is parked after.
    func close() {
        let parked: [Reply] = state.withLock { s in
            s.closed = true
            defer { s.parked.removeAll() }
            return s.parked.values.map(\.reply)
        }
        for r in parked { r.now { r, outbox in r.error(EINTR, &outbox) } }
    }
}

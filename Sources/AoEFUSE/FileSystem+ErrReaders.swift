import AoECore
import AoEEngine
import Foundation

/// `etherd/err` (Linux /dev/etherd/err): one diagnostic line per read, a read with nothing to
/// say parked until a line arrives; an interrupted reader (Ctrl-C on `cat`) is answered EINTR.
extension AoEFileSystem {
    /// A new reader of err starts at the lines logged from now on, like /dev/etherd/err.
    func openedErr(_ handle: UInt64) {
        let last = engine.errorLines(after: 0).last?.0 ?? 0
        state.withLock { $0.errCursor[handle] = last }
    }

    /// Called with every diagnostic line the engine logs: wakes parked readers of `etherd/err`.
    public func logged() {
        let ready: [(Reply, [UInt8])] = state.withLock { s in
            var out: [(Reply, [UInt8])] = []
            for (id, w) in s.errWaiters {
                let cursor = s.errCursor[w.handle] ?? 0
                if let line = engine.errorLines(after: cursor).first {
                    s.errCursor[w.handle] = line.0
                    s.errWaiters[id] = nil
                    out.append((w.reply, Array((line.1 + "\n").utf8)))
                }
            }
            return out
        }
        for (r, b) in ready { r.now { r, outbox in r.bytes(b, &outbox) } }
    }

    func readErr(_ r: Reply, fh: UInt64, size: Int, _ outbox: inout Outbox) {
        let line: (UInt64, String)? = state.withLock { s in
            let cursor = s.errCursor[fh] ?? 0
            guard let l = engine.errorLines(after: cursor).first else { return nil }
            s.errCursor[fh] = l.0
            return l
        }
        if let line { return r.bytes(Array((line.1 + "\n").utf8.prefix(size)), &outbox) }
        let id: UInt64? = state.withLock { s in
            if s.tornDown { return nil }
            let id = s.nextWaiter
            s.nextWaiter += 1
            s.errWaiters[id] = (r, fh)
            return id
        }
        guard let id else { return r.error(EINTR, &outbox) }
        if r.onInterrupt(id) { return interrupted(id, &outbox) }
        logged()  // a line may have arrived between the check and the parking
    }

    func interrupted(_ waiter: UInt64, _ outbox: inout Outbox) {
        let r = state.withLock { $0.errWaiters.removeValue(forKey: waiter)?.reply }
        r?.error(EINTR, &outbox)
    }
}

import Foundation

/// A few dedicated threads that run jobs in arrival order (not Swift's cooperative pool, whose
/// two threads here must never block on disk or on FUSE: reference notes, pitfall 10).
///
/// Used by the mount to send large replies off the receive thread, and by `aoefs serve` to keep
/// several disk reads and writes in flight at once.
public final class WorkerPool: Sendable {
    private struct Queue {
        var jobs: [@Sendable () -> Void] = []
        var head = 0
        var running = 0
        var stopping = false
        var isEmpty: Bool { head == jobs.count }
    }
    private let queue = Locked(Queue())

    /// Starts `threads` threads named `name-N`.
    public init(threads: Int, name: String) {
        precondition(threads > 0)
        for i in 0..<threads {
            let t = Thread { [self] in loop() }
            t.name = threads == 1 ? name : "\(name)-\(i)"
            t.stackSize = 1 << 20
            t.start()
        }
    }

    /// Queues `job`; a free thread runs it.
    public func async(_ job: @escaping @Sendable () -> Void) {
        queue.withLock { $0.jobs.append(job) }
        queue.broadcast()
    }

    /// Waits until every queued job has run.
    public func waitIdle() {
        queue.wait(timeout: nil) { $0.isEmpty && $0.running == 0 }
    }

    /// Runs what is queued, then ends the threads (returns without waiting for them).
    public func stop() {
        queue.withLock { $0.stopping = true }
        queue.broadcast()
    }

    private func loop() {
        while true {
            var job: (@Sendable () -> Void)?
            queue.wait(timeout: nil) { q in
                if q.isEmpty { return q.stopping }
                job = q.jobs[q.head]
                q.head += 1
                if q.isEmpty {
                    q.jobs.removeAll(keepingCapacity: true)
                    q.head = 0
                }
                q.running += 1
                return true
            }
            guard let job else { return }
            job()
            let idle = queue.withLock { q in
                q.running -= 1
                return q.isEmpty && q.running == 0
            }
            if idle { queue.broadcast() }
        }
    }
}

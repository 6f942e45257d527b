import Foundation

/// A few dedicated threads that run jobs in arrival order (not Swift's cooperative pool, whose
/// two threads here must never block on disk or on FUSE: reference notes, pitfall 10).
///
/// Used by the mount to send large replies off the receive thread, and by `aoefs serve` to keep
/// several disk reads and writes in flight at once.
public final class WorkerPool: @unchecked Sendable {
    // @unchecked: `jobs` and `stopping` are only touched with `mutex` held.
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let ready = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private let idle = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var jobs: [@Sendable () -> Void] = []
    private var head = 0
    private var running = 0
    private var stopping = false

    /// Starts `threads` threads named `name-N`.
    public init(threads: Int, name: String) {
        precondition(threads > 0)
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(ready, nil)
        pthread_cond_init(idle, nil)
        for i in 0..<threads {
            let t = Thread { [self] in loop() }
            t.name = threads == 1 ? name : "\(name)-\(i)"
            t.stackSize = 1 << 20
            t.start()
        }
    }

    deinit {
        pthread_cond_destroy(ready)
        pthread_cond_destroy(idle)
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
        ready.deallocate()
        idle.deallocate()
    }

    /// Queues `job`; a free thread runs it.
    public func async(_ job: @escaping @Sendable () -> Void) {
        pthread_mutex_lock(mutex)
        jobs.append(job)
        pthread_cond_signal(ready)
        pthread_mutex_unlock(mutex)
    }

    /// Waits until every queued job has run.
    public func waitIdle() {
        pthread_mutex_lock(mutex)
        while head < jobs.count || running > 0 { pthread_cond_wait(idle, mutex) }
        pthread_mutex_unlock(mutex)
    }

    /// Runs what is queued, then ends the threads (returns without waiting for them).
    public func stop() {
        pthread_mutex_lock(mutex)
        stopping = true
        pthread_cond_broadcast(ready)
        pthread_mutex_unlock(mutex)
    }

    private func loop() {
        pthread_mutex_lock(mutex)
        while true {
            while head == jobs.count && !stopping { pthread_cond_wait(ready, mutex) }
            if head == jobs.count { break }
            let job = jobs[head]
            head += 1
            if head == jobs.count {
                jobs.removeAll(keepingCapacity: true)
                head = 0
            }
            running += 1
            pthread_mutex_unlock(mutex)
            job()
            pthread_mutex_lock(mutex)
            running -= 1
            if head == jobs.count && running == 0 { pthread_cond_broadcast(idle) }
        }
        pthread_mutex_unlock(mutex)
    }
}

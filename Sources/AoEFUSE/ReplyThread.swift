import Foundation

/// One dedicated thread that sends large read replies, so the engine's receive thread goes back
/// to its frames while the kernel copies a big reply into the reader's pages.
///
/// Why: a 1 MiB `fuse_reply_buf` is a 1 MiB copy done inside `writev`; on the receive thread it
/// stalls every other response meanwhile (the congestion window drains). Small replies stay on the
/// receive thread, where a thread hop would cost more than the copy (reference notes: ~40 % for
/// 4 KiB I/O on 2 cores).
final class ReplyThread: @unchecked Sendable {
    // @unchecked: `jobs` and `stopping` are only touched with `mutex` held.
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let ready = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var jobs: [@Sendable () -> Void] = []
    private var stopping = false
    private var thread: Thread?
    /// Replies of at least this many bytes go through the thread.
    static let threshold = 256 * 1024

    init() {
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(ready, nil)
        let t = Thread { [self] in loop() }
        t.name = "aoefs-reply"
        thread = t
        t.start()
    }

    deinit {
        pthread_cond_destroy(ready)
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
        ready.deallocate()
    }

    /// Runs `job` on the reply thread, in order.
    func async(_ job: @escaping @Sendable () -> Void) {
        pthread_mutex_lock(mutex)
        jobs.append(job)
        pthread_cond_signal(ready)
        pthread_mutex_unlock(mutex)
    }

    /// Runs what is queued, then ends the thread.
    func stop() {
        pthread_mutex_lock(mutex)
        stopping = true
        pthread_cond_signal(ready)
        pthread_mutex_unlock(mutex)
    }

    private func loop() {
        var batch: [@Sendable () -> Void] = []
        while true {
            pthread_mutex_lock(mutex)
            while jobs.isEmpty && !stopping { pthread_cond_wait(ready, mutex) }
            swap(&batch, &jobs)
            let done = stopping && batch.isEmpty
            pthread_mutex_unlock(mutex)
            if done { return }
            for job in batch { job() }
            batch.removeAll(keepingCapacity: true)
        }
    }
}

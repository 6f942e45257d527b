#if canImport(Glibc)
    import Glibc
#endif

/// A value guarded by a mutex, with a condition variable for waiting on it: aoefs's one lock type.
///
/// The mutex is glibc's adaptive one (it spins briefly before sleeping). Why not
/// `Synchronization.Mutex`: on Linux that is a priority-inheritance futex (`FUTEX_LOCK_PI`), so
/// every contended acquire enters the kernel's rt_mutex and hands the lock to a sleeping waiter.
/// On the 4 KiB random-read path through the mount (FUSE workers, the receive thread and the
/// timer thread sharing the engine) `perf record` showed 17 % of the daemon's CPU in
/// `_MutexHandle.lockSlow` and 38 % in context switches. An adaptive mutex lets the thread that is
/// already running take the lock again, which is what a hot path wants. Nothing here needs
/// priority inheritance: no thread of ours runs at real-time priority.
///
/// The condition uses CLOCK_MONOTONIC, so a timed wait is not moved by a change of the wall clock.
///
/// `@unchecked Sendable`: the value is only reached inside `withLock` and `wait`, under the mutex.
public final class Locked<Value: ~Copyable>: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let condition: UnsafeMutablePointer<pthread_cond_t>
    private var value: Value

    /// Creates the lock holding `value`.
    public init(_ value: consuming Value) {
        mutex = .allocate(capacity: 1)
        var attributes = pthread_mutexattr_t()
        pthread_mutexattr_init(&attributes)
        pthread_mutexattr_settype(&attributes, Int32(PTHREAD_MUTEX_ADAPTIVE_NP))
        pthread_mutex_init(mutex, &attributes)
        pthread_mutexattr_destroy(&attributes)
        condition = .allocate(capacity: 1)
        var conditionAttributes = pthread_condattr_t()
        pthread_condattr_init(&conditionAttributes)
        pthread_condattr_setclock(&conditionAttributes, CLOCK_MONOTONIC)
        pthread_cond_init(condition, &conditionAttributes)
        pthread_condattr_destroy(&conditionAttributes)
        self.value = value
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deallocate()
        mutex.deallocate()
    }

    /// Runs `body` with exclusive access to the value. Do not call back into the same lock.
    @inline(__always)
    public func withLock<Result, E: Error>(_ body: (inout Value) throws(E) -> Result) throws(E) -> Result {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value)
    }

    /// Waits until `done` returns true (checked under the lock, first at once and then after each
    /// `broadcast`), or until `timeout` has passed (nil: no limit). Returns what `done` said last.
    @discardableResult
    public func wait(timeout: Duration?, until done: (inout Value) -> Bool) -> Bool {
        var deadline = timespec()
        if let timeout {
            clock_gettime(CLOCK_MONOTONIC, &deadline)
            let (s, atto) = timeout.components
            let nanos = Int(deadline.tv_nsec) + Int(max(0, atto) / 1_000_000_000)
            deadline.tv_sec += Int(max(0, s)) + nanos / 1_000_000_000
            deadline.tv_nsec = nanos % 1_000_000_000
        }
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        while !done(&value) {
            if timeout == nil {
                pthread_cond_wait(condition, mutex)
            } else if pthread_cond_timedwait(condition, mutex, &deadline) == ETIMEDOUT {
                return done(&value)
            }
        }
        return true
    }

    /// Wakes every `wait`er to check its condition again. Call after changing what they check.
    public func broadcast() {
        pthread_cond_broadcast(condition)
    }
}

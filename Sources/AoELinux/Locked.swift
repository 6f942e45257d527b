#if canImport(Glibc)
import Glibc
#endif

/// A value guarded by a plain glibc mutex (adaptive: it spins briefly before sleeping).
///
/// Why not `Synchronization.Mutex`: on Linux that is a priority-inheritance futex
/// (`FUTEX_LOCK_PI`), so every contended acquire enters the kernel's rt_mutex and hands the lock to
/// a sleeping waiter. On the 4 KiB random-read path through the mount (eight FUSE workers, one
/// receive thread and the timer thread sharing the engine) `perf record` showed 17 % of the
/// daemon's CPU in `_MutexHandle.lockSlow` and 38 % in context switches. An adaptive mutex lets
/// the thread that is already running take the lock again, which is what a hot path wants.
///
/// `@unchecked Sendable`: the value is only reached inside `withLock`, under the mutex.
public final class Locked<Value: ~Copyable>: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private var value: Value

    /// Creates the lock holding `value`.
    public init(_ value: consuming Value) {
        mutex = .allocate(capacity: 1)
        var attributes = pthread_mutexattr_t()
        pthread_mutexattr_init(&attributes)
        pthread_mutexattr_settype(&attributes, Int32(PTHREAD_MUTEX_ADAPTIVE_NP))
        pthread_mutex_init(mutex, &attributes)
        pthread_mutexattr_destroy(&attributes)
        self.value = value
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    /// Runs `body` with exclusive access to the value. Do not call back into the same lock.
    @inline(__always)
    public func withLock<Result, E: Error>(_ body: (inout Value) throws(E) -> Result) throws(E) -> Result {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value)
    }
}

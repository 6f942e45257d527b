import AoECore
import AoEEngine
import AoELinux
import AoEProtocol
import FUSEProtocol

/// The channel the mount is served on, and the notifications written to it, each from a thread
/// of its own, never from the loop serving FUSE: the kernel takes locks for them and may wait
/// for requests (a directory's LOOKUP, the write-back of dirty pages) that the loop must stay
/// free to answer.
/// - Names that go (a partition deleted, a target forgotten with its partitions) are invalidated
///   with FUSE_NOTIFY_INVAL_ENTRY in the root and sys/, from the partition reader's thread.
/// - A target's cached pages are dropped with FUSE_NOTIFY_INVAL_INODE (dirty ones are written
///   back first) when the target is revalidated, changes size or identity, or comes back after
///   being down (`PageCachePolicy.drops`), from the `aoefs-notify` thread: what a block device does on
///   a media change.
final class Notifications: Sendable {
    /// Set when serving begins (the loop's thread reads it; the table reader notifies through it).
    private let current = Locked<KernelChannel?>(nil)
    /// `stopped`: set by teardown, no notification is written after (the session is then
    /// destroyed). `writing`: notifications being written now, which teardown waits for.
    private let state = Locked((stopped: false, writing: 0))
    private let worker = WorkerPool(threads: 1, name: "aoefs-notify")

    var channel: KernelChannel? { current.withLock { $0 } }

    func serve(_ channel: KernelChannel) { current.withLock { $0 = channel } }

    func entriesGone(_ names: [String]) {
        write(
            names.flatMap { name in
                [1, 2].map { FUSENotification.invalEntry(parent: $0, name: Array(name.utf8)) }  // the root, sys/
            })
    }

    /// As `entriesGone`, on the notify thread (for callers in the loop).
    func entriesGoneLater(_ names: [String]) {
        guard !names.isEmpty else { return }
        worker.async { [self] in entriesGone(names) }
    }

    /// Drops the kernel's cached pages and attributes of `inodes`, then the names in `names`, on
    /// the notify thread. Dropping the name too lets the kernel forget the inode once nothing
    /// holds it open: its next lookup takes the size afresh (with write-back caching the kernel
    /// trusts its own size of an inode it keeps).
    func dropCaches(_ inodes: [UInt64], names: [String] = []) {
        guard !inodes.isEmpty else { return }
        worker.async { [self] in
            dropCachesNow(inodes)
            entriesGone(names)
        }
    }

    /// As `dropCaches`, on this thread (never the loop's).
    func dropCachesNow(_ inodes: [UInt64]) { write(inodes.map { .invalInode(ino: $0, offset: 0, length: 0) }) }

    private func write(_ notes: [FUSENotification]) {
        guard !notes.isEmpty else { return }
        let go = state.withLock { s in
            guard !s.stopped else { return false }
            s.writing += 1
            return true
        }
        guard go, let channel = channel else {
            if go { done() }
            return
        }
        for n in notes { channel.notify(n) }  // ENOENT: the kernel had no such entry or inode cached
        done()
    }

    private func done() {
        state.withLock { $0.writing -= 1 }
        state.broadcast()
    }

    /// No notification after this. Waits up to `timeout` for one being written (an inval of
    /// dirty pages waits for their write-back); returns false if one still is, and then the
    /// session must not be destroyed under it.
    @discardableResult
    func stop(timeout: Duration = .seconds(5)) -> Bool {
        state.withLock { $0.stopped = true }
        let idle = state.wait(timeout: timeout) { $0.writing == 0 }
        worker.stop()
        return idle
    }
}

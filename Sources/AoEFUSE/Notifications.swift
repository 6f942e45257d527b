import AoELinux
import FUSEProtocol

/// The channel the mount is served on, and the notifications written to it: names that go (a
/// partition deleted, a target forgotten with its partitions) are invalidated with
/// FUSE_NOTIFY_INVAL_ENTRY in the root and sys/, so no cached dentry outlives them. Written from
/// the partition reader's thread only: the kernel takes the directory's lock for it and may wait
/// for a request in that directory, which the loop serving FUSE must stay free to answer.
final class Notifications: Sendable {
    /// Set when serving begins (the loop's thread reads it; the table reader notifies through it).
    private let current = Locked<KernelChannel?>(nil)
    /// True once teardown unmounted: no notification is written after (the session is then
    /// destroyed). Held while one is written, so teardown waits for it.
    private let stopped = Locked(false)

    var channel: KernelChannel? { current.withLock { $0 } }

    func serve(_ channel: KernelChannel) { current.withLock { $0 = channel } }

    func entriesGone(_ names: [String]) {
        guard !names.isEmpty else { return }
        // Lock order: this, then the channel's; never the other way round.
        stopped.withLock { stopped in
            guard !stopped, let channel = current.withLock({ $0 }) else { return }
            for name in names {
                for parent: UInt64 in [1, 2] {  // the root, sys/ (InodeTable's fixed numbers)
                    channel.notify(.invalEntry(parent: parent, name: Array(name.utf8)))
                }
            }
        }
    }

    /// No notification after this; one being written is waited for.
    func stop() { stopped.withLock { $0 = true } }
}

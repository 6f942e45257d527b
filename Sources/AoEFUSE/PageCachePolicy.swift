import AoECore
import AoELinux
import AoEProtocol
import FUSEProtocol

/// The page-cache rules of the images and partitions, in one place (issue 34): how an open is
/// cached, when the kernel's cached pages of a target must go, and when a cached write that never
/// reached the target makes `fsync` and `close` fail. Pure: `Handles` owns the one instance
/// (under its lock, beside the open files it is about) and the FUSE layer acts on its answers
/// (`Notifications` drops pages, `flush`/`fsync` answer EIO).
///
/// Between the events that drop it, the cache is trusted, as a block device's is: two
/// initiators writing one target must open it O_DIRECT (as with the kernel's driver).
struct PageCachePolicy: Sendable {
    /// What a target looked like when last seen: the facts whose change makes its cache wrong.
    private struct Seen: Equatable {
        var up: Bool
        var sectors: UInt64?
        var serial: String?
        var model: String?
    }

    private var seen: [TargetAddress: Seen] = [:]
    /// Cached writes (write-back) that never reached each target, counted.
    private var lost: [TargetAddress: UInt64] = [:]
    /// Per image or partition handle: its target, and `lost` of that target when it was opened.
    private var lostAtOpen: [UInt64: (TargetAddress, UInt64)] = [:]

    // MARK: - How an open is cached

    /// The FOPEN flags of an open (issue 23), as a block device's would be. An image or partition
    /// opened without O_DIRECT goes through the kernel's page cache: reads ahead, writes back
    /// (FUSE_WRITEBACK_CACHE), and its cache outlives the open (FOPEN_KEEP_CACHE: without it the
    /// kernel drops the inode's cache at every open, also the pages other opens cached). Opened
    /// O_DIRECT it bypasses the cache, as a cluster filesystem or a database wants, and several
    /// writers of it are not serialised by the inode lock. Pseudo-files and control files are
    /// always direct: a read shows the state now, a write acts at once.
    static func openFlags(image: Bool, flags: UInt32) -> UInt32 {
        guard image else { return FUSEOpenFlags.directIO }
        if flags & openDirectFlag != 0 {
            return FUSEOpenFlags.directIO | FUSEOpenFlags.parallelDirectWrites | FUSEOpenFlags.keepCache
        }
        return FUSEOpenFlags.keepCache
    }

    // MARK: - When cached pages go

    /// The targets whose cached pages must go, given the target table now (remembered for the
    /// next call): one back up after being down (writes may have reached it another way
    /// meanwhile), one whose size changed, one whose serial or model changed (another disk
    /// under the same shelf.slot). A target seen for the first time has nothing cached.
    /// (Besides these: `revalidate` drops a target's pages, and a re-read partition table
    /// drops the partitions that changed — both explicit requests, not rules.)
    mutating func drops(after targets: [TargetSnapshot]) -> [TargetAddress] {
        var out: [TargetAddress] = []
        for t in targets {
            let now = Seen(
                up: t.state == .up, sectors: t.identity?.sectors, serial: t.identity?.serial,
                model: t.identity?.model)
            if let before = seen[t.address],
                (now.up && !before.up)
                    || (now.sectors != nil && before.sectors != nil && now.sectors != before.sectors)
                    || (now.serial != nil && before.serial != nil
                        && (now.serial != before.serial || now.model != before.model))
            {
                out.append(t.address)
            }
            seen[t.address] = now
        }
        return out
    }

    // MARK: - When a lost write poisons fsync

    /// `handle` was opened (or adopted from a predecessor daemon) on `target`.
    mutating func opened(_ handle: UInt64, on target: TargetAddress) {
        lostAtOpen[handle] = (target, lost[target] ?? 0)
    }

    mutating func released(_ handle: UInt64) { lostAtOpen[handle] = nil }

    /// A cached write to `target` did not reach it (the target down past deadsecs, disabled,
    /// gone; or beyond its end): the pages are lost, and the writer learnt nothing yet.
    mutating func lostWrite(_ target: TargetAddress) { lost[target, default: 0] += 1 }

    /// Whether cached writes to `handle`'s target were lost since it was opened: then its `fsync`
    /// and `close` fail with EIO, not once but every time (a later `fsync` must not claim success
    /// for pages that never reached the target), as a block device's do.
    func lostWrites(since handle: UInt64) -> Bool {
        guard let (target, at) = lostAtOpen[handle] else { return false }
        return (lost[target] ?? 0) > at
    }
}

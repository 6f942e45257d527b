import AoECore
import AoELinux
import AoEProtocol

/// The open handles: what each image or partition handle was opened on, how many are open per
/// target (a target in use is not flushed away, and reads `down,closewait` while down), which
/// wrote a sector of their target's partition table, each pseudo-file handle's text as first
/// read, and — through the page-cache rules, `PageCachePolicy` — the cached writes each target
/// lost since each handle was opened, and when a target's cached pages must go. Owns its state;
/// one lock.
final class Handles: Sendable {
    /// An open image or partition: I/O on a partition handle keeps to the partition it was opened
    /// on, and fails (EIO) once the table no longer has it.
    enum OpenFile: Sendable, Equatable {
        case image(TargetAddress)
        case partition(PartitionName, Partition)

        var target: TargetAddress {
            switch self {
            case .image(let t): t
            case .partition(let p, _): p.target
            }
        }
    }

    private struct State {
        var files: [UInt64: OpenFile] = [:]
        var openPerTarget: [TargetAddress: Int] = [:]
        var tableWriters: Set<UInt64> = []
        var rendered: [UInt64: [UInt8]] = [:]
        var cache = PageCachePolicy()
        var next: UInt64 = 1
        /// The first handle this daemon gave out; those below are a predecessor's.
        var first: UInt64 = 1
    }

    private let state = Locked(State())

    /// A new handle, on `file` when it is an image or a partition (nil: a pseudo-file, a control).
    func open(_ file: OpenFile?) -> UInt64 {
        state.withLock { s in
            defer { s.next += 1 }
            if let file {
                s.files[s.next] = file
                s.openPerTarget[file.target, default: 0] += 1
                s.cache.opened(s.next, on: file.target)
            }
            return s.next
        }
    }

    /// Forgets `handle`. Returns its target when it wrote the target's partition table (which is
    /// then read again, as BLKRRPART would).
    func release(_ handle: UInt64) -> TargetAddress? {
        state.withLock { s in
            s.rendered[handle] = nil
            s.cache.released(handle)
            guard let f = s.files.removeValue(forKey: handle) else { return nil }
            s.openPerTarget[f.target, default: 1] -= 1
            return s.tableWriters.remove(handle) != nil ? f.target : nil
        }
    }

    /// What `handle` was opened on.
    func file(_ handle: UInt64) -> OpenFile? { state.withLock { $0.files[handle] } }

    /// A daemon restarted under a live mount (issue 30) numbers its handles from `first`: the
    /// kernel still holds its predecessors' numbers, which must not be handed out again. The
    /// supervisor's incarnation count, shifted past any count of opens one daemon reaches.
    func numberFrom(_ first: UInt64) {
        state.withLock { s in
            s.next = max(s.next, first)
            s.first = s.next
        }
    }

    /// Handles below this number were a predecessor daemon's.
    var firstOwn: UInt64 { state.withLock { $0.first } }

    /// The handle the kernel got from a predecessor daemon, on `file`: taken on as if opened
    /// here (at its first READ, WRITE or FSYNC), so its I/O, `close` and open count work. A
    /// handle this daemon made is left as it is.
    func adopt(_ handle: UInt64, _ file: OpenFile) -> OpenFile {
        state.withLock { s in
            if let known = s.files[handle] { return known }
            s.files[handle] = file
            s.openPerTarget[file.target, default: 0] += 1
            s.cache.opened(handle, on: file.target)
            return file
        }
    }

    /// Image and partition handles open on `target`.
    func openCount(_ target: TargetAddress) -> Int { state.withLock { $0.openPerTarget[target] ?? 0 } }

    /// A cached write to `target` did not reach it (`PageCachePolicy.lostWrite`).
    func lostWrite(_ target: TargetAddress) { state.withLock { $0.cache.lostWrite(target) } }

    /// Whether `fsync` and `close` of `handle` fail (`PageCachePolicy.lostWrites`).
    func lostWrites(since handle: UInt64) -> Bool { state.withLock { $0.cache.lostWrites(since: handle) } }

    /// The targets whose cached pages must go after a change of the table
    /// (`PageCachePolicy.drops`).
    func cacheDrops(after targets: [TargetSnapshot]) -> [TargetAddress] {
        state.withLock { $0.cache.drops(after: targets) }
    }

    /// `handle` wrote a sector of its target's partition table.
    func wroteTable(_ handle: UInt64) { state.withLock { _ = $0.tableWriters.insert(handle) } }

    /// A pseudo-file's text as one open handle sees it: rendered at the read from offset 0 and
    /// kept until the handle is released, so a reader that needs several reads (or a table that
    /// changes between them) gets one consistent snapshot, as sysfs's seq_file gives. Without it
    /// a second read re-rendered the file and could return the tail of a newer text.
    func renderedOnce(_ handle: UInt64, offset: Int, _ render: () -> [UInt8]?) -> [UInt8]? {
        if offset > 0, let kept = state.withLock({ $0.rendered[handle] }) { return kept }
        guard let text = render() else { return nil }
        state.withLock { $0.rendered[handle] = text }
        return text
    }
}

import AoECore
import AoEDoctor
import AoEEngine
import AoELinux
import AoEProtocol
import FUSEProtocol
import Foundation
import Synchronization

/// A failure to mount, in one line.
public struct FUSEError: Error, CustomStringConvertible {
    public var description: String
    public init(_ d: String) { description = d }
}

/// The aoefs tree (DESIGN §2, §5): `eS.L` images, `sys/eS.L/` attributes and `etherd/`
/// controls, served by our own FUSE protocol core (`KernelChannel`; libfuse3 only mounts).
///
/// Operations never block: image I/O is handed to the engine and answered from its completion,
/// on the thread that completes it (the link's event loop). A read of `etherd/err` with nothing to say is parked and answered
/// when a line arrives, or with EINTR when the reader is interrupted.
///
/// Its parts, each owning its state: the tree and attributes (here, with `InodeTable`), the
/// operations (`FileSystem+Operations`), the open handles (`Handles`), `etherd/` writes
/// (`ControlCommand`), `etherd/err` readers (`ErrReaders`), partition tables and their worker
/// (`PartitionTables`), the channel and its notifications (`Notifications`), and the session's
/// lifecycle (`FileSystem+Session`, served by `KernelChannel`).
public final class AoEFileSystem: @unchecked Sendable {
    // @unchecked: `session` is touched only by the thread that mounts, serves and tears down
    // (`MountSession`), never by `stop` (the signal thread) or the table reader; everything else
    // that changes is behind a lock of its owner.
    public let engine: Engine
    public let mountpoint: String
    /// Names ↔ inode numbers (the tree; its own lock).
    let inodes = Locked(InodeTable())
    /// The open handles.
    let handles = Handles()
    /// The daemon serving the mount and its supervisor (`sys/daemon`); set when a supervised
    /// daemon gets its descriptor.
    let daemonInfo = Locked(DaemonInfo())
    /// Readers of `etherd/err`.
    let errReaders: ErrReaders
    /// The channel, and the notifications written to it.
    let notifications = Notifications()
    /// Each target's partition table, read on a worker of its own.
    let tables: PartitionTables
    /// Sends the replies `ReplyRoute` sends off the event loop (large READs over /dev/fuse while
    /// others wait): a 1 MiB READ reply there is a 1 MiB copy inside `writev`, which in the loop
    /// would stall every other response (the window drains).
    let replies = WorkerPool(threads: 1, name: "aoefs-reply")
    /// Readahead of the images' buffered reads, in KiB: what the Linux aoe driver's queue gets
    /// (2 × its io_opt of 2 MiB).
    public static let readaheadKB = 4096
    /// Writes of at least this many bytes keep the request buffer instead of copying it.
    static let adoptedWrite = 64 * 1024
    /// Requests handed to the engine and not yet answered (teardown waits for them to drain).
    let waiting = Locked(0)
    /// Set by `hurry`: teardown stops waiting for the I/O still in the engine.
    let hurried = Atomic<Bool>(false)
    /// Set once serving must end: unmounted, `stop()`, or a signal.
    let ended = Locked(false)
    /// Set once `stop` has lazily unmounted the mountpoint.
    let detached = Locked(false)
    /// libfuse's session (it only mounted): set by `mount`, used by `beginServing` and cleared
    /// by `teardown`, all on the thread that runs the mount; no other thread touches it.
    var session: OpaquePointer?
    /// A supervised daemon's /dev/fuse, handed over by its supervisor (issue 30); -1 otherwise.
    /// Same thread discipline as `session`.
    var adoptedDevice: Int32 = -1
    /// This daemon took over a live mount from one that ended: the kernel is asked to send the
    /// requests left unanswered again.
    var resumed = false
    /// Set by `handOver`: serving ends without unmounting.
    let handingOver = Atomic<Bool>(false)
    /// Armed by `PlantedTrap` in tests: the WRITE that brings it to 0 traps.
    let trapAfterWrites = Atomic<Int>(0)
    /// Our own protocol core on the session's descriptor, set by `serve`.
    var channel: KernelChannel? { notifications.channel }
    let mountTime = time(nil)
    let owner = (uid: getuid(), gid: getgid())

    public init(engine: Engine, mountpoint: String) {
        self.engine = engine
        self.mountpoint = mountpoint
        errReaders = ErrReaders(engine: engine)
        let notifications = self.notifications, inodes = self.inodes
        tables = PartitionTables(engine: engine) { partitions, names in
            // The pages first: once the name is gone, an open partition reads EIO, not its cache.
            notifications.dropCachesNow(partitions.map { p in inodes.withLock { $0.inode(.partition(p)) } })
            notifications.entriesGone(names)
        }
        _ = handles.cacheDrops(after: engine.targets())
        engine.addTargetObserver { [weak self] in self?.targetsChanged() }
    }

    /// After a change of the target table (in a loop's pass: nothing here waits).
    private func targetsChanged() {
        for t in handles.cacheDrops(after: engine.targets()) { dropCache(t) }
    }

    /// Drops the kernel's cached pages of `target`'s image and partitions (revalidate, a changed
    /// target, one back from down).
    func dropCache(_ target: TargetAddress) {
        let parts = tables.partitions(of: target).map { PartitionName(target: target, number: $0.number) }
        let nodes = [Node.image(target)] + parts.map(Node.partition)
        notifications.dropCaches(nodes.map(inode), names: [target.description] + parts.map(\.description))
    }

    /// Called with every diagnostic line the engine logs: wakes parked readers of `etherd/err`.
    public func logged() { errReaders.logged() }

    // MARK: - Nodes

    func node(_ ino: UInt64) -> Node? { inodes.withLock { $0.node(ino) } }
    func inode(_ n: Node) -> UInt64 { inodes.withLock { $0.inode(n) } }

    /// Targets that have an image: identified at least once.
    func imageTargets() -> [TargetSnapshot] { engine.targets().filter { $0.identity != nil } }

    /// One target with an image: looks up only that target.
    func snapshot(_ t: TargetAddress) -> TargetSnapshot? { engine.target(t).flatMap { $0.identity == nil ? nil : $0 } }

    /// One target with a `sys/` directory: every target that answered Query Config, identified
    /// or not (one that never answers IDENTIFY reads `identifying` there, issue 21).
    func sysSnapshot(_ t: TargetAddress) -> TargetSnapshot? { engine.target(t) }

    func children(_ n: Node) -> [(String, Node)]? {
        switch n {
        case .root:
            // A disabled target keeps its sys/ directory (its state says disabled), not its image.
            var out: [(String, Node)] = []
            for t in imageTargets() where t.state != .disabled {
                out.append((t.address.description, .image(t.address)))
                for p in partitionNames(t.address) { out.append((p.description, .partition(p))) }
            }
            return out + [("etherd", .etherdDir), ("sys", .sysDir)]
        case .sysDir:
            var out: [(String, Node)] = []
            for t in engine.targets() {
                out.append((t.address.description, .targetDir(t.address)))
                if t.state != .disabled {
                    for p in partitionNames(t.address) { out.append((p.description, .partitionDir(p))) }
                }
            }
            return out + [("daemon", .daemon), (EngineFacts.fileName, .facts), ("metrics", .metrics)]
        case .etherdDir: return ControlFile.allCases.map { ($0.rawValue, Node.control($0)) }
        case .targetDir(let t): return SysFile.allCases.map { ($0.rawValue, Node.targetFile(t, $0)) }
        case .partitionDir(let p): return PartitionFile.allCases.map { ($0.rawValue, Node.partitionFile(p, $0)) }
        case .image, .targetFile, .control, .partition, .partitionFile, .metrics, .daemon, .facts: return nil
        }
    }

    /// The child of `parent` called `name`, found without listing the directory: a lookup costs
    /// the same with one target or a thousand.
    func child(of parent: Node, named name: String) -> Node? {
        func target(_ name: String) -> TargetAddress? {
            // Only the canonical spelling names a file (`e10.3`, not `10.3` or `e010.3`).
            guard let t = TargetAddress(parsing: name), t.description == name, snapshot(t) != nil else { return nil }
            return t
        }
        func partition(_ name: String) -> PartitionName? {
            guard let p = PartitionName(parsing: name), p.description == name, self.partition(p) != nil,
                let s = snapshot(p.target), s.state != .disabled
            else { return nil }
            return p
        }
        switch parent {
        case .root:
            if name == "etherd" { return .etherdDir }
            if name == "sys" { return .sysDir }
            if let t = target(name) { return snapshot(t)?.state == .disabled ? nil : Node.image(t) }
            return partition(name).map(Node.partition)
        case .sysDir:
            if name == "metrics" { return .metrics }
            if name == "daemon" { return .daemon }
            if name == EngineFacts.fileName { return .facts }
            if let t = TargetAddress(parsing: name), t.description == name, sysSnapshot(t) != nil {
                return .targetDir(t)
            }
            return partition(name).map(Node.partitionDir)
        case .etherdDir: return ControlFile(rawValue: name).map(Node.control)
        case .targetDir(let t): return SysFile(rawValue: name).map { Node.targetFile(t, $0) }
        case .partitionDir(let p): return PartitionFile(rawValue: name).map { Node.partitionFile(p, $0) }
        case .image, .targetFile, .control, .partition, .partitionFile, .metrics, .daemon, .facts: return nil
        }
    }

    /// The node's attributes, or nil when it does not exist (its target is gone).
    func attributes(_ n: Node) -> FUSEAttr? {
        var image: TargetSnapshot?
        var part: Partition?
        switch n {
        case .root, .sysDir, .etherdDir, .control, .metrics, .daemon, .facts: break
        case .image(let t):
            guard let s = snapshot(t), s.state != .disabled else { return nil }
            image = s
        case .targetDir(let t), .targetFile(let t, _):
            guard let s = sysSnapshot(t) else { return nil }
            image = s
        case .partition(let p), .partitionDir(let p), .partitionFile(let p, _):
            guard let s = snapshot(p.target), s.state != .disabled, let found = partition(p) else { return nil }
            image = s
            part = found
        }
        return Attributes.of(n, inode: inode(n), image: image, partition: part, owner: owner, time: mountTime)
    }

    /// The names of `target`'s partition files.
    func partitionNames(_ target: TargetAddress) -> [PartitionName] {
        tables.partitions(of: target).map { PartitionName(target: target, number: $0.number) }
    }

    func partition(_ name: PartitionName) -> Partition? { tables.partition(name) }
}

/// A node's attributes (the kernel's `fuse_attr`). Pure: the node, its inode and (for target
/// nodes) the target in, attributes out.
enum Attributes {
    static func of(
        _ n: Node, inode: UInt64, image: TargetSnapshot?, partition: Partition? = nil,
        owner: (uid: uid_t, gid: gid_t), time: time_t
    ) -> FUSEAttr {
        let t = UInt64(max(time, 0))
        var a = FUSEAttr(ino: inode, atime: t, mtime: t, ctime: t, mode: 0, uid: owner.uid, gid: owner.gid)
        switch n {
        case .root, .sysDir, .etherdDir, .targetDir, .partitionDir:
            a.mode = S_IFDIR | 0o755
            a.nlink = 2
        case .image:
            a.mode = S_IFREG | 0o660
            a.size = image?.identity?.capacity ?? 0
            a.blocks = a.size / 512
            a.blksize = UInt32(max(image?.payload ?? 0, 512))
        case .partition:
            a.mode = S_IFREG | 0o660
            a.size = (partition?.size ?? 0) * 512
            a.blocks = a.size / 512
            a.blksize = UInt32(max(image?.payload ?? 0, 512))
        case .partitionFile:
            a.mode = S_IFREG | 0o444
            a.size = 4096
        case .targetFile(_, let f):
            a.mode = S_IFREG | (f == .config ? 0o644 : 0o444)
            a.size = 4096  // pseudo-files are read with direct I/O; the size is a hint
        case .control(let c):
            a.mode = S_IFREG | (c == .err ? 0o444 : c == .interfaces ? 0o644 : 0o200)
        case .metrics, .daemon, .facts:
            a.mode = S_IFREG | 0o444
            a.size = 4096  // read with direct I/O, like the other pseudo-files
        }
        return a
    }
}

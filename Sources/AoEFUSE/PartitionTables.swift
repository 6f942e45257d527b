import AoECore
import AoEEngine
import AoELinux
import AoEProtocol

/// A target's partition table as the tree shows it (`eS.LpN`), and what it was read from.
struct TargetPartitions: Sendable {
    var table: PartitionTable
    /// The capacity (sectors) it was read at: a target that grew or shrank is read again.
    var capacity: UInt64
    /// The sectors the table lives in: the MBR, the GPT headers and entry arrays (both ends of
    /// the disk, where they would be if there were none yet) and every extended boot record read.
    /// A handle that writes one of them makes the table be read again when it is released.
    var sectors: [Range<UInt64>]

    /// Sectors a table would be written to on a disk of `capacity` sectors, before one is read:
    /// the MBR and primary GPT (0–33) and the backup GPT (the last 33).
    static func usualSectors(capacity: UInt64) -> [Range<UInt64>] {
        [0..<min(34, capacity), (capacity > 33 ? capacity - 33 : 0)..<capacity]
    }

    func partition(_ number: Int) -> Partition? { table.partitions.first { $0.number == number } }

    func touches(_ bytes: Range<UInt64>) -> Bool {
        guard !bytes.isEmpty else { return false }
        let first = bytes.lowerBound / 512, last = (bytes.upperBound - 1) / 512
        return sectors.contains { $0.lowerBound <= last && first < $0.upperBound }
    }
}

/// The name of a partition file: `e10.3p1` is partition 1 of `e10.3`, as Linux's aoe driver names
/// them (the image name, `p`, the number). Only the canonical spelling names one.
struct PartitionName: Hashable, Sendable {
    var target: TargetAddress
    var number: Int

    init(target: TargetAddress, number: Int) {
        self.target = target
        self.number = number
    }

    init?(parsing name: String) {
        guard let p = name.lastIndex(of: "p"), let t = TargetAddress(parsing: String(name[..<p])),
            t.description == name[..<p], let n = Int(name[name.index(after: p)...]), n > 0,
            String(n) == name[name.index(after: p)...]
        else { return nil }
        target = t
        number = n
    }

    var description: String { "\(target)p\(number)" }
}

/// Partition tables: read on a worker thread (never on the thread that serves FUSE, since a read
/// waits for the target) when a target comes up, when its capacity changes, on `revalidate`, and
/// when a handle that wrote the table's sectors is released (what `BLKRRPART` does for fdisk).
/// Owns the tables and its worker; one lock. Partitions and names that go are handed to `gone`
/// (on the worker's thread), which tells the kernel.
final class PartitionTables: Sendable {
    private struct State {
        var tables: [TargetAddress: TargetPartitions] = [:]
        var wanted: Set<TargetAddress> = []
        var passPosted = false
        var closed = false
    }

    private let engine: Engine
    private let state = Locked(State())
    /// Reads tables, which waits for the target: never on the thread serving FUSE.
    private let reader = WorkerPool(threads: 1, name: "aoefs-tables")
    private let gone: @Sendable (_ partitions: [PartitionName], _ names: [String]) -> Void

    /// Starts watching the engine's targets for tables to read. `gone` gets the partitions that
    /// went (their cached pages must go: an open one then reads EIO) and every name that went.
    init(engine: Engine, gone: @escaping @Sendable (_ partitions: [PartitionName], _ names: [String]) -> Void) {
        self.engine = engine
        self.gone = gone
        engine.addTargetObserver { [weak self] in self?.schedule() }
        schedule()
    }

    /// No table is read after this; the worker ends.
    func stop() {
        state.withLock { $0.closed = true }
        reader.stop()
    }

    /// Waits until the tables of `targets` have been read (or `timeout` passes); true if they
    /// were. A resumed daemon (issue 30) serves a predecessor's partition handles only then.
    func waitUntilRead(_ targets: [TargetAddress], timeout: Duration) -> Bool {
        state.wait(timeout: timeout) { s in targets.allSatisfy { s.tables[$0] != nil } }
    }

    /// Asks for `target`'s table to be read again (even if nothing about the target changed).
    func reread(_ target: TargetAddress) {
        state.withLock { _ = $0.wanted.insert(target) }
        schedule()
    }

    /// Posts one table pass unless one is already waiting to run (changes coalesce).
    private func schedule() {
        let post = state.withLock { s in
            defer { s.passPosted = true }
            return !s.passPosted && !s.closed
        }
        if post { reader.async { [weak self] in self?.pass() } }
    }

    /// One pass over the targets: reads the tables that are missing, stale or asked for, and
    /// forgets those of targets that are gone.
    private func pass() {
        let wanted = state.withLock { s in
            s.passPosted = false
            return s.wanted
        }
        let targets = engine.targets()
        let present = Set(targets.map(\.address))
        for t in targets {
            guard t.state == .up, let capacity = t.identity?.sectors else { continue }
            let known = state.withLock { $0.tables[t.address] }
            guard known == nil || known?.capacity != capacity || wanted.contains(t.address) else { continue }
            guard let fresh = readTable(t.address, capacity: capacity) else { continue }
            let before = known?.table
            state.withLock { s in
                s.tables[t.address] = fresh
                s.wanted.remove(t.address)
            }
            state.broadcast()
            if fresh.table != before {
                // The kernel forgets the names that went before the log says what is there.
                let now = Set(fresh.table.partitions.map(\.number))
                let went = (before?.partitions ?? []).filter { !now.contains($0.number) }.map {
                    PartitionName(target: t.address, number: $0.number)
                }
                if !went.isEmpty { gone(went, went.map(\.description)) }
                report(t.address, fresh.table)
            }
        }
        let dropped: (partitions: [PartitionName], names: [String]) = state.withLock { s in
            var partitions: [PartitionName] = []
            var names: [String] = []
            for (t, known) in s.tables where !present.contains(t) {
                // The target itself (flushed, or gone from the list) and its partitions.
                let went = known.table.partitions.map { PartitionName(target: t, number: $0.number) }
                partitions += went
                names += [t.description] + went.map(\.description)
                s.tables[t] = nil
            }
            s.wanted.formIntersection(present)
            return (partitions, names)
        }
        if !dropped.names.isEmpty { gone(dropped.partitions, dropped.names) }
    }

    /// Reads `target`'s table through the engine: sectors 0–33 in one request (the MBR and the
    /// primary GPT), anything else a sector at a time. Nil when the target cannot be read.
    private func readTable(_ target: TargetAddress, capacity: UInt64) -> TargetPartitions? {
        var cache: [UInt64: [UInt8]] = [:]
        var failed = false
        var consulted: [UInt64] = []
        func read(_ lba: UInt64, _ count: Int) -> [UInt8]? {
            let buffer = IOBuffer(count: count * 512)
            let r = engine.waitSync {
                engine.read(target, offset: lba * 512, count: count * 512, into: buffer, completion: $0)
            }
            guard case .success = r else { return nil }
            return Array(buffer.bytes)
        }
        let head = Int(min(34, capacity))
        if let bytes = read(0, head) {
            for i in 0..<head { cache[UInt64(i)] = Array(bytes[(i * 512)..<((i + 1) * 512)]) }
        } else {
            return nil
        }
        let table = PartitionTable.read(capacity: capacity) { lba in
            consulted.append(lba)
            if let s = cache[lba] { return s }
            guard !failed, let s = read(lba, 1) else {
                failed = true
                return nil
            }
            cache[lba] = s
            return s
        }
        if failed { return nil }  // the target went away mid-read; try again when it is back
        let extra = consulted.filter { $0 >= 34 }.map { $0..<($0 + 1) }
        return TargetPartitions(
            table: table, capacity: capacity,
            sectors: TargetPartitions.usualSectors(capacity: capacity) + extra)
    }

    /// One line in `etherd/err` for what was found, and one per problem.
    private func report(_ target: TargetAddress, _ table: PartitionTable) {
        let names = table.partitions.map { PartitionName(target: target, number: $0.number).description }
        engine.note(
            "\(target): partition table \(table.kind.rawValue)"
                + (names.isEmpty ? ", no partitions" : ": " + names.joined(separator: " ")))
        for p in table.problems { engine.note("\(target): partition table: \(p)") }
    }

    /// The partitions of `target` the tree shows.
    func partitions(of target: TargetAddress) -> [Partition] {
        state.withLock { $0.tables[target]?.table.partitions ?? [] }
    }

    func partition(_ name: PartitionName) -> Partition? {
        state.withLock { $0.tables[name.target]?.partition(name.number) }
    }

    /// Whether a write of `bytes` of `target`'s image lands in its table's sectors.
    func writeTouchesTable(_ target: TargetAddress, _ bytes: Range<UInt64>, capacity: UInt64) -> Bool {
        state.withLock { s in
            s.tables[target]?.touches(bytes)
                ?? TargetPartitions(
                    table: PartitionTable(), capacity: capacity,
                    sectors: TargetPartitions.usualSectors(capacity: capacity)
                ).touches(bytes)
        }
    }
}

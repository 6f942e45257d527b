import AoECore
import AoELinux
import AoEProtocol
import Foundation
import Synchronization

/// Runs a `TargetCore` over a link and a backing file: `aoefs serve`.
///
/// The calling thread receives frames and answers everything that needs no disk at once
/// (config, mask, reserve, IDENTIFY, errors), and reads whose data is already in the page cache
/// (preadv2 RWF_NOWAIT) and writes the page cache takes without waiting (pwritev2 RWF_NOWAIT): a
/// thread hop would cost more than that copy. Everything that may wait
/// for the disk goes to a small pool of threads, so several commands are in flight at once
/// (vblade does one blocking pread per frame). Each worker sends its own answer.
public final class TargetServer: Sendable {
    private let core: Locked<TargetCore>
    private let file: BackingFile
    private let link: any Link
    private let pool: WorkerPool
    private let stopFlag = Atomic<Bool>(false)
    private let fsyncs = Atomic<Int>(0)
    private let ioErrors = Atomic<Int>(0)
    private let log: @Sendable (String) -> Void

    /// - Parameters:
    ///   - workers: disk threads (commands in flight at once against the file).
    ///   - log: called with notable events (flushes, I/O errors), for `-v`.
    public init(
        settings: TargetSettings, file: BackingFile, link: any Link, workers: Int = 4,
        log: @escaping @Sendable (String) -> Void = { _ in }
    ) {
        core = Locked(TargetCore(settings: settings))
        self.file = file
        self.link = link
        self.log = log
        pool = WorkerPool(threads: max(1, workers), name: "aoefs-serve")
    }

    /// What was served so far.
    public var counters: TargetCore.Counters { core.withLock { $0.counters } }
    /// How many FLUSH commands reached the disk (fdatasync succeeded).
    public var durableFlushes: Int { fsyncs.load(ordering: .relaxed) }
    /// Disk reads, writes or flushes that failed.
    public var diskErrors: Int { ioErrors.load(ordering: .relaxed) }

    /// Announces the target, then serves until `stop()`; blocks the calling thread.
    /// - Throws: the link's error if it cannot receive at all.
    public func run() throws {
        try link.send(core.withLock { $0.announcements() })
        while !stopFlag.load(ordering: .relaxed) {
            var replies: [[UInt8]] = []
            try link.receive(limit: 64, timeout: .milliseconds(100)) { frame in
                switch core.withLock({ $0.handle(frame) }) {
                case .ignore: break
                case .reply(let r): replies.append(r)
                case .disk(.read(let header, let offset, let count)):
                    if let frame = readNow(header, offset, count) {
                        replies.append(frame)
                    } else {
                        pool.async { [self] in perform(.read(header: header, offset: offset, count: count)) }
                    }
                case .disk(.write(let header, let offset, let data)):
                    switch data.withUnsafeBytes({
                        file.writeWithoutWaiting(from: $0.baseAddress!, count: data.count, at: offset)
                    }) {
                    case true?: replies.append(header)
                    case false?: replies.append(failed(header, "write of \(data.count) bytes at \(offset)"))
                    case nil: pool.async { [self] in perform(.write(header: header, offset: offset, data: data)) }
                    }
                case .disk(let work): pool.async { [self] in perform(work) }
                }
            }
            if !replies.isEmpty { try link.send(replies) }
        }
        pool.waitIdle()
        pool.stop()
    }

    /// Ends `run` (from any thread, e.g. a signal watcher); work already queued is finished.
    public func stop() { stopFlag.store(true, ordering: .relaxed) }

    /// The answer to a read served from the page cache, or nil if it would wait for the disk.
    private func readNow(_ header: [UInt8], _ offset: UInt64, _ count: Int) -> [UInt8]? {
        var outcome: Bool?
        let frame = [UInt8](unsafeUninitializedCapacity: header.count + count) { buf, n in
            _ = header.withUnsafeBufferPointer { h in memcpy(buf.baseAddress!, h.baseAddress!, h.count) }
            outcome = file.readCached(into: buf.baseAddress! + header.count, count: count, at: offset)
            n = outcome == true ? header.count + count : header.count
        }
        switch outcome {
        case true?: return frame
        case false?: return failed(header, "read of \(count) bytes at \(offset)")
        case nil: return nil
        }
    }

    private func perform(_ work: DiskWork) {
        let answer: [UInt8]
        switch work {
        case .read(let header, let offset, let count):
            var ok = true
            let frame = [UInt8](unsafeUninitializedCapacity: header.count + count) { buf, n in
                _ = header.withUnsafeBufferPointer { h in memcpy(buf.baseAddress!, h.baseAddress!, h.count) }
                ok = file.read(into: buf.baseAddress! + header.count, count: count, at: offset)
                n = ok ? header.count + count : header.count
            }
            answer = ok ? frame : failed(header, "read of \(count) bytes at \(offset)")
        case .write(let header, let offset, let data):
            let ok = data.withUnsafeBytes { file.write(from: $0.baseAddress!, count: data.count, at: offset) }
            answer = ok ? header : failed(header, "write of \(data.count) bytes at \(offset)")
        case .trim(let header, let ranges):
            let failedAt = ranges.first { !file.punch(count: $0.count, at: $0.offset) }
            answer = failedAt.map { failed(header, "hole punch of \($0.count) bytes at \($0.offset)") } ?? header
        case .flush(let header):
            if file.flush() {
                fsyncs.add(1, ordering: .relaxed)
                log("flush: fdatasync \(file.path) done")
                answer = header
            } else {
                answer = failed(header, "fdatasync")
            }
        }
        do { try link.send([answer]) } catch { log("\(link.name): \(error)") }
    }

    private func failed(_ header: [UInt8], _ what: String) -> [UInt8] {
        ioErrors.add(1, ordering: .relaxed)
        log("\(file.path): \(what) failed: \(String(cString: strerror(errno)))")
        return TargetCore.failure(of: header)
    }
}

import AoECore
import AoEEngine
import AoELinux
import FUSEProtocol
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// One FUSE request's answer, sent exactly once over our channel (`KernelChannel`, issue 15),
/// encoded with FUSEProtocol. A reply dropped unsent answers EIO rather than leave a `dd`
/// hanging forever (fuser's habit).
///
/// Exactly once, how: an operation that can answer at once returns its answer (`FUSEReply`, or
/// `Answer.now`), so the compiler sees one answer on every path; only the operations that wait
/// (image I/O, fsync, a parked err read) hold a `Reply` past their return, and its atomic
/// `take()` lets one send through. Why not a `~Copyable` reply with consuming methods: the
/// engine's completions are escaping closures, and Swift 6.3 cannot consume a noncopyable value
/// captured by one ("noncopyable 'r' cannot be consumed when captured by an escaping closure").
final class Reply: @unchecked Sendable {
    // @unchecked: used by whichever single thread completes the request; every send path goes
    // through `take()`, whose atomic exchange lets exactly one of them through.
    private let channel: KernelChannel
    /// The kernel's id of the request (its INTERRUPT names it).
    let unique: UInt64
    /// The ring entry the request came in (-1: /dev/fuse).
    private let slot: Int32
    private let sent = Atomic<Bool>(false)

    init(channel: KernelChannel, unique: UInt64, slot: Int32 = -1) {
        self.channel = channel
        self.unique = unique
        self.slot = slot
    }

    /// Where a READ's data should be received so that the reply needs no copy: the ring
    /// entry's payload (nil over /dev/fuse; then the caller allocates).
    func dataBuffer(count: Int) -> UnsafeMutableRawBufferPointer? { channel.payload(slot: slot, count: count) }

    /// Whether the request came in a ring entry. Then its bytes (a WRITE's data) stay put until
    /// this reply is sent — the kernel reuses the entry only after the commit — and the reply is
    /// best committed on the receive thread (see `read`).
    var viaRing: Bool { slot >= 0 }

    /// True for the one caller that may send; false once the reply is sent.
    private func take() -> Bool { !sent.exchange(true, ordering: .acquiringAndReleasing) }

    func send(_ reply: FUSEReply, _ outbox: inout Outbox) {
        guard take() else { return }
        channel.send(reply.encoded(unique: unique), unique: unique, slot: slot, &outbox)
    }

    /// Answers from outside a pass (an err reader woken by a log line, teardown): sent now.
    func now(_ body: (Reply, inout Outbox) -> Void) {
        var outbox = Outbox()
        body(self, &outbox)
        channel.flush(&outbox)
    }

    func error(_ code: Int32, _ outbox: inout Outbox) { send(.error(code), &outbox) }

    /// The request takes no reply (FORGET, INTERRUPT) or has had one by other means.
    func noReply() { _ = take() }

    /// `count` bytes at `p` as the reply's data (gathered with the header in one writev, or
    /// committed from the ring entry's payload, where a READ's data was received).
    func buffer(_ p: UnsafeRawPointer?, _ count: Int, _ outbox: inout Outbox) {
        guard take() else { return }
        channel.send(
            FUSEReply.data(count: count).encoded(unique: unique),
            payload: UnsafeRawBufferPointer(start: p, count: count), unique: unique, slot: slot, &outbox)
    }

    func bytes(_ b: [UInt8], _ outbox: inout Outbox) { b.withUnsafeBytes { buffer($0.baseAddress, $0.count, &outbox) } }

    func written(_ count: Int, _ outbox: inout Outbox) { send(.write(size: UInt32(count)), &outbox) }

    /// Sends what an operation answered: `.now` at once, `.later` not (the operation handed this
    /// reply on, to a completion or a parked reader).
    func send(_ answer: Answer, _ outbox: inout Outbox) {
        if case .now(let reply) = answer { send(reply, &outbox) }
    }

    /// Calls `ErrReaders.interrupted(id)` if the kernel interrupts this request (a
    /// blocked reader). True when the kernel interrupted it already: answer now.
    func onInterrupt(_ id: UInt64) -> Bool { channel.watchInterrupt(of: unique, waiter: id) }

    /// A reply nobody sent answers EIO (fuser's habit): a lost answer would leave the caller
    /// (a `dd`) waiting for good.
    deinit {
        if !sent.load(ordering: .acquiring) {
            var outbox = Outbox()
            channel.send(FUSEReply.error(EIO).encoded(unique: unique), unique: unique, slot: slot, &outbox)
            channel.flush(&outbox)
        }
    }
}

/// Which thread sends a reply: the one rule (issue 34).
///
/// - Every reply is sent in the pass of the thread that has it — the one that dispatched the
///   request (an answer at once) or completed its I/O (the link's event loop) — into that
///   pass's outbox, flushed once at its end. Over the ring, with serving threads, "sent" means
///   queued on the entry's ring: its own thread submits it (`RingQueue.flushOutbox`).
/// - Except a large READ reply over /dev/fuse while other requests wait (`read`): the reply
///   thread (`AoEFileSystem.replies`) writes it, so the event loop goes back to its frames
///   instead of copying up to 1 MiB into the reader while every other answer waits.
/// - A reply sent from outside a pass (an `etherd/err` reader woken by a log line, teardown, a
///   `Reply` dropped unsent, which answers EIO) is flushed at once by the thread that sends it
///   (`Reply.now`, `Reply.deinit`).
enum ReplyRoute: Equatable {
    /// In the pass of the thread that has the reply.
    case inPass
    /// On the reply thread.
    case replyThread

    /// READ replies of at least this many bytes may hop.
    static let largeReply = 256 * 1024

    /// A READ's reply of `bytes`. Over the ring it stays in the pass: the kernel would hand the
    /// entry's next request to the thread that committed it (task work on that thread, one more
    /// wake-up; measured, fio 1 MiB QD 4 read 1.04 × without the hop). With nothing else waiting
    /// (`waiting` ≤ 1: a reader at queue depth 1) no other answer can be held up, and the hop
    /// would only add a wake-up to the reader's critical path. Small replies stay: a hop costs
    /// more than their copy (~40 % for 4 KiB I/O on 2 cores).
    /// (`waiting` is read only for a large reply over /dev/fuse: it takes a lock.)
    static func read(bytes: Int, viaRing: Bool, waiting: @autoclosure () -> Int) -> ReplyRoute {
        bytes >= largeReply && !viaRing && waiting() > 1 ? .replyThread : .inPass
    }
}

/// The one place engine errors become errno values for FUSE.
func errnoValue(for error: AoEIOError) -> Int32 {
    switch error {
    case .beyondEnd: ENOSPC
    case .noSuchTarget: ENODEV
    case .trimNotOffered: EOPNOTSUPP
    case .targetDown, .disabled, .ataError, .aoeError, .shutdown: EIO
    case .interrupted: EINTR
    }
}

/// What an operation answers: its reply now, or later through the `Reply` it was given.
enum Answer {
    case now(FUSEReply)
    /// The operation kept the `Reply` (a completion or a parked reader sends it, once).
    case later
}

extension FUSEReply {
    /// A directory listing from `offset`: `(name, inode, is a directory)` each, as many as fit
    /// `size` bytes.
    static func directory(_ entries: [(String, UInt64, Bool)], size: Int, offset: Int) -> FUSEReply {
        var w = FUSEDirectoryWriter(limit: size)
        for (i, (name, ino, isDir)) in entries.enumerated() where i >= offset {
            if !w.add(name: Array(name.utf8), ino: ino, next: UInt64(i + 1), type: isDir ? 4 : 8) { break }
        }
        return .bytes(w.bytes)
    }
}

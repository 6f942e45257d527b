import CAoELinux

#if canImport(Glibc)
    import Glibc
#endif

/// An io_uring with 128-byte SQEs (io_uring_setup(2), the C shim's `aoel_ring`): what
/// FUSE-over-io_uring needs, and no more — URING_CMD on a descriptor and a multishot poll.
///
/// Queueing and submitting may happen on any thread (one lock); reaping belongs to one thread,
/// the one that watches `descriptor` (readable while completions wait) or waits in
/// `submitAndWait`.
public final class IORing: @unchecked Sendable {
    // @unchecked: the SQ side of `ring` is reached only under `lock`; the CQ side only from the
    // single reaping thread (`reap`), which the ring's head/tail barriers order against the kernel.
    private let ring: UnsafeMutablePointer<aoel_ring>
    private let lock = Locked(())
    /// Where `reap` copies completions to (the reaping thread's only).
    private let reaped: UnsafeMutablePointer<aoel_completion> = .allocate(capacity: IORing.reapLimit)

    /// The ring's descriptor: poll it for completions.
    public var descriptor: Int32 { ring.pointee.fd }

    /// Creates a ring of `entries` SQEs (rounded up to a power of two by the kernel).
    public init(entries: UInt32) throws(ProcessError) {
        ring = .allocate(capacity: 1)
        let r = aoel_ring_open(ring, entries)
        // On failure deinit frees `ring` (aoel_ring_open left it closed) and `reaped`: every
        // property is set, so a throw from here runs it.
        guard r == 0 else {
            throw ProcessError("io_uring_setup: \(String(cString: strerror(-r)))")
        }
    }

    deinit {
        aoel_ring_close(ring)
        ring.deallocate()
        reaped.deallocate()
    }

    /// Queues a FUSE ring command (`cmd_op`) on `fd` for queue `qid`; `iovecs` (REGISTER only)
    /// points at two iovecs that stay valid. Returns false when the SQ is full.
    public func queueCommand(
        fd: Int32, op: UInt32, qid: UInt16, commitID: UInt64, iovecs: UnsafeRawPointer?,
        userData: UInt64
    ) -> Bool {
        lock.withLock { _ in aoel_ring_fuse_cmd(ring, fd, op, qid, commitID, iovecs, userData) == 0 }
    }

    /// Queues a multishot POLLIN poll of `fd`. Returns false when the SQ is full.
    public func queuePoll(fd: Int32, userData: UInt64) -> Bool {
        lock.withLock { _ in aoel_ring_poll(ring, fd, userData) == 0 }
    }

    /// Hands every queued entry to the kernel. Returns 0 or -errno.
    @discardableResult
    public func submit() -> Int32 {
        lock.withLock { _ in
            let r = aoel_ring_submit(ring)
            return r < 0 ? r : 0
        }
    }

    /// Hands every queued entry to the kernel and waits until a completion is there, holding no
    /// lock while it waits: other threads may queue meanwhile (and must wake this one by a
    /// completion, e.g. a polled eventfd, if it is to see their entries). The thread that waits
    /// is the one whose context runs the kernel's work for what it submitted (FUSE's copies).
    /// Returns 0 (also when a signal interrupted the wait) or -errno.
    @discardableResult
    public func submitAndWait() -> Int32 {
        let tail = lock.withLock { _ in aoel_ring_tail(ring) }
        return aoel_ring_submit_and_wait(ring, tail)
    }

    /// One completion.
    public struct Completion: Sendable {
        public var userData: UInt64
        public var result: Int32
        public var flags: UInt32
    }

    /// Calls `body` for each completion waiting (at most `reapLimit`). Returns how many there
    /// were. Only the reaping thread calls this. The completions are copied out of the CQ ring
    /// before `body` runs, so `body` may queue and submit.
    @discardableResult
    public func reap(_ body: (Completion) -> Void) -> Int {
        let n = Int(aoel_ring_reap(ring, reaped, Int32(Self.reapLimit)))
        for i in 0..<n {
            body(Completion(userData: reaped[i].user_data, result: reaped[i].res, flags: reaped[i].flags))
        }
        return n
    }

    /// Completions taken per `reap`; more wait for the next (the descriptor stays readable).
    public static let reapLimit = 64

    /// IORING_CQE_F_MORE: a multishot request stays armed after this completion.
    public static let moreFlag: UInt32 = 1 << 1
}

/// Whether the fuse module serves FUSE over io_uring now: `/sys/module/fuse/parameters/enable_uring`
/// reads `Y` (root sets it; aoefs never does). nil when the parameter does not exist (a kernel
/// before 6.14, or one built without CONFIG_FUSE_IO_URING).
public func fuseURingEnabled() -> Bool? {
    let fd = open("/sys/module/fuse/parameters/enable_uring", O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var c: UInt8 = 0
    return read(fd, &c, 1) == 1 ? c == UInt8(ascii: "Y") || c == UInt8(ascii: "1") : nil
}

/// The number of possible CPUs (`/sys/devices/system/cpu/possible`, e.g. "0-1"): FUSE over
/// io_uring expects one queue for each (fs/fuse/dev_uring.c, num_possible_cpus()), and sends a
/// request to the queue numbered as the CPU its caller runs on.
public func possibleCPUCount() -> Int {
    let fd = open("/sys/devices/system/cpu/possible", O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return max(1, Int(sysconf(Int32(_SC_NPROCESSORS_CONF)))) }
    defer { close(fd) }
    var buf = [UInt8](repeating: 0, count: 256)
    let n = read(fd, &buf, buf.count)
    guard n > 0 else { return max(1, Int(sysconf(Int32(_SC_NPROCESSORS_CONF)))) }
    // A list of ranges, "0-3,8-11\n": the kernel counts the CPUs in it (num_possible_cpus()).
    var count = 0
    for range in buf[0..<n].split(whereSeparator: { $0 == UInt8(ascii: ",") || $0 == UInt8(ascii: "\n") }) {
        let ends = range.split(separator: UInt8(ascii: "-")).compactMap { Int(String(decoding: $0, as: UTF8.self)) }
        guard let first = ends.first else { continue }
        count += (ends.last ?? first) - first + 1
    }
    return max(1, count)
}

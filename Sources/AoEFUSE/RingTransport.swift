import AoEEngine
import AoELinux
import FUSEProtocol

#if canImport(Glibc)
    import Glibc
#endif

/// FUSE over io_uring (issue 15, transport 2; Linux ≥ 6.14, `enable_uring` on): the rings and
/// their entries. The kernel expects entries on one queue per possible CPU and gives a request to
/// the queue of the CPU its caller runs on.
///
/// Who serves (issue 32): with one serving thread, the engine's receive thread reaps the one ring
/// (`KernelChannel.service`), as before. With more (`ServingThreads`), each thread has a ring of
/// its own, `rings[i]`, holding the entries of queues i, i + threads, …: it registers them,
/// commits their replies and takes their requests. The kernel does a request's copies (a WRITE's
/// data into the payload, a READ's reply out of it) in the context of the thread that submitted
/// the entry's command — so the ring's thread, not the receive thread, pays for them.
///
/// Commits are queued, not submitted: the outbox of the pass that made them flushes the ring
/// (`RingQueue`), so one io_uring_enter hands over every reply of a pass; a commit made on
/// another thread wakes the ring's own thread to submit it.
///
/// An entry is a header area (`FUSERingLayout`) and a payload of max_write bytes. A request
/// arrives as a completion of the entry's REGISTER or COMMIT_AND_FETCH; its reply is written
/// into the same two buffers and committed with COMMIT_AND_FETCH, which also asks for the next
/// request: one system call per reply at most, none per request. A READ's data is received by
/// the engine straight into the payload, a WRITE's data goes to the wire from it: neither is
/// copied in user space.
final class RingTransport: @unchecked Sendable {
    // @unchecked: the entries' memory is reached by whichever thread holds a request's Reply
    // (one at a time per entry: the kernel hands an entry out again only after its commit);
    // each ring locks its submission side.
    /// One per serving thread; `rings[0]` also polls /dev/fuse.
    let rings: [RingQueue]
    let fuseFD: Int32
    let queues: Int
    let depth: Int
    /// Bytes of one entry's payload: max_write (the kernel refuses less, dev_uring.c).
    static let payloadSize = 1 << 20
    /// One entry's header area, rounded up to a cache line.
    static let headerStride = (FUSERingLayout.headerAreaSize + 63) / 64 * 64
    /// The user_data of the /dev/fuse poll; entries' user_data are their slot numbers.
    static let pollTag = UInt64.max
    /// The user_data of a serving thread's poll of its wake-up eventfd.
    static let wakeTag = UInt64.max - 1

    private let headers: UnsafeMutableRawPointer
    private let payloads: UnsafeMutableRawPointer
    private let payloadMemory: ReservedMemory
    private let iovecs: UnsafeMutablePointer<iovec>

    var entries: Int { queues * depth }

    /// `depth` entries on each of `queues` queues, spread over `threads` rings. With one ring its
    /// multishot poll of `fuseFD` is armed here (interrupts and notifications stay on /dev/fuse,
    /// and requests come there until every queue has registered); with more, each serving
    /// thread arms its own (`ServingThreads`), so that the poll's work runs on that thread.
    init(fuseFD: Int32, queues: Int, depth: Int, threads: Int = 1) throws(ProcessError) {
        self.fuseFD = fuseFD
        self.queues = queues
        self.depth = depth
        let n = queues * depth
        let count = max(1, min(threads, queues))
        var made: [RingQueue] = []
        for i in 0..<count {
            // Entries of this ring, a poll or two, and room for a pass's commits.
            let mine = (queues - i + count - 1) / count * depth
            var size: UInt32 = 8
            while size < UInt32(mine + 8) { size <<= 1 }
            made.append(RingQueue(ring: try IORing(entries: size), index: i))
        }
        rings = made
        headers = .allocate(byteCount: n * Self.headerStride, alignment: 64)
        headers.initializeMemory(as: UInt8.self, repeating: 0, count: n * Self.headerStride)
        // Reserved, not committed: a page of payload costs memory only once the kernel (or the
        // engine) writes it, so 4 KiB requests touch a page per entry, 1 MiB ones all of it.
        do throws(ProcessError) {
            payloadMemory = try ReservedMemory(count: n * Self.payloadSize)
        } catch {
            headers.deallocate()
            throw ProcessError("the ring's payloads: \(error)")
        }
        payloads = payloadMemory.base
        iovecs = .allocate(capacity: 2 * n)
        for slot in 0..<n {
            iovecs[2 * slot] = iovec(iov_base: header(slot), iov_len: FUSERingLayout.headerAreaSize)
            iovecs[2 * slot + 1] = iovec(iov_base: payload(slot), iov_len: Self.payloadSize)
        }
        guard count > 1 || rearmPoll() else { throw ProcessError("cannot arm the ring's poll of /dev/fuse") }
    }

    deinit {
        headers.deallocate()
        iovecs.deallocate()
    }

    func header(_ slot: Int) -> UnsafeMutableRawPointer { headers + slot * Self.headerStride }
    func payload(_ slot: Int) -> UnsafeMutableRawPointer { payloads + slot * Self.payloadSize }

    /// The ring that carries entry `slot` (its queue's).
    func queue(ofSlot slot: Int) -> RingQueue { rings[(slot / depth) % rings.count] }

    /// (Re-)arms the /dev/fuse poll on the first ring (after a completion without
    /// IORING_CQE_F_MORE), from the thread that serves it.
    func rearmPoll() -> Bool {
        rings[0].ring.queuePoll(fd: fuseFD, userData: Self.pollTag) && rings[0].ring.submit() == 0
    }

    /// Registers every entry of ring `index` (after the INIT reply: before it the kernel answers
    /// EAGAIN), from the thread that serves it. Returns 0 or -errno.
    func registerAll(ring index: Int) -> Int32 {
        for slot in 0..<entries where queue(ofSlot: slot).index == index {
            let r = register(slot: slot, submit: false)
            if r != 0 { return r }
        }
        return rings[index].ring.submit()
    }

    /// Queues the REGISTER of entry `slot` (and submits it, with `submit`). 0 or -errno.
    func register(slot: Int, submit: Bool = true) -> Int32 {
        let op = FUSERingCommand.register.rawValue, qid = UInt16(slot / depth)
        let ring = queue(ofSlot: slot).ring
        let iov = UnsafeRawPointer(iovecs + 2 * slot)
        if !ring.queueCommand(fd: fuseFD, op: op, qid: qid, commitID: 0, iovecs: iov, userData: UInt64(slot)) {
            // Full: the kernel has not taken what is queued yet; hand it over and try again.
            let r = ring.submit()
            if r < 0 { return r }
            guard ring.queueCommand(fd: fuseFD, op: op, qid: qid, commitID: 0, iovecs: iov, userData: UInt64(slot))
            else { return -EBUSY }
        }
        return submit ? ring.submit() : 0
    }

    /// Submits every ring's queued commits now, from this thread (teardown).
    func flushAll() { for r in rings { r.ring.submit() } }

    /// Writes the reply to the request in `slot` (`encoded`: the out header and the reply's
    /// arguments; `data`: bytes that follow, e.g. a READ's, which need no copy when the engine
    /// received them into this entry's payload) and queues its commit on the entry's ring, which
    /// it returns (the caller's outbox flushes it). Nil when it does not fit.
    func commit(slot: Int, unique: UInt64, encoded: UnsafeRawBufferPointer, data: UnsafeRawBufferPointer?) -> RingQueue?
    {
        let h = header(slot), p = payload(slot)
        let args = encoded.count - FUSEReply.headerSize
        let dataCount = data?.count ?? 0
        guard args >= 0, args + dataCount <= Self.payloadSize else { return nil }
        // fuse_out_header into the in/out area; dev_uring.c reads error and unique from it.
        h.copyMemory(from: encoded.baseAddress!, byteCount: FUSEReply.headerSize)
        if args > 0 { p.copyMemory(from: encoded.baseAddress! + FUSEReply.headerSize, byteCount: args) }
        if let data, dataCount > 0, data.baseAddress! != UnsafeRawPointer(p + args) {
            (p + args).copyMemory(from: data.baseAddress!, byteCount: dataCount)
        }
        h.storeBytes(
            of: UInt32(args + dataCount).littleEndian, toByteOffset: FUSERingLayout.payloadSizeOffset,
            as: UInt32.self)
        let op = FUSERingCommand.commitAndFetch.rawValue, qid = UInt16(slot / depth)
        let q = queue(ofSlot: slot)
        if q.ring.queueCommand(fd: fuseFD, op: op, qid: qid, commitID: unique, iovecs: nil, userData: UInt64(slot)) {
            return q
        }
        q.ring.submit()  // full (cannot be, with entries + 8 slots; but never drop a reply)
        return q.ring.queueCommand(fd: fuseFD, op: op, qid: qid, commitID: unique, iovecs: nil, userData: UInt64(slot))
            ? q : nil
    }
}

/// One io_uring of the FUSE ring transport and the thread that serves it (none: the engine's
/// receive thread, which flushes it at the end of its pass).
final class RingQueue: OutboxChannel, @unchecked Sendable {
    // @unchecked: `ring` locks its submission side; `server` is set once, before any entry of
    // this ring is registered, by the thread that will serve it.
    let ring: IORing
    let index: Int
    private(set) var server: ServingThread?

    init(ring: IORing, index: Int) {
        self.ring = ring
        self.index = index
    }

    /// `thread` serves this ring from now on (called on that thread, before it registers).
    func served(by thread: ServingThread) { server = thread }

    /// The end of a pass that queued commits here: the ring's own thread submits them in its
    /// next wait (woken, if this is another thread: a commit submitted here would put the
    /// kernel's copy of the reply, and the entry's next request, on this thread). Without a
    /// serving thread, or once it has stopped, submitted now.
    func flushOutbox() {
        guard let server, server.isServing else { return _ = ring.submit() }
        if !server.isCurrent { server.nudge() }
    }
}

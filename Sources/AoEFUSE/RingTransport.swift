import AoELinux
import FUSEProtocol
import AoEEngine

#if canImport(Glibc)
import Glibc
#endif

/// FUSE over io_uring (issue 15, transport 2; Linux ≥ 6.14, `enable_uring` on): the ring and
/// its entries. The kernel expects entries on one queue per possible CPU and gives a request to
/// the queue of the CPU its caller runs on; every entry is served here, on the engine's receive
/// thread, which reaps the ring (`KernelChannel.service`).
///
/// Commits are queued, not submitted: the outbox of the pass that made them flushes the ring
/// (`OutboxChannel`), so one io_uring_enter hands over every reply of a pass.
///
/// An entry is a header area (`FUSERingLayout`) and a payload of max_write bytes. A request
/// arrives as a completion of the entry's REGISTER or COMMIT_AND_FETCH; its reply is written
/// into the same two buffers and committed with COMMIT_AND_FETCH, which also asks for the next
/// request: one system call per reply at most, none per request. A READ's data is received by
/// the engine straight into the payload, a WRITE's data goes to the wire from it: neither is
/// copied in user space.
final class RingTransport: OutboxChannel, @unchecked Sendable {
    // @unchecked: the entries' memory is reached by whichever thread holds a request's Reply
    // (one at a time per entry: the kernel hands an entry out again only after its commit);
    // `ring` locks its submission side.
    let ring: IORing
    let fuseFD: Int32
    let queues: Int
    let depth: Int
    /// Bytes of one entry's payload: max_write (the kernel refuses less, dev_uring.c).
    static let payloadSize = 1 << 20
    /// One entry's header area, rounded up to a cache line.
    static let headerStride = (FUSERingLayout.headerAreaSize + 63) / 64 * 64
    /// The user_data of the /dev/fuse poll; entries' user_data are their slot numbers.
    static let pollTag = UInt64.max

    private let headers: UnsafeMutableRawPointer
    private let payloads: UnsafeMutableRawPointer
    private let payloadsLength: Int
    private let iovecs: UnsafeMutablePointer<iovec>

    var entries: Int { queues * depth }

    /// A ring with `depth` entries on each of `queues` queues, and a multishot poll of `fuseFD`
    /// (interrupts and notifications stay on /dev/fuse, and requests come there until every
    /// queue has registered).
    init(fuseFD: Int32, queues: Int, depth: Int) throws(ProcessError) {
        self.fuseFD = fuseFD
        self.queues = queues
        self.depth = depth
        let n = queues * depth
        var size: UInt32 = 8
        while size < UInt32(n + 8) { size <<= 1 }
        ring = try IORing(entries: size)
        headers = .allocate(byteCount: n * Self.headerStride, alignment: 64)
        headers.initializeMemory(as: UInt8.self, repeating: 0, count: n * Self.headerStride)
        // Reserved, not committed: a page of payload costs memory only once the kernel (or the
        // engine) writes it, so 4 KiB requests touch a page per entry, 1 MiB ones all of it.
        payloadsLength = n * Self.payloadSize
        let p = mmap(nil, payloadsLength, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
        guard let p, p != MAP_FAILED else {
            headers.deallocate()
            throw ProcessError("cannot reserve \(payloadsLength >> 20) MiB for the ring's payloads")
        }
        payloads = p
        iovecs = .allocate(capacity: 2 * n)
        for slot in 0..<n {
            iovecs[2 * slot] = iovec(iov_base: header(slot), iov_len: FUSERingLayout.headerAreaSize)
            iovecs[2 * slot + 1] = iovec(iov_base: payload(slot), iov_len: Self.payloadSize)
        }
        guard ring.queuePoll(fd: fuseFD, userData: Self.pollTag), ring.submit() == 0 else {
            throw ProcessError("cannot arm the ring's poll of /dev/fuse")
        }
    }

    deinit {
        munmap(payloads, payloadsLength)
        headers.deallocate()
        iovecs.deallocate()
    }

    func header(_ slot: Int) -> UnsafeMutableRawPointer { headers + slot * Self.headerStride }
    func payload(_ slot: Int) -> UnsafeMutableRawPointer { payloads + slot * Self.payloadSize }

    /// Re-arms the /dev/fuse poll (after a completion without IORING_CQE_F_MORE).
    func rearmPoll() -> Bool { ring.queuePoll(fd: fuseFD, userData: Self.pollTag) && ring.submit() == 0 }

    /// Registers every entry (after the INIT reply: before it the kernel answers EAGAIN).
    /// Returns 0 or -errno.
    func registerAll() -> Int32 {
        for slot in 0..<entries {
            let r = register(slot: slot, submit: false)
            if r != 0 { return r }
        }
        return ring.submit()
    }

    /// Queues the REGISTER of entry `slot` (and submits it, with `submit`). 0 or -errno.
    func register(slot: Int, submit: Bool = true) -> Int32 {
        let op = FUSERingCommand.register.rawValue, qid = UInt16(slot / depth)
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

    /// Submits the commits queued (no system call when there are none).
    func flushOutbox() { ring.submit() }

    /// Writes the reply to the request in `slot` (`encoded`: the out header and the reply's
    /// arguments; `data`: bytes that follow, e.g. a READ's, which need no copy when the engine
    /// received them into this entry's payload) and queues its commit (`flushOutbox` submits it).
    /// False when it does not fit.
    @discardableResult
    func commit(slot: Int, unique: UInt64, encoded: UnsafeRawBufferPointer, data: UnsafeRawBufferPointer?) -> Bool {
        let h = header(slot), p = payload(slot)
        let args = encoded.count - FUSEReply.headerSize
        let dataCount = data?.count ?? 0
        guard args >= 0, args + dataCount <= Self.payloadSize else { return false }
        // fuse_out_header into the in/out area; dev_uring.c reads error and unique from it.
        h.copyMemory(from: encoded.baseAddress!, byteCount: FUSEReply.headerSize)
        if args > 0 { p.copyMemory(from: encoded.baseAddress! + FUSEReply.headerSize, byteCount: args) }
        if let data, dataCount > 0, data.baseAddress! != UnsafeRawPointer(p + args) {
            (p + args).copyMemory(from: data.baseAddress!, byteCount: dataCount)
        }
        h.storeBytes(of: UInt32(args + dataCount).littleEndian, toByteOffset: FUSERingLayout.payloadSizeOffset,
                     as: UInt32.self)
        let op = FUSERingCommand.commitAndFetch.rawValue, qid = UInt16(slot / depth)
        if ring.queueCommand(fd: fuseFD, op: op, qid: qid, commitID: unique, iovecs: nil, userData: UInt64(slot)) {
            return true
        }
        ring.submit()  // full (cannot be, with entries + 8 slots; but never drop a reply)
        return ring.queueCommand(fd: fuseFD, op: op, qid: qid, commitID: unique, iovecs: nil, userData: UInt64(slot))
    }
}

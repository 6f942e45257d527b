import AoECore
import AoEProtocol
import CAoELinux
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// An AF_PACKET link on one Ethernet interface, bound to ethertype 0x88a2 (packet(7)).
///
/// One socket per interface. Our own outgoing copies are ignored (PACKET_IGNORE_OUTGOING, and
/// `sll_pkttype` as a fallback). The receive buffer is sized for a full window of jumbo frames
/// (SO_RCVBUFFORCE). Frames are sent with `sendmmsg` and received with `recvmmsg` in batches.
///
/// Sends may come from any thread; receives are meant for one I/O thread. Each direction has its
/// own preallocated memory behind its own lock (an `Arena` of header slots for sends, a
/// `ReceivePool` for receives), so a sender never waits for a receiver.
public final class PacketLink: Link {
    /// The interface name.
    public let name: String
    /// The interface index (a re-created interface has a new one: `reopen`).
    public var interfaceIndex: Int32 { identity.withLock { $0.index } }
    /// The interface's MAC address (a re-created interface may have a new one).
    public var macAddress: MACAddress { identity.withLock { $0.mac } }
    /// The receive buffer the kernel granted, in bytes.
    public let receiveBufferSize: Int
    private let bufferSize: Int
    /// The socket. Replaced by `reopen` while both the send arena's and the receive pool's locks
    /// are held, so no send or receive uses a descriptor that is being closed.
    private let fdValue: Atomic<Int32>
    private var fd: Int32 { fdValue.load(ordering: .relaxed) }
    private let identity: Locked<(index: Int32, mac: MACAddress)>
    private let mtuValue: Atomic<Int>
    private let oversizedCount = Atomic<UInt64>(0)
    private let slotSize: Int
    private let sendArena: Locked<Arena>
    private let receivePool: Locked<ReceivePool>
    private let truncatedCount = Atomic<UInt64>(0)
    private let sendDropCount = Atomic<UInt64>(0)
    private let closed = Atomic<Bool>(false)
    private let busyPollMicroseconds = Atomic<Int>(0)

    /// The default receive (and send) buffer: 256 frames of 9 KiB, a full window at jumbo size.
    public static let defaultBufferSize = 256 * 9216

    /// Opens `interface`.
    /// - Parameters:
    ///   - interface: the interface name, e.g. `eth1`.
    ///   - bufferSize: receive and send buffer in bytes.
    ///   - batch: how many frames one send or receive call moves at most.
    /// - Throws: `LinkError` naming the interface: no such interface, not permitted (not root),
    ///   interface down, not Ethernet.
    public init(interface: String, bufferSize: Int = PacketLink.defaultBufferSize, batch: Int = 64) throws(LinkError) {
        let (fd, info) = try Self.open(interface, bufferSize: bufferSize)
        self.name = interface
        self.fdValue = Atomic(fd)
        self.bufferSize = bufferSize
        self.identity = Locked((info.ifindex, withUnsafeBytes(of: info.mac) { MACAddress(bytes: $0)! }))
        self.mtuValue = Atomic(Int(info.mtu))
        self.receiveBufferSize = Int(info.rcvbuf)
        // A slot holds the largest frame any MTU could bring (64 KiB is the veth maximum) only
        // when needed; 9216 + header covers jumbo. Longer frames are counted as truncated.
        self.slotSize = max(Int(info.mtu) + AoEHeader.ethernetSize, 9216 + 64)
        self.sendArena = Locked(Arena(slots: batch, slotSize: slotSize))
        self.receivePool = Locked(ReceivePool(slotSize: slotSize, batch: batch))
    }

    deinit {
        if !closed.load(ordering: .relaxed) { _ = aoel_close(fd) }
    }

    /// A socket bound to `interface`, and what the interface is.
    private static func open(_ interface: String, bufferSize: Int) throws(LinkError) -> (Int32, aoel_ifinfo) {
        var info = aoel_ifinfo()
        var step: Int32 = 0
        let fd = aoel_open(interface, aoeEtherType, Int32(clamping: bufferSize), &info, &step)
        if fd < 0 {
            let e = -fd
            let code: LinkError.Code
            switch (step, e) {
            case (_, EPERM), (_, EACCES): code = .notPermitted
            case (Int32(AOEL_STEP_NAME.rawValue), _), (Int32(AOEL_STEP_IFINDEX.rawValue), ENODEV):
                code = .noSuchInterface
            case (Int32(AOEL_STEP_DOWN.rawValue), _): code = .interfaceDown
            case (Int32(AOEL_STEP_NOT_ETHERNET.rawValue), _): code = .notEthernet
            default: code = .other
            }
            throw LinkError(code: code, interface: interface, errno: e, operation: describe(step: step))
        }
        return (fd, info)
    }

    /// Opens a new socket on the interface of this name and puts it in place of the old one: the
    /// interface was deleted and created again (a replugged USB NIC, a reloaded driver, a veth a
    /// network manager made anew). A socket bound to the old interface never works again (its
    /// sends fail with ENXIO).
    /// - Returns: the MTU of the interface now.
    @discardableResult
    public func reopen() throws(LinkError) -> Int {
        let (newFD, info) = try Self.open(name, bufferSize: bufferSize)
        let old: Int32 = sendArena.withLock { _ in
            receivePool.withLock { _ in fdValue.exchange(newFD, ordering: .relaxed) }
        }
        _ = aoel_close(old)
        identity.withLock { $0 = (info.ifindex, withUnsafeBytes(of: info.mac) { MACAddress(bytes: $0)! }) }
        return noteMTU(Int(info.mtu))
    }

    /// What the interface called `name` is now (read with ioctls, as an event would say it), or
    /// nil when there is none.
    public static func interfaceState(_ name: String) -> LinkEvent? {
        let fd = socket(AF_PACKET, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return nil }
        defer { _ = aoel_close(fd) }
        var info = aoel_ifinfo()
        guard aoel_ifinfo(fd, name, &info) == 0 else { return nil }
        return LinkEvent(
            name: name, index: info.ifindex, deleted: false, up: info.up != 0, running: info.running != 0,
            mtu: Int(info.mtu), mac: withUnsafeBytes(of: info.mac) { MACAddress(bytes: $0) })
    }

    /// What the interface is now (`interfaceState(_:)` of this link's name).
    public func currentState() -> LinkEvent? { Self.interfaceState(name) }

    /// A packet socket cannot tell: the driver follows rtnetlink (`LinkMonitor`) for it.
    public func watchInterface(_ handler: @escaping @Sendable (LinkEvent?) -> Void) -> Bool { false }

    /// Frames refused since the last call because they were longer than the interface's MTU
    /// (it was lowered under us): the caller re-reads the MTU (`refresh`) and resends them smaller.
    public func takeOversized() -> UInt64 { oversizedCount.exchange(0, ordering: .relaxed) }

    /// Records the interface's MTU (from a link event, or read again), within what a slot holds:
    /// the slots were sized when the link was opened. Returns the MTU in force.
    @discardableResult
    public func noteMTU(_ mtu: Int) -> Int {
        let usable = min(mtu, slotSize - AoEHeader.ethernetSize)
        mtuValue.store(usable, ordering: .relaxed)
        return usable
    }

    /// Closes the socket. A receive blocked in another thread returns within its timeout.
    public func close() {
        if closed.compareExchange(expected: false, desired: true, ordering: .relaxed).exchanged {
            _ = aoel_close(fd)
        }
    }

    /// The interface MTU as last read; `refreshMTU()` reads it again.
    public var mtu: Int { mtuValue.load(ordering: .relaxed) }

    /// How long a receive polls without sleeping before it sleeps (`EngineConfiguration.busyPoll`);
    /// zero: it sleeps at once.
    public var busyPoll: Duration {
        get { .microseconds(busyPollMicroseconds.load(ordering: .relaxed)) }
        set {
            let us = newValue.components.seconds * 1_000_000 + newValue.components.attoseconds / 1_000_000_000_000
            busyPollMicroseconds.store(Int(max(0, min(us, 1_000_000))), ordering: .relaxed)
        }
    }

    /// Frames the kernel refused to send with ENOBUFS (treated as lost on the wire).
    public var sendDrops: UInt64 { sendDropCount.load(ordering: .relaxed) }

    /// Frames dropped because they were longer than a receive slot.
    public var truncatedFrames: UInt64 { truncatedCount.load(ordering: .relaxed) }

    /// Re-reads the interface's MTU and state (an administrator may change the MTU under us).
    /// - Returns: the current MTU.
    @discardableResult
    public func refreshMTU() throws(LinkError) -> Int {
        var info = aoel_ifinfo()
        let r = aoel_ifinfo(fd, name, &info)
        guard r == 0 else {
            throw LinkError(
                code: -r == ENODEV ? .noSuchInterface : .other, interface: name, errno: -r,
                operation: "reading the interface state")
        }
        guard info.up != 0 else {
            throw LinkError(code: .interfaceDown, interface: name, errno: nil, operation: "reading the interface state")
        }
        return noteMTU(Int(info.mtu))
    }

    /// Sends `frames` (whole Ethernet frames) in batches of `sendmmsg`.
    /// - Returns: how many frames the kernel took.
    /// - Throws: `LinkError` (`.sendFailed`, `.interfaceDown`) when none could be sent.
    @discardableResult
    public func send(_ frames: [OutgoingFrame]) throws(LinkError) -> Int {
        var total = 0
        var index = 0
        while index < frames.count {
            let result: Int32 = sendArena.withLock { arena in
                let n = min(arena.slots, frames.count - index)
                // Each frame is two pieces the kernel gathers: its headers, copied into the slot,
                // and a write's data, left in the request's buffer (alive: `frames` holds it) —
                // no copy of the data here. Frames without data have an empty second piece.
                for i in 0..<n {
                    let f = frames[index + i]
                    // Never reached from input (issue 30's audit): Payloads come from the MTU `noteMTU` returned, which a slot holds.
                    precondition(f.count <= arena.slotSize, "frame longer than the link's slot")
                    let slot = arena.slot(i)
                    let h = f.withHeaderBytes { h in
                        slot.baseAddress!.copyMemory(from: h.baseAddress!, byteCount: h.count)
                        return h.count
                    }
                    arena.iovecs[2 * i] = iovec(iov_base: slot.baseAddress, iov_len: h)
                    arena.iovecs[2 * i + 1] = iovec(
                        iov_base: f.data.map { $0.bytes.baseAddress! + f.dataOffset }, iov_len: f.dataCount)
                }
                var dropped: UInt64 = 0
                var oversized: UInt64 = 0
                let r = aoel_send_gather(fd, arena.iovecs, Int32(n), &dropped, &oversized)
                if dropped > 0 { sendDropCount.add(dropped, ordering: .relaxed) }
                if oversized > 0 { oversizedCount.add(oversized, ordering: .relaxed) }
                return r
            }
            if result < 0 {
                if total > 0 { return total }
                throw LinkError(
                    code: -result == ENETDOWN ? .interfaceDown : .sendFailed, interface: name,
                    errno: -result, operation: "sending frames")
            }
            total += Int(result)
            index += Int(result)
            if result == 0 { break }
        }
        return total
    }

    /// Receives up to `limit` frames, waiting at most `timeout` (negative: no limit) and
    /// watching `descriptors` meanwhile, and hands each to `body` in place (valid only during
    /// the call). Bit i of `ready` says descriptors[i] is readable or closed.
    public func receive(
        limit: Int, timeout: Duration, alsoWatching descriptors: [Int32], _ body: (UnsafeRawBufferPointer) -> Void
    ) throws(LinkError) -> (frames: Int, ready: UInt32) {
        try receive(limit: limit, timeout: timeout, alsoWatching: descriptors, placer: nil) { body($0.bytes) }
    }

    /// As above, placing READ answers' data where `placer` predicts (`Link`): each receive
    /// system call is one non-blocking recvmmsg, between the placer's `predict` and `release`,
    /// so a place is pinned only while the kernel may write to it — never across a wait.
    public func receive(
        limit: Int, timeout: Duration, alsoWatching descriptors: [Int32], placer: (any ReceivePlacer)?,
        _ body: (ReceivedFrame) -> Void
    ) throws(LinkError) -> (frames: Int, ready: UInt32) {
        let ms = timeout < .zero ? -1 : milliseconds(timeout)  // rounded up, as every poll(2) wait here
        return try receivePool.withLock { (pool: inout ReceivePool) throws(LinkError) -> (frames: Int, ready: UInt32) in
            var truncated: UInt64 = 0
            var ready: Int32 = 0
            let most = min(limit, pool.batch)
            // Try first, wait only when nothing is queued: under load a frame is usually
            // waiting, and this saves a poll(2) per batch.
            var n = receiveOnce(&pool, most: most, placer: placer, truncated: &truncated)
            if n == 0 && ms != 0 {
                let w = descriptors.withUnsafeBufferPointer { also in
                    aoel_wait_frames(
                        fd, ms, Int32(busyPollMicroseconds.load(ordering: .relaxed)), also.baseAddress,
                        Int32(also.count), &ready)
                }
                n = w < 0 ? w : w > 0 ? receiveOnce(&pool, most: most, placer: placer, truncated: &truncated) : 0
            }
            if truncated > 0 { truncatedCount.add(truncated, ordering: .relaxed) }
            if n < 0 {
                throw LinkError(
                    code: -n == ENETDOWN ? .interfaceDown : .receiveFailed, interface: name,
                    errno: -n, operation: "receiving frames")
            }
            for k in 0..<Int(n) { body(pool.frame(k)) }
            return (Int(n), UInt32(bitPattern: ready))
        }
    }

    /// One recvmmsg: the placer's predictions first, then each scattered message settled (hit,
    /// or made whole in its slot), then the predictions released. Returns frames kept or -errno.
    private func receiveOnce(
        _ pool: inout ReceivePool, most: Int, placer: (any ReceivePlacer)?,
        truncated: inout UInt64
    ) -> Int32 {
        var placed = 0
        if let placer {
            // As many as the call may bring: a message past the predictions is copied. (Twice
            // the last call's count instead cost 11 % more instructions per MiB read, callgrind.)
            placer.predict(into: &pool.placements, limit: most, largest: pool.slotSize - ReceiveLayout.headerBytes)
            placed = pool.placements.count
            for (i, p) in pool.placements.enumerated() {
                pool.places[i] = p.destination
                pool.counts[i] = UInt32(p.count)
            }
        }
        let n = aoel_receive_placed(
            fd, pool.pointers, pool.slotSize, ReceiveLayout.headerBytes, pool.places, pool.counts,
            Int32(placed), pool.lengths, pool.which, Int32(most), &truncated)
        if placed > 0 {
            // (Hits are counted where they are accepted: `reads_placed` in a target's stats.)
            for k in 0..<max(0, Int(n)) {
                let i = Int(pool.which[k])
                pool.hits[k] =
                    i < placed
                    && ReceiveLayout.settle(
                        slot: pool.pointers[i]!, slotSize: pool.slotSize,
                        length: Int(pool.lengths[k]), placement: pool.placements[i])
            }
            placer!.release()
        } else {
            for k in 0..<max(0, Int(n)) { pool.hits[k] = false }
        }
        return n
    }

    private static func describe(step: Int32) -> String {
        switch UInt32(step) {
        case AOEL_STEP_SOCKET.rawValue: "opening a raw AF_PACKET socket"
        case AOEL_STEP_BIND.rawValue: "binding the socket to the interface"
        default: "reading the interface (ioctl)"
        }
    }
}

/// A preallocated run of slots for a batch of outgoing frames' headers (a frame without data is
/// all headers, so a slot holds a whole frame), and their iovecs.
struct Arena: ~Copyable {
    let base: UnsafeMutablePointer<UInt8>
    /// Two per slot, for gathered sends: the slot's headers, then the frame's data in place.
    let iovecs: UnsafeMutablePointer<iovec>
    let slots: Int
    let slotSize: Int

    init(slots: Int, slotSize: Int) {
        self.slots = slots
        self.slotSize = slotSize
        self.base = .allocate(capacity: slots * slotSize)
        self.iovecs = .allocate(capacity: 2 * slots)
    }

    func slot(_ i: Int) -> UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(start: base + i * slotSize, count: slotSize)
    }

    deinit {
        base.deallocate()
        iovecs.deallocate()
    }
}

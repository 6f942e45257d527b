import AoECore

/// The slots a `PacketLink` receives frames into, some of them lent to reads whose replies are
/// gathered from the frames (issue 15, `FrameLoan`).
///
/// One thread receives (under the link's receive lock): it receives into the top `batch` free
/// slots, and those the core keeps leave the free stack. A lent slot comes back from whichever
/// thread sent the reply, through the `SlotLender`'s own locked list, which the receiver drains
/// at its next batch — the receiver's wait never blocks a giver. Free slots are reused last-in
/// first-out, so the memory touched stays as small as the load needs.
///
/// Lending never starves receiving: a frame is lent only while a whole batch of other slots is
/// free; past that the core copies the data as before.
///
/// Plain pointers, not arrays in a class: a class's stored arrays are checked for exclusive
/// access at run time, and per slot that cost 10 % of the daemon's CPU (perf, dd 1 MiB reads).
struct ReceivePool: ~Copyable {
    let lender: SlotLender
    /// The most frames one receive call takes.
    let batch: Int
    /// The free stack: `free[0..<freeCount]`, the top last.
    private let free: UnsafeMutablePointer<Int32>
    private var freeCount: Int
    /// This batch: slot addresses (for the C call), lengths, and which the kept frames are in.
    let pointers: UnsafeMutablePointer<UnsafeMutablePointer<UInt8>?>
    let lengths: UnsafeMutablePointer<UInt32>
    let which: UnsafeMutablePointer<Int32>
    private let kept: UnsafeMutablePointer<Bool>
    private var taken = 0
    private var lentInBatch = 0

    init(slots: Int, slotSize: Int, batch: Int) {
        precondition(slots >= 2 * batch && batch > 0, "a receive pool needs room for two batches")
        lender = SlotLender(slots: slots, slotSize: slotSize)
        self.batch = batch
        free = .allocate(capacity: slots)
        for i in 0..<slots { free[i] = Int32(slots - 1 - i) }  // slot 0 on top
        freeCount = slots
        pointers = .allocate(capacity: batch)
        lengths = .allocate(capacity: batch)
        which = .allocate(capacity: batch)
        kept = .allocate(capacity: batch)
    }

    deinit {
        free.deallocate()
        pointers.deallocate()
        lengths.deallocate()
        which.deallocate()
        kept.deallocate()
    }

    var slotSize: Int { lender.slotSize }

    /// Slots now lent out (for tests).
    var lent: Int { lender.slotCount - freeCount - lender.returnedCount }

    /// Readies up to `limit` free slots (the top of the stack) for one receive call; returns
    /// how many.
    mutating func takeBatch(limit: Int) -> Int {
        freeCount = lender.reclaim(into: free, at: freeCount)
        taken = min(limit, batch, freeCount)
        lentInBatch = 0
        for i in 0..<taken {
            pointers[i] = lender.address(free[freeCount - 1 - i])
            kept[i] = false
        }
        return taken
    }

    /// Kept frame `k` of the batch: its bytes, and a loan of its slot while lending leaves a
    /// whole batch free.
    func frame(_ k: Int) -> (bytes: UnsafeRawBufferPointer, loan: FrameLoan?) {
        let i = Int(which[k])
        let bytes = UnsafeRawBufferPointer(start: pointers[i], count: Int(lengths[k]))
        let spare = freeCount - taken >= batch  // the next batch finds a whole one free
        return (bytes, spare ? FrameLoan(lender: lender, slot: free[freeCount - 1 - i]) : nil)
    }

    /// Frame `k` was kept by a reader.
    mutating func lend(_ k: Int) {
        kept[Int(which[k])] = true
        lentInBatch += 1
    }

    /// Ends the batch: the slots lent leave the free stack, the others stay on it in place.
    mutating func endBatch() {
        guard lentInBatch > 0 else { return }
        let top = freeCount - taken
        var w = top
        // Keep the unlent ones in their order, from the deepest (index taken - 1) up.
        for i in stride(from: taken - 1, through: 0, by: -1) where !kept[i] {
            free[w] = free[freeCount - 1 - i]
            w += 1
        }
        freeCount = w
        lentInBatch = 0
    }
}

/// The memory of a receive pool, and the list its lent slots come back to. A lent piece holds
/// it (strongly), so the memory outlives a link closed while a reply is still being sent.
final class SlotLender: FrameLender, @unchecked Sendable {
    // @unchecked: `base` is written by the kernel only into slots being received into (neither
    // lent nor free); `returned` is locked.
    private let base: UnsafeMutablePointer<UInt8>
    let slotSize: Int
    let slotCount: Int
    private let returned: Locked<[Int32]>

    init(slots: Int, slotSize: Int) {
        self.slotSize = slotSize
        slotCount = slots
        base = .allocate(capacity: slots * slotSize)
        var r: [Int32] = []
        r.reserveCapacity(slots)
        returned = Locked(r)
    }

    deinit { base.deallocate() }

    func address(_ slot: Int32) -> UnsafeMutablePointer<UInt8> { base + Int(slot) * slotSize }

    func giveBack(_ slots: [Int32]) { returned.withLock { $0.append(contentsOf: slots) } }

    var returnedCount: Int { returned.withLock { $0.count } }

    /// Moves the slots given back onto `free` from `count`; returns the new count.
    func reclaim(into free: UnsafeMutablePointer<Int32>, at count: Int) -> Int {
        returned.withLock { r in
            guard !r.isEmpty else { return count }
            for (i, s) in r.enumerated() { free[count + i] = s }
            defer { r.removeAll(keepingCapacity: true) }
            return count + r.count
        }
    }
}

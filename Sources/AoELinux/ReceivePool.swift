import AoECore

/// The slots a `PacketLink` receives frames into, some of them lent to reads whose replies are
/// gathered from the frames (issue 15, `FrameLoan`).
///
/// One thread receives (under the link's receive lock): it takes a batch of free slots, receives
/// into them, and puts back those the core did not keep. A lent slot comes back from whichever
/// thread sent the reply, through `giveBack`, into a separate locked list the receiver drains at
/// its next batch — the receiver's wait never blocks a giver. Free slots are reused last-in
/// first-out, so the memory touched stays as small as the load needs.
///
/// Lending never starves receiving: a frame is lent only while a whole batch of other slots is
/// free; past that the core copies the data as before.
final class ReceivePool: FrameLender, @unchecked Sendable {
    // @unchecked: everything but `returned` is touched only by the receiving thread, under the
    // link's receive lock; `returned` is locked; `base` is written by the kernel only into a
    // slot that is in neither a reader's hands nor the free list's, i.e. one being received into.
    private let base: UnsafeMutablePointer<UInt8>
    let slotSize: Int
    let slotCount: Int
    /// The most frames one receive call takes.
    let batch: Int
    private var free: [Int32]
    private let returned = Locked<[Int32]>([])
    /// This batch: slot numbers, their addresses (for the C call), lengths and which were kept.
    private let batchSlots: UnsafeMutablePointer<Int32>
    let pointers: UnsafeMutablePointer<UnsafeMutablePointer<UInt8>?>
    let lengths: UnsafeMutablePointer<UInt32>
    let which: UnsafeMutablePointer<Int32>
    private var kept: [Bool]

    init(slots: Int, slotSize: Int, batch: Int) {
        precondition(slots >= 2 * batch && batch > 0, "a receive pool needs room for two batches")
        self.slotSize = slotSize
        self.slotCount = slots
        self.batch = batch
        base = .allocate(capacity: slots * slotSize)
        free = (0..<Int32(slots)).reversed()
        batchSlots = .allocate(capacity: batch)
        pointers = .allocate(capacity: batch)
        lengths = .allocate(capacity: batch)
        which = .allocate(capacity: batch)
        kept = Array(repeating: false, count: batch)
    }

    deinit {
        base.deallocate()
        batchSlots.deallocate()
        pointers.deallocate()
        lengths.deallocate()
        which.deallocate()
    }

    func giveBack(_ slots: [Int32]) { returned.withLock { $0.append(contentsOf: slots) } }

    /// Slots now lent out (for tests and `stats`).
    var lent: Int { slotCount - free.count - returned.withLock { $0.count } }

    /// Takes up to `limit` free slots for one receive call; returns how many.
    func takeBatch(limit: Int) -> Int {
        returned.withLock { r in
            free.append(contentsOf: r)
            r.removeAll(keepingCapacity: true)
        }
        let n = min(limit, batch, free.count)
        for i in 0..<n {
            let s = free.removeLast()
            batchSlots[i] = s
            pointers[i] = base + Int(s) * slotSize
            kept[i] = false
        }
        return n
    }

    /// Kept frame `k` of the batch: its bytes, and a loan of its slot while lending leaves a
    /// whole batch free.
    func frame(_ k: Int) -> (bytes: UnsafeRawBufferPointer, loan: FrameLoan?) {
        let i = Int(which[k])
        let bytes = UnsafeRawBufferPointer(start: pointers[i], count: Int(lengths[k]))
        return (bytes, free.count >= batch ? FrameLoan(lender: self, slot: batchSlots[i]) : nil)
    }

    /// Frame `k` was kept by a reader.
    func lend(_ k: Int) { kept[Int(which[k])] = true }

    /// Ends the batch of `n` slots: those not lent are free again (in reverse, so the next
    /// batch takes the same ones).
    func endBatch(_ n: Int) {
        for i in stride(from: n - 1, through: 0, by: -1) where !kept[i] { free.append(batchSlots[i]) }
    }
}

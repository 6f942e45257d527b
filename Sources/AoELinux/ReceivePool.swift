/// The slots a `PacketLink` receives one batch of frames into, and what the kernel says of each
/// (recvmmsg: lengths, and which slots hold frames kept). One receive call at a time (the
/// link's receive lock); a frame is handled in its slot during the call, never kept past it.
///
/// Plain pointers, not arrays in a class: a class's stored arrays are checked for exclusive
/// access at run time, and per slot that cost 10 % of the daemon's CPU (perf, dd 1 MiB reads).
struct ReceivePool: ~Copyable {
    /// The most frames one receive call takes.
    let batch: Int
    let slotSize: Int
    private let base: UnsafeMutablePointer<UInt8>
    /// Slot addresses (for the C call), lengths, and which slots the kept frames are in.
    let pointers: UnsafeMutablePointer<UnsafeMutablePointer<UInt8>?>
    let lengths: UnsafeMutablePointer<UInt32>
    let which: UnsafeMutablePointer<Int32>

    init(slotSize: Int, batch: Int) {
        precondition(batch > 0, "a receive pool needs a slot")
        self.batch = batch
        self.slotSize = slotSize
        base = .allocate(capacity: batch * slotSize)
        pointers = .allocate(capacity: batch)
        lengths = .allocate(capacity: batch)
        which = .allocate(capacity: batch)
        for i in 0..<batch { pointers[i] = base + i * slotSize }
    }

    deinit {
        base.deallocate()
        pointers.deallocate()
        lengths.deallocate()
        which.deallocate()
    }

    /// Kept frame `k` of the last receive call.
    func frame(_ k: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: pointers[Int(which[k])], count: Int(lengths[k]))
    }
}

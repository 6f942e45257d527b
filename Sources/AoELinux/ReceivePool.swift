import AoECore

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
    /// Receive placement (issue 32): the places predicted for the first messages of the next
    /// call (addresses and sizes for the C call), and which kept frames hit theirs.
    var placements: [Placement] = []
    let places: UnsafeMutablePointer<UnsafeMutableRawPointer?>
    let counts: UnsafeMutablePointer<UInt32>
    let hits: UnsafeMutablePointer<Bool>

    init(slotSize: Int, batch: Int) {
        precondition(batch > 0, "a receive pool needs a slot")
        self.batch = batch
        self.slotSize = slotSize
        base = .allocate(capacity: batch * slotSize)
        pointers = .allocate(capacity: batch)
        lengths = .allocate(capacity: batch)
        which = .allocate(capacity: batch)
        places = .allocate(capacity: batch)
        counts = .allocate(capacity: batch)
        hits = .allocate(capacity: batch)
        placements.reserveCapacity(batch)
        for i in 0..<batch { pointers[i] = base + i * slotSize }
    }

    deinit {
        base.deallocate()
        pointers.deallocate()
        lengths.deallocate()
        which.deallocate()
        places.deallocate()
        counts.deallocate()
        hits.deallocate()
    }

    /// Kept frame `k` of the last receive call: whole, or its headers and its data in place.
    func frame(_ k: Int) -> ReceivedFrame {
        let i = Int(which[k])
        guard hits[k] else {
            return ReceivedFrame(bytes: UnsafeRawBufferPointer(start: pointers[i], count: Int(lengths[k])))
        }
        return ReceivedFrame(
            bytes: UnsafeRawBufferPointer(start: pointers[i], count: ReceiveLayout.headerBytes),
            placedData: UnsafeRawBufferPointer(start: places[i], count: Int(counts[i])))
    }
}

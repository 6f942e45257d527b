import AoEProtocol
import DequeModule

/// Where the data of one expected READ answer belongs: the place in its request's buffer
/// (issue 32, "receive a frame's data where it belongs"). A link that can scatter a message
/// (recvmmsg with an iovec per piece) receives the next message's headers into its slot and
/// its data straight here, saving the copy from the slot to the buffer.
public struct Placement: @unchecked Sendable {
    // @unchecked: the pointer is into an IOBuffer the router keeps alive (pinned) until the
    // receive call that uses it is over (`ReceivePlacements.release`).
    public var tag: UInt32
    public var destination: UnsafeMutableRawPointer
    public var count: Int

    public init(tag: UInt32, destination: UnsafeMutableRawPointer, count: Int) {
        self.tag = tag
        self.destination = destination
        self.count = count
    }
}

/// How a message is laid out when it is received with a placement: its first `headerBytes`
/// (Ethernet, AoE and ATA headers) at the start of its slot, the next `placement.count` bytes at
/// the placement, the rest (padding, or a longer frame's bytes) in the slot after the headers.
/// Pure functions over memory, shared by every link (and the tests), so the one place that
/// decides "hit or miss" is tested without a kernel.
public enum ReceiveLayout {
    /// The bytes of an ATA frame before its data (AoE r11 §3.1–3.2: 14 + 10 + 12).
    public static let headerBytes = AoEOffset.ataData

    /// Answers with less data are not placed: pinning and releasing a place costs more than
    /// copying a few KiB (callgrind, `aoefs bench` 4 KiB random reads at QD 32: 17 343
    /// instructions per request placed, 16 283 copied; 1 MiB reads: 1.14 M placed, 2.00 M copied).
    /// So at MTU 1500 (1024-byte answers) nothing is placed.
    public static let smallestPlaced = 8192

    /// Whether a placement of `count` bytes fits a slot of `slotSize`: the three pieces together
    /// hold exactly what the slot alone would.
    public static func fits(_ count: Int, slotSize: Int) -> Bool { count > 0 && headerBytes + count <= slotSize }

    /// After the kernel scattered a message of `length` bytes over {slot, placement, slot +
    /// headerBytes}: true when it is the answer the placement was made for (its data is in
    /// place: an ATA response with the placement's tag and at least `count` bytes of data);
    /// otherwise it makes the message whole in its slot (its data moved back from the
    /// placement), as if it had been received without one, and returns false. The bytes left at
    /// the placement are then meaningless: the router's invariant (`ReceivePlacements`) is that
    /// they belong to a frame still unanswered, whose answer writes them again.
    public static func settle(slot: UnsafeMutableRawPointer, slotSize: Int, length: Int, placement: Placement) -> Bool {
        let h = headerBytes
        if length >= h + placement.count, loadTag(slot) == placement.tag,
            slot.load(fromByteOffset: AoEOffset.command, as: UInt8.self) == AoECommand.ata.rawValue,
            slot.load(fromByteOffset: AoEOffset.versionFlags, as: UInt8.self) & AoEFlags.response.rawValue != 0
        {
            return true
        }
        let data = max(0, length - h)
        let placed = min(data, placement.count)
        let tail = data - placed
        if tail > 0 { (slot + h + placed).copyMemory(from: slot + h, byteCount: tail) }  // memmove
        if placed > 0 { (slot + h).copyMemory(from: placement.destination, byteCount: placed) }
        return false
    }

    /// What the kernel does with a scattered receive: `frame`'s first bytes into the slot, then
    /// the placement, then the slot after the headers, each up to its size. Returns the bytes
    /// written (a longer frame is cut, as MSG_TRUNC would). For in-memory links and tests.
    public static func scatter(
        _ frame: UnsafeRawBufferPointer, slot: UnsafeMutableRawPointer, slotSize: Int,
        placement: Placement
    ) -> Int {
        let h = min(headerBytes, frame.count)
        if h > 0 { slot.copyMemory(from: frame.baseAddress!, byteCount: h) }
        let placed = min(frame.count - h, placement.count)
        if placed > 0 { placement.destination.copyMemory(from: frame.baseAddress! + h, byteCount: placed) }
        let tail = min(frame.count - h - placed, slotSize - headerBytes - placement.count)
        if tail > 0 { (slot + headerBytes).copyMemory(from: frame.baseAddress! + h + placed, byteCount: tail) }
        return h + placed + max(0, tail)
    }

    private static func loadTag(_ slot: UnsafeMutableRawPointer) -> UInt32 {
        UInt32(bigEndian: slot.loadUnaligned(fromByteOffset: AoEOffset.tag, as: UInt32.self))
    }
}

/// The router's half of receive placement: which READ frames are in flight on each link, in the
/// order they were sent (a LAN answers in order, so the oldest unanswered is the next to come),
/// and the pins that keep a placement safe while a receive call may write to it.
///
/// The invariant: a link's receive call writes only to places of frames that were unanswered
/// when it was predicted, and those places stay pinned until the call is over. Anything the
/// kernel puts there that is not that frame's answer (another frame, a duplicate, junk) is
/// overwritten by the answer when it comes. Two things could break that, and are handled:
/// - the range is answered meanwhile through another link (a retransmit under a new tag took
///   another path): the accepted data is saved and written again when the pin is released
///   (`accept`, `release`);
/// - the request completes meanwhile and its buffer is handed back (a FUSE reply, a ring entry
///   reused): the pin holds the buffer object, and the driver holds the completion back while
///   `holds(request)` (`Engine`'s collect), until `release` returns the request.
struct ReceivePlacements: Sendable {
    struct Entry: Sendable {
        var tag: Tag
        var request: RequestID
        var buffer: IOBuffer
        var offset: Int
        var count: Int
        var destination: UnsafeMutableRawPointer { buffer.bytes.baseAddress! + offset }
        var address: UInt { UInt(bitPattern: destination) }
    }

    /// READ frames sent per link (indexed by link id), oldest first; answered ones are dropped
    /// as they reach the front.
    private var sent: [Deque<Entry>] = []
    /// What each link's current receive call may write to.
    private var pinned: [[Entry]] = []
    /// Pins per request: its completion waits until none holds it.
    private var pinnedRequests = DirectTable<RequestID, Int>()
    /// Links whose receive call is under way with placements (an answer accepted meanwhile at
    /// one of their places is saved). Zero whenever one link does all the receiving: each
    /// releases its pins before it handles what it received.
    private var linksPinned = 0
    /// Data accepted at a pinned place (an address), written again as each pin on it is released.
    private var saved: [(place: UInt, bytes: [UInt8], buffer: IOBuffer)] = []
    /// The most entries kept per link: a link whose receive never asks (one that cannot
    /// scatter) must not grow them without bound.
    static let limit = 4096

    /// A READ frame of `request` went out on `link` under `tag`, for `count` bytes at `offset`
    /// of `buffer`.
    mutating func sent(_ tag: Tag, on link: LinkID, request: RequestID, buffer: IOBuffer, offset: Int, count: Int) {
        guard count >= ReceiveLayout.smallestPlaced else { return }
        let i = link.rawValue
        if i >= sent.count {
            sent += Array(repeating: Deque(), count: i - sent.count + 1)
            pinned += Array(repeating: [], count: i - pinned.count + 1)
        }
        if sent[i].count >= Self.limit { sent[i].removeFirst() }
        sent[i].append(Entry(tag: tag, request: request, buffer: buffer, offset: offset, count: count))
    }

    /// Fills `list` with the places of the next (at most `limit`) answers expected on `link`,
    /// oldest first, each at most `largest` bytes, and pins them until `release(link)`.
    mutating func predict(on link: LinkID, frames: FrameTable, into list: inout [Placement], limit: Int, largest: Int) {
        list.removeAll(keepingCapacity: true)
        let i = link.rawValue
        guard i < sent.count else { return }
        // Never reached from input (issue 32): the driver releases each prediction before the next.
        precondition(pinned[i].isEmpty, "a link predicted twice without a release")
        var k = 0
        while k < sent[i].count && list.count < limit {
            let e = sent[i][k]
            guard let f = frames[e.tag], f.range.request == e.request, f.range.bufferOffset == e.offset else {
                if k == 0 { sent[i].removeFirst() } else { k += 1 }
                continue
            }
            k += 1
            guard e.count <= largest else { continue }
            list.append(Placement(tag: e.tag.rawValue, destination: e.destination, count: e.count))
            if pinned[i].isEmpty { linksPinned += 1 }
            pinned[i].append(e)
            pinnedRequests[e.request] = (pinnedRequests[e.request] ?? 0) + 1
        }
    }

    /// `link`'s receive call is over: what was accepted at its places meanwhile is written back,
    /// and the requests no pin holds any more are added to `freed` (their completions may go now).
    mutating func release(_ link: LinkID, freed: inout [RequestID]) {
        let i = link.rawValue
        guard i < pinned.count, !pinned[i].isEmpty else { return }
        if !saved.isEmpty { rewriteSaved(pinnedBy: i) }
        for e in pinned[i] {
            if let n = pinnedRequests[e.request], n > 1 {
                pinnedRequests[e.request] = n - 1
            } else {
                pinnedRequests[e.request] = nil
                freed.append(e.request)
            }
        }
        pinned[i].removeAll(keepingCapacity: true)
        linksPinned -= 1
        if !saved.isEmpty {
            let still = saved.filter { isPinned($0.place) }
            saved = still
        }
    }

    private func rewriteSaved(pinnedBy i: Int) {
        for s in saved where pinned[i].contains(where: { $0.address == s.place }) {
            s.bytes.withUnsafeBytes {
                UnsafeMutableRawPointer(bitPattern: s.place)!.copyMemory(from: $0.baseAddress!, byteCount: $0.count)
            }
        }
    }

    /// Whether a receive call under way may write at `address`.
    private func isPinned(_ address: UInt) -> Bool {
        pinned.contains { $0.contains { $0.address == address } }
    }

    /// Whether a pin holds `request` (its buffer may still be written by a receive call).
    func holds(_ request: RequestID) -> Bool { !pinnedRequests.isEmpty && pinnedRequests[request] != nil }

    /// An answer's data for `count` bytes at `place` (in `buffer`) was accepted: copies it there
    /// unless it was received in place, and saves it if a receive call elsewhere may write
    /// there meanwhile. Returns whether it was in place.
    @discardableResult
    mutating func accept(_ data: UnsafeRawPointer, count: Int, at place: UnsafeMutableRawPointer, buffer: IOBuffer)
        -> Bool
    {
        let inPlace = UnsafeRawPointer(place) == data
        if !inPlace { place.copyMemory(from: data, byteCount: count) }
        if linksPinned > 0, isPinned(UInt(bitPattern: place)) {
            saved.append((UInt(bitPattern: place), Array(UnsafeRawBufferPointer(start: place, count: count)), buffer))
        }
        return inPlace
    }
}

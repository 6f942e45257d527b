/// Replies gathered from the frames (issue 15): a link may lend the memory a frame was received
/// into past its receive call, so that a read's data goes to its reader (a FUSE reply's
/// `writev`) from there, not copied into a request buffer first.
///
/// The lender is what owns that memory; a lent piece keeps it alive (a strong reference) until
/// it is given back, so a link closed meanwhile leaves no dangling piece.
public protocol FrameLender: AnyObject, Sendable {
    /// Takes back slots lent earlier. Any thread may call it.
    func giveBack(_ slots: [Int32])
}

/// One received frame's slot, offered to the core while the frame is handled. The core keeps
/// it (sets `taken`) only for the data of a read whose buffer gathers (`IOBuffer(gathering:)`);
/// the link then does not reuse the slot until the buffer gives it back.
public struct FrameLoan {
    /// Not retained: a loan lives only during the receive call, while its link holds the lender;
    /// a piece that keeps the frame retains it (`IOPiece`). One retain and release per frame
    /// less on the hot path, where most frames are never taken.
    public unowned(unsafe) let lender: any FrameLender
    public let slot: Int32
    /// Set by the core when it kept the frame.
    public var taken = false

    public init(lender: any FrameLender, slot: Int32) {
        self.lender = lender
        self.slot = slot
    }
}

/// A read's data in memory it does not own: `count` bytes at `offset` of the request's buffer,
/// found at `start` (a lent frame's data, or the buffer's own bytes when no frame was lent).
public struct IOPiece: @unchecked Sendable {
    // @unchecked: `start` points into a lent slot (kept alive by `lender`) or the buffer's bytes.
    public let offset: Int
    public let start: UnsafeRawPointer
    public let count: Int
    let lender: (any FrameLender)?
    let slot: Int32
    /// Whether the piece lies in a lent frame (not in the buffer's own bytes).
    public var isLent: Bool { lender != nil }
}

import AoEProtocol

/// Identifies one block request from submission to completion.
public struct RequestID: Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt64
    public init(_ v: UInt64) { rawValue = v }
    public var description: String { "#\(rawValue)" }
}

/// What a block request does.
public enum IOKind: Sendable, Hashable {
    case read, write, flush
}

/// Why a block request failed. The FUSE layer maps every case to EIO (one function, in AoEFUSE).
public enum AoEIOError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The target is down (no answer for `deadsecs`), or went down while this request waited.
    case targetDown(TargetAddress)
    /// The target is disabled (`aoefs disable`).
    case disabled(TargetAddress)
    /// No such target in the table.
    case noSuchTarget(TargetAddress)
    /// The target answered with an ATA error: status and error registers, decoded.
    case ataError(TargetAddress, status: ATAStatus, error: ATAErrorRegister, lba: UInt64)
    /// The target answered with an AoE error.
    case aoeError(TargetAddress, AoEErrorCode)
    /// The request lies (partly) beyond the target's capacity.
    case beyondEnd(TargetAddress, lba: UInt64, sectors: Int, capacity: UInt64)
    /// The engine is shutting down.
    case shutdown

    public var description: String {
        switch self {
        case .targetDown(let t): "\(t): target is down"
        case .disabled(let t): "\(t): target is disabled (aoefs enable brings it back)"
        case .noSuchTarget(let t): "\(t): no such target"
        case .ataError(let t, let s, let e, let lba): "\(t): ATA error at LBA \(lba): status \(s), error \(e)"
        case .aoeError(let t, let c): "\(t): AoE error: \(c)"
        case .beyondEnd(let t, let lba, let n, let cap): "\(t): \(n) sectors at LBA \(lba) lie beyond the end (\(cap) sectors)"
        case .shutdown: "the engine is shutting down"
        }
    }
}

/// Memory a request reads into or writes from. Owned by whoever made it; the engine writes each
/// byte of a read buffer from exactly one response frame, under its lock.
public final class IOBuffer: @unchecked Sendable {
    // @unchecked: the engine writes disjoint ranges under its lock; the owner reads only after
    // the completion callback, which happens after those writes (the lock orders them).
    public let bytes: UnsafeMutableRawBufferPointer
    private let owned: Bool
    /// Whether a read's data may stay in the frames it came in (`pieces`) instead of `bytes`.
    public let gathers: Bool
    /// A gathering read's data, one piece per answered range, in the order they arrived; each
    /// lies in a lent frame or, when none was lent, in `bytes`. Written under the engine's lock
    /// like `bytes`; read by the owner after completion.
    public internal(set) var pieces: [IOPiece] = []

    /// Allocates `count` zeroed bytes.
    public init(count: Int) {
        bytes = .allocate(byteCount: max(count, 1), alignment: 4096)
        bytes.initializeMemory(as: UInt8.self, repeating: 0)
        owned = true
        gathers = false
    }

    /// Allocates `count` bytes without clearing them: for reads, whose every byte the engine
    /// writes before completing successfully.
    public init(uninitializedCount count: Int) {
        bytes = .allocate(byteCount: max(count, 1), alignment: 4096)
        owned = true
        gathers = false
    }

    /// A read buffer of `count` bytes whose data may stay in the frames it arrives in
    /// (`pieces`, then `withGathered`): the reader sends it from there. `bytes` is the fallback
    /// for ranges whose frame the link could not lend.
    public init(gathering count: Int) {
        bytes = .allocate(byteCount: max(count, 1), alignment: 4096)
        owned = true
        gathers = true
    }

    /// Wraps memory someone else owns and keeps alive until completion (a FUSE buffer).
    public init(borrowing bytes: UnsafeMutableRawBufferPointer) {
        self.bytes = bytes
        owned = false
        gathers = false
    }

    /// Copies `array` into a new buffer.
    public convenience init(_ array: [UInt8]) {
        self.init(count: array.count)
        array.withUnsafeBytes { bytes.copyMemory(from: $0) }
    }

    public var count: Int { bytes.count }

    /// A copy of bytes `range`.
    public func array(_ range: Range<Int>? = nil) -> [UInt8] { Array(bytes[range ?? 0..<bytes.count]) }

    /// Puts `count` bytes of a gathering read, from `offset`, received at `data`: keeps the
    /// frame when `loan` lends it (and marks it taken), else copies into `bytes`. The scheduler
    /// calls it for each answered range, under the engine's lock.
    public func gather(_ data: UnsafeRawPointer, count: Int, at offset: Int, loan: inout FrameLoan?) {
        if var l = loan, !l.taken {
            l.taken = true
            loan = l
            pieces.append(IOPiece(offset: offset, start: data, count: count, lender: l.lender, slot: l.slot))
        } else {
            (bytes.baseAddress! + offset).copyMemory(from: data, byteCount: count)
            pieces.append(IOPiece(offset: offset, start: UnsafeRawPointer(bytes.baseAddress! + offset), count: count,
                                  lender: nil, slot: -1))
        }
    }

    /// Calls `body` with the data of bytes `range` as pieces in order, for a gathered send, when
    /// the pieces cover the range exactly in at most `maxPieces`; otherwise (no pieces, a gap,
    /// an overlap, too many) with the range of `bytes`, into which the pieces are copied first.
    public func withGathered<R>(_ range: Range<Int>, maxPieces: Int,
                                _ body: ([UnsafeRawBufferPointer]) throws -> R) rethrows -> R {
        let whole = UnsafeRawBufferPointer(rebasing: bytes[range])
        if pieces.isEmpty { return try body([whole]) }
        let sorted = pieces.sorted { $0.offset < $1.offset }
        if pieces.count <= maxPieces {
            var at = range.lowerBound
            var parts: [UnsafeRawBufferPointer] = []
            parts.reserveCapacity(sorted.count)
            for p in sorted where p.offset + p.count > range.lowerBound && p.offset < range.upperBound {
                guard p.offset == at else { break }
                let end = min(p.offset + p.count, range.upperBound)
                parts.append(UnsafeRawBufferPointer(start: p.start, count: end - p.offset))
                at = end
            }
            if at == range.upperBound { return try body(parts) }
        }
        // Too many pieces for one send, or not an exact cover (cannot happen for a read that
        // succeeded): assemble in `bytes`.
        for p in sorted where p.lender != nil {
            (bytes.baseAddress! + p.offset).copyMemory(from: p.start, byteCount: p.count)
        }
        return try body([whole])
    }

    deinit {
        if gathers { giveBackLentFrames() }
        if owned { bytes.deallocate() }
    }

    /// Lent frames go back to their lenders, one call per lender run.
    private func giveBackLentFrames() {
        var run: [Int32] = []
        var lender: (any FrameLender)?
        for p in pieces {
            guard let l = p.lender else { continue }
            if let current = lender, current !== l {
                current.giveBack(run)
                run.removeAll(keepingCapacity: true)
            }
            lender = l
            run.append(p.slot)
        }
        if let lender, !run.isEmpty { lender.giveBack(run) }
    }
}

/// A sector-aligned request as the scheduler sees it.
public struct SectorRequest: Sendable {
    public var id: RequestID
    public var target: TargetAddress
    public var kind: IOKind
    public var lba: UInt64
    public var sectors: Int
    /// Read destination or write source; `sectors × 512` bytes from `bufferOffset`. Nil for flush.
    public var buffer: IOBuffer?
    public var bufferOffset: Int

    /// - Precondition: the sectors fit the buffer from `bufferOffset` (a caller's mistake here
    ///   would otherwise become a heap overflow when the data is copied).
    public init(id: RequestID, target: TargetAddress, kind: IOKind, lba: UInt64, sectors: Int, buffer: IOBuffer?,
                bufferOffset: Int = 0) {
        precondition(sectors >= 0, "negative sector count")
        if let buffer {
            precondition(bufferOffset >= 0 && bufferOffset + sectors * 512 <= buffer.count,
                         "\(sectors) sectors at offset \(bufferOffset) do not fit a \(buffer.count)-byte buffer")
        }
        self.id = id
        self.target = target
        self.kind = kind
        self.lba = lba
        self.sectors = sectors
        self.buffer = buffer
        self.bufferOffset = bufferOffset
    }
}

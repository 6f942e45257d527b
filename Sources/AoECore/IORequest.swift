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
    /// DATA SET MANAGEMENT (TRIM) of the sectors: only to a target whose IDENTIFY offers it and
    /// reads zeros after it (`ATAIdentity.trimsToZeros`), so that they read back as a hole.
    case trim

    /// Changes what the sectors hold: a flush waits for every such request submitted before it.
    public var changesSectors: Bool { self == .write || self == .trim }
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
    /// A TRIM to a target whose IDENTIFY does not offer TRIM with zeros after it.
    case trimNotOffered(TargetAddress)
    /// The engine is shutting down.
    case shutdown
    /// The caller gave up on it (`EngineCore.cancelRead(owner:)`: a reader interrupted by a signal).
    case interrupted

    public var description: String {
        switch self {
        case .targetDown(let t): "\(t): target is down"
        case .disabled(let t): "\(t): target is disabled (aoefs enable brings it back)"
        case .noSuchTarget(let t): "\(t): no such target"
        case .ataError(let t, let s, let e, let lba): "\(t): ATA error at LBA \(lba): status \(s), error \(e)"
        case .aoeError(let t, let c): "\(t): AoE error: \(c)"
        case .beyondEnd(let t, let lba, let n, let cap):
            "\(t): \(n) sectors at LBA \(lba) lie beyond the end (\(cap) sectors)"
        case .trimNotOffered(let t): "\(t): the target does not offer TRIM (with zeros after it)"
        case .shutdown: "the engine is shutting down"
        case .interrupted: "interrupted by the caller"
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

    /// Allocates `count` zeroed bytes.
    public init(count: Int) {
        bytes = .allocate(byteCount: max(count, 1), alignment: 4096)
        bytes.initializeMemory(as: UInt8.self, repeating: 0)
        owned = true
    }

    /// Allocates `count` bytes without clearing them: for reads, whose every byte the engine
    /// writes before completing successfully.
    public init(uninitializedCount count: Int) {
        bytes = .allocate(byteCount: max(count, 1), alignment: 4096)
        owned = true
    }

    /// Wraps memory someone else owns and keeps alive until completion (a FUSE buffer).
    public init(borrowing bytes: UnsafeMutableRawBufferPointer) {
        self.bytes = bytes
        owned = false
    }

    /// Copies `array` into a new buffer.
    public convenience init(_ array: [UInt8]) {
        self.init(count: array.count)
        array.withUnsafeBytes { bytes.copyMemory(from: $0) }
    }

    public var count: Int { bytes.count }

    /// A copy of bytes `range`.
    public func array(_ range: Range<Int>? = nil) -> [UInt8] { Array(bytes[range ?? 0..<bytes.count]) }

    deinit {
        if owned { bytes.deallocate() }
    }
}

/// A sector-aligned request as the scheduler sees it.
public struct SectorRequest: Sendable {
    public var id: RequestID
    public var target: TargetAddress
    public var kind: IOKind
    public var lba: UInt64
    public var sectors: Int
    /// Read destination or write source; `sectors × 512` bytes from `bufferOffset`. Nil for flush
    /// and trim.
    public var buffer: IOBuffer?
    public var bufferOffset: Int
    /// The caller's name for it (0: none): a read can be cancelled by it (the FUSE layer gives
    /// the kernel's request id, which its INTERRUPT names).
    public var owner: UInt64

    /// - Precondition: the sectors fit the buffer from `bufferOffset` (a caller's mistake here
    ///   would otherwise become a heap overflow when the data is copied).
    public init(
        id: RequestID, target: TargetAddress, kind: IOKind, lba: UInt64, sectors: Int, buffer: IOBuffer?,
        bufferOffset: Int = 0, owner: UInt64 = 0
    ) {
        // Never reached from input (issue 30's audit): The block API checked the range against the buffer first (Engine+BlockAPI).
        precondition(sectors >= 0, "negative sector count")
        if let buffer {
            precondition(
                bufferOffset >= 0 && bufferOffset + sectors * 512 <= buffer.count,
                "\(sectors) sectors at offset \(bufferOffset) do not fit a \(buffer.count)-byte buffer")
        }
        self.id = id
        self.target = target
        self.kind = kind
        self.lba = lba
        self.sectors = sectors
        self.buffer = buffer
        self.bufferOffset = bufferOffset
        self.owner = owner
    }
}

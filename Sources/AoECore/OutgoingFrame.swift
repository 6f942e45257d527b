import AoEProtocol

/// A frame for the wire, kept so that sending it costs no allocation: the headers (Ethernet,
/// AoE, ATA: 36 bytes) in inline storage, and a write's data still in the request's buffer (kept
/// alive by the reference) until the link copies both into its send slot. Frames that are rare
/// or large (Query Config, probes) are plain bytes.
///
/// Before this, every frame was a fresh `[UInt8]` and a write's data was copied into it and then
/// again into the link's slot; a profile put the allocation and its free at ~900 instructions
/// per frame (Docs/performance.md).
public struct OutgoingFrame: Sendable {
    /// Room for the inline headers: 64 bytes, more than an ATA frame's 36.
    public static let inlineCapacity = 64
    private var head: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0, 0, 0)
    private var headCount = 0
    private var spill: [UInt8]?
    /// A write's data: `dataCount` bytes at `dataOffset` of `data`.
    public private(set) var data: IOBuffer?
    public private(set) var dataOffset = 0
    public private(set) var dataCount = 0

    /// A frame that is these bytes.
    public init(bytes: [UInt8]) { spill = bytes }

    /// A frame whose headers `encode` writes (it returns how many bytes, at most
    /// `inlineCapacity`), followed by `count` bytes at `offset` of `data`.
    /// - Precondition: the data range lies inside `data`.
    public init(
        headers encode: (UnsafeMutableRawBufferPointer) -> Int, data: IOBuffer? = nil, offset: Int = 0,
        count: Int = 0
    ) {
        // Never reached from input (issue 30's audit): The scheduler cuts frames from its own requests' ranges, which lie inside their buffers.
        precondition(
            count == 0 || (data != nil && offset >= 0 && offset + count <= data!.count),
            "frame data outside its buffer")
        headCount = withUnsafeMutableBytes(of: &head) { encode($0) }
        precondition(headCount <= Self.inlineCapacity)
        self.data = count > 0 ? data : nil
        dataOffset = offset
        dataCount = count
    }

    /// The frame's length in bytes.
    public var count: Int { spill?.count ?? headCount + dataCount }

    /// Calls `body` with the headers (or the whole frame, for plain bytes).
    public func withHeaderBytes<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R {
        if let spill { return spill.withUnsafeBytes(body) }
        return withUnsafeBytes(of: head) { body(UnsafeRawBufferPointer(rebasing: $0[0..<headCount])) }
    }

    /// Copies the whole frame to the start of `destination`, which must hold `count` bytes:
    /// the only copy of a write's data before the kernel's.
    public func copy(into destination: UnsafeMutableRawBufferPointer) {
        precondition(destination.count >= count, "destination too small for the frame")
        let n = withHeaderBytes { h in
            destination.baseAddress!.copyMemory(from: h.baseAddress!, byteCount: h.count)
            return h.count
        }
        if let data, dataCount > 0 {
            (destination.baseAddress! + n).copyMemory(from: data.bytes.baseAddress! + dataOffset, byteCount: dataCount)
        }
    }

    /// The whole frame as bytes (in-memory links and tests).
    public var bytes: [UInt8] {
        if let spill { return spill }
        return [UInt8](unsafeUninitializedCapacity: count) { buf, n in
            copy(into: UnsafeMutableRawBufferPointer(buf))
            n = count
        }
    }
}

/// What follows the common header: one argument per command.
public enum AoEBody: Hashable, Sendable {
    case ata(ATAMessage)
    case queryConfig(QueryConfig)
    case macMaskList(MACMaskList)
    case reserveRelease(ReserveRelease)
    /// Vendor-specific and unknown commands, and every error response (E set), whose
    /// argument is not defined: the bytes after the header, kept as they came.
    case opaque([UInt8])
}

/// One whole AoE frame, Ethernet header included, as it crosses the wire.
///
/// Encoding writes no Ethernet padding: the link layer (or the NIC) pads short frames, and the
/// decoder accepts padding after every argument.
public struct AoEFrame: Hashable, Sendable {
    public var header: AoEHeader
    public var body: AoEBody

    public init(header: AoEHeader, body: AoEBody) {
        self.header = header
        self.body = body
    }

    /// Bytes `encode(into:)` writes.
    public var encodedSize: Int {
        AoEHeader.size
            + {
                switch body {
                case .ata(let m): m.encodedSize
                case .queryConfig(let m): m.encodedSize
                case .macMaskList(let m): m.encodedSize
                case .reserveRelease(let m): m.encodedSize
                case .opaque(let bytes): bytes.count
                }
            }()
    }

    /// Writes the frame at the start of `buffer`, which must hold `encodedSize` bytes.
    /// - Returns: the number of bytes written.
    @discardableResult
    public func encode(into buffer: UnsafeMutableRawBufferPointer) -> Int {
        let n = encodedSize
        // Never reached from input (issue 30's audit): Callers size the buffer with `encodedSize`.
        precondition(buffer.count >= n, "buffer too small for the frame")
        header.encode(into: buffer)
        let o = AoEHeader.size
        switch body {
        case .ata(let m): m.encode(into: buffer, at: o)
        case .queryConfig(let m): m.encode(into: buffer, at: o)
        case .macMaskList(let m): m.encode(into: buffer, at: o)
        case .reserveRelease(let m): m.encode(into: buffer, at: o)
        case .opaque(let bytes): buffer.putBytes(o, bytes)
        }
        return n
    }

    /// The frame's bytes.
    public func encoded() -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: encodedSize) { buf, count in
            count = encode(into: UnsafeMutableRawBufferPointer(buf))
        }
    }

    /// Decodes a whole frame. Never traps; every malformed input throws and says what is wrong.
    public init(decoding b: UnsafeRawBufferPointer) throws(AoEDecodeError) {
        let header = try AoEHeader(decoding: b)
        let o = AoEHeader.size
        let body: AoEBody
        if header.isError {
            body = .opaque(Array(b[o...]))
        } else {
            switch header.command {
            case .ata: body = .ata(try ATAMessage(decoding: b, at: o, isResponse: header.isResponse))
            case .queryConfig: body = .queryConfig(try QueryConfig(decoding: b, at: o))
            case .macMaskList: body = .macMaskList(try MACMaskList(decoding: b, at: o))
            case .reserveRelease: body = .reserveRelease(try ReserveRelease(decoding: b, at: o))
            default: body = .opaque(Array(b[o...]))
            }
        }
        self.init(header: header, body: body)
    }

    /// Decodes a whole frame from an array.
    public init(decoding bytes: [UInt8]) throws(AoEDecodeError) {
        let result = bytes.withUnsafeBytes { b in Result { () throws(AoEDecodeError) in try AoEFrame(decoding: b) } }
        self = try result.get()
    }
}

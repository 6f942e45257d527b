/// FUSE over io_uring (protocol 7.42, Linux 6.14): the layout of a ring entry and its commands.
/// Debian 12's `linux/fuse.h` (7.38) has none of it; these follow `include/uapi/linux/fuse.h`
/// of Linux 6.14 (its 7.42 changelog: `struct fuse_uring_ent_in_out`, `fuse_uring_req_header`,
/// `fuse_uring_cmd_req`, `FUSE_URING_IN_OUT_HEADER_SZ`, `FUSE_URING_OP_IN_OUT_SZ`,
/// `enum fuse_uring_cmd`) and `fs/fuse/dev_uring.c`, which fills and reads them.
///
/// An entry is two buffers the server registers: a header area (`struct fuse_uring_req_header`,
/// `headerAreaSize` bytes) and a payload of at least max_write bytes. For a request the kernel
/// writes the `fuse_in_header` at `inOutOffset`, the opcode's own structure (`fuse_read_in`, …;
/// nothing for LOOKUP) at `opInOffset`, everything else (a LOOKUP's name, a WRITE's data) into
/// the payload, and `fuse_uring_ent_in_out` at `entryOffset` (commit id = the request's unique,
/// payload_sz). The reply goes the same way: `fuse_out_header` at `inOutOffset`, the reply's
/// arguments into the payload, their size in payload_sz.
public enum FUSERingLayout {
    /// `FUSE_URING_IN_OUT_HEADER_SZ`: room for `fuse_in_header` / `fuse_out_header`.
    public static let inOutOffset = 0
    /// Where the opcode's structure starts (after the 128-byte in/out area).
    public static let opInOffset = 128
    /// `FUSE_URING_OP_IN_OUT_SZ`: room for the opcode's structure.
    public static let opInSize = 128
    /// `struct fuse_uring_ent_in_out`: flags (u64), commit_id (u64), payload_sz (u32), padding, reserved (u64).
    public static let entryOffset = 256
    /// `sizeof(struct fuse_uring_req_header)`.
    public static let headerAreaSize = 256 + 32
    /// Offsets inside `fuse_uring_ent_in_out`.
    public static let commitIDOffset = entryOffset + 8
    public static let payloadSizeOffset = entryOffset + 16
}

/// `enum fuse_uring_cmd`: the `cmd_op` of an IORING_OP_URING_CMD on /dev/fuse.
public enum FUSERingCommand: UInt32, Sendable {
    /// Hands the kernel an entry (header area and payload) to fill with the next request.
    case register = 1
    /// Commits the reply in the entry to request `commit_id` and takes the next request.
    case commitAndFetch = 2
}

extension FUSERequest {
    /// Decodes a request the kernel put into a ring entry: `headerArea` is the entry's
    /// `fuse_uring_req_header` (at least `FUSERingLayout.headerAreaSize` bytes), `payload` its
    /// payload buffer. Returns the header, the request, and the commit id the reply must carry.
    /// A WRITE's `dataOffset` is into `payload`. Never traps.
    public static func decode(ringHeader headerArea: UnsafeRawBufferPointer, payload: UnsafeRawBufferPointer)
        throws(FUSEDecodeError) -> (FUSEInHeader, FUSERequest, commitID: UInt64)
    {
        guard headerArea.count >= FUSERingLayout.headerAreaSize else {
            throw .truncated("fuse_uring_req_header", need: FUSERingLayout.headerAreaSize, have: headerArea.count)
        }
        var e = FUSEReader(headerArea, offset: FUSERingLayout.commitIDOffset)
        let commitID = try e.u64("ent_in_out.commit_id")
        let payloadSize = try Int(e.u32("ent_in_out.payload_sz"))
        guard payloadSize <= payload.count else { throw .tooMany("ent_in_out.payload_sz", payloadSize) }
        var h = FUSEReader(UnsafeRawBufferPointer(rebasing: headerArea[0..<FUSEInHeader.size]))
        let header = try header(&h)
        let opIn = UnsafeRawBufferPointer(
            rebasing: headerArea[FUSERingLayout.opInOffset..<FUSERingLayout.opInOffset + FUSERingLayout.opInSize])
        var r = FUSEReader(opIn)
        let request = try body(header, &r, payload: UnsafeRawBufferPointer(rebasing: payload[0..<payloadSize]))
        return (header, request, commitID)
    }

    /// The request as the kernel puts it into a ring entry (tests): the header area and the payload.
    public func ringEncoded(unique: UInt64, nodeID: UInt64, writeData: [UInt8] = []) -> (
        header: [UInt8], payload: [UInt8]
    ) {
        let flat = encoded(unique: unique, nodeID: nodeID, writeData: writeData)
        var area = [UInt8](repeating: 0, count: FUSERingLayout.headerAreaSize)
        area.replaceSubrange(0..<FUSEInHeader.size, with: flat[0..<FUSEInHeader.size])
        let rest = Array(flat[FUSEInHeader.size...])
        // What dev_uring.c puts into op_in: the first argument, the opcode's structure; a
        // LOOKUP's first argument is empty and its name goes to the payload.
        let opSize: Int
        switch self {
        case .lookup: opSize = 0
        case .write: opSize = 40
        default: opSize = min(rest.count, FUSERingLayout.opInSize)
        }
        area.replaceSubrange(FUSERingLayout.opInOffset..<FUSERingLayout.opInOffset + opSize, with: rest[0..<opSize])
        let payload = Array(rest[opSize...])
        for i in 0..<8 {
            area[FUSERingLayout.commitIDOffset + i] = UInt8(truncatingIfNeeded: unique >> (8 * UInt64(i)))
        }
        for i in 0..<4 {
            area[FUSERingLayout.payloadSizeOffset + i] = UInt8(truncatingIfNeeded: payload.count >> (8 * i))
        }
        return (area, payload)
    }
}

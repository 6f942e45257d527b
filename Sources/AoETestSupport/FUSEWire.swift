import AoELinux
import FUSEProtocol

#if canImport(Glibc)
    import Glibc
#endif

/// The kernel's side of a FUSE connection, in memory: a SOCK_SEQPACKET socketpair, whose
/// messages keep their boundaries as /dev/fuse's requests and replies do. `daemonSide` goes to
/// the FUSE channel in place of /dev/fuse; the test speaks the kernel's part through `send` and
/// `reply`. Requests, replies, interrupts, notifications and teardown are then tested without
/// root or a mount (the lab's mount tests stay as the real thing).
public final class FUSEWire: @unchecked Sendable {
    // @unchecked: `nextUnique` and `held` are behind `lock`; the descriptors are fixed.
    /// The descriptor to serve, as if it were /dev/fuse (non-blocking reads are the channel's).
    public let daemonSide: Int32
    private let kernelSide: Int32
    private let lock = Locked((nextUnique: UInt64(2), held: [FUSEWireReply]()))

    public init() throws(ProcessError) {
        var fds: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) == 0 else {
            throw ProcessError("socketpair: \(String(cString: strerror(errno)))")
        }
        daemonSide = fds[0]
        kernelSide = fds[1]
    }

    deinit {
        close(daemonSide)
        close(kernelSide)
    }

    /// Sends `request` for node `node` as the kernel would; returns its unique id.
    @discardableResult
    public func send(_ request: FUSERequest, node: UInt64 = 1, writeData: [UInt8] = []) -> UInt64 {
        let unique = lock.withLock { s in
            defer { s.nextUnique += 2 }  // the kernel's are even; an INTERRUPT's own is odd
            return s.nextUnique
        }
        sendRaw(request.encoded(unique: unique, nodeID: node, writeData: writeData))
        return unique
    }

    /// Sends bytes as one request, however malformed.
    public func sendRaw(_ bytes: [UInt8]) {
        _ = bytes.withUnsafeBytes { b in retryingEINTR { Glibc.send(kernelSide, b.baseAddress, b.count, 0) } }
    }

    /// The kernel closes its side (an unmount, as the channel sees it: reads end).
    public func hangUp() { shutdown(kernelSide, Int32(SHUT_RDWR)) }

    /// The reply to `unique` (others that come first are kept for later calls), or nil when none
    /// comes within `timeout`.
    public func reply(to unique: UInt64, timeout: Duration = .seconds(10)) -> FUSEWireReply? {
        if let r = lock.withLock({ s in s.held.firstIndex { $0.unique == unique }.map { s.held.remove(at: $0) } }) {
            return r
        }
        let deadline = ContinuousClock.now + timeout
        while case let left = deadline - .now, left > .zero {
            guard let r = next(timeout: left) else { return nil }
            if r.unique == unique { return r }
            lock.withLock { $0.held.append(r) }
        }
        return nil
    }

    /// Whether a reply to `unique` comes within `timeout`.
    public func answers(_ unique: UInt64, within timeout: Duration) -> Bool {
        reply(to: unique, timeout: timeout) != nil
    }

    /// The next message from the daemon (a reply, or a notification with unique 0).
    public func next(timeout: Duration) -> FUSEWireReply? {
        guard waitReadable(any: [kernelSide], timeout: timeout) != 0 else { return nil }
        var buffer = [UInt8](repeating: 0, count: (1 << 20) + 4096)
        let n = buffer.withUnsafeMutableBytes { b in retryingEINTR { recv(kernelSide, b.baseAddress, b.count, 0) } }
        guard n >= FUSEReply.headerSize else { return nil }
        return FUSEWireReply(Array(buffer[0..<n]))
    }
}

/// One message the daemon wrote: `fuse_out_header` and what follows.
public struct FUSEWireReply: Sendable {
    public let bytes: [UInt8]
    /// The header's error: 0 or -errno (a notification: its code).
    public var error: Int32 { Int32(bitPattern: u32(4)) }
    public var unique: UInt64 { UInt64(u32(8)) | UInt64(u32(12)) << 32 }
    /// The bytes after the header.
    public var payload: [UInt8] { Array(bytes.dropFirst(FUSEReply.headerSize)) }
    /// A little-endian u32 of the payload at `offset`.
    public func payloadU32(_ offset: Int) -> UInt32 { u32(FUSEReply.headerSize + offset) }
    public func payloadU64(_ offset: Int) -> UInt64 {
        UInt64(payloadU32(offset)) | UInt64(payloadU32(offset + 4)) << 32
    }

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    private func u32(_ at: Int) -> UInt32 {
        guard at + 4 <= bytes.count else { return 0 }
        return UInt32(bytes[at]) | UInt32(bytes[at + 1]) << 8 | UInt32(bytes[at + 2]) << 16 | UInt32(bytes[at + 3])
            << 24
    }
}

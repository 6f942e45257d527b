import AoECore
import AoEEngine
import AoELinux
import AoEProtocol
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A pipe as an engine event source, standing in for a FUSE session: each byte written to it
/// (`poke`) is one 4 KiB read of `target`, submitted into the loop's outbox as a FUSE request
/// would be. `end` makes the next `service` report the source ended.
public final class PipeSource: EventSource, @unchecked Sendable {
    // @unchecked: the counters are atomics; one event loop calls service.
    private let fds: [Int32]
    private let engine: Engine
    private let target: TargetAddress
    /// Bytes taken from the pipe (requests submitted).
    public let served = Atomic<Int>(0)
    /// Requests that completed successfully.
    public let completed = Atomic<Int>(0)
    /// Set: the source ends at its next service.
    public let end = Atomic<Bool>(false)
    public var descriptor: Int32 { fds[0] }

    public init(engine: Engine, target: TargetAddress) throws(ProcessError) {
        guard let p = closeOnExecPipe() else { throw ProcessError("pipe: \(String(cString: strerror(errno)))") }
        fds = p
        _ = fcntl(fds[0], F_SETFL, fcntl(fds[0], F_GETFL) | O_NONBLOCK)
        self.engine = engine
        self.target = target
    }

    public func service(_ outbox: inout Outbox) -> Bool {
        if end.load(ordering: .relaxed) { return false }
        var byte: UInt8 = 0
        while read(fds[0], &byte, 1) == 1 {
            served.add(1, ordering: .relaxed)
            engine.read(
                target, offset: UInt64(byte) * 4096, count: 4096, into: IOBuffer(count: 4096),
                outbox: &outbox
            ) { [self] r, _ in
                if case .success = r { completed.add(1, ordering: .relaxed) }
            }
        }
        return true
    }

    /// Writes `count` bytes: `count` requests.
    public func poke(_ count: Int) { for i in 0..<count { var b = UInt8(i & 0xff); _ = write(fds[1], &b, 1) } }

    deinit { fds.forEach { close($0) } }
}

import CAoELinux

#if canImport(Glibc)
    import Glibc
#endif

/// Process-wide memory settings for a daemon that moves large buffers.
public enum Heap {
    /// Keeps request buffers (up to 1 MiB each) in malloc's heap instead of fresh mappings.
    ///
    /// Why: glibc maps each large allocation anew and the first touch of every page faults;
    /// a 1 MiB read through the mount took 256 faults (perf stat: 131,586 faults for 512 MiB),
    /// about as long as the network transfer itself. Held memory is bounded by what is in flight
    /// at once (FUSE's background queue × 1 MiB) and is reused.
    public static func keepLargeBuffers() {
        _ = aoel_keep_heap(4 << 20, 512 << 20)
    }
}

/// Anonymous memory reserved, not committed (mmap with MAP_NORESERVE): a page costs memory only
/// once it is written. FUSE over io_uring's payloads (`RingTransport`): 1 MiB per entry, of
/// which a 4 KiB request touches one page.
public final class ReservedMemory: @unchecked Sendable {
    // @unchecked: the mapping is immutable; what is written into it is its users' business.
    public let base: UnsafeMutableRawPointer
    public let count: Int

    /// - Throws: `ProcessError` when the address space cannot be reserved.
    public init(count: Int) throws(ProcessError) {
        let p = mmap(nil, count, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
        guard let p, p != MAP_FAILED else {
            throw ProcessError("cannot reserve \(count >> 20) MiB: \(String(cString: strerror(errno)))")
        }
        base = p
        self.count = count
    }

    deinit { munmap(base, count) }
}

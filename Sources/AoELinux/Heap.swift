import CAoELinux

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

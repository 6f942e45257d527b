import AoECore
import AoELinux
import AoEProtocol
import Synchronization

/// Discard (issue 33): a byte range of a target made a hole with ATA TRIM, or written with
/// zeros. Serves FUSE_FALLOCATE's PUNCH_HOLE and ZERO_RANGE (the loop driver's discard and
/// write-zeroes, `fstrim`, `blkdiscard`).
extension Engine {
    /// Zeros for zero-filling writes: one buffer, only ever read.
    static let zeros = IOBuffer(count: zeroChunk)
    /// The largest zero-filling write: a MiB, as large as a FUSE write (frames of the payload
    /// negotiated, never 512-byte ones).
    static let zeroChunk = 1 << 20

    /// Whether `target` can make holes: its IDENTIFY offers TRIM and zeros after it. Nil while
    /// it has not answered IDENTIFY.
    public func trimsToZeros(_ target: TargetAddress) -> Bool? {
        identity(of: target).map(\.trimsToZeros)
    }

    /// Makes `count` bytes at byte `offset` of `target` read as zeros. On a target that
    /// `trimsToZeros`, the whole sectors inside are trimmed and partial sectors at the ends are
    /// written with zeros (read-modify-write); on any other target, with `writeZerosOtherwise`
    /// the range is written with zeros, and without it the request fails with `trimNotOffered`
    /// before anything is sent. Each part holds its sectors' range lock, as a write does.
    public func discard(
        _ target: TargetAddress, offset: UInt64, count: UInt64, writeZerosOtherwise: Bool,
        outbox: inout Outbox, completion: @escaping IOCompletion
    ) {
        if count == 0 { return completion(.success(()), &outbox) }
        let trims = trimsToZeros(target) ?? false
        if !trims && !writeZerosOtherwise { return completion(.failure(.trimNotOffered(target)), &outbox) }
        let end = offset + count
        // Whole sectors [first, last) inside the range; the bytes around them are zero-filled.
        let first = (offset + 511) / 512, last = end / 512
        var parts: [(UInt64, UInt64, trim: Bool)] = []
        if first < last {
            if offset < first * 512 { parts.append((offset, first * 512 - offset, false)) }
            parts.append((first * 512, (last - first) * 512, trims))
            if last * 512 < end { parts.append((last * 512, end - last * 512, false)) }
        } else {
            parts.append((offset, count, false))  // inside one or two sectors
        }
        let partDone = Self.joined(parts.count, completion)
        for (at, n, trim) in parts {
            if trim {
                let sectors = at / 512..<(at + n) / 512
                lock(target, sectors, &outbox) { [self] release, outbox in
                    submit(
                        target, .trim, lba: sectors.lowerBound, sectors: Int(sectors.count), buffer: nil,
                        outbox: &outbox
                    ) { r, outbox in
                        release(&outbox)
                        partDone(r, &outbox)
                    }
                }
            } else {
                writeZeros(target, offset: at, count: n, outbox: &outbox, completion: partDone)
            }
        }
    }

    /// Writes zeros over `count` bytes at `offset`, a MiB per write, all submitted at once.
    private func writeZeros(
        _ target: TargetAddress, offset: UInt64, count: UInt64, outbox: inout Outbox,
        completion: @escaping IOCompletion
    ) {
        let chunks = Int((count + UInt64(Self.zeroChunk) - 1) / UInt64(Self.zeroChunk))
        let chunkDone = Self.joined(chunks, completion)
        for k in 0..<chunks {
            let at = offset + UInt64(k * Self.zeroChunk)
            let n = Int(min(UInt64(Self.zeroChunk), offset + count - at))
            write(target, offset: at, count: n, from: Self.zeros, outbox: &outbox, completion: chunkDone)
        }
    }

    /// A completion to give each of `parts` requests: `completion` runs once, when the last of
    /// them completes, with the first failure among them or success.
    static func joined(_ parts: Int, _ completion: @escaping IOCompletion) -> IOCompletion {
        let remaining = Atomic<Int>(parts)
        let failure = Locked<AoEIOError?>(nil)
        return { r, outbox in
            if case .failure(let e) = r { failure.withLock { $0 = $0 ?? e } }
            guard remaining.subtract(1, ordering: .acquiringAndReleasing).newValue == 0 else { return }
            if let e = failure.withLock({ $0 }) { return completion(.failure(e), &outbox) }
            completion(.success(()), &outbox)
        }
    }

    /// `discard(…outbox:completion:)` from a thread that is not in a pass.
    public func discard(
        _ target: TargetAddress, offset: UInt64, count: UInt64, writeZerosOtherwise: Bool,
        completion: @escaping IOCompletion
    ) {
        var outbox = Outbox()
        discard(
            target, offset: offset, count: count, writeZerosOtherwise: writeZerosOtherwise, outbox: &outbox,
            completion: completion)
        flush(&outbox)
    }
}

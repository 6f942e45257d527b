import AoECore
import AoELinux
import AoEProtocol
import Synchronization

/// The block API: sector requests, byte-addressed reads and writes (read-modify-write at the
/// edges, under range locks), flushes, and async and blocking wrappers.
extension Engine {
    // MARK: - Block API

    /// Submits a sector-aligned request; `completion` runs once, on an engine thread or this one.
    public func submit(_ target: TargetAddress, _ kind: IOKind, lba: UInt64, sectors: Int, buffer: IOBuffer?,
                       bufferOffset: Int = 0, completion: @escaping IOCompletion) {
        let now = clock.now()
        let accepted: (actions: [EngineAction], wake: Bool)? = state.withLock { s in
            if s.stopped { return nil }
            let id = s.core.makeRequestID()
            s.callbacks[id] = completion
            var out: [EngineAction] = []
            s.core.submit(SectorRequest(id: id, target: target, kind: kind, lba: lba, sectors: sectors, buffer: buffer,
                                        bufferOffset: bufferOffset), now: now, &out)
            return (out, s.noteChange())
        }
        guard let accepted else { return completion(.failure(.shutdown)) }
        if accepted.wake { state.broadcast() }
        perform(accepted.actions)
    }

    /// Reads `count` bytes at byte `offset` of `target` into `buffer` at `bufferOffset`.
    /// Unaligned reads go through a bounce buffer of whole sectors.
    public func read(_ target: TargetAddress, offset: UInt64, count: Int, into buffer: IOBuffer, bufferOffset: Int = 0,
                     completion: @escaping IOCompletion) {
        precondition(count >= 0 && bufferOffset >= 0 && bufferOffset + count <= buffer.count,
                     "\(count) bytes at offset \(bufferOffset) do not fit a \(buffer.count)-byte buffer")
        if count == 0 { return completion(.success(())) }
        if offset % 512 == 0 && count % 512 == 0 {
            return submit(target, .read, lba: offset / 512, sectors: count / 512, buffer: buffer,
                          bufferOffset: bufferOffset, completion: completion)
        }
        let first = offset / 512
        let last = (offset + UInt64(count) - 1) / 512
        let bounce = IOBuffer(count: Int(last - first + 1) * 512)
        submit(target, .read, lba: first, sectors: Int(last - first + 1), buffer: bounce) { r in
            if case .success = r {
                let skip = Int(offset % 512)
                (buffer.bytes.baseAddress! + bufferOffset).copyMemory(from: bounce.bytes.baseAddress! + skip, byteCount: count)
            }
            completion(r)
        }
    }

    /// Writes `count` bytes from `buffer` at `bufferOffset` to byte `offset` of `target`.
    /// The sectors written are locked for the duration; partial edge sectors are read, merged
    /// and written back (read-modify-write).
    public func write(_ target: TargetAddress, offset: UInt64, count: Int, from buffer: IOBuffer, bufferOffset: Int = 0,
                      completion: @escaping IOCompletion) {
        precondition(count >= 0 && bufferOffset >= 0 && bufferOffset + count <= buffer.count,
                     "\(count) bytes at offset \(bufferOffset) do not fit a \(buffer.count)-byte buffer")
        if count == 0 { return completion(.success(())) }
        let first = offset / 512
        let end = (offset + UInt64(count) + 511) / 512
        lock(target, first..<end) { [self] release in
            let done: IOCompletion = { r in
                release()
                completion(r)
            }
            if offset % 512 == 0 && count % 512 == 0 {
                submit(target, .write, lba: first, sectors: count / 512, buffer: buffer, bufferOffset: bufferOffset,
                       completion: done)
                return
            }
            readModifyWrite(target, offset: offset, count: count, buffer: buffer, bufferOffset: bufferOffset,
                            first: first, end: end, completion: done)
        }
    }

    private func readModifyWrite(_ target: TargetAddress, offset: UInt64, count: Int, buffer: IOBuffer, bufferOffset: Int,
                                 first: UInt64, end: UInt64, completion: @escaping IOCompletion) {
        state.withLock { $0.core.noteReadModifyWrite(target) }
        let sectors = Int(end - first)
        let bounce = IOBuffer(count: sectors * 512)
        var edges: [UInt64] = []
        if offset % 512 != 0 { edges.append(first) }
        if (offset + UInt64(count)) % 512 != 0 && !edges.contains(end - 1) { edges.append(end - 1) }
        let remaining = Atomic<Int>(edges.count)
        let failure = Locked<AoEIOError?>(nil)
        let writeMerged: @Sendable () -> Void = { [self] in
            if let e = failure.withLock({ $0 }) { return completion(.failure(e)) }
            let at = Int(offset - first * 512)
            (bounce.bytes.baseAddress! + at).copyMemory(from: buffer.bytes.baseAddress! + bufferOffset, byteCount: count)
            submit(target, .write, lba: first, sectors: sectors, buffer: bounce, completion: completion)
        }
        for lba in edges {
            submit(target, .read, lba: lba, sectors: 1, buffer: bounce, bufferOffset: Int(lba - first) * 512) { r in
                if case .failure(let e) = r { failure.withLock { $0 = $0 ?? e } }
                if remaining.subtract(1, ordering: .acquiringAndReleasing).newValue == 0 { writeMerged() }
            }
        }
    }

    /// Waits for every write submitted before it, then sends FLUSH CACHE (EXT).
    public func flush(_ target: TargetAddress, completion: @escaping IOCompletion) {
        submit(target, .flush, lba: 0, sectors: 0, buffer: nil, completion: completion)
    }

    private func lock(_ target: TargetAddress, _ range: Range<UInt64>, _ body: @escaping @Sendable (_ release: @escaping @Sendable () -> Void) -> Void) {
        let (id, grant): (UInt64, (@Sendable () -> Void)?) = state.withLock { s in
            let id = s.nextLock
            s.nextLock += 1
            let release: @Sendable () -> Void = { [self] in
                let granted = state.withLock { s in s.locks[target]?.release(id) ?? [] }
                for g in granted { g() }
            }
            let g = s.locks[target, default: RangeLocks()].acquire(id, range) { body(release) }
            return (id, g)
        }
        _ = id
        grant?()
    }

    // MARK: - Async wrappers (for the CLI)

    /// Reads `count` bytes at `offset`.
    public func read(_ target: TargetAddress, offset: UInt64, count: Int) async throws(AoEIOError) -> IOBuffer {
        let buffer = IOBuffer(count: count)
        try await wait { read(target, offset: offset, count: count, into: buffer, completion: $0) }
        return buffer
    }

    /// Writes `buffer` at `offset`.
    public func write(_ target: TargetAddress, offset: UInt64, from buffer: IOBuffer) async throws(AoEIOError) {
        try await wait { write(target, offset: offset, count: buffer.count, from: buffer, completion: $0) }
    }

    /// Flushes the target's write cache.
    public func flush(_ target: TargetAddress) async throws(AoEIOError) {
        try await wait { flush(target, completion: $0) }
    }

    private func wait(_ start: (@escaping IOCompletion) -> Void) async throws(AoEIOError) {
        let r: Result<Void, AoEIOError> = await withCheckedContinuation { c in start { c.resume(returning: $0) } }
        try r.get()
    }

    /// Blocks the calling thread until the request completes (for threads that are not async).
    public func waitSync(_ start: (@escaping IOCompletion) -> Void) -> Result<Void, AoEIOError> {
        let box = Locked<Result<Void, AoEIOError>?>(nil)
        start { r in
            box.withLock { $0 = r }
            box.broadcast()
        }
        var result: Result<Void, AoEIOError>?
        box.wait(timeout: nil) { r in
            result = r
            return r != nil
        }
        return result!
    }
}

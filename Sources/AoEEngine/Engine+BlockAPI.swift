import AoECore
import AoELinux
import AoEProtocol
import Synchronization

/// The block API: sector requests, byte-addressed reads and writes (read-modify-write at the
/// edges, under range locks), flushes, and async and blocking wrappers.
extension Engine {
    // MARK: - Block API

    /// Submits a sector-aligned request; its frames go out when `outbox` is flushed, and
    /// `completion` runs once, in the pass that ends it.
    public func submit(
        _ target: TargetAddress, _ kind: IOKind, lba: UInt64, sectors: Int, buffer: IOBuffer?,
        bufferOffset: Int = 0, owner: UInt64 = 0, outbox: inout Outbox, completion: @escaping IOCompletion
    ) {
        let now = clock.now()
        let accepted: Bool? = state.withLock { s in
            if s.stopped { return nil }
            let id = s.core.makeRequestID()
            s.callbacks[id] = completion
            s.core.submit(
                SectorRequest(
                    id: id, target: target, kind: kind, lba: lba, sectors: sectors, buffer: buffer,
                    bufferOffset: bufferOffset, owner: owner), now: now, &outbox.actions)
            return s.collect(&outbox)
        }
        guard let wake = accepted else { return completion(.failure(.shutdown), &outbox) }
        if wake { state.broadcast() }
    }

    /// Reads `count` bytes at byte `offset` of `target` into `buffer` at `bufferOffset`.
    /// Unaligned reads go through a bounce buffer of whole sectors. `owner` names it for
    /// `cancelRead(owner:)` (0: none).
    public func read(
        _ target: TargetAddress, offset: UInt64, count: Int, into buffer: IOBuffer, bufferOffset: Int = 0,
        owner: UInt64 = 0, outbox: inout Outbox, completion: @escaping IOCompletion
    ) {
        // Never reached from input (issue 30's audit): The FUSE layer sizes each buffer from the request it serves; a caller's bug, never input.
        precondition(
            count >= 0 && bufferOffset >= 0 && bufferOffset + count <= buffer.count,
            "\(count) bytes at offset \(bufferOffset) do not fit a \(buffer.count)-byte buffer")
        if count == 0 { return completion(.success(()), &outbox) }
        if offset % 512 == 0 && count % 512 == 0 {
            return submit(
                target, .read, lba: offset / 512, sectors: count / 512, buffer: buffer,
                bufferOffset: bufferOffset, owner: owner, outbox: &outbox, completion: completion)
        }
        let first = offset / 512
        let last = (offset + UInt64(count) - 1) / 512
        let bounce = IOBuffer(count: Int(last - first + 1) * 512)
        submit(target, .read, lba: first, sectors: Int(last - first + 1), buffer: bounce, owner: owner, outbox: &outbox)
        {
            r, outbox in
            if case .success = r {
                let skip = Int(offset % 512)
                (buffer.bytes.baseAddress! + bufferOffset).copyMemory(
                    from: bounce.bytes.baseAddress! + skip, byteCount: count)
            }
            completion(r, &outbox)
        }
    }

    /// Writes `count` bytes from `buffer` at `bufferOffset` to byte `offset` of `target`.
    /// The sectors written are locked for the duration; partial edge sectors are read, merged
    /// and written back (read-modify-write).
    public func write(
        _ target: TargetAddress, offset: UInt64, count: Int, from buffer: IOBuffer, bufferOffset: Int = 0,
        outbox: inout Outbox, completion: @escaping IOCompletion
    ) {
        // Never reached from input (issue 30's audit): The FUSE layer sizes each buffer from the request it serves; a caller's bug, never input.
        precondition(
            count >= 0 && bufferOffset >= 0 && bufferOffset + count <= buffer.count,
            "\(count) bytes at offset \(bufferOffset) do not fit a \(buffer.count)-byte buffer")
        if count == 0 { return completion(.success(()), &outbox) }
        let first = offset / 512
        let end = (offset + UInt64(count) + 511) / 512
        lock(target, first..<end, &outbox) { [self] release, outbox in
            let done: IOCompletion = { r, outbox in
                release(&outbox)
                completion(r, &outbox)
            }
            if offset % 512 == 0 && count % 512 == 0 {
                submit(
                    target, .write, lba: first, sectors: count / 512, buffer: buffer, bufferOffset: bufferOffset,
                    outbox: &outbox, completion: done)
                return
            }
            readModifyWrite(
                target, offset: offset, count: count, buffer: buffer, bufferOffset: bufferOffset,
                first: first, end: end, outbox: &outbox, completion: done)
        }
    }

    private func readModifyWrite(
        _ target: TargetAddress, offset: UInt64, count: Int, buffer: IOBuffer, bufferOffset: Int,
        first: UInt64, end: UInt64, outbox: inout Outbox, completion: @escaping IOCompletion
    ) {
        state.withLock { $0.core.noteReadModifyWrite(target) }
        let sectors = Int(end - first)
        let bounce = IOBuffer(count: sectors * 512)
        var edges: [UInt64] = []
        if offset % 512 != 0 { edges.append(first) }
        if (offset + UInt64(count)) % 512 != 0 && !edges.contains(end - 1) { edges.append(end - 1) }
        // Once both edges are read: merge and write back.
        let edgesRead = Self.joined(edges.count) { [self] r, outbox in
            if case .failure(let e) = r { return completion(.failure(e), &outbox) }
            let at = Int(offset - first * 512)
            (bounce.bytes.baseAddress! + at).copyMemory(
                from: buffer.bytes.baseAddress! + bufferOffset, byteCount: count)
            submit(
                target, .write, lba: first, sectors: sectors, buffer: bounce, outbox: &outbox, completion: completion)
        }
        for lba in edges {
            submit(
                target, .read, lba: lba, sectors: 1, buffer: bounce, bufferOffset: Int(lba - first) * 512,
                outbox: &outbox, completion: edgesRead)
        }
    }

    /// Waits for every write submitted before it, then sends FLUSH CACHE (EXT).
    public func flush(_ target: TargetAddress, outbox: inout Outbox, completion: @escaping IOCompletion) {
        submit(target, .flush, lba: 0, sectors: 0, buffer: nil, outbox: &outbox, completion: completion)
    }

    /// Runs `body` once `range` of `target` is locked for it (now, or in the pass that releases
    /// the range before it); `body` gets the release, to call once, and the pass's outbox.
    func lock(
        _ target: TargetAddress, _ range: Range<UInt64>, _ outbox: inout Outbox,
        _ body: @escaping @Sendable (_ release: @escaping RangeGrant, inout Outbox) -> Void
    ) {
        let grant: RangeGrant? = state.withLock { s in
            let id = s.nextLock
            s.nextLock += 1
            let release: RangeGrant = { [self] outbox in
                let granted = state.withLock { s in s.locks[target]?.release(id) ?? [] }
                for g in granted { g(&outbox) }
            }
            return s.locks[target, default: RangeLocks()].acquire(id, range) { outbox in body(release, &outbox) }
        }
        grant?(&outbox)
    }

    // MARK: - Outside the loops

    /// `read(…outbox:completion:)` from a thread that is not in a pass: its frames go now.
    public func read(
        _ target: TargetAddress, offset: UInt64, count: Int, into buffer: IOBuffer, bufferOffset: Int = 0,
        completion: @escaping IOCompletion
    ) {
        var outbox = Outbox()
        read(
            target, offset: offset, count: count, into: buffer, bufferOffset: bufferOffset, outbox: &outbox,
            completion: completion)
        flush(&outbox)
    }

    /// `write(…outbox:completion:)` from a thread that is not in a pass: its frames go now.
    public func write(
        _ target: TargetAddress, offset: UInt64, count: Int, from buffer: IOBuffer, bufferOffset: Int = 0,
        completion: @escaping IOCompletion
    ) {
        var outbox = Outbox()
        write(
            target, offset: offset, count: count, from: buffer, bufferOffset: bufferOffset, outbox: &outbox,
            completion: completion)
        flush(&outbox)
    }

    /// `flush(…outbox:completion:)` from a thread that is not in a pass: its frame goes now.
    public func flush(_ target: TargetAddress, completion: @escaping IOCompletion) {
        var outbox = Outbox()
        flush(target, outbox: &outbox, completion: completion)
        flush(&outbox)
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
        let r: Result<Void, AoEIOError> = await withCheckedContinuation { c in start { r, _ in c.resume(returning: r) }
        }
        try r.get()
    }

    /// Blocks the calling thread until the request completes (for threads that are not async).
    public func waitSync(_ start: (@escaping IOCompletion) -> Void) -> Result<Void, AoEIOError> {
        let box = Locked<Result<Void, AoEIOError>?>(nil)
        start { r, _ in
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

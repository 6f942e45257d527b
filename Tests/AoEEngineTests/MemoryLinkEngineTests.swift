import AoECore
import AoEEngine
import AoELinux
import AoEProtocol
import AoETestSupport
import Synchronization
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The driver — event loops, outboxes, timers, event sources, shutdown — over an in-memory link
/// (`MemoryLink`), without root or a network, on virtual time (`ManualClock`: a timer fires when
/// the test moves the clock, never on the wall clock). The lab tests (AoELabTests) are the real
/// thing.
@Suite("engine over an in-memory link: loops, timers, sources and shutdown without root", .timeLimit(.minutes(1)))
struct MemoryLinkEngineTests {
    let clock = ManualClock()

    func started(_ link: MemoryLink) throws -> Engine {
        let engine = Engine(links: [link], clock: clock)
        engine.start()
        try #require(
            clock.drive(engine, links: [link], for: .seconds(30)) { $0.allSettled },
            "e10.3 came up: \(engine.targets())")
        return engine
    }

    func target() -> MemoryTarget {
        MemoryTarget(address: e103, mac: MACAddress(0x02, 0, 0, 0, 0, 0x10), sectors: 1 << 16)
    }

    @Test("discovered and identified; 1 MiB written unaligned and read back; fsync flushes")
    func roundTrip() throws {
        let link = try MemoryLink(target: target())
        let engine = try started(link)
        defer { engine.shutdown() }
        let data = (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        #expect(
            engine.waitSync {
                engine.write(e103, offset: 1000, count: data.count, from: IOBuffer(data), completion: $0)
            }
            .error == nil)
        let back = IOBuffer(count: data.count)
        #expect(
            engine.waitSync { engine.read(e103, offset: 1000, count: data.count, into: back, completion: $0) }.error
                == nil)
        #expect(back.array() == data)
        #expect(link.target.bytes(at: 1000, count: 4096) == Array(data.prefix(4096)), "the target holds the bytes")
        #expect(engine.waitSync { engine.flush(e103, completion: $0) }.error == nil)
    }

    @Test("a lost frame is sent again when its timer fires: the first loop's timers run with no timer thread")
    func retransmitOnTimer() throws {
        let link = try MemoryLink(target: target())
        let engine = try started(link)
        defer { engine.shutdown() }
        // Lose the first READ of sector 4242 once: only the retransmission timer can finish it.
        let lost = Atomic<Int>(0)
        link.drop { bytes in
            guard let f = try? AoEFrame(decoding: bytes), !f.header.isResponse, case .ata(let a) = f.body,
                a.lba & 0xFFFF_FFFF == 4242, !a.flags.contains(.write)
            else { return false }
            return lost.add(1, ordering: .relaxed).oldValue == 0
        }
        let start = clock.now()
        let result = Locked<Result<Void, AoEIOError>?>(nil)
        engine.read(e103, offset: 4242 * 512, count: 512, into: IOBuffer(count: 512)) { r, _ in
            result.withLock { $0 = r }
        }
        // Nothing finishes it until the clock moves past the frame's deadline.
        engine.settle { link.queued == 0 }
        #expect(result.withLock { $0 } == nil, "the lost frame waits for its timer")
        #expect(clock.drive(engine, links: [link], for: .seconds(5)) { _ in result.withLock { $0 } != nil })
        #expect(result.withLock { $0 }?.error == nil)
        #expect(lost.load(ordering: .relaxed) >= 2, "sent, lost, and sent again")
        #expect(clock.now() - start < .seconds(5), "\(clock.now() - start) of virtual time")
        #expect((engine.target(e103)?.counters.retries ?? 0) >= 1)
    }

    @Test("an attached event source is served by the loop; its requests' frames and replies share the pass's outbox")
    func eventSource() throws {
        let link = try MemoryLink(target: target())
        let engine = try started(link)
        defer { engine.shutdown() }
        let source = try PipeSource(engine: engine, target: e103)
        #expect(engine.attach(source))
        source.poke(20)
        #expect(
            clock.drive(engine, links: [link], for: .seconds(10)) { _ in source.completed.load(ordering: .relaxed) == 20
            })
        engine.detach()
        source.poke(5)
        // Detached: nothing serves the pipe any more (the loop acknowledged the detach).
        clock.pass(.seconds(1), engine, links: [link])
        #expect(source.served.load(ordering: .relaxed) == 20)
    }

    @Test("shutdown fails a request the target never answers, and every loop ends")
    func shutdownFailsWaiting() throws {
        let link = try MemoryLink(target: target())
        let engine = try started(link)
        link.withTarget { $0.silent = true }
        let result = Locked<Result<Void, AoEIOError>?>(nil)
        engine.read(e103, offset: 0, count: 4096, into: IOBuffer(count: 4096)) { r, _ in
            result.withLock { $0 = r }
        }
        engine.shutdown()
        guard case .failure(.shutdown)? = result.withLock({ $0 }) else {
            Issue.record(
                "expected the request to fail with .shutdown, got \(String(describing: result.withLock { $0 }))")
            return
        }
    }
}

extension Result {
    /// The error, or nil on success.
    var error: Failure? {
        if case .failure(let e) = self { return e }
        return nil
    }
}

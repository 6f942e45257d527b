import AoEEngine
import AoEProtocol
import AoETestSupport
import Foundation
import Synchronization
import Testing

@testable import AoECore

/// Receive placement (issue 32): a READ answer's data received where it belongs, and every way
/// the prediction can miss without one byte of any request going wrong.
@Suite("receive placement")
struct ReceivePlacementTests {
    /// An ATA READ answer with `tag` and `data` (headers as a target sends them).
    static func answer(tag: UInt32, data: [UInt8], command: UInt8 = 0, flags: UInt8 = 0x18) -> [UInt8] {
        var f = [UInt8](repeating: 0, count: ReceiveLayout.headerBytes)
        f[12] = 0x88; f[13] = 0xA2
        f[AoEOffset.versionFlags] = flags
        f[AoEOffset.command] = command
        withUnsafeBytes(of: tag.bigEndian) { for i in 0..<4 { f[AoEOffset.tag + i] = $0[i] } }
        return f + data
    }

    /// Scatters `frame` as the kernel would and settles it; returns (hit, the slot's bytes as
    /// handed on, what the place holds).
    static func receive(_ frame: [UInt8], placeCount: Int, tag: UInt32, slotSize: Int = 200)
        -> (hit: Bool, frame: [UInt8], place: [UInt8])
    {
        let slot = UnsafeMutableRawPointer.allocate(byteCount: slotSize, alignment: 16)
        let place = UnsafeMutableRawPointer.allocate(byteCount: placeCount, alignment: 16)
        defer { slot.deallocate(); place.deallocate() }
        place.initializeMemory(as: UInt8.self, repeating: 0xEE, count: placeCount)
        let p = Placement(tag: tag, destination: place, count: placeCount)
        let n = frame.withUnsafeBytes { ReceiveLayout.scatter($0, slot: slot, slotSize: slotSize, placement: p) }
        let hit = ReceiveLayout.settle(slot: slot, slotSize: slotSize, length: n, placement: p)
        let handed =
            hit
            ? Array(UnsafeRawBufferPointer(start: slot, count: ReceiveLayout.headerBytes))
            : Array(UnsafeRawBufferPointer(start: slot, count: n))
        return (hit, handed, Array(UnsafeRawBufferPointer(start: place, count: placeCount)))
    }

    @Test("a message is in place only when it is the predicted answer; any other comes out whole, as received unplaced")
    func settleTable() {
        let data = (0..<64).map { UInt8($0) }
        let answer = Self.answer(tag: 7, data: data)
        // (what arrives, hit?)
        let cases: [(String, [UInt8], Bool)] = [
            ("the predicted answer", answer, true),
            ("the predicted answer with padding after it", answer + [1, 2, 3], true),
            ("another frame's answer", Self.answer(tag: 8, data: data), false),
            ("the right tag, short of data", Self.answer(tag: 7, data: Array(data.prefix(10))), false),
            ("the right tag, a Query Config", Self.answer(tag: 7, data: data, command: 1), false),
            ("the right tag, a request not a response", Self.answer(tag: 7, data: data, flags: 0x10), false),
            ("a runt shorter than the headers", Array(answer.prefix(20)), false),
            (
                "a longer frame than the place (its rest after the headers)", Self.answer(tag: 9, data: data + data),
                false
            ),
        ]
        for (name, frame, hit) in cases {
            let r = Self.receive(frame, placeCount: data.count, tag: 7)
            #expect(r.hit == hit, "\(name)")
            if hit {
                #expect(r.place == data && r.frame == Array(frame.prefix(ReceiveLayout.headerBytes)), "\(name)")
            } else {
                #expect(r.frame == frame, "\(name): whole again in its slot")
            }
        }
    }

    @Test(
        "an answer accepted through another link while a place is pinned is written again when the pin goes; its completion waits"
    )
    func pinnedPlaceRewritten() throws {
        var p = ReceivePlacements()
        var frames = FrameTable()
        let buffer = IOBuffer(count: 8192)
        let request = RequestID(5)
        let range = WorkRange(request: request, kind: .read, lba: 0, sectors: 16, bufferOffset: 0)
        let t1 = frames.allocate()
        frames.record(
            t1,
            FrameInFlight(
                target: TargetAddress(1, 1), path: PathID(0), range: range, sentAt: .zero,
                deadline: .zero))
        p.sent(t1, on: LinkID(0), request: request, buffer: buffer, offset: 0, count: 8192)
        var list: [Placement] = []
        p.predict(on: LinkID(0), frames: frames, into: &list, limit: 8, largest: 9000)
        #expect(list.count == 1 && list[0].tag == t1.rawValue)
        #expect(p.holds(request))
        // Meanwhile: t1 timed out, went again on link 1 and was answered there.
        let good = (0..<8192).map { UInt8(truncatingIfNeeded: $0 * 7) }
        good.withUnsafeBytes {
            _ = p.accept($0.baseAddress!, count: 8192, at: buffer.bytes.baseAddress!, buffer: buffer)
        }
        // …and link 0's receive call, still under way, wrote something else there.
        buffer.bytes.baseAddress!.initializeMemory(as: UInt8.self, repeating: 0xAB, count: 8192)
        var freed: [RequestID] = []
        p.release(LinkID(0), freed: &freed)
        #expect(freed == [request])
        #expect(buffer.array() == good)
        #expect(!p.holds(request))
        // Answered: no longer predicted.
        frames.remove(t1)
        p.predict(on: LinkID(0), frames: frames, into: &list, limit: 8, largest: 9000)
        #expect(list.isEmpty)
    }

    @Test(
        "reads under every kind of miss — two paths, loss and retransmits, reordering, duplicates, forged and cut answers — return every byte",
        arguments: 1...4)
    func everyByteUnderMisses(seed: UInt64) throws {
        var sim = Simulation(
            links: [(link0, 9000), (link1, 9000)],
            targets: [(MemoryTarget(address: e103, mac: targetMAC), [link0, link1])], seed: seed)
        sim.placement = true
        #expect(sim.run(for: .seconds(5)) { $0.target?.state == .up && $0.target?.paths.count == 2 })
        let data = pattern(8 << 20, seed: seed)
        let w = sim.submit(.write, e103, lba: 0, sectors: data.count / 512, buffer: IOBuffer(data))
        #expect(sim.run(for: .seconds(60)) { $0.isDone(w) })
        var faults = Simulation.Faults()
        faults.drop = 0.02
        faults.duplicate = 0.05
        faults.reorder = 0.2
        faults.reorderDelay = .microseconds(300)
        faults.spoof = 0.05
        faults.truncate = 0.01
        sim.faults[link0] = faults
        sim.faults[link1] = faults
        var rng = SplitMixRNG(seed)
        var reads: [(RequestID, IOBuffer, Int)] = []
        for _ in 0..<40 {
            let sectors = Int(rng.next() % 2048) + 1
            let lba = Int(rng.next() % UInt64(data.count / 512 - sectors))
            let b = IOBuffer(uninitializedCount: sectors * 512)
            reads.append((sim.submit(.read, e103, lba: UInt64(lba), sectors: sectors, buffer: b), b, lba))
        }
        #expect(sim.run(for: .seconds(120)) { s in reads.allSatisfy { s.isDone($0.0) } })
        for (id, b, lba) in reads {
            #expect(sim.outcome(id) == .ok)
            #expect(b.array() == Array(data[lba * 512..<lba * 512 + b.count]), "read \(id) at LBA \(lba)")
        }
        let k = try #require(sim.target?.counters)
        #expect(sim.placedHits > 0 && k.readsPlaced > 0, "some answers landed in place")
        #expect(k.readsCopied > 0, "and some missed (the faults made sure)")
        #expect(k.errwmsg > 0, "forged answers were turned away")
    }

    @Test(
        "over an in-memory link: answers reversed, duplicated and forged in each batch; every byte right, most in place when in order"
    )
    func engineOverMemoryLink() throws {
        var target = MemoryTarget(address: e103, mac: MACAddress(0x02, 0, 0, 0, 0, 0x10), sectors: 1 << 16)
        let data = pattern(4 << 20, seed: 3)
        for s in 0..<(data.count / 512) { target.store(Array(data[s * 512..<(s + 1) * 512]), at: UInt64(s)) }
        let link = try MemoryLink(target: target)
        let engine = Engine(links: [link])
        engine.start()
        defer { engine.shutdown() }
        try #require(engine.waitUntilSettled(timeout: .seconds(10)), "e10.3 came up: \(engine.targets())")
        func readAll() -> [UInt8] {
            let back = IOBuffer(count: data.count)
            #expect(
                engine.waitSync { engine.read(e103, offset: 0, count: data.count, into: back, completion: $0) }.error
                    == nil)
            return back.array()
        }
        #expect(readAll() == data)
        let inOrder = link.placedHits
        #expect(inOrder > 0, "answers in order land in place")
        // Each batch reversed, its first answer sent twice, and a forged copy (another MAC,
        // other data) of its last before it.
        link.shuffle { batch in
            guard var last = batch.last, last.count > 100 else { return batch }
            last[11] ^= 0x55
            for i in 60..<100 { last[i] ^= 0xFF }
            return [last] + batch.reversed() + [batch[0]]
        }
        for _ in 0..<3 { #expect(readAll() == data) }
        link.shuffle(nil)
        #expect(readAll() == data)
        #expect(link.placedHits > inOrder)
    }
}

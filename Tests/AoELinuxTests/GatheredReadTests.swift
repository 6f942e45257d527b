import AoECore
import AoEEngine
import AoELinux
import AoEProtocol
import AoETestSupport
import Foundation
import Testing

/// Replies gathered from the frames (issue 15): a `PacketLink` lends its receive slots to a read
/// whose buffer gathers, over a real veth pair and vblade.
@Suite("Lent receive slots", .serialized, .enabled(if: LabGate.labShouldRun, Comment(rawValue: LabGate.labSkipReason)))
struct GatheredReadTests {
    @Test("a gathering 1 MiB read keeps its frames: lent receive slots hold the data, which matches; they go back with the buffer")
    func gatheredRead() throws {
        let l = try EngineLab.direct(mtu: 9000, size: 64 << 20)
        defer { l.tearDown() }
        try l.waitUp()
        let link = try #require(l.link)
        #expect(l.writePattern(seed: 21, total: 4 << 20, depth: 4) == nil)
        let count = 1 << 20
        do {
            let buffer = IOBuffer(gathering: count)
            let r = l.engine.waitSync { l.engine.read(e103, offset: 1 << 20, count: count, into: buffer, completion: $0) }
            #expect(r.failure == nil)
            // At MTU 9000 a frame carries at most 8704 bytes: 1 MiB is 121 frames or more.
            #expect(buffer.pieces.count >= 121)
            #expect(buffer.pieces.allSatisfy { $0.isLent }, "every frame was lent: the pool had room")
            #expect(link.lentSlots == buffer.pieces.count, "the link holds back exactly those slots")
            let data = buffer.withGathered(0..<count, maxPieces: 1023) { parts in
                (parts.count, parts.reduce(into: [UInt8]()) { $0 += $1 })
            }
            #expect(data.0 == buffer.pieces.count, "handed out in place, piece by piece")
            #expect(data.1 == expectedBytes(seed: 21, offset: 1 << 20, count: count), "the data is the file's")
        }
        #expect(link.lentSlots == 0, "the slots went back with the buffer")
        // And the link goes on receiving into them.
        #expect(l.verifyPattern(seed: 21, total: 4 << 20) == nil)
    }

    @Test("a small receive pool lends only while a batch stays free; the rest is copied, and the data is still right")
    func gatheredReadSmallPool() throws {
        let l = try EngineLab.direct(mtu: 9000, size: 64 << 20, batch: 8, receiveSlots: 24)
        defer { l.tearDown() }
        try l.waitUp()
        let link = try #require(l.link)
        #expect(l.writePattern(seed: 22, total: 2 << 20, depth: 2) == nil)
        let count = 1 << 20
        do {
            let buffer = IOBuffer(gathering: count)
            let r = l.engine.waitSync { l.engine.read(e103, offset: 0, count: count, into: buffer, completion: $0) }
            #expect(r.failure == nil)
            let lent = buffer.pieces.filter(\.isLent).count
            #expect(lent > 0 && lent <= 24 - 8, "lent: \(lent) of \(buffer.pieces.count)")
            #expect(lent < buffer.pieces.count, "the others were copied")
            let data = buffer.withGathered(0..<count, maxPieces: 1023) { $0.reduce(into: [UInt8]()) { $0 += $1 } }
            #expect(data == expectedBytes(seed: 22, offset: 0, count: count))
        }
        #expect(link.lentSlots == 0)
    }
}

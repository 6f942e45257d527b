import AoECore
import Synchronization
import Testing

/// A lender that records what it is given back.
final class RecordingLender: FrameLender, @unchecked Sendable {
    let given = Mutex<[[Int32]]>([])
    func giveBack(_ slots: [Int32]) { given.withLock { $0.append(slots) } }
}

/// Replies gathered from the frames (issue 15): what a gathering read buffer keeps, in what order
/// it hands its data out, and when it falls back to its own bytes.
@Suite("gathering read buffers")
struct GatherTests {
    /// `count` bytes of frame memory whose byte i is `i &+ seed`.
    func frame(_ count: Int, seed: UInt8) -> UnsafeMutableRawBufferPointer {
        let m = UnsafeMutableRawBufferPointer.allocate(byteCount: count, alignment: 16)
        for i in 0..<count { m[i] = UInt8(truncatingIfNeeded: i) &+ seed }
        return m
    }

    @Test("lent frames stay where they are, copies land in the bytes; out of order in, in order out; slots go back once")
    func gathersInOrder() throws {
        let lender = RecordingLender()
        let frames = [frame(1024, seed: 1), frame(1024, seed: 2), frame(1024, seed: 3)]
        defer { frames.forEach { $0.deallocate() } }
        do {
            let b = IOBuffer(gathering: 3072)
            // Ranges 2 and 0 come lent, range 1 is copied (no loan: the link had none to spare).
            var loan: FrameLoan? = FrameLoan(lender: lender, slot: 7)
            b.gather(frames[2].baseAddress!, count: 1024, at: 2048, loan: &loan)
            #expect(loan?.taken == true)
            var none: FrameLoan?
            b.gather(frames[1].baseAddress!, count: 1024, at: 1024, loan: &none)
            loan = FrameLoan(lender: lender, slot: 3)
            b.gather(frames[0].baseAddress!, count: 1024, at: 0, loan: &loan)
            #expect(b.pieces.map(\.isLent) == [true, false, true])
            let (count, data, pointers) = b.withGathered(0..<3072, maxPieces: 1023) { parts in
                (parts.count, parts.flatMap { Array($0) }, parts.map { $0.baseAddress })
            }
            #expect(count == 3)
            #expect(pointers[0] == UnsafeRawPointer(frames[0].baseAddress), "the first piece is the frame itself, not a copy")
            #expect(data == frames.flatMap { Array($0) })
            #expect(lender.given.withLock { $0 }.isEmpty, "nothing goes back while the buffer lives")
        }
        #expect(lender.given.withLock { $0 } == [[7, 3]], "both lent slots back, in one call")
    }

    @Test("too many pieces, or a gap: the data is assembled in the buffer's bytes and handed out whole")
    func fallsBack() throws {
        let lender = RecordingLender()
        let frames = (0..<4).map { frame(512, seed: UInt8($0) &* 40) }
        defer { frames.forEach { $0.deallocate() } }
        let b = IOBuffer(gathering: 2048)
        for (i, f) in frames.enumerated() {
            var loan: FrameLoan? = FrameLoan(lender: lender, slot: Int32(i))
            b.gather(f.baseAddress!, count: 512, at: i * 512, loan: &loan)
        }
        let whole = b.withGathered(0..<2048, maxPieces: 3) { parts in parts.map { Array($0) } }
        #expect(whole.count == 1)
        #expect(whole.first == frames.flatMap { Array($0) }, "assembled from the four lent frames")
        // A prefix is an exact cover of fewer bytes; the last range alone is not a cover from 0.
        #expect(b.withGathered(0..<1024, maxPieces: 1023) { $0.count } == 2)
        let gap = IOBuffer(gathering: 1024)
        var loan: FrameLoan? = FrameLoan(lender: lender, slot: 9)
        gap.gather(frames[3].baseAddress!, count: 512, at: 512, loan: &loan)
        let tail = gap.withGathered(0..<1024, maxPieces: 1023) { parts in parts.map { Array($0) } }
        #expect(tail.count == 1 && Array(tail[0][512...]) == Array(frames[3]), "assembled: the lent piece copied in place")
    }

    @Test("a buffer that does not gather keeps no pieces and hands out its bytes")
    func plainBuffer() {
        let b = IOBuffer(uninitializedCount: 512)
        #expect(!b.gathers && b.pieces.isEmpty)
        #expect(b.withGathered(0..<512, maxPieces: 1023) { $0.first?.baseAddress } == UnsafeRawPointer(b.bytes.baseAddress))
    }
}

import Testing

@testable import AoECore

/// `IOAccount`, the diskstats-like figures of `stats`, `metrics` and `aoefs iostat`: sequences of
/// requests and what they leave, as a table; and the arithmetic that must never trap (issue 30).
@Suite("I/O accounting, table-driven")
struct IOAccountTests {
    /// One step: a request begins, or one ends (kind, bytes, submitted at, ok), at `at` ms.
    enum Step {
        case begin(at: UInt64)
        case end(IOKind, bytes: Int, submitted: UInt64, ok: Bool, at: UInt64)
    }

    static func ms(_ m: UInt64) -> Instant { Instant(nanoseconds: m * 1_000_000) }

    static func run(_ steps: [Step]) -> IOAccount {
        var a = IOAccount()
        for s in steps {
            switch s {
            case .begin(let at): a.began(now: ms(at))
            case .end(let k, let bytes, let submitted, let ok, let at):
                a.ended(k, bytes: bytes, submitted: ms(submitted), ok: ok, now: ms(at))
            }
        }
        return a
    }

    struct Row: Sendable, CustomTestStringConvertible {
        var name: String
        var steps: [Step]
        /// busy(now:) at `now` ms, in ms.
        var now: UInt64
        var busyMs: UInt64
        var inFlight: Int
        var read: (ios: UInt64, bytes: UInt64, ms: UInt64, errors: UInt64)
        var write: (ios: UInt64, bytes: UInt64, ms: UInt64, errors: UInt64)
        var testDescription: String { name }
    }

    static let rows: [Row] = [
        Row(
            name: "one read of 4 KiB, 2 ms",
            steps: [.begin(at: 10), .end(.read, bytes: 4096, submitted: 10, ok: true, at: 12)],
            now: 20, busyMs: 2, inFlight: 0, read: (1, 4096, 2, 0), write: (0, 0, 0, 0)),
        Row(
            name: "two overlapping: busy is the union (10..16), time is the sum (6 + 4)",
            steps: [
                .begin(at: 10), .begin(at: 12), .end(.read, bytes: 512, submitted: 10, ok: true, at: 16),
                .end(.write, bytes: 1024, submitted: 12, ok: true, at: 16),
            ],
            now: 30, busyMs: 6, inFlight: 0, read: (1, 512, 6, 0), write: (1, 1024, 4, 0)),
        Row(
            name: "a failed write counts an I/O and an error, no bytes",
            steps: [.begin(at: 0), .end(.write, bytes: 8192, submitted: 0, ok: false, at: 5)],
            now: 5, busyMs: 5, inFlight: 0, read: (0, 0, 0, 0), write: (1, 0, 5, 1)),
        Row(
            name: "in flight: busy runs to now",
            steps: [.begin(at: 100)], now: 130, busyMs: 30, inFlight: 1, read: (0, 0, 0, 0), write: (0, 0, 0, 0)),
        Row(
            name: "two idle gaps are not busy",
            steps: [
                .begin(at: 0), .end(.read, bytes: 512, submitted: 0, ok: true, at: 3),
                .begin(at: 10), .end(.read, bytes: 512, submitted: 10, ok: true, at: 14),
            ],
            now: 50, busyMs: 7, inFlight: 0, read: (2, 1024, 7, 0), write: (0, 0, 0, 0)),
        Row(
            name: "a clock read before the request was stamped counts zero, never traps (issue 30)",
            steps: [.begin(at: 50), .end(.read, bytes: 512, submitted: 50, ok: true, at: 40)],
            now: 60, busyMs: 0, inFlight: 0, read: (1, 512, 0, 0), write: (0, 0, 0, 0)),
        Row(
            name: "busy(now:) before busySince counts zero for the open period",
            steps: [.begin(at: 50)], now: 10, busyMs: 0, inFlight: 1, read: (0, 0, 0, 0), write: (0, 0, 0, 0)),
        Row(
            name: "an end with nothing in flight counts the I/O and leaves inFlight at 0",
            steps: [.end(.read, bytes: 512, submitted: 0, ok: true, at: 1)],
            now: 2, busyMs: 0, inFlight: 0, read: (1, 512, 1, 0), write: (0, 0, 0, 0)),
    ]

    @Test("requests in, figures out", arguments: rows)
    func table(_ row: Row) {
        let a = Self.run(row.steps)
        #expect(a.busy(now: Self.ms(row.now)) == row.busyMs * 1_000_000)
        #expect(a.inFlight == row.inFlight)
        #expect(a.read.ios == row.read.ios && a.read.bytes == row.read.bytes && a.read.errors == row.read.errors)
        #expect(a.read.nanos == row.read.ms * 1_000_000)
        #expect(a.write.ios == row.write.ios && a.write.bytes == row.write.bytes && a.write.errors == row.write.errors)
        #expect(a.write.nanos == row.write.ms * 1_000_000)
    }

    @Test("flush and trim count in their own kinds")
    func otherKinds() {
        let a = Self.run([
            .begin(at: 0), .end(.flush, bytes: 0, submitted: 0, ok: true, at: 1),
            .begin(at: 1), .end(.trim, bytes: 1 << 20, submitted: 1, ok: true, at: 3),
        ])
        #expect(a.flush.ios == 1 && a.flush.nanos == 1_000_000)
        #expect(a.discard.ios == 1 && a.discard.bytes == 1 << 20 && a.discard.nanos == 2_000_000)
        #expect(a.read.ios == 0 && a.write.ios == 0)
    }

    @Test("sums of time saturate at UInt64.max instead of trapping")
    func saturates() {
        #expect(IOAccount.sum(.max - 1, 5) == .max)
        #expect(IOAccount.sum(2, 3) == 5)
        var a = IOAccount()
        a.began(now: Instant(nanoseconds: 0))
        a.ended(.read, bytes: 512, submitted: Instant(nanoseconds: 0), ok: true, now: Instant(nanoseconds: .max))
        a.began(now: Instant(nanoseconds: 0))
        a.ended(.read, bytes: 512, submitted: Instant(nanoseconds: 0), ok: true, now: Instant(nanoseconds: .max))
        #expect(a.read.nanos == .max && a.busy(now: Instant(nanoseconds: .max)) == .max)
    }

    @Test("abandonAll: nothing in flight, the busy time so far kept")
    func abandon() {
        var a = Self.run([.begin(at: 0), .end(.read, bytes: 512, submitted: 0, ok: true, at: 4), .begin(at: 10)])
        a.abandonAll()
        #expect(a.inFlight == 0 && a.busy(now: Self.ms(100)) == 4_000_000)
    }
}

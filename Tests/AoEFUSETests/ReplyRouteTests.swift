import Testing

@testable import AoEFUSE

/// `ReplyRoute`, the one rule for which thread sends a reply (issue 34), as a table.
@Suite("Which thread sends a reply")
struct ReplyRouteTests {
    struct Row: Sendable, CustomTestStringConvertible {
        var bytes: Int
        var viaRing: Bool
        var waiting: Int
        var route: ReplyRoute
        var testDescription: String { "\(bytes) bytes, \(viaRing ? "ring" : "/dev/fuse"), \(waiting) waiting" }
    }

    static let rows: [Row] = [
        // Large over /dev/fuse with others waiting: the reply thread copies.
        Row(bytes: 1 << 20, viaRing: false, waiting: 4, route: .replyThread),
        Row(bytes: ReplyRoute.largeReply, viaRing: false, waiting: 2, route: .replyThread),
        // Just under the threshold, or alone (QD 1), or over the ring: in the pass.
        Row(bytes: ReplyRoute.largeReply - 1, viaRing: false, waiting: 4, route: .inPass),
        Row(bytes: 1 << 20, viaRing: false, waiting: 1, route: .inPass),
        Row(bytes: 1 << 20, viaRing: true, waiting: 32, route: .inPass),
        Row(bytes: 4096, viaRing: false, waiting: 32, route: .inPass),
        Row(bytes: 0, viaRing: false, waiting: 0, route: .inPass),
    ]

    @Test(
        "READ replies: large ones over /dev/fuse hop while others wait; everything else stays in the pass",
        arguments: rows)
    func read(_ row: Row) {
        #expect(ReplyRoute.read(bytes: row.bytes, viaRing: row.viaRing, waiting: row.waiting) == row.route)
    }
}

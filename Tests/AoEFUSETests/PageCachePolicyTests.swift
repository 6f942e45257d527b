import AoECore
import AoELinux
import AoEProtocol
import FUSEProtocol
import Testing

@testable import AoEFUSE

/// `PageCachePolicy`, the images' page-cache rules in one type (issue 34): before, only the lab
/// tested them (MountTests, BlockDeviceTests).
@Suite("page-cache rules: how an open is cached, when pages go, when a lost write poisons fsync")
struct PageCachePolicyTests {
    static let a = TargetAddress(10, 3)
    static let b = TargetAddress(10, 4)

    static func snapshot(
        _ t: TargetAddress = a, state: TargetState = .up, sectors: UInt64 = 2048, serial: String = "S1",
        model: String = "M"
    ) -> TargetSnapshot {
        TargetSnapshot(
            address: t, state: state, config: nil,
            identity: ATAIdentity(model: model, serial: serial, firmware: "1", supportsLBA48: true, sectors: sectors),
            paths: [], counters: TargetCounters(), payload: 8704, outstanding: 0, window: 16)
    }

    @Test(
        "opens: images cached and kept, O_DIRECT direct with parallel writers, pseudo-files always direct",
        arguments: [
            (true, UInt32(0), FUSEOpenFlags.keepCache),
            (
                true, openDirectFlag,
                FUSEOpenFlags.directIO | FUSEOpenFlags.parallelDirectWrites | FUSEOpenFlags.keepCache
            ),
            (false, UInt32(0), FUSEOpenFlags.directIO),
            (false, openDirectFlag, FUSEOpenFlags.directIO),
        ])
    func openFlags(image: Bool, flags: UInt32, want: UInt32) {
        #expect(PageCachePolicy.openFlags(image: image, flags: flags) == want)
    }

    struct DropRow: Sendable, CustomTestStringConvertible {
        var name: String
        var before: TargetSnapshot?
        var now: TargetSnapshot
        var drops: Bool
        var testDescription: String { name }
    }

    static let dropRows: [DropRow] = [
        DropRow(name: "first sight: nothing cached", before: nil, now: snapshot(), drops: false),
        DropRow(name: "unchanged", before: snapshot(), now: snapshot(), drops: false),
        DropRow(name: "back up after down", before: snapshot(state: .down), now: snapshot(), drops: true),
        DropRow(
            name: "going down keeps the pages (the writer may still need them)", before: snapshot(),
            now: snapshot(state: .down), drops: false),
        DropRow(name: "capacity changed", before: snapshot(), now: snapshot(sectors: 4096), drops: true),
        DropRow(name: "serial changed: another disk", before: snapshot(), now: snapshot(serial: "S2"), drops: true),
        DropRow(name: "model changed", before: snapshot(), now: snapshot(model: "N"), drops: true),
        DropRow(
            name: "still identifying, then up", before: snapshot(state: .identifying), now: snapshot(),
            drops: true),
    ]

    @Test("when cached pages go", arguments: dropRows)
    func drops(_ row: DropRow) {
        var p = PageCachePolicy()
        if let before = row.before { #expect(p.drops(after: [before]).isEmpty) }
        // Another target beside it never drops this one.
        let other = Self.snapshot(Self.b)
        #expect(p.drops(after: [row.now, other]) == (row.drops ? [Self.a] : []))
        #expect(p.drops(after: [row.now, other]).isEmpty, "said once, not at every change of the table")
    }

    @Test(
        "a lost write poisons fsync and close of every handle opened before it, every time; not later opens, not other targets"
    )
    func poison() {
        var p = PageCachePolicy()
        p.opened(1, on: Self.a)
        p.opened(2, on: Self.b)
        #expect(!p.lostWrites(since: 1) && !p.lostWrites(since: 2))
        p.lostWrite(Self.a)
        #expect(p.lostWrites(since: 1) && p.lostWrites(since: 1), "every time")
        #expect(!p.lostWrites(since: 2), "another target's handle")
        p.opened(3, on: Self.a)
        #expect(!p.lostWrites(since: 3), "opened after the loss: its writer was not told yet of nothing")
        p.lostWrite(Self.a)
        #expect(p.lostWrites(since: 3))
        p.released(1)
        #expect(!p.lostWrites(since: 1), "a released handle is forgotten")
        #expect(!p.lostWrites(since: 99), "an unknown handle")
    }
}

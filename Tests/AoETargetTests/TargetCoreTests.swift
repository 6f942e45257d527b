import AoEProtocol
import AoETarget
import Testing

let me = MACAddress(0x02, 0, 0, 0, 0, 0x01)
let alice = MACAddress(0x02, 0, 0, 0, 0, 0xA1)
let bob = MACAddress(0x02, 0, 0, 0, 0, 0xB0)
let e103 = TargetAddress(10, 3)

func core(sectors: UInt64 = 2048, mtu: Int = 9000, configure: (inout TargetSettings) -> Void = { _ in }) -> TargetCore {
    var s = TargetSettings(address: e103, mac: me, mtu: mtu, sectors: sectors)
    configure(&s)
    return TargetCore(settings: s)
}

func frame(from source: MACAddress = alice, to address: TargetAddress = e103, _ body: AoEBody, tag: UInt32 = 7)
    -> [UInt8]
{
    let command: AoECommand =
        switch body {
        case .ata: .ata
        case .queryConfig: .queryConfig
        case .macMaskList: .macMaskList
        case .reserveRelease: .reserveRelease
        case .opaque: AoECommand(rawValue: 0xF1)
        }
    return AoEFrame(
        header: AoEHeader(
            destination: .broadcast, source: source, shelf: address.shelf, slot: address.slot,
            command: command, tag: Tag(tag)),
        body: body
    ).encoded()
}

extension TargetCore {
    mutating func answer(_ bytes: [UInt8]) -> TargetAction { bytes.withUnsafeBytes { handle($0) } }
}

/// The decoded reply, or nil when the action is not an immediate reply.
func reply(_ a: TargetAction) -> AoEFrame? {
    guard case .reply(let r) = a else { return nil }
    return try? AoEFrame(decoding: r)
}

func ata(_ a: TargetAction) -> ATAMessage? {
    guard let f = reply(a), case .ata(let m) = f.body else { return nil }
    return m
}

@Suite("aoefs serve: the target's protocol core")
struct TargetCoreTests {
    @Test("Query Config read: buffer count, sectors per command (vblade: (MTU − 36) / 512), firmware, version 1")
    func configRead() throws {
        var c = core { $0.bufferCount = 24 }
        let f = try #require(reply(c.answer(frame(.queryConfig(QueryConfig())))))
        #expect(f.header.isResponse && !f.header.isError)
        #expect(f.header.destination == alice && f.header.source == me && f.header.tag == Tag(7))
        guard case .queryConfig(let q) = f.body else { Issue.record("not a config answer"); return }
        #expect(q.bufferCount == 24 && q.sectorsPerCommand == 17 && q.firmwareVersion == 0x4019 && q.aoeVersion == 1)
        var small = core(mtu: 1500)
        guard case .queryConfig(let q2)? = reply(small.answer(frame(.queryConfig(QueryConfig()))))?.body else {
            Issue.record("no answer at MTU 1500"); return
        }
        #expect(q2.sectorsPerCommand == 2)
    }

    @Test(
        "config string: set once, a different set is error 4, force set replaces, test and prefix answer only on a match"
    )
    func configString() throws {
        var c = core()
        let s1 = Array("host=a".utf8), s2 = Array("host=b".utf8)
        #expect(
            reply(c.answer(frame(.queryConfig(QueryConfig(command: .set, configString: s1)))))?.header.isError == false)
        #expect(c.configString == s1)
        let refused = try #require(reply(c.answer(frame(.queryConfig(QueryConfig(command: .set, configString: s2))))))
        #expect(refused.header.isError && refused.header.error == .configStringPresent)
        #expect(c.configString == s1)
        _ = c.answer(frame(.queryConfig(QueryConfig(command: .forceSet, configString: s2))))
        #expect(c.configString == s2)
        guard case .ignore = c.answer(frame(.queryConfig(QueryConfig(command: .test, configString: s1)))) else {
            Issue.record("a test that does not match must get no answer"); return
        }
        #expect(reply(c.answer(frame(.queryConfig(QueryConfig(command: .test, configString: s2))))) != nil)
        #expect(
            reply(c.answer(frame(.queryConfig(QueryConfig(command: .testPrefix, configString: Array("host=".utf8))))))
                != nil)
        guard
            case .ignore = c.answer(
                frame(.queryConfig(QueryConfig(command: .testPrefix, configString: Array("x".utf8)))))
        else {
            Issue.record("a prefix that does not match must get no answer"); return
        }
    }

    @Test("IDENTIFY: 512 bytes with LBA48, the exported size, and FLUSH CACHE (EXT) supported")
    func identify() throws {
        var c = core(sectors: 409_600)
        let m = try #require(ata(c.answer(frame(.ata(.identify())))))
        #expect(m.status == .ready && m.data.count == 512)
        let id = try ATAIdentity(parsing: m.data)
        #expect(id.supportsLBA48 && id.sectors == 409_600 && id.model == "aoefs serve")
        #expect(m.data[167] & 0x30 == 0x30 && m.data[173] & 0x30 == 0x30)
    }

    @Test("READ and WRITE become disk work at the right byte offset; past the end is IDNF; -r turns writes into ABRT")
    func readWrite() throws {
        var c = core(sectors: 100)
        guard case .disk(.read(let h, let offset, let count)) = c.answer(frame(.ata(.read(lba: 10, sectors: 4)))) else {
            Issue.record("read is not disk work"); return
        }
        #expect(offset == 5120 && count == 2048 && h.count == 36)
        let data = [UInt8](repeating: 0xAB, count: 1024)
        guard case .disk(.write(_, let wo, let wd)) = c.answer(frame(.ata(.write(lba: 98, data: data)))) else {
            Issue.record("write is not disk work"); return
        }
        #expect(wo == 98 * 512 && wd == data)
        let past = try #require(ata(c.answer(frame(.ata(.read(lba: 99, sectors: 2))))))
        #expect(past.status.contains(.error) && past.errorRegister == .idNotFound)
        let lba28 = c.answer(frame(.ata(.read(lba: 3, sectors: 1, lba48: false))))
        guard case .disk(.read(_, let o28, _)) = lba28 else { Issue.record("LBA28 read"); return }
        #expect(o28 == 3 * 512)
        var ro = core { $0.readOnly = true }
        let refused = try #require(ata(ro.answer(frame(.ata(.write(lba: 0, data: data))))))
        #expect(refused.status.contains(.error) && refused.errorRegister == .aborted)
        #expect(TargetCore.failure(of: h)[27] == ATAStatus([.ready, .error]).rawValue)
    }

    @Test("a write whose data is missing, or more sectors than advertised, is AoE error 2 (bad argument)")
    func badArguments() throws {
        var c = core(mtu: 1500)
        var short = frame(.ata(.write(lba: 0, data: [UInt8](repeating: 1, count: 1024))))
        short.removeLast(512)
        let f = try #require(reply(c.answer(short)))
        #expect(f.header.isError && f.header.error == .badArgument)
        let tooMany = try #require(reply(c.answer(frame(.ata(.read(lba: 0, sectors: 3))))))
        #expect(tooMany.header.error == .badArgument)
        let unknown = try #require(reply(c.answer(frame(.opaque([1, 2, 3])))))
        #expect(unknown.header.error == .unrecognizedCommand)
    }

    @Test("FLUSH CACHE and FLUSH CACHE EXT are disk work (fdatasync), unlike vblade's no-op")
    func flush() {
        var c = core()
        for m in [ATAMessage.flush(), .flush(lba48: false)] {
            guard case .disk(.flush) = c.answer(frame(.ata(m))) else { Issue.record("flush is not disk work"); return }
        }
        #expect(c.counters.flushes == 2)
    }

    @Test("addresses: our shelf.slot and broadcasts answer, others and responses are ignored")
    func addressing() {
        var c = core()
        #expect(
            reply(c.answer(frame(to: TargetAddress(shelf: .broadcast, slot: .broadcast), .queryConfig(QueryConfig()))))
                != nil)
        guard case .ignore = c.answer(frame(to: TargetAddress(10, 4), .queryConfig(QueryConfig()))) else {
            Issue.record("e10.4's query answered by e10.3"); return
        }
        let own = reply(c.answer(frame(.queryConfig(QueryConfig()))))!
        guard case .ignore = c.answer(own.encoded()) else { Issue.record("a response was answered"); return }
    }

    @Test("-m: other initiators get nothing; MAC Mask List edits the list, stops at a bad directive, reports full")
    func masks() throws {
        var c = core { $0.allowedMACs = [alice] }
        guard case .ignore = c.answer(frame(from: bob, .queryConfig(QueryConfig()))) else {
            Issue.record("bob was answered"); return
        }
        let announce = c.announcements()
        #expect(announce.count == 1)
        #expect(try AoEFrame(decoding: announce[0]).header.destination == alice)
        let edit = MACMaskList(
            command: .edit,
            directives: [
                MACMaskDirective(command: .add, mac: bob),
                MACMaskDirective(command: DirectiveCommand(rawValue: 9), mac: me),
            ])
        guard case .macMaskList(let m)? = reply(c.answer(frame(.macMaskList(edit))))?.body else {
            Issue.record("no mask answer"); return
        }
        #expect(m.error == .badDirective && m.directives.map(\.mac) == [alice, bob])
        #expect(reply(c.answer(frame(from: bob, .queryConfig(QueryConfig())))) != nil)
        let del = MACMaskList(command: .edit, directives: [MACMaskDirective(command: .delete, mac: bob)])
        _ = c.answer(frame(.macMaskList(del)))
        #expect(c.settings.allowedMACs == [alice])
        var open = core()
        #expect(open.announcements().count == 1)
        #expect(try AoEFrame(decoding: open.announcements()[0]).header.destination == .broadcast)
        let many = (1...33).map { MACMaskDirective(command: .add, mac: MACAddress(rawValue: UInt64($0))) }
        guard
            case .macMaskList(let full)? = reply(
                open.answer(frame(.macMaskList(MACMaskList(command: .edit, directives: many)))))?.body
        else {
            Issue.record("no mask answer"); return
        }
        #expect(full.error == .listFull && full.directives.count == 32)
    }

    @Test("Reserve/Release: a reservation shuts out others (error 6) except IDENTIFY; force set takes over")
    func reservations() throws {
        var c = core()
        _ = c.answer(frame(from: alice, .reserveRelease(ReserveRelease(command: .set, macs: [alice]))))
        #expect(c.reserved == [alice])
        let denied = try #require(reply(c.answer(frame(from: bob, .ata(.read(lba: 0, sectors: 1))))))
        #expect(denied.header.isError && denied.header.error == .targetReserved)
        #expect(ata(c.answer(frame(from: bob, .ata(.identify()))))?.data.count == 512)
        guard case .disk = c.answer(frame(from: alice, .ata(.read(lba: 0, sectors: 1)))) else {
            Issue.record("the holder was refused"); return
        }
        let steal = try #require(
            reply(c.answer(frame(from: bob, .reserveRelease(ReserveRelease(command: .set, macs: [bob]))))))
        #expect(steal.header.error == .targetReserved && c.reserved == [alice])
        _ = c.answer(frame(from: bob, .reserveRelease(ReserveRelease(command: .forceSet, macs: [bob]))))
        #expect(c.reserved == [bob])
        _ = c.answer(frame(from: bob, .reserveRelease(ReserveRelease(command: .set, macs: []))))
        #expect(c.reserved.isEmpty)
    }
}

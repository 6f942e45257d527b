import AoECore
import AoEDoctor
import AoEProtocol
import Foundation
import Testing

@testable import AoEFUSE

/// The pure parts of the mounted tree, without root or a mount: inode numbers, the sys files'
/// text, a node's attributes and the parsing of control-file writes.
@Suite("tree: inodes, sys files, attributes, control writes")
struct TreeTests {
    let e103 = TargetAddress(shelf: Shelf(10), slot: Slot(3))
    let mac = MACAddress(0x00, 0x16, 0x3e, 0x01, 0x02, 0x03)

    func target(state: TargetState = .up, paths: [PathSnapshot]? = nil) -> TargetSnapshot {
        let p = PathSnapshot(
            link: LinkID(0), interface: "eth1", mac: mac, payload: 8704, mtu: 9000,
            rtt: .microseconds(250), rto: .milliseconds(20), outstanding: 3, window: 16, sent: 100,
            lost: 2, state: .ok, rttDeviation: .microseconds(40))
        var counters = TargetCounters()
        counters.atarcv = 98
        counters.atasnd = 100
        counters.bytesRead = 1 << 20
        return TargetSnapshot(
            address: e103, state: state,
            config: QueryConfig(
                bufferCount: 16, firmwareVersion: 0x4019, sectorsPerCommand: 17, aoeVersion: 1,
                configString: Array("hello".utf8)),
            identity: ATAIdentity(
                model: "vblade", serial: "1234", firmware: "v19", supportsLBA48: true,
                sectors: 2_097_152),
            paths: paths ?? [p], counters: counters, payload: 8704, outstanding: 3, window: 16)
    }

    @Test(
        "inodes: 1–6 are the root, sys, etherd, sys/metrics, sys/daemon and sys/facts.json; every other number is computed from its node, the same in every daemon (issue 30), and names no other node"
    )
    func inodes() {
        var t = InodeTable()
        #expect(t.inode(.root) == 1 && t.inode(.sysDir) == 2 && t.inode(.etherdDir) == 3)
        #expect(t.inode(.metrics) == 4 && t.inode(.daemon) == 5 && t.inode(.facts) == 6)
        let image = t.inode(.image(e103))
        #expect(InodeTable().node(image) == .image(e103), "a fresh table (a restarted daemon) knows the number")
        let p = PartitionName(target: TargetAddress(65535, 255), number: 128)
        let nodes: [Node] = [
            .root, .sysDir, .etherdDir, .metrics, .daemon, .facts, .image(e103), .targetDir(e103),
            .targetFile(e103, .stats), .targetFile(e103, .firmwareVersion), .control(.err), .control(.probe),
            .partition(p), .partitionDir(p), .partitionFile(p, .name),
        ]
        let numbers = nodes.map { t.inode($0) }
        #expect(Set(numbers).count == nodes.count, "no two nodes share a number")
        for (n, i) in zip(nodes, numbers) { #expect(t.node(i) == n, "\(n)") }
        #expect(t.node(0) == nil && t.node(99) == nil && t.node(image | 1) == nil && t.node(.max) == nil)
    }

    @Test("state: up; down; down,closewait while an image is held open (Linux wording); identifying before IDENTIFY")
    func state() {
        var unidentified = target(state: .identifying)
        unidentified.identity = nil
        #expect(
            Render.file(.state, unidentified, configuration: EngineConfiguration(), openCount: 0) == "identifying\n")
        #expect(Render.file(.state, target(), configuration: EngineConfiguration(), openCount: 0) == "up\n")
        #expect(
            Render.file(.state, target(state: .down), configuration: EngineConfiguration(), openCount: 0) == "down\n")
        #expect(
            Render.file(.state, target(state: .down), configuration: EngineConfiguration(), openCount: 2)
                == "down,closewait\n")
    }

    /// Issue 34: `aoefs stat` and `aoefs list` read sys/facts.json once; what they show of a
    /// target must be what its own sys files say, in every state.
    @Test(
        "facts.json's status, mac, interfaces, payload and capacity are what sys/eS.L/state, mac, netif, payload and the image's size say",
        arguments: [
            (TargetState.up, 0), (.down, 0), (.down, 2), (.identifying, 0), (.identifying, 1), (.disabled, 0),
        ])
    func factsMatchFiles(state: TargetState, opens: Int) {
        let c = EngineConfiguration()
        let second = PathSnapshot(
            link: LinkID(1), interface: "eth2", mac: MACAddress(0x02, 0, 0, 0, 0, 9), payload: 8704, mtu: 9000,
            rtt: nil, rto: .milliseconds(20), outstanding: 0, window: 1, sent: 0, lost: 0, state: .ok,
            rttDeviation: .zero)
        var twoPaths = target(state: state).paths
        twoPaths.append(second)
        var unidentified = target(state: state, paths: [])
        unidentified.identity = nil
        for t in [target(state: state), target(state: state, paths: twoPaths), unidentified] {
            let f = TargetFacts(t, openCount: opens)
            #expect(f.status + "\n" == Render.file(.state, t, configuration: c, openCount: opens))
            #expect((f.mac ?? "none") + "\n" == Render.file(.mac, t, configuration: c, openCount: opens))
            let netif = f.interfaces.isEmpty ? "none" : f.interfaces.joined(separator: ",")  // what stat and list print
            #expect(netif + "\n" == Render.file(.netif, t, configuration: c, openCount: opens))
            #expect("\(f.payload)\n" == Render.file(.payload, t, configuration: c, openCount: opens))
            #expect(f.capacity == (t.identity?.capacity ?? 0))
        }
        let f = TargetFacts(target(state: state, paths: twoPaths), openCount: opens)
        #expect(f.interfaces == ["eth1", "eth2"] && f.mac == "00163e010203" && f.capacity == 2_097_152 * 512)
    }

    @Test("mac, netif, fwver, payload, ident and config read as the sysfs attributes do")
    func attributeFiles() {
        let c = EngineConfiguration()
        let t = target()
        #expect(Render.file(.mac, t, configuration: c, openCount: 0) == "00163e010203\n")
        #expect(Render.file(.fwver, t, configuration: c, openCount: 0) == "0x4019\n")
        #expect(Render.file(.payload, t, configuration: c, openCount: 0) == "8704\n")
        #expect(Render.file(.config, t, configuration: c, openCount: 0) == "hello\n")
        #expect(
            Render.file(.ident, t, configuration: c, openCount: 0)
                == "model: vblade\nserial: 1234\nfirmware: v19\nlba48: yes\nsectors: 2097152\n")
        let two = target(
            paths: target().paths
                + target().paths.map {
                    var p = $0; p.link = LinkID(1); return p
                })
        #expect(Render.file(.netif, two, configuration: c, openCount: 0) == "eth1\n", "each interface once")
        #expect(Render.file(.netif, target(paths: []), configuration: c, openCount: 0) == "none\n")
        #expect(Render.file(.mac, target(paths: []), configuration: c, openCount: 0) == "none\n")
    }

    @Test(
        "paths: a header and one row per path, twelve fields each (the last: seconds to the next upward payload try, or -)"
    )
    func paths() {
        let text = Render.file(.paths, target(), configuration: EngineConfiguration(), openCount: 0)
        let rows = text.split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
        #expect(rows.count == 2)
        #expect(
            rows[0] == [
                "netif", "mac", "payload", "mtu", "rtt_us", "rto_us", "outstanding", "window", "sent", "lost",
                "state", "raise_in_s",
            ])
        #expect(rows[1] == ["eth1", "00163e010203", "8704", "9000", "250", "20000", "3", "16", "100", "2", "ok", "-"])
        var below = target()
        below.paths[0].nextRaise = .milliseconds(4200)
        let raised = Render.file(.paths, below, configuration: EngineConfiguration(), openCount: 0)
        #expect(raised.split(separator: "\n")[1].split(separator: " ").last == "5")
    }

    @Test("stats: the Solaris kstat names first, then ours, each with its value")
    func stats() {
        let text = Render.file(.stats, target(), configuration: EngineConfiguration(), openCount: 0)
        let rows = Dictionary(
            uniqueKeysWithValues: text.split(separator: "\n").map { line -> (String, String) in
                let f = line.split(separator: " ")
                return (String(f[0]), String(f[1]))
            })
        let names = text.split(separator: "\n").map { String($0.split(separator: " ")[0]) }
        #expect(
            Array(names.prefix(9)) == [
                "atarcv", "atasnd", "erraoe", "errata", "errtimeout", "errtrunc", "errwmsg",
                "retries", "softerr",
            ])
        #expect(rows["atarcv"] == "98" && rows["atasnd"] == "100" && rows["bytes_read"] == "1048576")
        #expect(rows["rtt_avg_us"] == "250" && rows["window"] == "16" && rows["outstanding"] == "3")
        #expect(rows["rtt_dev_us"] == "40", "the paths' RTT deviation, no longer a constant 0")
    }

    @Test("conf: maxbuf is the target's buffer count; timeout and maxout follow a target's own section")
    func conf() {
        var c = EngineConfiguration()
        c.targets[e103] = TargetOverrides(deadsecs: 7, maxOutstanding: 4)
        let rows = Render.file(.conf, target(), configuration: c, openCount: 0).split(separator: "\n").map(String.init)
        #expect(rows.contains("maxbuf 16") && rows.contains("maxdata 8704") && rows.contains("mibsize 1024"))
        #expect(rows.contains("timeout 7") && rows.contains("deadsecs 7") && rows.contains("maxout 4"))
    }

    @Test("attributes: an image is as large as the target; control files have their modes")
    func attributes() {
        let owner = (uid: uid_t(0), gid: gid_t(0))
        let image = Attributes.of(.image(e103), inode: 4, image: target(), owner: owner, time: 0)
        #expect(image.size == 2_097_152 * 512 && image.blocks == 2_097_152)
        #expect(image.mode == S_IFREG | 0o660 && image.blksize == 8704 && image.ino == 4)
        #expect(Attributes.of(.sysDir, inode: 2, image: nil, owner: owner, time: 0).mode == S_IFDIR | 0o755)
        #expect(Attributes.of(.control(.err), inode: 9, image: nil, owner: owner, time: 0).mode == S_IFREG | 0o444)
        #expect(
            Attributes.of(.control(.interfaces), inode: 9, image: nil, owner: owner, time: 0).mode
                == S_IFREG | 0o644)
        #expect(Attributes.of(.control(.discover), inode: 9, image: nil, owner: owner, time: 0).mode == S_IFREG | 0o200)
        #expect(
            Attributes.of(.targetFile(e103, .config), inode: 9, image: target(), owner: owner, time: 0).mode
                == S_IFREG | 0o644)
        #expect(
            Attributes.of(.targetFile(e103, .stats), inode: 9, image: target(), owner: owner, time: 0).mode
                == S_IFREG | 0o444)
    }

    @Test("partition names: eS.LpN as the Linux driver spells them; nothing else names one")
    func partitionNames() {
        #expect(PartitionName(parsing: "e10.3p1") == PartitionName(target: e103, number: 1))
        #expect(PartitionName(parsing: "e0.2p12")?.description == "e0.2p12")
        for bad in ["e10.3", "e10.3p", "e10.3p0", "e10.3p01", "e10.3p-1", "10.3p1", "e010.3p1", "e10.3p1x", "p1", ""] {
            #expect(PartitionName(parsing: bad) == nil, "\(bad)")
        }
    }

    @Test("partition files and attributes: start and size in sectors, type, name; the file is the partition's size")
    func partitionFiles() {
        let p = Partition(number: 2, start: 43008, size: 204_800, type: "0x83")
        #expect(Render.file(.start, p) == "43008\n")
        #expect(Render.file(.size, p) == "204800\n")
        #expect(Render.file(.type, p) == "0x83\n")
        let g = Partition(number: 1, start: 2048, size: 8, type: "0fc63daf-8483-4772-8e79-3d69d8477de4", name: "data")
        #expect(Render.file(.name, g) == "data\n")
        let name = PartitionName(target: e103, number: 2)
        let st = Attributes.of(.partition(name), inode: 9, image: target(), partition: p, owner: (0, 0), time: 0)
        let fileMode: mode_t = S_IFREG | 0o660, dirMode: mode_t = S_IFDIR | 0o755
        #expect(st.size == 204_800 * 512)
        #expect(st.mode == fileMode)
        let dir = Attributes.of(.partitionDir(name), inode: 10, image: target(), partition: p, owner: (0, 0), time: 0)
        #expect(dir.mode == dirMode)
        #expect(Node.partitionFile(name, .start).target == e103 && !Node.partition(name).isDirectory)
    }

    @Test("table sectors: a write into the MBR, the GPT at either end or a recorded EBR marks the table; others do not")
    func tableSectors() {
        let t = TargetPartitions(
            table: PartitionTable(), capacity: 1000,
            sectors: TargetPartitions.usualSectors(capacity: 1000) + [500..<501])
        #expect(t.touches(0..<512))
        #expect(t.touches(33 * 512..<34 * 512))
        #expect(!t.touches(34 * 512..<35 * 512))
        let inBackup: Range<UInt64> = 495_204..<495_304  // bytes inside sector 967
        #expect(t.touches(inBackup))
        #expect(!t.touches(966 * 512..<967 * 512))
        let intoEBR: Range<UInt64> = 255_488..<256_001  // sector 499 and the first byte of 500
        #expect(t.touches(intoEBR))
        #expect(!t.touches(0..<0))
    }

    @Test(
        "control writes: every accepted spelling",
        arguments: [
            (ControlFile.discover, "", ControlCommand.discover(.broadcast)),
            (.discover, "10\n", .discover(TargetAddress(shelf: Shelf(10), slot: .broadcast))),
            (.discover, "10.3", .discover(TargetAddress(shelf: Shelf(10), slot: Slot(3)))),
            (.discover, "e10.3\n", .discover(TargetAddress(shelf: Shelf(10), slot: Slot(3)))),
            (.interfaces, "eth1 eth2,eth3\n", .interfaces(["eth1", "eth2", "eth3"])),
            (.interfaces, "\n", .interfaces([])),
            (.revalidate, "e10.3", .revalidate(TargetAddress(shelf: Shelf(10), slot: Slot(3)))),
            (.flush, "", .flush(.down)),
            (.flush, "all\n", .flush(.all)),
            (.flush, "e10.3", .flush(.target(TargetAddress(shelf: Shelf(10), slot: Slot(3))))),
            (.disable, "10.3 .4\n", .disable([TargetPattern(shelf: 10, slot: 3), TargetPattern(shelf: nil, slot: 4)])),
            (.enable, "e10", .enable([TargetPattern(shelf: 10, slot: nil)])),
            (.probe, "", .probe([TargetPattern(shelf: nil, slot: nil)])),
        ])
    func controlAccepted(_ file: ControlFile, _ text: String, _ command: ControlCommand) {
        #expect(ControlCommand.parse(file, text) == .success(command))
    }

    @Test(
        "control writes: a mistake gets one line that says what to write",
        arguments: [
            (ControlFile.discover, "ten", "«ten» is not a shelf (10) or shelf.slot (10.3)"),
            (.revalidate, "disk", "no target «disk» (write eS.L, e.g. e10.3)"),
            (.flush, "some", "no target «some» (write \"\", \"all\" or eS.L)"),
            (.err, "x", "err is read-only"),
            (.disable, "", "write a target pattern: SHELF.SLOT, eSHELF.SLOT, SHELF or .SLOT"),
            (.enable, "10.x", "«10.x» is not a target pattern (SHELF.SLOT, eSHELF.SLOT, SHELF or .SLOT)"),
        ])
    func controlRefused(_ file: ControlFile, _ text: String, _ message: String) {
        #expect(ControlCommand.parse(file, text) == .failure(ControlError(message)))
    }
}

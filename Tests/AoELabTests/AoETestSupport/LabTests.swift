import AoELinux
import AoEProtocol
import AoETestSupport
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The lab's fault parts, each checked through what an initiator sees.
@Suite("The lab", .enabled(if: LabGate.labShouldRun, Comment(rawValue: LabGate.labSkipReason)))
struct LabTests {
    func discover(_ link: PacketLink) throws -> RawInitiator? {
        let i = RawInitiator(link: link)
        guard let answer = try i.discover(wait: .milliseconds(300)).first else { return nil }
        i.target = answer.header.source
        i.address = answer.header.target
        return i
    }

    @Test("a switch with MTU 1500 ports black-holes jumbo frames silently but passes small ones")
    func switchBlackHolesJumbo() throws {
        let lab = try Lab()
        defer { lab.teardown() }
        let net = try lab.switched(mtu: 9000, portMTU: 1500)
        let file = try lab.sparseFile("d.img", size: 64 << 20)
        _ = try lab.startVblade(shelf: 10, slot: 3, interface: net.target, namespace: net.targetNamespace, file: file)
        let link = try PacketLink(interface: net.initiator)
        let i = try #require(try discover(link), "small config frames cross the switch")
        // 2 sectors (1024 bytes of data) fit in 1500; 17 sectors (8704) do not, in either direction.
        #expect(try i.run([.read(lba: 0, sectors: 2)], window: 1, deadline: .seconds(2)).responses.count == 1)
        #expect(throws: LabFailure.self) {
            try i.run([.read(lba: 0, sectors: 17)], window: 1, timeout: .milliseconds(200), deadline: .seconds(1))
        }
        #expect(try lab.switchDrops(net) > 0, "the switch counted what it dropped")
        // A jumbo write is swallowed too, and the sender is not told (no ENOBUFS).
        #expect(throws: LabFailure.self) {
            try i.run(
                [.write(lba: 0, data: [UInt8](repeating: 1, count: 8704))], window: 1,
                timeout: .milliseconds(200), deadline: .seconds(1))
        }
        // Raise the ports to 9000: the same jumbo read now crosses, and vblade survived it all.
        try lab.setPortMTU(net, 9000)
        let r = try i.run([.read(lba: 0, sectors: 17)], window: 1, deadline: .seconds(2)).responses
        #expect(r[0].data.count >= 17 * 512)
    }

    @Test("an nft drop rule drops AoE frames and counts them; removing it heals the link")
    func dropRule() throws {
        let lab = try Lab()
        defer { lab.teardown() }
        let net = try lab.direct(mtu: 1500)
        let file = try lab.sparseFile("d.img", size: 64 << 20)
        _ = try lab.startVblade(shelf: 10, slot: 3, interface: net.target, namespace: net.targetNamespace, file: file)
        let link = try PacketLink(interface: net.initiator)
        let rule = try lab.dropFrames(on: net.target, namespace: net.targetNamespace, percent: 100)
        #expect(try discover(link) == nil, "every query is dropped on the target's ingress")
        #expect(try lab.droppedCount(rule) >= 1)
        try lab.remove(rule)
        #expect(try discover(link) != nil)
        // 30 % loss both ways: every request still completes, through retransmission. (Discover
        // first: a query and its answer both crossing 30 % loss succeed only half the time.)
        let i = try #require(try discover(link))
        let r1 = try lab.dropFrames(on: net.target, namespace: net.targetNamespace, percent: 30)
        let r2 = try lab.dropFrames(on: net.initiator, namespace: nil, percent: 30)
        let (responses, retransmits) = try i.run(
            (0..<200).map { .read(lba: UInt64($0) * 2, sectors: 2) }, window: 8,
            timeout: .milliseconds(100))
        #expect(responses.count == 200)
        #expect(retransmits > 0)
        #expect(try lab.droppedCount(r1) + lab.droppedCount(r2) > 0)
    }

    @Test("a killed target stops answering; restarted, it answers again")
    func killAndRestart() throws {
        let lab = try Lab()
        defer { lab.teardown() }
        let net = try lab.direct(mtu: 9000)
        let file = try lab.sparseFile("d.img", size: 64 << 20)
        let v = try lab.startVblade(
            shelf: 10, slot: 3, interface: net.target, namespace: net.targetNamespace, file: file)
        let link = try PacketLink(interface: net.initiator)
        #expect(try discover(link) != nil)
        let oldPID = try #require(v.pid)
        v.kill()
        #expect(!v.isRunning)
        #expect(processIsGone(oldPID), "the process is gone")
        #expect(try discover(link) == nil)
        try v.start()
        #expect(try discover(link) != nil)
    }

    @Test("teardown removes every namespace and link, and the lab's directory")
    func teardownLeavesNothing() throws {
        let lab = try Lab()
        let net = try lab.switched(mtu: 9000, portMTU: 1500)
        _ = try lab.dropFrames(on: net.initiator, namespace: nil, percent: 1)
        lab.teardown()
        lab.teardown()  // twice is harmless
        #expect(try !Command.run(["ip", "netns", "list"]).contains(lab.id))
        #expect(try !Command.run(["ip", "-o", "link"]).contains(lab.id))
        #expect(try !Command.run(["nft", "list", "tables"]).contains(lab.id))
        #expect(!FileManager.default.fileExists(atPath: lab.directory.path))
    }

    /// Starts the aoe-lab tool and returns it with the line it printed.
    func startLabTool() throws -> (ChildProcess, [String: String]) {
        let tool = productsDirectory().appendingPathComponent("aoe-lab")
        let fds = try #require(closeOnExecPipe())
        let p = try ChildProcess([tool.path, "--size", String(64 << 20)], stdout: fds[1])
        close(fds[1])
        let out = FileHandle(fileDescriptor: fds[0], closeOnDealloc: true)
        let line = String(decoding: out.availableDataLine(), as: UTF8.self)
        let fields = Dictionary(
            uniqueKeysWithValues: line.split(separator: " ").compactMap { kv -> (String, String)? in
                let parts = kv.split(separator: "=", maxSplits: 1)
                return parts.count == 2
                    ? (String(parts[0]), String(parts[1]).trimmingCharacters(in: .whitespacesAndNewlines)) : nil
            })
        return (p, fields)
    }

    func labGone(_ f: [String: String]) throws -> Bool {
        let ns = try Command.run(["ip", "netns", "list"])
        let links = try Command.run(["ip", "-o", "link"])
        let pid = Int32(f["vblade"] ?? "") ?? 0
        return !ns.contains(f["namespace"]!) && !links.contains(f["initiator"]!) && pid > 0 && processIsGone(pid)
    }

    @Test("Ctrl-C (SIGINT) tears the lab down: namespace, links and vblade")
    func sigintTearsDown() throws {
        let (p, f) = try startLabTool()
        try #require(f["namespace"] != nil, "aoe-lab printed its lab: \(f)")
        #expect(try !labGone(f))
        p.signal(SIGINT)
        try waitForExit(p, within: .seconds(20))
        #expect(p.terminatingSignal == SIGINT, "it dies of the signal after tearing down")
        #expect(try labGone(f))
    }

    @Test("after SIGKILL the next lab sweeps what the dead one left")
    func staleLabsAreSwept() throws {
        let (p, f) = try startLabTool()
        try #require(f["namespace"] != nil)
        p.signal(SIGKILL)
        try waitForExit(p, within: .seconds(20))
        #expect(try !labGone(f), "SIGKILL leaves the lab behind")
        Lab.sweepStale()
        #expect(try labGone(f))
    }
}

/// Waits for `p` to exit; kills it (it is ours) and throws if it does not within `limit`.
func waitForExit(_ p: ChildProcess, within limit: Duration) throws {
    if !p.wait(upTo: limit) {
        p.signal(SIGKILL)
        p.wait()
        throw LabFailure("process \(p.pid) did not exit within \(limit)")
    }
}

/// The directory holding the built products (aoe-lab, aoefs) next to the test bundle.
/// The package's top folder (Docs/, Tests/linux-initiator/), from this file's place in it.
func packageRoot(_ file: String = #filePath) -> URL {
    var url = URL(fileURLWithPath: file).deletingLastPathComponent()
    while url.path != "/" && !FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) {
        url = url.deletingLastPathComponent()
    }
    return url
}

func productsDirectory() -> URL {
    // The test bundle is an executable in the build directory (.build/debug/aoefsPackageTests.xctest).
    URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
}

extension FileHandle {
    /// Reads until a newline or end of file.
    func availableDataLine() -> Data {
        var line = Data()
        while true {
            let byte = readData(ofLength: 1)
            if byte.isEmpty || byte == Data([0x0A]) { return line }
            line += byte
        }
    }
}

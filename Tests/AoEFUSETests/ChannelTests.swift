import AoECore
import AoEEngine
import AoELinux
import AoEProtocol
import AoETestSupport
import FUSEProtocol
import Foundation
import Testing

@testable import AoEFUSE

/// Our FUSE core — `KernelChannel`, `Reply`, the operations, interrupts and teardown — served by
/// the engine's event loop over in-memory doubles: a `FUSEWire` in place of /dev/fuse and a
/// `MemoryLink` in place of the network. No root, no mount (MountTests are the real thing).
@Suite(
    "FUSE channel over an in-memory wire: requests, replies, interrupts, teardown without root",
    .timeLimit(.minutes(1)))
struct ChannelTests {
    let e103 = TargetAddress(shelf: Shelf(10), slot: Slot(3))

    /// A file system served over a fresh wire, its engine on a MemoryLink to a 32 MiB target,
    /// INIT answered.
    final class Served: @unchecked Sendable {
        let wire: FUSEWire
        let link: MemoryLink
        let engine: Engine
        let fs: AoEFileSystem

        init() throws {
            let e103 = TargetAddress(shelf: Shelf(10), slot: Slot(3))
            link = try MemoryLink(
                target: MemoryTarget(
                    address: e103, mac: MACAddress(0x02, 0, 0, 0, 0, 0x10),
                    sectors: 1 << 16))
            engine = Engine(links: [link])
            engine.start()
            try #require(engine.waitUntilSettled(timeout: .seconds(10)))
            wire = try FUSEWire()
            // The partition table is read (and reported in err) on a worker: wait for its line,
            // so that no err reader of a test sees it as its own.
            let tableRead = Locked(false)
            engine.addLogObserver { line in
                guard line.contains("partition table") else { return }
                tableRead.withLock { $0 = true }
                tableRead.broadcast()
            }
            fs = AoEFileSystem(engine: engine, mountpoint: "/nonexistent/aoefs-channel-test")
            engine.addLogObserver { [weak fs] _ in fs?.logged() }
            try #require(tableRead.wait(timeout: .seconds(10)) { $0 }, "the partition table was read")
            try fs.serve(device: wire.daemonSide, transport: .device)
            let u = wire.send(.initialize(FUSEInitIn(major: 7, minor: 45, maxReadahead: 1 << 17, flags: 0)))
            let r = try #require(wire.reply(to: u))
            #expect(r.error == 0 && r.payloadU32(0) == 7, "INIT answered with major 7")
        }

        /// The node id of `name` in the root, looked up as the kernel would.
        func lookup(_ name: String) throws -> UInt64 {
            let u = wire.send(.lookup(name: Array(name.utf8)))
            let r = try #require(wire.reply(to: u))
            try #require(r.error == 0, "\(name): \(r.error)")
            return r.payloadU64(0)
        }

        func open(_ node: UInt64, flags: UInt32 = UInt32(O_RDWR)) throws -> (fh: UInt64, flags: UInt32) {
            let u = wire.send(.open(flags: flags), node: node)
            let r = try #require(wire.reply(to: u))
            try #require(r.error == 0)
            return (r.payloadU64(0), r.payloadU32(8))
        }

        func end() {
            fs.stop()
            fs.teardown(drain: .seconds(5))
            engine.shutdown()
        }
    }

    @Test("LOOKUP, OPEN, WRITE and READ of the image reach the target; an unknown name is ENOENT")
    func imageIO() throws {
        let s = try Served()
        defer { s.end() }
        let node = try s.lookup("e10.3")
        let (_, buffered) = try s.open(node)
        #expect(
            buffered & FUSEOpenFlags.directIO == 0 && buffered & FUSEOpenFlags.keepCache != 0,
            "a buffered open is cached, as a block device's")
        let (fh, flags) = try s.open(node, flags: UInt32(O_RDWR) | openDirectFlag)
        #expect(
            flags & FUSEOpenFlags.directIO != 0 && flags & FUSEOpenFlags.parallelDirectWrites != 0,
            "an O_DIRECT open is not, and its writers run in parallel")
        let data = (0..<8192).map { UInt8(truncatingIfNeeded: $0 &* 13 &+ 1) }
        let w = s.wire.send(
            .write(fh: fh, offset: 4096, size: UInt32(data.count), writeFlags: 0, dataOffset: 0), node: node,
            writeData: data)
        let wr = try #require(s.wire.reply(to: w))
        #expect(wr.error == 0 && wr.payloadU32(0) == UInt32(data.count))
        #expect(s.link.target.bytes(at: 4096, count: data.count) == data, "the target holds the bytes")
        let r = s.wire.send(.read(fh: fh, offset: 4096, size: UInt32(data.count)), node: node)
        let rr = try #require(s.wire.reply(to: r))
        #expect(rr.error == 0 && rr.payload == data)
        let missing = s.wire.send(.lookup(name: Array("e10.4".utf8)))
        #expect(s.wire.reply(to: missing)?.error == -ENOENT)
    }

    @Test("OPENDIR and a request we do not serve are answered through Reply; a malformed one gets EIO")
    func everyRequestAnswered() throws {
        let s = try Served()
        defer { s.end() }
        let d = s.wire.send(.opendir(flags: 0))
        #expect(s.wire.reply(to: d)?.error == 0)
        let unknown = s.wire.send(.unknown(opcode: 9999))
        #expect(s.wire.reply(to: unknown)?.error == -ENOSYS)
        // A READ cut short after its header: the unique can be read, so it is answered EIO.
        var bad = FUSERequest.read(fh: 1, offset: 0, size: 4096).encoded(unique: 1000, nodeID: 1)
        bad = Array(bad.prefix(FUSEInHeader.size + 4))
        bad.replaceSubrange(0..<4, with: withUnsafeBytes(of: UInt32(bad.count).littleEndian, Array.init))
        s.wire.sendRaw(bad)
        #expect(s.wire.reply(to: 1000)?.error == -EIO)
    }

    @Test("a Reply dropped unanswered answers EIO, once")
    func droppedReplyAnswersEIO() throws {
        let s = try Served()
        defer { s.end() }
        let channel = try #require(s.fs.channel)
        do { _ = Reply(channel: channel, unique: 4242) }  // made and dropped: a bug's reply
        let r = try #require(s.wire.reply(to: 4242))
        #expect(r.error == -EIO)
        #expect(s.wire.reply(to: 4242, timeout: .milliseconds(200)) == nil, "answered once")
    }

    @Test("a parked read of etherd/err ends EINTR on INTERRUPT, whether it came before or after the read was parked")
    func interruptedErrReader() throws {
        let s = try Served()
        defer { s.end() }
        let etherd = try s.lookup("etherd")
        let u = s.wire.send(.lookup(name: Array("err".utf8)), node: etherd)
        let err = try #require(s.wire.reply(to: u)).payloadU64(0)
        let (fh, _) = try s.open(err)
        let read = s.wire.send(.read(fh: fh, offset: 0, size: 4096), node: err)
        #expect(!s.wire.answers(read, within: .milliseconds(200)), "parked: nothing to say")
        s.wire.send(.interrupt(unique: read))
        #expect(s.wire.reply(to: read)?.error == -EINTR)
        // The INTERRUPT first (as over the ring, where the two come by two ways): the read that
        // arrives after it is answered at once.
        s.wire.send(.interrupt(unique: 5000))
        s.wire.sendRaw(FUSERequest.read(fh: fh, offset: 0, size: 4096).encoded(unique: 5000, nodeID: err))
        #expect(s.wire.reply(to: 5000, timeout: .seconds(2))?.error == -EINTR)
        // A parked reader gets the next line logged.
        let next = s.wire.send(.read(fh: fh, offset: 0, size: 4096), node: err)
        s.engine.note("a line for the reader")
        let line = try #require(s.wire.reply(to: next))
        #expect(String(decoding: line.payload, as: UTF8.self) == "a line for the reader\n")
    }

    @Test("teardown answers a parked reader EINTR and writes nothing after; the wire hung up ends serving")
    func teardownAndHangUp() throws {
        let s = try Served()
        let etherd = try s.lookup("etherd")
        let u = s.wire.send(.lookup(name: Array("err".utf8)), node: etherd)
        let err = try #require(s.wire.reply(to: u)).payloadU64(0)
        let (fh, _) = try s.open(err)
        let read = s.wire.send(.read(fh: fh, offset: 0, size: 4096), node: err)
        #expect(!s.wire.answers(read, within: .milliseconds(100)))
        s.end()
        #expect(s.wire.reply(to: read)?.error == -EINTR)
        let late = s.wire.send(.getattr(flags: 0, fh: 0))
        #expect(s.wire.reply(to: late, timeout: .milliseconds(300)) == nil, "no reply after teardown")

        let t = try Served()
        defer { t.end() }
        t.wire.hangUp()
        #expect(t.fs.ended.wait(timeout: .seconds(5)) { $0 }, "serving ended when the other end went")
    }
}

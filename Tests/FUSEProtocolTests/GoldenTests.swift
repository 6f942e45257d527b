import FUSEProtocol
import Testing

/// Requests the real kernel sent (GoldenRequests.swift), decoded field by field.
@Suite("FUSE protocol: golden requests from the kernel")
struct GoldenTests {
    func decode(_ b: [UInt8]) throws -> (FUSEInHeader, FUSERequest) { try FUSERequest.decode(b) }

    @Test(
        "INIT: protocol 7.45 offered, flags and flags2 joined (INIT_EXT), async DIO offered, io_uring not (enable_uring off)"
    )
    func initialize() throws {
        let (h, r) = try decode(Golden.initialize)
        #expect(h.opcode == 26 && h.unique == 2 && h.nodeID == 0)
        guard case .initialize(let i) = r else { Issue.record("\(r)"); return }
        #expect(i.major == 7 && i.minor == 45 && i.maxReadahead == 131_072)
        #expect(i.flags == 0x0000_05FD_73FF_FFFB)
        #expect(i.flags & FUSEInitFlags.asyncDIO != 0 && i.flags & FUSEInitFlags.initExt != 0)
        #expect(i.flags & FUSEInitFlags.overIOURing == 0, "this kernel's enable_uring was N when captured")
    }

    @Test("the tree's everyday requests decode to what was done")
    func everyday() throws {
        #expect(try decode(Golden.getattr).1 == .getattr(flags: 0, fh: 0))
        #expect(try decode(Golden.getattr).0.nodeID == 1)
        #expect(try decode(Golden.opendir).1 == .opendir(flags: 0x18800))  // O_DIRECTORY | O_LARGEFILE | O_NONBLOCK
        #expect(try decode(Golden.readdir).1 == .readdir(fh: 0, offset: 0, size: 32_768, plus: false))
        #expect(try decode(Golden.releasedir).1 == .releasedir(fh: 0))
        #expect(try decode(Golden.statfs).1 == .statfs)
        let (lh, lookup) = try decode(Golden.lookup)
        #expect(lookup == .lookup(name: Array("e10.3".utf8)) && lh.nodeID == 2)
        #expect(try decode(Golden.open).1 == .open(flags: 0o100000))  // O_RDONLY | O_LARGEFILE
        #expect(try decode(Golden.read).1 == .read(fh: 1, offset: 0, size: 131_072))
        #expect(try decode(Golden.flush).1 == .flush(fh: 1))
        #expect(try decode(Golden.release).1 == .release(fh: 1, flags: 0o100000, releaseFlags: 0))
        #expect(try decode(Golden.fsync).1 == .fsync(fh: 2, flags: 0))
        #expect(try decode(Golden.interrupt).1 == .interrupt(unique: 76))
        #expect(try decode(Golden.getxattr).1 == .unknown(opcode: FUSEOpcode.getxattr.rawValue), "answered ENOSYS")
    }

    @Test("WRITE: fh, offset, size and the data where dataOffset says, not copied")
    func write() throws {
        let (_, r) = try decode(Golden.write)
        guard case .write(let fh, let offset, let size, _, let at) = r else { Issue.record("\(r)"); return }
        #expect(fh == 2 && offset == 0 && size == 5 && at == 80)
        #expect(Array(Golden.write[at...]) == Array("hello".utf8))
    }

    @Test("every truncation of every golden request throws or decodes; none traps")
    func truncations() {
        for g in [
            Golden.initialize, Golden.getattr, Golden.opendir, Golden.readdir, Golden.releasedir, Golden.statfs,
            Golden.lookup, Golden.open, Golden.read, Golden.flush, Golden.release, Golden.write, Golden.fsync,
            Golden.getxattr, Golden.interrupt,
        ] {
            for n in 0..<g.count {
                var cut = Array(g[0..<n])
                if n >= 4 { cut[0] = UInt8(n) }
                _ = try? FUSERequest.decode(cut)
            }
        }
    }
}

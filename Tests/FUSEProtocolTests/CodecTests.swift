import AoETestSupport
import FUSEProtocol
import Testing

/// Every request the tree serves, as the kernel would send it.
let samples: [(FUSERequest, [UInt8])] = [
    (
        .initialize(
            FUSEInitIn(
                major: 7, minor: 38, maxReadahead: 131_072,
                flags: FUSEInitFlags.asyncRead | FUSEInitFlags.asyncDIO | FUSEInitFlags.initExt
                    | FUSEInitFlags.overIOURing)), []
    ),
    (.lookup(name: Array("e10.3p1".utf8)), []),
    (.forget(nlookup: 3), []),
    (.batchForget([FUSEForget(nodeID: 5, nlookup: 1), FUSEForget(nodeID: 9, nlookup: 2)]), []),
    (.getattr(flags: 1, fh: 77), []),
    (.setattr(FUSESetattrIn(valid: 1 << 3, fh: 4, size: 1 << 30, mode: 0o100660, uid: 1, gid: 2)), []),
    (.open(flags: 0o2), []),
    (.release(fh: 12, flags: 0o2, releaseFlags: 1), []),
    (.read(fh: 12, offset: 1 << 20, size: 131_072), []),
    (.write(fh: 12, offset: 4096, size: 5, writeFlags: 1, dataOffset: 80), Array("hello".utf8)),
    (.flush(fh: 12), []),
    (.fsync(fh: 12, flags: 1), []),
    (.opendir(flags: 0), []),
    (.readdir(fh: 3, offset: 2, size: 4096, plus: false), []),
    (.readdir(fh: 3, offset: 0, size: 4096, plus: true), []),
    (.releasedir(fh: 3), []),
    (.statfs, []),
    (.fallocate(fh: 12, offset: 1 << 30, length: 512 << 20, mode: 0x03), []),
    (.interrupt(unique: 41), []),
    (.destroy, []),
    (.unknown(opcode: FUSEOpcode.mkdir.rawValue), []),
    (.unknown(opcode: 9999), []),
]

@Suite("FUSE protocol: requests and replies")
struct CodecTests {
    @Test("every request round-trips: encoded as the kernel does, decoded back with its header")
    func roundTrips() throws {
        for (i, (request, data)) in samples.enumerated() {
            let bytes = request.encoded(unique: UInt64(100 + i), nodeID: 1, writeData: data)
            let (h, back) = try FUSERequest.decode(bytes)
            #expect(back == request, "\(request)")
            #expect(h.unique == UInt64(100 + i) && h.nodeID == 1 && Int(h.length) == bytes.count)
        }
    }

    @Test(
        "sizes match linux/fuse.h 7.38 (sizeof, checked with gcc): in_header 40, init_in 64, read_in 40, write_in 40, setattr_in 88, release_in 24"
    )
    func requestSizes() {
        func body(_ r: FUSERequest) -> Int { r.encoded(unique: 1, nodeID: 1).count - FUSEInHeader.size }
        #expect(body(samples[0].0) == 64)
        #expect(body(.read(fh: 0, offset: 0, size: 0)) == 40)
        #expect(body(.write(fh: 0, offset: 0, size: 0, writeFlags: 0, dataOffset: 80)) == 40)
        #expect(body(samples[5].0) == 88)
        #expect(body(.release(fh: 0, flags: 0, releaseFlags: 0)) == 24)
        #expect(body(.releasedir(fh: 0)) == 24)
        #expect(body(.flush(fh: 0)) == 24)
        #expect(body(.fsync(fh: 0, flags: 0)) == 16)
        #expect(body(.getattr(flags: 0, fh: 0)) == 16)
        #expect(body(.fallocate(fh: 0, offset: 0, length: 0, mode: 0)) == 32, "fuse_fallocate_in")
    }

    @Test("a WRITE's data is located, not copied: dataOffset is just after write_in")
    func writeData() throws {
        let bytes = FUSERequest.write(fh: 1, offset: 0, size: 0, writeFlags: 0, dataOffset: 0)
            .encoded(unique: 7, nodeID: 2, writeData: [1, 2, 3, 4])
        let (_, r) = try FUSERequest.decode(bytes)
        guard case .write(_, _, let size, _, let at) = r else { Issue.record("\(r)"); return }
        let payload = Array(bytes[at..<at + 4])
        #expect(size == 4 && at == 80)
        #expect(payload == [1, 2, 3, 4])
    }

    @Test("INIT: flags2 is read only with FUSE_INIT_EXT; the io_uring bit is bit 41")
    func initFlags() throws {
        #expect(FUSEInitFlags.overIOURing == 1 << 41)
        var w = [UInt8](repeating: 0, count: 64)
        w[0] = 7; w[4] = 38; w[17] = 0x02  // flags2 bit 9 = FUSE_OVER_IO_URING, but no INIT_EXT in flags
        let bytes = FUSERequest.unknown(opcode: FUSEOpcode.initialize.rawValue).encoded(unique: 1, nodeID: 0)
        var whole = Array(bytes) + w
        whole[0] = UInt8(whole.count)
        let (_, r) = try FUSERequest.decode(whole)
        guard case .initialize(let i) = r else { Issue.record("\(r)"); return }
        #expect(i.flags & FUSEInitFlags.overIOURing == 0, "flags2 ignored without INIT_EXT")
    }

    @Test("every truncation of every request throws (never traps) or, for trailing padding, still decodes")
    func truncations() {
        for (request, data) in samples {
            let bytes = request.encoded(unique: 1, nodeID: 1, writeData: data)
            for n in 0..<bytes.count {
                var cut = Array(bytes[0..<n])
                if n >= 4 { cut[0] = UInt8(n & 0xFF); cut[1] = UInt8(n >> 8) }  // the header agrees: still short
                _ = try? FUSERequest.decode(cut)
            }
            // A header that claims more than arrived is refused.
            var lying = bytes
            lying[0] &+= 8
            #expect(throws: FUSEDecodeError.self) {
                try FUSERequest.decode(lying)
            }
        }
    }

    @Test("100,000 seeded mutations of real requests decode or throw; none traps")
    func mutations() {
        var rng = SplitMixRNG(0xF05E)
        var decoded = 0
        for k in 0..<100_000 {
            let (request, data) = samples[k % samples.count]
            var bytes = request.encoded(unique: UInt64(k), nodeID: 1, writeData: data)
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                let i = Int.random(in: 0..<bytes.count, using: &rng)
                bytes[i] = UInt8.random(in: 0...255, using: &rng)
            }
            if Bool.random(using: &rng) { bytes = Array(bytes.prefix(Int.random(in: 0...bytes.count, using: &rng))) }
            if (try? FUSERequest.decode(bytes)) != nil { decoded += 1 }
        }
        #expect(decoded > 1000, "some mutations still decode (\(decoded)): the decoder is not refusing everything")
    }

    @Test("BATCH_FORGET with a count larger than the request is refused, not trusted")
    func batchForgetCount() {
        var bytes = FUSERequest.batchForget([FUSEForget(nodeID: 1, nlookup: 1)]).encoded(unique: 1, nodeID: 0)
        bytes[40] = 0xFF; bytes[41] = 0xFF; bytes[42] = 0xFF; bytes[43] = 0x7F
        #expect(throws: FUSEDecodeError.self) {
            try FUSERequest.decode(bytes)
        }
    }

    @Test("replies: out_header (len, -errno, unique) and each body at its C size")
    func replies() {
        func le32(_ b: [UInt8], _ o: Int) -> UInt32 { (0..<4).reduce(0) { $0 | UInt32(b[o + $1]) << (8 * UInt32($1)) } }
        let err = FUSEReply.error(2).encoded(unique: 9)
        #expect(err.count == 16 && le32(err, 0) == 16 && Int32(bitPattern: le32(err, 4)) == -2 && err[8] == 9)
        #expect(FUSEReply.error(0).encoded(unique: 1).count == 16)
        let attr = FUSEAttr(ino: 5, size: 1 << 30, mode: 0o100660)
        #expect(
            FUSEReply.entry(nodeID: 5, attr: attr, entryValidSeconds: 1, attrValidSeconds: 1).encoded(unique: 1).count
                == 16 + 128)
        #expect(FUSEReply.attr(attr, validSeconds: 1).encoded(unique: 1).count == 16 + 104)
        #expect(FUSEReply.open(fh: 3, openFlags: 1).encoded(unique: 1).count == 16 + 16)
        #expect(FUSEReply.write(size: 4096).encoded(unique: 1).count == 16 + 8)
        #expect(FUSEReply.statfs(FUSEStatfs(blocks: 10)).encoded(unique: 1).count == 16 + 80)
        let initOut = FUSEReply.initialize(
            FUSEInitOut(
                maxReadahead: 1 << 17,
                flags: FUSEInitFlags.asyncDIO | FUSEInitFlags.initExt
                    | FUSEInitFlags.overIOURing, maxBackground: 128, congestionThreshold: 96, maxWrite: 1 << 20,
                maxPages: 256)
        )
        .encoded(unique: 1)
        #expect(initOut.count == 16 + 64)
        #expect(le32(initOut, 16 + 32) == 1 << 9, "flags2 (offset 32 of init_out) carries FUSE_OVER_IO_URING as bit 9")
        let data = FUSEReply.data(count: 1 << 20).encoded(unique: 3)
        #expect(data.count == 16 && le32(data, 0) == 16 + (1 << 20), "a gathered reply's header counts its payload")
    }

    @Test("directory entries are padded to 8 and stop at the kernel's limit; direntplus carries the entry")
    func directory() {
        var d = FUSEDirectoryWriter(limit: 64)
        let first = d.add(name: Array("e10.3".utf8), ino: 4, next: 1, type: 8)
        #expect(first)
        #expect(d.bytes.count == 32, "24-byte dirent + 5 name bytes, padded to 32")
        let second = d.add(name: Array("sys".utf8), ino: 2, next: 2, type: 4)
        let third = d.add(name: Array("etherd".utf8), ino: 3, next: 3, type: 4)
        #expect(second)
        #expect(!third, "no room: left for the next call")
        #expect(d.bytes.count == 64)
        var p = FUSEDirectoryWriter(limit: 4096)
        let plus = p.add(
            name: Array("x".utf8), ino: 4, next: 1, type: 8,
            plus: (nodeID: 4, attr: FUSEAttr(ino: 4, mode: 0o100660), validSeconds: 1))
        #expect(plus)
        #expect(p.bytes.count == 152 + 8)
    }

    @Test("notifications: unique 0, the code in error, inval_entry with the name and its NUL")
    func notifications() {
        let e = FUSENotification.invalEntry(parent: 1, name: Array("e10.3p2".utf8)).encoded
        let uniqueZero = e[8..<16].allSatisfy { $0 == 0 }
        #expect(e.count == 16 + 16 + 8 && e[4] == 3 && e.last == 0)
        #expect(uniqueZero)
        let i = FUSENotification.invalInode(ino: 7, offset: 0, length: 0).encoded
        #expect(i.count == 16 + 24 && i[4] == 2)
    }
}

import AoEProtocol
import AoETestSupport
import Testing

@Suite("AoE codec: golden frames")
struct GoldenFrameTests {
    @Test("decodes to the expected value", arguments: goldenFrames)
    func decodes(_ g: Golden) throws {
        #expect(try AoEFrame(decoding: g.bytes) == g.frame)
    }

    @Test("encodes to the expected bytes", arguments: goldenFrames)
    func encodes(_ g: Golden) {
        #expect(g.frame.encoded() == g.bytes)
        #expect(g.frame.encodedSize == g.bytes.count)
    }

    @Test("round trip survives Ethernet padding to 60 bytes", arguments: goldenFrames)
    func padded(_ g: Golden) throws {
        guard g.bytes.count < 60 else { return }
        let decoded = try AoEFrame(decoding: g.bytes + [UInt8](repeating: 0, count: 60 - g.bytes.count))
        #expect(decoded.header == g.frame.header)
        switch (decoded.body, g.frame.body) {
        case (.ata(let a), .ata(let b)):
            // ATA data keeps the padding (the engine trims to sector count × 512); the rest is equal.
            #expect(a.sectorCount == b.sectorCount && a.lba == b.lba && a.commandOrStatus == b.commandOrStatus)
        case (.opaque(let a), .opaque(let b)):
            #expect(Array(a.prefix(b.count)) == b)
        default:
            #expect(decoded.body == g.frame.body)
        }
    }

    @Test("every truncation throws a typed error or decodes a shorter frame, never traps", arguments: goldenFrames)
    func truncations(_ g: Golden) {
        for length in 0..<g.bytes.count {
            let prefix = Array(g.bytes.prefix(length))
            do {
                let f = try AoEFrame(decoding: prefix)
                // Only variable-length data may be cut and still decode: ATA data and opaque bodies.
                #expect(f.header == g.frame.header, "length \(length)")
                switch f.body {
                case .ata(let m):
                    #expect(!(m.flags.contains(.write) && !f.header.isResponse), "a short write must not decode")
                case .opaque: break
                default: Issue.record("\(g.name): \(length) bytes decoded as \(f.body)")
                }
            } catch {
                if length < AoEHeader.size {
                    #expect(error == .runt(length: length, minimum: 24))
                } else {
                    switch error {
                    case .truncatedArgument(let command, _, _): #expect(command == g.frame.header.command)
                    case .lengthMismatch: break
                    default: Issue.record("\(g.name) at \(length): unexpected \(error)")
                    }
                }
            }
        }
    }
}

@Suite("AoE codec: malformed input")
struct MalformedTests {
    @Test func runtNamesItsLength() {
        #expect(throws: AoEDecodeError.runt(length: 10, minimum: 24)) {
            try AoEFrame(decoding: [UInt8](repeating: 0, count: 10))
        }
        #expect(AoEDecodeError.runt(length: 10, minimum: 24).description.contains("runt"))
    }

    @Test func wrongEtherType() {
        var bytes = goldenFrames[0].bytes
        bytes[12] = 0x08
        bytes[13] = 0x00
        #expect(throws: AoEDecodeError.notAoE(etherType: 0x0800)) { try AoEFrame(decoding: bytes) }
    }

    @Test func badVersion() {
        var bytes = goldenFrames[0].bytes
        bytes[14] = 0x20
        #expect(throws: AoEDecodeError.unsupportedVersion(2)) { try AoEFrame(decoding: bytes) }
        #expect(AoEDecodeError.unsupportedVersion(2).description.contains("bad version"))
    }

    @Test("vblade's start-up announcement (aoe.c aoead) leaves the version nibble 0: it decodes")
    func versionZeroAnnouncement() throws {
        var bytes = goldenFrames.first { $0.name.contains("Query Config response") }!.bytes
        bytes[14] = 0x08  // version 0, response flag
        let f = try AoEFrame(decoding: bytes)
        #expect(f.header.version == 0 && f.header.isResponse)
        guard case .queryConfig = f.body else { Issue.record("not a config response: \(f.body)"); return }
    }

    @Test func configStringLongerThanFrame() {
        var bytes = goldenFrames[1].bytes
        bytes[30] = 0x00
        bytes[31] = 0x09  // says 9 bytes, 5 present
        #expect(throws: AoEDecodeError.lengthMismatch(field: "config string length", declared: 9, available: 5)) {
            try AoEFrame(decoding: bytes)
        }
    }

    @Test func configStringOver1024() {
        var bytes = goldenFrames[1].bytes
        bytes[30] = 0x04
        bytes[31] = 0x01  // 1025
        #expect(throws: AoEDecodeError.configStringTooLong(1025)) { try AoEFrame(decoding: bytes) }
    }

    @Test func configStringOf1024Bytes() throws {
        let config = QueryConfig(command: .forceSet, configString: [UInt8](repeating: 0x41, count: 1024))
        let f = AoEFrame(
            header: header(targetMAC, initiatorMAC, command: .queryConfig, tag: 1), body: .queryConfig(config))
        #expect(try AoEFrame(decoding: f.encoded()) == f)
    }

    @Test func directiveCountBeyondFrame() {
        var bytes = goldenFrames[15].bytes
        bytes[27] = 3  // 3 directives, 2 present
        #expect(throws: AoEDecodeError.lengthMismatch(field: "directive count", declared: 24, available: 16)) {
            try AoEFrame(decoding: bytes)
        }
    }

    @Test func macCountBeyondFrame() {
        var bytes = goldenFrames[18].bytes
        bytes[25] = 3
        #expect(throws: AoEDecodeError.lengthMismatch(field: "MAC count", declared: 18, available: 12)) {
            try AoEFrame(decoding: bytes)
        }
    }

    @Test func writeRequestShorterThanItsSectorCount() {
        var bytes = goldenFrames[8].bytes
        bytes[26] = 2  // says 2 sectors, carries 1
        #expect(throws: AoEDecodeError.lengthMismatch(field: "write sector count", declared: 1024, available: 512)) {
            try AoEFrame(decoding: bytes)
        }
    }
}

@Suite("AoE codec: fuzz")
struct FuzzTests {
    /// 100,000 frames mutated from the golden set: bytes flipped, set, inserted, deleted,
    /// length fields pushed to extremes, frames cut and extended. Decoding must never trap; a frame
    /// that decodes must re-encode to bytes that decode to the same value.
    @Test func mutatedFramesNeverTrap() throws {
        let seed = UInt64(ProcessInfo_seed() ?? 0xA0EF5)
        var rng = SplitMixRNG(seed)  // seeded, so a failing case can be replayed
        var decoded = 0
        var rejected: [String: Int] = [:]
        for i in 0..<100_000 {
            var bytes = goldenFrames[Int(rng.next() % UInt64(goldenFrames.count))].bytes
            for _ in 0...(rng.next() % 6) { mutate(&bytes, &rng) }
            do {
                let f = try AoEFrame(decoding: bytes)
                decoded += 1
                let again = try AoEFrame(decoding: f.encoded())
                #expect(again == f, "case \(i) (seed \(seed)) is not stable under re-encoding: \(bytes)")
            } catch {
                let kind = String(describing: error).prefix { $0 != ":" }
                rejected[String(kind), default: 0] += 1
            }
        }
        // Both sides must be exercised, or the mutations are too weak or too strong to mean anything.
        #expect(decoded > 10_000)
        #expect(rejected.values.reduce(0, +) > 10_000)
        #expect(rejected.keys.count >= 5, "kinds of rejection seen: \(rejected)")
    }

    func mutate(_ b: inout [UInt8], _ rng: inout SplitMixRNG) {
        let r = rng.next()
        let at = b.isEmpty ? 0 : Int(rng.next() % UInt64(b.count))
        switch r % 8 {
        case 0: if !b.isEmpty { b[at] ^= UInt8(1 << (rng.next() % 8)) }
        case 1: if !b.isEmpty { b[at] = UInt8(truncatingIfNeeded: rng.next()) }
        case 2: b.insert(UInt8(truncatingIfNeeded: rng.next()), at: at)
        case 3: if !b.isEmpty { b.remove(at: at) }
        case 4: b = Array(b.prefix(Int(rng.next() % UInt64(b.count + 1))))
        case 5: b += (0..<Int(rng.next() % 64)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        case 6:
            // Push a count or length field (config string, directive count, nmacs, sector count) to an extreme.
            let field = [25, 26, 27, 30, 31][Int(rng.next() % 5)]
            if field < b.count { b[field] = [0x00, 0x01, 0x7F, 0xFF][Int(rng.next() % 4)] }
        default:
            // Keep the frame AoE version 1 so mutations reach the argument decoders.
            if b.count > 14 { b[14] = 0x10 | UInt8(rng.next() & 0x0F) }
        }
    }
}

/// `AOEFS_FUZZ_SEED` replays a fuzz run.
func ProcessInfo_seed() -> UInt64? {
    guard let s = getenvString("AOEFS_FUZZ_SEED") else { return nil }
    return UInt64(s)
}

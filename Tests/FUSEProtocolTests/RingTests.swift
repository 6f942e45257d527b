import AoETestSupport
import FUSEProtocol
import Testing

/// Decodes a ring entry held in two arrays (header area, payload).
func decodeRing(_ area: [UInt8], _ payload: [UInt8]) throws(FUSEDecodeError) -> (FUSEInHeader, FUSERequest, UInt64) {
    let r: Result<(FUSEInHeader, FUSERequest, UInt64), FUSEDecodeError> = area.withUnsafeBytes { a in
        payload.withUnsafeBytes { p in
            do throws(FUSEDecodeError) {
                let (h, q, c) = try FUSERequest.decode(ringHeader: a, payload: p)
                return .success((h, q, c))
            } catch { return .failure(error) }
        }
    }
    return try r.get()
}

@Suite("FUSE protocol: FUSE over io_uring entries")
struct RingTests {
    @Test(
        "the entry layout is fuse_uring_req_header's: in_out 128, op_in 128, ent_in_out 32 (commit_id at 264, payload_sz at 272)"
    )
    func layout() {
        #expect(FUSERingLayout.opInOffset == 128 && FUSERingLayout.opInSize == 128)
        #expect(FUSERingLayout.entryOffset == 256 && FUSERingLayout.headerAreaSize == 288)
        #expect(FUSERingLayout.commitIDOffset == 264 && FUSERingLayout.payloadSizeOffset == 272)
        #expect(FUSERingCommand.register.rawValue == 1 && FUSERingCommand.commitAndFetch.rawValue == 2)
    }

    @Test(
        "every request round-trips through a ring entry: header in in_out, its structure in op_in, the rest in the payload"
    )
    func roundTrips() throws {
        for (i, (request, data)) in samples.enumerated() {
            let (area, payload) = request.ringEncoded(unique: UInt64(500 + i), nodeID: 7, writeData: data)
            let (h, back, commit) = try decodeRing(area, payload + [UInt8](repeating: 0xEE, count: 64))
            #expect(commit == UInt64(500 + i) && h.unique == commit && h.nodeID == 7)
            if case .write(let fh, let off, let size, let wf, let at) = back {
                // The data stays in the payload: dataOffset 0 there.
                #expect(at == 0 && Array(payload[at..<at + Int(size)]) == data)
                #expect(FUSERequest.write(fh: fh, offset: off, size: size, writeFlags: wf, dataOffset: 80) == request)
            } else {
                #expect(back == request, "\(request)")
            }
        }
    }

    @Test("a LOOKUP's name is read from the payload (its op_in is empty), bounded by payload_sz")
    func lookupName() throws {
        let (area, payload) = FUSERequest.lookup(name: Array("e10.3p2".utf8)).ringEncoded(unique: 9, nodeID: 1)
        #expect(area[FUSERingLayout.opInOffset..<FUSERingLayout.opInOffset + 8].allSatisfy { $0 == 0 })
        let (_, r, _) = try decodeRing(area, payload)
        #expect(r == .lookup(name: Array("e10.3p2".utf8)))
        // payload_sz cut before the NUL: the name is unterminated, refused.
        var short = area
        short[FUSERingLayout.payloadSizeOffset] = UInt8(payload.count - 1)
        #expect(throws: FUSEDecodeError.self) { try decodeRing(short, payload) }
    }

    @Test(
        "a short header area, a payload_sz beyond the payload, a WRITE larger than its payload: refused, never trusted")
    func refusals() {
        let (area, payload) = FUSERequest.write(fh: 1, offset: 0, size: 5, writeFlags: 0, dataOffset: 0)
            .ringEncoded(unique: 3, nodeID: 2, writeData: Array("hello".utf8))
        #expect(throws: FUSEDecodeError.self) { try decodeRing(Array(area.prefix(287)), payload) }
        #expect(throws: FUSEDecodeError.self) { try decodeRing(area, Array(payload.prefix(4))) }
        var lying = area
        lying[FUSERingLayout.payloadSizeOffset] = 200
        #expect(throws: FUSEDecodeError.self) { try decodeRing(lying, payload) }
    }

    @Test("100,000 seeded mutations of ring entries decode or throw; none traps")
    func mutations() {
        var rng = SplitMixRNG(0x51E6)
        var decoded = 0
        for k in 0..<100_000 {
            let (request, data) = samples[k % samples.count]
            var (area, payload) = request.ringEncoded(unique: UInt64(k + 1), nodeID: 1, writeData: data)
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                // Mostly where it matters: the in header, op_in's first bytes, ent_in_out, the payload.
                switch Int.random(in: 0..<4, using: &rng) {
                case 0: area[Int.random(in: 0..<40, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
                case 1: area[128 + Int.random(in: 0..<48, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
                case 2: area[256 + Int.random(in: 0..<32, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
                default:
                    if !payload.isEmpty {
                        payload[Int.random(in: 0..<payload.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
                    }
                }
            }
            if Bool.random(using: &rng) {
                payload = Array(payload.prefix(Int.random(in: 0...payload.count, using: &rng)))
            }
            if (try? decodeRing(area, payload)) != nil { decoded += 1 }
        }
        #expect(decoded > 1000, "some mutations still decode (\(decoded))")
    }
}

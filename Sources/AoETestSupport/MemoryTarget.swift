import AoEProtocol

/// A small AoE target held in memory, for state-machine tests: answers Query Config, IDENTIFY,
/// READ/WRITE SECTORS (EXT) and FLUSH CACHE (EXT) the way vblade does, with switches to misbehave.
public struct MemoryTarget: Sendable {
    public var address: TargetAddress
    public var mac: MACAddress
    public var bufferCount: UInt16
    public var sectorsPerCommand: UInt8
    public var sectors: UInt64
    public var supportsLBA48 = true
    /// Answer writes with ATA error ABRT (vblade `-r`).
    public var readOnly = false
    /// A write cache, and both flush commands, in IDENTIFY (as a disk with its cache on).
    public var writeCache = true
    public var offersFlush = true
    /// Abort FLUSH CACHE EXT although it is offered, as older disks do.
    public var abortsFlushExt = true
    /// Abort FLUSH CACHE too (a target that cannot flush).
    public var abortsFlush = false
    /// TRIM offered in IDENTIFY (with zeros after it, and `trimBlocks` in word 105).
    public var offersTrim = false
    public var trimBlocks: UInt16 = 1
    /// What word 105 says, when not `trimBlocks` (0: not reported).
    public var reportedTrimBlocks: UInt16?
    /// Every TRIM range received (`DataSetManagement.Range`s), in order.
    public private(set) var trimmed: [DataSetManagement.Range] = []
    /// How long answers to commands that wait on the medium (FLUSH CACHE, TRIM) take beyond the
    /// wire's latency: an fdatasync, a hole punched after dirty pages were written back.
    public var mediumDelay: Duration = .zero
    /// `mediumDelay` for a FLUSH or TRIM request, zero for anything else (`Simulation`).
    public func answerDelay(for request: [UInt8]) -> Duration {
        guard mediumDelay > .zero, request.count > 27, request[19] == AoECommand.ata.rawValue else { return .zero }
        let command = ATAOpcode(rawValue: request[27])
        return [.flushCache, .flushCacheExt, .dataSetManagement].contains(command) ? mediumDelay : .zero
    }
    /// Answer nothing at all (a crashed target).
    public var silent = false
    /// Answer Query Config but no ATA command (a stale announcer, an impostor).
    public var ignoresATA = false
    /// Answer every ATA command with this AoE error.
    public var aoeError: AoEErrorCode?
    public private(set) var storage: [UInt64: [UInt8]] = [:]
    public private(set) var flushes = 0
    public private(set) var commands = 0

    public init(
        address: TargetAddress, mac: MACAddress, bufferCount: UInt16 = 16, sectorsPerCommand: UInt8 = 17,
        sectors: UInt64 = 1 << 21
    ) {
        self.address = address
        self.mac = mac
        self.bufferCount = bufferCount
        self.sectorsPerCommand = sectorsPerCommand
        self.sectors = sectors
    }

    /// Puts `sector` (512 bytes) at `lba`, as if written before the test began.
    public mutating func store(_ sector: [UInt8], at lba: UInt64) { storage[lba] = sector }

    /// The 512 bytes of sector `lba` (zeros if never written).
    public func sector(_ lba: UInt64) -> [UInt8] { storage[lba] ?? [UInt8](repeating: 0, count: 512) }

    /// Bytes `[offset, offset+count)` of the disk.
    public func bytes(at offset: UInt64, count: Int) -> [UInt8] {
        var out: [UInt8] = []
        var lba = offset / 512
        while out.count < Int(offset % 512) + count {
            out += sector(lba)
            lba += 1
        }
        return Array(out[Int(offset % 512)..<(Int(offset % 512) + count)])
    }

    /// The frames this target sends in answer to `bytes` (none if it ignores them).
    public mutating func handle(_ bytes: [UInt8]) -> [[UInt8]] {
        guard !silent, let f = try? AoEFrame(decoding: bytes), !f.header.isResponse else { return [] }
        let h = f.header
        let matches =
            (h.shelf == address.shelf || h.shelf == .broadcast) && (h.slot == address.slot || h.slot == .broadcast)
        guard matches else { return [] }
        var rh = AoEHeader(
            destination: h.source, source: mac, flags: .response, shelf: address.shelf, slot: address.slot,
            command: h.command, tag: h.tag)
        switch f.body {
        case .queryConfig:
            return [
                AoEFrame(
                    header: rh,
                    body: .queryConfig(
                        QueryConfig(
                            bufferCount: bufferCount, firmwareVersion: 0x4019, sectorsPerCommand: sectorsPerCommand,
                            aoeVersion: 1))
                ).encoded()
            ]
        case .ata(let m):
            if ignoresATA { return [] }
            commands += 1
            if let e = aoeError {
                rh.flags.insert(.error)
                rh.error = e
                return [AoEFrame(header: rh, body: .opaque([])).encoded()]
            }
            var r = ATAMessage(
                flags: m.flags, sectorCount: m.sectorCount, commandOrStatus: ATAStatus.ready.rawValue, lba: m.lba)
            let lba = m.flags.contains(.extended) ? m.lba : m.lba & 0x0FFF_FFFF
            func abort(_ error: ATAErrorRegister) {
                r.commandOrStatus = ATAStatus([.ready, .error]).rawValue
                r.errorOrFeature = error.rawValue
            }
            switch m.opcode {
            case .identifyDevice:
                r.data = ATAIdentity(
                    model: "memory target", serial: "MEM\(address)", firmware: "1",
                    supportsLBA48: supportsLBA48, sectors: sectors, writeCacheSupported: writeCache,
                    writeCacheEnabled: writeCache, flushCache: offersFlush,
                    flushCacheExt: offersFlush && supportsLBA48, trim: offersTrim,
                    deterministicReadAfterTrim: offersTrim, readsZerosAfterTrim: offersTrim,
                    trimBlocksPerCommand: offersTrim ? reportedTrimBlocks ?? trimBlocks : 0
                ).encoded()
            case .dataSetManagement:
                let n = Int(m.sectorCount)
                let ranges = m.data.withUnsafeBytes { DataSetManagement.decode($0, blocks: n) }
                if !offersTrim || readOnly || n < 1 || n > Int(trimBlocks) || m.data.count < n * 512
                    || ranges.contains(where: { $0.lba + UInt64($0.sectors) > sectors })
                {
                    abort(.aborted)
                } else {
                    for t in ranges {
                        trimmed.append(t)
                        let span = t.lba..<t.lba + UInt64(t.sectors)
                        if t.sectors > storage.count {
                            storage = storage.filter { !span.contains($0.key) }
                        } else {
                            for lba in span { storage[lba] = nil }
                        }
                    }
                }
            case .readSectors, .readSectorsExt:
                if lba + UInt64(m.sectorCount) > sectors {
                    abort(.idNotFound)
                } else {
                    r.data = (0..<UInt64(m.sectorCount)).flatMap { sector(lba + $0) }
                }
            case .writeSectors, .writeSectorsExt:
                if readOnly {
                    abort(.aborted)
                } else if lba + UInt64(m.sectorCount) > sectors {
                    abort(.idNotFound)
                } else {
                    for i in 0..<Int(m.sectorCount) {
                        storage[lba + UInt64(i)] = Array(m.data[(i * 512)..<((i + 1) * 512)])
                    }
                }
            case .flushCacheExt:
                if abortsFlushExt { abort(.aborted) } else { flushes += 1 }
            case .flushCache:
                if abortsFlush { abort(.aborted) } else { flushes += 1 }
            default:
                abort(.aborted)
            }
            return [AoEFrame(header: rh, body: .ata(r)).encoded()]
        default:
            return []
        }
    }

    /// An unsolicited config response (a target announcing itself on power-up).
    public func announcement() -> [UInt8] {
        AoEFrame(
            header: AoEHeader(
                destination: .broadcast, source: mac, flags: .response, shelf: address.shelf,
                slot: address.slot, command: .queryConfig, tag: Tag(0)),
            body: .queryConfig(
                QueryConfig(
                    bufferCount: bufferCount, firmwareVersion: 0x4019,
                    sectorsPerCommand: sectorsPerCommand, aoeVersion: 1))
        ).encoded()
    }
}

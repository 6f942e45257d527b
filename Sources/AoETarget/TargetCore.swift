import AoEProtocol

/// What a target exports and how it behaves: vblade's flags (vblade(8), aoe.c) plus identity.
public struct TargetSettings: Sendable, Hashable {
    /// Shelf and slot (`aoefs serve SHELF SLOT …`).
    public var address: TargetAddress
    /// The interface's hardware address (the source of every answer).
    public var mac: MACAddress
    /// The interface MTU: sets the most sectors per command, `(mtu − 36) / 512` as vblade does.
    public var mtu: Int
    /// Sectors exported (`-l`, or the file's size minus the offset).
    public var sectors: UInt64
    /// Advertised buffer count (`-b`, default 16): how many commands the initiator may have
    /// outstanding at once.
    public var bufferCount: UInt16 = 16
    /// Writes fail with ATA ABRT (`-r`).
    public var readOnly = false
    /// IDENTIFY advertises a write cache (the default: the page cache is one). Without it the
    /// target claims to be write-through, which is true only when the file is opened O_SYNC.
    public var writeCache = true
    /// FLUSH CACHE (EXT) is offered but aborted: a foreign target's behaviour, for testing
    /// initiators (`--abort-flush`, with O_SYNC so no data depends on it).
    public var abortsFlush = false
    /// DATA SET MANAGEMENT (TRIM) offered in IDENTIFY, with zeros after it: the backing file
    /// can punch holes (`BackingFile.trimSupport`), and neither `--no-trim` nor `-r` was given.
    public var trim = false
    /// IDENTIFY word 105: the most 512-byte blocks of range entries per DSM command.
    public static let trimBlocksPerCommand: UInt16 = 8
    /// Only these initiators get answers (`-m`); empty = everyone. Edited by MAC Mask List.
    public var allowedMACs: [MACAddress] = []
    /// IDENTIFY DEVICE strings.
    public var model = "aoefs serve"
    public var serial = ""
    public var firmware = "1"

    public init(address: TargetAddress, mac: MACAddress, mtu: Int, sectors: UInt64) {
        self.address = address
        self.mac = mac
        self.mtu = mtu
        self.sectors = sectors
    }

    /// Sectors per ATA command this target accepts: vblade's `(mtu − sizeof(Ata)) / 512`,
    /// where the 36 bytes are the Ethernet, AoE and ATA headers.
    public var sectorsPerCommand: Int { max(1, min(255, (mtu - 36) / 512)) }
}

/// Disk work the driver must do for one ATA command, then answer with `reply` (on success) or
/// `TargetCore.failure(of:)` (on an I/O error).
public enum DiskWork: Sendable {
    /// Read `count` bytes at byte `offset` of the export; the answer is `header` + those bytes.
    case read(header: [UInt8], offset: UInt64, count: Int)
    /// Write `data` at byte `offset` of the export; the answer is `header`.
    case write(header: [UInt8], offset: UInt64, data: [UInt8])
    /// Make every acknowledged write durable (fsync), then answer `header`.
    case flush(header: [UInt8])
    /// Punch these ranges (byte offsets and counts of the export, checked to lie inside it) so
    /// that they read as zeros and their space returns, then answer `header`.
    case trim(header: [UInt8], ranges: [(offset: UInt64, count: UInt64)])
}

/// What to do with one received frame.
public enum TargetAction: Sendable {
    /// Send this frame now.
    case reply([UInt8])
    /// Do this disk work, then send its answer.
    case disk(DiskWork)
    /// Not for us, not allowed, or malformed: no answer (as vblade).
    case ignore
}

/// The protocol side of an AoE target, with no I/O: frame in, action out (AoE spec r11 §3–§4,
/// with vblade's answers where the spec leaves room). Owns the config string, the MAC mask list
/// and the reservation list; only the receive thread calls it.
public struct TargetCore: Sendable {
    public private(set) var settings: TargetSettings
    /// The config string (Query Config set / force set).
    public private(set) var configString: [UInt8] = []
    /// MACs holding a reservation (Reserve/Release); empty = unreserved.
    public private(set) var reserved: [MACAddress] = []
    /// Counters, for `aoefs serve`'s summary and tests.
    public private(set) var counters = Counters()

    /// Frames answered and dropped, by kind.
    public struct Counters: Sendable, Hashable {
        public var reads = 0
        public var writes = 0
        public var flushes = 0
        /// DATA SET MANAGEMENT commands accepted, and the sectors they named.
        public var trims = 0
        public var sectorsTrimmed: UInt64 = 0
        public var configQueries = 0
        public var errors = 0
        public var dropped = 0
    }

    /// vblade's limits (aoe.c: `Nmasks`, `Nsrr`).
    public static let maxMasks = 32
    public static let maxReservations = 256
    /// vblade's firmware version, which the Linux driver shows in `fwver`.
    public static let firmwareVersion: UInt16 = 0x4019

    private let identity: [UInt8]

    public init(settings: TargetSettings, configString: [UInt8] = []) {
        self.settings = settings
        self.configString = configString
        // A write cache (the page cache) and both flush commands, honestly: an acknowledged write
        // may still be only in memory, and FLUSH CACHE (EXT) runs fdatasync (ACS-3 §7.12.7,
        // words 82–87). An initiator that reads IDENTIFY therefore sends its fsyncs here.
        identity = ATAIdentity(
            model: settings.model, serial: settings.serial, firmware: settings.firmware,
            supportsLBA48: true, sectors: settings.sectors, writeCacheSupported: settings.writeCache,
            writeCacheEnabled: settings.writeCache, flushCache: true, flushCacheExt: true,
            trim: settings.trim, deterministicReadAfterTrim: settings.trim,
            readsZerosAfterTrim: settings.trim,
            trimBlocksPerCommand: settings.trim ? TargetSettings.trimBlocksPerCommand : 0
        ).encoded()
    }

    /// The unsolicited config response a target broadcasts when it starts (vblade `aoead`): to
    /// everyone, or to each allowed MAC when there is a mask list.
    public func announcements() -> [[UInt8]] {
        let destinations = settings.allowedMACs.isEmpty ? [MACAddress.broadcast] : settings.allowedMACs
        return destinations.map { d in
            AoEFrame(
                header: header(to: d, command: .queryConfig, tag: Tag(0)),
                body: .queryConfig(config(command: .read))
            ).encoded()
        }
    }

    /// Decides what to do with one received frame (whole Ethernet frame).
    public mutating func handle(_ frame: UnsafeRawBufferPointer) -> TargetAction {
        guard let h = try? AoEHeader(decoding: frame), !h.isResponse else { return .ignore }
        guard h.shelf == settings.address.shelf || h.shelf == .broadcast,
            h.slot == settings.address.slot || h.slot == .broadcast
        else { return .ignore }
        // vblade: with a mask list, frames from other initiators get no answer at all.
        if !settings.allowedMACs.isEmpty && !settings.allowedMACs.contains(h.source) {
            counters.dropped += 1
            return .ignore
        }
        switch h.command {
        case .ata:
            guard let ata = ATAView(frame: frame) else { return drop() }
            return handleATA(h, ata, frame)
        case .queryConfig, .macMaskList, .reserveRelease:
            guard let f = try? AoEFrame(decoding: frame) else { return drop() }
            switch f.body {
            case .queryConfig(let q): return handleConfig(h, q, payload: frame.count - AoEHeader.size)
            case .macMaskList(let m): return .reply(handleMask(h, m))
            case .reserveRelease(let r): return .reply(handleReserve(h, r))
            default: return drop()
            }
        default:
            // AoE r11 §2.5: an unrecognised command gets error 1.
            return .reply(errorReply(frame, .unrecognizedCommand))
        }
    }

    /// The answer to a disk command that failed with an I/O error: ATA status ERR, error ABRT
    /// (vblade answers a short read or write the same way).
    public static func failure(of header: [UInt8], error: ATAErrorRegister = .aborted) -> [UInt8] {
        var h = header
        h[AoEOffset.ataCommandOrStatus] = ATAStatus([.ready, .error]).rawValue
        h[AoEOffset.ataErrorOrFeature] = error.rawValue
        return h
    }

    /// Counts disk work done by the driver (the core hands it out; the driver reports results).
    public mutating func noteCompleted(_ work: DiskWork, ok: Bool) {
        if !ok { counters.errors += 1 }
    }

    // MARK: - ATA

    private mutating func handleATA(_ h: AoEHeader, _ m: ATAView, _ frame: UnsafeRawBufferPointer) -> TargetAction {
        let opcode = ATAOpcode(rawValue: m.commandOrStatus)
        // A reservation keeps everyone else out of everything but IDENTIFY (vblade `rrok`).
        if opcode != .identifyDevice && !reserved.isEmpty && !reserved.contains(h.source) {
            return .reply(errorReply(frame, .targetReserved))
        }
        var answer = responseHeader(frame)
        answer[AoEOffset.ataErrorOrFeature] = 0
        answer[AoEOffset.ataCommandOrStatus] = ATAStatus.ready.rawValue
        func ataError(_ e: ATAErrorRegister) -> TargetAction {
            answer[AoEOffset.ataCommandOrStatus] = ATAStatus([.ready, .error]).rawValue
            answer[AoEOffset.ataErrorOrFeature] = e.rawValue
            counters.errors += 1
            return .reply(answer)
        }
        let count = Int(m.sectorCount)
        switch opcode {
        case .identifyDevice:
            guard count == 1 else { return .reply(errorReply(frame, .badArgument)) }
            answer[AoEOffset.ataSectorCount] = 0
            return .reply(answer + identity)
        case .checkPowerMode:
            answer[AoEOffset.ataSectorCount] = 0xFF  // active or idle
            return .reply(answer)
        case .flushCache, .flushCacheExt:
            if settings.abortsFlush { return ataError(.aborted) }
            counters.flushes += 1
            return .disk(.flush(header: answer))
        case .readSectors, .readSectorsExt, .writeSectors, .writeSectorsExt:
            let lba48 = opcode == .readSectorsExt || opcode == .writeSectorsExt
            let lba = lba48 ? m.lba & 0xFFFF_FFFF_FFFF : m.lba & 0x0FFF_FFFF
            let isWrite = opcode == .writeSectors || opcode == .writeSectorsExt
            // vblade: more sectors than advertised, or a write without its data, is a bad argument.
            if count > settings.sectorsPerCommand || (isWrite && m.data.count < count * 512) {
                return .reply(errorReply(frame, .badArgument))
            }
            if lba + UInt64(count) > settings.sectors { return ataError(.idNotFound) }
            answer[AoEOffset.ataSectorCount] = 0
            if isWrite {
                if settings.readOnly { return ataError(.aborted) }
                counters.writes += 1
                return .disk(
                    .write(
                        header: answer, offset: lba * 512,
                        data: Array(UnsafeRawBufferPointer(rebasing: m.data[0..<(count * 512)]))))
            }
            counters.reads += 1
            return .disk(.read(header: answer, offset: lba * 512, count: count * 512))
        case .dataSetManagement:
            // TRIM only, as offered (ACS-3 §7.5): a count of blocks within word 105, all of them
            // in the frame, every range inside the export. Anything else is aborted with nothing
            // changed, checked before any range is punched.
            guard settings.trim, !settings.readOnly, m.errorOrFeature & DataSetManagement.trimFeature != 0,
                count >= 1, count <= Int(TargetSettings.trimBlocksPerCommand), m.data.count >= count * 512
            else { return ataError(.aborted) }
            let ranges = DataSetManagement.decode(
                UnsafeRawBufferPointer(rebasing: m.data[0..<(count * 512)]),
                blocks: count)
            guard ranges.allSatisfy({ $0.lba + UInt64($0.sectors) <= settings.sectors }) else {
                return ataError(.aborted)
            }
            answer[AoEOffset.ataSectorCount] = 0
            counters.trims += 1
            counters.sectorsTrimmed += ranges.reduce(0) { $0 + UInt64($1.sectors) }
            return .disk(.trim(header: answer, ranges: ranges.map { ($0.lba * 512, UInt64($0.sectors) * 512) }))
        default:
            return ataError(.aborted)
        }
    }

    /// The request's first 36 bytes turned into a response: addresses swapped, R flag, our
    /// shelf and slot (a request may have used the broadcast address).
    private func responseHeader(_ frame: UnsafeRawBufferPointer) -> [UInt8] {
        var r = Array(frame.prefix(AoEOffset.ataData))
        if r.count < AoEOffset.ataData { r += [UInt8](repeating: 0, count: AoEOffset.ataData - r.count) }
        let source = Array(r[AoEOffset.source..<AoEOffset.etherType])
        r.replaceSubrange(AoEOffset.destination..<AoEOffset.source, with: source)
        r.replaceSubrange(AoEOffset.source..<AoEOffset.etherType, with: settings.mac.bytes)
        r[AoEOffset.versionFlags] = (r[AoEOffset.versionFlags] & 0xF0) | AoEFlags.response.rawValue
        r[AoEOffset.error] = 0
        r[AoEOffset.shelf] = UInt8(settings.address.shelf.rawValue >> 8)
        r[AoEOffset.shelf + 1] = UInt8(truncatingIfNeeded: settings.address.shelf.rawValue)
        r[AoEOffset.slot] = settings.address.slot.rawValue
        return r
    }

    /// An AoE error response: the request's header and argument sent back with E set.
    private mutating func errorReply(_ frame: UnsafeRawBufferPointer, _ code: AoEErrorCode) -> [UInt8] {
        counters.errors += 1
        var r = responseHeader(frame)
        r[AoEOffset.versionFlags] |= AoEFlags.error.rawValue
        r[AoEOffset.error] = code.rawValue
        return Array(r.prefix(min(r.count, max(AoEHeader.size, frame.count))))
    }

    private mutating func drop() -> TargetAction {
        counters.dropped += 1
        return .ignore
    }

    // MARK: - Query Config, MAC Mask List, Reserve/Release

    private func header(to destination: MACAddress, command: AoECommand, tag: Tag) -> AoEHeader {
        AoEHeader(
            destination: destination, source: settings.mac, flags: .response, shelf: settings.address.shelf,
            slot: settings.address.slot, command: command, tag: tag)
    }

    private func config(command: ConfigCommand) -> QueryConfig {
        QueryConfig(
            bufferCount: settings.bufferCount, firmwareVersion: Self.firmwareVersion,
            sectorsPerCommand: UInt8(settings.sectorsPerCommand), aoeVersion: 1, command: command,
            configString: configString)
    }

    /// AoE r11 §3.2 as vblade `confcmd` does it: read always answers; test and prefix answer
    /// only on a match; set fails with error 4 if a different string is already there; force
    /// set always replaces. A string longer than 1024 bytes or than the frame is ignored.
    private mutating func handleConfig(_ h: AoEHeader, _ q: QueryConfig, payload: Int) -> TargetAction {
        counters.configQueries += 1
        var rh = header(to: h.source, command: .queryConfig, tag: h.tag)
        let s = q.configString
        switch q.command {
        case .read:
            break
        case .test:
            guard s == configString else { return .ignore }
        case .testPrefix:
            guard s.count <= configString.count, Array(configString.prefix(s.count)) == s else { return .ignore }
        case .set:
            if !configString.isEmpty && configString != s {
                rh.flags.insert(.error)
                rh.error = .configStringPresent
            } else {
                configString = s
            }
        case .forceSet:
            configString = s
        default:
            rh.flags.insert(.error)
            rh.error = .badArgument
        }
        return .reply(AoEFrame(header: rh, body: .queryConfig(config(command: q.command))).encoded())
    }

    /// AoE r11 §3.3 as vblade `aoemask`: edit applies directives in order and stops at the first
    /// bad one (error 2) or when the list is full (error 3); the answer carries the list.
    private mutating func handleMask(_ h: AoEHeader, _ m: MACMaskList) -> [UInt8] {
        var rh = header(to: h.source, command: .macMaskList, tag: h.tag)
        var error = MaskError.none
        switch m.command {
        case .read:
            break
        case .edit:
            edit: for d in m.directives {
                switch d.command {
                case .none: continue
                case .add:
                    if settings.allowedMACs.contains(d.mac) { continue }
                    guard settings.allowedMACs.count < Self.maxMasks else {
                        error = .listFull
                        break edit
                    }
                    settings.allowedMACs.append(d.mac)
                case .delete:
                    settings.allowedMACs.removeAll { $0 == d.mac }
                default:
                    error = .badDirective
                    break edit
                }
            }
        default:
            rh.flags.insert(.error)
            rh.error = .badArgument
        }
        let list = settings.allowedMACs.map { MACMaskDirective(command: .none, mac: $0) }
        return AoEFrame(header: rh, body: .macMaskList(MACMaskList(command: m.command, error: error, directives: list)))
            .encoded()
    }

    /// AoE r11 §3.4 as vblade `aoesrr`: set is refused (error 6) to an initiator outside the
    /// current reservation; force set always replaces; the answer carries the list.
    private mutating func handleReserve(_ h: AoEHeader, _ r: ReserveRelease) -> [UInt8] {
        var rh = header(to: h.source, command: .reserveRelease, tag: h.tag)
        switch r.command {
        case .read:
            break
        case .set where !reserved.isEmpty && !reserved.contains(h.source):
            rh.flags.insert(.error)
            rh.error = .targetReserved
        case .set, .forceSet:
            reserved = Array(r.macs.prefix(Self.maxReservations))
        default:
            rh.flags.insert(.error)
            rh.error = .badArgument
        }
        return AoEFrame(header: rh, body: .reserveRelease(ReserveRelease(command: r.command, macs: reserved))).encoded()
    }
}

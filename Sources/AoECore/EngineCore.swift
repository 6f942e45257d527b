import AoEProtocol
import DequeModule

/// Identifies a local interface inside the engine.
public struct LinkID: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var rawValue: Int
    public init(_ v: Int) { rawValue = v }
    public static func < (a: LinkID, b: LinkID) -> Bool { a.rawValue < b.rawValue }
    public var description: String { "link\(rawValue)" }
}

/// Tunables, with the defaults DESIGN §4 gives.
public struct EngineConfiguration: Sendable, Hashable {
    /// Seconds without an answer while I/O waits before the target is declared down; 0 = never.
    public var deadsecs: Int = 180
    /// The most frames in flight per path (Linux `aoe_maxout`).
    public var maxOutstanding: Int = 128
    /// The user's cap on data bytes per frame (`--maxdata`).
    public var maxPayload: Int?
    /// Broadcast Query Config this often (Linux: 60 s).
    public var beaconInterval: Duration = .seconds(60)
    public var initialRTO: Duration = .milliseconds(200)
    /// Below this, scheduling stalls on a busy 2-core host read as loss (see Docs/architecture.md).
    public var minimumRTO: Duration = .milliseconds(20)
    public var maximumRTO: Duration = .seconds(5)
    /// The least time a payload probe may take before it counts as lost (it also waits at
    /// least 8× the path's RTO).
    public var probeTimeout: Duration = .milliseconds(100)
    /// While a target is down, ask for it this often.
    public var downQueryInterval: Duration = .seconds(1)
    /// How long a path that lost more than twice its window is set aside before a re-probe.
    public var setAsideTime: Duration = .seconds(5)
    /// A cap on every interface's MTU (`--mtu`): for a NIC set to jumbo behind a smaller path.
    public var mtu: Int?
    /// Settings for one target (`[target e10.3]` in aoefs.conf); they win over the global ones.
    public var targets: [TargetAddress: TargetOverrides] = [:]
    /// Settings for one interface (`[interface eth1]` in aoefs.conf).
    public var interfaces: [String: InterfaceOverrides] = [:]

    public init() {}

    /// Seconds before `target` is declared down while I/O waits.
    public func deadsecs(for target: TargetAddress) -> Int { targets[target]?.deadsecs ?? deadsecs }

    /// The most frames in flight per path to `target`.
    public func maxOutstanding(for target: TargetAddress) -> Int { targets[target]?.maxOutstanding ?? maxOutstanding }

    /// The cap on data bytes per frame to `target` over `interface`: the target's own cap (or
    /// the global one), and the interface's, whichever is smaller.
    public func maxPayload(for target: TargetAddress, interface: String?) -> Int? {
        let own = targets[target]?.maxPayload ?? maxPayload
        let nic = interface.flatMap { interfaces[$0]?.maxPayload }
        return [own, nic].compactMap { $0 }.min()
    }

    /// The MTU to use on `interface`, whose NIC reports `reported`.
    public func mtu(for interface: String, reported: Int) -> Int {
        min(reported, mtu ?? .max, interfaces[interface]?.mtu ?? .max)
    }
}

/// Per-target settings (Solaris aoe.conf's idea, DESIGN §6). Nil keeps the global value.
public struct TargetOverrides: Sendable, Hashable {
    /// `timeout`: seconds without an answer, while I/O waits, before the target is down.
    public var deadsecs: Int?
    public var maxOutstanding: Int?
    public var maxPayload: Int?
    public init(deadsecs: Int? = nil, maxOutstanding: Int? = nil, maxPayload: Int? = nil) {
        self.deadsecs = deadsecs
        self.maxOutstanding = maxOutstanding
        self.maxPayload = maxPayload
    }
}

/// Per-interface settings. Nil keeps what the NIC reports / the global cap.
public struct InterfaceOverrides: Sendable, Hashable {
    public var mtu: Int?
    public var maxPayload: Int?
    public init(mtu: Int? = nil, maxPayload: Int? = nil) {
        self.mtu = mtu
        self.maxPayload = maxPayload
    }
}

/// What the driver must do after the core changed state.
public enum EngineAction: Sendable {
    /// Send this whole Ethernet frame on this link.
    case send(LinkID, [UInt8])
    /// Complete this request.
    case complete(RequestID, Result<Void, AoEIOError>)
    /// A diagnostic line for `etherd/err` (retransmits, errors, up/down, payload changes).
    case log(String)
    /// The target table changed (a target appeared, came up or went down).
    case targetsChanged
}

/// A target's state, in Linux sysfs wording.
public enum TargetState: String, Sendable, Hashable {
    case identifying = "identifying"
    case up = "up"
    case down = "down"
}

/// What the `paths` file shows of one path.
public struct PathSnapshot: Sendable, Hashable {
    public var link: LinkID
    public var interface: String
    public var mac: MACAddress
    public var payload: Int
    public var mtu: Int
    public var rtt: Duration?
    public var rto: Duration
    public var outstanding: Int
    public var window: Int
    public var sent: UInt64
    public var lost: UInt64
    /// "ok", "probing", "set-aside" or "link-down".
    public var state: String
}

/// What the `sys/eS.L/` files show of one target.
public struct TargetSnapshot: Sendable, Hashable {
    public var address: TargetAddress
    public var state: TargetState
    public var config: QueryConfig?
    public var identity: ATAIdentity?
    public var paths: [PathSnapshot]
    public var counters: TargetCounters
    /// Data bytes per frame in use: the smallest over usable paths.
    public var payload: Int
    public var outstanding: Int
    public var window: Int
}

/// The whole initiator as a pure state machine: discovery, the target table, per-path MTU
/// negotiation, windows and RTT, the sector scheduler, retransmission and `deadsecs`.
///
/// Every method takes `now` and appends what must happen to `out`; nothing here does I/O or
/// reads a clock (STYLE: postgres-nio's pool state machine). The driver (`Engine`) owns it behind
/// a Mutex and performs the actions after unlocking.
public struct EngineCore: Sendable {
    public private(set) var configuration: EngineConfiguration
    var links: [LinkID: LinkInfo] = [:]
    var targets: [TargetAddress: TargetEntry] = [:]
    var inFlight: [UInt32: FrameInFlight] = [:]
    /// Transmissions that timed out recently. Every transmission has its own tag, so a late
    /// answer to one of them is an exact RTT sample (no Karn ambiguity) and proof that the
    /// timeout was spurious.
    var retired: [UInt32: RetiredFrame] = [:]
    var retiredOrder: Deque<UInt32> = []
    static let retiredLimit = 8192
    var nextTag: UInt32 = 1
    var nextBeacon: Instant = .zero
    var nextRequest: UInt64 = 1
    var sequence: UInt64 = 0
    /// Frames that did not decode, or were requests from another initiator.
    public private(set) var malformedFrames: UInt64 = 0
    /// Responses for targets we do not know (stray).
    public private(set) var strayFrames: UInt64 = 0

    static let internalRequest = RequestID(UInt64.max)

    public init(configuration: EngineConfiguration = EngineConfiguration()) {
        self.configuration = configuration
    }

    /// A fresh request id.
    public mutating func makeRequestID() -> RequestID {
        defer { nextRequest += 1 }
        return RequestID(nextRequest)
    }

    /// Changes tunables (`deadsecs`, `maxout`, `maxdata`) for new paths and timers.
    public mutating func reconfigure(_ c: EngineConfiguration) { configuration = c }

    // MARK: - Links and discovery

    struct LinkInfo {
        var name: String
        var mac: MACAddress
        var mtu: Int
        var up = true
        /// False when the allow-list excludes this link.
        var allowed = true
        var usable: Bool { up && allowed }
    }

    /// Adds an interface and broadcasts a Query Config on it.
    public mutating func addLink(_ id: LinkID, name: String, mac: MACAddress, mtu: Int, now: Instant,
                                 _ out: inout [EngineAction]) {
        links[id] = LinkInfo(name: name, mac: mac, mtu: configuration.mtu(for: name, reported: mtu))
        if nextBeacon == .zero { nextBeacon = now + configuration.beaconInterval }
        broadcastQuery(on: id, target: .broadcast, &out)
    }

    /// The interface failed (deleted, down): its paths stop carrying frames until it comes back.
    public mutating func setLink(_ id: LinkID, up: Bool, mtu: Int? = nil, _ out: inout [EngineAction]) {
        guard var l = links[id] else { return }
        if l.up != up { out.append(.log("\(l.name): interface \(up ? "up" : "down")")) }
        l.up = up
        if let mtu { l.mtu = configuration.mtu(for: l.name, reported: mtu) }
        links[id] = l
    }

    /// Names of the links, by id.
    public var linkNames: [LinkID: String] { links.mapValues(\.name) }

    /// The links AoE may use (nil: all), Linux `aoe_iflist`.
    public private(set) var allowedLinks: Set<LinkID>?

    /// Restricts traffic to `allowed` (nil: all links) and asks the newly allowed links for targets.
    public mutating func setAllowedLinks(_ allowed: Set<LinkID>?, now: Instant, _ out: inout [EngineAction]) {
        allowedLinks = allowed
        for id in links.keys { links[id]!.allowed = allowed?.contains(id) ?? true }
        discover(now: now, &out)
        out.append(.log("interfaces: \(allowed.map { $0.compactMap { links[$0]?.name }.sorted().joined(separator: " ") } ?? "all")"))
    }

    /// Broadcasts a Query Config on every link: for all targets, or only `target`
    /// (a shelf with slot 0xff asks a whole shelf).
    public mutating func discover(_ target: TargetAddress = .broadcast, now: Instant, _ out: inout [EngineAction]) {
        for id in links.keys.sorted() where links[id]!.usable { broadcastQuery(on: id, target: target, &out) }
    }

    mutating func broadcastQuery(on link: LinkID, target: TargetAddress, _ out: inout [EngineAction]) {
        guard let l = links[link] else { return }
        let f = AoEFrame(
            header: AoEHeader(destination: .broadcast, source: l.mac, shelf: target.shelf, slot: target.slot,
                              command: .queryConfig, tag: Tag(allocateTag())),
            body: .queryConfig(QueryConfig()))
        out.append(.send(link, f.encoded()))
    }

    mutating func allocateTag() -> UInt32 {
        // Bit 31 stays clear: it is reserved for tools like aoeping (Linux aoenet_rcv). Every
        // transmission gets a fresh tag, so a late answer to an earlier transmission of the same
        // frame finds no entry and is dropped as a late duplicate.
        repeat {
            nextTag = (nextTag &+ 1) & 0x7FFF_FFFF
        } while inFlight[nextTag] != nil || nextTag == 0
        return nextTag
    }

    // MARK: - Receiving

    /// Handles one received frame.
    public mutating func receive(_ bytes: UnsafeRawBufferPointer, on link: LinkID, now: Instant,
                                 _ out: inout [EngineAction]) {
        guard links[link]?.allowed ?? false else { return }  // not on the allow-list
        guard let header = try? AoEHeader(decoding: bytes), header.isResponse else {
            malformedFrames += 1
            return
        }
        switch header.command {
        case .ata:
            // The hot path: no AoEFrame, no copies until the data lands in the request's buffer.
            let view = header.isError ? nil : ATAView(frame: bytes)
            if !header.isError && view == nil {
                malformedFrames += 1
                return
            }
            handleATA(header, view, link: link, now: now, &out)
        case .queryConfig:
            guard let frame = try? AoEFrame(decoding: bytes) else {
                malformedFrames += 1
                return
            }
            handleConfig(frame, link: link, now: now, &out)
        default: strayFrames += 1
        }
    }

    /// Convenience for arrays.
    public mutating func receive(_ bytes: [UInt8], on link: LinkID, now: Instant, _ out: inout [EngineAction]) {
        bytes.withUnsafeBytes { receive($0, on: link, now: now, &out) }
    }

    mutating func handleConfig(_ f: AoEFrame, link: LinkID, now: Instant, _ out: inout [EngineAction]) {
        guard !f.header.isError, case .queryConfig(let config) = f.body, let l = links[link] else { return }
        let address = f.header.target
        // Answers for the wildcard addresses are nonsense (Linux aoecmd_cfg_rsp ignores them).
        if address.shelf == .broadcast || address.slot == .broadcast { return }
        if address.shelf.rawValue == 0x0FFF {
            out.append(.log("\(f.header.source): shelf address is all ones (0xfff); check the shelf's dip switches"))
            return
        }
        let isNew = targets[address] == nil
        // Moved out while mutated, so its dictionaries stay uniquely referenced (no copy-on-write).
        var t = targets.removeValue(forKey: address) ?? TargetEntry(address: address, now: now)
        if isNew {
            out.append(.log("\(address): discovered at \(f.header.source) on \(l.name), "
                            + "bufcnt \(config.bufferCount), \(config.sectorsPerCommand) sectors per frame"))
        }
        t.lastHeard = now
        t.config = config
        if let i = t.paths.firstIndex(where: { $0.link == link && $0.mac == f.header.source }) {
            let maxout = configuration.maxOutstanding(for: address)
            if t.paths[i].window.limit != max(1, min(Int(config.bufferCount), maxout)) {
                t.paths[i].window.reset(bufferCount: Int(config.bufferCount), maxOutstanding: maxout)
            }
            t.paths[i].setAsideUntil = nil
        } else {
            t.paths.append(PathState(link: link, mac: f.header.source, mtu: l.mtu, config: config,
                                     configuration: configuration,
                                     maxOutstanding: configuration.maxOutstanding(for: address),
                                     maxPayload: configuration.maxPayload(for: address, interface: l.name)))
            if !isNew { out.append(.log("\(address): new path \(l.name) → \(f.header.source)")) }
        }
        if t.state == .down {
            t.state = .identifying
            t.revalidating = true
            out.append(.log("\(address): answered again; re-identifying"))
        }
        if t.state == .identifying && !t.identifyQueued {
            t.queue.prepend(WorkRange(request: Self.internalRequest, kind: .identify, lba: 0, sectors: 1, bufferOffset: 0))
            t.identifyQueued = true
        }
        if isNew { out.append(.targetsChanged) }
        targets[address] = t
        pump(address, now: now, &out)
    }

    mutating func handleATA(_ header: AoEHeader, _ m: ATAView?, link: LinkID, now: Instant, _ out: inout [EngineAction]) {
        let tag = header.tag.rawValue
        guard let flight = inFlight[tag] else {
            guard targets[header.target] != nil else {
                strayFrames += 1
                return
            }
            targets[header.target]!.counters.softerr += 1
            if let r = retired.removeValue(forKey: tag), r.target == header.target,
                r.path < targets[r.target]!.paths.count, targets[r.target]!.paths[r.path].mac == header.source
            {
                // A late answer: the frame was not lost, the path was slow. Learn the real RTT and
                // undo the window cut, so a stall does not cost a slow start.
                targets[r.target]!.paths[r.path].rtt.sample(now - r.sentAt)
                targets[r.target]!.paths[r.path].window.undoLoss()
            }
            return
        }
        guard var t = targets.removeValue(forKey: flight.target) else { return }
        let path = flight.path
        // Accept only the answer the frame asked for: from the path's MAC, heard on the path's
        // link, for the right shelf.slot. Anything else is spoofed or stray: count, drop, and
        // keep waiting for the genuine answer.
        guard path < t.paths.count, header.source == t.paths[path].mac, link == t.paths[path].link,
            header.target == flight.target
        else {
            t.counters.errwmsg += 1
            targets[flight.target] = t
            return
        }
        if let m, !m.status.isFailure, flight.range.kind.expectsData, m.data.count < flight.expectedDataBytes {
            // Truncated: count it and treat it as lost now (resend) rather than trust short data.
            t.counters.errtrunc += 1
            targets[flight.target] = t
            return
        }
        inFlight[tag] = nil
        t.paths[path].outstanding -= 1
        t.lastHeard = now
        t.counters.atarcv += 1

        if flight.isProbe {
            let ok = m.map { !$0.status.isFailure } ?? false
            probeFinished(&t, flight, answered: ok, now: now, &out)
            targets[flight.target] = t
            continueProbing(flight.target, path: path, now: now, &out)
            pump(flight.target, now: now, &out)
            return
        }

        if flight.range.retries == 0 { t.paths[path].rtt.sample(now - flight.sentAt) }  // Karn's rule
        t.paths[path].window.onResponse()
        t.paths[path].negotiator.frameAnswered(sectors: flight.range.sectors)
        t.paths[path].lossesSinceAnswer = 0
        let range = flight.range

        if header.isError {
            t.counters.erraoe += 1
            out.append(.log("\(t.address): AoE error from \(header.source): \(header.error) (tag \(header.tag))"))
            if range.kind == .identify {
                t.identifyQueued = false
            } else {
                fail(&t, range.request, .aoeError(t.address, header.error), &out)
            }
            targets[flight.target] = t
            pump(flight.target, now: now, &out)
            return
        }
        guard let m else {
            targets[flight.target] = t
            return
        }

        if m.status.isFailure {
            if range.kind == .flushExt && m.errorRegister.contains(.aborted) {
                // vblade and older disks abort FLUSH CACHE EXT: retry with FLUSH CACHE (0xe7).
                t.flushExtUnsupported = true
                var r = range
                r.kind = .flush28
                t.queue.prepend(r)
            } else if range.kind == .identify {
                out.append(.log("\(t.address): IDENTIFY failed: status \(m.status), error \(m.errorRegister)"))
                t.identifyQueued = false
            } else {
                t.counters.errata += 1
                out.append(.log("\(t.address): ATA error on \(range.kind) at LBA \(range.lba): status \(m.status), "
                                + "error \(m.errorRegister)"))
                fail(&t, range.request, .ataError(t.address, status: m.status, error: m.errorRegister, lba: range.lba), &out)
            }
            targets[flight.target] = t
            pump(flight.target, now: now, &out)
            return
        }

        switch range.kind {
        case .identify:
            t.identifyQueued = false
            if let id = try? ATAIdentity(parsing: m.data) { identified(&t, id, now: now, &out) }
        case .read:
            if let p = t.pending[range.request], let buffer = p.request.buffer {
                (buffer.bytes.baseAddress! + range.bufferOffset).copyMemory(from: m.data.baseAddress!,
                                                                              byteCount: range.sectors * 512)
            }
            finish(&t, range, &out)
        case .write, .flushExt, .flush28:
            finish(&t, range, &out)
        }
        targets[flight.target] = t
        if range.kind == .identify {
            for i in t.paths.indices { continueProbing(flight.target, path: i, now: now, &out) }
        }
        pump(flight.target, now: now, &out)
    }

    mutating func identified(_ t: inout TargetEntry, _ id: ATAIdentity, now: Instant, _ out: inout [EngineAction]) {
        if let old = t.identity, t.revalidating, old.sectors != id.sectors || old.serial != id.serial, !t.acceptNewIdentity {
            // Linux: "don't change users' perspective". The image stays down until flushed.
            t.state = .down
            t.changed = true
            out.append(.log("\(t.address): came back with \(id.sectors) sectors, serial \(id.serial) "
                            + "(was \(old.sectors), \(old.serial)); stays down until flushed"))
            out.append(.targetsChanged)
            return
        }
        t.identity = id
        t.revalidating = false
        t.acceptNewIdentity = false
        t.changed = false
        t.state = .up
        t.workSince = nil
        out.append(.log("\(t.address): up, \(id.sectors) sectors (\(id.supportsLBA48 ? "LBA48" : "LBA28")), "
                        + "model \(id.model.isEmpty ? "-" : id.model)"))
        out.append(.targetsChanged)
    }

    // MARK: - Submitting

    /// Queues a sector request. Completion comes back as a `.complete` action.
    public mutating func submit(_ r: SectorRequest, now: Instant, _ out: inout [EngineAction]) {
        // The checks read a copy of the entry in their own scope: a copy still alive when
        // `pending` is mutated below would make that insert copy the whole dictionary (COW),
        // once per request (seen in perf at QD 32).
        do {
            guard let t0 = targets[r.target] else {
                out.append(.complete(r.id, .failure(.noSuchTarget(r.target))))
                return
            }
            if t0.state == .down {
                out.append(.complete(r.id, .failure(.targetDown(r.target))))
                return
            }
            if let id = t0.identity, r.kind != .flush, r.lba + UInt64(r.sectors) > id.sectors {
                out.append(.complete(r.id, .failure(.beyondEnd(r.target, lba: r.lba, sectors: r.sectors,
                                                               capacity: id.sectors))))
                return
            }
        }
        if r.sectors == 0 && r.kind != .flush {
            out.append(.complete(r.id, .success(())))
            return
        }
        sequence += 1
        var t = targets.removeValue(forKey: r.target)!
        t.pending[r.id] = PendingRequest(request: r, remaining: r.kind == .flush ? 1 : r.sectors, sequence: sequence)
        if t.workSince == nil { t.workSince = now }
        switch r.kind {
        case .read:
            t.queue.append(WorkRange(request: r.id, kind: .read, lba: r.lba, sectors: r.sectors, bufferOffset: r.bufferOffset))
        case .write:
            t.queue.append(WorkRange(request: r.id, kind: .write, lba: r.lba, sectors: r.sectors, bufferOffset: r.bufferOffset))
        case .flush:
            // A flush waits for every write submitted before it (DESIGN §4 "Flush").
            t.flushWaiting.append(r.id)
            releaseFlushes(&t)
        }
        targets[r.target] = t
        pump(r.target, now: now, &out)
    }

    mutating func releaseFlushes(_ t: inout TargetEntry) {
        guard !t.flushWaiting.isEmpty else { return }
        let oldestWrite = t.pending.values.filter { $0.request.kind == .write }.map(\.sequence).min() ?? .max
        while let id = t.flushWaiting.first, let p = t.pending[id], p.sequence < oldestWrite {
            t.flushWaiting.removeFirst()
            t.queue.append(WorkRange(request: id, kind: t.flushExtUnsupported || !(t.identity?.supportsLBA48 ?? true)
                                        ? .flush28 : .flushExt, lba: 0, sectors: 0, bufferOffset: 0))
        }
    }

    mutating func finish(_ t: inout TargetEntry, _ range: WorkRange, _ out: inout [EngineAction]) {
        guard t.pending[range.request] != nil else { return }
        t.pending[range.request]!.remaining -= range.kind.isFlush ? 1 : range.sectors
        let p = t.pending[range.request]!
        switch range.kind {
        case .read: t.counters.bytesRead += UInt64(range.sectors * 512)
        case .write: t.counters.bytesWritten += UInt64(range.sectors * 512)
        default: break
        }
        if p.remaining > 0 { return }
        t.pending[range.request] = nil
        switch p.request.kind {
        case .read: t.counters.reads += 1
        case .write: t.counters.writes += 1
        case .flush: t.counters.flushes += 1
        }
        out.append(.complete(range.request, .success(())))
        if p.request.kind == .write { releaseFlushes(&t) }
        if t.pending.isEmpty { t.workSince = nil }
    }

    mutating func fail(_ t: inout TargetEntry, _ id: RequestID, _ error: AoEIOError, _ out: inout [EngineAction]) {
        guard let p = t.pending.removeValue(forKey: id) else { return }
        t.flushWaiting.removeAll { $0 == id }
        out.append(.complete(id, .failure(error)))
        if p.request.kind == .write { releaseFlushes(&t) }
        if t.pending.isEmpty { t.workSince = nil }
    }

    // MARK: - Sending

    /// Sends queued work on paths with room in their window, round-robin.
    mutating func pump(_ address: TargetAddress, now: Instant, _ out: inout [EngineAction]) {
        guard var t = targets.removeValue(forKey: address) else { return }
        defer { targets[address] = t }
        while let r = t.queue.first {
            if r.kind != .identify {
                guard t.state == .up else { return }
                if t.pending[r.request] == nil {  // failed meanwhile
                    t.queue.removeFirst()
                    continue
                }
            }
            guard let p = choosePath(&t, avoiding: r.lastPath) else { return }
            var piece = r
            if r.kind.carriesSectors {
                let most = t.paths[p].negotiator.payload / 512
                if r.sectors > most {
                    piece.sectors = most
                    var rest = r
                    rest.lba += UInt64(most)
                    rest.sectors -= most
                    rest.bufferOffset += most * 512
                    t.queue[0] = rest
                } else {
                    t.queue.removeFirst()
                }
            } else {
                t.queue.removeFirst()
            }
            send(&t, piece, path: p, now: now, &out)
        }
    }

    func usable(_ p: PathState, now: Instant) -> Bool {
        (links[p.link]?.usable ?? false) && (p.setAsideUntil.map { now >= $0 } ?? true)
    }

    mutating func choosePath(_ t: inout TargetEntry, avoiding: Int?) -> Int? {
        let n = t.paths.count
        guard n > 0 else { return nil }
        let healthy = t.paths.indices.filter { t.paths[$0].setAsideUntil == nil && (links[t.paths[$0].link]?.usable ?? false) }
        // Set-aside paths are used only when no healthy one exists (Linux: tainted targets).
        let candidates = healthy.isEmpty ? t.paths.indices.filter { links[t.paths[$0].link]?.usable ?? false } : healthy
        for k in 0..<n {
            let i = (t.roundRobin + k) % n
            guard candidates.contains(i), t.paths[i].outstanding < t.paths[i].window.size else { continue }
            if i == avoiding && candidates.count > 1
                && candidates.contains(where: { $0 != i && t.paths[$0].outstanding < t.paths[$0].window.size })
            {
                continue
            }
            t.roundRobin = (i + 1) % n
            return i
        }
        return nil
    }

    mutating func send(_ t: inout TargetEntry, _ range: WorkRange, path: Int, now: Instant, _ out: inout [EngineAction]) {
        var range = range
        if range.firstSent == nil { range.firstSent = now }
        range.lastPath = path
        let tag = allocateTag()
        let p = t.paths[path]
        guard let l = links[p.link] else { return }
        let lba48 = t.identity?.supportsLBA48 ?? true
        let header = AoEHeader(destination: p.mac, source: l.mac, shelf: t.address.shelf, slot: t.address.slot,
                               command: .ata, tag: Tag(tag))
        var message: ATAMessage
        switch range.kind {
        case .read: message = .read(lba: range.lba, sectors: UInt8(range.sectors), lba48: lba48)
        case .write:
            message = .write(lba: range.lba, data: [], lba48: lba48)
            message.sectorCount = UInt8(range.sectors)
        case .flushExt: message = .flush(lba48: true)
        case .flush28: message = .flush(lba48: false)
        case .identify: message = .identify()
        }
        // One allocation of the final size: header and argument encoded in place, then the write
        // data copied once from the request's buffer (not encoded, then appended and regrown).
        let frame = AoEFrame(header: header, body: .ata(message))
        let headerBytes = frame.encodedSize
        let writeSource = range.kind == .write ? t.pending[range.request]?.request.buffer : nil
        let dataBytes = writeSource == nil ? 0 : range.sectors * 512
        let bytes = [UInt8](unsafeUninitializedCapacity: headerBytes + dataBytes) { out, count in
            let raw = UnsafeMutableRawBufferPointer(out)
            frame.encode(into: raw)
            if let writeSource {
                (raw.baseAddress! + headerBytes).copyMemory(from: writeSource.bytes.baseAddress! + range.bufferOffset,
                                                            byteCount: dataBytes)
            }
            count = headerBytes + dataBytes
        }
        let timeout = p.rtt.timeout(afterRetries: range.retries)
        inFlight[tag] = FrameInFlight(target: t.address, path: path, range: range, sentAt: now, deadline: now + timeout,
                                      isProbe: false)
        t.paths[path].outstanding += 1
        t.paths[path].sent += 1
        t.counters.atasnd += 1
        if range.retries > 0 { t.counters.retries += 1 }
        out.append(.send(p.link, bytes))
    }

    // MARK: - Probing

    mutating func continueProbing(_ address: TargetAddress, path: Int, now: Instant, _ out: inout [EngineAction]) {
        do {  // the copy ends here, before the entry is mutated (see submit)
            guard let t0 = targets[address], t0.state == .up, path < t0.paths.count, t0.paths[path].probeTag == nil,
                usable(t0.paths[path], now: now)
            else { return }
        }
        guard let sectors = targets[address]!.paths[path].negotiator.startProbe() else { return }
        sendProbe(address, path: path, sectors: sectors, kind: .search, now: now, &out)
    }

    /// Sends one probe: a READ of LBA 0 padded to the probed size, so the request crosses at
    /// full size one way and the data comes back at full size the other (Linux probe(), commit
    /// bbb44e30). Probes travel outside the window.
    mutating func sendProbe(_ address: TargetAddress, path: Int, sectors: Int, kind: ProbeKind, now: Instant,
                            _ out: inout [EngineAction]) {
        guard var t = targets.removeValue(forKey: address) else { return }
        defer { targets[address] = t }
        guard let l = links[t.paths[path].link] else { return }
        let tag = allocateTag()
        let p = t.paths[path]
        var bytes = AoEFrame(
            header: AoEHeader(destination: p.mac, source: l.mac, shelf: address.shelf, slot: address.slot,
                              command: .ata, tag: Tag(tag)),
            body: .ata(.read(lba: 0, sectors: UInt8(sectors), lba48: false))
        ).encoded()
        bytes += [UInt8](repeating: 0, count: sectors * 512)
        inFlight[tag] = FrameInFlight(
            target: address, path: path,
            range: WorkRange(request: Self.internalRequest, kind: .read, lba: 0, sectors: sectors, bufferOffset: 0),
            sentAt: now, deadline: now + max(configuration.probeTimeout, p.rtt.timeout * 8), isProbe: true,
            probeKind: kind)
        if kind == .alive { t.paths[path].aliveTag = tag } else { t.paths[path].probeTag = tag }
        t.paths[path].outstanding += 1
        t.paths[path].sent += 1
        t.counters.probes += 1
        out.append(.send(p.link, bytes))
    }

    mutating func logPayloadChange(_ t: inout TargetEntry, path: Int, from before: Int, _ out: inout [EngineAction]) {
        let after = t.paths[path].negotiator.payload
        guard after != before, let l = links[t.paths[path].link] else { return }
        out.append(.log("\(t.address): \(l.name) → \(t.paths[path].mac): payload \(before) → \(after) bytes"
                        + (t.paths[path].negotiator.isSettled ? "" : " (probing)")))
    }

    /// A probe was answered or timed out: feed the negotiator and act on what it concludes.
    mutating func probeFinished(_ t: inout TargetEntry, _ f: FrameInFlight, answered: Bool, now: Instant,
                                _ out: inout [EngineAction]) {
        let path = f.path
        let before = t.paths[path].negotiator.payload
        let name = links[t.paths[path].link]?.name ?? "?"
        let peer = "\(t.address): \(name) → \(t.paths[path].mac)"
        switch f.probeKind {
        case .search:
            t.paths[path].probeTag = nil
            if answered {
                t.paths[path].negotiator.probeSucceeded(sectors: f.range.sectors)
            } else if t.paths[path].negotiator.probeTimedOut() == nil {
                out.append(.log("\(peer): no answer to a \(f.range.sectors * 512)-byte probe; "
                                + "that size is black-holed on this path"))
            }
        case .suspectSize, .alive:
            if f.probeKind == .suspectSize { t.paths[path].probeTag = nil } else { t.paths[path].aliveTag = nil }
            let (retry, verdict) = f.probeKind == .suspectSize
                ? t.paths[path].negotiator.suspicionSizeProbe(answered: answered)
                : t.paths[path].negotiator.suspicionAliveProbe(answered: answered)
            switch verdict {
            case .blackHole:
                out.append(.log("\(peer): \(before)-byte frames vanish while 1024-byte frames cross: "
                                + "falling back to 1024-byte frames and probing"))
            case .stall:
                out.append(.log("\(peer): \(before)-byte frames answered again (a stall, not a black hole)"))
            case .silent:
                out.append(.log("\(peer): no answer to any probe; the path or target is not answering"))
            case .pending:
                if retry {
                    targets[t.address] = t
                    sendSuspicionProbes(t.address, path: path, size: f.probeKind == .suspectSize,
                                        alive: f.probeKind == .alive, now: now, &out)
                    t = targets.removeValue(forKey: t.address)!
                }
            }
        }
        logPayloadChange(&t, path: path, from: before, &out)
    }

    /// Sends the probes that check a suspect path: one at the size in use, one of 1024 bytes.
    mutating func sendSuspicionProbes(_ address: TargetAddress, path: Int, size: Bool, alive: Bool, now: Instant,
                                      _ out: inout [EngineAction]) {
        guard let t = targets[address], let s = t.paths[path].negotiator.suspicion else { return }
        if size && t.paths[path].probeTag == nil {
            sendProbe(address, path: path, sectors: s.sectors, kind: .suspectSize, now: now, &out)
        }
        if alive && t.paths[path].aliveTag == nil {
            sendProbe(address, path: path, sectors: MTUNegotiator.safeSectors, kind: .alive, now: now, &out)
        }
    }

    // MARK: - Time

    /// Expires frames, retransmits, declares targets down, re-probes, and sends the beacon.
    public mutating func tick(now: Instant, _ out: inout [EngineAction]) {
        var expired: [(UInt32, FrameInFlight)] = []
        for (tag, f) in inFlight where f.deadline <= now { expired.append((tag, f)) }
        expired.sort { $0.1.sentAt < $1.1.sentAt }
        var touched: Set<TargetAddress> = []
        for (tag, f) in expired {
            inFlight[tag] = nil
            guard var t = targets.removeValue(forKey: f.target) else { continue }
            touched.insert(f.target)
            let path = f.path
            t.paths[path].outstanding -= 1
            t.paths[path].lost += 1
            t.counters.errtimeout += 1
            if f.isProbe {
                probeFinished(&t, f, answered: false, now: now, &out)
                targets[f.target] = t
                continueProbing(f.target, path: path, now: now, &out)
                continue
            }
            t.paths[path].window.onLoss(sentAt: f.sentAt, now: now)
            retired[tag] = RetiredFrame(target: f.target, path: path, sentAt: f.sentAt)
            retiredOrder.append(tag)
            if retiredOrder.count > Self.retiredLimit, let old = retiredOrder.popFirst() { retired[old] = nil }
            let before = t.paths[path].negotiator.payload
            if f.range.sectors * 512 > 1024 { t.counters.lostJumbo += 1 }
            if t.paths[path].negotiator.frameLost(sectors: f.range.sectors), let l = links[t.paths[path].link] {
                out.append(.log("\(t.address): large frames lost on \(l.name) → \(t.paths[path].mac); "
                                + "checking \(before)-byte and 1024-byte frames"))
                targets[f.target] = t
                sendSuspicionProbes(f.target, path: path, size: true, alive: true, now: now, &out)
                t = targets.removeValue(forKey: f.target)!
            }
            t.paths[path].lossesSinceAnswer += 1
            let healthyOthers = t.paths.indices.contains {
                $0 != path && t.paths[$0].setAsideUntil == nil && (links[t.paths[$0].link]?.usable ?? false)
            }
            if t.paths[path].lossesSinceAnswer > 2 * t.paths[path].window.limit, healthyOthers,
                t.paths[path].setAsideUntil == nil, let l = links[t.paths[path].link]
            {
                // Linux ejectif/taint: a path that keeps losing while others work is set aside.
                t.paths[path].setAsideUntil = now + configuration.setAsideTime
                out.append(.log("\(t.address): path \(l.name) → \(t.paths[path].mac) lost "
                                + "\(t.paths[path].lossesSinceAnswer) frames in a row; set aside"))
            }
            var r = f.range
            r.retries += 1
            if let l = links[t.paths[path].link], r.retries <= 3 || r.retries % 10 == 0 {
                out.append(.log("\(t.address): retransmit \(r.kind) LBA \(r.lba)+\(r.sectors) tag \(Tag(tag)) "
                                + "via \(l.name) (retry \(r.retries))"))
            }
            if r.kind == .identify { t.identifyQueued = true }
            t.queue.prepend(r)
            targets[f.target] = t
        }

        for address in Array(targets.keys) {
            guard var t = targets.removeValue(forKey: address) else { continue }
            // Set-aside paths come back for a re-probe when their time is up.
            for i in t.paths.indices where t.paths[i].setAsideUntil.map({ now >= $0 }) ?? false {
                t.paths[i].setAsideUntil = nil
                t.paths[i].lossesSinceAnswer = 0
            }
            // deadsecs: I/O has waited, and nothing was heard, for that long.
            let dead = configuration.deadsecs(for: t.address)
            if dead > 0, t.state != .down, let since = t.workSince,
                now - max(since, t.lastHeard) >= .seconds(dead)
            {
                goDown(&t, now: now, &out)
            }
            if t.state == .down, now >= t.nextDownQuery {
                t.nextDownQuery = now + configuration.downQueryInterval
                targets[address] = t
                for id in links.keys.sorted() where links[id]!.usable { broadcastQuery(on: id, target: address, &out) }
                continue
            }
            targets[address] = t
            if t.state == .up {
                for i in t.paths.indices { continueProbing(address, path: i, now: now, &out) }
            }
            if touched.contains(address) || !t.queue.isEmpty { pump(address, now: now, &out) }
        }

        if now >= nextBeacon && !links.isEmpty {
            nextBeacon = now + configuration.beaconInterval
            discover(now: now, &out)
        }
    }

    mutating func goDown(_ t: inout TargetEntry, now: Instant, _ out: inout [EngineAction]) {
        t.state = .down
        t.revalidating = true
        t.nextDownQuery = now + configuration.downQueryInterval
        out.append(.log("\(t.address): no response for \(configuration.deadsecs(for: t.address)) s while I/O waited: target down"))
        for (tag, f) in inFlight where f.target == t.address {
            inFlight[tag] = nil
            t.paths[f.path].outstanding -= 1
        }
        t.queue.removeAll()
        t.identifyQueued = false
        for id in t.pending.keys.sorted(by: { $0.rawValue < $1.rawValue }) {
            out.append(.complete(id, .failure(.targetDown(t.address))))
        }
        t.pending.removeAll()
        t.flushWaiting.removeAll()
        t.workSince = nil
        for i in t.paths.indices {
            t.paths[i].window.reset(bufferCount: Int(t.config?.bufferCount ?? 1),
                                    maxOutstanding: configuration.maxOutstanding(for: t.address))
        }
        out.append(.targetsChanged)
    }

    /// When the driver must call `tick` next, at the latest.
    public func nextDeadline(now: Instant) -> Instant {
        var d = nextBeacon == .zero ? now + .seconds(1) : nextBeacon
        for f in inFlight.values where f.deadline < d { d = f.deadline }
        for t in targets.values {
            if t.state == .down { d = min(d, t.nextDownQuery) }
            let dead = configuration.deadsecs(for: t.address)
            if let s = t.workSince, dead > 0 { d = min(d, max(s, t.lastHeard) + .seconds(dead)) }
            for p in t.paths { if let u = p.setAsideUntil { d = min(d, u) } }
        }
        return d
    }

    // MARK: - Control

    /// Forgets `address` (etherd/flush). Its waiting requests fail.
    public mutating func remove(_ address: TargetAddress, _ out: inout [EngineAction]) {
        guard var t = targets[address] else { return }
        goDownQuietly(&t, &out)
        targets[address] = nil
        out.append(.targetsChanged)
    }

    mutating func goDownQuietly(_ t: inout TargetEntry, _ out: inout [EngineAction]) {
        for (tag, f) in inFlight where f.target == t.address { inFlight[tag] = nil }
        for id in t.pending.keys { out.append(.complete(id, .failure(.targetDown(t.address)))) }
        t.pending.removeAll()
    }

    /// Re-queries config, re-IDENTIFYs and re-negotiates payload (etherd/revalidate). A changed
    /// capacity or serial is accepted.
    public mutating func revalidate(_ address: TargetAddress, now: Instant, _ out: inout [EngineAction]) {
        guard var t = targets.removeValue(forKey: address) else { return }
        t.acceptNewIdentity = true
        t.revalidating = true
        if t.state != .down { t.state = .identifying }
        for i in t.paths.indices {
            t.paths[i].negotiator = MTUNegotiator(mtu: links[t.paths[i].link]?.mtu ?? t.paths[i].mtu,
                                                  targetSectors: Int(t.config?.sectorsPerCommand ?? 2),
                                                  cap: configuration.maxPayload(for: address,
                                                                                interface: links[t.paths[i].link]?.name))
        }
        if t.state == .down { t.state = .identifying }
        targets[address] = t
        discover(address, now: now, &out)
    }

    /// A target's capacity in bytes, if identified.
    public func capacity(of address: TargetAddress) -> UInt64? { targets[address]?.identity?.capacity }

    /// Counts a read-modify-write (for `stats rmw_ops`).
    public mutating func noteReadModifyWrite(_ address: TargetAddress) { targets[address]?.counters.rmwOps += 1 }

    /// Every target, for the `sys/` files and `aoefs scan`.
    public func snapshot(now: Instant) -> [TargetSnapshot] {
        targets.values.sorted { $0.address < $1.address }.map { t in
            let paths = t.paths.map { p in
                PathSnapshot(
                    link: p.link, interface: links[p.link]?.name ?? "?", mac: p.mac, payload: p.negotiator.payload,
                    mtu: links[p.link]?.mtu ?? p.mtu, rtt: p.rtt.smoothed, rto: p.rtt.timeout, outstanding: p.outstanding,
                    window: p.window.size, sent: p.sent, lost: p.lost,
                    state: !(links[p.link]?.usable ?? false) ? "link-down"
                        : p.setAsideUntil != nil ? "set-aside" : p.negotiator.isSettled ? "ok" : "probing")
            }
            let usablePaths = paths.filter { $0.state != "link-down" && $0.state != "set-aside" }
            return TargetSnapshot(
                address: t.address, state: t.state, config: t.config, identity: t.identity, paths: paths,
                counters: t.counters, payload: (usablePaths.isEmpty ? paths : usablePaths).map(\.payload).min() ?? 0,
                outstanding: paths.map(\.outstanding).reduce(0, +), window: paths.map(\.window).reduce(0, +))
        }
    }
}

// MARK: - Internal state

enum FrameKind: Sendable, Hashable, CustomStringConvertible {
    case read, write, flushExt, flush28, identify
    var carriesSectors: Bool { self == .read || self == .write }
    var expectsData: Bool { self == .read || self == .identify }
    var isFlush: Bool { self == .flushExt || self == .flush28 }
    var description: String {
        switch self {
        case .read: "read"
        case .write: "write"
        case .flushExt: "FLUSH CACHE EXT"
        case .flush28: "FLUSH CACHE"
        case .identify: "IDENTIFY"
        }
    }
}

/// A run of sectors still to transfer for one request; cut into frames at send time, so a
/// payload change re-splits whatever has not been answered yet.
struct WorkRange: Sendable {
    var request: RequestID
    var kind: FrameKind
    var lba: UInt64
    var sectors: Int
    var bufferOffset: Int
    var retries = 0
    var firstSent: Instant?
    var lastPath: Int?
}

struct RetiredFrame: Sendable {
    var target: TargetAddress
    var path: Int
    var sentAt: Instant
}

/// Why a probe was sent.
enum ProbeKind: Sendable, Hashable {
    /// The payload search (MTUNegotiator.startProbe).
    case search
    /// A suspect path: is the current size still answered?
    case suspectSize
    /// A suspect path: are small frames still answered?
    case alive
}

struct FrameInFlight: Sendable {
    var target: TargetAddress
    var path: Int
    var range: WorkRange
    var sentAt: Instant
    var deadline: Instant
    var isProbe: Bool
    var probeKind: ProbeKind = .search
    var expectedDataBytes: Int { range.kind == .identify ? 512 : range.sectors * 512 }
}

struct PendingRequest: Sendable {
    var request: SectorRequest
    var remaining: Int
    var sequence: UInt64
}

struct PathState: Sendable {
    var link: LinkID
    var mac: MACAddress
    var mtu: Int
    var negotiator: MTUNegotiator
    var rtt: RTTEstimator
    var window: CongestionWindow
    var outstanding = 0
    var sent: UInt64 = 0
    var lost: UInt64 = 0
    var lossesSinceAnswer = 0
    var setAsideUntil: Instant?
    var probeTag: UInt32?
    var aliveTag: UInt32?

    init(link: LinkID, mac: MACAddress, mtu: Int, config: QueryConfig, configuration: EngineConfiguration,
         maxOutstanding: Int, maxPayload: Int?) {
        self.link = link
        self.mac = mac
        self.mtu = mtu
        negotiator = MTUNegotiator(mtu: mtu, targetSectors: Int(config.sectorsPerCommand), cap: maxPayload)
        rtt = RTTEstimator(initial: configuration.initialRTO, minimum: configuration.minimumRTO,
                           maximum: configuration.maximumRTO)
        window = CongestionWindow(bufferCount: Int(config.bufferCount), maxOutstanding: maxOutstanding)
    }
}

struct TargetEntry: Sendable {
    var address: TargetAddress
    var state: TargetState = .identifying
    var config: QueryConfig?
    var identity: ATAIdentity?
    var paths: [PathState] = []
    var roundRobin = 0
    var queue: Deque<WorkRange> = []
    var pending: [RequestID: PendingRequest] = [:]
    var flushWaiting: [RequestID] = []
    var lastHeard: Instant
    var workSince: Instant?
    var nextDownQuery: Instant = .zero
    var identifyQueued = false
    var revalidating = false
    var acceptNewIdentity = false
    var changed = false
    var flushExtUnsupported = false
    var counters = TargetCounters()

    init(address: TargetAddress, now: Instant) {
        self.address = address
        self.lastHeard = now
    }
}

extension Deque {
    mutating func prepend(_ e: Element) { insert(e, at: 0) }
}

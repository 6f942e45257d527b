import AoELinux
import AoEProtocol
import AoETestSupport
import Foundation

/// A deliberately small initiator built only from `AoELinux` and `AoEProtocol`, for the first
/// end-to-end tests: it pipelines ATA requests within a fixed window, matches responses by tag,
/// source MAC and shelf.slot, and resends what times out. The real engine (AoEEngine) replaces it.
final class RawInitiator {
    let link: PacketLink
    var target: MACAddress
    var address: TargetAddress
    private var nextTag: UInt32 = 1

    init(link: PacketLink, target: MACAddress = .broadcast, address: TargetAddress = .broadcast) {
        self.link = link
        self.target = target
        self.address = address
    }

    func makeTag() -> Tag {
        defer { nextTag = (nextTag + 1) & 0x7FFF_FFFF }  // bit 31 stays clear (reserved for tools)
        return Tag(nextTag)
    }

    /// Broadcasts a Query Config and collects the answers for `wait`.
    func discover(wait: Duration = .milliseconds(500)) throws -> [AoEFrame] {
        let tag = makeTag()
        let query = AoEFrame(
            header: AoEHeader(
                destination: .broadcast, source: link.macAddress, shelf: .broadcast, slot: .broadcast,
                command: .queryConfig, tag: tag),
            body: .queryConfig(QueryConfig()))
        try link.send([query.encoded()])
        var answers: [AoEFrame] = []
        // Collect for the whole `wait`: any number of targets may answer.
        try eventually(timeout: wait, every: .zero) {
            for bytes in try link.receive(limit: 16, timeout: .milliseconds(50)) {
                guard let f = try? AoEFrame(decoding: bytes), f.header.isResponse, f.header.tag == tag,
                    f.header.command == .queryConfig
                else { continue }
                answers.append(f)
            }
            return false
        }
        return answers
    }

    /// Sends `requests` with at most `window` in flight and returns the responses in request order.
    /// A request unanswered for `timeout` is sent again with a new tag.
    /// - Returns: the responses and how many retransmissions were needed.
    func run(
        _ requests: [ATAMessage], window: Int, timeout: Duration = .milliseconds(300),
        deadline: Duration = .seconds(120)
    ) throws -> (responses: [ATAMessage], retransmits: Int) {
        var responses = [ATAMessage?](repeating: nil, count: requests.count)
        var inFlight: [Tag: (index: Int, sentAt: ContinuousClock.Instant)] = [:]
        var next = 0
        var done = 0
        var retransmits = 0
        let end = ContinuousClock.now + deadline
        func frame(_ i: Int, _ tag: Tag) -> [UInt8] {
            AoEFrame(
                header: AoEHeader(
                    destination: target, source: link.macAddress, shelf: address.shelf,
                    slot: address.slot, command: .ata, tag: tag),
                body: .ata(requests[i])
            ).encoded()
        }
        while done < requests.count {
            guard ContinuousClock.now < end else {
                throw LabFailure("\(requests.count - done) requests unanswered after \(deadline)")
            }
            var batch: [[UInt8]] = []
            let now = ContinuousClock.now
            for (tag, entry) in inFlight where now - entry.sentAt > timeout {
                inFlight[tag] = nil
                let t = makeTag()
                inFlight[t] = (entry.index, now)
                batch.append(frame(entry.index, t))
                retransmits += 1
            }
            while inFlight.count < window && next < requests.count {
                let t = makeTag()
                inFlight[t] = (next, now)
                batch.append(frame(next, t))
                next += 1
            }
            if !batch.isEmpty { try link.send(batch) }
            try link.receive(limit: 64, timeout: .milliseconds(20)) { bytes in
                guard let f = try? AoEFrame(decoding: bytes), f.header.isResponse, f.header.source == target,
                    f.header.target == address, case .ata(let m) = f.body,
                    let entry = inFlight.removeValue(forKey: f.header.tag)
                else { return }
                responses[entry.index] = m
                done += 1
            }
        }
        return (responses.map { $0! }, retransmits)
    }
}

struct LabFailure: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

import AoECore
import AoELinux
import AoEProtocol
import Foundation

/// Following the host's interfaces, as a kernel driver follows netdevice events (issue 21): an
/// interface deleted and created again under the same name gets a new socket; its MTU, state and
/// MAC reach the core when they change, from rtnetlink, not from failed sends.
extension Engine {
    /// Follows every link's interface: a link that reports its own changes is asked to; for the
    /// others (packet sockets) the host's rtnetlink is watched. Without rtnetlink, receive
    /// errors stand for the link's state.
    func followInterfaces() {
        let handler: @Sendable (LinkEvent?) -> Void = { [weak self] event in self?.interfaceChanged(event) }
        let hostLinks = links.withLock { $0.values.filter { !$0.watchInterface(handler) }.count }
        guard hostLinks > 0 else { return }
        do {
            let m = try LinkMonitor { [weak self] event in self?.interfaceChanged(event) }
            monitor.withLock { $0 = m }
        } catch {
            note("\(error); interface changes are seen only as failed sends and receives")
        }
    }

    /// One rtnetlink event (nil: events were lost, so every link is read again), on the monitor's
    /// thread. Each link's change is applied by its own event loop: a socket opened anew replaces
    /// the old one between two of its passes, never under a wait on it.
    func interfaceChanged(_ event: LinkEvent?) {
        for loop in loops.withLock({ $0 }) {
            guard let id = loop.id, let link = loop.link else { continue }
            if let event, link.name != event.name { continue }
            loop.perform { [self] _, outbox in
                if let event { apply(event, to: id, link, &outbox) } else { resync(id, link, &outbox) }
            }
        }
    }

    /// Tells the core that link `id` changed (`log` first, if any).
    private func linkChanged(
        _ id: LinkID, log: String? = nil, up: Bool? = nil, mtu: Int? = nil,
        mac: MACAddress? = nil, _ outbox: inout Outbox
    ) {
        let now = clock.now()
        withCore(&outbox) { core, out in
            if let log { out.append(.log(log)) }
            core.linkChanged(id, up: up, mtu: mtu, mac: mac, now: now, &out)
        }
    }

    private func apply(_ event: LinkEvent, to id: LinkID, _ link: any Link, _ outbox: inout Outbox) {
        if event.deleted { return linkChanged(id, up: false, &outbox) }
        if event.index != link.interfaceIndex {
            // The same name, a new interface: the old socket is bound to one that is gone.
            guard event.usable else { return linkChanged(id, up: false, &outbox) }
            let old = link.interfaceIndex
            do {
                let mtu = try link.reopen()
                linkChanged(
                    id,
                    log: "\(link.name): interface created again (index \(old) → \(event.index)); listening on it anew",
                    up: true, mtu: mtu, mac: link.macAddress, &outbox)
            } catch {
                linkChanged(id, log: "\(link.name): created again, but cannot be opened: \(error)", up: false, &outbox)
            }
            return
        }
        linkChanged(id, up: event.usable, mtu: event.mtu.map { link.noteMTU($0) }, mac: event.mac, &outbox)
    }

    /// Reads one link's interface again, as if an event had said what it is now.
    private func resync(_ id: LinkID, _ link: any Link, _ outbox: inout Outbox) {
        guard let now = link.currentState() else { return linkChanged(id, up: false, &outbox) }
        apply(now, to: id, link, &outbox)
    }

    /// A send found frames longer than the interface's MTU: it was lowered, and its event may not
    /// have come yet. The MTU is read now, and the refused frames go again at the new size.
    func mtuLowered(_ id: LinkID, _ link: any Link) {
        guard let mtu = try? link.refreshMTU() else { return }
        var outbox = Outbox()
        linkChanged(
            id, log: "\(link.name): frames refused as longer than the MTU (EMSGSIZE); MTU now \(mtu)", mtu: mtu,
            &outbox)
        flush(&outbox)
    }

    /// Marks sends on `id` as failing; true the first time (its one log line).
    func sendsFail(on id: LinkID) -> Bool {
        let first = failingSends.withLock { $0.insert(id).inserted }
        if first { failingCount.add(1, ordering: .relaxed) }
        return first
    }

    /// Sends on `id` work (again).
    func sendsWork(on id: LinkID) {
        if failingSends.withLock({ $0.remove(id) != nil }) { failingCount.subtract(1, ordering: .relaxed) }
    }
}

import AoECore
import AoEProtocol
import CAoELinux
import Foundation
import Synchronization

/// Follows the host's interfaces as a kernel driver follows netdevice notifications: a thread
/// reads rtnetlink's link messages (RTM_NEWLINK, RTM_DELLINK; rtnetlink(7)) and hands each to
/// `handler`. When the kernel dropped messages (the socket overran) `handler` gets nil: every
/// interface must be read again.
public final class LinkMonitor: Sendable {
    private let fd: Int32
    private let stopping = Atomic<Bool>(false)
    private let finished = Locked(false)

    /// Opens the rtnetlink socket and starts the thread.
    public init(handler: @escaping @Sendable (LinkEvent?) -> Void) throws(LinkError) {
        let fd = aoel_link_monitor_open()
        guard fd >= 0 else {
            throw LinkError(code: .other, interface: "rtnetlink", errno: -fd, operation: "watching interface changes")
        }
        self.fd = fd
        let t = Thread { [self] in
            defer {
                finished.withLock { $0 = true }
                finished.broadcast()
            }
            var events = [aoel_link_event](repeating: aoel_link_event(), count: 64)
            while !stopping.load(ordering: .relaxed) {
                // A bounded wait: `stop` is seen within 100 ms.
                let n = events.withUnsafeMutableBufferPointer {
                    aoel_link_monitor_read(fd, $0.baseAddress, Int32($0.count), 100)
                }
                if n == -ENOBUFS { handler(nil); continue }
                guard n > 0 else { continue }
                for e in events.prefix(Int(n)) { handler(Self.event(e)) }
            }
        }
        t.name = "aoefs-links"
        t.stackSize = 1 << 18
        t.start()
    }

    static func event(_ e: aoel_link_event) -> LinkEvent {
        let name = withUnsafeBytes(of: e.name) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
        let mac = e.has_mac != 0 ? withUnsafeBytes(of: e.mac) { MACAddress(bytes: $0) } : nil
        return LinkEvent(
            name: name, index: e.ifindex, deleted: e.deleted != 0, up: e.flags & UInt32(IFF_UP) != 0,
            running: e.flags & UInt32(IFF_RUNNING) != 0, mtu: e.mtu > 0 ? Int(e.mtu) : nil, mac: mac)
    }

    /// Ends the thread (within 100 ms) and closes the socket.
    public func stop() {
        guard !stopping.exchange(true, ordering: .relaxed) else { return }
        finished.wait(timeout: .seconds(1)) { $0 }
        _ = aoel_close(fd)
    }
}

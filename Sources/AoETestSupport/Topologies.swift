import Foundation

/// The shapes of network the tests use, built from `Lab`'s parts.
extension Lab {
    /// An initiator interface joined by one veth pair to a target namespace.
    public struct Direct: Sendable {
        /// The initiator's interface, in this process's namespace.
        public let initiator: String
        /// The target's namespace and interface.
        public let targetNamespace: String
        public let target: String
    }

    /// Initiator ↔ veth ↔ target namespace, both ends at `mtu`.
    /// - Parameter index: distinguishes several pairs in one lab (multipath).
    public func direct(mtu: Int, index: Int = 0, targetNamespace: String? = nil) throws -> Direct {
        let ns = try targetNamespace ?? addNamespace("t")
        let initiator = name("i\(index)")
        let target = name("t\(index)")
        try addVethPair(local: initiator, remote: target, remoteNamespace: ns, mtu: mtu)
        return Direct(initiator: initiator, targetNamespace: ns, target: target)
    }

    /// An initiator and a target joined through a bridge (a switch) in its own namespace.
    public struct Switched: Sendable {
        public let initiator: String
        public let targetNamespace: String
        public let target: String
        public let switchNamespace: String
        public let bridge: String
        /// The bridge ports facing the initiator and the target.
        public let initiatorPort: String
        public let targetPort: String

        /// The two ends, as a `Direct` network names them (the switch between is transparent).
        public var ends: Direct { Direct(initiator: initiator, targetNamespace: targetNamespace, target: target) }
    }

    /// Initiator (MTU `mtu`) ↔ [port, bridge, port] ↔ target (MTU `mtu`), where the switch's
    /// ports pass frames of at most `portMTU` bytes (after the Ethernet header) and silently drop
    /// larger ones, as a real switch with that MTU does.
    ///
    /// The port MTU is enforced by nft netdev ingress rules on the bridge ports rather than by
    /// the veth MTU itself: a veth refuses a frame larger than its peer's MTU *at send time*
    /// with ENOBUFS, which no real switch does, and which vblade treats as fatal (it exits with
    /// "write to network: No buffer space available"). The ports' `ip link` MTU stays `mtu`.
    public func switched(mtu: Int, portMTU: Int) throws -> Switched {
        let tns = try addNamespace("t")
        let sns = try addNamespace("s")
        let initiator = name("i0")
        let initiatorPort = name("s0")
        let target = name("t0")
        let targetPort = name("s1")
        try addVethPair(local: initiator, remote: initiatorPort, remoteNamespace: sns, mtu: mtu)
        try addVethPair(local: target, localNamespace: tns, remote: targetPort, remoteNamespace: sns, mtu: mtu)
        let bridge = name("br")
        try addBridge(bridge, namespace: sns, ports: [initiatorPort, targetPort])
        let net = Switched(
            initiator: initiator, targetNamespace: tns, target: target, switchNamespace: sns,
            bridge: bridge, initiatorPort: initiatorPort, targetPort: targetPort)
        try setPortMTU(net, portMTU)
        return net
    }

    /// Deletes the initiator's interface (a NIC unplugged; its switch port goes with it) and,
    /// after `absence`, creates it again under the same name, plugged into the same port: a USB
    /// NIC replugged, a driver reloaded, a veth a network manager made anew. `mtu` as before.
    public func recreateInitiator(_ net: Switched, mtu: Int, after absence: Duration) throws {
        try deleteLink(net.initiator, namespace: nil)
        Thread.sleep(
            forTimeInterval: Double(absence.components.seconds) + Double(absence.components.attoseconds) / 1e18)
        try addVethPair(local: net.initiator, remote: net.initiatorPort, remoteNamespace: net.switchNamespace, mtu: mtu)
        try ip(net.switchNamespace, ["link", "set", net.initiatorPort, "master", net.bridge])
        try setPortMTU(
            net,
            Int(
                try nft(net.switchNamespace, ["list", "table", "netdev", name("sw")])
                    .components(separatedBy: "meta length > ").dropFirst().first?.prefix { $0.isNumber } ?? "") ?? mtu)
    }

    /// Joins another target to a switched network: a namespace of its own, wired to a new port
    /// of the switch (`index` ≥ 1 names them). Its ports carry no port-MTU rule.
    public func addTarget(to net: Switched, index: Int, mtu: Int) throws -> Direct {
        let ns = try addNamespace("t\(index)")
        let target = name("t\(index)")
        let port = name("s\(index + 1)")
        try addVethPair(local: target, localNamespace: ns, remote: port, remoteNamespace: net.switchNamespace, mtu: mtu)
        try ip(net.switchNamespace, ["link", "set", port, "master", net.bridge])
        return Direct(initiator: net.initiator, targetNamespace: ns, target: target)
    }

    /// Sets the largest frame (bytes after the Ethernet header) the switch's ports pass; larger
    /// frames are dropped silently in both directions. Can be changed while traffic flows.
    public func setPortMTU(_ net: Switched, _ portMTU: Int) throws {
        let table = name("sw")
        let chains = [net.initiatorPort, net.targetPort].enumerated().map { i, port in
            """
              chain port\(i) {
                type filter hook ingress device "\(port)" priority 0; policy accept;
                meta length > \(portMTU) counter drop
              }
            """
        }.joined(separator: "\n")
        // One transaction: delete the old table (if any) and add the new one, so no frame
        // crosses in between with no limit.
        let script = "table netdev \(table)\ndelete table netdev \(table)\ntable netdev \(table) {\n\(chains)\n}\n"
        try nft(net.switchNamespace, ["-f", "-"], input: script)
    }

    /// Frames the switch has dropped for being over its port MTU.
    public func switchDrops(_ net: Switched) throws -> Int {
        let text = try nft(net.switchNamespace, ["list", "table", "netdev", name("sw")])
        return text.components(separatedBy: "counter packets ").dropFirst()
            .compactMap { Int($0.prefix { $0.isNumber }) }.reduce(0, +)
    }
}

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
    }

    /// Initiator (MTU `mtu`) ↔ [port, bridge, port] (MTU `portMTU`) ↔ target (MTU `mtu`).
    /// With `portMTU` below `mtu` the switch black-holes the large frames both ends send.
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
        for port in [initiatorPort, targetPort] { try setMTU(port, namespace: sns, mtu: portMTU) }
        return Switched(initiator: initiator, targetNamespace: tns, target: target, switchNamespace: sns,
                        bridge: bridge, initiatorPort: initiatorPort, targetPort: targetPort)
    }
}

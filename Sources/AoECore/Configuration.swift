import AoEProtocol

/// Tunables, with the defaults DESIGN §4 gives.
public struct EngineConfiguration: Sendable, Hashable {
    /// Seconds without an answer while I/O waits before the target is declared down; 0 = never.
    public var deadsecs: Int = 180
    /// Receive a READ answer's data straight into its request's buffer where the link can
    /// (issue 32); off, every answer is received into the link's buffer and copied.
    public var receivePlacement = true
    /// The most frames in flight per path (Linux `aoe_maxout`).
    public var maxOutstanding: Int = 128
    /// The user's cap on data bytes per frame (`--maxdata`).
    public var maxPayload: Int?
    /// Broadcast Query Config this often (Linux: 60 s).
    public var beaconInterval: Duration = .seconds(60)
    public var initialRTO: Duration = .milliseconds(200)
    /// Below this, scheduling stalls on a busy 2-core host read as loss (see Docs/architecture.md).
    public var minimumRTO: Duration = .milliseconds(2)
    public var maximumRTO: Duration = .seconds(5)
    /// The least time a payload probe may take before it counts as lost (it also waits at
    /// least 8× the path's RTO).
    public var probeTimeout: Duration = .milliseconds(100)
    /// While a target is down, ask for it this often.
    public var downQueryInterval: Duration = .seconds(1)
    /// The most paths (candidates included) one target may have through one interface (Linux
    /// NTARGETS' idea; `maxpaths` in aoefs.conf): a LAN full of impostors cannot make more.
    public var maxPathsPerInterface: Int = 8
    /// How many IDENTIFYs a candidate path gets (each waiting twice as long) before it is dropped.
    public var verifyAttempts: Int = 4
    /// A path proving it reaches the same disk searches its payload once its sample reads
    /// agree (it waits for a write it never gets): `aoefs doctor`, which writes nothing, sets
    /// it, to see what crosses such a path (issue 31). Off for a mount: probes beside the
    /// proof's reads had paths dropped under load.
    public var searchWhileProving = false
    /// How long a link's receive thread polls its socket (and the FUSE session) without sleeping
    /// before it sleeps (`--busy-poll`, `busy_poll` in aoefs.conf; 0: sleep at once). A thread
    /// that slept is woken by an interrupt from another CPU, which at QD 1 costs more than the
    /// request itself; polling costs at most this much CPU per wait.
    public var busyPoll: Duration = .microseconds(50)
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

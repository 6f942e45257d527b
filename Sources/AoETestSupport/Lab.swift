import AoELinux
import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A private network for one test: Linux network namespaces, veth pairs, bridges, vblade
/// targets and nft drop rules, all named `aoet…` and all removed by `teardown()`.
///
/// Teardown runs on success (`defer { lab.teardown() }`), on test failure (the same defer), on
/// Ctrl-C and SIGTERM (a signal handler tears down every live lab), and after a crash or
/// SIGKILL (the next lab in any later test run sweeps resources whose owner process is gone).
/// Names carry a per-process random part and a per-lab counter, so tests run in parallel
/// without clashing.
///
/// The initiator side of every topology stays in the test process's own namespace, so an
/// AF_PACKET socket opened by the test sees it; targets and switches live in namespaces.
public final class Lab: Sendable {

    /// `aoet` + 4 random base-36 characters (per process) + 2 (per lab): 10 of the 15 characters
    /// an interface name may have, leaving 5 for a role such as `i0` or `br`.
    public let id: String
    /// Scratch directory for backing files and logs: `/tmp/aoet-<id>` (or `$AOEFS_LAB_DIR`).
    public let directory: URL
    /// What the lab made, for teardown and for the sweep after a killed run.
    public let ledger: ResourceLedger
    private let state = Locked(State())

    struct State {
        var vblades: [Vblade] = []
        var tornDown = false
    }

    /// Why lab tests cannot run here, or nil when they can: they need root, `ip`, `nft` and `vblade`.
    public static var unavailableReason: String? {
        if geteuid() != 0 { return "needs root (network namespaces, veth pairs, raw sockets)" }
        for tool in ["ip", "nft", "vblade"] where !Command.exists(tool) {
            return "needs `\(tool)` (apt-get install iproute2 nftables vblade, or run `make test` as root)"
        }
        return nil
    }

    /// Creates an empty lab and registers it for teardown on signals.
    /// - Throws: `LabError` with the reason when lab tests cannot run here (not root, tools missing).
    public init() throws {
        if let reason = Lab.unavailableReason { throw LabError("lab unavailable: \(reason)") }
        id = LabRegistry.shared.nextID()
        let base = ProcessInfo.processInfo.environment["AOEFS_LAB_DIR"] ?? NSTemporaryDirectory()
        directory = URL(fileURLWithPath: base).appendingPathComponent("aoet-\(id)")
        ledger = try ResourceLedger(directory: directory.path)
        LabRegistry.shared.register(self)
    }

    deinit { teardown() }

    /// `id` followed by `role`, e.g. `aoetk3z901i0`.
    public func name(_ role: String) -> String {
        precondition(id.count + role.count <= 15, "interface names have at most 15 characters")
        return id + role
    }

    // MARK: - Building the network

    /// Creates network namespace `name(role)` with its loopback up.
    @discardableResult
    public func addNamespace(_ role: String) throws -> String {
        let ns = name(role)
        ledger.record(.namespace(ns))
        try Command.run(["ip", "netns", "add", ns])
        try Command.run(["ip", "-n", ns, "link", "set", "lo", "up"])
        return ns
    }

    /// Creates a veth pair `local`–`remote`, moves each end into its namespace (nil: this
    /// process's namespace), sets both MTUs and brings both up.
    public func addVethPair(
        local: String, localNamespace: String? = nil, remote: String, remoteNamespace: String?,
        mtu: Int
    ) throws {
        ledger.record(.link(local))
        try Command.run(["ip", "link", "add", local, "type", "veth", "peer", "name", remote])
        if let ns = remoteNamespace { try Command.run(["ip", "link", "set", remote, "netns", ns]) }
        if let ns = localNamespace { try Command.run(["ip", "link", "set", local, "netns", ns]) }
        for (dev, ns) in [(local, localNamespace), (remote, remoteNamespace)] {
            try ip(ns, ["link", "set", dev, "mtu", String(mtu), "up"])
        }
    }

    /// Creates bridge `bridge` in `namespace` (a switch), enslaves `ports`, and brings it up.
    /// The bridge forwards at once (no STP, no learning delay).
    public func addBridge(_ bridge: String, namespace: String?, ports: [String]) throws {
        if namespace == nil {
            ledger.record(.link(bridge))
        }
        try ip(namespace, ["link", "add", bridge, "type", "bridge", "forward_delay", "0", "stp_state", "0"])
        for port in ports { try ip(namespace, ["link", "set", port, "master", bridge]) }
        try ip(namespace, ["link", "set", bridge, "up"])
    }

    /// Sets the MTU of `interface` in `namespace`. On a bridge port this makes the "switch"
    /// drop frames larger than `mtu` silently, as a real switch with a small MTU does.
    public func setMTU(_ interface: String, namespace: String?, mtu: Int) throws {
        try ip(namespace, ["link", "set", interface, "mtu", String(mtu)])
    }

    /// Deletes `interface` (a link failure). A veth's peer goes with it.
    public func deleteLink(_ interface: String, namespace: String?) throws {
        try ip(namespace, ["link", "del", interface])
    }

    /// Sets `interface` up or down.
    public func setLink(_ interface: String, namespace: String?, up: Bool) throws {
        try ip(namespace, ["link", "set", interface, up ? "up" : "down"])
    }

    /// The MTU of `interface` as the kernel reports it.
    public func mtu(of interface: String, namespace: String?) throws -> Int {
        let text = try ip(namespace, ["-o", "link", "show", interface])
        guard let r = text.range(of: " mtu ") else { throw LabError("no MTU in `ip link` output: \(text)") }
        return Int(text[r.upperBound...].prefix { $0.isNumber }) ?? 0
    }

    @discardableResult
    func ip(_ namespace: String?, _ args: [String]) throws -> String {
        try Command.run(["ip"] + (namespace.map { ["-n", $0] } ?? []) + args)
    }

    // MARK: - Backing files and targets

    /// Creates a sparse file of `size` bytes in the lab directory.
    public func sparseFile(_ fileName: String, size: UInt64) throws -> URL {
        let url = directory.appendingPathComponent(fileName)
        _ = FileManager.default.createFile(atPath: url.path, contents: nil)
        let h = try FileHandle(forWritingTo: url)
        try h.truncate(atOffset: size)
        try h.close()
        return url
    }

    /// Starts `vblade [flags] shelf slot interface file` in `namespace` and waits until it serves.
    public func startVblade(
        shelf: UInt16, slot: UInt8, interface: String, namespace: String?, file: URL,
        flags: [String] = [], program: TargetProgram = .fromEnvironment
    ) throws -> Vblade {
        let v = Vblade(
            lab: self, namespace: namespace, program: program.command,
            arguments: flags + [String(shelf), String(slot), interface, file.path])
        state.withLock { $0.vblades.append(v) }
        try v.start()
        return v
    }

    /// The program that serves lab targets. Both take vblade's flags and arguments.
    public enum TargetProgram: Sendable {
        /// Debian's vblade.
        case vblade
        /// aoefs's own target, `aoefs serve`, from the build directory.
        case aoefsServe

        /// `AOEFS_LAB_TARGET=serve` runs the lab suites against `aoefs serve`; otherwise vblade.
        public static var fromEnvironment: TargetProgram {
            ProcessInfo.processInfo.environment["AOEFS_LAB_TARGET"] == "serve" ? .aoefsServe : .vblade
        }

        var command: [String] {
            switch self {
            case .vblade: return ["vblade"]
            case .aoefsServe:
                // The test bundle and aoe-lab live in the same build directory as aoefs.
                let dir = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
                return [dir.appendingPathComponent("aoefs").path, "serve"]
            }
        }
    }

    // MARK: - Faults

    /// An nft netdev ingress rule that drops AoE frames at random.
    public struct DropRule: Sendable {
        public let namespace: String?
        public let table: String
    }

    /// Drops `percent` % of AoE frames arriving on `interface` (nft netdev ingress, numgen random).
    /// - Parameter ataToSlot: only ATA commands (AoE command 0) to this slot (minor), e.g. a
    ///   target that answers Query Config but never IDENTIFY. (Offsets from the AoE header, AoEr11
    ///   §2: minor at byte 4, command at byte 5.)
    public func dropFrames(on interface: String, namespace: String?, percent: Int, ataToSlot: UInt8? = nil) throws
        -> DropRule
    {
        precondition((0...100).contains(percent))
        let table = "\(id)\(interface.suffix(4))" + (ataToSlot.map { "s\($0)" } ?? "")
        let match = "ether type 0x88a2" + (ataToSlot.map { " @nh,32,8 \($0) @nh,40,8 0" } ?? "")
        ledger.record(.nftTable(namespace: namespace, table: table))
        let script = """
            table netdev \(table) {
              chain ingress {
                type filter hook ingress device "\(interface)" priority 0; policy accept;
                \(percent >= 100 ? "\(match) counter drop" : "\(match) numgen random mod 100 < \(percent) counter drop")
              }
            }
            """
        try nft(namespace, ["-f", "-"], input: script)
        return DropRule(namespace: namespace, table: table)
    }

    /// Removes a drop rule.
    public func remove(_ rule: DropRule) throws {
        try nft(rule.namespace, ["delete", "table", "netdev", rule.table])
        ledger.forget(.nftTable(namespace: rule.namespace, table: rule.table))
    }

    /// How many frames `rule` has dropped so far.
    public func droppedCount(_ rule: DropRule) throws -> Int {
        let text = try nft(rule.namespace, ["list", "table", "netdev", rule.table])
        guard let r = text.range(of: "counter packets ") else { return 0 }
        return Int(text[r.upperBound...].prefix { $0.isNumber }) ?? 0
    }

    @discardableResult
    func nft(_ namespace: String?, _ args: [String], input: String? = nil) throws -> String {
        try Command.run((namespace.map { ["ip", "netns", "exec", $0] } ?? []) + ["nft"] + args, input: input)
    }

    // MARK: - Teardown

    /// Removes what labs of dead processes left behind (a run killed with SIGKILL): their vblade
    /// processes (checked by name), nft tables, links and namespaces. Runs once per process on
    /// the first `Lab()`; tests call it again after killing a lab owner on purpose.
    public static func sweepStale() { LabRegistry.shared.sweepStaleLabs() }

    /// Stops every vblade, deletes every rule, link and namespace, and removes the directory.
    /// Safe to call more than once and from a signal handler's queue.
    public func teardown() {
        let vblades: [Vblade]? = state.withLock { s in
            if s.tornDown { return nil }
            s.tornDown = true
            return s.vblades
        }
        guard let vblades else { return }
        for v in vblades { v.stop() }
        ledger.releaseAll(keepDirectory: ProcessInfo.processInfo.environment["AOEFS_LAB_KEEP"] != nil)
        LabRegistry.shared.unregister(self)
    }
}

/// A failure in building or driving the lab.
public struct LabError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

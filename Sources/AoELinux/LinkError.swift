#if canImport(Glibc)
    import Glibc
#endif

/// An operational failure of a network link, with the interface and the errno behind it.
///
/// The description is one line a user can act on: "eth7: no such network interface".
public struct LinkError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What went wrong, in a form code can switch on.
    public struct Code: Hashable, Sendable {
        fileprivate let raw: Int
        public static let noSuchInterface = Code(raw: 1)
        public static let notPermitted = Code(raw: 2)
        public static let interfaceDown = Code(raw: 3)
        public static let notEthernet = Code(raw: 4)
        public static let sendFailed = Code(raw: 5)
        public static let receiveFailed = Code(raw: 6)
        public static let other = Code(raw: 7)
    }

    public var code: Code
    /// The interface name.
    public var interface: String
    /// The errno from the failing call, when there was one.
    public var errno: Int32?
    /// What was being done, e.g. "opening a raw socket".
    public var operation: String

    public init(code: Code, interface: String, errno: Int32?, operation: String) {
        self.code = code
        self.interface = interface
        self.errno = errno
        self.operation = operation
    }

    public var description: String {
        let why: String
        switch code {
        case .noSuchInterface: why = "no such network interface"
        case .notPermitted: why = "\(operation) needs root or CAP_NET_RAW (operation not permitted)"
        case .interfaceDown: why = "interface is down (bring it up with: ip link set \(interface) up)"
        case .notEthernet: why = "not an Ethernet interface; AoE runs on Ethernet only"
        default: why = "\(operation) failed"
        }
        let detail = errno.map { " [errno \($0): \(String(cString: strerror($0)))]" } ?? ""
        return "\(interface): \(why)" + (code == .noSuchInterface || code == .interfaceDown ? "" : detail)
    }
}

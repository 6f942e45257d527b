import AoEProtocol

/// Identifies a local interface inside the engine.
public struct LinkID: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var rawValue: Int
    public init(_ v: Int) { rawValue = v }
    public static func < (a: LinkID, b: LinkID) -> Bool { a.rawValue < b.rawValue }
    public var description: String { "link\(rawValue)" }
}

/// What the driver must do after the core changed state.
public enum EngineAction: Sendable {
    /// Send this Ethernet frame on this link.
    case send(LinkID, OutgoingFrame)
    /// Complete this request.
    case complete(RequestID, Result<Void, AoEIOError>)
    /// A diagnostic line for `etherd/err` (retransmits, errors, up/down, payload changes).
    case log(String)
    /// The target table changed (a target appeared, came up or went down).
    case targetsChanged
    /// A request of `target` ended after `nanoseconds` (for latency histograms; once per
    /// request, never per frame).
    case timing(TargetAddress, IOKind, nanoseconds: UInt64, ok: Bool)
}

import AoEProtocol

/// A set of targets as Solaris `aoectl` names them: `SHELF.SLOT`, `eSHELF.SLOT`, `SHELF` (a
/// whole shelf) or `.SLOT` (that slot on every shelf); an empty field is a wildcard (`10.`, `.`).
public struct TargetPattern: Hashable, Sendable, CustomStringConvertible {
    /// nil: any shelf.
    public var shelf: UInt16?
    /// nil: any slot.
    public var slot: UInt8?

    public init(shelf: UInt16?, slot: UInt8?) {
        self.shelf = shelf
        self.slot = slot
    }

    /// Parses a pattern; nil when it is not one (a field out of range, a broadcast address, junk).
    public init?(parsing text: some StringProtocol) {
        var s = Substring(text)
        if s.first == "e" { s = s.dropFirst() }
        let parts = s.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        func field<T: FixedWidthInteger>(_ f: Substring, below limit: T) -> T?? {
            if f.isEmpty { return .some(nil) }  // a wildcard
            guard f.allSatisfy(\.isNumber), let v = T(f), v < limit else { return nil }
            return .some(v)
        }
        guard !s.isEmpty, let shelf = field(parts[0], below: UInt16.max) else { return nil }
        var slot: UInt8?? = .some(nil)
        if parts.count == 2 { slot = field(parts[1], below: UInt8.max) }
        guard let slot else { return nil }
        self.init(shelf: shelf, slot: slot)
    }

    public func matches(_ t: TargetAddress) -> Bool {
        (shelf.map { $0 == t.shelf.rawValue } ?? true) && (slot.map { $0 == t.slot.rawValue } ?? true)
    }

    /// The address a targeted Query Config goes to: the broadcast shelf or slot where the
    /// pattern has a wildcard (AoEr11 §3.2).
    public var queryAddress: TargetAddress {
        TargetAddress(shelf: shelf.map { Shelf($0) } ?? .broadcast, slot: slot.map { Slot($0) } ?? .broadcast)
    }

    /// `10.3`, `10.`, `.3` or `.`.
    public var description: String { "\(shelf.map(String.init) ?? "").\(slot.map(String.init) ?? "")" }
}

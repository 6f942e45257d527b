// The Reserve/Release argument (AoEr11 §3.4; vblade aoe.c aoeresrel; tcpdump print-aoe.c):
//
//   24 rcmd  25 nmacs  26 mac[6] × nmacs

/// RCmd: read, set, or force-set the reserve list.
public struct ReserveCommand: RawRepresentable, Hashable, Sendable {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    public static let read = ReserveCommand(rawValue: 0)
    public static let set = ReserveCommand(rawValue: 1)
    public static let forceSet = ReserveCommand(rawValue: 2)
}

/// A Reserve/Release request or response. An empty list releases the target.
public struct ReserveRelease: Hashable, Sendable {
    public static let argumentSize = 2

    public var command: ReserveCommand
    /// At most 255 (the count is one byte).
    public var macs: [MACAddress]

    public init(command: ReserveCommand, macs: [MACAddress] = []) {
        // Never reached from input (issue 30's audit): Only our own code builds one (the target answers a list it keeps within 255).
        precondition(macs.count <= 255, "at most 255 MAC addresses")
        self.command = command
        self.macs = macs
    }

    var encodedSize: Int { Self.argumentSize + 6 * macs.count }

    func encode(into b: UnsafeMutableRawBufferPointer, at o: Int) {
        b.put8(o, command.rawValue)
        b.put8(o + 1, UInt8(macs.count))
        for (i, m) in macs.enumerated() { b.putMAC(o + 2 + 6 * i, m) }
    }

    init(decoding b: UnsafeRawBufferPointer, at o: Int) throws(AoEDecodeError) {
        let available = b.count - o
        guard available >= Self.argumentSize else {
            throw .truncatedArgument(command: .reserveRelease, length: available, minimum: Self.argumentSize)
        }
        let count = Int(b.u8(o + 1))
        guard count * 6 <= available - Self.argumentSize else {
            throw .lengthMismatch(field: "MAC count", declared: count * 6, available: available - Self.argumentSize)
        }
        self.init(
            command: ReserveCommand(rawValue: b.u8(o)),
            macs: (0..<count).map { b.mac(o + 2 + 6 * $0) })
    }
}

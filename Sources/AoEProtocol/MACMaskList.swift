// The MAC Mask List argument (AoEr11 §3.3; vblade aoe.c aoemask; tcpdump print-aoe.c):
//
//   24 reserved  25 mcmd  26 merror  27 dir count  28 directives: { reserved, dcmd, mac[6] }…

/// MCmd: read or edit the list.
public struct MaskCommand: RawRepresentable, Hashable, Sendable {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    public static let read = MaskCommand(rawValue: 0)
    public static let edit = MaskCommand(rawValue: 1)
}

/// MError, in a response to an edit.
public struct MaskError: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    public static let none = MaskError(rawValue: 0)
    public static let unspecified = MaskError(rawValue: 1)
    public static let badDirective = MaskError(rawValue: 2)
    public static let listFull = MaskError(rawValue: 3)
    public var description: String {
        switch rawValue {
        case 0: "no error"
        case 1: "unspecified error"
        case 2: "bad DCmd directive"
        case 3: "mask list full"
        default: "merror \(rawValue)"
        }
    }
}

/// DCmd: what a directive does.
public struct DirectiveCommand: RawRepresentable, Hashable, Sendable {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    public static let none = DirectiveCommand(rawValue: 0)
    public static let add = DirectiveCommand(rawValue: 1)
    public static let delete = DirectiveCommand(rawValue: 2)
}

/// One directive: add or delete a MAC address.
public struct MACMaskDirective: Hashable, Sendable {
    public var command: DirectiveCommand
    public var mac: MACAddress
    public init(command: DirectiveCommand, mac: MACAddress) {
        self.command = command
        self.mac = mac
    }
}

/// A MAC Mask List request or response. In a response the directives are the list itself.
public struct MACMaskList: Hashable, Sendable {
    public static let argumentSize = 4
    public static let directiveSize = 8

    public var command: MaskCommand
    public var error: MaskError
    /// At most 255 (the count is one byte).
    public var directives: [MACMaskDirective]

    public init(command: MaskCommand, error: MaskError = .none, directives: [MACMaskDirective] = []) {
        // Never reached from input (issue 30's audit): Only our own code builds one; decoding reads at most 255.
        precondition(directives.count <= 255, "at most 255 directives")
        self.command = command
        self.error = error
        self.directives = directives
    }

    var encodedSize: Int { Self.argumentSize + Self.directiveSize * directives.count }

    func encode(into b: UnsafeMutableRawBufferPointer, at o: Int) {
        b.put8(o, 0)  // reserved
        b.put8(o + 1, command.rawValue)
        b.put8(o + 2, error.rawValue)
        b.put8(o + 3, UInt8(directives.count))
        for (i, d) in directives.enumerated() {
            let p = o + Self.argumentSize + i * Self.directiveSize
            b.put8(p, 0)
            b.put8(p + 1, d.command.rawValue)
            b.putMAC(p + 2, d.mac)
        }
    }

    init(decoding b: UnsafeRawBufferPointer, at o: Int) throws(AoEDecodeError) {
        let available = b.count - o
        guard available >= Self.argumentSize else {
            throw .truncatedArgument(command: .macMaskList, length: available, minimum: Self.argumentSize)
        }
        let count = Int(b.u8(o + 3))
        guard count * Self.directiveSize <= available - Self.argumentSize else {
            throw .lengthMismatch(
                field: "directive count", declared: count * Self.directiveSize,
                available: available - Self.argumentSize)
        }
        var directives: [MACMaskDirective] = []
        directives.reserveCapacity(count)
        for i in 0..<count {
            let p = o + Self.argumentSize + i * Self.directiveSize
            directives.append(MACMaskDirective(command: DirectiveCommand(rawValue: b.u8(p + 1)), mac: b.mac(p + 2)))
        }
        self.init(
            command: MaskCommand(rawValue: b.u8(o + 1)), error: MaskError(rawValue: b.u8(o + 2)),
            directives: directives)
    }
}

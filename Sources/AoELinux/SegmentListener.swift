import AoEProtocol
import CAoELinux

#if canImport(Glibc)
    import Glibc
#endif

/// Listens on an interface without sending (`aoefs doctor`): who speaks AoE there, and whether
/// IP shares the segment.
public enum SegmentListener {
    /// An AoE speaker: a target (it sent a response) or an initiator, and the shelf.slot it
    /// spoke of.
    public struct Speaker: Sendable, Hashable {
        public var mac: MACAddress
        public var target: TargetAddress
        public var isTarget: Bool
    }

    /// Listens on `interface` for `duration`; throws the errno text when it cannot.
    public static func listen(on interface: String, for duration: Duration) throws -> (
        speakers: [Speaker], ipFrames: Int
    ) {
        var heard = [aoel_heard](repeating: aoel_heard(), count: 64)
        var ip: Int32 = 0
        let ms = Int32(
            clamping: duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000)
        let n = heard.withUnsafeMutableBufferPointer {
            aoel_listen(interface, ms, $0.baseAddress, Int32($0.count), &ip)
        }
        if n < 0 {
            // As PacketLink names them: a missing interface, no permission, or something else.
            let code: LinkError.Code =
                -n == ENODEV ? .noSuchInterface : (-n == EPERM || -n == EACCES) ? .notPermitted : .other
            throw LinkError(code: code, interface: interface, errno: -n, operation: "listening")
        }
        let speakers = heard.prefix(Int(n)).map { h in
            let m = withUnsafeBytes(of: h.mac) { Array($0) }
            return Speaker(
                mac: MACAddress(m[0], m[1], m[2], m[3], m[4], m[5]),
                target: TargetAddress(h.shelf, h.slot),
                isTarget: h.response != 0)
        }
        return (speakers, Int(ip))
    }
}

import Foundation

/// Writes frames to a classic libpcap file (LINKTYPE_ETHERNET), for tcpdump, Wireshark and
/// for capturing what a test saw.
public struct PcapWriter {
    private var data = Data()

    public init() {
        append32(0xA1B2_C3D4)  // magic: microsecond timestamps, our byte order
        append16(2)  // version 2.4
        append16(4)
        append32(0)  // thiszone
        append32(0)  // sigfigs
        append32(65535)  // snaplen
        append32(1)  // LINKTYPE_ETHERNET
    }

    /// Appends one frame with a timestamp of `index` microseconds.
    public mutating func append(_ frame: [UInt8], index: Int) {
        append32(UInt32(index / 1_000_000))
        append32(UInt32(index % 1_000_000))
        append32(UInt32(frame.count))  // captured length
        append32(UInt32(frame.count))  // original length
        data.append(contentsOf: frame)
    }

    /// Writes the file.
    public func write(to url: URL) throws { try data.write(to: url) }

    private mutating func append32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { data.append(contentsOf: $0) } }
    private mutating func append16(_ v: UInt16) { withUnsafeBytes(of: v.littleEndian) { data.append(contentsOf: $0) } }
}

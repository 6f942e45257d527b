import CAoELinux
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// `O_DIRECT` as this architecture spells it (glibc hides it without _GNU_SOURCE).
public let openDirectFlag = UInt32(bitPattern: aoel_o_direct())

/// Sets the readahead of the filesystem mounted at `mountpoint` (its backing device info,
/// /sys/class/bdi/MAJOR:MINOR/read_ahead_kb), as a block device's queue limits set its own.
/// Root only. Returns nil, or why it could not.
public func setReadahead(of mountpoint: String, kilobytes: Int) -> String? {
    var st = stat()
    guard stat(mountpoint, &st) == 0 else { return "stat \(mountpoint): \(String(cString: strerror(errno)))" }
    // glibc's gnu_dev_major/minor (macros Swift cannot import): the 64-bit dev_t split.
    let dev = UInt64(st.st_dev)
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & ~0xfff)
    let minor = (dev & 0xff) | ((dev >> 12) & ~0xff)
    let path = "/sys/class/bdi/\(major):\(minor)/read_ahead_kb"
    do {
        try "\(kilobytes)\n".write(toFile: path, atomically: false, encoding: .utf8)
        return nil
    } catch {
        return "\(path): \(error.localizedDescription)"
    }
}

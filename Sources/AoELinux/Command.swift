import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Runs system commands: the lab's (ip, nft, tcpdump) and `aoefs demo`'s, which makes its
/// namespace and veth pair with `ip`. The initiator, the mount and `aoefs serve` never shell out.
public enum Command {
    /// A command that exited non-zero.
    public struct Failure: Error, CustomStringConvertible {
        public var argv: [String]
        public var status: Int32
        public var output: String
        public var description: String {
            "`\(argv.joined(separator: " "))` exited \(status): \(output.trimmingCharacters(in: .whitespacesAndNewlines))"
        }
    }

    /// Runs `argv` (looked up in PATH), waits, and returns its standard output.
    /// - Parameter input: written to the command's standard input.
    /// - Throws: `Failure` with stdout and stderr when it exits non-zero.
    @discardableResult
    public static func run(_ argv: [String], input: String? = nil) throws -> String {
        // stdout through a pipe; stderr into an unlinked temporary file (reading two pipes would
        // need a second thread); stdin from a temporary file holding `input`.
        guard let out = closeOnExecPipe() else { throw ProcessError("pipe: \(String(cString: strerror(errno)))") }
        let errFD = try temporaryFD(contents: nil)
        let inFD = try input.map { try temporaryFD(contents: $0) }
        defer {
            close(errFD)
            if let inFD { close(inFD) }
        }
        let child: ChildProcess
        do {
            child = try ChildProcess(argv, stdin: inFD, stdout: out[1], stderr: errFD)
        } catch {
            close(out[0])
            close(out[1])
            throw error
        }
        close(out[1])
        var stdoutBytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while case let n = retryingEINTR({ read(out[0], &buffer, buffer.count) }), n > 0 {
            stdoutBytes += buffer[0..<n]
        }
        close(out[0])
        child.wait()
        let stdoutText = String(decoding: stdoutBytes, as: UTF8.self)
        guard child.exitCode == 0 else {
            lseek(errFD, 0, SEEK_SET)
            var errBytes: [UInt8] = []
            while case let n = retryingEINTR({ read(errFD, &buffer, buffer.count) }), n > 0 {
                errBytes += buffer[0..<n]
            }
            throw Failure(
                argv: argv, status: child.exitCode ?? -1,
                output: stdoutText + String(decoding: errBytes, as: UTF8.self))
        }
        return stdoutText
    }

    /// An unlinked temporary file, opened read-write, holding `contents`, positioned at 0.
    static func temporaryFD(contents: String?) throws -> Int32 {
        var template = Array((NSTemporaryDirectory() + "/aoet-cmd-XXXXXX").utf8CString)
        let fd = mkstemp(&template)
        guard fd >= 0 else { throw ProcessError("mkstemp: \(String(cString: strerror(errno)))") }
        unlink(template)
        if let contents {
            _ = contents.utf8CString.withUnsafeBufferPointer { write(fd, $0.baseAddress, $0.count - 1) }
            lseek(fd, 0, SEEK_SET)
        }
        return fd
    }

    /// True when `name` is an executable in PATH (or the sbin directories root has).
    public static func exists(_ name: String) -> Bool {
        let path = (ProcessInfo.processInfo.environment["PATH"] ?? "") + ":/usr/sbin:/sbin:/usr/bin:/bin"
        return path.split(separator: ":").contains { FileManager.default.isExecutableFile(atPath: "\($0)/\(name)") }
    }
}

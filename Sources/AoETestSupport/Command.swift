import Foundation

/// Runs system commands for the lab (ip, nft, vblade). Test support only: the product's own
/// code never shells out.
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
    /// - Throws: `Failure` with the combined output when it exits non-zero.
    @discardableResult
    public static func run(_ argv: [String], input: String? = nil) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = argv
        let out = Pipe()
        // stderr goes to a file, not a second pipe: reading two pipes would need a second
        // thread, and these helpers run on Swift's small cooperative pool.
        let errURL = FileManager.default.temporaryDirectory.appendingPathComponent("aoet-cmd-\(UUID().uuidString)")
        _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: errURL) }
        let errHandle = try FileHandle(forWritingTo: errURL)
        defer { try? errHandle.close() }
        p.standardOutput = out
        p.standardError = errHandle
        let inPipe = Pipe()
        p.standardInput = input == nil ? FileHandle.nullDevice : inPipe
        try p.run()
        if let input {
            inPipe.fileHandleForWriting.write(Data(input.utf8))
            try? inPipe.fileHandleForWriting.close()
        }
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        let stderrText = (try? String(contentsOf: errURL, encoding: .utf8)) ?? ""
        let stdoutText = String(decoding: outData, as: UTF8.self)
        guard p.terminationStatus == 0 else {
            throw Failure(argv: argv, status: p.terminationStatus, output: stdoutText + stderrText)
        }
        return stdoutText
    }

    /// True when `name` is an executable in PATH (or the sbin directories root has).
    public static func exists(_ name: String) -> Bool {
        let path = (ProcessInfo.processInfo.environment["PATH"] ?? "") + ":/usr/sbin:/sbin:/usr/bin:/bin"
        return path.split(separator: ":").contains { FileManager.default.isExecutableFile(atPath: "\($0)/\(name)") }
    }
}


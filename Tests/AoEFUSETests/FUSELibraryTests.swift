import AoEFUSE
import Foundation
import Testing

@Suite("libfuse3 binding")
struct FUSELibraryTests {
    @Test func linksAgainstLibfuse3() {
        let version = FUSELibrary.version
        #expect(version.hasPrefix("3."), "libfuse reports \(version)")
        // FUSE_USE_VERSION must be at least 3.12 (pitfall 1 in reference/swift-fuse-and-packet-notes.md).
        #expect(FUSELibrary.apiVersion >= 312)
    }

    @Test func aoefsBinaryReportsItsVersion() throws {
        let exe = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
            .appendingPathComponent("aoefs")
        let p = Process()
        p.executableURL = exe
        p.arguments = ["--version"]
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(p.terminationStatus == 0)
        #expect(text.contains("aoefs") && text.contains("libfuse \(FUSELibrary.version)"))
    }
}

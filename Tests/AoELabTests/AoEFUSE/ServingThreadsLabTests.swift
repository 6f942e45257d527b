import AoETestSupport
import Foundation
import Testing

/// `--threads 2` (issue 32): more than one thread serves the kernel's requests — over io_uring
/// one ring each (make test's io_uring pass), over /dev/fuse parallel readers (the main pass).
/// Callers on both CPUs at once, direct and buffered, and a filesystem on the image: every byte
/// as written, the mount ends cleanly.
@Suite("Serving threads", .serialized, .enabled(if: LabGate.labShouldRun, Comment(rawValue: LabGate.labSkipReason)))
struct ServingThreadsLabTests {
    @Test(
        "two serving threads: writers and readers pinned to each CPU agree byte for byte (sha256); ext4 round trip; clean unmount"
    )
    func twoThreads() throws {
        let m = try MountLab(mountArgs: ["--threads", "2"])
        defer { m.tearDown() }
        let log = m.log(of: m.lab)
        #expect(log.contains("serves \(m.mnt) on 2 threads"), "\(log)")
        let cpus = max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
        // Four 64 MiB regions, each written by a caller pinned to a CPU in turn (over the ring
        // the kernel hands a caller's requests to its CPU's queue, so both rings serve).
        var want: [Substring] = []
        for i in 0..<4 {
            let src = m.lab.directory.appendingPathComponent("src\(i)").path
            try must("head -c \(64 << 20) /dev/urandom > \(src)")
            want.append(try must("sha256sum < \(src)").prefix(64))
        }
        let dir = m.lab.directory.path
        func pinned(_ i: Int, _ cmd: String) -> String { "taskset -c \(i % cpus) \(cmd)" }
        try must(
            (0..<4).map { i in
                pinned(
                    i,
                    "dd if=\(dir)/src\(i) of=\(m.image) bs=1M seek=\(i * 64) conv=notrunc,nocreat oflag=direct status=none"
                ) + " &"
            }.joined(separator: " ") + " wait")
        for flag in ["iflag=direct", ""] {
            try must(
                (0..<4).map { i in
                    pinned(i, "dd if=\(m.image) bs=1M skip=\(i * 64) count=64 \(flag) status=none")
                        + " | sha256sum > \(dir)/got\(i) &"
                }.joined(separator: " ") + " wait")
            for i in 0..<4 {
                #expect(
                    try String(contentsOfFile: "\(dir)/got\(i)", encoding: .utf8).prefix(64) == want[i],
                    "region \(i) read back \(flag.isEmpty ? "buffered" : "direct")")
            }
        }
        for i in 0..<4 {
            #expect(
                try must("dd if=\(m.file.path) bs=1M skip=\(i * 64) count=64 status=none | sha256sum").prefix(64)
                    == want[i],
                "region \(i) in the backing file")
        }
        try m.filesystemRoundTrip(files: 40, big: true)
        if m.expectRing {
            #expect(m.log(of: m.lab).contains("served by 2 threads"), "\(m.log(of: m.lab))")
        }
    }
}

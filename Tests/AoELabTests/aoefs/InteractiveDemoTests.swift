import AoELinux
import AoETestSupport
import Foundation
import Testing

/// What a demo may leave behind: namespaces, links, mounts, processes, files. The tests run the
/// demo with AOEFS_DEMO_PREFIX=aoetd: its names are `aoetd` + 3 letters + a role letter, 9
/// characters, where a lab's are longer.
/// The demo tests of two suites share the `aoetd` names they check for leftovers: one at a time.
let demoTestSerial = NSLock()

func demoLeftovers() throws -> [String] {
    func demo(_ name: Substring) -> Bool { name.hasPrefix("aoetd") && name.count == 9 }
    var found: [String] = []
    found += try must("ip netns list").split(separator: "\n").compactMap { $0.split(separator: " ").first }
        .filter(demo).map(String.init)
    found += try must("ip -o link").split(separator: "\n").compactMap { $0.split(separator: ":").dropFirst().first }
        .map { $0.trimmingCharacters(in: .whitespaces).split(separator: "@").first ?? "" }.filter(demo).map(String.init)
    found += ((try? String(contentsOfFile: "/proc/mounts", encoding: .utf8)) ?? "").split(separator: "\n")
        .filter { $0.contains("aoe-demo") }.map(String.init)
    found += try must("ps -eo args").split(separator: "\n").filter { $0.contains(" serve -v 10 3 aoetd") }.map(
        String.init)
    found += ((try? FileManager.default.contentsOfDirectory(atPath: "/tmp")) ?? []).filter {
        $0.hasPrefix("aoefs-demo-aoetd")
    }
    return found
}

/// `aoefs demo` as a person runs it: in a terminal, no command, Ctrl-C to end (issue 21: it used
/// to hang for good in state D, stat-ing its own mount before serving it).
@Suite(
    "aoefs demo in a terminal", .serialized,
    .enabled(if: LabGate.labShouldRun, Comment(rawValue: LabGate.labSkipReason)))
struct InteractiveDemoTests {
    /// A tmux session running `aoefs demo` in `dir`, on a tmux server of its own (-L); the pane
    /// stays after the demo ends and shows its exit status.
    struct Terminal {
        let name: String
        let dir: String
        init(dir: String, tag: String) throws {
            name = "aoet-demo-\(getpid())-\(tag)"
            self.dir = dir
            let exe = productsDirectory().appendingPathComponent("aoefs").path
            _ = try must(
                """
                tmux -L \(name) new-session -d -s \(name) -x 200 -y 50 -c \(dir) \
                "AOEFS_DEMO_PREFIX=aoetd \(exe) demo --size 256M; echo EXIT=\\$?; sleep 600"
                """)
        }
        var screen: String { (try? sh("tmux -L \(name) capture-pane -p -J -t \(name)").out) ?? "" }
        func ctrlC() throws { _ = try must("tmux -L \(name) send-keys -t \(name) C-c") }
        /// The status the demo exited with, once it has.
        func exitStatus(within timeout: Duration) -> Int? {
            var status: Int?
            eventually(timeout: timeout, every: .milliseconds(100)) {
                // The line reads "^CEXIT=0" when the terminal echoed the Ctrl-C.
                status =
                    screen.split(separator: "\n").compactMap { line in
                        line.range(of: "EXIT=").flatMap { Int(line[$0.upperBound...]) }
                    }.last
                return status != nil
            }
            return status
        }
        func close() { _ = try? sh("tmux -L \(name) kill-server") }
    }

    /// Whether the running demo (ours: AOEFS_DEMO_PREFIX=aoetd, size 256M) catches SIGINT.
    static func demoCatchesSIGINT() -> Bool {
        // Anchored at the binary: the shell that runs it has the same words in its command line.
        let exe = productsDirectory().appendingPathComponent("aoefs").path
        guard let pids = try? sh("pgrep -f '^\(exe) demo --size 256M'").out else { return false }
        return pids.split(separator: "\n").contains { pid in
            let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
            let caught =
                status.split(separator: "\n").first { $0.hasPrefix("SigCgt:") }
                .flatMap { UInt64($0.split(separator: "\t").last ?? "", radix: 16) } ?? 0
            return caught & (1 << (UInt64(SIGINT) - 1)) != 0
        }
    }

    /// A scratch directory and a demo running in a terminal there, its instructions on screen.
    func runningDemo(_ tag: String) throws -> (dir: String, term: Terminal) {
        let dir = try scratch(tag)
        let term = try Terminal(dir: dir, tag: tag)
        guard
            eventually(
                timeout: .seconds(30), every: .milliseconds(100), { term.screen.contains("Ctrl-C ends the demo") })
        else {
            let screen = term.screen
            term.close()  // the demo's Ctrl-C-less end: its tmux server goes, and the demo with its terminal
            try? FileManager.default.removeItem(atPath: dir)
            throw LabFailure("no instructions: \(screen)")
        }
        return (dir, term)
    }

    func scratch(_ tag: String) throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("aoefs-idemo-\(getpid())-\(tag)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    @Test(
        "with no command it prints what to try, every suggested command works as printed, and Ctrl-C ends it leaving nothing"
    )
    func interactive() throws {
        demoTestSerial.lock()
        defer { demoTestSerial.unlock() }
        let before = try demoLeftovers()
        let (dir, term) = try runningDemo("a")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        defer { term.close() }
        let lines = term.screen.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
        // The commands as printed, run from the directory the demo was started in.
        let ls = try #require(lines.first { $0.hasPrefix("ls ") })
        let stat = try #require(lines.first { $0.contains(" stat ") && !$0.contains("cat ") })
        let cat = try #require(lines.first { $0.hasPrefix("cat ") && $0.hasSuffix("/stats") })
        let listing = try sh("cd \(dir) && timeout 10 \(ls)")
        #expect(
            listing.status == 0 && listing.out.split(separator: "\n") == ["e10.3", "etherd", "sys"],
            "\(ls): \(listing.out)")
        let table = try sh("cd \(dir) && timeout 10 \(stat)")
        #expect(table.status == 0 && table.out.contains("e10.3") && table.out.contains(" up"), "\(stat): \(table.out)")
        let stats = try sh("cd \(dir) && timeout 10 \(cat)")
        #expect(stats.status == 0 && stats.out.contains("bytes_read"), "\(cat): \(stats.out)")
        let dd = try #require(lines.first { $0.hasPrefix("dd ") })
        let wrote = try sh("cd \(dir) && timeout 60 \(dd)")
        #expect(wrote.status == 0 && wrote.out.contains("268435456 bytes"), "\(dd): \(wrote.out)")
        try term.ctrlC()
        #expect(term.exitStatus(within: .seconds(10)) == 0, "\(term.screen)")
        #expect(!term.screen.contains("failed"), "\(term.screen)")
        #expect(try demoLeftovers() == before)
        #expect(!FileManager.default.fileExists(atPath: dir + "/aoe-demo"))
    }

    @Test("Ctrl-C during start-up ends it within seconds and leaves nothing", arguments: [0, 20, 100, 250, 500])
    func interruptedStart(afterMilliseconds ms: Int) throws {
        demoTestSerial.lock()
        defer { demoTestSerial.unlock() }
        let before = try demoLeftovers()
        let dir = try scratch("b\(ms)")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let term = try Terminal(dir: dir, tag: "b\(ms)")
        defer { term.close() }
        // From the moment the demo hears SIGINT (before that, the shell's Ctrl-C kills a process
        // that has made nothing yet): its handler shows in /proc/PID/status's SigCgt.
        #expect(eventually(timeout: .seconds(10), every: .milliseconds(5)) { Self.demoCatchesSIGINT() })
        Thread.sleep(forTimeInterval: Double(ms) / 1000)  // the moment of the Ctrl-C is the test's input
        try term.ctrlC()
        let status = term.exitStatus(within: .seconds(10))
        #expect(status == 0 || status == 130, "\(term.screen)")
        #expect(try demoLeftovers() == before)
        #expect(!FileManager.default.fileExists(atPath: dir + "/aoe-demo"))
    }

    @Test(
        "with a write waiting on a target that stopped answering, a second Ctrl-C ends it within seconds, leaving nothing"
    )
    func secondCtrlCEndsTheDrain() throws {
        demoTestSerial.lock()
        defer { demoTestSerial.unlock() }
        let before = try demoLeftovers()
        let (dir, term) = try runningDemo("c")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        defer { term.close() }
        // The demo's target (its child, found by its arguments) stops answering: SIGSTOP.
        let pid = try #require(
            Int32(try must("pgrep -n -f ' serve -v 10 3 aoetd'").trimmingCharacters(in: .whitespacesAndNewlines)))
        kill(pid, SIGSTOP)
        defer { kill(pid, SIGCONT) }
        let dd = try ChildProcess([
            "dd", "if=/dev/zero", "of=\(dir)/aoe-demo/e10.3", "bs=1M", "count=4", "oflag=direct",
            "conv=notrunc,nocreat", "status=none",
        ])
        defer { if dd.isRunning { dd.signal(SIGKILL) }; dd.wait() }
        #expect(!eventually(timeout: .milliseconds(500)) { !dd.isRunning }, "the write waits for the stopped target")
        try term.ctrlC()
        // The first Ctrl-C waits for the write (up to 30 s); the second stops waiting.
        #expect(!eventually(timeout: .seconds(1), every: .milliseconds(100)) { term.screen.contains("EXIT=") })
        try term.ctrlC()
        #expect(term.exitStatus(within: .seconds(10)) == 0, "\(term.screen)")
        kill(pid, SIGCONT)
        #expect(dd.wait(upTo: .seconds(10)))
        #expect(
            eventually(timeout: .seconds(5)) { (try? demoLeftovers()) == before }, "\((try? demoLeftovers()) ?? [])")
    }
}

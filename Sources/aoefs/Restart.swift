import AoELinux
import ArgumentParser
import Foundation

/// `aoefs restart MOUNTPOINT`: a new daemon under the live mount (issue 30).
struct Restart: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Replace the daemon serving MOUNTPOINT without unmounting it.",
        discussion: """
            The mount's supervisor asks its daemon to hand over: the daemon stops
            taking requests, answers those it took, and exits; a new daemon (the
            binary now installed at the same path, so an upgrade takes effect)
            finds the targets again and serves the same mount. Programs using the
            mount see a pause, not an error. Prints the old and new daemon and how
            long the change took; exits 1 if it did not happen within --timeout.
            The same as `systemctl reload aoefs` (SIGHUP to the supervisor).

            Examples:
              aoefs restart /mnt/aoe
              aoefs restart /mnt/aoe --timeout 120
            """)

    @Argument(help: "An aoefs mountpoint served by a supervisor (aoefs mount without --no-supervise).")
    var mountpoint: String

    @Option(help: "Seconds to wait for the new daemon.")
    var timeout: Double = 60

    func validate() throws {
        guard timeout.isFinite, timeout > 0, timeout <= 86_400 else {
            throw ValidationError("--timeout \(timeout): expected 0 to 86400 seconds (more than 0)")
        }
    }

    func run() throws {
        try requireAoEFSMount(mountpoint)
        let path = mountpoint + "/sys/daemon"
        guard let before = Self.facts(path) else { throw CLIError("\(path): cannot be read (is the mount served?)") }
        guard let supervisor = Int32(before["supervisor_pid"] ?? ""), supervisor > 0 else {
            throw CLIError(
                "\(mountpoint): no supervisor (mounted with --no-supervise or by an older aoefs): unmount and mount again"
            )
        }
        // Only an aoefs process gets the signal: the pid is read from a file of the mount.
        let cmdline = (try? String(contentsOfFile: "/proc/\(supervisor)/cmdline", encoding: .utf8)) ?? ""
        guard cmdline.contains("aoefs") else {
            throw CLIError("\(mountpoint): supervisor \(supervisor) is not running")
        }
        let start = ContinuousClock.now
        guard kill(supervisor, SIGHUP) == 0 else {
            throw CLIError("kill -HUP \(supervisor): \(String(cString: strerror(errno)))")
        }
        let deadline = start + .milliseconds(Int64(timeout * 1000))
        while ContinuousClock.now < deadline {
            if let now = Self.facts(path), now["incarnation"] != before["incarnation"], now["daemon_pid"] != nil {
                let ms = (ContinuousClock.now - start).components
                let took = Int(ms.seconds) * 1000 + Int(ms.attoseconds / 1_000_000_000_000_000)
                print(
                    "\(mountpoint): restarted: daemon \(before["daemon_pid"] ?? "?") → \(now["daemon_pid"] ?? "?") "
                        + "(incarnation \(now["incarnation"] ?? "?")), serving again after \(took) ms")
                return
            }
            Thread.sleep(forTimeInterval: 0.05)
        }
        throw CLIError("\(mountpoint): no new daemon within \(timeout) s (see syslog, and \(mountpoint)/etherd/err)")
    }

    /// `sys/daemon` as key → value; nil if it cannot be read.
    static func facts(_ path: String) -> [String: String]? {
        guard let text = readWholeFile(path) else { return nil }
        var out: [String: String] = [:]
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: " ", maxSplits: 1)
            if parts.count == 2 { out[String(parts[0])] = String(parts[1]) }
        }
        return out
    }
}

import AoEEngine
import Foundation

/// The daemon serving a mount, as `sys/daemon` shows it: its supervisor, which daemon it is
/// under the mount, and why the one before it ended (issue 30).
public struct DaemonInfo: Sendable, Equatable {
    /// The supervisor that holds the mount's /dev/fuse (0: none; the mount ends with this daemon).
    public var supervisorPID: Int32 = 0
    /// 1 for the mount's first daemon, one more for each that followed.
    public var incarnation = 1
    /// Daemons that died and were replaced.
    public var restarts = 0
    /// Daemons replaced on request (`aoefs restart`).
    public var handovers = 0
    /// Why the previous daemon ended ("" for the first).
    public var previousEnd = ""
    /// When this daemon started serving (seconds since the epoch).
    public var started = time(nil)

    public init() {}

    /// The `sys/daemon` text: `key value` lines, as `stats`.
    public func rendered() -> String {
        var lines = [
            "daemon_pid \(getpid())",
            "supervisor_pid \(supervisorPID)",
            "supervised \(supervisorPID > 0 ? "yes" : "no")",
            "incarnation \(incarnation)",
            "restarts \(restarts)",
            "handovers \(handovers)",
            "started \(started)",
        ]
        if !previousEnd.isEmpty { lines.append("previous_end \(previousEnd)") }
        return lines.joined(separator: "\n") + "\n"
    }

    var figures: EngineMetrics.DaemonFigures? {
        supervisorPID > 0
            ? EngineMetrics.DaemonFigures(incarnation: incarnation, restarts: restarts, handovers: handovers) : nil
    }

    /// The fields of the supervisor's `mounted` / `resumed` message, tab-separated:
    /// incarnation, restarts, handovers, the targets to wait for (space-separated), the cause.
    public static func parse(_ fields: [Substring]) -> (DaemonInfo, targets: [String])? {
        guard fields.count >= 5, let inc = Int(fields[1]), let r = Int(fields[2]), let h = Int(fields[3]) else {
            return nil
        }
        var d = DaemonInfo()
        d.incarnation = inc
        d.restarts = r
        d.handovers = h
        d.previousEnd = fields.count > 5 ? String(fields[5]) : ""
        return (d, fields[4].split(separator: " ").map(String.init))
    }
}

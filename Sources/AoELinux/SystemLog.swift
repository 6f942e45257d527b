import CAoELinux

/// syslog(3), for the daemon once it has no terminal.
public enum SystemLog {
    /// Severities, as syslog(3) numbers them.
    public enum Priority: Int32, Sendable {
        case error = 3, warning = 4, notice = 5, info = 6, debug = 7
    }

    /// From now on, lines go to syslog as `ident[pid]`, facility daemon.
    public static func open(ident: String) { aoel_openlog(ident) }

    /// Logs one line.
    public static func write(_ priority: Priority, _ message: String) { aoel_syslog(priority.rawValue, message) }
}

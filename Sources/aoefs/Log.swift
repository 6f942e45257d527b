import AoELinux
import Foundation
import Logging
import Synchronization

/// aoefs's logging: swift-log, to stderr, or to syslog once the mount has daemonised.
///
/// Levels: `notice` and worse by default; `-v` adds `info` (the engine's diagnostics:
/// retransmits, payload changes, targets up and down, the same lines as etherd/err); `-vv`
/// adds `debug` (settings, links, FUSE parameters). A daemon logs at `info` and up to syslog.
enum Log {
    private static let toSyslog = Atomic<Bool>(false)
    private static let level = Atomic<Int>(Logger.Level.notice.rank)
    private static let once = Locked(false)

    /// The process's logger.
    static let logger = Logger(label: "aoefs")

    /// Sets the level from the count of `-v` flags; installs the handler on first use.
    static func setUp(verbosity: Int) {
        var l: Logger.Level = verbosity >= 2 ? .debug : verbosity == 1 ? .info : .notice
        if toSyslog.load(ordering: .relaxed) && l > .info { l = .info }
        level.store(l.rank, ordering: .relaxed)
        once.withLock { done in
            if !done { LoggingSystem.bootstrap { label in Handler(label: label) } }
            done = true
        }
    }

    /// After daemonising: from now on lines go to syslog, at `info` and up unless -vv asked for more.
    static func switchToSyslog() {
        SystemLog.open(ident: "aoefs")
        toSyslog.store(true, ordering: .relaxed)
        if level.load(ordering: .relaxed) > Logger.Level.info.rank {
            level.store(Logger.Level.info.rank, ordering: .relaxed)
        }
    }

    struct Handler: LogHandler {
        let label: String
        var metadata: Logger.Metadata = [:]
        var metadataProvider: Logger.MetadataProvider?

        // The level is process-wide (set by -v), so every logger follows it.
        var logLevel: Logger.Level {
            get { Logger.Level.allCases.first { $0.rank == Log.level.load(ordering: .relaxed) } ?? .notice }
            set { Log.level.store(newValue.rank, ordering: .relaxed) }
        }

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            let text = "\(event.message)"
            if Log.toSyslog.load(ordering: .relaxed) {
                let p: SystemLog.Priority =
                    switch event.level {
                    case .trace, .debug: .debug
                    case .info: .info
                    case .notice: .notice
                    case .warning: .warning
                    case .error, .critical: .error
                    }
                SystemLog.write(p, text)
            } else {
                FileHandle.standardError.write(Data(("aoefs: " + text + "\n").utf8))
            }
        }
    }
}

extension Logger.Level {
    /// trace 0 … critical 6.
    var rank: Int { Logger.Level.allCases.firstIndex(of: self)! }
}

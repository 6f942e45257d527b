import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Something made for a while that must be removed afterwards.
public enum ScratchResource: Sendable, Hashable {
    /// A network namespace (`ip netns add`).
    case namespace(String)
    /// A link in this process's namespace (a veth end or a bridge); a veth's peer goes with it.
    case link(String)
    /// A target process (vblade or `aoefs serve`): killed by the sweep only if its name says so.
    case process(pid_t)
    /// An nft netdev table, in a namespace or (nil) this one.
    case nftTable(namespace: String?, table: String)

    var line: String {
        switch self {
        case .namespace(let n): "ns \(n)"
        case .link(let l): "link \(l)"
        case .process(let p): "pid \(p)"
        case .nftTable(let ns, let t): "nft \(ns ?? "-") \(t)"
        }
    }

    init?(line: Substring) {
        let f = line.split(separator: " ").map(String.init)
        guard f.count >= 2 else { return nil }
        switch f[0] {
        case "ns": self = .namespace(f[1])
        case "link": self = .link(f[1])
        case "pid":
            guard let p = pid_t(f[1]) else { return nil }
            self = .process(p)
        case "nft" where f.count == 3: self = .nftTable(namespace: f[1] == "-" ? nil : f[1], table: f[2])
        default: return nil
        }
    }
}

/// A scratch directory and the network resources made for one lab or demo, listed in a file
/// there as they are made, so that they are removed afterwards: by `releaseAll()` on every way
/// out, or, when the owner was killed (SIGKILL) before it could, by the next `sweep` of anyone.
/// The lab of the tests and `aoefs demo` both keep theirs this way.
public final class ResourceLedger: Sendable {
    public let directory: String
    private let made = Locked<[ScratchResource]>([])

    /// Creates `directory` and marks this process its owner.
    public init(directory: String) throws {
        self.directory = directory
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try "\(getpid())\n".write(toFile: directory + "/owner", atomically: true, encoding: .utf8)
    }

    /// Notes `r` before it is made (so a crash in between still gets it swept).
    public func record(_ r: ScratchResource) {
        made.withLock { $0.append(r) }
        let path = directory + "/resources"
        if let h = FileHandle(forWritingAtPath: path) {
            h.seekToEndOfFile()
            h.write(Data((r.line + "\n").utf8))
            try? h.close()
        } else {
            try? (r.line + "\n").write(toFile: path, atomically: false, encoding: .utf8)
        }
    }

    /// `r` was removed by its maker; `releaseAll` leaves it alone.
    public func forget(_ r: ScratchResource) { made.withLock { $0.removeAll { $0 == r } } }

    /// Removes every resource recorded (processes, nft tables, links, then namespaces, newest
    /// first) and, unless `keepDirectory`, the directory. Safe to call more than once.
    public func releaseAll(keepDirectory: Bool = false) {
        let all = made.withLock { m in
            defer { m.removeAll() }
            return m
        }
        Self.remove(all)
        if !keepDirectory { try? FileManager.default.removeItem(atPath: directory) }
    }

    /// Removes what the ledgers in `base` whose names start with `prefix` list, for every one
    /// whose owner process is gone, and their directories.
    public static func sweep(base: String, prefix: String) {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: base) else { return }
        for entry in entries where entry.hasPrefix(prefix) {
            let dir = base + "/" + entry
            guard let text = try? String(contentsOfFile: dir + "/owner", encoding: .utf8),
                let owner = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)),
                kill(owner, 0) != 0 && errno == ESRCH
            else { continue }
            let listed = ((try? String(contentsOfFile: dir + "/resources", encoding: .utf8)) ?? "")
                .split(separator: "\n").compactMap(ScratchResource.init(line:))
            remove(listed)
            try? FileManager.default.removeItem(atPath: dir)
        }
    }

    private static func remove(_ resources: [ScratchResource]) {
        for case .process(let pid) in resources {
            // Only a target of ours: the PID may have been reused by something else since.
            if let comm = try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8),
                comm.hasPrefix("vblade") || comm.hasPrefix("aoefs")
            {
                kill(pid, SIGKILL)
            }
        }
        for case .nftTable(let ns, let table) in resources {
            _ = try? Command.run(
                (ns.map { ["ip", "netns", "exec", $0] } ?? []) + ["nft", "delete", "table", "netdev", table])
        }
        for case .link(let l) in resources { _ = try? Command.run(["ip", "link", "del", l]) }
        for case .namespace(let n) in resources.reversed() { _ = try? Command.run(["ip", "netns", "del", n]) }
    }
}

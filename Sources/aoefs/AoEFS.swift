import AoEFUSE
import AoEProtocol
import ArgumentParser

@main
struct AoEFS: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "aoefs",
        abstract: "A user-space ATA-over-Ethernet initiator: AoE targets as files, through FUSE.",
        discussion: """
            aoefs finds AoE targets (Coraid shelves, vblade, …) on your Ethernet interfaces
            and talks to them from user space, with no kernel aoe module. It needs root (or
            CAP_NET_RAW) for raw Ethernet.

              aoefs demo                         try it: a private target and mount
              aoefs mount /mnt/aoe --iface eth1  targets as files: e10.3, e10.3p1, sys/, …
              aoefs stat [--json]                aoe-stat's table for the mount
              aoefs discover | interfaces | revalidate | flush
                                                 aoetools' controls, through the mount
              aoefs list | disable | enable | probe [PATTERN…]
                                                 aoectl's verbs (PATTERN: 10.3, 10, .3)
              aoefs scan --iface eth1 [--json]   list the targets that answer
              aoefs restart /mnt/aoe             a new daemon under the live mount
              aoefs serve 10 3 eth1 disk.img     export a file as e10.3 (vblade's flags)
              aoefs bench --iface eth1 --target 10.3
                                                 measure a target (reads only)

            Each command has --help with examples; `man aoefs` has the whole story. `make
            deb` in the source tree builds a Debian package.
            """,
        version: "aoefs 0.1.0 (libfuse \(FUSELibrary.version))",
        subcommands: [
            Demo.self, Mount.self, Stat.self, List.self, Discover.self, Interfaces.self, Revalidate.self, Flush.self,
            Disable.self, Enable.self, Probe.self, Scan.self, Serve.self, Bench.self, Metrics.self,
            IOStat.self, Doctor.self, Restart.self,
        ]
    )

    /// Also the helper mount.fuse3 runs for `mount -t fuse.aoefs SOURCE DIR -o OPTIONS` and
    /// fstab lines: it calls `aoefs SOURCE DIR -o OPTIONS`, which is `aoefs mount DIR -o OPTIONS`.
    static func main() {
        var arguments = Array(CommandLine.arguments.dropFirst())
        let names = Set(configuration.subcommands.map { $0._commandName } + ["help"])
        if arguments.count >= 2, let first = arguments.first, !first.hasPrefix("-"), !names.contains(first),
            !arguments[1].hasPrefix("-")
        {
            arguments = ["mount"] + Array(arguments.dropFirst())
        }
        invocation.withLock { $0 = arguments }
        do {
            var command = try parseAsRoot(arguments)
            try command.run()
        } catch {
            exit(withError: error)
        }
    }
}

import AoEFUSE
import AoEProtocol
import ArgumentParser

@main
struct AoEFS: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "aoefs",
        abstract: "A user-space ATA-over-Ethernet initiator: AoE targets as files, through FUSE.",
        discussion: """
            aoefs finds AoE targets (Coraid shelves, vblade, …) on your Ethernet interfaces and
            talks to them from user space, with no kernel aoe module. It needs root (or
            CAP_NET_RAW) for raw Ethernet.

              aoefs mount /mnt/aoe --iface eth1           targets as files: /mnt/aoe/e10.3, sys/, etherd/
              aoefs scan --iface eth1                     list the targets that answer
              aoefs bench --iface eth1 --target 10.3      measure a target (reads only)
            """,
        version: "aoefs 0.1.0 (libfuse \(FUSELibrary.version))",
        subcommands: [Mount.self, Scan.self, Bench.self]
    )
}

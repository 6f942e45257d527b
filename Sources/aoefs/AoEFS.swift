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
            shows each one as a raw image file under a FUSE mount, with no kernel aoe module.
            The engine and mount commands are being built; see README.md for what works today.
            """,
        version: "aoefs 0.1.0 (libfuse \(FUSELibrary.version))"
    )
}

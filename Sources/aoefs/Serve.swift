import AoELinux
import AoEProtocol
import AoETarget
import ArgumentParser
import Foundation

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Export a file or block device as an AoE target (vblade's flags and meaning).",
        discussion: """
            A target for any AoE initiator (aoefs, Linux's aoe driver, iPXE, …). It
            announces itself when it starts, answers Query Config, IDENTIFY (LBA48),
            READ/WRITE SECTORS (EXT), MAC Mask List and Reserve/Release as vblade does, and
            keeps several disk commands in flight at once. Unlike vblade, FLUSH CACHE (EXT)
            really reaches the disk: it runs fdatasync(2) before answering, and DATA SET
            MANAGEMENT (TRIM) is offered where the file can have holes: a trimmed range is
            punched out of the file (fallocate(2)), so its space returns to the filesystem
            and it reads as zeros. `fstrim` on a filesystem over an aoefs image uses it.

            Stop it with Ctrl-C or SIGTERM; it prints what it served.

            Examples:
              aoefs serve 10 3 eth1 /srv/disk.img
              aoefs serve -r -m 52:54:00:12:34:56 10 4 eth1 /dev/sdb
              aoefs serve -o 2048 -l 409600 10 5 eth1 /srv/big.img  # 200 MiB of it
            """)

    @Option(
        name: .customShort("b"),
        help: ArgumentHelp("Advertised buffer count: commands an initiator may have in flight.", valueName: "bufcnt"))
    var bufferCount: Int = 16

    @Flag(name: .customShort("r"), help: "Read-only: writes fail with an ATA error (ABRT).")
    var readOnly = false

    @Flag(name: .customShort("s"), help: "Open the file O_SYNC: every write is on disk before it is answered.")
    var sync = false

    @Flag(name: .customShort("d"), help: "Open the file O_DIRECT (bypass the page cache).")
    var direct = false

    @Flag(
        help:
            "Advertise no write cache in IDENTIFY, as a write-through disk does (implies -s, so it is true). Initiators that read IDENTIFY then send no FLUSH."
    )
    var writeThrough = false

    @Flag(
        help:
            "Offer FLUSH CACHE (EXT) in IDENTIFY but abort it, as some foreign targets do: for testing initiators (implies -s, so no data depends on a flush)."
    )
    var abortFlush = false

    @Flag(help: "Do not offer TRIM (DATA SET MANAGEMENT) in IDENTIFY, even where the file can have holes.")
    var noTrim = false

    @Option(
        name: .customShort("o"),
        help: ArgumentHelp("Sectors at the start of the file not exported.", valueName: "offset"))
    var offset: UInt64 = 0

    @Option(
        name: .customShort("l"),
        help: ArgumentHelp("Sectors to export (default: the rest of the file).", valueName: "length"))
    var length: UInt64?

    @Option(
        name: .customShort("m"),
        help: ArgumentHelp(
            "Only these initiators get answers (comma-separated MACs, with or without colons).", valueName: "mac[,mac…]"
        ))
    var macs: String?

    @Option(
        help: ArgumentHelp(
            "The model string IDENTIFY gives (40 characters at most): to pose as another disk, for testing initiators.",
            valueName: "text"))
    var model: String?

    @Option(
        help: ArgumentHelp(
            "The serial number IDENTIFY gives (20 characters at most; default shelf.slot:host).", valueName: "text"))
    var serial: String?

    @Option(
        help: ArgumentHelp(
            "The packet socket's receive (and send) buffer in bytes (default 2.25 MiB, a window of jumbo frames): a small one drops frames beyond what it holds, like a target that advertises more buffers than it can queue (for testing initiators).",
            valueName: "bytes"))
    var rcvbuf: Int?

    @Option(help: "Disk threads: commands served at once.")
    var workers: Int = 4

    @Flag(name: .shortAndLong, help: "Log every flush (-v) to stderr; I/O errors are always logged.")
    var verbose: Int

    @Argument(help: "Shelf (major address), 0–65534.") var shelf: UInt16
    @Argument(help: "Slot (minor address), 0–254.") var slot: UInt8
    @Argument(help: "The Ethernet interface to serve on.") var iface: String
    @Argument(help: "The file or block device to export.") var file: String

    func validate() throws {
        if bufferCount < 1 || bufferCount > 65535 { throw ValidationError("-b must be between 1 and 65535") }
        if shelf == 0xFFFF { throw ValidationError("shelf 65535 is the broadcast address") }
        if slot == 0xFF { throw ValidationError("slot 255 is the broadcast address") }
        if workers < 1 { throw ValidationError("--workers must be at least 1") }
        if let m = model, m.utf8.count > 40 {
            throw ValidationError("--model: at most 40 characters (IDENTIFY words 27–46)")
        }
        if let s = serial, s.utf8.count > 20 {
            throw ValidationError("--serial: at most 20 characters (IDENTIFY words 10–19)")
        }
        if let r = rcvbuf, r < 4096 { throw ValidationError("--rcvbuf: at least 4096 bytes") }
        if length == 0 { throw ValidationError("-l must be at least 1 sector") }
        _ = try allowedMACs()
    }

    func allowedMACs() throws -> [MACAddress] {
        guard let macs else { return [] }
        return try macs.split(separator: ",").map { text in
            let t = text.trimmingCharacters(in: .whitespaces)
            guard let mac = MACAddress(parsing: t) else {
                throw ValidationError("-m: '\(t)' is not a MAC address (like 52:54:00:12:34:56)")
            }
            return mac
        }
    }

    func run() throws {
        let backing: BackingFile
        do {
            backing = try BackingFile(
                path: file, readOnly: readOnly, direct: direct, sync: sync || writeThrough || abortFlush,
                offsetSectors: offset, lengthSectors: length)
        } catch { throw CLIError("\(error)") }
        let link: PacketLink
        do { link = try PacketLink(interface: iface, bufferSize: rcvbuf ?? PacketLink.defaultBufferSize) } catch {
            throw CLIError("\(error)")
        }
        var settings = TargetSettings(
            address: TargetAddress(shelf: Shelf(shelf), slot: Slot(slot)),
            mac: link.macAddress, mtu: link.mtu, sectors: backing.size / 512)
        settings.bufferCount = UInt16(bufferCount)
        settings.readOnly = readOnly
        settings.writeCache = !writeThrough
        settings.abortsFlush = abortFlush
        settings.allowedMACs = try allowedMACs()
        settings.serial = serial ?? "\(shelf).\(slot):\(ProcessInfo.processInfo.hostName.prefix(12))"
        if let model { settings.model = model }
        settings.firmware = "aoefs"
        Log.setUp(verbosity: verbose)
        if noTrim || readOnly {
            Log.logger.notice("serve: TRIM not offered (\(noTrim ? "--no-trim" : "-r, read-only"))")
        } else if case .failure(let why) = backing.trimSupport() {
            Log.logger.notice("serve: TRIM not offered: \(file): \(why)")
        } else {
            settings.trim = true
        }
        let server = TargetServer(settings: settings, file: backing, link: link, workers: workers) { line in
            if line.hasPrefix("flush:") {
                Log.logger.info("serve: \(line)")
            } else {
                Log.logger.error("serve: \(line)")
            }
        }
        let signals: SignalWatcher
        do { signals = try SignalWatcher { _ in server.stop() } } catch { throw CLIError("\(error)") }
        defer { signals.stop() }
        // The same first line as vblade, which scripts (and our lab) wait for.
        let first =
            "pid \(getpid()): e\(shelf).\(slot), \(backing.size / 512) sectors \(readOnly ? "O_RDONLY" : "O_RDWR")\n"
        FileHandle.standardOutput.write(Data(first.utf8))
        do { try server.run() } catch { throw CLIError("\(error)") }
        let c = server.counters
        let summary =
            "serve: e\(shelf).\(slot): \(c.reads) reads, \(c.writes) writes, \(c.flushes) flushes "
            + "(\(server.durableFlushes) fdatasync), \(c.trims) trims (\(c.sectorsTrimmed) sectors), "
            + "\(c.configQueries) config queries, "
            + "\(c.errors + server.diskErrors) errors, \(c.dropped) dropped"
        Log.logger.notice("\(summary)")
    }
}

import AoELinux
import AoETestSupport
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Runs a shell command line; returns (status, stdout+stderr). Test helper for user-level steps.
func sh(_ line: String) throws -> (status: Int32, out: String) {
    guard let fds = closeOnExecPipe() else { throw LabFailure("pipe: \(String(cString: strerror(errno)))") }
    let p = try ChildProcess(["/bin/bash", "-c", line], stdout: fds[1], stderr: fds[1])
    close(fds[1])
    let data = FileHandle(fileDescriptor: fds[0], closeOnDealloc: true).readDataToEndOfFile()
    p.wait()
    return (p.exitCode ?? -1, String(decoding: data, as: UTF8.self))
}

/// `sh` that must succeed.
@discardableResult
func must(_ line: String) throws -> String {
    let r = try sh(line)
    guard r.status == 0 else { throw LabFailure("`\(line)` exited \(r.status): \(r.out)") }
    return r.out
}

func mounted(_ path: String) -> Bool {
    ((try? String(contentsOfFile: "/proc/mounts", encoding: .utf8)) ?? "").contains(" \(path) fuse.aoefs ")
}

/// A lab with vblade serving e10.3 and `aoefs mount -f` (our child, by PID) on a temp directory.
final class MountLab: @unchecked Sendable {
    // @unchecked: set up once in init, torn down once.
    let lab: Lab
    let net: Lab.Direct
    /// The switched network, when the lab was made with one (`switched: true`).
    private(set) var switchedNet: Lab.Switched?
    let file: URL
    var vblades: [Vblade] = []
    let mnt: String
    var daemon: ChildProcess?
    /// Whether this mount was asked for FUSE over io_uring; then the tear-down checks the ring
    /// served, so a pass over that transport cannot quietly run over /dev/fuse.
    var expectRing = false

    /// Where the backing file lives when not in the lab's directory (removed by `tearDown`).
    let outsideFile: Bool

    /// - Parameter fileDirectory: where the target's backing file goes (e.g. a tmpfs); by
    ///   default the lab's directory.
    init(
        mtu: Int = 9000, size: UInt64 = 1 << 30, flags: [String] = [], mountArgs: [String] = [],
        program: Lab.TargetProgram = .fromEnvironment, fileDirectory: String? = nil, switched: Bool = false,
        environment: String = ""
    ) throws {
        let lab = try Lab()
        self.lab = lab
        outsideFile = fileDirectory != nil
        let outside = fileDirectory.map {
            URL(fileURLWithPath: $0).appendingPathComponent("\(lab.directory.lastPathComponent)-e10.3.img")
        }
        do {
            if switched {
                let sw = try lab.switched(mtu: mtu, portMTU: mtu)
                switchedNet = sw
                net = sw.ends
            } else {
                net = try lab.direct(mtu: mtu)
            }
            if let outside {
                guard FileManager.default.createFile(atPath: outside.path, contents: nil),
                    truncate(outside.path, off_t(size)) == 0
                else {
                    throw LabFailure("\(outside.path): cannot create")
                }
                file = outside
            } else {
                file = try lab.sparseFile("e10.3.img", size: size)
            }
            vblades.append(
                try lab.startVblade(
                    shelf: 10, slot: 3, interface: net.target, namespace: net.targetNamespace,
                    file: file, flags: flags, program: program))
            mnt = lab.directory.appendingPathComponent("mnt").path
            try FileManager.default.createDirectory(atPath: mnt, withIntermediateDirectories: true)
            let exe = productsDirectory().appendingPathComponent("aoefs").path
            let logFD = open(
                lab.directory.appendingPathComponent("aoefs.log").path, O_WRONLY | O_CREAT | O_APPEND, 0o644)
            defer { close(logFD) }
            // AOEFS_LAB_FUSE_TRANSPORT=device|io_uring runs the suite over one of the FUSE core's
            // transports (make test does). A test that names its transport keeps it.
            let env = ProcessInfo.processInfo.environment
            let names = mountArgs.contains("--fuse-transport") || mountArgs.contains(where: { $0.contains("io_uring") })
            let core = names ? [] : env["AOEFS_LAB_FUSE_TRANSPORT"].map { ["--fuse-transport", $0] } ?? []
            expectRing = (mountArgs + core).contains("io_uring")
            daemon = try ChildProcess(
                [exe, "mount", mnt, "--iface", net.initiator, "-f", "-v"] + core + mountArgs,
                stdout: logFD, stderr: logFD, environment: environment.isEmpty ? [] : [environment])
            let daemon = daemon!
            let mnt = mnt
            guard eventually(timeout: .seconds(15), { mounted(mnt) || !daemon.isRunning }), mounted(mnt) else {
                throw LabFailure("aoefs mount did not come up: \(self.log(of: lab))")
            }
        } catch {
            lab.teardown()
            if let outside { unlink(outside.path) }
            throw error
        }
    }

    /// What a user does with an image: losetup, mkfs.ext4, mount, copy a tree of files, unmount,
    /// `fsck -fn` clean, mount again and compare.
    func filesystemRoundTrip(files: Int, big: Bool) throws {
        let loop = try must("losetup -f --show \(image)").trimmingCharacters(in: .whitespacesAndNewlines)
        defer { _ = try? sh("losetup -d \(loop)") }
        let fsdir = lab.directory.appendingPathComponent("ext4").path
        let tree = lab.directory.appendingPathComponent("tree").path
        try must("mkfs.ext4 -q -F \(loop)")
        try must(
            "mkdir -p \(fsdir) \(tree)/a/b && for i in $(seq \(files)); do head -c $((i * 7919)) /dev/urandom > \(tree)/a/f$i; done"
                + (big ? " && head -c 20000000 /dev/urandom > \(tree)/a/b/big" : ""))
        try must("mount \(loop) \(fsdir) && cp -a \(tree) \(fsdir)/ && sync -f \(fsdir) && umount \(fsdir)")
        let fsck = try sh("fsck.ext4 -fn \(loop)")
        #expect(fsck.status == 0, "fsck: \(fsck.out)")
        try must("mount \(loop) \(fsdir)")
        let diff = try sh("diff -r \(tree) \(fsdir)/tree")
        _ = try? sh("umount \(fsdir)")
        #expect(diff.status == 0, "\(diff.out)")
    }

    func log(of lab: Lab) -> String {
        (try? String(contentsOf: lab.directory.appendingPathComponent("aoefs.log"), encoding: .utf8)) ?? ""
    }

    var image: String { mnt + "/e10.3" }
    func sys(_ f: String) throws -> String { try String(contentsOfFile: mnt + "/sys/e10.3/" + f, encoding: .utf8) }
    func stat(_ name: String) throws -> Int {
        Int(
            try sys(name == "" ? "stats" : "stats").split(separator: "\n").first { $0.hasPrefix(name + " ") }?
                .split(separator: " ").last ?? "") ?? -1
    }

    func tearDown() {
        if mounted(mnt) { _ = try? sh("fusermount3 -u \(mnt) || umount -l \(mnt)") }
        if let d = daemon, !d.wait(upTo: .seconds(20)) {
            d.signal(SIGKILL)
            d.wait()
        }
        if expectRing {
            let log = log(of: lab)
            #expect(
                log.contains("FUSE over io_uring: ") && log.contains("entries registered"),
                "the ring was set up: \(log)")
        }
        lab.teardown()
        if outsideFile { unlink(file.path) }
    }
}

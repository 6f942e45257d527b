import AoETestSupport
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Runs the built `aoefs` with `args`; returns (exit status, stdout, stderr).
func aoefs(_ args: [String]) throws -> (status: Int32, out: String, err: String) {
    let exe = productsDirectory().appendingPathComponent("aoefs").path
    var out: [Int32] = [0, 0]
    var err: [Int32] = [0, 0]
    #expect(pipe(&out) == 0 && pipe(&err) == 0)
    let p = try ChildProcess([exe] + args, stdout: out[1], stderr: err[1])
    close(out[1])
    close(err[1])
    let o = FileHandle(fileDescriptor: out[0], closeOnDealloc: true).readDataToEndOfFile()
    let e = FileHandle(fileDescriptor: err[0], closeOnDealloc: true).readDataToEndOfFile()
    p.wait()
    return (p.exitCode ?? -1, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
}

@Suite("aoefs scan and bench", .enabled(if: LabGate.labShouldRun, Comment(rawValue: LabGate.labSkipReason)))
struct CLITests {
    @Test func scanListsTheTarget() throws {
        let lab = try Lab()
        defer { lab.teardown() }
        let net = try lab.direct(mtu: 9000)
        let file = try lab.sparseFile("e10.3.img", size: 3 << 30)
        _ = try lab.startVblade(shelf: 10, slot: 3, interface: net.target, namespace: net.targetNamespace, file: file,
                                flags: ["-b", "20"])
        let r = try aoefs(["scan", "--iface", net.initiator, "--wait", "3"])
        #expect(r.status == 0, "\(r.err)")
        let lines = r.out.split(separator: "\n")
        #expect(lines.count == 2)
        #expect(lines.first?.hasPrefix("TARGET") == true)
        let row = lines.last.map(String.init) ?? ""
        for cell in ["e10.3", net.initiator, "20", "8704", "0x4019", "3.221GB", "up"] {
            #expect(row.contains(cell), "scan row «\(row)» lacks \(cell)")
        }
    }

    @Test func scanFindsNothingAndSaysSo() throws {
        let lab = try Lab()
        defer { lab.teardown() }
        let net = try lab.direct(mtu: 1500)
        let r = try aoefs(["scan", "--iface", net.initiator, "--wait", "1"])
        #expect(r.status != 0)
        #expect(r.err.contains("no AoE target answered on \(net.initiator)"))
    }

    @Test func badInputGetsOneLineAndNonZeroStatus() throws {
        let r1 = try aoefs(["scan", "--iface", "aoetnosuch9"])
        #expect(r1.status != 0)
        #expect(r1.err.contains("aoetnosuch9: no such network interface"))
        let r2 = try aoefs(["scan"])
        #expect(r2.status != 0)
        #expect(r2.err.contains("--iface"))
        let r3 = try aoefs(["bench", "--iface", "lo", "--target", "banana"])
        #expect(r3.status != 0)
        #expect(r3.err.contains("--target must look like 10.3"))
    }

    @Test func benchReportsAndRefusesToWriteWithoutPermission() throws {
        let lab = try Lab()
        defer { lab.teardown() }
        let net = try lab.direct(mtu: 9000)
        let file = try lab.sparseFile("e10.3.img", size: 256 << 20)
        _ = try lab.startVblade(shelf: 10, slot: 3, interface: net.target, namespace: net.targetNamespace, file: file)
        let refused = try aoefs(["bench", "--iface", net.initiator, "--target", "10.3", "--test", "seqwrite"])
        #expect(refused.status != 0)
        #expect(refused.err.contains("without --write"))
        let attrs = try FileManager.default.attributesOfItem(atPath: file.path)
        #expect((attrs[.size] as? Int) == 256 << 20)
        let r = try aoefs(["bench", "--iface", net.initiator, "--target", "e10.3", "--seconds", "1",
                           "--test", "seqread,randread,seqwrite", "--write", "--size", "64M"])
        #expect(r.status == 0, "\(r.err)")
        for test in ["seqread", "randread", "seqwrite"] {
            let line = r.out.split(separator: "\n").first { $0.hasPrefix(test) }.map(String.init) ?? ""
            #expect(line.contains("MB/s=") && line.contains("IOPS=") && line.contains("p99=") && line.contains("cpu_s/GB="),
                    "\(test): «\(line)»")
            #expect(line.contains("errors=0"), "\(line)")
        }
    }
}

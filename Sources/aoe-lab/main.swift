// aoe-lab: builds a test lab (a namespace with vblade serving e10.3 over a veth pair) and keeps
// it until Ctrl-C or SIGTERM, then tears it down. For trying aoefs by hand, and for the tests
// that check teardown on signals.
//
//   aoe-lab [--mtu N] [--size BYTES] [--switch PORT_MTU]
//   aoe-lab flood --iface IF --target S.L …   (see Flood.swift)
import AoETestSupport
import Foundation

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("aoe-lab: \(message)\n".utf8))
    exit(2)
}

var mtu = 9000
var size: UInt64 = 1 << 30
var portMTU: Int?
var args = CommandLine.arguments.dropFirst()
if args.first == "flood" { flood(Array(args.dropFirst())) }
while let a = args.popFirst() {
    switch a {
    case "--mtu": guard let v = args.popFirst().flatMap({ Int($0) }) else { fail("--mtu needs a number") }; mtu = v
    case "--size": guard let v = args.popFirst().flatMap({ UInt64($0) }) else { fail("--size needs bytes") }; size = v
    case "--switch":
        guard let v = args.popFirst().flatMap({ Int($0) }) else { fail("--switch needs an MTU") }; portMTU = v
    case "-h", "--help":
        print(
            "usage: aoe-lab [--mtu N] [--size BYTES] [--switch PORT_MTU]\n"
                + "Builds a lab with vblade serving e10.3 and keeps it until Ctrl-C.")
        exit(0)
    default: fail("unknown argument \(a) (see --help)")
    }
}

do {
    let lab = try Lab()
    let initiator: String
    let targetNamespace: String
    let target: String
    if let portMTU {
        let net = try lab.switched(mtu: mtu, portMTU: portMTU)
        (initiator, targetNamespace, target) = (net.initiator, net.targetNamespace, net.target)
    } else {
        let net = try lab.direct(mtu: mtu)
        (initiator, targetNamespace, target) = (net.initiator, net.targetNamespace, net.target)
    }
    let file = try lab.sparseFile("e10.3.img", size: size)
    let vblade = try lab.startVblade(shelf: 10, slot: 3, interface: target, namespace: targetNamespace, file: file)
    let line =
        "initiator=\(initiator) namespace=\(targetNamespace) target=\(target) file=\(file.path) vblade=\(vblade.pid ?? 0)\n"
    FileHandle.standardOutput.write(Data(line.utf8))
    while true { sleep(3600) }
} catch {
    fail("\(error)")
}

import AoELinux
import Dispatch
import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Every live lab of this process, so that Ctrl-C (SIGINT), SIGTERM and SIGHUP tear them all
/// down before the process dies, and so that labs left by a killed process are swept.
final class LabRegistry: Sendable {
    static let shared = LabRegistry()

    private let labs = Locked<[ObjectIdentifier: Lab]>([:])
    private let counter = Atomic<Int>(0)
    private let processTag: String

    private init() {
        var rng = SystemRandomNumberGenerator()
        let alphabet = Array("abcdefghijklmnopqrstuvwxyz0123456789")
        processTag = String((0..<4).map { _ in alphabet[Int(rng.next() % UInt64(alphabet.count))] })
        sweepStaleLabs()
        installSignalHandlers()
    }

    func nextID() -> String {
        let n = counter.wrappingAdd(1, ordering: .relaxed).newValue % 1296
        let alphabet = Array("abcdefghijklmnopqrstuvwxyz0123456789")
        return "aoet" + processTag + String([alphabet[n / 36], alphabet[n % 36]])
    }

    func register(_ lab: Lab) { labs.withLock { $0[ObjectIdentifier(lab)] = lab } }
    func unregister(_ lab: Lab) { _ = labs.withLock { $0.removeValue(forKey: ObjectIdentifier(lab)) } }

    private func installSignalHandlers() {
        let queue = DispatchQueue(label: "aoefs.lab.signals")
        for sig in [SIGINT, SIGTERM, SIGHUP] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: queue)
            source.setEventHandler { [self] in
                let live = labs.withLock { Array($0.values) }
                let msg = "aoefs lab: signal \(sig): tearing down \(live.count) lab(s)\n"
                _ = msg.withCString { write(2, $0, strlen($0)) }
                for lab in live { lab.teardown() }
                // Die of the same signal, so the parent sees why. Not raise(): this dispatch
                // thread blocks signals, and raise() targets the calling thread.
                signal(sig, SIG_DFL)
                kill(getpid(), sig)
            }
            source.resume()
            labSignalSources.append(source)
        }
    }

    /// Removes what labs of dead processes left behind (a test run killed with SIGKILL):
    /// their target processes (vblade or aoefs serve, checked by name, by PID), nft tables,
    /// links and namespaces.
    func sweepStaleLabs() {
        let base = ProcessInfo.processInfo.environment["AOEFS_LAB_DIR"] ?? NSTemporaryDirectory()
        ResourceLedger.sweep(base: base, prefix: "aoet-aoet")
    }
}

// The signal sources must stay alive. Written only from `LabRegistry.init`, which runs once
// (a static let's initialiser is run exactly once, under a lock), and never read.
nonisolated(unsafe) private var labSignalSources: [any DispatchSourceSignal] = []

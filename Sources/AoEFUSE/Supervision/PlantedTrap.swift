import Foundation

/// A trap planted on purpose, for the tests of issue 30 (a daemon that dies comes back under the
/// same mount): `AOEFS_PLANT_TRAP=start` traps every daemon as it starts (a crash loop);
/// `AOEFS_PLANT_TRAP=write:N` traps the mount's first daemon at its N-th image WRITE. Unset, it
/// costs one relaxed atomic load per WRITE.
public enum PlantedTrap {
    static let variable = "AOEFS_PLANT_TRAP"

    /// Traps now when every daemon is to trap at its start.
    public static func atStart() {
        if ProcessInfo.processInfo.environment[variable] == "start" { fatalError("planted trap (\(variable)=start)") }
    }

    /// Arms `fs` to trap at its N-th WRITE, in the mount's first daemon only.
    public static func arm(_ fs: AoEFileSystem) {
        let env = ProcessInfo.processInfo.environment
        guard let spec = env[variable], spec.hasPrefix("write:"), let n = Int(spec.dropFirst(6)), n > 0,
            env["AOEFS_INCARNATION"] == "1"
        else { return }
        fs.trapAfterWrites.store(n, ordering: .relaxed)
    }

    /// Called per image WRITE when armed.
    static func counted(_ fs: AoEFileSystem) {
        if fs.trapAfterWrites.subtract(1, ordering: .relaxed).newValue == 0 {
            fatalError("planted trap (\(variable)): a write")
        }
    }
}

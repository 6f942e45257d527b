import Foundation

/// Whether tests that need root, the lab tools or FUSE run here.
///
/// A test skips, with the reason shown, when what it needs is missing, unless
/// `AOEFS_REQUIRE_LAB=1` (set by `.ci/run`): then it runs and fails with the reason, so CI
/// can never pass by skipping.
public enum LabGate {
    /// True when CI demands that every lab test runs.
    public static var required: Bool { ProcessInfo.processInfo.environment["AOEFS_REQUIRE_LAB"] == "1" }

    /// True when a test whose prerequisite is missing for `reason` (nil: nothing missing) should run.
    public static func shouldRun(unless reason: String?) -> Bool { reason == nil || required }

    /// True when lab tests should run.
    public static var labShouldRun: Bool { shouldRun(unless: Lab.unavailableReason) }

    /// The skip message for lab tests.
    public static var labSkipReason: String { "lab test skipped: " + (Lab.unavailableReason ?? "") }
}

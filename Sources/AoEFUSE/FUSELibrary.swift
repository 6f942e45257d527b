import CFuse3

/// Facts about the libfuse3 this binary runs with.
public enum FUSELibrary {
    /// libfuse's package version, e.g. "3.14.0".
    public static var version: String { String(cString: fuse_pkgversion()) }
    /// The FUSE API version the shim compiles against (FUSE_USE_VERSION).
    public static let apiVersion = 314
}

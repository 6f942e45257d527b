import AoECore
import AoEEngine
import AoELinux
import CFuse3
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// One FUSE request's answer, sent exactly once: the libfuse contract ("must be passed to one of
/// the reply functions", fuse_lowlevel.h). A reply dropped unsent answers EIO rather than leave a
/// `dd` hanging forever (fuser's habit).
final class Reply: @unchecked Sendable {
    // @unchecked: `raw` is used by whichever single thread completes the request; every send
    // path goes through `take()`, whose atomic exchange lets exactly one of them through.
    private let raw: fuse_req_t
    private let sent = Atomic<Bool>(false)
    private let onDone: (@Sendable () -> Void)?

    init(_ raw: fuse_req_t, onDone: (@Sendable () -> Void)? = nil) {
        self.raw = raw
        self.onDone = onDone
    }

    private func take() -> fuse_req_t? {
        sent.exchange(true, ordering: .acquiringAndReleasing) ? nil : raw
    }

    func error(_ code: Int32) {
        guard let r = take() else { return }
        fuse_reply_err(r, code)
        onDone?()
    }

    func buffer(_ p: UnsafeRawPointer?, _ count: Int) {
        guard let r = take() else { return }
        fuse_reply_buf(r, p?.assumingMemoryBound(to: CChar.self), count)
        onDone?()
    }

    func bytes(_ b: [UInt8]) { b.withUnsafeBytes { buffer($0.baseAddress, $0.count) } }

    func written(_ count: Int) {
        guard let r = take() else { return }
        fuse_reply_write(r, count)
        onDone?()
    }

    func attributes(_ st: stat, timeout: Double) {
        guard let r = take() else { return }
        var st = st
        fuse_reply_attr(r, &st, timeout)
        onDone?()
    }

    func entry(_ e: fuse_entry_param) {
        guard let r = take() else { return }
        var e = e
        fuse_reply_entry(r, &e)
        onDone?()
    }

    func open(_ fi: UnsafeMutablePointer<fuse_file_info>) {
        guard let r = take() else { return }
        fuse_reply_open(r, fi)
        onDone?()
    }

    func statfs(_ s: statvfs) {
        guard let r = take() else { return }
        var s = s
        fuse_reply_statfs(r, &s)
        onDone?()
    }

    var request: fuse_req_t { raw }

    deinit {
        if !sent.load(ordering: .acquiring) {
            fuse_reply_err(raw, EIO)
            onDone?()
        }
    }
}

/// The one place engine errors become errno values for FUSE.
func errnoValue(for error: AoEIOError) -> Int32 {
    switch error {
    case .beyondEnd: ENOSPC
    case .noSuchTarget: ENODEV
    case .targetDown, .disabled, .ataError, .aoeError, .shutdown: EIO
    }
}

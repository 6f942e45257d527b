import AoEEngine
import AoELinux
import Foundation
import Synchronization

/// The buffer one thread reads /dev/fuse requests into: the largest WRITE (max_write, 1 MiB) and
/// its headers. A large WRITE's data may be adopted by the request (then sent to the wire from
/// here, no copy) and the next request goes into a new buffer.
final class RequestBuffer: @unchecked Sendable {
    // @unchecked: used by the one thread that reads into it.
    static let size = (1 << 20) + 4096
    private(set) var base: UnsafeMutableRawPointer
    private var adopted = false

    init?() {
        guard let b = malloc(Self.size) else { return nil }
        base = b
    }

    deinit { if !adopted { free(base) } }

    /// The current request's buffer becomes the caller's (freed with `free`, by `MallocBlock`).
    func adopt() -> UnsafeMutableRawPointer? {
        adopted = true
        return base
    }

    /// After a request: a new buffer if the last one was adopted. False when there is no memory.
    func renew() -> Bool {
        guard adopted else { return true }
        guard let b = malloc(Self.size) else { return false }
        base = b
        adopted = false
        return true
    }
}

/// One of the threads that serve a FUSE session when more than one does (issue 32): over the
/// ring, the thread of one `RingQueue` (it registers the entries, takes their requests and
/// submits their commits); over /dev/fuse, one of its readers. The thread that completes a
/// request's I/O (the link's receive thread) hands a ring reply over by queueing the commit and
/// `nudge`-ing this thread, which submits it: then the kernel copies the reply to the caller on
/// this thread, not on the receive thread.
final class ServingThread: @unchecked Sendable {
    // @unchecked: `posted` is locked; the rest is atomic or immutable.
    let index: Int
    /// How other threads wake this one: polled by its ring (or beside /dev/fuse).
    let wake: WakeUp
    /// Where this thread reads /dev/fuse requests into.
    let buffer: RequestBuffer
    /// True while the thread waits in the kernel with nothing else to do (see `nudge`).
    private let sleeping = Atomic<Bool>(false)
    private let stopping = Atomic<Bool>(false)
    private let serving = Atomic<Bool>(false)
    /// The thread's pthread_t, once it runs.
    private let identity = Atomic<UInt>(0)
    private let posted = Locked<[@Sendable (inout Outbox) -> Void]>([])

    init(index: Int) throws(ProcessError) {
        self.index = index
        wake = try WakeUp()
        guard let b = RequestBuffer() else { throw ProcessError("no memory for a request buffer") }
        buffer = b
    }

    /// True from the thread's start until it stops (then others submit its ring's commits).
    var isServing: Bool { serving.load(ordering: .acquiring) }
    /// True on this thread.
    var isCurrent: Bool { identity.load(ordering: .relaxed) == UInt(pthread_self()) }
    var stopRequested: Bool { stopping.load(ordering: .relaxed) }

    /// Wakes the thread if it sleeps: called after queueing a commit on its ring. Why this is
    /// enough: the thread sets `sleeping` before it reads the ring's SQ tail (under the ring's
    /// lock) for the submission it sleeps in; a commit queued under that lock is either in that
    /// submission, or was queued after the tail was read — and then `sleeping` is seen true
    /// here, and the eventfd wakes it. A thread that is awake submits in its next wait anyway.
    func nudge() {
        if sleeping.exchange(false, ordering: .sequentiallyConsistent) { wake.signal() }
    }

    /// Runs `work` on the thread at its next pass (always wakes it).
    func post(_ work: @escaping @Sendable (inout Outbox) -> Void) {
        posted.withLock { $0.append(work) }
        wake.signal()
    }

    func stop() {
        stopping.store(true, ordering: .relaxed)
        wake.signal()
    }

    fileprivate func begin() {
        identity.store(UInt(pthread_self()), ordering: .relaxed)
        serving.store(true, ordering: .releasing)
    }

    fileprivate func end() { serving.store(false, ordering: .releasing) }

    /// Sleeps in `wait` (the ring's submit-and-wait) marked as sleeping.
    fileprivate func sleep(_ wait: () -> Void) {
        sleeping.store(true, ordering: .sequentiallyConsistent)
        wait()
        sleeping.store(false, ordering: .relaxed)
    }

    fileprivate func runPosted(_ outbox: inout Outbox) {
        let work = posted.withLock { p in
            defer { p.removeAll() }
            return p
        }
        for w in work { w(&outbox) }
    }

    /// Arms the multishot poll of the wake-up eventfd on `ring`.
    func armWake(on ring: IORing) -> Bool {
        ring.queuePoll(fd: wake.descriptor, userData: RingTransport.wakeTag) && ring.submit() == 0
    }
}

extension KernelChannel {
    /// Starts serving: on the engine's first event loop (one thread), or on the serving threads.
    /// False when the engine has no loop (not started) and no threads serve.
    func startServing() -> Bool {
        guard !threads.isEmpty else { return fs.engine.attach(self) }
        for t in threads {
            let th = Thread { [self] in
                if let ring { serveRing(ring, on: t) } else { serveDevice(on: t) }
                threadsEnded.withLock { $0 += 1 }
                threadsEnded.broadcast()
            }
            th.name = "aoefs-fuse-\(t.index)"
            th.stackSize = 1 << 20
            th.start()
        }
        return true
    }

    /// Stops serving. When it returns, no request is read and no thread serves any more (replies
    /// still come from the engine's completions: then a ring's commits are submitted by whoever
    /// completes).
    func stopServing() {
        guard !threads.isEmpty else { return fs.engine.detach() }
        for t in threads { t.stop() }
        threadsEnded.wait(timeout: nil) { $0 >= threads.count }
    }

    /// A ring's thread: submits its commits and waits in one io_uring_enter, then handles what
    /// completed (requests, its wake-up, /dev/fuse for ring 0) and flushes the pass's outbox:
    /// the frames its requests asked for go out from here.
    private func serveRing(_ ring: RingTransport, on t: ServingThread) {
        let q = ring.rings[t.index]
        q.served(by: t)
        t.begin()
        defer { t.end() }
        if !t.armWake(on: q.ring) || (t.index == 0 && !ring.rearmPoll()) {
            fs.engine.note("fuse: serving thread \(t.index) cannot arm its ring's polls")
        }
        var outbox = Outbox()
        while !t.stopRequested {
            t.sleep { q.ring.submitAndWait() }
            outbox.reset()
            t.runPosted(&outbox)
            // A full batch may leave more behind: reap until one comes short.
            var reaped = IORing.reapLimit
            while reaped == IORing.reapLimit {
                reaped = q.ring.reap { c in handle(c, ring: ring, buffer: t.buffer, thread: t, &outbox) }
            }
            fs.engine.flush(&outbox)
        }
    }

    /// A reader of /dev/fuse: reads what is there, serves it, and waits for more (or its wake-up).
    private func serveDevice(on t: ServingThread) {
        t.begin()
        defer { t.end() }
        var outbox = Outbox()
        while !t.stopRequested {
            outbox.reset()
            t.runPosted(&outbox)
            let (alive, served) = serviceDevice(limit: 32, buffer: t.buffer, &outbox)
            fs.engine.flush(&outbox)
            if !alive { break }
            if served == 0, waitReadable(any: [device, t.wake.descriptor], timeout: .seconds(-1)) & 2 != 0 {
                t.wake.drain()
            }
        }
    }
}

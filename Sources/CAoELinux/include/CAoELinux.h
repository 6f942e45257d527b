// The C half of AoELinux: AF_PACKET socket set-up, interface ioctls and batched
// sendmmsg/recvmmsg, which Swift's Glibc module does not expose (struct mmsghdr, sendmmsg).
// Every function returns a non-negative result or -errno; none prints or exits.
#ifndef AOEFS_CAOELINUX_H
#define AOEFS_CAOELINUX_H
#include <stdint.h>
#include <stddef.h>

/// Facts about one interface, read with SIOCGIF* ioctls.
struct aoel_ifinfo {
    int ifindex;
    int mtu;
    uint8_t mac[6];
    int up;          /* IFF_UP and IFF_RUNNING-independent admin state */
    int running;     /* IFF_RUNNING: carrier */
    int ethernet;    /* ARPHRD_ETHER */
    int rcvbuf;      /* the receive buffer the kernel granted (bytes, as getsockopt reports) */
};

/// Which step of aoel_open failed, so the Swift side can say it in words.
enum aoel_step {
    AOEL_STEP_NONE = 0,
    AOEL_STEP_SOCKET,
    AOEL_STEP_NAME,
    AOEL_STEP_IFINDEX,
    AOEL_STEP_FLAGS,
    AOEL_STEP_MTU,
    AOEL_STEP_HWADDR,
    AOEL_STEP_NOT_ETHERNET,
    AOEL_STEP_DOWN,
    AOEL_STEP_BIND,
};

/// Opens a SOCK_RAW packet socket on `ifname` for `ethertype`, ignoring our own outgoing
/// copies, with a receive buffer of `rcvbuf` bytes (SO_RCVBUFFORCE, else SO_RCVBUF).
/// Returns the fd, or -errno with *step set to the step that failed.
int aoel_open(const char *ifname, uint16_t ethertype, int rcvbuf, struct aoel_ifinfo *info, int *step);

/// Re-reads ifindex, MTU, MAC and flags of `ifname` (MTUs change under a running link).
int aoel_ifinfo(int fd, const char *ifname, struct aoel_ifinfo *info);

/// Sends `count` frames with sendmmsg, each gathered from two pieces: `iov` holds 2 × count
/// struct iovec, frame i being iov[2i] (its headers) then iov[2i+1] (a write's data where the
/// request keeps it, or empty), so the data is copied once, by the kernel. A frame the kernel
/// refuses with ENOBUFS (a full queue, or a veth whose peer's MTU is smaller) is lost as on a
/// wire: counted in *dropped and skipped. A frame refused with EMSGSIZE (longer than the
/// interface's MTU, which was lowered under us) is counted in *oversized and skipped, so the
/// frames after it, small probes among them, still go. Returns how many frames were handled
/// (sent, dropped or oversized), or -errno if the first frame failed otherwise.
int aoel_send_gather(int fd, const void *iov, int count, uint64_t *dropped, uint64_t *oversized);

/// One receive system call that never waits: up to `max` frames by recvmmsg(MSG_DONTWAIT).
/// Message i < nplaced is scattered over {slots[i] (header bytes), places[i] (counts[i] bytes),
/// slots[i] + header (the rest of the slot)}, the others go whole into slots[i] (size bytes
/// each); our own outgoing copies and frames longer than a slot are dropped (*truncated counts
/// the latter). Returns the number kept (0 when none was queued): kept frame k is message
/// which[k], lengths[k] bytes long; or -errno. Settling a scattered message (was it the frame
/// predicted?) is the caller's (ReceiveLayout.settle).
int aoel_receive_placed(int fd, uint8_t *const *slots, size_t size, size_t header, void *const *places,
                        const uint32_t *counts, int nplaced, uint32_t *lengths, int32_t *which, int max,
                        uint64_t *truncated);
/// Waits (timeout_ms, -1: forever) until `fd` has a frame or one of `also` (up to 3
/// descriptors; -1 entries are ignored) is readable or closed: bit i of *also_ready says
/// also[i] is. Busy-polls them all for up to busy_poll_us microseconds first (0: not). Returns
/// 1 when `fd` is readable, 0 when not (timeout, or only `also`), or -errno.
int aoel_wait_frames(int fd, int timeout_ms, int busy_poll_us, const int *also, int also_count, int *also_ready);

/// One interface change as rtnetlink reports it (RTM_NEWLINK, RTM_DELLINK; rtnetlink(7)).
struct aoel_link_event {
    int deleted;        /* RTM_DELLINK: the interface is gone */
    int ifindex;
    char name[16];      /* IFLA_IFNAME (IFNAMSIZ) */
    int mtu;            /* IFLA_MTU, or 0 if absent */
    unsigned flags;     /* ifi_flags: IFF_UP, IFF_RUNNING, ... */
    uint8_t mac[6];     /* IFLA_ADDRESS, if has_mac */
    int has_mac;
};
/// Opens a NETLINK_ROUTE socket subscribed to link changes (RTMGRP_LINK). fd or -errno.
int aoel_link_monitor_open(void);
/// Waits up to timeout_ms for link changes and reads one datagram of them into `events` (at most
/// `max`). Returns how many (0 on timeout), -ENOBUFS when the kernel dropped events (the caller
/// must re-read every interface), or another -errno.
int aoel_link_monitor_read(int fd, struct aoel_link_event *events, int max, int timeout_ms);
/// Waits up to timeout_ms for fd to be readable (or closed): 1 if it is, 0 on timeout, or -errno.
int aoel_wait_readable(int fd, int timeout_ms);
/// A non-blocking, close-on-exec eventfd(2) counting from 0, or -errno.
int aoel_eventfd(void);
/// Waits up to timeout_ms (-1: forever) for any of `count` (at most 4) descriptors to be readable
/// (or closed; -1 entries are ignored): bit i of the result is set for fds[i]; 0 on timeout, or -errno.
int aoel_wait_any(const int *fds, int count, int timeout_ms);

/// Waits up to timeout_ms (-1: forever) for process `pid` (a child of ours, not yet reaped) to
/// exit, with pidfd_open(2) and poll(2): 1 if it has, 0 on timeout, or -errno.
int aoel_wait_exit(int pid, int timeout_ms);

/// Turns `signals` into bytes on a pipe: each one's handler writes the signal number, so a
/// thread blocked in aoel_signal_pipe_next handles it as ordinary work (no flag to poll).
/// Returns the pipe's read end, or -errno.
int aoel_signal_pipe_open(const int *signals, int count);
/// Blocks until a signal of aoel_signal_pipe_open arrives: its number, 0 after
/// aoel_signal_pipe_restore, or -1 on error.
int aoel_signal_pipe_next(void);
/// Puts `signals` back to their default action and wakes aoel_signal_pipe_next with 0.
int aoel_signal_pipe_restore(const int *signals, int count);

/// pipe2(2) with O_CLOEXEC (Swift's Glibc module hides pipe2: it needs _GNU_SOURCE).
int aoel_pipe_cloexec(int fds[2]);

/// Closes fd.
int aoel_close(int fd);

/// A SOCK_SEQPACKET socketpair, both ends close-on-exec (the supervisor's channel to its daemon).
int aoel_seqpacket_pair(int fds[2], int cloexec_first);
/// Sends one message of `length` bytes on `sock`, with descriptor `fd` (SCM_RIGHTS) when it is
/// not negative. Returns the bytes sent or -errno.
long aoel_send_message(int sock, const void *bytes, size_t length, int fd);
/// Receives one message into `bytes`; `*fd` is the descriptor it carried (close-on-exec), or -1.
/// Returns its length (0: the other end closed) or -errno.
long aoel_receive_message(int sock, void *bytes, size_t length, int *fd);
/// pidfd_open(2): a descriptor that turns readable when process `pid` exits; or -errno.
int aoel_pidfd_open(int pid);
/// Wraps the handlers of `signals` (the Swift backtracer's) so that the process ends with the
/// signal's default action after they ran, also for one sent by another process.
int aoel_die_after_crash_handlers(const int *signals, int count);

/// Keeps allocations below `mmap_threshold` bytes in malloc's heap and never trims the heap
/// below `trim_threshold`, so large I/O buffers are reused instead of mapped (and page-faulted)
/// anew for every request. Returns 0, or -1 if glibc refused a setting.
int aoel_keep_heap(size_t mmap_threshold, size_t trim_threshold);

/// open(2)'s O_DIRECT, which Swift's Glibc module hides (it needs _GNU_SOURCE) and whose value
/// differs between architectures.
int aoel_o_direct(void);

/// pread(2) that only copies what is already in the page cache (preadv2 RWF_NOWAIT): returns the
/// bytes read, -EAGAIN when it would have to wait for the disk, or another -errno.
long aoel_pread_cached(int fd, void *buffer, size_t length, long long offset);

/// pwrite(2) that does not wait (pwritev2 RWF_NOWAIT): returns the bytes written, -EAGAIN when it
/// would block (or -EOPNOTSUPP where the filesystem cannot tell), or another -errno.
long aoel_pwrite_nowait(int fd, const void *buffer, size_t length, long long offset);
/// fallocate(PUNCH_HOLE | KEEP_SIZE) of `length` bytes at `offset`, retried on EINTR: 0 or -errno.
int aoel_punch_hole(int fd, long long offset, long long length);

/// Sends logs to syslog from now on, as `ident` with the PID, facility LOG_DAEMON.
void aoel_openlog(const char *ident);
/// One line to syslog at `priority` (LOG_ERR … LOG_DEBUG); printf(3) never sees `message`.
void aoel_syslog(int priority, const char *message);

/// An io_uring (io_uring_setup(2)) with 128-byte SQEs, as FUSE-over-io_uring needs: its mapped
/// rings. Raw system calls, no liburing. One thread at a time may queue and submit (the Swift
/// side locks); reaping is done by one thread.
struct aoel_ring {
    int fd;
    unsigned sq_entries, cq_entries;
    unsigned *sq_head, *sq_tail, *sq_mask, *sq_array;
    unsigned *cq_head, *cq_tail, *cq_mask;
    void *cqes;
    uint8_t *sqes;
    void *sq_map, *cq_map;
    size_t sq_map_len, cq_map_len, sqes_len;
    unsigned tail;      /* our SQ tail: SQEs written up to here */
    unsigned submitted; /* the tail the kernel was last told about */
};

/// Creates a ring of `entries` SQEs (a power of two) and 2 × as many CQEs. 0 or -errno.
int aoel_ring_open(struct aoel_ring *ring, unsigned entries);
/// Unmaps and closes the ring; the kernel cancels what is still queued.
void aoel_ring_close(struct aoel_ring *ring);
/// Queues an IORING_OP_URING_CMD on `fd` (/dev/fuse) with `cmd_op` and the command area
/// struct fuse_uring_cmd_req {flags 0, commit_id, qid}; `iov`, if not NULL, is a two-element
/// iovec (REGISTER: header area and payload), which must stay valid. -EBUSY when the SQ is full.
int aoel_ring_fuse_cmd(struct aoel_ring *ring, int fd, uint32_t cmd_op, uint16_t qid, uint64_t commit_id,
                       const void *iov, uint64_t user_data);
/// Queues a multishot IORING_OP_POLL_ADD for POLLIN on `fd` (one CQE per readiness, flagged
/// IORING_CQE_F_MORE while it stays armed). -EBUSY when the SQ is full.
int aoel_ring_poll(struct aoel_ring *ring, int fd, uint64_t user_data);
/// Tells the kernel about every queued SQE (io_uring_enter), retrying EINTR. Returns how many
/// it took, or -errno.
int aoel_ring_submit(struct aoel_ring *ring);
/// Submits the SQEs the kernel has not consumed (`tail`: the SQ tail read under the Swift side's
/// lock) and waits until at least one completion is there (io_uring_enter with GETEVENTS). The
/// wait holds no lock: other threads queue meanwhile and wake the waiter by other means (a
/// polled eventfd). 0 after a wake (EINTR included), or -errno.
int aoel_ring_submit_and_wait(struct aoel_ring *ring, unsigned tail);
/// The SQ tail queued so far (under the Swift side's lock).
unsigned aoel_ring_tail(const struct aoel_ring *ring);
/// One completion, as the CQE has it.
struct aoel_completion {
    uint64_t user_data;
    int32_t res;
    uint32_t flags;
};
/// Takes up to `max` completions into `out`. Returns how many.
int aoel_ring_reap(struct aoel_ring *ring, struct aoel_completion *out, int max);

/// An AoE speaker heard by `aoel_listen`: source MAC, the shelf.slot of its frame, and whether
/// it was a response (a target) or a request (an initiator).
struct aoel_heard {
    uint8_t mac[6];
    uint16_t shelf;
    uint8_t slot;
    uint8_t response;
};

/// Listens on `ifname` for `millis` ms without sending: records up to `max` distinct AoE
/// speakers in `heard` and counts IP frames (IPv4, ARP, unicast IPv6) in `ip_frames`. Returns
/// how many speakers, or -errno.
int aoel_listen(const char *ifname, int millis, struct aoel_heard *heard, int max, int *ip_frames);

#endif

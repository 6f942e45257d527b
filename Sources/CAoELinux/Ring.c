// See CAoELinux.h. A minimal io_uring for FUSE-over-io_uring: io_uring_setup(2),
// io_uring_enter(2), and the ring layout of <linux/io_uring.h> (Linux 6.1 headers in Debian 12,
// which have IORING_SETUP_SQE128 and IORING_OP_URING_CMD). The barriers follow the kernel's
// io_uring documentation: the SQ tail and the CQ head are stored with release semantics, the
// CQ tail is loaded with acquire semantics.
#define _GNU_SOURCE
#include "CAoELinux.h"

#include <errno.h>
#include <linux/io_uring.h>
#include <poll.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

// The kernel's command area of a 128-byte SQE holds this (include/uapi/linux/fuse.h, 7.42,
// struct fuse_uring_cmd_req); Debian 12's header predates it.
struct aoel_fuse_uring_cmd_req {
    uint64_t flags;
    uint64_t commit_id;
    uint16_t qid;
    uint8_t padding[6];
};

#define SQE_SIZE 128

int aoel_ring_open(struct aoel_ring *ring, unsigned entries) {
    memset(ring, 0, sizeof(*ring));
    struct io_uring_params p;
    memset(&p, 0, sizeof(p));
    // SQE128: FUSE's command does not fit a 64-byte SQE (fs/fuse/dev_uring.c refuses without).
    // CQSIZE: room for a completion from every entry and the poll at once.
    // COOP_TASKRUN (5.19): the kernel hands a request to an entry by task work on the thread
    // that submitted it; by default that interrupts the thread (an IPI) wherever it runs. With
    // this flag the work waits for the thread's next system call, or wakes it if it sleeps —
    // and the thread serving the ring makes system calls all the time (recvmmsg, sendmmsg).
    p.flags = IORING_SETUP_SQE128 | IORING_SETUP_CQSIZE | IORING_SETUP_COOP_TASKRUN;
    p.cq_entries = entries * 2;
    int fd = (int)syscall(__NR_io_uring_setup, entries, &p);
    if (fd < 0 && errno == EINVAL) {
        p.flags &= ~IORING_SETUP_COOP_TASKRUN;  // before 5.19
        fd = (int)syscall(__NR_io_uring_setup, entries, &p);
    }
    if (fd < 0) return -errno;
    ring->fd = fd;
    ring->sq_entries = p.sq_entries;
    ring->cq_entries = p.cq_entries;
    ring->sq_map_len = p.sq_off.array + p.sq_entries * sizeof(unsigned);
    ring->cq_map_len = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
    int single = (p.features & IORING_FEAT_SINGLE_MMAP) != 0;
    if (single && ring->cq_map_len > ring->sq_map_len) ring->sq_map_len = ring->cq_map_len;
    ring->sq_map = mmap(NULL, ring->sq_map_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd,
                        IORING_OFF_SQ_RING);
    if (ring->sq_map == MAP_FAILED) goto fail;
    if (single) {
        ring->cq_map = ring->sq_map;
    } else {
        ring->cq_map = mmap(NULL, ring->cq_map_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd,
                            IORING_OFF_CQ_RING);
        if (ring->cq_map == MAP_FAILED) goto fail;
    }
    ring->sqes_len = p.sq_entries * SQE_SIZE;
    ring->sqes = mmap(NULL, ring->sqes_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_SQES);
    if (ring->sqes == MAP_FAILED) goto fail;
    uint8_t *sq = ring->sq_map, *cq = ring->cq_map;
    ring->sq_head = (unsigned *)(sq + p.sq_off.head);
    ring->sq_tail = (unsigned *)(sq + p.sq_off.tail);
    ring->sq_mask = (unsigned *)(sq + p.sq_off.ring_mask);
    ring->sq_array = (unsigned *)(sq + p.sq_off.array);
    ring->cq_head = (unsigned *)(cq + p.cq_off.head);
    ring->cq_tail = (unsigned *)(cq + p.cq_off.tail);
    ring->cq_mask = (unsigned *)(cq + p.cq_off.ring_mask);
    ring->cqes = cq + p.cq_off.cqes;
    // The SQ index array maps slot i to SQE i once and for all.
    for (unsigned i = 0; i < p.sq_entries; i++) ring->sq_array[i] = i;
    ring->tail = ring->submitted = *ring->sq_tail;
    return 0;
fail:;
    int e = errno;
    aoel_ring_close(ring);
    return -e;
}

void aoel_ring_close(struct aoel_ring *ring) {
    if (ring->sqes && ring->sqes != MAP_FAILED) munmap(ring->sqes, ring->sqes_len);
    if (ring->cq_map && ring->cq_map != MAP_FAILED && ring->cq_map != ring->sq_map) munmap(ring->cq_map, ring->cq_map_len);
    if (ring->sq_map && ring->sq_map != MAP_FAILED) munmap(ring->sq_map, ring->sq_map_len);
    if (ring->fd > 0) close(ring->fd);
    memset(ring, 0, sizeof(*ring));
    ring->fd = -1;
}

// The next free SQE, zeroed, or NULL when every slot holds one the kernel has not consumed.
static struct io_uring_sqe *next_sqe(struct aoel_ring *ring) {
    unsigned head = __atomic_load_n(ring->sq_head, __ATOMIC_ACQUIRE);
    if (ring->tail - head >= ring->sq_entries) return NULL;
    struct io_uring_sqe *sqe = (struct io_uring_sqe *)(ring->sqes + (ring->tail & *ring->sq_mask) * SQE_SIZE);
    memset(sqe, 0, SQE_SIZE);
    return sqe;
}

static void publish(struct aoel_ring *ring) {
    ring->tail++;
    __atomic_store_n(ring->sq_tail, ring->tail, __ATOMIC_RELEASE);
}

int aoel_ring_fuse_cmd(struct aoel_ring *ring, int fd, uint32_t cmd_op, uint16_t qid, uint64_t commit_id,
                       const void *iov, uint64_t user_data) {
    struct io_uring_sqe *sqe = next_sqe(ring);
    if (!sqe) return -EBUSY;
    sqe->opcode = IORING_OP_URING_CMD;
    sqe->fd = fd;
    sqe->cmd_op = cmd_op;
    sqe->user_data = user_data;
    if (iov) {
        // REGISTER: sqe->addr points at {header area, payload} (fuse_uring_get_iovec_from_sqe).
        sqe->addr = (uint64_t)(uintptr_t)iov;
        sqe->len = 2;
    }
    struct aoel_fuse_uring_cmd_req *req = (struct aoel_fuse_uring_cmd_req *)sqe->cmd;
    req->commit_id = commit_id;
    req->qid = qid;
    publish(ring);
    return 0;
}

int aoel_ring_poll(struct aoel_ring *ring, int fd, uint64_t user_data) {
    struct io_uring_sqe *sqe = next_sqe(ring);
    if (!sqe) return -EBUSY;
    sqe->opcode = IORING_OP_POLL_ADD;
    sqe->fd = fd;
    sqe->poll32_events = POLLIN;
    sqe->len = IORING_POLL_ADD_MULTI;
    sqe->user_data = user_data;
    publish(ring);
    return 0;
}

int aoel_ring_submit(struct aoel_ring *ring) {
    // What the kernel has not consumed yet (its SQ head): another thread's enter may have
    // submitted some of ours (`aoel_ring_submit_and_wait`).
    unsigned n = ring->tail - __atomic_load_n(ring->sq_head, __ATOMIC_ACQUIRE);
    if (n == 0) return 0;
    long r;
    do {
        r = syscall(__NR_io_uring_enter, ring->fd, n, 0, 0, NULL, 0);
    } while (r < 0 && errno == EINTR);
    if (r < 0) return -errno;
    ring->submitted += (unsigned)r;
    return (int)r;
}

unsigned aoel_ring_tail(const struct aoel_ring *ring) { return ring->tail; }

int aoel_ring_submit_and_wait(struct aoel_ring *ring, unsigned tail) {
    // The kernel submits at most what lies between its SQ head and the published tail, so a
    // count that includes SQEs another thread submitted meanwhile is harmless.
    unsigned head = __atomic_load_n(ring->sq_head, __ATOMIC_ACQUIRE);
    unsigned n = tail - head;
    long r = syscall(__NR_io_uring_enter, ring->fd, n, 1, IORING_ENTER_GETEVENTS, NULL, 0);
    if (r < 0 && errno != EINTR && errno != EAGAIN && errno != EBUSY) return -errno;
    return 0;
}

int aoel_ring_reap(struct aoel_ring *ring, struct aoel_completion *out, int max) {
    unsigned head = *ring->cq_head;
    unsigned tail = __atomic_load_n(ring->cq_tail, __ATOMIC_ACQUIRE);
    int n = 0;
    struct io_uring_cqe *cqes = ring->cqes;
    while (head != tail && n < max) {
        struct io_uring_cqe *c = &cqes[head & *ring->cq_mask];
        out[n].user_data = c->user_data;
        out[n].res = c->res;
        out[n].flags = c->flags;
        n++;
        head++;
    }
    __atomic_store_n(ring->cq_head, head, __ATOMIC_RELEASE);
    return n;
}

// See CAoELinux.h. packet(7), netdevice(7), sendmmsg(2), recvmmsg(2).
#define _GNU_SOURCE
#include "CAoELinux.h"

#include <errno.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <netpacket/packet.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <malloc.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <syslog.h>
#include <unistd.h>
#include <arpa/inet.h>

#ifndef PACKET_IGNORE_OUTGOING
#define PACKET_IGNORE_OUTGOING 23 /* Linux 4.20 */
#endif

#define BATCH_MAX 256

// The C side's one EINTR loop: evaluates `expr` (a call returning < 0 with errno on failure)
// again while it fails with EINTR, and leaves its result in `r`.
#define AOEL_RETRY(r, expr) do { (r) = (expr); } while ((r) < 0 && errno == EINTR)

int aoel_ifinfo(int fd, const char *ifname, struct aoel_ifinfo *info) {
    struct ifreq ifr;
    if (strlen(ifname) >= IFNAMSIZ) return -ENAMETOOLONG;
    memset(&ifr, 0, sizeof ifr);
    strncpy(ifr.ifr_name, ifname, IFNAMSIZ - 1);
    if (ioctl(fd, SIOCGIFINDEX, &ifr) < 0) return -errno;
    info->ifindex = ifr.ifr_ifindex;
    if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0) return -errno;
    info->up = (ifr.ifr_flags & IFF_UP) != 0;
    info->running = (ifr.ifr_flags & IFF_RUNNING) != 0;
    if (ioctl(fd, SIOCGIFMTU, &ifr) < 0) return -errno;
    info->mtu = ifr.ifr_mtu;
    if (ioctl(fd, SIOCGIFHWADDR, &ifr) < 0) return -errno;
    info->ethernet = ifr.ifr_hwaddr.sa_family == ARPHRD_ETHER;
    memcpy(info->mac, ifr.ifr_hwaddr.sa_data, 6);
    return 0;
}

int aoel_open(const char *ifname, uint16_t ethertype, int rcvbuf, struct aoel_ifinfo *info, int *step) {
    *step = AOEL_STEP_SOCKET;
    // Protocol 0: the socket receives nothing until bind() below names both the ethertype and
    // the interface. Created with the ethertype, it would queue AoE frames of *every* interface
    // in between, and the interface allow-list is AoE's only security (packet(7): "If protocol
    // is set to zero, no packets are received").
    int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;

    struct ifreq ifr;
    *step = AOEL_STEP_NAME;
    if (strlen(ifname) == 0 || strlen(ifname) >= IFNAMSIZ) { close(fd); return -ENODEV; }
    memset(&ifr, 0, sizeof ifr);
    strncpy(ifr.ifr_name, ifname, IFNAMSIZ - 1);

    *step = AOEL_STEP_IFINDEX;
    if (ioctl(fd, SIOCGIFINDEX, &ifr) < 0) goto fail;
    info->ifindex = ifr.ifr_ifindex;
    *step = AOEL_STEP_FLAGS;
    if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0) goto fail;
    info->up = (ifr.ifr_flags & IFF_UP) != 0;
    info->running = (ifr.ifr_flags & IFF_RUNNING) != 0;
    *step = AOEL_STEP_MTU;
    if (ioctl(fd, SIOCGIFMTU, &ifr) < 0) goto fail;
    info->mtu = ifr.ifr_mtu;
    *step = AOEL_STEP_HWADDR;
    if (ioctl(fd, SIOCGIFHWADDR, &ifr) < 0) goto fail;
    info->ethernet = ifr.ifr_hwaddr.sa_family == ARPHRD_ETHER;
    memcpy(info->mac, ifr.ifr_hwaddr.sa_data, 6);
    if (!info->ethernet) { *step = AOEL_STEP_NOT_ETHERNET; close(fd); return -EPROTOTYPE; }
    if (!info->up) { *step = AOEL_STEP_DOWN; close(fd); return -ENETDOWN; }

    // Our own transmissions are looped back to packet sockets as PACKET_OUTGOING copies;
    // the kernel can skip them for us. Older kernels lack the option: receive filters by type.
    int one = 1;
    (void)setsockopt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof one);
    // PACKET_QDISC_BYPASS was measured for issue 32 and is not set: the engine's CPU per GB on
    // 1 MiB writes with it was 0.99 × without (0.78–1.15, 5 alternating pairs, aoefs bench).

    // A full window of jumbo responses must fit, or the kernel drops them silently.
    // SO_RCVBUFFORCE passes rmem_max (needs CAP_NET_ADMIN); SO_RCVBUF is the fallback.
    if (rcvbuf > 0 && setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf) < 0)
        (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    if (rcvbuf > 0 && setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &rcvbuf, sizeof rcvbuf) < 0)
        (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &rcvbuf, sizeof rcvbuf);
    socklen_t len = sizeof info->rcvbuf;
    (void)getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &info->rcvbuf, &len);

    *step = AOEL_STEP_BIND;
    struct sockaddr_ll sll;
    memset(&sll, 0, sizeof sll);
    sll.sll_family = AF_PACKET;
    sll.sll_protocol = htons(ethertype);
    sll.sll_ifindex = info->ifindex;
    if (bind(fd, (struct sockaddr *)&sll, sizeof sll) < 0) goto fail;
    *step = AOEL_STEP_NONE;
    return fd;
fail:;
    int e = errno;
    close(fd);
    return -e;
}

int aoel_send_gather(int fd, const void *iovecs, int count, uint64_t *dropped, uint64_t *oversized) {
    struct mmsghdr msgs[BATCH_MAX];
    const struct iovec *iov = iovecs;
    int sent = 0;
    while (sent < count) {
        int n = count - sent < BATCH_MAX ? count - sent : BATCH_MAX;
        memset(msgs, 0, sizeof(struct mmsghdr) * (size_t)n);
        for (int i = 0; i < n; i++) {
            msgs[i].msg_hdr.msg_iov = (struct iovec *)&iov[2 * (sent + i)];
            msgs[i].msg_hdr.msg_iovlen = 2;
        }
        int r;
        AOEL_RETRY(r, sendmmsg(fd, msgs, (unsigned)n, 0));
        if (r < 0) {
            if (errno == ENOBUFS) { (*dropped)++; sent++; continue; }  // frame `sent` is lost
            if (errno == EMSGSIZE) { (*oversized)++; sent++; continue; }  // longer than the MTU now
            return sent > 0 ? sent : -errno;
        }
        sent += r;
        // sendmmsg stops at the first failing frame; the loop retries from there, so an ENOBUFS
        // frame is seen by the next call as r < 0 and skipped.
    }
    return sent;
}

/// Nanoseconds on the monotonic clock.
static int64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

int aoel_receive_placed(int fd, uint8_t *const *slots, size_t size, size_t header, void *const *places,
                        const uint32_t *counts, int nplaced, uint32_t *lengths, int32_t *which, int max,
                        uint64_t *truncated) {
    if (max > BATCH_MAX) max = BATCH_MAX;
    if (nplaced > max) nplaced = max;
    struct mmsghdr msgs[BATCH_MAX];
    struct iovec iov[3 * BATCH_MAX];
    struct sockaddr_ll from[BATCH_MAX];
    memset(msgs, 0, sizeof(struct mmsghdr) * (size_t)max);
    for (int i = 0; i < max; i++) {
        struct iovec *v = &iov[3 * i];
        if (i < nplaced && header + counts[i] <= size) {
            // Headers into the slot, data where it belongs, anything longer after the headers:
            // the three hold what the slot alone would (ReceiveLayout).
            v[0] = (struct iovec){.iov_base = slots[i], .iov_len = header};
            v[1] = (struct iovec){.iov_base = places[i], .iov_len = counts[i]};
            v[2] = (struct iovec){.iov_base = slots[i] + header, .iov_len = size - header - counts[i]};
            msgs[i].msg_hdr.msg_iovlen = 3;
        } else {
            v[0] = (struct iovec){.iov_base = slots[i], .iov_len = size};
            msgs[i].msg_hdr.msg_iovlen = 1;
        }
        msgs[i].msg_hdr.msg_iov = v;
        msgs[i].msg_hdr.msg_name = &from[i];
        msgs[i].msg_hdr.msg_namelen = sizeof from[i];
    }
    int r;
    AOEL_RETRY(r, recvmmsg(fd, msgs, (unsigned)max, MSG_DONTWAIT | MSG_TRUNC, NULL));
    if (r < 0) return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -errno;
    int kept = 0;
    for (int i = 0; i < r; i++) {
        if (from[i].sll_pkttype == PACKET_OUTGOING) continue;
        if (msgs[i].msg_len > size || (msgs[i].msg_hdr.msg_flags & MSG_TRUNC)) { (*truncated)++; continue; }
        which[kept] = i;
        lengths[kept++] = msgs[i].msg_len;
    }
    return kept;
}

int aoel_wait_frames(int fd, int timeout_ms, int busy_poll_us, const int *also, int also_count, int *also_ready) {
    *also_ready = 0;
    if (also_count > 3) also_count = 3;
    struct pollfd p[4] = {{.fd = fd, .events = POLLIN}};
    int n = 1 + also_count;
    for (int i = 0; i < also_count; i++) p[1 + i] = (struct pollfd){.fd = also[i], .events = POLLIN};
    int pr = 0;
    // Busy poll first (as the kernel's SO_BUSY_POLL, but over both descriptors): the next
    // frame or request usually comes within tens of microseconds of the last, and a thread
    // that slept must be woken by an interrupt on the other CPU first. On this 2-vCPU VM a
    // 4 KiB read at QD 1 went from 11 k to 22 k IOPS through the mount, 13 k to 33 k alone.
    if (busy_poll_us > 0) {
        int64_t end = now_ns() + (int64_t)busy_poll_us * 1000;
        do {
            AOEL_RETRY(pr, poll(p, n, 0));
            // Another thread that can run on this CPU (our reply thread, the reader, the
            // target on a small VM) goes first: the poll must not take its time.
            if (pr == 0) sched_yield();
        } while (pr == 0 && now_ns() < end);
    }
    if (pr == 0) AOEL_RETRY(pr, poll(p, n, timeout_ms));
    if (pr < 0) return -errno;
    if (pr == 0) return 0;
    // Another descriptor (a FUSE session sharing this thread, a wake-up) is ready, or closed.
    for (int i = 0; i < also_count; i++)
        if (also[i] >= 0 && p[1 + i].revents != 0) *also_ready |= 1 << i;
    return p[0].revents != 0 ? 1 : 0;
}

int aoel_wait_readable(int fd, int timeout_ms) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int pr;
    AOEL_RETRY(pr, poll(&p, 1, timeout_ms));
    return pr < 0 ? -errno : pr;
}

int aoel_o_direct(void) { return O_DIRECT; }

int aoel_eventfd(void) {
    int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

int aoel_wait_any(const int *fds, int count, int timeout_ms) {
    if (count > 4) count = 4;
    struct pollfd p[4];
    for (int i = 0; i < count; i++) p[i] = (struct pollfd){.fd = fds[i], .events = POLLIN};
    int pr;
    AOEL_RETRY(pr, poll(p, (nfds_t)count, timeout_ms));
    if (pr <= 0) return pr < 0 ? -errno : 0;
    int ready = 0;
    for (int i = 0; i < count; i++)
        if (fds[i] >= 0 && p[i].revents != 0) ready |= 1 << i;
    return ready;
}

int aoel_close(int fd) { return close(fd) < 0 ? -errno : 0; }

int aoel_keep_heap(size_t mmap_threshold, size_t trim_threshold) {
    int a = mallopt(M_MMAP_THRESHOLD, (int)mmap_threshold);
    int b = mallopt(M_TRIM_THRESHOLD, (int)trim_threshold);
    return (a == 1 && b == 1) ? 0 : -1;
}

// openlog keeps the pointer: give it a copy that lives as long as the process.
void aoel_openlog(const char *ident) { openlog(strdup(ident), LOG_PID | LOG_NDELAY, LOG_DAEMON); }

void aoel_syslog(int priority, const char *message) { syslog(priority, "%s", message); }

long aoel_pread_cached(int fd, void *buffer, size_t length, long long offset) {
    struct iovec v = {.iov_base = buffer, .iov_len = length};
    ssize_t n;
    AOEL_RETRY(n, preadv2(fd, &v, 1, (off_t)offset, RWF_NOWAIT));
    return n < 0 ? -errno : (long)n;
}

long aoel_pwrite_nowait(int fd, const void *buffer, size_t length, long long offset) {
    struct iovec v = {.iov_base = (void *)buffer, .iov_len = length};
    ssize_t n;
    AOEL_RETRY(n, pwritev2(fd, &v, 1, (off_t)offset, RWF_NOWAIT));
    return n < 0 ? -errno : (long)n;
}

int aoel_punch_hole(int fd, long long offset, long long length) {
    int r;
    AOEL_RETRY(r, fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)offset, (off_t)length));
    return r < 0 ? -errno : 0;
}

int aoel_wait_exit(int pid, int timeout_ms) {
    // pidfd_open(2), Linux 5.3: a descriptor that turns readable when the process exits, so the
    // wait is a poll, not a loop of waitpid(WNOHANG) and sleeps.
    int fd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (fd < 0) return -errno;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int pr;
    AOEL_RETRY(pr, poll(&p, 1, timeout_ms));
    int e = errno;
    close(fd);
    return pr < 0 ? -e : pr;
}

// The signal pipe: a handler that only writes the signal's number to a pipe (write(2) is
// async-signal-safe), so a thread blocked in read(2) turns a signal into ordinary work.
static int signal_pipe[2] = {-1, -1};

static void signal_pipe_handler(int sig) {
    int saved = errno;
    unsigned char b = (unsigned char)sig;
    (void)!write(signal_pipe[1], &b, 1);
    errno = saved;
}

int aoel_signal_pipe_open(const int *signals, int count) {
    // A fresh pipe each time: the 0 byte that ended an earlier watcher must not end this one.
    if (signal_pipe[0] >= 0) { close(signal_pipe[0]); close(signal_pipe[1]); }
    if (pipe2(signal_pipe, O_CLOEXEC) < 0) return -errno;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = signal_pipe_handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    for (int i = 0; i < count; i++)
        if (sigaction(signals[i], &sa, NULL) < 0) return -errno;
    return signal_pipe[0];
}

int aoel_signal_pipe_restore(const int *signals, int count) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    sigemptyset(&sa.sa_mask);
    for (int i = 0; i < count; i++) (void)sigaction(signals[i], &sa, NULL);
    // Byte 0 is no signal: it wakes the reader to end.
    unsigned char b = 0;
    return signal_pipe[1] >= 0 && write(signal_pipe[1], &b, 1) < 0 ? -errno : 0;
}

int aoel_signal_pipe_next(void) {
    unsigned char b;
    ssize_t n;
    AOEL_RETRY(n, read(signal_pipe[0], &b, 1));
    return n == 1 ? b : -1;
}

int aoel_pipe_cloexec(int fds[2]) { return pipe2(fds, O_CLOEXEC) < 0 ? -errno : 0; }

// The supervisor's channel to its daemon (issue 30): a SOCK_SEQPACKET socketpair whose messages
// are short text lines, one of which carries the mount's /dev/fuse descriptor (SCM_RIGHTS).
#include "CAoELinux.h"
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

int aoel_seqpacket_pair(int fds[2], int cloexec_first) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) return -errno;
    (void)cloexec_first;
    fds[0] = sv[0];
    fds[1] = sv[1];
    return 0;
}

long aoel_send_message(int sock, const void *bytes, size_t length, int fd) {
    struct iovec iov = {.iov_base = (void *)bytes, .iov_len = length};
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } control;
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
    if (fd >= 0) {
        memset(&control, 0, sizeof(control));
        msg.msg_control = control.buf;
        msg.msg_controllen = sizeof(control.buf);
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &fd, sizeof(int));
    }
    ssize_t n;
    do { n = sendmsg(sock, &msg, MSG_NOSIGNAL); } while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : n;
}

long aoel_receive_message(int sock, void *bytes, size_t length, int *fd) {
    struct iovec iov = {.iov_base = bytes, .iov_len = length};
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } control;
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
                         .msg_controllen = sizeof(control.buf)};
    *fd = -1;
    ssize_t n;
    do { n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC); } while (n < 0 && errno == EINTR);
    if (n < 0) return -errno;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS && c->cmsg_len >= CMSG_LEN(sizeof(int))) {
            memcpy(fd, CMSG_DATA(c), sizeof(int));
        }
    }
    return n;
}

int aoel_pidfd_open(int pid) {
    int fd = (int)syscall(SYS_pidfd_open, pid, 0);
    return fd < 0 ? -errno : fd;
}

// A crash signal sent by another process (kill -ABRT) is caught by the Swift runtime's
// backtracer, which prints the backtrace and then lets the process go on: a daemon told to abort
// would keep serving. This wraps each handler in place: the old one runs (the backtrace), then
// the default action ends the process, so its supervisor starts the next daemon.
static struct sigaction crash_previous[65];

static void crash_then_die(int sig, siginfo_t *info, void *context) {
    struct sigaction *old = &crash_previous[sig];
    if (old->sa_flags & SA_SIGINFO) {
        if (old->sa_sigaction) old->sa_sigaction(sig, info, context);
    } else if (old->sa_handler != SIG_DFL && old->sa_handler != SIG_IGN && old->sa_handler) {
        old->sa_handler(sig);
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

int aoel_die_after_crash_handlers(const int *signals, int count) {
    for (int i = 0; i < count; i++) {
        int sig = signals[i];
        if (sig <= 0 || sig > 64) continue;
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = crash_then_die;
        sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
        sigemptyset(&sa.sa_mask);
        if (sigaction(sig, &sa, &crash_previous[sig]) < 0) return -errno;
    }
    return 0;
}

// libfuse3's low-level API for Swift. FUSE_USE_VERSION must be ≥ 312: Swift cannot see the
// function-like macros that pick versioned symbols, so it links the plain names, whose ABI is
// the 3.12 one (reference/swift-fuse-and-packet-notes.md, pitfall 1).
#ifndef AOEFS_CFUSE3_SHIM_H
#define AOEFS_CFUSE3_SHIM_H
#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <errno.h>

// fuse_file_info's flags are C bitfields; small setters keep the Swift side obvious.
static inline void aoefs_fi_set_direct_io(struct fuse_file_info *fi, int on) { fi->direct_io = on ? 1 : 0; }
static inline void aoefs_fi_set_nonseekable(struct fuse_file_info *fi, int on) { fi->nonseekable = on ? 1 : 0; }

// umount2 with MNT_DETACH: how a session is told to go away from any thread (pitfall 13).
static inline int aoefs_umount_detach(const char *path) { return umount2(path, MNT_DETACH); }

#include <poll.h>
// Waits up to `ms` for the kernel to end a FUSE connection (POLLERR on its descriptor): after a
// lazy unmount the superblock goes, and the connection with it, a little later. Returns 1 once
// it has ended, 0 on timeout.
static inline int aoefs_wait_connection_ended(int fd, int ms) {
    struct pollfd p = { .fd = fd, .events = 0 };
    for (;;) {
        int r = poll(&p, 1, ms);
        if (r < 0 && errno == EINTR) continue;
        return r == 1 && (p.revents & POLLERR) ? 1 : 0;
    }
}
#endif

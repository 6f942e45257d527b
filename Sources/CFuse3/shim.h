// libfuse3's low-level API for Swift. FUSE_USE_VERSION must be ≥ 312: Swift cannot see the
// function-like macros that pick versioned symbols, so it links the plain names, whose ABI is
// the 3.12 one (reference/swift-fuse-and-packet-notes.md, pitfall 1).
#ifndef AOEFS_CFUSE3_SHIM_H
#define AOEFS_CFUSE3_SHIM_H
#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>
#include <sys/mount.h>
#include <sys/stat.h>

// fuse_file_info's flags are C bitfields; small setters keep the Swift side obvious.
static inline void aoefs_fi_set_direct_io(struct fuse_file_info *fi, int on) { fi->direct_io = on ? 1 : 0; }
static inline void aoefs_fi_set_nonseekable(struct fuse_file_info *fi, int on) { fi->nonseekable = on ? 1 : 0; }

// umount2 with MNT_DETACH: how a session is told to go away from any thread (pitfall 13).
static inline int aoefs_umount_detach(const char *path) { return umount2(path, MNT_DETACH); }

#endif

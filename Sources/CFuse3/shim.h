// libfuse3's low-level API for Swift. FUSE_USE_VERSION must be ≥ 312: Swift cannot see the
// function-like macros that pick versioned symbols, so it links the plain names, whose ABI is
// the 3.12 one (reference/swift-fuse-and-packet-notes.md, pitfall 1).
#ifndef AOEFS_CFUSE3_SHIM_H
#define AOEFS_CFUSE3_SHIM_H
#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>
#endif

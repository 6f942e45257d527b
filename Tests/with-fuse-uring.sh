#!/usr/bin/env bash
# make test's ring pass: runs "$@" with the fuse module's enable_uring on, and puts back what it
# was when it ends (also on failure or Ctrl-C). aoefs itself never flips it. A kernel without
# FUSE over io_uring (before 6.14, or built without CONFIG_FUSE_IO_URING) skips the pass.
set -u
p=/sys/module/fuse/parameters/enable_uring
[ -e "$p" ] || modprobe fuse 2>/dev/null || true
if [ ! -e "$p" ]; then
  echo "make test: this kernel has no FUSE over io_uring ($p); the ring pass is skipped"
  exit 0
fi
old=$(cat "$p")
trap 'echo "$old" > "$p"' EXIT
echo Y > "$p"
"$@"

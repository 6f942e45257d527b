#!/usr/bin/env bash
# Where the daemon's CPU goes under a load through the mount (issue 32: "profile first"):
# perf record -e cpu-clock -g on the aoefs process while fio runs, then the share of each thread
# and of kernel vs user space, and the hottest symbols. The daemon serves over FUSE over io_uring
# when the kernel offers it (enable_uring is turned on for the run and put back), else /dev/fuse.
#   Benchmarks/profile.sh ["fio args"]   (default: 1 MiB sequential reads, QD 4)   SECS=10. Root.
source "$(dirname "$0")/lib.sh"
command -v perf >/dev/null || { echo "profile: needs perf (apt-get install linux-perf)" >&2; exit 2; }
ARGS=${1:---rw=read --bs=1M --iodepth=4}
SECS=${SECS:-10}
start_lab 9000 $((2 << 30))
mnt="$OUT/mnt"; mkdir -p "$mnt"
on_exit 'grep -q " $mnt fuse.aoefs " /proc/mounts && { fusermount3 -u "$mnt" 2>/dev/null || umount -l "$mnt"; }'
uring_on
dd if=/dev/zero of="$FILE" bs=1M count=1024 conv=notrunc status=none
.build/release/aoefs mount "$mnt" --iface "$IF"
pid=$(pgrep -n -f "aoefs mount $mnt")
fio --name=p --filename="$mnt/e10.3" --ioengine=libaio --direct=1 --size=1024M --runtime=$((SECS + 2)) --time_based \
  $ARGS --output-format=terse --terse-version=3 > "$OUT/fio.out" 2>&1 &
fiopid=$!
sleep 1
perf record -q -e cpu-clock -F 999 -g -p "$pid" -o "$OUT/perf.data" -- sleep "$SECS" 2>"$OUT/perf.err" || cat "$OUT/perf.err" >&2
wait $fiopid
echo "== $ARGS: $(awk -F';' '{ printf "%.0f MB/s", ($7 + $48) * 1024 / 1e6 }' "$OUT/fio.out") through the mount"
echo "== samples by thread (tid:name; % of all the daemon's samples)"
perf report -i "$OUT/perf.data" --no-children --sort pid --stdio -g none 2>&1 | grep "%" | grep -v "^#" | head -8 || true
echo "== kernel vs user space"
perf report -i "$OUT/perf.data" --no-children --sort dso --stdio -g none 2>&1 | grep -E "^ +[0-9.]+%" | head -6 || true
echo "== hottest symbols"
perf report -i "$OUT/perf.data" --no-children --sort sym --stdio -g none 2>&1 | grep -E "^ +[0-9.]+%" | head -15 || true

#!/usr/bin/env bash
# Paired A/B: the same fio loads through the mounts of two aoefs binaries, alternating in one lab
# (this machine drifts within a minute; pairs cancel it). Prints each pair and B/A; the median
# of the ratios is the figure to report.
#   A=/path/to/old/aoefs B=.build/release/aoefs Benchmarks/ab.sh "fio args" ["fio args" …]
# e.g. "--rw=write --bs=1M --iodepth=4 --numjobs=4". RUNS pairs each (default 5). Root.
source "$(dirname "$0")/lib.sh"
: "${A:?A=path of the first aoefs binary}" "${B:=.build/release/aoefs}"
RUNS=${RUNS:-5}; SPAN=${SPAN:-1024}; SECS=${SECS:-4}
start_lab 9000 $((2 << 30))
mnt="$OUT/mnt"; mkdir -p "$mnt"
on_exit 'grep -q " $mnt fuse.aoefs " /proc/mounts && { fusermount3 -u "$mnt" 2>/dev/null || umount -l "$mnt"; }'
dd if=/dev/zero of="$FILE" bs=1M count="$SPAN" conv=notrunc status=none
unmount() { grep -q " $mnt fuse.aoefs " /proc/mounts && fusermount3 -u "$mnt"; true; }
load() {  # fio args -> MB/s
  fio --name=b --filename="$mnt/e10.3" --ioengine=libaio --direct=1 --size="${SPAN}M" --runtime="$SECS" --time_based \
    --group_reporting --output-format=terse --terse-version=3 $1 2>/dev/null \
    | awk -F';' '{ print ($7 + $48) * 1024 / 1e6 }'
}
for args in "$@"; do
  echo "== $args (MB/s: A B B/A)"
  ratios=""
  for _ in $(seq "$RUNS"); do
    line=""
    for bin in "$A" "$B"; do unmount; "$bin" mount "$mnt" --iface "$IF"; line+="$(load "$args") "; done
    unmount
    r=$(echo "$line" | awk '{ printf "%.3f", $2 / $1 }'); ratios+="$r"$'\n'
    echo "$line$r"
  done
  echo "B/A median (range): $(printf "%s" "$ratios" | median2)"
done

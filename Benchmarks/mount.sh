#!/usr/bin/env bash
# make bench (mount part): the same lab and target, read and written through the FUSE mount
# (dd and fio, direct I/O), beside the engine alone (aoefs bench) and the backing file itself.
# Goal (issue #4): mount ≥ 90 % of the engine for sequential I/O, ≥ 80 % for 4 KiB random reads.
# Needs root. Medians of RUNS runs, ranges after them; the ratio is the median of paired runs.
# MOUNT_ARGS adds flags to `aoefs mount` (e.g. MOUNT_ARGS="--fuse-transport device").
source "$(dirname "$0")/lib.sh"
RUNS=${RUNS:-5}
SECS=${SECS:-4}
command -v fio >/dev/null || { echo "bench: needs fio (apt-get install fio)" >&2; exit 2; }
start_lab 9000 $((2 << 30))
mnt="$OUT/mnt"; mkdir -p "$mnt"
on_exit 'grep -q " $mnt fuse.aoefs " /proc/mounts && { fusermount3 -u "$mnt" 2>/dev/null || umount -l "$mnt"; }'
SPAN=1024  # MiB

engine() {  # test bs qd field
  .build/release/aoefs bench --iface "$IF" --target 10.3 --test "$1" --bs "$2" --qd "$3" --rand-bs "$2" --rand-qd "$3" \
    --seconds "$SECS" --size ${SPAN}M --write | awk -v f="$4" -v t="$1" '$1==t { for (i=1;i<=NF;i++) if ($i ~ "^"f"=") { sub(f"=","",$i); print $i } }'
}
fio_run() {  # file rw bs qd -> MB/s or IOPS (field)
  fio --name=b --filename="$1" --rw="$2" --bs="$3" --iodepth="$4" --ioengine=libaio --direct=1 --size=${SPAN}M \
      --runtime="$SECS" --time_based --group_reporting --output-format=terse --terse-version=3 2>/dev/null |
    awk -F';' -v rw="$2" -v f="$5" '{ if (rw ~ /write/) { bw=$48; iops=$49 } else { bw=$7; iops=$8 }; print (f=="iops" ? iops : bw*1024/1e6) }'
}
dd_run() {  # read|write -> MB/s
  if [ "$1" = read ]; then
    dd if="$mnt/e10.3" of=/dev/null bs=1M count=$SPAN iflag=direct 2>&1 | awk '/copied/ { for (i=1;i<=NF;i++) if ($i ~ /^[0-9.,]+$/ && $(i+1) ~ /B\/s/) { v=$i; u=$(i+1) } } END { gsub(",",".",v); print (u ~ /^G/ ? v*1000 : v) }'
  else
    dd if=/dev/zero of="$mnt/e10.3" bs=1M count=$SPAN oflag=direct conv=notrunc,nocreat 2>&1 | awk '/copied/ { for (i=1;i<=NF;i++) if ($i ~ /^[0-9.,]+$/ && $(i+1) ~ /B\/s/) { v=$i; u=$(i+1) } } END { gsub(",",".",v); print (u ~ /^G/ ? v*1000 : v) }'
  fi
}

# Warm vblade's page cache over the span (first touches of a sparse file stall vblade).
dd if=/dev/zero of="$FILE" bs=1M count=$SPAN conv=notrunc status=none
.build/release/aoefs mount "$mnt" --iface "$IF" ${MOUNT_ARGS:-}

rows=()
collect() {  # name engine-cmd mount-cmd unit
  # Engine and mount runs alternate (E M E M …) and the ratio is the median of each pair's
  # ratio: this machine's speed drifts by tens of percent within a minute, and pairs cancel it.
  local e="" m="" r="" a b
  for _ in $(seq "$RUNS"); do
    fusermount3 -u "$mnt"; a=$(eval "$2")
    .build/release/aoefs mount "$mnt" --iface "$IF" ${MOUNT_ARGS:-}; b=$(eval "$3")
    e+="$a"$'\n'; m+="$b"$'\n'; r+="$(awk -v a="$b" -v b="$a" 'BEGIN{print a/b}')"$'\n'
  done
  printf "%-38s %-26s %-26s %s\n" "$1" "$(printf "%s" "$e" | median) $4" "$(printf "%s" "$m" | median) $4" \
    "$(printf "%s" "$r" | median2)"
}
printf "%-38s %-26s %-26s %s\n" "test (MTU 9000, vblade -b 16)" "engine only (aoefs bench)" "through the mount" "ratio"
collect "seq read 1 MiB, QD 1 (dd direct)" "engine seqread 1M 1 MB/s" "dd_run read" "MB/s"
collect "seq write 1 MiB, QD 1 (dd direct)" "engine seqwrite 1M 1 MB/s" "dd_run write" "MB/s"
collect "seq read 1 MiB, QD 4 (fio)" "engine seqread 1M 4 MB/s" "fio_run $mnt/e10.3 read 1M 4 bw" "MB/s"
collect "seq write 1 MiB, QD 4 (fio)" "engine seqwrite 1M 4 MB/s" "fio_run $mnt/e10.3 write 1M 4 bw" "MB/s"
collect "4 KiB random read, QD 32 (fio)" "engine randread 4K 32 IOPS" "fio_run $mnt/e10.3 randread 4k 32 iops" "IOPS"
printf "%-38s %-26s\n" "backing file, 4 KiB random read QD 32" "$(for _ in $(seq "$RUNS"); do fio_run "$FILE" randread 4k 32 iops; done | median) IOPS (fio, O_DIRECT on the file: the VM disk, not vblade's page cache)"

#!/usr/bin/env bash
# make bench-guest (issue 32): the Linux kernel's own aoe driver and aoefs, in the same qemu TCG
# guest (Debian's kernel, one emulated CPU), against the same vblade on the host, taking turns
# in one boot: driver, aoefs, driver, aoefs, … PAIRS times (Benchmarks/guest-init.sh). Under
# TCG every guest instruction is emulated, so a ratio compares the CPU work each stack does per
# byte and per request, not wire speed. Rows: dd 1 MiB read and write, fio 1 MiB QD 4 read and
# write, fio 4 KiB random read QD 1 and QD 32; each ratio aoefs / driver is the median of the
# per-pair ratios (range).
# Goals (issue 32): ≥ 0.7 on sequential reads, ≥ 0.5 on sequential writes, ≥ 1.0 on 4 KiB reads.
# Needs root, qemu-system-x86, cpio, fio, vblade; the guest's parts are downloaded once
# (Tests/linux-initiator/guest-lib.sh). PAIRS (3), SECS per fio row (5), MIB per dd (256);
# COPY=1 adds aoefs with receive placement off (its column: the copy it saves).
set -euo pipefail
cd "$(dirname "$0")/.."
med() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
median2() { sort -n | awk '{a[NR]=$1} END {m=a[int((NR+1)/2)]; printf "%.2f (%.2f–%.2f)", m, a[1], a[NR]}'; }
[ "$(id -u)" = 0 ] || { echo "bench-guest: needs root (a namespace, a tap, qemu)" >&2; exit 2; }
PAIRS=${PAIRS:-3}; SECS=${SECS:-5}; MIB=${MIB:-256}; COPY=${COPY:-0}
for t in qemu-system-x86_64 cpio fio vblade; do
  command -v "$t" >/dev/null || { echo "bench-guest: needs $t (make bench-guest installs it)" >&2; exit 2; }
done
swift build -c release --product aoefs >/dev/null
aoefs=$(realpath .build/release/aoefs)
source Tests/linux-initiator/guest-lib.sh
work=$(mktemp -d /tmp/aoefs-bench-guest.XXXXXX)
id="aoet$(printf '%04x' $((RANDOM % 65536)))g"
vblade_pid=""
cleanup() {
  set +e
  [ -n "$vblade_pid" ] && kill "$vblade_pid" 2>/dev/null && wait "$vblade_pid" 2>/dev/null
  ip netns del "${id}n" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

guest_kernel
# aoefs and its libraries change with every build: the bench's archive is made each run
# (it is the base archive's tools plus fio, coreutils dd, fusermount3, aoefs).
initrd="$work/bench.cpio"
guest_initrd "$initrd" "virtio_pci virtio_net aoe fuse" "$GUEST_CACHE"/root-aoetools/sbin/aoe-* /bin/bash \
  "$(command -v fio)" /bin/dd "$(command -v fusermount3)" "$aoefs"
guest_with_init "$initrd" Benchmarks/guest-init.sh "$work/boot.cpio"

guest_network "$id"
img="$work/disk.img"
# Written, not sparse: a first touch of a sparse file's block stalls vblade.
dd if=/dev/zero of="$img" bs=1M count=1024 status=none
ip netns exec "$GUEST_NS" vblade 10 3 "$GUEST_TARGET_IF" "$img" > "$work/vblade.log" 2>&1 &
vblade_pid=$!
console="$work/console"
guest_boot "$work/boot.cpio" "$console" 3600 "pairs=$PAIRS secs=$SECS mib=$MIB copy=$COPY" -smp 1 -m 2G
cp "$console" /tmp/aoefs-bench-guest.console
tr -d '\r' < "$console" | grep -o 'AOEBENCH .*' > "$work/results" || true
if ! grep -q 'AOEBENCH DONE' "$work/results"; then
  echo "bench-guest: the guest did not finish; the console's end:" >&2
  tr -d '\r' < "$console" | tail -30 >&2
  exit 1
fi
grep FAIL "$work/results" >&2 && exit 1

stacks=(aoefs); [ "$COPY" = 1 ] && stacks+=(aoefs-copy)
head="$(printf "%-24s %-14s" "row (TCG guest, 1 CPU)" "kernel driver")"
for s in "${stacks[@]}"; do head+="$(printf " %-12s %-20s" "$s" "$s / driver")"; done
echo "$head"
for row in dd-read dd-write fio-read-1M-qd4 fio-write-1M-qd4 fio-randread-4k-qd1 fio-randread-4k-qd32; do
  unit=MB/s; case $row in *4k*) unit=IOPS;; esac
  line="$(awk -v row="$row" -v unit="$unit" '$3 == row && $4 == "driver" { print $5 }' "$work/results" | med |
    awk -v u="$unit" '{ printf "%-24s %-14s", "'"$row"'", sprintf("%.0f %s", $1, u) }')"
  for s in "${stacks[@]}"; do
    v=$(awk -v row="$row" -v s="$s" '$3 == row && $4 == s { print $5 }' "$work/results" | med)
    r=$(awk -v row="$row" -v s="$s" '$3 == row { v[$2 "," $4] = $5; if ($2 > n) n = $2 }
      END { for (p = 1; p <= n; p++) if (v[p ",driver"] > 0) print v[p "," s] / v[p ",driver"] }' "$work/results" | median2)
    line+="$(printf " %-12s %-20s" "$(printf "%.0f" "$v")" "$r")"
  done
  echo "$line"
done
echo "(medians of $PAIRS alternating pairs; a ratio is the median of the per-pair ratios (range))"

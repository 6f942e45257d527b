#!/usr/bin/env bash
# make bench-peer: aoefs against what a user without the kernel's aoe module would pick instead —
# qemu-storage-daemon's FUSE export (`--export type=fuse`) of an NBD disk that `qemu-nbd` serves
# from the same file, over the same veth pair (link-local addresses on the lab's pair only).
# The same loads through both, alternating (aoefs, peer, aoefs, …): dd 1 MiB QD 1 read and write,
# fio 1 MiB QD 4 read and write, fio 4 KiB random read QD 32, and ext4 on losetup of each image:
# fio 4 KiB randrw QD 16 and a tar extract. The ratio is the median of the RUNS paired ratios.
# Then 4 KiB random-read IOPS against queue depth 1–32 for the engine alone, the mount and the
# peer, plotted with gnuplot into Docs/qd-peer.png (PLOT=0 skips it). Needs root, fio, qemu-utils,
# qemu-system-common, gnuplot-nox (make bench-peer installs them).
source "$(dirname "$0")/lib.sh"
RUNS=${RUNS:-3}
SECS=${SECS:-3}
SPAN=${SPAN:-512}  # MiB
for t in fio qemu-nbd qemu-storage-daemon losetup mkfs.ext4; do
  command -v "$t" >/dev/null || { echo "bench: needs $t (make bench-peer installs it)" >&2; exit 2; }
done
start_lab 9000 $((2 << 30))
mnt="$OUT/mnt"; fsdir="$OUT/fs"; mkdir -p "$mnt" "$fsdir"
loop=""
on_exit 'mountpoint -q "$fsdir" && umount "$fsdir"; [ -n "$loop" ] && losetup -d "$loop";
  grep -q " $mnt fuse.aoefs " /proc/mounts && { fusermount3 -u "$mnt" 2>/dev/null || umount -l "$mnt"; }'
uring_on
# The peer: qemu-nbd in the target's namespace on a link-local address of the lab's veth pair,
# qemu-storage-daemon here exporting that NBD disk as a FUSE file.
start_peer
qimg=$QIMG
.build/release/aoefs mount "$mnt" --iface "$IF" ${MOUNT_ARGS:-}
img="$mnt/e10.3"
# Warm the backing file's page cache over the span for both servers.
dd if=/dev/zero of="$FILE" bs=1M count="$SPAN" conv=notrunc status=none

dd_rate() {  # if of flag -> MB/s
  dd if="$1" of="$2" bs=1M count="$SPAN" "$3" conv=notrunc,nocreat 2>&1 | awk '/copied/ {
    for (i=1;i<=NF;i++) if ($i ~ /^[0-9.,]+$/ && $(i+1) ~ /B\/s/) { v=$i; u=$(i+1) } }
    END { gsub(",",".",v); print (u ~ /^G/ ? v*1000 : u ~ /^k/ ? v/1000 : v) }'
}
fio_rate() {  # file rw bs qd field(bw|iops) [size]
  fio --name=b --filename="$1" --rw="$2" --bs="$3" --iodepth="$4" --ioengine=libaio --direct=1 \
      --size="${6:-${SPAN}M}" --runtime="$SECS" --time_based --group_reporting --output-format=terse \
      --terse-version=3 2>/dev/null | awk -F';' -v rw="$2" -v f="$5" '{
        r = (f=="iops") ? $8 + (rw ~ /rw/ ? $49 : 0) : $7*1024/1e6
        if (rw == "write") r = (f=="iops") ? $49 : $48*1024/1e6
        print r }'
}
ext4_run() {  # image what -> figure (fio randrw IOPS, or tar extract seconds)
  loop=$(losetup -f --show "$1")
  mkfs.ext4 -q -F "$loop" && mount "$loop" "$fsdir"
  if [ "$2" = fio ]; then
    fio_rate "$fsdir/f" randrw 4k 16 iops 256M
  else
    local t0 t1; t0=$(date +%s.%N); tar -xf "$OUT/tree.tar" -C "$fsdir"; sync -f "$fsdir"; t1=$(date +%s.%N)
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f\n", b - a }'
  fi
  umount "$fsdir"; losetup -d "$loop"; loop=""
}
tar -cf "$OUT/tree.tar" -C /usr/share doc 2>/dev/null || true

printf "%-34s %-24s %-24s %s\n" "test (MTU 9000, same veth, same file)" "aoefs (mount)" "qemu FUSE export + NBD" \
  "aoefs / peer"
row() {  # name "aoefs command" "peer command" unit [lower-is-better]
  local pairs=""
  for _ in $(seq "$RUNS"); do pairs+="$(eval "$2") $(eval "$3")"$'\n'; done
  pairs=${pairs%$'\n'}
  local ratio='{print $1/$2}'; [ -n "${5:-}" ] && ratio='{print $2/$1}'
  printf "%-34s %-24s %-24s %s\n" "$1" "$(echo "$pairs" | awk '{print $1}' | median) $4" \
    "$(echo "$pairs" | awk '{print $2}' | median) $4" "$(echo "$pairs" | awk "$ratio" | median2)"
}
row "dd read 1 MiB, QD 1" "dd_rate $img /dev/null iflag=direct" "dd_rate $qimg /dev/null iflag=direct" MB/s
row "dd write 1 MiB, QD 1" "dd_rate /dev/zero $img oflag=direct" "dd_rate /dev/zero $qimg oflag=direct" MB/s
row "fio read 1 MiB, QD 4" "fio_rate $img read 1M 4 bw" "fio_rate $qimg read 1M 4 bw" MB/s
row "fio write 1 MiB, QD 4" "fio_rate $img write 1M 4 bw" "fio_rate $qimg write 1M 4 bw" MB/s
row "fio 4 KiB random read, QD 32" "fio_rate $img randread 4k 32 iops" "fio_rate $qimg randread 4k 32 iops" IOPS
row "ext4 (losetup): fio 4 KiB randrw QD 16" "ext4_run $img fio" "ext4_run $qimg fio" IOPS
row "ext4 (losetup): tar -x /usr/share/doc" "ext4_run $img tar" "ext4_run $qimg tar" s lower
echo "(ratios above 1 favour aoefs; the tar row compares times: peer / aoefs)"

[ "${PLOT:-1}" = 0 ] && exit 0
# 4 KiB random-read IOPS against queue depth: the engine alone, the mount, the peer.
fusermount3 -u "$mnt"
for qd in 1 2 4 8 16 32; do
  .build/release/aoefs bench --iface "$IF" --target 10.3 --test randread --rand-bs 4K --rand-qd "$qd" \
    --seconds "$SECS" --size "${SPAN}M" | awk -v q="$qd" '$1=="randread" { for (i=1;i<=NF;i++) if ($i ~ /^IOPS=/) { sub("IOPS=","",$i); print q, $i } }'
done > "$OUT/engine.dat"
sweep() {  # name mount-args...
  local name=$1; shift
  .build/release/aoefs mount "$mnt" --iface "$IF" "$@"
  for qd in 1 2 4 8 16 32; do echo "$qd $(fio_rate "$img" randread 4k "$qd" iops)"; done > "$OUT/$name.dat"
  fusermount3 -u "$mnt"
}
sweep device --fuse-transport device
lines=("device|aoefs mount: /dev/fuse")
if [ "$URING" = 1 ]; then
  sweep ring --fuse-transport io_uring
  lines+=("ring|aoefs mount: FUSE over io_uring")
else
  awk '{ print $1, "-" }' "$OUT/device.dat" > "$OUT/ring.dat"
fi
for qd in 1 2 4 8 16 32; do echo "$qd $(fio_rate "$qimg" randread 4k "$qd" iops)"; done > "$OUT/peer.dat"
lines+=("peer|qemu-storage-daemon FUSE export of qemu-nbd")
paste "$OUT/engine.dat" "$OUT/device.dat" "$OUT/ring.dat" "$OUT/peer.dat" |
  awk 'BEGIN { print "QD engine /dev/fuse io_uring peer" } { print $1, $2, $4, $6, $8 }'
{
  echo 'set terminal pngcairo size 800,560 noenhanced'
  echo 'set output "Docs/qd-peer.png"'
  echo 'set title "4 KiB random read against queue depth (MTU 9000 veth, vblade -b 16, 2 vCPUs)"'
  echo 'set xlabel "queue depth"; set ylabel "IOPS"; set logscale x 2; set logscale y 10; set grid'
  echo 'set key below'
  echo 'set linetype 1 lc rgb "#6a3d9a"; set linetype 2 lc rgb "#1f78b4"; set linetype 3 lc rgb "#33a02c"'
  echo 'set linetype 4 lc rgb "#e6550d"; set linetype 5 lc rgb "#636363"'
  printf 'plot "%s" using 1:2 with linespoints title "aoefs engine (aoefs bench)"' "$OUT/engine.dat"
  for l in "${lines[@]}"; do printf ', \\\n  "%s" using 1:2 with linespoints title "%s"' "$OUT/${l%%|*}.dat" "${l#*|}"; done
  echo
} > "$OUT/plot.gp"
gnuplot "$OUT/plot.gp"
echo "plotted Docs/qd-peer.png"

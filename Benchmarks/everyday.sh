#!/usr/bin/env bash
# make bench (everyday): the tools people run on a disk image, through the mount's buffered path
# (the page cache, readahead, write-back: issue 23), each against the 1 MiB O_DIRECT rate of the
# same mount and against the same tool on the backing file, paired in each run; then ext4 on a
# loop device of the image, without and with --direct-io=on; then the daemon's RSS (the cache is
# the kernel's, not aoefs's). Each row: median (min–max) of RUNS runs, and the median of the
# paired ratios.
# Goals (issue 23): dd with 512-byte blocks ≥ 0.5 × the direct read; dd bs=4k ≥ 0.8 ×;
# sha256sum ≥ 0.8 × the same on the backing file; 4 KiB writes + fsync ≥ 0.5 × the direct write.
# Needs root, fio, qemu-utils, e2fsprogs (make bench installs them).
source "$(dirname "$0")/lib.sh"
RUNS=${RUNS:-3}
SPAN=${SPAN:-256}  # MiB read or written by each row
for t in fio qemu-img mkfs.ext4; do
  command -v "$t" >/dev/null || { echo "bench: needs $t (make bench installs it)" >&2; exit 2; }
done
start_lab 9000 $((SPAN << 20))  # the image is SPAN MiB: each tool reads all of it
mnt="$OUT/mnt"; mkdir -p "$mnt"
on_exit 'grep -q " $mnt fuse.aoefs " /proc/mounts && { fusermount3 -u "$mnt" 2>/dev/null || umount -l "$mnt"; }'
# The backing file warm in the target's page cache, with data (a sparse file's holes read fast).
head -c $((SPAN << 20)) /dev/urandom > "$OUT/data"
dd if="$OUT/data" of="$FILE" bs=1M conv=notrunc status=none
.build/release/aoefs mount "$mnt" --iface "$IF"
DAEMON=$(pgrep -n -f "aoefs mount $mnt")
IMG="$mnt/e10.3"
scratch=/dev/shm/aoefs-everyday.$$
on_exit "rm -f $scratch $scratch.raw"

rate() {  # command... : runs it, prints MB/s of SPAN MiB
  local t0 t1; t0=$(date +%s.%N); "$@" >/dev/null 2>&1; t1=$(date +%s.%N)
  awk -v a="$t0" -v b="$t1" -v s="$SPAN" 'BEGIN { printf "%.1f", s * 1.048576 / (b - a) }'
}
uncache() { dd if="$1" iflag=nocache count=0 status=none; }  # drops the file's cached pages
# The mount's cache of the image is dropped before each measurement through it; the backing file
# stays warm in the host's page cache, as a target's disk cache would be (and is read once to be).
warm() { cat "$FILE" > /dev/null; }
through_mount() { uncache "$IMG"; warm; rate "$@"; }
on_file() { warm; rate "$@"; }
direct_read() { rate dd if="$IMG" of=/dev/null bs=1M count="$SPAN" iflag=direct; }
direct_write() { rate dd if="$OUT/data" of="$IMG" bs=1M count="$SPAN" oflag=direct conv=notrunc,nocreat; }

printf "%-34s %-22s %-22s %-16s %s\n" "tool ($SPAN MiB, MTU 9000)" "through the mount" "on the backing file" "mount / file" "mount / direct 1 MiB"
row() {  # name kind(read|write) "command with F for the file"
  local name=$1 kind=$2 cmd=$3 m f d ms="" fs="" r1="" r2=""
  for _ in $(seq "$RUNS"); do
    if [ "$kind" = read ]; then d=$(direct_read); else d=$(direct_write); fi
    m=$(through_mount eval "${cmd//F/$IMG}")
    f=$(on_file eval "${cmd//F/$FILE}")
    ms+="$m"$'\n'; fs+="$f"$'\n'
    r1+="$(awk -v a="$m" -v b="$f" 'BEGIN { print a / b }')"$'\n'
    r2+="$(awk -v a="$m" -v b="$d" 'BEGIN { print a / b }')"$'\n'
  done
  printf "%-34s %-22s %-22s %-16s %s\n" "$name" "$(printf "%s" "$ms" | median) MB/s" "$(printf "%s" "$fs" | median) MB/s" \
    "$(printf "%s" "$r1" | median2)" "$(printf "%s" "$r2" | median2)"
}
N4K=$((SPAN * 256))
row "dd, default 512-byte blocks" read "dd if=F of=/dev/null"
row "dd bs=4k" read "dd if=F of=/dev/null bs=4k"
row "dd bs=64k" read "dd if=F of=/dev/null bs=64k"
row "cat" read "cat F > /dev/null"
row "sha256sum" read "sha256sum F"
row "cp" read "cp F $scratch"
row "qemu-img convert -O raw" read "qemu-img convert -f raw -O raw F $scratch.raw"
row "4 KiB writes + fsync" write "dd if=$OUT/data of=F bs=4k count=$N4K conv=notrunc,nocreat,fsync"
row "1 MiB writes + fsync" write "dd if=$OUT/data of=F bs=1M count=$SPAN conv=notrunc,nocreat,fsync"
echo "(each row: median (min–max) of $RUNS runs; ratios: median of the per-run ratios; the mount's"
echo " cached pages of the image are dropped (fadvise) before each measurement; the backing file is warm)"

# ext4 on a loop device of the image, without and with --direct-io=on.
echo
printf "%-40s %-22s %s\n" "ext4 on losetup of the image" "fio 4 KiB randrw IOPS" "tar -x MB/s"
tarball="$OUT/tree.tar"; tar -C /usr/share -cf "$tarball" man 2>/dev/null || true  # many small files
tarmb=$(du -m "$tarball" | cut -f1)
loop=""
on_exit 'if [ -n "$loop" ]; then umount "$OUT/fs" 2>/dev/null; losetup -d "$loop" 2>/dev/null; fi'
for dio in off on; do
  ios=""; tars=""
  for _ in $(seq "$RUNS"); do
    loop=$(losetup -f --show --direct-io=$dio "$IMG")
    mkfs.ext4 -q -F "$loop"; mkdir -p "$OUT/fs"; mount "$loop" "$OUT/fs"
    ios+="$(fio --name=r --filename="$OUT/fs/fio" --rw=randrw --bs=4k --iodepth=16 --ioengine=libaio --direct=1 \
        --size=$((SPAN / 8))M --runtime=5 --time_based --output-format=terse --terse-version=3 2>/dev/null \
        | awk -F';' '{ print $8 + $49 }')"$'\n'
    t0=$(date +%s.%N); tar -C "$OUT/fs" -xf "$tarball"; sync -f "$OUT/fs"; t1=$(date +%s.%N)
    tars+="$(awk -v a="$t0" -v b="$t1" -v s="$tarmb" 'BEGIN { printf "%.1f", s / (b - a) }')"$'\n'
    umount "$OUT/fs"; losetup -d "$loop"; loop=""
  done
  printf "%-40s %-22s %s\n" "losetup --direct-io=$dio" "$(printf "%s" "$ios" | median)" "$(printf "%s" "$tars" | median)"
done
echo "daemon RSS after the runs: $(awk '/VmRSS/ { print $2, $3 }' /proc/$DAEMON/status)"

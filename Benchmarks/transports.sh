#!/usr/bin/env bash
# make bench (transports): the same loads through the engine alone (aoefs bench), through the
# mount over each transport of aoefs's FUSE core — /dev/fuse, and FUSE over io_uring
# (enable_uring turned on for this script and put back) — and
# through the qemu peer (qemu-storage-daemon's FUSE export of a qemu-nbd disk, same file, same
# veth), side by side. Every run measures all of them in turn; a ratio is the median of the
# RUNS per-run ratios (this machine's speed drifts within a minute; pairs cancel it).
# Goals (issue 15): mount ≥ 0.95 × engine on 1 MiB QD 1 and QD 4, ≥ 0.90 × on 4 KiB QD 32;
# ≥ 1.5 × the peer; daemon CPU per 4 KiB read ≤ 1.3 × the engine's.
# Needs root, fio, qemu-utils, qemu-system-common (make bench installs them).
source "$(dirname "$0")/lib.sh"
RUNS=${RUNS:-3}
SECS=${SECS:-4}
SPAN=${SPAN:-1024}  # MiB
for t in fio qemu-nbd qemu-storage-daemon; do
  command -v "$t" >/dev/null || { echo "bench: needs $t (make bench installs it)" >&2; exit 2; }
done
start_lab 9000 $((2 << 30))
mnt="$OUT/mnt"; mkdir -p "$mnt"
on_exit 'grep -q " $mnt fuse.aoefs " /proc/mounts && { fusermount3 -u "$mnt" 2>/dev/null || umount -l "$mnt"; }'
uring_on
start_peer
# Warm the backing file's page cache over the span (first touches of a sparse file stall vblade).
dd if=/dev/zero of="$FILE" bs=1M count="$SPAN" conv=notrunc status=none
TICK=$(getconf CLK_TCK)

ways=(device)
[ "$URING" = 1 ] && ways+=(ring)
# COPY=1: each transport also with receive placement off (issue 32): before and after, paired.
if [ "${COPY:-0}" = 1 ]; then for w in "${ways[@]}"; do ways+=("$w-copy"); done; fi
unmount() { grep -q " $mnt fuse.aoefs " /proc/mounts && fusermount3 -u "$mnt"; DAEMON=""; }
mount_as() {  # device|ring[-copy]
  unmount
  local placement=on
  case $1 in *-copy) placement=off ;; esac
  case $1 in
    device*) AOEFS_RECEIVE_PLACEMENT=$placement .build/release/aoefs mount "$mnt" --iface "$IF" --fuse-transport device ;;
    ring*) AOEFS_RECEIVE_PLACEMENT=$placement .build/release/aoefs mount "$mnt" --iface "$IF" --fuse-transport io_uring ;;
  esac
  DAEMON=$(pgrep -n -f "aoefs mount $mnt ")
}
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# One measurement: prints "value cpu-seconds-per-IO" (the second only for the 4 KiB row).
engine() {  # test bs qd field
  local out
  out=$(sh -c '"$@" > "'"$OUT"'/e.out"; cat /proc/$$/stat' sh .build/release/aoefs bench --iface "$IF" --target 10.3 \
    --test "$1" --bs "$2" --qd "$3" --rand-bs "$2" --rand-qd "$3" --seconds "$SECS" --size "${SPAN}M" --write)
  local v; v=$(awk -v t="$1" '$1==t' "$OUT/e.out" | field "$4")
  # The shell's cutime + cstime: the CPU of the bench it waited for.
  # Requests: IOPS × seconds, or MB/s × seconds in 1 MiB requests.
  echo "$v $(echo "$out" | awk -v v="$v" -v s="$SECS" -v k="$TICK" -v bs="$2" '{
    n = (bs == "1M" ? v * s * 1e6 / 1048576 : v * s); print ($16 + $17) / k / n }')"
}
fio_load() {  # file rw bs qd -> "value cpu-per-IO" (cpu of DAEMON when set)
  local before=0 after=0
  [ -n "${DAEMON:-}" ] && before=$(cpu_ticks "$DAEMON")
  local r; r=$(fio --name=b --filename="$1" --rw="$2" --bs="$3" --iodepth="$4" --ioengine=libaio --direct=1 \
      --size="${SPAN}M" --runtime="$SECS" --time_based --group_reporting --output-format=terse --terse-version=3 \
      2>/dev/null | awk -F';' -v rw="$2" '{ if (rw ~ /write/) { bw=$48; iops=$49; n=$47 } else { bw=$7; iops=$8; n=$6 }
        print bw*1024/1e6, iops, n*1024 }')
  [ -n "${DAEMON:-}" ] && after=$(cpu_ticks "$DAEMON")
  echo "$r" | awk -v b="$before" -v a="$after" -v k="$TICK" -v bs="$3" '{
    n = $3 / (bs == "4k" ? 4096 : 1048576); print (bs == "4k" ? $2 : $1), (n > 0 ? (a - b) / k / n : 0) }'
}
dd_load() {  # read|write file -> "MB/s cpu-per-IO" (cpu of DAEMON when set)
  local args=(if="$2" of=/dev/null iflag=direct)
  [ "$1" = write ] && args=(if=/dev/zero of="$2" oflag=direct conv=notrunc,nocreat)
  local before=0 after=0
  [ -n "${DAEMON:-}" ] && before=$(cpu_ticks "$DAEMON")
  local r; r=$(dd "${args[@]}" bs=1M count="$SPAN" 2>&1 | awk '/copied/ { for (i=1;i<=NF;i++) if ($i ~ /^[0-9.,]+$/ && $(i+1) ~ /B\/s/) { v=$i; u=$(i+1) } }
    END { gsub(",",".",v); print (u ~ /^G/ ? v*1000 : v) }')
  [ -n "${DAEMON:-}" ] && after=$(cpu_ticks "$DAEMON")
  echo "$r $(awk -v b="$before" -v a="$after" -v k="$TICK" -v n="$SPAN" 'BEGIN { print (a - b) / k / n }')"
}

head="$(printf "%-30s %-13s" "test (MTU 9000, vblade -b 16)" "engine")"
for w in "${ways[@]}"; do head+="$(printf " %-21s" "$w / engine")"; done
head+="$(printf " %-13s %s" "peer" "best / peer")"
echo "$head"
row() {  # name unit engine-args "mount command with FILE for the image" [cpu]
  local name=$1 unit=$2 eargs=$3 load=$4 cpu=${5:-}
  declare -A val rat cpus
  local peers="" bests="" engs="" ecpu=""
  for _ in $(seq "$RUNS"); do
    # Nothing else on the wire while one is measured: an idle mount's packet socket sees every
    # AoE frame of the lab too, and its thread would take CPU from the one measured.
    unmount
    local e; e=$(engine $eargs); engs+="${e% *}"$'\n'; ecpu+="${e#* }"$'\n'
    local best=0
    for w in "${ways[@]}"; do
      mount_as "$w"
      local m; m=$(eval "${load//FILE/$mnt/e10.3}")
      val[$w]+="${m% *}"$'\n'; cpus[$w]+="${m#* }"$'\n'
      rat[$w]+="$(awk -v a="${m% *}" -v b="${e% *}" 'BEGIN { print a / b }')"$'\n'
      best=$(awk -v a="${m% *}" -v b="$best" 'BEGIN { print (a > b ? a : b) }')
    done
    unmount
    local p; p=$(eval "${load//FILE/$QIMG}"); peers+="${p% *}"$'\n'
    bests+="$(awk -v a="$best" -v b="${p% *}" 'BEGIN { print (b > 0 ? a / b : 0) }')"$'\n'
  done
  rnd() { med | awk '{ printf "%.0f", $1 }'; }
  local line; line="$(printf "%-30s %-13s" "$name" "$(printf "%s" "$engs" | rnd) $unit")"
  for w in "${ways[@]}"; do
    line+="$(printf " %-21s" "$(printf "%s" "${val[$w]}" | rnd) $(printf "%s" "${rat[$w]}" | median2)")"
  done
  line+="$(printf " %-13s %s" "$(printf "%s" "$peers" | rnd) $unit" "$(printf "%s" "$bests" | median2)")"
  echo "$line"
  # CPU: µs per 4 KiB request, or CPU-seconds per GiB for the 1 MiB rows (1024 requests).
  local label="  CPU s per GiB" scale=1024
  [ -n "$cpu" ] && { label="  CPU µs per 4 KiB read"; scale=1e6; }
  local c; c="$(printf "%-30s %-13s" "$label" "$(printf "%s" "$ecpu" | awk -v s="$scale" '{ print $1 * s }' | med | awk '{ printf "%.2f", $1 }')")"
  for w in "${ways[@]}"; do
    c+="$(printf " %-21s" "$(printf "%s" "${cpus[$w]}" | awk -v s="$scale" '{ print $1 * s }' | med | awk '{ printf "%.2f", $1 }') ($(paste <(printf "%s" "${cpus[$w]}") <(printf "%s" "$ecpu") | awk '$2 > 0 { print $1 / $2 }' | med | awk '{ printf "%.2f", $1 }')×)")"
  done
  echo "$c"
}
row "seq read 1 MiB, QD 1 (dd)" MB/s "seqread 1M 1 MB/s" "dd_load read FILE"
row "seq write 1 MiB, QD 1 (dd)" MB/s "seqwrite 1M 1 MB/s" "dd_load write FILE"
row "seq read 1 MiB, QD 4 (fio)" MB/s "seqread 1M 4 MB/s" "fio_load FILE read 1M 4"
row "seq write 1 MiB, QD 4 (fio)" MB/s "seqwrite 1M 4 MB/s" "fio_load FILE write 1M 4"
row "4 KiB random read, QD 1" IOPS "randread 4K 1 IOPS" "fio_load FILE randread 4k 1" cpu
row "4 KiB random read, QD 32" IOPS "randread 4K 32 IOPS" "fio_load FILE randread 4k 32" cpu
echo "(x / engine: median of per-run ratios (range); best / peer: the fastest transport of each run against the peer;"
echo " CPU: the daemon's user+system time per GiB (1 MiB rows) or per 4 KiB read, and its ratio to the engine alone's)"
[ "$URING" = 1 ] || echo "(no FUSE over io_uring in this kernel: the ring column is left out)"

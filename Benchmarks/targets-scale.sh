#!/usr/bin/env bash
# Many targets (issue 12, item 4): N vblade targets on one veth, then `aoefs mount`. Prints, for
# each N, the time from starting `aoefs mount` to all N images being listed, the daemon's RSS
# (total and per target), and how long `aoefs stat` takes. Goals: 1,000 targets visible in < 1 s,
# <= 16 KiB of daemon memory per idle target, `aoefs stat` < 0.3 s at 256.
# Needs root, vblade, iproute2. Usage: Benchmarks/targets-scale.sh [N ...]  (default 1 64 256 1000)
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "bench: needs root" >&2; exit 2; }
command -v vblade >/dev/null || { echo "bench: needs vblade (apt-get install vblade)" >&2; exit 2; }
swift build -c release --product aoefs >/dev/null
AOEFS=.build/release/aoefs
SIZES=("$@"); [ ${#SIZES[@]} -gt 0 ] || SIZES=(1 64 256 1000)

id=aoetsc$$; ns=${id}t; ifi=${id}i; ift=${id}t
dir=$(mktemp -d /tmp/aoet-scale.XXXXXX); mnt="$dir/mnt"; mkdir -p "$mnt"
pids=()
cleanup() {
  grep -q " $mnt fuse.aoefs " /proc/mounts && { fusermount3 -u "$mnt" 2>/dev/null || umount -l "$mnt"; }
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  ip link del "$ifi" 2>/dev/null || true
  ip netns del "$ns" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT
ip netns add "$ns"
ip link add "$ifi" mtu 9000 type veth peer name "$ift" mtu 9000 netns "$ns"
ip link set "$ifi" up; ip -n "$ns" link set "$ift" up; ip -n "$ns" link set lo up

now_ms() { date +%s%3N; }
printf "%-8s %-22s %-14s %-26s %s\n" targets "all images listed" "daemon RSS" "RSS per extra target" "aoefs stat"
started=0; base_rss=; base_n=
for n in "${SIZES[@]}"; do
  # Add vblades up to n: shelves of 250 slots (slot 255 is the broadcast slot).
  while [ "$started" -lt "$n" ]; do
    shelf=$((1 + started / 250)); slot=$((started % 250))
    f="$dir/d$started.img"; truncate -s 1M "$f"
    nsenter --net=/run/netns/"$ns" vblade "$shelf" "$slot" "$ift" "$f" >/dev/null 2>&1 &
    pids+=($!)
    started=$((started + 1))
  done
  sleep 1  # let the vblades open their sockets (they print nothing we can wait on here)
  t0=$(now_ms)
  $AOEFS mount "$mnt" --iface "$ifi" --wait 0 --config /dev/null
  until [ "$(ls "$mnt" | grep -c '^e')" -ge "$n" ]; do
    [ $(( $(now_ms) - t0 )) -lt 30000 ] || { echo "only $(ls "$mnt" | grep -c '^e') of $n images after 30 s" >&2; break; }
    sleep 0.01
  done
  t1=$(now_ms)
  daemon=$(pgrep -f "aoefs mount $mnt" | head -1)
  rss=$(awk '/VmRSS/ {print $2}' /proc/"$daemon"/status)
  s0=$(now_ms); AOEFS_MOUNT="$mnt" $AOEFS stat >/dev/null; s1=$(now_ms)
  if [ -z "$base_rss" ]; then base_rss=$rss; base_n=$n; per="(baseline)"; else per="$(( (rss - base_rss) * 1024 / (n - base_n) )) bytes"; fi
  printf "%-8s %-22s %-14s %-26s %s\n" "$n" "$((t1 - t0)) ms" "$rss KiB" "$per" "$((s1 - s0)) ms"
  fusermount3 -u "$mnt"
  while [ -n "$(pgrep -f "aoefs mount $mnt")" ]; do sleep 0.05; done
done

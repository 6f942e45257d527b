#!/usr/bin/env bash
# A hostile LAN (issue 12): the engine's sequential write and read with and without a host in the
# target's namespace flooding Query Config responses as e10.3 from 200 random MACs and forged ATA
# answers (aoe-lab flood). Goal: during the flood at least half of the clean throughput.
# Needs root. Runs alternate clean and flooded, RUNS pairs; the ratio is the median of pairs.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
SECS=${SECS:-3}
[ "$(id -u)" = 0 ] || { echo "bench: needs root" >&2; exit 2; }
swift build -c release --product aoefs >/dev/null
swift build -c release --product aoe-lab >/dev/null

out=$(mktemp -d)
.build/release/aoe-lab --mtu 9000 --size $((2 << 30)) > "$out/lab" 2>&1 &
lab=$!
flood=
cleanup() {
  [ -n "$flood" ] && kill "$flood" 2>/dev/null || true
  kill -INT $lab 2>/dev/null || true; wait $lab 2>/dev/null || true; rm -rf "$out"
}
trap cleanup EXIT
for _ in $(seq 50); do grep -q initiator= "$out/lab" && break; sleep 0.1; done
IF=$(sed -n 's/.*initiator=\([^ ]*\).*/\1/p' "$out/lab")
NS=$(sed -n 's/.*namespace=\([^ ]*\).*/\1/p' "$out/lab")
TIF=$(sed -n 's/.*target=\([^ ]*\).*/\1/p' "$out/lab")
[ -n "$IF" ] || { cat "$out/lab"; exit 1; }

bench() {  # test -> MB/s
  .build/release/aoefs bench --iface "$IF" --target 10.3 --test "$1" --bs 1M --qd 4 --seconds "$SECS" --write \
    | awk -v t="$1" '$1==t { for (i=1;i<=NF;i++) if ($i ~ "^MB/s=") { sub("MB/s=","",$i); print $i } }'
}
med() { sort -n | awk '{a[NR]=$1} END {m=a[int((NR+1)/2)]; printf "%.1f (%.1f–%.1f)", m, a[1], a[NR]}'; }
med2() { sort -n | awk '{a[NR]=$1} END {m=a[int((NR+1)/2)]; printf "%.2f (%.2f–%.2f)", m, a[1], a[NR]}'; }

printf "%-34s %-26s %-26s %s\n" "test (MTU 9000, vblade -b 16)" "clean LAN" "during the flood" "ratio"
for t in seqwrite seqread; do
  pairs=""
  for _ in $(seq "$RUNS"); do
    c=$(bench "$t")
    nsenter --net=/run/netns/"$NS" .build/release/aoe-lab flood --iface "$TIF" --target 10.3 --macs 200 \
      --seconds $((SECS * 3)) > "$out/flood" 2>&1 &
    flood=$!
    for _ in $(seq 50); do grep -q flooding "$out/flood" && break; sleep 0.1; done
    f=$(bench "$t")
    kill "$flood" 2>/dev/null || true; wait "$flood" 2>/dev/null || true; flood=
    pairs="$pairs$c $f"$'\n'
  done
  pairs=$(echo "$pairs" | sed '/^$/d')
  printf "%-34s %-26s %-26s %s\n" "$t 1 MiB, QD 4 (aoefs bench)" "$(echo "$pairs" | awk '{print $1}' | med) MB/s" \
    "$(echo "$pairs" | awk '{print $2}' | med) MB/s" "$(echo "$pairs" | awk '{print $2/$1}' | med2)"
done

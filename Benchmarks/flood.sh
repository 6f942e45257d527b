#!/usr/bin/env bash
# A hostile LAN (issue 12): the engine's sequential write and read with and without a host in the
# target's namespace flooding Query Config responses as e10.3 from 200 random MACs and forged ATA
# answers (aoe-lab flood). Goal: during the flood at least half of the clean throughput.
# Needs root. Runs alternate clean and flooded, RUNS pairs; the ratio is the median of pairs.
source "$(dirname "$0")/lib.sh"
RUNS=${RUNS:-3}
SECS=${SECS:-3}
start_lab 9000 $((2 << 30))
flood=
on_exit '[ -n "$flood" ] && kill "$flood" 2>/dev/null'

bench() {  # test -> MB/s
  .build/release/aoefs bench --iface "$IF" --target 10.3 --test "$1" --bs 1M --qd 4 --seconds "$SECS" --write \
    | awk -v t="$1" '$1==t { for (i=1;i<=NF;i++) if ($i ~ "^MB/s=") { sub("MB/s=","",$i); print $i } }'
}

printf "%-34s %-26s %-26s %s\n" "test (MTU 9000, vblade -b 16)" "clean LAN" "during the flood" "ratio"
for t in seqwrite seqread; do
  pairs=""
  for _ in $(seq "$RUNS"); do
    c=$(bench "$t")
    nsenter --net=/run/netns/"$NS" .build/release/aoe-lab flood --iface "$TIF" --target 10.3 --macs 200 \
      --seconds $((SECS * 3)) > "$OUT/flood" 2>&1 &
    flood=$!
    for _ in $(seq 50); do grep -q flooding "$OUT/flood" && break; sleep 0.1; done
    f=$(bench "$t")
    kill "$flood" 2>/dev/null || true; wait "$flood" 2>/dev/null || true; flood=
    pairs="$pairs$c $f"$'\n'
  done
  pairs=$(echo "$pairs" | sed '/^$/d')
  printf "%-34s %-26s %-26s %s\n" "$t 1 MiB, QD 4 (aoefs bench)" "$(echo "$pairs" | awk '{print $1}' | median) MB/s" \
    "$(echo "$pairs" | awk '{print $2}' | median) MB/s" "$(echo "$pairs" | awk '{print $2/$1}' | median2)"
done

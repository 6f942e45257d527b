#!/usr/bin/env bash
# make bench (engine part): aoefs's engine against the C yardstick (../shared/tools/aoe-raw-bench.c),
# in the same lab, in the same run, so every figure is also a ratio (the machine is noisy).
# Needs root. Each figure is the median of RUNS runs; the spread (min–max) follows it.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
SECONDS_PER_TEST=${SECONDS_PER_TEST:-3}
MTU=${MTU:-9000}
YARDSTICK=${YARDSTICK:-.build/aoe-raw-bench}

[ "$(id -u)" = 0 ] || { echo "bench: needs root (network namespaces, raw sockets)" >&2; exit 2; }
swift build -c release --product aoefs >/dev/null
swift build -c release --product aoe-lab >/dev/null
[ -x "$YARDSTICK" ] || make -s bench-tools

out=$(mktemp -d)
.build/release/aoe-lab --mtu "$MTU" --size $((4 << 30)) > "$out/lab" 2>&1 &
lab=$!
trap 'kill -INT $lab 2>/dev/null; wait $lab 2>/dev/null; rm -rf "$out"' EXIT
for _ in $(seq 50); do grep -q initiator= "$out/lab" && break; sleep 0.1; done
IF=$(sed -n 's/.*initiator=\([^ ]*\).*/\1/p' "$out/lab")
[ -n "$IF" ] || { cat "$out/lab"; exit 1; }

median() { sort -n | awk '{a[NR]=$1} END {m=a[int((NR+1)/2)]; printf "%.1f (%.1f–%.1f)", m, a[1], a[NR]}'; }
med() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

run_aoefs() {  # test bs qd field
  for _ in $(seq "$RUNS"); do
    .build/release/aoefs bench --iface "$IF" --target 10.3 --test "$1" --bs "$2" --qd "$3" --rand-bs "$2" --rand-qd "$3" \
      --seconds "$SECONDS_PER_TEST" --write | awk -v f="$4" -v t="$1" '$1==t { for (i=1;i<=NF;i++) if ($i ~ "^"f"=") { sub(f"=","",$i); print $i } }'
  done
}
run_yard() {  # flags field
  for _ in $(seq "$RUNS"); do
    # shellcheck disable=SC2086
    "$YARDSTICK" -i "$IF" $1 | awk -v f="$2" '/^RESULT/ { for (i=1;i<=NF;i++) if ($i ~ "^"f"=") { sub(f"=","",$i); print $i } }'
  done
}

printf "%-34s %-24s %-24s %s\n" "test (MTU $MTU, vblade -b 16)" "aoefs engine" "yardstick (C)" "ratio"
row() {  # name aoefs-values yard-values unit
  a=$(echo "$2" | med); y=$(echo "$3" | med)
  printf "%-34s %-24s %-24s %.2f\n" "$1" "$(echo "$2" | median) $4" "$(echo "$3" | median) $4" "$(awk -v a="$a" -v y="$y" 'BEGIN{print a/y}')"
}
row "seq read 1 MiB, 16 frames in flight" "$(run_aoefs seqread 1M 2 MB/s)" "$(run_yard "-n 16 -s 1024" MBps)" "MB/s"
row "seq write 1 MiB, 16 frames in flight" "$(run_aoefs seqwrite 1M 2 MB/s)" "$(run_yard "-w -n 16 -s 1024" MBps)" "MB/s"
row "4 KiB random read, QD 32" "$(run_aoefs randread 4K 32 IOPS)" "$(run_yard "-n 32 -m 8 -s 1024" req/s)" "IOPS"
echo "(yardstick 4 KiB row: sequential 8-sector frames, 32 in flight: vblade's request ceiling)"

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
trap 'kill -INT $lab 2>/dev/null || true; wait $lab 2>/dev/null || true; rm -rf "$out"' EXIT
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

# Warm vblade's page cache over the span once, so neither side pays the first touch of the
# sparse backing file (which stalls single-threaded vblade for tens of milliseconds).
"$YARDSTICK" -i "$IF" -w -n 16 -s 1024 >/dev/null
"$YARDSTICK" -i "$IF" -n 16 -s 1024 >/dev/null

printf "%-34s %-24s %-24s %s\n" "test (MTU $MTU, vblade -b 16)" "aoefs engine" "yardstick (C)" "ratio"
pair() {  # aoefs-args yard-args -> "a y" lines, runs interleaved so drift hits both alike
  for _ in $(seq "$RUNS"); do
    a=$(RUNS=1 run_aoefs $1); y=$(RUNS=1 run_yard "$2" "$3"); echo "$a $y"
  done
}
row2() {  # name aoefs-args yard-args yard-field unit
  p=$(pair "$2" "$3" "$4")
  row "$1" "$(echo "$p" | awk '{print $1}')" "$(echo "$p" | awk '{print $2}')" "$5"
}
row() {  # name aoefs-values yard-values unit
  a=$(echo "$2" | med); y=$(echo "$3" | med)
  printf "%-34s %-24s %-24s %.2f\n" "$1" "$(echo "$2" | median) $4" "$(echo "$3" | median) $4" "$(awk -v a="$a" -v y="$y" 'BEGIN{print a/y}')"
}
row2 "seq read (1 MiB requests, QD 4)" "seqread 1M 4 MB/s" "-n 16 -s 1024" MBps "MB/s"
row2 "seq write (1 MiB requests, QD 4)" "seqwrite 1M 4 MB/s" "-w -n 16 -s 1024" MBps "MB/s"
row2 "4 KiB random read, QD 32" "randread 4K 32 IOPS" "-n 32 -m 8 -s 1024" req/s "IOPS"
echo "(the engine keeps at most bufcnt = 16 frames in flight, as does the yardstick with -n 16;"
echo " the yardstick's 4 KiB row is sequential 8-sector frames, 32 in flight: vblade's request ceiling)"

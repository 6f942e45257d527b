#!/usr/bin/env bash
# make bench (engine part): aoefs's engine (`aoefs bench`) against the C yardstick
# (../shared/tools/aoe-raw-bench.c) in the same lab, runs interleaved (engine, yardstick, engine,
# …) so the machine's drift hits both alike. Each row: the median (min–max) of RUNS runs of
# each, the median of the RUNS paired ratios (and their range), and CPU seconds per GB of data of
# each initiator process. Needs root.
source "$(dirname "$0")/lib.sh"
RUNS=${RUNS:-5}
SECONDS_PER_TEST=${SECONDS_PER_TEST:-3}
MTU=${MTU:-9000}
YARDSTICK=${YARDSTICK:-.build/aoe-raw-bench}
[ -x "$YARDSTICK" ] || make -s bench-tools
start_lab "$MTU" $((4 << 30))

engine() {  # test bs qd -> "value cpu_s/GB"
  .build/release/aoefs bench --iface "$IF" --target 10.3 --test "$1" --bs "$2" --qd "$3" --rand-bs "$2" --rand-qd "$3" \
    --seconds "$SECONDS_PER_TEST" --size 1G --write | awk -v t="$1" -v f="$4" '$1==t {
      for (i=1;i<=NF;i++) { split($i, kv, "="); v[kv[1]] = kv[2] } print v[f], v["cpu_s/GB"] }'
}
yard() {  # flags field -> "value cpu_s/GB"
  # shellcheck disable=SC2086
  "$YARDSTICK" -i "$IF" $1 | awk -v f="$2" '/^RESULT/ {
      for (i=1;i<=NF;i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
      printf "%s %.2f\n", v[f], (v["cli_cpu"] / 100) / (v["MBps"] / 1000) }'
}

# Warm vblade's page cache over the span once, so neither side pays the first touch of the
# sparse backing file (which stalls single-threaded vblade for tens of milliseconds).
"$YARDSTICK" -i "$IF" -w -n 16 -s 1024 >/dev/null
"$YARDSTICK" -i "$IF" -n 16 -s 1024 >/dev/null

printf "%-30s %-22s %-22s %-18s %s\n" "test (MTU $MTU, vblade -b 16)" "aoefs engine" "yardstick (C)" "paired ratio" \
  "CPU-s/GB engine, C"
row() {  # name "engine-args" "yard-flags" yard-field engine-field unit
  local pairs=""
  for _ in $(seq "$RUNS"); do
    # shellcheck disable=SC2086
    a=$(engine $2 "$5"); y=$(yard "$3" "$4")
    pairs+="$a $y"$'\n'
  done
  pairs=${pairs%$'\n'}
  printf "%-30s %-22s %-22s %-18s %s, %s\n" "$1" \
    "$(echo "$pairs" | awk '{print $1}' | median) $6" "$(echo "$pairs" | awk '{print $3}' | median) $6" \
    "$(echo "$pairs" | awk '{print $1/$3}' | median2)" \
    "$(echo "$pairs" | awk '{print $2}' | med)" "$(echo "$pairs" | awk '{print $4}' | med)"
}
row "seq read, 1 MiB, QD 4" "seqread 1M 4" "-n 16 -s 1024" MBps MB/s MB/s
row "seq write, 1 MiB, QD 4" "seqwrite 1M 4" "-w -n 16 -s 1024" MBps MB/s MB/s
row "4 KiB random read, QD 32" "randread 4K 32" "-R -m 8 -n 32 -s 1024" req/s IOPS IOPS
echo "(the engine keeps at most bufcnt = 16 frames in flight, as the yardstick does with -n 16; its"
echo " 4 KiB row is -R: 8-sector requests at random aligned LBAs, 32 in flight, like fio's QD 32)"

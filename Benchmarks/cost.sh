#!/usr/bin/env bash
# make bench-cost: what one request costs the initiator, in instructions, counted by callgrind
# (deterministic: the same build and load count the same, whatever else the machine does) for
# the engine (`aoefs bench`) and the C yardstick against the same vblade:
#   per 1 MiB sequential read, per 1 MiB sequential write, per 4 KiB random read (QD 32).
# Each side runs twice, with a small and a large amount of work; the difference divided by the
# extra work is the cost per request without start-up (discovery, threads, the lab's first touch).
# Instructions of the initiator's process only (all its threads), user space only: the kernel's
# share (sendmmsg/recvmmsg vs send/recv) is in the CPU-s per GB that make bench prints.
# Needs root and valgrind. Prints a table; RAW=1 also prints the callgrind totals.
source "$(dirname "$0")/lib.sh"
command -v valgrind >/dev/null || { echo "bench: needs valgrind (apt-get install valgrind)" >&2; exit 2; }
YARDSTICK=${YARDSTICK:-.build/aoe-raw-bench}
[ -x "$YARDSTICK" ] || make -s bench-tools
start_lab 9000 $((1 << 30))
# valgrind 3.19 cannot read the DWARF 5 that Swift's toolchain writes: count a copy without
# debug information (the symbol table stays, so callgrind_annotate still names functions).
AOEFS="$OUT/aoefs"
objcopy --strip-debug .build/release/aoefs "$AOEFS"

ir() {  # command... -> total instructions (Ir) of the process, all threads
  local f="$OUT/cg.$RANDOM"
  valgrind --tool=callgrind --callgrind-out-file="$f" --collect-atstart=yes "$@" >"$f.out" 2>"$f.err" ||
    { cat "$f.out" "$f.err" >&2; exit 1; }
  [ -z "${RAW:-}" ] || { echo "  $* → $(awk '/^(summary|totals):/ {print $2; exit}' "$f")" >&2; }
  awk '/^(summary|totals):/ {print $2; exit}' "$f"
}
engine() {  # test bs qd count
  ir "$AOEFS" bench --iface "$IF" --target 10.3 --test "$1" --bs "$2" --qd "$3" --rand-bs "$2" \
    --rand-qd "$3" --count "$4" --seconds 600 --size 512M --write
}
yard() {  # flags span-MiB
  # shellcheck disable=SC2086
  ir "$YARDSTICK" -i "$IF" $1 -s "$2" -t 5000
}
per() { awk -v a="$1" -v b="$2" -v n="$3" 'BEGIN { printf "%.0f", (b - a) / n }'; }

# Warm vblade's page cache over the span, so first touches do not slow either side.
"$YARDSTICK" -i "$IF" -n 16 -s 512 >/dev/null

printf "%-30s %16s %16s %7s\n" "instructions per request" "aoefs engine" "yardstick (C)" "ratio"
row() {  # name engine-per yard-per
  printf "%-30s %16s %16s %7.2f\n" "$1" "$2" "$3" "$(awk -v a="$2" -v y="$3" 'BEGIN{print a/y}')"
}
# 1 MiB sequential: the engine does 16 then 80 requests of 1 MiB; the yardstick reads 16 then 80
# MiB in frames of 17 sectors, 16 in flight (vblade -b 16): the difference is 64 MiB each.
e1=$(engine seqread 1M 4 16); e2=$(engine seqread 1M 4 80)
y1=$(yard "-n 16" 16); y2=$(yard "-n 16" 80)
row "seq read, per 1 MiB (QD 4)" "$(per "$e1" "$e2" 64)" "$(per "$y1" "$y2" 64)"
e1=$(engine seqwrite 1M 4 16); e2=$(engine seqwrite 1M 4 80)
y1=$(yard "-w -n 16" 16); y2=$(yard "-w -n 16" 80)
row "seq write, per 1 MiB (QD 4)" "$(per "$e1" "$e2" 64)" "$(per "$y1" "$y2" 64)"
# 4 KiB random: 2,048 then 10,240 requests on each side (the yardstick: -R -m 8 over 8, 40 MiB).
e1=$(engine randread 4K 32 2048); e2=$(engine randread 4K 32 10240)
y1=$(yard "-R -m 8 -n 32" 8); y2=$(yard "-R -m 8 -n 32" 40)
row "4 KiB random read (QD 32)" "$(per "$e1" "$e2" 8192)" "$(per "$y1" "$y2" 8192)"
echo "(callgrind Ir, user space, the initiator's process; marginal cost: (large − small) / extra requests)"

#!/usr/bin/env bash
# make bench (target part): aoefs's own target (`aoefs serve`) against Debian's vblade, each
# serving an equal, page-cache-warm file in the same lab, measured by the same initiator
# (`aoefs bench`), interleaved. Needs root. Medians of RUNS runs, ranges after them.
source "$(dirname "$0")/lib.sh"
RUNS=${RUNS:-3}
SECS=${SECS:-3}
start_lab 9000 $((2 << 30))
serve=""
on_exit '[ -n "$serve" ] && { kill -TERM "$serve" 2>/dev/null; wait "$serve" 2>/dev/null; }'
SPAN=1024  # MiB
FILE2="$OUT/e10.4.img"
truncate -s $((2 << 30)) "$FILE2"
dd if=/dev/zero of="$FILE" bs=1M count=$SPAN conv=notrunc status=none
dd if=/dev/zero of="$FILE2" bs=1M count=$SPAN conv=notrunc status=none
# exec in place of nsenter, so $serve is the target's own PID.
nsenter --net=/run/netns/"$NS" .build/release/aoefs serve -b 16 10 4 "$TIF" "$FILE2" > "$OUT/serve.log" 2>&1 &
serve=$!
for _ in $(seq 50); do grep -q sectors "$OUT/serve.log" && break; sleep 0.1; done

one() {  # target test bs qd field
  .build/release/aoefs bench --iface "$IF" --target "$1" --test "$2" --bs "$3" --qd "$4" --rand-bs "$3" --rand-qd "$4" \
    --seconds "$SECS" --size ${SPAN}M --write | awk -v f="$5" -v t="$2" '$1==t { for (i=1;i<=NF;i++) if ($i ~ "^"f"=") { sub(f"=","",$i); print $i } }'
}
row() {  # name test bs qd field unit
  local v s
  v=""; s=""
  for _ in $(seq "$RUNS"); do v+="$(one 10.3 "$2" "$3" "$4" "$5")"$'\n'; s+="$(one 10.4 "$2" "$3" "$4" "$5")"$'\n'; done
  v=$(echo "$v" | sed '/^$/d'); s=$(echo "$s" | sed '/^$/d')
  printf "%-34s %-30s %-30s %.2f\n" "$1" "$(echo "$v" | median) $6" "$(echo "$s" | median) $6" \
    "$(awk -v a="$(echo "$s" | med)" -v b="$(echo "$v" | med)" 'BEGIN{print a/b}')"
}
printf "%-34s %-30s %-30s %s\n" "test (MTU 9000, -b 16, aoefs bench)" "vblade" "aoefs serve" "ratio"
row "seq read (1 MiB requests, QD 4)" seqread 1M 4 MB/s MB/s
row "seq write (1 MiB requests, QD 4)" seqwrite 1M 4 MB/s MB/s
row "4 KiB random read, QD 32" randread 4K 32 IOPS IOPS

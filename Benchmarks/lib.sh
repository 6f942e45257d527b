# Benchmarks/lib.sh — sourced by the benchmark scripts: root check, release builds, one lab
# (aoe-lab: a namespace with vblade serving e10.3 over a veth pair), cleanup, medians.
#
#   start_lab MTU SIZE_BYTES   sets OUT (scratch dir), LAB (pid), IF (initiator's veth),
#                              NS (target namespace), TIF (target's veth), FILE, VBLADE (pid)
#   on_exit 'commands'         runs them (before the lab goes) when the script exits
#   median / median2           "m (min–max)" of numbers on stdin, 1 or 2 decimals
#   med                        the bare median
#   field NAME                 the value of NAME=value in `aoefs bench` output lines
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

[ "$(id -u)" = 0 ] || { echo "bench: needs root (network namespaces, raw sockets)" >&2; exit 2; }
swift build -c release --product aoefs >/dev/null
swift build -c release --product aoe-lab >/dev/null

EXIT_HOOKS=""
on_exit() { EXIT_HOOKS="$1; $EXIT_HOOKS"; }
_cleanup() {
  eval "$EXIT_HOOKS" || true
  [ -n "${LAB:-}" ] && { kill -INT "$LAB" 2>/dev/null || true; wait "$LAB" 2>/dev/null || true; }
  [ -n "${OUT:-}" ] && rm -rf "$OUT"
}
trap _cleanup EXIT

start_lab() {  # MTU SIZE_BYTES
  OUT=$(mktemp -d)
  .build/release/aoe-lab --mtu "$1" --size "$2" > "$OUT/lab" 2>&1 &
  LAB=$!
  # aoe-lab prints its line once the lab is up; wait for it (or for aoe-lab to fail).
  while kill -0 "$LAB" 2>/dev/null && ! grep -q initiator= "$OUT/lab"; do sleep 0.1; done
  IF=$(sed -n 's/.*initiator=\([^ ]*\).*/\1/p' "$OUT/lab")
  NS=$(sed -n 's/.*namespace=\([^ ]*\).*/\1/p' "$OUT/lab")
  TIF=$(sed -n 's/.*target=\([^ ]*\).*/\1/p' "$OUT/lab")
  FILE=$(sed -n 's/.*file=\([^ ]*\).*/\1/p' "$OUT/lab")
  VBLADE=$(sed -n 's/.*vblade=\([0-9]*\).*/\1/p' "$OUT/lab")
  [ -n "$IF" ] || { cat "$OUT/lab" >&2; exit 1; }
}

median() { sort -n | awk '{a[NR]=$1} END {m=a[int((NR+1)/2)]; printf "%.1f (%.1f–%.1f)", m, a[1], a[NR]}'; }
median2() { sort -n | awk '{a[NR]=$1} END {m=a[int((NR+1)/2)]; printf "%.2f (%.2f–%.2f)", m, a[1], a[NR]}'; }
med() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
field() { awk -v f="$1" '{ for (i=1;i<=NF;i++) if ($i ~ "^"f"=") { sub(f"=","",$i); print $i } }'; }

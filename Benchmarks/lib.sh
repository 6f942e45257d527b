# Benchmarks/lib.sh — sourced by the benchmark scripts: root check, release builds, one lab
# (aoe-lab: a namespace with vblade serving e10.3 over a veth pair), cleanup, medians.
#
#   start_lab MTU SIZE_BYTES   sets OUT (scratch dir), LAB (pid), IF (initiator's veth),
#                              NS (target namespace), TIF (target's veth), FILE, VBLADE (pid)
#   on_exit 'commands'         runs them (before the lab goes) when the script exits
#   median / median2           "m (min–max)" of numbers on stdin, 1 or 2 decimals
#   med                        the bare median
#   field NAME                 the value of NAME=value in `aoefs bench` output lines
#   start_peer                 qemu-nbd in NS serving FILE on a link-local address of the lab's
#                              pair, qemu-storage-daemon's FUSE export of it here: sets QIMG
#   uring_on                   enable_uring Y for this script (put back on exit); sets URING=1
#                              if the kernel has FUSE over io_uring, else URING=0
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

start_peer() {
  QIMG="$OUT/qemu.img"; : > "$QIMG"; local nbd qsd
  on_exit 'grep -q " $QIMG fuse" /proc/mounts && fusermount3 -u "$QIMG" 2>/dev/null || true'
  ip addr add 169.254.77.1/24 dev "$IF"
  ip -n "$NS" addr add 169.254.77.2/24 dev "$TIF"
  nsenter --net=/run/netns/"$NS" qemu-nbd -f raw -x disk --bind 169.254.77.2 --port 10809 --persistent \
    --cache=writeback "$FILE" > "$OUT/nbd.log" 2>&1 &
  nbd=$!
  on_exit "kill $nbd 2>/dev/null; wait $nbd 2>/dev/null"
  until nsenter --net=/run/netns/"$NS" ss -ltn | grep -q 169.254.77.2:10809; do
    kill -0 "$nbd" 2>/dev/null || { cat "$OUT/nbd.log" >&2; exit 1; }; sleep 0.1
  done
  qemu-storage-daemon \
    --blockdev driver=nbd,node-name=nbd0,server.type=inet,server.host=169.254.77.2,server.port=10809,export=disk \
    --export type=fuse,id=exp0,node-name=nbd0,mountpoint="$QIMG",writable=on > "$OUT/qsd.log" 2>&1 &
  qsd=$!
  on_exit "kill $qsd 2>/dev/null; wait $qsd 2>/dev/null"
  until grep -q " $QIMG fuse" /proc/mounts; do
    kill -0 "$qsd" 2>/dev/null || { cat "$OUT/qsd.log" >&2; exit 1; }; sleep 0.1
  done
}

uring_on() {
  local p=/sys/module/fuse/parameters/enable_uring
  URING=0
  [ -e "$p" ] || return 0
  local old; old=$(cat "$p")
  on_exit "echo $old > $p"
  echo Y > "$p"; URING=1
}

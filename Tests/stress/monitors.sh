#!/usr/bin/env bash
# The monitors of the stress mix (issue 30): everything an admin's tools read and write on a
# mount while it carries I/O, in a loop until STOP_FILE exists. Each failure is one line on
# stdout ("FAIL what: why"); at the end one line "monitors: N rounds, F failures" and the counts.
#   MNT       the aoefs mount
#   AOEFS     the aoefs binary
#   FLAP_IF   an interface to take down and up again each round (the initiator's end of a link)
#   TOGGLE    a target to disable and enable each round (e.g. 12.1)
#   PUNCH     an image whose target offers TRIM, and PUNCH_FROM its first byte nobody else uses:
#             each round a MiB there is written, a hole punched in it (unaligned ends), and read
#             back: the hole must read as zeros, the bytes around it as written (issue 33)
#   STOP_FILE ends the loop when it exists
set -u
rounds=0 failures=0
fail() { echo "FAIL $1: $2"; failures=$((failures + 1)); }
# A read that must succeed: any error (EIO, ENOTCONN, ENOENT of a file that was listed) counts.
readall() {
  local f
  for f in "$@"; do
    out=$(timeout 10 cat "$f" 2>&1 >/dev/null) || fail "cat $f" "${out:-exit $?}"
  done
}
while [ ! -e "$STOP_FILE" ]; do
  rounds=$((rounds + 1))
  readall "$MNT"/sys/*/* "$MNT"/sys/metrics "$MNT"/sys/daemon "$MNT"/etherd/interfaces
  # err never ends (it waits for lines): a second of it.
  timeout 1 cat "$MNT/etherd/err" > /dev/null 2>&1
  [ $? -le 1 ] || [ $? -eq 124 ] || true
  out=$("$AOEFS" iostat --mount "$MNT" 2>&1 >/dev/null) || fail iostat "$out"
  out=$("$AOEFS" stat "$MNT" --json 2>&1 >/dev/null) || fail "stat --json" "$out"
  out=$("$AOEFS" list --json --mount "$MNT" 2>&1 >/dev/null) || fail "list --json" "$out"
  # The doctor's verdict depends on the faults planted here (loss); only its running counts.
  "$AOEFS" doctor --mount "$MNT" > /dev/null 2>&1
  [ $? -le 2 ] || fail doctor "exit $?"
  echo > "$MNT/etherd/discover" || fail discover "write failed"
  echo e10.3 > "$MNT/etherd/revalidate" || fail revalidate "write failed"
  if [ -n "${TOGGLE:-}" ]; then
    out=$("$AOEFS" disable "$TOGGLE" --mount "$MNT" 2>&1) || fail disable "$out"
    out=$("$AOEFS" enable "$TOGGLE" --mount "$MNT" 2>&1) || fail enable "$out"
  fi
  if [ -n "${PUNCH:-}" ]; then
    mib=$(( PUNCH_FROM / 1048576 + rounds % 64 ))
    tmp="$STOP_FILE.punch"
    head -c 1048576 /dev/urandom > "$tmp"
    if ! out=$(dd if="$tmp" of="$PUNCH" bs=1M seek="$mib" count=1 oflag=direct conv=notrunc,nocreat status=none 2>&1); then
      fail "punch: write" "$out"
    elif ! out=$(fallocate --punch-hole --offset $(( mib * 1048576 + 1000 )) --length $(( 1048576 - 2000 )) "$PUNCH" 2>&1); then
      fail "punch: fallocate" "$out"
    else
      dd if="$PUNCH" of="$tmp.back" bs=1M skip="$mib" count=1 iflag=direct status=none
      cmp -s -n 1000 "$tmp" "$tmp.back" || fail punch "the 1000 bytes before the hole changed"
      [ "$(tail -c +1001 "$tmp.back" | head -c $(( 1048576 - 2000 )) | tr -d '\0' | wc -c)" = 0 ] ||
        fail punch "the hole at MiB $mib does not read as zeros"
      cmp -s -i $(( 1048576 - 1000 )) "$tmp" "$tmp.back" || fail punch "the 1000 bytes after the hole changed"
    fi
  fi
  if [ -n "${FLAP_IF:-}" ] && [ $((rounds % 5)) -eq 0 ]; then
    ip link set "$FLAP_IF" down && sleep 1 && ip link set "$FLAP_IF" up || fail flap "ip link"
  fi
  sleep 0.5
done
echo "monitors: $rounds rounds, $failures failures"

#!/usr/bin/env bash
# The monitors of the stress mix (issue 30): everything an admin's tools read and write on a
# mount while it carries I/O, in a loop until STOP_FILE exists. Each failure is one line on
# stdout ("FAIL what: why"); at the end one line "monitors: N rounds, F failures" and the counts.
#   MNT       the aoefs mount
#   AOEFS     the aoefs binary
#   FLAP_IF   an interface to take down and up again each round (the initiator's end of a link)
#   TOGGLE    a target to disable and enable each round (e.g. 12.1)
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
  if [ -n "${FLAP_IF:-}" ] && [ $((rounds % 5)) -eq 0 ]; then
    ip link set "$FLAP_IF" down && sleep 1 && ip link set "$FLAP_IF" up || fail flap "ip link"
  fi
  sleep 0.5
done
echo "monitors: $rounds rounds, $failures failures"

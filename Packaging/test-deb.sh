#!/usr/bin/env bash
# make deb-test (run by make test, as root): builds the package, checks it with lintian (no
# errors), installs it, runs `aoefs demo -- …` with the installed binary (and, inside it, a
# `mount -t fuse.aoefs` through mount.fuse3, which must find /usr/sbin/aoefs), purges it and
# checks that nothing it installed is left. The package is purged also when a step fails.
set -euo pipefail
cd "$(dirname "$0")/.."
fail() { echo "test-deb: FAIL: $*" >&2; exit 1; }
step() { echo "test-deb: $*"; }

if [ "$(id -u)" -ne 0 ]; then
  [ "${AOEFS_REQUIRE_LAB:-}" != 1 ] || fail "needs root (dpkg -i), and AOEFS_REQUIRE_LAB=1 asks for every test"
  echo "test-deb: skipped: needs root (dpkg -i)"; exit 0
fi
if dpkg-query -W -f='${Status}' aoefs 2>/dev/null | grep -q "ok installed"; then
  fail "an aoefs package is installed here already; this test installs and purges its own"
fi
[ ! -e /etc/aoefs.conf ] || fail "/etc/aoefs.conf exists (make install?); the package would not own it"

deb=$(Packaging/build-deb.sh)
step "built $deb ($(du -h "$deb" | cut -f1))"

lint=$(lintian --tag-display-limit 0 "$deb" 2>/dev/null || true)
if [ -z "$lint" ]; then step "lintian: no errors, no warnings"; else echo "$lint" | sed 's/^/test-deb: lintian: /'; fi
! echo "$lint" | grep -q '^E:' || fail "lintian reports errors"

work=$(mktemp -d /tmp/aoet-deb.XXXXXX)
cleanup() {
  mountpoint -q "$work/mnt" 2>/dev/null && umount "$work/mnt"
  if dpkg-query -W -f='${Status}' aoefs 2>/dev/null | grep -q installed; then dpkg -P aoefs >/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

dpkg -i "$deb" >/dev/null
files=$(dpkg -L aoefs | while read -r f; do [ -d "$f" ] || echo "$f"; done)
step "installed: $(echo "$files" | tr '\n' ' ')"
for f in /usr/sbin/aoefs /usr/share/man/man8/aoefs.8.gz /lib/systemd/system/aoefs.service /etc/aoefs.conf \
         /usr/share/doc/aoefs/copyright; do
  echo "$files" | grep -qx "$f" || fail "$f is not in the package"
done
dpkg-query -W -f='${Conffiles}' aoefs | grep -q '/etc/aoefs.conf' || fail "/etc/aoefs.conf is not a conffile"
grep -q '^ExecStart=/usr/sbin/aoefs mount /mnt/aoe' /lib/systemd/system/aoefs.service || fail "the unit runs another binary"
[ "$(man -w aoefs)" = /usr/share/man/man8/aoefs.8.gz ] || fail "man aoefs does not find the page"
/usr/sbin/aoefs --version | grep -q '^aoefs ' || fail "the installed binary does not run"

# The demo with the installed binary; inside it, mount(8) → mount.fuse3 → aoefs from the
# default PATH, on the demo's veth, sees the demo's target too (aoefs mount returns once the
# targets that answered are there).
mkdir -p "$work/mnt" "$work/demo"
out=$(cd "$work/demo" && AOEFS_DEMO_PREFIX=aoetp /usr/sbin/aoefs demo --size 64M -- sh -c '
  set -e
  test -f "$AOEFS_MOUNT/e10.3"
  mount -t fuse.aoefs aoefs '"$work/mnt"' -o iface="$AOEFS_IFACE",deadsecs=10
  ls '"$work/mnt"'
  umount '"$work/mnt"'
  echo demo-ok' 2>&1) || fail "aoefs demo with the installed binary: $out"
echo "$out" | grep -q '^e10.3$' || fail "mount -t fuse.aoefs did not show e10.3: $out"
echo "$out" | grep -q '^demo-ok$' || fail "the demo's command did not finish: $out"
step "aoefs demo -- … ran with /usr/sbin/aoefs; mount -t fuse.aoefs worked"
(cd "$work/demo" && AOEFS_DEMO_PREFIX=aoetp /usr/sbin/aoefs demo --size 16M -- true) || fail "aoefs demo -- true"
step "aoefs demo -- true: exit 0"

dpkg -P aoefs >/dev/null
left=$(echo "$files" | while read -r f; do [ ! -e "$f" ] || echo "$f"; done)
[ -z "$left" ] || fail "purged, but left: $left"
dpkg-query -W -f='${Status}' aoefs 2>/dev/null | grep -q installed && fail "dpkg still lists aoefs"
[ -z "$(ip netns list | grep '^aoetp' || true)" ] || fail "a demo namespace is left"
step "purged: nothing left"
echo "test-deb: ok"

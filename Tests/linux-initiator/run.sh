#!/usr/bin/env bash
# The Linux kernel's own aoe initiator as a client of `aoefs serve` (issue 21): Debian's kernel
# (its package fetched with apt-get download and unpacked, never installed) boots under qemu TCG
# with aoe.ko in a small initramfs (busybox-static, aoetools, e2fsprogs), on a tap joined by a
# bridge to a target in a network namespace. In the guest (guest-init.sh): aoe-discover,
# aoe-stat, a dd round trip with sha256, mkfs.ext4 + fsck on /dev/etherd/e10.3. Targets:
# `aoefs serve` on an ext4 (or other disk) file, `aoefs serve` on a tmpfs file, and vblade as
# the control. The guest's sysfs texts and aoe-stat line are written to $OUT/golden.txt, and
# compared with the references in golden.txt beside this script (field by field, values that
# differ per run masked).
#
# Usage (root): Tests/linux-initiator/run.sh AOEFS_BINARY
# Needs: qemu-system-x86, cpio, busybox-static, aoetools (downloaded, not installed), vblade.
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"
here=$(cd "$(dirname "$0")" && pwd)
if [ "$(id -u)" -ne 0 ]; then
  echo "linux-initiator: skipped: needs root (network namespaces, a tap, qemu)"
  [ -n "${AOEFS_REQUIRE_LAB:-}" ] && exit 1
  exit 0
fi
aoefs=$(realpath "${1:?usage: run.sh AOEFS_BINARY}")
id="aoet$(printf '%04x' $((RANDOM % 65536)))q"
ns="${id}n"
work=$(mktemp -d /tmp/aoefs-linux-guest.XXXXXX)
shm=""
target_pid=""
cleanup() {
  set +e
  [ -n "$target_pid" ] && kill "$target_pid" 2>/dev/null && wait "$target_pid" 2>/dev/null
  ip netns del "$ns" 2>/dev/null
  [ -n "$shm" ] && rm -f "$shm"
  rm -rf "$work"
}
trap cleanup EXIT

# --- The guest's parts, downloaded once into .build/linux-guest (guest-lib.sh) ---------------
source "$here/guest-lib.sh"
guest_kernel
kernel="$GUEST_KERNEL"
initrd="$GUEST_CACHE/base-$GUEST_KVER.cpio"
# aoetools and e2fsprogs with the libraries they link (aoe-stat is a bash script: bash too).
guest_initrd "$initrd" "virtio_pci virtio_net aoe" "$GUEST_CACHE"/root-aoetools/sbin/aoe-* /sbin/mke2fs /sbin/e2fsck /bin/bash
guest_with_init "$initrd" "$here/guest-init.sh" "$work/initrd.cpio"

# --- The network: [guest eth0] tap ─ bridge ─ veth ─ [target], all in namespace $ns ----------
guest_network "$id"
ns="$GUEST_NS"; vtgt="$GUEST_TARGET_IF"

# One guest run against TARGET (a command line run in the namespace); prints its findings.
guest() {
  local name=$1; shift
  local log="$work/$name.target.log"
  ip netns exec "$ns" "$@" > "$log" 2>&1 &
  target_pid=$!
  # The target is ready when it says so (vblade prints nothing useful; give it its socket).
  for _ in $(seq 50); do
    grep -q "sectors" "$log" 2>/dev/null && break
    kill -0 "$target_pid" 2>/dev/null || { echo "$name: the target exited: $(cat "$log")"; return 1; }
    sleep 0.1
  done
  local out="$work/$name.console"
  guest_boot "$work/initrd.cpio" "$out" 300 "" -smp 2 -m 1G
  kill "$target_pid" 2>/dev/null; wait "$target_pid" 2>/dev/null || true
  target_pid=""
  # (The first line may follow the firmware's escape sequences on the same line.)
  tr -d '\r' < "$out" | grep -o 'AOEGUEST .*' | sed "s/^AOEGUEST/$name:/"
  if ! tr -d '\r' < "$out" | grep -q 'AOEGUEST PASS'; then
    echo "$name: FAILED; the console's end:"; tr -d '\r' < "$out" | tail -20
    echo "$name: the target's log:"; tail -5 "$log"
    return 1
  fi
}

status=0
img="$work/disk.img"          # on /tmp's filesystem (ext4 on the machines here)
truncate -s 256M "$img"
shm=$(mktemp /dev/shm/aoefs-linux-guest.XXXXXX)
truncate -s 256M "$shm"
guest serve-disk  "$aoefs" serve -v 10 3 "$vtgt" "$img" | tee "$work/serve-disk.txt" || status=1
[ -n "${AOEFS_GUEST_QUICK:-}" ] && { cp "$work/serve-disk.console" /tmp/guest.console; exit 0; }  # debugging: one run
guest serve-tmpfs "$aoefs" serve -v 10 3 "$vtgt" "$shm" | tee "$work/serve-tmpfs.txt" || status=1
rm -f "$img"; truncate -s 256M "$img"
guest vblade      vblade 10 3 "$vtgt" "$img" | tee "$work/vblade.txt" || status=1

# The guest's texts as references for sys/: what differs per run (MAC) masked.
mask() { sed -E 's/[0-9a-f]{12}/MAC/; s/^[a-z-]+: //; s/  +/ /g; s/ $//' "$@"; }
if [ "$status" = 0 ]; then
  grep -E 'AOESTAT|SYSFS' "$work/serve-disk.txt" | mask > "$work/golden.txt"
  if ! diff -u <(grep -v '^#' "$here/golden.txt") "$work/golden.txt"; then
    echo "linux-initiator: the Linux driver's view of aoefs serve differs from golden.txt"; status=1
  fi
  # vblade, the control, must look the same to the driver.
  if ! diff -u <(grep -E 'AOESTAT|SYSFS' "$work/vblade.txt" | mask) "$work/golden.txt"; then
    echo "linux-initiator: vblade and aoefs serve look different to the Linux driver"; status=1
  fi
fi
[ "$status" = 0 ] && echo "linux-initiator: 3 passed, 0 failed" || echo "linux-initiator: failed"
exit "$status"

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
top=$(cd "$here/../.." && pwd)
cache="$top/.build/linux-guest"
mkdir -p "$cache"
id="aoet$(printf '%04x' $((RANDOM % 65536)))q"
ns="${id}n"; br="${id}b"; tap="${id}p"; vport="${id}v"; vtgt="${id}t"
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

# --- The guest's parts, downloaded once into .build/linux-guest -------------------------------
fetch() {  # fetch PACKAGE: unpacks PACKAGE's .deb into $cache/root-PACKAGE (once)
  local pkg=$1 dir="$cache/root-$1"
  [ -d "$dir" ] && return 0
  (cd "$cache" && rm -f "$pkg"_*.deb && apt-get download -qq "$pkg" >/dev/null 2>&1) || {
    apt-get update -qq && (cd "$cache" && apt-get download -qq "$pkg" >/dev/null); }
  mkdir -p "$dir.tmp" && dpkg-deb -x "$cache/$pkg"_*.deb "$dir.tmp" && mv "$dir.tmp" "$dir"
}
kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
if [ -z "$kpkg" ]; then apt-get update -qq; kpkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}'); fi
fetch "$kpkg"; fetch busybox-static; fetch aoetools
kroot="$cache/root-$kpkg"
kver=$(ls "$kroot/lib/modules" | head -1)
kernel="$kroot/boot/vmlinuz-$kver"

initrd="$cache/base-$kver.cpio"
if [ ! -s "$initrd" ]; then
  r="$work/initrd"
  mkdir -p "$r"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,tmp,lib/modules}
  cp "$cache/root-busybox-static/bin/busybox" "$r/bin/busybox"
  for a in $("$r/bin/busybox" --list); do [ -e "$r/bin/$a" ] || ln -s busybox "$r/bin/$a"; done
  # aoetools and e2fsprogs with the libraries they link.
  # (aoe-stat is a bash script: bash too.)
  bins=("$cache"/root-aoetools/sbin/aoe-* /sbin/mke2fs /sbin/e2fsck /bin/bash)
  for b in "${bins[@]}"; do
    if [ "$(basename "$b")" = bash ]; then rm -f "$r/bin/bash"; cp "$b" "$r/bin/bash"; else cp "$b" "$r/sbin/"; fi
    { ldd "$b" 2>/dev/null || true; } | grep -oE '/[^ ]+' | while read -r lib; do
      mkdir -p "$r$(dirname "$lib")" && cp -L "$lib" "$r$lib"; done || true  # a script links nothing
  done
  ln -sf mke2fs "$r/sbin/mkfs.ext4"; ln -sf e2fsck "$r/sbin/fsck.ext4"
  cp /etc/mke2fs.conf "$r/etc/" 2>/dev/null || true
  # aoe and the virtio network driver, with what they depend on, in load order.
  depmod -b "$kroot" "$kver"
  : > "$r/modules.order"
  for m in virtio_pci virtio_net aoe; do
    modprobe -d "$kroot" -S "$kver" --show-depends "$m" | awk '$1 == "insmod" {print $2}' | while read -r ko; do
      grep -qx "/lib/modules/$(basename "$ko")" "$r/modules.order" && continue
      case "$ko" in *.xz) xz -dc "$ko" > "$r/lib/modules/$(basename "$ko" .xz)"; ko="${ko%.xz}";;
                    *) cp "$ko" "$r/lib/modules/";; esac
      echo "/lib/modules/$(basename "$ko")" >> "$r/modules.order"
    done
  done
  cp "$here/guest-init.sh" "$r/init"
  (cd "$r" && find . | cpio -o -H newc --quiet) > "$initrd.tmp" && mv "$initrd.tmp" "$initrd"
fi
# The script itself goes in a second archive (the kernel unpacks both), so editing it needs no
# rebuild of the base.
mkdir -p "$work/over" && cp "$here/guest-init.sh" "$work/over/init"
(cd "$work/over" && find . | cpio -o -H newc --quiet) > "$work/over.cpio"
cat "$initrd" "$work/over.cpio" > "$work/initrd.cpio"

# --- The network: [guest eth0] tap ─ bridge ─ veth ─ [target], all in namespace $ns ----------
ip netns add "$ns"
ip -n "$ns" link set lo up
ip -n "$ns" link add "$br" mtu 9000 type bridge forward_delay 0 stp_state 0
ip -n "$ns" tuntap add "$tap" mode tap
ip -n "$ns" link add "$vport" mtu 9000 type veth peer name "$vtgt" mtu 9000
for d in "$tap" "$vport"; do ip -n "$ns" link set "$d" mtu 9000 master "$br" up; done
ip -n "$ns" link set "$vtgt" up
ip -n "$ns" link set "$br" up

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
  timeout 300 ip netns exec "$ns" qemu-system-x86_64 -accel tcg,thread=multi -cpu max -smp 2 -m 1G \
    -nographic -no-reboot -kernel "$kernel" -initrd "$work/initrd.cpio" \
    -append "console=ttyS0 quiet panic=-1 rdinit=/init" \
    -netdev "tap,id=n0,ifname=$tap,script=no,downscript=no" -device "virtio-net-pci,netdev=n0,host_mtu=9000" \
    < /dev/null > "$out" 2>&1 || true
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

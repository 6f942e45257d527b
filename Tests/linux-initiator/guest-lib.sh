# Tests/linux-initiator/guest-lib.sh — sourced by run.sh (the kernel's initiator as a client of
# aoefs serve) and Benchmarks/guest.sh (the kernel's driver against aoefs in one guest): Debian's
# kernel, fetched with apt-get download and unpacked (never installed), and initramfs archives
# built around it. Everything downloaded is kept in .build/linux-guest.
#
#   guest_kernel                   sets GUEST_CACHE, GUEST_KROOT, GUEST_KVER, GUEST_KERNEL
#   guest_initrd OUT "MODULES" BIN…  a cpio at OUT (built once: kept if it exists) with busybox,
#                                  each BIN in its own directory with the libraries ldd names,
#                                  and MODULES (with what they depend on) in /lib/modules, their
#                                  load order in /modules.order
#   guest_with_init BASE INIT OUT  OUT = BASE plus INIT as /init (a second archive: the kernel
#                                  unpacks both, so editing INIT needs no rebuild of BASE)

guest_fetch() {  # PACKAGE: its .deb unpacked into $GUEST_CACHE/root-PACKAGE (once)
  local pkg=$1 dir="$GUEST_CACHE/root-$1"
  [ -d "$dir" ] && return 0
  (cd "$GUEST_CACHE" && rm -f "$pkg"_*.deb && apt-get download -qq "$pkg" >/dev/null 2>&1) || {
    apt-get update -qq && (cd "$GUEST_CACHE" && apt-get download -qq "$pkg" >/dev/null); }
  mkdir -p "$dir.tmp" && dpkg-deb -x "$GUEST_CACHE/$pkg"_*.deb "$dir.tmp" && mv "$dir.tmp" "$dir"
}

guest_kernel() {
  local top; top=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
  GUEST_CACHE="$top/.build/linux-guest"
  mkdir -p "$GUEST_CACHE"
  local kpkg
  kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
  if [ -z "$kpkg" ]; then
    apt-get update -qq
    kpkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
  fi
  guest_fetch "$kpkg"; guest_fetch busybox-static; guest_fetch aoetools
  GUEST_KROOT="$GUEST_CACHE/root-$kpkg"
  GUEST_KVER=$(ls "$GUEST_KROOT/lib/modules" | head -1)
  GUEST_KERNEL="$GUEST_KROOT/boot/vmlinuz-$GUEST_KVER"
}

guest_initrd() {  # OUT "MODULES" BIN...
  local out=$1 modules=$2; shift 2
  [ -s "$out" ] && return 0
  local r; r=$(mktemp -d /tmp/aoefs-guest-initrd.XXXXXX)
  mkdir -p "$r"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,tmp,mnt,lib/modules}
  cp "$GUEST_CACHE/root-busybox-static/bin/busybox" "$r/bin/busybox"
  for a in $("$r/bin/busybox" --list); do [ -e "$r/bin/$a" ] || ln -s busybox "$r/bin/$a"; done
  local b lib
  for b in "$@"; do
    # A binary replaces busybox's applet of its name, in the directory it has on the host's
    # layout (sbin for admin tools, bin otherwise).
    local dest="$r/bin"
    case "$b" in */sbin/*) dest="$r/sbin";; esac
    rm -f "$dest/$(basename "$b")"; cp "$b" "$dest/"
    { ldd "$b" 2>/dev/null || true; } | grep -oE '/[^ ]+' | while read -r lib; do
      mkdir -p "$r$(dirname "$lib")" && cp -L "$lib" "$r$lib"; done || true  # a script links nothing
  done
  [ -e "$r/sbin/mke2fs" ] && { ln -sf mke2fs "$r/sbin/mkfs.ext4"; cp /etc/mke2fs.conf "$r/etc/" 2>/dev/null || true; }
  [ -e "$r/sbin/e2fsck" ] && ln -sf e2fsck "$r/sbin/fsck.ext4"
  depmod -b "$GUEST_KROOT" "$GUEST_KVER"
  : > "$r/modules.order"
  local m ko
  for m in $modules; do
    modprobe -d "$GUEST_KROOT" -S "$GUEST_KVER" --show-depends "$m" | awk '$1 == "insmod" {print $2}' | while read -r ko; do
      grep -qx "/lib/modules/$(basename "$ko" .xz)" "$r/modules.order" && continue
      case "$ko" in *.xz) xz -dc "$ko" > "$r/lib/modules/$(basename "$ko" .xz)"; ko="${ko%.xz}";;
                    *) cp "$ko" "$r/lib/modules/";; esac
      echo "/lib/modules/$(basename "$ko")" >> "$r/modules.order"
    done
  done
  (cd "$r" && find . | cpio -o -H newc --quiet) > "$out.tmp" && mv "$out.tmp" "$out"
  rm -rf "$r"
}

guest_with_init() {  # BASE INIT OUT
  local d; d=$(mktemp -d /tmp/aoefs-guest-init.XXXXXX)
  cp "$2" "$d/init" && chmod +x "$d/init"
  (cd "$d" && find . | cpio -o -H newc --quiet) > "$d.cpio"
  cat "$1" "$d.cpio" > "$3"
  rm -rf "$d" "$d.cpio"
}

guest_network() {  # ID: [guest eth0] tap ─ bridge ─ veth ─ [target], all in namespace ${ID}n
  # Sets GUEST_NS, GUEST_TAP (qemu's tap) and GUEST_TARGET_IF (the target's end); MTU 9000.
  local id=$1
  GUEST_NS="${id}n"; GUEST_TAP="${id}p"; GUEST_TARGET_IF="${id}t"
  local br="${id}b" vport="${id}v"
  ip netns add "$GUEST_NS"
  ip -n "$GUEST_NS" link set lo up
  ip -n "$GUEST_NS" link add "$br" mtu 9000 type bridge forward_delay 0 stp_state 0
  ip -n "$GUEST_NS" tuntap add "$GUEST_TAP" mode tap
  ip -n "$GUEST_NS" link add "$vport" mtu 9000 type veth peer name "$GUEST_TARGET_IF" mtu 9000
  local d
  for d in "$GUEST_TAP" "$vport"; do ip -n "$GUEST_NS" link set "$d" mtu 9000 master "$br" up; done
  ip -n "$GUEST_NS" link set "$GUEST_TARGET_IF" up
  ip -n "$GUEST_NS" link set "$br" up
}

guest_boot() {  # INITRD CONSOLE TIMEOUT "APPEND" [qemu options…]: boots on the tap, console to CONSOLE
  local initrd=$1 console=$2 limit=$3 append=$4; shift 4
  timeout "$limit" ip netns exec "$GUEST_NS" qemu-system-x86_64 -accel tcg,thread=multi -cpu max -nographic \
    -no-reboot -kernel "$GUEST_KERNEL" -initrd "$initrd" -append "console=ttyS0 quiet panic=-1 rdinit=/init $append" \
    -netdev "tap,id=n0,ifname=$GUEST_TAP,script=no,downscript=no" -device "virtio-net-pci,netdev=n0,host_mtu=9000" \
    "$@" < /dev/null > "$console" 2>&1 || true
}

#!/bin/sh
# /init of the guest that runs the Linux kernel's own aoe initiator against a target on the
# host (Tests/linux-initiator/run.sh builds the initramfs around it). It prints what it finds
# between markers on the serial console, which run.sh reads, and powers off. Busybox only,
# plus aoetools and e2fsprogs.
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $(cat /modules.order); do insmod "$m" 2>/dev/null; done
say() { echo "AOEGUEST $*"; }
fail() { say "FAIL $*"; poweroff -f; }
ip link set eth0 mtu 9000 up || fail "eth0 up"
# The kernel's discovery is asynchronous: ask until the device node is there.
i=0
while [ ! -b /dev/etherd/e10.3 ] && [ $i -lt 100 ]; do
  [ $((i % 10)) = 0 ] && aoe-discover
  sleep 0.1; i=$((i + 1))
done
[ -b /dev/etherd/e10.3 ] || fail "no /dev/etherd/e10.3 after 10 s: $(aoe-stat 2>&1)"
# Wait for the payload to be known (the driver learns it from the config answer).
say "AOESTAT $(aoe-stat | grep e10.3 | tr -s ' ')"
d=/sys/block/etherd!e10.3
for f in state mac netif payload firmware-version; do
  [ -e "$d/$f" ] && say "SYSFS $f $(cat "$d/$f")"
done
# A dd round trip: 32 MiB of random bytes written, read back, compared by sha256.
head -c 33554432 /dev/urandom > /tmp/data || fail "urandom"
want=$(sha256sum < /tmp/data | cut -d' ' -f1)
dd if=/tmp/data of=/dev/etherd/e10.3 bs=1M oflag=direct 2>/tmp/dd.err || fail "dd write: $(cat /tmp/dd.err)"
got=$(dd if=/dev/etherd/e10.3 bs=1M count=32 iflag=direct 2>/dev/null | sha256sum | cut -d' ' -f1)
[ "$got" = "$want" ] || fail "dd round trip: read $got, wrote $want"
say "OK dd"
mkfs.ext4 -q -F /dev/etherd/e10.3 > /tmp/mkfs.out 2>&1 || fail "mkfs.ext4: $(cat /tmp/mkfs.out)"
say "OK mkfs"
fsck.ext4 -fn /dev/etherd/e10.3 > /tmp/fsck.out 2>&1 || fail "fsck: $(cat /tmp/fsck.out)"
say "OK fsck"
errors=$(dmesg | grep -c 'aoe: ata error')
[ "$errors" = 0 ] || fail "dmesg: $(dmesg | grep aoe: | tail -3)"
say "PASS"
poweroff -f

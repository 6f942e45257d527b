#!/bin/sh
# /init of the guest of Benchmarks/guest.sh: the Linux kernel's aoe driver and aoefs, in one
# boot, against the same target on the host, taking turns (driver, aoefs, driver, aoefs, …) so
# that a drift of the host's speed falls on both. Each row's figure is printed on the serial
# console as "AOEBENCH <pair> <row> <driver|aoefs> <value>", which guest.sh reads.
# Kernel command line: pairs=N secs=S mib=M (dd's size) copy=1 (aoefs also with receive
# placement off, AOEFS_RECEIVE_PLACEMENT=off: its before and after in one run, "aoefs-copy").
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
mkdir -p /run /mnt/aoe && mount -t tmpfs run /run
ln -sf /proc/mounts /etc/mtab
say() { echo "AOEBENCH $*"; }
fail() { say "FAIL $*"; poweroff -f; }
pairs=3 secs=5 mib=256 variants=aoefs
for kv in $(cat /proc/cmdline); do
  case "$kv" in pairs=*) pairs=${kv#pairs=};; secs=*) secs=${kv#secs=};; mib=*) mib=${kv#mib=};;
    copy=1) variants="aoefs aoefs-copy";; esac
done
# Every module but aoe now; aoe is loaded for the driver's turns only (its receive hook would
# otherwise see aoefs's frames too, and aoefs's socket the driver's).
for m in $(cat /modules.order); do
  case "$m" in */aoe.ko) aoe_ko=$m;; *) insmod "$m" 2>/dev/null;; esac
done
ip link set eth0 mtu 9000 up || fail "eth0 up"

driver_up() {
  insmod "$aoe_ko" || fail "insmod aoe"
  i=0
  while [ ! -b /dev/etherd/e10.3 ] && [ $i -lt 100 ]; do
    [ $((i % 10)) = 0 ] && aoe-discover
    sleep 0.1; i=$((i + 1))
  done
  [ -b /dev/etherd/e10.3 ] || fail "no /dev/etherd/e10.3: $(aoe-stat 2>&1)"
  dev=/dev/etherd/e10.3
}
driver_down() { rmmod aoe || fail "rmmod aoe"; }
aoefs_up() {  # variant
  placement=on; [ "$1" = aoefs-copy ] && placement=off
  AOEFS_RECEIVE_PLACEMENT=$placement aoefs mount /mnt/aoe --iface eth0 > /tmp/aoefs.out 2>&1 ||
    fail "aoefs mount: $(cat /tmp/aoefs.out)"
  [ -e /mnt/aoe/e10.3 ] || fail "no /mnt/aoe/e10.3: $(cat /tmp/aoefs.out)"
  dev=/mnt/aoe/e10.3
}
aoefs_down() {
  umount /mnt/aoe || fail "umount"
  # The daemon and its supervisor end once the mount is gone.
  i=0
  while pidof aoefs > /dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
}

# (/bin/dd: coreutils, not busybox's applet, which says no rate.)
# dd's "… copied, 3.2 s, 83.9 MB/s" in MB/s.
dd_rate() {
  awk '/copied/ { v=$(NF-1); u=$NF; gsub(",", ".", v)
    if (u ~ /^GB/) v *= 1000; else if (u ~ /^kB/) v /= 1000; else if (u ~ /^B\//) v /= 1e6; print v }'
}
fio_rate() {  # rw bs qd: MB/s for 1 MiB rows, IOPS for 4 KiB ones
  fio --name=b --filename="$dev" --rw="$1" --bs="$2" --iodepth="$3" --ioengine=libaio --direct=1 \
    --size="${mib}M" --runtime="$secs" --time_based --output-format=terse --terse-version=3 2>/dev/null |
    awk -F';' -v rw="$1" -v bs="$2" '{ if (rw ~ /write/) { bw=$48; iops=$49 } else { bw=$7; iops=$8 }
      print (bs == "4k" ? iops : bw * 1024 / 1e6) }'
}
rows() {  # pair stack
  say "$1 dd-read $2 $(/bin/dd if="$dev" of=/dev/null bs=1M count="$mib" iflag=direct 2>&1 | dd_rate)"
  say "$1 dd-write $2 $(/bin/dd if=/dev/zero of="$dev" bs=1M count="$mib" oflag=direct conv=notrunc 2>&1 | dd_rate)"
  say "$1 fio-read-1M-qd4 $2 $(fio_rate read 1M 4)"
  say "$1 fio-write-1M-qd4 $2 $(fio_rate write 1M 4)"
  say "$1 fio-randread-4k-qd1 $2 $(fio_rate randread 4k 1)"
  say "$1 fio-randread-4k-qd32 $2 $(fio_rate randread 4k 32)"
}

p=1
while [ $p -le "$pairs" ]; do
  driver_up; rows $p driver; driver_down
  for v in $variants; do aoefs_up "$v"; rows $p "$v"; aoefs_down; done
  p=$((p + 1))
done
say "DONE"
poweroff -f

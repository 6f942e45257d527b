# aoefs — make test (install what is missing, build, run every test), make bench, make demo.
SWIFT ?= swift
SWIFT_BUILD_FLAGS ?=
# What the tests and the lab need from Debian (issue #2): FUSE, the vblade target, nft for
# fault injection, iproute2 for namespaces, tcpdump for the codec cross-check, fio and e2fsprogs;
# fdisk (sfdisk) and gdisk (sgdisk) for the partition tests, python3 for the JSON check, lintian
# and dpkg-dev for `make deb`, tmux for the demo run as a person would (in a terminal);
# qemu-system-x86, cpio, kmod and xz-utils to boot Debian's kernel with its own aoe initiator
# (test-linux-initiator; the kernel, busybox-static and aoetools are downloaded, not installed).
APT_PACKAGES = libfuse3-dev fuse3 vblade nftables iproute2 tcpdump fio e2fsprogs pkg-config man-db procps \
  fdisk gdisk python3 python3-prometheus-client lintian dpkg-dev tmux qemu-system-x86 cpio kmod xz-utils

.PHONY: soak test-linux-initiator all build test deps lab-clean format lint clean bench-tools bench bench-scale demo install uninstall deb deb-test bench-cost bench-peer bench-guest

PREFIX ?= /usr/local

all: build

## deps: as root, apt-get install whatever of APT_PACKAGES is missing (no-op when all are there)
deps:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" -ne 0 ]; then \
	  echo "make: missing Debian packages:$$missing (run as root to install them; tests that need them will skip)"; \
	  exit 0; fi; \
	echo "make: installing$$missing"; \
	export DEBIAN_FRONTEND=noninteractive; \
	apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing

## demo: install what the demo needs, build, and run `aoefs demo` (root; Ctrl-C ends it)
DEMO_PACKAGES = libfuse3-dev fuse3 iproute2 pkg-config
demo:
	@$(MAKE) --no-print-directory deps APT_PACKAGES="$(DEMO_PACKAGES)"
	$(SWIFT) build -c release --product aoefs $(SWIFT_BUILD_FLAGS)
	.build/release/aoefs demo

## install: the binary in $(PREFIX)/bin, where mount.fuse3 finds it for `mount -t fuse.aoefs`
## and fstab lines (mount runs helpers with the default PATH), the man page, the systemd unit
install:
	$(SWIFT) build -c release --product aoefs $(SWIFT_BUILD_FLAGS)
	install -D -m 0755 .build/release/aoefs $(DESTDIR)$(PREFIX)/bin/aoefs
	install -D -m 0644 Docs/aoefs.8 $(DESTDIR)$(PREFIX)/share/man/man8/aoefs.8
	install -D -m 0644 Docs/aoefs.service $(DESTDIR)/etc/systemd/system/aoefs.service
	@test -e $(DESTDIR)/etc/aoefs.conf || install -D -m 0644 Docs/aoefs.conf.example $(DESTDIR)/etc/aoefs.conf

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/aoefs $(DESTDIR)$(PREFIX)/share/man/man8/aoefs.8 $(DESTDIR)/etc/systemd/system/aoefs.service

## deb: .build/deb/aoefs_VERSION_amd64.deb (dpkg-deb; /usr/sbin/aoefs with the Swift runtime
## linked in, man page, systemd unit, /etc/aoefs.conf as a conffile; depends on fuse3)
deb: deps
	SWIFT=$(SWIFT) Packaging/build-deb.sh

## deb-test: build the package, lintian (no errors), dpkg -i, aoefs demo with the installed
## binary (and mount -t fuse.aoefs inside it), dpkg -P, nothing left (root; make test runs it)
deb-test: deps
	SWIFT=$(SWIFT) Packaging/test-deb.sh

## build: debug build of every target
build: deps
	$(SWIFT) build $(SWIFT_BUILD_FLAGS)

## test: install what is missing, `make lint` (swift-format, the checked-in .swift-format, --strict),
## build, run every test (lab tests need root); then the engine,
## mount and partition lab suites again with aoefs's own target (`aoefs serve`) in place of
## vblade; the mount suites again over FUSE over io_uring (enable_uring turned on for that
## pass and restored; skipped by a kernel without it); then the Linux kernel's own initiator against
## `aoefs serve` in a qemu guest (test-linux-initiator); then the Debian package's build, install,
## use and purge (deb-test)
test: deps lint
	$(SWIFT) build --build-tests $(SWIFT_BUILD_FLAGS)
	$(SWIFT) test --skip-build $(SWIFT_BUILD_FLAGS)
	AOEFS_LAB_TARGET=serve $(SWIFT) test --skip-build $(SWIFT_BUILD_FLAGS) --filter 'EngineLabTests|MountTests|ControlCommandTests|PartitionLabTests'
	AOEFS_LAB_FUSE_TRANSPORT=io_uring Tests/with-fuse-uring.sh $(SWIFT) test --skip-build $(SWIFT_BUILD_FLAGS) --filter 'MountTests|ControlCommandTests|PartitionLabTests|DiscardLabTests|ServingThreadsLabTests'
	Tests/linux-initiator/run.sh .build/debug/aoefs
	SWIFT=$(SWIFT) Packaging/test-deb.sh

## soak: the stress mix of `make test` (two targets on two links, 1 % loss each way, fio verify on
## both, every monitor reading, a target disabled and enabled, an interface flapped) for 30
## minutes (SOAK_SECONDS), printing the daemon's RSS and open descriptors each minute (root)
SOAK_SECONDS ?= 1800
soak: deps
	$(SWIFT) build --build-tests $(SWIFT_BUILD_FLAGS)
	AOEFS_STRESS_SECONDS=$(SOAK_SECONDS) AOEFS_REQUIRE_LAB=1 $(SWIFT) test --skip-build $(SWIFT_BUILD_FLAGS) --filter StressTests

## test-linux-initiator: the Linux kernel's own aoe driver (Debian's kernel under qemu TCG) as a
## client of `aoefs serve` on ext4 and on tmpfs, and of vblade: discover, aoe-stat, dd round
## trip, mkfs.ext4 + fsck; its sysfs texts against Tests/linux-initiator/golden.txt (root; make
## test runs it)
test-linux-initiator: deps
	$(SWIFT) build --product aoefs $(SWIFT_BUILD_FLAGS)
	Tests/linux-initiator/run.sh .build/debug/aoefs


## bench-tools: the C yardstick initiator from ../shared/tools (or $(YARDSTICK_SRC))
YARDSTICK_SRC ?= ../shared/tools/aoe-raw-bench.c
bench-tools: .build/aoe-raw-bench
.build/aoe-raw-bench: $(YARDSTICK_SRC)
	@mkdir -p .build
	$(CC) -O2 -o $@ $<

## bench: the engine against the C yardstick; the engine, the mount over each FUSE transport
## (our /dev/fuse core, FUSE over io_uring) and the qemu peer side by side; aoefs serve against
## vblade; the engine on a LAN flooded by a hostile host; everyday tools (dd, cat, sha256sum,
## cp, qemu-img, buffered writes, ext4 on losetup) through the page cache; aoefs against the
## peer on ext4 too (bench-peer without the plot); medians and ratios (root)
bench: deps
	Benchmarks/engine-vs-yardstick.sh
	@$(MAKE) --no-print-directory deps APT_PACKAGES="$(PEER_PACKAGES)"
	Benchmarks/transports.sh
	Benchmarks/serve-vs-vblade.sh
	Benchmarks/flood.sh
	Benchmarks/everyday.sh
	PLOT=0 Benchmarks/peer.sh

## bench-peer: aoefs against qemu-storage-daemon's FUSE export of a qemu-nbd disk over the same
## veth (dd, fio, ext4 on losetup), and a plot of IOPS against queue depth (root)
PEER_PACKAGES = fio qemu-utils qemu-system-common gnuplot-nox e2fsprogs
bench-peer:
	@$(MAKE) --no-print-directory deps APT_PACKAGES="$(PEER_PACKAGES)"
	Benchmarks/peer.sh

## bench-guest: the Linux kernel's aoe driver and aoefs taking turns in one qemu TCG guest (one
## emulated CPU: CPU work per byte) against the same vblade; ratios aoefs / driver (root)
GUEST_PACKAGES = qemu-system-x86 cpio fio vblade busybox-static
bench-guest: deps
	@$(MAKE) --no-print-directory deps APT_PACKAGES="$(GUEST_PACKAGES)"
	Benchmarks/guest.sh

## bench-cost: instructions per request (valgrind's callgrind), the engine against the C
## yardstick, per 1 MiB read and write and per 4 KiB random read (root; apt-get valgrind)
bench-cost: bench-tools
	@$(MAKE) --no-print-directory deps APT_PACKAGES="valgrind"
	Benchmarks/cost.sh

## bench-scale: 1, 64, 256 and 1,000 vblade targets on one veth: time to all images, daemon
## memory per target, `aoefs stat` time (root; starts 1,000 vblade processes)
bench-scale: deps
	Benchmarks/targets-scale.sh

## lab-clean: remove lab namespaces and links left by a test run that was killed (SIGKILL)
lab-clean:
	@for ns in $$(ip netns list 2>/dev/null | awk '/^aoet/ {print $$1}'); do echo "ip netns del $$ns"; ip netns del $$ns; done
	@for l in $$(ip -o link 2>/dev/null | awk -F': ' '{print $$2}' | cut -d@ -f1 | grep '^aoet'); do echo "ip link del $$l"; ip link del $$l; done

format:
	$(SWIFT) format --in-place --recursive Package.swift Sources Tests

lint:
	$(SWIFT) format lint --strict --recursive Package.swift Sources Tests

clean:
	rm -rf .build

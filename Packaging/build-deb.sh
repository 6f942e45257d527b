#!/usr/bin/env bash
# make deb: builds aoefs_VERSION_amd64.deb with dpkg-deb from a release build whose Swift
# runtime is linked in (--static-swift-stdlib), so the package needs only Debian's libraries:
#   /usr/sbin/aoefs                      the binary (mount.fuse3 finds it for fuse.aoefs mounts)
#   /usr/share/man/man8/aoefs.8.gz       the man page
#   /lib/systemd/system/aoefs.service    the unit (not enabled: configure interfaces first)
#   /etc/aoefs.conf                      the example configuration, a conffile
#   /usr/share/doc/aoefs/                copyright, changelog
# Depends: fuse3 and what dpkg-shlibdeps finds the binary needs. Prints the .deb's path.
set -euo pipefail
cd "$(dirname "$0")/.."
SWIFT=${SWIFT:-swift}
OUT=${OUT:-.build/deb}
version=$(sed -n 's/.*version: "aoefs \([0-9][0-9.]*\) .*/\1/p' Sources/aoefs/AoEFS.swift)
[ -n "$version" ] || { echo "build-deb: cannot find the version in Sources/aoefs/AoEFS.swift" >&2; exit 1; }

# Its own scratch path: the static-stdlib build does not disturb the benchmarks' release build.
"$SWIFT" build -c release --product aoefs --static-swift-stdlib --scratch-path .build/deb-scratch >&2
bin=.build/deb-scratch/release/aoefs

root=$OUT/root
rm -rf "$root"
install -D -m 0755 "$bin" "$root/usr/sbin/aoefs"
strip --strip-unneeded --remove-section=.comment --remove-section=.note "$root/usr/sbin/aoefs"
install -d -m 0755 "$root/usr/share/man/man8" "$root/usr/share/doc/aoefs" "$root/lib/systemd/system" "$root/etc"
gzip -9n < Docs/aoefs.8 > "$root/usr/share/man/man8/aoefs.8.gz"
# The unit as installed by the package: the binary is in /usr/sbin, not /usr/local/bin.
sed -e 's|/usr/local/bin/aoefs|/usr/sbin/aoefs|' \
    -e 's|Install with `make install` (to /etc/systemd/system), then:|Installed by the aoefs package; after editing /etc/aoefs.conf:|' \
    Docs/aoefs.service > "$root/lib/systemd/system/aoefs.service"
chmod 0644 "$root/lib/systemd/system/aoefs.service"
install -m 0644 Docs/aoefs.conf.example "$root/etc/aoefs.conf"
install -m 0644 Packaging/debian/copyright "$root/usr/share/doc/aoefs/copyright"
{
  echo "aoefs ($version) unstable; urgency=medium"
  echo
  echo "  * Packaged from $(git rev-parse --short HEAD 2>/dev/null || echo 'a source tree')."
  echo
  echo " -- aoefs developers <aoefs@users.noreply.github.com>  $(date -R -d @"${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}")"
} | gzip -9n > "$root/usr/share/doc/aoefs/changelog.gz"

# The libraries the binary links, as package dependencies (dpkg-shlibdeps wants a debian/control).
shl=$OUT/shlibs
rm -rf "$shl" && mkdir -p "$shl/debian"
printf 'Source: aoefs\n\nPackage: aoefs\nArchitecture: amd64\n' > "$shl/debian/control"
depends=$(cd "$shl" && dpkg-shlibdeps -O "$OLDPWD/$root/usr/sbin/aoefs" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
[ -n "$depends" ] || { echo "build-deb: dpkg-shlibdeps found no dependencies" >&2; exit 1; }

install -d -m 0755 "$root/DEBIAN"
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
sed -e "s|@VERSION@|$version|" -e "s|@SIZE@|$size|" -e "s|@DEPENDS@|$depends|" \
    Packaging/debian/control.in > "$root/DEBIAN/control"
install -m 0644 Packaging/debian/conffiles "$root/DEBIAN/conffiles"
install -m 0755 Packaging/debian/postinst Packaging/debian/prerm Packaging/debian/postrm "$root/DEBIAN/"
(cd "$root" && find . -type f ! -path './DEBIAN/*' ! -path './etc/*' -printf '%P\0' | sort -z | xargs -0 md5sum) \
    > "$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/md5sums"

deb=$OUT/aoefs_${version}_amd64.deb
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >&2
echo "$deb"

#!/usr/bin/env bash
# Builds the Debian package of dvrd from release binaries already built:
#
#   packaging/make-deb.sh [BINDIR [OUTDIR]]   (default target/release, target/debian)
#
# Prints the path of the .deb it wrote (OUTDIR/dvrd_<version>_<arch>.deb) and removes older
# dvrd_*.deb from OUTDIR, so that OUTDIR holds exactly the package the image installs.
#
# It stages the tree and calls Debian's own dpkg-deb rather than cargo-deb: cargo-deb would have
# to be compiled first (minutes on a 2-core CI machine, every fresh clone), and dpkg-deb with
# dpkg-shlibdeps, both from dpkg-dev (pulled in by build-essential), do the whole job in
# seconds. dpkg-shlibdeps computes Depends from what the binaries really link (libc, the librte-*
# libraries of Debian's DPDK); the DPDK plugins EAL loads at run time are no link dependency, so
# the ones every configuration needs are named here (the pool's ring driver, the vdev bus, the
# net_af_packet port) and the other ports and the DPDK tools are recommended.
#
# The package: /usr/bin/dvrd and /usr/bin/dvrctl (stripped, as Debian ships binaries),
# dvrd.example.toml as /etc/dvrd/dvrd.toml (a conffile: an upgrade keeps the operator's edits),
# the systemd unit (not enabled: the example config names interfaces no host has), the hugepage
# script it runs before dvrd starts, and the docs under /usr/share/doc/dvrd. File times are the
# last commit's (SOURCE_DATE_EPOCH), so the same binaries give the same package.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bindir=$(realpath "${1:-$root/target/release}")
mkdir -p "${2:-$root/target/debian}"
outdir=$(realpath "${2:-$root/target/debian}")

for b in dvrd dvrctl; do
  [ -x "$bindir/$b" ] || { echo "make-deb: no $bindir/$b: build the release binaries first" >&2; exit 1; }
done
for tool in dpkg-deb dpkg-shlibdeps strip; do
  command -v "$tool" >/dev/null || { echo "make-deb: $tool missing (apt-get install dpkg-dev binutils)" >&2; exit 1; }
done

# "dvrd 0.1.0": the version Cargo compiled in, so package and binary never disagree.
version=$("$bindir/dvrd" --version | awk '{print $2}')
arch=$(dpkg --print-architecture)
epoch=${SOURCE_DATE_EPOCH:-$(git -C "$root" log -1 --format=%ct 2>/dev/null || date +%s)}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
pkg=$work/debian/dvrd
doc=$pkg/usr/share/doc/dvrd

install -d "$pkg/DEBIAN" "$pkg/usr/bin" "$pkg/etc/dvrd" "$pkg/usr/lib/dvrd" \
  "$pkg/lib/systemd/system" "$doc/examples"
for b in dvrd dvrctl; do
  # What dh_strip does: no debug sections, no symbols beyond those relocation needs.
  strip --strip-unneeded --remove-section=.comment --remove-section=.note \
    -o "$pkg/usr/bin/$b" "$bindir/$b"
  chmod 0755 "$pkg/usr/bin/$b"
done
install -m 0644 "$root/dvrd.example.toml" "$pkg/etc/dvrd/dvrd.toml"
install -m 0644 "$root/dvrd.example.toml" "$doc/examples/dvrd.example.toml"
install -m 0755 "$root/scripts/hugepages.sh" "$pkg/usr/lib/dvrd/hugepages.sh"
install -m 0644 "$root/packaging/dvrd.service" "$pkg/lib/systemd/system/dvrd.service"
install -m 0644 "$root/README.md" "$root"/docs/*.md "$doc/"
install -m 0644 "$root/packaging/deb/copyright" "$doc/copyright"
printf 'dvrd (%s) unstable; urgency=medium\n\n  * Built from commit %s.\n\n -- %s  %s\n' \
  "$version" "$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)" \
  "dvrd maintainers <dvrd@example.org>" "$(date -u -R -d "@$epoch")" |
  gzip -9n > "$doc/changelog.gz"
for script in postinst prerm postrm; do
  install -m 0755 "$root/packaging/deb/$script" "$pkg/DEBIAN/$script"
done
echo /etc/dvrd/dvrd.toml > "$pkg/DEBIAN/conffiles"

# dpkg-shlibdeps reads the package names from debian/control and prints
# "shlibs:Depends=libc6 (>= 2.34), ...".
printf 'Source: dvrd\n\nPackage: dvrd\nArchitecture: any\n' > "$work/debian/control"
shlibs=$(cd "$work" && dpkg-shlibdeps -O debian/dvrd/usr/bin/dvrd debian/dvrd/usr/bin/dvrctl)
shlibs=${shlibs#shlibs:Depends=}
plugins="librte-mempool-ring23, librte-bus-vdev23, librte-net-af-packet23"
size_kb=$(du -sk --exclude=DEBIAN "$pkg" | cut -f1)
cat > "$pkg/DEBIAN/control" <<CONTROL
Package: dvrd
Version: $version
Architecture: $arch
Maintainer: dvrd maintainers <dvrd@example.org>
Installed-Size: $size_kb
Depends: $shlibs, $plugins
Recommends: dpdk, librte-net-memif23, librte-net-tap23, librte-bus-pci23
Section: net
Priority: optional
Description: per-host distributed virtual router on DPDK
 dvrd routes east-west traffic between instances of different tenant
 networks on the compute host where it starts, in one DPDK fast path,
 and sends it VXLAN-encapsulated across the fabric at most once.
 dvrctl is its control client.
CONTROL

find "$pkg" -exec touch -h -d "@$epoch" {} +
deb=$outdir/dvrd_${version}_${arch}.deb
find "$outdir" -maxdepth 1 -name 'dvrd_*.deb' ! -path "$deb" -delete
SOURCE_DATE_EPOCH=$epoch dpkg-deb --root-owner-group --build "$pkg" "$deb" >/dev/null
echo "$deb"

#!/usr/bin/env bash
# Fetches the newest linux-source-7.3 from Debian trixie-backports through apt
# (signed index, checked hash) with a private sources list, and unpacks it once
# per package version under $CACHE. Prints the unpacked tree's path.
# Backports versions move, so nothing pins a pool file: apt resolves 7.3.x.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

apt_dir=$CACHE/apt/trixie-backports
debs=$CACHE/debs
mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$debs"
list=$apt_dir/sources.list
echo 'deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie-backports main' >"$list"
mapfile -t opts < <(apt_private_opts "$apt_dir" "$list")

if apt-get "${opts[@]}" update -qq >/dev/null 2>&1; then
	ver=$(apt-cache "${opts[@]}" show "$KSOURCE_PKG" 2>/dev/null |
		awk '/^Version:/ {print $2}' | sort -V | tail -n1)
	[ -n "$ver" ] || die "apt knows no $KSOURCE_PKG in trixie-backports"
	deb=$(ls "$debs/${KSOURCE_PKG}_${ver//:/%3a}_all.deb" 2>/dev/null || true)
	if [ -z "$deb" ]; then
		log "downloading $KSOURCE_PKG $ver"
		(cd "$debs" && apt-get "${opts[@]}" download -qq "$KSOURCE_PKG=$ver" >/dev/null)
		deb=$(ls "$debs/${KSOURCE_PKG}_"*"${ver##*:}"*_all.deb | head -n1)
	fi
else
	# Offline: fall back to the newest .deb already in the cache.
	deb=$(ls "$debs/${KSOURCE_PKG}_"*_all.deb 2>/dev/null | sort -V | tail -n1)
	[ -n "$deb" ] || die "cannot reach trixie-backports and no cached $KSOURCE_PKG"
	log "offline: using cached $(basename "$deb")"
fi

pkgver=$(dpkg-deb -f "$deb" Version)
src=$CACHE/src/$KSOURCE_PKG-${pkgver//[:~+]/_}
if [ ! -f "$src/.unpacked" ]; then
	log "unpacking $(basename "$deb")"
	rm -rf "$src" "$src.tmp"
	mkdir -p "$src.tmp"
	dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$src.tmp" --wildcards '*/linux-source-7.3.tar.xz'
	tar -xf "$src.tmp/usr/src/linux-source-7.3.tar.xz" -C "$src.tmp"
	mv "$src.tmp/linux-source-7.3" "$src"
	rm -rf "$src.tmp"
	touch "$src/.unpacked"
	# Older unpacked versions are 1.8 GB each and never used again.
	find "$CACHE/src" -mindepth 1 -maxdepth 1 ! -path "$src" -exec rm -rf {} +
fi
echo "$src"

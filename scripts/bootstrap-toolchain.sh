#!/usr/bin/env bash
# Installs the host packages and bindgen the kernel build needs. Idempotent:
# a second run only checks. bindgen is cached under $CACHE keyed by version.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

PKGS="rustc-web rust-web-src libstd-rust-web-dev rust-web-clippy build-essential
flex bison bc libelf-dev libssl-dev cpio kmod rsync python3 curl file xz-utils
busybox-static libclang-19-dev libcap-dev debian-archive-keyring ca-certificates"

missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
		missing="$missing $p"
done
command -v cargo >/dev/null || missing="$missing cargo-web"
if [ -n "$missing" ]; then
	log "installing:$missing"
	as_root apt-get update -qq
	# shellcheck disable=SC2086
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
		--no-install-recommends $missing >/dev/null
fi

# QEMU: bookworm-backports (10.0.x) if it installs cleanly, else bookworm's.
if ! command -v qemu-system-x86_64 >/dev/null; then
	bpo=$CACHE/apt/bookworm-backports
	mkdir -p "$bpo/lists/partial" "$bpo/cache/archives/partial" "$bpo/parts"
	cp /etc/apt/sources.list.d/debian.sources "$bpo/parts/" 2>/dev/null || true
	[ -f /etc/apt/sources.list ] && cp /etc/apt/sources.list "$bpo/sources.list" ||
		: >"$bpo/sources.list"
	echo 'deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm-backports main' \
		>"$bpo/parts/bookworm-backports.list"
	opts=(-o "Dir::Etc::SourceList=$bpo/sources.list" -o "Dir::Etc::SourceParts=$bpo/parts"
		-o "Dir::State::Lists=$bpo/lists" -o "Dir::Cache=$bpo/cache" -o APT::Sandbox::User=root)
	if as_root apt-get "${opts[@]}" update -qq &&
		as_root env DEBIAN_FRONTEND=noninteractive apt-get "${opts[@]}" install -y -qq \
			--no-install-recommends -t bookworm-backports qemu-system-x86 >/dev/null; then
		log "QEMU from bookworm-backports"
	else
		log "bookworm-backports QEMU did not install; using bookworm's"
		as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends qemu-system-x86 >/dev/null
	fi
fi

[ -x "$KRUSTC" ] || die "$KRUSTC missing after install"
[ -x "$KCLIPPY" ] || die "$KCLIPPY missing after install"

if [ ! -x "$BINDGEN" ]; then
	log "building bindgen-cli $BINDGEN_VERSION (about a minute)"
	tmp=$CACHE/bindgen-$BINDGEN_VERSION.tmp
	rm -rf "$tmp"
	# bindgen is a host tool, not kernel code: any cargo may build it.
	cargo install -q bindgen-cli --version "$BINDGEN_VERSION" --locked --root "$tmp"
	mv "$tmp" "$CACHE/bindgen-$BINDGEN_VERSION"
fi
log "toolchain ready: $($KRUSTC --version), bindgen $("$BINDGEN" --version | awk '{print $2}')"

#!/usr/bin/env bash
# Configures and builds the test kernel (bzImage, in-tree modules, the Rust
# crates, uapi headers) out of tree in $CACHE/kbuild/<key>, where the key
# hashes everything that changes the result. Prints the build directory.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
top=$(cd "$(dirname "$0")/.." && pwd)

src=$("$top/scripts/fetch-kernel.sh")
frag=$top/config/kernel.fragment
key=$( {
	cat "$frag"
	basename "$src"
	"$KRUSTC" -vV
	"$BINDGEN" --version
	gcc --version | head -n1
} | sha256sum | cut -c1-16)
out=$CACHE/kbuild/$(basename "$src")-$key

kmake() {
	make -s -C "$src" O="$out" ARCH=x86_64 RUSTC="$KRUSTC" RUSTDOC="$KRUSTDOC" \
		HOSTRUSTC="$KRUSTC" BINDGEN="$BINDGEN" CLIPPY_DRIVER="$KCLIPPY" "$@"
}

if [ ! -f "$out/.iommufd-rs-built" ]; then
	mkdir -p "$out"
	# Only one configuration is ever kept; each is ~2 GB.
	find "$CACHE/kbuild" -mindepth 1 -maxdepth 1 ! -path "$out" -exec rm -rf {} +
	log "configuring $(basename "$out")"
	kmake tinyconfig >/dev/null
	"$src/scripts/kconfig/merge_config.sh" -m -O "$out" "$out/.config" "$frag" >/dev/null
	kmake olddefconfig >/dev/null
	bad=0
	while read -r line; do
		case "$line" in
		CONFIG_*=*) grep -qxF "$line" "$out/.config" ;;
		"# CONFIG_"*" is not set")
			opt=${line#\# }
			! grep -q "^${opt%% *}=" "$out/.config"
			;;
		*) continue ;;
		esac || {
			log "config option did not survive olddefconfig: $line"
			bad=1
		}
	done <"$frag"
	[ $bad = 0 ] || die "kernel config check failed"
	kmake rustavailable >/dev/null || die "Rust toolchain rejected by the kernel"
	log "building kernel (about 4-6 minutes on 2 cores)"
	kmake -j"$(nproc)" all >&2
	kmake headers_install >/dev/null
	touch "$out/.iommufd-rs-built"
fi
echo "$out"

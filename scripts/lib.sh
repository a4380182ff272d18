# Shared settings for the build scripts. Sourced, never executed.
# Every cache path is keyed by the versions that produced it, so a change of
# toolchain, kernel or config fragment builds into a fresh directory.

CACHE=${IOMMUFD_RS_CACHE:-$HOME/.cache/iommufd-rs}
BINDGEN_VERSION=0.73.2
# Kernel-side Rust must come from Debian's rustc-web, never from rustup.
KRUSTC=/usr/bin/rustc
KRUSTDOC=/usr/bin/rustdoc
KCLIPPY=/usr/bin/clippy-driver
BINDGEN=$CACHE/bindgen-$BINDGEN_VERSION/bin/bindgen
KSOURCE_PKG=linux-source-7.3

log() { printf '[%s] %s\n' "${0##*/}" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Run a command as root (CI and the dev machines are root; sudo elsewhere).
as_root() {
	if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

# Options that make apt use a private sources list and state directory, so
# the system's own sources stay untouched. $1 = directory, $2 = list file.
apt_private_opts() {
	printf '%s\n' -o "Dir::Etc::SourceList=$2" -o Dir::Etc::SourceParts=/dev/null \
		-o "Dir::State::Lists=$1/lists" -o "Dir::Cache=$1/cache" -o APT::Sandbox::User=root
}

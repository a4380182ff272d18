# iommufd-rs: top-level build. `make check` is the test command, `make demo`
# the showcase; both start from nothing installed (see README.md).
#
# KDIR is the built 7.3 kernel tree the module is compiled against. By
# default it is our own test kernel, built and cached by scripts/; set
# KDIR=/lib/modules/$(uname -r)/build to use your own.

SHELL := /bin/bash
# Host Rust (cargo test, clippy, fmt, bindgen) is rustup's where it exists.
ifneq ($(wildcard $(HOME)/.cargo/bin/cargo),)
export PATH := $(HOME)/.cargo/bin:$(PATH)
endif
CACHE ?= $(HOME)/.cache/iommufd-rs
BUILD := $(CURDIR)/build
BINDGEN_VERSION := 0.73.2
BINDGEN ?= $(CACHE)/bindgen-$(BINDGEN_VERSION)/bin/bindgen
# Kernel Rust comes from Debian's rustc-web, never from rustup (see docs/).
KRUSTC ?= /usr/bin/rustc

ifeq ($(origin KDIR),undefined)
OWN_KERNEL := 1
KDIR = $(shell cat $(BUILD)/kdir 2>/dev/null)
endif
KSRC = $(shell readlink -f $(KDIR)/source 2>/dev/null || echo $(KDIR))

KMAKE = $(MAKE) -C $(KDIR) M=$(CURDIR) ARCH=x86_64 LLVM= \
	RUSTC=$(KRUSTC) RUSTDOC=/usr/bin/rustdoc HOSTRUSTC=$(KRUSTC) \
	BINDGEN=$(BINDGEN) CLIPPY_DRIVER=/usr/bin/clippy-driver

CC_STATIC = gcc -static -O2 -Wall -Werror -D_GNU_SOURCE

.PHONY: all toolchain kernel module selftests demo-client fmt-check clippy \
	test test-asan host-checks vm-test difftest-long demo bench check clean

all: module selftests

$(BUILD):
	mkdir -p $(BUILD)

toolchain:
	scripts/bootstrap-toolchain.sh

ifdef OWN_KERNEL
kernel: toolchain | $(BUILD)
	scripts/build-kernel.sh > $(BUILD)/kdir.tmp && mv $(BUILD)/kdir.tmp $(BUILD)/kdir
else
kernel:
	@test -f $(KDIR)/Module.symvers || { echo "KDIR=$(KDIR) is not a built kernel tree"; exit 1; }
endif

# The module is always built through clippy-driver (it emits the same object
# code as rustc) with warnings as errors: one build, both checks.
module: kernel
	$(KMAKE) CLIPPY=1 RUSTFLAGS_MODULE=-Dwarnings modules

# Static guest programs: our selftests, the demo client and upstream's
# iommufd kselftests built from the same kernel source.
SELFTEST_CFLAGS = -I$(KDIR)/usr/include -I$(CURDIR)/uapi/include -I$(KSRC)/tools/testing/selftests

selftests: kernel | $(BUILD)
	mkdir -p $(BUILD)/guest $(BUILD)/upstream-selftests
	$(CC_STATIC) $(SELFTEST_CFLAGS) -o $(BUILD)/guest/iommufd_rs_abi selftests/iommufd_rs_abi.c
	$(CC_STATIC) $(SELFTEST_CFLAGS) -I$(KSRC)/drivers/iommu/iommufd \
		-o $(BUILD)/guest/iommufd_diff selftests/iommufd_diff.c
	$(CC_STATIC) $(SELFTEST_CFLAGS) -o $(BUILD)/guest/iommufd_demo demo/iommufd_demo.c
	$(CC_STATIC) $(SELFTEST_CFLAGS) -I$(KSRC)/drivers/iommu/iommufd \
		-o $(BUILD)/guest/iommufd_bench bench/iommufd_bench.c
	$(MAKE) -s -C $(KSRC)/tools/testing/selftests/iommu OUTPUT=$(BUILD)/upstream-selftests \
		KHDR_INCLUDES="-isystem $(KDIR)/usr/include" USERLDFLAGS=-static >/dev/null
	cp $(BUILD)/upstream-selftests/iommufd $(BUILD)/upstream-selftests/iommufd_fail_nth $(BUILD)/guest/

fmt-check:
	cargo fmt --all -- --check

clippy:
	cargo clippy -q --workspace --all-targets -- -D warnings

# The uapi layout test compares with the kernel's own headers.
test: kernel
	IOMMUFD_RS_KHDR=$(KDIR)/usr/include IOMMUFD_RS_REQUIRE_KHDR=1 cargo test -q --workspace

# AddressSanitizer over the same host tests (stable rustc via RUSTC_BOOTSTRAP;
# --target keeps the proc-macros unsanitized).
test-asan: kernel
	IOMMUFD_RS_KHDR=$(KDIR)/usr/include IOMMUFD_RS_REQUIRE_KHDR=1 RUSTC_BOOTSTRAP=1 \
	RUSTFLAGS=-Zsanitizer=address CARGO_TARGET_DIR=$(CURDIR)/target/asan \
	cargo test -q --workspace --target x86_64-unknown-linux-gnu

host-checks: fmt-check clippy test test-asan

vm-test: module selftests
	scripts/vm-test.sh test

# The differential test alone with a long budget: DIFFTEST=first-last:steps
# (a single seed, e.g. DIFFTEST=17:120, reproduces a reported divergence).
DIFFTEST ?= 1-200:1000
difftest-long: module selftests
	IOMMUFD_DIFF=$(DIFFTEST) scripts/vm-test.sh difftest

demo: module selftests
	scripts/vm-test.sh demo

# Benchmarks (not tests): iommufd_rs vs upstream iommufd.ko and our ARM
# page-table format vs io-pgtable-arm in one boot (build/vm/bench.json,
# build/vm/bench-pt.json), and every page-table format on the host
# (build/bench-pt-host.json).
bench: module selftests
	IOMMUFD_RS_BENCH_OUT=$(BUILD)/bench-pt-host.json cargo bench -q --bench pt_host
	scripts/vm-test.sh bench

check: host-checks vm-test

clean:
	rm -rf $(BUILD) target
	-$(KMAKE) clean 2>/dev/null

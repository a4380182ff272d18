#!/usr/bin/env bash
# Packs the initramfs, boots the test kernel in QEMU (q35, emulated VT-d with
# interrupt remapping, the edu device) and turns what the guest reports into
# build/vm/: one TAP file per suite, dmesg.txt and summary.json.
#   vm-test.sh test   run the suites and gate on them
#   vm-test.sh demo   run the demo client and print its report
#   vm-test.sh difftest  only the differential test (iommufd_diff) against
#                     both servers, budget IOMMUFD_DIFF (seeds:steps)
#   vm-test.sh bench  benchmarks, not gated on speed: bench.json (iommufd_bench
#                     against both servers) and bench-pt.json (the module's
#                     page-table engine against io-pgtable-arm, pt_bench=1)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
top=$(cd "$(dirname "$0")/.." && pwd)
mode=${1:-test}
kdir=${KDIR:-$(cat "$top/build/kdir")}
out=$top/build/vm
root=$out/initramfs
rm -rf "$out"
mkdir -p "$root"/{bin,sbin,proc,sys,dev,tmp,etc}

# busybox with relative applet links (absolute ones point at the host path).
cp /bin/busybox "$root/bin/busybox"
for applet in $(/bin/busybox --list); do
	[ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
done
install -m 0755 "$top/vm/init" "$root/init"
cp "$top"/build/guest/* "$root/bin/"

# In-tree modules (upstream iommufd, vfio) and ours, with modules.dep.
kmake=(make -s -C "$kdir" ARCH=x86_64 RUSTC="$KRUSTC" HOSTRUSTC="$KRUSTC" BINDGEN="$BINDGEN"
	INSTALL_MOD_PATH="$root" INSTALL_MOD_STRIP=1 DEPMOD=/sbin/depmod)
"${kmake[@]}" modules_install >/dev/null
"${kmake[@]}" M="$top" modules_install >/dev/null 2>&1
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) >"$out/initramfs.cpio.gz"

# TCG unless real hardware virtualisation is there (a paravirtual /dev/kvm
# without vmx/svm cannot run this guest).
accel=(-machine q35,accel=tcg -cpu max)
if [ "${IOMMUFD_RS_ACCEL:-auto}" = kvm ] || { [ "${IOMMUFD_RS_ACCEL:-auto}" = auto ] &&
	[ -w /dev/kvm ] && { [ -d /sys/module/kvm_intel ] || [ -d /sys/module/kvm_amd ]; }; }; then
	accel=(-machine q35,accel=kvm,kernel-irqchip=split -cpu host)
fi

# The benchmark maps 512 MiB of 4 KiB pages and 512 MiB of 2 MiB hugetlb
# pages; the tests need 64 hugepages.
mem=2G hugepages=64
[ "$mode" = bench ] && mem=4G hugepages=320

# The differential test's budget, "first-last:steps" (seeds first..last):
# short in the test run, long in `make difftest-long`.
diff_spec=${IOMMUFD_DIFF:-1-16:500}
[ "$mode" = difftest ] && diff_spec=${IOMMUFD_DIFF:-1-200:1000}

log "booting the test VM ($mode, ${accel[1]})"
rc=0
timeout "${IOMMUFD_RS_VM_TIMEOUT:-2400}" qemu-system-x86_64 "${accel[@]}" -m "$mem" -smp 2 \
	-device intel-iommu,intremap=on -device edu \
	-display none -monitor none -no-reboot \
	-serial "file:$out/console.log" -serial "file:$out/results.log" \
	-kernel "$kdir/arch/x86/boot/bzImage" -initrd "$out/initramfs.cpio.gz" \
	-append "console=ttyS0 panic=-1 oops=panic intel_iommu=on hugepages=$hugepages iommufd_rs_vm=$mode iommufd_diff=$diff_spec" \
	</dev/null || rc=$?
[ $rc = 0 ] || log "QEMU exited with $rc"

python3 "$top/scripts/vm_summary.py" "$mode" "$out"

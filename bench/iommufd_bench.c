// SPDX-License-Identifier: GPL-2.0
/*
 * IOAS map/unmap and access pin/unpin timings against whichever driver
 * serves /dev/iommu. Prints one JSON object per cell on stdout:
 *
 *   {"cell": "...", "bytes": N, "reps": R, "median_ns": M, "min_ns": m}
 *
 * Cells: IOMMU_IOAS_MAP + IOMMU_IOAS_UNMAP of 512 MiB backed by 4 KiB pages
 * and by 2 MiB hugetlb pages, with 1 and 2 mock domains attached; access
 * pin + unpin of 64 MiB (IOMMU_TEST_OP_ACCESS_PAGES in 16 MiB pieces, the
 * op's limit). A benchmark, not a test: it fails only if an ioctl fails.
 *
 * Memory cells print {"cell": "...", "bytes": N, "reps": R, "kib_per_gib": K}:
 * the kernel memory a mapping costs (MemFree before and after IOAS_MAP of
 * already populated memory into MEM_IOAS IOASes with one mock domain each,
 * scaled to one mapped GiB; median of R). Everything counts: page tables,
 * pin state, areas. Per-CPU page lists are shrunk first so that pages they
 * hold do not hide allocations.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <linux/iommufd.h>

#include "iommufd_test.h"

#define MIB (1UL << 20)
#define MAP_LEN (512 * MIB)
#define PIN_LEN (64 * MIB)
#define PIN_PIECE (16 * MIB)
#define REPS 7
#define MEM_IOAS 4
#define MEM_REPS 5

static int fd;

static void die(const char *what)
{
	fprintf(stderr, "iommufd_bench: %s: %s\n", what, strerror(errno));
	exit(1);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

static uint32_t ioas_alloc(void)
{
	struct iommu_ioas_alloc cmd = { .size = sizeof(cmd) };

	if (ioctl(fd, IOMMU_IOAS_ALLOC, &cmd))
		die("IOMMU_IOAS_ALLOC");
	return cmd.out_ioas_id;
}

/* A mock device attached to @ioas; returns its device (idev) ID. */
static uint32_t mock_domain(uint32_t ioas)
{
	struct iommu_test_cmd cmd = {
		.size = sizeof(cmd),
		.op = IOMMU_TEST_OP_MOCK_DOMAIN,
		.id = ioas,
	};

	if (ioctl(fd, IOMMU_TEST_CMD, &cmd))
		die("IOMMU_TEST_OP_MOCK_DOMAIN");
	return cmd.mock_domain.out_idev_id;
}

/* Another domain mirroring @ioas: a manually allocated HWPT. */
static void extra_domain(uint32_t dev, uint32_t ioas)
{
	struct iommu_hwpt_alloc cmd = {
		.size = sizeof(cmd),
		.dev_id = dev,
		.pt_id = ioas,
	};

	if (ioctl(fd, IOMMU_HWPT_ALLOC, &cmd))
		die("IOMMU_HWPT_ALLOC");
}

static void map(uint32_t ioas, void *buf, size_t len, uint64_t iova)
{
	struct iommu_ioas_map cmd = {
		.size = sizeof(cmd),
		.flags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE |
			 IOMMU_IOAS_MAP_WRITEABLE,
		.ioas_id = ioas,
		.user_va = (uintptr_t)buf,
		.length = len,
		.iova = iova,
	};

	if (ioctl(fd, IOMMU_IOAS_MAP, &cmd))
		die("IOMMU_IOAS_MAP");
}

static void unmap(uint32_t ioas, uint64_t iova, size_t len)
{
	struct iommu_ioas_unmap cmd = {
		.size = sizeof(cmd),
		.ioas_id = ioas,
		.iova = iova,
		.length = len,
	};

	if (ioctl(fd, IOMMU_IOAS_UNMAP, &cmd))
		die("IOMMU_IOAS_UNMAP");
}

static int cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void report(const char *cell, size_t bytes, uint64_t *t)
{
	qsort(t, REPS, sizeof(*t), cmp);
	printf("{\"cell\": \"%s\", \"bytes\": %zu, \"reps\": %d, \"median_ns\": %llu, \"min_ns\": %llu}\n",
	       cell, bytes, REPS, (unsigned long long)t[REPS / 2],
	       (unsigned long long)t[0]);
	fflush(stdout);
}

/*
 * @len bytes of populated anonymous memory: 2 MiB hugetlb pages, or 4 KiB
 * pages. For the latter THP must be off (the bench VM sets
 * transparent_hugepage/enabled to "never"; madvise() is tried too, but the
 * test kernel has no advise syscalls).
 */
static void *buffer(size_t len, bool huge)
{
	int flags = MAP_PRIVATE | MAP_ANONYMOUS;
	void *p;

	if (huge)
		flags |= MAP_HUGETLB;
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, flags, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	if (!huge && madvise(p, len, MADV_NOHUGEPAGE) && errno != ENOSYS)
		die("madvise(MADV_NOHUGEPAGE)");
	memset(p, 1, len);
	return p;
}

/* MAP + UNMAP of @len bytes into an IOAS with @domains mock domains. */
static void map_cell(const char *cell, bool huge, int domains)
{
	uint64_t t[REPS];
	uint32_t ioas, dev;
	void *buf;
	int i;

	buf = buffer(MAP_LEN, huge);
	if (!buf) {
		fprintf(stderr, "iommufd_bench: no memory for %s, skipped\n", cell);
		return;
	}
	fd = open("/dev/iommu", O_RDWR);
	if (fd < 0)
		die("open /dev/iommu");
	ioas = ioas_alloc();
	dev = mock_domain(ioas);
	for (i = 1; i < domains; i++)
		extra_domain(dev, ioas);
	for (i = 0; i != REPS; i++) {
		uint64_t start = now_ns();

		map(ioas, buf, MAP_LEN, MOCK_APERTURE_START);
		unmap(ioas, MOCK_APERTURE_START, MAP_LEN);
		t[i] = now_ns() - start;
	}
	close(fd);
	munmap(buf, MAP_LEN);
	report(cell, MAP_LEN, t);
}

/* Access pin + unpin of 64 MiB in an IOAS without domains. */
static void pin_cell(void)
{
	struct iommu_test_cmd create = {
		.size = sizeof(create),
		.op = IOMMU_TEST_OP_CREATE_ACCESS,
		.create_access = { .flags = MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES },
	};
	uint32_t ids[PIN_LEN / PIN_PIECE];
	uint64_t t[REPS];
	uint32_t ioas;
	void *buf;
	int i, j;

	buf = buffer(PIN_LEN, false);
	if (!buf)
		die("mmap");
	fd = open("/dev/iommu", O_RDWR);
	if (fd < 0)
		die("open /dev/iommu");
	ioas = ioas_alloc();
	map(ioas, buf, PIN_LEN, MOCK_APERTURE_START);
	create.id = ioas;
	if (ioctl(fd, IOMMU_TEST_CMD, &create))
		die("IOMMU_TEST_OP_CREATE_ACCESS");
	for (i = 0; i != REPS; i++) {
		uint64_t start = now_ns();

		for (j = 0; j != PIN_LEN / PIN_PIECE; j++) {
			struct iommu_test_cmd pin = {
				.size = sizeof(pin),
				.op = IOMMU_TEST_OP_ACCESS_PAGES,
				.id = create.create_access.out_access_fd,
				.access_pages = {
					.iova = MOCK_APERTURE_START + j * PIN_PIECE,
					.length = PIN_PIECE,
				},
			};

			if (ioctl(fd, IOMMU_TEST_CMD, &pin))
				die("IOMMU_TEST_OP_ACCESS_PAGES");
			ids[j] = pin.access_pages.out_access_pages_id;
		}
		for (j = 0; j != PIN_LEN / PIN_PIECE; j++) {
			struct iommu_test_cmd unpin = {
				.size = sizeof(unpin),
				.op = IOMMU_TEST_OP_DESTROY_ACCESS_PAGES,
				.id = create.create_access.out_access_fd,
				.destroy_access_pages = { .access_pages_id = ids[j] },
			};

			if (ioctl(fd, IOMMU_TEST_CMD, &unpin))
				die("IOMMU_TEST_OP_DESTROY_ACCESS_PAGES");
		}
		t[i] = now_ns() - start;
	}
	close(create.create_access.out_access_fd);
	close(fd);
	munmap(buf, PIN_LEN);
	report("access_pin_unpin_64M", PIN_LEN, t);
}

static long mem_free_kib(void)
{
	char line[128];
	long kib = -1;
	FILE *f;

	f = fopen("/proc/meminfo", "r");
	if (!f)
		die("/proc/meminfo");
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "MemFree: %ld kB", &kib) == 1)
			break;
	fclose(f);
	if (kib < 0)
		die("MemFree");
	return kib;
}

/* Per-CPU page lists as small as the kernel allows (see the header). */
static void shrink_pcp(void)
{
	int f = open("/proc/sys/vm/percpu_pagelist_high_fraction", O_WRONLY);

	if (f < 0)
		return;
	if (write(f, "1000000", 7) != 7)
		fprintf(stderr, "iommufd_bench: percpu_pagelist_high_fraction not set\n");
	close(f);
}

static int cmp_long(const void *a, const void *b)
{
	long x = *(const long *)a, y = *(const long *)b;

	return x < y ? -1 : x > y;
}

/* Kernel memory per mapped GiB with one mock domain per IOAS. */
static void mem_cell(const char *cell, bool huge)
{
	uint32_t ioas[MEM_IOAS];
	long v[MEM_REPS];
	void *buf;
	int i, j;

	buf = buffer(MAP_LEN, huge);
	if (!buf) {
		fprintf(stderr, "iommufd_bench: no memory for %s, skipped\n", cell);
		return;
	}
	fd = open("/dev/iommu", O_RDWR);
	if (fd < 0)
		die("open /dev/iommu");
	for (j = 0; j != MEM_IOAS; j++) {
		ioas[j] = ioas_alloc();
		mock_domain(ioas[j]);
	}
	for (i = 0; i != MEM_REPS; i++) {
		long before = mem_free_kib();

		for (j = 0; j != MEM_IOAS; j++)
			map(ioas[j], buf, MAP_LEN, MOCK_APERTURE_START);
		v[i] = before - mem_free_kib();
		for (j = 0; j != MEM_IOAS; j++)
			unmap(ioas[j], MOCK_APERTURE_START, MAP_LEN);
	}
	close(fd);
	munmap(buf, MAP_LEN);
	qsort(v, MEM_REPS, sizeof(*v), cmp_long);
	printf("{\"cell\": \"%s\", \"bytes\": %lu, \"reps\": %d, \"kib_per_gib\": %ld}\n",
	       cell, (unsigned long)MAP_LEN * MEM_IOAS, MEM_REPS,
	       (long)((double)v[MEM_REPS / 2] * (1024 * MIB) /
		      ((double)MAP_LEN * MEM_IOAS)));
	fflush(stdout);
}

int main(void)
{
	shrink_pcp();
	mem_cell("mem_per_gib_4k_1dom", false);
	mem_cell("mem_per_gib_2M_1dom", true);
	map_cell("map_unmap_512M_4k_1dom", false, 1);
	map_cell("map_unmap_512M_4k_2dom", false, 2);
	map_cell("map_unmap_512M_2M_1dom", true, 1);
	map_cell("map_unmap_512M_2M_2dom", true, 2);
	pin_cell();
	return 0;
}

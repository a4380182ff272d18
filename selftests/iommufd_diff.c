// SPDX-License-Identifier: GPL-2.0
/*
 * Differential test of /dev/iommu.
 *
 * Runs seeded pseudo-random operation sequences against whatever module
 * serves /dev/iommu and prints one canonical line per step: the arguments,
 * the return value or errno, and every word the kernel changed in the
 * command struct and in the buffers it points to, the records read from
 * event fds and the outcome of mmap()s. The VM harness runs it against
 * iommufd_rs and against upstream iommufd.ko in the same boot and compares
 * the two logs step by step (scripts/vm_summary.py).
 *
 * Every step draws its choices from its own generator, seeded from
 * (seed, step), so a divergence changes what later steps see but never
 * which choices they make. Every seed opens a fresh /dev/iommu, so its
 * steps depend only on earlier steps of the same seed:
 *
 *	iommufd_diff --seed N --steps M		reproduces seed N up to step M-1
 *	iommufd_diff --seeds A-B --steps M	what the harness runs
 *
 * User memory lives at fixed addresses so that pointers in the log are the
 * same in every run; fd numbers are logged relative to the /dev/iommu fd.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <linux/iommufd.h>
#include <linux/vfio.h>

#include "iommufd_test.h"

typedef unsigned long long u64;	/* as __aligned_u64 */
typedef uint32_t u32;
typedef uint16_t u16;
typedef uint8_t u8;

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define PG 4096UL
#define MIB (1UL << 20)
#define SZ_END(type, field) (offsetof(type, field) + sizeof(((type *)0)->field))

/* Fixed user memory (see the comment at the top). */
#define BASE 0x300000000000UL
#define R_BUF (BASE)			/* 8 MiB read/write, for maps */
#define R_BUF_LEN (8 * MIB)
#define R_RO (BASE + 16 * MIB)		/* 64 KiB read-only */
#define R_RO_LEN (64 * 1024UL)
#define R_HOLE (BASE + 32 * MIB)	/* never mapped */
#define R_CMD (BASE + 48 * MIB)		/* a page, then a PROT_NONE page */
#define R_DATA (BASE + 64 * MIB)	/* 64 KiB of data buffers */
#define R_DATA_LEN (64 * 1024UL)
#define R_MMAP (BASE + 128 * MIB)	/* slots for mmap of /dev/iommu */
#define MMAP_SLOTS 16
#define MMAP_SLOT (16 * PG)
#define MEMFD_LEN (4 * MIB)

/* ----------------------------------------------------------------- */
/* The step generator: xorshift64*, seeded by splitmix64(seed, step). */

static u64 rs;

static u64 rnd(void)
{
	rs ^= rs >> 12;
	rs ^= rs << 25;
	rs ^= rs >> 27;
	return rs * 0x2545f4914f6cdd1dULL;
}

static u32 rn(u32 n)
{
	return n ? (u32)(rnd() % n) : 0;
}

static bool pct(u32 p)
{
	return rn(100) < p;
}

static void seed_step(u32 seed, u32 step)
{
	u64 z = ((u64)seed << 32 | step) + 0x9e3779b97f4a7c15ULL;

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	rs = (z ^ (z >> 31)) | 1;
}

#define PICK(...) ({							\
	const u64 __v[] = { __VA_ARGS__ };				\
	__v[rn(ARRAY_SIZE(__v))];					\
})

/* ----------------------------------------------------------------- */
/* The log: one line per step. */

static char line[65536];
static size_t llen;

static void lg(const char *fmt, ...)
{
	va_list ap;
	int n;

	if (llen >= sizeof(line) - 64)
		return;
	va_start(ap, fmt);
	n = vsnprintf(line + llen, sizeof(line) - llen, fmt, ap);
	va_end(ap);
	if (n > 0)
		llen = llen + n < sizeof(line) ? llen + n : sizeof(line) - 1;
}

static const char *ename(int e)
{
	const char *s = strerrorname_np(e);
	static char buf[16];

	if (s)
		return s;
	snprintf(buf, sizeof(buf), "E%d", e);
	return buf;
}

static void lrc(long rc, int err)
{
	if (rc < 0)
		lg(" -> %s", ename(err));
	else
		lg(" -> %ld", rc);
}

/* ----------------------------------------------------------------- */
/* State of one seed: what the test believes exists. */

enum kind {
	K_IOAS = 1, K_HWPT, K_HWPT_NP, K_NESTED, K_IDEV, K_STDEV, K_FAULT,
	K_VIOMMU, K_VDEV, K_VEVENTQ, K_HWQ, K_ACCESS_PAGES,
};

struct obj {
	u32 id;
	u8 kind;
	u8 alive;
	u32 peer;	/* stdev: its idev; idev: its stdev; viommu: mmap slot info */
	u64 off, len;	/* viommu: mmap offset and length */
};

enum fkind { F_ACCESS = 1, F_FAULT, F_VEVENTQ, F_DMABUF };

struct fdent {
	int fd;
	u8 kind;
	u8 open;
};

struct mapent {
	u32 ioas;
	u64 iova, len, va;
};

struct mmapent {
	u64 addr, len;
	bool live;
};

static int ifd = -1;	/* /dev/iommu of the current seed */
static int memfd = -1;
static struct obj objs[1024];
static u32 nobjs;
static struct fdent fds[256];
static u32 nfds;
static struct mapent maps[256];
static u32 nmaps;
static struct mmapent mmaps[MMAP_SLOTS];
static u32 cookies[64];
static u32 ncookies;
static bool exact_size;	/* scenario steps: no size games... */
static int force_mode;	/* ...unless one is forced */
static u8 *cmd_page;	/* R_CMD, opaque to the compiler's bounds checks */

static void add_obj(u32 id, enum kind k, u32 peer)
{
	if (!id || nobjs >= ARRAY_SIZE(objs))
		return;
	objs[nobjs++] = (struct obj){ .id = id, .kind = k, .alive = 1, .peer = peer };
}

static struct obj *find_obj(u32 id)
{
	for (int i = nobjs - 1; i >= 0; i--)
		if (objs[i].id == id && objs[i].alive)
			return &objs[i];
	return NULL;
}

static void kill_obj(u32 id)
{
	struct obj *o = find_obj(id);

	if (!o)
		return;
	o->alive = 0;
	if (o->kind == K_STDEV) {
		struct obj *d = find_obj(o->peer);

		if (d && d->kind == K_IDEV)
			d->alive = 0;
	}
}

static u32 max_id(void)
{
	u32 m = 0;

	for (u32 i = 0; i < nobjs; i++)
		if (objs[i].id > m)
			m = objs[i].id;
	return m;
}

/* A live object whose kind is in @mask, or NULL. */
static struct obj *live_of(u32 mask)
{
	u32 n = 0, k;

	for (u32 i = 0; i < nobjs; i++)
		if (objs[i].alive && (mask & (1u << objs[i].kind)))
			n++;
	if (!n)
		return NULL;
	k = rn(n);
	for (u32 i = 0; i < nobjs; i++)
		if (objs[i].alive && (mask & (1u << objs[i].kind)) && !k--)
			return &objs[i];
	return NULL;
}

#define M(k) (1u << (k))

/* An ID for a field that wants one of @mask: mostly right, sometimes not. */
static u32 pick_id(u32 mask)
{
	u32 r = rn(100);
	struct obj *o;

	if (r < 72 && (o = live_of(mask)))
		return o->id;
	if (r < 82 && (o = live_of(~0u)))
		return o->id;
	if (r < 88 && nobjs) {
		for (u32 i = 0, k = rn(nobjs); i < nobjs; i++) {
			struct obj *d = &objs[(k + i) % nobjs];

			if (!d->alive && !find_obj(d->id))
				return d->id;
		}
	}
	if (r < 93)
		return 0;
	if (r < 97)
		return PICK(0x7fffffff, 0x80000000, 0xffffffff, 0x10000);
	return max_id() + 1;
}

static void add_fd(int fd, enum fkind k)
{
	if (fd < 0 || nfds >= ARRAY_SIZE(fds))
		return;
	for (u32 i = 0; i < nfds; i++)
		if (fds[i].fd == fd && fds[i].open)
			fds[i].open = 0;
	fds[nfds++] = (struct fdent){ .fd = fd, .kind = k, .open = 1 };
	if (k == F_FAULT || k == F_VEVENTQ)
		fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

static struct fdent *live_fd(enum fkind k)
{
	u32 n = 0, j;

	for (u32 i = 0; i < nfds; i++)
		n += fds[i].open && fds[i].kind == k;
	if (!n)
		return NULL;
	j = rn(n);
	for (u32 i = 0; i < nfds; i++)
		if (fds[i].open && fds[i].kind == k && !j--)
			return &fds[i];
	return NULL;
}

static int pick_fd(enum fkind k)
{
	u32 r = rn(100);
	struct fdent *f;

	if (r < 80 && (f = live_fd(k)))
		return f->fd;
	if (r < 86)
		return ifd;
	if (r < 92)
		return -1;
	if (r < 96 && nfds) {
		for (u32 i = 0; i < nfds; i++)
			if (!fds[i].open)
				return fds[i].fd;
	}
	return 1000;
}

/* fd numbers relative to /dev/iommu's */
static void lfd(const char *tag, int fd)
{
	lg(" %s=fd%+d", tag, fd - ifd);
}

static void add_map(u32 ioas, u64 iova, u64 len, u64 va)
{
	if (nmaps < ARRAY_SIZE(maps))
		maps[nmaps++] = (struct mapent){ ioas, iova, len, va };
	else
		maps[rn(nmaps)] = (struct mapent){ ioas, iova, len, va };
}

static struct mapent *pick_map(void)
{
	return nmaps ? &maps[rn(nmaps)] : NULL;
}

/* ----------------------------------------------------------------- */
/* Value pickers around the interesting edges. */

static u64 pick_len(void)
{
	switch (rn(10)) {
	case 0:
		return PICK(0, 1, 2047, 2048, 2049, PG - 1, PG + 1, 3 * 2048);
	case 1:
		return PICK(1UL << 40, ~0UL, ~0UL - PG + 1, 1UL << 63, 1UL << 31);
	case 2:
		return PICK(MIB, 2 * MIB, 4 * MIB, 16 * MIB, 8 * MIB + PG);
	default:
		return (1 + rn(16)) * PICK(2048, PG, PG, 64 * 1024);
	}
}

static u64 pick_iova(void)
{
	u64 a = MOCK_APERTURE_START, z = (u64)MOCK_APERTURE_LAST + 1;

	switch (rn(10)) {
	case 0:
		return PICK(0, PG, a - PG, a - 2048, z - PG, z, z + PG);
	case 1:
		return PICK(~0UL - PG + 1, 1UL << 40, 1UL << 56, 1UL << 63, a + 1, a + 2048);
	default:
		return a + (u64)rn(64) * PICK(2048, PG, 64 * 1024, MIB);
	}
}

/* A user VA: mostly inside the read/write buffer, sometimes not. */
static u64 pick_va(void)
{
	switch (rn(12)) {
	case 0:
		return R_RO + rn(4) * PG;
	case 1:
		return PICK(0, R_HOLE, R_BUF + R_BUF_LEN - PG, ~0UL - PG + 1, R_BUF + 1);
	case 2:
		return R_BUF + 2048 * rn(8);
	default:
		return R_BUF + PG * rn(R_BUF_LEN / PG / 2);
	}
}

static u32 pick_flags(u32 valid)
{
	switch (rn(10)) {
	case 0:
		return 1u << rn(32);
	case 1:
		return valid | 1u << rn(32);
	case 2:
		return 0;
	default:
		return valid & (u32)rnd();
	}
}

static u32 pick_rsvd(void)
{
	return pct(8) ? PICK(1, 0x80000000, 0x100) : 0;
}

static u32 pick_pasid(void)
{
	return PICK(0, 1, 2, 100, 1024, 1024, (1 << 20) - 1, 1 << 20, 0xffffffff, 7);
}

/* ----------------------------------------------------------------- */
/* Buffers the kernel may write: snapshot before, log changed words after. */

static u8 snapbuf[R_DATA_LEN];

static void snap(void *p, size_t n)
{
	memcpy(snapbuf, p, n);
}

static void ldiff_from(const char *tag, const void *p, const u8 *old, size_t n,
		       const u32 *fdoff)
{
	const u8 *b = p;
	bool first = true;

	for (size_t o = 0; o + 4 <= n; o += 4) {
		u32 v, w;
		bool isfd = false;

		memcpy(&v, b + o, 4);
		memcpy(&w, old + o, 4);
		if (v == w)
			continue;
		for (const u32 *f = fdoff; f && *f; f++)
			isfd |= *f == o;
		if (first)
			lg(" %s:", tag);
		first = false;
		if (isfd)
			lg(" @%zu=fd%+d", o, (int)v - ifd);
		else
			lg(" @%zu=%#x", o, v);
	}
}

static void ldiff(const char *tag, const void *p, size_t n, const u32 *fdoff)
{
	ldiff_from(tag, p, snapbuf, n, fdoff);
}

/*
 * Issues a size-first iommufd command. @cmd holds the kernel's struct
 * (@ksize bytes, minimum @minsz); mostly it is passed as is, sometimes
 * with a size around the minimum, a longer struct with a zero or non-zero
 * tail, a tail that ends at (or runs into) an unmapped page. The struct
 * sits at the end of a page followed by a PROT_NONE page. Logs the size if
 * not exact, the result and every word the kernel changed; copies the
 * struct back into @cmd.
 */
static long call(unsigned long ioc, void *cmd, u32 ksize, u32 minsz, const u32 *fdoff)
{
	static u8 before[PG];
	u8 *end = cmd_page + PG;
	u32 size = ksize, room = ksize, mode = 0;
	u8 *p;
	long rc;
	int err;

	if (!exact_size && pct(22))
		mode = 1 + rn(9);
	if (force_mode)
		mode = force_mode;
	force_mode = 0;
	switch (mode) {
	case 1:	/* just below the minimum */
		size = minsz - 1 - rn(4);
		break;
	case 2:	/* the minimum, for commands that grew */
		size = minsz;
		break;
	case 3:	/* longer, zero tail */
		size = room = ksize + 4 * (1 + rn(6));
		break;
	case 4:	/* longer, non-zero tail */
		size = room = ksize + 4 * (1 + rn(6));
		break;
	case 5:	/* a long tail ending at an unmapped page, non-zero last word */
		size = room = ksize + PICK(8, 64, 512, 2048);
		break;
	case 6:	/* the tail runs into the unmapped page */
		size = ksize + PICK(4, 8, 64);
		break;
	case 7:
		size = 0;
		break;
	case 8:	/* between the minimum and the full struct */
		size = minsz + (ksize > minsz ? 4 * rn((ksize - minsz) / 4 + 1) : 0);
		break;
	case 9:	/* zero tail up to the unmapped page */
		size = room = ksize + PICK(8, 512);
		break;
	}
	p = end - room;
	memset(p, 0, room);
	memcpy(p, cmd, ksize);
	memcpy(p, &size, 4);
	if (mode == 4)
		p[ksize + rn(room - ksize)] = 1 << rn(8);
	if (mode == 5)
		memcpy(end - 4, &(u32){ 0x1 }, 4);
	if (size != ksize)
		lg(" size=%u", size);
	memcpy(before, p, room);
	rc = ioctl(ifd, ioc, p);
	err = errno;
	lrc(rc, err);
	ldiff_from("out", p, before, room, fdoff);
	memcpy(cmd, p, ksize);
	memcpy(cmd, &(u32){ ksize }, 4);
	errno = err;
	return rc;
}

#define CALL(ioc, cmd, last, fdoff) \
	call(ioc, &(cmd), sizeof(cmd), SZ_END(typeof(cmd), last), fdoff)

static const u32 test_fdoff[] = { 16, 0 };
static const u32 fault_fdoff[] = { 12, 0 };

static long test_cmd(struct iommu_test_cmd *c)
{
	c->size = sizeof(*c);
	if (pct(3))
		c->__reserved = 1;
	return call(IOMMU_TEST_CMD, c, sizeof(*c), SZ_END(struct iommu_test_cmd, last),
		    c->op == IOMMU_TEST_OP_CREATE_ACCESS ? test_fdoff : NULL);
}

/* ----------------------------------------------------------------- */
/* Operations. Each logs its arguments and results on the step's line. */

static void op_ioas_alloc(void)
{
	struct iommu_ioas_alloc c = { .flags = pct(8) ? 1u << rn(32) : 0 };

	lg(" flags=%#x", c.flags);
	if (!CALL(IOMMU_IOAS_ALLOC, c, out_ioas_id, NULL))
		add_obj(c.out_ioas_id, K_IOAS, 0);
}

static void op_destroy(void)
{
	struct iommu_destroy c = { .id = pick_id(~0u) };

	lg(" id=%u", c.id);
	if (!CALL(IOMMU_DESTROY, c, id, NULL))
		kill_obj(c.id);
}

static void op_ioas_map(void)
{
	struct mapent *m = pct(25) ? pick_map() : NULL;
	struct iommu_ioas_map c = {
		.flags = pick_flags(IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_WRITEABLE |
				    IOMMU_IOAS_MAP_READABLE),
		.ioas_id = pick_id(M(K_IOAS)),
		.__reserved = pick_rsvd(),
		.user_va = pick_va(),
		.length = pick_len(),
		.iova = pick_iova(),
	};

	if (pct(60))
		c.flags |= IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE;
	if (m && pct(50)) {
		/* Next to or over an existing area. */
		c.ioas_id = m->ioas;
		c.flags |= IOMMU_IOAS_MAP_FIXED_IOVA;
		c.iova = m->iova + PICK(0, m->len, -(u64)PG, m->len / 2);
	}
	/* Mostly keep the range inside the buffer the VA points into. */
	if (c.user_va >= R_BUF && c.user_va < R_BUF + R_BUF_LEN && c.length < 2 * MIB &&
	    c.user_va + c.length > R_BUF + R_BUF_LEN && pct(50))
		c.length = R_BUF + R_BUF_LEN - c.user_va;
	lg(" ioas=%u flags=%#x rsvd=%u va=%#llx len=%#llx iova=%#llx", c.ioas_id, c.flags,
	   c.__reserved, (unsigned long long)c.user_va, (unsigned long long)c.length,
	   (unsigned long long)c.iova);
	if (!CALL(IOMMU_IOAS_MAP, c, iova, NULL))
		add_map(c.ioas_id, c.iova, c.length, c.user_va);
}

static void op_ioas_map_file(void)
{
	u32 r = rn(10);
	struct iommu_ioas_map_file c = {
		.flags = pick_flags(IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_WRITEABLE |
				    IOMMU_IOAS_MAP_READABLE),
		.ioas_id = pick_id(M(K_IOAS)),
		.fd = r < 6 ? memfd : pick_fd(F_DMABUF),
		.start = PICK(0, 0, 2048, PG, MEMFD_LEN - PG, MEMFD_LEN, 1UL << 40, ~0UL - PG + 1),
		.length = pct(60) ? (1 + rn(32)) * PICK(PG, 2048) : pick_len(),
		.iova = pick_iova(),
	};

	if (pct(60))
		c.flags |= IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE;
	lg(" ioas=%u flags=%#x", c.ioas_id, c.flags);
	lfd("fd", c.fd);
	lg(" start=%#llx len=%#llx iova=%#llx", (unsigned long long)c.start,
	   (unsigned long long)c.length, (unsigned long long)c.iova);
	if (!CALL(IOMMU_IOAS_MAP_FILE, c, iova, NULL))
		add_map(c.ioas_id, c.iova, c.length, 0);
}

static void op_ioas_copy(void)
{
	struct mapent *m = pick_map();
	struct iommu_ioas_copy c = {
		.flags = pick_flags(IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_WRITEABLE |
				    IOMMU_IOAS_MAP_READABLE),
		.dst_ioas_id = pick_id(M(K_IOAS)),
		.src_ioas_id = m && pct(80) ? m->ioas : pick_id(M(K_IOAS)),
		.length = m && pct(70) ? PICK(m->len, m->len / 2, 2048, PG, m->len + PG) : pick_len(),
		.dst_iova = pick_iova(),
		.src_iova = m && pct(80) ? m->iova + PICK(0, 0, 2048, PG, 511) : pick_iova(),
	};

	if (pct(60))
		c.flags |= IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE;
	lg(" dst=%u src=%u flags=%#x len=%#llx dst_iova=%#llx src_iova=%#llx", c.dst_ioas_id,
	   c.src_ioas_id, c.flags, (unsigned long long)c.length,
	   (unsigned long long)c.dst_iova, (unsigned long long)c.src_iova);
	if (!CALL(IOMMU_IOAS_COPY, c, src_iova, NULL))
		add_map(c.dst_ioas_id, c.dst_iova, c.length,
			m ? m->va + (c.src_iova - m->iova) : 0);
}

static void op_ioas_unmap(void)
{
	struct mapent *m = pick_map();
	struct iommu_ioas_unmap c = {
		.ioas_id = m && pct(80) ? m->ioas : pick_id(M(K_IOAS)),
		.iova = pick_iova(),
		.length = pick_len(),
	};

	if (m && pct(75)) {
		switch (rn(5)) {
		case 0:	/* partial */
			c.iova = m->iova + PICK(0, 2048, PG);
			c.length = m->len / 2 ? m->len / 2 : 1;
			break;
		case 1:	/* covering more */
			c.iova = m->iova > PG ? m->iova - PG : 0;
			c.length = m->len + 2 * PG;
			break;
		default:
			c.iova = m->iova;
			c.length = m->len;
		}
	} else if (pct(30)) {
		c.iova = 0;
		c.length = ~0ULL;
	}
	lg(" ioas=%u iova=%#llx len=%#llx", c.ioas_id, (unsigned long long)c.iova,
	   (unsigned long long)c.length);
	CALL(IOMMU_IOAS_UNMAP, c, length, NULL);
}

static void op_iova_ranges(void)
{
	struct iommu_iova_range *r = (void *)R_DATA;
	struct iommu_ioas_iova_ranges c = {
		.ioas_id = pick_id(M(K_IOAS)),
		.num_iovas = PICK(0, 1, 2, 8, 64),
		.__reserved = pick_rsvd(),
		.allowed_iovas = pct(92) ? R_DATA : PICK(0, R_HOLE, R_RO),
	};

	memset(r, 0xa5, 64 * sizeof(*r));
	snap(r, 64 * sizeof(*r));
	lg(" ioas=%u num=%u rsvd=%u buf=%#llx", c.ioas_id, c.num_iovas, c.__reserved,
	   (unsigned long long)c.allowed_iovas);
	CALL(IOMMU_IOAS_IOVA_RANGES, c, out_iova_alignment, NULL);
	ldiff("ranges", r, 64 * sizeof(*r), NULL);
}

static void op_allow_iovas(void)
{
	struct iommu_iova_range *r = (void *)R_DATA;
	struct iommu_ioas_allow_iovas c = {
		.ioas_id = pick_id(M(K_IOAS)),
		.num_iovas = PICK(0, 1, 1, 2, 3),
		.__reserved = pick_rsvd(),
		.allowed_iovas = pct(95) ? R_DATA : R_HOLE,
	};

	lg(" ioas=%u num=%u", c.ioas_id, c.num_iovas);
	for (u32 i = 0; i < c.num_iovas; i++) {
		r[i].start = pick_iova();
		r[i].last = pct(80) ? r[i].start + pick_len() - 1 : pick_iova();
		lg(" [%#llx,%#llx]", (unsigned long long)r[i].start,
		   (unsigned long long)r[i].last);
	}
	CALL(IOMMU_IOAS_ALLOW_IOVAS, c, allowed_iovas, NULL);
}

static void op_option(void)
{
	struct iommu_option c = {
		.option_id = PICK(IOMMU_OPTION_RLIMIT_MODE, IOMMU_OPTION_RLIMIT_MODE,
				  IOMMU_OPTION_HUGE_PAGES, IOMMU_OPTION_HUGE_PAGES, 2, 0xffffffff),
		.op = PICK(IOMMU_OPTION_OP_SET, IOMMU_OPTION_OP_SET, IOMMU_OPTION_OP_GET, 2),
		.__reserved = pct(5),
		.val64 = PICK(0, 1, 1, 2, ~0ULL),
	};

	c.object_id = c.option_id == IOMMU_OPTION_HUGE_PAGES && pct(85) ?
		      pick_id(M(K_IOAS)) : PICK(0, 0, 0, pick_id(~0u));
	lg(" opt=%u op=%u rsvd=%u obj=%u val=%#llx", c.option_id, c.op, c.__reserved,
	   c.object_id, (unsigned long long)c.val64);
	CALL(IOMMU_OPTION, c, val64, NULL);
}

static void op_vfio_ioas(void)
{
	struct iommu_vfio_ioas c = {
		.ioas_id = pick_id(M(K_IOAS)),
		.op = PICK(IOMMU_VFIO_IOAS_GET, IOMMU_VFIO_IOAS_SET, IOMMU_VFIO_IOAS_SET,
			   IOMMU_VFIO_IOAS_CLEAR, 3),
		.__reserved = pct(5),
	};

	lg(" ioas=%u op=%u rsvd=%u", c.ioas_id, c.op, c.__reserved);
	CALL(IOMMU_VFIO_IOAS, c, __reserved, NULL);
}

static void op_hwpt_alloc(void)
{
	struct iommu_hwpt_selftest *d = (void *)R_DATA;
	struct iommu_hwpt_alloc c = {
		.flags = pick_flags(IOMMU_HWPT_ALLOC_NEST_PARENT |
				    IOMMU_HWPT_ALLOC_DIRTY_TRACKING |
				    IOMMU_HWPT_FAULT_ID_VALID | IOMMU_HWPT_ALLOC_PASID),
		.dev_id = pick_id(M(K_IDEV)),
		.pt_id = pick_id(M(K_IOAS) | M(K_HWPT_NP) | M(K_VIOMMU)),
		.__reserved = pick_rsvd(),
		.data_type = PICK(IOMMU_HWPT_DATA_NONE, IOMMU_HWPT_DATA_SELFTEST,
				  IOMMU_HWPT_DATA_SELFTEST, 1, 0xffff),
		.data_uptr = pct(92) ? R_DATA : PICK(0, R_HOLE),
		.fault_id = pct(60) ? pick_id(M(K_FAULT)) : 0,
		.__reserved2 = pick_rsvd(),
	};
	struct obj *pt;
	long rc;

	d->iotlb = PICK(IOMMU_TEST_IOTLB_DEFAULT, 0, 0x1234);
	d->pagetable_type = PICK(0, 0, 1, 2);
	c.data_len = c.data_type == IOMMU_HWPT_DATA_NONE && pct(70) ? 0 :
		     PICK(0, 4, 8, 12, 3);
	lg(" flags=%#x dev=%u pt=%u type=%#x len=%u iotlb=%#x pgt=%u fault=%u rsvd=%u/%u",
	   c.flags, c.dev_id, c.pt_id, c.data_type, c.data_len, d->iotlb, d->pagetable_type,
	   c.fault_id, c.__reserved, c.__reserved2);
	rc = CALL(IOMMU_HWPT_ALLOC, c, __reserved2, NULL);
	if (rc)
		return;
	pt = find_obj(c.pt_id);
	if (pt && pt->kind == K_IOAS)
		add_obj(c.out_hwpt_id, c.flags & IOMMU_HWPT_ALLOC_NEST_PARENT ?
			K_HWPT_NP : K_HWPT, 0);
	else
		add_obj(c.out_hwpt_id, K_NESTED, 0);
}

static void op_get_hw_info(void)
{
	struct iommu_hw_info c = {
		.flags = pick_flags(IOMMU_HW_INFO_FLAG_INPUT_TYPE),
		.dev_id = pick_id(M(K_IDEV)),
		.data_len = PICK(0, 4, 8, 16, 64),
		.data_uptr = pct(92) ? R_DATA : PICK(0, R_HOLE, R_RO),
	};

	c.in_data_type = PICK(0, 0, IOMMU_HW_INFO_TYPE_SELFTEST, 1, 2, 0xffffffff);
	lg(" flags=%#x dev=%u len=%u type=%#x", c.flags, c.dev_id, c.data_len, c.in_data_type);
	memset((void *)R_DATA, 0xa5, 64);
	snap((void *)R_DATA, 64);
	CALL(IOMMU_GET_HW_INFO, c, out_capabilities, NULL);
	ldiff("data", (void *)R_DATA, 64, NULL);
}

static void op_set_dirty(void)
{
	struct iommu_hwpt_set_dirty_tracking c = {
		.flags = pick_flags(IOMMU_HWPT_DIRTY_TRACKING_ENABLE),
		.hwpt_id = pick_id(M(K_HWPT) | M(K_HWPT_NP)),
		.__reserved = pick_rsvd(),
	};

	lg(" flags=%#x hwpt=%u", c.flags, c.hwpt_id);
	CALL(IOMMU_HWPT_SET_DIRTY_TRACKING, c, __reserved, NULL);
}

static void pick_range(u64 *iova, u64 *len)
{
	struct mapent *m = pick_map();

	if (m && pct(75)) {
		*iova = m->iova + PICK(0, 0, 2048, PG);
		*len = PICK(m->len, m->len, PG, 2048, 8 * PG, m->len + PG);
	} else {
		*iova = pick_iova();
		*len = pick_len();
	}
}

static void op_get_dirty(void)
{
	struct iommu_hwpt_get_dirty_bitmap c = {
		.hwpt_id = pick_id(M(K_HWPT) | M(K_HWPT_NP)),
		.flags = pick_flags(IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR),
		.__reserved = pick_rsvd(),
		.page_size = PICK(2048, PG, PG, 3 * 2048, 0, MIB, 1),
		.data = pct(92) ? R_DATA + PICK(0, 0, 4, 8) : PICK(0, R_HOLE, R_RO),
	};

	pick_range(&c.iova, &c.length);
	if (c.length > 64 * MIB)
		c.length = PICK(c.length, 64 * MIB);
	lg(" hwpt=%u flags=%#x iova=%#llx len=%#llx pgsz=%#llx data=+%#llx", c.hwpt_id,
	   c.flags, (unsigned long long)c.iova, (unsigned long long)c.length,
	   (unsigned long long)c.page_size, (unsigned long long)(c.data - R_DATA));
	memset((void *)R_DATA, 0, 4096);
	snap((void *)R_DATA, 4096);
	CALL(IOMMU_HWPT_GET_DIRTY_BITMAP, c, data, NULL);
	ldiff("bits", (void *)R_DATA, 4096, NULL);
}

static void op_invalidate(void)
{
	u32 *e = (u32 *)R_DATA;
	struct iommu_hwpt_invalidate c = {
		.hwpt_id = pick_id(M(K_NESTED) | M(K_VIOMMU)),
		.data_uptr = pct(92) ? R_DATA : PICK(0, R_HOLE),
		.data_type = PICK(IOMMU_HWPT_INVALIDATE_DATA_SELFTEST,
				  IOMMU_HWPT_INVALIDATE_DATA_SELFTEST,
				  IOMMU_HWPT_INVALIDATE_DATA_SELFTEST_INVALID, 0, 1),
		.entry_len = PICK(8, 8, 12, 12, 4, 0, 16, PG, PG + 1),
		.entry_num = PICK(0, 1, 1, 2, 3, 1 << 19, (1 << 19) + 1),
		.__reserved = pick_rsvd(),
	};

	struct obj *o = find_obj(c.hwpt_id);

	/*
	 * Upstream's mock vIOMMU kcalloc()s the whole array and WARNs above
	 * the page allocator's largest order: not at 1 << 19 for a vIOMMU.
	 */
	if (o && o->kind == K_VIOMMU && c.entry_num == 1 << 19)
		c.entry_num = 4096;
	memset(e, 0, 1024);
	for (u32 i = 0; i < 64; i++)
		e[i] = PICK(0, 0, 1, 2, 3, 4, 1, pick_id(M(K_VDEV)), 0x99);
	lg(" hwpt=%u type=%#x len=%u num=%u e=%x,%x,%x,%x,%x,%x", c.hwpt_id, c.data_type,
	   c.entry_len, c.entry_num, e[0], e[1], e[2], e[3], e[4], e[5]);
	CALL(IOMMU_HWPT_INVALIDATE, c, __reserved, NULL);
}

static void op_fault_alloc(void)
{
	struct iommu_fault_alloc c = { .flags = pct(8) ? 1u << rn(32) : 0 };

	lg(" flags=%#x", c.flags);
	if (!CALL(IOMMU_FAULT_QUEUE_ALLOC, c, out_fault_fd, fault_fdoff)) {
		add_obj(c.out_fault_id, K_FAULT, 0);
		add_fd(c.out_fault_fd, F_FAULT);
	}
}

static void op_viommu_alloc(void)
{
	struct iommu_viommu_selftest *d = (void *)R_DATA;
	struct iommu_viommu_alloc c = {
		.flags = pct(5) ? 1u << rn(32) : 0,
		.type = PICK(IOMMU_VIOMMU_TYPE_SELFTEST, IOMMU_VIOMMU_TYPE_SELFTEST,
			     IOMMU_VIOMMU_TYPE_SELFTEST, 0, 1, 2),
		.dev_id = pick_id(M(K_IDEV)),
		.hwpt_id = pick_id(M(K_HWPT_NP) | M(K_HWPT)),
		.data_len = PICK(0, sizeof(*d), sizeof(*d), 4, 8, 64),
		.__reserved = pick_rsvd(),
		.data_uptr = pct(92) ? R_DATA : PICK(0, R_HOLE),
	};
	long rc;

	memset(d, 0, 64);
	d->in_data = (u32)rnd();
	snap(d, 64);
	lg(" flags=%#x type=%#x dev=%u hwpt=%u len=%u in=%#x", c.flags, c.type, c.dev_id,
	   c.hwpt_id, c.data_len, d->in_data);
	rc = CALL(IOMMU_VIOMMU_ALLOC, c, data_uptr, NULL);
	ldiff("data", d, 64, NULL);
	if (!rc) {
		add_obj(c.out_viommu_id, K_VIOMMU, 0);
		objs[nobjs - 1].off = c.data_len >= sizeof(*d) ? d->out_mmap_offset : 0;
		objs[nobjs - 1].len = c.data_len >= sizeof(*d) ? d->out_mmap_length : 0;
	}
}

static void op_vdevice_alloc(void)
{
	struct iommu_vdevice_alloc c = {
		.viommu_id = pick_id(M(K_VIOMMU)),
		.dev_id = pick_id(M(K_IDEV)),
		.virt_id = PICK(0, 0, 1, 0x99, 0x88, 1ULL << 32, ~0ULL, rn(8)),
	};

	lg(" viommu=%u dev=%u virt=%#llx", c.viommu_id, c.dev_id,
	   (unsigned long long)c.virt_id);
	if (!CALL(IOMMU_VDEVICE_ALLOC, c, virt_id, NULL))
		add_obj(c.out_vdevice_id, K_VDEV, 0);
}

static const u32 veventq_fdoff[] = { 24, 0 };

static void op_veventq_alloc(void)
{
	struct iommu_veventq_alloc c = {
		.flags = pct(5) ? 1u << rn(32) : 0,
		.viommu_id = pick_id(M(K_VIOMMU)),
		.type = PICK(IOMMU_VEVENTQ_TYPE_SELFTEST, IOMMU_VEVENTQ_TYPE_SELFTEST, 0, 1),
		.veventq_depth = PICK(0, 1, 2, 2, 3, 8, 1 << 19, (1 << 19) + 1),
		.__reserved = pick_rsvd(),
	};

	lg(" flags=%#x viommu=%u type=%#x depth=%u", c.flags, c.viommu_id, c.type,
	   c.veventq_depth);
	if (!CALL(IOMMU_VEVENTQ_ALLOC, c, __reserved, veventq_fdoff)) {
		add_obj(c.out_veventq_id, K_VEVENTQ, 0);
		add_fd(c.out_veventq_fd, F_VEVENTQ);
	}
}

static void op_hw_queue_alloc(void)
{
	struct mapent *m = pick_map();
	struct iommu_hw_queue_alloc c = {
		.flags = pct(5) ? 1u << rn(32) : 0,
		.viommu_id = pick_id(M(K_VIOMMU)),
		.type = PICK(IOMMU_HW_QUEUE_TYPE_SELFTEST, IOMMU_HW_QUEUE_TYPE_SELFTEST, 0, 1),
		.index = PICK(0, 0, 1, 1, 2),
		.nesting_parent_iova = m && pct(80) ? m->iova + PICK(0, 0, PG, 2048) : pick_iova(),
		.length = PICK(PG, PG, 2 * PG, 2048, 0, MIB, ~0ULL - PG + 1),
	};

	lg(" flags=%#x viommu=%u type=%#x index=%u iova=%#llx len=%#llx", c.flags,
	   c.viommu_id, c.type, c.index, (unsigned long long)c.nesting_parent_iova,
	   (unsigned long long)c.length);
	if (!CALL(IOMMU_HW_QUEUE_ALLOC, c, length, NULL))
		add_obj(c.out_hw_queue_id, K_HWQ, 0);
}

static void op_change_process(void)
{
	struct iommu_ioas_change_process c = { .__reserved = pick_rsvd() };

	lg(" rsvd=%u", c.__reserved);
	CALL(IOMMU_IOAS_CHANGE_PROCESS, c, __reserved, NULL);
}

/* Unknown, malformed and misdirected ioctl numbers. */
static void op_raw_ioctl(void)
{
	u32 nr = PICK(0x80 + rn(0x20), 0x80 + rn(0x20), 0x96 + rn(10), 0x96 + rn(10), 0x95,
		      0xa0 + rn(0x20), 0x7f, VFIO_BASE + rn(20), rn(VFIO_BASE));
	unsigned long ioc = pct(85) ? _IO(IOMMUFD_TYPE, nr) :
			    _IOC(PICK(_IOC_READ | _IOC_WRITE, _IOC_WRITE, _IOC_READ),
				 IOMMUFD_TYPE, nr, PICK(8, 64));
	u64 arg = PICK(0, 0, R_DATA, R_HOLE, R_CMD + PG - 8);
	long rc;

	/* Arguments that would change state stay pointers of garbage. */
	memset((void *)R_DATA, 0, 128);
	*(u32 *)R_DATA = PICK(0, 8, 64, 128);
	memset((void *)(R_CMD + PG - 8), 0, 8);
	*(u32 *)(R_CMD + PG - 8) = 64;
	lg(" ioc=%#lx arg=%#llx sz=%u", ioc, (unsigned long long)arg, *(u32 *)R_DATA);
	snap((void *)R_DATA, 128);
	rc = ioctl(ifd, ioc, arg);
	lrc(rc, errno);
	ldiff("out", (void *)R_DATA, 128, ioc == IOMMU_FAULT_QUEUE_ALLOC ? fault_fdoff : NULL);
	/* a fault queue made of zeroes: its fd is not tracked */
	if (!rc && ioc == IOMMU_FAULT_QUEUE_ALLOC && arg == R_DATA)
		close(*(u32 *)(R_DATA + 12));
}

/* ---- IOMMU_TEST_CMD ---- */

static void op_mock_domain(void)
{
	struct iommu_test_cmd c = {
		.op = pct(70) ? IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS : IOMMU_TEST_OP_MOCK_DOMAIN,
		.id = pick_id(M(K_IOAS) | M(K_HWPT) | M(K_HWPT_NP)),
	};

	if (c.op == IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS)
		c.mock_domain_flags.dev_flags = PICK(0, MOCK_FLAGS_DEVICE_PASID,
						     MOCK_FLAGS_DEVICE_PASID,
						     MOCK_FLAGS_DEVICE_NO_DIRTY,
						     MOCK_FLAGS_DEVICE_NO_DIRTY | MOCK_FLAGS_DEVICE_PASID,
						     1u << rn(32));
	lg(" op=%u pt=%u dev_flags=%#x", c.op, c.id, c.mock_domain_flags.dev_flags);
	if (!test_cmd(&c)) {
		add_obj(c.mock_domain.out_idev_id, K_IDEV, c.mock_domain.out_stdev_id);
		add_obj(c.mock_domain.out_stdev_id, K_STDEV, c.mock_domain.out_idev_id);
		if (!find_obj(c.mock_domain.out_hwpt_id))
			add_obj(c.mock_domain.out_hwpt_id, K_HWPT, 0);
	}
}

static void op_mock_replace(void)
{
	struct iommu_test_cmd c = {
		.op = IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE,
		.id = pick_id(M(K_STDEV)),
		.mock_domain_replace.pt_id = pick_id(M(K_IOAS) | M(K_HWPT) | M(K_HWPT_NP) |
						     M(K_NESTED)),
	};

	lg(" stdev=%u pt=%u", c.id, c.mock_domain_replace.pt_id);
	if (!test_cmd(&c) && !find_obj(c.mock_domain_replace.pt_id))
		add_obj(c.mock_domain_replace.pt_id, K_HWPT, 0);
}

static void op_add_reserved(void)
{
	struct iommu_test_cmd c = {
		.op = IOMMU_TEST_OP_ADD_RESERVED,
		.id = pick_id(M(K_IOAS)),
		.add_reserved = { .start = pick_iova(), .length = pick_len() },
	};

	lg(" ioas=%u start=%#llx len=%#llx", c.id, (unsigned long long)c.add_reserved.start,
	   (unsigned long long)c.add_reserved.length);
	test_cmd(&c);
}

static void op_md_check_map(void)
{
	struct mapent *m = pick_map();
	struct iommu_test_cmd c = {
		.op = IOMMU_TEST_OP_MD_CHECK_MAP,
		.id = pick_id(M(K_HWPT) | M(K_HWPT_NP)),
	};

	if (m && m->va) {
		c.check_map.iova = m->iova;
		c.check_map.length = PICK(m->len, 2048, PG);
		c.check_map.uptr = m->va;
	} else {
		c.check_map.iova = pick_iova();
		c.check_map.length = PG;
		c.check_map.uptr = pick_va();
	}
	lg(" hwpt=%u iova=%#llx len=%#llx uptr=%#llx", c.id,
	   (unsigned long long)c.check_map.iova, (unsigned long long)c.check_map.length,
	   (unsigned long long)c.check_map.uptr);
	test_cmd(&c);
}

static void op_md_check_refs(void)
{
	struct iommu_test_cmd c = {
		.op = IOMMU_TEST_OP_MD_CHECK_REFS,
		.check_refs = {
			.length = PICK(PG, 2 * PG, 16 * PG, 2048),
			.uptr = R_BUF + PG * rn(64),
			.refs = PICK(0, 1, 1, 2),
		},
	};

	lg(" uptr=%#llx len=%#llx refs=%u", (unsigned long long)c.check_refs.uptr,
	   (unsigned long long)c.check_refs.length, c.check_refs.refs);
	test_cmd(&c);
}

static void op_create_access(void)
{
	struct iommu_test_cmd c = {
		.op = IOMMU_TEST_OP_CREATE_ACCESS,
		.id = pick_id(M(K_IOAS)),
		.create_access.flags = PICK(0, MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES,
					    MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES, 2),
	};

	lg(" ioas=%u flags=%#x", c.id, c.create_access.flags);
	if (!test_cmd(&c))
		add_fd(c.create_access.out_access_fd, F_ACCESS);
}

static void access_range(u64 *iova, u64 *len, u64 *uptr)
{
	struct mapent *m = pick_map();

	if (m && pct(80)) {
		*iova = m->iova + PICK(0, 0, PG, 2048, m->len - PG);
		*len = PICK(PG, PG, 2 * PG, 1, 2048, 16 * MIB + PG, m->len);
		*uptr = m->va ? m->va + (*iova - m->iova) : R_BUF;
	} else {
		*iova = pick_iova();
		*len = pick_len();
		*uptr = pick_va();
	}
}

static void op_access_pages(void)
{
	struct iommu_test_cmd c = {
		.op = IOMMU_TEST_OP_ACCESS_PAGES,
		.id = pick_fd(F_ACCESS),
		.access_pages.flags = pick_flags(MOCK_FLAGS_ACCESS_WRITE),
	};

	access_range(&c.access_pages.iova, &c.access_pages.length, &c.access_pages.uptr);
	if (c.access_pages.length > 16 * MIB + PG)
		c.access_pages.length = PICK(c.access_pages.length, PG);
	lfd("access", c.id);
	lg(" flags=%#x iova=%#llx len=%#llx uptr=%#llx", c.access_pages.flags,
	   (unsigned long long)c.access_pages.iova, (unsigned long long)c.access_pages.length,
	   (unsigned long long)c.access_pages.uptr);
	if (!test_cmd(&c))
		add_obj(c.access_pages.out_access_pages_id, K_ACCESS_PAGES, 0);
}

static void op_destroy_access_pages(void)
{
	struct iommu_test_cmd c = {
		.op = IOMMU_TEST_OP_DESTROY_ACCESS_PAGES,
		.id = pick_fd(F_ACCESS),
		.destroy_access_pages.access_pages_id = pick_id(M(K_ACCESS_PAGES)),
	};

	lfd("access", c.id);
	lg(" pages=%u", c.destroy_access_pages.access_pages_id);
	if (!test_cmd(&c))
		kill_obj(c.destroy_access_pages.access_pages_id);
}

static u32 fnv(const u8 *p, size_t n)
{
	u32 h = 2166136261u;

	while (n--)
		h = (h ^ *p++) * 16777619u;
	return h;
}

static void op_access_rw(void)
{
	u8 *buf = (u8 *)R_DATA;
	struct iommu_test_cmd c = {
		.op = IOMMU_TEST_OP_ACCESS_RW,
		.id = pick_fd(F_ACCESS),
		.access_rw.flags = pick_flags(MOCK_ACCESS_RW_WRITE | MOCK_ACCESS_RW_SLOW_PATH),
	};
	u64 dummy;

	access_range(&c.access_rw.iova, &c.access_rw.length, &dummy);
	if (c.access_rw.length > R_DATA_LEN)
		c.access_rw.length = PICK(c.access_rw.length, R_DATA_LEN, 3 * PG + 7);
	c.access_rw.uptr = PICK(R_DATA, R_DATA, R_DATA, R_RO, R_HOLE, 0);
	for (u32 i = 0; i < R_DATA_LEN; i++)
		buf[i] = (u8)(i * 7 + rn(2));
	lfd("access", c.id);
	lg(" flags=%#x iova=%#llx len=%#llx uptr=%#llx", c.access_rw.flags,
	   (unsigned long long)c.access_rw.iova, (unsigned long long)c.access_rw.length,
	   (unsigned long long)c.access_rw.uptr);
	if (!test_cmd(&c) && !(c.access_rw.flags & MOCK_ACCESS_RW_WRITE) &&
	    c.access_rw.uptr == R_DATA)
		lg(" data=%08x", fnv(buf, R_DATA_LEN));
}

static void op_temp_limit(void)
{
	struct iommu_test_cmd c = {
		.op = IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT,
		.memory_limit.limit = PICK(0, 11, 12, 16, 4096, 65536),
	};

	lg(" limit=%u", c.memory_limit.limit);
	test_cmd(&c);
	/* The limit is global to the module: always put the default back. */
	c = (struct iommu_test_cmd){ .size = sizeof(c), .op = IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT,
				     .memory_limit.limit = 65536 };
	ioctl(ifd, IOMMU_TEST_CMD, &c);
}

static void op_access_replace(void)
{
	struct iommu_test_cmd c = {
		.op = IOMMU_TEST_OP_ACCESS_REPLACE_IOAS,
		.id = pick_fd(F_ACCESS),
		.access_replace_ioas.ioas_id = pick_id(M(K_IOAS)),
	};

	lfd("access", c.id);
	lg(" ioas=%u", c.access_replace_ioas.ioas_id);
	test_cmd(&c);
}

static void op_dirty(void)
{
	struct iommu_test_cmd c = {
		.op = IOMMU_TEST_OP_DIRTY,
		.id = pick_id(M(K_HWPT) | M(K_HWPT_NP)),
		.dirty = {
			.flags = pick_rsvd(),
			.page_size = PICK(2048, PG, PG, 3 * 2048, 0),
			.uptr = pct(92) ? R_DATA : R_HOLE,
		},
	};

	pick_range(&c.dirty.iova, &c.dirty.length);
	if (c.dirty.length > 64 * MIB)
		c.dirty.length = 64 * MIB;
	memset((void *)R_DATA, 0, 4096);
	for (u32 i = 0; i < 64; i++)
		((u8 *)R_DATA)[i] = (u8)rnd();
	lg(" hwpt=%u flags=%#x iova=%#llx len=%#llx pgsz=%#llx", c.id, c.dirty.flags,
	   (unsigned long long)c.dirty.iova, (unsigned long long)c.dirty.length,
	   (unsigned long long)c.dirty.page_size);
	test_cmd(&c);
}

static void op_check_iotlb(void)
{
	struct iommu_test_cmd c = {
		.op = IOMMU_TEST_OP_MD_CHECK_IOTLB,
		.id = pick_id(M(K_NESTED)),
		.check_iotlb = { .id = PICK(0, 1, 3, 4),
				 .iotlb = PICK(0, IOMMU_TEST_IOTLB_DEFAULT, 0x1234) },
	};

	lg(" hwpt=%u id=%u iotlb=%#x", c.id, c.check_iotlb.id, c.check_iotlb.iotlb);
	test_cmd(&c);
}

static void op_check_cache(void)
{
	struct iommu_test_cmd c = {
		.op = IOMMU_TEST_OP_DEV_CHECK_CACHE,
		.id = pick_id(M(K_IDEV)),
		.check_dev_cache = { .id = PICK(0, 1, 3, 4),
				     .cache = PICK(0, IOMMU_TEST_DEV_CACHE_DEFAULT) },
	};

	lg(" dev=%u id=%u cache=%#x", c.id, c.check_dev_cache.id, c.check_dev_cache.cache);
	test_cmd(&c);
}

static void op_trigger_iopf(void)
{
	struct iommu_test_cmd c = {
		.op = IOMMU_TEST_OP_TRIGGER_IOPF,
		.trigger_iopf = {
			.dev_id = pick_id(M(K_IDEV)),
			.pasid = PICK(0, 0, 1, 100, 0x1234, (1 << 20) - 1),
			.grpid = PICK(0, 1, 2, 0x1ff, 0xffffffff),
			.perm = PICK(1, 2, 3, 0, 0xf, 0x10),
			.addr = PICK(0, MOCK_APERTURE_START, 0xdeadbeef000ULL, ~0ULL),
		},
	};

	lg(" dev=%u pasid=%#x grp=%#x perm=%#x addr=%#llx", c.trigger_iopf.dev_id,
	   c.trigger_iopf.pasid, c.trigger_iopf.grpid, c.trigger_iopf.perm,
	   (unsigned long long)c.trigger_iopf.addr);
	test_cmd(&c);
}

static void op_trigger_vevent(void)
{
	struct iommu_test_cmd c = {
		.op = IOMMU_TEST_OP_TRIGGER_VEVENT,
		.trigger_vevent.dev_id = pick_id(M(K_IDEV)),
	};

	lg(" dev=%u", c.trigger_vevent.dev_id);
	test_cmd(&c);
}

static void op_pasid(void)
{
	static const u32 ops[] = { IOMMU_TEST_OP_PASID_ATTACH, IOMMU_TEST_OP_PASID_REPLACE,
				   IOMMU_TEST_OP_PASID_DETACH, IOMMU_TEST_OP_PASID_CHECK_HWPT };
	struct iommu_test_cmd c = {
		.op = ops[rn(4)],
		.id = pick_id(M(K_STDEV)),
		.pasid_attach = {
			.pasid = pick_pasid(),
			.pt_id = pick_id(M(K_IOAS) | M(K_HWPT) | M(K_HWPT_NP) | M(K_NESTED)),
		},
	};

	if (c.op == IOMMU_TEST_OP_PASID_CHECK_HWPT && pct(20))
		c.pasid_check.hwpt_id = 0;
	lg(" op=%u stdev=%u pasid=%#x pt=%u", c.op, c.id, c.pasid_attach.pasid,
	   c.pasid_attach.pt_id);
	test_cmd(&c);
}

static int lowest_free_fd(void)
{
	int fd = fcntl(memfd, F_DUPFD, 0);

	if (fd >= 0)
		close(fd);
	return fd;
}

static void op_dmabuf_get(void)
{
	struct iommu_test_cmd c = {
		.op = IOMMU_TEST_OP_DMABUF_GET,
		.dmabuf_get = {
			.length = PICK(PG, 2 * PG, 16 * PG, 0, 2048, 512 * PG, 513 * PG),
			.open_flags = PICK(O_CLOEXEC, O_CLOEXEC, O_RDWR, 0x12345678),
		},
	};
	int next = lowest_free_fd();
	long rc;

	lg(" len=%#x oflags=%#x", c.dmabuf_get.length, c.dmabuf_get.open_flags);
	c.size = sizeof(c);
	rc = ioctl(ifd, IOMMU_TEST_CMD, &c);
	if (rc < 0) {
		lrc(rc, errno);
		return;
	}
	/*
	 * The fd is the result (iommufd_rs) or only installed (upstream's
	 * selftest returns 0): it is the lowest free fd either way.
	 */
	lg(" -> %s", rc == next ? "fd" : rc == 0 ? "0" : "other");
	if (fcntl(next, F_GETFD) >= 0) {
		lfd("fd", next);
		add_fd(next, F_DMABUF);
	}
}

static void op_dmabuf_revoke(void)
{
	struct iommu_test_cmd c = {
		.op = IOMMU_TEST_OP_DMABUF_REVOKE,
		.dmabuf_revoke = { .dmabuf_fd = pick_fd(F_DMABUF), .revoked = PICK(0, 1, 1, 2) },
	};

	lfd("fd", c.dmabuf_revoke.dmabuf_fd);
	lg(" revoked=%u", c.dmabuf_revoke.revoked);
	test_cmd(&c);
}

static void op_test_bad(void)
{
	struct iommu_test_cmd c = { .op = PICK(0, 24, 25, 100, 0xffffffff), .id = pick_id(~0u) };

	lg(" op=%u id=%u", c.op, c.id);
	test_cmd(&c);
}

/* ---- event fds ---- */

static void op_fault_read(void)
{
	int fd = pick_fd(F_FAULT);
	size_t n = PICK(0, 8, 39, 40, 40, 80, 120, 400, 41);
	u8 *buf = (u8 *)R_DATA;
	long rc;

	memset(buf, 0, 512);
	lfd("fd", fd);
	lg(" count=%zu", n);
	rc = read(fd, pct(95) ? buf : (u8 *)R_HOLE, n);
	lrc(rc, errno);
	for (long o = 0; rc > 0 && o + 40 <= rc; o += 40) {
		struct iommu_hwpt_pgfault *f = (void *)(buf + o);

		lg(" [fl=%#x dev=%u pasid=%#x grp=%#x perm=%#x addr=%#llx len=%u cookie=%u]",
		   f->flags, f->dev_id, f->pasid, f->grpid, f->perm,
		   (unsigned long long)f->addr, f->length, f->cookie);
		if (ncookies < ARRAY_SIZE(cookies))
			cookies[ncookies++] = f->cookie;
	}
}

static void op_fault_write(void)
{
	int fd = pick_fd(F_FAULT);
	struct iommu_hwpt_page_response *r = (void *)R_DATA;
	size_t n = PICK(0, 4, 8, 8, 8, 16, 12, 24);
	long rc;

	for (u32 i = 0; i < 4; i++) {
		r[i].cookie = ncookies && pct(75) ? cookies[rn(ncookies)] :
			      PICK(0, 1, 2, 3, 0xffffffff);
		r[i].code = PICK(IOMMUFD_PAGE_RESP_SUCCESS, IOMMUFD_PAGE_RESP_INVALID, 2);
	}
	lfd("fd", fd);
	lg(" count=%zu resp=%u/%u,%u/%u", n, r[0].cookie, r[0].code, r[1].cookie, r[1].code);
	rc = write(fd, r, n);
	lrc(rc, errno);
}

static void op_veventq_read(void)
{
	int fd = pick_fd(F_VEVENTQ);
	size_t n = PICK(0, 4, 7, 8, 12, 12, 16, 24, 64, 256);
	u32 *w = (u32 *)R_DATA;
	long rc;

	memset(w, 0, 512);
	lfd("fd", fd);
	lg(" count=%zu", n);
	rc = read(fd, pct(95) ? (void *)w : (void *)R_HOLE, n);
	lrc(rc, errno);
	if (rc > 0) {
		lg(" [");
		for (long i = 0; i < rc / 4; i++)
			lg("%s%x", i ? " " : "", w[i]);
		lg("]");
	}
}

static void op_poll(void)
{
	struct pollfd p = { .fd = pct(50) ? pick_fd(F_FAULT) : pick_fd(F_VEVENTQ),
			    .events = POLLIN | POLLOUT };
	int rc;

	lfd("fd", p.fd);
	rc = poll(&p, 1, 0);
	lrc(rc, errno);
	lg(" revents=%#x", p.revents);
}

static void op_close_fd(void)
{
	struct fdent *f = live_fd(PICK(F_ACCESS, F_FAULT, F_VEVENTQ, F_DMABUF));

	if (!f) {
		lg(" none");
		return;
	}
	lfd("fd", f->fd);
	lg(" kind=%u", f->kind);
	lrc(close(f->fd), errno);
	f->open = 0;
}

/* ---- vIOMMU mmap ---- */

static sigjmp_buf fault_jmp;
static volatile int fault_sig;
static volatile bool fault_armed;

static void on_fault(int sig)
{
	if (!fault_armed) {
		signal(sig, SIG_DFL);
		raise(sig);
		return;
	}
	fault_sig = sig;
	fault_armed = false;
	siglongjmp(fault_jmp, 1);
}

/* The first word of a new mapping (the mock writes in_data there). */
static void lw0(void *p)
{
	fault_armed = true;
	if (sigsetjmp(fault_jmp, 1))
		lg(" -> ok w0=%s", sigabbrev_np(fault_sig));
	else
		lg(" -> ok w0=%#x", *(volatile u32 *)p);
	fault_armed = false;
}

static void op_mmap(void)
{
	struct obj *v = live_of(M(K_VIOMMU));
	u64 off = v ? v->off : 0, len = v && v->len ? v->len : 2 * PG;
	u32 slot = rn(MMAP_SLOTS);
	int prot = PICK(PROT_READ | PROT_WRITE, PROT_READ | PROT_WRITE, PROT_READ,
			PROT_READ | PROT_EXEC);
	int flags = pct(90) ? MAP_SHARED : MAP_PRIVATE;
	void *p;

	if (!v && pct(50)) {
		/* reuse the offset of a destroyed vIOMMU */
		for (u32 i = 0; i < nobjs; i++)
			if (objs[i].kind == K_VIOMMU && objs[i].len)
				off = objs[i].off, len = objs[i].len;
	}
	off = PICK(off, off, off, off + PG, off ? off - PG : 0, 0, off + len, 1UL << 40);
	len = PICK(len, len, len, PG, len + PG, len - 1, 0);
	if (mmaps[slot].live) {
		munmap((void *)mmaps[slot].addr, mmaps[slot].len);
		mmaps[slot].live = false;
	}
	lg(" viommu=%u off=%#llx len=%#llx prot=%#x %s", v ? v->id : 0,
	   (unsigned long long)off, (unsigned long long)len, prot,
	   flags == MAP_SHARED ? "shared" : "private");
	p = mmap((void *)(R_MMAP + slot * MMAP_SLOT), len, prot, flags | MAP_FIXED_NOREPLACE,
		 ifd, off);
	if (p == MAP_FAILED) {
		lg(" -> %s", ename(errno));
		return;
	}
	lw0(p);
	mmaps[slot] = (struct mmapent){ (u64)p, len, true };
}

static void op_munmap(void)
{
	u32 slot = rn(MMAP_SLOTS);

	lg(" slot=%u live=%u", slot, mmaps[slot].live);
	if (mmaps[slot].live)
		lrc(munmap((void *)mmaps[slot].addr, mmaps[slot].len), errno);
	mmaps[slot].live = false;
}

/* ---- VFIO type1 compatibility ---- */

static void op_vfio_simple(void)
{
	static const unsigned long ioc[] = { VFIO_GET_API_VERSION, VFIO_CHECK_EXTENSION,
					     VFIO_SET_IOMMU };
	u32 which = rn(3);
	unsigned long arg = which == 0 ? 0 :
			    PICK(VFIO_TYPE1_IOMMU, VFIO_TYPE1v2_IOMMU, VFIO_DMA_CC_IOMMU,
				 VFIO_TYPE1_IOMMU, VFIO_TYPE1v2_IOMMU, 0, 2, 5, 6, 7, 8,
				 VFIO_UNMAP_ALL, VFIO_UPDATE_VADDR, 11, 1UL << 32);

	lg(" %s arg=%#lx", (const char *[]){ "api_version", "check_ext", "set_iommu" }[which],
	   arg);
	lrc(ioctl(ifd, ioc[which], arg), errno);
}

static void op_vfio_map(void)
{
	struct vfio_iommu_type1_dma_map *c = (void *)R_DATA;

	*c = (struct vfio_iommu_type1_dma_map){
		.argsz = PICK(sizeof(*c), sizeof(*c), sizeof(*c), sizeof(*c) - 1,
			      sizeof(*c) + 8, 0),
		.flags = pick_flags(VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE),
		.vaddr = pick_va(),
		.iova = pick_iova(),
		.size = pct(70) ? (1 + rn(16)) * PICK(PG, 2048) : pick_len(),
	};
	if (pct(60))
		c->flags |= VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE;
	/*
	 * Upstream's compat MAP_DMA takes a map with neither READ nor WRITE
	 * and WARNs in the mock domain's map_range: never ask for one.
	 */
	if (!(c->flags & (VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE)))
		c->flags |= VFIO_DMA_MAP_FLAG_READ;
	lg(" argsz=%u flags=%#x va=%#llx iova=%#llx size=%#llx", c->argsz, c->flags,
	   (unsigned long long)c->vaddr, (unsigned long long)c->iova,
	   (unsigned long long)c->size);
	snap(c, 64);
	lrc(ioctl(ifd, VFIO_IOMMU_MAP_DMA, c), errno);
	ldiff("out", c, 64, NULL);
}

static void op_vfio_unmap(void)
{
	struct vfio_iommu_type1_dma_unmap *c = (void *)R_DATA;
	struct mapent *m = pick_map();

	*c = (struct vfio_iommu_type1_dma_unmap){
		.argsz = PICK(sizeof(*c), sizeof(*c), sizeof(*c), sizeof(*c) - 1,
			      sizeof(*c) + 8, 0),
		.flags = pct(80) ? 0 : pick_flags(VFIO_DMA_UNMAP_FLAG_ALL |
						  VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP),
		.iova = pick_iova(),
		.size = pick_len(),
	};
	if (m && pct(70)) {
		/* partial unmaps at page granularity */
		c->iova = m->iova + PG * rn(4);
		c->size = PICK(PG, 2 * PG, m->len, m->len - PG);
	}
	if (c->flags & VFIO_DMA_UNMAP_FLAG_ALL && pct(50))
		c->iova = c->size = 0;
	lg(" argsz=%u flags=%#x iova=%#llx size=%#llx", c->argsz, c->flags,
	   (unsigned long long)c->iova, (unsigned long long)c->size);
	snap(c, 64);
	lrc(ioctl(ifd, VFIO_IOMMU_UNMAP_DMA, c), errno);
	ldiff("out", c, 64, NULL);
}

static void op_vfio_info(void)
{
	struct vfio_iommu_type1_info *c = (void *)R_DATA;
	u32 argsz = PICK(0, 4, 8, 16, sizeof(*c), sizeof(*c) + 4, 32, 40, 48, 64, 256,
			 rn(256));

	memset(c, 0xaa, 512);
	c->argsz = argsz;
	c->flags = PICK(0, 0, 1, 2);
	lg(" argsz=%u flags=%u", argsz, c->flags);
	snap(c, 512);
	lrc(ioctl(ifd, VFIO_IOMMU_GET_INFO, c), errno);
	ldiff("out", c, 512, NULL);
}

/* ---- scenarios: chains the random mix reaches too rarely ---- */

/* A mock device on an IOAS with a mapping; returns the stdev or 0. */
static u32 scen_device(u32 *ioas, u32 *idev, u32 dev_flags)
{
	struct iommu_ioas_alloc a = { .size = sizeof(a) };
	struct iommu_test_cmd c = { .op = IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS };

	lg(" |ioas");
	if (CALL(IOMMU_IOAS_ALLOC, a, out_ioas_id, NULL))
		return 0;
	add_obj(a.out_ioas_id, K_IOAS, 0);
	*ioas = a.out_ioas_id;
	c.id = *ioas;
	c.mock_domain_flags.dev_flags = dev_flags;
	lg(" |mock flags=%#x", dev_flags);
	if (test_cmd(&c))
		return 0;
	add_obj(c.mock_domain.out_idev_id, K_IDEV, c.mock_domain.out_stdev_id);
	add_obj(c.mock_domain.out_stdev_id, K_STDEV, c.mock_domain.out_idev_id);
	add_obj(c.mock_domain.out_hwpt_id, K_HWPT, 0);
	*idev = c.mock_domain.out_idev_id;
	return c.mock_domain.out_stdev_id;
}

static void scen_map(u32 ioas, u64 iova, u64 len, u64 va, u32 flags)
{
	struct iommu_ioas_map m = {
		.flags = flags, .ioas_id = ioas, .user_va = va, .length = len, .iova = iova,
	};

	lg(" |map ioas=%u iova=%#llx len=%#llx va=%#llx fl=%#x", ioas,
	   (unsigned long long)iova, (unsigned long long)len, (unsigned long long)va, flags);
	if (!CALL(IOMMU_IOAS_MAP, m, iova, NULL))
		add_map(ioas, m.iova, len, va);
}

#define MAPRW (IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE)

static void scen_ranges(u32 ioas)
{
	struct iommu_iova_range *r = (void *)R_DATA;
	struct iommu_ioas_iova_ranges c = { .ioas_id = ioas, .num_iovas = 4,
					    .allowed_iovas = R_DATA };

	memset(r, 0, 4 * sizeof(*r));
	lg(" |ranges");
	if (!CALL(IOMMU_IOAS_IOVA_RANGES, c, out_iova_alignment, NULL))
		for (u32 i = 0; i < c.num_iovas && i < 4; i++)
			lg(" [%#llx,%#llx]", (unsigned long long)r[i].start,
			   (unsigned long long)r[i].last);
}

/* The ID the next object gets (then gone again). */
static void scen_next_id(void)
{
	struct iommu_ioas_alloc a = {};
	struct iommu_destroy d = {};

	lg(" |next_id");
	if (CALL(IOMMU_IOAS_ALLOC, a, out_ioas_id, NULL))
		return;
	d.id = a.out_ioas_id;
	CALL(IOMMU_DESTROY, d, id, NULL);
}

/* Reads an event fd: the bytes as words. */
static void scen_read(int fd, size_t n)
{
	u32 *w = (u32 *)R_DATA;
	long rc;

	memset(w, 0, n);
	lg(" |read %zu", n);
	rc = read(fd, w, n);
	lrc(rc, errno);
	for (long i = 0; i < rc / 4; i++)
		lg("%s%x", i ? " " : " [", w[i]);
	if (rc > 0)
		lg("]");
}

/* vIOMMU stack: nest parent, vIOMMU with data, vDEVICE, vEVENTQ, event. */
static void scen_viommu(void)
{
	struct iommu_viommu_selftest *d = (void *)R_DATA;
	u32 ioas, idev, stdev = scen_device(&ioas, &idev, PICK(0, MOCK_FLAGS_DEVICE_PASID));
	struct iommu_hwpt_alloc h = { .flags = IOMMU_HWPT_ALLOC_NEST_PARENT };
	struct iommu_viommu_alloc v = { .type = IOMMU_VIOMMU_TYPE_SELFTEST };
	struct iommu_vdevice_alloc vd = { .virt_id = PICK(0, 0, 1, 0x99) };
	struct iommu_veventq_alloc q = { .type = IOMMU_VEVENTQ_TYPE_SELFTEST,
					 .veventq_depth = PICK(1, 2, 4) };
	struct iommu_test_cmd t = { .op = IOMMU_TEST_OP_TRIGGER_VEVENT };

	if (!stdev)
		return;
	h.dev_id = idev;
	h.pt_id = ioas;
	lg(" |np");
	if (CALL(IOMMU_HWPT_ALLOC, h, __reserved2, NULL))
		return;
	add_obj(h.out_hwpt_id, K_HWPT_NP, 0);
	memset(d, 0, sizeof(*d));
	d->in_data = (u32)rnd();
	v.dev_id = idev;
	v.hwpt_id = h.out_hwpt_id;
	v.data_len = pct(70) ? sizeof(*d) : 0;
	v.data_uptr = R_DATA;
	lg(" |viommu len=%u", v.data_len);
	snap(d, sizeof(*d));
	if (CALL(IOMMU_VIOMMU_ALLOC, v, data_uptr, NULL))
		return;
	ldiff("data", d, sizeof(*d), NULL);
	add_obj(v.out_viommu_id, K_VIOMMU, 0);
	objs[nobjs - 1].off = v.data_len ? d->out_mmap_offset : 0;
	objs[nobjs - 1].len = v.data_len ? d->out_mmap_length : 0;
	if (pct(80)) {
		vd.viommu_id = v.out_viommu_id;
		vd.dev_id = idev;
		lg(" |vdev virt=%#llx", (unsigned long long)vd.virt_id);
		if (!CALL(IOMMU_VDEVICE_ALLOC, vd, virt_id, NULL))
			add_obj(vd.out_vdevice_id, K_VDEV, 0);
	}
	if (pct(80)) {
		q.viommu_id = v.out_viommu_id;
		lg(" |veventq depth=%u", q.veventq_depth);
		if (pct(35))	/* the minimum size, without __reserved */
			force_mode = 2;
		if (!CALL(IOMMU_VEVENTQ_ALLOC, q, __reserved, veventq_fdoff)) {
			add_obj(q.out_veventq_id, K_VEVENTQ, 0);
			add_fd(q.out_veventq_fd, F_VEVENTQ);
		}
	}
	for (u32 i = rn(4); i; i--) {
		t.trigger_vevent.dev_id = idev;
		lg(" |vevent");
		test_cmd(&t);
	}
	if (pct(50)) {
		/* a HW queue on the parent's IOAS */
		struct iommu_hw_queue_alloc hq = {
			.viommu_id = v.out_viommu_id, .type = IOMMU_HW_QUEUE_TYPE_SELFTEST,
			.index = PICK(0, 0, 1), .nesting_parent_iova = MOCK_APERTURE_START,
			.length = PICK(PG, 2 * PG),
		};

		scen_map(ioas, MOCK_APERTURE_START, 2 * PG, R_BUF + PG * rn(8), MAPRW);
		lg(" |hwq idx=%u len=%#llx", hq.index, (unsigned long long)hq.length);
		if (!CALL(IOMMU_HW_QUEUE_ALLOC, hq, length, NULL))
			add_obj(hq.out_hw_queue_id, K_HWQ, 0);
		scen_ranges(ioas);
		scen_next_id();
	}
	if (q.out_veventq_fd > 0)
		scen_read(q.out_veventq_fd, PICK(16, 64, 256));
}

/* Fault queue, IOPF-capable HWPT, attach, triggered faults. */
static void scen_fault(void)
{
	u32 ioas, idev, stdev = scen_device(&ioas, &idev, MOCK_FLAGS_DEVICE_PASID);
	struct iommu_fault_alloc f = {};
	struct iommu_hwpt_alloc h = { .flags = IOMMU_HWPT_FAULT_ID_VALID };
	struct iommu_test_cmd r = { .op = IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE };
	struct iommu_test_cmd t = { .op = IOMMU_TEST_OP_TRIGGER_IOPF };

	if (!stdev)
		return;
	lg(" |fault");
	if (CALL(IOMMU_FAULT_QUEUE_ALLOC, f, out_fault_fd, fault_fdoff))
		return;
	add_obj(f.out_fault_id, K_FAULT, 0);
	add_fd(f.out_fault_fd, F_FAULT);
	h.dev_id = idev;
	h.pt_id = ioas;
	h.fault_id = pct(70) ? f.out_fault_id : PICK(pick_id(~0u), max_id() + 1);
	if (pct(30))
		h.flags |= IOMMU_HWPT_ALLOC_PASID;
	if (pct(35))	/* an area the mock aperture cannot take */
		scen_map(ioas, PG, PG, R_BUF, MAPRW);
	lg(" |hwpt fl=%#x fault=%u", h.flags, h.fault_id);
	if (!CALL(IOMMU_HWPT_ALLOC, h, __reserved2, NULL)) {
		add_obj(h.out_hwpt_id, K_HWPT, 0);
		if (pct(85)) {
			r.id = stdev;
			r.mock_domain_replace.pt_id = h.out_hwpt_id;
			lg(" |replace");
			test_cmd(&r);
		}
	}
	for (u32 i = 1 + rn(4); i; i--) {
		t.trigger_iopf.dev_id = idev;
		t.trigger_iopf.pasid = PICK(0, 0, 1);
		t.trigger_iopf.grpid = rn(3);
		t.trigger_iopf.perm = PICK(1, 2, 3);
		t.trigger_iopf.addr = MOCK_APERTURE_START + PG * rn(4);
		lg(" |iopf g=%u", t.trigger_iopf.grpid);
		test_cmd(&t);
	}
	scen_read(f.out_fault_fd, PICK(40, 80, 160));
	for (u32 o = 0; o < 160 && ncookies < ARRAY_SIZE(cookies); o += 40)
		if (*(u32 *)(R_DATA + o + 4))	/* dev_id: a record */
			cookies[ncookies++] = *(u32 *)(R_DATA + o + 36);
}

/* mmap of a vIOMMU's pages: right and wrong, then after a destroy. */
static void scen_mmap(void)
{
	struct iommu_viommu_selftest *d = (void *)R_DATA;
	u32 ioas, idev, stdev = scen_device(&ioas, &idev, 0);
	struct iommu_hwpt_alloc h = { .flags = IOMMU_HWPT_ALLOC_NEST_PARENT };
	struct iommu_viommu_alloc v = { .type = IOMMU_VIOMMU_TYPE_SELFTEST,
					.data_len = sizeof(*d), .data_uptr = R_DATA };
	struct iommu_destroy x = {};
	u64 off[2] = {}, len[2] = {};
	u32 vid[2] = {};

	if (!stdev)
		return;
	h.dev_id = idev;
	h.pt_id = ioas;
	lg(" |np");
	if (CALL(IOMMU_HWPT_ALLOC, h, __reserved2, NULL))
		return;
	add_obj(h.out_hwpt_id, K_HWPT_NP, 0);
	v.dev_id = idev;
	v.hwpt_id = h.out_hwpt_id;
	for (u32 i = 0; i < 2; i++) {
		memset(d, 0, sizeof(*d));
		d->in_data = 0x1000 + i;
		lg(" |viommu");
		snap(d, sizeof(*d));
		if (CALL(IOMMU_VIOMMU_ALLOC, v, data_uptr, NULL))
			return;
		ldiff("data", d, sizeof(*d), NULL);
		add_obj(v.out_viommu_id, K_VIOMMU, 0);
		vid[i] = v.out_viommu_id;
		off[i] = objs[nobjs - 1].off = d->out_mmap_offset;
		len[i] = objs[nobjs - 1].len = d->out_mmap_length;
	}
	for (u32 i = 1 + rn(3); i; i--) {
		u32 which = rn(2);
		u64 o = PICK(off[which], off[which], off[which] + PG, off[which] + len[which],
			     off[which] ? off[which] - PG : 0);
		u64 l = PICK(len[which], len[which], PG, len[which] + PG);
		void *p = mmap((void *)R_MMAP, l, PROT_READ | PROT_WRITE,
			       MAP_SHARED | MAP_FIXED_NOREPLACE, ifd, o);

		lg(" |mmap v%u%s%s", which, o == off[which] ? "" : " off!",
		   l == len[which] ? "" : " len!");
		if (p == MAP_FAILED) {
			lg(" -> %s", ename(errno));
			continue;
		}
		lw0(p);
		if (pct(50)) {
			/* destroying a mapped vIOMMU */
			x.id = vid[which];
			lg(" |destroy v%u", which);
			CALL(IOMMU_DESTROY, x, id, NULL);
		}
		munmap(p, l);
	}
	x.id = vid[0];
	lg(" |destroy v0");
	if (!CALL(IOMMU_DESTROY, x, id, NULL))
		kill_obj(x.id);
	memset(d, 0, sizeof(*d));
	d->in_data = 0x2000;
	lg(" |viommu again");
	snap(d, sizeof(*d));
	if (!CALL(IOMMU_VIOMMU_ALLOC, v, data_uptr, NULL)) {
		ldiff("data", d, sizeof(*d), NULL);
		add_obj(v.out_viommu_id, K_VIOMMU, 0);
		objs[nobjs - 1].off = d->out_mmap_offset;
		objs[nobjs - 1].len = d->out_mmap_length;
	}
	/* the old offset and length */
	{
		void *p = mmap((void *)R_MMAP, len[0], PROT_READ | PROT_WRITE,
			       MAP_SHARED | MAP_FIXED_NOREPLACE, ifd, off[0]);

		lg(" |mmap old");
		if (p == MAP_FAILED) {
			lg(" -> %s", ename(errno));
		} else {
			lw0(p);
			munmap(p, len[0]);
		}
	}
}

/* Accesses on areas that exist only in the IOAS (no domain). */
static void scen_access(void)
{
	struct iommu_ioas_alloc a = {};
	struct iommu_test_cmd c = { .op = IOMMU_TEST_OP_CREATE_ACCESS,
				    .create_access.flags = pct(70) };
	u64 len = PICK(1UL << 40, 4 * MIB, 16 * PG);
	u64 va = pct(30) ? R_RO : R_BUF;
	int fd;

	lg(" |ioas");
	if (CALL(IOMMU_IOAS_ALLOC, a, out_ioas_id, NULL))
		return;
	add_obj(a.out_ioas_id, K_IOAS, 0);
	if (va == R_RO && len > R_RO_LEN)
		len = PICK(R_RO_LEN, 1UL << 40);
	scen_map(a.out_ioas_id, MOCK_APERTURE_START, len, va, MAPRW);
	c.id = a.out_ioas_id;
	lg(" |access fl=%u", c.create_access.flags);
	if (test_cmd(&c))
		return;
	fd = c.create_access.out_access_fd;
	add_fd(fd, F_ACCESS);
	for (u32 i = 1 + rn(3); i; i--) {
		struct iommu_test_cmd p = { .id = fd };

		if (pct(50)) {
			p.op = IOMMU_TEST_OP_ACCESS_PAGES;
			p.access_pages.flags = PICK(0, MOCK_FLAGS_ACCESS_WRITE);
			p.access_pages.iova = MOCK_APERTURE_START + PG * rn(4);
			p.access_pages.length = PICK(PG, 2 * PG);
			p.access_pages.uptr = va + (p.access_pages.iova - MOCK_APERTURE_START);
			lg(" |pages fl=%u iova=%#llx", p.access_pages.flags,
			   (unsigned long long)p.access_pages.iova);
			if (!test_cmd(&p))
				add_obj(p.access_pages.out_access_pages_id, K_ACCESS_PAGES, 0);
		} else {
			p.op = IOMMU_TEST_OP_ACCESS_RW;
			p.access_rw.flags = PICK(0, 0, MOCK_ACCESS_RW_SLOW_PATH,
						 MOCK_ACCESS_RW_WRITE);
			p.access_rw.iova = MOCK_APERTURE_START + 7 * rn(1000);
			p.access_rw.length = PICK(1, 8, PG, 2 * PG + 3);
			p.access_rw.uptr = R_DATA;
			memset((void *)R_DATA, 0x5a, 3 * PG);
			lg(" |rw fl=%u iova=%#llx len=%#llx", p.access_rw.flags,
			   (unsigned long long)p.access_rw.iova,
			   (unsigned long long)p.access_rw.length);
			if (!test_cmd(&p) && !(p.access_rw.flags & MOCK_ACCESS_RW_WRITE))
				lg(" data=%08x", fnv((u8 *)R_DATA, 3 * PG));
		}
	}
}

/* PASID attach of a PASID device to IOASes and HWPTs. */
static void scen_pasid(void)
{
	u32 ioas, idev, stdev = scen_device(&ioas, &idev, MOCK_FLAGS_DEVICE_PASID);
	struct iommu_ioas_alloc a = {};
	struct iommu_hwpt_alloc h = { .flags = IOMMU_HWPT_ALLOC_PASID };
	struct iommu_test_cmd c = { .id = stdev };
	u32 pt;

	if (!stdev)
		return;
	lg(" |ioas2");
	if (CALL(IOMMU_IOAS_ALLOC, a, out_ioas_id, NULL))
		return;
	add_obj(a.out_ioas_id, K_IOAS, 0);
	if (pct(50))	/* outside the mock aperture */
		scen_map(a.out_ioas_id, PICK(PG, 1UL << 32), PG, R_BUF, MAPRW);
	pt = a.out_ioas_id;
	if (pct(40)) {
		h.dev_id = idev;
		h.pt_id = a.out_ioas_id;
		lg(" |hwpt");
		if (!CALL(IOMMU_HWPT_ALLOC, h, __reserved2, NULL)) {
			add_obj(h.out_hwpt_id, K_HWPT, 0);
			pt = h.out_hwpt_id;
		}
	}
	c.op = IOMMU_TEST_OP_PASID_ATTACH;
	c.pasid_attach.pasid = PICK(1, 100, 1024);
	c.pasid_attach.pt_id = pt;
	lg(" |attach pasid=%u pt=%u", c.pasid_attach.pasid, pt);
	test_cmd(&c);
	c.op = PICK(IOMMU_TEST_OP_PASID_REPLACE, IOMMU_TEST_OP_PASID_CHECK_HWPT,
		    IOMMU_TEST_OP_PASID_DETACH);
	c.pasid_attach.pt_id = PICK(pt, ioas, max_id() + 1, 0x7fffffff, 0);
	lg(" |op=%u pt=%u", c.op, c.pasid_attach.pt_id);
	test_cmd(&c);
}

/* VFIO type1 container over the compat IOAS with a mock domain. */
static void scen_vfio(void)
{
	u32 ioas, idev, stdev = scen_device(&ioas, &idev, 0);
	struct iommu_vfio_ioas v = { .op = IOMMU_VFIO_IOAS_SET };
	u32 type = PICK(VFIO_TYPE1_IOMMU, VFIO_TYPE1v2_IOMMU);

	if (!stdev)
		return;
	v.ioas_id = ioas;
	lg(" |vfio_ioas");
	if (CALL(IOMMU_VFIO_IOAS, v, __reserved, NULL))
		return;
	lg(" |set_iommu %u", type);
	lrc(ioctl(ifd, VFIO_SET_IOMMU, type), errno);
	lg(" |cc");
	lrc(ioctl(ifd, VFIO_CHECK_EXTENSION, VFIO_DMA_CC_IOMMU), errno);
	for (u32 i = 1 + rn(3); i; i--) {
		lg(" |");
		if (pct(40))
			op_vfio_info();
		else if (pct(50))
			op_vfio_map();
		else
			op_vfio_unmap();
	}
}

/* ----------------------------------------------------------------- */

struct op {
	const char *name;
	void (*fn)(void);
	u32 weight;
	bool scenario;
};

static const struct op ops[] = {
	{ "ioas_alloc", op_ioas_alloc, 4 },
	{ "destroy", op_destroy, 4 },
	{ "ioas_map", op_ioas_map, 6 },
	{ "ioas_map_file", op_ioas_map_file, 2 },
	{ "ioas_copy", op_ioas_copy, 2 },
	{ "ioas_unmap", op_ioas_unmap, 4 },
	{ "iova_ranges", op_iova_ranges, 2 },
	{ "allow_iovas", op_allow_iovas, 2 },
	{ "option", op_option, 3 },
	{ "vfio_ioas", op_vfio_ioas, 2 },
	{ "hwpt_alloc", op_hwpt_alloc, 4 },
	{ "get_hw_info", op_get_hw_info, 2 },
	{ "set_dirty", op_set_dirty, 2 },
	{ "get_dirty", op_get_dirty, 2 },
	{ "invalidate", op_invalidate, 2 },
	{ "fault_alloc", op_fault_alloc, 2 },
	{ "viommu_alloc", op_viommu_alloc, 2 },
	{ "vdevice_alloc", op_vdevice_alloc, 2 },
	{ "veventq_alloc", op_veventq_alloc, 2 },
	{ "hw_queue_alloc", op_hw_queue_alloc, 2 },
	{ "change_process", op_change_process, 1 },
	{ "raw_ioctl", op_raw_ioctl, 3 },
	{ "mock_domain", op_mock_domain, 5 },
	{ "mock_replace", op_mock_replace, 2 },
	{ "add_reserved", op_add_reserved, 1 },
	{ "md_check_map", op_md_check_map, 1 },
	{ "md_check_refs", op_md_check_refs, 1 },
	{ "create_access", op_create_access, 2 },
	{ "access_pages", op_access_pages, 2 },
	{ "destroy_access_pages", op_destroy_access_pages, 1 },
	{ "access_rw", op_access_rw, 2 },
	{ "temp_limit", op_temp_limit, 1 },
	{ "access_replace", op_access_replace, 1 },
	{ "dirty", op_dirty, 1 },
	{ "check_iotlb", op_check_iotlb, 1 },
	{ "check_cache", op_check_cache, 1 },
	{ "trigger_iopf", op_trigger_iopf, 2 },
	{ "trigger_vevent", op_trigger_vevent, 2 },
	{ "pasid", op_pasid, 3 },
	{ "dmabuf_get", op_dmabuf_get, 1 },
	{ "dmabuf_revoke", op_dmabuf_revoke, 1 },
	{ "test_bad", op_test_bad, 1 },
	{ "fault_read", op_fault_read, 2 },
	{ "fault_write", op_fault_write, 2 },
	{ "veventq_read", op_veventq_read, 2 },
	{ "poll", op_poll, 1 },
	{ "close_fd", op_close_fd, 1 },
	{ "mmap", op_mmap, 2 },
	{ "munmap", op_munmap, 1 },
	{ "vfio", op_vfio_simple, 2 },
	{ "vfio_map", op_vfio_map, 2 },
	{ "vfio_unmap", op_vfio_unmap, 2 },
	{ "vfio_info", op_vfio_info, 2 },
	{ "scen_viommu", scen_viommu, 2, true },
	{ "scen_fault", scen_fault, 2, true },
	{ "scen_access", scen_access, 2, true },
	{ "scen_pasid", scen_pasid, 2, true },
	{ "scen_mmap", scen_mmap, 2, true },
	{ "scen_vfio", scen_vfio, 2, true },
};

#define NOPS ARRAY_SIZE(ops)

static u32 op_hits[NOPS];

/* The first NOPS steps of a seed run every op once, in a seeded order. */
static u32 choose_op(u32 seed, u32 step)
{
	static u32 perm[NOPS];
	u32 total = 0, r;

	if (step == 0) {
		for (u32 i = 0; i < NOPS; i++)
			perm[i] = i;
		seed_step(seed, 0xffffffff);
		for (u32 i = NOPS - 1; i > 0; i--) {
			u32 j = rn(i + 1), t = perm[i];

			perm[i] = perm[j];
			perm[j] = t;
		}
	}
	if (step < NOPS)
		return perm[step];
	seed_step(seed, step ^ 0x80000000);
	for (u32 i = 0; i < NOPS; i++)
		total += ops[i].weight;
	r = rn(total);
	for (u32 i = 0; i < NOPS; i++) {
		if (r < ops[i].weight)
			return i;
		r -= ops[i].weight;
	}
	return 0;
}

static void on_alarm(int sig)
{
	(void)sig;
}

static void fill_memory(void)
{
	for (u64 i = 0; i < R_BUF_LEN / 8; i++)
		((u64 *)R_BUF)[i] = i * 0x9e3779b97f4a7c15ULL;
	memset((void *)R_DATA, 0, R_DATA_LEN);
}

static int setup_memory(void)
{
	const int rw = PROT_READ | PROT_WRITE, fl = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE;

	if (mmap((void *)R_BUF, R_BUF_LEN, rw, fl, -1, 0) == MAP_FAILED ||
	    mmap((void *)R_RO, R_RO_LEN, rw, fl, -1, 0) == MAP_FAILED ||
	    (cmd_page = mmap((void *)R_CMD, 2 * PG, rw, fl, -1, 0)) == MAP_FAILED ||
	    mmap((void *)R_DATA, R_DATA_LEN, rw, fl, -1, 0) == MAP_FAILED)
		return -1;
	/*
	 * Transparent huge pages would depend on the memory state of the
	 * run, and change the mock domain's leaves (dirty bits per leaf).
	 */
	madvise((void *)R_BUF, R_BUF_LEN, MADV_NOHUGEPAGE);
	madvise((void *)R_DATA, R_DATA_LEN, MADV_NOHUGEPAGE);
	memset((void *)R_RO, 0x3c, R_RO_LEN);
	if (mprotect((void *)R_RO, R_RO_LEN, PROT_READ) ||
	    mprotect((void *)(R_CMD + PG), PG, PROT_NONE))
		return -1;
	memfd = memfd_create("iommufd_diff", 0);
	if (memfd < 0 || ftruncate(memfd, MEMFD_LEN))
		return -1;
	return 0;
}

static void run_seed(u32 seed, u32 steps)
{
	int base;

	nobjs = nfds = nmaps = ncookies = 0;
	fill_memory();
	ifd = open(getenv("IOMMUFD_DIFF_DEV") ?: "/dev/iommu", O_RDWR);
	if (ifd < 0) {
		printf("S%u open /dev/iommu: %s\n", seed, ename(errno));
		return;
	}
	base = ifd;
	for (u32 step = 0; step < steps; step++) {
		u32 op = choose_op(seed, step);

		seed_step(seed, step);
		llen = 0;
		lg("S%u.%u %s", seed, step, ops[op].name);
		exact_size = ops[op].scenario;
		alarm(5);
		ops[op].fn();
		alarm(0);
		op_hits[op]++;
		puts(line);
	}
	for (u32 i = 0; i < MMAP_SLOTS; i++) {
		if (mmaps[i].live)
			munmap((void *)mmaps[i].addr, mmaps[i].len);
		mmaps[i].live = false;
	}
	/*
	 * An IOAS may hold a mock dma-buf that holds this iommufd: unmap
	 * everything first, or closing leaks the context (and the module).
	 */
	for (u32 id = 1; id <= max_id(); id++) {
		struct iommu_ioas_unmap u = { .size = sizeof(u), .ioas_id = id,
					      .length = ~0ULL };

		ioctl(ifd, IOMMU_IOAS_UNMAP, &u);
	}
	for (u32 i = 0; i < nfds; i++)
		if (fds[i].open)
			close(fds[i].fd);
	close(ifd);
	/* Every fd of the seed is closed: the next one sees the same numbers. */
	printf("S%u.end lowest_free_fd=fd%+d\n", seed, lowest_free_fd() - base);
}

static void usage(void)
{
	fprintf(stderr, "usage: iommufd_diff [--seed N | --seeds A-B] [--steps M]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	u32 first = 1, last = 8, steps = 200;
	struct sigaction sa = { .sa_handler = on_alarm };

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--seed") && i + 1 < argc) {
			first = last = strtoul(argv[++i], NULL, 0);
		} else if (!strcmp(argv[i], "--seeds") && i + 1 < argc) {
			char *dash;

			first = strtoul(argv[++i], &dash, 0);
			last = *dash == '-' ? strtoul(dash + 1, NULL, 0) : first;
		} else if (!strcmp(argv[i], "--steps") && i + 1 < argc) {
			steps = strtoul(argv[++i], NULL, 0);
		} else {
			usage();
		}
	}
	if (!first || last < first)
		usage();
	/* A blocked read or write ends with EINTR (logged) instead of hanging. */
	sigaction(SIGALRM, &sa, NULL);
	/* A mapping that exists but cannot be read is logged, not fatal. */
	sa.sa_handler = on_fault;
	sigaction(SIGBUS, &sa, NULL);
	sigaction(SIGSEGV, &sa, NULL);
	/* Line by line: a kernel crash keeps every step before it. */
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (setup_memory()) {
		printf("setup: %s\n", ename(errno));
		return 1;
	}
	printf("# iommufd_diff seeds=%u-%u steps=%u ops=%zu\n", first, last, steps, NOPS);
	for (u32 seed = first; seed <= last; seed++)
		run_seed(seed, steps);
	printf("# coverage");
	for (u32 i = 0; i < NOPS; i++)
		printf(" %s=%u", ops[i].name, op_hits[i]);
	printf("\n# done seeds=%u-%u steps=%u\n", first, last, steps);
	return 0;
}

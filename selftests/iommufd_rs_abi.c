// SPDX-License-Identifier: GPL-2.0
/*
 * ABI and dispatcher tests for /dev/iommu.
 *
 * Every case that checks upstream behaviour passes against upstream
 * iommufd.ko as well; the VM harness runs this suite against both servers,
 * which keeps these expectations honest. Cases about iommufd-rs extensions
 * check that upstream answers ENOTTY instead.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <linux/iommufd.h>
#include <linux/iommufd_rs.h>

#include "kselftest_harness.h"

static int ioas_alloc(int fd, __u32 *id)
{
	struct iommu_ioas_alloc cmd = { .size = sizeof(cmd) };
	int rc = ioctl(fd, IOMMU_IOAS_ALLOC, &cmd);

	if (!rc)
		*id = cmd.out_ioas_id;
	return rc;
}

static int destroy(int fd, __u32 id)
{
	struct iommu_destroy cmd = { .size = sizeof(cmd), .id = id };

	return ioctl(fd, IOMMU_DESTROY, &cmd);
}

/* True if /dev/iommu is served by iommufd-rs. */
static bool served_by_rs(int fd)
{
	struct iommu_rs_info info = { .size = sizeof(info) };

	return ioctl(fd, IOMMU_RS_INFO, &info) == 0;
}

FIXTURE(abi)
{
	int fd;
	bool rs;
	long page;
};

FIXTURE_SETUP(abi)
{
	self->fd = open("/dev/iommu", O_RDWR);
	ASSERT_LE(0, self->fd);
	self->rs = served_by_rs(self->fd);
	self->page = sysconf(_SC_PAGESIZE);
}

FIXTURE_TEARDOWN(abi)
{
	close(self->fd);
}

TEST_F(abi, ids_start_at_one)
{
	__u32 id;

	for (__u32 want = 1; want <= 4; want++) {
		ASSERT_EQ(0, ioas_alloc(self->fd, &id));
		EXPECT_EQ(want, id);
	}
	/* The lowest free ID is reused, as xa_alloc does. */
	ASSERT_EQ(0, destroy(self->fd, 2));
	ASSERT_EQ(0, ioas_alloc(self->fd, &id));
	EXPECT_EQ(2, id);
}

TEST_F(abi, destroy_unknown_is_enoent)
{
	__u32 id;

	EXPECT_EQ(-1, destroy(self->fd, 0));
	EXPECT_EQ(ENOENT, errno);
	EXPECT_EQ(-1, destroy(self->fd, 12345));
	EXPECT_EQ(ENOENT, errno);
	ASSERT_EQ(0, ioas_alloc(self->fd, &id));
	ASSERT_EQ(0, destroy(self->fd, id));
	EXPECT_EQ(-1, destroy(self->fd, id));
	EXPECT_EQ(ENOENT, errno);
}

TEST_F(abi, objects_are_per_fd)
{
	int fd2 = open("/dev/iommu", O_RDWR);
	__u32 id, id2;

	ASSERT_LE(0, fd2);
	ASSERT_EQ(0, ioas_alloc(self->fd, &id));
	EXPECT_EQ(-1, destroy(fd2, id));
	EXPECT_EQ(ENOENT, errno);
	ASSERT_EQ(0, ioas_alloc(fd2, &id2));
	EXPECT_EQ(1, id2);
	close(fd2);
	/* Closing the other fd did not touch ours. */
	EXPECT_EQ(0, destroy(self->fd, id));
}

TEST_F(abi, short_size_is_einval)
{
	struct iommu_ioas_alloc cmd = {};
	struct iommu_destroy d = { .size = 7, .id = 1 };

	for (cmd.size = 0; cmd.size < sizeof(cmd); cmd.size++) {
		EXPECT_EQ(-1, ioctl(self->fd, IOMMU_IOAS_ALLOC, &cmd));
		EXPECT_EQ(EINVAL, errno);
	}
	EXPECT_EQ(-1, ioctl(self->fd, IOMMU_DESTROY, &d));
	EXPECT_EQ(EINVAL, errno);
}

TEST_F(abi, long_struct_needs_zero_tail)
{
	struct {
		struct iommu_ioas_alloc cmd;
		__u8 tail[52];
	} big = { .cmd = { .size = sizeof(big) } };

	ASSERT_EQ(0, ioctl(self->fd, IOMMU_IOAS_ALLOC, &big));
	EXPECT_EQ(1, big.cmd.out_ioas_id);
	big.tail[51] = 1;
	EXPECT_EQ(-1, ioctl(self->fd, IOMMU_IOAS_ALLOC, &big));
	EXPECT_EQ(E2BIG, errno);
	big.tail[51] = 0;
	big.tail[0] = 0x80;
	EXPECT_EQ(-1, ioctl(self->fd, IOMMU_IOAS_ALLOC, &big));
	EXPECT_EQ(E2BIG, errno);
}

TEST_F(abi, reply_is_cut_at_the_kernel_struct)
{
	struct {
		struct iommu_ioas_alloc cmd;
		__u32 canary;
	} buf = { .cmd = { .size = sizeof(buf.cmd) }, .canary = 0xa5a5a5a5 };

	ASSERT_EQ(0, ioctl(self->fd, IOMMU_IOAS_ALLOC, &buf));
	EXPECT_EQ(0xa5a5a5a5, buf.canary);
}

TEST_F(abi, unknown_flags_are_eopnotsupp)
{
	struct iommu_ioas_alloc cmd = { .size = sizeof(cmd), .flags = 1 };

	EXPECT_EQ(-1, ioctl(self->fd, IOMMU_IOAS_ALLOC, &cmd));
	EXPECT_EQ(EOPNOTSUPP, errno);
	cmd.flags = 1u << 31;
	EXPECT_EQ(-1, ioctl(self->fd, IOMMU_IOAS_ALLOC, &cmd));
	EXPECT_EQ(EOPNOTSUPP, errno);
}

TEST_F(abi, unknown_ioctls_are_enotty)
{
	__u8 buf[64] = { 64 };
	unsigned long cmds[] = {
		_IO(IOMMUFD_TYPE, 0x7f),
		_IO(IOMMUFD_TYPE, 0xbf),
		_IO(IOMMUFD_TYPE, 0xff),
		/* The right number with size bits is not the same ioctl. */
		_IOWR(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_ALLOC, struct iommu_ioas_alloc),
		_IO('x', 0x81),
	};

	for (unsigned int i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		EXPECT_EQ(-1, ioctl(self->fd, cmds[i], buf));
		EXPECT_EQ(ENOTTY, errno);
	}
}

TEST_F(abi, bad_pointers_are_efault)
{
	__u8 *map = mmap(NULL, 2 * self->page, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct iommu_ioas_alloc *cmd;

	ASSERT_NE(MAP_FAILED, map);
	EXPECT_EQ(-1, ioctl(self->fd, IOMMU_IOAS_ALLOC, NULL));
	EXPECT_EQ(EFAULT, errno);

	/* A declared size that runs into an unmapped page. */
	ASSERT_EQ(0, munmap(map + self->page, self->page));
	cmd = (void *)(map + self->page - sizeof(*cmd));
	*cmd = (struct iommu_ioas_alloc){ .size = 64 };
	EXPECT_EQ(-1, ioctl(self->fd, IOMMU_IOAS_ALLOC, cmd));
	EXPECT_EQ(EFAULT, errno);
	munmap(map, self->page);
}

TEST_F(abi, failed_reply_aborts_the_object)
{
	struct iommu_ioas_alloc *cmd = mmap(NULL, self->page, PROT_READ | PROT_WRITE,
					    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	__u32 id;

	ASSERT_NE(MAP_FAILED, cmd);
	cmd->size = sizeof(*cmd);
	ASSERT_EQ(0, mprotect(cmd, self->page, PROT_READ));
	EXPECT_EQ(-1, ioctl(self->fd, IOMMU_IOAS_ALLOC, cmd));
	EXPECT_EQ(EFAULT, errno);
	/* The reserved ID was never published and is free again. */
	EXPECT_EQ(-1, destroy(self->fd, 1));
	EXPECT_EQ(ENOENT, errno);
	ASSERT_EQ(0, ioas_alloc(self->fd, &id));
	EXPECT_EQ(1, id);
	munmap(cmd, self->page);
}

TEST_F(abi, destroy_tail_is_checked)
{
	struct {
		struct iommu_destroy cmd;
		__u64 tail;
	} big = { .cmd = { .size = sizeof(big), .id = 1 }, .tail = 1 };
	__u32 id;

	ASSERT_EQ(0, ioas_alloc(self->fd, &id));
	EXPECT_EQ(-1, ioctl(self->fd, IOMMU_DESTROY, &big));
	EXPECT_EQ(E2BIG, errno);
	big.tail = 0;
	EXPECT_EQ(0, ioctl(self->fd, IOMMU_DESTROY, &big));
}

TEST_F(abi, many_objects_and_close_frees_them)
{
	__u32 id = 0;

	/* The fixture's close must drop all of these. */
	for (int i = 0; i < 1000; i++)
		ASSERT_EQ(0, ioas_alloc(self->fd, &id));
	EXPECT_EQ(1000, id);
}

TEST_F(abi, rs_info)
{
	struct iommu_rs_info info = { .size = sizeof(info) };
	int rc = ioctl(self->fd, IOMMU_RS_INFO, &info);

	if (!self->rs) {
		/* Our extension number must be unused upstream. */
		EXPECT_EQ(-1, rc);
		EXPECT_EQ(ENOTTY, errno);
		return;
	}
	ASSERT_EQ(0, rc);
	EXPECT_EQ(IOMMU_RS_INFO_ABI_VERSION, info.out_abi_version);
	EXPECT_EQ(1, info.out_upstream_cmds >> (IOMMUFD_CMD_DESTROY - 0x80) & 1);
	EXPECT_EQ(1, info.out_upstream_cmds >> (IOMMUFD_CMD_IOAS_ALLOC - 0x80) & 1);
	EXPECT_EQ(1, info.out_rs_cmds & 1);

	info.__reserved = 1;
	EXPECT_EQ(-1, ioctl(self->fd, IOMMU_RS_INFO, &info));
	EXPECT_EQ(EOPNOTSUPP, errno);
	info = (struct iommu_rs_info){ .size = 24 };
	EXPECT_EQ(-1, ioctl(self->fd, IOMMU_RS_INFO, &info));
	EXPECT_EQ(EINVAL, errno);
}

TEST_HARNESS_MAIN

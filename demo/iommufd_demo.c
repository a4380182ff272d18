// SPDX-License-Identifier: GPL-2.0
/*
 * iommufd_demo: a small /dev/iommu client that shows what the running
 * server does today, as a readable report. `iommufd_demo --probe` prints only
 * the name of the module serving /dev/iommu (used by the VM harness).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <linux/iommufd.h>
#include <linux/iommufd_rs.h>

static const char *const upstream_cmds[] = {
	"DESTROY", "IOAS_ALLOC", "IOAS_ALLOW_IOVAS", "IOAS_COPY",
	"IOAS_IOVA_RANGES", "IOAS_MAP", "IOAS_UNMAP", "OPTION", "VFIO_IOAS",
	"HWPT_ALLOC", "GET_HW_INFO", "HWPT_SET_DIRTY_TRACKING",
	"HWPT_GET_DIRTY_BITMAP", "HWPT_INVALIDATE", "FAULT_QUEUE_ALLOC",
	"IOAS_MAP_FILE", "VIOMMU_ALLOC", "VDEVICE_ALLOC", "IOAS_CHANGE_PROCESS",
	"VEVENTQ_ALLOC", "HW_QUEUE_ALLOC", "IOAS_NOIOMMU_GET_PA",
};

static int checks, good;

/* Reports one step: `rc`/`err` is what happened, `want` the errno expected. */
static void step(const char *what, int rc, int err, int want)
{
	int ok = want ? (rc == -1 && err == want) : rc == 0;

	checks++;
	good += ok;
	printf("  [%s] %-44s -> %s%s\n", ok ? " ok " : "FAIL", what,
	       rc ? strerror(err) : "success",
	       want && ok ? " (as expected)" : "");
}

int main(int argc, char **argv)
{
	struct iommu_rs_info info = { .size = sizeof(info) };
	struct iommu_ioas_alloc alloc = { .size = sizeof(alloc) };
	struct iommu_destroy destroy = { .size = sizeof(destroy) };
	struct {
		struct iommu_ioas_alloc cmd;
		__u32 future_field;
	} longer = { .cmd = { .size = sizeof(longer) }, .future_field = 7 };
	__u32 ids[3];
	int fd, rc, i;

	fd = open("/dev/iommu", O_RDWR);
	if (argc > 1 && !strcmp(argv[1], "--probe")) {
		if (fd < 0)
			puts("none");
		else
			puts(ioctl(fd, IOMMU_RS_INFO, &info) ? "iommufd" : "iommufd_rs");
		return 0;
	}

	printf("iommufd-rs demo: a /dev/iommu client\n\n");
	if (fd < 0) {
		printf("  cannot open /dev/iommu: %s\n", strerror(errno));
		return 1;
	}
	if (ioctl(fd, IOMMU_RS_INFO, &info)) {
		printf("/dev/iommu is served by upstream iommufd (IOMMU_RS_INFO: %s)\n\n",
		       strerror(errno));
	} else {
		printf("/dev/iommu is served by iommufd_rs, extension ABI %u\n",
		       info.out_abi_version);
		printf("  upstream ioctls served:");
		for (i = 0; i < (int)(sizeof(upstream_cmds) / sizeof(upstream_cmds[0])); i++)
			if (info.out_upstream_cmds >> i & 1)
				printf(" %s", upstream_cmds[i]);
		printf("\n  extension ioctls served:%s\n\n",
		       info.out_rs_cmds & 1 ? " RS_INFO" : "");
	}

	printf("IO address spaces\n");
	for (i = 0; i < 3; i++) {
		char what[64];

		rc = ioctl(fd, IOMMU_IOAS_ALLOC, &alloc);
		ids[i] = alloc.out_ioas_id;
		snprintf(what, sizeof(what), "IOMMU_IOAS_ALLOC (got ID %u)", ids[i]);
		step(what, rc, errno, 0);
	}
	destroy.id = ids[1];
	rc = ioctl(fd, IOMMU_DESTROY, &destroy);
	step("IOMMU_DESTROY of the second IOAS", rc, errno, 0);
	rc = ioctl(fd, IOMMU_DESTROY, &destroy);
	step("IOMMU_DESTROY of it again", rc, errno, ENOENT);
	rc = ioctl(fd, IOMMU_IOAS_ALLOC, &alloc);
	step("IOMMU_IOAS_ALLOC reuses the freed ID", rc || alloc.out_ioas_id != ids[1] ? -1 : 0,
	     rc ? errno : EINVAL, 0);

	printf("\nABI discipline (size-first structs)\n");
	alloc.flags = 1;
	rc = ioctl(fd, IOMMU_IOAS_ALLOC, &alloc);
	step("unknown flag", rc, errno, EOPNOTSUPP);
	alloc.flags = 0;
	alloc.size = 8;
	rc = ioctl(fd, IOMMU_IOAS_ALLOC, &alloc);
	step("size below the minimum", rc, errno, EINVAL);
	rc = ioctl(fd, IOMMU_IOAS_ALLOC, &longer);
	step("newer, longer struct with a non-zero field", rc, errno, E2BIG);
	longer.future_field = 0;
	rc = ioctl(fd, IOMMU_IOAS_ALLOC, &longer);
	step("newer, longer struct with zero tail", rc, errno, 0);
	rc = ioctl(fd, _IO(IOMMUFD_TYPE, 0x7f), &alloc);
	step("unknown ioctl number", rc, errno, ENOTTY);
	rc = ioctl(fd, IOMMU_IOAS_ALLOC, (void *)8);
	step("bad pointer", rc, errno, EFAULT);

	close(fd);
	printf("\n%d of %d steps behaved as expected\n", good, checks);
	return good == checks ? 0 : 1;
}

/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * iommufd-rs extensions to the /dev/iommu uAPI.
 *
 * Same conventions as <linux/iommufd.h>: size-first structs, ioctls made
 * with _IO(IOMMUFD_TYPE, nr), unknown flags or non-zero reserved fields
 * rejected with EOPNOTSUPP, non-zero trailing bytes with E2BIG. Extension
 * command numbers start at 0xc0, far above upstream's (0x80.., test 0xa0),
 * so a kernel that serves only upstream iommufd answers ENOTTY.
 */
#ifndef _UAPI_IOMMUFD_RS_H
#define _UAPI_IOMMUFD_RS_H

#include <linux/ioctl.h>
#include <linux/types.h>
#include <linux/iommufd.h>

enum {
	IOMMUFD_RS_CMD_BASE = 0xc0,
	IOMMUFD_RS_CMD_INFO = IOMMUFD_RS_CMD_BASE,
};

#define IOMMU_RS_INFO_ABI_VERSION 1

/**
 * struct iommu_rs_info - ioctl(IOMMU_RS_INFO)
 * @size: sizeof(struct iommu_rs_info)
 * @flags: Must be 0
 * @out_abi_version: IOMMU_RS_INFO_ABI_VERSION of the running module
 * @__reserved: Must be 0
 * @out_upstream_cmds: bit n set if upstream command 0x80 + n is served
 * @out_rs_cmds: bit n set if extension command 0xc0 + n is served
 *
 * Tells whether /dev/iommu is served by iommufd-rs (upstream iommufd answers
 * ENOTTY) and which commands the running module implements.
 */
struct iommu_rs_info {
	__u32 size;
	__u32 flags;
	__u32 out_abi_version;
	__u32 __reserved;
	__aligned_u64 out_upstream_cmds;
	__aligned_u64 out_rs_cmds;
};
#define IOMMU_RS_INFO _IO(IOMMUFD_TYPE, IOMMUFD_RS_CMD_INFO)

#endif

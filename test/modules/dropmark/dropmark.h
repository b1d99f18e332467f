/* Maps of the dropmark test module. */
#pragma once

#include <linux/types.h>

struct dm_config {
	__u8 tos; /* drop IPv4 packets with this ToS byte; 0 drops nothing */
	__u8 pad[3];
};

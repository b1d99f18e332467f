/* Maps of the packetcounter data plane. Mirrored in Go by pcKey and pcValue
 * (main.go); TestStructsMatchC checks the layouts against this file's BTF. */
#pragma once

#include <linux/types.h>

struct pc_key {
	__u32 ifindex;
	__u32 hook; /* 0 = TC ingress, 1 = TC egress (module.Hook) */
};

struct pc_value {
	__u64 packets;
	__u64 bytes;
};

/*
 * statsfile.h - the statistics a managed process publishes for `uswap stat`.
 *
 * The LD_PRELOAD shim creates /dev/shm/uswap.<pid> (directory overridable
 * with USWAP_STATS_DIR), maps it shared, and refreshes it a few times a
 * second; it unlinks it when the process exits.  Readers map it read-only
 * and copy it under the seqlock: read seq (even), copy, read seq again;
 * retry if it changed or is odd.  A file whose pid is gone is stale and may
 * be removed by any reader.
 *
 * The layout is versioned: readers check magic, version and size, and
 * refuse what they do not know rather than print garbage.
 */
#ifndef USWAP_STATSFILE_H
#define USWAP_STATSFILE_H

#include <stdint.h>

#include "uswap.h"

#define USWAP_STATSFILE_MAGIC "USWAPST1"	/* 8 bytes, no NUL */
#define USWAP_STATSFILE_VERSION 2u	/* 2: uswap_stats gained the swap-in design counters */
#define USWAP_STATSFILE_DIR "/dev/shm"
#define USWAP_STATSFILE_PREFIX "uswap."

struct uswap_statsfile {
	char magic[8];			/* USWAP_STATSFILE_MAGIC */
	uint32_t version;		/* USWAP_STATSFILE_VERSION */
	uint32_t size;			/* sizeof(struct uswap_statsfile) */
	int32_t pid;			/* the managed process */
	uint32_t flags;			/* reserved, 0 */
	uint64_t seq;			/* seqlock: odd while the writer updates
					 * (accessed with __atomic builtins) */
	uint64_t start_ns;		/* CLOCK_REALTIME when management began */
	uint64_t update_ns;		/* CLOCK_REALTIME of this snapshot */
	uint64_t min_region;		/* shim threshold, bytes */
	char cmdline[256];		/* argv joined by spaces, truncated */
	struct uswap_stats stats;	/* the engine's uswap_stats() */
};

#endif /* USWAP_STATSFILE_H */

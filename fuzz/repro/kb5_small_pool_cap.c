/*
 * KB5 (minor): a pool cap below the backend's own overhead.
 *
 * pool_create(cap) accepts a cap smaller than the pool's own struct (36
 * KiB, page-rounded, counted in pool_bytes()), so a new pool is already
 * over its cap: pool_bytes() 36864 > 4096 and pool_check() fails "over
 * the cap" (the invariant "cap != 0 => reserved + meta + struct + charged
 * <= cap" of pool.c is false from the start).  Through the public API:
 * USWAP_POOL_CAP=16K (anything below 44 KiB) passes uswap_config_init()
 * and uswap_config_check(), then uswap_open() fails with EINVAL and no
 * message at all (uswap_zbackend_create() refuses the cap when it charges
 * its own metadata), where DESIGN.md section 11 promises a message naming
 * the variable.  The smallest cap uswap_open() accepts is 45056 bytes.
 *
 * Build and run (from the repository root; part 2 needs userfaultfd):
 *   clang -std=gnu11 -D_GNU_SOURCE -DUSWAP_TESTING -Iinclude -Isrc \
 *       fuzz/repro/kb5_small_pool_cap.c src/[a-z]*.c -o /tmp/kb5 -llz4 -lzstd -lpthread && /tmp/kb5
 * Expected with the bug: pool_check -117, config accepted, uswap_open EINVAL.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "uswap.h"
#include "pool.h"

int pool_check(struct uswap_pool *p);	/* test-only, pool.c */

int main(void)
{
	struct uswap_pool *p = pool_create(4096);
	struct uswap_config c;
	char err[256] = "";
	int r, bad;

	printf("pool_create(cap 4096): pool_bytes %llu, pool_check %d\n",
	       (unsigned long long)pool_bytes(p), pool_check(p));
	bad = pool_bytes(p) > 4096;
	pool_destroy(p);
	setenv("USWAP_POOL_CAP", "16K", 1);
	r = uswap_config_init(&c, err, sizeof(err));
	printf("USWAP_POOL_CAP=16K: uswap_config_init %d %s\n", r, err);
	c.limit = 1 << 20;
	struct uswap *us = uswap_open(&c);
	printf("uswap_open: %s\n", us ? "ok" : strerror(errno));
	if (us)
		uswap_close(us);
	return bad || (!r && !us);
}

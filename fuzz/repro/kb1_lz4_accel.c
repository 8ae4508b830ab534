/*
 * KB1: USWAP_LZ4_ACCEL is documented and checked as 1..65537, but for most
 * values from 58 up uswap_open() fails with ENOMEM (and the compressed
 * backend's ctx_create() with ENOMEM).
 *
 * codec_create() warms the codec up by compressing a fixed page into a
 * USWAP_PAGE_SIZE (4096-byte) buffer and treats any failure as -ENOMEM
 * (codec_warm_up() in src/compress.c).  At high accelerations LZ4 skips
 * most matches, the output of that page no longer fits in 4096 bytes
 * (LZ4_compressBound(4096) is 4112), lz4_compress() returns -E2BIG, and
 * the warm-up reports it as out of memory.  Of 1..65537, 65415 values fail,
 * the first at 58 (57 works, 58 fails, 100 works, 1000 fails, 65537 fails).
 *
 * Build and run (from the repository root; part 2 needs userfaultfd):
 *   clang -std=gnu11 -D_GNU_SOURCE -DUSWAP_TESTING -Iinclude -Isrc \
 *       fuzz/repro/kb1_lz4_accel.c src/[a-z]*.c -o /tmp/kb1 -llz4 -lzstd -lpthread && /tmp/kb1
 * Expected with the bug: "codec_create(lz4, 58): Cannot allocate memory",
 * and uswap_open fails with ENOMEM for USWAP_LZ4_ACCEL=65537; exit 1.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "uswap.h"
#include "backend.h"
#include "compress.h"

int main(void)
{
	static const int accels[] = { 57, 58, 100, 1000, 65537 };
	struct uswap_config c;
	char err[256];
	int bad = 0;

	for (unsigned i = 0; i < sizeof(accels) / sizeof(accels[0]); i++) {
		struct uswap_codec *k = codec_create(USWAP_COMP_LZ4, accels[i]);

		printf("codec_create(lz4, %d): %s\n", accels[i], k ? "ok" : strerror(errno));
		bad |= !k;
		codec_destroy(k);
	}
	setenv("USWAP_LZ4_ACCEL", "65537", 1);
	if (uswap_config_init(&c, err, sizeof(err))) {
		printf("config refused: %s\n", err);
		return 1;
	}
	c.limit = 1 << 20;
	printf("config accepted lz4_accel=%d\n", c.lz4_accel);
	struct uswap *us = uswap_open(&c);
	printf("uswap_open: %s\n", us ? "ok" : strerror(errno));
	if (us)
		uswap_close(us);
	return bad || !us;
}

/*
 * KB3: parse_size() accepts a negative size after leading blanks and wraps
 * it: " -1" is 18446744073709551615 bytes.  It rejects "-1" (first char
 * '-') but strtoull() skips blanks and then takes a '-' sign, negating the
 * value without an error.  So USWAP_LIMIT=" -4096" gives a limit of
 * 2^64 - 4096 bytes (no limit at all) and USWAP_POOL_CAP=" -1" a cap of
 * 2^64 - 1, both silently.  (A suffix turns it into an error, by the
 * overflow check: " -1K" is refused.)
 *
 * KB4: USWAP_WAIT="block,spin" is accepted, silently meaning "block".
 * env_word() checks strstr(",block,spin,", ",<value>,"), which a value made
 * of several accepted words joined by commas also satisfies; the value is
 * then copied, and strcmp(wait, "spin") != 0 picks block.  (The same hole
 * lets USWAP_COMPRESSOR="lz4,zstd" through env_word(), but
 * uswap_config_check() refuses that one.)
 *
 * Build and run (from the repository root):
 *   clang -std=gnu11 -D_GNU_SOURCE -Iinclude -Isrc fuzz/repro/kb3_kb4_config.c \
 *       src/options.c -o /tmp/kb34 && /tmp/kb34
 * Expected with the bugs: the four settings below are accepted; exit 1.
 */
#include <stdio.h>
#include <stdlib.h>

#include "uswap.h"
#include "internal.h"

static int accepted(const char *var, const char *val)
{
	struct uswap_config c;
	char err[256] = "";
	int r;

	setenv(var, val, 1);
	r = uswap_config_init(&c, err, sizeof(err));
	unsetenv(var);
	printf("%s=\"%s\": %s (limit %zu, pool_cap %zu, wait_mode %d)\n", var, val,
	       r ? err : "accepted", c.limit, c.pool_cap, (int)c.wait_mode);
	return r == 0;
}

int main(void)
{
	size_t v = 0;
	int bad = 0;

	bad |= parse_size(" -1", &v) == 0;
	printf("parse_size(\" -1\"): %zu\n", v);
	bad |= accepted("USWAP_LIMIT", " -4096");
	bad |= accepted("USWAP_POOL_CAP", " -1");
	bad |= accepted("USWAP_WAIT", "block,spin");
	accepted("USWAP_COMPRESSOR", "lz4,zstd");	/* refused by the check */
	return bad;
}

/*
 * test_options.c - configuration: defaults, every USWAP_* variable, and a
 * clear error naming the variable and the accepted values for bad input.
 */
#include "util.h"

static void expect_error(const char *var, const char *val, const char *needle)
{
	struct uswap_config c;
	char err[256] = "";

	setenv(var, val, 1);
	T_EQ(uswap_config_init(&c, err, sizeof(err)), -EINVAL);
	if (!strstr(err, var) || !strstr(err, needle))
		T_FAIL("%s=%s: message '%s' should name %s and say '%s'", var, val, err, var, needle);
	printf("%s=%s -> %s\n", var, val, err);
	/* uswap_open(NULL) reads the same environment and refuses. */
	errno = 0;
	T_ASSERT(uswap_open(NULL) == NULL);
	T_EQ(errno, EINVAL);
	unsetenv(var);
}

static void test_defaults(void)
{
	struct uswap_config c;
	char err[256];

	T_EQ(uswap_config_init(&c, err, sizeof(err)), 0);
	T_EQ(c.limit, 256u << 20);
	T_ASSERT(!strcmp(c.backend, "zram"));
	T_ASSERT(!strcmp(c.compressor, "lz4"));
	T_EQ(c.threads, 1);
	T_EQ(c.pool_cap, 0);
	T_EQ(c.wait_mode, USWAP_WAIT_SPIN);
	T_EQ(c.swapin, USWAP_SWAPIN_MARKER);
}

static void test_env(void)
{
	struct uswap_config c;
	char err[256];

	setenv("USWAP_LIMIT", "64M", 1);
	setenv("USWAP_POOL_CAP", "1G", 1);
	setenv("USWAP_COMPRESSOR", "zstd", 1);
	setenv("USWAP_THREADS", "3", 1);
	setenv("USWAP_READAHEAD", "0", 1);
	setenv("USWAP_WAIT", "block", 1);
	setenv("USWAP_LIMIT", "65536k", 1);
	setenv("USWAP_SWAPIN", "cache", 1);
	T_EQ(uswap_config_init(&c, err, sizeof(err)), 0);
	T_EQ(c.swapin, USWAP_SWAPIN_CACHE);
	setenv("USWAP_SWAPIN", "pin", 1);
	T_EQ(uswap_config_init(&c, err, sizeof(err)), 0);
	T_EQ(c.swapin, USWAP_SWAPIN_PIN);
	unsetenv("USWAP_SWAPIN");
	T_EQ(c.limit, 64u << 20);
	T_EQ(c.pool_cap, 1u << 30);
	T_ASSERT(!strcmp(c.compressor, "zstd"));
	T_EQ(c.threads, 3);
	T_EQ(c.readahead_max, 0);
	T_EQ(c.wait_mode, USWAP_WAIT_BLOCK);
	unsetenv("USWAP_LIMIT");
	unsetenv("USWAP_POOL_CAP");
	unsetenv("USWAP_COMPRESSOR");
	unsetenv("USWAP_THREADS");
	unsetenv("USWAP_READAHEAD");
	unsetenv("USWAP_WAIT");
}

static void test_errors(void)
{
	expect_error("USWAP_LIMIT", "lots", "K, M, G");
	expect_error("USWAP_LIMIT", "-5M", "K, M, G");
	expect_error("USWAP_LIMIT", "12Q", "K, M, G");
	expect_error("USWAP_LIMIT", "4K", "minimum");
	expect_error("USWAP_BACKEND", "tape", "zram");
	expect_error("USWAP_COMPRESSOR", "gzip", "lz4, zstd");
	expect_error("USWAP_THREADS", "0", "1..64");
	expect_error("USWAP_THREADS", "many", "1..64");
	expect_error("USWAP_READAHEAD", "1000", "0..256");
	expect_error("USWAP_WAIT", "nap", "block, spin");
	expect_error("USWAP_SWAPIN", "swapcache", "marker, pin, cache");
	expect_error("USWAP_SWAPIN", "pin,cache", "marker, pin, cache");
	expect_error("USWAP_LZ4_ACCEL", "0", "1..65537");
}

static void test_check(void)
{
	struct uswap_config c;
	char err[256];

	T_EQ(uswap_config_init(&c, err, sizeof(err)), 0);
	c.threads = 0;
	T_EQ(uswap_config_check(&c, err, sizeof(err)), -EINVAL);
	T_ASSERT(strstr(err, "USWAP_THREADS"));
	errno = 0;
	T_ASSERT(uswap_open(&c) == NULL && errno == EINVAL);
	c.threads = 1;
	c.low_wmark_pct = 99;
	c.high_wmark_pct = 90;
	T_EQ(uswap_config_check(&c, err, sizeof(err)), -EINVAL);
	T_ASSERT(strstr(err, "WMARK"));
	c.low_wmark_pct = 94;
	c.high_wmark_pct = 98;
	c.swapin = (enum uswap_swapin)7;
	T_EQ(uswap_config_check(&c, err, sizeof(err)), -EINVAL);
	T_ASSERT(strstr(err, "USWAP_SWAPIN"));
}

int main(void)
{
	T_RUN(test_defaults);
	T_RUN(test_env);
	T_RUN(test_errors);
	T_RUN(test_check);
	return 0;
}

/*
 * options.c - the configuration: one table of USWAP_* variables, each with
 * its parser; a bad value is an error that names the variable and what it
 * accepts (never silently ignored: a pager with a wrong limit is worse
 * than none).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "internal.h"

/* "256M", "1G", "4096", "64k": bytes.  0 on success, -EINVAL otherwise. */
int parse_size(const char *s, size_t *out)
{
	char *end;
	unsigned long long v;
	unsigned shift = 0;

	/* strtoull() skips blanks and negates a '-': refuse both up front. */
	if (!s || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -EINVAL;
	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	case 't': case 'T': shift = 40; end++; break;
	}
	if (*end == 'i' || *end == 'B' || *end == 'b')	/* tolerate "MiB", "MB" */
		end += (*end == 'i' && end[1] == 'B') ? 2 : 1;
	if (*end || (shift && v > (~0ull >> shift)))
		return -EINVAL;
	*out = (size_t)(v << shift);
	return 0;
}

static int parse_uint(const char *s, long lo, long hi, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi)
		return -EINVAL;
	*out = v;
	return 0;
}

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

#define MIN_LIMIT (16 * (size_t)USWAP_PAGE_SIZE)
/* The pool's own metadata and slot table take about 44 KiB before the
 * first object: a cap below 1 MiB would refuse every store. */
#define MIN_POOL_CAP ((size_t)1 << 20)

int uswap_config_check(const struct uswap_config *c, char *err, size_t errlen)
{
	if (c->limit < MIN_LIMIT)
		return fail(err, errlen, "USWAP_LIMIT: %zu bytes is below the minimum of 64K", c->limit);
	if (c->pool_cap && c->pool_cap < MIN_POOL_CAP)
		return fail(err, errlen, "USWAP_POOL_CAP: %zu bytes is below the minimum of 1M (or 0 for no cap)", c->pool_cap);
	if (strcmp(c->backend, "zram"))
		return fail(err, errlen, "USWAP_BACKEND: unknown backend '%s' (accepted: zram)", c->backend);
	if (strcmp(c->compressor, "lz4") && strcmp(c->compressor, "zstd"))
		return fail(err, errlen, "USWAP_COMPRESSOR: unknown compressor '%s' (accepted: lz4, zstd)", c->compressor);
	if (c->lz4_accel < 1 || c->lz4_accel > 65537)
		return fail(err, errlen, "USWAP_LZ4_ACCEL: %d out of range (accepted: 1..65537)", c->lz4_accel);
	if (c->zstd_level < -7 || c->zstd_level > 19)
		return fail(err, errlen, "USWAP_ZSTD_LEVEL: %d out of range (accepted: -7..19)", c->zstd_level);
	if (c->threads < 1 || c->threads > MAX_THREADS)
		return fail(err, errlen, "USWAP_THREADS: %u out of range (accepted: 1..%d)", c->threads, MAX_THREADS);
	if (c->readahead_max > RA_MAX_LIMIT)
		return fail(err, errlen, "USWAP_READAHEAD: %u out of range (accepted: 0..%d pages)", c->readahead_max, RA_MAX_LIMIT);
	if (c->low_wmark_pct < 10 || c->high_wmark_pct > 100 || c->low_wmark_pct >= c->high_wmark_pct)
		return fail(err, errlen, "USWAP_LOW_WMARK/USWAP_HIGH_WMARK: %u/%u (accepted: 10 <= low < high <= 100)",
			    c->low_wmark_pct, c->high_wmark_pct);
	if (c->wait_mode != USWAP_WAIT_BLOCK && c->wait_mode != USWAP_WAIT_SPIN)
		return fail(err, errlen, "USWAP_WAIT: bad mode (accepted: block, spin)");
	if (c->swapin != USWAP_SWAPIN_MARKER && c->swapin != USWAP_SWAPIN_PIN &&
	    c->swapin != USWAP_SWAPIN_CACHE)
		return fail(err, errlen, "USWAP_SWAPIN: bad design %d (accepted: marker, pin, cache)", (int)c->swapin);
	if (c->spin_us > 100000)
		return fail(err, errlen, "USWAP_SPIN_US: %u out of range (accepted: 0..100000)", c->spin_us);
	return 0;
}

static int env_size(const char *name, size_t *out, char *err, size_t errlen)
{
	const char *v = getenv(name);

	if (v && parse_size(v, out))
		return fail(err, errlen, "%s: invalid size '%s' (accepted: a number of bytes with an optional K, M, G or T suffix, e.g. 256M)", name, v);
	return 0;
}

static int env_int(const char *name, long lo, long hi, long *out, char *err, size_t errlen)
{
	const char *v = getenv(name);

	if (v && parse_uint(v, lo, hi, out))
		return fail(err, errlen, "%s: invalid value '%s' (accepted: an integer in %ld..%ld)", name, v, lo, hi);
	return 0;
}

static int env_word(const char *name, char *dst, size_t dstlen, const char *accepted,
		    char *err, size_t errlen)
{
	const char *v = getenv(name);
	char buf[64], list[64];
	size_t n = 0;

	if (!v)
		return 0;
	snprintf(buf, sizeof(buf), ",%s,", v);
	/* A value is one word: "a,b" would match ",a,b," as a substring. */
	if (strlen(v) < dstlen && !strchr(v, ',') && strstr(accepted, buf)) {
		snprintf(dst, dstlen, "%s", v);
		return 0;
	}
	/* ",a,b," -> "a, b" */
	for (const char *p = accepted + 1; p[1] && n + 3 < sizeof(list); p++) {
		list[n++] = *p;
		if (*p == ',')
			list[n++] = ' ';
	}
	list[n] = 0;
	return fail(err, errlen, "%s: unknown value '%s' (accepted: %s)", name, v, list);
}

int uswap_config_init(struct uswap_config *c, char *err, size_t errlen)
{
	long v;
	char wait[16] = "spin", swapin[16] = "marker";
	int ret = 0;

	memset(c, 0, sizeof(*c));
	c->limit = 256u << 20;
	snprintf(c->backend, sizeof(c->backend), "zram");
	snprintf(c->compressor, sizeof(c->compressor), "lz4");
	c->lz4_accel = 1;
	c->zstd_level = 1;
	c->threads = 1;
	c->readahead_max = 32;
	c->high_wmark_pct = 98;
	c->low_wmark_pct = 94;
	c->wait_mode = USWAP_WAIT_SPIN;	/* DESIGN.md §9 */
	c->spin_us = 50;

	if ((ret = env_size("USWAP_LIMIT", &c->limit, err, errlen)) ||
	    (ret = env_size("USWAP_POOL_CAP", &c->pool_cap, err, errlen)) ||
	    (ret = env_word("USWAP_BACKEND", c->backend, sizeof(c->backend), ",zram,", err, errlen)) ||
	    (ret = env_word("USWAP_COMPRESSOR", c->compressor, sizeof(c->compressor), ",lz4,zstd,", err, errlen)) ||
	    (ret = env_word("USWAP_WAIT", wait, sizeof(wait), ",block,spin,", err, errlen)) ||
	    (ret = env_word("USWAP_SWAPIN", swapin, sizeof(swapin), ",marker,pin,cache,", err, errlen)))
		return ret;
	c->wait_mode = strcmp(wait, "spin") ? USWAP_WAIT_BLOCK : USWAP_WAIT_SPIN;
	c->swapin = !strcmp(swapin, "pin") ? USWAP_SWAPIN_PIN :
		    !strcmp(swapin, "cache") ? USWAP_SWAPIN_CACHE : USWAP_SWAPIN_MARKER;
#define INT_OPT(name, lo, hi, field)                                     \
	do {                                                             \
		v = (long)c->field;                                      \
		if ((ret = env_int(name, lo, hi, &v, err, errlen)))      \
			return ret;                                      \
		c->field = v;                                            \
	} while (0)
	INT_OPT("USWAP_LZ4_ACCEL", 1, 65537, lz4_accel);
	INT_OPT("USWAP_ZSTD_LEVEL", -7, 19, zstd_level);
	INT_OPT("USWAP_THREADS", 1, MAX_THREADS, threads);
	INT_OPT("USWAP_READAHEAD", 0, RA_MAX_LIMIT, readahead_max);
	INT_OPT("USWAP_HIGH_WMARK", 11, 100, high_wmark_pct);
	INT_OPT("USWAP_LOW_WMARK", 10, 99, low_wmark_pct);
	INT_OPT("USWAP_SPIN_US", 0, 100000, spin_us);
	INT_OPT("USWAP_VERBOSE", 0, 1, verbose);
#undef INT_OPT
	/* Read where the descriptor is opened (uffd.c); checked here. */
	v = 0;
	if ((ret = env_int("USWAP_USER_MODE_ONLY", 0, 1, &v, err, errlen)))
		return ret;
	return uswap_config_check(c, err, errlen);
}

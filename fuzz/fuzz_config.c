/*
 * fuzz_config.c - the configuration parser (src/options.c) against an
 * independent model of what each USWAP_* variable accepts.
 *
 * Input: NUL-separated strings.  A string "NAME=value" (NAME without the
 * USWAP_ prefix, e.g. "LIMIT=64K") sets that variable; any other string is
 * the value of the next variable in table order.  The environment seen by
 * uswap_config_init() is exactly those variables: `environ` is pointed at
 * a private array for the call (same effect as setenv()/unsetenv(), but
 * glibc's setenv() keeps every value it ever saw, which would grow without
 * bound over millions of inputs).
 *
 * Checked for uswap_config_init():
 *  - never crashes (ASan: the error buffer is exactly errlen bytes; errlen
 *    is also 0, 1 and small, and err NULL);
 *  - returns 0 exactly when the model accepts every variable set and the
 *    combination (limit >= 64K, low < high watermark); 0 => the config
 *    passes uswap_config_check() and holds exactly the model's values (the
 *    defaults for variables not set);
 *  - otherwise returns -EINVAL with a NUL-terminated message naming
 *    "USWAP_<NAME>" of a variable the model rejects;
 * and for parse_size() (src/internal.h) on every string: never crashes; a
 * canonical size (digits, optional K/M/G/T, optional iB/B/b, no overflow)
 * is accepted with its exact value; anything it accepts beyond that is
 * only leading blanks or '+' (strtoull's leniency) and must still have
 * the value of its digits; an accepted value prints back ("%zu", and with
 * the largest exact suffix) and parses to the same value.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>

#include "fuzz_common.h"
#include "uswap.h"
#include "internal.h"

extern char **environ;

enum kind { SIZE, INT, WORD };

struct var {
	const char *name;	/* without USWAP_ */
	enum kind kind;
	long lo, hi;		/* INT */
	const char *words[3];	/* WORD */
};

static const struct var vars[] = {
	{ "LIMIT", SIZE, 0, 0, { 0 } },
	{ "POOL_CAP", SIZE, 0, 0, { 0 } },
	{ "BACKEND", WORD, 0, 0, { "zram" } },
	{ "COMPRESSOR", WORD, 0, 0, { "lz4", "zstd" } },
	{ "WAIT", WORD, 0, 0, { "block", "spin" } },
	{ "LZ4_ACCEL", INT, 1, 65537, { 0 } },
	{ "ZSTD_LEVEL", INT, -7, 19, { 0 } },
	{ "THREADS", INT, 1, MAX_THREADS, { 0 } },
	{ "READAHEAD", INT, 0, RA_MAX_LIMIT, { 0 } },
	{ "HIGH_WMARK", INT, 11, 100, { 0 } },
	{ "LOW_WMARK", INT, 10, 99, { 0 } },
	{ "SPIN_US", INT, 0, 100000, { 0 } },
	{ "VERBOSE", INT, 0, 1, { 0 } },
};
#define NVARS (sizeof(vars) / sizeof(vars[0]))
enum { V_LIMIT, V_POOL_CAP, V_BACKEND, V_COMPRESSOR, V_WAIT, V_LZ4_ACCEL,
       V_ZSTD_LEVEL, V_THREADS, V_READAHEAD, V_HIGH, V_LOW, V_SPIN, V_VERBOSE };

#define MAX_STR 64
static char strs[MAX_STR][520];
static char envbuf[NVARS][600];

/* ------------------------------------------------------------ the model */

/* Sizes.  1: canonical, value in *out; 2: accepted leniency (leading
 * blanks or '+', which strtoull() skips; a bare "i" after the number),
 * value in *out; 0: must be rejected; -1: a '-' after leading blanks and a
 * non-zero number (strtoull() negates it: accepting it is bug KB3). */
static int model_size(const char *s, unsigned long long *out)
{
	const char *p = s;
	int lenient = 0, neg = 0;
	unsigned long long v = 0;
	unsigned shift = 0;

	if (*s == '-')
		return 0;
	while (isspace((unsigned char)*p))
		p++;
	if (*p == '+' || *p == '-')
		neg = *p++ == '-';
	lenient = p != s;
	if (!isdigit((unsigned char)*p))
		return 0;
	for (; isdigit((unsigned char)*p); p++) {
		unsigned d = (unsigned)(*p - '0');

		if (v > (ULLONG_MAX - d) / 10)
			return 0;
		v = v * 10 + d;
	}
	switch (*p) {
	case 'k': case 'K': shift = 10; p++; break;
	case 'm': case 'M': shift = 20; p++; break;
	case 'g': case 'G': shift = 30; p++; break;
	case 't': case 'T': shift = 40; p++; break;
	}
	if (p[0] == 'i' && p[1] == 'B') {
		p += 2;
	} else if (*p == 'B' || *p == 'b') {
		p++;
	} else if (*p == 'i') {		/* "64Ki", "64i": tolerated */
		p++;
		lenient = 1;
	}
	if (*p)
		return 0;
	if (neg && v)
		return -1;
	if (shift && v > (ULLONG_MAX >> shift))
		return 0;
	*out = v << shift;
	return 1 + lenient;
}

/* Integers: as strtol in base 10 with the whole string consumed. */
static int model_int(const char *s, long lo, long hi, long *out)
{
	const char *p = s;
	int neg = 0;
	unsigned long long v = 0;

	while (isspace((unsigned char)*p))
		p++;
	if (*p == '+' || *p == '-')
		neg = *p++ == '-';
	if (!isdigit((unsigned char)*p))
		return 0;
	for (; isdigit((unsigned char)*p); p++) {
		unsigned d = (unsigned)(*p - '0');

		if (v > ((unsigned long long)LONG_MAX + 1 - d) / 10)
			return 0;	/* strtol: ERANGE */
		v = v * 10 + d;
	}
	if (*p)
		return 0;
	if (!neg && v > LONG_MAX)
		return 0;
	long x = neg ? (long)(0 - v) : (long)v;

	if (x < lo || x > hi)
		return 0;
	*out = x;
	return 1;
}

struct model {
	bool set[NVARS], ok[NVARS];
	unsigned long long size[NVARS];
	long num[NVARS];
	int word[NVARS];
	bool neg_size[NVARS];	/* KB3 */
	bool comma_word[NVARS];	/* KB4 */
	size_t errlen_small;	/* a second, tiny error buffer */
};

static void model_var(struct model *m, unsigned i, const char *v)
{
	const struct var *d = &vars[i];

	m->set[i] = true;
	m->ok[i] = false;
	switch (d->kind) {
	case SIZE: {
		int r = model_size(v, &m->size[i]);

		m->ok[i] = r > 0;
		m->neg_size[i] = r < 0;
		break;
	}
	case INT:
		m->ok[i] = model_int(v, d->lo, d->hi, &m->num[i]);
		break;
	case WORD:
		for (int w = 0; w < 3 && d->words[w]; w++)
			if (!strcmp(v, d->words[w])) {
				m->ok[i] = true;
				m->word[i] = w;
			}
		m->comma_word[i] = strchr(v, ',') != NULL;
		break;
	}
}

/* ------------------------------------------------------- parse_size() */

static void check_parse_size(const char *s)
{
	size_t v = 12345, v2 = 0;
	unsigned long long mv = 0;
	int r = parse_size(s, &v);
	int m = model_size(s, &mv);
	char buf[64];

	if (m == 1)
		FZ_CHECK(r == 0 && v == mv, "parse_size(\"%s\"): %d, %zu; expected %llu",
			 s, r, v, mv);
	if (r != 0) {
		FZ_CHECK(r == -EINVAL && v == 12345, "parse_size(\"%s\") failed with "
			 "%d and wrote its output", s, r);
		return;
	}
	if (m < 0 && fz_known_bug("KB3", 1))
		return;
	FZ_CHECK(m > 0, "parse_size(\"%s\") accepted %zu; the model rejects it", s, v);
	FZ_CHECK(v == mv, "parse_size(\"%s\") = %zu, the digits say %llu", s, v, mv);
	snprintf(buf, sizeof(buf), "%zu", v);
	FZ_CHECK(parse_size(buf, &v2) == 0 && v2 == v, "round trip \"%s\"", buf);
	static const char sfx[] = "TGMK";
	for (int k = 0; k < 4; k++) {
		unsigned sh = 40 - 10 * (unsigned)k;

		if (v && !(v & ((1ull << sh) - 1))) {
			snprintf(buf, sizeof(buf), "%zu%c", v >> sh, sfx[k]);
			FZ_CHECK(parse_size(buf, &v2) == 0 && v2 == v,
				 "round trip \"%s\" -> %zu", buf, v2);
			break;
		}
	}
}

/* ------------------------------------------------------------- config */

static const char *getenv_from(char **env, const char *name)
{
	size_t n = strlen(name);

	for (; *env; env++)
		if (!strncmp(*env, "USWAP_", 6) && !strncmp(*env + 6, name, n) &&
		    (*env)[6 + n] == '=')
			return *env + 7 + n;
	return "";
}

static void check_config(struct model *m, char **env)
{
	struct uswap_config c, c2;
	char err[256], *small;
	char **saved = environ;
	int ret, ret2;
	size_t smallen;

	environ = env;
	memset(err, 0x7f, sizeof(err));
	ret = uswap_config_init(&c, err, sizeof(err));
	/* the same with no buffer, and a tiny exactly-sized one */
	ret2 = uswap_config_init(&c2, NULL, 0);
	FZ_CHECK(ret2 == ret, "init with err NULL: %d vs %d", ret2, ret);
	smallen = m->errlen_small;
	small = malloc(smallen);
	ret2 = uswap_config_init(&c2, small, smallen);
	FZ_CHECK(ret2 == ret, "init with errlen %zu: %d vs %d", smallen, ret2, ret);
	if (ret)
		FZ_CHECK(memchr(small, 0, smallen), "truncated message not terminated");
	free(small);
	environ = saved;

	/* what the model expects */
	bool all_ok = true, bad_known = false;
	unsigned long long limit = m->set[V_LIMIT] ? m->size[V_LIMIT] : 256ull << 20;
	long high = m->set[V_HIGH] ? m->num[V_HIGH] : 98;
	long low = m->set[V_LOW] ? m->num[V_LOW] : 94;

	for (unsigned i = 0; i < NVARS; i++)
		if (m->set[i] && !m->ok[i])
			all_ok = false;
	bool expect_ok = all_ok && limit >= 16 * 4096 && low < high;

	if (ret == 0 && !expect_ok) {
		/* accepted a bad value: known bugs first */
		for (unsigned i = 0; i < NVARS; i++) {
			if (m->set[i] && !m->ok[i] && m->neg_size[i])
				bad_known |= fz_known_bug("KB3", 1);
			if (m->set[i] && !m->ok[i] && m->comma_word[i] && i == V_WAIT)
				bad_known |= fz_known_bug("KB4", 1);
		}
		if (bad_known)
			return;
		for (unsigned i = 0; i < NVARS; i++)
			if (m->set[i] && !m->ok[i])
				FZ_CHECK(0, "USWAP_%s=\"%s\" accepted; the model rejects it",
					 vars[i].name, getenv_from(env, vars[i].name));
		FZ_CHECK(0, "accepted limit %llu, watermarks %ld/%ld", limit, low, high);
	}
	if (ret != 0 && expect_ok) {
		FZ_CHECK(0, "config refused (%d: %s) but the model accepts it", ret, err);
	}
	if (ret != 0) {
		bool named = false;

		FZ_CHECK(ret == -EINVAL, "init returned %d", ret);
		FZ_CHECK(memchr(err, 0, sizeof(err)), "message not terminated");
		for (unsigned i = 0; i < NVARS; i++) {
			char key[32];
			bool culprit = (m->set[i] && !m->ok[i]) ||
				       (i == V_LIMIT && limit < 16 * 4096) ||
				       ((i == V_LOW || i == V_HIGH) && low >= high);

			snprintf(key, sizeof(key), "USWAP_%s", vars[i].name);
			if (culprit && strstr(err, key))
				named = true;
		}
		FZ_CHECK(named, "message \"%s\" names no variable at fault", err);
		return;
	}

	/* accepted: the values are the model's */
	char cerr[256];

	FZ_CHECK(uswap_config_check(&c, cerr, sizeof(cerr)) == 0,
		 "accepted config fails check: %s", cerr);
	FZ_CHECK(c.limit == limit, "limit %zu, expected %llu", c.limit, limit);
	FZ_CHECK(c.pool_cap == (m->set[V_POOL_CAP] ? m->size[V_POOL_CAP] : 0), "pool_cap");
	FZ_CHECK(!strcmp(c.backend, "zram"), "backend");
	FZ_CHECK(!strcmp(c.compressor, m->set[V_COMPRESSOR] ?
			 vars[V_COMPRESSOR].words[m->word[V_COMPRESSOR]] : "lz4"),
		 "compressor %s", c.compressor);
	FZ_CHECK((int)c.wait_mode == (m->set[V_WAIT] ? m->word[V_WAIT] : 0), "wait");
#define NUM(i, field, def) \
	FZ_CHECK((long)c.field == (m->set[i] ? m->num[i] : (def)), #field " %ld", (long)c.field)
	NUM(V_LZ4_ACCEL, lz4_accel, 1);
	NUM(V_ZSTD_LEVEL, zstd_level, 1);
	NUM(V_THREADS, threads, 1);
	NUM(V_READAHEAD, readahead_max, 32);
	NUM(V_HIGH, high_wmark_pct, 98);
	NUM(V_LOW, low_wmark_pct, 94);
	NUM(V_SPIN, spin_us, 50);
	NUM(V_VERBOSE, verbose, 0);
#undef NUM
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct model m;
	char *env[NVARS + 1];
	unsigned nstr = 0, nenv = 0, next = 0;
	size_t i = 0;

	memset(&m, 0, sizeof(m));
	/* split into NUL-terminated strings (the last may lack its NUL) */
	while (i < size && nstr < MAX_STR) {
		size_t len = 0;

		while (i + len < size && data[i + len] && len < sizeof(strs[0]) - 1)
			len++;
		memcpy(strs[nstr], data + i, len);
		strs[nstr][len] = 0;
		nstr++;
		i += len + 1;
	}
	for (unsigned k = 0; k < nstr; k++) {
		const char *s = strs[k], *eq = strchr(s, '=');
		unsigned v = NVARS;

		check_parse_size(s);
		if (eq) {
			for (unsigned j = 0; j < NVARS; j++)
				if ((size_t)(eq - s) == strlen(vars[j].name) &&
				    !strncmp(s, vars[j].name, (size_t)(eq - s)))
					v = j;
		}
		if (v < NVARS) {
			s = eq + 1;
			check_parse_size(s);
		} else {
			v = next++ % NVARS;
		}
		/* a variable set twice: the last value wins, as with setenv */
		snprintf(envbuf[v], sizeof(envbuf[v]), "USWAP_%s=%s", vars[v].name, s);
		model_var(&m, v, s);
	}
	for (unsigned j = 0; j < NVARS; j++)
		if (m.set[j])
			env[nenv++] = envbuf[j];
	env[nenv] = NULL;
	/* the small error buffer: 1..16 bytes, from the input's length */
	m.errlen_small = 1 + size % 16;
	check_config(&m, env);
	return 0;
}

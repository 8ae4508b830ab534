/*
 * fuzz_common.h - what the libFuzzer targets share: a reader that decodes
 * operations from the fuzzer's bytes (exhausted input reads as zeros), a
 * check macro that aborts with a message (libFuzzer then saves the input
 * as a crash), and page generators covering the kinds of content the
 * backend distinguishes (zero, same-filled, compressible, incompressible,
 * near the raw threshold, taken from the input).
 */
#ifndef USWAP_FUZZ_COMMON_H
#define USWAP_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FZ_PAGE 4096u

#define FZ_CHECK(cond, ...)                                                \
	do {                                                               \
		if (!(cond)) {                                             \
			fprintf(stderr, "%s:%d: FUZZ CHECK FAILED: %s: ",  \
				__FILE__, __LINE__, #cond);                \
			fprintf(stderr, __VA_ARGS__);                      \
			fputc('\n', stderr);                               \
			abort();                                           \
		}                                                          \
	} while (0)

/*
 * Known bugs in src/ (fuzz/README.md, "Findings"), which the targets step
 * around so that fuzzing goes on: true when @cond says the input hits bug
 * @id.  With FUZZ_STRICT=1 in the environment they are failures instead
 * (to check a fix: the reproducers in fuzz/repro/ must then pass).
 */
#define FZ_MAX_TALLY 8
static const char *fz_tally_id[FZ_MAX_TALLY];
static unsigned long fz_tally_hits[FZ_MAX_TALLY];

static void fz_tally_report(void)
{
	for (int i = 0; i < FZ_MAX_TALLY && fz_tally_id[i]; i++)
		fprintf(stderr, "FUZZ %s: hit in %lu executions\n", fz_tally_id[i],
			fz_tally_hits[i]);
}

/* Count an event by name ("KNOWN BUG KB1", "NOTE ..."); printed at exit. */
static inline void fz_tally(const char *id)
{
	int i;

	for (i = 0; i < FZ_MAX_TALLY && fz_tally_id[i] && strcmp(fz_tally_id[i], id); i++)
		;
	if (i == FZ_MAX_TALLY)
		return;
	if (!fz_tally_id[i]) {
		if (i == 0)
			atexit(fz_tally_report);
		fz_tally_id[i] = id;
	}
	fz_tally_hits[i]++;
}

/* @id is "KB<n>", a string literal */
#define fz_known_bug(id, cond) fz_known_bug_("KNOWN BUG " id, (cond))

static inline int fz_known_bug_(const char *id, int cond)
{
	static int strict = -1;

	if (!cond)
		return 0;
	if (strict < 0)
		strict = getenv("FUZZ_STRICT") && atoi(getenv("FUZZ_STRICT"));
	FZ_CHECK(!strict, "%s hit (FUZZ_STRICT=1)", id);
	fz_tally(id);
	return 1;
}

struct fz {
	const uint8_t *p;
	size_t n;
};

static inline int fz_left(const struct fz *f)
{
	return f->n > 0;
}

static inline uint8_t fz_u8(struct fz *f)
{
	if (!f->n)
		return 0;
	f->n--;
	return *f->p++;
}

static inline uint16_t fz_u16(struct fz *f)
{
	uint16_t v = fz_u8(f);

	return (uint16_t)(v | (uint16_t)fz_u8(f) << 8);
}

static inline uint32_t fz_u32(struct fz *f)
{
	uint32_t v = fz_u16(f);

	return v | (uint32_t)fz_u16(f) << 16;
}

static inline uint64_t fz_u64(struct fz *f)
{
	uint64_t v = fz_u32(f);

	return v | (uint64_t)fz_u32(f) << 32;
}

/* Up to @max bytes of the input, by pointer (may be fewer). */
static inline const uint8_t *fz_bytes(struct fz *f, size_t max, size_t *got)
{
	const uint8_t *p = f->p;

	*got = max < f->n ? max : f->n;
	f->p += *got;
	f->n -= *got;
	return p;
}

static inline uint64_t fz_mix(uint64_t x)
{
	/* splitmix64 finaliser */
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static inline void fz_random(uint8_t *dst, size_t len, uint64_t seed)
{
	uint64_t s = seed;

	for (size_t i = 0; i < len; i += 8) {
		uint64_t w = fz_mix(s++);
		size_t k = len - i < 8 ? len - i : 8;

		memcpy(dst + i, &w, k);
	}
}

enum {
	PG_ZERO,	/* all zeros: a SAME slot */
	PG_SAME,	/* one 8-byte word repeated: a SAME slot */
	PG_NEAR_SAME,	/* same-filled but one byte: must not be SAME */
	PG_COMPRESSIBLE,/* structured words: compresses well */
	PG_RANDOM,	/* incompressible: a RAW slot */
	PG_THRESHOLD,	/* @param random bytes then zeros: around 3/4 page */
	PG_INPUT,	/* the bytes given, repeated to fill the page */
	PG_TEXT,	/* short alphabet runs: compresses moderately */
	PG_KINDS
};

/*
 * Fill @pg with content of @kind derived from @seed and @param; PG_INPUT
 * takes @in[0..inlen) (zeros if empty).
 */
static inline void fz_page(uint8_t *pg, unsigned kind, uint64_t seed,
			   unsigned param, const uint8_t *in, size_t inlen)
{
	uint64_t w = fz_mix(seed);

	switch (kind % PG_KINDS) {
	case PG_ZERO:
		memset(pg, 0, FZ_PAGE);
		break;
	case PG_SAME:
		for (unsigned i = 0; i < FZ_PAGE; i += 8)
			memcpy(pg + i, &w, 8);
		break;
	case PG_NEAR_SAME:
		for (unsigned i = 0; i < FZ_PAGE; i += 8)
			memcpy(pg + i, &w, 8);
		pg[param % FZ_PAGE] ^= (uint8_t)(1u << (seed % 8));
		break;
	case PG_COMPRESSIBLE: {
		uint64_t *q = (uint64_t *)(void *)pg;

		for (unsigned i = 0; i < FZ_PAGE / 8; i++)
			q[i] = (i & 7) ? (seed * 31 + param) ^ (i >> 3)
				       : w + i;
		break;
	}
	case PG_RANDOM:
		fz_random(pg, FZ_PAGE, seed);
		break;
	case PG_THRESHOLD: {
		/* LZ4 stores n random bytes in about n + n/255 + 16: params
		 * around 3000-3100 straddle the 3072-byte raw threshold */
		unsigned n = 2900 + param % 300;

		fz_random(pg, n, seed);
		memset(pg + n, (int)(seed & 0xff), FZ_PAGE - n);
		break;
	}
	case PG_INPUT:
		if (!inlen) {
			memset(pg, 0, FZ_PAGE);
			break;
		}
		for (unsigned i = 0; i < FZ_PAGE; i++)
			pg[i] = in[i % inlen];
		break;
	case PG_TEXT:
		for (unsigned i = 0; i < FZ_PAGE; i++) {
			if (i % 64 == 0)
				w = fz_mix(w);
			pg[i] = (uint8_t)('a' + ((w >> ((i % 16) * 4)) & 0xf) % (2 + param % 24));
		}
		break;
	}
}

#endif

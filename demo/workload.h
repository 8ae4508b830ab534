/*
 * workload.h - the synthetic workload shared by the demo and the benchmarks.
 * Header-only: every function is static inline; no uswap dependency.
 *
 *  - Page content: wl_fill_page() writes a deterministic 4 KiB page from
 *    (index, version, seed).  It compresses about 2.3x with LZ4 (like the
 *    data behind ../shared/notes/performance-floor.md): a mix of random
 *    bytes, text-like runs from a small vocabulary, small integers and
 *    repeated runs, interleaved in short chunks.  Layout of a page:
 *
 *        [0, 8)        index   (little-endian uint64)
 *        [8, 16)       version (little-endian uint64)
 *        [16, 4088)    body, a function of (index, version, seed)
 *        [4088, 4096)  footer: a hash of (index, version, seed)
 *
 *    A page read at the wrong place shows another index; a stale page shows
 *    an older version; a torn page (half old, half new) fails the footer or
 *    the body.  wl_check_page() regenerates the page and compares every byte;
 *    wl_check_stamp() looks only at the header and the footer (two cache
 *    lines), cheap enough for timed benchmark phases.
 *  - PRNG: splitmix64 (seeding, hashing) and xoshiro256** (streams).
 *  - Zipf(theta) over n items, Gray et al., "Quickly generating billion-record
 *    synthetic databases" (SIGMOD '94), with a scatter permutation so that
 *    the hot items are spread over the arena instead of packed at its start.
 *  - Timing (CLOCK_MONOTONIC ns), medians, size parsing ("256M").
 */
#ifndef USWAP_WORKLOAD_H
#define USWAP_WORKLOAD_H

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define WL_PAGE_SIZE 4096u
#define WL_HDR_BYTES 16u
#define WL_FTR_OFF (WL_PAGE_SIZE - 8u)

/* ------------------------------------------------------------------ */
/* PRNG                                                                */

static inline uint64_t wl_rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

/* splitmix64: advances *x and returns the next output. */
static inline uint64_t wl_splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* A stateless 64-bit mix (the splitmix64 finalizer). */
static inline uint64_t wl_mix64(uint64_t z)
{
	uint64_t x = z;
	return wl_splitmix64(&x);
}

/* xoshiro256**: one stream per thread / phase. */
struct wl_rng {
	uint64_t s[4];
};

static inline void wl_rng_seed(struct wl_rng *r, uint64_t seed)
{
	uint64_t x = seed;
	for (int i = 0; i < 4; i++)
		r->s[i] = wl_splitmix64(&x);
}

static inline uint64_t wl_rng_next(struct wl_rng *r)
{
	uint64_t *s = r->s;
	uint64_t result = wl_rotl(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = wl_rotl(s[3], 45);
	return result;
}

/* Uniform in [0, n), n > 0 (Lemire's multiply-high; bias < n / 2^64). */
static inline uint64_t wl_rng_below(struct wl_rng *r, uint64_t n)
{
	return (uint64_t)(((unsigned __int128)wl_rng_next(r) * n) >> 64);
}

/* Uniform double in [0, 1). */
static inline double wl_rng_double(struct wl_rng *r)
{
	return (double)(wl_rng_next(r) >> 11) * 0x1.0p-53;
}

/* ------------------------------------------------------------------ */
/* Page content                                                        */

static inline void wl_put64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static inline uint64_t wl_get64(const unsigned char *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

/* The key every byte of a page derives from. */
static inline uint64_t wl_page_key(uint64_t index, uint64_t version,
				   uint64_t seed)
{
	return wl_mix64(wl_mix64(seed ^ 0x5eedf00dcafe1234ULL) ^
			wl_mix64(index * 0xd1b54a32d192ed03ULL + version));
}

static inline uint64_t wl_page_footer(uint64_t key)
{
	return wl_mix64(key ^ 0xf007e2f007e2f007ULL);
}

/*
 * Text-like runs: log lines from a small vocabulary, each with a number.
 * Padded to fixed sizes so the generator copies them with fixed-size
 * (inlined) moves; only the first .len bytes count.
 */
struct wl_head {
	char s[32];
	unsigned char len;
};
struct wl_tail {
	char s[16];
	unsigned char len;
};
#define WL_STR(x) { x, sizeof(x) - 1 }
static const struct wl_head wl_line_head[16] = {
	WL_STR("GET /api/v1/items/"),
	WL_STR("POST /api/v1/session user_id="),
	WL_STR("INFO cache miss key="),
	WL_STR("INFO cache hit key="),
	WL_STR("WARN slow request time="),
	WL_STR("{\"id\": "),
	WL_STR("{\"user\": \"u"),
	WL_STR("DEBUG swap in page="),
	WL_STR("ERROR timeout after "),
	WL_STR("INFO request done status="),
	WL_STR("GET /static/img/"),
	WL_STR("\"count\": "),
	WL_STR("<td class=\"num\">"),
	WL_STR("SELECT * FROM orders WHERE id="),
	WL_STR("INFO evicted "),
	WL_STR("value="),
};
static const struct wl_tail wl_line_tail[8] = {
	WL_STR(" ok\n"),	WL_STR(" ms\n"),	WL_STR("\", \"ok\": true},\n"),
	WL_STR(";\n"),		WL_STR("</td>\n"),	WL_STR(" HTTP/1.1 200\n"),
	WL_STR(", "),		WL_STR(" bytes\n"),
};
#undef WL_STR

/*
 * Chunk kinds of the body, dealt from a shuffled deck each round so that
 * every page holds about the same mix:
 *   R  random bytes, 48..104                          (LZ4 alone: 1.0x)
 *   T  log-like text lines, 80..143 (+ the last line)  (2.7x)
 *   I  8..15 64-bit fields: small counters and ids,
 *      one in 8 pointer-like                           (1.9x)
 *   Z  zeros, 48..111                                  (~100x)
 *   P  a repeated 8-byte pattern or a copy of earlier
 *      bytes of the page, 48..111                      (7x)
 * Measured over 10000 pages (LZ4_compress_default): ratio 2.28, compressed
 * size mean 1799 bytes, sd 76, 5th..95th percentile 1674..1923 bytes
 * (the performance notes' data: 1747..1845).  LZ4 acceleration 4 gives
 * 2.03 and zstd -1 2.41 on it: unlike the notes' data, the text loses
 * ratio at higher acceleration, as real data does.
 */
#ifndef WL_DECK
#define WL_DECK "RRRTTTIZZZPPP"
#endif
#define WL_DECK_LEN (sizeof(WL_DECK) - 1)
/*
 * Chunk writers start below WL_FTR_OFF and store at most 120 bytes from
 * there (I: 15 x 8; R: 104; Z, P: 112; T: stops at most at WL_FTR_OFF,
 * then finishes a line: 31 + 5 bytes, then a 16-byte tail copy).
 */
#define WL_SLACK 192

/*
 * Short fixed-size fills and copies as plain 8-byte moves: GCC turns a
 * 100-odd-byte memset/memcpy into "rep stos/movs", whose start-up cost made
 * them the generator's bottleneck.  The empty asm keeps the loops loops.
 */
static inline void wl_set_words(unsigned char *d, uint64_t v, size_t n)
{
	for (size_t i = 0; i < n; i += 8) {
		memcpy(d + i, &v, 8);
		__asm__("" : : "r"(d) : "memory");
	}
}

/* @n bytes from @s to @d, 8 at a time, s + n <= d (no overlap). */
static inline void wl_copy_words(unsigned char *d, const unsigned char *s,
				 size_t n)
{
	for (size_t i = 0; i < n; i += 8) {
		uint64_t v;
		memcpy(&v, s + i, 8);
		memcpy(d + i, &v, 8);
		__asm__("" : : "r"(d) : "memory");
	}
}

/* The page into @buf (WL_PAGE_SIZE + WL_SLACK bytes); see wl_fill_page(). */
static inline void wl_gen_page(unsigned char *buf, uint64_t index,
			       uint64_t version, uint64_t seed)
{
	unsigned char *p = buf;
	uint64_t key = wl_page_key(index, version, seed);
	struct wl_rng r;
	size_t off = WL_HDR_BYTES, i;
	char deck[WL_DECK_LEN];
	unsigned k = WL_DECK_LEN;

	wl_rng_seed(&r, key);
	while (off < WL_FTR_OFF) {
		uint64_t x = wl_rng_next(&r);
		size_t len;

		if (k == WL_DECK_LEN) {		/* new round: shuffle */
			memcpy(deck, WL_DECK, WL_DECK_LEN);
			for (i = WL_DECK_LEN - 1; i > 0; i--) {
				size_t j = (size_t)(((x & 0xff) * (i + 1)) >> 8);
				char c = deck[i];
				x >>= 8;
				deck[i] = deck[j];
				deck[j] = c;
			}
			k = 0;
			x = wl_rng_next(&r);
		}
		switch (deck[k++]) {
		case 'R':
			len = 48 + 8 * (x & 7);
			for (i = 0; i < len; i += 8) {
				uint64_t v = wl_rng_next(&r);
				memcpy(p + off + i, &v, 8);
			}
			off += len;
			break;
		case 'T': {
			size_t stop = off + 80 + (x & 63);

			if (stop > WL_FTR_OFF)	/* bound the overrun */
				stop = WL_FTR_OFF;

			while (off < stop) {
				uint64_t y = wl_rng_next(&r);
				const struct wl_head *h = &wl_line_head[y & 15];
				const struct wl_tail *t = &wl_line_tail[(y >> 4) & 7];
				char num[16] = { 0 };
				uint32_t v;
				unsigned n = 0;

				/* 1..5 digits, small numbers likelier */
				y >>= 7;
				v = (uint32_t)((y >> 4) & ((1u << (1 + (y & 15))) - 1));
				if (v > 99999)
					v %= 100000;
				do {
					num[7 - n++] = (char)('0' + v % 10);
					v /= 10;
				} while (v);
				memcpy(p + off, h->s, 32);
				off += h->len;
				memcpy(p + off, num + 8 - n, 8);	/* n <= 5 */
				off += n;
				memcpy(p + off, t->s, 16);
				off += t->len;
			}
			break;
		}
		case 'I': {
			size_t n = 8 + (x & 7);
			uint64_t base = (x >> 4) & 0xfff;
			uint64_t ptr = 0x00007f0000000000ULL |
				       ((x >> 16) & 0xffffff) << 12;
			uint64_t y = 0;

			for (i = 0; i < n; i++) {
				uint64_t v;
				if (i % 5 == 0)
					y = wl_rng_next(&r);
				if ((y & 7) == 0)	/* pointer-like */
					v = ptr + ((y >> 3) & 0x3f8);
				else			/* counter, size, id */
					v = base + ((y >> 3) & 127);
				y >>= 12;
				memcpy(p + off, &v, 8);
				off += 8;
			}
			break;
		}
		case 'Z':
			len = 48 + (x & 63);
			wl_set_words(p + off, 0, 112);
			off += len;
			break;
		default: /* 'P' */
			len = 48 + (x & 63);
			x >>= 6;
			if ((x & 1) && off >= WL_HDR_BYTES + 112) {
				/* a copy of earlier bytes: a duplicated record */
				size_t from = WL_HDR_BYTES +
					(size_t)((x >> 1) % (off - WL_HDR_BYTES - 111));
				wl_copy_words(p + off, p + from, 112);
			} else {
				wl_set_words(p + off, wl_rng_next(&r), 112);
			}
			off += len;
			break;
		}
	}
	wl_put64(p, index);
	wl_put64(p + 8, version);
	wl_put64(p + WL_FTR_OFF, wl_page_footer(key));
}

/*
 * Write the page (index, version) of stream @seed at @page (4 KiB), with
 * one 4 KiB copy (about 1.5 us per page on the project's machine kind).
 */
static inline void wl_fill_page(void *page, uint64_t index, uint64_t version,
				uint64_t seed)
{
	unsigned char buf[WL_PAGE_SIZE + WL_SLACK] __attribute__((aligned(64)));

	wl_gen_page(buf, index, version, seed);
	memcpy(page, buf, WL_PAGE_SIZE);
}

static inline size_t wl_first_diff(const unsigned char *a,
				   const unsigned char *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (a[i] != b[i])
			return i + 1;
	return 0;
}

/*
 * Cheap check: the 16-byte header and the 8-byte footer.
 * Returns 0, or the first bad offset + 1.
 */
static inline size_t wl_check_stamp(const void *page, uint64_t index,
				    uint64_t version, uint64_t seed)
{
	unsigned char want[WL_HDR_BYTES], ftr[8];
	const unsigned char *p = (const unsigned char *)page;
	size_t bad;

	wl_put64(want, index);
	wl_put64(want + 8, version);
	wl_put64(ftr, wl_page_footer(wl_page_key(index, version, seed)));
	if ((bad = wl_first_diff(p, want, WL_HDR_BYTES)))
		return bad;
	if ((bad = wl_first_diff(p + WL_FTR_OFF, ftr, 8)))
		return WL_FTR_OFF + bad;
	return 0;
}

/*
 * Full check: every byte against the regenerated page.
 * Returns 0, or the first bad offset + 1.
 */
static inline size_t wl_check_page(const void *page, uint64_t index,
				   uint64_t version, uint64_t seed)
{
	unsigned char want[WL_PAGE_SIZE + WL_SLACK]
		__attribute__((aligned(64)));

	wl_gen_page(want, index, version, seed);
	if (memcmp(page, want, WL_PAGE_SIZE) == 0)
		return 0;
	return wl_first_diff((const unsigned char *)page, want, WL_PAGE_SIZE);
}

/*
 * Describe a bad page on @f: what was expected, what the header says (a
 * misload shows another index, a stale page an older version), the first
 * bad offset and the bytes around it.
 */
static inline void wl_report_bad(FILE *f, const char *what, const void *page,
				 uint64_t index, uint64_t version,
				 uint64_t seed, size_t bad)
{
	const unsigned char *p = (const unsigned char *)page;
	unsigned char want[WL_PAGE_SIZE + WL_SLACK];
	size_t off = bad ? bad - 1 : 0, from, to, i;
	size_t nbad = 0;

	wl_gen_page(want, index, version, seed);
	for (i = 0; i < WL_PAGE_SIZE; i++)
		nbad += p[i] != want[i];
	fprintf(f,
		"%s: MISMATCH page %llu: expected version %llu; header says "
		"index %llu version %llu; first bad byte at offset %zu, "
		"%zu bad bytes\n",
		what, (unsigned long long)index, (unsigned long long)version,
		(unsigned long long)wl_get64(p),
		(unsigned long long)wl_get64(p + 8), off, nbad);
	from = off >= 8 ? off - 8 : 0;
	to = off + 8 <= WL_PAGE_SIZE ? off + 8 : WL_PAGE_SIZE;
	fprintf(f, "%s:   got  @%zu:", what, from);
	for (i = from; i < to; i++)
		fprintf(f, " %02x", p[i]);
	fprintf(f, "\n%s:   want @%zu:", what, from);
	for (i = from; i < to; i++)
		fprintf(f, " %02x", want[i]);
	fputc('\n', f);
}

/* ------------------------------------------------------------------ */
/* Zipf                                                                */

/*
 * Zipf(theta) over ranks [0, n) (rank 0 the most popular), Gray et al.
 * zeta(n) is summed directly once at init: O(n) pow() calls, ~5 ms for
 * n = 262144 (1 GiB of pages).  0 < theta < 1.
 *
 * wl_zipf_next() returns an item, not a rank: the rank goes through a
 * bijection of [0, n) (a mix on the enclosing power of two, cycle-walked
 * into [0, n)) so that hot pages land all over the arena.
 */
struct wl_zipf {
	uint64_t n;
	double theta, alpha, zetan, eta, thresh1;
	/* scatter permutation */
	uint64_t mask, add, mul1, mul2;
	unsigned shift;
};

static inline double wl_zeta(uint64_t n, double theta)
{
	double sum = 0;
	for (uint64_t i = n; i >= 1; i--)	/* small terms first */
		sum += pow((double)i, -theta);
	return sum;
}

static inline void wl_zipf_init(struct wl_zipf *z, uint64_t n, double theta,
				uint64_t scatter_seed)
{
	unsigned bits = 0;
	uint64_t x = scatter_seed;

	z->n = n ? n : 1;
	z->theta = theta;
	z->alpha = 1.0 / (1.0 - theta);
	z->zetan = wl_zeta(z->n, theta);
	z->eta = (1.0 - pow(2.0 / (double)z->n, 1.0 - theta)) /
		 (1.0 - wl_zeta(2, theta) / z->zetan);
	z->thresh1 = 1.0 + pow(0.5, theta);
	while (bits < 64 && (1ULL << bits) < z->n)
		bits++;
	z->mask = bits >= 64 ? ~0ULL : (1ULL << bits) - 1;
	z->shift = bits / 2 + 1;
	z->add = wl_splitmix64(&x) & z->mask;
	z->mul1 = wl_splitmix64(&x) | 1;
	z->mul2 = wl_splitmix64(&x) | 1;
}

/* The bijection on [0, n). */
static inline uint64_t wl_zipf_scatter(const struct wl_zipf *z, uint64_t v)
{
	do {	/* each step is a bijection of [0, mask] */
		v = (v + z->add) & z->mask;
		v = (v * z->mul1) & z->mask;
		v ^= v >> z->shift;
		v = (v * z->mul2) & z->mask;
		v ^= v >> z->shift;
	} while (v >= z->n);	/* cycle-walk: < 2 rounds on average */
	return v;
}

static inline uint64_t wl_zipf_rank(const struct wl_zipf *z, struct wl_rng *r)
{
	double u = wl_rng_double(r);
	double uz = u * z->zetan;
	uint64_t v;

	if (uz < 1.0)
		return 0;
	if (uz < z->thresh1)
		return z->n > 1 ? 1 : 0;
	v = (uint64_t)((double)z->n * pow(z->eta * u - z->eta + 1.0, z->alpha));
	return v < z->n ? v : z->n - 1;
}

static inline uint64_t wl_zipf_next(const struct wl_zipf *z, struct wl_rng *r)
{
	return wl_zipf_scatter(z, wl_zipf_rank(z, r));
}

/* ------------------------------------------------------------------ */
/* Timing, statistics, arguments                                       */

static inline uint64_t wl_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static inline int wl_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* Median of @n values (not modified); NAN if n == 0. */
static inline double wl_median(const double *a, size_t n)
{
	double buf[64], *s = n <= 64 ? buf : (double *)malloc(n * sizeof(*s));
	double m;

	if (n == 0 || !s)
		return NAN;
	memcpy(s, a, n * sizeof(*s));
	qsort(s, n, sizeof(*s), wl_cmp_double);
	m = n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
	if (s != buf)
		free(s);
	return m;
}

/* "1G", "256M", "4096", "64k" -> bytes.  0 or -EINVAL. */
static inline int wl_parse_size(const char *s, size_t *out)
{
	char *end;
	unsigned long long v;
	unsigned shift = 0;

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
	if (shift && *end == 'i' && end[1] == 'B')	/* "256MiB" */
		end += 2;
	else if (shift && *end == 'B')			/* "256MB" */
		end++;
	if (*end || (shift && v > (~0ULL >> shift)))
		return -EINVAL;
	*out = (size_t)(v << shift);
	return 0;
}

#endif

/*
 * test_pool.c - the size-classed pool: round trips in every class, per-span
 * accounting, memory going back to the OS, the cap, arena exhaustion and
 * span splitting, and four threads allocating and freeing at once.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "backend.h"
#include "pool.h"
#include "test.h"

/* Introspection defined in pool.c for tests (deliberately not in pool.h). */
int pool_check(struct uswap_pool *p);
int pool_span_info(struct uswap_pool *p, uint64_t handle, void **base,
		   size_t *len, unsigned *used, unsigned *cap);
int pool_class_info(struct uswap_pool *p, size_t size, size_t *span_len,
		    unsigned *cap);
struct uswap_pool *pool_create_sized(size_t cap_bytes, size_t arena_bytes);

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)

static unsigned scale = 1;	/* USWAP_TEST_SCALE: divide the work */

static uint64_t rnd(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545f4914f6cdd1dull;
}

/* Self-describing object: size and seed up front, then seeded bytes. */
struct objhdr {
	uint64_t seed;
	uint32_t size;
};

/* Seeded bytes, 8 at a time (the check runs the same generator). */
static void seeded_bytes(unsigned char *p, size_t n, uint64_t seed)
{
	uint64_t s = seed | 1, w;
	size_t i = 0;

	for (; i + 8 <= n; i += 8) {
		w = rnd(&s);
		memcpy(p + i, &w, 8);
	}
	w = rnd(&s);
	memcpy(p + i, &w, n - i);
}

static void obj_fill(void *obj, size_t size, uint64_t seed)
{
	unsigned char *p = obj;

	if (size >= sizeof(struct objhdr)) {
		struct objhdr h = { seed, (uint32_t)size };

		memcpy(p, &h, sizeof(h));
		p += sizeof(h);
		size -= sizeof(h);
	}
	seeded_bytes(p, size, seed);
}

static int obj_ok(const void *obj, size_t size, uint64_t seed)
{
	const unsigned char *p = obj;
	unsigned char want[USWAP_PAGE_SIZE];

	if (size >= sizeof(struct objhdr)) {
		struct objhdr h;

		memcpy(&h, p, sizeof(h));
		if (h.seed != seed || h.size != size)
			return 0;
		p += sizeof(h);
		size -= sizeof(h);
	}
	seeded_bytes(want, size, seed);
	return memcmp(p, want, size) == 0;
}

static size_t round16(size_t n)
{
	return (n + 15) & ~(size_t)15;
}

/* Pages of [addr, addr+len) resident in RAM. */
static size_t resident_pages(void *addr, size_t len)
{
	size_t n = len / USWAP_PAGE_SIZE, r = 0;
	unsigned char vec[n];

	T_EQ(mincore(addr, len, vec), 0);
	for (size_t i = 0; i < n; i++)
		r += vec[i] & 1;
	return r;
}

/* Every class: a few objects of its smallest and largest size. */
static void t_every_class(void)
{
	struct uswap_pool *p = pool_create(0);
	enum { PER = 3 };
	static uint64_t h[USWAP_PAGE_SIZE / 16 * 2 * PER];
	size_t n = 0, objs = 0;
	uint64_t base;

	T_ASSERT(p);
	base = pool_bytes(p);
	for (size_t c = 16; c <= USWAP_PAGE_SIZE; c += 16) {
		size_t sizes[2] = { c - 15, c };

		for (int k = 0; k < 2; k++)
			for (int i = 0; i < PER; i++) {
				size_t sz = sizes[k];

				T_EQ(pool_alloc(p, sz, &h[n]), 0);
				T_ASSERT(h[n] != 0);
				T_EQ(pool_obj_size(p, h[n]), c);
				obj_fill(pool_map(p, h[n]), sz, h[n]);
				objs += c;
				n++;
			}
	}
	T_EQ(pool_obj_bytes(p), objs);
	T_EQ(pool_check(p), 0);
	n = 0;
	for (size_t c = 16; c <= USWAP_PAGE_SIZE; c += 16)
		for (int k = 0; k < 2; k++)
			for (int i = 0; i < PER; i++, n++)
				if (!obj_ok(pool_map(p, h[n]),
					    k ? c : c - 15, h[n]))
					T_FAIL("object %zu of class %zu damaged",
					       n, c);
	fprintf(stderr, "    %zu objects in 256 classes: %llu bytes held\n", n,
		(unsigned long long)pool_bytes(p));
	while (n--)
		pool_free(p, h[n]);
	T_EQ(pool_obj_bytes(p), 0);
	T_EQ(pool_check(p), 0);
	/* all spans returned: only the metadata pages stay */
	T_ASSERT(pool_bytes(p) - base <= 64 * KiB);
	T_EQ(pool_alloc(p, 0, &h[0]), -EINVAL);
	T_EQ(pool_alloc(p, USWAP_PAGE_SIZE + 1, &h[0]), -EINVAL);
	pool_destroy(p);
}

/* Span sizes and tail waste of the classes that ~1.8 KiB objects use. */
static void t_tail_waste(void)
{
	struct uswap_pool *p = pool_create(0);
	double worst = 0;

	T_ASSERT(p);
	for (size_t sz = 1744; sz <= 1856; sz += 16) {
		size_t span;
		unsigned cap;
		double tail;

		T_EQ(pool_class_info(p, sz, &span, &cap), 0);
		tail = (double)(span - cap * sz) / (double)span;
		fprintf(stderr, "    class %4zu: span %3zu KiB, %3u objects, "
			"tail %.2f%%\n", sz, span / KiB, cap, tail * 100);
		T_ASSERT(tail <= 0.01);
		worst = tail > worst ? tail : worst;
	}
	fprintf(stderr, "    worst tail waste 1744..1856: %.2f%%\n",
		worst * 100);
	pool_destroy(p);
}

static uint64_t page_round(uint64_t n)
{
	return (n + USWAP_PAGE_SIZE - 1) & ~(uint64_t)(USWAP_PAGE_SIZE - 1);
}

/*
 * Fill spans of one class and watch the span counters and pool_bytes, which
 * counts a span's pages as they are first used (carved), not all at once.
 */
static void t_span_accounting(void)
{
	struct uswap_pool *p = pool_create(0);
	const size_t sz = 1800, csz = round16(sz);
	uint64_t *h, before, meta;
	size_t span;
	unsigned cap, used, c2;
	void *b0, *b;
	size_t len;

	T_ASSERT(p);
	T_EQ(pool_class_info(p, sz, &span, &cap), 0);
	T_ASSERT(span - cap * csz < csz);	/* no room for one more */
	h = calloc(2 * cap + 1, sizeof(*h));
	T_ASSERT(h);
	before = pool_bytes(p);
	T_EQ(pool_alloc(p, sz, &h[0]), 0);
	/* the first span also touches the first metadata page */
	meta = pool_bytes(p) - before - USWAP_PAGE_SIZE;
	T_ASSERT(meta == 0 || meta == USWAP_PAGE_SIZE);
	T_EQ(pool_span_info(p, h[0], &b0, &len, &used, &c2), 0);
	T_EQ(len, span);
	T_EQ(c2, cap);
	T_EQ(used, 1);
	for (unsigned i = 1; i < cap; i++) {
		T_EQ(pool_alloc(p, sz, &h[i]), 0);
		T_EQ(pool_span_info(p, h[i], &b, &len, &used, &c2), 0);
		T_ASSERT(b == b0);	/* the first span fills up first */
		T_EQ(used, i + 1);
		T_EQ(pool_bytes(p), before + meta + page_round((i + 1) * csz));
	}
	T_EQ(pool_obj_bytes(p), (uint64_t)cap * csz);
	T_EQ(pool_alloc(p, sz, &h[cap]), 0);	/* one more: a new span */
	T_EQ(pool_span_info(p, h[cap], &b, &len, &used, &c2), 0);
	T_ASSERT(b != b0);
	T_EQ(used, 1);
	T_EQ(pool_bytes(p),
	     before + meta + page_round(cap * csz) + USWAP_PAGE_SIZE);
	T_EQ(pool_check(p), 0);

	/* a hole in the full span is filled before the fresher span grows */
	pool_free(p, h[5]);
	T_EQ(pool_alloc(p, sz, &h[5]), 0);
	T_EQ(pool_span_info(p, h[5], &b, &len, &used, &c2), 0);
	T_ASSERT(b == b0);
	T_EQ(used, cap);

	/* the second span empties: gone, and its memory with it */
	pool_free(p, h[cap]);
	T_EQ(pool_bytes(p), before + meta + page_round(cap * csz));
	/* holes in a span do not give memory back; the span's end does */
	for (unsigned i = 0; i < cap - 1; i++) {
		pool_free(p, h[i]);
		T_EQ(pool_bytes(p), before + meta + page_round(cap * csz));
	}
	pool_free(p, h[cap - 1]);
	T_EQ(pool_bytes(p), before + meta);
	T_EQ(pool_obj_bytes(p), 0);
	T_EQ(pool_check(p), 0);
	fprintf(stderr, "    class %zu: %u objects per %zu KiB span (tail %zu "
		"B), counted page by page as used; metadata %llu bytes\n", csz,
		cap, span / KiB, span - cap * csz, (unsigned long long)meta);
	free(h);
	pool_destroy(p);
}

/* An emptied span's pages leave RAM (mincore) and the span is reused. */
static void t_return_to_os(void)
{
	struct uswap_pool *p = pool_create(0);
	const size_t sz = 4096;
	uint64_t h[3 * 64];
	unsigned cap, used, c2;
	size_t span, len;
	void *b0, *b;
	uint64_t full;

	T_ASSERT(p);
	T_EQ(pool_class_info(p, sz, &span, &cap), 0);
	T_ASSERT(3 * cap <= 3 * 64);
	for (unsigned i = 0; i < 3 * cap; i++) {
		T_EQ(pool_alloc(p, sz, &h[i]), 0);
		memset(pool_map(p, h[i]), 0x77, sz);
	}
	T_EQ(pool_span_info(p, h[0], &b0, &len, &used, &c2), 0);
	T_EQ(resident_pages(b0, span), span / USWAP_PAGE_SIZE);
	full = pool_bytes(p);
	for (unsigned i = 0; i < cap; i++)	/* the whole first span */
		pool_free(p, h[i]);
	T_EQ(pool_bytes(p), full - span);
	T_EQ(resident_pages(b0, span), 0);
	fprintf(stderr, "    emptied span: pool_bytes %llu -> %llu, "
		"resident pages %zu -> 0\n", (unsigned long long)full,
		(unsigned long long)pool_bytes(p), span / USWAP_PAGE_SIZE);

	/* reused by another class of the same span order */
	for (size_t other = 16; other < sz; other += 16) {
		size_t ospan;
		unsigned ocap;

		T_EQ(pool_class_info(p, other, &ospan, &ocap), 0);
		if (ospan != span)
			continue;
		T_EQ(pool_alloc(p, other, &h[0]), 0);
		T_EQ(pool_span_info(p, h[0], &b, &len, &used, &c2), 0);
		T_ASSERT(b == b0);
		{	/* its pages came back as fresh zero pages */
			const unsigned char *o = pool_map(p, h[0]);

			for (size_t i = 0; i < other; i++)
				T_EQ(o[i], 0);
		}
		fprintf(stderr, "    reused by class %zu\n", other);
		pool_free(p, h[0]);
		break;
	}
	for (unsigned i = cap; i < 3 * cap; i++)
		pool_free(p, h[i]);
	T_EQ(pool_check(p), 0);
	pool_destroy(p);
}

/* The cap: -ENOSPC exactly when a new span would not fit. */
static void t_cap(void)
{
	const size_t cap_bytes = 1 * MiB, sz = 3000;
	struct uswap_pool *p = pool_create(cap_bytes);
	uint64_t h[1024];
	size_t n = 0, span;
	unsigned cap;
	int err;

	T_ASSERT(p);
	T_EQ(pool_class_info(p, sz, &span, &cap), 0);
	while ((err = pool_alloc(p, sz, &h[n])) == 0) {
		T_ASSERT(pool_bytes(p) <= cap_bytes);
		n++;
		T_ASSERT(n < 1024);
	}
	T_EQ(err, -ENOSPC);
	T_ASSERT(pool_bytes(p) + span > cap_bytes);
	T_EQ(n % cap, 0);	/* only whole spans were refused */
	fprintf(stderr, "    cap %zu KiB: %zu objects of %zu in %zu spans of "
		"%zu KiB, held %llu; next span refused\n", cap_bytes / KiB, n,
		sz, n / cap, span / KiB, (unsigned long long)pool_bytes(p));
	/* a class with smaller spans gets one iff it still fits */
	{
		size_t sspan;
		unsigned scap;
		int fits;

		T_EQ(pool_class_info(p, 16, &sspan, &scap), 0);
		fits = pool_bytes(p) + sspan <= cap_bytes;
		err = pool_alloc(p, 16, &h[n]);
		T_EQ(err, fits ? 0 : -ENOSPC);
		if (!err) {
			T_ASSERT(pool_bytes(p) <= cap_bytes);
			pool_free(p, h[n]);
		}
	}
	/* room in an existing span is not capped */
	pool_free(p, h[3]);
	T_EQ(pool_alloc(p, sz, &h[3]), 0);
	while (n--)
		pool_free(p, h[n]);
	T_EQ(pool_alloc(p, 16, &h[0]), 0);
	pool_free(p, h[0]);
	T_EQ(pool_check(p), 0);
	pool_destroy(p);
}

/* A 1 MiB arena: exhaustion gives -ENOMEM; freed large spans split. */
static void t_arena_exhaustion(void)
{
	struct uswap_pool *p = pool_create_sized(0, 1 * MiB);
	uint64_t h[4096];
	size_t n = 0, span_big, span_small, big = 0;
	unsigned cap;
	int err;

	T_ASSERT(p);
	/* find a class with the largest span order */
	for (size_t sz = 16; sz <= USWAP_PAGE_SIZE; sz += 16) {
		T_EQ(pool_class_info(p, sz, &span_big, &cap), 0);
		if (span_big == 256 * KiB) {
			big = sz;
			break;
		}
	}
	T_ASSERT(big);
	T_EQ(pool_class_info(p, 4096, &span_small, &cap), 0);
	T_ASSERT(span_small < span_big);
	while ((err = pool_alloc(p, big, &h[n])) == 0)
		n++;
	T_EQ(err, -ENOMEM);
	T_EQ(n * big <= 1 * MiB, 1);
	fprintf(stderr, "    1 MiB arena: %zu objects of %zu in %zu KiB spans, "
		"then -ENOMEM\n", n, big, span_big / KiB);
	while (n--)
		pool_free(p, h[n]);
	/* only free big spans are left: the small class splits them */
	n = 0;
	while ((err = pool_alloc(p, 4096, &h[n])) == 0) {
		memset(pool_map(p, h[n]), (int)n, 4096);
		n++;
	}
	T_EQ(err, -ENOMEM);
	T_EQ(n, 1 * MiB / 4096);
	T_EQ(pool_check(p), 0);
	while (n--) {
		unsigned char *o = pool_map(p, h[n]);

		T_ASSERT(o[0] == (unsigned char)n && o[4095] == (unsigned char)n);
		pool_free(p, h[n]);
	}
	T_EQ(pool_check(p), 0);
	pool_destroy(p);
}

/* ------------------------------------------------------------ threads */

#define NTHREADS 4
#define NCELLS 64
#define LIVE 512

struct shared {
	struct uswap_pool *p;
	_Atomic uint64_t cell[NCELLS];	/* handles passed between threads */
	unsigned iters;
};

struct live {
	uint64_t h, seed;
	size_t size;
};

static size_t pick_size(uint64_t *s)
{
	uint64_t r = rnd(s);

	if (r % 4)	/* mostly the sizes of compressed pages */
		return 1700 + (r >> 8) % 200;
	return 16 + (r >> 8) % (USWAP_PAGE_SIZE - 15);
}

/* Take a handle another thread left in a cell, check it, free it. */
static void take_cell(struct shared *sh, uint64_t *s)
{
	_Atomic uint64_t *c = &sh->cell[rnd(s) % NCELLS];
	uint64_t h = atomic_exchange_explicit(c, 0, memory_order_acquire);
	struct objhdr hdr;

	if (!h)
		return;
	memcpy(&hdr, pool_map(sh->p, h), sizeof(hdr));
	if (!obj_ok(pool_map(sh->p, h), hdr.size, hdr.seed))
		T_FAIL("object passed between threads damaged");
	pool_free(sh->p, h);
}

static void *worker(void *arg)
{
	struct shared *sh = arg;
	static _Atomic unsigned ids;
	uint64_t s = 0x9e3779b97f4a7c15ull * (atomic_fetch_add(&ids, 1) + 1);
	struct live *lv = calloc(LIVE, sizeof(*lv));
	size_t n = 0;

	T_ASSERT(lv);
	for (unsigned it = 0; it < sh->iters; it++) {
		uint64_t op = rnd(&s) % 8;

		if (op < 4 && n < LIVE) {		/* alloc */
			struct live *l = &lv[n];

			l->size = pick_size(&s);
			l->seed = rnd(&s);
			T_EQ(pool_alloc(sh->p, l->size, &l->h), 0);
			obj_fill(pool_map(sh->p, l->h), l->size, l->seed);
			n++;
		} else if (op < 7 && n) {		/* check, free */
			size_t i = rnd(&s) % n;

			if (!obj_ok(pool_map(sh->p, lv[i].h), lv[i].size,
				    lv[i].seed))
				T_FAIL("object damaged");
			pool_free(sh->p, lv[i].h);
			lv[i] = lv[--n];
		} else if (n) {				/* give, take */
			uint64_t old = atomic_exchange_explicit(
				&sh->cell[rnd(&s) % NCELLS], lv[n - 1].h,
				memory_order_acq_rel);

			n--;
			if (old) {
				struct objhdr hdr;

				memcpy(&hdr, pool_map(sh->p, old), sizeof(hdr));
				if (!obj_ok(pool_map(sh->p, old), hdr.size,
					    hdr.seed))
					T_FAIL("object passed between threads "
					       "damaged");
				pool_free(sh->p, old);
			}
			take_cell(sh, &s);
		}
	}
	while (n--)
		pool_free(sh->p, lv[n].h);
	free(lv);
	return NULL;
}

static void t_threads(void)
{
	struct shared sh = { .p = pool_create(0),
			     .iters = 100000 / scale };
	pthread_t t[NTHREADS];
	struct timespec a, b;
	uint64_t base;

	T_ASSERT(sh.p);
	base = pool_bytes(sh.p);
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (int i = 0; i < NTHREADS; i++)
		T_EQ(pthread_create(&t[i], NULL, worker, &sh), 0);
	for (int i = 0; i < NTHREADS; i++)
		pthread_join(t[i], NULL);
	clock_gettime(CLOCK_MONOTONIC, &b);
	T_EQ(pool_check(sh.p), 0);
	for (int i = 0; i < NCELLS; i++) {
		uint64_t h = atomic_load(&sh.cell[i]);
		struct objhdr hdr;

		if (!h)
			continue;
		memcpy(&hdr, pool_map(sh.p, h), sizeof(hdr));
		T_ASSERT(obj_ok(pool_map(sh.p, h), hdr.size, hdr.seed));
		pool_free(sh.p, h);
	}
	T_EQ(pool_obj_bytes(sh.p), 0);
	T_EQ(pool_check(sh.p), 0);
	/* every span went back: what is left is metadata */
	T_ASSERT(pool_bytes(sh.p) - base < 64 * KiB);
	fprintf(stderr, "    %d threads x %u ops: %.0f ns/op (with fill and "
		"check), end pool_bytes %llu\n", NTHREADS, sh.iters,
		((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) /
			sh.iters,
		(unsigned long long)pool_bytes(sh.p));
	pool_destroy(sh.p);
}

/*
 * Alloc and free cost in one thread, for the report.  Objects are written
 * as a backend would (else the free's link write takes the first-touch
 * page fault); frees are scattered, so they include the madvise() of each
 * span that empties.
 */
static void t_speed(void)
{
	struct uswap_pool *p = pool_create(0);
	enum { N = 1 << 16 };
	uint64_t *h = calloc(N, sizeof(*h)), s = 42;
	struct timespec a, b, c;
	double t_alloc = 0, t_free;

	T_ASSERT(p && h);
	for (int i = 0; i < N; i++) {
		size_t sz = 1700 + rnd(&s) % 200;

		clock_gettime(CLOCK_MONOTONIC, &a);
		T_EQ(pool_alloc(p, sz, &h[i]), 0);
		clock_gettime(CLOCK_MONOTONIC, &b);
		t_alloc += (b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec);
		memset(pool_map(p, h[i]), 0x33, sz);
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	for (int i = 0; i < N; i++)
		pool_free(p, h[(i * 40503u) % N]);
	clock_gettime(CLOCK_MONOTONIC, &c);
	t_free = (c.tv_sec - b.tv_sec) * 1e9 + (c.tv_nsec - b.tv_nsec);
	fprintf(stderr, "    alloc %.0f ns, free %.0f ns incl. returning the "
		"emptied spans (1 thread, 1.7-1.9 KiB)\n", t_alloc / N,
		t_free / N);
	free(h);
	pool_destroy(p);
}

int main(void)
{
	const char *sc = getenv("USWAP_TEST_SCALE");

	if (sc && atoi(sc) > 0)
		scale = (unsigned)atoi(sc);
	T_RUN(t_every_class);
	T_RUN(t_tail_waste);
	T_RUN(t_span_accounting);
	T_RUN(t_return_to_os);
	T_RUN(t_cap);
	T_RUN(t_arena_exhaustion);
	T_RUN(t_threads);
	T_RUN(t_speed);
	fprintf(stderr, "test_pool: ok\n");
	return 0;
}

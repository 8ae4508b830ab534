/*
 * fuzz_pool.c - the size-classed pool (src/pool.c) against a reference map.
 *
 * Input: a header (cap, arena size), then operations.  Each input gets a
 * fresh pool: pool_create() with a small cap (or none), or, for some
 * inputs, pool_create_sized() with a small arena so that arena exhaustion
 * (-ENOMEM) and span splits are reached too.
 *
 * Operations: alloc (size from the input, edge sizes favoured), free,
 * rewrite, verify one / all, charge / uncharge, alloc a burst of one size,
 * free a burst.  The reference is the list of live objects: handle, size,
 * the seed of the pattern written into it.
 *
 * Checked after every operation:
 *  - every live object still holds its pattern (no overlap, no scribble by
 *    the allocator's free list);
 *  - handles are never 0 and unique; objects do not overlap; the class size
 *    is the size rounded up to 16; the object lies inside its span and the
 *    span's used count is the number of live objects in it;
 *  - pool_obj_bytes() == sum of class sizes of live objects;
 *    pool_bytes() >= baseline + obj bytes + charged; pool_bytes() <= cap;
 *  - errors: only -ENOSPC with a cap (or a charge), -ENOMEM with a small
 *    arena, -EINVAL for sizes 0 and > 4096;
 *  - pool_check() (every internal invariant of pool.c).
 * At the end everything is freed and uncharged: pool_obj_bytes() == 0,
 * pool_bytes() is back to baseline plus the span metadata (whole pages,
 * bounded), and every page an object ever used is no longer resident
 * (mincore): emptied spans were returned to the OS.
 */
#include <errno.h>
#include <stdbool.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz_common.h"
#include "pool.h"

/* test-only entry points of pool.c (declared by the tests, as here) */
int pool_check(struct uswap_pool *p);
int pool_span_info(struct uswap_pool *p, uint64_t handle, void **base,
		   size_t *len, unsigned *used, unsigned *cap);
struct uswap_pool *pool_create_sized(size_t cap_bytes, size_t arena_bytes);

#define MAX_OPS 256
#define MAX_LIVE 1024
#define MAX_PAGES 8192		/* pages remembered for the mincore check */
#define SPAN_MAX (256u << 10)	/* largest span (order 2) */

struct obj {
	uint64_t h;
	uint8_t *addr;
	uint32_t size;
	uint64_t seed;
};

static struct obj live[MAX_LIVE];
static unsigned nlive;
static uintptr_t pages[MAX_PAGES];
static unsigned npages;
static uint8_t scratch[FZ_PAGE];

static size_t class_size(size_t size)
{
	return (size + 15) & ~(size_t)15;
}

static void remember_pages(const uint8_t *a, size_t len)
{
	uintptr_t first = (uintptr_t)a & ~(uintptr_t)(FZ_PAGE - 1);
	uintptr_t last = ((uintptr_t)a + len - 1) & ~(uintptr_t)(FZ_PAGE - 1);

	for (uintptr_t p = first; p <= last && npages < MAX_PAGES; p += FZ_PAGE)
		pages[npages++] = p;
}

static void obj_write(struct obj *o, uint64_t seed)
{
	o->seed = seed;
	fz_random(o->addr, o->size, seed);
}

static void obj_verify(const struct obj *o, const char *when)
{
	fz_random(scratch, o->size, o->seed);
	if (memcmp(scratch, o->addr, o->size)) {
		size_t i = 0;

		while (scratch[i] == o->addr[i])
			i++;
		FZ_CHECK(0, "%s: object %#llx (size %u) byte %zu is %#x, wrote %#x",
			 when, (unsigned long long)o->h, o->size, i, o->addr[i],
			 scratch[i]);
	}
}

static void check_new(struct uswap_pool *p, const struct obj *o)
{
	size_t cs = class_size(o->size);
	void *base;
	size_t len;
	unsigned used, cap, in_span = 0;

	FZ_CHECK(o->h != 0, "handle 0");
	FZ_CHECK(pool_obj_size(p, o->h) == cs, "size %u: class size %zu, expected %zu",
		 o->size, pool_obj_size(p, o->h), cs);
	FZ_CHECK(pool_span_info(p, o->h, &base, &len, &used, &cap) == 0, "span info");
	FZ_CHECK(len == 64u << 10 || len == 128u << 10 || len == SPAN_MAX,
		 "span length %zu", len);
	FZ_CHECK(o->addr >= (uint8_t *)base && o->addr + cs <= (uint8_t *)base + len,
		 "object %p+%zu outside its span %p+%zu", (void *)o->addr, cs, base, len);
	FZ_CHECK(((size_t)(o->addr - (uint8_t *)base)) % cs == 0,
		 "object at span offset %zu, not a multiple of %zu",
		 (size_t)(o->addr - (uint8_t *)base), cs);
	FZ_CHECK(cap == len / cs, "span cap %u, expected %zu", cap, len / cs);
	for (unsigned i = 0; i < nlive; i++) {
		const struct obj *q = &live[i];
		size_t qs = class_size(q->size);

		if (q == o)
			continue;
		FZ_CHECK(q->h != o->h, "handle %#llx handed out twice",
			 (unsigned long long)o->h);
		FZ_CHECK(o->addr + cs <= q->addr || q->addr + qs <= o->addr,
			 "objects %#llx and %#llx overlap", (unsigned long long)o->h,
			 (unsigned long long)q->h);
	}
	for (unsigned i = 0; i < nlive; i++)
		if (live[i].addr >= (uint8_t *)base && live[i].addr < (uint8_t *)base + len)
			in_span++;
	FZ_CHECK(used == in_span, "span %p: used %u, live objects in it %u", base,
		 used, in_span);
}

struct run {
	struct uswap_pool *p;
	size_t cap;
	bool small_arena;
	uint64_t baseline;
	int64_t charged;
	uint64_t obj_bytes;
	uint64_t seed;
};

static void check_pool(struct run *r)
{
	uint64_t pb = pool_bytes(r->p);

	FZ_CHECK(pool_obj_bytes(r->p) == r->obj_bytes, "obj bytes %llu, expected %llu",
		 (unsigned long long)pool_obj_bytes(r->p), (unsigned long long)r->obj_bytes);
	FZ_CHECK(pb >= r->baseline + r->obj_bytes + (uint64_t)r->charged,
		 "pool_bytes %llu < baseline %llu + objects %llu + charged %lld",
		 (unsigned long long)pb, (unsigned long long)r->baseline,
		 (unsigned long long)r->obj_bytes, (long long)r->charged);
	FZ_CHECK(!r->cap || pb <= r->cap, "pool_bytes %llu over the cap %zu",
		 (unsigned long long)pb, r->cap);
	FZ_CHECK(pool_check(r->p) == 0, "pool_check failed (message above)");
}

static bool do_alloc(struct run *r, size_t size)
{
	uint64_t h = 0;
	int err = pool_alloc(r->p, size, &h);

	if (size == 0 || size > FZ_PAGE) {
		FZ_CHECK(err == -EINVAL, "alloc of %zu bytes: %d, expected -EINVAL",
			 size, err);
		return false;
	}
	if (err) {
		FZ_CHECK((err == -ENOSPC && r->cap) || (err == -ENOMEM && r->small_arena),
			 "alloc of %zu bytes: %d (cap %zu, small arena %d)", size, err,
			 r->cap, r->small_arena);
		return false;
	}
	FZ_CHECK(nlive < MAX_LIVE, "too many objects");
	struct obj *o = &live[nlive++];

	o->h = h;
	o->size = (uint32_t)size;
	o->addr = pool_map(r->p, h);
	check_new(r->p, o);
	obj_write(o, fz_mix(r->seed++));
	remember_pages(o->addr, size);
	r->obj_bytes += class_size(size);
	return true;
}

static void do_free(struct run *r, unsigned i)
{
	struct obj *o = &live[i];

	obj_verify(o, "before free");
	pool_free(r->p, o->h);
	r->obj_bytes -= class_size(o->size);
	live[i] = live[--nlive];
}

/* A size: mostly small (compressed pages are ~1-3 KiB), edges often. */
static size_t pick_size(struct fz *f)
{
	uint8_t m = fz_u8(f);
	uint16_t v = fz_u16(f);

	switch (m % 8) {
	case 0: return 1 + v % 64;
	case 1: return 1 + v % 4096;
	case 2: return (size_t)(1 + v % 256) * 16;		/* exact class */
	case 3: return (size_t)(1 + v % 256) * 16 + 1;		/* one over */
	case 4: return 4096 - v % 32;
	case 5: return 1024 + v % 2048;
	case 6: return m & 0x80 ? 0 : 4097 + v % 8;		/* invalid */
	default: return 1 + v % 3072;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz f = { data, size };
	struct run r = { 0 };
	uint8_t capsel = fz_u8(&f), arenasel = fz_u8(&f);

	/* cap: none, or 48 KiB .. 3.6 MiB (tight enough to hit -ENOSPC).
	 * Not below 48 KiB: the pool's own struct is 36 KiB and pool_create()
	 * accepts a cap below it, leaving the pool over its cap from the
	 * start (reported separately, see README.md). */
	r.cap = capsel < 32 ? 0 : (size_t)(capsel - 32) * (16u << 10) + (48u << 10);
	r.small_arena = arenasel % 4 == 0;
	if (r.small_arena)
		r.p = pool_create_sized(r.cap, (size_t)(1 + arenasel / 4 % 8) * SPAN_MAX);
	else
		r.p = pool_create(r.cap);
	FZ_CHECK(r.p, "pool_create");
	r.baseline = pool_bytes(r.p);
	r.seed = size;
	nlive = 0;
	npages = 0;
	check_pool(&r);

	for (unsigned op = 0; op < MAX_OPS && fz_left(&f); op++) {
		uint8_t k = fz_u8(&f);

		switch (k % 10) {
		case 0:
		case 1:
			do_alloc(&r, pick_size(&f));
			break;
		case 2:
		case 3:
			if (nlive)
				do_free(&r, fz_u16(&f) % nlive);
			break;
		case 4:
			if (nlive) {
				struct obj *o = &live[fz_u16(&f) % nlive];

				obj_verify(o, "before rewrite");
				obj_write(o, fz_mix(r.seed++));
			}
			break;
		case 5:
			for (unsigned i = 0; i < nlive; i++)
				obj_verify(&live[i], "verify all");
			break;
		case 6: {	/* charge 1..64 pages, or give some back */
			uint8_t c = fz_u8(&f);

			if (c & 0x80) {
				int64_t back = r.charged ? (int64_t)((c & 0x7f) % 64 + 1) * FZ_PAGE : 0;

				if (back > r.charged)
					back = r.charged;
				FZ_CHECK(pool_charge(r.p, -back) == 0, "uncharge");
				r.charged -= back;
			} else {
				int64_t b = (int64_t)(c % 64 + 1) * FZ_PAGE;
				int err = pool_charge(r.p, b);

				FZ_CHECK(err == 0 || (err == -ENOSPC && r.cap),
					 "charge %lld: %d", (long long)b, err);
				if (!err)
					r.charged += b;
			}
			break;
		}
		case 7: {	/* a burst of one size: fills spans */
			size_t sz = pick_size(&f);
			unsigned n = 1 + fz_u8(&f) % 128;

			for (unsigned i = 0; i < n && nlive < MAX_LIVE; i++)
				if (!do_alloc(&r, sz))
					break;
			break;
		}
		case 8: {	/* free every k-th object: partial spans */
			unsigned step = 1 + fz_u8(&f) % 4, start = fz_u8(&f);

			for (unsigned i = nlive; i-- > 0;)
				if ((i + start) % step == 0)
					do_free(&r, i);
			break;
		}
		case 9:		/* free the newest few: spans empty in order */
			for (unsigned n = 1 + fz_u8(&f) % 32; n-- && nlive;)
				do_free(&r, nlive - 1);
			break;
		}
		check_pool(&r);
	}

	for (unsigned i = 0; i < nlive; i++)
		obj_verify(&live[i], "at the end");
	while (nlive)
		do_free(&r, nlive - 1);
	if (r.charged)
		FZ_CHECK(pool_charge(r.p, -r.charged) == 0, "uncharge all");
	r.charged = 0;
	check_pool(&r);
	FZ_CHECK(pool_obj_bytes(r.p) == 0, "objects left");
	/* only span metadata may stay: whole pages, 20-byte entries for at
	 * most the spans a cap (or the live limit) allowed */
	uint64_t extra = pool_bytes(r.p) - r.baseline;
	FZ_CHECK(extra % FZ_PAGE == 0 && extra <= 16 * FZ_PAGE,
		 "after freeing everything pool_bytes is baseline %llu + %llu",
		 (unsigned long long)r.baseline, (unsigned long long)extra);
	/* emptied spans were given back: none of their pages is resident */
	for (unsigned i = 0; i < npages; i++) {
		unsigned char vec = 0;

		FZ_CHECK(mincore((void *)pages[i], FZ_PAGE, &vec) == 0, "mincore");
		FZ_CHECK(!(vec & 1), "page %#lx of an emptied span still resident",
			 (unsigned long)pages[i]);
	}
	pool_destroy(r.p);
	return 0;
}

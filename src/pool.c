/*
 * pool.c - size-classed allocator for compressed objects (like zsmalloc).
 *
 * Layout
 * ------
 * One virtual arena is reserved at create time (MAP_NORESERVE: nothing is
 * committed until touched) and cut into 64 KiB units.  A span is 1, 2 or 4
 * consecutive units (order 0..2).  Each of the 256 size classes (16-byte
 * steps up to 4096) uses one span order: the smallest whose tail (the bytes
 * at the end of a span too small for one more object) is <= 1% of the span,
 * else the order with the least tail.  For the ~1.8 KiB objects of typical
 * data that keeps tail waste at 0.2-1%, where plain 64 KiB spans lose up to
 * 2.6%; small classes all fit in 64 KiB spans, which empty more readily.
 *
 * A span is committed while a class owns it, free otherwise.
 *
 * Objects never cross a span.  A free object holds the index + 1 of the next
 * free object of its span in its first two bytes (an embedded free list, as
 * in a slab); objects never used yet are carved lazily in address order, so
 * a span's memory is touched front to back and only as far as it was ever
 * used: the pages in RAM are those under carved * size.
 *
 * What is held from the OS (pool_bytes) is therefore counted by page: the
 * touched prefix of each span (page-rounded), the metadata pages, this
 * struct, and what the owner charges for its own per-object records (its
 * slot table: pool_charge()).  The cap is applied to whole spans when they
 * are taken ("reserved"), so pool_bytes() <= reserved + the rest <= cap.
 *
 * Span metadata lives in p->spans[], one entry per unit, indexed by the
 * span's first unit; the entries of a multi-unit span's other units are
 * unused.  Metadata pages are counted from the arena's bump pointer, i.e.
 * every entry below it counts as touched (and they are: never released).
 *
 * A span that empties is MADV_DONTNEED'ed and pushed on its order's free
 * list; any class of that order reuses it.  A span of a larger order is
 * split when a smaller one is needed and the bump pointer has no room left.
 * A handle is (first unit << 16) | (object index + 1): never 0.
 *
 * Within a class, partially full spans are kept in NGROUPS lists by
 * fullness (like zsmalloc's fullness groups) and new objects go to the
 * fullest span first, so lightly used spans drain and get returned to the
 * OS instead of lingering half empty.
 *
 * Invariants (cap = objects per span of the span's class)
 * ----------
 * Per committed span s:
 *   s.used + |s.free list| + (cap - s.carved) == cap
 *   0 < s.used < cap  <=>  s is on partial list s.group == used*NGROUPS/cap
 *   s.used == cap     <=>  s.group == G_FULL, on no list
 *   s.used == 0       =>   s.group == G_EMPTY: being returned, on no list
 * Per free span s:  s.group == G_FREE, s is on free_spans[s.order]
 * Pool:
 *   units below bump == sum of (1 << order) over committed and free spans
 *   class.nspans == number of committed spans of the class
 *   reserved == sum over committed spans of span bytes
 *   touched == sum over committed spans of page_round(carved * size)
 *   obj_bytes == sum over allocated objects of their class size
 *   pool_bytes() == touched + meta_bytes + struct_bytes + charged
 *   cap != 0  =>  reserved + meta_bytes + struct_bytes + charged <= cap
 *
 * Locking (indentation = nests inside)
 * -------
 *   class->lock    the class's partial lists; the list and object fields
 *                  of the class's committed spans
 *     p->span_lock free-span lists, bump, reserved, meta_bytes and charged
 *                  writes,
 *                  the fields of free spans
 * Both are leaves for callers: nothing else is taken inside them.  A span
 * is emptied under its class lock, returned to the OS with no lock held
 * (no one can reach it: no object, no list), then pushed under span_lock.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "backend.h"
#include "pool.h"

#define UNIT_SHIFT 16			/* 64 KiB units */
#define UNIT_SIZE ((size_t)1 << UNIT_SHIFT)
#define NORDERS 3			/* spans of 64, 128, 256 KiB */
#define CLASS_SHIFT 4			/* 16-byte class steps */
#define NCLASSES (USWAP_PAGE_SIZE >> CLASS_SHIFT)
#define NGROUPS 4			/* fullness groups of partial spans */
#define TAIL_PERMILLE 10		/* tail waste accepted: 1% */
#define ARENA_MAX ((size_t)64 << 30)	/* reserve tried first */
#define ARENA_MIN ((size_t)256 << 20)	/* give up below this */
#define IDX_BITS 16
#define NONE UINT32_MAX			/* list terminator */

/* span->group beyond the partial groups 0..NGROUPS-1 */
enum { G_FULL = NGROUPS, G_EMPTY, G_FREE };

struct span {
	uint32_t next, prev;	/* list links: class lock (partial lists), or
				 * span_lock (free lists) */
	uint16_t cls;		/* class index: set when a class takes the span,
				 * stable while it holds an object (read
				 * lock-free by pool_map/pool_free, whose caller
				 * owns an object) */
	uint16_t used;		/* objects allocated: class lock */
	uint16_t free_head;	/* first free object + 1, 0 = none: class lock */
	uint16_t carved;	/* objects handed out at least once: class lock */
	uint8_t order;		/* span is UNIT_SIZE << order bytes: set by
				 * span_lock holder, stable while committed */
	uint8_t group;		/* fullness group or G_*: class lock while
				 * committed, span_lock while free */
};

struct pool_class {
	pthread_mutex_t lock;
	uint32_t partial[NGROUPS];	/* heads of partial lists: lock */
	uint64_t nspans;		/* committed spans: lock */
	uint32_t size;			/* object bytes: constant */
	uint32_t cap;			/* objects per span: constant */
	uint8_t order;			/* span order: constant */
} __attribute__((aligned(64)));

struct uswap_pool {
	char *arena;			/* constant */
	size_t arena_len;		/* constant */
	size_t nunits;			/* units in the arena: constant */
	struct span *spans;		/* nunits entries: see struct span */
	size_t spans_len;		/* bytes mapped for spans[]: constant */
	size_t cap;			/* 0 = none: constant */
	uint64_t struct_bytes;		/* this struct, page-rounded: constant */

	pthread_mutex_t span_lock;
	uint32_t free_spans[NORDERS];	/* free-list heads: span_lock */
	size_t bump;			/* units carved from the arena: span_lock */
	/* written under span_lock; meta_bytes and charged also read
	 * lock-free (relaxed) by pool_bytes() */
	_Atomic uint64_t reserved;
	_Atomic uint64_t meta_bytes;
	_Atomic uint64_t charged;
	/* RMW'ed (relaxed) under class locks and by span_put() */
	_Atomic uint64_t touched;
	/* lock-free (relaxed): bytes of objects in use, by class size */
	_Atomic uint64_t obj_bytes;

	struct pool_class classes[NCLASSES];
};

static inline size_t span_bytes(unsigned order)
{
	return UNIT_SIZE << order;
}

static inline char *span_addr(struct uswap_pool *p, uint32_t s)
{
	return p->arena + ((size_t)s << UNIT_SHIFT);
}

static inline uint64_t page_round(uint64_t n)
{
	return (n + USWAP_PAGE_SIZE - 1) & ~(uint64_t)(USWAP_PAGE_SIZE - 1);
}

static __attribute__((noreturn, format(printf, 1, 2))) void
pool_die(const char *fmt, ...);

/* ---------------------------------------------------------------- lists */

/* Push span @s at the head of the list at @head (caller holds its lock). */
static void list_push(struct uswap_pool *p, uint32_t *head, uint32_t s)
{
	struct span *sp = &p->spans[s];

	sp->prev = NONE;
	sp->next = *head;
	if (*head != NONE)
		p->spans[*head].prev = s;
	*head = s;
}

/* Unlink span @s from the list at @head (caller holds its lock). */
static void list_del(struct uswap_pool *p, uint32_t *head, uint32_t s)
{
	struct span *sp = &p->spans[s];

	if (sp->prev != NONE)
		p->spans[sp->prev].next = sp->next;
	else
		*head = sp->next;
	if (sp->next != NONE)
		p->spans[sp->next].prev = sp->prev;
	sp->next = sp->prev = NONE;
}

/* ------------------------------------------------------------ span list */

/* Bytes of span metadata covering @units units, as whole pages. */
static uint64_t meta_bytes_for(size_t units)
{
	return page_round((uint64_t)units * sizeof(struct span));
}

/* Would holding @extra more bytes break the cap?  Caller holds span_lock. */
static bool over_cap(struct uswap_pool *p, uint64_t extra)
{
	uint64_t held = atomic_load_explicit(&p->reserved, memory_order_relaxed) +
			atomic_load_explicit(&p->meta_bytes, memory_order_relaxed) +
			atomic_load_explicit(&p->charged, memory_order_relaxed) +
			p->struct_bytes;

	return p->cap && held + extra > p->cap;
}

/* Mark @s a free span of @order and push it.  Caller holds span_lock. */
static void free_push(struct uswap_pool *p, uint32_t s, unsigned order)
{
	p->spans[s].order = (uint8_t)order;
	p->spans[s].group = G_FREE;
	list_push(p, &p->free_spans[order], s);
}

/*
 * Take a free span of a larger order, split it into spans of @order, keep
 * the first and push the rest.  Virtual space only: all of them are already
 * returned to the OS.  Caller holds span_lock.  NONE if there is none.
 */
static uint32_t free_split(struct uswap_pool *p, unsigned order)
{
	for (unsigned o = order + 1; o < NORDERS; o++) {
		uint32_t s = p->free_spans[o];

		if (s == NONE)
			continue;
		list_del(p, &p->free_spans[o], s);
		for (uint32_t u = 1u << order; u < 1u << o; u += 1u << order)
			free_push(p, s + u, order);
		return s;
	}
	return NONE;
}

/*
 * Commit a span of @order: reuse a free one, else carve from the arena,
 * else split a larger free one.  0 and *out, -ENOSPC (cap), -ENOMEM
 * (arena exhausted).  Called with a class lock held (takes span_lock).
 */
static int span_get(struct uswap_pool *p, unsigned order, uint32_t *out)
{
	size_t n = (size_t)1 << order;
	uint64_t meta = 0;
	uint32_t s;
	int err = 0;

	pthread_mutex_lock(&p->span_lock);
	if (p->free_spans[order] != NONE) {
		s = p->free_spans[order];
		if (over_cap(p, span_bytes(order)))
			goto nospc;
		list_del(p, &p->free_spans[order], s);
	} else if (p->bump + n <= p->nunits) {
		meta = meta_bytes_for(p->bump + n);
		if (over_cap(p, span_bytes(order) + meta -
				atomic_load_explicit(&p->meta_bytes,
						     memory_order_relaxed)))
			goto nospc;
		s = (uint32_t)p->bump;
		p->bump += n;
		atomic_store_explicit(&p->meta_bytes, meta, memory_order_relaxed);
	} else {
		if (over_cap(p, span_bytes(order)))
			goto nospc;
		s = free_split(p, order);
		if (s == NONE) {
			err = -ENOMEM;
			goto out;
		}
	}
	p->spans[s].order = (uint8_t)order;
	atomic_fetch_add_explicit(&p->reserved, span_bytes(order),
				  memory_order_relaxed);
	*out = s;
	goto out;
nospc:
	err = -ENOSPC;
out:
	pthread_mutex_unlock(&p->span_lock);
	return err;
}

/*
 * Return an emptied span's memory (its @touched bytes) to the OS and push
 * it on the free list.  The caller holds no lock and the span is on no
 * list: nobody else can reach it.
 */
static void span_put(struct uswap_pool *p, uint32_t s, uint64_t touched)
{
	unsigned order = p->spans[s].order;

	if (madvise(span_addr(p, s), touched, MADV_DONTNEED))
		pool_die("uswap: pool: madvise(DONTNEED) of span %u failed", s);
	atomic_fetch_sub_explicit(&p->touched, touched, memory_order_relaxed);
	pthread_mutex_lock(&p->span_lock);
	free_push(p, s, order);
	atomic_fetch_sub_explicit(&p->reserved, span_bytes(order),
				  memory_order_relaxed);
	pthread_mutex_unlock(&p->span_lock);
}

/* --------------------------------------------------------------- classes */

static inline unsigned size_class(size_t size)
{
	return (unsigned)((size - 1) >> CLASS_SHIFT);
}

/* Fullness group of a span holding @used of @cap objects. */
static inline unsigned span_group(unsigned used, unsigned cap)
{
	if (used == 0)
		return G_EMPTY;
	if (used == cap)
		return G_FULL;
	return used * NGROUPS / cap;
}

/*
 * Move span @s to the list of its current fullness (it changed by one
 * object).  Caller holds the class lock.
 */
static void span_regroup(struct uswap_pool *p, struct pool_class *c,
			 uint32_t s)
{
	struct span *sp = &p->spans[s];
	unsigned g = span_group(sp->used, c->cap);

	if (g == sp->group)
		return;
	if (sp->group < NGROUPS)
		list_del(p, &c->partial[sp->group], s);
	if (g < NGROUPS)
		list_push(p, &c->partial[g], s);
	sp->group = (uint8_t)g;
}

/* The fullest partial span of a class, or NONE.  Class lock held. */
static uint32_t class_partial(struct pool_class *c)
{
	for (int g = NGROUPS - 1; g >= 0; g--)
		if (c->partial[g] != NONE)
			return c->partial[g];
	return NONE;
}

/* Set up span @s, just committed, for class @c.  Class lock held. */
static void span_init(struct uswap_pool *p, struct pool_class *c, uint32_t s)
{
	struct span *sp = &p->spans[s];

	sp->cls = (uint16_t)(c - p->classes);
	sp->used = 0;
	sp->free_head = 0;
	sp->carved = 0;
	sp->group = G_EMPTY;
	sp->next = sp->prev = NONE;
	c->nspans++;
}

static inline char *obj_addr(struct uswap_pool *p, struct pool_class *c,
			     uint32_t s, unsigned idx)
{
	return span_addr(p, s) + (size_t)idx * c->size;
}

/* Bytes of a span in RAM: the pages under its carved objects. */
static inline uint64_t span_touched(struct pool_class *c, unsigned carved)
{
	return page_round((uint64_t)carved * c->size);
}

/* Take an object from span @s (not full).  Class lock held. */
static unsigned span_take(struct uswap_pool *p, struct pool_class *c,
			  uint32_t s)
{
	struct span *sp = &p->spans[s];
	unsigned idx;

	if (sp->free_head) {
		uint16_t next;

		idx = sp->free_head - 1u;
		memcpy(&next, obj_addr(p, c, s, idx), sizeof(next));
		sp->free_head = next;
	} else {
		uint64_t before = span_touched(c, sp->carved);

		idx = sp->carved++;
		atomic_fetch_add_explicit(&p->touched,
					  span_touched(c, sp->carved) - before,
					  memory_order_relaxed);
	}
	sp->used++;
	span_regroup(p, c, s);
	return idx;
}

/* Pick the object sizes, capacities and span orders of the classes. */
static void classes_init(struct uswap_pool *p)
{
	for (unsigned i = 0; i < NCLASSES; i++) {
		struct pool_class *c = &p->classes[i];
		size_t size = (size_t)(i + 1) << CLASS_SHIFT;
		unsigned best = 0;
		double best_waste = 1.0;

		for (unsigned o = 0; o < NORDERS; o++) {
			size_t tail = span_bytes(o) % size;
			double waste = (double)tail / (double)span_bytes(o);

			if (waste < best_waste) {
				best = o;
				best_waste = waste;
			}
			if (tail * 1000 <= span_bytes(o) * TAIL_PERMILLE)
				break;
		}
		pthread_mutex_init(&c->lock, NULL);
		for (unsigned g = 0; g < NGROUPS; g++)
			c->partial[g] = NONE;
		c->size = (uint32_t)size;
		c->order = (uint8_t)best;
		c->cap = (uint32_t)(span_bytes(best) / size);
	}
}

/* ------------------------------------------------------------------- API */

/* Reserve the largest arena we can get, halving from @max. */
static int arena_reserve(struct uswap_pool *p, size_t max)
{
	size_t min = max < ARENA_MIN ? max : ARENA_MIN;

	for (size_t len = max; len >= min; len /= 2) {
		void *a = mmap(NULL, len, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
			       -1, 0);
		if (a == MAP_FAILED)
			continue;
		p->arena = a;
		p->arena_len = len;
		p->nunits = len >> UNIT_SHIFT;
		return 0;
	}
	return -ENOMEM;
}

static int meta_reserve(struct uswap_pool *p)
{
	void *m;

	p->spans_len = page_round(p->nunits * sizeof(struct span));
	m = mmap(NULL, p->spans_len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (m == MAP_FAILED)
		return -ENOMEM;
	p->spans = m;
	return 0;
}

/*
 * pool_create() with an arena of at most @arena_bytes (a multiple of 256
 * KiB): tests use a small one to reach arena exhaustion and span splits.
 * Declared by the tests, not in pool.h.
 */
struct uswap_pool *pool_create_sized(size_t cap_bytes, size_t arena_bytes)
{
	struct uswap_pool *p;

	if (arena_bytes < span_bytes(NORDERS - 1) ||
	    arena_bytes % span_bytes(NORDERS - 1)) {
		errno = EINVAL;
		return NULL;
	}
	if (posix_memalign((void **)&p, 64, sizeof(*p))) {
		errno = ENOMEM;
		return NULL;
	}
	memset(p, 0, sizeof(*p));
	p->cap = cap_bytes;
	p->struct_bytes = page_round(sizeof(*p));
	if (arena_reserve(p, arena_bytes) || meta_reserve(p)) {
		if (p->arena)
			munmap(p->arena, p->arena_len);
		free(p);
		errno = ENOMEM;
		return NULL;
	}
	pthread_mutex_init(&p->span_lock, NULL);
	for (unsigned o = 0; o < NORDERS; o++)
		p->free_spans[o] = NONE;
	classes_init(p);
	if (cap_bytes && pool_bytes(p) > cap_bytes) {
		/* The cap cannot even hold the pool's own metadata. */
		pool_destroy(p);
		errno = EINVAL;
		return NULL;
	}
	return p;
}

struct uswap_pool *pool_create(size_t cap_bytes)
{
	return pool_create_sized(cap_bytes, ARENA_MAX);
}

void pool_destroy(struct uswap_pool *p)
{
	if (!p)
		return;
	for (unsigned i = 0; i < NCLASSES; i++)
		pthread_mutex_destroy(&p->classes[i].lock);
	pthread_mutex_destroy(&p->span_lock);
	munmap(p->spans, p->spans_len);
	munmap(p->arena, p->arena_len);
	free(p);
}

int pool_alloc(struct uswap_pool *p, size_t size, uint64_t *handle)
{
	struct pool_class *c;
	unsigned idx;
	uint32_t s;

	if (size == 0 || size > USWAP_PAGE_SIZE)
		return -EINVAL;
	c = &p->classes[size_class(size)];
	pthread_mutex_lock(&c->lock);
	s = class_partial(c);
	if (s == NONE) {
		int err = span_get(p, c->order, &s);

		if (err) {
			pthread_mutex_unlock(&c->lock);
			return err;
		}
		span_init(p, c, s);
	}
	idx = span_take(p, c, s);
	pthread_mutex_unlock(&c->lock);

	atomic_fetch_add_explicit(&p->obj_bytes, c->size, memory_order_relaxed);
	*handle = ((uint64_t)s << IDX_BITS) | (idx + 1u);
	return 0;
}

/*
 * Decode a handle: its span, object index and class.  A handle that cannot
 * be ours is a caller bug: abort rather than scribble on the arena.
 */
static struct pool_class *handle_decode(struct uswap_pool *p, uint64_t h,
					uint32_t *s, unsigned *idx)
{
	uint64_t span = h >> IDX_BITS;
	unsigned i = (unsigned)(h & ((1u << IDX_BITS) - 1));
	unsigned cls;

	if (span >= p->nunits || i == 0)
		pool_die("uswap: pool: bad handle %#llx", (unsigned long long)h);
	cls = p->spans[span].cls;
	if (cls >= NCLASSES || i > p->classes[cls].cap)
		pool_die("uswap: pool: bad handle %#llx", (unsigned long long)h);
	*s = (uint32_t)span;
	*idx = i - 1;
	return &p->classes[cls];
}

void pool_free(struct uswap_pool *p, uint64_t handle)
{
	struct pool_class *c;
	struct span *sp;
	unsigned idx;
	uint32_t s;
	uint64_t touched = 0;
	uint16_t next;
	bool empty;

	c = handle_decode(p, handle, &s, &idx);
	sp = &p->spans[s];
	pthread_mutex_lock(&c->lock);
	if (sp->group > G_FULL || sp->used == 0 || idx >= sp->carved)
		pool_die("uswap: pool: free of unallocated object %#llx",
			 (unsigned long long)handle);
	next = sp->free_head;
	memcpy(obj_addr(p, c, s, idx), &next, sizeof(next));
	sp->free_head = (uint16_t)(idx + 1);
	sp->used--;
	span_regroup(p, c, s);
	empty = sp->used == 0;
	if (empty) {
		c->nspans--;
		touched = span_touched(c, sp->carved);
	}
	pthread_mutex_unlock(&c->lock);

	atomic_fetch_sub_explicit(&p->obj_bytes, c->size, memory_order_relaxed);
	if (empty)
		span_put(p, s, touched);
}

void *pool_map(struct uswap_pool *p, uint64_t handle)
{
	struct pool_class *c;
	unsigned idx;
	uint32_t s;

	c = handle_decode(p, handle, &s, &idx);
	return obj_addr(p, c, s, idx);
}

size_t pool_obj_size(struct uswap_pool *p, uint64_t handle)
{
	unsigned idx;
	uint32_t s;

	return handle_decode(p, handle, &s, &idx)->size;
}

uint64_t pool_bytes(struct uswap_pool *p)
{
	return atomic_load_explicit(&p->touched, memory_order_relaxed) +
	       atomic_load_explicit(&p->meta_bytes, memory_order_relaxed) +
	       atomic_load_explicit(&p->charged, memory_order_relaxed) +
	       p->struct_bytes;
}

uint64_t pool_obj_bytes(struct uswap_pool *p)
{
	return atomic_load_explicit(&p->obj_bytes, memory_order_relaxed);
}

/*
 * Count @bytes that the pool's owner holds for its objects (its slot
 * table) in pool_bytes() and against the cap; negative gives them back.
 * 0, or -ENOSPC (nothing charged) when the cap would be exceeded.  Takes
 * span_lock: callers may hold their own leaf locks, never a class lock.
 */
int pool_charge(struct uswap_pool *p, int64_t bytes)
{
	int err = 0;

	pthread_mutex_lock(&p->span_lock);
	if (bytes > 0 && over_cap(p, (uint64_t)bytes))
		err = -ENOSPC;
	else
		atomic_fetch_add_explicit(&p->charged, (uint64_t)bytes,
					  memory_order_relaxed);
	pthread_mutex_unlock(&p->span_lock);
	return err;
}

/* ------------------------------------------------- introspection (tests) */

/*
 * Not in pool.h on purpose (tests declare them): they take every lock or
 * expose layout, which nothing but a test should depend on.
 */

/* Where the span of @handle lives, and how many objects it holds and can
 * hold.  The caller must own @handle. */
int pool_span_info(struct uswap_pool *p, uint64_t handle, void **base,
		   size_t *len, unsigned *used, unsigned *cap)
{
	struct pool_class *c;
	unsigned idx;
	uint32_t s;

	c = handle_decode(p, handle, &s, &idx);
	pthread_mutex_lock(&c->lock);
	*base = span_addr(p, s);
	*len = span_bytes(p->spans[s].order);
	*used = p->spans[s].used;
	*cap = c->cap;
	pthread_mutex_unlock(&c->lock);
	return 0;
}

/* Span bytes and objects per span of the class serving @size. */
int pool_class_info(struct uswap_pool *p, size_t size, size_t *span_len,
		    unsigned *cap)
{
	struct pool_class *c;

	if (size == 0 || size > USWAP_PAGE_SIZE)
		return -EINVAL;
	c = &p->classes[size_class(size)];
	*span_len = span_bytes(c->order);
	*cap = c->cap;
	return 0;
}

static int check_fail(const char *what, uint32_t s)
{
	fprintf(stderr, "uswap: pool_check: span %u: %s\n", s, what);
	return -EUCLEAN;
}

/* Check one committed span of class @c against the invariants. */
static int check_span(struct uswap_pool *p, struct pool_class *c, uint32_t s,
		      uint64_t *objs)
{
	struct span *sp = &p->spans[s];
	unsigned nfree = 0, g = span_group(sp->used, c->cap);

	if (sp->order != c->order)
		return check_fail("order differs from its class", s);
	if (sp->carved > c->cap || sp->used > sp->carved)
		return check_fail("used/carved out of range", s);
	for (unsigned f = sp->free_head; f; nfree++) {
		uint16_t next;

		if (f > sp->carved || nfree > c->cap)
			return check_fail("free list broken", s);
		memcpy(&next, obj_addr(p, c, s, f - 1), sizeof(next));
		f = next;
	}
	if (sp->used + nfree + (c->cap - sp->carved) != c->cap)
		return check_fail("used + free + uncarved != capacity", s);
	if (sp->group != g || g == G_EMPTY)
		return check_fail("fullness group wrong", s);
	*objs += (uint64_t)sp->used * c->size;
	return 0;
}

/* Is span @s on the list at @head? */
static bool on_list(struct uswap_pool *p, uint32_t head, uint32_t s)
{
	for (uint32_t x = head; x != NONE; x = p->spans[x].next)
		if (x == s)
			return true;
	return false;
}

/*
 * Check every invariant at the top of this file.  The pool must be
 * quiescent: no call in flight, and the caller synchronised with the
 * threads that made the earlier calls (joined them, say).  It takes no
 * lock: holding all 257 at once would be the only alternative, which
 * buys nothing for a test and trips TSan's 64-lock limit.
 * O(spans * objects).  0, or -EUCLEAN and a message on stderr.
 */
int pool_check(struct uswap_pool *p)
{
	uint64_t reserved = 0, touched = 0, objs = 0;
	uint64_t nspans[NCLASSES] = { 0 };
	int err = 0;

	for (size_t u = 0; u < p->bump && !err;
	     u += (size_t)1 << p->spans[u].order) {
		struct span *sp = &p->spans[u];
		uint32_t s = (uint32_t)u;

		if (sp->order >= NORDERS) {
			err = check_fail("bad order", s);
		} else if (sp->group == G_FREE) {
			if (!on_list(p, p->free_spans[sp->order], s))
				err = check_fail("free span not on free list", s);
		} else if (sp->group == G_EMPTY) {
			err = check_fail("empty span not returned", s);
		} else {
			struct pool_class *c = &p->classes[sp->cls];

			reserved += span_bytes(sp->order);
			touched += span_touched(c, sp->carved);
			nspans[sp->cls]++;
			err = check_span(p, c, s, &objs);
			if (!err && sp->group < NGROUPS &&
			    !on_list(p, c->partial[sp->group], s))
				err = check_fail("partial span not listed", s);
		}
	}
	for (unsigned i = 0; i < NCLASSES && !err; i++)
		if (nspans[i] != p->classes[i].nspans)
			err = check_fail("class span count differs", NONE);
	if (!err && reserved != atomic_load(&p->reserved))
		err = check_fail("reserved bytes differ from spans", NONE);
	if (!err && touched != atomic_load(&p->touched))
		err = check_fail("touched bytes differ from spans", NONE);
	if (!err && objs != atomic_load(&p->obj_bytes))
		err = check_fail("object bytes differ from spans", NONE);
	if (!err && p->cap && reserved + atomic_load(&p->meta_bytes) +
			      atomic_load(&p->charged) + p->struct_bytes > p->cap)
		err = check_fail("over the cap", NONE);
	return err;
}

static void pool_die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	abort();
}

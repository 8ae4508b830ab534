/*
 * zbackend.c - the compressed in-memory backend ("zram").
 *
 * A slot is a 16-byte record (four per cache line) in one big table
 * reserved with MAP_NORESERVE (ZB_MAX_SLOTS records of virtual space; pages
 * are committed as the high-water mark grows and are never given back).
 * Slot 0 is never handed out, so callers may use 0 as "no slot".  A slot
 * holds one of:
 *   SAME  a page of one repeated 8-byte word (zero included): the word is
 *         in the record, no pool space;
 *   COMP  a compressed page of at most ZB_COMP_MAX bytes in a pool object;
 *   RAW   a page that did not compress below ZB_COMP_MAX, stored as is.
 *
 * Why ZB_COMP_MAX = 3/4 page (3072 bytes; zram switches to raw at
 * zsmalloc's huge class, about 3.2 KiB): above it compression saves under
 * a quarter of the page, yet every swap-in would pay a decompression,
 * where a raw page loads with one memcpy.  The compressor is handed a
 * ZB_COMP_MAX-byte output buffer, so LZ4 gives up as soon as an
 * incompressible page overflows it instead of finishing the page.
 *
 * COMP and RAW records keep a 32-bit checksum of the original page
 * (page_csum(): 4-stream CRC32C on the crc32 instruction) checked on every
 * load.  The decoders catch most corruption (bad lengths, offsets,
 * tokens), but a flipped literal byte still decodes to a full page of wrong
 * data, and a RAW page has no structure at all: only the checksum turns
 * those into -EIO.  It costs ~0.1-0.2 us per store and per load.
 *
 * Invariants
 *   refs == 0  <=>  kind == FREE  <=>  the slot is on the free list or
 *                   >= hwm (I1)
 *   refs > 0   =>   kind is SAME, COMP or RAW; COMP and RAW own exactly one
 *                   pool object, len <= pool_obj_size(handle)
 *   every slot in [1, hwm) is allocated or on the free list exactly once
 * and, once stores and frees have returned (the counters are updated just
 * outside the slot operations):
 *   stored_pages == #{refs > 0};  zero_pages == #SAME;  raw_pages == #RAW
 *   stored_compr_bytes == sum of len over COMP and RAW slots
 *
 * Memory (stats.pool_bytes): the pool's pages in RAM (see pool.c), plus the
 * touched part of the slot table (16 bytes per slot ever used), plus this
 * struct; the last two are charged to the pool (pool_charge()), so the cap
 * bounds all three: stats.pool_bytes <= pool_cap.  The per-thread contexts
 * (codec state, a 3 KiB buffer) are not counted, like zram's per-CPU
 * streams.
 *
 * Concurrency
 *   Per-slot fields are written only by the thread that allocates the slot
 *   (store) or drops its last reference (free), and read only by holders
 *   of a reference.  store() publishes the record with a release store of
 *   its state word (kind, 1 reference); load() reads the word with acquire
 *   before anything else, and every free() is an acq_rel RMW, so every
 *   reader's last access happens before the object is released.
 *
 * Lock order (indentation = nests inside); all are leaves for callers
 *   free_lock                    slot free list, hwm
 *     pool span_lock             (pool_charge() when the table grows)
 *   pool class lock              (pool_alloc/pool_free)
 *     pool span_lock
 */
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <pthread.h>

#include "backend.h"
#include "compress.h"
#include "fbackend.h"
#include "pool.h"

#define ZB_MAX_SLOTS (1u << 26)		/* 256 GiB of pages */
#define ZB_MIN_SLOTS (1u << 20)		/* smallest table we accept */
#define ZB_COMP_MAX (USWAP_PAGE_SIZE * 3 / 4)

enum zkind { ZS_FREE = 0, ZS_SAME, ZS_COMP, ZS_RAW };

/*
 * A slot record.  The kind lives in the state word beside the reference
 * count because a SAME slot's data needs all 64 bits for its word.
 */
struct zslot {
	_Atomic uint32_t state;	/* kind << REF_BITS | references; 0 = free */
	uint32_t csum;		/* page_csum() of the page (COMP, RAW) */
	uint64_t data;		/* COMP, RAW: handle | len << HANDLE_BITS;
				 * SAME: the word; free: next free slot
				 * (free_lock).  Published by state. */
};

_Static_assert(sizeof(struct zslot) == 16, "slot records are 16 bytes");

#define REF_BITS 30
#define REF_MASK ((1u << REF_BITS) - 1)
#define HANDLE_BITS 48		/* pool handles are < 2^36 (pool.c) */
#define HANDLE_MASK ((1ull << HANDLE_BITS) - 1)

static inline unsigned st_refs(uint32_t st)
{
	return st & REF_MASK;
}

static inline enum zkind st_kind(uint32_t st)
{
	return (enum zkind)(st >> REF_BITS);
}

static inline uint64_t zs_handle(const struct zslot *zs)
{
	return zs->data & HANDLE_MASK;
}

static inline unsigned zs_len(const struct zslot *zs)
{
	return (unsigned)(zs->data >> HANDLE_BITS);
}

struct zbackend {
	struct uswap_backend base;
	struct uswap_zconfig cfg;	/* constant */
	struct uswap_pool *pool;	/* constant */
	struct zslot *slots;		/* constant; records: see struct zslot */
	uint32_t nslots;		/* records reserved: constant */

	pthread_mutex_t free_lock;
	uint32_t free_head;		/* free-list head, 0 = empty: free_lock */
	uint32_t hwm;			/* next never-used slot: free_lock */
	/* slot-table bytes charged to the pool: free_lock */
	uint64_t table_bytes;

	/* statistics: relaxed atomics, updated where the event happens */
	_Atomic uint64_t stored_pages, compr_bytes, zero_pages, raw_pages,
		store_failures;
};

struct zctx {
	struct uswap_codec *codec;
	unsigned char buf[ZB_COMP_MAX];	/* compression output */
};

static const struct uswap_backend_ops zb_ops;

static inline struct zbackend *to_zb(struct uswap_backend *b)
{
	return (struct zbackend *)b;
}

static __attribute__((noreturn, format(printf, 1, 2))) void
zb_die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	abort();
}

static inline uint64_t page_round(uint64_t n)
{
	return (n + USWAP_PAGE_SIZE - 1) & ~(uint64_t)(USWAP_PAGE_SIZE - 1);
}

#define STAT_ADD(zb, f, n) \
	atomic_fetch_add_explicit(&(zb)->f, (n), memory_order_relaxed)
#define STAT_SUB(zb, f, n) \
	atomic_fetch_sub_explicit(&(zb)->f, (n), memory_order_relaxed)

/* ---------------------------------------------------------- slot table */

/* A slot record, or abort: a slot number outside the table is a bug. */
static struct zslot *slot_ref(struct zbackend *zb, uint32_t slot,
			      const char *op)
{
	if (slot == 0 || slot >= zb->nslots)
		zb_die("uswap: zbackend: %s of slot %u: no such slot", op, slot);
	return &zb->slots[slot];
}

/*
 * Grow the table by one slot; a new table page is charged to the pool
 * first (it counts against the cap).  free_lock held.
 */
static int slot_grow(struct zbackend *zb, uint32_t *slot)
{
	uint64_t need = page_round((uint64_t)(zb->hwm + 1) *
				   sizeof(struct zslot));

	if (zb->hwm >= zb->nslots)
		return -ENOSPC;
	if (need > zb->table_bytes) {
		int err = pool_charge(zb->pool,
				      (int64_t)(need - zb->table_bytes));

		if (err)
			return err;
		zb->table_bytes = need;
	}
	*slot = zb->hwm++;
	return 0;
}

/* Take a free slot.  0 and *slot, or -ENOSPC (table full, or cap). */
static int slot_alloc(struct zbackend *zb, uint32_t *slot)
{
	int err = 0;

	pthread_mutex_lock(&zb->free_lock);
	if (zb->free_head) {
		*slot = zb->free_head;
		zb->free_head = (uint32_t)zb->slots[*slot].data;
	} else {
		err = slot_grow(zb, slot);
	}
	pthread_mutex_unlock(&zb->free_lock);
	return err;
}

static void slot_free_push(struct zbackend *zb, uint32_t slot)
{
	pthread_mutex_lock(&zb->free_lock);
	zb->slots[slot].data = zb->free_head;
	zb->free_head = slot;
	pthread_mutex_unlock(&zb->free_lock);
}

/* Fill a slot just taken and publish it with one reference. */
static void slot_publish(struct zbackend *zb, uint32_t slot, enum zkind kind,
			 unsigned len, uint32_t csum, uint64_t data)
{
	struct zslot *zs = &zb->slots[slot];

	zs->csum = csum;
	zs->data = data;
	atomic_store_explicit(&zs->state, (uint32_t)kind << REF_BITS | 1,
			      memory_order_release);

	STAT_ADD(zb, stored_pages, 1);
	STAT_ADD(zb, compr_bytes, len);
	if (kind == ZS_SAME)
		STAT_ADD(zb, zero_pages, 1);
	else if (kind == ZS_RAW)
		STAT_ADD(zb, raw_pages, 1);
}

/* The last reference (of a @kind slot) is gone: release the object, then
 * the slot. */
static void slot_release(struct zbackend *zb, uint32_t slot, enum zkind kind)
{
	struct zslot *zs = &zb->slots[slot];

	STAT_SUB(zb, stored_pages, 1);
	if (kind == ZS_SAME) {
		STAT_SUB(zb, zero_pages, 1);
	} else {
		STAT_SUB(zb, compr_bytes, zs_len(zs));
		pool_free(zb->pool, zs_handle(zs));
	}
	if (kind == ZS_RAW)
		STAT_SUB(zb, raw_pages, 1);
	slot_free_push(zb, slot);
}

/* ---------------------------------------------------------------- ops */

static struct uswap_bctx *zb_ctx_create(struct uswap_backend *b)
{
	struct zbackend *zb = to_zb(b);
	struct zctx *cx = malloc(sizeof(*cx));
	int level = zb->cfg.compressor == USWAP_COMP_LZ4 ? zb->cfg.lz4_accel
							 : zb->cfg.zstd_level;

	if (!cx) {
		errno = ENOMEM;
		return NULL;
	}
	cx->codec = codec_create(zb->cfg.compressor, level);
	if (!cx->codec) {
		free(cx);
		return NULL;	/* errno from codec_create */
	}
	return (struct uswap_bctx *)cx;
}

static void zb_ctx_destroy(struct uswap_backend *b, struct uswap_bctx *ctx)
{
	struct zctx *cx = (struct zctx *)ctx;

	if (!cx)
		return;
	codec_destroy(cx->codec);
	free(cx);
}

/* Copy @len bytes of @src into a new pool object, and take a slot. */
static int store_object(struct zbackend *zb, const void *src, unsigned len,
			enum zkind kind, uint32_t csum, uint32_t *slot)
{
	uint64_t h;
	int err;

	err = pool_alloc(zb->pool, len, &h);
	if (err)
		return err;
	if (h & ~HANDLE_MASK)
		zb_die("uswap: zbackend: pool handle %#llx over %d bits",
		       (unsigned long long)h, HANDLE_BITS);
	memcpy(pool_map(zb->pool, h), src, len);
	err = slot_alloc(zb, slot);
	if (err) {
		pool_free(zb->pool, h);
		return err;
	}
	slot_publish(zb, *slot, kind, len, csum,
		     h | (uint64_t)len << HANDLE_BITS);
	return 0;
}

static int zb_store(struct uswap_backend *b, struct uswap_bctx *ctx,
		    const void *page, uint32_t *slot)
{
	struct zbackend *zb = to_zb(b);
	struct zctx *cx = (struct zctx *)ctx;
	uint64_t word;
	int n, err;

	if (page_same_filled(page, &word)) {
		err = slot_alloc(zb, slot);
		if (!err)
			slot_publish(zb, *slot, ZS_SAME, 0, 0, word);
	} else {
		/* -E2BIG: over ZB_COMP_MAX; -EIO: a codec error, which a
		 * raw copy sidesteps just as well */
		n = codec_compress(cx->codec, page, cx->buf, sizeof(cx->buf));
		if (n > 0)
			err = store_object(zb, cx->buf, (unsigned)n, ZS_COMP,
					   page_csum(page), slot);
		else
			err = store_object(zb, page, USWAP_PAGE_SIZE, ZS_RAW,
					   page_csum(page), slot);
	}
	if (err)
		STAT_ADD(zb, store_failures, 1);
	return err;
}

/* Read a COMP or RAW object into @page and verify it. */
static int load_object(struct zbackend *zb, struct zctx *cx,
		       const struct zslot *zs, enum zkind kind, void *page)
{
	uint64_t h = zs_handle(zs);
	unsigned len = zs_len(zs);
	const void *obj = pool_map(zb->pool, h);

	if (len == 0 || len > pool_obj_size(zb->pool, h))
		return -EIO;
	if (kind == ZS_RAW) {
		if (len != USWAP_PAGE_SIZE)
			return -EIO;
		memcpy(page, obj, USWAP_PAGE_SIZE);
	} else if (codec_decompress(cx->codec, obj, len, page)) {
		return -EIO;
	}
	return page_csum(page) == zs->csum ? 0 : -EIO;
}

static int zb_load(struct uswap_backend *b, struct uswap_bctx *ctx,
		   uint32_t slot, void *page)
{
	struct zbackend *zb = to_zb(b);
	const struct zslot *zs;
	uint32_t st;

	if (slot == 0 || slot >= zb->nslots)
		return -EIO;
	zs = &zb->slots[slot];
	/* pairs with the release in slot_publish(): the record is complete */
	st = atomic_load_explicit(&zs->state, memory_order_acquire);
	if (st_refs(st) == 0)
		return -EIO;
	switch (st_kind(st)) {
	case ZS_SAME:
		page_fill_word(page, zs->data);
		return 0;
	case ZS_COMP:
	case ZS_RAW:
		return load_object(zb, (struct zctx *)ctx, zs, st_kind(st),
				   page);
	default:
		return -EIO;
	}
}

static void zb_dup(struct uswap_backend *b, uint32_t slot)
{
	struct zslot *zs = slot_ref(to_zb(b), slot, "dup");
	uint32_t st = atomic_load_explicit(&zs->state, memory_order_relaxed);

	/* relaxed: the caller holds a reference, so the slot cannot change
	 * under it; the CAS only guards against bugs (0 and overflow) */
	do {
		if (st_refs(st) == 0)
			zb_die("uswap: zbackend: dup of free slot %u (I1)", slot);
		if (st_refs(st) == REF_MASK)
			zb_die("uswap: zbackend: slot %u count overflow", slot);
	} while (!atomic_compare_exchange_weak_explicit(
			&zs->state, &st, st + 1, memory_order_relaxed,
			memory_order_relaxed));
}

static void zb_free(struct uswap_backend *b, struct uswap_bctx *ctx,
		    uint32_t slot)
{
	struct zbackend *zb = to_zb(b);
	struct zslot *zs = slot_ref(zb, slot, "free");
	uint32_t st = atomic_load_explicit(&zs->state, memory_order_relaxed);
	uint32_t next;

	/* acq_rel: our release orders our own reads of the object before a
	 * later final free; the acquire of the final free sees everyone's.
	 * The last reference takes the whole word to 0 (FREE). */
	do {
		if (st_refs(st) == 0)
			zb_die("uswap: zbackend: free of free slot %u "
			       "(I1: a slot is freed exactly once)", slot);
		next = st_refs(st) == 1 ? 0 : st - 1;
	} while (!atomic_compare_exchange_weak_explicit(
			&zs->state, &st, next, memory_order_acq_rel,
			memory_order_relaxed));
	if (next == 0)
		slot_release(zb, slot, st_kind(st));
}

static unsigned zb_count(struct uswap_backend *b, uint32_t slot)
{
	struct zbackend *zb = to_zb(b);

	if (slot == 0 || slot >= zb->nslots)
		return 0;
	return st_refs(atomic_load_explicit(&zb->slots[slot].state,
					    memory_order_acquire));
}

static uint64_t stat_get(_Atomic uint64_t *v)
{
	return atomic_load_explicit(v, memory_order_relaxed);
}

static void zb_stats(struct uswap_backend *b, struct uswap_backend_stats *st)
{
	struct zbackend *zb = to_zb(b);

	memset(st, 0, sizeof(*st));
	st->stored_pages = stat_get(&zb->stored_pages);
	st->stored_orig_bytes = st->stored_pages * USWAP_PAGE_SIZE;
	st->stored_compr_bytes = stat_get(&zb->compr_bytes);
	/* everything held for stored data: pool spans and metadata, and
	 * (charged to the pool) the touched slot table and this struct */
	st->pool_bytes = pool_bytes(zb->pool);
	st->zero_pages = stat_get(&zb->zero_pages);
	st->raw_pages = stat_get(&zb->raw_pages);
	st->store_failures = stat_get(&zb->store_failures);
}

static void zb_destroy(struct uswap_backend *b)
{
	struct zbackend *zb = to_zb(b);

	if (!zb)
		return;
	pool_destroy(zb->pool);
	munmap(zb->slots, (size_t)zb->nslots * sizeof(struct zslot));
	pthread_mutex_destroy(&zb->free_lock);
	free(zb);
}

static const struct uswap_backend_ops zb_ops = {
	.name = "zram",
	.ctx_create = zb_ctx_create,
	.ctx_destroy = zb_ctx_destroy,
	.store = zb_store,
	.load = zb_load,
	.dup = zb_dup,
	.free = zb_free,
	.count = zb_count,
	.stats = zb_stats,
	.destroy = zb_destroy,
};

/* Reserve the slot table, halving from ZB_MAX_SLOTS if need be. */
static int table_reserve(struct zbackend *zb)
{
	for (uint32_t n = ZB_MAX_SLOTS; n >= ZB_MIN_SLOTS; n /= 2) {
		void *t = mmap(NULL, (size_t)n * sizeof(struct zslot),
			       PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
			       -1, 0);
		if (t != MAP_FAILED) {
			zb->slots = t;
			zb->nslots = n;
			return 0;
		}
	}
	return -ENOMEM;
}

static int zconfig_ok(const struct uswap_zconfig *cfg)
{
	int level = cfg->compressor == USWAP_COMP_LZ4 ? cfg->lz4_accel
						      : cfg->zstd_level;

	return codec_check(cfg->compressor, level) == 0;
}

struct uswap_backend *uswap_zbackend_create(const struct uswap_zconfig *cfg)
{
	struct zbackend *zb;

	if (!cfg || !zconfig_ok(cfg)) {
		errno = EINVAL;
		return NULL;
	}
	zb = calloc(1, sizeof(*zb));
	if (!zb)
		goto nomem;
	zb->base.ops = &zb_ops;
	zb->cfg = *cfg;
	zb->hwm = 1;			/* slot 0 is never used */
	pthread_mutex_init(&zb->free_lock, NULL);
	zb->pool = pool_create(cfg->pool_cap);
	if (!zb->pool && errno == EINVAL) {
		zb_destroy(&zb->base);
		errno = EINVAL;		/* a cap below the pool's own metadata */
		return NULL;
	}
	if (!zb->pool || table_reserve(zb))
		goto nomem;
	/* the first table page too: slot 0 lives there */
	zb->table_bytes = page_round(sizeof(struct zslot));
	if (pool_charge(zb->pool, (int64_t)(page_round(sizeof(*zb)) +
					    zb->table_bytes))) {
		zb_destroy(&zb->base);
		errno = EINVAL;		/* a cap below our own metadata */
		return NULL;
	}
	return &zb->base;
nomem:
	if (zb) {
		pool_destroy(zb->pool);
		pthread_mutex_destroy(&zb->free_lock);
		free(zb);
	}
	errno = ENOMEM;
	return NULL;
}

/* ------------------------------------------------- test hooks (fbackend.h) */

static struct zslot *hook_slot(struct uswap_backend *b, uint32_t slot,
			       uint32_t *st, int *err)
{
	struct zbackend *zb = to_zb(b);
	struct zslot *zs;

	*err = -EINVAL;
	if (!b || b->ops != &zb_ops || slot == 0 || slot >= zb->nslots)
		return NULL;
	zs = &zb->slots[slot];
	*st = atomic_load_explicit(&zs->state, memory_order_acquire);
	*err = -ENOENT;
	if (st_refs(*st) == 0)
		return NULL;
	*err = 0;
	return zs;
}

int uswap_zbackend_slot_info(struct uswap_backend *b, uint32_t slot,
			     struct uswap_zslot_info *info)
{
	struct zslot *zs;
	uint32_t st;
	int err;

	zs = hook_slot(b, slot, &st, &err);
	if (!zs)
		return err;
	info->count = st_refs(st);
	if (st_kind(st) == ZS_SAME) {
		info->kind = USWAP_ZSLOT_SAME;
		info->len = info->obj_size = 0;
		return 0;
	}
	info->kind = st_kind(st) == ZS_COMP ? USWAP_ZSLOT_COMP
					    : USWAP_ZSLOT_RAW;
	info->len = zs_len(zs);
	info->obj_size = pool_obj_size(to_zb(b)->pool, zs_handle(zs));
	return 0;
}

int uswap_zbackend_corrupt(struct uswap_backend *b, uint32_t slot,
			   size_t off, uint8_t mask)
{
	struct zslot *zs;
	uint32_t st;
	int err;

	zs = hook_slot(b, slot, &st, &err);
	if (!zs)
		return err;
	if (st_kind(st) == ZS_SAME)
		return -ENODATA;	/* no object: nothing stored to flip */
	if (off >= zs_len(zs))
		return -EINVAL;
	((unsigned char *)pool_map(to_zb(b)->pool, zs_handle(zs)))[off] ^= mask;
	return 0;
}

/*
 * fuzz_zbackend.c - the compressed backend (src/zbackend.c over pool.c and
 * compress.c) against a reference map slot -> (references, page).
 *
 * Input: a header (compressor lz4 or zstd and its level, pool cap), then
 * operations: store a page (zero, same-filled, nearly same-filled,
 * compressible, random, around the raw threshold, text, or content taken
 * from the input), store a modified copy of a stored page, load one / all,
 * dup, free.  Each input gets a fresh backend (and two contexts, used
 * alternately: a slot stored through one loads through the other).
 *
 * Checked:
 *  - every load returns 0 and exactly the stored page;
 *  - a store returns a slot that is not live; a failed store fails only
 *    with a cap (-ENOSPC / -ENOMEM) and stores nothing;
 *  - slot_info: SAME exactly for same-filled pages (zero included), COMP
 *    objects are at most 3/4 page and fit their class, RAW objects are one
 *    page; the count equals the reference's references; a freed slot is
 *    free (-ENOENT, count 0);
 *  - stats: stored pages, zero/same pages, raw pages, compressed bytes
 *    equal the reference's sums; pool_bytes <= cap;
 * and at the end, after every reference is dropped, the stats are zero and
 * pool_bytes is back to its start but for the slot table and span
 * metadata (whole pages, bounded).
 */
#include <errno.h>
#include <stdbool.h>

#include "fuzz_common.h"
#include "backend.h"
#include "fbackend.h"

#define MAX_OPS 128
#define MAX_LIVE 256
#define MAX_REFS 64
#define COMP_MAX (FZ_PAGE * 3 / 4)

struct ent {
	uint32_t slot;
	unsigned refs;
	int kind;		/* USWAP_ZSLOT_* seen at store */
	size_t len;
	uint8_t page[FZ_PAGE];
};

static struct ent live[MAX_LIVE];
static unsigned nlive;
static uint8_t pg[FZ_PAGE], out[FZ_PAGE];

static bool same_filled(const uint8_t *p)
{
	for (unsigned i = 8; i < FZ_PAGE; i++)
		if (p[i] != p[i % 8])
			return false;
	return true;
}

struct run {
	struct uswap_backend *b;
	struct uswap_bctx *ctx[2];
	size_t cap;
	const char *codec;
	int level;
};

static void check_stats(struct run *r)
{
	struct uswap_backend_stats st;
	uint64_t same = 0, raw = 0, compr = 0;

	for (unsigned i = 0; i < nlive; i++) {
		same += live[i].kind == USWAP_ZSLOT_SAME;
		raw += live[i].kind == USWAP_ZSLOT_RAW;
		if (live[i].kind != USWAP_ZSLOT_SAME)
			compr += live[i].len;
	}
	r->b->ops->stats(r->b, &st);
	FZ_CHECK(st.stored_pages == nlive, "stored_pages %llu, live %u",
		 (unsigned long long)st.stored_pages, nlive);
	FZ_CHECK(st.stored_orig_bytes == (uint64_t)nlive * FZ_PAGE, "orig bytes");
	FZ_CHECK(st.zero_pages == same, "zero_pages %llu, same-filled live %llu",
		 (unsigned long long)st.zero_pages, (unsigned long long)same);
	FZ_CHECK(st.raw_pages == raw, "raw_pages %llu, raw live %llu",
		 (unsigned long long)st.raw_pages, (unsigned long long)raw);
	FZ_CHECK(st.stored_compr_bytes == compr, "compr bytes %llu, objects %llu",
		 (unsigned long long)st.stored_compr_bytes, (unsigned long long)compr);
	FZ_CHECK(!r->cap || st.pool_bytes <= r->cap, "pool_bytes %llu over cap %zu",
		 (unsigned long long)st.pool_bytes, r->cap);
}

static void check_slot(struct run *r, const struct ent *e)
{
	struct uswap_zslot_info in;
	int err = uswap_zbackend_slot_info(r->b, e->slot, &in);

	FZ_CHECK(err == 0, "slot_info(%u): %d", e->slot, err);
	FZ_CHECK(in.count == e->refs, "slot %u count %u, references %u", e->slot,
		 in.count, e->refs);
	FZ_CHECK(r->b->ops->count(r->b, e->slot) == e->refs, "count op");
	FZ_CHECK(in.kind == e->kind && in.len == e->len, "slot %u changed kind/len",
		 e->slot);
}

static void do_load(struct run *r, const struct ent *e, unsigned c)
{
	memset(out, 0xa5, sizeof(out));
	int err = r->b->ops->load(r->b, r->ctx[c], e->slot, out);

	FZ_CHECK(err == 0, "%s/%d: load of slot %u: %d", r->codec, r->level, e->slot, err);
	if (memcmp(out, e->page, FZ_PAGE)) {
		unsigned i = 0;

		while (out[i] == e->page[i])
			i++;
		FZ_CHECK(0, "%s/%d: slot %u (kind %d, len %zu) byte %u: loaded %#x, stored %#x",
			 r->codec, r->level, e->slot, e->kind, e->len, i, out[i], e->page[i]);
	}
}

static void do_store(struct run *r, const uint8_t *page, unsigned c)
{
	struct uswap_backend_stats before, after;
	struct uswap_zslot_info in;
	uint32_t slot = 0;
	int err;

	if (nlive == MAX_LIVE)
		return;
	r->b->ops->stats(r->b, &before);
	err = r->b->ops->store(r->b, r->ctx[c], page, &slot);
	if (err) {
		FZ_CHECK(r->cap && (err == -ENOSPC || err == -ENOMEM),
			 "store failed: %d without a cap", err);
		r->b->ops->stats(r->b, &after);
		FZ_CHECK(after.stored_pages == before.stored_pages &&
			 after.store_failures == before.store_failures + 1,
			 "a failed store stored something or was not counted");
		return;
	}
	FZ_CHECK(slot != 0, "slot 0 handed out");
	for (unsigned i = 0; i < nlive; i++)
		FZ_CHECK(live[i].slot != slot, "slot %u handed out while live", slot);
	FZ_CHECK(uswap_zbackend_slot_info(r->b, slot, &in) == 0, "slot_info new");
	if (same_filled(page)) {
		FZ_CHECK(in.kind == USWAP_ZSLOT_SAME && in.len == 0 && in.obj_size == 0,
			 "same-filled page stored as kind %d len %zu", in.kind, in.len);
	} else if (in.kind == USWAP_ZSLOT_COMP) {
		FZ_CHECK(in.len > 0 && in.len <= COMP_MAX, "compressed len %zu", in.len);
		FZ_CHECK(in.obj_size == ((in.len + 15) & ~(size_t)15),
			 "object of %zu bytes in a class of %zu", in.len, in.obj_size);
	} else {
		FZ_CHECK(in.kind == USWAP_ZSLOT_RAW && in.len == FZ_PAGE &&
			 in.obj_size == FZ_PAGE, "page stored as kind %d len %zu obj %zu",
			 in.kind, in.len, in.obj_size);
	}
	FZ_CHECK(in.count == 1, "new slot count %u", in.count);

	struct ent *e = &live[nlive++];

	e->slot = slot;
	e->refs = 1;
	e->kind = in.kind;
	e->len = in.len;
	memcpy(e->page, page, FZ_PAGE);
}

static void drop_ref(struct run *r, unsigned i, unsigned c)
{
	struct ent *e = &live[i];
	struct uswap_zslot_info in;
	uint32_t slot = e->slot;

	r->b->ops->free(r->b, r->ctx[c], slot);
	if (--e->refs) {
		check_slot(r, e);
		return;
	}
	live[i] = live[--nlive];
	FZ_CHECK(uswap_zbackend_slot_info(r->b, slot, &in) == -ENOENT,
		 "freed slot %u not free", slot);
	FZ_CHECK(r->b->ops->count(r->b, slot) == 0, "freed slot count");
}

static const int zstd_levels[] = { -7, -1, 1, 2, 3, 5, 9, 19 };
static const int lz4_accels[] = { 1, 1, 2, 4, 17, 57, 1000, 65537 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz f = { data, size };
	struct uswap_zconfig zc = { 0 };
	struct run r = { 0 };
	uint8_t h0 = fz_u8(&f), h1 = fz_u8(&f);
	uint64_t seed = size;

	zc.compressor = h0 & 1 ? USWAP_COMP_ZSTD : USWAP_COMP_LZ4;
	zc.lz4_accel = lz4_accels[(h0 >> 1) % 8];
	zc.zstd_level = zstd_levels[(h0 >> 1) % 8];
	if (zc.zstd_level == 19 && (h0 >> 4) % 4)	/* slow: rarely */
		zc.zstd_level = 1;
	/* cap: none, or 64 KiB .. 1 MiB */
	zc.pool_cap = h1 < 64 ? 0 : (size_t)(h1 - 63) * (5u << 10) + (64u << 10);
	r.cap = zc.pool_cap;
	r.codec = zc.compressor == USWAP_COMP_LZ4 ? "lz4" : "zstd";
	r.level = zc.compressor == USWAP_COMP_LZ4 ? zc.lz4_accel : zc.zstd_level;
	r.b = uswap_zbackend_create(&zc);
	FZ_CHECK(r.b, "zbackend_create(%s/%d, cap %zu)", r.codec, r.level, r.cap);
	r.ctx[0] = r.b->ops->ctx_create(r.b);
	r.ctx[1] = r.b->ops->ctx_create(r.b);
	if (!r.ctx[0] && fz_known_bug("KB1", zc.compressor == USWAP_COMP_LZ4 &&
				      zc.lz4_accel >= 58)) {
		r.b->ops->destroy(r.b);
		return 0;
	}
	FZ_CHECK(r.ctx[0] && r.ctx[1], "ctx_create(%s/%d): %s", r.codec, r.level,
		 strerror(errno));
	nlive = 0;

	struct uswap_backend_stats st0;
	r.b->ops->stats(r.b, &st0);

	for (unsigned op = 0; op < MAX_OPS && fz_left(&f); op++) {
		uint8_t k = fz_u8(&f);
		unsigned c = (k >> 7) & 1;

		switch (k % 8) {
		case 0:
		case 1: {	/* store a generated page */
			uint8_t kind = fz_u8(&f);
			unsigned param = fz_u16(&f);
			const uint8_t *in = NULL;
			size_t inlen = 0;

			if (kind % PG_KINDS == PG_INPUT)
				in = fz_bytes(&f, fz_u16(&f) % (FZ_PAGE + 1), &inlen);
			fz_page(pg, kind, fz_mix(seed++) ^ param, param, in, inlen);
			do_store(&r, pg, c);
			break;
		}
		case 2:		/* store a page taken whole from the input */
		{
			size_t got;
			const uint8_t *in = fz_bytes(&f, FZ_PAGE, &got);

			memset(pg, 0, FZ_PAGE);
			memcpy(pg, in, got);
			do_store(&r, pg, c);
			break;
		}
		case 3:		/* store a modified copy of a stored page */
			if (nlive) {
				struct ent *e = &live[fz_u16(&f) % nlive];
				unsigned n = fz_u8(&f) % 8;

				memcpy(pg, e->page, FZ_PAGE);
				for (unsigned i = 0; i < n; i++) {
					uint16_t off = fz_u16(&f);

					pg[off % FZ_PAGE] ^= fz_u8(&f) | 1;
				}
				do_store(&r, pg, c);
			}
			break;
		case 4:
			if (nlive)
				do_load(&r, &live[fz_u16(&f) % nlive], c);
			break;
		case 5:
			for (unsigned i = 0; i < nlive; i++)
				do_load(&r, &live[i], (c + i) & 1);
			break;
		case 6:		/* dup */
			if (nlive) {
				struct ent *e = &live[fz_u16(&f) % nlive];

				if (e->refs < MAX_REFS) {
					r.b->ops->dup(r.b, e->slot);
					e->refs++;
					check_slot(&r, e);
				}
			}
			break;
		case 7:		/* free one reference */
			if (nlive)
				drop_ref(&r, fz_u16(&f) % nlive, c);
			break;
		}
		check_stats(&r);
	}

	for (unsigned i = 0; i < nlive; i++) {
		check_slot(&r, &live[i]);
		do_load(&r, &live[i], i & 1);
	}
	while (nlive)
		drop_ref(&r, nlive - 1, 0);
	check_stats(&r);

	struct uswap_backend_stats st;
	r.b->ops->stats(r.b, &st);
	FZ_CHECK(st.stored_pages == 0 && st.stored_compr_bytes == 0 &&
		 st.zero_pages == 0 && st.raw_pages == 0, "stats not zero at the end");
	/* left: the slot table's high-water pages and span metadata */
	uint64_t extra = st.pool_bytes - st0.pool_bytes;
	FZ_CHECK(st.pool_bytes >= st0.pool_bytes && extra % FZ_PAGE == 0 &&
		 extra <= 8 * FZ_PAGE, "pool_bytes %llu at the end, %llu at the start",
		 (unsigned long long)st.pool_bytes, (unsigned long long)st0.pool_bytes);
	r.b->ops->ctx_destroy(r.b, r.ctx[0]);
	r.b->ops->ctx_destroy(r.b, r.ctx[1]);
	r.b->ops->destroy(r.b);
	return 0;
}

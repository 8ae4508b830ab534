/*
 * fbackend.c - a backend that injects faults into another (see fbackend.h).
 *
 * It keeps no per-thread state: its contexts are the inner backend's.
 * Every knob is an atomic (relaxed but for the pairing noted at
 * countdown_take()); countdown knobs (fail the next N) are
 * decremented with a CAS, so N concurrent operations consume exactly N.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

#include "fbackend.h"

struct fbackend {
	struct uswap_backend base;
	struct uswap_backend *inner;	/* constant */
	unsigned flags;			/* constant */

	/* knobs: relaxed atomics, set by the control functions */
	_Atomic uint32_t fail_stores;	/* stores left to fail */
	_Atomic int fail_store_err;	/* -ENOSPC or -ENOMEM */
	_Atomic int64_t fail_load_slot;	/* slot, or USWAP_FAULTY_{NONE,ALL} */
	_Atomic uint32_t corrupt_loads;	/* loads left to corrupt */
	_Atomic uint32_t load_delay_us, store_delay_us;

	/* what was injected: relaxed atomics */
	_Atomic uint64_t n_store_failures, n_load_failures, n_corruptions,
		n_corrupt_eio;
};

static inline struct fbackend *to_fb(struct uswap_backend *b)
{
	return (struct fbackend *)b;
}

#define RLX memory_order_relaxed

/* Take one unit of a countdown knob; false when it is at 0.  Acquire
 * pairs with the release that set the knob (and its companion values). */
static bool countdown_take(_Atomic uint32_t *knob)
{
	uint32_t v = atomic_load_explicit(knob, RLX);

	while (v && !atomic_compare_exchange_weak_explicit(
			    knob, &v, v - 1, memory_order_acquire, RLX))
		;
	return v != 0;
}

static void delay(_Atomic uint32_t *us)
{
	uint32_t v = atomic_load_explicit(us, RLX);

	if (v)
		usleep(v);
}

static struct uswap_bctx *fb_ctx_create(struct uswap_backend *b)
{
	struct uswap_backend *in = to_fb(b)->inner;

	return in->ops->ctx_create(in);
}

static void fb_ctx_destroy(struct uswap_backend *b, struct uswap_bctx *ctx)
{
	struct uswap_backend *in = to_fb(b)->inner;

	in->ops->ctx_destroy(in, ctx);
}

static int fb_store(struct uswap_backend *b, struct uswap_bctx *ctx,
		    const void *page, uint32_t *slot)
{
	struct fbackend *fb = to_fb(b);

	delay(&fb->store_delay_us);
	if (countdown_take(&fb->fail_stores)) {
		atomic_fetch_add_explicit(&fb->n_store_failures, 1, RLX);
		return atomic_load_explicit(&fb->fail_store_err, RLX);
	}
	return fb->inner->ops->store(fb->inner, ctx, page, slot);
}

/* Corrupt the object of @slot for good; 0 if there was one to corrupt. */
static int corrupt_object(struct fbackend *fb, uint32_t slot)
{
	struct uswap_zslot_info info;
	int err;

	err = uswap_zbackend_slot_info(fb->inner, slot, &info);
	if (err || info.kind == USWAP_ZSLOT_SAME)
		return -ENODATA;
	return uswap_zbackend_corrupt(fb->inner, slot, info.len / 2, 0xa5);
}

static int fb_load(struct uswap_backend *b, struct uswap_bctx *ctx,
		   uint32_t slot, void *page)
{
	struct fbackend *fb = to_fb(b);
	int64_t fail = atomic_load_explicit(&fb->fail_load_slot, RLX);
	int err;

	delay(&fb->load_delay_us);
	if (fail == USWAP_FAULTY_ALL || fail == (int64_t)slot) {
		atomic_fetch_add_explicit(&fb->n_load_failures, 1, RLX);
		return -EIO;
	}
	if (!countdown_take(&fb->corrupt_loads))
		return fb->inner->ops->load(fb->inner, ctx, slot, page);

	atomic_fetch_add_explicit(&fb->n_corruptions, 1, RLX);
	if (corrupt_object(fb, slot))
		err = -EIO;	/* nothing to flip: simulate the detection */
	else
		err = fb->inner->ops->load(fb->inner, ctx, slot, page);
	if (err == -EIO)
		atomic_fetch_add_explicit(&fb->n_corrupt_eio, 1, RLX);
	return err;
}

static void fb_dup(struct uswap_backend *b, uint32_t slot)
{
	struct uswap_backend *in = to_fb(b)->inner;

	in->ops->dup(in, slot);
}

static void fb_free(struct uswap_backend *b, struct uswap_bctx *ctx,
		    uint32_t slot)
{
	struct uswap_backend *in = to_fb(b)->inner;

	in->ops->free(in, ctx, slot);
}

static unsigned fb_count(struct uswap_backend *b, uint32_t slot)
{
	struct uswap_backend *in = to_fb(b)->inner;

	return in->ops->count(in, slot);
}

/* The inner figures, with injected store failures counted as refusals. */
static void fb_stats(struct uswap_backend *b, struct uswap_backend_stats *st)
{
	struct fbackend *fb = to_fb(b);

	fb->inner->ops->stats(fb->inner, st);
	st->store_failures +=
		atomic_load_explicit(&fb->n_store_failures, RLX);
}

static void fb_destroy(struct uswap_backend *b)
{
	struct fbackend *fb = to_fb(b);

	if (!fb)
		return;
	if (fb->flags & USWAP_FAULTY_OWN_INNER)
		fb->inner->ops->destroy(fb->inner);
	free(fb);
}

static const struct uswap_backend_ops fb_ops = {
	.name = "faulty",
	.ctx_create = fb_ctx_create,
	.ctx_destroy = fb_ctx_destroy,
	.store = fb_store,
	.load = fb_load,
	.dup = fb_dup,
	.free = fb_free,
	.count = fb_count,
	.stats = fb_stats,
	.destroy = fb_destroy,
};

struct uswap_backend *uswap_faulty_backend_create(struct uswap_backend *inner,
						  unsigned flags)
{
	struct fbackend *fb;

	if (!inner || (flags & ~USWAP_FAULTY_OWN_INNER)) {
		errno = EINVAL;
		return NULL;
	}
	fb = calloc(1, sizeof(*fb));
	if (!fb) {
		errno = ENOMEM;
		return NULL;
	}
	fb->base.ops = &fb_ops;
	fb->inner = inner;
	fb->flags = flags;
	atomic_init(&fb->fail_store_err, -ENOSPC);
	atomic_init(&fb->fail_load_slot, USWAP_FAULTY_NONE);
	return &fb->base;
}

struct uswap_backend *uswap_faulty_inner(struct uswap_backend *fb)
{
	return to_fb(fb)->inner;
}

int uswap_faulty_fail_stores(struct uswap_backend *b, unsigned n, int err)
{
	struct fbackend *fb = to_fb(b);

	if (err != -ENOSPC && err != -ENOMEM)
		return -EINVAL;
	/* the error first, then the count with release: a store whose
	 * countdown_take() (acquire) takes a unit of @n reads this @err */
	atomic_store_explicit(&fb->fail_store_err, err, RLX);
	atomic_store_explicit(&fb->fail_stores, n, memory_order_release);
	return 0;
}

void uswap_faulty_fail_loads(struct uswap_backend *b, int64_t slot)
{
	atomic_store_explicit(&to_fb(b)->fail_load_slot, slot, RLX);
}

void uswap_faulty_corrupt_loads(struct uswap_backend *b, unsigned n)
{
	atomic_store_explicit(&to_fb(b)->corrupt_loads, n, RLX);
}

void uswap_faulty_delay(struct uswap_backend *b, unsigned load_us,
			unsigned store_us)
{
	atomic_store_explicit(&to_fb(b)->load_delay_us, load_us, RLX);
	atomic_store_explicit(&to_fb(b)->store_delay_us, store_us, RLX);
}

void uswap_faulty_reset(struct uswap_backend *b)
{
	struct fbackend *fb = to_fb(b);

	atomic_store_explicit(&fb->fail_stores, 0, RLX);
	atomic_store_explicit(&fb->fail_load_slot, USWAP_FAULTY_NONE, RLX);
	atomic_store_explicit(&fb->corrupt_loads, 0, RLX);
	uswap_faulty_delay(b, 0, 0);
}

void uswap_faulty_counts(struct uswap_backend *b,
			 struct uswap_faulty_counts *c)
{
	struct fbackend *fb = to_fb(b);

	c->store_failures = atomic_load_explicit(&fb->n_store_failures, RLX);
	c->load_failures = atomic_load_explicit(&fb->n_load_failures, RLX);
	c->corruptions = atomic_load_explicit(&fb->n_corruptions, RLX);
	c->corrupt_loads_eio = atomic_load_explicit(&fb->n_corrupt_eio, RLX);
}

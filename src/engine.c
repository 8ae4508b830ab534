/*
 * engine.c - opening and closing an engine, the pager contexts, and the
 * API calls that act on ranges (discard, pageout, prefetch), the limit and
 * the statistics.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"
#include "testing.h"

#ifdef USWAP_TESTING
_Atomic(uswap_hook_fn) uswap__hook;
#endif

#define ZERO_LEN ((size_t)(RA_MAX_LIMIT + 1) << PAGE_SHIFT_)

void uswap__warn(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if (n > (int)sizeof(buf) - 2)
		n = (int)sizeof(buf) - 2;
	buf[n++] = '\n';
	ssize_t w = write(STDERR_FILENO, buf, (size_t)n);
	(void)w;
}

const char *uswap_version(void)
{
	return USWAP_VERSION_STRING;
}

void slot_put(struct uthread *t, uint32_t slot)
{
	t->us->backend->ops->free(t->us->backend, t->bctx, slot);
}

struct uthread *api_ctx_get(struct uswap *us)
{
	unsigned i = atomic_fetch_add_explicit(&us->api_next, 1, memory_order_relaxed);
	struct uthread *t = &us->ctx[us->cfg.threads + 1 + i % API_CTXS];

	/* An API operation is an engine operation: inside the fork gate. */
	gate_enter(us);
	pthread_mutex_lock(&t->lock);
	return t;
}

void api_ctx_put(struct uthread *t)
{
	pthread_mutex_unlock(&t->lock);
	gate_exit(t->us);
}

static void ctx_fini(struct uswap *us, struct uthread *t)
{
	if (t->bctx)
		us->backend->ops->ctx_destroy(us->backend, t->bctx);
	if (t->bufs)
		munmap(t->bufs, (size_t)(RA_MAX_LIMIT + 1) << PAGE_SHIFT_);
	if (t->staging)
		munmap(t->staging, (size_t)EVICT_BATCH << PAGE_SHIFT_);
	free(t->inflight);
	pthread_mutex_destroy(&t->lock);
}

/* Everything a pager thread needs, allocated here so the fault and
 * eviction paths never allocate. */
static int ctx_init(struct uswap *us, struct uthread *t, unsigned id)
{
	size_t bufs_len = (size_t)(RA_MAX_LIMIT + 1) << PAGE_SHIFT_;
	size_t stage_len = (size_t)EVICT_BATCH << PAGE_SHIFT_;
	int err;

	t->us = us;
	t->id = id;
	pthread_mutex_init(&t->lock, NULL);
	t->bctx = us->backend->ops->ctx_create(us->backend);
	t->inflight = calloc(RA_MAX_LIMIT + 1, sizeof(*t->inflight));
	t->bufs = mmap(NULL, bufs_len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	t->staging = mmap(NULL, stage_len, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (t->bufs == MAP_FAILED)
		t->bufs = NULL;
	if (t->staging == MAP_FAILED)
		t->staging = NULL;
	if (!t->bctx || !t->inflight || !t->bufs || !t->staging)
		return -ENOMEM;
	for (unsigned k = 0; k <= RA_MAX_LIMIT; k++)
		t->inflight[k].buf = t->bufs + ((size_t)k << PAGE_SHIFT_);
	/* UFFDIO_MOVE needs its destination registered with the same uffd.
	 * Only pages we moved in are ever read, so no fault comes from it. */
	madvise(t->staging, stage_len, MADV_NOHUGEPAGE);
	err = uffd_register(us->uffd, t->staging, stage_len, false);
	return err;
}

static void print_config(const struct uswap_config *c)
{
	uswap__warn("uswap %s: limit=%zuK backend=%s compressor=%s lz4_accel=%d "
		    "zstd_level=%d threads=%u pool_cap=%zuK readahead=%u "
		    "wmarks=%u/%u%% wait=%s spin_us=%u swapin=%s",
		    USWAP_VERSION_STRING, c->limit >> 10, c->backend, c->compressor,
		    c->lz4_accel, c->zstd_level, c->threads, c->pool_cap >> 10,
		    c->readahead_max, c->low_wmark_pct, c->high_wmark_pct,
		    c->wait_mode == USWAP_WAIT_SPIN ? "spin" : "block", c->spin_us,
		    swapin_name(c->swapin));
}

static void engine_free(struct uswap *us)
{
	if (us->ctx) {
		for (unsigned i = 0; i < us->nctx; i++)
			ctx_fini(us, &us->ctx[i]);
		free(us->ctx);
	}
	region_dir_fini(us);
	swapin_fini(us);
	if (us->backend && us->own_backend)
		us->backend->ops->destroy(us->backend);
	if (us->stopfd >= 0)
		close(us->stopfd);
	if (us->uffd >= 0)
		close(us->uffd);
	if (us->zero_page)
		munmap((void *)us->zero_page, ZERO_LEN);
	pthread_mutex_destroy(&us->hand_lock);
	pthread_mutex_destroy(&us->map_lock);
	pthread_rwlock_destroy(&us->fork_gate);
	free(us);
}

static void stop_threads(struct uswap *us, unsigned handlers, bool evictor)
{
	uint64_t one = 1;

	atomic_store(&us->stopping, 1);
	kick_evictor(us);
	if (write(us->stopfd, &one, sizeof(one)) < 0)
		uswap__warn("uswap: stopping threads: %s", strerror(errno));
	for (unsigned i = 0; i < handlers; i++)
		pthread_join(us->ctx[i].thread, NULL);
	if (evictor)
		pthread_join(us->ctx[us->cfg.threads].thread, NULL);
}

/* Start the handler threads and the evictor; on failure none is left. */
int engine_start_threads(struct uswap *us)
{
	unsigned started = 0;
	int err;

	for (; started < us->cfg.threads; started++) {
		err = -pthread_create(&us->ctx[started].thread, NULL, handler_main,
				      &us->ctx[started]);
		if (err)
			goto fail;
		pthread_setname_np(us->ctx[started].thread, "uswap-fault");
	}
	err = -pthread_create(&us->ctx[us->cfg.threads].thread, NULL, evictor_main,
			      &us->ctx[us->cfg.threads]);
	if (err)
		goto fail;
	pthread_setname_np(us->ctx[us->cfg.threads].thread, "uswap-evict");
	return 0;
fail:
	stop_threads(us, started, false);
	atomic_store(&us->stopping, 0);
	return err;
}

struct uswap *uswap__open_backend(const struct uswap_config *cfg,
				  struct uswap_backend *backend, bool own)
{
	struct uswap *us = calloc(1, sizeof(*us));
	int err;

	if (!us) {
		if (own)
			backend->ops->destroy(backend);
		errno = ENOMEM;
		return NULL;
	}
	us->cfg = *cfg;
	us->backend = backend;
	us->own_backend = own;
	us->uffd = -1;
	us->stopfd = -1;
	/* Zero pages for zero-fill and fault-around: read-only anonymous
	 * memory, so they cost the kernel's one shared zero page. */
	us->zero_page = mmap(NULL, ZERO_LEN, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (us->zero_page == MAP_FAILED) {
		us->zero_page = NULL;
		err = -ENOMEM;
		goto fail;
	}
	pthread_mutex_init(&us->hand_lock, NULL);
	pthread_mutex_init(&us->map_lock, NULL);
	fork_gate_init(us);
	atomic_store(&us->limit_pages, cfg->limit >> PAGE_SHIFT_);

	err = uffd_open();
	if (err < 0)
		goto fail;
	us->uffd = err;
	us->stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (us->stopfd < 0) {
		err = -errno;
		goto fail;
	}
	if ((err = region_dir_init(us)))
		goto fail;
	if ((err = swapin_init(us)))
		goto fail;
	us->nctx = cfg->threads + 1 + API_CTXS;
	us->ctx = calloc(us->nctx, sizeof(*us->ctx));
	if (!us->ctx) {
		err = -ENOMEM;
		goto fail;
	}
	for (unsigned i = 0; i < us->nctx; i++)
		if ((err = ctx_init(us, &us->ctx[i], i)))
			goto fail;
	if ((err = engine_start_threads(us)))
		goto fail;
	if (cfg->verbose)
		print_config(cfg);
	return us;

fail:
	engine_free(us);
	errno = -err;
	return NULL;
}

struct uswap *uswap_open(const struct uswap_config *cfg)
{
	struct uswap_config c;
	struct uswap_zconfig z;
	struct uswap_backend *b;
	char err[256];

	if (cfg) {
		c = *cfg;
		if (uswap_config_check(&c, err, sizeof(err))) {
			uswap__warn("uswap: %s", err);
			errno = EINVAL;
			return NULL;
		}
	} else if (uswap_config_init(&c, err, sizeof(err))) {
		uswap__warn("uswap: %s", err);
		errno = EINVAL;
		return NULL;
	}
	z.compressor = strcmp(c.compressor, "zstd") ? USWAP_COMP_LZ4 : USWAP_COMP_ZSTD;
	z.lz4_accel = c.lz4_accel;
	z.zstd_level = c.zstd_level;
	z.pool_cap = c.pool_cap;
	b = uswap_zbackend_create(&z);
	if (!b)
		return NULL;
	return uswap__open_backend(&c, b, true);
}

int uswap_close(struct uswap *us)
{
	if (!us)
		return -EINVAL;
	/* Regions first, while the handlers still serve (and wake) faults. */
	region_unmap_all(us);
	stop_threads(us, us->cfg.threads, true);
	engine_free(us);
	return 0;
}

void *uswap_map(struct uswap *us, size_t len)
{
	if (!us) {
		errno = EINVAL;
		return NULL;
	}
	return region_map(us, len);
}

int uswap_unmap(struct uswap *us, void *addr, size_t len)
{
	if (!us)
		return -EINVAL;
	return region_unmap(us, addr, len);
}

/* Resolve an API range to one region and page indexes; takes a reference. */
static struct region *range_get(struct uswap *us, void *addr, size_t len,
				size_t *first, size_t *last)
{
	uintptr_t a = (uintptr_t)addr;
	struct region *r;

	if (!us || (a | len) & (PAGE_SIZE_ - 1) || len == 0 || a + len < a)
		return NULL;
	r = region_get(us, a);
	if (!r)
		return NULL;
	if (a + len > r->base + r->len) {
		region_put(r);
		return NULL;
	}
	*first = (a - r->base) >> PAGE_SHIFT_;
	*last = *first + (len >> PAGE_SHIFT_);
	return r;
}

/*
 * Zap entry @e of page @i (PTL held, the kernel page already zapped) to
 * @new_ (NONE for a discard, RELEASED for a release): a slot it names goes
 * to @drop, to be freed after unlocking; an in-flight owner (MARKER,
 * EVICTING, or design A/C's claim on a SWAPPED slot) keeps its own and
 * frees it when it finds its state gone (I9).  Returns 1 if the page was
 * resident (its reservation to release), else 0.
 */
unsigned discard_entry_locked(struct uswap *us, struct region *r, size_t i,
			      pte_t e, pte_t new_, uint32_t *drop, unsigned *ndrop)
{
	unsigned resident = 0;

	switch (pte_state(e)) {
	case PTE_PRESENT:
		resident = 1;
		if (e & PTE_HAS_SLOT)
			drop[(*ndrop)++] = pte_payload(e);
		break;
	case PTE_SWAPPED:
		drop[(*ndrop)++] = pte_payload(e);
		if (us->si->busy && us->si->busy(us, pte_payload(e)))
			STAT_INC(us, discard_during_swapin);
		break;
	case PTE_MARKER:
		STAT_INC(us, discard_during_swapin);
		break;
	case PTE_EVICTING:
		STAT_INC(us, discard_during_evict);
		break;
	default:
		break;
	}
	STAT_INC(us, discards);
	pte_set(r, i, e, new_);
	return resident;
}

/*
 * Discard one chunk's part of a range, PTL held: zap the kernel pages, then
 * the entries.  An in-flight owner (MARKER, EVICTING) keeps its slot and
 * frees it when it finds its state gone (I9); a discard never frees a slot
 * someone is reading.  Returns the slots to free after unlocking.
 */
static unsigned discard_chunk_locked(struct uswap *us, struct region *r,
				     size_t from, size_t to, uint32_t *drop)
{
	unsigned ndrop = 0;
	uint64_t unres = 0;

	madvise((void *)region_addr(r, from), (to - from) << PAGE_SHIFT_, MADV_DONTNEED);
	for (size_t i = from; i < to; i++) {
		pte_t e = atomic_load_explicit(region_pte(r, i), memory_order_acquire);

		if (pte_state(e) == PTE_NONE || pte_state(e) == PTE_RELEASED)
			continue;	/* nothing, or not the region's any more */
		unres += discard_entry_locked(us, r, i, e, pte_make(PTE_NONE, 0, 0),
					      drop, &ndrop);
	}
	unreserve_pages(us, unres);
	return ndrop;
}

/*
 * Begin an API call on [addr, addr+len): borrow a pager context (which
 * enters the fork gate), then look the range up inside the gate, so that a
 * region unmanaged while the call waited there is gone rather than a stale
 * reference to evict or discard through (uswap__unmanage).  NULL: -EINVAL.
 */
static struct uthread *api_begin(struct uswap *us, void *addr, size_t len,
				 struct region **r, size_t *first, size_t *last)
{
	struct uthread *t;

	if (!us)
		return NULL;
	t = api_ctx_get(us);
	*r = range_get(us, addr, len, first, last);
	if (!*r) {
		api_ctx_put(t);
		return NULL;
	}
	return t;
}

static void api_end(struct uthread *t, struct region *r)
{
	region_put(r);
	api_ctx_put(t);
}

int uswap_discard(struct uswap *us, void *addr, size_t len)
{
	size_t first, last;
	struct uthread *t;
	struct region *r;
	uint32_t drop[CHUNK_PAGES];

	t = api_begin(us, addr, len, &r, &first, &last);
	if (!t)
		return -EINVAL;
	for (size_t i = first; i < last;) {
		size_t end = ((i >> CHUNK_SHIFT) + 1) << CHUNK_SHIFT;

		if (end > last)
			end = last;
		pthread_mutex_lock(region_ptl(r, i));
		unsigned ndrop = discard_chunk_locked(us, r, i, end, drop);
		pthread_mutex_unlock(region_ptl(r, i));
		HOOK("discard_done", us, region_addr(r, i));
		for (unsigned k = 0; k < ndrop; k++)
			slot_put(t, drop[k]);
		i = end;
	}
	api_end(t, r);
	return 0;
}

long uswap_pageout(struct uswap *us, void *addr, size_t len)
{
	size_t first, last;
	struct uthread *t;
	struct region *r;

	t = api_begin(us, addr, len, &r, &first, &last);
	if (!t)
		return -EINVAL;
	long n = evict_range(t, r, first, last, true);
	api_end(t, r);
	return n;
}

long uswap_prefetch(struct uswap *us, void *addr, size_t len)
{
	size_t first, last;
	struct uthread *t;
	struct region *r;
	long total = 0;
	bool failed = false;

	t = api_begin(us, addr, len, &r, &first, &last);
	if (!t)
		return -EINVAL;
	for (size_t i = first; i < last; i++) {
		pte_t e = atomic_load_explicit(region_pte(r, i), memory_order_acquire);
		size_t ra = last - i - 1;

		if (pte_state(e) != PTE_SWAPPED)
			continue;
		if (ra > us->cfg.readahead_max)
			ra = us->cfg.readahead_max;
		/* "As long as the limit allows": prefetch never evicts. */
		if (atomic_load(&us->resident) + ra + 1 > atomic_load(&us->limit_pages))
			break;
		long n = swapin_range(t, r, i, ra, false, true);
		if (n == -EAGAIN)
			continue;	/* A, C: another swap-in is reading it */
		if (n < 0)
			failed = true;
		else
			total += n;
	}
	STAT_ADD(us, prefetch_pages, (uint64_t)total);
	api_end(t, r);
	return failed ? -EIO : total;
}

int uswap_set_limit(struct uswap *us, size_t limit)
{
	if (!us || limit < 16 * (size_t)PAGE_SIZE_)
		return -EINVAL;
	atomic_store(&us->limit_pages, limit >> PAGE_SHIFT_);
	us->cfg.limit = limit;
	if (atomic_load(&us->resident) > (limit >> PAGE_SHIFT_)) {
		/* Shrink now, in the caller, like a direct reclaim: reserving
		 * zero pages reclaims down to the new limit. */
		struct uthread *t = api_ctx_get(us);
		reserve_pages(t, 0);
		api_ctx_put(t);
	}
	return 0;
}

#define LOAD(f) atomic_load_explicit(&us->st.f, memory_order_relaxed)

int uswap_stats(struct uswap *us, struct uswap_stats *s)
{
	struct uswap_backend_stats b;

	if (!us || !s)
		return -EINVAL;
	memset(s, 0, sizeof(*s));
	gate_enter(us);		/* the backend's stats take its locks */
	us->backend->ops->stats(us->backend, &b);
	gate_exit(us);
	s->limit_bytes = atomic_load(&us->limit_pages) << PAGE_SHIFT_;
	s->resident_bytes = atomic_load(&us->resident) << PAGE_SHIFT_;
	s->resident_peak_bytes = atomic_load(&us->resident_peak) << PAGE_SHIFT_;
	s->stored_pages = b.stored_pages;
	s->stored_orig_bytes = b.stored_orig_bytes;
	s->stored_compr_bytes = b.stored_compr_bytes;
	s->pool_bytes = b.pool_bytes;
	s->compression_ratio = b.stored_compr_bytes ?
		(double)b.stored_orig_bytes / (double)b.stored_compr_bytes : 0;
	s->memory_efficiency = b.pool_bytes ?
		(double)b.stored_orig_bytes / (double)b.pool_bytes : 0;
	s->zero_pages_stored = b.zero_pages;
	s->raw_pages_stored = b.raw_pages;
	s->regions = atomic_load(&us->nregions);
	/* Swapped and clean-cached pages: a sweep of the entries (cheap next
	 * to a stats call's rate; racy by nature, like any gauge). */
	for (unsigned i = 0; i < MAX_REGIONS; i++) {
		struct region *r = region_get_index(us, i);

		if (!r)
			continue;
		for (size_t k = 0; k < r->npages; k++) {
			pte_t e = atomic_load_explicit(region_pte(r, k), memory_order_relaxed);

			s->swapped_pages += pte_state(e) == PTE_SWAPPED;
			s->clean_cached_pages += pte_state(e) == PTE_PRESENT &&
						 (e & PTE_HAS_SLOT);
		}
		region_put(r);
	}
	s->faults = LOAD(faults);
	s->faults_zero = LOAD(faults_zero);
	s->zero_fill_ahead = LOAD(zero_fill_ahead);
	s->faults_swapin = LOAD(faults_swapin);
	s->faults_wp = LOAD(faults_wp);
	s->faults_marker = LOAD(faults_marker);
	s->faults_evicting = LOAD(faults_evicting);
	s->faults_present = LOAD(faults_present);
	s->faults_unmanaged = LOAD(faults_unmanaged);
	s->swapins = LOAD(swapins);
	s->swapouts = LOAD(swapouts);
	s->clean_drops = LOAD(clean_drops);
	s->swap_copy_drops = LOAD(swap_copy_drops);
	s->readahead_pages = LOAD(readahead_pages);
	s->readahead_hits = LOAD(readahead_hits);
	s->prefetch_pages = LOAD(prefetch_pages);
	s->discards = LOAD(discards);
	s->discard_during_swapin = LOAD(discard_during_swapin);
	s->discard_during_evict = LOAD(discard_during_evict);
	s->retries = LOAD(retries);
	s->eexist = LOAD(eexist);
	s->store_failures = LOAD(store_failures);
	s->load_failures = LOAD(load_failures);
	s->evict_busy = LOAD(evict_busy);
	s->direct_reclaims = LOAD(direct_reclaims);
	s->over_limit = LOAD(over_limit);
	s->evictor_runs = LOAD(evictor_runs);
	s->swapin_pin_retries = LOAD(swapin_pin_retries);
	s->swapin_cache_waits = LOAD(swapin_cache_waits);
	return 0;
}

void uswap_stats_print(const struct uswap_stats *s, void *out)
{
	FILE *f = out ? out : stdout;
	const double M = 1024.0 * 1024.0;

	fprintf(f, "uswap statistics\n");
	fprintf(f, "  limit            %10.1f MiB   resident %10.1f MiB (peak %.1f MiB)\n",
		s->limit_bytes / M, s->resident_bytes / M, s->resident_peak_bytes / M);
	fprintf(f, "  swapped pages    %10llu       clean cached %llu\n",
		(unsigned long long)s->swapped_pages, (unsigned long long)s->clean_cached_pages);
	fprintf(f, "  backend          %10llu pages %.1f MiB -> %.1f MiB compressed, pool %.1f MiB\n",
		(unsigned long long)s->stored_pages, s->stored_orig_bytes / M,
		s->stored_compr_bytes / M, s->pool_bytes / M);
	fprintf(f, "  compression      %10.2fx      memory efficiency %.2fx  (zero/same %llu, raw %llu)\n",
		s->compression_ratio, s->memory_efficiency,
		(unsigned long long)s->zero_pages_stored, (unsigned long long)s->raw_pages_stored);
#define ROW(a, b) fprintf(f, "  %-16s %10llu       %-16s %llu\n", #a, \
	(unsigned long long)s->a, #b, (unsigned long long)s->b)
	ROW(faults, faults_zero);
	ROW(zero_fill_ahead, over_limit);
	ROW(faults_swapin, faults_wp);
	ROW(faults_marker, faults_evicting);
	ROW(faults_present, faults_unmanaged);
	ROW(swapins, swapouts);
	ROW(clean_drops, swap_copy_drops);
	ROW(readahead_pages, readahead_hits);
	ROW(prefetch_pages, discards);
	ROW(discard_during_swapin, discard_during_evict);
	ROW(retries, eexist);
	ROW(store_failures, load_failures);
	ROW(evict_busy, direct_reclaims);
	ROW(evictor_runs, swapin_pin_retries);
	fprintf(f, "  %-16s %10llu\n", "swapin_cache_waits",
		(unsigned long long)s->swapin_cache_waits);
#undef ROW
}

/* ---- test-only introspection (testing.h) ---- */

struct uswap_backend *uswap__backend(struct uswap *us)
{
	return us->backend;
}

int uswap__pte_state(struct uswap *us, void *addr, uint32_t *payload)
{
	struct region *r = region_get(us, (uintptr_t)addr);

	if (!r)
		return -1;
	pte_t e = atomic_load(region_pte(r, ((uintptr_t)addr - r->base) >> PAGE_SHIFT_));
	region_put(r);
	if (payload)
		*payload = pte_payload(e);
	return (int)pte_state(e);
}

int uswap__swapin_design(struct uswap *us)
{
	return (int)us->cfg.swapin;
}

bool uswap__swapin_inflight(struct uswap *us, void *addr)
{
	uint32_t slot;
	int st = uswap__pte_state(us, addr, &slot);

	if (st == PTE_MARKER)
		return true;
	return st == PTE_SWAPPED && us->si->busy && us->si->busy(us, slot);
}

/*
 * Check the invariants that hold whenever nothing is in flight: no marker
 * or eviction left behind (I9, I11), resident equals the pages present,
 * every slot named by an entry is allocated with count == the entries
 * naming it (I1, I2), and the backend holds no slot nobody names (I1: no
 * leak).  Returns 0, or -1 with a message.  One sweep; see below.
 */
static int validate_once(struct uswap *us, char *msg, size_t len)
{
	struct uswap_backend *b = us->backend;
	struct uswap_backend_stats bs;
	uint64_t present = 0, named = 0;

	for (unsigned i = 0; i < MAX_REGIONS; i++) {
		struct region *r = region_get_index(us, i);
		size_t released = 0, given = 0;

		if (!r)
			continue;
		for (size_t k = 0; k < r->npages; k++) {
			pte_t e = atomic_load(region_pte(r, k));
			unsigned st = pte_state(e);

			if (st == PTE_RELEASED) {
				/* Released pages hold nothing (manage.c). */
				released++;
				given += pte_payload(e) == RELEASED_GIVEN;
				if ((e & ~(PTE_STATE_MASK | ((pte_t)1 << 32))) ||
				    pte_payload(e) > RELEASED_GIVEN) {
					snprintf(msg, len, "released page %zu of region %u: bad entry %#llx",
						 k, i, (unsigned long long)e);
					region_put(r);
					return -1;
				}
				continue;
			}

			if (st == PTE_MARKER || st == PTE_EVICTING) {
				snprintf(msg, len, "page %zu of region %u still in flight (state %u)", k, i, st);
				region_put(r);
				return -1;
			}
			if (e & PTE_WAITERS) {
				snprintf(msg, len, "page %zu has WAITERS set in a settled state", k);
				region_put(r);
				return -1;
			}
			present += st == PTE_PRESENT;
			if (st == PTE_SWAPPED || (st == PTE_PRESENT && (e & PTE_HAS_SLOT))) {
				unsigned c = b->ops->count(b, pte_payload(e));

				named++;
				if (c != 1) {
					snprintf(msg, len, "slot %u named by page %zu has count %u, expected 1",
						 pte_payload(e), k, c);
					region_put(r);
					return -1;
				}
			}
		}
		if (released != atomic_load(&r->released) || given != atomic_load(&r->given) ||
		    released >= r->npages) {
			snprintf(msg, len, "region %u: %zu released (%zu given) pages, counters %zu (%zu), of %zu",
				 i, released, given, atomic_load(&r->released),
				 atomic_load(&r->given), r->npages);
			region_put(r);
			return -1;
		}
		region_put(r);
	}
	if (us->si->quiescent && us->si->quiescent(us, msg, len))
		return -1;
	if (present != atomic_load(&us->resident)) {
		snprintf(msg, len, "resident %llu != present pages %llu",
			 (unsigned long long)atomic_load(&us->resident), (unsigned long long)present);
		return -1;
	}
	b->ops->stats(b, &bs);
	if (bs.stored_pages != named) {
		snprintf(msg, len, "backend holds %llu slots, entries name %llu (leak or double free)",
			 (unsigned long long)bs.stored_pages, (unsigned long long)named);
		return -1;
	}
	return 0;
}

/* Pager threads may still be finishing work the application no longer
 * waits for (a readahead commit, the evictor's batch): sweep until a sweep
 * is clean, for up to 5 s.  Test-only: the pager itself never polls. */
int uswap__validate(struct uswap *us, char *msg, size_t len)
{
	for (int i = 0; i < 500; i++) {
		if (validate_once(us, msg, len) == 0)
			return 0;
		usleep(10000);
	}
	return -1;
}

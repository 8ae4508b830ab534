/*
 * reclaim.c - keeping resident managed memory under the limit.
 *
 * Accounting: us->resident counts pages reserved for mapping plus pages
 * mapped plus pages being evicted.  A fault reserves before it maps
 * (reserve_pages) and reclaims synchronously when the reservation would
 * cross the limit; the evictor thread keeps resident between the low and
 * high watermarks so that faults rarely have to.
 *
 * Policy: a clock over all regions with a 2-bit age per page (GCLOCK).
 * What user space can observe on a stock kernel sets the ages: a fault that
 * brings a page in (age 1), a refault whose distance (evictions since the
 * page left) is under the limit (age 3, the kernel's workingset
 * activation), a first write to a clean page (+1).  The hand decrements
 * ages and evicts pages at 0.  Readahead pages start at 0.
 *
 * Eviction never loses a write: a page is taken out of the application's
 * page table with UFFDIO_MOVE (atomic: a write lands before the move, in
 * the page we then store, or after it, as a fault that waits for us) into
 * a per-context staging area, and stored from there.  A clean page (kept
 * swap copy, write-protected) is moved the same way and just dropped.
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

void kick_evictor(struct uswap *us)
{
	atomic_fetch_add_explicit(&us->evict_kick, 1, memory_order_release);
	futex_wake_all(&us->evict_kick);
}

static uint64_t wmark(struct uswap *us, unsigned pct)
{
	return atomic_load_explicit(&us->limit_pages, memory_order_relaxed) * pct / 100;
}

void unreserve_pages(struct uswap *us, uint64_t n)
{
	if (n)
		atomic_fetch_sub_explicit(&us->resident, n, memory_order_relaxed);
}

static inline uintptr_t staging_addr(const struct uthread *t, unsigned k)
{
	return (uintptr_t)t->staging + ((size_t)k << PAGE_SHIFT_);
}

/* Is staging page @k mapped (did a MOVE put a page there)? */
static bool staging_present(const struct uthread *t, unsigned k)
{
	unsigned char v = 0;

	return mincore((void *)staging_addr(t, k), PAGE_SIZE_, &v) == 0 && (v & 1);
}

/*
 * Is entry @e still the EVICTING state that context @t set for batch page
 * @k?  "EVICTING" alone proves nothing: the page may have been discarded,
 * touched and evicted again by someone else meanwhile (I4).
 */
static inline bool evict_mine(const struct uthread *t, pte_t e, unsigned k)
{
	return pte_state(e) == PTE_EVICTING &&
	       (e & PTE_SEQ_MASK) == pte_evict_owner(t->id, k);
}

/*
 * Undo a failed eviction of page @k: the store failed, so the page goes
 * back where it was (if nobody discarded it meanwhile).  Returns true if
 * the page is resident again.
 */
static bool put_back(struct uthread *t, struct region *r, size_t idx, unsigned k)
{
	struct uswap *us = t->us;
	pthread_mutex_t *ptl = region_ptl(r, idx);
	bool back = false;

	pthread_mutex_lock(ptl);
	pte_t e = atomic_load(region_pte(r, idx));
	if (evict_mine(t, e, k)) {
		/* MOVE back; if it reports failure but the page left staging
		 * it went home (see move_out); else copy it home instead. */
		long m = uffd_move(us->uffd, region_addr(r, idx), staging_addr(t, k),
				   PAGE_SIZE_);

		back = m == PAGE_SIZE_ || !staging_present(t, k) ||
		       uffd_copy(us->uffd, region_addr(r, idx),
				 (const void *)staging_addr(t, k), PAGE_SIZE_, false) == PAGE_SIZE_;
		if (!back)
			uswap__warn("uswap: cannot put page %#lx back after a failed store",
				    (unsigned long)region_addr(r, idx));
		/* Even then the entry must leave EVICTING: the page is
		 * resident as far as anyone can tell (a fault maps zeros). */
		pte_set(r, idx, e, pte_with_age(pte_make(PTE_PRESENT, 0, 0), 1));
		back = true;
	}
	pthread_mutex_unlock(ptl);
	return back;
}

/* Finish the eviction of batch page @k (at @idx) into @slot. */
static void evict_finish(struct uthread *t, struct region *r, size_t idx,
			 unsigned k, uint32_t slot)
{
	struct uswap *us = t->us;
	pthread_mutex_t *ptl = region_ptl(r, idx);
	bool discarded;

	pthread_mutex_lock(ptl);
	pte_t e = atomic_load(region_pte(r, idx));
	discarded = !evict_mine(t, e, k);
	if (!discarded) {
		uint64_t seq = atomic_fetch_add_explicit(&us->evict_seq, 1,
							 memory_order_relaxed);
		pte_set(r, idx, e, pte_make(PTE_SWAPPED, slot,
			((seq << PTE_SEQ_SHIFT) & PTE_SEQ_MASK)));
	}
	pthread_mutex_unlock(ptl);
	/* A discard during eviction left the slot to us (I9). */
	if (discarded)
		slot_put(t, slot);
	unreserve_pages(us, 1);
}

static void warn_store_failed(struct uswap *us, int err)
{
	if (atomic_exchange(&us->warned_store, 1) == 0)
		uswap__warn("uswap: backend cannot store (%s): pages stay resident "
			    "above the limit; see store_failures in the stats",
			    strerror(-err));
}

/*
 * Page @idx (batch page @k, EVICTING, dirty, PTL held) is shared
 * copy-on-write with a child since a fork, so UFFDIO_MOVE refused it
 * (EBUSY).  Make it exclusive as a write would: MADV_POPULATE_WRITE breaks
 * copy-on-write without changing a byte, atomically against the
 * application's own writes; then move it.  Under the PTL this raises no
 * userfault: the page is mapped (checked: only a zap behind uswap's back
 * could remove it, and every zap of uswap's takes this PTL) and, dirty, not
 * write-protected.  Returns true if the page moved.
 */
static bool unshare_locked(struct uthread *t, struct region *r, size_t idx,
			   unsigned k)
{
	void *addr = (void *)region_addr(r, idx);
	unsigned char vec = 0;

	if (mincore(addr, PAGE_SIZE_, &vec) || !(vec & 1) ||
	    madvise(addr, PAGE_SIZE_, MADV_POPULATE_WRITE))
		return false;
	long m = uffd_move(t->us->uffd, staging_addr(t, k), (uintptr_t)addr, PAGE_SIZE_);
	return m == PAGE_SIZE_ || staging_present(t, k);
}

/*
 * Take pages [idx_k] (EVICTING, PTL held) out of the page table: move runs
 * of consecutive pages to staging in one UFFDIO_MOVE each.  A page that
 * cannot move is handled in place: a hole (zapped behind uswap's back)
 * becomes NONE.  A page shared copy-on-write with a child (EBUSY after
 * fork, fork.c): if clean, its kept copy is current and the page is
 * write-protected, so it is zapped in place (moved, as far as the caller is
 * concerned, which uses the kept slot); if dirty, it is unshared in place
 * and moved again (unshare_locked).  Returns a bitmap of the pages moved.
 */
static uint64_t move_out(struct uthread *t, struct region *r, unsigned n,
			 uint32_t *drop, unsigned *ndrop)
{
	struct uswap *us = t->us;
	uint64_t moved = 0;
	unsigned k = 0;

	while (k < n) {
		unsigned run = 1;

		while (k + run < n && t->evict_idx[k + run] == t->evict_idx[k] + run)
			run++;
		long ret = uffd_move(us->uffd, staging_addr(t, k),
				     region_addr(r, t->evict_idx[k]),
				     (size_t)run << PAGE_SHIFT_);
		unsigned char vec[EVICT_BATCH];
		bool all = ret == (long)((size_t)run << PAGE_SHIFT_);

		/*
		 * Believe the staging area, not the count: on 6.18 a MOVE that
		 * hit an internal -EAGAIN can move a batch without counting it
		 * and then fail with -EEXIST (SOAK.md §4).  Pages we moved are
		 * present in staging, which nobody else maps.
		 */
		if (!all && mincore((void *)staging_addr(t, k),
				    (size_t)run << PAGE_SHIFT_, vec))
			memset(vec, 0, sizeof(vec));
		for (unsigned i = 0; i < run; i++) {
			unsigned f = k + i;

			if (all || (vec[i] & 1)) {
				moved |= 1ull << f;
				continue;
			}
			/* This page did not move: ask again, alone, why. */
			size_t idx = t->evict_idx[f];
			long why = uffd_move(us->uffd, staging_addr(t, f),
					     region_addr(r, idx), PAGE_SIZE_);
			pte_t e = atomic_load(region_pte(r, idx));
			pte_t old = t->evict_old[f];

			if (why == PAGE_SIZE_ || staging_present(t, f)) {
				moved |= 1ull << f;
			} else if (why == -ENOENT) {
				/* A hole: zapped behind uswap's back. */
				if (old & PTE_HAS_SLOT)
					drop[(*ndrop)++] = pte_payload(old);
				pte_set(r, idx, e, pte_make(PTE_NONE, 0, 0));
				unreserve_pages(us, 1);
			} else if (why == -EBUSY && (old & PTE_HAS_SLOT) &&
				   !madvise((void *)region_addr(r, idx), PAGE_SIZE_,
					    MADV_DONTNEED)) {
				moved |= 1ull << f;
			} else if (why == -EBUSY && unshare_locked(t, r, idx, f)) {
				moved |= 1ull << f;
			} else {
				STAT_INC(us, evict_busy);
				pte_set(r, idx, e, old & ~PTE_WAITERS);
			}
		}
		k += run;
	}
	return moved;
}

/*
 * Evict from pages [from, to) of @r, which lie in one chunk and number at
 * most EVICT_BATCH.  Without @force the clock applies: pages with an age
 * are aged instead.  Caller holds a region reference.  Returns pages evicted.
 */
static long evict_window(struct uthread *t, struct region *r, size_t from,
			 size_t to, bool force)
{
	struct uswap *us = t->us;
	pthread_mutex_t *ptl = region_ptl(r, from);
	uint32_t drop[EVICT_BATCH];
	unsigned n = 0, ndrop = 0;
	long evicted = 0;
	uint64_t moved;

	pthread_mutex_lock(ptl);
	for (size_t i = from; i < to; i++) {
		pte_t e = atomic_load_explicit(region_pte(r, i), memory_order_acquire);

		if (pte_state(e) != PTE_PRESENT)
			continue;
		if (!force && pte_age(e)) {
			pte_set(r, i, e, pte_with_age(e, pte_age(e) - 1));
			continue;
		}
		t->evict_idx[n] = (uint32_t)i;
		t->evict_old[n] = e & ~PTE_WAITERS;
		pte_set(r, i, e, pte_make(PTE_EVICTING, pte_payload(e),
					  (e & PTE_HAS_SLOT) | pte_evict_owner(t->id, n)));
		n++;
	}
	moved = n ? move_out(t, r, n, drop, &ndrop) : 0;
	pthread_mutex_unlock(ptl);
	for (unsigned i = 0; i < ndrop; i++)
		slot_put(t, drop[i]);
	if (!moved)
		return 0;
	HOOK("evict_moved", us, region_addr(r, t->evict_idx[0]));

	for (unsigned k = 0; k < n; k++) {
		if (!(moved & (1ull << k)))
			continue;
		size_t idx = t->evict_idx[k];
		pte_t old = t->evict_old[k];
		uint32_t slot;

		if (old & PTE_HAS_SLOT) {
			/* Clean: the kept copy is current (seed 003). */
			slot = pte_payload(old);
			STAT_INC(us, clean_drops);
		} else {
			const void *page = t->staging + ((size_t)k << PAGE_SHIFT_);
			int err = us->backend->ops->store(us->backend, t->bctx,
							  page, &slot);
			if (err) {
				STAT_INC(us, store_failures);
				warn_store_failed(us, err);
				if (!put_back(t, r, idx, k))
					unreserve_pages(us, 1);	/* discarded */
				t->store_failed = true;
				continue;
			}
			STAT_INC(us, swapouts);
		}
		HOOK("evict_stored", us, region_addr(r, idx));
		evict_finish(t, r, idx, k, slot);
		evicted++;
	}
	madvise(t->staging, (size_t)n << PAGE_SHIFT_, MADV_DONTNEED);
	return evicted;
}

/* Evict what the clock allows (or everything, @force) in [from, to). */
long evict_range(struct uthread *t, struct region *r, size_t from, size_t to,
		 bool force)
{
	long total = 0;

	while (from < to) {
		size_t end = ((from >> CHUNK_SHIFT) + 1) << CHUNK_SHIFT;

		if (end > from + EVICT_BATCH)
			end = from + EVICT_BATCH;
		if (end > to)
			end = to;
		total += evict_window(t, r, from, end, force);
		from = end;
	}
	return total;
}

/*
 * Claim the next window of the clock: the hand walks region slots and,
 * within a region, EVICT_BATCH-page windows that never cross a chunk.
 * Returns a referenced region and the window, or NULL if no region exists.
 */
static struct region *hand_claim(struct uswap *us, size_t *from, size_t *to)
{
	struct region *r = NULL;

	pthread_mutex_lock(&us->hand_lock);
	for (unsigned tries = 0; tries <= MAX_REGIONS && !r; tries++) {
		r = region_get_index(us, us->hand_region);
		if (r && us->hand_page >= r->npages) {
			region_put(r);
			r = NULL;
		}
		if (!r) {
			us->hand_region = (us->hand_region + 1) % MAX_REGIONS;
			us->hand_page = 0;
		}
	}
	if (r) {
		*from = us->hand_page;
		*to = *from + EVICT_BATCH;
		if (*to > r->npages)
			*to = r->npages;
		us->hand_page = *to;
	}
	pthread_mutex_unlock(&us->hand_lock);
	return r;
}

/*
 * Evict about @want pages by the clock.  Gives up after enough windows for
 * the hand to age every page to 0 and pass once more (AGE_MAX + 2 laps):
 * then everything left is in flight or unevictable.
 */
static long reclaim(struct uthread *t, uint64_t want)
{
	struct uswap *us = t->us;
	uint64_t windows = 0, max_windows;
	long done = 0;

	max_windows = (AGE_MAX + 2) *
		(atomic_load_explicit(&us->total_pages, memory_order_relaxed) /
			 EVICT_BATCH + MAX_REGIONS / 64 + 1);
	t->store_failed = false;
	/* A store that failed means the backend is full: stop, rather than
	 * compress every page of a lap only to put it back. */
	while ((uint64_t)done < want && windows++ < max_windows && !t->store_failed) {
		size_t from, to;
		struct region *r = hand_claim(us, &from, &to);

		if (!r)
			break;
		done += evict_window(t, r, from, to, false);
		region_put(r);
	}
	return done;
}

static void note_peak(struct uswap *us, uint64_t v)
{
	uint64_t peak = atomic_load_explicit(&us->resident_peak, memory_order_relaxed);

	while (v > peak && !atomic_compare_exchange_weak_explicit(&us->resident_peak,
			&peak, v, memory_order_relaxed, memory_order_relaxed))
		;
}

/*
 * Reserve @n pages of the limit for pages about to be mapped, reclaiming
 * synchronously when the limit would be crossed.  Returns false if it had
 * to go over the limit because nothing could be evicted (everything in
 * flight, or the backend full): correctness before the limit; counted.
 */
bool reserve_pages(struct uthread *t, uint64_t n)
{
	struct uswap *us = t->us;
	bool direct = false, stuck = false;

	for (;;) {
		uint64_t cur = atomic_load_explicit(&us->resident, memory_order_relaxed);
		uint64_t lim = atomic_load_explicit(&us->limit_pages, memory_order_relaxed);

		if (cur + n <= lim || stuck) {
			if (!atomic_compare_exchange_weak_explicit(&us->resident, &cur,
					cur + n, memory_order_relaxed, memory_order_relaxed))
				continue;
			note_peak(us, cur + n);
			if (cur + n > wmark(us, us->cfg.high_wmark_pct))
				kick_evictor(us);
			if (stuck)
				STAT_INC(us, over_limit);
			return !stuck;
		}
		if (!direct) {
			STAT_INC(us, direct_reclaims);
			direct = true;
		}
		uint64_t want = cur + n - lim;

		if (want < EVICT_BATCH / 4)
			want = EVICT_BATCH / 4;	/* batch: make room for the next few */
		if (reclaim(t, want) <= 0)
			stuck = true;
	}
}

/*
 * The evictor: sleeps on evict_kick until resident crosses the high
 * watermark, then evicts down to the low one.  A run that makes no
 * progress (everything in flight, or the backend full) sleeps until the
 * next kick instead of trying again at once.
 */
void *evictor_main(void *arg)
{
	struct uthread *t = arg;
	struct uswap *us = t->us;

	for (;;) {
		uint32_t kick = atomic_load_explicit(&us->evict_kick, memory_order_acquire);

		if (atomic_load_explicit(&us->stopping, memory_order_acquire))
			break;
		uint64_t cur = atomic_load_explicit(&us->resident, memory_order_relaxed);
		if (cur > wmark(us, us->cfg.high_wmark_pct)) {
			bool stalled = false;

			STAT_INC(us, evictor_runs);
			while (!atomic_load(&us->stopping)) {
				uint64_t low = wmark(us, us->cfg.low_wmark_pct);

				cur = atomic_load_explicit(&us->resident, memory_order_relaxed);
				if (cur <= low)
					break;
				gate_enter(us);
				long done = reclaim(t, cur - low < EVICT_BATCH ? cur - low : EVICT_BATCH);
				gate_exit(us);
				if (done <= 0) {
					stalled = true;
					break;
				}
			}
			if (!stalled)
				continue;
		}
		futex_wait(&us->evict_kick, kick);
	}
	return NULL;
}

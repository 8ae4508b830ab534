/*
 * fault.c - the fault path: handler threads, zero-fill, swap-in,
 * readahead, and the write-protect fault that drops a kept swap copy
 * (seed 003).
 *
 * Swap-in (do_swap_page) in four steps; only the claim and the release
 * differ between the designs of swap-protocol.md (swapin.c, us->si):
 *   1. claim: under the chunk PTL, if the entry is still SWAPPED(slot),
 *      make the descriptor the slot's only reader (I3): B replaces the
 *      entry with MARKER(descriptor); A pins the slot, C puts it in the
 *      in-flight map, and both leave the entry SWAPPED(slot);
 *   2. read the slot into the descriptor's page, with no lock held; the
 *      backend is synchronous and the slot cannot be freed under us: a
 *      discard only clears the marker (B) or drops the entry's reference
 *      while the claim holds one of its own (A, C) (I9);
 *   3. commit: under the PTL, if the entry is still exactly what the claim
 *      left (pte_same: MARKER(descriptor), or SWAPPED(slot) of a slot that
 *      cannot have been reused while claimed: I4), UFFDIO_COPY the page in
 *      and make the entry PRESENT.  Otherwise back out: drop the
 *      reservation and wake the faulting threads (I11);
 *   4. release the claim (frees the slot if nobody else names it).
 * A second fault on the same page does not read.  In B it finds the marker
 * and does nothing: the kernel already has that thread asleep on the page,
 * and our UFFDIO_COPY or UFFDIO_WAKE of step 3 wakes it.  In A and C its
 * claim fails (swapin_lost): in A its handler backs off and wakes the
 * thread, which faults again; in C the thread sleeps until our COPY, WAKE
 * or release.  One read per swap-in, always.
 */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "uffd_compat.h"

enum fault_res { FAULT_DONE, FAULT_RETRY, FAULT_WAIT, FAULT_LOST };

static inline uint32_t inflight_id(const struct uthread *t, unsigned k)
{
	return t->id * (RA_MAX_LIMIT + 1) + k;
}

/* Age a swapped-in page starts with: refault distance, as in the kernel's
 * workingset detection.  A page evicted less than a limit's worth of
 * evictions ago would have stayed had the list been longer: protect it. */
static unsigned refault_age(struct uswap *us, pte_t swapped)
{
	uint64_t now = atomic_load_explicit(&us->evict_seq, memory_order_relaxed);
	uint64_t then = (swapped & PTE_SEQ_MASK) >> PTE_SEQ_SHIFT;
	uint64_t dist = (now - then) & (PTE_SEQ_MASK >> PTE_SEQ_SHIFT);

	return dist < atomic_load_explicit(&us->limit_pages, memory_order_relaxed)
		? AGE_MAX : 1;
}

/* Readahead window for a swap-in fault at @idx (a racy heuristic: relaxed
 * atomics, and two handlers may interleave their updates harmlessly).
 * A fault right after the last window means the stream used it: grow.
 * A fault right after the last fault starts a stream.  Anything else: shrink. */
static unsigned ra_window(struct uswap *us, struct region *r, size_t idx,
			  unsigned *hits)
{
	unsigned max = us->cfg.readahead_max;
	uint64_t last = atomic_load_explicit(&r->ra_last, memory_order_relaxed);
	uint64_t next = atomic_load_explicit(&r->ra_next, memory_order_relaxed);
	unsigned win = atomic_load_explicit(&r->ra_win, memory_order_relaxed);

	*hits = 0;
	if (!max)
		return 0;
	if (next && idx == next) {
		*hits = atomic_load_explicit(&r->ra_lastwin, memory_order_relaxed);
		win = win < 4 ? 4 : win * 2;
	} else if (last && idx == last) {
		win = win < 4 ? 4 : win;
	} else {
		win /= 2;
	}
	if (win > max)
		win = max;
	/* Never let one window be a large part of the limit: under a tiny
	 * limit it would only evict what it just brought in. */
	uint64_t cap = atomic_load_explicit(&us->limit_pages, memory_order_relaxed) / 8;
	if (win > cap)
		win = (unsigned)cap;
	atomic_store_explicit(&r->ra_last, idx + 1, memory_order_relaxed);
	atomic_store_explicit(&r->ra_win, win, memory_order_relaxed);
	return win;
}

static void ra_done(struct region *r, size_t idx, unsigned n)
{
	atomic_store_explicit(&r->ra_next, n ? idx + 1 + n : 0, memory_order_relaxed);
	atomic_store_explicit(&r->ra_lastwin, n, memory_order_relaxed);
}

enum claim_res { CLAIM_NONE, CLAIM_OK, CLAIM_BUSY };

/* Step 1, under the PTL: claim @idx for descriptor @k if it is SWAPPED. */
static enum claim_res swapin_claim(struct uthread *t, struct region *r, size_t idx,
				   unsigned k, unsigned *age)
{
	pte_t e = atomic_load_explicit(region_pte(r, idx), memory_order_acquire);
	struct inflight *d = &t->inflight[k];

	if (pte_state(e) != PTE_SWAPPED)
		return CLAIM_NONE;
	d->slot = pte_payload(e);
	d->idx = (uint32_t)idx;
	d->swapped = e & ~PTE_WAITERS;
	d->r = r;
	*age = refault_age(t->us, e);
	if (t->us->si->claim(t, r, idx, d, inflight_id(t, k)) != SI_OK)
		return CLAIM_BUSY;
	return CLAIM_OK;
}

/* Step 3's check, PTL held: is the entry still what our claim left?  In B
 * the marker names our descriptor; in A and C the slot cannot have been
 * freed and reused since the claim, so SWAPPED(slot) is still our page. */
static inline bool swapin_mine(struct region *r, size_t idx, const struct inflight *d)
{
	pte_t e = atomic_load_explicit(region_pte(r, idx), memory_order_acquire);

	return (e & ~PTE_WAITERS) == d->claimed;
}

/*
 * Step 3 for one page, PTL held, marker checked ours.  Installs the page:
 * clean (write-protected, the swap copy kept) unless @dirty.  Returns the
 * slot to free after unlocking, or UINT32_MAX.
 */
static uint32_t install_locked(struct uthread *t, struct region *r, size_t idx,
			       unsigned k, bool dirty, unsigned age)
{
	struct uswap *us = t->us;
	struct inflight *d = &t->inflight[k];
	uintptr_t addr = region_addr(r, idx);
	pte_t cur = atomic_load(region_pte(r, idx));
	long ret = uffd_copy(us->uffd, addr, d->buf, PAGE_SIZE_, !dirty);

	if (ret == PAGE_SIZE_ || ret == -EEXIST) {
		if (ret == -EEXIST) {
			/* Someone mapped a page behind our back (not through
			 * uswap): keep theirs; it is dirty for us. */
			STAT_INC(us, eexist);
			uffd_wake(us->uffd, addr, PAGE_SIZE_);
			dirty = true;
		}
		if (dirty) {
			pte_set(r, idx, cur, pte_with_age(pte_make(PTE_PRESENT, 0, 0), age));
			return d->slot;	/* write fault: memory holds the only copy */
		}
		pte_set(r, idx, cur, pte_with_age(pte_make(PTE_PRESENT, d->slot,
						PTE_HAS_SLOT), age));
		return UINT32_MAX;
	}
	/* The mapping is changing (e.g. munmap outside uswap): leave the page
	 * swapped and let the faulting thread try again. */
	pte_set(r, idx, cur, d->swapped);
	unreserve_pages(us, 1);
	uffd_wake(us->uffd, addr, PAGE_SIZE_);
	return UINT32_MAX;
}

/* Step 3 when the entry is no longer what the claim left: a discard
 * changed it (I9).  The reservation is ours to drop, the sleepers ours to
 * wake, and the release frees what the claim held. */
static void back_out(struct uthread *t, struct region *r, size_t idx, unsigned k)
{
	struct uswap *us = t->us;

	unreserve_pages(us, 1);
	uffd_wake(us->uffd, region_addr(r, idx), PAGE_SIZE_);
	us->si->release(t, &t->inflight[k], true);
}

/* Commit page @k (at @idx).  Returns true if the page was mapped. */
static bool commit_page(struct uthread *t, struct region *r, size_t idx,
			unsigned k, bool dirty, unsigned age)
{
	pthread_mutex_t *ptl = region_ptl(r, idx);
	uint32_t drop = UINT32_MAX;
	bool mine;

	pthread_mutex_lock(ptl);
	mine = swapin_mine(r, idx, &t->inflight[k]);
	if (mine)
		drop = install_locked(t, r, idx, k, dirty, age);
	pthread_mutex_unlock(ptl);
	if (!mine) {
		back_out(t, r, idx, k);
		return false;
	}
	if (drop != UINT32_MAX)
		slot_put(t, drop);
	t->us->si->release(t, &t->inflight[k], false);
	return true;
}

/*
 * Commit readahead pages k0..k0+n-1 (at idx0..) as clean pages.  When every
 * marker of a chunk's part of the run is intact, one UFFDIO_COPY maps them
 * all (the descriptors' buffers are contiguous).  Otherwise, page by page.
 */
static void commit_run(struct uthread *t, struct region *r, size_t idx0,
		       unsigned k0, unsigned n)
{
	struct uswap *us = t->us;

	while (n) {
		size_t chunk_end = ((idx0 >> CHUNK_SHIFT) + 1) << CHUNK_SHIFT;
		unsigned m = n, done = 0;
		pthread_mutex_t *ptl = region_ptl(r, idx0);

		if (idx0 + m > chunk_end)
			m = (unsigned)(chunk_end - idx0);
		pthread_mutex_lock(ptl);
		bool intact = true;
		for (unsigned i = 0; i < m && intact; i++)
			intact = swapin_mine(r, idx0 + i, &t->inflight[k0 + i]);
		if (intact && m > 1) {
			long ret = uffd_copy(us->uffd, region_addr(r, idx0),
					     t->inflight[k0].buf,
					     (size_t)m << PAGE_SHIFT_, true);
			done = ret > 0 ? (unsigned)(ret >> PAGE_SHIFT_) : 0;
			for (unsigned i = 0; i < done; i++) {
				size_t idx = idx0 + i;
				pte_t cur = atomic_load(region_pte(r, idx));

				pte_set(r, idx, cur, pte_make(PTE_PRESENT,
						t->inflight[k0 + i].slot, PTE_HAS_SLOT));
			}
		}
		pthread_mutex_unlock(ptl);
		for (unsigned i = 0; i < done; i++)
			us->si->release(t, &t->inflight[k0 + i], false);
		for (unsigned i = done; i < m; i++)
			commit_page(t, r, idx0 + i, k0 + i, false, 0);
		idx0 += m;
		k0 += m;
		n -= m;
	}
}

/*
 * A read failed: never map what we got (I6).  For the faulting page
 * (@poison), the page is poisoned: the faulting thread, and any later
 * access, gets SIGBUS until the page is discarded.  A readahead page just
 * goes back to SWAPPED: a real fault on it will try again and decide.
 */
static void read_failed(struct uthread *t, struct region *r, size_t idx,
			unsigned k, bool poison)
{
	struct uswap *us = t->us;
	pthread_mutex_t *ptl = region_ptl(r, idx);
	uintptr_t addr = region_addr(r, idx);
	uint32_t slot = t->inflight[k].slot;

	pthread_mutex_lock(ptl);
	if (!swapin_mine(r, idx, &t->inflight[k])) {
		pthread_mutex_unlock(ptl);
		back_out(t, r, idx, k);
		return;
	}
	pte_t cur = atomic_load(region_pte(r, idx));
	if (poison) {
		STAT_INC(us, load_failures);
		uffd_poison(us->uffd, addr, PAGE_SIZE_);	/* wakes: SIGBUS */
		pte_set(r, idx, cur, pte_make(PTE_POISON, 0, 0));
	} else {
		pte_set(r, idx, cur, t->inflight[k].swapped);
		slot = UINT32_MAX;
		/* A thread that faulted here found our marker (or lost its
		 * claim) and sleeps until we act: wake it, it faults again
		 * and decides. */
		uffd_wake(us->uffd, addr, PAGE_SIZE_);
	}
	pthread_mutex_unlock(ptl);
	unreserve_pages(us, 1);
	if (slot != UINT32_MAX)
		slot_put(t, slot);	/* its data is unreadable: let it go */
	us->si->release(t, &t->inflight[k], false);
}

/*
 * Swap in page @idx and up to @ra following swapped pages of @r in one go.
 * @write: the first page is for a write fault (mapped dirty, copy dropped).
 * @is_fault: a thread waits on the first page (a failed read poisons it).
 * Returns the pages mapped, 0 if @idx was no longer SWAPPED (the caller
 * re-reads it), -EAGAIN if another swap-in holds @idx's slot (A, C: see
 * swapin_lost), or -EIO if the first page could not be read.
 */
long swapin_range(struct uthread *t, struct region *r, size_t idx, size_t ra_,
		  bool write, bool is_fault)
{
	struct uswap *us = t->us;
	unsigned ra = ra_ > us->cfg.readahead_max ? us->cfg.readahead_max : (unsigned)ra_;
	unsigned n = 0, mapped = 0, ages[RA_MAX_LIMIT + 1];
	size_t end = idx + 1 + ra;
	pthread_mutex_t *held = NULL;
	enum claim_res c = CLAIM_NONE;
	long ret;

	if (end > r->npages)
		end = r->npages;
	reserve_pages(t, end - idx);

	/* Step 1 for the run: stop at the first page that is not swapped. */
	for (size_t i = idx; i < end; i++) {
		pthread_mutex_t *ptl = region_ptl(r, i);

		if (ptl != held) {
			if (held)
				pthread_mutex_unlock(held);
			pthread_mutex_lock(ptl);
			held = ptl;
		}
		if ((c = swapin_claim(t, r, i, n, &ages[n])) != CLAIM_OK)
			break;
		n++;
	}
	if (held)
		pthread_mutex_unlock(held);
	unreserve_pages(us, end - idx - n);
	if (n == 0)
		return c == CLAIM_BUSY ? -EAGAIN : 0;
	HOOK("swapin_marker", us, region_addr(r, idx));

	/* Step 2 and 3 for the faulting page first: its thread is waiting. */
	if (us->backend->ops->load(us->backend, t->bctx, t->inflight[0].slot,
				   t->inflight[0].buf) < 0) {
		read_failed(t, r, idx, 0, is_fault);
		ret = -EIO;
	} else {
		STAT_INC(us, swapins);
		HOOK("swapin_read", us, region_addr(r, idx));
		mapped += commit_page(t, r, idx, 0, write, is_fault ? ages[0] : 1);
		ret = mapped;
	}

	/* Then the readahead pages: read them all, commit contiguous runs. */
	if (n > 1) {
		unsigned k = 1;

		while (k < n) {
			unsigned run = k;

			while (run < n && us->backend->ops->load(us->backend, t->bctx,
					t->inflight[run].slot, t->inflight[run].buf) == 0)
				run++;
			STAT_ADD(us, swapins, run - k);
			STAT_ADD(us, readahead_pages, run - k);
			if (run > k) {
				HOOK("readahead_read", us, region_addr(r, idx + k));
				commit_run(t, r, idx + k, k, run - k);
				mapped += run - k;
			}
			if (run < n)
				read_failed(t, r, idx + run, run, false);
			k = run + 1;
		}
		if (ret >= 0)
			ret = mapped;
	}
	return ret;
}

/*
 * First touch (or discarded): map zero pages, dirty.  A stream of first
 * touches (populating a buffer) gets fault-around: up to @win following
 * untouched pages of the chunk are mapped in the same UFFDIO_COPY, which
 * saves a userfaultfd round trip (~15-20 us here) per page.  Returns the
 * pages mapped beyond the faulting one through @ahead.
 */
static enum fault_res fault_none(struct uthread *t, struct region *r, size_t idx,
				 unsigned win, unsigned *ahead)
{
	struct uswap *us = t->us;
	pthread_mutex_t *ptl = region_ptl(r, idx);
	uintptr_t addr = region_addr(r, idx);
	size_t end = idx + 1 + win, chunk_end = ((idx >> CHUNK_SHIFT) + 1) << CHUNK_SHIFT;
	unsigned n = 0;

	if (end > chunk_end)
		end = chunk_end;
	if (end > r->npages)
		end = r->npages;
	reserve_pages(t, end - idx);
	pthread_mutex_lock(ptl);
	while (idx + n < end &&
	       pte_state(atomic_load_explicit(region_pte(r, idx + n),
					      memory_order_acquire)) == PTE_NONE)
		n++;
	unreserve_pages(us, end - idx - n);
	if (n == 0) {
		pthread_mutex_unlock(ptl);
		return FAULT_RETRY;
	}
	long ret = uffd_copy(us->uffd, addr, us->zero_page, (size_t)n << PAGE_SHIFT_, false);
	unsigned done = ret > 0 ? (unsigned)(ret >> PAGE_SHIFT_) : 0;

	if (ret == -EEXIST) {
		/* Mapped behind our back (not through uswap): keep it. */
		STAT_INC(us, eexist);
		uffd_wake(us->uffd, addr, PAGE_SIZE_);
		done = 1;
	}
	for (unsigned i = 0; i < done; i++) {
		pte_t e = atomic_load(region_pte(r, idx + i));

		pte_set(r, idx + i, e, pte_with_age(pte_make(PTE_PRESENT, 0, 0), i == 0));
	}
	if (done == 0)
		uffd_wake(us->uffd, addr, PAGE_SIZE_);	/* mapping changing: refault */
	unreserve_pages(us, n - done);
	pthread_mutex_unlock(ptl);
	STAT_INC(us, faults_zero);
	*ahead = done > 1 ? done - 1 : 0;
	STAT_ADD(us, zero_fill_ahead, *ahead);
	return FAULT_DONE;
}

/*
 * A missing fault on a PRESENT entry: usually a duplicate message whose
 * thread the first install already woke (EEXIST: wake it again, harmless).
 * If the page really is gone, someone zapped it behind uswap's back
 * (madvise outside the API): it reads as zeros, as the kernel would give.
 */
static enum fault_res fault_present(struct uthread *t, struct region *r, size_t idx)
{
	struct uswap *us = t->us;
	pthread_mutex_t *ptl = region_ptl(r, idx);
	uintptr_t addr = region_addr(r, idx);
	uint32_t drop = UINT32_MAX;

	pthread_mutex_lock(ptl);
	pte_t e = atomic_load_explicit(region_pte(r, idx), memory_order_acquire);
	if (pte_state(e) != PTE_PRESENT) {
		pthread_mutex_unlock(ptl);
		return FAULT_RETRY;
	}
	STAT_INC(us, faults_present);
	long ret = uffd_copy(us->uffd, addr, us->zero_page, PAGE_SIZE_, false);
	if (ret == PAGE_SIZE_) {
		if (e & PTE_HAS_SLOT)
			drop = pte_payload(e);
		pte_set(r, idx, e, pte_with_age(pte_make(PTE_PRESENT, 0, 0), 1));
	} else {
		uffd_wake(us->uffd, addr, PAGE_SIZE_);
	}
	pthread_mutex_unlock(ptl);
	if (drop != UINT32_MAX)
		slot_put(t, drop);
	return FAULT_DONE;
}

/*
 * First write to a clean page (mapped write-protected, swap copy kept).
 * I7: the copy is dropped under the PTL, while the page cannot be being
 * evicted (EVICTING is excluded) and no other reference needs it (one
 * process, one entry: the slot's count is ours).  The page is dirty from
 * then on: memory holds the only copy.  I8 holds trivially here (a page of
 * ours is never shared), so the page is written in place.
 */
static enum fault_res fault_wp(struct uthread *t, struct region *r, size_t idx,
			       pte_t *seen)
{
	struct uswap *us = t->us;
	pthread_mutex_t *ptl = region_ptl(r, idx);
	uintptr_t addr = region_addr(r, idx);
	uint32_t drop = UINT32_MAX;

	pthread_mutex_lock(ptl);
	pte_t e = atomic_load_explicit(region_pte(r, idx), memory_order_acquire);
	switch (pte_state(e)) {
	case PTE_PRESENT:
		if (e & PTE_HAS_SLOT) {
			unsigned age = pte_age(e) < AGE_MAX ? pte_age(e) + 1 : AGE_MAX;

			drop = pte_payload(e);
			pte_set(r, idx, e, pte_with_age(pte_make(PTE_PRESENT, 0, 0), age));
			STAT_INC(us, faults_wp);
			STAT_INC(us, swap_copy_drops);
		}
		HOOK("wp_dropped", us, addr);
		uffd_unprotect(us->uffd, addr, PAGE_SIZE_);	/* wakes the writer */
		break;
	case PTE_EVICTING:
		pthread_mutex_unlock(ptl);
		*seen = e;
		return FAULT_WAIT;
	default:
		/* The page left memory since the write fault was raised: wake
		 * the writer, it faults again as a missing page. */
		uffd_wake(us->uffd, addr, PAGE_SIZE_);
		break;
	}
	pthread_mutex_unlock(ptl);
	if (drop != UINT32_MAX)
		slot_put(t, drop);
	return FAULT_DONE;
}

static enum fault_res fault_missing(struct uthread *t, struct region *r,
				    size_t idx, bool write, pte_t *seen)
{
	struct uswap *us = t->us;
	pte_t e = atomic_load_explicit(region_pte(r, idx), memory_order_acquire);

	unsigned hits, ahead = 0;
	enum fault_res res;

	switch (pte_state(e)) {
	case PTE_NONE:
		res = fault_none(t, r, idx, ra_window(us, r, idx, &hits), &ahead);
		if (res == FAULT_DONE)
			ra_done(r, idx, ahead);
		return res;
	case PTE_PRESENT:
		return fault_present(t, r, idx);
	case PTE_SWAPPED: {
		long n = swapin_range(t, r, idx, ra_window(us, r, idx, &hits), write, true);

		if (n == 0)
			return FAULT_RETRY;
		if (n == -EAGAIN) {
			/* A, C: another swap-in holds the slot (the loser). */
			swapin_count_lost(us);
			HOOK("fault_marker", us, region_addr(r, idx));
			return FAULT_LOST;
		}
		STAT_ADD(us, readahead_hits, hits);
		ra_done(r, idx, n > 1 ? (unsigned)n - 1 : 0);
		STAT_INC(us, faults_swapin);
		return FAULT_DONE;
	}
	case PTE_MARKER:
		/* A swap-in (or readahead) of this page is in flight; its
		 * owner's UFFDIO_COPY or UFFDIO_WAKE wakes this thread. */
		STAT_INC(us, faults_marker);
		HOOK("fault_marker", us, region_addr(r, idx));
		return FAULT_DONE;
	case PTE_EVICTING:
		STAT_INC(us, faults_evicting);
		*seen = e;
		return FAULT_WAIT;
	default:	/* PTE_POISON: the kernel raises SIGBUS on its own */
		uffd_wake(us->uffd, region_addr(r, idx), PAGE_SIZE_);
		return FAULT_DONE;
	}
}

/*
 * Serve one fault message.  Every attempt starts from the region lookup;
 * a wait drops the region reference first and the attempt after it
 * re-derives everything (I5, I12).
 */
void handle_fault(struct uthread *t, uintptr_t addr, uint64_t flags)
{
	struct uswap *us = t->us;

	addr &= ~(uintptr_t)(PAGE_SIZE_ - 1);
	STAT_INC(us, faults);
	HOOK("fault", us, addr);
	for (;;) {
		struct region *r = region_get(us, addr);
		enum fault_res res;
		pte_t seen = 0;

		if (!r) {
			/* Unmapped meanwhile: let the thread retry; it finds
			 * no mapping (SIGSEGV) or a new region. */
			STAT_INC(us, faults_unmanaged);
			uffd_wake(us->uffd, addr, PAGE_SIZE_);
			return;
		}
		size_t idx = (addr - r->base) >> PAGE_SHIFT_;
		if (flags & UFFD_PAGEFAULT_FLAG_WP)
			res = fault_wp(t, r, idx, &seen);
		else
			res = fault_missing(t, r, idx,
					    flags & UFFD_PAGEFAULT_FLAG_WRITE, &seen);
		if (res == FAULT_WAIT) {
			pte_wait(us, r, idx, seen);	/* drops r */
			continue;
		}
		if (res == FAULT_LOST) {
			region_put(r);
			swapin_lost(t, addr);
			return;
		}
		region_put(r);
		if (res == FAULT_DONE)
			return;
	}
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/*
 * A handler thread: read fault messages in batches and serve them.  It
 * waits either blocked in poll(2), or (USWAP_WAIT=spin) re-reading for up
 * to spin_us first, which saves the cross-CPU wake-up that dominates a
 * fault's cost on this machine kind (performance-floor.md).
 */
void *handler_main(void *arg)
{
	struct uthread *t = arg;
	struct uswap *us = t->us;
	struct uffd_msg msgs[32];
	struct pollfd pfd[2] = {
		{ .fd = us->uffd, .events = POLLIN },
		{ .fd = us->stopfd, .events = POLLIN },
	};

	for (;;) {
		ssize_t n = read(us->uffd, msgs, sizeof(msgs));

		if (n > 0) {
			for (size_t i = 0; i < (size_t)n / sizeof(msgs[0]); i++) {
				if (msgs[i].event != UFFD_EVENT_PAGEFAULT)
					continue;
				gate_enter(us);
				handle_fault(t, msgs[i].arg.pagefault.address,
					     msgs[i].arg.pagefault.flags);
				gate_exit(us);
			}
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno != EAGAIN) {
			uswap__warn("uswap: reading userfaultfd: %s", strerror(errno));
			break;
		}
		if (atomic_load_explicit(&us->stopping, memory_order_acquire))
			break;
		if (us->cfg.wait_mode == USWAP_WAIT_SPIN) {
			uint64_t until = now_ns() + (uint64_t)us->cfg.spin_us * 1000;
			struct pollfd p0 = pfd[0];
			bool ready = false;

			while (!ready && now_ns() < until) {
				p0.revents = 0;
				ready = poll(&p0, 1, 0) > 0;
			}
			if (ready)
				continue;
		}
		if (poll(pfd, 2, -1) < 0 && errno != EINTR)
			break;
		if (pfd[1].revents)
			break;
	}
	return NULL;
}

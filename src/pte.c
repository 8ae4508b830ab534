/*
 * pte.c - changing an entry and sleeping on one.
 *
 * Waiting follows the kernel's PG_waiters idea: a waiter sets WAITERS in the
 * entry and futex-waits on the entry's low 32 bits (state and flags live
 * there, so every state change also changes the futex word).  Whoever moves
 * the entry out of a state with WAITERS set wakes all sleepers; they retry
 * from the region lookup (I5).  No timeouts, no retry loops (I10).
 */
#include "internal.h"

static inline _Atomic uint32_t *pte_futex(_Atomic pte_t *p)
{
	return (_Atomic uint32_t *)(void *)p;	/* low half, little-endian */
}

/*
 * Change entry @idx from @old to @new_ (caller holds the chunk PTL).  The
 * only concurrent change possible is a waiter setting WAITERS, so the CAS
 * loop absorbs that bit.  Returns the value replaced.
 */
pte_t pte_set(struct region *r, size_t idx, pte_t old, pte_t new_)
{
	_Atomic pte_t *p = region_pte(r, idx);

	while (!atomic_compare_exchange_weak_explicit(p, &old, new_,
			memory_order_acq_rel, memory_order_acquire))
		;
	if (old & PTE_WAITERS)
		futex_wake_all(pte_futex(p));
	return old;
}

/*
 * Sleep until entry @idx changes from @seen (a MARKER or EVICTING value).
 * The caller holds a region reference, which this drops before sleeping:
 * unmap never waits for an owner's sleepers to be served, and the sleeper
 * re-derives everything after waking (I5, I12).  The entry array must stay
 * mapped until the futex_wait is over, also in the window between dropping
 * the reference and sleeping (the owner may finish and an unmap complete
 * in it): the sleeper is counted in r->sleepers first, and unmap frees the
 * array only when that count is back to 0 (region_drain).  It gets there
 * promptly: every owner a sleeper waits for holds a reference, so has
 * finished (and woken it) when unmap stops waiting for references.
 */
void pte_wait(struct uswap *us, struct region *r, size_t idx, pte_t seen)
{
	_Atomic pte_t *p = region_pte(r, idx);
	pte_t want = seen | PTE_WAITERS;

	if (!(seen & PTE_WAITERS) &&
	    !atomic_compare_exchange_strong_explicit(p, &seen, want,
			memory_order_acq_rel, memory_order_acquire)) {
		region_put(r);
		return;		/* it changed already: retry */
	}
	uintptr_t addr = region_addr(r, idx);

	atomic_fetch_add(&r->sleepers, 1);	/* seq_cst: before the put */
	region_put(r);
	HOOK("wait_sleep", us, addr);		/* the window before the sleep */
	STAT_INC(us, retries);
	futex_wait(pte_futex(p), (uint32_t)want);
	/* Dekker with region_drain: dying is set before sleepers is read. */
	if (atomic_fetch_sub(&r->sleepers, 1) == 1 && atomic_load(&r->dying))
		futex_wake_all(&r->sleepers);
}

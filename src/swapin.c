/*
 * swapin.c - the three ways a swap-in can own a slot while it reads it,
 * selected at run time (USWAP_SWAPIN); everything else of the swap-in path
 * (fault.c swapin_range: claim, read with no lock held, commit under the
 * PTL if the entry is still what the claim left, release) is shared.
 *
 *   B "marker" (default): the entry becomes MARKER(descriptor) under the
 *     PTL (seed 001/002, David Hildenbrand's proposal).  A second fault
 *     finds the marker and leaves its thread asleep for the owner's COPY or
 *     WAKE; a discard clears the marker and leaves the slot to the owner.
 *   A "pin": the entry stays SWAPPED(S); the reader sets S's pin bit (the
 *     kernel 6.8 fix: SWAP_HAS_CACHE as a try-lock) and holds a reference
 *     on S until it is done.  A loser does not read: it backs off until the
 *     pin is dropped or a tick passed (the 2024 follow-up's wait queue with
 *     its one-tick timeout), wakes its thread, and the thread faults again
 *     (the retry).  The commit checks pte_same: the entry is still
 *     SWAPPED(S).  That proves the page was not discarded and evicted again
 *     to S, because S cannot be freed (so not reused) while pinned.
 *   C "cache": the entry stays SWAPPED(S); every swap-in first inserts
 *     S -> descriptor into an in-flight map (kernel 7.0: swap-in always
 *     through the swap cache).  A loser finds the descriptor and marks it;
 *     its thread stays asleep on the page (the folio lock) until the
 *     winner's COPY, WAKE or release wakes it.  The map entry holds a
 *     reference on S and is removed before that reference is dropped, so S
 *     is never free while it can be found (the ABA rule).
 *
 * Lock order: the pin words are bit locks taken only by try-lock; the map
 * lock nests inside the chunk PTL and is a leaf.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "internal.h"

/* ------------------------------------------------------------ B: marker */

static enum si_claim marker_claim(struct uthread *t, struct region *r, size_t idx,
				  struct inflight *d, uint32_t id)
{
	(void)t;
	d->claimed = pte_make(PTE_MARKER, id, 0);
	pte_set(r, idx, d->swapped, d->claimed);
	return SI_OK;
}

/* The marker took over the entry's reference; a discard cleared the marker
 * and left the slot to us (I9). */
static void marker_release(struct uthread *t, struct inflight *d, bool backed_out)
{
	if (backed_out)
		slot_put(t, d->slot);
}

/* ---------------------------------------------------------------- A: pin */

/*
 * One pin word per stripe of slots (slot % SI_PIN_STRIPES): bit 0 pinned,
 * bit 1 waiters.  Two slots of one stripe share a pin, so a collision costs
 * a reader a wait or a readahead page, never correctness (a hashed bit
 * lock).  Neighbouring pages get neighbouring slots, so stripes rarely
 * collide within a readahead window.
 */
#define SI_PIN_STRIPES (1u << 16)
#define PIN_HELD 1u
#define PIN_WAITERS 2u

static inline _Atomic uint32_t *pin_word(struct uswap *us, uint32_t slot)
{
	return &us->pins[slot & (SI_PIN_STRIPES - 1)];
}

static enum si_claim pin_claim(struct uthread *t, struct region *r, size_t idx,
			       struct inflight *d, uint32_t id)
{
	struct uswap *us = t->us;
	_Atomic uint32_t *w = pin_word(us, d->slot);
	uint32_t v = atomic_load_explicit(w, memory_order_relaxed);

	(void)r;
	(void)idx;
	(void)id;
	for (;;) {
		if (!(v & PIN_HELD)) {
			/* acquire: pairs with the release in pin_release */
			if (atomic_compare_exchange_weak_explicit(w, &v, PIN_HELD,
					memory_order_acquire, memory_order_relaxed))
				break;
			continue;
		}
		if ((v & PIN_WAITERS) ||
		    atomic_compare_exchange_weak_explicit(w, &v, v | PIN_WAITERS,
				memory_order_relaxed, memory_order_relaxed)) {
			t->si_word = w;
			t->si_val = v | PIN_WAITERS;
			return SI_BUSY;
		}
	}
	/* The entry's reference keeps S allocated (PTL held): take our own,
	 * the SWAP_HAS_CACHE part of the slot's lifetime (I1). */
	us->backend->ops->dup(us->backend, d->slot);
	d->claimed = d->swapped;
	return SI_OK;
}

static void pin_release(struct uthread *t, struct inflight *d, bool backed_out)
{
	struct uswap *us = t->us;
	_Atomic uint32_t *w = pin_word(us, d->slot);

	(void)backed_out;
	/* Unpin before dropping the reference: once free, S may be stored
	 * and pinned again by someone else. */
	if (atomic_exchange_explicit(w, 0, memory_order_release) & PIN_WAITERS)
		futex_wake_all(w);
	slot_put(t, d->slot);
}

static bool pin_busy(struct uswap *us, uint32_t slot)
{
	return atomic_load_explicit(pin_word(us, slot), memory_order_relaxed) & PIN_HELD;
}

static int pin_quiescent(struct uswap *us, char *msg, size_t len)
{
	for (uint32_t i = 0; i < SI_PIN_STRIPES; i++)
		if (atomic_load(&us->pins[i])) {
			snprintf(msg, len, "pin stripe %u still held (%#x)", i,
				 atomic_load(&us->pins[i]));
			return -1;
		}
	return 0;
}

/* ------------------------------------------------------------- C: cache */

#define SI_HASH 4096u

static inline struct inflight **sic_bucket(struct uswap *us, uint32_t slot)
{
	return &us->sic_hash[(slot * 0x9e3779b1u) >> 20];
}

static enum si_claim cache_claim(struct uthread *t, struct region *r, size_t idx,
				 struct inflight *d, uint32_t id)
{
	struct uswap *us = t->us;
	struct inflight **b = sic_bucket(us, d->slot);

	(void)r;
	(void)idx;
	(void)id;
	pthread_mutex_lock(&us->sic_lock);
	for (struct inflight *f = *b; f; f = f->hnext) {
		if (f->slot != d->slot)
			continue;
		/* In flight: the loser's thread sleeps in the kernel on the
		 * page; the winner's COPY or WAKE wakes it, and so does the
		 * winner's release, which sees this flag (set under the map
		 * lock while f is in the map, so it cannot be missed). */
		f->waiters = true;
		pthread_mutex_unlock(&us->sic_lock);
		return SI_BUSY;
	}
	d->waiters = false;
	d->hnext = *b;
	*b = d;
	pthread_mutex_unlock(&us->sic_lock);
	/* The map's reference on S (the swap cache holds the slot). */
	us->backend->ops->dup(us->backend, d->slot);
	d->claimed = d->swapped;
	return SI_OK;
}

static void cache_release(struct uthread *t, struct inflight *d, bool backed_out)
{
	struct uswap *us = t->us;
	struct inflight **p = sic_bucket(us, d->slot);
	bool waiters;

	(void)backed_out;
	pthread_mutex_lock(&us->sic_lock);
	while (*p != d)
		p = &(*p)->hnext;
	*p = d->hnext;
	d->hnext = NULL;
	waiters = d->waiters;
	pthread_mutex_unlock(&us->sic_lock);
	/* A loser that came after our commit (the page was evicted clean
	 * and faulted again before this release) sleeps on the page: wake
	 * it, it faults again and finds the slot free. */
	if (waiters)
		uffd_wake(us->uffd, region_addr(d->r, d->idx), PAGE_SIZE_);
	/* Out of the map first, then the reference: S is never free while
	 * a lookup can find it (no ABA through the map). */
	slot_put(t, d->slot);
}

static bool cache_busy(struct uswap *us, uint32_t slot)
{
	bool found = false;

	pthread_mutex_lock(&us->sic_lock);
	for (struct inflight *f = *sic_bucket(us, slot); f && !found; f = f->hnext)
		found = f->slot == slot;
	pthread_mutex_unlock(&us->sic_lock);
	return found;
}

static int cache_quiescent(struct uswap *us, char *msg, size_t len)
{
	int ret = 0;

	pthread_mutex_lock(&us->sic_lock);
	for (uint32_t i = 0; i < SI_HASH && !ret; i++)
		if (us->sic_hash[i]) {
			snprintf(msg, len, "slot %u still in the in-flight map",
				 us->sic_hash[i]->slot);
			ret = -1;
		}
	pthread_mutex_unlock(&us->sic_lock);
	return ret;
}

/* ---------------------------------------------------------------- common */

static const struct swapin_ops swapin_designs[] = {
	[USWAP_SWAPIN_MARKER] = { "marker", marker_claim, marker_release, NULL, NULL },
	[USWAP_SWAPIN_PIN] = { "pin", pin_claim, pin_release, pin_busy, pin_quiescent },
	[USWAP_SWAPIN_CACHE] = { "cache", cache_claim, cache_release, cache_busy,
				 cache_quiescent },
};

const char *swapin_name(enum uswap_swapin design)
{
	return (unsigned)design < 3 ? swapin_designs[design].name : "?";
}

int swapin_init(struct uswap *us)
{
	pthread_mutex_init(&us->sic_lock, NULL);
	if ((unsigned)us->cfg.swapin > USWAP_SWAPIN_CACHE)
		return -EINVAL;
	us->si = &swapin_designs[us->cfg.swapin];
	if (us->cfg.swapin == USWAP_SWAPIN_PIN) {
		us->pins = mmap(NULL, SI_PIN_STRIPES * sizeof(*us->pins),
				PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (us->pins == MAP_FAILED) {
			us->pins = NULL;
			return -ENOMEM;
		}
	}
	if (us->cfg.swapin == USWAP_SWAPIN_CACHE) {
		us->sic_hash = calloc(SI_HASH, sizeof(*us->sic_hash));
		if (!us->sic_hash)
			return -ENOMEM;
	}
	return 0;
}

void swapin_fini(struct uswap *us)
{
	if (us->pins)
		munmap(us->pins, SI_PIN_STRIPES * sizeof(*us->pins));
	free(us->sic_hash);
	pthread_mutex_destroy(&us->sic_lock);
}

/*
 * A fault lost its claim to another swap-in of the slot at @addr (A, C):
 * count it (before the "fault_marker" hook, as design B counts
 * faults_marker, so a test that saw the hook sees the count).
 */
void swapin_count_lost(struct uswap *us)
{
	if (us->cfg.swapin == USWAP_SWAPIN_CACHE)
		STAT_INC(us, swapin_cache_waits);
	else
		STAT_INC(us, swapin_pin_retries);
}

/*
 * Then what the loser does.  The caller dropped its region reference
 * (I12).  Its thread sleeps in the kernel on the page.
 *
 * A (kernel 6.8 + the 2024 wait queue): back off on the pin word until the
 * pin is dropped or one tick (1 ms) passed, then wake the thread: it
 * faults again, and that fault decides (a retry loop while the winner is
 * slow: the timer the seeds criticise, and model/ A-progress's cycle).
 *
 * C (kernel 7.0): nothing to do: the claim marked the winner's
 * descriptor, whose COPY, WAKE or release wakes the thread (an event).
 */
void swapin_lost(struct uthread *t, uintptr_t addr)
{
	struct uswap *us = t->us;

	if (us->cfg.swapin == USWAP_SWAPIN_CACHE)
		return;
	futex_wait_ns(t->si_word, t->si_val, 1000000);
	uffd_wake(us->uffd, addr, PAGE_SIZE_);
}

/*
 * manage.c - what the LD_PRELOAD shim needs to follow the application's
 * own calls on managed memory: munmap of part of a region, MAP_FIXED over
 * one, mremap, mprotect (manage.h states each contract).
 *
 * Releasing part of a region (munmap, mremap shrink, MAP_FIXED over it)
 * does not shrink the region: its pages become RELEASED, under their PTL,
 * together with replacing their range by a PROT_NONE reservation (the same
 * rule as every entry change: entry and kernel page table change together).
 * The reservation keeps the kernel from giving the address range to someone
 * else while the region's directory granules still name the region.  A
 * released page holds nothing (no slot, no resident page) and nothing maps,
 * evicts, prefetches or counts it.  A swap-in or eviction in flight on it
 * finds its MARKER or EVICTING entry gone and backs out as after a discard
 * (I9).  When the last page of a region is released, the region is unmapped.
 *
 * Unmanaging a region (mprotect to anything but read-write, MREMAP_FIXED)
 * holds the engine still as a fork does (map_lock, then the fork gate
 * exclusive: no fault, eviction or API call in flight), swaps every page
 * back in whatever the limit, unregisters the memory and forgets the region.
 */
#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#include "internal.h"
#include "manage.h"
#include "uffd_compat.h"

_Static_assert(USWAP__MAX_REGIONS == MAX_REGIONS, "manage.h: keep MAX_REGIONS in step");

static inline int page_kind(pte_t e)
{
	if (pte_state(e) != PTE_RELEASED)
		return USWAP_MANAGED;
	return pte_payload(e) == RELEASED_GIVEN ? USWAP_FOREIGN : USWAP_RESERVED;
}

/*
 * A reference on the region at @addr, taken inside the fork gate (a
 * reference that a fork copied would never be dropped in the child, and
 * the child's unmap would wait for it forever), or NULL.  An address no
 * region's granule holds costs one load and takes nothing.
 */
static struct region *lookup(struct uswap *us, uintptr_t addr)
{
	size_t i = addr >> DIR_SHIFT;
	struct region *r;

	if (i >= us->dir_len || !atomic_load_explicit(&us->dir[i], memory_order_acquire))
		return NULL;
	gate_enter(us);
	r = region_get(us, addr);
	if (!r)
		gate_exit(us);
	return r;
}

static void lookup_done(struct uswap *us, struct region *r)
{
	region_put(r);
	gate_exit(us);
}

int uswap__kind(struct uswap *us, uintptr_t addr, size_t len, size_t *run, int *id)
{
	const size_t g = (size_t)1 << DIR_SHIFT;
	struct region *r = lookup(us, addr);
	size_t n;

	if (!r) {
		/* Regions start on a granule: none starts before the next one,
		 * and whole granules no region names are foreign too. */
		n = ((addr | (g - 1)) + 1) - addr;
		while (n < len) {
			size_t gi = (addr + n) >> DIR_SHIFT;

			if (gi < us->dir_len &&
			    atomic_load_explicit(&us->dir[gi], memory_order_acquire))
				break;
			n += g;
		}
		*run = n < len ? n : len;
		*id = -1;
		return USWAP_FOREIGN;
	}
	size_t idx = (addr - r->base) >> PAGE_SHIFT_, j = idx + 1;
	size_t end = idx + (len >> PAGE_SHIFT_);
	int kind = page_kind(atomic_load_explicit(region_pte(r, idx), memory_order_acquire));

	if (end > r->npages)
		end = r->npages;
	while (j < end &&
	       page_kind(atomic_load_explicit(region_pte(r, j), memory_order_acquire)) == kind)
		j++;
	*run = (j - idx) << PAGE_SHIFT_;
	*id = kind == USWAP_FOREIGN ? -1 : (int)(r - us->rpool);
	lookup_done(us, r);
	return kind;
}

int uswap__managed(struct uswap *us, const void *addr)
{
	struct region *r = lookup(us, (uintptr_t)addr);
	int id = -1;

	if (!r)
		return -1;
	pte_t e = atomic_load_explicit(region_pte(r, ((uintptr_t)addr - r->base) >> PAGE_SHIFT_),
				       memory_order_acquire);
	if (pte_state(e) != PTE_RELEASED)
		id = (int)(r - us->rpool);
	lookup_done(us, r);
	return id;
}

int uswap__region(struct uswap *us, int id, uintptr_t *base, size_t *len)
{
	struct region *r;

	if (id < 0 || id >= MAX_REGIONS)
		return -EINVAL;
	gate_enter(us);
	r = region_get_index(us, (unsigned)id);
	if (r) {
		*base = r->base;
		*len = r->len;
		region_put(r);
	}
	gate_exit(us);
	return r ? 0 : -EINVAL;
}

/* Reserve pages [from, to) of @r (PTL held), except the ranges given away:
 * those hold the application's mapping.  *@done: the pages before it are
 * reserved (or given away), also when a mmap fails (vm.max_map_count):
 * the caller releases exactly those, so entries and mappings stay in step. */
#ifdef USWAP_TESTING
_Atomic int uswap__fail_reserve_at;

static bool reserve_fails(void)
{
	int n = atomic_load(&uswap__fail_reserve_at);

	while (n > 0 && !atomic_compare_exchange_weak(&uswap__fail_reserve_at, &n, n - 1))
		;
	return n == 1;
}
#else
static inline bool reserve_fails(void) { return false; }
#endif

static int reserve_range_locked(struct region *r, size_t from, size_t to, size_t *done)
{
	*done = from;
	while (from < to) {
		size_t j = from;

		while (j < to && page_kind(atomic_load(region_pte(r, j))) != USWAP_FOREIGN)
			j++;
		if (j > from && reserve_fails())
			return -ENOMEM;
		if (j > from &&
		    mmap((void *)region_addr(r, from), (j - from) << PAGE_SHIFT_, PROT_NONE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0) == MAP_FAILED)
			return -errno;
		while (j < to && page_kind(atomic_load(region_pte(r, j))) == USWAP_FOREIGN)
			j++;
		from = j;
		*done = from;
	}
	return 0;
}

/*
 * Release one chunk's part [from, to) of a range, PTL held: reserve the
 * range, then the entries, as discard_chunk_locked does (an in-flight owner
 * frees its own slot, I9).  Counts what it released and gave away.
 */
static int release_chunk_locked(struct uswap *us, struct region *r, size_t from,
				size_t to, bool give, uint32_t *drop, unsigned *ndrop,
				size_t *nrel, size_t *ngiven)
{
	uint32_t payload = give ? RELEASED_GIVEN : RELEASED_RESERVED;
	uint64_t unres = 0;
	size_t done;
	int err = reserve_range_locked(r, from, to, &done);

	/* What could not be reserved stays managed, as it was: the caller
	 * reports the error (as munmap(2) itself may fail with ENOMEM). */
	to = done;
	for (size_t i = from; i < to; i++) {
		pte_t e = atomic_load_explicit(region_pte(r, i), memory_order_acquire);

		if (pte_state(e) == PTE_RELEASED) {
			if (give && pte_payload(e) == RELEASED_RESERVED) {
				pte_set(r, i, e, pte_make(PTE_RELEASED, RELEASED_GIVEN, 0));
				(*ngiven)++;
			}
			continue;
		}
		unres += discard_entry_locked(us, r, i, e, pte_make(PTE_RELEASED, payload, 0),
					      drop, ndrop);
		(*nrel)++;
		*ngiven += give;
	}
	unreserve_pages(us, unres);
	return err;
}

static int release(struct uswap *us, void *addr, size_t len, bool give)
{
	uintptr_t a = (uintptr_t)addr, base;
	size_t nrel = 0, ngiven = 0, rlen, first, last;
	uint32_t drop[CHUNK_PAGES];
	struct region *r;
	int err = 0;

	if ((a | len) & (PAGE_SIZE_ - 1) || len == 0 || a + len < a)
		return -EINVAL;
	/* The gate first, then the reference (see lookup). */
	struct uthread *t = api_ctx_get(us);
	r = region_get(us, a);
	if (!r || a + len > r->base + r->len) {
		if (r)
			region_put(r);
		api_ctx_put(t);
		return -EINVAL;
	}
	first = (a - r->base) >> PAGE_SHIFT_;
	last = first + (len >> PAGE_SHIFT_);
	for (size_t i = first; i < last && !err;) {
		size_t end = ((i >> CHUNK_SHIFT) + 1) << CHUNK_SHIFT;
		unsigned ndrop = 0;

		if (end > last)
			end = last;
		pthread_mutex_lock(region_ptl(r, i));
		err = release_chunk_locked(us, r, i, end, give, drop, &ndrop, &nrel, &ngiven);
		pthread_mutex_unlock(region_ptl(r, i));
		for (unsigned k = 0; k < ndrop; k++)
			slot_put(t, drop[k]);
		i = end;
	}
	atomic_fetch_add(&r->given, ngiven);
	bool all = nrel && atomic_fetch_add(&r->released, nrel) + nrel == r->npages;
	base = r->base;
	rlen = r->len;
	region_put(r);
	api_ctx_put(t);
	if (all)
		region_unmap(us, (void *)base, rlen);	/* takes map_lock: no ref held */
	return err;
}

int uswap__release(struct uswap *us, void *addr, size_t len)
{
	return release(us, addr, len, false);
}

int uswap__replace(struct uswap *us, void *addr, size_t len)
{
	return release(us, addr, len, true);
}

static int uffd_unregister(int uffd, uintptr_t addr, size_t len)
{
	struct uffdio_range range = { .start = addr, .len = len };

	return ioctl(uffd, UFFDIO_UNREGISTER, &range) < 0 ? -errno : 0;
}

/*
 * Swap in the run of SWAPPED pages from @idx (at most the context's
 * buffers, inside one chunk; PTL held, engine still) and map it dirty.
 * Returns the pages dealt with (at least 1).
 */
static size_t unmanage_swapin_locked(struct uthread *t, struct region *r, size_t idx,
				     size_t end, uint32_t *drop, unsigned *ndrop)
{
	struct uswap *us = t->us;
	size_t n = 0;

	while (idx + n < end && n <= RA_MAX_LIMIT &&
	       pte_state(atomic_load(region_pte(r, idx + n))) == PTE_SWAPPED) {
		uint32_t slot = pte_payload(atomic_load(region_pte(r, idx + n)));

		if (us->backend->ops->load(us->backend, t->bctx, slot,
					   t->bufs + (n << PAGE_SHIFT_)) < 0)
			break;
		n++;
	}
	if (n == 0) {
		/* The first page cannot be read: it stays unreadable (I6). */
		pte_t e = atomic_load(region_pte(r, idx));

		STAT_INC(us, load_failures);
		uffd_poison(us->uffd, region_addr(r, idx), PAGE_SIZE_);
		drop[(*ndrop)++] = pte_payload(e);
		pte_set(r, idx, e, pte_make(PTE_POISON, 0, 0));
		return 1;
	}
	long ret = uffd_copy(us->uffd, region_addr(r, idx), t->bufs, n << PAGE_SHIFT_, false);
	size_t done = ret > 0 ? (size_t)ret >> PAGE_SHIFT_ : 0;

	for (size_t k = 0; k < done; k++) {
		pte_t e = atomic_load(region_pte(r, idx + k));

		drop[(*ndrop)++] = pte_payload(e);
		pte_set(r, idx + k, e, pte_with_age(pte_make(PTE_PRESENT, 0, 0), 1));
	}
	atomic_fetch_add(&us->resident, done);	/* whatever the limit */
	STAT_ADD(us, swapins, done);
	if (done < n)
		uswap__warn("uswap: unmanage: cannot map page %#lx back (%s): it will read as zeros",
			    (unsigned long)region_addr(r, idx + done), strerror((int)-ret));
	return done ? done : 1;
}

/* Make every page of @r resident and dirty (no slot, no write protection). */
static void unmanage_pages(struct uthread *t, struct region *r)
{
	struct uswap *us = t->us;
	uint32_t drop[CHUNK_PAGES];

	for (size_t i = 0; i < r->npages;) {
		size_t end = ((i >> CHUNK_SHIFT) + 1) << CHUNK_SHIFT;
		unsigned ndrop = 0;

		if (end > r->npages)
			end = r->npages;
		pthread_mutex_lock(region_ptl(r, i));
		for (size_t k = i; k < end;) {
			pte_t e = atomic_load(region_pte(r, k));

			switch (pte_state(e)) {
			case PTE_SWAPPED:
				k += unmanage_swapin_locked(t, r, k, end, drop, &ndrop);
				continue;
			case PTE_PRESENT:
				if (e & PTE_HAS_SLOT) {
					uffd_unprotect(us->uffd, region_addr(r, k), PAGE_SIZE_);
					drop[ndrop++] = pte_payload(e);
					pte_set(r, k, e, pte_make(PTE_PRESENT, 0, e & PTE_AGE_MASK));
				}
				break;
			case PTE_MARKER:
			case PTE_EVICTING:
				/* The fork gate excludes every operation in flight. */
				uswap__warn("uswap: unmanage: page %#lx in flight (state %u)",
					    (unsigned long)region_addr(r, k), pte_state(e));
				break;
			default:
				break;
			}
			k++;
		}
		pthread_mutex_unlock(region_ptl(r, i));
		for (unsigned k = 0; k < ndrop; k++)
			slot_put(t, drop[k]);
		i = end;
	}
}

/* Unregister the live runs of @r and unmap its reservations; given ranges
 * are the application's and stay. */
static void unmanage_ranges(struct uswap *us, struct region *r)
{
	for (size_t i = 0; i < r->npages;) {
		int kind = page_kind(atomic_load(region_pte(r, i)));
		size_t j = i + 1;

		while (j < r->npages && page_kind(atomic_load(region_pte(r, j))) == kind)
			j++;
		if (kind == USWAP_MANAGED)
			uffd_unregister(us->uffd, region_addr(r, i), (j - i) << PAGE_SHIFT_);
		else if (kind == USWAP_RESERVED)
			munmap((void *)region_addr(r, i), (j - i) << PAGE_SHIFT_);
		i = j;
	}
	munmap((void *)(r->base + r->len), region_tail_len(r->len));	/* its tail */
}

int uswap__unmanage(struct uswap *us, void *addr, size_t len)
{
	uintptr_t a = (uintptr_t)addr;
	uint64_t gone[MAX_REGIONS / 64] = { 0 };	/* slots unmanaged */
	unsigned n = 0;

	if (len == 0 || a + len < a)
		return -EINVAL;
	pthread_mutex_lock(&us->map_lock);
	pthread_rwlock_wrlock(&us->fork_gate);
	/* The gate is ours alone, so is every API context. */
	struct uthread *t = &us->ctx[us->cfg.threads + 1];
	pthread_mutex_lock(&t->lock);
	for (unsigned i = 0; i < MAX_REGIONS; i++) {
		struct region *r = &us->rpool[i];

		if (!atomic_load(&r->used) || atomic_load(&r->dying) ||
		    r->base >= a + len || r->base + r->len <= a)
			continue;
		unmanage_pages(t, r);
		unmanage_ranges(us, r);
		/* Handlers still holding a message for the region find it gone
		 * (faults_unmanaged); threads that faulted meanwhile were woken
		 * by the unregistration and fault as on plain memory. */
		region_retire(us, r);
		gone[i / 64] |= 1ull << (i % 64);
		n++;
	}
	pthread_mutex_unlock(&t->lock);
	pthread_rwlock_unlock(&us->fork_gate);
	/* Out of the gate: an API call that took its reference before the
	 * gate (range_get, then api_ctx_get) finishes, and drops it. */
	for (unsigned i = 0; i < MAX_REGIONS; i++) {
		struct region *r = &us->rpool[i];

		if (!(gone[i / 64] & (1ull << (i % 64))))
			continue;
		region_drain(r);
		t = api_ctx_get(us);
		region_release_pages(t, r);
		api_ctx_put(t);
		region_free(us, r);
	}
	pthread_mutex_unlock(&us->map_lock);
	return n ? 0 : -EINVAL;
}

void uswap__copy(struct uswap *us, void *dst, const void *src, size_t len)
{
	uintptr_t s = (uintptr_t)src, end = s + len;
	unsigned char touched[CHUNK_PAGES];

	while (s < end) {
		uintptr_t pa = s & ~(uintptr_t)(PAGE_SIZE_ - 1);
		struct region *r = lookup(us, pa);

		if (!r) {
			memcpy((char *)dst + (s - (uintptr_t)src), (void *)s, end - s);
			return;
		}
		/*
		 * Read the entries of one chunk under its PTL: a zero-fill
		 * (with fault-around) maps pages, wakes the writer and only
		 * then makes the entries PRESENT, all under the PTL, so an
		 * entry read without it may still say NONE for a page the
		 * program has written.  Copy without the PTL or a reference:
		 * the copy faults, and neither may be held across that.
		 */
		size_t idx = (pa - r->base) >> PAGE_SHIFT_;
		size_t n = (((idx >> CHUNK_SHIFT) + 1) << CHUNK_SHIFT) - idx;

		if (n > r->npages - idx)
			n = r->npages - idx;
		if (n > ((end - pa + PAGE_SIZE_ - 1) >> PAGE_SHIFT_))
			n = (end - pa + PAGE_SIZE_ - 1) >> PAGE_SHIFT_;
		pthread_mutex_lock(region_ptl(r, idx));
		for (size_t k = 0; k < n; k++) {
			unsigned st = pte_state(atomic_load_explicit(region_pte(r, idx + k),
								     memory_order_acquire));

			touched[k] = st != PTE_NONE && st != PTE_RELEASED;
		}
		pthread_mutex_unlock(region_ptl(r, idx));
		lookup_done(us, r);
		for (size_t k = 0; k < n;) {
			size_t j = k;

			while (j < n && touched[j] == touched[k])
				j++;
			uintptr_t from = pa + (k << PAGE_SHIFT_), to = pa + (j << PAGE_SHIFT_);

			if (from < s)
				from = s;
			if (to > end)
				to = end;
			if (touched[k] && to > from)
				memcpy((char *)dst + (from - (uintptr_t)src), (void *)from, to - from);
			k = j;
		}
		s = pa + (n << PAGE_SHIFT_);
	}
}

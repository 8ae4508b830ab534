/*
 * region.c - managed regions: the directory a fault looks its region up in
 * without a process-wide lock, and map/unmap.
 *
 * Lookup (the common path of every fault) is: load dir[addr >> 21], take an
 * inflight reference on the region found, then check that it is not dying
 * and covers addr.  Region structs are type-stable (they live in us->rpool
 * for the engine's lifetime), so a lookup that races with unmap and reuse
 * touches valid memory and simply fails its check.
 *
 * Unmap sets dying, clears the directory, then sleeps until inflight drops
 * to 0: every fault, swap-in and eviction on the region holds a reference,
 * so none is left when the memory and entries go.  The dying flag and the
 * inflight count form a Dekker pair (store one, load the other, both
 * seq_cst): either the lookup sees dying, or unmap sees its reference.
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "internal.h"

#define DIR_VA_BITS 47

int region_dir_init(struct uswap *us)
{
	us->dir_len = (size_t)1 << (DIR_VA_BITS - DIR_SHIFT);
	us->dir = mmap(NULL, us->dir_len * sizeof(*us->dir), PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (us->dir == MAP_FAILED) {
		us->dir = NULL;
		return -ENOMEM;
	}
	us->rpool = mmap(NULL, MAX_REGIONS * sizeof(struct region),
			 PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (us->rpool == MAP_FAILED) {
		munmap(us->dir, us->dir_len * sizeof(*us->dir));
		us->rpool = NULL;
		return -ENOMEM;
	}
	return 0;
}

void region_dir_fini(struct uswap *us)
{
	if (us->dir)
		munmap(us->dir, us->dir_len * sizeof(*us->dir));
	if (us->rpool)
		munmap(us->rpool, MAX_REGIONS * sizeof(struct region));
}

void region_put(struct region *r)
{
	if (atomic_fetch_sub(&r->inflight, 1) == 1 && atomic_load(&r->dying))
		futex_wake_all(&r->inflight);
}

/* Take a reference on @r if it is live and covers @addr. */
static struct region *region_try(struct region *r, uintptr_t addr)
{
	atomic_fetch_add(&r->inflight, 1);		/* seq_cst: pairs with unmap */
	if (!atomic_load(&r->dying) && atomic_load(&r->used) &&
	    addr - r->base < r->len)
		return r;
	region_put(r);
	return NULL;
}

struct region *region_get(struct uswap *us, uintptr_t addr)
{
	size_t i = addr >> DIR_SHIFT;
	struct region *r;

	if (i >= us->dir_len)
		return NULL;
	r = atomic_load_explicit(&us->dir[i], memory_order_acquire);
	return r ? region_try(r, addr) : NULL;
}

/* A reference on region slot @i if live (the clock hand walks slots). */
struct region *region_get_index(struct uswap *us, unsigned i)
{
	struct region *r = &us->rpool[i];

	if (!atomic_load_explicit(&r->used, memory_order_acquire))
		return NULL;
	return region_try(r, r->base);
}

static void dir_publish(struct uswap *us, struct region *r)
{
	size_t first = r->base >> DIR_SHIFT;
	size_t last = (r->base + r->len - 1) >> DIR_SHIFT;

	for (size_t i = first; i <= last; i++)
		atomic_store_explicit(&us->dir[i], r, memory_order_release);
}

/*
 * Clear the granules that still name @r.  One may name a newer region: a
 * range of @r given away (RELEASED_GIVEN, manage.c) and then unmapped by
 * the application is free address space, and a region mapped there later
 * takes its granules (it cannot share one with a live page of @r: see
 * DESIGN.md, "The LD_PRELOAD shim").
 */
static void dir_unpublish(struct uswap *us, struct region *r)
{
	size_t first = r->base >> DIR_SHIFT;
	size_t last = (r->base + r->len - 1) >> DIR_SHIFT;

	for (size_t i = first; i <= last; i++) {
		struct region *cur = r;

		atomic_compare_exchange_strong(&us->dir[i], &cur, NULL);
	}
}

/* The tail of a region's last granule, past its pages (region_tail). */
size_t region_tail_len(size_t len)
{
	size_t g = (size_t)1 << DIR_SHIFT;

	return ((len + g - 1) & ~(g - 1)) - len;
}

static void *map_aligned(size_t len)
{
	/*
	 * Regions start on a directory granule so one granule names one
	 * region, and own their granules whole: the rest of the last one is
	 * kept as a PROT_NONE reservation (the region's tail), so no other
	 * mapping, and so no other region, can ever share a granule with live
	 * pages of this one.  Over-map by a granule, trim the rest.
	 */
	size_t g = (size_t)1 << DIR_SHIFT;
	size_t span = len + region_tail_len(len);
	unsigned char *p = mmap(NULL, span + g, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	uintptr_t a = ((uintptr_t)p + g - 1) & ~(g - 1);
	if (a > (uintptr_t)p)
		munmap(p, a - (uintptr_t)p);
	size_t after = (uintptr_t)p + span + g - (a + span);
	if (after)
		munmap((void *)(a + span), after);
	if (span > len && mprotect((void *)(a + len), span - len, PROT_NONE)) {
		munmap((void *)a, span);
		return NULL;
	}
	return (void *)a;
}

static void region_free_meta(struct region *r)
{
	if (r->ptl) {
		for (size_t c = 0; c < r->nchunks; c++)
			pthread_mutex_destroy(&r->ptl[c]);
		munmap(r->ptl, r->nchunks * sizeof(*r->ptl));
	}
	if (r->pte)
		munmap((void *)r->pte, r->npages * sizeof(*r->pte));
	r->ptl = NULL;
	r->pte = NULL;
}

void *region_map(struct uswap *us, size_t len)
{
	struct region *r = NULL;
	void *mem;
	int err;

	if (len == 0) {
		errno = EINVAL;
		return NULL;
	}
	len = (len + PAGE_SIZE_ - 1) & ~(size_t)(PAGE_SIZE_ - 1);
	mem = map_aligned(len);
	if (!mem)
		return NULL;
	/* uswap installs 4 KiB pages; THP would defeat per-page eviction. */
	madvise(mem, len, MADV_NOHUGEPAGE);
	err = uffd_register(us->uffd, mem, len, true);
	if (err)
		goto fail_mem;

	pthread_mutex_lock(&us->map_lock);
	for (unsigned i = 0; i < MAX_REGIONS; i++) {
		/* A slot is reusable once unmapped and no stale lookup holds it. */
		if (!atomic_load(&us->rpool[i].used) &&
		    atomic_load(&us->rpool[i].inflight) == 0) {
			r = &us->rpool[i];
			break;
		}
	}
	if (!r) {
		pthread_mutex_unlock(&us->map_lock);
		err = -ENOMEM;
		goto fail_mem;
	}
	r->base = (uintptr_t)mem;
	r->len = len;
	r->npages = len >> PAGE_SHIFT_;
	r->nchunks = (r->npages + CHUNK_PAGES - 1) >> CHUNK_SHIFT;
	r->pte = mmap(NULL, r->npages * sizeof(*r->pte), PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	r->ptl = mmap(NULL, r->nchunks * sizeof(*r->ptl), PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (r->pte == MAP_FAILED || r->ptl == MAP_FAILED) {
		if (r->pte == MAP_FAILED)
			r->pte = NULL;
		if (r->ptl == MAP_FAILED)
			r->ptl = NULL;
		r->nchunks = r->ptl ? r->nchunks : 0;
		region_free_meta(r);
		pthread_mutex_unlock(&us->map_lock);
		err = -ENOMEM;
		goto fail_mem;
	}
	for (size_t c = 0; c < r->nchunks; c++)
		pthread_mutex_init(&r->ptl[c], NULL);
	atomic_store(&r->ra_last, 0);
	atomic_store(&r->ra_next, 0);
	atomic_store(&r->ra_win, 0);
	atomic_store(&r->ra_lastwin, 0);
	atomic_store(&r->released, 0);
	atomic_store(&r->given, 0);
	atomic_store(&r->dying, 0);
	atomic_store_explicit(&r->used, 1, memory_order_release);
	dir_publish(us, r);
	atomic_fetch_add(&us->nregions, 1);
	atomic_fetch_add(&us->total_pages, r->npages);
	pthread_mutex_unlock(&us->map_lock);
	return mem;

fail_mem:
	munmap(mem, len + region_tail_len(len));
	errno = -err;
	return NULL;
}

/* Free what the region's entries still hold: slots and resident pages. */
void region_release_pages(struct uthread *t, struct region *r)
{
	struct uswap *us = t->us;
	uint64_t resident = 0;

	for (size_t i = 0; i < r->npages; i++) {
		pte_t e = atomic_load(region_pte(r, i));

		switch (pte_state(e)) {
		case PTE_PRESENT:
			resident++;
			if (e & PTE_HAS_SLOT)
				slot_put(t, pte_payload(e));
			break;
		case PTE_SWAPPED:
			slot_put(t, pte_payload(e));
			break;
		default:
			/* MARKER and EVICTING cannot remain: their owners
			 * held references that unmap waited out. */
			break;
		}
	}
	unreserve_pages(us, resident);
}

/*
 * Register @r with the userfaultfd (a forked child's new one): its live
 * pages, not the ranges released (manage.c), which may now hold another
 * mapping of the application's that cannot be registered.
 */
int region_register(struct uswap *us, struct region *r)
{
	size_t i = 0;

	if (!atomic_load(&r->released))
		return uffd_register(us->uffd, (void *)r->base, r->len, true);
	while (i < r->npages) {
		size_t j = i;

		while (j < r->npages && pte_state(atomic_load(region_pte(r, j))) != PTE_RELEASED)
			j++;
		if (j > i) {
			int err = uffd_register(us->uffd, (void *)region_addr(r, i),
						(j - i) << PAGE_SHIFT_, true);
			if (err)
				return err;
		}
		while (j < r->npages && pte_state(atomic_load(region_pte(r, j))) == PTE_RELEASED)
			j++;
		i = j;
	}
	return 0;
}

/*
 * Retire @r (map_lock held): from now on no new reference can be taken.
 * The memory and the entries stay.
 */
void region_retire(struct uswap *us, struct region *r)
{
	atomic_store(&r->dying, 1);			/* seq_cst: see top */
	dir_unpublish(us, r);
}

/* Wait until the references taken before region_retire() are dropped. */
void region_drain(struct region *r)
{
	for (;;) {
		uint32_t n = atomic_load(&r->inflight);

		if (n == 0)
			break;
		futex_wait(&r->inflight, n);
	}
	/* Then pte_wait's sleepers, still on the entry array (pte.c). */
	for (;;) {
		uint32_t n = atomic_load(&r->sleepers);

		if (n == 0)
			break;
		futex_wait(&r->sleepers, n);
	}
}

/* Give a retired region's slot back (map_lock held). */
void region_free(struct uswap *us, struct region *r)
{
	size_t npages = r->npages;

	region_free_meta(r);
	atomic_store_explicit(&r->used, 0, memory_order_release);
	atomic_fetch_sub(&us->nregions, 1);
	atomic_fetch_sub(&us->total_pages, npages);
}

/* Unmap a retired region's memory, except the ranges given away to the
 * application's own mappings (RELEASED_GIVEN): those are not ours. */
static void region_munmap(struct region *r)
{
	size_t i = 0;

	munmap((void *)(r->base + r->len), region_tail_len(r->len));
	if (!atomic_load(&r->given)) {
		munmap((void *)r->base, r->len);
		return;
	}
	while (i < r->npages) {
		size_t j = i;
		pte_t e = atomic_load(region_pte(r, i));
		bool given = pte_state(e) == PTE_RELEASED && pte_payload(e) == RELEASED_GIVEN;

		while (j < r->npages) {
			pte_t f = atomic_load(region_pte(r, j));

			if (given != (pte_state(f) == PTE_RELEASED &&
				      pte_payload(f) == RELEASED_GIVEN))
				break;
			j++;
		}
		if (!given)
			munmap((void *)region_addr(r, i), (j - i) << PAGE_SHIFT_);
		i = j;
	}
}

static int region_unmap_locked(struct uswap *us, struct region *r)
{
	region_retire(us, r);
	region_drain(r);
	/* Nobody can reach the region now.  Unmapping the memory also drops
	 * its userfaultfd registration; faulting threads still asleep on it
	 * were woken by the handlers (region_get fails on a dying region). */
	region_munmap(r);

	struct uthread *t = api_ctx_get(us);
	region_release_pages(t, r);
	api_ctx_put(t);
	region_free(us, r);
	return 0;
}

int region_unmap(struct uswap *us, void *addr, size_t len)
{
	int ret = -EINVAL;

	len = (len + PAGE_SIZE_ - 1) & ~(size_t)(PAGE_SIZE_ - 1);
	pthread_mutex_lock(&us->map_lock);
	for (unsigned i = 0; i < MAX_REGIONS; i++) {
		struct region *r = &us->rpool[i];

		if (atomic_load(&r->used) && !atomic_load(&r->dying) &&
		    r->base == (uintptr_t)addr && r->len == len) {
			ret = region_unmap_locked(us, r);
			break;
		}
	}
	pthread_mutex_unlock(&us->map_lock);
	return ret;
}

void region_unmap_all(struct uswap *us)
{
	pthread_mutex_lock(&us->map_lock);
	for (unsigned i = 0; i < MAX_REGIONS; i++) {
		struct region *r = &us->rpool[i];

		if (atomic_load(&r->used))
			region_unmap_locked(us, r);
	}
	pthread_mutex_unlock(&us->map_lock);
}

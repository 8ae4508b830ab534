/*
 * fork.c - a managed process that forks: the fork gate, and the child's
 * own engine.
 *
 * What the kernel does to managed memory at fork (no UFFD_FEATURE_EVENT_FORK:
 * that feature blocks fork until a handler reads the event and needs
 * CAP_SYS_PTRACE): the child's VMAs lose their userfaultfd registration;
 * present pages are shared copy-on-write and lose their uffd-wp bit in the
 * child; poison markers are copied; pages uswap had evicted are simply
 * absent, so an unregistered child would read zeros there.
 *
 * What uswap does:
 *  - prepare: take map_lock (no map or unmap in progress), then the fork
 *    gate exclusive.  Every engine operation holds the gate shared from
 *    start to end, so when prepare returns no fault, eviction or API call
 *    is in flight: no MARKER or EVICTING entry exists, no lock is held, no
 *    backend operation is half done.  The engine's memory (entries, pool,
 *    descriptors) is private anonymous memory, so the child gets an exact
 *    copy of a quiescent engine, copy-on-write.
 *  - parent: release both.
 *  - child (only the forking thread exists): re-initialise the locks, drop
 *    the parent's userfaultfd and stop eventfd (both are shared open file
 *    descriptions: using them would act on the parent), open a new
 *    userfaultfd, register every region and staging area with it,
 *    write-protect again the clean pages that keep a swap copy (the child
 *    lost their uffd-wp bits: without this a write would not drop the kept
 *    copy and a later clean drop would lose it, I7), and start new threads.
 *    Evicted pages now fault in the child and are read from its copy of
 *    the pool.
 *
 * Costs.  The fork waits for the operations in flight (microseconds each).
 * The child pays one UFFDIO_REGISTER per region and one WRITEPROTECT per
 * run of clean pages, and its pool is shared copy-on-write with the
 * parent's until either side changes it.  Pages present at the fork are
 * shared copy-on-write too, and UFFDIO_MOVE refuses shared pages (EBUSY):
 * the first eviction of such a page, in either process, unshares it first
 * (reclaim.c, unshare_busy): that is the copy the kernel's swap-out would
 * not need, paid only for pages that are evicted.
 */
#include <errno.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "internal.h"

void fork_gate_init(struct uswap *us)
{
	pthread_rwlockattr_t a;

	pthread_rwlockattr_init(&a);
	/* A fork must not starve behind a stream of faults. */
	pthread_rwlockattr_setkind_np(&a, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&us->fork_gate, &a);
	pthread_rwlockattr_destroy(&a);
}

void uswap_fork_prepare(struct uswap *us)
{
	if (!us)
		return;
	pthread_mutex_lock(&us->map_lock);
	pthread_rwlock_wrlock(&us->fork_gate);
}

void uswap_fork_parent(struct uswap *us)
{
	if (!us)
		return;
	pthread_rwlock_unlock(&us->fork_gate);
	pthread_mutex_unlock(&us->map_lock);
}

/* Write-protect the runs of clean pages (PRESENT with a kept copy). */
static int protect_clean(struct uswap *us, struct region *r)
{
	size_t i = 0;

	while (i < r->npages) {
		pte_t e = atomic_load_explicit(region_pte(r, i), memory_order_relaxed);

		if (pte_state(e) != PTE_PRESENT || !(e & PTE_HAS_SLOT)) {
			i++;
			continue;
		}
		size_t j = i + 1;
		while (j < r->npages) {
			pte_t f = atomic_load_explicit(region_pte(r, j), memory_order_relaxed);

			if (pte_state(f) != PTE_PRESENT || !(f & PTE_HAS_SLOT))
				break;
			j++;
		}
		int err = uffd_protect(us->uffd, region_addr(r, i), (j - i) << PAGE_SHIFT_);
		if (err)
			return err;
		i = j;
	}
	return 0;
}

int uswap_fork_child(struct uswap *us)
{
	int err;

	if (!us)
		return -EINVAL;
	/* Only this thread exists: every lock is free or held by us. */
	pthread_mutex_init(&us->map_lock, NULL);
	pthread_mutex_init(&us->hand_lock, NULL);
	pthread_rwlock_destroy(&us->fork_gate);
	fork_gate_init(us);
	for (unsigned i = 0; i < us->nctx; i++)
		pthread_mutex_init(&us->ctx[i].lock, NULL);
	/* Swap-in design C's map lock; no claim of A or C is in flight
	 * either (the gate), so the pins are clear and the map empty. */
	pthread_mutex_init(&us->sic_lock, NULL);

	close(us->uffd);
	close(us->stopfd);
	us->uffd = -1;
	us->stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (us->stopfd < 0)
		return -errno;
	err = uffd_open();
	if (err < 0)
		return err;
	us->uffd = err;
	atomic_store(&us->stopping, 0);
	atomic_store(&us->evict_kick, 0);

	for (unsigned i = 0; i < MAX_REGIONS; i++) {
		struct region *r = &us->rpool[i];

		/* References held by threads of the parent (one blocked at
		 * the gate with a region looked up) do not exist here. */
		atomic_store(&r->inflight, 0);
		atomic_store(&r->sleepers, 0);
		if (!atomic_load(&r->used))
			continue;
		err = region_register(us, r);	/* not its released ranges */
		if (!err)
			err = protect_clean(us, r);
		if (err)
			return err;
	}
	for (unsigned i = 0; i < us->nctx; i++) {
		err = uffd_register(us->uffd, us->ctx[i].staging,
				    (size_t)EVICT_BATCH << PAGE_SHIFT_, false);
		if (err)
			return err;
	}
	return engine_start_threads(us);
}

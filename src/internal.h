/*
 * internal.h - the engine's types, the page-table entry encoding, and the
 * lock order.  DESIGN.md is the long form of this file; keep them in step.
 *
 * Lock order (indentation = nests inside; nothing is held across a wait):
 *
 *   us->map_lock (map/unmap: region pool and directory updates)
 *     uthread ctx mutex (API callers borrowing a pager context)
 *       us->hand_lock (claims a window of pages for the clock hand; leaf)
 *       region chunk PTL (r->ptl[chunk]: one 512-page chunk; never two)
 *         us->sic_lock (design C's in-flight map; leaf, also taken alone)
 *         backend-internal locks (slot free list, pool class locks; leaves)
 *
 * A region inflight reference (region_get/region_put) is not a lock but
 * unmap waits for it: it is dropped before any futex wait on an entry (I12).
 *
 * The fork gate (us->fork_gate, fork.c) is taken shared by every engine
 * operation (a fault, an eviction window run, an API call) outside every
 * lock above except map_lock; uswap_fork_prepare() takes map_lock, then the
 * gate exclusive.
 */
#ifndef USWAP_INTERNAL_H
#define USWAP_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "uswap.h"
#include "backend.h"

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "uswap futex-waits on the low half of a 64-bit entry: little-endian only"
#endif

#define PAGE_SIZE_ USWAP_PAGE_SIZE
#define PAGE_SHIFT_ USWAP_PAGE_SHIFT
#define CHUNK_SHIFT 9			/* 512 pages per PTL, like a PMD */
#define CHUNK_PAGES (1u << CHUNK_SHIFT)
#define DIR_SHIFT 21			/* region directory granule: 2 MiB */
#define MAX_REGIONS 4096
#define MAX_THREADS 64
#define API_CTXS 4			/* pager contexts lent to API callers */
#define RA_MAX_LIMIT 256
#define EVICT_BATCH 64			/* pages claimed per clock step */
#define AGE_MAX 3

#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

/*
 * The page-table entry: one atomic 64-bit word per managed page.
 *
 *   bits  0..3   state (enum pte_state)
 *   bit   4      WAITERS: someone sleeps on this entry (futex on bits 0..31)
 *   bit   5      HAS_SLOT: a swap copy is kept (PRESENT clean, or EVICTING
 *                a clean page); the slot is in bits 32..63
 *   bits  8..9   AGE for the clock (PRESENT only)
 *   bits 12..31  SWAPPED: eviction sequence (low 20 bits) for refault distance;
 *                EVICTING: the owner (context id * EVICT_BATCH + batch index),
 *                so a finishing eviction knows the entry is still its own
 *   bits 32..63  payload: slot (SWAPPED, HAS_SLOT) or in-flight descriptor
 *                index (MARKER)
 *
 * Every change of an entry is made under the chunk PTL, except setting
 * WAITERS (a CAS by a waiter, which any PTL holder's CAS loop tolerates).
 * Whoever moves an entry out of a state that had WAITERS wakes the futex.
 */
enum pte_state {
	PTE_NONE = 0,		/* never touched or discarded: zero-fill */
	PTE_PRESENT = 1,	/* mapped in the kernel page table */
	PTE_SWAPPED = 2,	/* only copy in the backend, at slot */
	PTE_MARKER = 3,		/* swap-in in progress: names its descriptor */
	PTE_EVICTING = 4,	/* moved out to staging, being stored */
	PTE_POISON = 5,		/* backend read failed: SIGBUS on access */
	PTE_RELEASED = 6,	/* released (manage.c): no longer part of the
				 * region; payload RELEASED_RESERVED or
				 * RELEASED_GIVEN.  Nothing maps, evicts,
				 * prefetches or counts it */
};

/* Payload of a RELEASED entry: who holds the page's address range. */
#define RELEASED_RESERVED 0u	/* a PROT_NONE reservation uswap unmaps later */
#define RELEASED_GIVEN 1u	/* a mapping of the application's (MAP_FIXED) */

#define PTE_STATE_MASK 0xfull
#define PTE_WAITERS (1ull << 4)
#define PTE_HAS_SLOT (1ull << 5)
#define PTE_AGE_SHIFT 8
#define PTE_AGE_MASK (3ull << PTE_AGE_SHIFT)
#define PTE_SEQ_SHIFT 12
#define PTE_SEQ_MASK (0xfffffull << PTE_SEQ_SHIFT)

typedef uint64_t pte_t;

struct swapin_ops;

static inline unsigned pte_state(pte_t e) { return (unsigned)(e & PTE_STATE_MASK); }
static inline uint32_t pte_payload(pte_t e) { return (uint32_t)(e >> 32); }
static inline unsigned pte_age(pte_t e) { return (unsigned)((e & PTE_AGE_MASK) >> PTE_AGE_SHIFT); }
static inline pte_t pte_make(unsigned state, uint32_t payload, pte_t flags)
{
	return (pte_t)state | flags | ((pte_t)payload << 32);
}
/* EVICTING entries name their owner, as MARKER entries do (I4). */
_Static_assert((MAX_THREADS + 1 + API_CTXS) * EVICT_BATCH <= (PTE_SEQ_MASK >> PTE_SEQ_SHIFT),
	       "EVICTING owner ids must fit the entry");
static inline pte_t pte_evict_owner(unsigned ctx_id, unsigned k)
{
	return ((pte_t)(ctx_id * EVICT_BATCH + k) << PTE_SEQ_SHIFT) & PTE_SEQ_MASK;
}

static inline pte_t pte_with_age(pte_t e, unsigned age)
{
	return (e & ~PTE_AGE_MASK) | ((pte_t)age << PTE_AGE_SHIFT);
}

/*
 * An in-flight swap-in: the "locked page".  Owned by exactly one pager
 * context; only its owner reads or writes its fields, except that in
 * design C others find it in the in-flight map and set @waiters.
 */
struct inflight {
	uint32_t slot;		/* owner only */
	uint32_t idx;		/* page index in the region; owner only */
	pte_t swapped;		/* the SWAPPED entry the claim found; owner only */
	pte_t claimed;		/* the entry the claim left: MARKER(id) in B,
				 * SWAPPED(slot) in A and C; owner only */
	struct region *r;	/* the page's region (the owner holds a ref) */
	void *buf;		/* a page of the owner's buffer array */
	/* design C: hash chain and waiters flag, under us->sic_lock: a fault
	 * that found this swap-in sets @waiters, and the release wakes the
	 * page for it */
	struct inflight *hnext;
	bool waiters;
};

/*
 * A pager context: what one thread needs to swap in and evict without
 * malloc.  Handler threads and the evictor own one each; API callers
 * borrow one of API_CTXS under its mutex.
 */
struct uthread {
	struct uswap *us;
	unsigned id;			/* index in us->ctx[] */
	struct uswap_bctx *bctx;	/* backend context */
	struct inflight *inflight;	/* RA_MAX_LIMIT + 1 descriptors */
	unsigned char *bufs;		/* their pages, contiguous */
	unsigned char *staging;		/* EVICT_BATCH pages, registered */
	pthread_mutex_t lock;		/* API contexts only: who borrows it */
	pthread_t thread;
	uint32_t evict_idx[EVICT_BATCH];	/* eviction batch scratch */
	pte_t evict_old[EVICT_BATCH];
	bool store_failed;		/* the last eviction could not store */
	/* a swap-in claim lost in design A: the pin word to wait on and its
	 * value, set by the claim under the PTL */
	_Atomic uint32_t *si_word;
	uint32_t si_val;
};

/*
 * A managed region.  Region structs are type-stable: they live in
 * us->rpool[] for the engine's lifetime and are reused, never freed, so a
 * racing lookup may always touch one (it then re-checks under its ref).
 */
struct region {
	/* set by map before publishing; stable while inflight > 0 and !dying */
	_Atomic uintptr_t base;
	_Atomic size_t len;
	size_t npages;
	_Atomic pte_t *pte;		/* npages entries; see encoding above */
	pthread_mutex_t *ptl;		/* one per chunk */
	size_t nchunks;
	/* lookups and evictors in progress; unmap waits for 0 (futex) */
	_Atomic uint32_t inflight;
	/* pte_wait sleepers on this region's entries: unmap frees the entry
	 * array only once they are gone (they drain promptly: every owner
	 * they wait for held inflight and woke them) */
	_Atomic uint32_t sleepers;
	_Atomic uint32_t dying;		/* unmap started: no new references */
	_Atomic uint32_t used;		/* slot of rpool in use (map_lock) */
	/* readahead heuristic: racy by design, relaxed atomics */
	_Atomic uint64_t ra_last;	/* last fault index + 1 */
	_Atomic uint64_t ra_next;	/* index just after the last window */
	_Atomic uint32_t ra_win;	/* current window, pages */
	_Atomic uint32_t ra_lastwin;	/* size of the last window read */
	/* pages RELEASED (manage.c), of them RELEASED_GIVEN; changed under
	 * the PTL of the page, read anywhere.  released == npages: unmap. */
	_Atomic size_t released;
	_Atomic size_t given;
};

/* Counters: relaxed atomics, each written where its event happens. */
struct ustats {
	_Atomic uint64_t faults, faults_zero, faults_swapin, faults_wp,
		faults_marker, faults_evicting, faults_present, faults_unmanaged,
		swapins, swapouts, clean_drops, swap_copy_drops, readahead_pages,
		readahead_hits, prefetch_pages, discards, discard_during_swapin,
		discard_during_evict, retries, eexist, store_failures,
		load_failures, evict_busy, direct_reclaims, evictor_runs,
		over_limit, zero_fill_ahead, swapin_pin_retries,
		swapin_cache_waits;
};

#define STAT_INC(us, f) atomic_fetch_add_explicit(&(us)->st.f, 1, memory_order_relaxed)
#define STAT_ADD(us, f, n) atomic_fetch_add_explicit(&(us)->st.f, (n), memory_order_relaxed)

struct uswap {
	struct uswap_config cfg;
	int uffd;
	int stopfd;			/* eventfd: handlers and evictor stop */
	struct uswap_backend *backend;
	bool own_backend;

	/* limit and resident pages (reserved before install, released when
	 * the page leaves RAM).  resident <= limit_pages except when reclaim
	 * can make no progress at all (then counted in direct_reclaims). */
	_Atomic uint64_t limit_pages;
	_Atomic uint64_t resident;
	_Atomic uint64_t resident_peak;
	_Atomic uint64_t evict_seq;	/* pages evicted: refault distance clock */

	/* evictor wake-up: futex word bumped when resident crosses high */
	_Atomic uint32_t evict_kick;
	_Atomic uint32_t stopping;

	/* clock hand: region index and page index (hand_lock) */
	pthread_mutex_t hand_lock;
	unsigned hand_region;		/* protected by hand_lock */
	size_t hand_page;		/* protected by hand_lock */

	/* regions */
	pthread_mutex_t map_lock;	/* map/unmap; nests outside nothing else */
	_Atomic(struct region *) *dir;	/* addr >> DIR_SHIFT -> region; NORESERVE */
	size_t dir_len;
	struct region *rpool;		/* MAX_REGIONS, type-stable */
	_Atomic uint32_t nregions;
	_Atomic uint64_t total_pages;	/* pages of all regions: bounds a clock lap */

	/* pager contexts: [0, threads) handlers, threads = evictor,
	 * then API_CTXS contexts for API callers */
	struct uthread *ctx;
	unsigned nctx;
	_Atomic uint32_t api_next;	/* round-robin pick of API contexts */
	pthread_t evictor;

	/* swap-in design (swapin.c): its hooks, and its state */
	const struct swapin_ops *si;
	_Atomic uint32_t *pins;		/* A: SI_PIN_STRIPES pin words */
	struct inflight **sic_hash;	/* C: SI_HASH buckets (sic_lock) */
	pthread_mutex_t sic_lock;	/* C: the in-flight map; a leaf */

	_Atomic uint32_t warned_store;	/* pool-full message printed once */

	/* fork gate (fork.c): every operation that changes entries, the
	 * backend or the kernel page table holds it shared; fork holds it
	 * exclusive, so the engine is still while the process forks.
	 * Writer-preferring; never taken recursively. */
	pthread_rwlock_t fork_gate;
	struct ustats st;
	const unsigned char *zero_page;	/* RA_MAX_LIMIT + 1 zero pages */
};

/*
 * swapin.c: the one part of swap-in where designs A, B and C differ
 * (DESIGN.md, "Swap-in designs A, B, C").  swapin_range() (fault.c) claims
 * each page, reads it with no lock held, commits under the PTL if the entry
 * is still exactly what the claim left (d->claimed: pte_same), and releases
 * the claim; discard and eviction need no hook (see claim below).
 *
 *   claim    PTL held, entry SWAPPED(S) (d->slot, d->swapped set): make this
 *            context the only reader of S for the page.  B: entry ->
 *            MARKER(d), which takes over the entry's reference on S.  A: set
 *            S's pin bit; C: insert d in the slot -> descriptor map; A and C
 *            take a reference of their own on S (dup), so a discard during
 *            the read drops the entry's reference and S is freed only at
 *            release (SWAP_HAS_CACHE / the swap cache holding the slot).
 *            Sets d->claimed.  SI_BUSY: another swap-in has S (A, C only):
 *            A leaves in t->si_word/si_val the pin word to back off on; C
 *            marks the winner's descriptor so that its release wakes the
 *            page (swapin_lost says what the loser does).
 *   release  no lock held, after the commit or the back-out (@backed_out:
 *            the entry had changed): B frees S if backed out (the discard
 *            left it to us); A unpins S and wakes the handlers backing off
 *            on it; C removes d from the map and wakes the page if a loser
 *            marked d; both then drop their reference on S.
 *   busy     discard: is S claimed (statistics only; NULL for B, whose
 *            discard sees the marker)?
 *   quiescent uswap__validate(): no claim is left.
 */
enum si_claim { SI_OK, SI_BUSY };

struct swapin_ops {
	const char *name;
	enum si_claim (*claim)(struct uthread *t, struct region *r, size_t idx,
			       struct inflight *d, uint32_t id);
	void (*release)(struct uthread *t, struct inflight *d, bool backed_out);
	bool (*busy)(struct uswap *us, uint32_t slot);
	int (*quiescent)(struct uswap *us, char *msg, size_t len);
};

int swapin_init(struct uswap *us);
void swapin_fini(struct uswap *us);
const char *swapin_name(enum uswap_swapin design);
void swapin_count_lost(struct uswap *us);
void swapin_lost(struct uthread *t, uintptr_t addr);	/* no region ref held */

/* region.c */
int region_dir_init(struct uswap *us);
void region_dir_fini(struct uswap *us);
struct region *region_get(struct uswap *us, uintptr_t addr);
struct region *region_get_index(struct uswap *us, unsigned i);
void region_put(struct region *r);
void *region_map(struct uswap *us, size_t len);
int region_unmap(struct uswap *us, void *addr, size_t len);
void region_unmap_all(struct uswap *us);
int region_register(struct uswap *us, struct region *r);
size_t region_tail_len(size_t len);
void region_retire(struct uswap *us, struct region *r);
void region_drain(struct region *r);
void region_release_pages(struct uthread *t, struct region *r);
void region_free(struct uswap *us, struct region *r);

static inline _Atomic pte_t *region_pte(struct region *r, size_t idx) { return &r->pte[idx]; }
static inline pthread_mutex_t *region_ptl(struct region *r, size_t idx) { return &r->ptl[idx >> CHUNK_SHIFT]; }
static inline uintptr_t region_addr(struct region *r, size_t idx) { return r->base + (idx << PAGE_SHIFT_); }

/* pte.c: entry transitions and waiting */
pte_t pte_set(struct region *r, size_t idx, pte_t old, pte_t new_);
void pte_wait(struct uswap *us, struct region *r, size_t idx, pte_t seen);

/* uffd.c: thin wrappers; return 0 or -errno */
int uffd_open(void);
int uffd_register(int uffd, void *addr, size_t len, bool wp);
long uffd_copy(int uffd, uintptr_t dst, const void *src, size_t len, bool wp);
int uffd_wake(int uffd, uintptr_t addr, size_t len);
int uffd_unprotect(int uffd, uintptr_t addr, size_t len);
int uffd_poison(int uffd, uintptr_t addr, size_t len);
int uffd_protect(int uffd, uintptr_t addr, size_t len);
long uffd_move(int uffd, uintptr_t dst, uintptr_t src, size_t len);

/* fault.c */
void *handler_main(void *arg);
void handle_fault(struct uthread *t, uintptr_t addr, uint64_t flags);
long swapin_range(struct uthread *t, struct region *r, size_t idx, size_t ra,
		  bool write, bool is_fault);

/* reclaim.c */
void *evictor_main(void *arg);
bool reserve_pages(struct uthread *t, uint64_t n);
void unreserve_pages(struct uswap *us, uint64_t n);
long evict_range(struct uthread *t, struct region *r, size_t from, size_t to,
		 bool force);
void kick_evictor(struct uswap *us);

/* fork.c: the fork gate around each engine operation (see struct uswap) */
void fork_gate_init(struct uswap *us);
static inline void gate_enter(struct uswap *us) { pthread_rwlock_rdlock(&us->fork_gate); }
static inline void gate_exit(struct uswap *us) { pthread_rwlock_unlock(&us->fork_gate); }

/* engine.c */
int engine_start_threads(struct uswap *us);
unsigned discard_entry_locked(struct uswap *us, struct region *r, size_t i,
			      pte_t e, pte_t new_, uint32_t *drop, unsigned *ndrop);
struct uthread *api_ctx_get(struct uswap *us);
void api_ctx_put(struct uthread *t);
void slot_put(struct uthread *t, uint32_t slot);

/* options.c */
int parse_size(const char *s, size_t *out);

/* futex helpers */
int futex_wait(_Atomic uint32_t *addr, uint32_t val);
int futex_wait_ns(_Atomic uint32_t *addr, uint32_t val, long ns);
void futex_wake_all(_Atomic uint32_t *addr);

/*
 * Test hooks at named points of the fault and eviction paths, compiled in
 * only for tests (-DUSWAP_TESTING).  A hook may block the calling pager
 * thread to force an interleaving; it must not touch managed memory.
 */
#ifdef USWAP_TESTING
#include "testing.h"
#define HOOK(point, us, addr)                                                  \
	do {                                                                   \
		uswap_hook_fn _h = atomic_load_explicit(&uswap__hook,          \
							memory_order_acquire); \
		if (_h)                                                        \
			_h(point, us, addr);                                   \
	} while (0)
#else
#define HOOK(point, us, addr) do { (void)(addr); } while (0)
#endif

void uswap__warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif

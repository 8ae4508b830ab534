/*
 * uswap_soak.c - a long randomized run of every API call at once, with the
 * content of every page checked and the engine's invariants swept on a
 * schedule.  Issue 5 part 5.
 *
 *   build/release/uswap-soak --seconds N --threads T --size SIZE --limit SIZE
 *       [--seed S] [--compressor lz4|zstd] [--handlers H] [--check SECS]
 *       [--progress SECS] [--cold N]
 *
 * T application threads share two managed regions (SIZE in all) and do, at
 * random: reads of one page or of a run of pages (every byte compared with
 * what the page must hold), writes of one page or a run (the page's version
 * bumped), discards of 1..16 pages, pageouts and prefetches of 1..64 pages,
 * set_limit between LIMIT/2 and LIMIT, and map / use / unmap of a small
 * region of their own.  Pages are picked Zipf(0.99) (hot pages scattered)
 * or uniformly, so the resident set churns through the limit.  With
 * --cold N, a thread also MADV_COLDs a 64-page window (mostly of hot
 * pages) N times a second (see cold_main).
 *
 * Expected content.  Every shared page has a spinlock and a version in
 * ordinary memory.  Reads, writes and discards of a page take its lock
 * (try-lock: a busy page is skipped, nobody spins while a thread faults),
 * so what the page must hold is always known: the page (index, version)
 * of workload.h, or zeros after a discard.  Versions only grow (a discard
 * keeps the version and sets "zero"), so a resurrected older copy can never
 * pass for the current one.  Pageout and prefetch take no lock: they race
 * with everything, as the engine promises they may.
 *
 * Invariant checks (every --check seconds, default 5): the workers park at
 * a barrier, then uswap__validate() (no marker or eviction left, resident
 * equals present pages, every named slot has count 1, the backend holds no
 * slot nobody names), resident <= limit (after the evictor settles), and
 * entries agree with the kernel's page table (PRESENT <=> mincore finds the
 * page: a PRESENT entry with no page is data already lost, which
 * uswap__validate cannot see), then the workers resume.  A watchdog fails
 * the run if a worker makes no progress for 60 s outside a pause (a thread
 * left asleep).
 *
 * On the first mismatch of a shared page: the engine's entries for it and
 * its neighbours, the page's last locked operations and the range
 * operations that covered it (a ring of the last 2^20).  At the end the
 * wrong pages are listed as ranges.
 *
 * Progress every --progress seconds (default 10): ops/s, swap-ins and
 * swap-outs, resident vs limit, the pool's compression ratio and memory
 * efficiency, errors.  At the end: every page of every region verified,
 * a last sweep, the statistics, unmap and close.  Exit 0 only if there was
 * no mismatch, no failed call, no invariant violation.  SOAK.md has the
 * runs made with it.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "uswap.h"
#include "testing.h"	/* uswap__validate: in libuswap.a, not exported by the .so */
#include "workload.h"

#define PG WL_PAGE_SIZE
#define MiB (1024.0 * 1024.0)
#define NMAIN 2			/* shared regions */
#define MAX_WORKERS 64
#define MAX_ERRORS 20		/* stop reporting (and the run) after this many */
#define STALL_SECS 60

/* What happened to a page, for the report of a mismatch. */
enum { EV_READ = 1, EV_WRITE, EV_DISCARD, EV_PAGEOUT, EV_PREFETCH };
static const char *const ev_name[] = { "?", "read", "write", "discard", "pageout",
				       "prefetch" };
#define HIST 4

struct hev {
	uint32_t ms;		/* since the start */
	uint32_t ver;
	uint8_t op, thr, zero, pad;
};

/* A shared page's expected content, protected by its lock. */
struct pstate {
	_Atomic uint32_t lock;	/* 0 free, 1 held (try-lock only) */
	uint32_t ver;		/* last version written; only grows */
	uint32_t zero;		/* discarded (or never written): reads zeros */
	uint32_t hpos;		/* next slot of h[] */
	struct hev h[HIST];	/* the last locked operations on the page */
};

/* The last range operations (pageout, prefetch, discard), all threads. */
#define RING (1u << 20)
struct rev {
	uint32_t ms, idx, n;
	uint8_t op, thr, reg, pad;
	long ret;
};
static struct rev *ring;
static _Atomic uint64_t ring_pos;

struct mregion {
	unsigned char *base;
	size_t npages;
	struct pstate *ps;
};

struct worker {
	pthread_t th;
	unsigned id;
	struct wl_rng rng;
	/* a small region of this worker's own (NULL when none) */
	unsigned char *xbase;
	size_t xpages;
	uint32_t *xver;		/* bit 31: zero */
	uint64_t xid;
	_Atomic uint64_t last_ns;	/* end of the last operation */
	_Atomic int parked;
	_Atomic uint64_t ops;
};

/* Counters over all workers (relaxed). */
static _Atomic uint64_t n_reads, n_writes, n_discards, n_pageouts, n_prefetches,
	n_limits, n_maps, n_unmaps, n_busy, n_zero_reads, n_pages_read,
	n_pages_written;
static _Atomic uint64_t n_errors;

static struct uswap *us;
static struct mregion mr[NMAIN];
static size_t total_pages;
static struct wl_zipf zipf;
static struct worker workers[MAX_WORKERS];
static unsigned nworkers;
static uint64_t opt_seed = 1;
static size_t opt_limit = 64u << 20;
static _Atomic uint64_t next_xid = 1;
static _Atomic int pause_req, stop_req;
static pthread_barrier_t bar_park, bar_resume;
static pthread_mutex_t report_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t t_start;
static __thread unsigned my_thr;
static _Atomic int diag_done;

static uint32_t now_ms(void)
{
	return (uint32_t)((wl_now_ns() - t_start) / 1000000);
}

static void hist_add(struct pstate *s, int op)
{
	struct hev *h = &s->h[s->hpos++ % HIST];

	h->ms = now_ms();
	h->ver = s->ver;
	h->op = (uint8_t)op;
	h->thr = (uint8_t)my_thr;
	h->zero = (uint8_t)s->zero;
}

static void ring_add(int op, unsigned reg, size_t idx, size_t n, long ret)
{
	struct rev *e = &ring[atomic_fetch_add_explicit(&ring_pos, 1, memory_order_relaxed) % RING];

	e->ms = now_ms();
	e->op = (uint8_t)op;
	e->thr = (uint8_t)my_thr;
	e->reg = (uint8_t)reg;
	e->idx = (uint32_t)idx;
	e->n = (uint32_t)n;
	e->ret = ret;
}

static void diagnose(unsigned reg, size_t idx);

static inline unsigned char *page_of(unsigned reg, size_t idx)
{
	return mr[reg].base + idx * PG;
}

static void error_at(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void error_at(const char *fmt, ...)
{
	va_list ap;

	if (atomic_fetch_add(&n_errors, 1) >= MAX_ERRORS)
		return;
	pthread_mutex_lock(&report_lock);
	fprintf(stderr, "uswap-soak: ERROR: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	pthread_mutex_unlock(&report_lock);
}

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	char msg[128];
	int n;

	(void)sig;
	(void)uc;
	n = snprintf(msg, sizeof(msg), "uswap-soak: FAIL: SIGBUS at %p (a page "
		     "was poisoned)\n", si->si_addr);
	if (n > 0)
		(void)!write(2, msg, (size_t)n);
	_exit(1);
}

/* ---- expected content ---- */

/* Content index of a shared page and of a page of a worker's own region. */
static inline uint64_t main_key(unsigned reg, size_t idx)
{
	return ((uint64_t)reg << 40) | idx;
}

static inline uint64_t extra_key(uint64_t xid, size_t idx)
{
	return ((uint64_t)1 << 60) | (xid << 24) | idx;
}

static int zero_page_check(const unsigned char *p)
{
	static const unsigned char z[PG];

	return memcmp(p, z, PG) != 0;
}

/* Check @p against (key, ver) or zeros; report a mismatch.  0 if good. */
static int verify(const char *what, const unsigned char *p, uint64_t key,
		  uint32_t ver, int zero)
{
	if (zero) {
		if (!zero_page_check(p))
			return 0;
		if (atomic_load(&n_errors) < MAX_ERRORS) {
			pthread_mutex_lock(&report_lock);
			fprintf(stderr, "uswap-soak: %s: MISMATCH page key %#llx at %p: "
				"expected zeros (discarded; last version %u); header says "
				"index %#llx version %llu\n", what, (unsigned long long)key,
				(const void *)p, ver, (unsigned long long)wl_get64(p),
				(unsigned long long)wl_get64(p + 8));
			pthread_mutex_unlock(&report_lock);
		}
		error_at("%s: page key %#llx not zero", what, (unsigned long long)key);
		return 1;
	}
	size_t bad = wl_check_page(p, key, ver, opt_seed);
	if (!bad)
		return 0;
	if (atomic_load(&n_errors) < MAX_ERRORS) {
		pthread_mutex_lock(&report_lock);
		wl_report_bad(stderr, what, p, key, ver, opt_seed, bad);
		pthread_mutex_unlock(&report_lock);
	}
	error_at("%s: page key %#llx at %p wrong (want version %u)", what,
		 (unsigned long long)key, (const void *)p, ver);
	return 1;
}

/*
 * The first mismatch of a shared page: what the engine says about the
 * page and its neighbours now, the page's last locked operations, and the
 * range operations that covered it (newest first).
 */
static void diagnose(unsigned reg, size_t idx)
{
	static const char *const stname[] = { "NONE", "PRESENT", "SWAPPED", "MARKER",
					       "EVICTING", "POISON" };
	struct pstate *s = &mr[reg].ps[idx];

	if (atomic_exchange(&diag_done, 1))
		return;
	pthread_mutex_lock(&report_lock);
	fprintf(stderr, "uswap-soak: diagnosis of region %u page %zu (at %u ms; ring holds "
		"the last %u range operations):\n", reg, idx, now_ms(), RING);
	for (long d = -2; d <= 2; d++) {
		size_t i = idx + (size_t)d;
		uint32_t payload = 0;

		if ((long)idx + d < 0 || i >= mr[reg].npages)
			continue;
		int st = uswap__pte_state(us, page_of(reg, i), &payload);
		fprintf(stderr, "  entry of page %zu: %s payload %u (expected %s v%u)\n", i,
			st >= 0 && st <= 5 ? stname[st] : "?", payload,
			mr[reg].ps[i].zero ? "zeros, last" : "", mr[reg].ps[i].ver);
	}
	for (unsigned k = 0; k < HIST && k < s->hpos; k++) {
		const struct hev *h = &s->h[(s->hpos - 1 - k) % HIST];

		fprintf(stderr, "  page history -%u: %u ms thread %u %s -> v%u%s\n", k,
			h->ms, h->thr, ev_name[h->op], h->ver, h->zero ? " (zeros)" : "");
	}
	uint64_t end = atomic_load(&ring_pos), shown = 0;
	for (uint64_t p = end; p > 0 && end - p < RING && shown < 12; p--) {
		const struct rev *e = &ring[(p - 1) % RING];

		if (e->reg != reg || idx < e->idx || idx >= (size_t)e->idx + e->n)
			continue;
		fprintf(stderr, "  range op: %u ms thread %u %s [%u, %u) -> %ld\n", e->ms,
			e->thr, ev_name[e->op], e->idx, e->idx + e->n, e->ret);
		shown++;
	}
	pthread_mutex_unlock(&report_lock);
}

/* ---- shared pages ---- */

static inline bool page_trylock(struct pstate *s)
{
	uint32_t z = 0;

	return atomic_compare_exchange_strong_explicit(&s->lock, &z, 1,
			memory_order_acquire, memory_order_relaxed);
}

static inline void page_unlock(struct pstate *s)
{
	atomic_store_explicit(&s->lock, 0, memory_order_release);
}

/* A page: Zipf (hot pages scattered) 70%, uniform 30%. */
static void pick(struct worker *w, unsigned *reg, size_t *idx)
{
	uint64_t g = wl_rng_below(&w->rng, 10) < 7 ? wl_zipf_next(&zipf, &w->rng)
						    : wl_rng_below(&w->rng, total_pages);

	*reg = (unsigned)(g / mr[0].npages);
	*idx = (size_t)(g % mr[0].npages);
}

/* Read and verify one page; false if it was busy. */
static bool read_one(unsigned reg, size_t idx)
{
	struct pstate *s = &mr[reg].ps[idx];

	if (!page_trylock(s))
		return false;
	if (verify("read", page_of(reg, idx), main_key(reg, idx), s->ver, s->zero))
		diagnose(reg, idx);
	hist_add(s, EV_READ);
	atomic_fetch_add_explicit(&n_zero_reads, s->zero, memory_order_relaxed);
	page_unlock(s);
	atomic_fetch_add_explicit(&n_pages_read, 1, memory_order_relaxed);
	return true;
}

static bool write_one(unsigned reg, size_t idx)
{
	struct pstate *s = &mr[reg].ps[idx];

	if (!page_trylock(s))
		return false;
	s->ver++;
	s->zero = 0;
	wl_fill_page(page_of(reg, idx), main_key(reg, idx), s->ver, opt_seed);
	hist_add(s, EV_WRITE);
	page_unlock(s);
	atomic_fetch_add_explicit(&n_pages_written, 1, memory_order_relaxed);
	return true;
}

/* Runs stay inside one region. */
static size_t run_len(struct worker *w, size_t idx, size_t lo, size_t hi)
{
	size_t n = lo + wl_rng_below(&w->rng, hi - lo + 1);

	if (idx + n > mr[0].npages)
		n = mr[0].npages - idx;
	return n;
}

static void op_discard(struct worker *w)
{
	unsigned reg;
	size_t idx, n, got = 0;

	pick(w, &reg, &idx);
	n = run_len(w, idx, 1, 16);
	for (; got < n; got++)
		if (!page_trylock(&mr[reg].ps[idx + got]))
			break;
	if (got == n) {
		int rc = uswap_discard(us, page_of(reg, idx), n * PG);

		if (rc)
			error_at("uswap_discard(%zu pages): %s", n, strerror(-rc));
		for (size_t i = 0; i < n; i++) {
			mr[reg].ps[idx + i].zero = 1;
			hist_add(&mr[reg].ps[idx + i], EV_DISCARD);
		}
		ring_add(EV_DISCARD, reg, idx, n, rc);
		atomic_fetch_add_explicit(&n_discards, 1, memory_order_relaxed);
	} else {
		atomic_fetch_add_explicit(&n_busy, 1, memory_order_relaxed);
	}
	while (got)
		page_unlock(&mr[reg].ps[idx + --got]);
}

static void op_pageout(struct worker *w)
{
	unsigned reg;
	size_t idx, n;

	pick(w, &reg, &idx);
	n = run_len(w, idx, 1, 64);
	long rc = uswap_pageout(us, page_of(reg, idx), n * PG);
	ring_add(EV_PAGEOUT, reg, idx, n, rc);
	if (rc < 0)
		error_at("uswap_pageout(%zu pages): %s", n, strerror((int)-rc));
	atomic_fetch_add_explicit(&n_pageouts, 1, memory_order_relaxed);
}

static void op_prefetch(struct worker *w)
{
	unsigned reg;
	size_t idx, n;

	pick(w, &reg, &idx);
	n = run_len(w, idx, 1, 64);
	long rc = uswap_prefetch(us, page_of(reg, idx), n * PG);
	ring_add(EV_PREFETCH, reg, idx, n, rc);
	if (rc < 0)
		error_at("uswap_prefetch(%zu pages): %s", n, strerror((int)-rc));
	atomic_fetch_add_explicit(&n_prefetches, 1, memory_order_relaxed);
}

static void op_set_limit(struct worker *w)
{
	/* LIMIT/2 .. LIMIT in eighths of the limit. */
	size_t lim = opt_limit / 2 + opt_limit / 8 * wl_rng_below(&w->rng, 5);
	int rc;

	lim &= ~(size_t)(PG - 1);
	rc = uswap_set_limit(us, lim);
	if (rc)
		error_at("uswap_set_limit(%zu): %s", lim, strerror(-rc));
	atomic_fetch_add_explicit(&n_limits, 1, memory_order_relaxed);
}

/* ---- a worker's own small region ---- */

static void extra_unmap(struct worker *w)
{
	int rc = uswap_unmap(us, w->xbase, w->xpages * PG);

	if (rc)
		error_at("uswap_unmap(%zu pages): %s", w->xpages, strerror(-rc));
	free(w->xver);
	w->xbase = NULL;
	w->xver = NULL;
	atomic_fetch_add_explicit(&n_unmaps, 1, memory_order_relaxed);
}

static void extra_check(struct worker *w, const char *what, size_t i)
{
	uint32_t v = w->xver[i];

	verify(what, w->xbase + i * PG, extra_key(w->xid, i), v & 0x7fffffff,
	       (v >> 31) || v == 0);
}

static void op_extra(struct worker *w)
{
	if (!w->xbase) {
		size_t n = 16 + wl_rng_below(&w->rng, 497);

		w->xbase = uswap_map(us, n * PG);
		if (!w->xbase) {
			error_at("uswap_map(%zu pages): %s", n, strerror(errno));
			return;
		}
		w->xpages = n;
		w->xver = calloc(n, sizeof(*w->xver));
		w->xid = atomic_fetch_add(&next_xid, 1);
		if (!w->xver) {
			fprintf(stderr, "uswap-soak: out of memory\n");
			exit(2);
		}
		atomic_fetch_add_explicit(&n_maps, 1, memory_order_relaxed);
		return;
	}
	uint64_t dice = wl_rng_below(&w->rng, 100);
	size_t i = wl_rng_below(&w->rng, w->xpages);

	if (dice < 3) {
		/* Verify it all, then unmap. */
		for (size_t k = 0; k < w->xpages; k++)
			extra_check(w, "extra final read", k);
		extra_unmap(w);
	} else if (dice < 40) {
		extra_check(w, "extra read", i);
	} else if (dice < 85) {
		uint32_t v = (w->xver[i] & 0x7fffffff) + 1;

		w->xver[i] = v;
		wl_fill_page(w->xbase + i * PG, extra_key(w->xid, i), v, opt_seed);
	} else if (dice < 90) {
		int rc = uswap_discard(us, w->xbase + i * PG, PG);

		if (rc)
			error_at("uswap_discard(extra): %s", strerror(-rc));
		w->xver[i] |= 1u << 31;
	} else if (dice < 95) {
		long rc = uswap_pageout(us, w->xbase, w->xpages * PG);

		if (rc < 0)
			error_at("uswap_pageout(extra): %s", strerror((int)-rc));
	} else {
		long rc = uswap_prefetch(us, w->xbase, w->xpages * PG);

		if (rc < 0)
			error_at("uswap_prefetch(extra): %s", strerror((int)-rc));
	}
}

/* ---- the workers ---- */

static void one_op(struct worker *w)
{
	uint64_t dice = wl_rng_below(&w->rng, 1000);
	unsigned reg;
	size_t idx, n;

	if (dice < 430) {
		pick(w, &reg, &idx);
		if (!read_one(reg, idx))
			atomic_fetch_add_explicit(&n_busy, 1, memory_order_relaxed);
		atomic_fetch_add_explicit(&n_reads, 1, memory_order_relaxed);
	} else if (dice < 680) {
		pick(w, &reg, &idx);
		if (!write_one(reg, idx))
			atomic_fetch_add_explicit(&n_busy, 1, memory_order_relaxed);
		atomic_fetch_add_explicit(&n_writes, 1, memory_order_relaxed);
	} else if (dice < 720) {
		/* A sequential read run: what makes readahead windows grow. */
		pick(w, &reg, &idx);
		n = run_len(w, idx, 8, 128);
		for (size_t i = 0; i < n; i++)
			read_one(reg, idx + i);
		atomic_fetch_add_explicit(&n_reads, 1, memory_order_relaxed);
	} else if (dice < 740) {
		pick(w, &reg, &idx);
		n = run_len(w, idx, 4, 32);
		for (size_t i = 0; i < n; i++)
			write_one(reg, idx + i);
		atomic_fetch_add_explicit(&n_writes, 1, memory_order_relaxed);
	} else if (dice < 770) {
		op_discard(w);
	} else if (dice < 830) {
		op_pageout(w);
	} else if (dice < 890) {
		op_prefetch(w);
	} else if (dice < 990) {
		op_extra(w);
	} else if (wl_rng_below(&w->rng, 20) == 0) {
		op_set_limit(w);
	}
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;

	my_thr = w->id + 1;
	while (!atomic_load(&stop_req)) {
		if (atomic_load(&pause_req)) {
			atomic_store(&w->parked, 1);
			pthread_barrier_wait(&bar_park);
			pthread_barrier_wait(&bar_resume);
			atomic_store(&w->parked, 0);
			atomic_store(&w->last_ns, wl_now_ns());
			continue;
		}
		one_op(w);
		atomic_fetch_add_explicit(&w->ops, 1, memory_order_relaxed);
		atomic_store_explicit(&w->last_ns, wl_now_ns(), memory_order_relaxed);
	}
	if (w->xbase) {
		for (size_t k = 0; k < w->xpages; k++)
			extra_check(w, "extra final read", k);
		extra_unmap(w);
	}
	return NULL;
}

/* ---- checks, progress, watchdog ---- */

static void get_stats(struct uswap_stats *st)
{
	int rc = uswap_stats(us, st);

	if (rc) {
		fprintf(stderr, "uswap-soak: uswap_stats: %s\n", strerror(-rc));
		exit(1);
	}
}

static uint64_t n_checks;
static double worst_check_ms;

/* Quiescent checks: the caller made sure no worker is inside uswap. */
/*
 * Entries and the kernel's page table agree on the shared regions: an
 * entry is PRESENT exactly when the kernel has a page there (mincore).  A
 * PRESENT entry with no page behind it is data already lost (the next
 * fault maps zeros: fault_present); a page under a non-PRESENT entry is
 * one the engine does not know about.  uswap__validate cannot see either.
 * The evictor may still be at work: a mismatch counts only if it stays.
 */
static void check_mapped(const char *when)
{
	static unsigned char *vec;
	uint64_t bad = 0;

	if (!vec && !(vec = malloc(mr[0].npages))) {
		fprintf(stderr, "uswap-soak: out of memory\n");
		exit(2);
	}
	for (unsigned r = 0; r < NMAIN; r++) {
		if (mincore(mr[r].base, mr[r].npages * PG, vec))
			continue;
		for (size_t i = 0; i < mr[r].npages; i++) {
			int st = uswap__pte_state(us, page_of(r, i), NULL);
			int mapped = vec[i] & 1;

			if ((st == USWAP_T_PRESENT) == mapped)
				continue;
			for (int k = 0; k < 5 && (st == USWAP_T_PRESENT) != mapped; k++) {
				unsigned char v;

				usleep(2000);
				st = uswap__pte_state(us, page_of(r, i), NULL);
				mapped = mincore(page_of(r, i), PG, &v) == 0 && (v & 1);
			}
			if ((st == USWAP_T_PRESENT) == mapped)
				continue;
			if (bad++ < 8)
				fprintf(stderr, "uswap-soak: INVARIANT (%s): region %u page %zu: entry "
					"state %d, kernel page %s\n", when, r, i, st,
					mapped ? "present" : "absent");
		}
	}
	if (bad)
		error_at("invariant (%s): %llu pages where entry and page table disagree",
			 when, (unsigned long long)bad);
}

static void check_invariants(const char *when)
{
	char msg[256];
	struct uswap_stats st;
	uint64_t t0 = wl_now_ns();

	if (uswap__validate(us, msg, sizeof(msg))) {
		/* always shown, whatever came before */
		fprintf(stderr, "uswap-soak: INVARIANT (%s): %s\n", when, msg);
		error_at("invariant (%s): %s", when, msg);
	}
	/* The evictor may still be bringing resident under a limit just
	 * lowered: give it up to 5 s (it needs no application thread). */
	for (int i = 0;; i++) {
		get_stats(&st);
		if (st.resident_bytes <= st.limit_bytes)
			break;
		if (i == 500) {
			error_at("invariant (%s): resident %.1f MiB > limit %.1f MiB "
				 "with nothing in flight (over_limit %llu)", when,
				 st.resident_bytes / MiB, st.limit_bytes / MiB,
				 (unsigned long long)st.over_limit);
			break;
		}
		usleep(10000);
	}
	check_mapped(when);
	double ms = (double)(wl_now_ns() - t0) / 1e6;
	if (ms > worst_check_ms)
		worst_check_ms = ms;
	n_checks++;
}

static void pause_and_check(void)
{
	atomic_store(&pause_req, 1);
	pthread_barrier_wait(&bar_park);
	check_invariants("periodic");
	atomic_store(&pause_req, 0);
	pthread_barrier_wait(&bar_resume);
}

static uint64_t total_ops(void)
{
	uint64_t n = 0;

	for (unsigned i = 0; i < nworkers; i++)
		n += atomic_load_explicit(&workers[i].ops, memory_order_relaxed);
	return n;
}

/*
 * --cold N: N times a second, madvise(MADV_COLD) a 64-page window around
 * a page picked like the workers pick theirs (mostly hot ones).  It
 * changes no content, but it clears the young bits of the window's
 * page-table entries, which the next access sets again: an eviction's
 * UFFDIO_MOVE racing with that sees its PTE change and retries inside the
 * kernel, the path where Linux 6.18 misreports what it moved (SOAK.md
 * section 4).  Kernel page aging does the same under memory pressure;
 * this makes it happen on purpose.
 */
static unsigned opt_cold;
static _Atomic uint64_t n_cold;

static void *cold_main(void *arg)
{
	struct worker w = { 0 };

	(void)arg;
	wl_rng_seed(&w.rng, opt_seed ^ 0xc01dc01dull);
	while (!atomic_load(&stop_req)) {
		unsigned reg;
		size_t idx;

		pick(&w, &reg, &idx);
		idx = idx > 32 ? idx - 32 : 0;
		if (idx + 64 > mr[reg].npages)
			idx = mr[reg].npages - 64;
		madvise(page_of(reg, idx), 64 * PG, MADV_COLD);
		atomic_fetch_add_explicit(&n_cold, 1, memory_order_relaxed);
		usleep(1000000 / opt_cold);
	}
	return NULL;
}

static void *watchdog_main(void *arg)
{
	(void)arg;
	while (!atomic_load(&stop_req)) {
		sleep(1);
		uint64_t now = wl_now_ns();

		for (unsigned i = 0; i < nworkers; i++) {
			struct worker *w = &workers[i];
			uint64_t last = atomic_load(&w->last_ns);

			if (atomic_load(&w->parked) || atomic_load(&stop_req))
				continue;
			if (now > last && now - last > (uint64_t)STALL_SECS * 1000000000ull) {
				struct uswap_stats st;

				fprintf(stderr, "uswap-soak: FAIL: worker %u made no progress "
					"for %d s (a thread left asleep?)\n", i, STALL_SECS);
				if (uswap_stats(us, &st) == 0)
					uswap_stats_print(&st, stderr);
				_exit(3);
			}
		}
	}
	return NULL;
}

static void progress(double secs, double dt, uint64_t ops, uint64_t dops,
		     const struct uswap_stats *st, const struct uswap_stats *st0)
{
	printf("[%6.0fs] ops %10llu (%7.0f/s)  swapins %9llu (+%7.0f/s)  swapouts %9llu "
	       "(+%7.0f/s)  resident %6.1f/%5.1f MiB  pool %6.1f MiB ratio %.2fx eff %.2fx  "
	       "checks %llu  errors %llu\n",
	       secs, (unsigned long long)ops, dops / dt,
	       (unsigned long long)st->swapins, (st->swapins - st0->swapins) / dt,
	       (unsigned long long)st->swapouts, (st->swapouts - st0->swapouts) / dt,
	       st->resident_bytes / MiB, st->limit_bytes / MiB, st->pool_bytes / MiB,
	       st->compression_ratio, st->memory_efficiency,
	       (unsigned long long)n_checks, (unsigned long long)atomic_load(&n_errors));
	fflush(stdout);
}

/* ---- main ---- */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: uswap-soak [options]\n"
		"  --seconds N        run time (default 60)\n"
		"  --threads T        application threads (default 4)\n"
		"  --size SIZE        shared managed memory, two regions (default 512M)\n"
		"  --limit SIZE       resident limit; set_limit varies it in\n"
		"                     [LIMIT/2, LIMIT] (default 64M)\n"
		"  --seed S           content and operation seed (default 1)\n"
		"  --compressor NAME  lz4 or zstd (default USWAP_COMPRESSOR or lz4)\n"
		"  --handlers H       fault handler threads (default 2)\n"
		"  --check SECS       invariant sweep interval (default 5)\n"
		"  --progress SECS    progress line interval (default 10)\n"
		"  --cold N           N times a second, MADV_COLD a 64-page window\n"
		"                     (clears young bits; default 0: off)\n"
		"Other settings come from the USWAP_* environment variables.\n"
		"Exit status: 0 clean, 1 mismatch / failed call / invariant, 2 usage,\n"
		"3 a worker stalled.\n");
}

static int parse_u64(const char *s, uint64_t *out)
{
	char *end;

	errno = 0;
	*out = strtoull(s, &end, 0);
	return errno || end == s || *end ? -EINVAL : 0;
}

int main(int argc, char **argv)
{
	uint64_t opt_seconds = 60, opt_threads = 4, opt_handlers = 2, opt_check = 5,
		opt_progress = 10;
	size_t opt_size = (size_t)512 << 20;
	const char *opt_compressor = NULL;
	struct uswap_config cfg;
	struct sigaction sa;
	char err[256];
	int rc;

	for (int a = 1; a < argc; a++) {
		const char *o = argv[a], *val = a + 1 < argc ? argv[a + 1] : NULL;
		int bad = 0;

		if (!strcmp(o, "-h") || !strcmp(o, "--help")) {
			usage(stdout);
			return 0;
		} else if (!val) {
			bad = 1;
		} else if (!strcmp(o, "--seconds")) {
			bad = parse_u64(val, &opt_seconds) || !opt_seconds;
		} else if (!strcmp(o, "--threads")) {
			bad = parse_u64(val, &opt_threads) || !opt_threads ||
			      opt_threads > MAX_WORKERS;
		} else if (!strcmp(o, "--size")) {
			bad = wl_parse_size(val, &opt_size);
		} else if (!strcmp(o, "--limit")) {
			bad = wl_parse_size(val, &opt_limit);
		} else if (!strcmp(o, "--seed")) {
			bad = parse_u64(val, &opt_seed);
		} else if (!strcmp(o, "--compressor")) {
			opt_compressor = val;
		} else if (!strcmp(o, "--handlers")) {
			bad = parse_u64(val, &opt_handlers) || !opt_handlers ||
			      opt_handlers > 64;
		} else if (!strcmp(o, "--check")) {
			bad = parse_u64(val, &opt_check) || !opt_check;
		} else if (!strcmp(o, "--cold")) {
			uint64_t v;

			bad = parse_u64(val, &v) || v > 1000000;
			opt_cold = (unsigned)v;
		} else if (!strcmp(o, "--progress")) {
			bad = parse_u64(val, &opt_progress) || !opt_progress;
		} else {
			bad = 1;
		}
		if (bad) {
			fprintf(stderr, "uswap-soak: bad option or value: %s %s\n", o,
				val ? val : "");
			usage(stderr);
			return 2;
		}
		a++;
	}
	if (sysconf(_SC_PAGESIZE) != PG) {
		fprintf(stderr, "uswap-soak: needs 4 KiB pages\n");
		return 2;
	}
	total_pages = opt_size / PG / NMAIN * NMAIN;
	if (total_pages < 1024 || opt_limit < 64 * (size_t)PG) {
		fprintf(stderr, "uswap-soak: --size must be at least 4M, --limit at least 256K\n");
		return 2;
	}
	nworkers = (unsigned)opt_threads;

	if (uswap_config_init(&cfg, err, sizeof(err))) {
		fprintf(stderr, "uswap-soak: configuration: %s\n", err);
		return 2;
	}
	cfg.limit = opt_limit;
	cfg.threads = (unsigned)opt_handlers;
	if (opt_compressor)
		snprintf(cfg.compressor, sizeof(cfg.compressor), "%s", opt_compressor);
	if (uswap_config_check(&cfg, err, sizeof(err))) {
		fprintf(stderr, "uswap-soak: configuration: %s\n", err);
		return 2;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_sigbus;
	sa.sa_flags = SA_SIGINFO;
	sigaction(SIGBUS, &sa, NULL);

	ring = calloc(RING, sizeof(*ring));
	if (!ring) {
		fprintf(stderr, "uswap-soak: out of memory\n");
		return 2;
	}
	t_start = wl_now_ns();
	us = uswap_open(&cfg);
	if (!us) {
		fprintf(stderr, "uswap-soak: uswap_open: %s\n", strerror(errno));
		return 1;
	}
	for (unsigned r = 0; r < NMAIN; r++) {
		mr[r].npages = total_pages / NMAIN;
		mr[r].base = uswap_map(us, mr[r].npages * PG);
		mr[r].ps = calloc(mr[r].npages, sizeof(*mr[r].ps));
		if (!mr[r].base || !mr[r].ps) {
			fprintf(stderr, "uswap-soak: map: %s\n", strerror(errno));
			return 1;
		}
		for (size_t i = 0; i < mr[r].npages; i++)
			mr[r].ps[i].zero = 1;
	}
	wl_zipf_init(&zipf, total_pages, 0.99, opt_seed);

	printf("uswap-soak: uswap %s; %llu s, %u threads, %zu MiB in %d regions "
	       "(%zu pages), limit %.0f MiB (set_limit in [%.0f, %.0f] MiB), %s "
	       "(%s), %u handlers, readahead %u, seed %llu, checks every %llu s\n",
	       uswap_version(), (unsigned long long)opt_seconds, nworkers,
	       total_pages * PG >> 20, NMAIN, total_pages, opt_limit / MiB,
	       opt_limit / 2 / MiB, opt_limit / MiB, cfg.backend, cfg.compressor,
	       cfg.threads, cfg.readahead_max, (unsigned long long)opt_seed,
	       (unsigned long long)opt_check);
	if (opt_cold)
		printf("uswap-soak: MADV_COLD on a 64-page window (mostly hot pages) %u "
		       "times a second\n", opt_cold);
	fflush(stdout);

	pthread_barrier_init(&bar_park, NULL, nworkers + 1);
	pthread_barrier_init(&bar_resume, NULL, nworkers + 1);
	uint64_t t0 = wl_now_ns();
	for (unsigned i = 0; i < nworkers; i++) {
		struct worker *w = &workers[i];

		w->id = i;
		wl_rng_seed(&w->rng, opt_seed * 0x100000001b3ull + i + 1);
		atomic_store(&w->last_ns, t0);
		if (pthread_create(&w->th, NULL, worker_main, w)) {
			fprintf(stderr, "uswap-soak: pthread_create failed\n");
			return 1;
		}
	}
	pthread_t wd, cold;
	if (opt_cold && pthread_create(&cold, NULL, cold_main, NULL)) {
		fprintf(stderr, "uswap-soak: pthread_create failed\n");
		return 1;
	}
	pthread_create(&wd, NULL, watchdog_main, NULL);

	uint64_t end = t0 + opt_seconds * 1000000000ull;
	uint64_t next_check = t0 + opt_check * 1000000000ull;
	uint64_t next_prog = t0 + opt_progress * 1000000000ull;
	uint64_t last_prog = t0, last_ops = 0;
	struct uswap_stats st0, st;
	get_stats(&st0);
	while (atomic_load(&n_errors) == 0) {
		uint64_t now = wl_now_ns();

		if (now >= end)
			break;
		if (now >= next_check) {
			pause_and_check();
			next_check = wl_now_ns() + opt_check * 1000000000ull;
		}
		if (now >= next_prog) {
			uint64_t ops = total_ops();

			get_stats(&st);
			progress((double)(now - t0) / 1e9, (double)(now - last_prog) / 1e9,
				 ops, (double)(ops - last_ops), &st, &st0);
			st0 = st;
			last_prog = now;
			last_ops = ops;
			next_prog += opt_progress * 1000000000ull;
		}
		usleep(50000);
	}
	atomic_store(&stop_req, 1);
	for (unsigned i = 0; i < nworkers; i++)
		pthread_join(workers[i].th, NULL);
	pthread_join(wd, NULL);
	if (opt_cold)
		pthread_join(cold, NULL);
	double secs = (double)(wl_now_ns() - t0) / 1e9;

	/* Every shared page, once more (the wrong ones summed up as ranges),
	 * then the last sweep. */
	uint64_t verified = 0, nbad = 0;
	unsigned nranges = 0;
	for (unsigned r = 0; r < NMAIN; r++) {
		size_t run = 0;

		for (size_t i = 0; i <= mr[r].npages; i++) {
			int bad = 0;

			if (i < mr[r].npages) {
				struct pstate *s = &mr[r].ps[i];

				bad = verify("final read", page_of(r, i), main_key(r, i), s->ver,
					     s->zero);
				if (bad)
					diagnose(r, i);
				verified++;
				nbad += bad;
			}
			if (bad) {
				run++;
			} else if (run) {
				if (nranges++ < 64)
					fprintf(stderr, "uswap-soak: final: region %u pages [%zu, %zu) "
						"wrong\n", r, i - run, i);
				run = 0;
			}
		}
	}
	if (nbad)
		fprintf(stderr, "uswap-soak: final: %llu pages wrong in %u ranges\n",
			(unsigned long long)nbad, nranges);
	check_invariants("final");
	get_stats(&st);
	uint64_t ops = total_ops();

	printf("\nuswap-soak: %.0f s, %llu ops (%.0f/s): reads %llu (pages %llu, of "
	       "them zero %llu), writes %llu (pages %llu), discards %llu, pageouts %llu, "
	       "prefetches %llu, set_limit %llu, maps %llu, unmaps %llu, busy skips %llu\n",
	       secs, (unsigned long long)ops, ops / secs,
	       (unsigned long long)n_reads, (unsigned long long)n_pages_read,
	       (unsigned long long)n_zero_reads, (unsigned long long)n_writes,
	       (unsigned long long)n_pages_written, (unsigned long long)n_discards,
	       (unsigned long long)n_pageouts, (unsigned long long)n_prefetches,
	       (unsigned long long)n_limits, (unsigned long long)n_maps,
	       (unsigned long long)n_unmaps, (unsigned long long)n_busy);
	if (opt_cold)
		printf("uswap-soak: %llu MADV_COLD calls\n", (unsigned long long)n_cold);
	printf("uswap-soak: %llu invariant checks (slowest %.0f ms), %llu pages verified "
	       "at the end, peak resident %.1f MiB (limit at most %.0f MiB, over_limit %llu)\n",
	       (unsigned long long)n_checks, worst_check_ms, (unsigned long long)verified,
	       st.resident_peak_bytes / MiB, opt_limit / MiB,
	       (unsigned long long)st.over_limit);
	uswap_stats_print(&st, stdout);

	for (unsigned r = 0; r < NMAIN; r++) {
		rc = uswap_unmap(us, mr[r].base, mr[r].npages * PG);
		if (rc)
			error_at("uswap_unmap: %s", strerror(-rc));
	}
	get_stats(&st);
	if (st.stored_pages || st.resident_bytes)
		error_at("after unmapping everything: %llu pages stored, %.1f MiB resident",
			 (unsigned long long)st.stored_pages, st.resident_bytes / MiB);
	uswap_close(us);
	uint64_t nerr = atomic_load(&n_errors);
	printf("uswap-soak: %s: %llu error%s\n", nerr ? "FAIL" : "PASS",
	       (unsigned long long)nerr, nerr == 1 ? "" : "s");
	return nerr ? 1 : 0;
}

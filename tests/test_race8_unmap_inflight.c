/*
 * test_race8_unmap_inflight.c - swap-protocol.md §5.8: a region unmapped
 * while faults and evictions on it are in flight.  No use after free, no
 * hang, no leak.  Invariants I9/I11 (the in-flight owners finish their
 * cleanup), I12 (unmap waits for the region references, never for a
 * sleeper), I1 (every slot freed once: stored_pages 0 afterwards).
 *
 * Part 1.  Thread T faults a swapped page; handler A is stopped after the
 * read ("swapin_read").  A second thread faults the same page and handler
 * B is stopped on finding the marker ("fault_marker"): it holds a region
 * reference too.  Another thread calls uswap_unmap and is observed asleep
 * (futex(2)) without having returned.  Releasing A commits the page and
 * wakes both threads, which read the right data while the memory is still
 * mapped (B's reference keeps it); unmap still has not returned.
 * Releasing B lets unmap finish: it returns 0 and nothing is left stored.
 *
 * Part 3 (I12, the sleeper's window).  A fault finds its page EVICTING
 * and its handler goes to sleep on the entry: it has dropped its region
 * reference and is stopped ("wait_sleep") before the futex wait.  The
 * eviction finishes, and the application unmaps the region.  Unmap must
 * not free the entry array under the handler about to sleep on it: it
 * waits (observed asleep in futex(2), not returned) until the handler has
 * been released and left its wait; then it returns 0.  The faulting
 * thread touched memory being unmapped (the application's bug): it ends
 * with SIGSEGV or with the data, never hangs.
 *
 * Part 2.  Rounds of: application threads reading random pages (checking
 * them) while a thread evicts random spans; then, with faults and an
 * eviction held in flight at gates, the readers stop touching (an atomic
 * flag: touching memory that is being unmapped is the application's bug,
 * SIGSEGV) and the region is unmapped under the in-flight work.
 */
#include "race.h"

static struct uswap *us;

/* ---------------------------------------------------------------- part 1 */

static void test_unmap_during_swapin(void)
{
	const size_t npages = 64;
	const uint64_t idx = 17;
	unsigned char *mem = uswap_map(us, npages * PG);
	unsigned char *page = mem + idx * PG;
	struct app_op t, t2;
	struct api_call u;

	T_ASSERT(mem);
	for (uint64_t i = 0; i < npages; i++)
		fill_page(mem + i * PG, i, 1);
	T_EQ(uswap_pageout(us, mem, npages * PG), (long)npages);
	T_EQ(check_page(mem + 3 * PG, 3, 1), 0);	/* some resident, clean */

	gate_arm(0, "swapin_read", page, 0);
	app_start(&t, page, 0, 0, 0);
	gate_wait(0);
	gate_arm(1, "fault_marker", page, 0);
	app_start(&t2, page, 0, 0, 0);
	gate_wait(1);

	api_start(&u, us, API_UNMAP, mem, npages * PG);
	wait_in_futex(&u, "uswap_unmap to wait for the in-flight faults");
	T_EQ(atomic_load(&u.done), 0);	/* correctness: it must wait */

	gate_release(0);
	app_join(&t);
	app_join(&t2);
	T_EQ(check_page(t.copy, idx, 1), 0);
	T_EQ(check_page(t2.copy, idx, 1), 0);
	T_EQ(atomic_load(&u.done), 0);	/* handler B still holds a reference */

	gate_release(1);
	T_EQ(api_join(&u), 0);
	struct uswap_stats s = ST(us);
	printf("unmap during swap-in: unmap returned 0 after the in-flight faults; "
	       "stored_pages %llu resident %llu regions %llu\n",
	       (unsigned long long)s.stored_pages, (unsigned long long)s.resident_bytes,
	       (unsigned long long)s.regions);
	T_EQ(s.stored_pages, 0);
	T_EQ(s.resident_bytes, 0);
	T_EQ(s.regions, 0);
	test_validate(us);
}

/* ---------------------------------------------------------------- part 3 */

static void test_unmap_sleeper_window(void)
{
	const size_t npages = 64;
	const uint64_t idx = 9;
	unsigned char *mem = uswap_map(us, npages * PG);
	unsigned char *page = mem + idx * PG;
	struct api_call po, u;
	struct probe t;
	struct sigaction sa;

	T_ASSERT(mem);
	for (uint64_t i = 0; i < npages; i++)
		fill_page(mem + i * PG, i, 1);
	/* The reader may take SIGSEGV once the memory is gone: survive it. */
	sigaction(SIGBUS, NULL, &sa);
	T_EQ(sigaction(SIGSEGV, &sa, NULL), 0);

	gate_arm(0, "evict_moved", page, 0);
	api_start(&po, us, API_PAGEOUT, page, PG);
	gate_wait(0);				/* page EVICTING */
	gate_arm(1, "wait_sleep", page, 0);
	probe_start(&t, page);
	gate_wait(1);				/* handler: reference dropped, not asleep */
	gate_release(0);
	T_EQ(api_join(&po), 1);			/* eviction done, its reference gone */

	api_start(&u, us, API_UNMAP, mem, npages * PG);
	wait_in_futex(&u, "uswap_unmap to wait for the sleeper");
	T_EQ(atomic_load(&u.done), 0);		/* the entry array is still there */
	gate_release(1);
	T_EQ(api_join(&u), 0);
	int sig = probe_join(&t);
	printf("unmap vs a sleeper before its futex wait: unmap waited, returned 0; "
	       "the reader got %s\n", sig ? "SIGSEGV (memory gone)" : "its data");
	if (!sig)
		T_EQ(check_page(t.copy, idx, 1), 0);
	struct uswap_stats s = ST(us);
	T_EQ(s.stored_pages, 0);
	T_EQ(s.regions, 0);
	test_validate(us);
	signal(SIGSEGV, SIG_DFL);
}

/* ---------------------------------------------------------------- part 2 */

#define P2_PAGES 1024u
#define P2_BUSY 512u		/* readers and the evictor stay below this */
#define P2_READERS 4

static unsigned char *p2mem;
static uint64_t p2ver;
static _Atomic int p2stop, p2stop_ev;
static _Atomic uint64_t p2reads;
static _Atomic int64_t p2cur[P2_READERS];	/* page being read, -1 none */

static uint64_t xorshift(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

static void *reader_main(void *arg)
{
	unsigned k = (unsigned)(uintptr_t)arg % P2_READERS;
	uint64_t seed = (uintptr_t)arg * 0x9e3779b97f4a7c15ull + 1;

	while (!atomic_load(&p2stop)) {
		uint64_t i = xorshift(&seed) % P2_BUSY;
		atomic_store(&p2cur[k], (int64_t)i);
		size_t bad = check_page(p2mem + i * PG, i, p2ver);
		atomic_store(&p2cur[k], -1);

		if (bad)
			T_FAIL("page %llu word %zu wrong", (unsigned long long)i, bad - 1);
		atomic_fetch_add(&p2reads, 1);
	}
	return NULL;
}

static void *evicter_main(void *arg)
{
	uint64_t seed = (uintptr_t)arg + 77;

	while (!atomic_load(&p2stop_ev)) {
		uint64_t i = xorshift(&seed) % (P2_BUSY / 16);

		if (uswap_pageout(us, p2mem + i * 16 * PG, 16 * PG) < 0)
			T_FAIL("pageout failed");
	}
	return NULL;
}

static void unmap_round(unsigned round)
{
	const uint64_t x = P2_BUSY + 10 + round, y = P2_BUSY + 100 + round,
		z = P2_BUSY + 200 + round;
	pthread_t readers[P2_READERS], ev;
	struct app_op sx1, sx2, sy;
	struct api_call pz, u;

	p2mem = uswap_map(us, (size_t)P2_PAGES * PG);
	T_ASSERT(p2mem);
	p2ver = 100 + round;
	for (uint64_t i = 0; i < P2_PAGES; i++)
		fill_page(p2mem + i * PG, i, p2ver);
	T_EQ(uswap_pageout(us, p2mem, (size_t)P2_PAGES * PG), P2_PAGES);
	T_EQ(check_page(p2mem + z * PG, z, p2ver), 0);	/* z resident again */

	atomic_store(&p2stop, 0);
	atomic_store(&p2stop_ev, 0);
	atomic_store(&p2reads, 0);
	for (uintptr_t k = 0; k < P2_READERS; k++)
		T_EQ(pthread_create(&readers[k], NULL, reader_main, (void *)(k + round * 8)), 0);
	T_EQ(pthread_create(&ev, NULL, evicter_main, (void *)(uintptr_t)round), 0);
	WAIT_UNTIL(atomic_load(&p2reads) >= 2000, "the readers to make progress");

	/* The readers and the evicting thread stop touching (joined, with a
	 * bound).  They must stop before any handler is held at a gate: a
	 * handler reads fault messages in batches, and one held at a gate
	 * holds the rest of its batch too, so a reader's fault read in the
	 * same batch would wait for the gate. */
	atomic_store(&p2stop_ev, 1);
	T_EQ(pthread_join(ev, NULL), 0);
	atomic_store(&p2stop, 1);
	for (int k = 0; k < P2_READERS; k++) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += WAIT_SECS;
		if (pthread_timedjoin_np(readers[k], NULL, &ts)) {
			int64_t pgi = atomic_load(&p2cur[k]);
			uint32_t slot = 0;
			int st = pgi >= 0 ? pte_of(us, p2mem + pgi * PG, &slot) : -1;

			T_FAIL("reader %d left asleep on page %lld (state %d, payload %u)",
			       k, (long long)pgi, st, slot);
		}
	}

	/* In flight: a swap-in of x stopped after its read, a second fault
	 * on x's marker, an eviction of z stopped with z in staging, and a
	 * swap-in of y stopped after its read. */
	gate_arm(0, "swapin_read", p2mem + x * PG, 0);
	app_start(&sx1, p2mem + x * PG, 0, 0, 0);
	gate_wait(0);
	gate_arm(1, "fault_marker", p2mem + x * PG, 0);
	app_start(&sx2, p2mem + x * PG, 0, 0, 0);
	gate_wait(1);
	gate_arm(2, "evict_moved", p2mem + z * PG, 0);
	api_start(&pz, us, API_PAGEOUT, p2mem + z * PG, PG);
	gate_wait(2);
	gate_arm(3, "swapin_read", p2mem + y * PG, 0);
	app_start(&sy, p2mem + y * PG, 0, 0, 0);
	gate_wait(3);

	api_start(&u, us, API_UNMAP, p2mem, (size_t)P2_PAGES * PG);
	wait_in_futex(&u, "uswap_unmap to wait for the in-flight work");

	gate_release(0);
	gate_release(3);
	app_join(&sx1);
	app_join(&sx2);
	app_join(&sy);
	T_EQ(check_page(sx1.copy, x, p2ver), 0);
	T_EQ(check_page(sx2.copy, x, p2ver), 0);
	T_EQ(check_page(sy.copy, y, p2ver), 0);
	T_EQ(atomic_load(&u.done), 0);

	gate_release(2);
	T_EQ(api_join(&pz), 1);
	T_EQ(atomic_load(&u.done), 0);	/* the marker fault's handler */
	gate_release(1);
	T_EQ(api_join(&u), 0);

	struct uswap_stats s = ST(us);
	T_EQ(s.stored_pages, 0);
	T_EQ(s.resident_bytes, 0);
	T_EQ(s.regions, 0);
	test_validate(us);
	printf("unmap round %u: %llu reads before the unmap\n", round,
	       (unsigned long long)atomic_load(&p2reads));
}

static void test_unmap_under_load(void)
{
	unsigned rounds = 8 / test_scale();

	if (rounds < 2)
		rounds = 2;
	for (unsigned r = 0; r < rounds; r++)
		unmap_round(r);
}

int main(void)
{
	us = race_open(64 * MiB, 3, 8);
	gates_init();
	probe_install();
	T_RUN(test_unmap_during_swapin);
	T_RUN(test_unmap_sleeper_window);
	T_RUN(test_unmap_under_load);
	struct uswap_stats s = ST(us);
	printf("faults %llu swapins %llu swapouts %llu faults_marker %llu faults_unmanaged %llu\n",
	       (unsigned long long)s.faults, (unsigned long long)s.swapins,
	       (unsigned long long)s.swapouts, (unsigned long long)s.faults_marker,
	       (unsigned long long)s.faults_unmanaged);
	T_EQ(uswap_close(us), 0);
	return 0;
}

/*
 * test_stress_swapin_race.c - swap-protocol.md §5.9: the port of the
 * reproducer for the race fixed upstream in 6.8 ("mm/swap: fix race when
 * skipping swapcache"), against invariants I1-I5 as a whole.
 *
 * A 32 MiB region under a 16 MiB limit.  One thread evicts it 1 MiB at a
 * time, in a loop, for the whole run.  Before each round, word 1 of page
 * i holds i and word 0 holds 0 (the main thread checks round r and sets
 * up round r + 1 in one pass); then two pairs of workers
 * (one ascending, one descending in each pair) atomically increment word
 * 0 of every page.  After the round every counter must equal the number
 * of workers (otherwise an increment landed in a copy that was lost:
 * "data loss") and word 1 of page i must be i (otherwise a page was
 * mapped with another page's or an old copy's data: "misload").  Pages are
 * faulted in by reads of word 0 of a swapped page racing between two
 * workers, written while being evicted, dropped clean and written again,
 * every round.
 */
#include "race.h"

#define NPAGES 8192u			/* 32 MiB */
#define CHUNK_PAGES_ 256u		/* 1 MiB eviction unit */
#define WORKERS 4
#define LIMIT (16 * MiB)

static struct uswap *us;
static unsigned char *mem;
static pthread_barrier_t round_start, round_end;
static _Atomic int stop_workers, stop_evicter;
static _Atomic uint64_t pageout_calls, pageout_pages;

static _Atomic uint64_t *word(uint64_t i, unsigned w)
{
	return (_Atomic uint64_t *)(void *)(mem + i * PG + w * 8);
}

static void *worker_main(void *arg)
{
	int desc = (int)(uintptr_t)arg & 1;

	for (;;) {
		pthread_barrier_wait(&round_start);
		if (atomic_load(&stop_workers))
			break;
		for (uint64_t n = 0; n < NPAGES; n++) {
			uint64_t i = desc ? NPAGES - 1 - n : n;

			atomic_fetch_add_explicit(word(i, 0), 1, memory_order_relaxed);
		}
		pthread_barrier_wait(&round_end);
	}
	return NULL;
}

static void *evicter_main(void *arg)
{
	(void)arg;
	while (!atomic_load(&stop_evicter)) {
		for (uint64_t c = 0; c < NPAGES / CHUNK_PAGES_ && !atomic_load(&stop_evicter); c++) {
			long n = uswap_pageout(us, mem + c * CHUNK_PAGES_ * PG, CHUNK_PAGES_ * PG);

			if (n < 0)
				T_FAIL("uswap_pageout: %ld", n);
			atomic_fetch_add(&pageout_calls, 1);
			atomic_fetch_add(&pageout_pages, (uint64_t)n);
		}
	}
	return NULL;
}

int main(void)
{
	/*
	 * Rounds: 300 was the goal, but a round costs ~0.5 s on the 2-vCPU
	 * guests this runs on (each swaps the whole region in and out
	 * several times: ~35k faults at ~15-20 us a userfaultfd round trip),
	 * so 200, divided by USWAP_TEST_SCALE (TSan: 4), and halved under
	 * ASan, whose runs are not scaled.  A time budget (default 200 s,
	 * USWAP_STRESS_BUDGET) ends the loop early on a loaded machine rather
	 * than let the suite's 300 s timeout kill the test; the output says
	 * so.  USWAP_STRESS_ROUNDS overrides the count (scripts/run-tests.sh
	 * runs designs A and C with fewer rounds than the default B).
	 */
	unsigned rounds = 200 / test_scale(), budget = 200;
#ifdef __SANITIZE_ADDRESS__
	rounds /= 2;
#endif
	uint64_t loss = 0, misload = 0;
	pthread_t workers[WORKERS], ev;
	struct uswap_config c;

	if (getenv("USWAP_STRESS_ROUNDS"))
		rounds = (unsigned)atoi(getenv("USWAP_STRESS_ROUNDS"));
	if (getenv("USWAP_STRESS_BUDGET"))
		budget = (unsigned)atoi(getenv("USWAP_STRESS_BUDGET"));
	test_config(&c, LIMIT, 2);
	us = test_open(&c);
	mem = uswap_map(us, (size_t)NPAGES * PG);
	T_ASSERT(mem);
	T_EQ(pthread_barrier_init(&round_start, NULL, WORKERS + 1), 0);
	T_EQ(pthread_barrier_init(&round_end, NULL, WORKERS + 1), 0);
	for (uintptr_t k = 0; k < WORKERS; k++)
		T_EQ(pthread_create(&workers[k], NULL, worker_main, (void *)k), 0);
	T_EQ(pthread_create(&ev, NULL, evicter_main, NULL), 0);

	/* Round r: the workers increment; then one pass checks round r and
	 * sets up round r + 1 (word 1 = i, word 0 = 0), page by page. */
	uint64_t t0 = mono_ns();
	for (uint64_t i = 0; i < NPAGES; i++) {
		atomic_store_explicit(word(i, 1), i, memory_order_relaxed);
		atomic_store_explicit(word(i, 0), 0, memory_order_relaxed);
	}
	unsigned planned = rounds;
	for (unsigned r = 0; r < rounds; r++) {
		if (r + 1 < rounds && mono_ns() - t0 > budget * 1000000000ull) {
			fprintf(stderr, "stress: time budget of %u s spent: ending after round %u of %u\n",
				budget, r + 1, planned);
			rounds = r + 1;
		}
		int last = r + 1 == rounds;

		pthread_barrier_wait(&round_start);
		pthread_barrier_wait(&round_end);
		uint64_t rl = 0, rm = 0;
		for (uint64_t i = 0; i < NPAGES; i++) {
			/* Read word 1 with a write access (an RMW adding 0): an
			 * evicted page comes back dirty in one fault, ready for
			 * the reset, rather than clean and then write-faulted. */
			uint64_t w1 = atomic_fetch_add_explicit(word(i, 1), 0, memory_order_relaxed);
			uint64_t w0 = atomic_load_explicit(word(i, 0), memory_order_relaxed);

			if (w1 != i) {
				if (rm++ < 5)
					fprintf(stderr, "round %u: misload: page %llu word 1 = %llu\n",
						r, (unsigned long long)i, (unsigned long long)w1);
			} else if (w0 != WORKERS) {
				if (rl++ < 5)
					fprintf(stderr, "round %u: data loss: page %llu counter %llu\n",
						r, (unsigned long long)i, (unsigned long long)w0);
			}
			if (!last) {
				atomic_store_explicit(word(i, 1), i, memory_order_relaxed);
				atomic_store_explicit(word(i, 0), 0, memory_order_relaxed);
			}
		}
		loss += rl;
		misload += rm;
	}
	double secs = (double)(mono_ns() - t0) / 1e9;

	atomic_store(&stop_workers, 1);
	pthread_barrier_wait(&round_start);
	for (int k = 0; k < WORKERS; k++)
		T_EQ(pthread_join(workers[k], NULL), 0);
	atomic_store(&stop_evicter, 1);
	T_EQ(pthread_join(ev, NULL), 0);

	struct uswap_stats s = ST(us);
	printf("stress (%s): %u rounds in %.1f s (%.0f ms/round), %d workers, data loss %llu, misload %llu\n",
	       design_name(us), rounds, secs, rounds ? secs * 1000 / rounds : 0.0, WORKERS,
	       (unsigned long long)loss, (unsigned long long)misload);
	printf("  pageout calls %llu pages %llu | swapins %llu swapouts %llu clean_drops %llu "
	       "faults %llu faults_swapin %llu faults_marker %llu faults_evicting %llu "
	       "faults_wp %llu faults_present %llu retries %llu readahead %llu | peak %.1f MiB "
	       "over_limit %llu direct_reclaims %llu | swapin_pin_retries %llu swapin_cache_waits %llu\n",
	       (unsigned long long)pageout_calls, (unsigned long long)pageout_pages,
	       (unsigned long long)s.swapins, (unsigned long long)s.swapouts,
	       (unsigned long long)s.clean_drops, (unsigned long long)s.faults,
	       (unsigned long long)s.faults_swapin, (unsigned long long)s.faults_marker,
	       (unsigned long long)s.faults_evicting, (unsigned long long)s.faults_wp,
	       (unsigned long long)s.faults_present, (unsigned long long)s.retries,
	       (unsigned long long)s.readahead_pages, s.resident_peak_bytes / (double)MiB,
	       (unsigned long long)s.over_limit, (unsigned long long)s.direct_reclaims,
	       (unsigned long long)s.swapin_pin_retries, (unsigned long long)s.swapin_cache_waits);
	T_EQ(loss, 0);
	T_EQ(misload, 0);
	T_ASSERT(s.resident_peak_bytes <= LIMIT || s.over_limit > 0);
	test_validate(us);
	/* Everything still reads back after the storm. */
	for (uint64_t i = 0; i < NPAGES; i++) {
		T_EQ(atomic_load(word(i, 1)), i);
		T_EQ(atomic_load(word(i, 0)), WORKERS);
	}
	T_EQ(uswap_unmap(us, mem, (size_t)NPAGES * PG), 0);
	s = ST(us);
	T_EQ(s.stored_pages, 0);
	T_EQ(s.resident_bytes, 0);
	T_EQ(uswap_close(us), 0);
	return 0;
}

/*
 * test_race4_fault_during_evict.c - swap-protocol.md §5.4: a fault on a
 * page whose data is in flight to the backend gets the current data,
 * never zeros, never a stale copy.  Invariants I5 (revalidate after
 * waiting) and I10 (wait on an event: the entry's futex, not a timer).
 *
 * A helper thread evicts the page with uswap_pageout and is stopped at
 * "evict_moved": the page is in the helper's staging area, the entry
 * EVICTING.  An application thread touches the page; its handler sees
 * EVICTING and sleeps on the entry (stats: faults_evicting, retries).  On
 * release the store completes, the entry becomes SWAPPED and wakes the
 * handler, which starts over from the lookup and swaps the page in.
 *
 *  (a) the thread reads: it gets v1;
 *  (b) the thread writes v2 (missing write fault): the content is v2;
 *  (c) a write-protect fault raised on a clean page before its eviction
 *      and served during it (held at "fault" until the page is in
 *      staging): the WP handler waits on EVICTING too, then wakes the
 *      writer, whose retry is a missing fault; the content is v2.
 */
#include "race.h"

#define NPAGES 64u

static struct uswap *us;
static unsigned char *mem;

/* Stop a pageout of @page at "evict_moved" (entry EVICTING). */
static void evict_stopped(struct api_call *ev, unsigned char *page)
{
	gate_arm(0, "evict_moved", page, 0);
	api_start(ev, us, API_PAGEOUT, page, PG);
	gate_wait(0);
	T_EQ(pte_of(us, page, NULL), USWAP_T_EVICTING);
}

static void test_read_during_evict(void)
{
	const uint64_t idx = 4;
	unsigned char *page = mem + idx * PG;
	struct api_call ev;
	struct app_op t;
	uint32_t slot;

	fill_page(page, idx, 1);
	struct uswap_stats s0 = ST(us);
	evict_stopped(&ev, page);

	app_start(&t, page, 0, 0, 0);
	/* The handler sleeps on the entry once retries moves (it counts
	 * after setting WAITERS, right before the futex wait). */
	WAIT_UNTIL(ST(us).retries > s0.retries, "the fault to wait on EVICTING");
	struct uswap_stats s1 = ST(us);
	T_EQ(D(s1, s0, faults_evicting), 1);
	T_EQ(atomic_load(&t.done), 0);
	T_EQ(pte_of(us, page, NULL), USWAP_T_EVICTING);

	gate_release(0);
	T_EQ(api_join(&ev), 1);
	app_join(&t);
	T_EQ(check_page(t.copy, idx, 1), 0);

	struct uswap_stats s2 = ST(us);
	printf("read during evict: faults_evicting +%lld retries +%lld swapouts +%lld swapins +%lld\n",
	       D(s2, s0, faults_evicting), D(s2, s0, retries), D(s2, s0, swapouts),
	       D(s2, s0, swapins));
	T_ASSERT(D(s2, s0, retries) >= 1);
	T_EQ(D(s2, s0, swapouts), 1);
	T_EQ(D(s2, s0, swapins), 1);
	slot = expect_pte(us, page, USWAP_T_PRESENT);	/* clean, slot kept */
	T_ASSERT(slot != 0);
	T_EQ(check_page(page, idx, 1), 0);
	test_validate(us);
}

static void test_write_during_evict(void)
{
	const uint64_t idx = 12;
	unsigned char *page = mem + idx * PG;
	struct api_call ev;
	struct app_op t;
	uint32_t slot;

	fill_page(page, idx, 1);
	struct uswap_stats s0 = ST(us);
	evict_stopped(&ev, page);

	app_start(&t, page, 1, idx, 2);
	WAIT_UNTIL(ST(us).retries > s0.retries, "the write fault to wait on EVICTING");
	T_EQ(atomic_load(&t.done), 0);

	gate_release(0);
	T_EQ(api_join(&ev), 1);
	app_join(&t);
	T_EQ(check_page(page, idx, 2), 0);
	/* Swapped in for a write: dirty, the stored copy dropped. */
	slot = expect_pte(us, page, USWAP_T_PRESENT);
	T_EQ(slot, 0);

	struct uswap_stats s1 = ST(us);
	printf("write during evict: faults_evicting +%lld retries +%lld swapouts +%lld swapins +%lld\n",
	       D(s1, s0, faults_evicting), D(s1, s0, retries), D(s1, s0, swapouts),
	       D(s1, s0, swapins));
	T_EQ(D(s1, s0, faults_evicting), 1);
	T_ASSERT(D(s1, s0, retries) >= 1);
	T_EQ(D(s1, s0, swapouts), 1);
	T_EQ(D(s1, s0, swapins), 1);
	/* v2 really is the page: evict it and read it back. */
	T_EQ(uswap_pageout(us, page, PG), 1);
	T_EQ(check_page(page, idx, 2), 0);
	test_validate(us);
}

static void test_wp_fault_during_clean_evict(void)
{
	const uint64_t idx = 20;
	unsigned char *page = mem + idx * PG;
	struct api_call ev;
	struct app_op t;
	uint32_t slot, now;

	/* A clean page: swapped in by a read, write-protected, slot kept. */
	fill_page(page, idx, 1);
	T_EQ(uswap_pageout(us, page, PG), 1);
	T_EQ(check_page(page, idx, 1), 0);
	slot = expect_pte(us, page, USWAP_T_PRESENT);
	T_ASSERT(slot != 0);
	struct uswap_stats s0 = ST(us);

	/* The writer's WP fault message is held before the lookup. */
	gate_arm(1, "fault", page, 0);
	app_start(&t, page, 1, idx, 2);
	gate_wait(1);
	/* Meanwhile the clean page is evicted (moved out, no store). */
	evict_stopped(&ev, page);
	gate_release(1);
	WAIT_UNTIL(ST(us).retries > s0.retries, "the WP fault to wait on EVICTING");
	T_EQ(atomic_load(&t.done), 0);

	gate_release(0);
	T_EQ(api_join(&ev), 1);
	app_join(&t);
	T_EQ(check_page(page, idx, 2), 0);
	now = expect_pte(us, page, USWAP_T_PRESENT);
	T_EQ(now, 0);				/* dirty */
	WAIT_UNTIL(slot_count(us, slot) == 0, "the old copy to be freed");

	struct uswap_stats s1 = ST(us);
	printf("WP fault during clean evict: clean_drops +%lld swapouts +%lld retries +%lld "
	       "swapins +%lld faults_wp +%lld\n", D(s1, s0, clean_drops),
	       D(s1, s0, swapouts), D(s1, s0, retries), D(s1, s0, swapins),
	       D(s1, s0, faults_wp));
	T_EQ(D(s1, s0, clean_drops), 1);
	T_EQ(D(s1, s0, swapouts), 0);
	T_ASSERT(D(s1, s0, retries) >= 1);
	T_EQ(D(s1, s0, swapins), 1);
	T_EQ(uswap_pageout(us, page, PG), 1);
	T_EQ(check_page(page, idx, 2), 0);
	test_validate(us);
}

int main(void)
{
	us = race_open(64 * MiB, 2, 0);
	gates_init();
	mem = uswap_map(us, (size_t)NPAGES * PG);
	T_ASSERT(mem);
	T_RUN(test_read_during_evict);
	T_RUN(test_write_during_evict);
	T_RUN(test_wp_fault_during_clean_evict);
	T_EQ(uswap_unmap(us, mem, (size_t)NPAGES * PG), 0);
	struct uswap_stats s = ST(us);
	T_EQ(s.stored_pages, 0);
	T_EQ(s.resident_bytes, 0);
	test_validate(us);
	T_EQ(uswap_close(us), 0);
	return 0;
}

/*
 * test_race7_I7_write_after_swapin.c - swap-protocol.md §5.7, invariant I7
 * (the kept swap copy is dropped, under the chunk lock, before a written
 * page is dirty; a later eviction of a written page never trusts the old
 * copy), with I8 (written in place: our pages are never shared).
 *
 *  - A page swapped in by a read is clean: PRESENT, write-protected, its
 *    slot kept.  Evicting it again is a clean drop (no store, same slot).
 *  - The first write raises a WP fault that drops the copy (the slot is
 *    freed); the next eviction stores for real; the page reads back v2.
 *  - Forced race: the WP handler is stopped at "wp_dropped" (copy dropped
 *    under the chunk lock, page still write-protected) while a helper
 *    thread calls uswap_pageout on the page; the helper must wait for the
 *    chunk lock (observed: it sits in futex(2) and has not returned).  On
 *    release the eviction sees a dirty page and stores it: the final
 *    content is the write, whichever of the writer's retry and the
 *    eviction's move comes first.
 */
#include "race.h"

#define NPAGES 64u

static struct uswap *us;
static unsigned char *mem;

static void test_clean_drop_then_write(void)
{
	const uint64_t idx = 9;
	unsigned char *page = mem + idx * PG;
	uint32_t s, now;

	fill_page(page, idx, 1);
	struct uswap_stats s0 = ST(us);
	T_EQ(uswap_pageout(us, page, PG), 1);
	T_EQ(pte_of(us, page, &s), USWAP_T_SWAPPED);
	T_EQ(D(ST(us), s0, swapouts), 1);

	/* Swapped in by a read: clean, keeps S. */
	T_EQ(check_page(page, idx, 1), 0);
	now = expect_pte(us, page, USWAP_T_PRESENT);
	T_EQ(now, s);
	T_EQ(slot_count(us, s), 1);

	/* Evicting a clean page: no store, same slot. */
	struct uswap_stats s1 = ST(us);
	T_EQ(uswap_pageout(us, page, PG), 1);
	struct uswap_stats s2 = ST(us);
	T_EQ(pte_of(us, page, &now), USWAP_T_SWAPPED);
	T_EQ(now, s);
	T_EQ(D(s2, s1, clean_drops), 1);
	T_EQ(D(s2, s1, swapouts), 0);
	T_EQ(slot_count(us, s), 1);

	/* Read back, then write v2: the WP fault drops the copy. */
	T_EQ(check_page(page, idx, 1), 0);
	now = expect_pte(us, page, USWAP_T_PRESENT);
	T_EQ(now, s);
	struct uswap_stats s3 = ST(us);
	fill_page(page, idx, 2);
	now = expect_pte(us, page, USWAP_T_PRESENT);
	T_EQ(now, 0);
	WAIT_UNTIL(slot_count(us, s) == 0, "the written page's copy to be freed");
	struct uswap_stats s4 = ST(us);
	T_EQ(D(s4, s3, swap_copy_drops), 1);
	T_EQ(D(s4, s3, faults_wp), 1);

	/* Evict the written page: a real store, not the old copy. */
	T_EQ(uswap_pageout(us, page, PG), 1);
	struct uswap_stats s5 = ST(us);
	T_EQ(D(s5, s4, swapouts), 1);
	T_EQ(D(s5, s4, clean_drops), 0);
	T_EQ(pte_of(us, page, &now), USWAP_T_SWAPPED);
	T_EQ(check_page(page, idx, 2), 0);
	printf("clean drop: slot %u kept across a clean eviction; after the write, slot %u\n",
	       s, now);
	test_validate(us);
}

static void test_wp_vs_pageout(void)
{
	const uint64_t idx = 33;
	unsigned char *page = mem + idx * PG;
	struct api_call ev;
	struct app_op w;
	uint32_t s, now;

	fill_page(page, idx, 1);
	T_EQ(uswap_pageout(us, page, PG), 1);
	T_EQ(check_page(page, idx, 1), 0);	/* clean, keeps S */
	s = expect_pte(us, page, USWAP_T_PRESENT);
	T_ASSERT(s != 0);
	struct uswap_stats s0 = ST(us);

	/* The writer's WP fault: its handler drops the copy under the chunk
	 * lock and stops before unprotecting. */
	gate_arm(0, "wp_dropped", page, 0);
	app_start(&w, page, 1, idx, 2);
	gate_wait(0);
	T_EQ(pte_of(us, page, &now), USWAP_T_PRESENT);
	T_EQ(now, 0);				/* dirty: no copy */

	/* The eviction must wait for the chunk lock. */
	api_start(&ev, us, API_PAGEOUT, page, PG);
	wait_in_futex(&ev, "uswap_pageout to wait for the chunk lock");
	T_EQ(atomic_load(&ev.done), 0);
	T_EQ(atomic_load(&w.done), 0);

	gate_release(0);
	long n = api_join(&ev);
	app_join(&w);
	/* (The dropped copy's slot is freed after the chunk lock is let go,
	 * so the eviction's store may get the same number back: the
	 * invariant sweep below checks the counts instead.) */
	int st;
	WAIT_UNTIL((st = pte_of(us, page, &now)) == USWAP_T_SWAPPED || st == USWAP_T_PRESENT,
		   "the page to settle");
	struct uswap_stats s1 = ST(us);
	printf("WP vs pageout: pageout returned %ld, page %s after the race; "
	       "swapouts +%lld clean_drops +%lld faults_evicting +%lld\n", n,
	       st == USWAP_T_SWAPPED ? "evicted" : "resident (the writer refaulted)",
	       D(s1, s0, swapouts), D(s1, s0, clean_drops), D(s1, s0, faults_evicting));
	/* Whatever the order, the eviction stored the page: never a clean
	 * drop of the stale copy. */
	T_EQ(n, 1);
	T_EQ(D(s1, s0, clean_drops), 0);
	T_EQ(D(s1, s0, swapouts), 1);
	T_EQ(D(s1, s0, swap_copy_drops), 1);
	T_ASSERT(st == USWAP_T_SWAPPED || st == USWAP_T_PRESENT);
	if (st == USWAP_T_PRESENT) {
		/* The writer's retry faulted during the eviction and got the
		 * page back dirty: evict it once more. */
		T_EQ(now, 0);
		T_EQ(uswap_pageout(us, page, PG), 1);
	}
	T_EQ(pte_of(us, page, &now), USWAP_T_SWAPPED);
	T_EQ(check_page(page, idx, 2), 0);
	test_validate(us);
}

int main(void)
{
	us = race_open(64 * MiB, 2, 0);
	gates_init();
	mem = uswap_map(us, (size_t)NPAGES * PG);
	T_ASSERT(mem);
	T_RUN(test_clean_drop_then_write);
	for (int i = 0; i < 3; i++)
		T_RUN(test_wp_vs_pageout);
	T_EQ(uswap_unmap(us, mem, (size_t)NPAGES * PG), 0);
	struct uswap_stats s = ST(us);
	T_EQ(s.stored_pages, 0);
	T_EQ(s.resident_bytes, 0);
	test_validate(us);
	T_EQ(uswap_close(us), 0);
	return 0;
}

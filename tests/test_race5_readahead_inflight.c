/*
 * test_race5_readahead_inflight.c - swap-protocol.md §5.5: a fault on a page
 * whose readahead is in flight waits for that read (on an event: the
 * window's UFFDIO_COPY) and causes no second read.  Invariants I3 (one
 * read per swap-in) and I10 (wait on events).
 *
 * 64 sequential pages are evicted.  Reading page 0 then page 1 starts a
 * readahead window (4 pages: 2..5).  Handler A, serving the fault on page
 * 1, is stopped at "swapin_marker": the markers of 1..5 are in place,
 * nothing is read yet.  Thread B faults page 3; handler B finds the marker
 * and leaves B asleep.  A is released and stopped again at
 * "readahead_read" (page 1 committed, pages 2..5 read, not yet mapped):
 * thread A has its data, B still sleeps; thread C faults page 5 now and
 * also finds a marker.  On release one UFFDIO_COPY maps 2..5 and wakes B
 * and C.  Backend reads: exactly one per page (6 for pages 0..5).
 */
#include "race.h"

#define NPAGES 128u
#define NEVICT 64u

static struct uswap *us;
static unsigned char *mem;

static unsigned char *pg(uint64_t i)
{
	return mem + i * PG;
}

static void test_readahead_inflight(void)
{
	struct app_op a, b, c;

	/* Fill in reverse order: no first-touch stream, so the region's
	 * readahead state starts with no window (fault-around shares it). */
	for (uint64_t i = NEVICT; i-- > 0;)
		fill_page(pg(i), i, 1);
	T_EQ(uswap_pageout(us, mem, NEVICT * PG), NEVICT);
	for (uint64_t i = 0; i < NEVICT; i++)
		T_EQ(pte_of(us, pg(i), NULL), USWAP_T_SWAPPED);
	struct uswap_stats s0 = ST(us);

	/* Page 0: an isolated fault, no window. */
	T_EQ(check_page(pg(0), 0, 1), 0);
	expect_pte(us, pg(0), USWAP_T_PRESENT);
	T_EQ(pte_of(us, pg(1), NULL), USWAP_T_SWAPPED);
	struct uswap_stats s1 = ST(us);
	T_EQ(D(s1, s0, swapins), 1);
	T_EQ(D(s1, s0, readahead_pages), 0);

	/* Page 1 follows page 0: a window of 4 starts.  Stop its handler
	 * with the markers in place, before any read. */
	gate_arm(0, "swapin_marker", pg(1), 0);
	app_start(&a, pg(1), 0, 0, 0);
	gate_wait(0);
	for (uint64_t i = 1; i <= 5; i++)
		expect_inflight(us, pg(i));
	T_EQ(pte_of(us, pg(6), NULL), USWAP_T_SWAPPED);
	T_EQ(D(ST(us), s1, swapins), 0);

	/* B faults page 3, inside the window: handler B finds the marker. */
	gate_arm(1, "fault_marker", pg(3), 0);
	app_start(&b, pg(3), 0, 0, 0);
	gate_wait(1);
	gate_release(1);

	/* Let A read and commit page 1, then stop it before the window's
	 * commit: A's thread is awake, B still waits for the window. */
	gate_arm(2, "readahead_read", pg(2), 0);
	gate_release(0);
	gate_wait(2);
	app_join(&a);
	T_EQ(check_page(a.copy, 1, 1), 0);
	T_EQ(atomic_load(&b.done), 0);
	for (uint64_t i = 2; i <= 5; i++)
		expect_inflight(us, pg(i));

	/* C faults page 5 while the window is read but not mapped. */
	gate_arm(3, "fault_marker", pg(5), 0);
	app_start(&c, pg(5), 0, 0, 0);
	gate_wait(3);
	gate_release(3);
	T_EQ(atomic_load(&b.done), 0);

	gate_release(2);
	app_join(&b);
	app_join(&c);
	T_EQ(check_page(b.copy, 3, 1), 0);
	T_EQ(check_page(c.copy, 5, 1), 0);
	for (uint64_t i = 0; i <= 5; i++) {
		uint32_t slot = expect_pte(us, pg(i), USWAP_T_PRESENT);
		T_ASSERT(slot != 0);	/* clean: the copy is kept */
	}
	T_EQ(pte_of(us, pg(6), NULL), USWAP_T_SWAPPED);

	/* Pages 2 and 4 were read ahead too: touching them reads nothing. */
	T_EQ(check_page(pg(2), 2, 1), 0);
	T_EQ(check_page(pg(4), 4, 1), 0);
	WAIT_UNTIL(ST(us).faults_swapin - s0.faults_swapin >= 2, "faults_swapin");
	struct uswap_stats s2 = ST(us);
	printf("readahead in flight (%s): swapins +%lld readahead_pages +%lld slow path +%lld "
	       "faults_swapin +%lld faults +%lld\n", design_name(us), D(s2, s0, swapins),
	       D(s2, s0, readahead_pages), lost_faults(us, &s2) - lost_faults(us, &s0),
	       D(s2, s0, faults_swapin), D(s2, s0, faults));
	T_EQ(D(s2, s0, swapins), 6);		/* pages 0..5, once each */
	T_EQ(D(s2, s0, readahead_pages), 4);	/* 2..5 */
	/* B and C found the swap-in in flight; in design A a loser backs off
	 * and its thread faults again while the window is still pinned, so
	 * a slow winner counts more than once. */
	if (design(us) == USWAP_SWAPIN_PIN)
		T_ASSERT(lost_faults(us, &s2) - lost_faults(us, &s0) >= 2);
	else
		T_EQ(lost_faults(us, &s2) - lost_faults(us, &s0), 2);
	T_EQ(D(s2, s0, faults_swapin), 2);	/* pages 0 and 1 */
	test_validate(us);

	/* Everything else still reads back. */
	for (uint64_t i = 0; i < NEVICT; i++)
		T_EQ(check_page(pg(i), i, 1), 0);
	test_validate(us);
}

int main(void)
{
	us = race_open(64 * MiB, 2, 32);
	gates_init();
	mem = uswap_map(us, (size_t)NPAGES * PG);
	T_ASSERT(mem);
	T_RUN(test_readahead_inflight);
	T_EQ(uswap_unmap(us, mem, (size_t)NPAGES * PG), 0);
	struct uswap_stats s = ST(us);
	T_EQ(s.stored_pages, 0);
	T_EQ(s.resident_bytes, 0);
	test_validate(us);
	T_EQ(uswap_close(us), 0);
	return 0;
}

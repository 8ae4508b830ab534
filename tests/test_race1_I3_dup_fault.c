/*
 * test_race1_I3_dup_fault.c - swap-protocol.md §5.1, invariants I3 (one
 * authoritative copy: one backend read per swap-in) and I4 (ABA-safe
 * commit), I1 (no slot freed twice).
 *
 * (a) Two application threads fault the same swapped page.  Handler A is
 *     stopped after its read ("swapin_read"), marker in place; the second
 *     thread's message goes to handler B, which finds the marker and
 *     returns without reading.  Releasing A wakes both threads with the
 *     same, right data; the backend was read once.
 * (b) The ABA of the 6.8 race: the second fault message is held before
 *     the lookup ("fault") while the first swap-in completes; the page is
 *     then written (WP fault: the kept copy is dropped, its slot freed)
 *     and evicted again, which with a LIFO slot allocator reuses the
 *     slot number.  Only then is the stale message released.  It must act
 *     on what the entry says now: the final content is the last write,
 *     and the backend's double-free check (it aborts) never fires.
 */
#include "race.h"

#define NPAGES 64u

static struct uswap *us;
static unsigned char *mem;

static void test_dup_fault(void)
{
	const uint64_t idx = 10;
	unsigned char *page = mem + idx * PG;
	struct app_op a, b;
	uint32_t slot;

	fill_page(page, idx, 1);
	T_EQ(uswap_pageout(us, page, PG), 1);
	T_EQ(pte_of(us, page, &slot), USWAP_T_SWAPPED);
	struct uswap_stats s0 = ST(us);

	/* Thread A faults; handler A stops with the marker installed and the
	 * page read, before the commit. */
	gate_arm(0, "swapin_read", page, 0);
	app_start(&a, page, 0, 0, 0);
	gate_wait(0);
	expect_inflight(us, page);

	/* Thread B faults the same page; handler B finds the swap-in in
	 * flight (B: the marker; A: the pin; C: the in-flight map). */
	gate_arm(1, "fault_marker", page, 0);
	app_start(&b, page, 0, 0, 0);
	gate_wait(1);
	gate_release(1);
	T_EQ(atomic_load(&a.done), 0);	/* both asleep until the commit */

	gate_release(0);
	app_join(&a);
	app_join(&b);
	T_EQ(check_page(a.copy, idx, 1), 0);
	T_EQ(check_page(b.copy, idx, 1), 0);

	/* faults_swapin counts after the commit that woke the threads. */
	WAIT_UNTIL(ST(us).faults_swapin > s0.faults_swapin, "faults_swapin");
	struct uswap_stats s1 = ST(us);
	printf("dup fault (%s): swapins +%lld slow path +%lld faults +%lld\n",
	       design_name(us), D(s1, s0, swapins),
	       lost_faults(us, &s1) - lost_faults(us, &s0), D(s1, s0, faults));
	T_EQ(D(s1, s0, swapins), 1);	/* I3 in every design: the loser never reads */
	T_ASSERT(lost_faults(us, &s1) - lost_faults(us, &s0) >= 1);
	T_EQ(D(s1, s0, faults_swapin), 1);
	/* Swapped in by a read: clean, keeping its slot. */
	uint32_t now;
	now = expect_pte(us, page, USWAP_T_PRESENT);
	T_EQ(now, slot);
	T_EQ(slot_count(us, slot), 1);
	test_validate(us);
}

static void test_aba(void)
{
	const uint64_t idx = 20;
	unsigned char *page = mem + idx * PG;
	struct app_op a, b, w;
	uint32_t s1, s2, s3;

	fill_page(page, idx, 1);
	T_EQ(uswap_pageout(us, page, PG), 1);
	T_EQ(pte_of(us, page, &s1), USWAP_T_SWAPPED);
	struct uswap_stats st0 = ST(us);

	/* The first message for the page passes "fault" (skip 1) and stops
	 * at "swapin_read"; the second is held at "fault", before lookup. */
	gate_arm(0, "fault", page, 1);
	gate_arm(1, "swapin_read", page, 0);
	app_start(&a, page, 0, 0, 0);
	gate_wait(1);
	app_start(&b, page, 0, 0, 0);
	gate_wait(0);

	/* The first swap-in completes; its UFFDIO_COPY wakes both threads
	 * (the second one's message is still held). */
	gate_release(1);
	app_join(&a);
	app_join(&b);
	T_EQ(check_page(a.copy, idx, 1), 0);
	T_EQ(check_page(b.copy, idx, 1), 0);
	expect_pte(us, page, USWAP_T_PRESENT);

	/* Write: a WP fault served by the other handler drops the copy and
	 * frees s1.  Then evict again: a new store. */
	app_start(&w, page, 1, idx, 2);
	app_join(&w);
	s2 = expect_pte(us, page, USWAP_T_PRESENT);
	T_EQ(s2, 0);
	WAIT_UNTIL(slot_count(us, s1) == 0, "the WP fault to free the old slot");
	T_EQ(uswap_pageout(us, page, PG), 1);
	T_EQ(pte_of(us, page, &s3), USWAP_T_SWAPPED);
	printf("ABA: first slot %u, slot after write+evict %u (%s)\n", s1, s3,
	       s1 == s3 ? "same slot number reused" : "different slot");
	struct uswap_stats st1 = ST(us);
	T_EQ(D(st1, st0, swapins), 1);
	T_EQ(D(st1, st0, swap_copy_drops), 1);
	T_EQ(D(st1, st0, swapouts), 1);

	/* Release the stale message.  Its handler re-derives everything: the
	 * entry says SWAPPED(s3) now, so it swaps in the current data. */
	gate_release(0);
	uint32_t s4 = expect_pte(us, page, USWAP_T_PRESENT);
	T_EQ(s4, s3);	/* clean swap-in of the newest copy */
	struct uswap_stats st2 = ST(us);
	T_EQ(D(st2, st1, swapins), 1);
	T_EQ(check_page(page, idx, 2), 0);
	T_EQ(slot_count(us, s3), 1);
	test_validate(us);

	/* And the page still behaves: write, evict, read back. */
	fill_page(page, idx, 3);
	T_EQ(uswap_pageout(us, page, PG), 1);
	T_EQ(check_page(page, idx, 3), 0);
	test_validate(us);
}

int main(void)
{
	us = race_open(64 * MiB, 2, 0);
	gates_init();
	mem = uswap_map(us, (size_t)NPAGES * PG);
	T_ASSERT(mem);
	T_RUN(test_dup_fault);
	T_RUN(test_aba);
	test_validate(us);
	T_EQ(uswap_unmap(us, mem, (size_t)NPAGES * PG), 0);
	struct uswap_stats s = ST(us);
	T_EQ(s.stored_pages, 0);
	T_EQ(s.resident_bytes, 0);
	T_EQ(uswap_close(us), 0);
	return 0;
}

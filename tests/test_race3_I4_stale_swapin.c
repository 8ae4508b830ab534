/*
 * test_race3_I4_stale_swapin.c - swap-protocol.md §5.3, invariant I4
 * (ABA-safe commit: "the entry still says slot S" proves nothing), with
 * I9 and I1.
 *
 * Thread T faults page P (slot S); handler A stops after reading S.  The
 * test discards P, touches it again (zero page, served by handler B),
 * writes new content and evicts it again.  The new slot cannot be S: the
 * stale swap-in still owns S (I9), so S is not on the free list.  When A
 * is released its commit must see that its marker is gone and back out:
 * no stale page is mapped over the new one, S is freed exactly once, and
 * the page reads the newest write.
 */
#include "race.h"

#define NPAGES 64u

static struct uswap *us;
static unsigned char *mem;

static void stale_swapin(uint64_t idx, int extra_cycles)
{
	unsigned char *page = mem + idx * PG;
	struct app_op t, r;
	uint32_t s, s2;

	fill_page(page, idx, 1);
	T_EQ(uswap_pageout(us, page, PG), 1);
	T_EQ(pte_of(us, page, &s), USWAP_T_SWAPPED);
	struct uswap_stats s0 = ST(us);

	gate_arm(0, "swapin_read", page, 0);
	app_start(&t, page, 0, 0, 0);
	gate_wait(0);
	expect_inflight(us, page);

	/* Discard, then re-touch: reader R's fault goes to handler B, which
	 * maps a zero page; that install wakes T as well. */
	T_EQ(uswap_discard(us, page, PG), 0);
	app_start(&r, page, 0, 0, 0);
	app_join(&r);
	app_join(&t);
	T_ASSERT(page_is_zero(r.copy));
	T_ASSERT(page_is_zero(t.copy));	/* never the stale v1 */

	/* New content, evicted again (a real store: the page is dirty).  The
	 * stale swap-in still owns S: the store cannot get S back. */
	uint64_t ver = 2;
	fill_page(page, idx, ver);
	T_EQ(uswap_pageout(us, page, PG), 1);
	T_EQ(pte_of(us, page, &s2), USWAP_T_SWAPPED);
	printf("stale swap-in: stale slot %u, new slot %u\n", s, s2);
	T_ASSERT(s2 != s);
	T_EQ(slot_count(us, s), 1);
	/* More cycles of write + evict while the stale swap-in waits: every
	 * new store must avoid S. */
	for (int i = 0; i < extra_cycles; i++) {
		T_EQ(check_page(page, idx, ver), 0);	/* swap-in by B */
		fill_page(page, idx, ++ver);
		T_EQ(uswap_pageout(us, page, PG), 1);
		T_EQ(pte_of(us, page, &s2), USWAP_T_SWAPPED);
		T_ASSERT(s2 != s);
	}

	/* Release A: its commit finds the marker gone and backs out (frees
	 * S, wakes the range).  The handler then retries the fault message
	 * from the lookup (I5): the entry says SWAPPED(s2) now, so it swaps
	 * in the current copy, clean, keeping s2. */
	uint32_t s3;
	gate_release(0);
	WAIT_UNTIL(slot_count(us, s) == 0, "the stale swap-in to back out");
	s3 = expect_pte(us, page, USWAP_T_PRESENT);
	T_EQ(s3, s2);
	T_EQ(slot_count(us, s2), 1);
	T_EQ(check_page(page, idx, ver), 0);
	struct uswap_stats s1 = ST(us);
	printf("  discard_during_swapin +%lld swapins +%lld swapouts +%lld\n",
	       D(s1, s0, discard_during_swapin), D(s1, s0, swapins), D(s1, s0, swapouts));
	T_EQ(D(s1, s0, discard_during_swapin), 1);
	T_EQ(D(s1, s0, swapouts), 1 + extra_cycles);
	/* stale read + one per extra cycle + the retried fault's */
	T_EQ(D(s1, s0, swapins), 2 + extra_cycles);
	test_validate(us);
}

static void test_stale_swapin(void)
{
	stale_swapin(3, 0);
}

static void test_stale_swapin_many_cycles(void)
{
	stale_swapin(40, 5);
}

int main(void)
{
	us = race_open(64 * MiB, 2, 0);
	gates_init();
	mem = uswap_map(us, (size_t)NPAGES * PG);
	T_ASSERT(mem);
	T_RUN(test_stale_swapin);
	T_RUN(test_stale_swapin_many_cycles);
	T_EQ(uswap_unmap(us, mem, (size_t)NPAGES * PG), 0);
	struct uswap_stats s = ST(us);
	T_EQ(s.stored_pages, 0);
	T_EQ(s.resident_bytes, 0);
	test_validate(us);
	T_EQ(uswap_close(us), 0);
	return 0;
}

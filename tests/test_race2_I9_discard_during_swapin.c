/*
 * test_race2_I9_discard_during_swapin.c - swap-protocol.md §5.2, invariants
 * I9 (a zap never frees a slot a swap-in owns, and never leaves one without
 * an owner), I11 (the back-out frees what it took and wakes the sleepers),
 * I1 (the slot is freed exactly once).
 *
 * An application thread faults a swapped page; its handler stops after
 * the read, before the commit.  The test discards the page: the marker is
 * cleared, the slot stays allocated (the swap-in owns it).  On release the
 * commit finds its marker gone and backs out: it frees the slot and wakes
 * the thread, which faults again and reads zeros.
 */
#include "race.h"

#define NPAGES 64u

static struct uswap *us;
static unsigned char *mem;

static void discard_during_swapin(uint64_t idx, int write)
{
	unsigned char *page = mem + idx * PG;
	struct app_op t;
	uint32_t slot;

	/* First touch; its zero-fill is counted after the install that woke
	 * us, so wait for the count before taking the baseline. */
	uint64_t z = ST(us).faults_zero;
	fill_page(page, idx, 1);
	WAIT_UNTIL(ST(us).faults_zero > z, "the first touch to be counted");
	T_EQ(uswap_pageout(us, page, PG), 1);
	T_EQ(pte_of(us, page, &slot), USWAP_T_SWAPPED);
	T_EQ(slot_count(us, slot), 1);
	struct uswap_stats s0 = ST(us);

	gate_arm(0, "swapin_read", page, 0);
	app_start(&t, page, write, idx, 7);
	gate_wait(0);
	expect_inflight(us, page);

	T_EQ(uswap_discard(us, page, PG), 0);
	T_EQ(pte_of(us, page, NULL), USWAP_T_NONE);
	T_EQ(slot_count(us, slot), 1);	/* still the swap-in's (I9) */
	T_EQ(atomic_load(&t.done), 0);

	gate_release(0);
	app_join(&t);	/* not left asleep */
	if (write)
		T_EQ(check_page(page, idx, 7), 0);
	else
		T_ASSERT(page_is_zero(t.copy));
	T_ASSERT(write || page_is_zero(page));
	expect_pte(us, page, USWAP_T_PRESENT);
	WAIT_UNTIL(slot_count(us, slot) == 0, "the back-out to free the slot");

	/* faults_zero counts after the install that woke the thread. */
	WAIT_UNTIL(ST(us).faults_zero > s0.faults_zero, "faults_zero");
	struct uswap_stats s1 = ST(us);
	printf("discard during swap-in (%s): discard_during_swapin +%lld swapins +%lld "
	       "faults_zero +%lld faults +%lld\n", write ? "write" : "read",
	       D(s1, s0, discard_during_swapin), D(s1, s0, swapins),
	       D(s1, s0, faults_zero), D(s1, s0, faults));
	T_EQ(D(s1, s0, discard_during_swapin), 1);
	T_EQ(D(s1, s0, swapins), 1);
	T_EQ(D(s1, s0, faults_zero), 1);
	T_EQ(D(s1, s0, faults_swapin), 0);	/* the swap-in did not map */
	test_validate(us);

	/* The page is ordinary memory again. */
	fill_page(page, idx, 2);
	T_EQ(uswap_pageout(us, page, PG), 1);
	T_EQ(check_page(page, idx, 2), 0);
	test_validate(us);
}

static void test_read(void)
{
	discard_during_swapin(5, 0);
}

/* The same with a write fault: the commit would have mapped the page
 * dirty and freed the slot itself; backing out must do it instead. */
static void test_write(void)
{
	discard_during_swapin(9, 1);
}

int main(void)
{
	us = race_open(64 * MiB, 2, 0);
	gates_init();
	mem = uswap_map(us, (size_t)NPAGES * PG);
	T_ASSERT(mem);
	T_RUN(test_read);
	T_RUN(test_write);
	T_EQ(uswap_unmap(us, mem, (size_t)NPAGES * PG), 0);
	struct uswap_stats s = ST(us);
	T_EQ(s.stored_pages, 0);
	T_EQ(s.resident_bytes, 0);
	test_validate(us);
	T_EQ(uswap_close(us), 0);
	return 0;
}

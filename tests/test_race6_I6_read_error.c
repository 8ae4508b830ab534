/*
 * test_race6_I6_read_error.c - swap-protocol.md §5.6, invariant I6 (only
 * map complete data: a failed read never maps a page, the faulting thread
 * gets SIGBUS, nothing loops), with I1 (the unreadable slot is freed once).
 *
 * Through the fault-injecting backend (fbackend.h), loads of the page's
 * slot fail with -EIO.  A thread reading the page gets SIGBUS (not wrong
 * data, not a hang); the entry is POISON; a second access also gets
 * SIGBUS without a new read; a discard makes the page read zeros again.
 * uswap_prefetch of such a page returns -EIO and poisons it.
 */
#include "race.h"
#include "fbackend.h"

#define NPAGES 64u

static struct uswap *us;
static struct uswap_backend *fb;
static unsigned char *mem;

static void test_fault_read_error(void)
{
	const uint64_t idx = 7;
	unsigned char *page = mem + idx * PG;
	struct probe p1, p2, p3;
	struct uswap_faulty_counts fc0, fc1;
	uint32_t slot;

	fill_page(page, idx, 1);
	T_EQ(uswap_pageout(us, page, PG), 1);
	T_EQ(pte_of(us, page, &slot), USWAP_T_SWAPPED);
	struct uswap_stats s0 = ST(us);
	uswap_faulty_counts(fb, &fc0);
	uswap_faulty_fail_loads(fb, slot);

	probe_start(&p1, page);
	T_EQ(probe_join(&p1), 1);		/* SIGBUS, not data */
	expect_pte(us, page, USWAP_T_POISON);
	struct uswap_stats s1 = ST(us);
	uswap_faulty_counts(fb, &fc1);
	T_EQ(D(s1, s0, load_failures), 1);
	T_EQ(D(s1, s0, swapins), 0);
	T_EQ(fc1.load_failures - fc0.load_failures, 1);
	WAIT_UNTIL(slot_count(us, slot) == 0, "the unreadable slot to be freed");

	/* Again: the kernel raises SIGBUS from the poison marker; the backend
	 * is not asked again. */
	probe_start(&p2, page);
	T_EQ(probe_join(&p2), 1);
	uswap_faulty_counts(fb, &fc1);
	T_EQ(fc1.load_failures - fc0.load_failures, 1);
	T_EQ(D(ST(us), s0, load_failures), 1);
	T_EQ(pte_of(us, page, NULL), USWAP_T_POISON);
	test_validate(us);

	/* Discard clears the poison: zeros, then ordinary memory. */
	uswap_faulty_fail_loads(fb, USWAP_FAULTY_NONE);
	T_EQ(uswap_discard(us, page, PG), 0);
	T_EQ(pte_of(us, page, NULL), USWAP_T_NONE);
	probe_start(&p3, page);
	T_EQ(probe_join(&p3), 0);
	T_ASSERT(page_is_zero(p3.copy));
	fill_page(page, idx, 2);
	T_EQ(uswap_pageout(us, page, PG), 1);
	T_EQ(check_page(page, idx, 2), 0);
	printf("read error: load_failures +%lld, SIGBUS twice, zeros after discard\n",
	       D(ST(us), s0, load_failures));
	test_validate(us);
}

/* Two threads fault the failing page together: the second finds the
 * marker and sleeps; the poison wakes it into SIGBUS too (one read). */
static void test_two_readers_read_error(void)
{
	const uint64_t idx = 30;
	unsigned char *page = mem + idx * PG;
	struct probe p1, p2;
	uint32_t slot;

	fill_page(page, idx, 1);
	T_EQ(uswap_pageout(us, page, PG), 1);
	T_EQ(pte_of(us, page, &slot), USWAP_T_SWAPPED);
	struct uswap_stats s0 = ST(us);
	uswap_faulty_fail_loads(fb, slot);

	gate_arm(0, "swapin_marker", page, 0);
	probe_start(&p1, page);
	gate_wait(0);
	gate_arm(1, "fault_marker", page, 0);
	probe_start(&p2, page);
	gate_wait(1);
	gate_release(1);
	gate_release(0);
	T_EQ(probe_join(&p1), 1);
	T_EQ(probe_join(&p2), 1);
	expect_pte(us, page, USWAP_T_POISON);
	T_EQ(D(ST(us), s0, load_failures), 1);
	uswap_faulty_fail_loads(fb, USWAP_FAULTY_NONE);
	T_EQ(uswap_discard(us, page, PG), 0);
	T_ASSERT(page_is_zero(page));
	test_validate(us);
}

static void test_prefetch_read_error(void)
{
	const uint64_t idx = 12;
	unsigned char *page = mem + idx * PG;
	struct probe p;
	uint32_t slot;

	fill_page(page, idx, 1);
	T_EQ(uswap_pageout(us, page, PG), 1);
	T_EQ(pte_of(us, page, &slot), USWAP_T_SWAPPED);
	struct uswap_stats s0 = ST(us);
	uswap_faulty_fail_loads(fb, slot);

	T_EQ(uswap_prefetch(us, page, PG), -EIO);
	T_EQ(pte_of(us, page, NULL), USWAP_T_POISON);
	T_EQ(D(ST(us), s0, load_failures), 1);
	T_EQ(slot_count(us, slot), 0);
	probe_start(&p, page);
	T_EQ(probe_join(&p), 1);
	test_validate(us);

	uswap_faulty_fail_loads(fb, USWAP_FAULTY_NONE);
	T_EQ(uswap_discard(us, page, PG), 0);
	T_ASSERT(page_is_zero(page));
	printf("prefetch read error: -EIO, poisoned, zeros after discard\n");
	test_validate(us);
}

int main(void)
{
	struct uswap_config c;
	struct uswap_zconfig z = { .compressor = USWAP_COMP_LZ4, .lz4_accel = 1 };

	probe_install();
	test_config(&c, 64 * MiB, 2);
	c.readahead_max = 0;
	fb = uswap_faulty_backend_create(uswap_zbackend_create(&z), USWAP_FAULTY_OWN_INNER);
	T_ASSERT(fb);
	us = uswap__open_backend(&c, fb, true);
	if (!us && (errno == EPERM || errno == ENOSYS || errno == EACCES))
		T_SKIP("userfaultfd not usable: %s", strerror(errno));
	T_ASSERT(us);
	gates_init();
	mem = uswap_map(us, (size_t)NPAGES * PG);
	T_ASSERT(mem);
	T_RUN(test_fault_read_error);
	T_RUN(test_two_readers_read_error);
	T_RUN(test_prefetch_read_error);
	T_EQ(uswap_unmap(us, mem, (size_t)NPAGES * PG), 0);
	struct uswap_stats s = ST(us);
	T_EQ(s.stored_pages, 0);
	T_EQ(s.resident_bytes, 0);
	test_validate(us);
	T_EQ(uswap_close(us), 0);
	return 0;
}

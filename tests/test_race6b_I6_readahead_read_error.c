/*
 * test_race6b_I6_readahead_read_error.c - swap-protocol.md §5.5 with §5.6:
 * a read error on a readahead page while a thread waits on its marker.
 * Invariants I6 (nothing is left hanging after a failed read) and I11
 * (every abandon path wakes whoever may be waiting).
 *
 * Handler A serves a fault on page 1 that starts a readahead window
 * (pages 2..5) and is stopped with the markers in place.  Thread B faults
 * page 3; handler B finds the marker and, as for any marker, leaves B
 * asleep for the owner's UFFDIO_COPY or UFFDIO_WAKE to wake.  The load of
 * page 3's slot fails.  The readahead path puts the entry back to SWAPPED
 * (a real fault will decide), so B must be woken to fault again: its own
 * fault then fails the read and poisons the page, and B gets SIGBUS.
 * B must never stay asleep.
 */
#include "race.h"
#include "fbackend.h"

#define NPAGES 64u
#define NEVICT 16u

static struct uswap *us;
static struct uswap_backend *fb;
static unsigned char *mem;

static unsigned char *pg(uint64_t i)
{
	return mem + i * PG;
}

static void test_readahead_read_error_wakes_waiter(void)
{
	struct app_op a;
	struct probe b;
	uint32_t slot3;

	for (uint64_t i = NEVICT; i-- > 0;)	/* reverse: no stream yet */
		fill_page(pg(i), i, 1);
	T_EQ(uswap_pageout(us, mem, NEVICT * PG), NEVICT);
	T_EQ(pte_of(us, pg(3), &slot3), USWAP_T_SWAPPED);
	T_EQ(check_page(pg(0), 0, 1), 0);	/* page 0, then 1: a window */
	struct uswap_stats s0 = ST(us);
	uswap_faulty_fail_loads(fb, slot3);

	gate_arm(0, "swapin_marker", pg(1), 0);
	app_start(&a, pg(1), 0, 0, 0);
	gate_wait(0);
	expect_inflight(us, pg(3));

	gate_arm(1, "fault_marker", pg(3), 0);
	probe_start(&b, pg(3));
	gate_wait(1);
	gate_release(1);

	gate_release(0);
	app_join(&a);
	T_EQ(check_page(a.copy, 1, 1), 0);
	/* B: SIGBUS from its own failed read, or at worst the data; never
	 * asleep (probe_join fails the test after 20 s). */
	int bus = probe_join(&b);
	struct uswap_stats s1 = ST(us);
	printf("readahead read error: B %s; load_failures +%lld readahead_pages +%lld\n",
	       bus ? "got SIGBUS" : "read data", D(s1, s0, load_failures),
	       D(s1, s0, readahead_pages));
	T_EQ(bus, 1);
	expect_pte(us, pg(3), USWAP_T_POISON);
	for (uint64_t i = 2; i <= 5; i++)
		if (i != 3)
			T_EQ(check_page(pg(i), i, 1), 0);

	uswap_faulty_fail_loads(fb, USWAP_FAULTY_NONE);
	T_EQ(uswap_discard(us, pg(3), PG), 0);
	T_ASSERT(page_is_zero(pg(3)));
	test_validate(us);
}

int main(void)
{
	struct uswap_config c;
	struct uswap_zconfig z = { .compressor = USWAP_COMP_LZ4, .lz4_accel = 1 };

	probe_install();
	test_config(&c, 64 * MiB, 2);
	c.readahead_max = 32;
	fb = uswap_faulty_backend_create(uswap_zbackend_create(&z), USWAP_FAULTY_OWN_INNER);
	T_ASSERT(fb);
	us = uswap__open_backend(&c, fb, true);
	if (!us && (errno == EPERM || errno == ENOSYS || errno == EACCES))
		T_SKIP("userfaultfd not usable: %s", strerror(errno));
	T_ASSERT(us);
	gates_init();
	mem = uswap_map(us, (size_t)NPAGES * PG);
	T_ASSERT(mem);
	T_RUN(test_readahead_read_error_wakes_waiter);
	T_EQ(uswap_unmap(us, mem, (size_t)NPAGES * PG), 0);
	struct uswap_stats s = ST(us);
	T_EQ(s.stored_pages, 0);
	T_EQ(s.resident_bytes, 0);
	test_validate(us);
	T_EQ(uswap_close(us), 0);
	return 0;
}

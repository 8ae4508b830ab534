/*
 * test_race4b_I4_stale_evict.c - swap-protocol.md §5.3 applied to eviction
 * (with §5.4): discard, re-touch and re-evict a page while an older
 * eviction of it is still in flight.  Invariants I4 (commit only while the
 * entry is provably yours: "the entry still says EVICTING" proves nothing
 * once the page was discarded and evicted again), I9 (the discard leaves
 * the in-flight eviction's slot to it), I1.
 *
 * Eviction E1 of page P (content v1) is stopped after its store
 * ("evict_stored"), or before it ("evict_moved") with the store made to
 * fail.  The test discards P, writes v2 and starts eviction E2 of P, which
 * is stopped with P in its staging area (entry EVICTING again, E2's).
 * Then E1 finishes, then E2.  E1 must notice that the EVICTING entry is
 * not its own: it frees its slot (or drops its page) and leaves the entry
 * alone.  The page must read v2 afterwards, never v1.
 *
 *  (a) dirty page, E1 stored v1: E1's finish must not turn E2's entry
 *      into SWAPPED(E1's slot);
 *  (b) clean page (E1 drops it keeping its old slot): same;
 *  (c) dirty page, E1's store fails: E1's put-back must not move its
 *      stale page back over E2's eviction.
 */
#include "race.h"
#include "fbackend.h"

#define NPAGES 64u

static struct uswap *us;
static struct uswap_backend *fb;
static unsigned char *mem;

enum variant { DIRTY, CLEAN, STORE_FAILS };

static void stale_evict(uint64_t idx, enum variant v)
{
	unsigned char *page = mem + idx * PG;
	struct api_call e1, e2;
	uint32_t s;

	fill_page(page, idx, 1);
	if (v == CLEAN) {
		T_EQ(uswap_pageout(us, page, PG), 1);
		T_EQ(check_page(page, idx, 1), 0);	/* clean, slot kept */
		s = expect_pte(us, page, USWAP_T_PRESENT);
		T_ASSERT(s != 0);
	}
	struct uswap_stats s0 = ST(us);

	/* E1: stopped with P in its staging area, v1 stored (or not yet). */
	gate_arm(0, v == STORE_FAILS ? "evict_moved" : "evict_stored", page, 0);
	api_start(&e1, us, API_PAGEOUT, page, PG);
	gate_wait(0);

	/* Discard, re-touch with new content. */
	T_EQ(uswap_discard(us, page, PG), 0);
	T_EQ(pte_of(us, page, NULL), USWAP_T_NONE);
	fill_page(page, idx, 2);

	/* E2: stopped with P in its own staging area, v2 stored. */
	gate_arm(1, "evict_stored", page, 0);
	api_start(&e2, us, API_PAGEOUT, page, PG);
	gate_wait(1);
	T_EQ(pte_of(us, page, NULL), USWAP_T_EVICTING);

	/* E1 finishes first, then E2. */
	if (v == STORE_FAILS)
		T_EQ(uswap_faulty_fail_stores(fb, 1, -ENOSPC), 0);
	gate_release(0);
	long n1 = api_join(&e1);
	int mid = pte_of(us, page, NULL);
	gate_release(1);
	long n2 = api_join(&e2);
	uint32_t fin;
	int st = pte_of(us, page, &fin);
	size_t bad = check_page(page, idx, 2);
	struct uswap_stats s1 = ST(us);

	printf("stale eviction (%s): E1 returned %ld, entry after E1 %d (4 = still E2's "
	       "EVICTING), E2 returned %ld, final state %d slot %u; page reads %s; "
	       "discard_during_evict +%lld store_failures +%lld\n",
	       v == DIRTY ? "dirty" : v == CLEAN ? "clean" : "store fails", n1, mid, n2, st,
	       fin, bad ? (check_page(page, idx, 1) ? "neither v1 nor v2" : "v1 (STALE)") : "v2",
	       D(s1, s0, discard_during_evict), D(s1, s0, store_failures));
	T_EQ(mid, USWAP_T_EVICTING);	/* E1 left E2's entry alone */
	T_EQ(n2, 1);
	T_EQ(bad, 0);
	T_EQ(D(s1, s0, discard_during_evict), 1);
	test_validate(us);
}

static void test_dirty(void)
{
	stale_evict(5, DIRTY);
}

static void test_clean(void)
{
	stale_evict(15, CLEAN);
}

static void test_store_fails(void)
{
	stale_evict(25, STORE_FAILS);
}

int main(void)
{
	struct uswap_config c;
	struct uswap_zconfig z = { .compressor = USWAP_COMP_LZ4, .lz4_accel = 1 };
	const char *only = getenv("USWAP_TEST_ONLY");

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
	if (!only || !strcmp(only, "dirty"))
		T_RUN(test_dirty);
	if (!only || !strcmp(only, "clean"))
		T_RUN(test_clean);
	if (!only || !strcmp(only, "store_fails"))
		T_RUN(test_store_fails);
	T_EQ(uswap_unmap(us, mem, (size_t)NPAGES * PG), 0);
	struct uswap_stats s = ST(us);
	T_EQ(s.stored_pages, 0);
	T_EQ(s.resident_bytes, 0);
	test_validate(us);
	T_EQ(uswap_close(us), 0);
	return 0;
}

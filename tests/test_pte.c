/*
 * test_pte.c - the page-table entry: its encoding helpers (internal.h) and
 * every transition the API can drive, asserting the state after each step:
 *
 *   NONE -(read)-> PRESENT (zero, dirty) -(pageout)-> SWAPPED(S)
 *        -(read)-> PRESENT clean, keeps S -(pageout)-> SWAPPED(S), a clean drop
 *        -(read)-> PRESENT(S) -(write)-> PRESENT dirty, S freed
 *        -(pageout)-> SWAPPED(S2), a store -(write)-> PRESENT dirty
 *        -(discard)-> NONE (reads zeros)
 *
 * plus: a never-touched page reads zeros; pageout and prefetch of NONE
 * pages do nothing; discard of a SWAPPED page frees its slot; a write
 * fault on a SWAPPED page maps it dirty at once (no WP fault later).
 */
#include "race.h"
#include "internal.h"

#define NPAGES 64u

static struct uswap *us;
static unsigned char *mem;

static void test_encoding(void)
{
	static const unsigned states[] = { PTE_NONE, PTE_PRESENT, PTE_SWAPPED,
					   PTE_MARKER, PTE_EVICTING, PTE_POISON };
	static const uint32_t payloads[] = { 0, 1, 2, 12345, 0x7fffffffu, 0x80000000u,
					     0xfffffffeu, 0xffffffffu };
	static const pte_t flagsets[] = { 0, PTE_WAITERS, PTE_HAS_SLOT,
					  PTE_WAITERS | PTE_HAS_SLOT,
					  PTE_SEQ_MASK, PTE_HAS_SLOT | ((pte_t)0x12345 << PTE_SEQ_SHIFT) };

	/* The fields do not overlap. */
	T_EQ(PTE_STATE_MASK & (PTE_WAITERS | PTE_HAS_SLOT | PTE_AGE_MASK | PTE_SEQ_MASK), 0);
	T_EQ(PTE_WAITERS & (PTE_HAS_SLOT | PTE_AGE_MASK | PTE_SEQ_MASK), 0);
	T_EQ(PTE_HAS_SLOT & (PTE_AGE_MASK | PTE_SEQ_MASK), 0);
	T_EQ(PTE_AGE_MASK & PTE_SEQ_MASK, 0);
	T_EQ((PTE_STATE_MASK | PTE_WAITERS | PTE_HAS_SLOT | PTE_AGE_MASK | PTE_SEQ_MASK) >> 32, 0);
	T_ASSERT(PTE_POISON <= PTE_STATE_MASK);
	/* The futex word (low 32 bits) changes with every state change. */
	for (unsigned a = 0; a < 6; a++)
		for (unsigned b = 0; b < 6; b++)
			if (a != b)
				T_ASSERT((uint32_t)pte_make(states[a], 7, 0) !=
					 (uint32_t)pte_make(states[b], 7, 0));

	for (unsigned si = 0; si < 6; si++)
		for (unsigned pi = 0; pi < sizeof(payloads) / sizeof(payloads[0]); pi++)
			for (unsigned fi = 0; fi < sizeof(flagsets) / sizeof(flagsets[0]); fi++) {
				pte_t e = pte_make(states[si], payloads[pi], flagsets[fi]);

				T_EQ(pte_state(e), states[si]);
				T_EQ(pte_payload(e), payloads[pi]);
				T_EQ(e & (PTE_WAITERS | PTE_HAS_SLOT | PTE_SEQ_MASK), flagsets[fi]);
				T_EQ(pte_age(e), 0);
				for (unsigned age = 0; age <= AGE_MAX; age++) {
					pte_t a = pte_with_age(e, age);

					T_EQ(pte_age(a), age);
					T_EQ(pte_state(a), states[si]);
					T_EQ(pte_payload(a), payloads[pi]);
					T_EQ(a & ~PTE_AGE_MASK, e);	/* nothing else moved */
					T_EQ(pte_with_age(a, 0), e);
				}
			}
	T_EQ(AGE_MAX, 3);
	T_EQ(PTE_AGE_MASK >> PTE_AGE_SHIFT, AGE_MAX);
}

static void test_zero_page(void)
{
	unsigned char *page = mem + 2 * PG;
	uint32_t slot;

	T_EQ(pte_of(us, page, &slot), USWAP_T_NONE);
	T_EQ(slot, 0);
	/* Pageout and prefetch of an untouched page do nothing. */
	T_EQ(uswap_pageout(us, page, PG), 0);
	T_EQ(uswap_prefetch(us, page, PG), 0);
	T_EQ(pte_of(us, page, NULL), USWAP_T_NONE);
	struct uswap_stats s0 = ST(us);
	T_ASSERT(page_is_zero(page));		/* a never-touched page */
	slot = expect_pte(us, page, USWAP_T_PRESENT);
	T_EQ(slot, 0);				/* dirty: no copy */
	/* A zero page evicts (stored as a same-filled page) and comes back. */
	T_EQ(uswap_pageout(us, page, PG), 1);
	T_EQ(pte_of(us, page, &slot), USWAP_T_SWAPPED);
	T_ASSERT(slot != 0);
	T_EQ(slot_count(us, slot), 1);
	struct uswap_stats s1 = ST(us);
	T_EQ(D(s1, s0, swapouts), 1);
	T_ASSERT(page_is_zero(page));
	T_EQ(expect_pte(us, page, USWAP_T_PRESENT), slot);
	T_EQ(uswap_discard(us, page, PG), 0);
	T_EQ(pte_of(us, page, NULL), USWAP_T_NONE);
	T_EQ(slot_count(us, slot), 0);
	test_validate(us);
}

static void test_transitions(void)
{
	const uint64_t idx = 10;
	unsigned char *page = mem + idx * PG;
	uint32_t s, s2, now;

	/* NONE -(read)-> PRESENT, dirty zero page. */
	T_EQ(pte_of(us, page, NULL), USWAP_T_NONE);
	T_ASSERT(page_is_zero(page));
	T_EQ(expect_pte(us, page, USWAP_T_PRESENT), 0);
	fill_page(page, idx, 1);		/* dirty page: no fault */
	T_EQ(pte_of(us, page, &now), USWAP_T_PRESENT);
	T_EQ(now, 0);

	/* -(pageout)-> SWAPPED(S): a store. */
	struct uswap_stats a = ST(us);
	T_EQ(uswap_pageout(us, page, PG), 1);
	T_EQ(pte_of(us, page, &s), USWAP_T_SWAPPED);
	T_ASSERT(s != 0);
	T_EQ(slot_count(us, s), 1);
	struct uswap_stats b = ST(us);
	T_EQ(D(b, a, swapouts), 1);
	T_EQ(D(b, a, clean_drops), 0);
	/* pageout of a SWAPPED page does nothing */
	T_EQ(uswap_pageout(us, page, PG), 0);
	T_EQ(pte_of(us, page, &now), USWAP_T_SWAPPED);
	T_EQ(now, s);

	/* -(read)-> PRESENT clean, keeps S. */
	T_EQ(check_page(page, idx, 1), 0);
	T_EQ(expect_pte(us, page, USWAP_T_PRESENT), s);
	T_EQ(slot_count(us, s), 1);
	struct uswap_stats c = ST(us);
	T_EQ(D(c, b, swapins), 1);
	T_EQ(c.clean_cached_pages, 1);

	/* -(pageout)-> SWAPPED(S): a clean drop, no store. */
	T_EQ(uswap_pageout(us, page, PG), 1);
	T_EQ(pte_of(us, page, &now), USWAP_T_SWAPPED);
	T_EQ(now, s);
	struct uswap_stats d = ST(us);
	T_EQ(D(d, c, clean_drops), 1);
	T_EQ(D(d, c, swapouts), 0);
	T_EQ(slot_count(us, s), 1);

	/* -(read)-> PRESENT(S) -(write)-> PRESENT dirty, S freed. */
	T_EQ(check_page(page, idx, 1), 0);
	T_EQ(expect_pte(us, page, USWAP_T_PRESENT), s);
	struct uswap_stats e = ST(us);
	fill_page(page, idx, 2);
	T_EQ(pte_of(us, page, &now), USWAP_T_PRESENT);
	T_EQ(now, 0);
	WAIT_UNTIL(slot_count(us, s) == 0, "the dropped copy's slot to be freed");
	struct uswap_stats f = ST(us);
	T_EQ(D(f, e, faults_wp), 1);
	T_EQ(D(f, e, swap_copy_drops), 1);
	T_EQ(f.clean_cached_pages, 0);

	/* -(pageout)-> SWAPPED(S2): a store. */
	T_EQ(uswap_pageout(us, page, PG), 1);
	T_EQ(pte_of(us, page, &s2), USWAP_T_SWAPPED);
	T_ASSERT(s2 != 0);
	struct uswap_stats g = ST(us);
	T_EQ(D(g, f, swapouts), 1);
	T_EQ(D(g, f, clean_drops), 0);
	T_EQ(g.swapped_pages, 1);

	/* -(write)-> PRESENT dirty at once: no WP fault follows. */
	fill_page(page, idx, 3);
	T_EQ(expect_pte(us, page, USWAP_T_PRESENT), 0);
	WAIT_UNTIL(slot_count(us, s2) == 0, "the write swap-in to free its slot");
	struct uswap_stats h = ST(us);
	T_EQ(D(h, g, faults_wp), 0);
	T_EQ(D(h, g, swapins), 1);
	T_EQ(check_page(page, idx, 3), 0);

	/* -(discard)-> NONE: zeros. */
	T_EQ(uswap_discard(us, page, PG), 0);
	T_EQ(pte_of(us, page, &now), USWAP_T_NONE);
	T_EQ(now, 0);
	T_ASSERT(page_is_zero(page));
	T_EQ(expect_pte(us, page, USWAP_T_PRESENT), 0);
	test_validate(us);

	/* SWAPPED -(discard)-> NONE frees the slot at once. */
	fill_page(page, idx, 4);
	T_EQ(uswap_pageout(us, page, PG), 1);
	T_EQ(pte_of(us, page, &s), USWAP_T_SWAPPED);
	T_EQ(uswap_discard(us, page, PG), 0);
	T_EQ(pte_of(us, page, NULL), USWAP_T_NONE);
	T_EQ(slot_count(us, s), 0);
	/* PRESENT clean -(discard)-> NONE frees the kept copy too. */
	fill_page(page, idx, 5);
	T_EQ(uswap_pageout(us, page, PG), 1);
	T_EQ(pte_of(us, page, &s), USWAP_T_SWAPPED);
	T_EQ(check_page(page, idx, 5), 0);
	T_EQ(expect_pte(us, page, USWAP_T_PRESENT), s);
	T_EQ(uswap_discard(us, page, PG), 0);
	T_EQ(pte_of(us, page, NULL), USWAP_T_NONE);
	T_EQ(slot_count(us, s), 0);
	T_ASSERT(page_is_zero(page));
	test_validate(us);

	/* SWAPPED -(prefetch)-> PRESENT clean, keeps its slot. */
	fill_page(page, idx, 6);
	T_EQ(uswap_pageout(us, page, PG), 1);
	T_EQ(pte_of(us, page, &s), USWAP_T_SWAPPED);
	T_EQ(uswap_prefetch(us, page, PG), 1);
	T_EQ(pte_of(us, page, &now), USWAP_T_PRESENT);
	T_EQ(now, s);
	T_EQ(check_page(page, idx, 6), 0);
	test_validate(us);
}

/* With readahead off, a swap-in fault must not count readahead hits. */
static void test_no_readahead_counts(void)
{
	unsigned char *page = mem + 40 * PG;

	fill_page(page, 40, 1);
	T_EQ(uswap_pageout(us, page, PG), 1);
	struct uswap_stats a = ST(us);
	T_EQ(check_page(page, 40, 1), 0);
	WAIT_UNTIL(ST(us).faults_swapin > a.faults_swapin, "faults_swapin");
	struct uswap_stats b = ST(us);
	T_EQ(D(b, a, readahead_pages), 0);
	T_EQ(D(b, a, readahead_hits), 0);
}

int main(void)
{
	us = race_open(64 * MiB, 1, 0);
	mem = uswap_map(us, (size_t)NPAGES * PG);
	T_ASSERT(mem);
	T_RUN(test_encoding);
	T_RUN(test_zero_page);
	T_RUN(test_transitions);
	T_RUN(test_no_readahead_counts);
	T_EQ(uswap_unmap(us, mem, (size_t)NPAGES * PG), 0);
	struct uswap_stats s = ST(us);
	T_EQ(s.stored_pages, 0);
	T_EQ(s.resident_bytes, 0);
	T_EQ(uswap_close(us), 0);
	return 0;
}

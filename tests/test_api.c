/*
 * test_api.c - every API call, end to end: write, evict, read back, verify
 * under a tight limit; discard, pageout, prefetch, set_limit, stats; and the
 * errors of misuse (-EINVAL).
 */
#include <sys/mman.h>

#include "util.h"

#define NPAGES 4096u		/* 16 MiB region */
#define LIMIT (4u << 20)	/* 4 MiB resident */

static struct uswap *us;
static unsigned char *mem;

static void write_all(uint64_t ver)
{
	for (uint64_t i = 0; i < NPAGES; i++)
		fill_page(mem + i * PG, i, ver);
}

static void check_all(uint64_t ver)
{
	for (uint64_t i = 0; i < NPAGES; i++) {
		size_t bad = check_page(mem + i * PG, i, ver);

		if (bad)
			T_FAIL("page %llu word %zu wrong", (unsigned long long)i, bad - 1);
	}
}

static void test_write_evict_read(void)
{
	write_all(1);
	struct uswap_stats s = test_stats(us);
	T_ASSERT(s.resident_peak_bytes <= LIMIT);
	T_ASSERT(s.swapouts > 0);
	check_all(1);
	check_all(1);
	s = test_stats(us);
	T_ASSERT(s.swapins > 0);
	T_ASSERT(s.resident_peak_bytes <= LIMIT);
	printf("write/evict/read: swapouts %llu swapins %llu readahead %llu hits %llu clean drops %llu\n",
	       (unsigned long long)s.swapouts, (unsigned long long)s.swapins,
	       (unsigned long long)s.readahead_pages, (unsigned long long)s.readahead_hits,
	       (unsigned long long)s.clean_drops);
	test_validate(us);
}

static void test_pageout_prefetch(void)
{
	/* Evict the first 256 pages explicitly, then bring them back. */
	long n = uswap_pageout(us, mem, 256 * PG);
	T_ASSERT(n >= 0);
	for (unsigned i = 0; i < 256; i++) {
		int st = uswap__pte_state(us, mem + i * PG, NULL);
		T_ASSERT(st == USWAP_T_SWAPPED || st == USWAP_T_NONE);
	}
	test_validate(us);
	long p = uswap_prefetch(us, mem, 256 * PG);
	T_ASSERT(p > 0);
	T_EQ(uswap__pte_state(us, mem, NULL), USWAP_T_PRESENT);
	check_all(1);
	test_validate(us);
}

static void test_discard(void)
{
	/* Discard a range that mixes resident and swapped pages. */
	uswap_pageout(us, mem + 100 * PG, 50 * PG);
	T_EQ(uswap_discard(us, mem + 64 * PG, 128 * PG), 0);
	for (unsigned i = 64; i < 192; i++)
		T_EQ(uswap__pte_state(us, mem + i * PG, NULL), USWAP_T_NONE);
	for (unsigned i = 64; i < 192; i++)
		T_ASSERT(page_is_zero(mem + i * PG));
	test_validate(us);
	/* The zeros are real memory: write again and read back. */
	for (uint64_t i = 64; i < 192; i++)
		fill_page(mem + i * PG, i, 1);
	check_all(1);
	test_validate(us);
}

static void test_set_limit(void)
{
	T_EQ(uswap_set_limit(us, 1u << 20), 0);
	struct uswap_stats s = test_stats(us);
	T_ASSERT(s.resident_bytes <= (1u << 20));
	check_all(1);
	s = test_stats(us);
	T_ASSERT(s.resident_bytes <= (1u << 20));
	T_EQ(uswap_set_limit(us, LIMIT), 0);
	T_EQ(uswap_set_limit(us, 4096), -EINVAL);
	test_validate(us);
}

static void test_misuse(void)
{
	char local[PG];
	T_EQ(uswap_discard(us, mem + 1, PG), -EINVAL);
	T_EQ(uswap_discard(us, mem, 100), -EINVAL);
	T_EQ(uswap_discard(us, local, PG), -EINVAL);
	T_EQ(uswap_discard(us, mem, (NPAGES + 1) * PG), -EINVAL);
	T_EQ(uswap_pageout(us, mem + 3, PG), -EINVAL);
	T_EQ(uswap_prefetch(us, mem, 0), -EINVAL);
	T_EQ(uswap_unmap(us, mem + PG, NPAGES * PG), -EINVAL);
	T_EQ(uswap_unmap(us, mem, PG), -EINVAL);
	errno = 0;
	T_ASSERT(uswap_map(us, 0) == NULL && errno == EINVAL);
}

static void test_many_regions(void)
{
	void *r[16];

	for (int i = 0; i < 16; i++) {
		r[i] = uswap_map(us, (size_t)(i + 1) * 37 * PG);
		T_ASSERT(r[i]);
		for (int k = 0; k < (i + 1) * 37; k++)
			fill_page((char *)r[i] + (size_t)k * PG, (uint64_t)k, (uint64_t)i + 10);
	}
	check_all(1);	/* pushes the small regions out */
	for (int i = 0; i < 16; i++) {
		for (int k = 0; k < (i + 1) * 37; k++)
			T_EQ(check_page((char *)r[i] + (size_t)k * PG, (uint64_t)k, (uint64_t)i + 10), 0);
		T_EQ(uswap_unmap(us, r[i], (size_t)(i + 1) * 37 * PG), 0);
	}
	test_validate(us);
}

int main(void)
{
	struct uswap_config c;

	test_config(&c, LIMIT, 1);
	us = test_open(&c);
	mem = uswap_map(us, (size_t)NPAGES * PG);
	T_ASSERT(mem);
	T_EQ((uintptr_t)mem % PG, 0);
	T_RUN(test_write_evict_read);
	T_RUN(test_pageout_prefetch);
	T_RUN(test_discard);
	T_RUN(test_set_limit);
	T_RUN(test_misuse);
	T_RUN(test_many_regions);
	struct uswap_stats s = test_stats(us);
	uswap_stats_print(&s, stdout);
	T_EQ(uswap_unmap(us, mem, (size_t)NPAGES * PG), 0);
	s = test_stats(us);
	T_EQ(s.stored_pages, 0);
	T_EQ(s.resident_bytes, 0);
	T_EQ(uswap_close(us), 0);
	return 0;
}

/*
 * test_manage.c - the engine operations the LD_PRELOAD shim uses
 * (src/manage.c): releasing part of a region (munmap), with pages in every
 * state and against a swap-in and an eviction in flight; handing a range
 * over to a MAP_FIXED mapping; releasing a whole region piecewise;
 * unmanaging a region; the touched-pages copy; the lookups.  The quiescent
 * invariants (no slot leaked, resident exact, released counters right) are
 * checked after each.
 */
#include <setjmp.h>
#include <signal.h>
#include <sys/mman.h>

#include "util.h"
#include "manage.h"

#define NPAGES 2048u		/* 8 MiB region: 4 chunks */
#define LIMIT (2u << 20)

static struct uswap *us;

static unsigned char *map_filled(uint64_t ver)
{
	unsigned char *p = uswap_map(us, (size_t)NPAGES * PG);

	T_ASSERT(p);
	for (uint64_t i = 0; i < NPAGES; i++)
		fill_page(p + i * PG, i, ver);
	return p;
}

static void check_range(unsigned char *p, uint64_t from, uint64_t to, uint64_t ver)
{
	for (uint64_t i = from; i < to; i++)
		if (check_page(p + i * PG, i, ver))
			T_FAIL("page %llu wrong", (unsigned long long)i);
}

static sigjmp_buf probe_env;
static void probe_segv(int sig) { siglongjmp(probe_env, sig); }

static int faults(const void *p)
{
	struct sigaction sa = { .sa_handler = probe_segv }, old;
	volatile int hit = 0;

	sigaction(SIGSEGV, &sa, &old);
	if (sigsetjmp(probe_env, 1) == 0)
		(void)*(volatile const unsigned char *)p;
	else
		hit = 1;
	sigaction(SIGSEGV, &old, NULL);
	return hit;
}

/* Pages in every state, then release a range crossing chunks. */
static void test_release_states(void)
{
	unsigned char *p = map_filled(1);
	size_t run;
	int id;

	/* clean pages (read after eviction), swapped, dirty, discarded */
	uswap_pageout(us, p, (size_t)NPAGES * PG);
	check_range(p, 300, 700, 1);
	uswap_discard(us, p + 800 * PG, 16 * PG);
	fill_page(p + 900 * PG, 900, 2);
	T_EQ(uswap__release(us, p + 256 * PG, 768 * PG), 0);
	test_validate(us);
	T_EQ(uswap__kind(us, (uintptr_t)p, (size_t)NPAGES * PG, &run, &id), USWAP_MANAGED);
	T_EQ(run, 256 * PG);
	T_EQ(uswap__kind(us, (uintptr_t)p + 256 * PG, (size_t)(NPAGES - 256) * PG, &run, &id),
	     USWAP_RESERVED);
	T_EQ(run, 768 * PG);
	T_EQ(uswap__managed(us, p + 300 * PG), -1);
	T_ASSERT(uswap__managed(us, p + 1024 * PG) >= 0);
	T_ASSERT(faults(p + 256 * PG) && faults(p + 1023 * PG));
	check_range(p, 0, 256, 1);
	check_range(p, 1024, NPAGES, 1);
	/* releasing again is a no-op; the region is unmapped whole */
	T_EQ(uswap__release(us, p + 256 * PG, 768 * PG), 0);
	test_validate(us);
	T_EQ(uswap_unmap(us, p, (size_t)NPAGES * PG), 0);
	test_validate(us);
	T_EQ(test_stats(us).resident_bytes, 0);
}

/* A region released piece by piece goes away with its last piece. */
static void test_release_all(void)
{
	unsigned char *p = map_filled(3);

	T_EQ(test_stats(us).regions, 1);
	T_EQ(uswap__release(us, p + 1000 * PG, (NPAGES - 1000) * PG), 0);
	T_EQ(uswap__release(us, p, 1000 * PG), 0);
	T_EQ(test_stats(us).regions, 0);
	T_EQ(uswap__managed(us, p), -1);
	test_validate(us);
	/* all of it is unmapped now: a fresh mapping may take the address */
	unsigned char *q = mmap(p, PG, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	T_ASSERT(q == p);
	munmap(q, PG);
}

/* A range handed over to the program's MAP_FIXED mapping is never unmapped
 * by uswap, even when the region goes. */
static void test_replace(void)
{
	unsigned char *p = map_filled(4);
	size_t run;
	int id;

	T_EQ(uswap__replace(us, p + 512 * PG, 16 * PG), 0);
	unsigned char *q = mmap(p + 512 * PG, 16 * PG, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	T_ASSERT(q == p + 512 * PG);
	memset(q, 0x77, 16 * PG);
	T_EQ(uswap__kind(us, (uintptr_t)q, 16 * PG, &run, &id), USWAP_FOREIGN);
	T_EQ(run, 16 * PG);
	test_validate(us);
	T_EQ(uswap_unmap(us, p, (size_t)NPAGES * PG), 0);
	T_EQ(q[5 * PG], 0x77);		/* still the program's */
	test_validate(us);
	munmap(q, 16 * PG);
}

/*
 * A release whose reservation fails part-way (mmap ENOMEM, as at
 * vm.max_map_count): what was reserved is released, the rest stays managed
 * with its data, entries and mappings in step; the error comes back; a
 * second release finishes the job.
 */
static void test_release_fails(void)
{
	unsigned char *p = map_filled(6);
	size_t run;
	int id;

	/* Two runs to reserve: [0, 10) and [12, 20), page 10-11 given away. */
	T_EQ(uswap__replace(us, p + 10 * PG, 2 * PG), 0);
	unsigned char *q = mmap(p + 10 * PG, 2 * PG, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	T_ASSERT(q == p + 10 * PG);
	T_ASSERT(uswap_pageout(us, p + 12 * PG, 4 * PG) >= 0);	/* some swapped */
	atomic_store(&uswap__fail_reserve_at, 2);		/* the second run fails */
	T_EQ(uswap__release(us, p, 20 * PG), -ENOMEM);
	atomic_store(&uswap__fail_reserve_at, 0);
	T_EQ(uswap__kind(us, (uintptr_t)p, 10 * PG, &run, &id), USWAP_RESERVED);
	T_EQ(run, 10 * PG);
	T_EQ(uswap__kind(us, (uintptr_t)(p + 12 * PG), 8 * PG, &run, &id), USWAP_MANAGED);
	T_EQ(run, 8 * PG);
	T_ASSERT(faults(p + 3 * PG));
	check_range(p, 12, NPAGES, 6);				/* nothing lost */
	test_validate(us);
	check_range(p, 12, 20, 6);				/* resident again */
	T_EQ(uswap_pageout(us, p + 12 * PG, 8 * PG), 8);	/* and evictable */
	T_EQ(uswap__release(us, p, 20 * PG), 0);
	T_EQ(uswap__kind(us, (uintptr_t)(p + 12 * PG), 8 * PG, &run, &id), USWAP_RESERVED);
	check_range(p, 20, NPAGES, 6);
	test_validate(us);
	T_EQ(uswap_unmap(us, p, (size_t)NPAGES * PG), 0);
	munmap(q, 2 * PG);
	test_validate(us);
	printf("release failing part-way: -ENOMEM, 10 pages released, 8 kept with their data; "
	       "released on the second try\n");
}

/* Release against a swap-in (prefetch) and an eviction (pageout) in
 * flight: the owners back out and free their slots (I9, I11). */
struct api_op {
	pthread_t th;
	void *addr;
	int pageout;
};

static void *api_op_main(void *arg)
{
	struct api_op *op = arg;

	if (op->pageout)
		uswap_pageout(us, op->addr, 64 * PG);
	else
		uswap_prefetch(us, op->addr, 64 * PG);
	return NULL;
}

static void test_release_inflight(void)
{
	unsigned char *p = map_filled(5);
	struct api_op op = { .addr = p + 64 * PG };

	uswap_pageout(us, p, (size_t)NPAGES * PG);
	gate_arm(0, "swapin_read", p + 64 * PG, 0);
	pthread_create(&op.th, NULL, api_op_main, &op);
	gate_wait(0);
	T_EQ(uswap__release(us, p, 256 * PG), 0);	/* clears the markers */
	gate_release(0);
	pthread_join(op.th, NULL);
	test_validate(us);

	check_range(p, 512, 600, 5);			/* resident again */
	op.addr = p + 512 * PG;
	op.pageout = 1;
	gate_arm(0, "evict_moved", NULL, 0);
	pthread_create(&op.th, NULL, api_op_main, &op);
	gate_wait(0);
	T_EQ(uswap__release(us, p + 512 * PG, 64 * PG), 0);
	gate_release(0);
	pthread_join(op.th, NULL);
	test_validate(us);
	check_range(p, 1024, NPAGES, 5);
	T_EQ(uswap_unmap(us, p, (size_t)NPAGES * PG), 0);
	test_validate(us);
}

/* Unmanage: every page back in, whatever the limit; the memory stays
 * plain, with its contents; reservations unmapped, given ranges kept. */
static void test_unmanage(void)
{
	unsigned char *p = map_filled(6);
	unsigned char *q;

	uswap_pageout(us, p, (size_t)NPAGES * PG);	/* swapped */
	check_range(p, 0, 100, 6);			/* clean */
	fill_page(p + 200 * PG, 200, 7);		/* dirty */
	uswap_discard(us, p + 300 * PG, 10 * PG);	/* none */
	T_EQ(uswap__release(us, p + 400 * PG, 50 * PG), 0);
	T_EQ(uswap__replace(us, p + 500 * PG, 10 * PG), 0);
	q = mmap(p + 500 * PG, 10 * PG, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	T_ASSERT(q == p + 500 * PG);
	T_EQ(uswap__unmanage(us, p + 1000 * PG, PG), 0);
	T_EQ(test_stats(us).regions, 0);
	T_EQ(test_stats(us).resident_bytes, 0);
	test_validate(us);				/* no slot left behind */
	T_EQ(uswap__managed(us, p), -1);
	check_range(p, 0, 200, 6);
	check_range(p, 200, 201, 7);
	check_range(p, 201, 300, 6);
	T_ASSERT(page_is_zero(p + 305 * PG));
	check_range(p, 310, 400, 6);
	check_range(p, 450, 500, 6);
	check_range(p, 510, NPAGES, 6);
	fill_page(p + 1500 * PG, 1500, 8);		/* plain memory now */
	check_range(p, 1500, 1501, 8);
	/* the reservation is gone: the address is free again */
	unsigned char *r = mmap(p + 400 * PG, 50 * PG, PROT_READ,
				MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	T_ASSERT(r == p + 400 * PG);
	munmap(p, (size_t)NPAGES * PG);
}

/* The copy for realloc/mremap: touched pages copied, untouched skipped. */
static void test_copy(void)
{
	unsigned char *p = uswap_map(us, (size_t)NPAGES * PG);
	unsigned char *q = uswap_map(us, (size_t)NPAGES * PG);

	for (uint64_t i = 0; i < NPAGES; i += 3)
		fill_page(p + i * PG, i, 9);
	uswap_pageout(us, p, (size_t)NPAGES / 2 * PG);
	uswap__copy(us, q, p, (size_t)NPAGES * PG);
	for (uint64_t i = 0; i < NPAGES; i++) {
		if (i % 3 == 0)
			check_range(q, i, i + 1, 9);
		else if (!page_is_zero(q + i * PG))
			T_FAIL("page %llu not zero", (unsigned long long)i);
	}
	uswap_unmap(us, p, (size_t)NPAGES * PG);
	uswap_unmap(us, q, (size_t)NPAGES * PG);
	test_validate(us);
}

int main(void)
{
	struct uswap_config c;

	test_config(&c, LIMIT, 1);
	us = test_open(&c);
	gates_init();
	T_RUN(test_release_states);
	T_RUN(test_release_all);
	T_RUN(test_replace);
	T_RUN(test_release_fails);
	T_RUN(test_release_inflight);
	T_RUN(test_unmanage);
	T_RUN(test_copy);
	uswap_close(us);
	printf("test_manage: ok\n");
	return 0;
}

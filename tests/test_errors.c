/*
 * test_errors.c - the backend cannot store: pages stay resident, nothing is
 * lost, the overrun shows in the stats and once on stderr.  Stores failing
 * on command (ENOMEM) through the fault-injecting backend, the same.
 */
#include <fcntl.h>

#include "util.h"
#include "fbackend.h"

#define NPAGES 2048u

static uint64_t rnd_state = 88172645463325252ull;

static void fill_random(unsigned char *p, uint64_t idx)
{
	uint64_t *w = (uint64_t *)p;

	for (unsigned i = 0; i < PG / 8; i++) {
		rnd_state ^= rnd_state << 13;
		rnd_state ^= rnd_state >> 7;
		rnd_state ^= rnd_state << 17;
		w[i] = rnd_state;
	}
	w[0] = idx;
}

static void test_pool_cap(void)
{
	struct uswap_config c;
	static unsigned char copy[NPAGES][64];
	char path[] = "/tmp/uswap-errXXXXXX";
	int fd = mkstemp(path), saved = dup(2);

	T_ASSERT(fd >= 0 && saved >= 0);
	unlink(path);
	dup2(fd, 2);		/* capture the engine's stderr */

	test_config(&c, 1u << 20, 1);
	c.pool_cap = 2u << 20;
	struct uswap *us = test_open(&c);
	unsigned char *m = uswap_map(us, (size_t)NPAGES * PG);
	T_ASSERT(m);
	for (uint64_t i = 0; i < NPAGES; i++) {
		fill_random(m + i * PG, i);		/* incompressible: stored raw */
		memcpy(copy[i], m + i * PG, 64);
	}
	for (uint64_t i = 0; i < NPAGES; i++)
		if (memcmp(copy[i], m + i * PG, 64))
			T_FAIL("page %llu lost", (unsigned long long)i);
	struct uswap_stats s = test_stats(us);
	dup2(saved, 2);
	printf("pool cap 2 MiB: store_failures %llu over_limit %llu pool %.1f MiB resident peak %.1f MiB\n",
	       (unsigned long long)s.store_failures, (unsigned long long)s.over_limit,
	       s.pool_bytes / 1048576.0, s.resident_peak_bytes / 1048576.0);
	T_ASSERT(s.store_failures > 0);
	T_ASSERT(s.pool_bytes <= c.pool_cap);
	T_ASSERT(s.raw_pages_stored > 0);
	test_validate(us);

	char log[4096] = "";
	lseek(fd, 0, SEEK_SET);
	ssize_t n = read(fd, log, sizeof(log) - 1);
	T_ASSERT(n > 0);
	log[n] = 0;
	char *first = strstr(log, "backend cannot store");
	T_ASSERT(first);
	T_ASSERT(!strstr(first + 1, "backend cannot store"));	/* once */
	close(fd);
	T_EQ(uswap_unmap(us, m, (size_t)NPAGES * PG), 0);
	uswap_close(us);
}

static void test_store_enomem(void)
{
	struct uswap_config c;
	struct uswap_zconfig z = { .compressor = USWAP_COMP_LZ4, .lz4_accel = 1 };

	test_config(&c, 64u << 20, 1);
	struct uswap_backend *fb = uswap_faulty_backend_create(uswap_zbackend_create(&z),
							       USWAP_FAULTY_OWN_INNER);
	T_ASSERT(fb);
	struct uswap *us = uswap__open_backend(&c, fb, true);
	if (!us)
		T_SKIP("userfaultfd not usable: %s", strerror(errno));
	unsigned char *m = uswap_map(us, 256 * PG);
	for (uint64_t i = 0; i < 256; i++)
		fill_page(m + i * PG, i, 7);
	uswap_faulty_fail_stores(fb, 10, -ENOMEM);
	long n = uswap_pageout(us, m, 256 * PG);
	T_EQ(n, 246);
	struct uswap_stats s = test_stats(us);
	T_EQ(s.store_failures, 10);
	T_EQ(s.resident_bytes, 10 * PG);
	for (uint64_t i = 0; i < 256; i++)
		T_EQ(check_page(m + i * PG, i, 7), 0);
	test_validate(us);
	uswap_unmap(us, m, 256 * PG);
	uswap_close(us);
}

int main(void)
{
	T_RUN(test_pool_cap);
	T_RUN(test_store_enomem);
	return 0;
}

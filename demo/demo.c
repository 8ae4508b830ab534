/*
 * demo.c - uswap end to end: a region larger than the resident limit,
 * written and read in a few access patterns, every byte verified.
 *
 *   build/release/demo [--size 1G] [--limit L] [--ops N] [--seed S]
 *
 * The engine comes from uswap_config_init(), so the USWAP_* environment
 * variables apply (USWAP_LIMIT defaults to 256M); --limit overrides it.
 * Phases:
 *   1. populate      write every page in order (version 1)
 *   2. seq read      read every page in order, verify each fully
 *   3. random read   N uniform reads, verify each fully
 *   4. zipf mix      N Zipf(0.99) accesses: 90% reads (verified), 10%
 *                    writes that bump the page's version
 *   5. verify        every byte of every page against its latest version
 * The expected version of each page lives in malloc'ed memory, outside
 * the managed region.
 *
 * Exit status: 0 all data correct and the resident peak within the limit;
 * 1 a mismatch, a poisoned page (SIGBUS) or the peak above the limit;
 * 2 bad usage or the engine could not be set up.
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "uswap.h"
#include "workload.h"

#define MiB (1024.0 * 1024.0)
#define MAX_REPORTS 10		/* mismatches described in detail */

static struct uswap *us;
static unsigned char *arena;
static size_t npages;
static uint64_t seed = 1;
static uint32_t *version;	/* expected version per page; 0 = never written */
static uint64_t nbad;		/* pages that failed a check */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: demo [--size SIZE] [--limit SIZE] [--ops N] [--seed S]\n"
		"  --size SIZE   managed region (default 1G; K/M/G suffixes)\n"
		"  --limit SIZE  resident limit (default: USWAP_LIMIT or 256M)\n"
		"  --ops N       accesses of the random and zipf phases\n"
		"                (default: one per page)\n"
		"  --seed S      content and access seed (default 1)\n"
		"A bare SIZE argument is taken as --size.  Other settings come\n"
		"from the USWAP_* environment variables (see uswap.h).\n");
}

/* A poisoned page (backend read error) or a fault the engine refused. */
static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	char msg[160];
	uintptr_t a = (uintptr_t)si->si_addr, b = (uintptr_t)arena;
	int n;

	(void)sig;
	(void)uc;
	if (a >= b && a < b + npages * WL_PAGE_SIZE)
		n = snprintf(msg, sizeof(msg),
			     "demo: FAIL: SIGBUS at %p: page %zu of the region "
			     "(poisoned: the backend could not read it)\n",
			     si->si_addr, (size_t)((a - b) / WL_PAGE_SIZE));
	else
		n = snprintf(msg, sizeof(msg), "demo: FAIL: SIGBUS at %p\n",
			     si->si_addr);
	if (n > 0)
		(void)!write(2, msg, (size_t)n);
	_exit(1);
}

static void get_stats(struct uswap_stats *st)
{
	int rc = uswap_stats(us, st);

	if (rc) {
		fprintf(stderr, "demo: uswap_stats: %s\n", strerror(-rc));
		exit(1);
	}
}

static inline unsigned char *page_at(size_t i)
{
	return arena + i * WL_PAGE_SIZE;
}

/* Verify page @i fully against its expected version. */
static inline void verify(const char *phase, size_t i)
{
	size_t bad = wl_check_page(page_at(i), i, version[i], seed);

	if (bad) {
		if (nbad < MAX_REPORTS)
			wl_report_bad(stderr, phase, page_at(i), i, version[i],
				      seed, bad);
		nbad++;
	}
}

static inline void write_page(size_t i)
{
	version[i]++;
	wl_fill_page(page_at(i), i, version[i], seed);
}

struct phase {
	const char *name;
	uint64_t t0;
	struct uswap_stats st0;
};

static void phase_begin(struct phase *ph, const char *name)
{
	ph->name = name;
	get_stats(&ph->st0);
	ph->t0 = wl_now_ns();
}

static void phase_end(struct phase *ph, uint64_t pages)
{
	uint64_t t1 = wl_now_ns();
	struct uswap_stats st;
	double s = (double)(t1 - ph->t0) / 1e9;

	get_stats(&st);
	printf("%-13s %9llu pages %8.3f s %10.0f pages/s  swap-ins %9llu  "
	       "swap-outs %9llu\n",
	       ph->name, (unsigned long long)pages, s,
	       s > 0 ? (double)pages / s : 0.0,
	       (unsigned long long)(st.swapins - ph->st0.swapins),
	       (unsigned long long)(st.swapouts - ph->st0.swapouts));
	fflush(stdout);
	if (nbad) {
		fprintf(stderr, "demo: FAIL: %llu bad pages in phase %s\n",
			(unsigned long long)nbad, ph->name);
		uswap_stats_print(&st, stderr);
		exit(1);
	}
}

int main(int argc, char **argv)
{
	size_t size = (size_t)1 << 30, limit = 0;
	uint64_t ops = 0;
	struct uswap_config cfg;
	struct uswap_stats st;
	struct sigaction sa;
	struct wl_zipf zipf;
	struct wl_rng rng;
	struct phase ph;
	char err[256];
	size_t i;
	uint64_t n;
	int rc;

	for (int a = 1; a < argc; a++) {
		const char *opt = argv[a], *val = a + 1 < argc ? argv[a + 1] : NULL;

		if (!strcmp(opt, "-h") || !strcmp(opt, "--help")) {
			usage(stdout);
			return 0;
		} else if (!strcmp(opt, "--size") && val) {
			if (wl_parse_size(val, &size))
				goto bad_arg;
			a++;
		} else if (!strcmp(opt, "--limit") && val) {
			if (wl_parse_size(val, &limit))
				goto bad_arg;
			a++;
		} else if (!strcmp(opt, "--ops") && val) {
			char *end;
			ops = strtoull(val, &end, 10);
			if (*end || end == val)
				goto bad_arg;
			a++;
		} else if (!strcmp(opt, "--seed") && val) {
			seed = strtoull(val, NULL, 0);
			a++;
		} else if (opt[0] != '-' && !wl_parse_size(opt, &size)) {
			/* bare size */
		} else {
			fprintf(stderr, "demo: bad argument '%s'\n", opt);
			usage(stderr);
			return 2;
		}
		continue;
bad_arg:
		fprintf(stderr, "demo: bad value '%s' for %s\n", val, opt);
		return 2;
	}
	if (sysconf(_SC_PAGESIZE) != WL_PAGE_SIZE) {
		fprintf(stderr, "demo: needs 4 KiB pages (this system: %ld)\n",
			sysconf(_SC_PAGESIZE));
		return 2;
	}
	npages = size / WL_PAGE_SIZE;
	if (npages < 16) {
		fprintf(stderr, "demo: --size must be at least 64K\n");
		return 2;
	}
	size = npages * WL_PAGE_SIZE;
	if (!ops)
		ops = npages;

	rc = uswap_config_init(&cfg, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "demo: configuration: %s\n", err);
		return 2;
	}
	if (limit)
		cfg.limit = limit;
	rc = uswap_config_check(&cfg, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "demo: configuration: %s\n", err);
		return 2;
	}
	us = uswap_open(&cfg);
	if (!us) {
		int e = errno;

		fprintf(stderr, "demo: uswap_open failed: %s\n", strerror(e));
		if (e == EPERM || e == EACCES || e == ENOSYS)
			fprintf(stderr,
				"demo: uswap needs userfaultfd: run as root, "
				"or get read/write access to /dev/userfaultfd,\n"
				"demo: or allow it with 'sysctl "
				"vm.unprivileged_userfaultfd=1' (kernel >= 5.11 "
				"built with CONFIG_USERFAULTFD).\n");
		return 2;
	}
	arena = uswap_map(us, size);
	if (!arena) {
		fprintf(stderr, "demo: uswap_map(%zu MiB): %s\n",
			size >> 20, strerror(errno));
		uswap_close(us);
		return 2;
	}
	version = calloc(npages, sizeof(*version));
	if (!version) {
		fprintf(stderr, "demo: out of memory\n");
		return 2;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_sigbus;
	sa.sa_flags = SA_SIGINFO;
	sigaction(SIGBUS, &sa, NULL);

	printf("demo: uswap %s, region %.0f MiB (%zu pages), limit %.0f MiB, "
	       "%s/%s, %u handler thread%s, seed %llu\n",
	       uswap_version(), size / MiB, npages, cfg.limit / MiB,
	       cfg.backend, cfg.compressor, cfg.threads,
	       cfg.threads == 1 ? "" : "s", (unsigned long long)seed);
	fflush(stdout);

	phase_begin(&ph, "populate");
	for (i = 0; i < npages; i++)
		write_page(i);
	phase_end(&ph, npages);

	phase_begin(&ph, "seq read");
	for (i = 0; i < npages; i++)
		verify(ph.name, i);
	phase_end(&ph, npages);

	phase_begin(&ph, "random read");
	wl_rng_seed(&rng, seed ^ 0x72616e646f6dULL);
	for (n = 0; n < ops; n++)
		verify(ph.name, (size_t)wl_rng_below(&rng, npages));
	phase_end(&ph, ops);

	wl_zipf_init(&zipf, npages, 0.99, seed);
	phase_begin(&ph, "zipf 90r/10w");
	wl_rng_seed(&rng, seed ^ 0x7a697066ULL);
	for (n = 0; n < ops; n++) {
		uint64_t x = wl_rng_next(&rng);

		i = (size_t)wl_zipf_next(&zipf, &rng);
		if (x % 10 == 0)
			write_page(i);
		else
			verify(ph.name, i);
	}
	phase_end(&ph, ops);

	phase_begin(&ph, "verify all");
	for (i = 0; i < npages; i++)
		verify(ph.name, i);
	phase_end(&ph, npages);

	get_stats(&st);
	printf("\n");
	uswap_stats_print(&st, stdout);
	printf("\n");
	fflush(stdout);

	rc = uswap_unmap(us, arena, size);
	if (rc) {
		fprintf(stderr, "demo: FAIL: uswap_unmap: %s\n", strerror(-rc));
		return 1;
	}
	rc = uswap_close(us);
	if (rc) {
		fprintf(stderr, "demo: FAIL: uswap_close: %s\n", strerror(-rc));
		return 1;
	}
	free(version);
	if (st.resident_peak_bytes > st.limit_bytes) {
		printf("demo: FAIL: %zu pages verified, but resident peak "
		       "%.1f MiB > limit %.1f MiB\n",
		       npages, st.resident_peak_bytes / MiB,
		       st.limit_bytes / MiB);
		return 1;
	}
	printf("demo: OK, %zu pages verified, resident peak %.1f MiB <= "
	       "limit %.1f MiB\n",
	       npages, st.resident_peak_bytes / MiB, st.limit_bytes / MiB);
	return 0;
}

/*
 * bench_contention.c - the swap-in designs (USWAP_SWAPIN: A pin, B marker,
 * C cache; DESIGN.md "Swap-in designs A, B, C") under contention.
 *
 *   build/release/bench-contention [--designs marker,pin,cache]
 *       [--threads 2,4,8] [--pages 1024] [--rounds 100] [--reps 3]
 *       [--handlers 2] [--pool-cap 2M] [--discard-us 50] [--no-discard]
 *       [--no-prefetch] [--out results]
 *
 * For each design and each thread count, a fresh engine (readahead on, the
 * given pool cap, a limit far above the region so only the benchmark
 * evicts) and one region of --pages pages, then --rounds rounds of:
 *   1. every page is evicted with uswap_pageout (the threads wait at a
 *      barrier);
 *   2. T threads touch every page of the region once each, all at once:
 *      even threads ascending from page 0, odd threads ascending from page
 *      T/2 (they meet on the same and neighbouring pages, with readahead
 *      windows of each other's faults in flight); one access in four is a
 *      write (a write-protect fault, or a dirty swap-in, which frees a
 *      slot); a page found discarded (word 1 == 0) is restamped;
 *   3. meanwhile a discarder thread discards a random page every
 *      --discard-us microseconds (discards racing swap-ins, I9), and a
 *      prefetcher calls uswap_prefetch on random 16-page spans (swap-ins
 *      from an API context racing the faults).
 * The pool cap is small and slots are freed all the time (write faults,
 * discards, dirty swap-ins), so slot numbers are reused constantly (the
 * ABA of swap-protocol.md §2).  The whole set of configurations is run
 * --reps times, interleaved (rep 1 of every design, then rep 2, ...), so a
 * drift in the machine's load (it is shared) spreads over the designs; the
 * samples and counters of the reps are pooled.
 *
 * Every access of step 2 is the first touch of a page since its eviction
 * (it may have been brought back meanwhile by another thread, readahead or
 * the prefetcher: that is the contention measured).  Its latency is taken
 * with clock_gettime around the touch.  Reported per design and thread
 * count: throughput (touches per second of step 2), p50/p99/p99.9 latency,
 * the share of touches that faulted (>= 2 us) and their median, and the
 * slow-path counts from uswap_stats: faults_marker (B: a fault found
 * the marker), swapin_pin_retries (A: a fault found the slot pinned, backed
 * off and refaulted), swapin_cache_waits (C: a fault found the slot in the
 * in-flight map), with swap-ins, faults and discards that met a swap-in.
 *
 * Output: a table on stdout, and results/contention-<design>.csv: the
 * empirical CDF of the latency per thread count (threads, quantile,
 * latency_us: 1000 evenly spaced quantiles, then the tail to 0.99999),
 * which bench/plot_contention.gp draws.  Also results/contention-summary.csv.
 *
 * Exit status: 0, or 1 if a page read back neither its stamp nor zeros
 * (a misload: an invariant broke).
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "uswap.h"

#define PG 4096u
#define MAX_T 64

static struct {
	char designs[64];
	char threads[64];
	unsigned pages, rounds, handlers, discard_us, reps;
	size_t pool_cap;
	int discard, prefetch;
	const char *out;
} opt = { "marker,pin,cache", "2,4,8", 1024, 100, 2, 50, 3, 2u << 20, 1, 1, "results" };

static struct uswap *us;
static unsigned char *mem;
static unsigned nthreads;
static pthread_barrier_t bar_start, bar_end;
static _Atomic int stop_round, stop_all;
static _Atomic uint64_t misloads;

struct worker {
	pthread_t th;
	unsigned k;
	uint32_t *lat;		/* ns, one per touch */
	size_t n;
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t xorshift(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

static _Atomic uint64_t *word(size_t i, unsigned w)
{
	return (_Atomic uint64_t *)(void *)(mem + i * PG + w * 8);
}

/* One touch: word 1 holds the page index (or 0 after a discard). */
static void touch(size_t i, int write)
{
	uint64_t v;

	if (write) {
		v = atomic_fetch_add_explicit(word(i, 0), 1, memory_order_relaxed);
		(void)v;
		v = atomic_load_explicit(word(i, 1), memory_order_relaxed);
	} else {
		v = atomic_load_explicit(word(i, 1), memory_order_relaxed);
	}
	if (v == 0)
		atomic_store_explicit(word(i, 1), i + 1, memory_order_relaxed);
	else if (v != i + 1)
		atomic_fetch_add(&misloads, 1);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	size_t np = opt.pages, start = (w->k & 1) ? (size_t)nthreads / 2 : 0;

	for (;;) {
		pthread_barrier_wait(&bar_start);
		if (atomic_load(&stop_all))
			break;
		for (size_t j = 0; j < np; j++) {
			size_t i = (start + j) % np;
			int write = ((j + w->k) & 3) == 0;
			uint64_t t0 = now_ns();

			touch(i, write);
			uint64_t d = now_ns() - t0;
			w->lat[w->n++] = d > UINT32_MAX ? UINT32_MAX : (uint32_t)d;
		}
		pthread_barrier_wait(&bar_end);
	}
	return NULL;
}

static void sleep_us(unsigned us_)
{
	struct timespec ts = { 0, (long)us_ * 1000 };

	nanosleep(&ts, NULL);
}

/* Discards a random page now and then while a round runs. */
static void *discarder_main(void *arg)
{
	uint64_t seed = 0x1234567 + (uintptr_t)arg;

	while (!atomic_load(&stop_all)) {
		if (!atomic_load(&stop_round)) {
			size_t i = xorshift(&seed) % opt.pages;

			if (uswap_discard(us, mem + i * PG, PG))
				fprintf(stderr, "bench-contention: discard failed\n");
		}
		sleep_us(opt.discard_us);
	}
	return NULL;
}

/* Prefetches a random 16-page span now and then while a round runs. */
static void *prefetcher_main(void *arg)
{
	uint64_t seed = 0x7654321 + (uintptr_t)arg;

	while (!atomic_load(&stop_all)) {
		if (!atomic_load(&stop_round) && opt.pages >= 16) {
			size_t i = xorshift(&seed) % (opt.pages - 15);

			uswap_prefetch(us, mem + i * PG, 16 * PG);
		}
		sleep_us(opt.discard_us * 4);
	}
	return NULL;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static double pct(const uint32_t *s, size_t n, double q)
{
	size_t i = (size_t)(q * (double)(n - 1) + 0.5);

	return n ? s[i < n ? i : n - 1] / 1000.0 : 0;
}

struct result {
	char design[16];
	unsigned threads;
	double secs, tput, p50, p99, p999, max;
	double slow_frac, slow_p50;	/* touches >= 2 us (they faulted) */
	size_t samples;
	uint32_t *all;		/* samples of every rep */
	uint64_t busy_ns;
	struct uswap_stats st;	/* deltas of the counters, summed */
};

#define DELTA(f) r->st.f += s1.f - s0.f

static int run_one(const char *design, unsigned t, struct result *r)
{
	struct uswap_config c;
	char err[256];
	struct worker w[MAX_T];
	pthread_t disc, pref;
	struct uswap_stats s0, s1;
	uint64_t busy = 0;

	if (uswap_config_init(&c, err, sizeof(err))) {
		fprintf(stderr, "bench-contention: %s\n", err);
		return -1;
	}
	c.swapin = !strcmp(design, "pin") ? USWAP_SWAPIN_PIN :
		   !strcmp(design, "cache") ? USWAP_SWAPIN_CACHE : USWAP_SWAPIN_MARKER;
	c.threads = opt.handlers;
	c.limit = (size_t)opt.pages * PG * 8 + (64u << 20);
	c.pool_cap = opt.pool_cap;
	if (c.readahead_max == 0)
		c.readahead_max = 32;
	us = uswap_open(&c);
	if (!us) {
		fprintf(stderr, "bench-contention: uswap_open: %s\n", strerror(errno));
		return -1;
	}
	mem = uswap_map(us, (size_t)opt.pages * PG);
	if (!mem) {
		fprintf(stderr, "bench-contention: uswap_map: %s\n", strerror(errno));
		return -1;
	}
	/* Page content: compressible, with the index in word 1. */
	for (size_t i = 0; i < opt.pages; i++) {
		uint64_t *p = (uint64_t *)(void *)(mem + i * PG);

		for (unsigned k = 2; k < PG / 8; k++)
			p[k] = (k & 7) ? i * 31 + (k >> 4) : 0;
		p[1] = i + 1;
	}
	nthreads = t;
	atomic_store(&stop_all, 0);
	atomic_store(&stop_round, 1);
	pthread_barrier_init(&bar_start, NULL, t + 1);
	pthread_barrier_init(&bar_end, NULL, t + 1);
	for (unsigned k = 0; k < t; k++) {
		w[k].k = k;
		w[k].n = 0;
		w[k].lat = malloc((size_t)opt.rounds * opt.pages * sizeof(uint32_t));
		if (!w[k].lat || pthread_create(&w[k].th, NULL, worker_main, &w[k])) {
			fprintf(stderr, "bench-contention: out of memory or threads\n");
			return -1;
		}
	}
	if (opt.discard)
		pthread_create(&disc, NULL, discarder_main, NULL);
	if (opt.prefetch)
		pthread_create(&pref, NULL, prefetcher_main, NULL);
	uswap_stats(us, &s0);
	for (unsigned round = 0; round < opt.rounds; round++) {
		long n = uswap_pageout(us, mem, (size_t)opt.pages * PG);

		if (n < 0)
			fprintf(stderr, "bench-contention: pageout: %ld\n", n);
		uint64_t t0 = now_ns();

		atomic_store(&stop_round, 0);
		pthread_barrier_wait(&bar_start);
		pthread_barrier_wait(&bar_end);
		atomic_store(&stop_round, 1);
		busy += now_ns() - t0;
	}
	uswap_stats(us, &s1);
	atomic_store(&stop_all, 1);
	pthread_barrier_wait(&bar_start);
	for (unsigned k = 0; k < t; k++)
		pthread_join(w[k].th, NULL);
	if (opt.discard)
		pthread_join(disc, NULL);
	if (opt.prefetch)
		pthread_join(pref, NULL);

	/* Pool the samples with the other reps'. */
	size_t n = r->samples;
	for (unsigned k = 0; k < t; k++)
		n += w[k].n;
	uint32_t *all = realloc(r->all, (n ? n : 1) * sizeof(uint32_t));
	if (!all) {
		fprintf(stderr, "bench-contention: out of memory\n");
		return -1;
	}
	r->all = all;
	for (unsigned k = 0; k < t; k++) {
		memcpy(all + r->samples, w[k].lat, w[k].n * sizeof(uint32_t));
		r->samples += w[k].n;
		free(w[k].lat);
	}
	snprintf(r->design, sizeof(r->design), "%s", design);
	r->threads = t;
	r->busy_ns += busy;

	DELTA(faults);
	DELTA(swapins);
	DELTA(faults_swapin);
	DELTA(faults_marker);
	DELTA(swapin_pin_retries);
	DELTA(swapin_cache_waits);
	DELTA(discard_during_swapin);
	DELTA(readahead_pages);
	DELTA(prefetch_pages);
	DELTA(faults_present);
	DELTA(store_failures);
	DELTA(swapouts);

	uswap_unmap(us, mem, (size_t)opt.pages * PG);
	uswap_close(us);
	pthread_barrier_destroy(&bar_start);
	pthread_barrier_destroy(&bar_end);
	return 0;
}

/* Sort the pooled samples; percentiles; the CDF block of @r into @cdf. */
static void finish(struct result *r, FILE *cdf)
{
	uint32_t *all = r->all;
	size_t n = r->samples;
	unsigned t = r->threads;

	qsort(all, n, sizeof(uint32_t), cmp_u32);
	r->secs = (double)r->busy_ns / 1e9;
	r->tput = r->secs > 0 ? (double)n / r->secs : 0;
	r->p50 = pct(all, n, 0.5);
	r->p99 = pct(all, n, 0.99);
	r->p999 = pct(all, n, 0.999);
	r->max = n ? all[n - 1] / 1000.0 : 0;
	/* Touches that faulted (>= 2 us: a present page costs ~0.1 us, the
	 * fastest fault round trip several us): their share and median. */
	size_t first_slow = 0;
	while (first_slow < n && all[first_slow] < 2000)
		first_slow++;
	r->slow_frac = n ? (double)(n - first_slow) / (double)n : 0;
	r->slow_p50 = n > first_slow ? pct(all + first_slow, n - first_slow, 0.5) : 0;
	for (unsigned i = 0; i < 1000 && n; i++)
		fprintf(cdf, "%u,%.5f,%.3f\n", t, i / 1000.0, pct(all, n, i / 1000.0));
	static const double tail[] = { 0.9991, 0.9993, 0.9995, 0.9997, 0.9999, 0.99995, 0.99999, 1.0 };
	for (unsigned i = 0; i < sizeof(tail) / sizeof(tail[0]) && n; i++)
		fprintf(cdf, "%u,%.5f,%.3f\n", t, tail[i], pct(all, n, tail[i]));
	fprintf(cdf, "\n\n");	/* a gnuplot data block per thread count */
	free(all);
	r->all = NULL;
}

static size_t parse_size_arg(const char *s)
{
	char *end;
	unsigned long long v = strtoull(s, &end, 10);

	switch (*end) {
	case 'k': case 'K': v <<= 10; break;
	case 'm': case 'M': v <<= 20; break;
	case 'g': case 'G': v <<= 30; break;
	}
	return (size_t)v;
}

static void usage(void)
{
	fprintf(stderr, "usage: bench-contention [--designs marker,pin,cache] [--threads 2,4,8]\n"
		"  [--pages N] [--rounds N] [--reps N] [--handlers N] [--pool-cap SIZE]\n"
		"  [--discard-us N] [--no-discard] [--no-prefetch] [--out DIR]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	struct result res[64];
	unsigned nres = 0;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(a, "--no-discard")) { opt.discard = 0; continue; }
		if (!strcmp(a, "--no-prefetch")) { opt.prefetch = 0; continue; }
		if (!v)
			usage();
		i++;
		if (!strcmp(a, "--designs")) snprintf(opt.designs, sizeof(opt.designs), "%s", v);
		else if (!strcmp(a, "--threads")) snprintf(opt.threads, sizeof(opt.threads), "%s", v);
		else if (!strcmp(a, "--pages")) opt.pages = (unsigned)atoi(v);
		else if (!strcmp(a, "--rounds")) opt.rounds = (unsigned)atoi(v);
		else if (!strcmp(a, "--reps")) opt.reps = (unsigned)atoi(v);
		else if (!strcmp(a, "--handlers")) opt.handlers = (unsigned)atoi(v);
		else if (!strcmp(a, "--pool-cap")) opt.pool_cap = parse_size_arg(v);
		else if (!strcmp(a, "--discard-us")) opt.discard_us = (unsigned)atoi(v);
		else if (!strcmp(a, "--out")) opt.out = v;
		else usage();
	}
	if (opt.pages < 16 || opt.rounds < 1 || opt.handlers < 1 || opt.reps < 1)
		usage();
	mkdir(opt.out, 0755);

	printf("bench-contention: %u pages, %u rounds, %u reps, %u handlers, pool cap %zuK, "
	       "discard every %u us%s, prefetch %s\n", opt.pages, opt.rounds, opt.reps,
	       opt.handlers, opt.pool_cap >> 10, opt.discard_us, opt.discard ? "" : " (off)",
	       opt.prefetch ? "on" : "off");
	char dl[64], tl[64], *dname[3];
	unsigned nd = 0, tv[16], nt = 0;

	snprintf(dl, sizeof(dl), "%s", opt.designs);
	for (char *ds = strtok(dl, ","); ds; ds = strtok(NULL, ",")) {
		if ((strcmp(ds, "marker") && strcmp(ds, "pin") && strcmp(ds, "cache")) || nd == 3) {
			fprintf(stderr, "bench-contention: unknown design '%s' (accepted: marker, pin, cache)\n", ds);
			return 2;
		}
		dname[nd++] = ds;
	}
	snprintf(tl, sizeof(tl), "%s", opt.threads);
	for (char *ts = strtok(tl, ","); ts; ts = strtok(NULL, ",")) {
		unsigned t = (unsigned)atoi(ts);

		if (t < 1 || t > MAX_T || nt == 16)
			usage();
		tv[nt++] = t;
	}
	memset(res, 0, sizeof(res));
	nres = nd * nt;
	for (unsigned rp = 0; rp < opt.reps; rp++)
		for (unsigned d = 0; d < nd; d++)
			for (unsigned i = 0; i < nt; i++) {
				if (run_one(dname[d], tv[i], &res[d * nt + i]))
					return 2;
				fprintf(stderr, "  rep %u: %s x%u done\n", rp + 1, dname[d], tv[i]);
			}
	for (unsigned d = 0; d < nd; d++) {
		char path[512];

		snprintf(path, sizeof(path), "%s/contention-%s.csv", opt.out, dname[d]);
		FILE *cdf = fopen(path, "w");
		if (!cdf) {
			perror(path);
			return 2;
		}
		fprintf(cdf, "# threads,quantile,latency_us (design %s)\n", dname[d]);
		for (unsigned i = 0; i < nt; i++)
			finish(&res[d * nt + i], cdf);
		fclose(cdf);
	}

	printf("\n%-7s %3s %9s %7s %7s %8s %8s %7s %6s %7s | %7s %7s %7s %8s %7s %7s %7s\n",
	       "design", "thr", "touch/s", "p50 us", "p99 us", "p99.9 us", "max us",
	       "faulted", "%", "p50f us",
	       "faults", "swapins", "marker", "pin_rtry", "c_waits", "disc_si", "ra+pf");
	for (unsigned i = 0; i < nres; i++) {
		struct result *r = &res[i];

		printf("%-7s %3u %9.0f %7.1f %7.1f %8.1f %8.0f %7zu %5.1f%% %7.1f | %7llu %7llu %7llu %8llu %7llu %7llu %7llu\n",
		       r->design, r->threads, r->tput, r->p50, r->p99, r->p999, r->max,
		       (size_t)(r->slow_frac * (double)r->samples + 0.5), 100 * r->slow_frac,
		       r->slow_p50,
		       (unsigned long long)r->st.faults, (unsigned long long)r->st.swapins,
		       (unsigned long long)r->st.faults_marker,
		       (unsigned long long)r->st.swapin_pin_retries,
		       (unsigned long long)r->st.swapin_cache_waits,
		       (unsigned long long)r->st.discard_during_swapin,
		       (unsigned long long)(r->st.readahead_pages + r->st.prefetch_pages));
	}
	char path[512];
	snprintf(path, sizeof(path), "%s/contention-summary.csv", opt.out);
	FILE *f = fopen(path, "w");
	if (f) {
		fprintf(f, "design,threads,touches,secs,touch_per_s,p50_us,p99_us,p999_us,max_us,"
			"faulted_frac,faulted_p50_us,faults,swapins,faults_marker,swapin_pin_retries,swapin_cache_waits,"
			"discard_during_swapin,readahead_pages,prefetch_pages,faults_present,"
			"store_failures\n");
		for (unsigned i = 0; i < nres; i++) {
			struct result *r = &res[i];

			fprintf(f, "%s,%u,%zu,%.3f,%.0f,%.2f,%.2f,%.2f,%.0f,%.4f,%.2f,%llu,%llu,%llu,%llu,%llu,%llu,%llu,%llu,%llu,%llu\n",
				r->design, r->threads, r->samples, r->secs, r->tput, r->p50,
				r->p99, r->p999, r->max, r->slow_frac, r->slow_p50,
				(unsigned long long)r->st.faults, (unsigned long long)r->st.swapins,
				(unsigned long long)r->st.faults_marker,
				(unsigned long long)r->st.swapin_pin_retries,
				(unsigned long long)r->st.swapin_cache_waits,
				(unsigned long long)r->st.discard_during_swapin,
				(unsigned long long)r->st.readahead_pages,
				(unsigned long long)r->st.prefetch_pages,
				(unsigned long long)r->st.faults_present,
				(unsigned long long)r->st.store_failures);
		}
		fclose(f);
	}
	printf("\nCDF data: %s/contention-<design>.csv; plot: gnuplot -e \"dir='%s'\" bench/plot_contention.gp\n",
	       opt.out, opt.out);
	if (atomic_load(&misloads)) {
		printf("MISLOAD: %llu touches read neither the page's stamp nor zeros\n",
		       (unsigned long long)atomic_load(&misloads));
		return 1;
	}
	return 0;
}

/*
 * bench_core.c - the core benchmark: a region larger than the resident
 * limit, accessed in the patterns of ../shared/notes/performance-floor.md,
 * so that uswap can be compared with the kernel's swap to zram.
 *
 *   build/release/bench_core [--size 1G] [--limit 256M] [--ops N]
 *       [--threads T] [--handlers H] [--reps R] [--seed S]
 *       [--compressor lz4|zstd] [--quick] [--stats]
 *
 * Each repetition opens a fresh engine (uswap_open .. uswap_close) and runs,
 * each phase timed on its own:
 *   populate      write every page in order (version 1)
 *   seq read      read every page in order
 *   rand read     N uniform reads
 *   rand write    N uniform writes (the whole page, next version)
 *   zipf read     N Zipf(0.99) reads (hot pages scattered over the region)
 *   zipf write    N Zipf(0.99) writes
 *   rand read xT  N uniform reads shared by T threads
 *   pageout       rewrite a range (64 MiB, at most half the limit), then
 *                 time uswap_pageout() on it: the cost of evicting a page
 *   verify        every byte of every page against its expected version
 * A read checks the page's stamp (header and footer: index, version and a
 * hash); the verify phase compares every byte.  Any mismatch: exit 1.
 *
 * Reported per phase, medians over the repetitions: operations per second
 * and microseconds per major fault (phase time / swap-ins, the swap-ins
 * counted by uswap_stats); then the pool's compression ratio and memory
 * efficiency, and the eviction cost.  Times include the workload's own cost
 * (page generation for writes, checks for reads), printed first.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "uswap.h"
#include "workload.h"

#define MiB (1024.0 * 1024.0)
#define MAX_REPORTS 10
#define MAX_THREADS 64

enum {
	PH_POPULATE,
	PH_SEQ_READ,
	PH_RAND_READ,
	PH_RAND_WRITE,
	PH_ZIPF_READ,
	PH_ZIPF_WRITE,
	PH_MT_READ,
	PH_PAGEOUT,
	PH_VERIFY,
	NPHASES
};

static const char *const phase_name[NPHASES] = {
	"populate",  "seq read",   "rand read", "rand write", "zipf read",
	"zipf write", "rand read", "pageout",   "verify (full)",
};

/*
 * The kernel's figures (memcg v1 limit 256 MiB, zram lz4 swap, 1 GiB, 2
 * threads) from ../shared/notes/performance-floor.md: ops/s, 0 = none.
 * Shown only for that configuration; measured in another run, so only a
 * rough guide (the notes: single runs vary by up to 1.8x).
 */
static const double kernel_ops[NPHASES] = {
	[PH_SEQ_READ] = 88e3,  [PH_RAND_READ] = 90e3, [PH_RAND_WRITE] = 75e3,
	[PH_ZIPF_READ] = 276e3, [PH_MT_READ] = 146e3,
};

struct sample {
	double ops;		/* operations (pages) in the phase */
	double secs;
	double swapins, swapouts;
	double ops_per_s;
	double us_per_fault;	/* secs / swapins; < 0: no swap-ins */
};

struct rep_result {
	struct sample ph[NPHASES];
	double ratio, efficiency, pool_mib, stored_mib, stored_pages;
};

/* Options. */
static size_t opt_size = (size_t)1 << 30, opt_limit;
static uint64_t opt_ops, opt_seed = 1;
static unsigned opt_threads = 2, opt_handlers, opt_reps = 3;
static const char *opt_compressor;
static int opt_quick, opt_stats;

/* The current repetition's engine and region. */
static struct uswap *us;
static unsigned char *arena;
static size_t npages;
static uint32_t *version;	/* expected version per page */
static struct wl_zipf zipf;
static atomic_ullong nbad;

static void usage(FILE *f)
{
	fprintf(f,
		"usage: bench_core [options]\n"
		"  --size SIZE        managed region (default 1G)\n"
		"  --limit SIZE       resident limit (default USWAP_LIMIT or 256M)\n"
		"  --ops N            accesses per random/zipf phase (default:\n"
		"                     one per page)\n"
		"  --threads T        threads of the multi-threaded read (default 2)\n"
		"  --handlers H       uswap fault handler threads (default\n"
		"                     USWAP_THREADS or 1)\n"
		"  --reps R           repetitions, each on a fresh engine (default 3)\n"
		"  --seed S           content and access seed (default 1)\n"
		"  --compressor NAME  lz4 or zstd (default USWAP_COMPRESSOR or lz4)\n"
		"  --quick            CI smoke test: 64M region, 16M limit, 8192 ops,\n"
		"                     1 rep (explicit options still win)\n"
		"  --stats            print uswap's full statistics after the last rep\n"
		"Other settings come from the USWAP_* environment variables.\n");
}

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	char msg[160];
	uintptr_t a = (uintptr_t)si->si_addr, b = (uintptr_t)arena;
	int n;

	(void)sig;
	(void)uc;
	if (arena && a >= b && a < b + npages * WL_PAGE_SIZE)
		n = snprintf(msg, sizeof(msg),
			     "bench_core: FAIL: SIGBUS at %p: page %zu "
			     "(poisoned: the backend could not read it)\n",
			     si->si_addr, (size_t)((a - b) / WL_PAGE_SIZE));
	else
		n = snprintf(msg, sizeof(msg),
			     "bench_core: FAIL: SIGBUS at %p\n", si->si_addr);
	if (n > 0)
		(void)!write(2, msg, (size_t)n);
	_exit(1);
}

static void get_stats(struct uswap_stats *st)
{
	int rc = uswap_stats(us, st);

	if (rc) {
		fprintf(stderr, "bench_core: uswap_stats: %s\n", strerror(-rc));
		exit(1);
	}
}

static inline unsigned char *page_at(size_t i)
{
	return arena + i * WL_PAGE_SIZE;
}

static void report_bad(const char *phase, size_t i, size_t bad)
{
	if (atomic_fetch_add(&nbad, 1) < MAX_REPORTS)
		wl_report_bad(stderr, phase, page_at(i), i, version[i],
			      opt_seed, bad);
}

/* The cheap check of timed phases: header and footer. */
static inline void read_page(const char *phase, size_t i)
{
	size_t bad = wl_check_stamp(page_at(i), i, version[i], opt_seed);

	if (bad)
		report_bad(phase, i, bad);
}

static inline void write_page(size_t i)
{
	version[i]++;
	wl_fill_page(page_at(i), i, version[i], opt_seed);
}

/* One phase's measurement. */
struct meter {
	uint64_t t0;
	struct uswap_stats st0;
};

static void meter_start(struct meter *m)
{
	get_stats(&m->st0);
	m->t0 = wl_now_ns();
}

static void meter_stop(struct meter *m, int phase, uint64_t ops,
		       struct sample *s)
{
	uint64_t t1 = wl_now_ns();
	struct uswap_stats st;

	get_stats(&st);
	s->ops = (double)ops;
	s->secs = (double)(t1 - m->t0) / 1e9;
	s->swapins = (double)(st.swapins - m->st0.swapins);
	s->swapouts = (double)(st.swapouts - m->st0.swapouts);
	s->ops_per_s = s->secs > 0 ? s->ops / s->secs : 0;
	s->us_per_fault = s->swapins > 0 ? s->secs * 1e6 / s->swapins : -1;
	if (atomic_load(&nbad)) {
		fprintf(stderr, "bench_core: FAIL: %llu bad pages in phase %s\n",
			(unsigned long long)atomic_load(&nbad),
			phase_name[phase]);
		uswap_stats_print(&st, stderr);
		exit(1);
	}
}

/* Multi-threaded uniform reads. */
struct mt_arg {
	pthread_t tid;
	unsigned id;
	uint64_t ops;
	pthread_barrier_t *start;
};

static void *mt_reader(void *p)
{
	struct mt_arg *a = (struct mt_arg *)p;
	struct wl_rng rng;

	wl_rng_seed(&rng, opt_seed ^ (0x6d74ULL << 32) ^ a->id);
	pthread_barrier_wait(a->start);
	for (uint64_t n = 0; n < a->ops; n++)
		read_page(phase_name[PH_MT_READ],
			  (size_t)wl_rng_below(&rng, npages));
	return NULL;
}

static void run_mt_read(struct sample *s)
{
	struct mt_arg args[MAX_THREADS];
	pthread_barrier_t start;
	struct meter m;
	unsigned t;
	int rc;

	pthread_barrier_init(&start, NULL, opt_threads + 1);
	for (t = 0; t < opt_threads; t++) {
		args[t].id = t;
		args[t].ops = opt_ops / opt_threads +
			      (t == 0 ? opt_ops % opt_threads : 0);
		args[t].start = &start;
		rc = pthread_create(&args[t].tid, NULL, mt_reader, &args[t]);
		if (rc) {
			fprintf(stderr, "bench_core: pthread_create: %s\n",
				strerror(rc));
			exit(1);
		}
	}
	meter_start(&m);
	pthread_barrier_wait(&start);
	for (t = 0; t < opt_threads; t++)
		pthread_join(args[t].tid, NULL);
	meter_stop(&m, PH_MT_READ, opt_ops, s);
	pthread_barrier_destroy(&start);
}

static size_t pageout_pages(size_t limit)
{
	size_t bytes = (size_t)64 << 20;

	if (bytes > limit / 2)
		bytes = limit / 2;
	if (bytes > npages * WL_PAGE_SIZE / 2)
		bytes = npages * WL_PAGE_SIZE / 2;
	return bytes / WL_PAGE_SIZE;
}

static void run_rep(const struct uswap_config *cfg, unsigned rep,
		    struct rep_result *r, int last)
{
	size_t size = npages * WL_PAGE_SIZE, i;
	struct uswap_stats st;
	struct wl_rng rng;
	struct meter m;
	uint64_t n, t0 = wl_now_ns();
	size_t po_pages = pageout_pages(cfg->limit);
	long evicted;
	int rc;

	us = uswap_open(cfg);
	if (!us) {
		int e = errno;

		fprintf(stderr, "bench_core: uswap_open failed: %s\n",
			strerror(e));
		if (e == EPERM || e == EACCES || e == ENOSYS)
			fprintf(stderr,
				"bench_core: uswap needs userfaultfd: run as "
				"root, or get read/write access to "
				"/dev/userfaultfd,\nbench_core: or allow it "
				"with 'sysctl vm.unprivileged_userfaultfd=1'.\n");
		exit(2);
	}
	arena = uswap_map(us, size);
	if (!arena) {
		fprintf(stderr, "bench_core: uswap_map(%zu MiB): %s\n",
			size >> 20, strerror(errno));
		exit(2);
	}
	memset(version, 0, npages * sizeof(*version));

	meter_start(&m);
	for (i = 0; i < npages; i++)
		write_page(i);
	meter_stop(&m, PH_POPULATE, npages, &r->ph[PH_POPULATE]);

	meter_start(&m);
	for (i = 0; i < npages; i++)
		read_page(phase_name[PH_SEQ_READ], i);
	meter_stop(&m, PH_SEQ_READ, npages, &r->ph[PH_SEQ_READ]);

	wl_rng_seed(&rng, opt_seed ^ 0x1111);
	meter_start(&m);
	for (n = 0; n < opt_ops; n++)
		read_page(phase_name[PH_RAND_READ],
			  (size_t)wl_rng_below(&rng, npages));
	meter_stop(&m, PH_RAND_READ, opt_ops, &r->ph[PH_RAND_READ]);

	wl_rng_seed(&rng, opt_seed ^ 0x2222);
	meter_start(&m);
	for (n = 0; n < opt_ops; n++)
		write_page((size_t)wl_rng_below(&rng, npages));
	meter_stop(&m, PH_RAND_WRITE, opt_ops, &r->ph[PH_RAND_WRITE]);

	wl_rng_seed(&rng, opt_seed ^ 0x3333);
	meter_start(&m);
	for (n = 0; n < opt_ops; n++)
		read_page(phase_name[PH_ZIPF_READ],
			  (size_t)wl_zipf_next(&zipf, &rng));
	meter_stop(&m, PH_ZIPF_READ, opt_ops, &r->ph[PH_ZIPF_READ]);

	wl_rng_seed(&rng, opt_seed ^ 0x4444);
	meter_start(&m);
	for (n = 0; n < opt_ops; n++)
		write_page((size_t)wl_zipf_next(&zipf, &rng));
	meter_stop(&m, PH_ZIPF_WRITE, opt_ops, &r->ph[PH_ZIPF_WRITE]);

	run_mt_read(&r->ph[PH_MT_READ]);

	/*
	 * Eviction cost: make a range resident and dirty (rewrite it: the
	 * pages have no swap copy to keep), then time uswap_pageout().  The
	 * range is at most half the limit, so the background evictor should
	 * leave it alone; pages it took anyway show as "resident" < range.
	 */
	for (i = 0; i < po_pages; i++)
		write_page(i);
	meter_start(&m);
	evicted = uswap_pageout(us, arena, po_pages * WL_PAGE_SIZE);
	meter_stop(&m, PH_PAGEOUT, evicted > 0 ? (uint64_t)evicted : 0,
		   &r->ph[PH_PAGEOUT]);
	if (evicted < 0) {
		fprintf(stderr, "bench_core: uswap_pageout: %s\n",
			strerror((int)-evicted));
		exit(1);
	}

	meter_start(&m);
	for (i = 0; i < npages; i++) {
		size_t bad = wl_check_page(page_at(i), i, version[i], opt_seed);
		if (bad)
			report_bad(phase_name[PH_VERIFY], i, bad);
	}
	meter_stop(&m, PH_VERIFY, npages, &r->ph[PH_VERIFY]);

	get_stats(&st);
	r->ratio = st.compression_ratio;
	r->efficiency = st.memory_efficiency;
	r->pool_mib = (double)st.pool_bytes / MiB;
	r->stored_mib = (double)st.stored_orig_bytes / MiB;
	r->stored_pages = (double)st.stored_pages;
	if (st.resident_peak_bytes > st.limit_bytes) {
		fprintf(stderr,
			"bench_core: FAIL: resident peak %.1f MiB > limit "
			"%.1f MiB\n",
			st.resident_peak_bytes / MiB, st.limit_bytes / MiB);
		exit(1);
	}
	if (last && opt_stats) {
		printf("uswap statistics, last repetition:\n");
		uswap_stats_print(&st, stdout);
		printf("\n");
	}

	rc = uswap_unmap(us, arena, size);
	if (!rc)
		rc = uswap_close(us);
	if (rc) {
		fprintf(stderr, "bench_core: FAIL: unmap/close: %s\n",
			strerror(-rc));
		exit(1);
	}
	us = NULL;
	arena = NULL;
	fflush(stdout);
	fprintf(stderr, "bench_core: rep %u/%u done in %.1f s\n", rep + 1,
		opt_reps, (double)(wl_now_ns() - t0) / 1e9);
}

/* Median over the repetitions of one field. */
static double med(const struct rep_result *r, unsigned reps,
		  double (*get)(const struct rep_result *, int), int ph)
{
	double v[256];
	unsigned n = 0;

	for (unsigned k = 0; k < reps && n < 256; k++) {
		double x = get(&r[k], ph);
		if (x >= 0)
			v[n++] = x;
	}
	return n ? wl_median(v, n) : -1;
}

static double g_ops(const struct rep_result *r, int p) { return r->ph[p].ops; }
static double g_secs(const struct rep_result *r, int p) { return r->ph[p].secs; }
static double g_rate(const struct rep_result *r, int p) { return r->ph[p].ops_per_s; }
static double g_in(const struct rep_result *r, int p) { return r->ph[p].swapins; }
static double g_out(const struct rep_result *r, int p) { return r->ph[p].swapouts; }
static double g_usf(const struct rep_result *r, int p) { return r->ph[p].us_per_fault; }
static double g_ratio(const struct rep_result *r, int p) { (void)p; return r->ratio; }
static double g_eff(const struct rep_result *r, int p) { (void)p; return r->efficiency; }
static double g_pool(const struct rep_result *r, int p) { (void)p; return r->pool_mib; }
static double g_stored(const struct rep_result *r, int p) { (void)p; return r->stored_mib; }
static double g_po_us(const struct rep_result *r, int p)
{
	(void)p;
	return r->ph[PH_PAGEOUT].ops > 0 ?
		       r->ph[PH_PAGEOUT].secs * 1e6 / r->ph[PH_PAGEOUT].ops : -1;
}

/* "123.4k" style for rates and counts. */
static const char *human(char *buf, size_t len, double v)
{
	if (v < 0)
		snprintf(buf, len, "-");
	else if (v >= 10e6)
		snprintf(buf, len, "%.1fM", v / 1e6);
	else if (v >= 10e3)
		snprintf(buf, len, "%.1fk", v / 1e3);
	else
		snprintf(buf, len, "%.0f", v);
	return buf;
}

/* Workload cost on ordinary memory, to read the tables with. */
static void calibrate(void)
{
	enum { N = 2048 };
	unsigned char *buf = aligned_alloc(WL_PAGE_SIZE, (size_t)N * WL_PAGE_SIZE);
	uint64_t t0, t1, t2, t3;
	size_t bad = 0;

	if (!buf)
		return;
	for (unsigned i = 0; i < N; i++)	/* fault it in */
		wl_fill_page(buf + (size_t)i * WL_PAGE_SIZE, i, 1, opt_seed);
	t0 = wl_now_ns();
	for (unsigned i = 0; i < N; i++)
		wl_fill_page(buf + (size_t)i * WL_PAGE_SIZE, i, 2, opt_seed);
	t1 = wl_now_ns();
	for (unsigned i = 0; i < N; i++)
		bad |= wl_check_stamp(buf + (size_t)i * WL_PAGE_SIZE, i, 2,
				      opt_seed);
	t2 = wl_now_ns();
	for (unsigned i = 0; i < N; i++)
		bad |= wl_check_page(buf + (size_t)i * WL_PAGE_SIZE, i, 2,
				     opt_seed);
	t3 = wl_now_ns();
	free(buf);
	if (bad) {
		fprintf(stderr, "bench_core: FAIL: the workload's self-check\n");
		exit(1);
	}
	printf("workload cost (in the times below): write %.2f us/page, "
	       "stamp check %.3f us/page, full check %.2f us/page\n",
	       (double)(t1 - t0) / 1e3 / N, (double)(t2 - t1) / 1e3 / N,
	       (double)(t3 - t2) / 1e3 / N);
}

static int parse_u64(const char *s, uint64_t *out)
{
	char *end;

	errno = 0;
	*out = strtoull(s, &end, 0);
	return errno || end == s || *end ? -EINVAL : 0;
}

int main(int argc, char **argv)
{
	int set_size = 0, set_limit = 0, set_ops = 0, set_reps = 0;
	struct uswap_config cfg;
	struct rep_result *res;
	struct sigaction sa;
	char err[256], b1[32], b2[32], b3[32], b4[32];
	uint64_t v;
	int rc, n, show_kernel;

	for (int a = 1; a < argc; a++) {
		const char *o = argv[a], *val = a + 1 < argc ? argv[a + 1] : NULL;
		int bad = 0;

		if (!strcmp(o, "-h") || !strcmp(o, "--help")) {
			usage(stdout);
			return 0;
		} else if (!strcmp(o, "--quick")) {
			opt_quick = 1;
			continue;
		} else if (!strcmp(o, "--stats")) {
			opt_stats = 1;
			continue;
		} else if (!val) {
			bad = 1;
		} else if (!strcmp(o, "--size")) {
			bad = wl_parse_size(val, &opt_size);
			set_size = 1;
		} else if (!strcmp(o, "--limit")) {
			bad = wl_parse_size(val, &opt_limit);
			set_limit = 1;
		} else if (!strcmp(o, "--ops")) {
			bad = parse_u64(val, &opt_ops) || !opt_ops;
			set_ops = 1;
		} else if (!strcmp(o, "--threads")) {
			bad = parse_u64(val, &v) || !v || v > MAX_THREADS;
			opt_threads = (unsigned)v;
		} else if (!strcmp(o, "--handlers")) {
			bad = parse_u64(val, &v) || !v || v > 64;
			opt_handlers = (unsigned)v;
		} else if (!strcmp(o, "--reps")) {
			bad = parse_u64(val, &v) || !v || v > 256;
			opt_reps = (unsigned)v;
			set_reps = 1;
		} else if (!strcmp(o, "--seed")) {
			bad = parse_u64(val, &opt_seed);
		} else if (!strcmp(o, "--compressor")) {
			opt_compressor = val;
		} else {
			bad = 1;
		}
		if (bad) {
			fprintf(stderr, "bench_core: bad option or value: %s %s\n",
				o, val ? val : "");
			usage(stderr);
			return 2;
		}
		a++;
	}
	if (opt_quick) {
		if (!set_size)
			opt_size = (size_t)64 << 20;
		if (!set_limit)
			opt_limit = (size_t)16 << 20;
		if (!set_ops)
			opt_ops = 8192;
		if (!set_reps)
			opt_reps = 1;
	}
	if (sysconf(_SC_PAGESIZE) != WL_PAGE_SIZE) {
		fprintf(stderr, "bench_core: needs 4 KiB pages\n");
		return 2;
	}
	npages = opt_size / WL_PAGE_SIZE;
	if (npages < 64) {
		fprintf(stderr, "bench_core: --size must be at least 256K\n");
		return 2;
	}
	if (!opt_ops)
		opt_ops = npages;

	rc = uswap_config_init(&cfg, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "bench_core: configuration: %s\n", err);
		return 2;
	}
	if (opt_limit)
		cfg.limit = opt_limit;
	if (opt_handlers)
		cfg.threads = opt_handlers;
	if (opt_compressor)
		snprintf(cfg.compressor, sizeof(cfg.compressor), "%s",
			 opt_compressor);
	rc = uswap_config_check(&cfg, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "bench_core: configuration: %s\n", err);
		return 2;
	}
	if (pageout_pages(cfg.limit) == 0) {
		fprintf(stderr, "bench_core: limit too small\n");
		return 2;
	}

	version = calloc(npages, sizeof(*version));
	res = calloc(opt_reps, sizeof(*res));
	if (!version || !res) {
		fprintf(stderr, "bench_core: out of memory\n");
		return 2;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_sigbus;
	sa.sa_flags = SA_SIGINFO;
	sigaction(SIGBUS, &sa, NULL);

	printf("bench_core: uswap %s; region %.0f MiB (%zu pages), limit "
	       "%.0f MiB, %s/%s", uswap_version(), npages * WL_PAGE_SIZE / MiB,
	       npages, cfg.limit / MiB, cfg.backend, cfg.compressor);
	if (!strcmp(cfg.compressor, "lz4"))
		printf(" (accel %d)", cfg.lz4_accel);
	else
		printf(" (level %d)", cfg.zstd_level);
	printf(", %u handler%s (%s), readahead %u\n", cfg.threads,
	       cfg.threads == 1 ? "" : "s",
	       cfg.wait_mode == USWAP_WAIT_SPIN ? "spin" : "block",
	       cfg.readahead_max);
	printf("bench_core: %llu ops per random phase, %u threads in the "
	       "threaded phase, %u rep%s, seed %llu\n",
	       (unsigned long long)opt_ops, opt_threads, opt_reps,
	       opt_reps == 1 ? "" : "s", (unsigned long long)opt_seed);
	calibrate();
	fflush(stdout);

	wl_zipf_init(&zipf, npages, 0.99, opt_seed);
	for (unsigned k = 0; k < opt_reps; k++)
		run_rep(&cfg, k, &res[k], k + 1 == opt_reps);

	show_kernel = npages * WL_PAGE_SIZE == (size_t)1 << 30 &&
		      cfg.limit == (size_t)256 << 20 && opt_ops == npages &&
		      opt_threads == 2;
	printf("\nmedians of %u rep%s; us/fault = phase time / swap-ins",
	       opt_reps, opt_reps == 1 ? "" : "s");
	if (show_kernel)
		printf("; kernel = zram swap, same workload (notes)");
	printf("\n");
	n = printf("%-15s %9s %9s %10s %9s %9s %9s %9s\n", "phase", "ops",
		   "time s", "ops/s", "swap-ins", "us/fault", "swap-outs",
		   "kernel");
	for (int c = 1; c < n; c++)
		putchar('-');
	putchar('\n');
	for (int p = 0; p < NPHASES; p++) {
		char name[32], ks[32];
		/* pageout evicts: its cost per page is on the eviction line */
		double usf = p == PH_PAGEOUT ? -1 : med(res, opt_reps, g_usf, p);

		if (p == PH_MT_READ)
			snprintf(name, sizeof(name), "%s x%u", phase_name[p],
				 opt_threads);
		else if (p == PH_PAGEOUT)
			snprintf(name, sizeof(name), "%s %zuM", phase_name[p],
				 pageout_pages(cfg.limit) * WL_PAGE_SIZE >> 20);
		else
			snprintf(name, sizeof(name), "%s", phase_name[p]);
		if (show_kernel && kernel_ops[p] > 0)
			human(ks, sizeof(ks), kernel_ops[p]);
		else
			snprintf(ks, sizeof(ks), "-");
		printf("%-15s %9.0f %9.3f %10s %9s ", name,
		       med(res, opt_reps, g_ops, p),
		       med(res, opt_reps, g_secs, p),
		       human(b1, sizeof(b1), med(res, opt_reps, g_rate, p)),
		       human(b2, sizeof(b2), med(res, opt_reps, g_in, p)));
		if (usf >= 0)
			printf("%9.2f", usf);
		else
			printf("%9s", "-");
		printf(" %9s %9s\n",
		       human(b3, sizeof(b3), med(res, opt_reps, g_out, p)), ks);
	}
	printf("\npool:     compression ratio %.2fx, memory efficiency %.2fx "
	       "(%.0f MiB stored in a %.0f MiB pool)%s\n",
	       med(res, opt_reps, g_ratio, 0), med(res, opt_reps, g_eff, 0),
	       med(res, opt_reps, g_stored, 0), med(res, opt_reps, g_pool, 0),
	       show_kernel ? "; kernel zram: 2.28x / 2.22x" : "");
	printf("eviction: uswap_pageout of %s resident dirty pages: %.2f us "
	       "per page%s\n",
	       human(b4, sizeof(b4), med(res, opt_reps, g_ops, PH_PAGEOUT)),
	       med(res, opt_reps, g_po_us, 0),
	       show_kernel ? "; kernel swap-out to zram: 6-8 us" : "");
	if (med(res, opt_reps, g_ops, PH_PAGEOUT) <
	    (double)pageout_pages(cfg.limit))
		printf("          (of a range of %zu pages: the others were "
		       "not resident or could not be stored)\n",
		       pageout_pages(cfg.limit));
	printf("bench_core: OK, all data verified\n");
	free(res);
	free(version);
	return 0;
}

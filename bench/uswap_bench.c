/*
 * uswap_bench.c - the standard workload (issue 4): one program that runs the
 * same phases on memory obtained one of three ways, so that RAM, the
 * kernel's swap and uswap are compared on identical work.
 *
 *   build/release/uswap-bench [--size 1G] [--ops N] [--threads 2] [--seed 1]
 *       [--uswap-lib [--limit 256M]] [--system NAME] [--rep K]
 *       [--memcg DIR] [--zram NAME] [--shim] [--lat-every N --lat-out FILE]
 *       [--full-check]
 *
 * Memory:
 *   default      plain mmap(MAP_PRIVATE|MAP_ANONYMOUS).  This is "ram" (no
 *                limit), "kernel" (bench/run.sh puts the process in a memory
 *                cgroup with zram as swap) and "uswap-run" (the LD_PRELOAD
 *                shim takes the mmap over; `uswap run` starts the program).
 *   --uswap-lib  uswap_map() through the library, limit --limit.
 *
 * Phases, each timed on its own (ops = --ops, default one per page):
 *   populate     write every page in order (version 1)
 *   seq_read     read every page in order
 *   rand_read    uniform random reads
 *   rand_write   uniform random writes (the whole page, next version)
 *   zipf_read    Zipf(0.99) reads, the hot pages scattered over the arena
 *   mt_read      uniform random reads shared by --threads threads
 *   verify       every byte of every page against its expected version
 * Page content is demo/workload.h's: about 2.3x with LZ4, index, version and
 * a hash stamped in.  A timed read loads the page's header and footer and
 * checks both (the bytes it reads); --full-check makes every timed read
 * compare the whole page.  The verify phase compares every byte of every
 * page.  Any mismatch: a report on stderr and exit 1.
 *
 * Major faults per phase ("faults" below), by memory kind:
 *   kernel, ram  the process's majflt (getrusage; every thread).  A zram
 *                swap-in is one major fault per page (no readahead).
 *   uswap-lib    uswap_stats() swapins: pages read from the pool, readahead
 *                included (the engine's own count; uffd-resolved faults are
 *                minor faults to the kernel).
 *   uswap-run    the same counter, read from the stats file the shim
 *                publishes (/dev/shm/uswap.<pid>, src/statsfile.h); the
 *                program waits, outside the timed part, for a snapshot newer
 *                than the phase boundary.  Without a stats file: minflt
 *                (uffd-resolved faults count as minor), marked as such.
 * us_per_fault = phase time / faults: the whole phase's cost per fault,
 * workload included (a RAM run of the same phase says how much that is).
 * cpu_secs: the process's user + system time over the phase, every thread
 * (uswap's handler and evictor threads included; the kernel's reclaim and
 * swap-in in the faulting task included, kswapd not): less sensitive to a
 * busy machine than the wall-clock time.
 *
 * Output on stdout, one "key=value" record per line, for bench/run.sh:
 *   config ...       the run's parameters
 *   phase name=...   one per phase
 *   mem ...          memory at the end (before unmapping)
 *   result ok
 * With --lat-every N, every Nth access of rand_read and zipf_read whose page
 * mincore(2) reports not resident is timed alone (one load); the latencies
 * go to --lat-out as CSV "system,rep,phase,latency_ns" (bench/plot.sh cdf).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "statsfile.h"
#include "uswap.h"
#include "workload.h"

#define MAX_REPORTS 10
#define MAX_THREADS 64

enum {
	PH_POPULATE,
	PH_SEQ_READ,
	PH_RAND_READ,
	PH_RAND_WRITE,
	PH_ZIPF_READ,
	PH_MT_READ,
	PH_VERIFY,
	NPHASES
};

static const char *const phase_name[NPHASES] = {
	"populate", "seq_read", "rand_read", "rand_write",
	"zipf_read", "mt_read", "verify",
};

/* Where the per-phase fault count comes from. */
enum fault_src { SRC_MAJFLT, SRC_LIB, SRC_STATSFILE, SRC_MINFLT };
static const char *const src_name[] = { "majflt", "swapins", "statsfile",
					"minflt" };

/* Options. */
static size_t opt_size = (size_t)1 << 30, opt_limit;
static uint64_t opt_ops, opt_seed = 1;
static unsigned opt_threads = 2, opt_rep = 1, opt_lat_every;
static const char *opt_system = "ram", *opt_memcg, *opt_zram, *opt_lat_out;
static int opt_lib, opt_shim, opt_full_check, opt_stats;

/* State. */
static struct uswap *us;
static unsigned char *arena;
static size_t npages;
static uint32_t *version;	/* expected version per page */
static struct wl_zipf zipf;
static atomic_ullong nbad;
static enum fault_src fsrc = SRC_MAJFLT;
static const struct uswap_statsfile *sfile;	/* the shim's, read-only */

/* Sampled fault latencies. */
struct lat {
	uint8_t phase;
	uint32_t ns;
};
static struct lat *lat;
static size_t nlat, lat_cap;

static void usage(FILE *f)
{
	fprintf(f,
		"usage: uswap-bench [options]\n"
		"  --size SIZE       arena (default 1G)\n"
		"  --ops N           accesses per random phase (default: one per page)\n"
		"  --threads T       threads of mt_read (default 2)\n"
		"  --seed S          content and access seed (default 1)\n"
		"  --uswap-lib       map the arena with uswap_map() (else plain mmap)\n"
		"  --limit SIZE      uswap's resident limit with --uswap-lib\n"
		"                    (default USWAP_LIMIT or 256M)\n"
		"  --system NAME     label of the output (default ram)\n"
		"  --rep K           repetition number, for the output\n"
		"  --memcg DIR       report this memory cgroup's usage at the end\n"
		"  --zram NAME       report /sys/block/NAME/mm_stat at the end\n"
		"  --shim            expect the LD_PRELOAD shim's stats file\n"
		"  --lat-every N     time every Nth random/zipf access that faults\n"
		"  --lat-out FILE    append those latencies as CSV\n"
		"  --full-check      timed reads compare the whole page, not the stamp\n"
		"  --stats           print uswap's statistics after every phase\n"
		"                    (stderr; --uswap-lib)\n");
}

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	static const char msg[] = "uswap-bench: FAIL: SIGBUS in the arena "
				  "(a page the backend could not read)\n";
	(void)sig;
	(void)si;
	(void)uc;
	(void)!write(2, msg, sizeof(msg) - 1);
	_exit(1);
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

static inline void read_page(int ph, size_t i)
{
	size_t bad = opt_full_check ?
		wl_check_page(page_at(i), i, version[i], opt_seed) :
		wl_check_stamp(page_at(i), i, version[i], opt_seed);

	if (bad)
		report_bad(phase_name[ph], i, bad);
}

static inline void write_page(size_t i)
{
	version[i]++;
	wl_fill_page(page_at(i), i, version[i], opt_seed);
}

/* ------------------------------------------------------------------ */
/* Counters                                                            */

struct counts {
	uint64_t t_ns;
	uint64_t majflt, minflt;
	uint64_t cpu_ns;		/* user + system, every thread */
	uint64_t swapins, swapouts;	/* uswap only */
};

static uint64_t realtime_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* Copy the shim's snapshot under its seqlock.  0, or -EAGAIN. */
static int statsfile_copy(struct uswap_statsfile *out)
{
	for (int tries = 0; tries < 1000; tries++) {
		uint64_t s0 = __atomic_load_n(&sfile->seq, __ATOMIC_ACQUIRE);

		if (s0 & 1) {
			usleep(100);
			continue;
		}
		memcpy(out, (const void *)sfile, sizeof(*out));
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		if (__atomic_load_n(&sfile->seq, __ATOMIC_RELAXED) == s0)
			return 0;
	}
	return -EAGAIN;
}

/*
 * The shim's statistics as of now: wait (bounded, 3 s) for a snapshot
 * taken after this call began.  The process is idle meanwhile, so the
 * snapshot counts exactly the phase that just ended.
 */
static int statsfile_fresh(struct uswap_stats *st)
{
	struct uswap_statsfile f;
	uint64_t want = realtime_ns();

	for (int i = 0; i < 3000; i++) {
		if (statsfile_copy(&f) == 0 && f.update_ns >= want) {
			*st = f.stats;
			return 0;
		}
		usleep(1000);
	}
	return -ETIMEDOUT;
}

static void get_lib_stats(struct uswap_stats *st)
{
	int rc = uswap_stats(us, st);

	if (rc) {
		fprintf(stderr, "uswap-bench: uswap_stats: %s\n", strerror(-rc));
		exit(1);
	}
}

static void sample(struct counts *c)
{
	struct rusage ru;
	struct uswap_stats st;

	memset(c, 0, sizeof(*c));
	if (fsrc == SRC_LIB) {
		get_lib_stats(&st);
		c->swapins = st.swapins;
		c->swapouts = st.swapouts;
	} else if (fsrc == SRC_STATSFILE) {
		if (statsfile_fresh(&st)) {
			fprintf(stderr, "uswap-bench: the shim's stats file "
				"stopped updating; counting minor faults\n");
			fsrc = SRC_MINFLT;
		} else {
			c->swapins = st.swapins;
			c->swapouts = st.swapouts;
		}
	}
	getrusage(RUSAGE_SELF, &ru);
	c->majflt = (uint64_t)ru.ru_majflt;
	c->minflt = (uint64_t)ru.ru_minflt;
	c->cpu_ns = ((uint64_t)ru.ru_utime.tv_sec + (uint64_t)ru.ru_stime.tv_sec) *
		    1000000000ULL +
		    ((uint64_t)ru.ru_utime.tv_usec + (uint64_t)ru.ru_stime.tv_usec) *
		    1000ULL;
	c->t_ns = wl_now_ns();
}

static void phase_begin(struct counts *c)
{
	sample(c);
}

static void phase_end(struct counts *c0, int ph, uint64_t ops)
{
	uint64_t t1 = wl_now_ns();
	struct counts c1;
	double secs, faults = 0;

	sample(&c1);
	secs = (double)(t1 - c0->t_ns) / 1e9;
	switch (fsrc) {
	case SRC_MAJFLT: faults = (double)(c1.majflt - c0->majflt); break;
	case SRC_LIB:
	case SRC_STATSFILE: faults = (double)(c1.swapins - c0->swapins); break;
	case SRC_MINFLT: faults = (double)(c1.minflt - c0->minflt); break;
	}
	printf("phase system=%s rep=%u name=%s ops=%llu secs=%.6f "
	       "ops_per_s=%.1f faults=%.0f us_per_fault=%.3f fault_src=%s "
	       "majflt=%llu minflt=%llu swapins=%llu swapouts=%llu "
	       "cpu_secs=%.6f\n",
	       opt_system, opt_rep, phase_name[ph], (unsigned long long)ops,
	       secs, secs > 0 ? (double)ops / secs : 0, faults,
	       faults > 0 ? secs * 1e6 / faults : -1.0, src_name[fsrc],
	       (unsigned long long)(c1.majflt - c0->majflt),
	       (unsigned long long)(c1.minflt - c0->minflt),
	       (unsigned long long)(c1.swapins - c0->swapins),
	       (unsigned long long)(c1.swapouts - c0->swapouts),
	       (double)(c1.cpu_ns - c0->cpu_ns) / 1e9);
	fflush(stdout);
	if (opt_stats && us) {
		struct uswap_stats st;

		get_lib_stats(&st);
		fprintf(stderr, "after %s:\n", phase_name[ph]);
		uswap_stats_print(&st, stderr);
	}
	if (atomic_load(&nbad)) {
		fprintf(stderr, "uswap-bench: FAIL: %llu bad pages in phase %s\n",
			(unsigned long long)atomic_load(&nbad), phase_name[ph]);
		exit(1);
	}
}

/* ------------------------------------------------------------------ */
/* Phases                                                              */

/* A random-access read, timed alone if it is sampled and will fault. */
static inline void read_sampled(int ph, size_t i, uint64_t n)
{
	unsigned char vec;

	if (opt_lat_every && n % opt_lat_every == 0 && nlat < lat_cap &&
	    mincore(page_at(i), WL_PAGE_SIZE, &vec) == 0 && !(vec & 1)) {
		uint64_t t0 = wl_now_ns();

		(void)*(volatile unsigned char *)page_at(i);
		lat[nlat].phase = (uint8_t)ph;
		lat[nlat].ns = (uint32_t)(wl_now_ns() - t0);
		nlat++;
	}
	read_page(ph, i);
}

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
		read_page(PH_MT_READ, (size_t)wl_rng_below(&rng, npages));
	return NULL;
}

static void run_mt_read(void)
{
	struct mt_arg args[MAX_THREADS];
	pthread_barrier_t start;
	struct counts c;

	pthread_barrier_init(&start, NULL, opt_threads + 1);
	for (unsigned t = 0; t < opt_threads; t++) {
		int rc;

		args[t].id = t;
		args[t].ops = opt_ops / opt_threads +
			      (t == 0 ? opt_ops % opt_threads : 0);
		args[t].start = &start;
		rc = pthread_create(&args[t].tid, NULL, mt_reader, &args[t]);
		if (rc) {
			fprintf(stderr, "uswap-bench: pthread_create: %s\n",
				strerror(rc));
			exit(1);
		}
	}
	phase_begin(&c);
	pthread_barrier_wait(&start);
	for (unsigned t = 0; t < opt_threads; t++)
		pthread_join(args[t].tid, NULL);
	phase_end(&c, PH_MT_READ, opt_ops);
	pthread_barrier_destroy(&start);
}

/* ------------------------------------------------------------------ */
/* Memory at the end                                                   */

static long status_kib(const char *key)
{
	char line[256];
	size_t n = strlen(key);
	long v = -1;
	FILE *f = fopen("/proc/self/status", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, n) && line[n] == ':') {
			v = strtol(line + n + 1, NULL, 10);
			break;
		}
	fclose(f);
	return v;
}

/* The first number in @dir/@name, or -1. */
static long long read_num(const char *dir, const char *name)
{
	char path[512];
	long long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "r");
	if (!f)
		return -1;
	if (fscanf(f, "%lld", &v) != 1)
		v = -1;
	fclose(f);
	return v;
}

static void print_mem(void)
{
	struct uswap_stats st;
	int have_st = 0;

	printf("mem system=%s rep=%u rss_kib=%ld hwm_kib=%ld", opt_system,
	       opt_rep, status_kib("VmRSS"), status_kib("VmHWM"));
	if (fsrc == SRC_LIB) {
		get_lib_stats(&st);
		have_st = 1;
	} else if (sfile && statsfile_fresh(&st) == 0) {
		have_st = 1;
	}
	if (have_st)
		printf(" limit=%llu resident=%llu resident_peak=%llu pool=%llu "
		       "stored_orig=%llu stored_compr=%llu stored_pages=%llu "
		       "swapped_pages=%llu",
		       (unsigned long long)st.limit_bytes,
		       (unsigned long long)st.resident_bytes,
		       (unsigned long long)st.resident_peak_bytes,
		       (unsigned long long)st.pool_bytes,
		       (unsigned long long)st.stored_orig_bytes,
		       (unsigned long long)st.stored_compr_bytes,
		       (unsigned long long)st.stored_pages,
		       (unsigned long long)st.swapped_pages);
	if (opt_memcg) {
		long long u = read_num(opt_memcg, "memory.usage_in_bytes");
		long long m = read_num(opt_memcg, "memory.max_usage_in_bytes");

		if (u < 0) {	/* cgroup v2 */
			u = read_num(opt_memcg, "memory.current");
			m = read_num(opt_memcg, "memory.peak");
		}
		printf(" cg_usage=%lld cg_max_usage=%lld", u, m);
	}
	if (opt_zram) {
		char path[256];
		unsigned long long v[9] = { 0 };
		FILE *f;

		snprintf(path, sizeof(path), "/sys/block/%s/mm_stat", opt_zram);
		f = fopen(path, "r");
		if (f && fscanf(f, "%llu %llu %llu %llu %llu %llu %llu %llu",
				&v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6],
				&v[7]) >= 5)
			printf(" zram_orig=%llu zram_compr=%llu zram_mem_used=%llu "
			       "zram_mem_used_max=%llu zram_same_pages=%llu",
			       v[0], v[1], v[2], v[4], v[5]);
		if (f)
			fclose(f);
	}
	printf("\n");
}

/* ------------------------------------------------------------------ */

static int parse_u64(const char *s, uint64_t *out)
{
	char *end;

	errno = 0;
	*out = strtoull(s, &end, 0);
	return errno || end == s || *end ? -EINVAL : 0;
}

static void open_statsfile(void)
{
	const char *dir = getenv("USWAP_STATS_DIR");
	char path[512];
	int fd = -1;

	snprintf(path, sizeof(path), "%s/%s%d",
		 dir && *dir ? dir : USWAP_STATSFILE_DIR,
		 USWAP_STATSFILE_PREFIX, (int)getpid());
	/* The shim may publish its file a little after the first mapping. */
	for (int i = 0; i < (opt_shim ? 200 : 1) && fd < 0; i++) {
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0 && opt_shim)
			usleep(5000);
	}
	if (fd >= 0) {
		struct stat sb;
		void *p = MAP_FAILED;

		if (fstat(fd, &sb) == 0 &&
		    (size_t)sb.st_size >= sizeof(struct uswap_statsfile))
			p = mmap(NULL, sizeof(struct uswap_statsfile), PROT_READ,
				 MAP_SHARED, fd, 0);
		close(fd);
		if (p != MAP_FAILED) {
			const struct uswap_statsfile *f = p;

			if (!memcmp(f->magic, USWAP_STATSFILE_MAGIC, 8) &&
			    f->version == USWAP_STATSFILE_VERSION &&
			    f->size == sizeof(*f)) {
				sfile = f;
				fsrc = SRC_STATSFILE;
				return;
			}
			fprintf(stderr, "uswap-bench: %s: unknown layout\n", path);
			munmap(p, sizeof(struct uswap_statsfile));
		}
	}
	if (opt_shim) {
		fprintf(stderr, "uswap-bench: no stats file %s from the shim: "
			"counting minor faults (uffd-resolved faults are minor "
			"to the kernel)\n", path);
		fsrc = SRC_MINFLT;
	}
}

int main(int argc, char **argv)
{
	struct sigaction sa;
	struct wl_rng rng;
	struct counts c;
	size_t size, i;
	uint64_t n, v;

	for (int a = 1; a < argc; a++) {
		const char *o = argv[a], *val = a + 1 < argc ? argv[a + 1] : NULL;
		int bad = 0;

		if (!strcmp(o, "-h") || !strcmp(o, "--help")) {
			usage(stdout);
			return 0;
		} else if (!strcmp(o, "--uswap-lib")) {
			opt_lib = 1;
			continue;
		} else if (!strcmp(o, "--shim")) {
			opt_shim = 1;
			continue;
		} else if (!strcmp(o, "--stats")) {
			opt_stats = 1;
			continue;
		} else if (!strcmp(o, "--full-check")) {
			opt_full_check = 1;
			continue;
		} else if (!val) {
			bad = 1;
		} else if (!strcmp(o, "--size")) {
			bad = wl_parse_size(val, &opt_size);
		} else if (!strcmp(o, "--limit")) {
			bad = wl_parse_size(val, &opt_limit);
		} else if (!strcmp(o, "--ops")) {
			bad = parse_u64(val, &opt_ops) || !opt_ops;
		} else if (!strcmp(o, "--threads")) {
			bad = parse_u64(val, &v) || !v || v > MAX_THREADS;
			opt_threads = (unsigned)v;
		} else if (!strcmp(o, "--seed")) {
			bad = parse_u64(val, &opt_seed);
		} else if (!strcmp(o, "--rep")) {
			bad = parse_u64(val, &v) || v > 1000000;
			opt_rep = (unsigned)v;
		} else if (!strcmp(o, "--system")) {
			opt_system = val;
		} else if (!strcmp(o, "--memcg")) {
			opt_memcg = val;
		} else if (!strcmp(o, "--zram")) {
			opt_zram = val;
		} else if (!strcmp(o, "--lat-every")) {
			bad = parse_u64(val, &v) || v > 1000000;
			opt_lat_every = (unsigned)v;
		} else if (!strcmp(o, "--lat-out")) {
			opt_lat_out = val;
		} else {
			bad = 1;
		}
		if (bad) {
			fprintf(stderr, "uswap-bench: bad option or value: %s %s\n",
				o, val ? val : "");
			usage(stderr);
			return 2;
		}
		a++;
	}
	if (sysconf(_SC_PAGESIZE) != WL_PAGE_SIZE) {
		fprintf(stderr, "uswap-bench: needs 4 KiB pages\n");
		return 2;
	}
	npages = opt_size / WL_PAGE_SIZE;
	if (npages < 64) {
		fprintf(stderr, "uswap-bench: --size must be at least 256K\n");
		return 2;
	}
	size = npages * WL_PAGE_SIZE;
	if (!opt_ops)
		opt_ops = npages;
	if (opt_lat_every && !opt_lat_out)
		opt_lat_every = 0;
	if (opt_lat_every) {
		lat_cap = (size_t)(2 * opt_ops / opt_lat_every + 16);
		lat = calloc(lat_cap, sizeof(*lat));
	}
	version = calloc(npages, sizeof(*version));
	if (!version || (opt_lat_every && !lat)) {
		fprintf(stderr, "uswap-bench: out of memory\n");
		return 2;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_sigbus;
	sa.sa_flags = SA_SIGINFO;
	sigaction(SIGBUS, &sa, NULL);

	if (opt_lib) {
		struct uswap_config cfg;
		char err[256];

		if (uswap_config_init(&cfg, err, sizeof(err))) {
			fprintf(stderr, "uswap-bench: configuration: %s\n", err);
			return 2;
		}
		if (opt_limit)
			cfg.limit = opt_limit;
		if (uswap_config_check(&cfg, err, sizeof(err))) {
			fprintf(stderr, "uswap-bench: configuration: %s\n", err);
			return 2;
		}
		us = uswap_open(&cfg);
		if (!us) {
			fprintf(stderr, "uswap-bench: uswap_open: %s%s\n",
				strerror(errno),
				errno == EPERM || errno == EACCES ?
				" (userfaultfd needs root or /dev/userfaultfd)" : "");
			return 2;
		}
		arena = uswap_map(us, size);
		if (!arena) {
			fprintf(stderr, "uswap-bench: uswap_map: %s\n",
				strerror(errno));
			return 2;
		}
		fsrc = SRC_LIB;
		opt_limit = cfg.limit;
	} else {
		arena = mmap(NULL, size, PROT_READ | PROT_WRITE,
			     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (arena == MAP_FAILED) {
			fprintf(stderr, "uswap-bench: mmap: %s\n", strerror(errno));
			return 2;
		}
		write_page(0);		/* the shim, if any, is at work now */
		version[0] = 0;
		open_statsfile();
	}
	printf("config system=%s rep=%u size=%zu pages=%zu ops=%llu "
	       "threads=%u seed=%llu memory=%s limit=%zu fault_src=%s "
	       "check=%s pid=%d\n",
	       opt_system, opt_rep, size, npages, (unsigned long long)opt_ops,
	       opt_threads, (unsigned long long)opt_seed,
	       opt_lib ? "uswap_map" : "mmap", opt_lib ? opt_limit : 0,
	       src_name[fsrc], opt_full_check ? "full" : "stamp", (int)getpid());
	fflush(stdout);

	wl_zipf_init(&zipf, npages, 0.99, opt_seed);

	phase_begin(&c);
	for (i = 0; i < npages; i++)
		write_page(i);
	phase_end(&c, PH_POPULATE, npages);

	phase_begin(&c);
	for (i = 0; i < npages; i++)
		read_page(PH_SEQ_READ, i);
	phase_end(&c, PH_SEQ_READ, npages);

	wl_rng_seed(&rng, opt_seed ^ 0x1111);
	phase_begin(&c);
	for (n = 0; n < opt_ops; n++)
		read_sampled(PH_RAND_READ, (size_t)wl_rng_below(&rng, npages), n);
	phase_end(&c, PH_RAND_READ, opt_ops);

	wl_rng_seed(&rng, opt_seed ^ 0x2222);
	phase_begin(&c);
	for (n = 0; n < opt_ops; n++)
		write_page((size_t)wl_rng_below(&rng, npages));
	phase_end(&c, PH_RAND_WRITE, opt_ops);

	wl_rng_seed(&rng, opt_seed ^ 0x3333);
	phase_begin(&c);
	for (n = 0; n < opt_ops; n++)
		read_sampled(PH_ZIPF_READ, (size_t)wl_zipf_next(&zipf, &rng), n);
	phase_end(&c, PH_ZIPF_READ, opt_ops);

	run_mt_read();

	phase_begin(&c);
	for (i = 0; i < npages; i++) {
		size_t bad = wl_check_page(page_at(i), i, version[i], opt_seed);
		if (bad)
			report_bad(phase_name[PH_VERIFY], i, bad);
	}
	phase_end(&c, PH_VERIFY, npages);

	print_mem();

	if (opt_lat_every) {
		FILE *f = fopen(opt_lat_out, "a");

		if (!f) {
			fprintf(stderr, "uswap-bench: %s: %s\n", opt_lat_out,
				strerror(errno));
			return 1;
		}
		for (size_t k = 0; k < nlat; k++)
			fprintf(f, "%s,%u,%s,%u\n", opt_system, opt_rep,
				phase_name[lat[k].phase], lat[k].ns);
		fclose(f);
	}
	if (opt_lib) {
		int rc = uswap_unmap(us, arena, size);

		if (!rc)
			rc = uswap_close(us);
		if (rc) {
			fprintf(stderr, "uswap-bench: FAIL: unmap/close: %s\n",
				strerror(-rc));
			return 1;
		}
	} else {
		munmap(arena, size);
	}
	printf("result system=%s rep=%u ok\n", opt_system, opt_rep);
	free(version);
	free(lat);
	return 0;
}

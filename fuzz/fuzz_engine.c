/*
 * fuzz_engine.c - the page-state machine (the whole engine over
 * userfaultfd) against a reference model.
 *
 * Once per process: uswap_open() (limit 64 KiB, 2 handler threads,
 * readahead 4; lz4, or FUZZ_ENGINE_COMPRESSOR=zstd) and a helper thread.
 * If userfaultfd is not usable here the target prints "FUZZ SKIP" and
 * exits 0.
 *
 * Per input: a fresh region of 544 pages is mapped (and unmapped at the
 * end, so inputs do not depend on each other but for the clock and the
 * backend's free lists); the input works on its last 64 pages, [480, 544),
 * which straddle the 512-page chunk (PTL) boundary.  The first byte sets
 * the limit (16..79 pages); then up to MAX_OPS (48) operations, until
 * they have touched BUDGET (640) pages (a range counts its length), so that
 * an input costs a few milliseconds:
 *
 *   write page (content of 8 kinds, version stamped), poke one byte, read
 *   page / byte, read or write a run of pages (a stream: readahead and
 *   fault-around), discard / pageout / prefetch a range, set_limit (and a
 *   refused one, < 16 pages), API misuse (-EINVAL), validate now, set a
 *   delay the pager threads take at one hook point (widens race windows),
 *   and "parallel": the helper thread reads or writes a range while this
 *   thread pages it out / prefetches / discards it.
 *
 * The model is a malloc'ed copy of the 64 pages: what each must read.
 * Checked: every read equals the model (zeros after discard); pageout
 * returns 0..n and prefetch >= 0 (never -EIO: no backend error here; more
 * than n happens, counted as a NOTE); set_limit 0;
 * misuse -EINVAL.  In a parallel run with a discard, each byte read or
 * left must be the old/new value or zero (a discard racing a copy may
 * leave a page half written, never stale data).  After each input:
 * uswap__validate() passes (it waits for quiescence), no page was
 * poisoned (load_failures 0), resident <= limit unless over_limit counted
 * a reason; then every page reads back as the model says (under a limit
 * that holds them all), validate again, and after unmap nothing is stored
 * or resident.
 */
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz_common.h"
#include "uswap.h"
#include "testing.h"

#define REGION_PAGES 544
#define WIN_FIRST 480		/* the window: pages [480, 544) of the region */
#define NP 64
#define MAX_OPS 48
#define BUDGET 640		/* page touches per input (streams, ranges) */
#define MIN_LIMIT_PAGES 16

static struct uswap *us;
static uint8_t *region;		/* REGION_PAGES pages, mapped per input */
static uint8_t *mem;		/* region + WIN_FIRST pages */
static uint8_t *ref;		/* NP pages: the model */
static uint64_t version;

/* ------------------------------------------------------------ hook */

static const char *const points[] = {
	"fault", "fault_marker", "swapin_marker", "swapin_read",
	"readahead_read", "wp_dropped", "evict_moved", "evict_stored",
	"discard_done",
};
#define NPOINTS (sizeof(points) / sizeof(points[0]))
static _Atomic int delay_point = -1;
static _Atomic unsigned delay_us;

static void hook(const char *point, struct uswap *u, uintptr_t addr)
{
	int p = atomic_load_explicit(&delay_point, memory_order_relaxed);

	(void)u;
	(void)addr;
	if (p >= 0 && !strcmp(point, points[p]))
		usleep(atomic_load_explicit(&delay_us, memory_order_relaxed));
}

/* ---------------------------------------------------------- content */

static void gen(uint8_t *pg, unsigned kind, unsigned idx, uint64_t ver)
{
	fz_page(pg, kind, ver * 1000003u + idx, (unsigned)(ver ^ idx), NULL, 0);
	if (kind % PG_KINDS > PG_NEAR_SAME && kind % PG_KINDS != PG_INPUT) {
		/* stamp index and version: a page swapped for another shows */
		memcpy(pg, &idx, sizeof(idx));
		memcpy(pg + 8, &ver, sizeof(ver));
	}
}

static void state_note(unsigned p, char *buf, size_t len)
{
	uint32_t payload = 0;
	int st = uswap__pte_state(us, mem + (size_t)p * FZ_PAGE, &payload);

	snprintf(buf, len, "entry state %d payload %u", st, payload);
}

static void compare(unsigned p, const uint8_t *got, const char *what)
{
	const uint8_t *want = ref + (size_t)p * FZ_PAGE;

	if (!memcmp(got, want, FZ_PAGE))
		return;
	unsigned i = 0, n = 0;
	char st[64];

	while (got[i] == want[i])
		i++;
	for (unsigned k = 0; k < FZ_PAGE; k++)
		n += got[k] != want[k];
	state_note(p, st, sizeof(st));
	FZ_CHECK(0, "%s: page %u (region page %u): %u bytes differ, first at %u: "
		 "read %#x, expected %#x (%s)", what, p, WIN_FIRST + p, n, i,
		 got[i], want[i], st);
}

static void read_page(unsigned p, const char *what)
{
	static uint8_t buf[FZ_PAGE];

	memcpy(buf, mem + (size_t)p * FZ_PAGE, FZ_PAGE);
	compare(p, buf, what);
}

static void write_page(unsigned p, unsigned kind)
{
	uint8_t *r = ref + (size_t)p * FZ_PAGE;

	gen(r, kind, p, ++version);
	memcpy(mem + (size_t)p * FZ_PAGE, r, FZ_PAGE);
}

/* ------------------------------------------------------- the helper */

enum { H_READ, H_WRITE, H_READ_OR_ZERO };
struct job {
	int mode;
	unsigned a, n, kind;
	uint64_t ver;		/* H_WRITE: versions ver, ver+1, ... */
};
static struct job job;
static sem_t job_go, job_done;
static uint8_t helper_new[NP][FZ_PAGE];	/* H_WRITE: what was written */

static void *helper_main(void *arg)
{
	static uint8_t buf[FZ_PAGE];

	(void)arg;
	for (;;) {
		while (sem_wait(&job_go))
			;
		for (unsigned p = job.a; p < job.a + job.n; p++) {
			uint8_t *page = mem + (size_t)p * FZ_PAGE;

			switch (job.mode) {
			case H_READ:
				memcpy(buf, page, FZ_PAGE);
				compare(p, buf, "parallel read");
				break;
			case H_READ_OR_ZERO: {
				const uint8_t *want = ref + (size_t)p * FZ_PAGE;

				memcpy(buf, page, FZ_PAGE);
				for (unsigned i = 0; i < FZ_PAGE; i++)
					FZ_CHECK(buf[i] == want[i] || buf[i] == 0,
						 "read racing a discard: page %u byte %u is "
						 "%#x: neither old %#x nor zero", p, i,
						 buf[i], want[i]);
				break;
			}
			case H_WRITE:
				gen(helper_new[p], job.kind, p, job.ver + p);
				memcpy(page, helper_new[p], FZ_PAGE);
				break;
			}
		}
		sem_post(&job_done);
	}
	return NULL;
}

/* ----------------------------------------------------------- set-up */

static void setup(void)
{
	struct uswap_config c;
	char err[256];
	pthread_t th;
	const char *comp = getenv("FUZZ_ENGINE_COMPRESSOR");

	FZ_CHECK(uswap_config_init(&c, err, sizeof(err)) == 0, "config: %s", err);
	c.limit = MIN_LIMIT_PAGES * FZ_PAGE;
	c.threads = 2;
	c.readahead_max = 4;
	if (comp)
		snprintf(c.compressor, sizeof(c.compressor), "%s", comp);
	atomic_store(&uswap__hook, hook);
	us = uswap_open(&c);
	if (!us && (errno == EPERM || errno == ENOSYS || errno == EACCES ||
		    errno == EINVAL)) {
		fprintf(stderr, "FUZZ SKIP: userfaultfd not usable here: %s\n",
			strerror(errno));
		exit(0);
	}
	FZ_CHECK(us, "uswap_open: %s", strerror(errno));
	ref = malloc((size_t)NP * FZ_PAGE);
	FZ_CHECK(ref, "malloc");
	sem_init(&job_go, 0, 0);
	sem_init(&job_done, 0, 0);
	FZ_CHECK(pthread_create(&th, NULL, helper_main, NULL) == 0, "helper");
	pthread_detach(th);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	setup();
	return 0;
}

/*
 * Wait (briefly) until no page of the window is in flight: uswap__validate()
 * polls in 10 ms steps, which would dominate an input's time; its first
 * sweep then usually passes.
 */
static void quiesce(void)
{
	for (int i = 0; i < 5000; i++) {
		struct uswap_stats st;
		uint64_t present = 0;
		bool busy = false;

		for (unsigned p = 0; p < NP && !busy; p++) {
			int s = uswap__pte_state(us, mem + (size_t)p * FZ_PAGE, NULL);

			/* in flight: MARKER (design B), a claimed SWAPPED
			 * page (A, C: USWAP_SWAPIN), or EVICTING */
			busy = s == USWAP_T_MARKER || s == USWAP_T_EVICTING ||
			       uswap__swapin_inflight(us, mem + (size_t)p * FZ_PAGE);
			present += s == USWAP_T_PRESENT;
		}
		/* an eviction that just finished has yet to unreserve */
		if (!busy && uswap_stats(us, &st) == 0 &&
		    st.resident_bytes == present * FZ_PAGE)
			return;
		usleep(20);
	}
}

static void validate(const char *when)
{
	char msg[256];

	quiesce();

	FZ_CHECK(uswap__validate(us, msg, sizeof(msg)) == 0, "%s: invariant: %s",
		 when, msg);
}

/* A range of the window: first page and count (>= 1). */
static void range(struct fz *f, unsigned *a, unsigned *n)
{
	*a = fz_u8(f) % NP;
	*n = 1 + fz_u8(f) % (NP - *a);
	if (fz_u8(f) & 1 && *n > 8)	/* favour short ranges */
		*n = 1 + *n % 8;
}

static void do_pageout(unsigned a, unsigned n)
{
	long r = uswap_pageout(us, mem + (size_t)a * FZ_PAGE, (size_t)n * FZ_PAGE);

	FZ_CHECK(r >= 0 && r <= (long)n, "pageout of %u pages: %ld", n, r);
}

static void do_prefetch(unsigned a, unsigned n)
{
	long r = uswap_prefetch(us, mem + (size_t)a * FZ_PAGE, (size_t)n * FZ_PAGE);

	/* r counts reads: a page read ahead, evicted again (age 0) before the
	 * loop reaches it and read again counts twice, so r may exceed n */
	FZ_CHECK(r >= 0, "prefetch of %u pages: %ld", n, r);
	if (r > (long)n)
		fz_tally("NOTE prefetch returned more than the pages in its range");
}

static void do_discard(unsigned a, unsigned n)
{
	int r = uswap_discard(us, mem + (size_t)a * FZ_PAGE, (size_t)n * FZ_PAGE);

	FZ_CHECK(r == 0, "discard: %d", r);
}

static unsigned parallel(struct fz *f)
{
	unsigned a, n, mode = fz_u8(f), rounds = 1 + fz_u8(f) % 4, kind = fz_u8(f);

	range(f, &a, &n);
	job.a = a;
	job.n = n;
	job.kind = kind;
	job.ver = version + 1;
	version += NP + 1;
	switch (mode % 4) {
	case 0:	/* read while paged out and back in */
	case 1:	/* write while paged out and back in */
		job.mode = mode % 4 ? H_WRITE : H_READ;
		sem_post(&job_go);
		for (unsigned i = 0; i < rounds; i++) {
			do_pageout(a, n);
			do_prefetch(a, n);
		}
		while (sem_wait(&job_done))
			;
		if (job.mode == H_WRITE)
			for (unsigned p = a; p < a + n; p++)
				memcpy(ref + (size_t)p * FZ_PAGE, helper_new[p], FZ_PAGE);
		break;
	case 2:	/* read while paged out, then discarded */
		job.mode = H_READ_OR_ZERO;
		sem_post(&job_go);
		if (rounds & 1)
			do_pageout(a, n);
		do_discard(a, n);
		while (sem_wait(&job_done))
			;
		memset(ref + (size_t)a * FZ_PAGE, 0, (size_t)n * FZ_PAGE);
		break;
	case 3: {	/* write while discarded: each byte new or zero */
		static uint8_t buf[FZ_PAGE];

		job.mode = H_WRITE;
		sem_post(&job_go);
		if (rounds & 1)
			do_pageout(a, n);
		do_discard(a, n);
		while (sem_wait(&job_done))
			;
		for (unsigned p = a; p < a + n; p++) {
			memcpy(buf, mem + (size_t)p * FZ_PAGE, FZ_PAGE);
			for (unsigned i = 0; i < FZ_PAGE; i++)
				FZ_CHECK(buf[i] == helper_new[p][i] || buf[i] == 0,
					 "write racing a discard: page %u byte %u is %#x: "
					 "neither written %#x nor zero", p, i, buf[i],
					 helper_new[p][i]);
			memcpy(ref + (size_t)p * FZ_PAGE, buf, FZ_PAGE);
		}
		break;
	}
	}
	return n * (1 + rounds);
}

static void misuse(struct fz *f)
{
	uint8_t k = fz_u8(f);

	switch (k % 6) {
	case 0:
		FZ_CHECK(uswap_discard(us, mem + 1, FZ_PAGE) == -EINVAL, "unaligned discard");
		break;
	case 1:
		FZ_CHECK(uswap_pageout(us, mem, FZ_PAGE + 1) == -EINVAL, "unaligned pageout");
		break;
	case 2:	/* past the region's end */
		FZ_CHECK(uswap_prefetch(us, mem, (size_t)(NP + 1) * FZ_PAGE) == -EINVAL,
			 "prefetch past the end");
		break;
	case 3:
		FZ_CHECK(uswap_discard(us, mem, 0) == -EINVAL, "empty discard");
		break;
	case 4:
		FZ_CHECK(uswap_set_limit(us, (MIN_LIMIT_PAGES - 1 - k % 8) * (size_t)FZ_PAGE) ==
			 -EINVAL, "limit below 16 pages");
		break;
	case 5:
		FZ_CHECK(uswap_unmap(us, region, FZ_PAGE) == -EINVAL, "partial unmap");
		break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz f = { data, size };
	struct uswap_stats st0, st;
	unsigned limit = MIN_LIMIT_PAGES + fz_u8(&f) % 64;

	FZ_CHECK(uswap_set_limit(us, (size_t)limit * FZ_PAGE) == 0, "set_limit");
	atomic_store(&delay_point, -1);
	region = uswap_map(us, (size_t)REGION_PAGES * FZ_PAGE);
	FZ_CHECK(region, "uswap_map: %s", strerror(errno));
	mem = region + (size_t)WIN_FIRST * FZ_PAGE;
	memset(ref, 0, (size_t)NP * FZ_PAGE);
	FZ_CHECK(uswap_stats(us, &st0) == 0, "stats");

	int budget = BUDGET;

	for (unsigned op = 0; op < MAX_OPS && fz_left(&f) && budget > 0; op++) {
		uint8_t k = fz_u8(&f);
		unsigned a = 0, n = 1;

		switch (k % 16) {
		case 0:
		case 1:
			write_page(fz_u8(&f) % NP, fz_u8(&f));
			break;
		case 2: {	/* poke a byte: a write fault on a clean page */
			unsigned p = fz_u8(&f) % NP, off = fz_u16(&f) % FZ_PAGE;
			uint8_t v = fz_u8(&f);

			mem[(size_t)p * FZ_PAGE + off] = v;
			ref[(size_t)p * FZ_PAGE + off] = v;
			break;
		}
		case 3:
			read_page(fz_u8(&f) % NP, "read");
			break;
		case 4: {
			unsigned p = fz_u8(&f) % NP, off = fz_u16(&f) % FZ_PAGE;
			volatile uint8_t *b = &mem[(size_t)p * FZ_PAGE + off];

			if (*b != ref[(size_t)p * FZ_PAGE + off])
				read_page(p, "read byte");	/* reports it */
			break;
		}
		case 5:		/* a stream of reads */
			range(&f, &a, &n);
			for (unsigned p = a; p < a + n; p++)
				read_page(p, "stream read");
			break;
		case 6: {	/* a stream of writes */
			unsigned kind = fz_u8(&f);

			range(&f, &a, &n);
			for (unsigned p = a; p < a + n; p++)
				write_page(p, kind);
			break;
		}
		case 7:
			range(&f, &a, &n);
			do_discard(a, n);
			memset(ref + (size_t)a * FZ_PAGE, 0, (size_t)n * FZ_PAGE);
			break;
		case 8:
		case 9:
			range(&f, &a, &n);
			do_pageout(a, n);
			break;
		case 10:
			range(&f, &a, &n);
			do_prefetch(a, n);
			break;
		case 11:
			limit = MIN_LIMIT_PAGES + fz_u8(&f) % 80;
			FZ_CHECK(uswap_set_limit(us, (size_t)limit * FZ_PAGE) == 0,
				 "set_limit(%u pages)", limit);
			break;
		case 12:
			n = parallel(&f);
			break;
		case 13:
			validate("mid-input");
			break;
		case 14: {	/* pager threads pause at one point */
			uint8_t p = fz_u8(&f);

			atomic_store(&delay_us, 1 + fz_u8(&f) % 100);
			atomic_store(&delay_point, p % (NPOINTS + 1) == NPOINTS ? -1 :
				     (int)(p % (NPOINTS + 1)));
			break;
		}
		case 15:
			misuse(&f);
			break;
		}
		budget -= (int)n;
	}
	atomic_store(&delay_point, -1);

	validate("end of input");
	FZ_CHECK(uswap_stats(us, &st) == 0, "stats");
	FZ_CHECK(st.load_failures == 0, "a load failed: a page was poisoned");
	FZ_CHECK(st.resident_bytes <= st.limit_bytes || st.over_limit > st0.over_limit,
		 "quiescent resident %llu over the limit %llu, over_limit not counted",
		 (unsigned long long)st.resident_bytes, (unsigned long long)st.limit_bytes);
	/* read everything back; with room for all of it, so that this check
	 * does not cost an eviction per page */
	FZ_CHECK(uswap_set_limit(us, (size_t)(NP + MIN_LIMIT_PAGES) * FZ_PAGE) == 0,
		 "set_limit");
	for (unsigned p = 0; p < NP; p++)
		read_page(p, "final check");
	validate("after the final check");
	FZ_CHECK(uswap_unmap(us, region, (size_t)REGION_PAGES * FZ_PAGE) == 0, "unmap");
	region = mem = NULL;
	FZ_CHECK(uswap_stats(us, &st) == 0, "stats");
	FZ_CHECK(st.stored_pages == 0 && st.resident_bytes == 0,
		 "after unmap: %llu slots stored, %llu bytes resident",
		 (unsigned long long)st.stored_pages, (unsigned long long)st.resident_bytes);
	return 0;
}

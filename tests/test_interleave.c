/*
 * test_interleave.c - systematic interleavings of operations on ONE page,
 * in the real engine (issue 5 part 2).
 *
 * Operations (each on a thread of its own):
 *   R  read: touch the page (a read fault if it is not mapped), then copy
 *      it out                                                    (app)
 *   W  write: touch it for writing (a missing or write-protect fault; a
 *      locked "or 0", the content unchanged), then write a whole new page,
 *      version 100 + the operation's number                      (app)
 *   X  uswap_discard of the page                                 (API)
 *   O  uswap_pageout of the page                                 (API)
 *   F  uswap_prefetch of the page                                (API)
 *   A  uswap_prefetch of the page before it and the page, the page before
 *      swapped: the page comes in as a readahead page            (API)
 * from a fresh state of the page:
 *   S  swapped (version 1 in the backend)
 *   C  resident clean (swapped in by a read: write-protected, copy kept)
 *   D  resident dirty (written, no swap copy)
 *   N  never touched (reads zeros)
 *
 * The scheduler.  Every engine thread that reaches a test hook ("fault",
 * "fault_marker", "swapin_marker", "swapin_read", "readahead_read",
 * "wp_dropped", "evict_moved", "evict_stored", "discard_done", "wait_sleep") for the
 * page stops there.  The scheduler lets one thing happen at a time, a
 * "step": start an operation's thread, or release one stopped thread.
 * After each step it waits until the process has settled: every other
 * thread off the CPU (its wait channel in /proc: stopped at a hook, asleep
 * in a page fault, a futex or poll) and in the same place over consecutive
 * looks, with no hook reached and no operation finished in between.  Then
 * nothing can move until the next step, and the enabled steps are well
 * defined: the operations not started, the threads stopped at hooks.  An
 * operation that reaches no hook (a read of a present page) finishes
 * within its start step.  A step that wakes two threads (a lock let go, a
 * page mapped) lets both run: their order is the kernel's.
 *
 * Enumeration.  A run is a sequence of choices among the enabled steps,
 * sorted by a key (operation, hook point).  For every pair of operations
 * from every state, and for a few triples, a depth-first search over the
 * choice sequences runs every ordering of the operations over their hook
 * points, including every re-fault and retry the engine makes on the way.
 * Then random triples: random state, operations and choices (seeded; the
 * seed is printed, USWAP_INTERLEAVE_SEED sets it).  A handler's hook is
 * attributed to the application operation that raised the fault when
 * only one can have (it sleeps in a page fault and slept again since its
 * last attributed fault); otherwise the key says "?" and arrival order
 * breaks ties, so a replay may diverge (counted, printed; harmless for the
 * checks, which hold for any execution).
 *
 * After each run:
 *  - no thread left asleep: every operation finishes (bounded joins), and
 *    a settled state with an unfinished operation and no stopped thread
 *    is a failure (a lost wake-up); more than MAXSTEPS steps is a failure
 *    (a retry loop);
 *  - the API calls returned what they may (discard 0, pageout 0..1,
 *    prefetch 0..pages, never -EIO);
 *  - linearizable content: some order of the operations that respects
 *    real time (one that finished before another started comes first)
 *    explains every read and the final content (reads return the last
 *    write, or version 1, or zeros after a discard);
 *  - uswap__validate: no marker or eviction left, no WAITERS, resident
 *    equal to the pages present, every named slot at count 1 and no slot
 *    held that no entry names (no leak, no double free);
 *  - entries agree with the kernel's page table (mincore): PRESENT exactly
 *    when a page is mapped (a PRESENT entry with no page is data lost,
 *    which uswap__validate cannot see: SOAK.md section 4).
 * Reads, writes and discards of the content happen under an application
 * mutex (after the touch that faults), so a step that wakes two of them
 * cannot tear a page: page-granular atomicity is the application's
 * business, not the engine's.  Word 0 of the page is only accessed
 * atomically (the touches race with copies by design).
 *
 * Environment: USWAP_INTERLEAVE_LONG=1 adds the large triples (1000-3000+
 * orderings each) and 3000 random runs; USWAP_INTERLEAVE_ONLY=S:R+W runs
 * one scenario; USWAP_INTERLEAVE_TRACE=1 prints every ordering;
 * USWAP_INTERLEAVE_VERBOSE=1 diverged replays and per-scenario outcomes of
 * the random triples; USWAP_INTERLEAVE_DEBUG=1 the enabled steps.
 */
#include <dirent.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/mman.h>
#include <sys/syscall.h>

#include "race.h"

#define NPAGES 256u		/* pairs of pages, used in turn */
#define MAXOPS 3
#define MAXSTEPS 200
#define NSLOTS 32
#define SETTLE_SAMPLES 2

enum { OP_R, OP_W, OP_X, OP_O, OP_F, OP_A, NOPKINDS };
static const char opchar[NOPKINDS] = { 'R', 'W', 'X', 'O', 'F', 'A' };
enum { ST_S, ST_C, ST_D, ST_N, NSTATES };
static const char stchar[NSTATES] = { 'S', 'C', 'D', 'N' };

static struct uswap *us;
static unsigned char *mem;
static unsigned pair_next;
static pthread_mutex_t app_mu = PTHREAD_MUTEX_INITIALIZER;

/* ---- the operations of the current run ---- */

struct op {
	int kind, id;
	pthread_t th;
	int started;			/* scheduler only */
	_Atomic int done;
	int start_step, end_step;	/* real-time order, in steps */
	long ret;
	_Atomic pid_t tid;
	uint64_t last_csw;		/* when its last fault was attributed */
	unsigned char copy[PG] __attribute__((aligned(64)));
};

static struct op ops[MAXOPS];
static int nops;
static unsigned char *page, *prev;	/* the page, the page before it */
static uint64_t page_idx;

/* ---- hooks: stop every engine thread at a point for the page ---- */

enum { SL_FREE, SL_BLOCKED, SL_RELEASED };

struct hslot {
	int state;
	pid_t tid;
	const char *point;
	uintptr_t addr;
	int op;			/* attributed operation, -1 unknown */
	uint64_t seq;		/* arrival order */
	sem_t go;
};

static struct hslot slots[NSLOTS];
static pthread_mutex_t smu = PTHREAD_MUTEX_INITIALIZER;
static _Atomic int sched_on;
static _Atomic uintptr_t hook_a, hook_b;	/* addresses scheduled */
static _Atomic uint64_t activity;		/* arrivals + completions */
static uint64_t arrivals;			/* smu */
static __thread int tls_op = -1;		/* API operation threads */

/* Which application operation a handler thread serves (smu): set when
 * the scheduler attributes its "fault" stop (OP_PENDING until then). */
#define OP_PENDING (-2)
static struct { pid_t tid; int op; } hinfo[64];
static int nhinfo;

static pid_t my_tid(void)
{
	return (pid_t)syscall(SYS_gettid);
}

/* Under smu. */
static int *hinfo_op(pid_t tid)
{
	int h;

	for (h = 0; h < nhinfo && hinfo[h].tid != tid; h++)
		;
	if (h == nhinfo) {
		if (nhinfo == 64)
			T_FAIL("too many pager threads");
		hinfo[nhinfo].tid = tid;
		hinfo[nhinfo++].op = -1;
	}
	return &hinfo[h].op;
}

static void sched_hook(const char *point, struct uswap *u, uintptr_t addr)
{
	struct hslot *s = NULL;

	(void)u;
	if (!atomic_load(&sched_on) ||
	    (addr != atomic_load(&hook_a) && addr != atomic_load(&hook_b)))
		return;
	pthread_mutex_lock(&smu);
	for (int k = 0; k < NSLOTS && !s; k++)
		if (slots[k].state == SL_FREE)
			s = &slots[k];
	if (!s)
		T_FAIL("more than %d threads stopped at hooks", NSLOTS);
	s->tid = my_tid();
	s->point = point;
	s->addr = addr;
	if (tls_op >= 0) {
		s->op = tls_op;			/* an API call's own thread */
	} else {
		int *h = hinfo_op(s->tid);	/* a handler */

		if (strcmp(point, "fault") == 0)
			*h = OP_PENDING;	/* a new message */
		s->op = *h;
	}
	s->seq = ++arrivals;
	s->state = SL_BLOCKED;
	atomic_fetch_add(&activity, 1);
	pthread_mutex_unlock(&smu);
	while (sem_wait(&s->go))
		;
	pthread_mutex_lock(&smu);
	s->state = SL_FREE;
	pthread_mutex_unlock(&smu);
}

/* ---- settling ---- */

static int read_file(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY);
	int n;

	if (fd < 0)
		return -1;
	n = (int)read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -1;
	buf[n] = 0;
	return n;
}

/* A thread's context switches (voluntary and not): it ran since the
 * last look if they changed. */
static int thread_csw(pid_t tid, uint64_t *csw)
{
	char path[64], buf[2048];
	const char *p;

	snprintf(path, sizeof(path), "/proc/self/task/%d/status", (int)tid);
	if (read_file(path, buf, sizeof(buf)) < 0)
		return -1;
	*csw = 0;
	if ((p = strstr(buf, "\nvoluntary_ctxt_switches:")))
		*csw += strtoull(p + 25, NULL, 10);
	if ((p = strstr(buf, "\nnonvoluntary_ctxt_switches:")))
		*csw += strtoull(p + 28, NULL, 10);
	return 0;
}

/*
 * Where a thread sleeps: its wait channel, or "" if it is on a CPU or
 * about to be.  (The state letter is not enough: a thread sets "S" before
 * it calls schedule(), and one preempted in between stays "S" on the run
 * queue.  The kernel reports a wait channel only for a thread that is
 * neither running, waking nor queued, and "0" otherwise.)
 */
static void wchan_of(pid_t tid, char *buf, size_t len)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/self/task/%d/wchan", (int)tid);
	if (read_file(path, buf, len) <= 0 || strcmp(buf, "0") == 0)
		buf[0] = 0;
}

/* Is the thread asleep in a page fault (waiting for userfaultfd)? */
static int in_userfault(pid_t tid)
{
	char buf[128];

	wchan_of(tid, buf, sizeof(buf));
	return strstr(buf, "userfault") != NULL;
}

#define MAXT 64
struct snap {
	int n, asleep;
	pid_t tid[MAXT];
	uint64_t where[MAXT];	/* hash of the wait channel */
};

/* Every thread but the caller and those stopped at hooks (they do
 * nothing until released): asleep, and where. */
static void take_snap(struct snap *sn, pid_t self)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *de;
	pid_t stopped[NSLOTS];
	int nstopped = 0;

	pthread_mutex_lock(&smu);
	for (int k = 0; k < NSLOTS; k++)
		if (slots[k].state == SL_BLOCKED)
			stopped[nstopped++] = slots[k].tid;
	pthread_mutex_unlock(&smu);
	if (!d)
		T_FAIL("opendir /proc/self/task");
	sn->n = 0;
	sn->asleep = 1;
	while ((de = readdir(d)) && sn->asleep) {
		pid_t tid = (pid_t)atoi(de->d_name);
		char w[128];
		uint64_t h = 1469598103934665603ull;

		int skip = tid <= 0 || tid == self;

		for (int k = 0; k < nstopped && !skip; k++)
			skip = stopped[k] == tid;
		if (skip)
			continue;
		wchan_of(tid, w, sizeof(w));
		if (!w[0]) {
			/* running, or gone: tell them apart */
			char path[64];

			snprintf(path, sizeof(path), "/proc/self/task/%d", (int)tid);
			if (access(path, F_OK) == 0)
				sn->asleep = 0;
			continue;
		}
		for (const char *p = w; *p; p++)
			h = (h ^ (unsigned char)*p) * 1099511628211ull;
		if (sn->n < MAXT) {
			sn->tid[sn->n] = tid;
			sn->where[sn->n++] = h;
		}
	}
	closedir(d);
}

static int snap_same(const struct snap *a, const struct snap *b)
{
	if (a->n != b->n)
		return 0;
	for (int i = 0; i < a->n; i++)
		if (a->tid[i] != b->tid[i] || a->where[i] != b->where[i])
			return 0;
	return 1;
}

static unsigned long n_settles;
static uint64_t settle_ns;

/*
 * Wait until nothing can move without the scheduler: every other thread
 * off the CPU, in the same place, and no hook reached and no operation
 * finished, over consecutive looks.  (Whatever wakes a thread ends, in
 * this test, in a hook, a finished operation or a new place to sleep.)
 */
static void settle(void)
{
	pid_t self = my_tid();
	uint64_t t_0 = mono_ns(), end = t_0 + (uint64_t)WAIT_SECS * 1000000000ull;
	struct snap a, b;
	uint64_t act = atomic_load(&activity);
	int stable = 0;

	n_settles++;
	take_snap(&a, self);
	while (stable < SETTLE_SAMPLES) {
		usleep(stable ? 60 : 20);
		take_snap(&b, self);
		uint64_t now = atomic_load(&activity);
		int ok = a.asleep && b.asleep && snap_same(&a, &b) && now == act;

		stable = ok ? stable + 1 : 0;
		act = now;
		a = b;
		if (mono_ns() > end)
			T_FAIL("the threads never settled (a thread keeps running)");
	}
	settle_ns += mono_ns() - t_0;
}

/* ---- operation threads ---- */

/*
 * Word 0 of the page is only ever accessed atomically: the touches that
 * fault the page in happen outside the application mutex and may race
 * with a copy (harmlessly: a touch changes nothing), so they must not
 * race with plain accesses.  The rest of the page is copied under the
 * mutex.
 */
static inline _Atomic uint64_t *word0(void *p)
{
	return (_Atomic uint64_t *)p;
}

/* One locked "or 0": a single write access (an instrumented atomic, under
 * TSan, may load first and fault twice: read, then write-protect). */
static void touch_write(unsigned char *p)
{
#if defined(__x86_64__)
	__asm__ volatile("lock orq $0, %0" : "+m"(*(uint64_t *)p) : : "memory");
#else
	atomic_fetch_or_explicit(word0(p), 0, memory_order_relaxed);
#endif
}

static void copy_out(unsigned char *dst)
{
	uint64_t w = atomic_load_explicit(word0(page), memory_order_relaxed);

	memcpy(dst + 8, page + 8, PG - 8);
	memcpy(dst, &w, 8);
}

static void copy_in(const unsigned char *src)
{
	uint64_t w;

	memcpy(&w, src, 8);
	memcpy(page + 8, src + 8, PG - 8);
	atomic_store_explicit(word0(page), w, memory_order_relaxed);
}

static void *op_main(void *arg)
{
	struct op *o = arg;

	tls_op = o->id;
	atomic_store(&o->tid, my_tid());
	switch (o->kind) {
	case OP_R:
		/* the read fault, if any */
		(void)atomic_load_explicit(word0(page), memory_order_relaxed);
		pthread_mutex_lock(&app_mu);
		copy_out(o->copy);
		pthread_mutex_unlock(&app_mu);
		break;
	case OP_W: {
		unsigned char tmp[PG];

		/* the write fault (missing or write-protect), content kept */
		touch_write(page);
		fill_page(tmp, page_idx, 100 + (uint64_t)o->id);
		pthread_mutex_lock(&app_mu);
		copy_in(tmp);
		pthread_mutex_unlock(&app_mu);
		break;
	}
	case OP_X:
		/* Under the application mutex too: a discard in the middle of
		 * a copy tears the page, in the kernel as here, and that is
		 * the application's race, not the engine's. */
		pthread_mutex_lock(&app_mu);
		o->ret = uswap_discard(us, page, PG);
		pthread_mutex_unlock(&app_mu);
		break;
	case OP_O:
		o->ret = uswap_pageout(us, page, PG);
		break;
	case OP_F:
		o->ret = uswap_prefetch(us, page, PG);
		break;
	case OP_A:
		o->ret = uswap_prefetch(us, prev, 2 * PG);
		break;
	}
	atomic_store(&o->done, 1);
	atomic_fetch_add(&activity, 1);
	return NULL;
}

/* ---- page states ---- */

static void set_state(int st, int with_prev)
{
	uint64_t pidx = page_idx - 1;

	T_EQ(uswap_discard(us, prev, 2 * PG), 0);
	if (with_prev) {
		fill_page(prev, pidx, 1);
		T_EQ(uswap_pageout(us, prev, PG), 1);
		T_EQ(pte_of(us, prev, NULL), USWAP_T_SWAPPED);
		/* The first touch of prev may have mapped the page too
		 * (fault-around): start it from nothing again. */
		T_EQ(uswap_discard(us, page, PG), 0);
	}
	switch (st) {
	case ST_S:
	case ST_C:
		fill_page(page, page_idx, 1);
		T_EQ(uswap_pageout(us, page, PG), 1);
		T_EQ(pte_of(us, page, NULL), USWAP_T_SWAPPED);
		if (st == ST_C) {
			T_EQ(check_page(page, page_idx, 1), 0);
			T_ASSERT(expect_pte(us, page, USWAP_T_PRESENT) != 0); /* slot kept */
		}
		break;
	case ST_D:
		fill_page(page, page_idx, 1);
		T_EQ(expect_pte(us, page, USWAP_T_PRESENT), 0);	/* no slot */
		break;
	case ST_N:
		T_EQ(pte_of(us, page, NULL), USWAP_T_NONE);
		break;
	}
}

/*
 * Attribute the handlers' new "fault" stops (settled state, scheduler
 * only).  An application thread asleep in a page fault that has slept
 * again since its last attributed message raised a new one.  If exactly
 * one thread did and exactly one stop is new, that stop is its message;
 * otherwise (a step woke two threads and both faulted again) the new
 * stops stay "?".
 */
static int debug_steps;

static void attribute_faults(void)
{
	int npend = 0, ncand = 0, who = -1;
	uint64_t csw[MAXOPS];

	pthread_mutex_lock(&smu);
	for (int k = 0; k < NSLOTS; k++)
		npend += slots[k].state == SL_BLOCKED && slots[k].op == OP_PENDING;
	pthread_mutex_unlock(&smu);
	if (!npend)
		return;
	for (int i = 0; i < nops; i++) {
		struct op *o = &ops[i];
		pid_t tid = atomic_load(&o->tid);

		if (debug_steps && tid) {
			char w[128];
			uint64_t c = 0;
			thread_csw(tid, &c);
			wchan_of(tid, w, sizeof(w));
			printf("      attribute: op%d done %d csw %llu (last %llu) wchan '%s'\n", i,
			       atomic_load(&o->done), (unsigned long long)c,
			       (unsigned long long)o->last_csw, w);
		}
		if ((o->kind != OP_R && o->kind != OP_W) || !tid || atomic_load(&o->done) ||
		    thread_csw(tid, &csw[i]) || !in_userfault(tid) || csw[i] == o->last_csw)
			continue;
		ncand++;
		who = i;
		o->last_csw = csw[i];	/* this message is accounted for */
	}
	pthread_mutex_lock(&smu);
	for (int k = 0; k < NSLOTS; k++) {
		struct hslot *sl = &slots[k];

		if (sl->state != SL_BLOCKED || sl->op != OP_PENDING)
			continue;
		sl->op = npend == 1 && ncand == 1 ? who : -1;
		*hinfo_op(sl->tid) = sl->op;
	}
	pthread_mutex_unlock(&smu);
}

/* ---- one run ---- */

struct run {
	int depth;
	uint8_t choice[MAXSTEPS], nalt[MAXSTEPS];
	int diverged;
	char trace[4096];
	char outcome[128];
};

struct en {
	char key[64];
	int start;		/* 1: start op idx; 0: release slot idx */
	int idx;
	uint64_t seq;
};

static int en_cmp(const void *a, const void *b)
{
	const struct en *x = a, *y = b;
	int c = strcmp(x->key, y->key);

	return c ? c : (x->seq > y->seq) - (x->seq < y->seq);
}

static char oplabel(int i)
{
	return i < 0 ? '?' : (char)('a' + i);
}

/* Content classes: 0 zeros, 1 version 1, 100 + i op i's write, -1 other. */
static int classify(const unsigned char *p)
{
	if (page_is_zero(p))
		return 0;
	if (check_page(p, page_idx, 1) == 0)
		return 1;
	for (int i = 0; i < nops; i++)
		if (ops[i].kind == OP_W && check_page(p, page_idx, 100 + (uint64_t)i) == 0)
			return 100 + i;
	return -1;
}

static void class_str(char *b, size_t n, int c)
{
	if (c == 0)
		snprintf(b, n, "0");
	else if (c == 1)
		snprintf(b, n, "v1");
	else if (c >= 100)
		snprintf(b, n, "W%c", oplabel(c - 100));
	else
		snprintf(b, n, "BAD");
}

/* Does the order @perm (of all operations) respect real time and explain
 * every read and the final content? */
static int order_explains(const int *perm, int init, const int *readc, int finalc)
{
	int content = init;

	/* An operation that finished before another started comes first. */
	for (int k = 0; k < nops; k++)
		for (int l = k + 1; l < nops; l++)
			if (ops[perm[l]].end_step < ops[perm[k]].start_step)
				return 0;
	for (int k = 0; k < nops; k++) {
		const struct op *o = &ops[perm[k]];

		if (o->kind == OP_R && readc[perm[k]] != content)
			return 0;
		if (o->kind == OP_W)
			content = 100 + perm[k];
		else if (o->kind == OP_X)
			content = 0;
	}
	return content == finalc;
}

/* Some order of the operations explains what was seen (linearizable). */
static int linearizable_from(int *perm, int k, int *used, int init,
			     const int *readc, int finalc)
{
	if (k == nops)
		return order_explains(perm, init, readc, finalc);
	for (int i = 0; i < nops; i++) {
		if (used[i])
			continue;
		used[i] = 1;
		perm[k] = i;
		int ok = linearizable_from(perm, k + 1, used, init, readc, finalc);
		used[i] = 0;
		if (ok)
			return 1;
	}
	return 0;
}

static int linearizable(int init, const int *readc, int finalc)
{
	int perm[MAXOPS], used[MAXOPS] = { 0 };

	return linearizable_from(perm, 0, used, init, readc, finalc);
}

static void fail_run(const char *scen, struct run *rr, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void fail_run(const char *scen, struct run *rr, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "FAIL in scenario %s\n  ordering: %s\n  ", scen, rr->trace);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static void trace_add(struct run *rr, const char *s)
{
	size_t l = strlen(rr->trace);

	snprintf(rr->trace + l, sizeof(rr->trace) - l, "%s%s", l ? " " : "", s);
}

static uint64_t rng_state;

static uint64_t rng_next(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/*
 * Run the operations @kinds from state @st, following @prefix (then the
 * first enabled step, or a random one if @random).
 */
static void run_one(const char *scen, int st, const int *kinds, int n,
		    const uint8_t *prefix, int plen, int random, struct run *rr)
{
	int with_prev = 0;

	memset(rr, 0, sizeof(*rr));
	for (int i = 0; i < n; i++)
		with_prev |= kinds[i] == OP_A;
	pair_next = (pair_next + 1) % (NPAGES / 2);
	prev = mem + (size_t)pair_next * 2 * PG;
	page = prev + PG;
	page_idx = (uint64_t)pair_next * 2 + 1;
	set_state(st, with_prev);
	settle();

	nops = n;
	for (int i = 0; i < n; i++) {
		memset(&ops[i], 0, offsetof(struct op, copy));
		ops[i].last_csw = UINT64_MAX;
		ops[i].kind = kinds[i];
		ops[i].id = i;
		ops[i].start_step = ops[i].end_step = -1;
	}
	pthread_mutex_lock(&smu);
	nhinfo = 0;
	pthread_mutex_unlock(&smu);
	atomic_store(&hook_a, (uintptr_t)page);
	atomic_store(&hook_b, with_prev ? (uintptr_t)prev : (uintptr_t)page);
	atomic_store(&sched_on, 1);

	int step = 0;
	for (;;) {
		struct en en[NSLOTS + MAXOPS];
		int nen = 0, ndone = 0;

		settle();
		attribute_faults();
		for (int i = 0; i < n; i++) {
			if (ops[i].started && atomic_load(&ops[i].done) && ops[i].end_step < 0)
				ops[i].end_step = step;
			ndone += ops[i].end_step >= 0;
		}
		for (int i = 0; i < n; i++)
			if (!ops[i].started) {
				snprintf(en[nen].key, sizeof(en[nen].key), "0%c%c",
					 oplabel(i), opchar[kinds[i]]);
				en[nen].start = 1;
				en[nen].idx = i;
				en[nen++].seq = 0;
			}
		pthread_mutex_lock(&smu);
		for (int k = 0; k < NSLOTS; k++)
			if (slots[k].state == SL_BLOCKED) {
				snprintf(en[nen].key, sizeof(en[nen].key), "1%c@%s%s",
					 oplabel(slots[k].op), slots[k].point,
					 slots[k].addr == (uintptr_t)page ? "" : "(prev)");
				en[nen].start = 0;
				en[nen].idx = k;
				en[nen++].seq = slots[k].seq;
			}
		pthread_mutex_unlock(&smu);
		if (nen == 0) {
			if (ndone == n)
				break;
			/* Nothing stopped, nothing to start, yet an operation
			 * has not finished: give it time, then call it asleep. */
			for (int tries = 0; tries < 20 && nen == 0; tries++) {
				usleep(100000);
				settle();
				int d = 0;
				for (int i = 0; i < n; i++)
					d += atomic_load(&ops[i].done);
				pthread_mutex_lock(&smu);
				for (int k = 0; k < NSLOTS; k++)
					nen += slots[k].state == SL_BLOCKED;
				pthread_mutex_unlock(&smu);
				if (d == n)
					break;
			}
			if (nen == 0) {
				int d = 0;
				for (int i = 0; i < n; i++)
					d += atomic_load(&ops[i].done);
				if (d < n) {
					char b[64];
					int l = 0;
					for (int i = 0; i < n; i++)
						if (!atomic_load(&ops[i].done))
							l += snprintf(b + l, sizeof(b) - l, " %c%c",
								      oplabel(i), opchar[kinds[i]]);
					fail_run(scen, rr, "thread left asleep:%s never finished "
						 "and no engine thread is at work", b);
				}
			}
			continue;	/* re-settle and look again */
		}
		if (step >= MAXSTEPS)
			fail_run(scen, rr, "more than %d steps: the engine keeps "
				 "re-faulting (a retry loop?)", MAXSTEPS);
		qsort(en, nen, sizeof(en[0]), en_cmp);
		if (debug_steps) {
			printf("      step %d:", step);
			for (int k = 0; k < nen; k++)
				printf(" [%s #%llu]", en[k].key, (unsigned long long)en[k].seq);
			for (int i = 0; i < n; i++)
				printf(" op%d(done %d csw %llu)", i, atomic_load(&ops[i].done),
				       (unsigned long long)ops[i].last_csw);
			printf("\n");
		}
		int c;
		if (step < plen) {
			c = prefix[step];
			if (c >= nen) {
				rr->diverged = 1;
				c = nen - 1;
			}
		} else {
			c = random ? (int)(rng_next() % (uint64_t)nen) : 0;
		}
		rr->choice[step] = (uint8_t)c;
		rr->nalt[step] = (uint8_t)nen;
		rr->depth = step + 1;
		char t[80];
		if (en[c].start) {
			struct op *o = &ops[en[c].idx];

			snprintf(t, sizeof(t), "%c%c:start", oplabel(o->id), opchar[o->kind]);
			o->started = 1;
			o->start_step = step;
			if (pthread_create(&o->th, NULL, op_main, o))
				T_FAIL("pthread_create");
		} else {
			struct hslot *s = &slots[en[c].idx];

			snprintf(t, sizeof(t), "%c@%s%s", oplabel(s->op), s->point,
				 s->addr == (uintptr_t)page ? "" : "(prev)");
			pthread_mutex_lock(&smu);
			s->state = SL_RELEASED;
			pthread_mutex_unlock(&smu);
			sem_post(&s->go);
		}
		trace_add(rr, t);
		step++;
	}
	atomic_store(&sched_on, 0);

	/* Every operation finished: join (bounded), then judge. */
	for (int i = 0; i < n; i++) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += WAIT_SECS;
		if (pthread_timedjoin_np(ops[i].th, NULL, &ts))
			fail_run(scen, rr, "operation %c%c did not return", oplabel(i),
				 opchar[kinds[i]]);
	}
	for (int i = 0; i < n; i++) {
		long r = ops[i].ret;
		int bad = 0;

		switch (kinds[i]) {
		case OP_X: bad = r != 0; break;
		case OP_O: bad = r < 0 || r > 1; break;
		case OP_F: bad = r < 0 || r > 1; break;
		case OP_A: bad = r < 0 || r > 2; break;
		}
		if (bad)
			fail_run(scen, rr, "operation %c%c returned %ld", oplabel(i),
				 opchar[kinds[i]], r);
	}

	/* Entries and the kernel's page table agree (before the final read
	 * maps anything): PRESENT exactly when a page is mapped.  A PRESENT
	 * entry with no page is data lost; uswap__validate cannot see it. */
	unsigned char *const both[2] = { prev, page };
	for (int i = 0; i < 2; i++) {
		unsigned char v = 0;
		int pst = pte_of(us, both[i], NULL);

		if (mincore(both[i], PG, &v))
			T_FAIL("mincore: %s", strerror(errno));
		if ((pst == USWAP_T_PRESENT) != (v & 1))
			fail_run(scen, rr, "%s: entry state %d but the kernel page is %s",
				 i ? "the page" : "the page before", pst,
				 v & 1 ? "mapped" : "absent");
	}

	int init = st == ST_N ? 0 : 1, readc[MAXOPS] = { 0 };
	char cs[16];
	size_t l = 0;

	for (int i = 0; i < n; i++)
		if (kinds[i] == OP_R) {
			readc[i] = classify(ops[i].copy);
			class_str(cs, sizeof(cs), readc[i]);
			l += snprintf(rr->outcome + l, sizeof(rr->outcome) - l, "%c%c=%s ",
				      oplabel(i), 'R', cs);
		}
	unsigned char fin[PG];
	memcpy(fin, page, PG);
	int finalc = classify(fin);
	class_str(cs, sizeof(cs), finalc);
	snprintf(rr->outcome + l, sizeof(rr->outcome) - l, "final=%s", cs);
	if (!linearizable(init, readc, finalc))
		fail_run(scen, rr, "not linearizable: %s (initial %s)", rr->outcome,
			 init ? "v1" : "0");
	if (with_prev && check_page(prev, page_idx - 1, 1))
		fail_run(scen, rr, "the readahead's first page lost its content");

	char msg[256];
	if (uswap__validate(us, msg, sizeof(msg)))
		fail_run(scen, rr, "invariant: %s", msg);
}

/* ---- scenarios ---- */

struct outcomes {
	int n;
	char s[24][128];
	unsigned cnt[24];
};

static void outcome_add(struct outcomes *oc, const char *s)
{
	for (int i = 0; i < oc->n; i++)
		if (!strcmp(oc->s[i], s)) {
			oc->cnt[i]++;
			return;
		}
	if (oc->n < 24) {
		snprintf(oc->s[oc->n], sizeof(oc->s[0]), "%s", s);
		oc->cnt[oc->n++] = 1;
	}
}

static void outcome_print(const struct outcomes *oc)
{
	for (int i = 0; i < oc->n; i++)
		printf("%s[%s] x%u", i ? " " : "", oc->s[i], oc->cnt[i]);
	printf("\n");
}

static void scen_name(char *b, size_t n, int st, const int *kinds, int nk)
{
	size_t l = (size_t)snprintf(b, n, "%c:", stchar[st]);

	for (int i = 0; i < nk; i++)
		l += (size_t)snprintf(b + l, n - l, "%s%c", i ? "+" : "", opchar[kinds[i]]);
}

static unsigned long total_runs, total_diverged;

/* Every ordering of the operations: depth-first over the choices. */
static void explore(int st, const int *kinds, int nk, unsigned cap)
{
	static struct run rr;
	uint8_t prefix[MAXSTEPS];
	int plen = 0;
	unsigned runs = 0, div = 0;
	struct outcomes oc = { 0 };
	char name[32];
	int capped = 0;

	scen_name(name, sizeof(name), st, kinds, nk);
	const char *only = getenv("USWAP_INTERLEAVE_ONLY");
	if (only && strcmp(only, name))
		return;
	unsigned maxdepth = 0;
	for (;;) {
		run_one(name, st, kinds, nk, prefix, plen, 0, &rr);
		runs++;
		div += rr.diverged;
		if (rr.diverged && getenv("USWAP_INTERLEAVE_VERBOSE"))
			printf("    diverged: %s -> %s\n", rr.trace, rr.outcome);
		if (getenv("USWAP_INTERLEAVE_TRACE"))
			printf("    %s -> %s\n", rr.trace, rr.outcome);
		outcome_add(&oc, rr.outcome);
		if ((unsigned)rr.depth > maxdepth)
			maxdepth = (unsigned)rr.depth;
		int i = rr.depth - 1;
		while (i >= 0 && rr.choice[i] + 1 >= rr.nalt[i])
			i--;
		if (i < 0)
			break;
		if (runs >= cap) {
			capped = 1;
			break;
		}
		memcpy(prefix, rr.choice, (size_t)i);
		prefix[i] = (uint8_t)(rr.choice[i] + 1);
		plen = i + 1;
	}
	total_runs += runs;
	total_diverged += div;
	printf("  %-8s %4u orderings, up to %2u steps%s%s  ", name, runs, maxdepth, capped ? " (capped)" : "",
	       div ? " (some diverged)" : "");
	outcome_print(&oc);
	fflush(stdout);
}

/* Random orderings of random triples. */
static void sample_triples(unsigned nruns)
{
	static struct run rr;
	static uint64_t sigs[8192];
	static struct { char name[32]; struct outcomes oc; unsigned runs; } sc[NSTATES * 216];
	unsigned nsig = 0, nsc = 0, per_state[NSTATES] = { 0 };
	struct outcomes finals = { 0 };
	int verbose = getenv("USWAP_INTERLEAVE_VERBOSE") != NULL;

	for (unsigned r = 0; r < nruns; r++) {
		int kinds[3], st = (int)(rng_next() % NSTATES);
		char name[32];

		for (int i = 0; i < 3; i++)
			kinds[i] = (int)(rng_next() % NOPKINDS);
		scen_name(name, sizeof(name), st, kinds, 3);
		run_one(name, st, kinds, 3, NULL, 0, 1, &rr);
		per_state[st]++;
		total_runs++;
		if (getenv("USWAP_INTERLEAVE_TRACE"))
			printf("    %s: %s -> %s\n", name, rr.trace, rr.outcome);
		/* distinct orderings: scenario and trace, hashed */
		uint64_t h = 1469598103934665603ull;
		for (const char *p = name; *p; p++)
			h = (h ^ (unsigned char)*p) * 1099511628211ull;
		for (const char *p = rr.trace; *p; p++)
			h = (h ^ (unsigned char)*p) * 1099511628211ull;
		int seen = 0;
		for (unsigned k = 0; k < nsig && !seen; k++)
			seen = sigs[k] == h;
		if (!seen && nsig < 8192)
			sigs[nsig++] = h;
		unsigned k;
		for (k = 0; k < nsc && strcmp(sc[k].name, name); k++)
			;
		if (k == nsc && nsc < sizeof(sc) / sizeof(sc[0]))
			snprintf(sc[nsc++].name, sizeof(sc[0].name), "%s", name);
		if (k < nsc) {
			sc[k].runs++;
			outcome_add(&sc[k].oc, rr.outcome);
		}
		/* the final content, by kind: the initial one, zeros, a write */
		const char *f = strstr(rr.outcome, "final=");
		outcome_add(&finals, f && f[6] == 'W' ? "final=a write" : f ? f : "?");
	}
	unsigned nout = 0;
	for (unsigned k = 0; k < nsc; k++)
		nout += (unsigned)sc[k].oc.n;
	printf("  %u runs (from S %u, C %u, D %u, N %u) over %u scenarios: %u distinct "
	       "orderings, %u distinct (scenario, outcome) pairs;\n  final content: ",
	       nruns, per_state[ST_S], per_state[ST_C], per_state[ST_D], per_state[ST_N],
	       nsc, nsig, nout);
	outcome_print(&finals);
	if (verbose)
		for (unsigned k = 0; k < nsc; k++) {
			printf("    %-10s %3u runs  ", sc[k].name, sc[k].runs);
			outcome_print(&sc[k].oc);
		}
}

int main(void)
{
	int scale = test_scale();
	const char *seed_env = getenv("USWAP_INTERLEAVE_SEED");
	uint64_t seed = seed_env ? strtoull(seed_env, NULL, 0) : 0x5eed2025ull;
	uint64_t t0 = mono_ns();

	/* Four handlers: stopped ones never starve a fault of another op.
	 * A 64 MiB limit over a 1 MiB region: the evictor stays out of it.
	 * Readahead 1: the A operation's window. */
	us = race_open(64 * MiB, 4, 1);
	for (int k = 0; k < NSLOTS; k++)
		sem_init(&slots[k].go, 0, 0);
	atomic_store(&uswap__hook, sched_hook);
	mem = uswap_map(us, (size_t)NPAGES * PG);
	T_ASSERT(mem);
	rng_state = seed;
	debug_steps = getenv("USWAP_INTERLEAVE_DEBUG") != NULL;

	/* Pairs: every ordering, from every state. */
	printf("pairs (every ordering over the hook points):\n");
	unsigned npairs = 0;
	for (int st = 0; st < NSTATES; st++)
		for (int a = 0; a < NOPKINDS; a++)
			for (int b = a; b < NOPKINDS; b++) {
				int kinds[2] = { a, b };

				explore(st, kinds, 2, 1500 / (unsigned)scale);
				npairs++;
			}
	unsigned long pair_runs = total_runs;
	printf("pairs: %u scenarios, %lu orderings, %lu diverged replays\n", npairs,
	       pair_runs, total_diverged);

	/* Triples where the space is small enough: every ordering.  The
	 * larger ones (1000-3000+ orderings each) with USWAP_INTERLEAVE_LONG. */
	static const struct { int st; int k[3]; int big; } full3[] = {
		{ ST_D, { OP_R, OP_O, OP_X }, 0 },	/* fault during eviction, discard during it */
		{ ST_S, { OP_R, OP_F, OP_X }, 0 },	/* fault on a prefetch's marker, discard */
		{ ST_C, { OP_W, OP_O, OP_X }, 0 },	/* WP fault, clean eviction, discard */
		{ ST_S, { OP_R, OP_W, OP_X }, 1 },	/* read and write faults, discard */
		{ ST_S, { OP_R, OP_A, OP_X }, 1 },	/* fault on a readahead page, discard */
		{ ST_C, { OP_R, OP_W, OP_O }, 1 },	/* read, WP fault, eviction */
		{ ST_S, { OP_W, OP_O, OP_F }, 1 },	/* write swap-in, eviction, prefetch */
	};
	int lng = getenv("USWAP_INTERLEAVE_LONG") != NULL;
	unsigned n3 = 0;
	unsigned long before = total_runs;

	printf("triples (every ordering):\n");
	for (size_t i = 0; i < sizeof(full3) / sizeof(full3[0]); i++)
		/* a scaled (sanitizer) run: the smallest one only */
		if (lng || (!full3[i].big && (scale == 1 || i == 0))) {
			explore(full3[i].st, full3[i].k, 3, (lng ? 20000 : 3000) / (unsigned)scale);
			n3++;
		}
	printf("triples: %u scenarios, %lu orderings\n", n3, total_runs - before);

	unsigned ntriples = (lng ? 3000 : 200) / (unsigned)scale;
	printf("random triples (random states, operations and orderings; seed %#llx, "
	       "USWAP_INTERLEAVE_SEED to change):\n", (unsigned long long)seed);
	sample_triples(ntriples);

	printf("total: %lu runs in %.1f s (%lu settled states, %.2f ms each)\n", total_runs,
	       (double)(mono_ns() - t0) / 1e9, n_settles, settle_ns / 1e6 / (double)n_settles);
	atomic_store(&uswap__hook, NULL);
	T_EQ(uswap_unmap(us, mem, (size_t)NPAGES * PG), 0);
	struct uswap_stats s = ST(us);
	T_EQ(s.stored_pages, 0);
	T_EQ(s.resident_bytes, 0);
	test_validate(us);
	T_EQ(uswap_close(us), 0);
	return 0;
}

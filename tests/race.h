/*
 * race.h - helpers shared by the race tests (test_race*.c): engine setup
 * with a chosen readahead, bounded waits for an event, a helper thread
 * that makes one API call (so the test can stop it at a gate), a check
 * that a thread is asleep in futex(2), and a SIGBUS-catching reader.
 *
 * Nothing here orders events by sleeping: every wait polls for an event
 * that the interleaving under test must produce, and fails the test after
 * 60 s instead of hanging (a loaded 2-vCPU machine can starve a thread for seconds).
 */
#ifndef USWAP_TEST_RACE_H
#define USWAP_TEST_RACE_H

#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/syscall.h>

#include "util.h"

#define MiB ((size_t)1 << 20)
#define WAIT_SECS 60

static inline uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Poll @cond every 100 us; fail the test if it is still false after WAIT_SECS (60 s). */
#define WAIT_UNTIL(cond, what)                                             \
	do {                                                               \
		uint64_t _end = mono_ns() + WAIT_SECS * 1000000000ull;     \
		while (!(cond)) {                                          \
			if (mono_ns() > _end)                              \
				T_FAIL("timed out waiting for %s", what);  \
			usleep(100);                                       \
		}                                                          \
	} while (0)

/* An engine with @threads handlers and readahead @ra (0 = off: the race
 * tests count backend reads exactly and do not want stray windows). */
static inline struct uswap *race_open(size_t limit, unsigned threads, unsigned ra)
{
	struct uswap_config c;

	test_config(&c, limit, threads);
	c.readahead_max = ra;
	return test_open(&c);
}

/* References the backend holds on @slot (0 = free). */
static inline unsigned slot_count(struct uswap *us, uint32_t slot)
{
	struct uswap_backend *b = uswap__backend(us);

	return b->ops->count(b, slot);
}

static inline int pte_of(struct uswap *us, void *addr, uint32_t *slot)
{
	return uswap__pte_state(us, addr, slot);
}

/*
 * Wait for the entry of @addr to reach @state and return its payload.  An
 * application thread is woken by the UFFDIO_COPY that maps its page, which
 * the handler issues under the chunk lock just before it updates the entry:
 * a thread that returned from its access may see the old state for a
 * moment.  The wait is bounded, and fails the test if the state never comes.
 */
static inline uint32_t expect_pte(struct uswap *us, void *addr, int state)
{
	uint32_t slot = 0;
	uint64_t end = mono_ns() + WAIT_SECS * 1000000000ull;
	int st;

	while ((st = uswap__pte_state(us, addr, &slot)) != state) {
		if (mono_ns() > end)
			T_FAIL("page %p: state %d, expected %d", addr, st, state);
		usleep(100);
	}
	return slot;
}

/* ---- the swap-in designs (USWAP_SWAPIN: the engine reads it too) ----
 *
 * The invariants hold in all three; the mechanism differs.  A page whose
 * swap-in is in flight is MARKER in design B, SWAPPED with its slot
 * pinned (A) or in the in-flight map (C).  A fault that finds a swap-in in
 * flight is counted in faults_marker (B), swapin_pin_retries (A) or
 * swapin_cache_waits (C): the design's slow path. */
static inline int design(struct uswap *us)
{
	return uswap__swapin_design(us);
}

static inline const char *design_name(struct uswap *us)
{
	static const char *const n[] = { "marker (B)", "pin (A)", "cache (C)" };

	return n[design(us)];
}

/* Fail unless a swap-in of the page at @addr is in flight. */
#define expect_inflight(us, addr)                                          \
	do {                                                               \
		int _st = pte_of(us, addr, NULL);                          \
		if (_st != (design(us) == USWAP_SWAPIN_MARKER ?            \
			    USWAP_T_MARKER : USWAP_T_SWAPPED) ||           \
		    !uswap__swapin_inflight(us, addr))                     \
			T_FAIL("page %p: no swap-in in flight (state %d, %s)", \
			       (void *)(addr), _st, design_name(us));      \
	} while (0)

/* Faults that found a swap-in of their page in flight (the slow path). */
static inline long long lost_faults(struct uswap *us, const struct uswap_stats *s)
{
	switch (design(us)) {
	case USWAP_SWAPIN_PIN:
		return (long long)s->swapin_pin_retries;
	case USWAP_SWAPIN_CACHE:
		return (long long)s->swapin_cache_waits;
	default:
		return (long long)s->faults_marker;
	}
}

/* ---- a thread making one API call (pageout, discard, prefetch, unmap) ---- */

enum api_op { API_PAGEOUT, API_DISCARD, API_PREFETCH, API_UNMAP };

struct api_call {
	pthread_t th;
	struct uswap *us;
	enum api_op op;
	void *addr;
	size_t len;
	long ret;
	_Atomic pid_t tid;	/* set before the call */
	_Atomic int done;	/* set after the call returned */
};

static void *api_call_main(void *arg)
{
	struct api_call *c = arg;
	long r = -1;

	atomic_store(&c->tid, (pid_t)syscall(SYS_gettid));
	switch (c->op) {
	case API_PAGEOUT:
		r = uswap_pageout(c->us, c->addr, c->len);
		break;
	case API_DISCARD:
		r = uswap_discard(c->us, c->addr, c->len);
		break;
	case API_PREFETCH:
		r = uswap_prefetch(c->us, c->addr, c->len);
		break;
	case API_UNMAP:
		r = uswap_unmap(c->us, c->addr, c->len);
		break;
	}
	c->ret = r;
	atomic_store(&c->done, 1);
	return NULL;
}

static inline void api_start(struct api_call *c, struct uswap *us, enum api_op op,
			     void *addr, size_t len)
{
	c->us = us;
	c->op = op;
	c->addr = addr;
	c->len = len;
	c->ret = -1;
	atomic_store(&c->tid, 0);
	atomic_store(&c->done, 0);
	if (pthread_create(&c->th, NULL, api_call_main, c))
		T_FAIL("pthread_create");
}

static inline long api_join(struct api_call *c)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += WAIT_SECS;
	if (pthread_timedjoin_np(c->th, NULL, &ts))
		T_FAIL("API call (op %d) did not return", (int)c->op);
	return c->ret;
}

/*
 * Is thread @tid asleep in futex(2)?  /proc/<pid>/task/<tid>/syscall names
 * the system call a blocked thread sits in ("running" otherwise).  Used to
 * learn that a helper thread has reached a lock or a futex wait the
 * interleaving needs it to be in: an event, observed, not a delay.
 */
static inline int in_futex(pid_t tid)
{
	char path[64], buf[64];
	int fd, n;

	snprintf(path, sizeof(path), "/proc/self/task/%d/syscall", (int)tid);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return 0;
	n = (int)read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	return atoi(buf) == SYS_futex && buf[0] >= '0' && buf[0] <= '9';
}

/* Wait until the helper has started and sits in a futex wait. */
static inline void wait_in_futex(struct api_call *c, const char *what)
{
	WAIT_UNTIL(atomic_load(&c->tid) != 0, what);
	WAIT_UNTIL(in_futex(atomic_load(&c->tid)) || atomic_load(&c->done), what);
	if (atomic_load(&c->done))
		T_FAIL("%s: the call returned instead of waiting (ret %ld)", what, c->ret);
}

/* ---- a reader that survives SIGBUS ---- */

static __thread sigjmp_buf *volatile probe_jb;

static void probe_sigbus(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)si;
	(void)uc;
	if (probe_jb)
		siglongjmp(*probe_jb, 1);
	abort();
}

static inline void probe_install(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = probe_sigbus;
	sa.sa_flags = SA_SIGINFO | SA_NODEFER;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGBUS, &sa, NULL))
		T_FAIL("sigaction(SIGBUS)");
}

struct probe {
	pthread_t th;
	volatile unsigned char *page;
	int got_sigbus;
	unsigned char copy[PG] __attribute__((aligned(64)));
	_Atomic int done;
};

/* Touch the page with one load; if that did not raise SIGBUS, copy it. */
static void *probe_main(void *arg)
{
	struct probe *p = arg;
	sigjmp_buf jb;

	if (sigsetjmp(jb, 1) == 0) {
		probe_jb = &jb;
		(void)*(volatile uint64_t *)p->page;
		probe_jb = NULL;
		memcpy(p->copy, (const void *)p->page, PG);
		p->got_sigbus = 0;
	} else {
		probe_jb = NULL;
		p->got_sigbus = 1;
	}
	atomic_store(&p->done, 1);
	return NULL;
}

static inline void probe_start(struct probe *p, void *page)
{
	p->page = page;
	p->got_sigbus = -1;
	atomic_store(&p->done, 0);
	if (pthread_create(&p->th, NULL, probe_main, p))
		T_FAIL("pthread_create");
}

static inline int probe_join(struct probe *p)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += WAIT_SECS;
	if (pthread_timedjoin_np(p->th, NULL, &ts))
		T_FAIL("reader left asleep (neither data nor SIGBUS)");
	return p->got_sigbus;
}

#define ST(us) test_stats(us)
#define D(now, before, f) ((long long)((now).f - (before).f))

#endif

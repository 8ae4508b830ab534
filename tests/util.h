/*
 * util.h - helpers for the engine tests: page content with its index and a
 * version stamped in, engine setup, and gates that stop a pager thread at a
 * named hook point until the test lets it go (to force interleavings).
 */
#ifndef USWAP_TEST_UTIL_H
#define USWAP_TEST_UTIL_H

#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#include "test.h"
#include "uswap.h"
#include "testing.h"

#define PG 4096u

static inline int test_scale(void)
{
	const char *s = getenv("USWAP_TEST_SCALE");
	int v = s ? atoi(s) : 1;

	return v > 0 ? v : 1;
}

/* Page content: words derived from (index, version), compressible-ish. */
static inline void fill_page(void *p, uint64_t idx, uint64_t ver)
{
	uint64_t *w = p;

	w[0] = idx;
	w[1] = ver;
	for (unsigned i = 2; i < PG / 8; i++)
		w[i] = (i & 7) ? (idx * 31 + ver) ^ (i >> 3) : idx * 0x9e3779b97f4a7c15ull + i + ver;
}

/* 0 if the page holds (idx, ver); else 1 + first bad word. */
static inline size_t check_page(const void *p, uint64_t idx, uint64_t ver)
{
	const uint64_t *w = p;

	if (w[0] != idx)
		return 1;
	if (w[1] != ver)
		return 2;
	for (unsigned i = 2; i < PG / 8; i++)
		if (w[i] != ((i & 7) ? (idx * 31 + ver) ^ (i >> 3) : idx * 0x9e3779b97f4a7c15ull + i + ver))
			return 1 + i;
	return 0;
}

static inline int page_is_zero(const void *p)
{
	const uint64_t *w = p;

	for (unsigned i = 0; i < PG / 8; i++)
		if (w[i])
			return 0;
	return 1;
}

static inline void test_config(struct uswap_config *c, size_t limit, unsigned threads)
{
	char err[256];

	if (uswap_config_init(c, err, sizeof(err)))
		T_FAIL("config: %s", err);
	c->limit = limit;
	c->threads = threads;
}

/* Open, skipping the test (77) when userfaultfd is not usable here. */
static inline struct uswap *test_open(const struct uswap_config *c)
{
	struct uswap *us = uswap_open(c);

	if (!us && (errno == EPERM || errno == ENOSYS || errno == EACCES))
		T_SKIP("userfaultfd not usable: %s", strerror(errno));
	if (!us)
		T_FAIL("uswap_open: %s", strerror(errno));
	return us;
}

static inline void test_validate(struct uswap *us)
{
	char msg[256];

	if (uswap__validate(us, msg, sizeof(msg)))
		T_FAIL("invariant: %s", msg);
}

static inline struct uswap_stats test_stats(struct uswap *us)
{
	struct uswap_stats s;

	T_EQ(uswap_stats(us, &s), 0);
	return s;
}

/* ---- gates ---- */

struct gate {
	const char *point;
	_Atomic uintptr_t addr;		/* 0 = any address */
	_Atomic int armed;		/* stops the next arrival when set */
	_Atomic int skip;		/* arrivals to let pass first */
	sem_t arrived, release;
};

#define NGATES 4
static struct gate gates[NGATES];

static void gate_hook(const char *point, struct uswap *us, uintptr_t addr)
{
	(void)us;
	for (int i = 0; i < NGATES; i++) {
		struct gate *g = &gates[i];
		uintptr_t ga = atomic_load(&g->addr);
		int one = 1;

		if (!atomic_load(&g->armed) || !g->point || strcmp(point, g->point) ||
		    (ga && ga != addr))
			continue;
		if (atomic_load(&g->skip) > 0) {
			atomic_fetch_sub(&g->skip, 1);
			continue;
		}
		if (!atomic_compare_exchange_strong(&g->armed, &one, 0))
			continue;
		sem_post(&g->arrived);
		sem_wait(&g->release);
	}
}

static inline void gates_init(void)
{
	for (int i = 0; i < NGATES; i++) {
		sem_init(&gates[i].arrived, 0, 0);
		sem_init(&gates[i].release, 0, 0);
	}
	atomic_store(&uswap__hook, gate_hook);
}

/* Stop the next pager thread that reaches @point (at @addr, 0 = any),
 * after letting @skip arrivals pass. */
static inline void gate_arm(int i, const char *point, void *addr, int skip)
{
	gates[i].point = point;
	atomic_store(&gates[i].addr, (uintptr_t)addr);
	atomic_store(&gates[i].skip, skip);
	atomic_store(&gates[i].armed, 1);
}

/* Wait (up to 60 s: a hang is a failure, not a timing assertion) for a
 * thread to stop at gate @i. */
static inline void gate_wait(int i)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 60;
	while (sem_timedwait(&gates[i].arrived, &ts)) {
		if (errno != EINTR)
			T_FAIL("no pager thread reached gate '%s'", gates[i].point);
	}
}

static inline void gate_release(int i)
{
	sem_post(&gates[i].release);
}

/* ---- application threads ---- */

struct app_op {
	pthread_t th;
	volatile unsigned char *page;
	int write;		/* 0 read, 1 write */
	uint64_t idx, ver;	/* for writes: fill_page(idx, ver) */
	unsigned char copy[PG];	/* for reads: what was read */
	_Atomic int done;
};

static void *app_op_main(void *arg)
{
	struct app_op *op = arg;

	if (op->write) {
		unsigned char tmp[PG];

		fill_page(tmp, op->idx, op->ver);
		memcpy((void *)op->page, tmp, PG);
	} else {
		memcpy(op->copy, (const void *)op->page, PG);
	}
	atomic_store(&op->done, 1);
	return NULL;
}

static inline void app_start(struct app_op *op, void *page, int write,
			     uint64_t idx, uint64_t ver)
{
	op->page = page;
	op->write = write;
	op->idx = idx;
	op->ver = ver;
	atomic_store(&op->done, 0);
	if (pthread_create(&op->th, NULL, app_op_main, op))
		T_FAIL("pthread_create");
}

/* Join, failing (not hanging) if the thread stays asleep for 60 s. */
static inline void app_join(struct app_op *op)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 60;
	if (pthread_timedjoin_np(op->th, NULL, &ts))
		T_FAIL("application thread left asleep");
}

/* Wait until a thread has faulted on and is blocked at a page: we cannot
 * see the kernel's wait queue, so we wait for the fault message to be
 * taken by a pager thread stopped at a gate instead (see the tests). */

#endif

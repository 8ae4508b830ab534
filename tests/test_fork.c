/*
 * test_fork.c - a managed process forks (uswap_fork_prepare/parent/child,
 * as the shim's pthread_atfork handlers call them).
 *
 * The parent fills a region four times its limit (most pages evicted, some
 * resident dirty, some resident clean with a kept copy, some poisoned by
 * nothing: discarded to zeros), forks while a second thread keeps
 * faulting, and then:
 *  - the child checks every page equals the parent's at the fork (evicted
 *    pages included: an unregistered child would read zeros there);
 *  - the child writes its own version into every 3rd page (clean pages
 *    too: the write must drop the kept copy in the child, I7), evicts
 *    everything, reads it all back; the parent does the same with its own
 *    version into every 5th page; neither sees the other's writes;
 *  - evicting pages shared copy-on-write (MOVE says EBUSY) works in both:
 *    everything is evicted, resident stays under the limit;
 *  - both engines validate; the child's engine closes cleanly.
 * Then posix_spawn and vfork+exec of /bin/true from the managed process.
 */
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test.h"
#include "uswap.h"
#include "testing.h"
#include "util.h"

extern char **environ;

const char *__tsan_default_options(void);
__attribute__((visibility("default"))) const char *__tsan_default_options(void)
{
	return "die_after_fork=0";	/* the child starts its own threads */
}

#define NPAGES 8192u			/* 32 MiB */
#define LIMIT (8u << 20)		/* 8 MiB: 2048 pages */

static struct uswap *us;
static unsigned char *mem;
static _Atomic int stop;

/* Expected version of page i: base 1, then the writer's own marks. */
static uint64_t version(size_t i, int who)
{
	if (i % 97 == 0)
		return 0;			/* discarded: zeros */
	if (who == 1 && i % 3 == 0)
		return 1000;			/* child's write */
	if (who == 2 && i % 5 == 0)
		return 2000;			/* parent's write */
	return 1;
}

static void check_all(int who, const char *what)
{
	for (size_t i = 0; i < NPAGES; i++) {
		uint64_t v = version(i, who);
		const unsigned char *p = mem + i * PG;

		if (v == 0 ? !page_is_zero(p) : check_page(p, i, v) != 0)
			T_FAIL("%s: page %zu is not version %llu (word0 %llu word1 %llu)",
			       what, i, (unsigned long long)v,
			       (unsigned long long)((const uint64_t *)p)[0],
			       (unsigned long long)((const uint64_t *)p)[1]);
	}
}

static void write_mine(int who)
{
	for (size_t i = 0; i < NPAGES; i++)
		if (i % 97 && version(i, who) != 1)
			fill_page(mem + i * PG, i, version(i, who));
}

/* A second thread faulting on the region while the fork happens. */
static void *toucher(void *arg)
{
	volatile uint64_t sink = 0;
	size_t i = 1;

	(void)arg;
	while (!atomic_load(&stop)) {
		sink += ((volatile uint64_t *)(mem + (i % NPAGES) * PG))[0];
		i += 7919;
	}
	return NULL;
}

/* Evict everything, check the limit held and the content survived. */
static void evict_and_check(int who, const char *what)
{
	long n = uswap_pageout(us, mem, (size_t)NPAGES * PG);
	struct uswap_stats s = test_stats(us);

	T_ASSERT(n >= 0);
	if (s.resident_bytes != 0)
		T_FAIL("%s: %llu bytes still resident after pageout of all (evict_busy %llu)",
		       what, (unsigned long long)s.resident_bytes,
		       (unsigned long long)s.evict_busy);
	check_all(who, what);
	s = test_stats(us);
	T_ASSERT(s.resident_peak_bytes <= LIMIT);
	test_validate(us);
}

#if defined(__SANITIZE_THREAD__)
/* TSan cannot follow a multi-threaded fork whose child starts threads
 * ("dup thread with used id"): under TSan the child only reports, and the
 * parent's side (the gate against running handlers, EBUSY evictions) is
 * what is checked.  The test and ASan builds check the child. */
#define CHILD_CHECKS 0
#else
#define CHILD_CHECKS 1
#endif

static void child_main(int to_parent, int from_parent)
{
	char c = 0;

	if (!CHILD_CHECKS) {
		T_ASSERT(write(to_parent, "w", 1) == 1);
		T_ASSERT(read(from_parent, &c, 1) == 1);
		_exit(0);
	}
	int err = uswap_fork_child(us);

	if (err)
		T_FAIL("uswap_fork_child: %s", strerror(-err));
	check_all(0, "child, as of the fork");
	write_mine(1);
	check_all(1, "child after its writes");
	evict_and_check(1, "child after evicting");
	T_ASSERT(write(to_parent, "w", 1) == 1);		/* parent may write */
	T_ASSERT(read(from_parent, &c, 1) == 1);		/* parent wrote */
	check_all(1, "child after the parent's writes");
	test_validate(us);
	T_EQ(uswap_close(us), 0);
	_exit(0);
}

static void test_fork_memory(void)
{
	struct uswap_config c;
	pthread_t th;
	int p2c[2], c2p[2];
	char ch;

	test_config(&c, LIMIT, 2);
	us = test_open(&c);
	mem = uswap_map(us, (size_t)NPAGES * PG);
	T_ASSERT(mem);
	for (size_t i = 0; i < NPAGES; i++)
		fill_page(mem + i * PG, i, 1);
	for (size_t i = 0; i < NPAGES; i += 97)
		T_EQ(uswap_discard(us, mem + i * PG, PG), 0);
	/* Read the first 1000 pages back after an eviction: clean pages that
	 * keep their copy, write-protected. */
	T_ASSERT(uswap_pageout(us, mem, 1000 * PG) >= 0);
	check_all(0, "parent before the fork");
	struct uswap_stats s = test_stats(us);
	fprintf(stderr, "    before fork: resident %llu KiB, swapped %llu, clean %llu\n",
		(unsigned long long)s.resident_bytes >> 10,
		(unsigned long long)s.swapped_pages,
		(unsigned long long)s.clean_cached_pages);
	T_ASSERT(s.swapped_pages > NPAGES / 2);

	T_ASSERT(pipe(p2c) == 0 && pipe(c2p) == 0);
	T_ASSERT(pthread_create(&th, NULL, toucher, NULL) == 0);
	usleep(20000);
	uswap_fork_prepare(us);
	pid_t pid = fork();
	if (pid == 0) {
		close(c2p[0]);
		close(p2c[1]);
		child_main(c2p[1], p2c[0]);
	}
	uswap_fork_parent(us);
	T_ASSERT(pid > 0);
	close(c2p[1]);
	close(p2c[0]);
	atomic_store(&stop, 1);
	pthread_join(th, NULL);

	if (read(c2p[0], &ch, 1) != 1) {		/* child wrote */
		int st0;

		waitpid(pid, &st0, 0);
		T_FAIL("the child died before its writes (status %#x)", st0);
	}
	check_all(0, "parent after the child's writes");
	if (!CHILD_CHECKS)
		fprintf(stderr, "    (TSan: the child's side is checked by the other builds)\n");
	write_mine(2);
	evict_and_check(2, "parent after evicting");
	s = test_stats(us);
	fprintf(stderr, "    parent after: evict_busy %llu, swapouts %llu, peak %llu KiB\n",
		(unsigned long long)s.evict_busy, (unsigned long long)s.swapouts,
		(unsigned long long)s.resident_peak_bytes >> 10);
	T_ASSERT(write(p2c[1], "p", 1) == 1);

	int st;
	T_ASSERT(waitpid(pid, &st, 0) == pid);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		T_FAIL("child failed (status %#x)", st);
	check_all(2, "parent at the end");
	test_validate(us);
}

/* posix_spawn and vfork share the parent's memory until exec: no atfork. */
static void test_spawn(void)
{
	char *argv[] = { "true", NULL };
	pid_t pid;
	int st;

	T_EQ(posix_spawn(&pid, "/bin/true", NULL, NULL, argv, environ), 0);
	T_ASSERT(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0);
	pid = vfork();
	if (pid == 0) {
		execve("/bin/true", argv, environ);
		_exit(127);
	}
	T_ASSERT(pid > 0);
	T_ASSERT(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0);
	check_all(2, "parent after spawn");
	T_EQ(uswap_unmap(us, mem, (size_t)NPAGES * PG), 0);
	T_EQ(uswap_close(us), 0);
}

int main(void)
{
	T_RUN(test_fork_memory);
	T_RUN(test_spawn);
	return 0;
}

/*
 * prog_mt.c - a multi-threaded program that checks its own memory, for the
 * shim tests (test_shim_threads.sh).  It knows nothing of uswap: it uses
 * malloc, calloc, realloc, mmap, munmap, mremap, madvise and mprotect as
 * any program does, and verifies every byte.
 *
 *   prog_mt work MIB THREADS ROUNDS   working set of MIB MiB (half malloc
 *                                     blocks, half one mmap), THREADS threads
 *                                     writing their own pages and
 *                                     incrementing shared counters on random
 *                                     pages at once; then a full check
 *   prog_mt churn THREADS ROUNDS      threads mapping, growing, shrinking and
 *                                     unmapping (partly) at once, each checking
 *   prog_mt ops                       the calls that change managed memory,
 *                                     each followed by a check of what must
 *                                     have survived
 *
 * Exit 0 if everything checked out; 1 with a message otherwise.
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define PAGE 4096UL
#define MIB (1UL << 20)

static int failures;

#define CHECK(cond, ...)                                                   \
	do {                                                               \
		if (!(cond)) {                                             \
			fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
			fprintf(stderr, __VA_ARGS__);                      \
			fputc('\n', stderr);                               \
			if (++failures > 20)                               \
				exit(1);                                   \
		}                                                          \
	} while (0)

static inline uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	return x ^ (x >> 33);
}

/* ---- work: threads on the same and different pages ---- */

struct page_ref {
	unsigned char *base;
	size_t npages;
};
static struct page_ref *chunks;
static size_t nchunks, total_pages;
static unsigned nthreads, rounds;
static uint64_t *incs;		/* per thread, per page increments done */

static unsigned char *page_at(size_t i)
{
	for (size_t c = 0; c < nchunks; c++) {
		if (i < chunks[c].npages)
			return chunks[c].base + i * PAGE;
		i -= chunks[c].npages;
	}
	abort();
}

/* Word 0 of a page: a counter every thread increments; words 1..: the
 * page's pattern, written by its owner thread (page % nthreads). */
static void fill(size_t i, unsigned gen)
{
	uint64_t *w = (uint64_t *)page_at(i);

	for (size_t k = 1; k < PAGE / 8; k += 7)
		w[k] = mix(i * 1000003 + k + gen);
}

static int check_page(size_t i, unsigned gen)
{
	uint64_t *w = (uint64_t *)page_at(i);

	for (size_t k = 1; k < PAGE / 8; k += 7)
		if (w[k] != mix(i * 1000003 + k + gen))
			return -1;
	return 0;
}

static pthread_barrier_t barrier;

static void *worker(void *arg)
{
	unsigned id = (unsigned)(uintptr_t)arg;
	uint64_t seed = mix(id + 1), *mine = incs + (size_t)id * total_pages;

	for (unsigned r = 0; r < rounds; r++) {
		/* different pages: each thread rewrites its own */
		for (size_t i = id; i < total_pages; i += nthreads)
			fill(i, r);
		pthread_barrier_wait(&barrier);
		/* same pages: every thread increments random counters and
		 * checks the pages it lands on, whoever wrote them */
		for (size_t n = 0; n < total_pages / 2; n++) {
			seed = mix(seed);
			size_t i = seed % total_pages;

			__atomic_fetch_add((uint64_t *)page_at(i), 1, __ATOMIC_RELAXED);
			mine[i]++;
			CHECK(check_page(i, r) == 0, "thread %u round %u: page %zu wrong", id, r, i);
		}
		pthread_barrier_wait(&barrier);
	}
	return NULL;
}

static int work(size_t mib, unsigned threads, unsigned nrounds)
{
	size_t half = mib * MIB / 2, mallocs = 0;
	pthread_t th[64];

	nthreads = threads;
	rounds = nrounds;
	/* half in malloc blocks of 1..16 MiB (glibc's large blocks), half
	 * in one anonymous mapping */
	chunks = calloc(half / MIB + 2, sizeof(*chunks));
	for (size_t done = 0; done < half; nchunks++) {
		size_t len = (1 + nchunks % 16) * MIB;

		if (len > half - done)
			len = half - done;
		chunks[nchunks].base = nchunks % 3 ? malloc(len) : calloc(1, len);
		CHECK(chunks[nchunks].base, "malloc %zu", len);
		chunks[nchunks].npages = len / PAGE;
		if (nchunks % 3 == 0)
			CHECK(chunks[nchunks].base[len - 1] == 0, "calloc memory not zero");
		done += len;
		mallocs++;
	}
	chunks[nchunks].base = mmap(NULL, half, PROT_READ | PROT_WRITE,
				    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(chunks[nchunks].base != MAP_FAILED, "mmap: %s", strerror(errno));
	chunks[nchunks++].npages = half / PAGE;
	for (size_t c = 0; c < nchunks; c++)
		total_pages += chunks[c].npages;
	/* malloc'ed memory is not zeroed: give every counter a start */
	for (size_t i = 0; i < total_pages; i++)
		memset(page_at(i), 0, 16);
	incs = calloc((size_t)threads * total_pages, sizeof(*incs));

	pthread_barrier_init(&barrier, NULL, threads);
	for (unsigned t = 0; t < threads; t++)
		pthread_create(&th[t], NULL, worker, (void *)(uintptr_t)t);
	for (unsigned t = 0; t < threads; t++)
		pthread_join(th[t], NULL);

	size_t bad = 0;
	for (size_t i = 0; i < total_pages; i++) {
		uint64_t want = 0;

		for (unsigned t = 0; t < threads; t++)
			want += incs[(size_t)t * total_pages + i];
		if (*(uint64_t *)page_at(i) != want || check_page(i, rounds - 1))
			bad++;
	}
	CHECK(bad == 0, "%zu of %zu pages wrong after the run", bad, total_pages);
	printf("work: %zu MiB in %zu malloc blocks + 1 mapping, %u threads, %u rounds, "
	       "%zu pages checked, %zu bad\n", mib, mallocs, threads, rounds, total_pages, bad);
	/* give it back: free and munmap */
	for (size_t c = 0; c + 1 < nchunks; c++)
		free(chunks[c].base);
	CHECK(munmap(chunks[nchunks - 1].base, half) == 0, "munmap: %s", strerror(errno));
	return failures ? 1 : 0;
}

/* ---- ops: the calls that change managed memory ---- */

static void pattern(unsigned char *p, size_t len, unsigned salt)
{
	for (size_t o = 0; o < len; o += PAGE)
		*(uint64_t *)(p + o) = mix(o + salt);
}

static size_t bad_pages(const unsigned char *p, size_t len, unsigned salt)
{
	size_t bad = 0;

	for (size_t o = 0; o < len; o += PAGE)
		bad += *(const uint64_t *)(p + o) != mix(o + salt);
	return bad;
}

static sigjmp_buf probe_env;

static void probe_segv(int sig)
{
	siglongjmp(probe_env, sig);
}

/* Does reading @p fault (SIGSEGV)? */
static int faults(const unsigned char *p)
{
	struct sigaction sa = { .sa_handler = probe_segv }, old;
	volatile int hit = 0;

	sigaction(SIGSEGV, &sa, &old);
	if (sigsetjmp(probe_env, 1) == 0)
		(void)*(volatile const unsigned char *)p;
	else
		hit = 1;
	sigaction(SIGSEGV, &old, NULL);
	return hit;
}

static int ops(void)
{
	const size_t len = 64 * MIB;
	unsigned char *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	unsigned char *q, *r;

	CHECK(p != MAP_FAILED, "mmap");
	pattern(p, len, 1);
	CHECK(bad_pages(p, len, 1) == 0, "pattern");

	/* munmap of a middle part: the rest survives, the hole faults */
	CHECK(munmap(p + 16 * MIB, 8 * MIB) == 0, "partial munmap: %s", strerror(errno));
	CHECK(bad_pages(p, 16 * MIB, 1) == 0, "head after partial munmap");
	for (size_t o = 24 * MIB; o < len; o += PAGE)
		CHECK(*(uint64_t *)(p + o) == mix(o + 1), "tail page %zu", o / PAGE);
	/* the hole cannot be touched (under uswap it is a PROT_NONE
	 * reservation, so mincore(2) would call it mapped) */
	CHECK(faults(p + 16 * MIB) && faults(p + 24 * MIB - PAGE), "hole can be touched");

	/* MAP_FIXED over part of it: the new mapping is the program's */
	q = mmap(p + 4 * MIB, 2 * MIB, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	CHECK(q == p + 4 * MIB, "MAP_FIXED: %s", strerror(errno));
	CHECK(*(uint64_t *)q == 0, "MAP_FIXED memory not zero");
	memset(q, 0x5a, 2 * MIB);
	CHECK(bad_pages(p, 4 * MIB, 1) == 0, "before MAP_FIXED");
	for (size_t o = 6 * MIB; o < 16 * MIB; o += PAGE)
		CHECK(*(uint64_t *)(p + o) == mix(o + 1), "after MAP_FIXED page %zu", o / PAGE);

	/* madvise(DONTNEED) reads zeros; PAGEOUT and WILLNEED keep data */
	CHECK(madvise(p + 8 * MIB, MIB, MADV_DONTNEED) == 0, "DONTNEED");
	CHECK(*(uint64_t *)(p + 8 * MIB + PAGE) == 0, "DONTNEED did not zero");
	CHECK(madvise(p + 24 * MIB, 8 * MIB, MADV_PAGEOUT) == 0, "PAGEOUT");
	CHECK(madvise(p + 24 * MIB, 8 * MIB, MADV_WILLNEED) == 0, "WILLNEED");
	for (size_t o = 24 * MIB; o < 32 * MIB; o += PAGE)
		CHECK(*(uint64_t *)(p + o) == mix(o + 1), "after PAGEOUT page %zu", o / PAGE);
	/* a range over managed and unmanaged parts */
	CHECK(madvise(p, 16 * MIB, MADV_COLD) == 0, "COLD over mixed range: %s", strerror(errno));

	/* mremap: shrink in place, then grow (moves) */
	r = mremap(p + 24 * MIB, 40 * MIB, 20 * MIB, 0);
	CHECK(r == p + 24 * MIB, "mremap shrink: %s", strerror(errno));
	r = mremap(r, 20 * MIB, 48 * MIB, MREMAP_MAYMOVE);
	CHECK(r != MAP_FAILED, "mremap grow: %s", strerror(errno));
	for (size_t o = 0; o < 20 * MIB; o += PAGE)
		CHECK(*(uint64_t *)(r + o) == mix(o + 24 * MIB + 1), "mremap'd page %zu", o / PAGE);
	CHECK(*(uint64_t *)(r + 30 * MIB) == 0, "mremap growth not zero");

	/* mprotect read-only: the data stays, writes would fault */
	CHECK(mprotect(p, 4 * MIB, PROT_READ) == 0, "mprotect: %s", strerror(errno));
	CHECK(bad_pages(p, 4 * MIB, 1) == 0, "after mprotect");
	CHECK(mprotect(p, 4 * MIB, PROT_READ | PROT_WRITE) == 0, "mprotect back");
	pattern(p, 4 * MIB, 7);
	CHECK(bad_pages(p, 4 * MIB, 7) == 0, "written after mprotect");

	/* malloc: realloc grows and shrinks a large block, the data follows */
	unsigned char *m = malloc(8 * MIB);
	pattern(m, 8 * MIB, 3);
	m = realloc(m, 32 * MIB);
	CHECK(m && bad_pages(m, 8 * MIB, 3) == 0, "realloc grow");
	m = realloc(m, 4 * MIB);
	CHECK(m && bad_pages(m, 4 * MIB, 3) == 0, "realloc shrink");
	m = realloc(m, 100 * 1024);
	CHECK(m && bad_pages(m, 100 * 1024 & ~(PAGE - 1), 3) == 0, "realloc under threshold");
	free(m);
	void *al = NULL;
	CHECK(posix_memalign(&al, 4 * MIB, 3 * MIB) == 0 && ((uintptr_t)al & (4 * MIB - 1)) == 0,
	      "posix_memalign 4M");
	memset(al, 1, 3 * MIB);
	free(al);

	munmap(p, len);
	munmap(r, 48 * MIB);
	printf("ops: %s\n", failures ? "FAILED" : "all checks passed");
	return failures ? 1 : 0;
}

/* ---- fork: a child sees the parent's managed memory as of the fork ---- */

static int forked(void)
{
	const size_t len = 64 * MIB;
	unsigned char *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	unsigned char *m = malloc(32 * MIB);
	int status;

	CHECK(p != MAP_FAILED && m, "mmap/malloc");
	pattern(p, len, 11);
	pattern(m, 32 * MIB, 12);
	/* a released range and a range given to a mapping of the program's */
	CHECK(munmap(p + 8 * MIB, 4 * MIB) == 0, "munmap");
	CHECK(mmap(p + 16 * MIB, MIB, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
		   -1, 0) == p + 16 * MIB, "MAP_FIXED");
	madvise(p, len, MADV_PAGEOUT);	/* most of it evicted at the fork */
	pid_t pid = fork();
	if (pid == 0) {
		size_t bad = bad_pages(p, 8 * MIB, 11) + bad_pages(m, 32 * MIB, 12);

		for (size_t o = 17 * MIB; o < len; o += PAGE)
			bad += *(uint64_t *)(p + o) != mix(o + 11);
		pattern(p, 8 * MIB, 13);	/* the child's own writes */
		bad += bad_pages(p, 8 * MIB, 13);
		free(m);
		_exit(bad ? 1 : 0);
	}
	CHECK(pid > 0 && waitpid(pid, &status, 0) == pid, "fork/wait");
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the child saw wrong data (status %#x)", status);
	CHECK(bad_pages(p, 8 * MIB, 11) == 0, "the parent's data changed after the child wrote");
	CHECK(bad_pages(m, 32 * MIB, 12) == 0, "the parent's malloc block changed");
	free(m);
	munmap(p, len);
	printf("fork: %s\n", failures ? "FAILED" : "all checks passed");
	return failures ? 1 : 0;
}

/* ---- churn: threads allocating, growing, shrinking, unmapping at once ---- */

static unsigned churn_iters;

static void *churn_main(void *arg)
{
	unsigned id = (unsigned)(uintptr_t)arg;
	uint64_t seed = mix(id + 100);

	for (unsigned it = 0; it < churn_iters; it++) {
		seed = mix(seed);
		size_t len = (1 + seed % 6) * MIB + (seed >> 20) % MIB;
		unsigned salt = id * 100000 + it;

		if (id % 2 == 0) {
			/* malloc family: fill, grow, shrink, check, free */
			unsigned char *p = seed & 1 ? malloc(len) : calloc(1, len);

			CHECK(p, "malloc %zu", len);
			pattern(p, len, salt);
			p = realloc(p, len * 2);
			CHECK(p && bad_pages(p, len, salt) == 0, "thread %u: realloc grow", id);
			p = realloc(p, len / 2);
			CHECK(p && bad_pages(p, len / 2, salt) == 0, "thread %u: realloc shrink", id);
			free(p);
		} else {
			/* mmap: fill, unmap a middle part, check the rest, unmap */
			unsigned char *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
						MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
			size_t cut = (len / 4) & ~(PAGE - 1), n = (len / 4) & ~(PAGE - 1);

			CHECK(p != MAP_FAILED, "mmap %zu", len);
			pattern(p, len, salt);
			CHECK(munmap(p + cut, n) == 0, "partial munmap");
			madvise(p + cut + n, PAGE * 16, MADV_DONTNEED);
			CHECK(bad_pages(p, cut, salt) == 0, "thread %u: head after munmap", id);
			for (size_t o = cut + n + 16 * PAGE; o + PAGE <= len; o += PAGE)
				CHECK(*(uint64_t *)(p + o) == mix(o + salt), "thread %u: tail page", id);
			/* Only what is still ours: the hole may hold another
			 * thread's mapping by now (without uswap it would). */
			CHECK(munmap(p, cut) == 0 && munmap(p + cut + n, len - cut - n) == 0, "munmap");
		}
	}
	return NULL;
}

static int churn(unsigned threads, unsigned iters)
{
	pthread_t th[64];

	churn_iters = iters;
	for (unsigned t = 0; t < threads; t++)
		pthread_create(&th[t], NULL, churn_main, (void *)(uintptr_t)t);
	for (unsigned t = 0; t < threads; t++)
		pthread_join(th[t], NULL);
	printf("churn: %u threads x %u rounds: %s\n", threads, iters,
	       failures ? "FAILED" : "all checks passed");
	return failures ? 1 : 0;
}

/* ---- small: a program that allocates nothing large ---- */

static int small(void)
{
	struct timespec a, b;
	unsigned long n = 20000000, sum = 0;
	DIR *d;
	int threads = 0;

	static char *volatile ring[64];

	clock_gettime(CLOCK_MONOTONIC, &a);
	for (unsigned long i = 0; i < n; i++) {
		char *q = malloc(16 + i % 512);

		q[0] = (char)i;
		sum += (unsigned char)q[0];
		free(ring[i % 64]);
		ring[i % 64] = q;
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	if ((d = opendir("/proc/self/task"))) {
		for (struct dirent *e; (e = readdir(d));)
			threads += e->d_name[0] != '.';
		closedir(d);
	}
	printf("small: %.1f ns per malloc+free, %d thread(s), checksum %lu\n",
	       ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / n, threads, sum);
	return 0;
}

/* A large allocation before main, from a constructor, with a check. */
static unsigned char *ctor_block;

__attribute__((constructor)) static void ctor(void)
{
	if (!getenv("PROG_MT_CTOR"))
		return;
	ctor_block = malloc(8 * MIB);
	if (ctor_block)
		pattern(ctor_block, 8 * MIB, 21);
}

int main(int argc, char **argv)
{
	if (ctor_block && bad_pages(ctor_block, 8 * MIB, 21)) {
		fprintf(stderr, "FAIL: the block allocated in a constructor changed\n");
		return 1;
	}
	if (argc == 4 && !strcmp(argv[1], "churn"))
		return churn((unsigned)strtoul(argv[2], NULL, 0), (unsigned)strtoul(argv[3], NULL, 0));
	if (argc == 2 && !strcmp(argv[1], "small"))
		return small();
	if (argc == 2 && !strcmp(argv[1], "fork"))
		return forked();
	if (argc == 5 && !strcmp(argv[1], "work"))
		return work(strtoul(argv[2], NULL, 0), (unsigned)strtoul(argv[3], NULL, 0),
			    (unsigned)strtoul(argv[4], NULL, 0));
	if (argc == 2 && !strcmp(argv[1], "ops"))
		return ops();
	fprintf(stderr, "usage: prog_mt work MIB THREADS ROUNDS | prog_mt ops\n");
	return 2;
}

/*
 * preload.c - libuswap-preload.so: uswap for an unmodified program.
 *
 * The shim puts the program's large private anonymous memory under a uswap
 * engine, and follows every call that changes such memory.  DESIGN.md,
 * "The LD_PRELOAD shim", is the long form of this comment.
 *
 *  - mmap(NULL or hint, len >= USWAP_MIN_REGION, PROT_READ|PROT_WRITE,
 *    MAP_PRIVATE|MAP_ANONYMOUS [|MAP_NORESERVE]) comes from uswap_map();
 *    jemalloc's extents, Python's arenas and the like land there.
 *  - The malloc family: glibc's malloc maps its large blocks with its
 *    internal __mmap, which nobody can interpose, so when glibc is the
 *    program's allocator the shim serves blocks of USWAP_MIN_REGION and
 *    more from managed regions itself (one region per block) and passes
 *    the rest to __libc_malloc and friends.  When another allocator is the
 *    program's (redis links jemalloc), every call goes to it untouched: it
 *    gets its memory with mmap(2), which the shim does see.
 *  - munmap, mremap, madvise, mprotect and MAP_FIXED over managed memory
 *    go to the engine (manage.h); everything else, and every call on
 *    memory the engine does not manage, goes to the kernel as is.
 *
 * Recursion: the engine's own objects are linked into this library with
 * their malloc/mmap/munmap/madvise/mprotect/pthread_create references
 * renamed to __libc_* and raw system calls (Makefile, SHIM_REDEFINE), so
 * nothing the engine does comes back here.  What the libraries it calls do
 * (liblz4, libzstd, glibc making a thread) comes back with the thread-local
 * `inside` set: the engine's threads have it from birth, and the shim sets
 * it around its calls into the engine; such calls always go to glibc.
 *
 * Nothing starts until the first large allocation: a program that never
 * makes one pays a load and a compare per malloc, and never gets a thread.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "uswap.h"
#include "manage.h"
#include "statsfile.h"

#define EXPORT __attribute__((visibility("default")))
#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
#define PAGE ((size_t)4096)
#define GRANULE ((size_t)2 << 20)
#define RW (PROT_READ | PROT_WRITE)
#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif

/* The engine's internals the shim uses (options.c, engine.c). */
int parse_size(const char *s, size_t *out);
void uswap__warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* glibc's allocator under its exported internal names: no dlsym needed. */
extern void *__libc_malloc(size_t);
extern void __libc_free(void *);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void *__libc_valloc(size_t);
extern void *__libc_pvalloc(size_t);

/* The fork support may be missing from an engine built without fork.c. */
#pragma weak uswap_fork_prepare
#pragma weak uswap_fork_parent
#pragma weak uswap_fork_child

/* Set on the engine's threads and around the shim's calls into it. */
static __thread int inside __attribute__((tls_model("initial-exec")));

static size_t threshold = (size_t)1 << 20;	/* USWAP_MIN_REGION */

/* ---- raw system calls: the engine objects' mmap & co. (Makefile) ---- */

void *uswap__raw_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	return (void *)syscall(SYS_mmap, addr, len, prot, flags, fd, off);
}

int uswap__raw_munmap(void *addr, size_t len)
{
	return (int)syscall(SYS_munmap, addr, len);
}

int uswap__raw_madvise(void *addr, size_t len, int advice)
{
	return (int)syscall(SYS_madvise, addr, len, advice);
}

int uswap__raw_mprotect(void *addr, size_t len, int prot)
{
	return (int)syscall(SYS_mprotect, addr, len, prot);
}

void *uswap__raw_mremap(void *old, size_t old_len, size_t new_len, int flags, ...)
{
	void *new_addr = NULL;
	va_list ap;

	va_start(ap, flags);
	if (flags & MREMAP_FIXED)
		new_addr = va_arg(ap, void *);
	va_end(ap);
	return (void *)syscall(SYS_mremap, old, old_len, new_len, flags, new_addr);
}

int uswap__raw_posix_memalign(void **p, size_t align, size_t len)
{
	*p = __libc_memalign(align, len);
	return *p ? 0 : ENOMEM;
}

/*
 * The engine's pthread_create: its threads start with `inside` set and
 * every signal blocked (an application's signal handler must never run on
 * a pager thread, uswap.h "Pager threads").
 */
struct tramp {
	void *(*fn)(void *);
	void *arg;
};

static void *tramp_main(void *p)
{
	struct tramp t = *(struct tramp *)p;

	__libc_free(p);
	inside = 1;
	return t.fn(t.arg);
}

/*
 * Their stacks are our own (raw mmap, never managed), not glibc's cached
 * ones: in a forked child, reusing a cached stack frees its old thread's
 * DTV, which the program's allocator may have put in managed memory, and
 * the child's engine must start before any managed page is touched.  The
 * DTV of the new thread itself comes from glibc (`inside`).  A pager
 * thread lives as long as its engine; its stack is not reclaimed.
 */
#define PAGER_STACK ((size_t)1 << 20)

int uswap__thread_create(pthread_t *th, const pthread_attr_t *attr,
			 void *(*fn)(void *), void *arg)
{
	struct tramp *t = __libc_malloc(sizeof(*t));
	pthread_attr_t a;
	sigset_t all, old;
	unsigned char *stack;
	int err;

	(void)attr;	/* the engine passes none */
	if (!t)
		return EAGAIN;
	stack = uswap__raw_mmap(NULL, PAGER_STACK + PAGE, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
	if (stack == MAP_FAILED) {
		__libc_free(t);
		return EAGAIN;
	}
	uswap__raw_mprotect(stack, PAGE, PROT_NONE);	/* guard */
	t->fn = fn;
	t->arg = arg;
	pthread_attr_init(&a);
	pthread_attr_setstack(&a, stack + PAGE, PAGER_STACK);
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	inside++;
	err = pthread_create(th, &a, tramp_main, t);
	inside--;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&a);
	if (err) {
		__libc_free(t);
		uswap__raw_munmap(stack, PAGER_STACK + PAGE);
	}
	return err;
}

/* ---- whose allocator: glibc's (we serve large blocks) or another ---- */

static void fork_prepare(void);
static void fork_parent(void);
static void fork_child(void);

enum { ALLOC_UNKNOWN, ALLOC_RESOLVING, ALLOC_GLIBC, ALLOC_FOREIGN };
static _Atomic int alloc_mode;

static struct {
	void *(*malloc)(size_t);
	void (*free)(void *);
	void *(*calloc)(size_t, size_t);
	void *(*realloc)(void *, size_t);
	void *(*memalign)(size_t, size_t);
	int (*posix_memalign)(void **, size_t, size_t);
	void *(*aligned_alloc)(size_t, size_t);
	void *(*valloc)(size_t);
	void *(*pvalloc)(size_t);
	size_t (*usable)(void *);
} nx;

/*
 * Which malloc the program would get without us.  If it is glibc's
 * (malloc == __libc_malloc), the shim serves large blocks; if a library
 * (jemalloc, tcmalloc) provides its own, every call goes there.  Resolved
 * at the first call; a call made by dlsym itself meanwhile goes to glibc.
 */
static int resolve(void)
{
	int m = ALLOC_UNKNOWN;

	if (!atomic_compare_exchange_strong(&alloc_mode, &m, ALLOC_RESOLVING))
		return m == ALLOC_RESOLVING ? ALLOC_GLIBC : m;
	inside++;
	void *next = dlsym(RTLD_NEXT, "malloc");
	nx.usable = (size_t (*)(void *))dlsym(RTLD_NEXT, "malloc_usable_size");
	if (next && next != (void *)__libc_malloc) {
		nx.malloc = (void *(*)(size_t))next;
		nx.free = (void (*)(void *))dlsym(RTLD_NEXT, "free");
		nx.calloc = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "calloc");
		nx.realloc = (void *(*)(void *, size_t))dlsym(RTLD_NEXT, "realloc");
		nx.memalign = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "memalign");
		nx.posix_memalign = (int (*)(void **, size_t, size_t))dlsym(RTLD_NEXT, "posix_memalign");
		nx.aligned_alloc = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "aligned_alloc");
		nx.valloc = (void *(*)(size_t))dlsym(RTLD_NEXT, "valloc");
		nx.pvalloc = (void *(*)(size_t))dlsym(RTLD_NEXT, "pvalloc");
		m = nx.free && nx.calloc && nx.realloc && nx.memalign && nx.posix_memalign &&
		    nx.aligned_alloc && nx.valloc && nx.pvalloc && nx.usable
			? ALLOC_FOREIGN : ALLOC_GLIBC;
	} else {
		m = ALLOC_GLIBC;
	}
	/*
	 * Our fork handlers go first, before the program's allocator can
	 * register its own at its first call: child handlers run in the
	 * order registered, prepare handlers in the reverse.  So the child's
	 * engine is running before jemalloc's child handler touches its
	 * metadata (managed memory: it may be evicted), and our prepare
	 * stops the engine only after the allocator holds its locks (a
	 * thread holding one may be waiting for a fault to be served).
	 * The handlers do nothing until the engine is open.
	 */
	pthread_atfork(fork_prepare, fork_parent, fork_child);
	inside--;
	atomic_store(&alloc_mode, m);
	return m;
}

/* The mode for this call: FOREIGN means "forward to nx", except for calls
 * from inside uswap, which always use glibc. */
static inline int mode(void)
{
	int m = atomic_load_explicit(&alloc_mode, memory_order_relaxed);

	if (unlikely(m != ALLOC_GLIBC)) {
		if (m == ALLOC_UNKNOWN)
			m = resolve();
		if (m != ALLOC_FOREIGN || inside)
			m = ALLOC_GLIBC;
	}
	return m;
}

/* ---- configuration and the engine, opened at the first large allocation ---- */

enum { ENGINE_OFF, ENGINE_OPENING, ENGINE_ON, ENGINE_FAILED };
static _Atomic int engine_state;
static struct uswap *_Atomic g_us;
static struct uswap_config cfg;
static bool config_read;

static void stats_start(struct uswap *us, bool lazy);

/* USWAP_MIN_REGION and the engine's USWAP_* variables.  A bad value: one
 * message, and the program runs unmanaged (the CLI checks values before
 * it execs; this is for LD_PRELOAD set by hand). */
static void read_config(void)
{
	const char *v = getenv("USWAP_MIN_REGION");
	char err[256];
	size_t t;

	if (config_read)
		return;
	config_read = true;
	if (v && parse_size(v, &t)) {
		uswap__warn("uswap: USWAP_MIN_REGION: invalid size '%s' (accepted: a number of bytes "
			    "with an optional K, M, G or T suffix, e.g. 1M); the program runs unmanaged", v);
		atomic_store(&engine_state, ENGINE_FAILED);
		return;
	}
	if (v)
		threshold = t < PAGE ? PAGE : t;
	if (uswap_config_init(&cfg, err, sizeof(err))) {
		uswap__warn("uswap: %s; the program runs unmanaged", err);
		atomic_store(&engine_state, ENGINE_FAILED);
	}
}

static struct uswap *engine_open(void)
{
	struct uswap *us;

	read_config();
	if (atomic_load(&engine_state) == ENGINE_FAILED)
		return NULL;
	us = uswap_open(&cfg);
	if (!us) {
		uswap__warn("uswap: cannot manage memory (%s%s); the program runs unmanaged",
			    strerror(errno), errno == EPERM || errno == ENOSYS ?
			    ": userfaultfd is not usable" : "");
		return NULL;
	}
	atomic_store_explicit(&g_us, us, memory_order_release);
	stats_start(us, false);
	return us;
}

/*
 * The engine, opening it if this is the first large allocation.  Never
 * waits: a large allocation made while another thread opens the engine,
 * or from inside uswap (the engine's own threads, a constructor the
 * opening runs), is simply not managed.
 */
static struct uswap *engine(void)
{
	struct uswap *us = atomic_load_explicit(&g_us, memory_order_acquire);
	int s = ENGINE_OFF;

	if (likely(us) || inside)
		return us;
	if (!atomic_compare_exchange_strong(&engine_state, &s, ENGINE_OPENING))
		return NULL;
	inside++;
	us = engine_open();
	inside--;
	atomic_store(&engine_state, us ? ENGINE_ON : ENGINE_FAILED);
	return us;
}

static inline struct uswap *engine_if_open(void)
{
	return inside ? NULL : atomic_load_explicit(&g_us, memory_order_acquire);
}

/* ---- large malloc blocks: one managed region each ---- */

/*
 * The side table, indexed by region slot.  A block's region is found from
 * its pointer by the engine's lock-free directory (uswap__managed), so a
 * free() of a pointer that is not ours costs one load when no region is
 * near it.  Each entry is written by the thread that maps the region, and
 * read by whoever holds a pointer into it.
 */
enum { BLK_NONE, BLK_MALLOC, BLK_MMAP };
struct blk {
	_Atomic int kind;
	size_t off;	/* user pointer - region base (alignment > 2 MiB) */
	size_t size;	/* bytes asked for */
	size_t live;	/* bytes from the base not released: page multiple */
};
static struct blk blks[USWAP__MAX_REGIONS];

static inline size_t page_round(size_t n)
{
	return (n + PAGE - 1) & ~(PAGE - 1);
}

/* Bytes of managed address space the program holds, and the most it held:
 * printed at exit with the statistics ("how much was managed"). */
static _Atomic size_t managed_bytes, managed_peak;

static void managed_add(size_t n)
{
	size_t v = atomic_fetch_add_explicit(&managed_bytes, n, memory_order_relaxed) + n;
	size_t peak = atomic_load_explicit(&managed_peak, memory_order_relaxed);

	while (v > peak && !atomic_compare_exchange_weak(&managed_peak, &peak, v))
		;
}

static void managed_sub(size_t n)
{
	atomic_fetch_sub_explicit(&managed_bytes, n, memory_order_relaxed);
}

static void *map_region(struct uswap *us, size_t len, int kind)
{
	void *p;
	int id;

	inside++;
	p = uswap_map(us, len);
	inside--;
	if (!p || (id = uswap__managed(us, p)) < 0)
		return NULL;
	managed_add(page_round(len));
	blks[id].off = 0;
	blks[id].size = len;
	blks[id].live = page_round(len);
	atomic_store_explicit(&blks[id].kind, kind, memory_order_release);
	return p;
}

static void *big_malloc(size_t n, size_t align)
{
	struct uswap *us = engine();
	size_t extra = align > GRANULE ? align : 0;
	unsigned char *base;
	int id;

	if (!us || n + extra < n || n + extra > ((size_t)1 << 46))
		return NULL;
	base = map_region(us, n + extra, BLK_MALLOC);
	if (!base)
		return NULL;
	id = uswap__managed(us, base);
	size_t off = extra ? (((uintptr_t)base + align - 1) & ~(uintptr_t)(align - 1)) - (uintptr_t)base : 0;
	blks[id].off = off;
	blks[id].size = n;
	blks[id].live = page_round(off + n);
	return base + off;
}

static void __attribute__((noreturn)) bad_pointer(const char *call, void *p)
{
	uswap__warn("uswap: %s(%p): not a pointer the allocator returned", call, p);
	abort();
}

/* The block at @p (managed, region slot @id); its region base. */
static struct blk *big_blk(struct uswap *us, int id, void *p, const char *call,
			   uintptr_t *base, size_t *rlen)
{
	struct blk *b = &blks[id];

	if (atomic_load_explicit(&b->kind, memory_order_acquire) != BLK_MALLOC ||
	    uswap__region(us, id, base, rlen) || *base + b->off != (uintptr_t)p)
		bad_pointer(call, p);
	return b;
}

static void big_free(struct uswap *us, int id, void *p)
{
	uintptr_t base;
	size_t rlen;
	struct blk *b = big_blk(us, id, p, "free", &base, &rlen);

	atomic_store(&b->kind, BLK_NONE);
	managed_sub(b->live);
	inside++;
	uswap_unmap(us, (void *)base, rlen);
	inside--;
}

/*
 * realloc of a managed block.  Shrinking stays in place (whole pages past
 * the new end are released when that frees 64 KiB or more); shrinking under
 * the threshold moves the block to glibc.  Growing copies into a new block:
 * the pages ever touched are read (swapped in if need be) and written once,
 * the old block is unmapped.  Amortized by the caller's growth policy
 * (CPython and most vectors grow geometrically); see DESIGN.md.
 */
static void *big_realloc(struct uswap *us, int id, void *p, size_t n)
{
	uintptr_t base;
	size_t rlen;
	struct blk *b = big_blk(us, id, p, "realloc", &base, &rlen);
	size_t usable = b->live - b->off;
	void *q;

	if (n == 0) {
		big_free(us, id, p);
		return NULL;
	}
	if (n <= usable && n >= threshold) {
		size_t live = page_round(b->off + n);

		if (b->live - live >= ((size_t)64 << 10)) {
			inside++;
			if (!uswap__release(us, (void *)(base + live), b->live - live)) {
				managed_sub(b->live - live);
				b->live = live;
			}
			inside--;
		}
		b->size = n;
		return p;
	}
	if (n < threshold) {
		q = __libc_malloc(n);
		if (!q)
			return NULL;
		memcpy(q, p, n);
	} else if ((q = big_malloc(n, 0))) {
		inside++;
		uswap__copy(us, q, p, usable);
		inside--;
	} else {
		q = __libc_malloc(n);
		if (!q)
			return NULL;
		memcpy(q, p, usable);
	}
	big_free(us, id, p);
	return q;
}

/*
 * Orphans: malloc blocks whose region was unmanaged (mprotect on them).
 * Their memory is plain now; free() unmaps it.  Rare, so a small table
 * under a lock, looked at only when it is not empty.
 */
#define MAX_ORPHANS 64
static struct orphan {
	uintptr_t base;
	size_t off, size, live;
} orphans[MAX_ORPHANS];
static _Atomic int norphans;
static pthread_mutex_t orphan_lock = PTHREAD_MUTEX_INITIALIZER;

static void orphan_add(struct uswap *us, int id)
{
	struct blk *b = &blks[id];
	uintptr_t base;
	size_t rlen;

	if (atomic_load(&b->kind) != BLK_MALLOC || uswap__region(us, id, &base, &rlen))
		return;
	pthread_mutex_lock(&orphan_lock);
	int n = atomic_load(&norphans);
	if (n < MAX_ORPHANS) {
		orphans[n] = (struct orphan){ base, b->off, b->size, b->live };
		atomic_store(&norphans, n + 1);
	}	/* else the block is never freed: a leak, not a crash */
	atomic_store(&b->kind, BLK_NONE);
	pthread_mutex_unlock(&orphan_lock);
}

/* Find the orphan at @p; with @take, remove it.  Returns false if none. */
static bool orphan_find(void *p, bool take, struct orphan *out)
{
	bool found = false;

	pthread_mutex_lock(&orphan_lock);
	int n = atomic_load(&norphans);
	for (int i = 0; i < n; i++) {
		if (orphans[i].base + orphans[i].off != (uintptr_t)p)
			continue;
		*out = orphans[i];
		if (take) {
			orphans[i] = orphans[n - 1];
			atomic_store(&norphans, n - 1);
		}
		found = true;
		break;
	}
	pthread_mutex_unlock(&orphan_lock);
	return found;
}

/* ---- the malloc family ---- */

EXPORT void *malloc(size_t n)
{
	if (unlikely(mode() == ALLOC_FOREIGN))
		return nx.malloc(n);
	if (likely(n < threshold) || inside)
		return __libc_malloc(n);
	void *p = big_malloc(n, 0);
	return p ? p : __libc_malloc(n);
}

EXPORT void free(void *p)
{
	struct uswap *us;
	struct orphan o;
	int id;

	if (unlikely(mode() == ALLOC_FOREIGN)) {
		nx.free(p);
		return;
	}
	/* From inside uswap (which may hold the fork gate): never ours. */
	us = engine_if_open();
	if (us && p && (id = uswap__managed(us, p)) >= 0) {
		big_free(us, id, p);
		return;
	}
	if (unlikely(atomic_load_explicit(&norphans, memory_order_relaxed)) && p &&
	    orphan_find(p, true, &o)) {
		uswap__raw_munmap((void *)o.base, o.live);
		return;
	}
	__libc_free(p);
}

EXPORT void *calloc(size_t n, size_t m)
{
	size_t len;

	if (unlikely(mode() == ALLOC_FOREIGN))
		return nx.calloc(n, m);
	if (__builtin_mul_overflow(n, m, &len)) {
		errno = ENOMEM;
		return NULL;
	}
	if (likely(len < threshold) || inside)
		return __libc_calloc(n, m);
	void *p = big_malloc(len, 0);	/* a fresh region reads as zeros */
	return p ? p : __libc_calloc(n, m);
}

EXPORT void *realloc(void *p, size_t n)
{
	struct uswap *us;
	struct orphan o;
	int id;

	if (unlikely(mode() == ALLOC_FOREIGN))
		return nx.realloc(p, n);
	if (!p)
		return malloc(n);
	us = engine_if_open();
	if (us && (id = uswap__managed(us, p)) >= 0)
		return big_realloc(us, id, p, n);
	if (unlikely(atomic_load_explicit(&norphans, memory_order_relaxed)) &&
	    orphan_find(p, false, &o)) {
		void *q = malloc(n);

		if (q || n == 0) {
			memcpy(q, p, n < o.live - o.off ? n : o.live - o.off);
			free(p);
		}
		return q;
	}
	if (likely(n < threshold) || inside)
		return __libc_realloc(p, n);
	/* A glibc block grows past the threshold: it moves to managed memory. */
	void *q = big_malloc(n, 0);
	if (!q)
		return __libc_realloc(p, n);
	size_t old = nx.usable ? nx.usable(p) : n;
	memcpy(q, p, old < n ? old : n);
	__libc_free(p);
	return q;
}

EXPORT void *reallocarray(void *p, size_t n, size_t m)
{
	size_t len;

	if (__builtin_mul_overflow(n, m, &len)) {
		errno = ENOMEM;
		return NULL;
	}
	return realloc(p, len);
}

EXPORT void *memalign(size_t align, size_t n)
{
	if (unlikely(mode() == ALLOC_FOREIGN))
		return nx.memalign(align, n);
	if (n >= threshold && !inside && align && !(align & (align - 1))) {
		void *p = big_malloc(n, align);

		if (p)
			return p;
	}
	return __libc_memalign(align, n);
}

EXPORT void *aligned_alloc(size_t align, size_t n)
{
	if (unlikely(mode() == ALLOC_FOREIGN))
		return nx.aligned_alloc(align, n);
	return memalign(align, n);
}

EXPORT int posix_memalign(void **pp, size_t align, size_t n)
{
	void *p;

	if (unlikely(mode() == ALLOC_FOREIGN))
		return nx.posix_memalign(pp, align, n);
	if (!align || align % sizeof(void *) || (align & (align - 1)))
		return EINVAL;
	p = memalign(align, n);
	if (!p)
		return ENOMEM;
	*pp = p;
	return 0;
}

EXPORT void *valloc(size_t n)
{
	if (unlikely(mode() == ALLOC_FOREIGN))
		return nx.valloc(n);
	if (n >= threshold && !inside) {
		void *p = big_malloc(n, PAGE);

		if (p)
			return p;
	}
	return __libc_valloc(n);
}

EXPORT void *pvalloc(size_t n)
{
	if (unlikely(mode() == ALLOC_FOREIGN))
		return nx.pvalloc(n);
	if (n >= threshold && !inside) {
		void *p = big_malloc(page_round(n), PAGE);

		if (p)
			return p;
	}
	return __libc_pvalloc(n);
}

EXPORT size_t malloc_usable_size(void *p)
{
	struct uswap *us;
	struct orphan o;
	int id;

	if (unlikely(mode() == ALLOC_FOREIGN))
		return nx.usable(p);
	if (!p)
		return 0;
	us = engine_if_open();
	if (us && (id = uswap__managed(us, p)) >= 0) {
		uintptr_t base;
		size_t rlen;
		struct blk *b = big_blk(us, id, p, "malloc_usable_size", &base, &rlen);

		return b->live - b->off;
	}
	if (unlikely(atomic_load_explicit(&norphans, memory_order_relaxed)) &&
	    orphan_find(p, false, &o))
		return o.live - o.off;
	return nx.usable ? nx.usable(p) : 0;
}

/* ---- mmap and the calls that change mappings ---- */

/* Would the kernel make this a private anonymous read-write mapping we
 * may put anywhere? */
static inline bool eligible(size_t len, int prot, int flags)
{
	return len >= threshold && prot == RW &&
	       (flags & ~MAP_NORESERVE) == (MAP_PRIVATE | MAP_ANONYMOUS);
}

/* Is any page of [a, a+len) managed or reserved by the engine? */
static bool touches_managed(struct uswap *us, uintptr_t a, size_t len)
{
	for (uintptr_t end = a + len; a < end;) {
		size_t run;
		int id;

		if (uswap__kind(us, a, end - a, &run, &id) != USWAP_FOREIGN)
			return true;
		a += run;
	}
	return false;
}

/* Hand [a, a+len) over to a mapping the application puts there. */
static void replace_range(struct uswap *us, uintptr_t a, size_t len)
{
	inside++;
	for (uintptr_t end = a + len; a < end;) {
		size_t run;
		int id;

		if (uswap__kind(us, a, end - a, &run, &id) != USWAP_FOREIGN)
			uswap__replace(us, (void *)a, run);
		a += run;
	}
	inside--;
}

/* Unmanage every region with a page in [a, a+len), remembering the malloc
 * blocks among them. */
static void unmanage_range(struct uswap *us, uintptr_t a, size_t len)
{
	bool any = false;

	for (uintptr_t p = a, end = a + len; p < end;) {
		size_t run;
		int id;

		if (uswap__kind(us, p, end - p, &run, &id) == USWAP_MANAGED) {
			orphan_add(us, id);
			any = true;
		}
		p += run;
	}
	if (any) {
		inside++;
		uswap__unmanage(us, (void *)a, len);
		inside--;
	}
}

/* munmap of a managed run inside region @id. */
static void unmap_managed(struct uswap *us, int id, uintptr_t a, size_t run)
{
	uintptr_t base;
	size_t rlen;

	if (uswap__region(us, id, &base, &rlen))
		return;
	inside++;
	if (a == base && run == rlen) {
		atomic_store(&blks[id].kind, BLK_NONE);
		uswap_unmap(us, (void *)base, rlen);
	} else {
		uswap__release(us, (void *)a, run);
	}
	inside--;
	managed_sub(run);
}

EXPORT void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	struct uswap *us;

	if (!inside && eligible(len, prot, flags) && (us = engine())) {
		void *p = map_region(us, len, BLK_MMAP);

		if (p)
			return p;
	} else if ((flags & MAP_FIXED) && (us = engine_if_open()) &&
		   !((uintptr_t)addr & (PAGE - 1)) && len) {
		replace_range(us, (uintptr_t)addr, page_round(len));
	}
	return uswap__raw_mmap(addr, len, prot, flags, fd, off);
}

EXPORT void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off)
	__attribute__((alias("mmap")));

EXPORT int munmap(void *addr, size_t len)
{
	struct uswap *us = engine_if_open();
	uintptr_t a = (uintptr_t)addr, end;
	int ret = 0;

	if (!us || (a & (PAGE - 1)) || len == 0 || a + page_round(len) < a)
		return uswap__raw_munmap(addr, len);
	for (end = a + page_round(len); a < end;) {
		size_t run;
		int id, kind = uswap__kind(us, a, end - a, &run, &id);

		if (kind == USWAP_FOREIGN)
			ret |= uswap__raw_munmap((void *)a, run);
		else if (kind == USWAP_MANAGED)
			unmap_managed(us, id, a, run);
		/* USWAP_RESERVED: unmapped already, as far as the program knows */
		a += run;
	}
	return ret ? -1 : 0;
}

static int advise_managed(struct uswap *us, uintptr_t a, size_t len, int advice)
{
	long ret = 0;

	inside++;
	switch (advice) {
	case MADV_DONTNEED:
	case MADV_FREE:
	case MADV_REMOVE:
		ret = uswap_discard(us, (void *)a, len);
		break;
	case MADV_PAGEOUT:
		ret = uswap_pageout(us, (void *)a, len);
		break;
	case MADV_WILLNEED:
		ret = uswap_prefetch(us, (void *)a, len);
		break;
	case MADV_COLD:		/* a hint: the clock finds cold pages itself */
	case MADV_HUGEPAGE:	/* managed memory stays in 4 KiB pages */
	case MADV_NOHUGEPAGE:
	case MADV_COLLAPSE:
		break;
	default:
		ret = uswap__raw_madvise((void *)a, len, advice) ? -errno : 0;
		break;
	}
	inside--;
	if (ret == -EINVAL) {
		errno = EINVAL;
		return -1;
	}
	return 0;	/* a failed prefetch read poisons its page: not madvise's error */
}

EXPORT int madvise(void *addr, size_t len, int advice)
{
	struct uswap *us = engine_if_open();
	uintptr_t a = (uintptr_t)addr, end;
	int ret = 0, err = 0;

	if (!us || (a & (PAGE - 1)) || len == 0 || a + page_round(len) < a)
		return uswap__raw_madvise(addr, len, advice);
	for (end = a + page_round(len); a < end;) {
		size_t run;
		int id, kind = uswap__kind(us, a, end - a, &run, &id), r;

		if (kind == USWAP_FOREIGN)
			r = uswap__raw_madvise((void *)a, run, advice);
		else if (kind == USWAP_MANAGED)
			r = advise_managed(us, a, run, advice);
		else
			r = -1, errno = ENOMEM;
		if (r && !ret)
			ret = r, err = errno;
		a += run;
	}
	if (ret)
		errno = err;
	return ret;
}

EXPORT int mprotect(void *addr, size_t len, int prot)
{
	struct uswap *us = engine_if_open();
	uintptr_t a = (uintptr_t)addr, end;
	int ret = 0, err = 0;

	if (!us || (a & (PAGE - 1)) || len == 0 || a + page_round(len) < a)
		return uswap__raw_mprotect(addr, len, prot);
	end = a + page_round(len);
	/* Managed memory is read-write; anything else ends its management. */
	if (prot != RW)
		unmanage_range(us, a, end - a);
	for (; a < end;) {
		size_t run;
		int id, kind = uswap__kind(us, a, end - a, &run, &id), r = 0;

		if (kind == USWAP_FOREIGN)
			r = uswap__raw_mprotect((void *)a, run, prot);
		else if (kind == USWAP_RESERVED)
			r = -1, errno = ENOMEM;
		if (r && !ret)
			ret = r, err = errno;
		a += run;
	}
	if (ret)
		errno = err;
	return ret;
}

/*
 * mremap of managed memory.  Within one region, without MREMAP_FIXED or
 * MREMAP_DONTUNMAP: a shrink releases the tail in place; a growth with
 * MREMAP_MAYMOVE maps a new region and copies the touched pages (the
 * kernel would move page tables instead: here every touched page is read
 * and written once); without MAYMOVE it fails with ENOMEM (a region never
 * grows in place).  Anything else unmanages the regions, then passes
 * through.
 */
EXPORT void *mremap(void *old, size_t old_len, size_t new_len, int flags, ...)
{
	struct uswap *us = engine_if_open();
	uintptr_t a = (uintptr_t)old;
	void *new_addr = NULL;
	size_t olen = page_round(old_len), nlen = page_round(new_len), run;
	va_list ap;
	int id;

	va_start(ap, flags);
	if (flags & MREMAP_FIXED)
		new_addr = va_arg(ap, void *);
	va_end(ap);
	if (!us || (a & (PAGE - 1)) || !old_len || !new_len || a + olen < a)
		return uswap__raw_mremap(old, old_len, new_len, flags, new_addr);
	if (!touches_managed(us, a, olen)) {
		if ((flags & MREMAP_FIXED) && !((uintptr_t)new_addr & (PAGE - 1)))
			replace_range(us, (uintptr_t)new_addr, nlen);
		return uswap__raw_mremap(old, old_len, new_len, flags, new_addr);
	}
	if (!(flags & (MREMAP_FIXED | MREMAP_DONTUNMAP)) &&
	    uswap__kind(us, a, olen, &run, &id) == USWAP_MANAGED && run == olen) {
		if (nlen <= olen) {
			if (nlen < olen)
				unmap_managed(us, id, a + nlen, olen - nlen);
			return old;
		}
		if (!(flags & MREMAP_MAYMOVE)) {
			errno = ENOMEM;
			return MAP_FAILED;
		}
		void *q = map_region(us, nlen, BLK_MMAP);

		if (q) {
			inside++;
			uswap__copy(us, q, old, olen);
			inside--;
			unmap_managed(us, id, a, olen);
			return q;
		}
	}
	unmanage_range(us, a, olen);
	if ((flags & MREMAP_FIXED) && !((uintptr_t)new_addr & (PAGE - 1)))
		replace_range(us, (uintptr_t)new_addr, nlen);
	return uswap__raw_mremap(old, old_len, new_len, flags, new_addr);
}

/* ---- statistics published for `uswap stat` (statsfile.h) ---- */

static struct uswap_statsfile *sf;
static char sf_path[512];
static pid_t sf_pid;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void stats_publish(struct uswap *us)
{
	uint64_t s = __atomic_load_n(&sf->seq, __ATOMIC_RELAXED);

	__atomic_store_n(&sf->seq, s + 1, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_RELEASE);
	uswap_stats(us, &sf->stats);
	sf->update_ns = now_ns();
	__atomic_store_n(&sf->seq, s + 2, __ATOMIC_RELEASE);
}

static void stats_create(struct uswap *us)
{
	const char *dir = getenv("USWAP_STATS_DIR");
	struct uswap_statsfile *f;
	int fd;

	if (!dir || !*dir)
		dir = USWAP_STATSFILE_DIR;
	snprintf(sf_path, sizeof(sf_path), "%s/" USWAP_STATSFILE_PREFIX "%d", dir, (int)getpid());
	fd = open(sf_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return;
	f = ftruncate(fd, sizeof(*f)) ? MAP_FAILED :
		uswap__raw_mmap(NULL, sizeof(*f), RW, MAP_SHARED, fd, 0);
	if (f == MAP_FAILED) {
		close(fd);
		unlink(sf_path);
		return;
	}
	memcpy(f->magic, USWAP_STATSFILE_MAGIC, sizeof(f->magic));
	f->version = USWAP_STATSFILE_VERSION;
	f->size = sizeof(*f);
	f->pid = (int32_t)getpid();
	f->start_ns = now_ns();
	f->min_region = threshold;
	/* argv from /proc, one line */
	int cfd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
	if (cfd >= 0) {
		ssize_t n = read(cfd, f->cmdline, sizeof(f->cmdline) - 1);

		for (ssize_t i = 0; i + 1 < n; i++)
			if ((unsigned char)f->cmdline[i] < ' ')	/* NULs, newlines */
				f->cmdline[i] = ' ';
		close(cfd);
	}
	close(fd);
	sf = f;
	sf_pid = getpid();
	stats_publish(us);
}

static void *stats_main(void *arg)
{
	const struct timespec tick = { 0, 250 * 1000 * 1000 };
	pid_t me = getpid();

	for (;;) {
		nanosleep(&tick, NULL);
		struct uswap *us = atomic_load(&g_us);
		if (!sf && us && arg)
			stats_create(us);	/* a forked child's, one tick late */
		if (sf && sf_pid == me && us)
			stats_publish(us);
	}
	return arg;
}

/*
 * Publish the statistics.  A forked child (@lazy) creates its file on the
 * thread's first tick, not at once: a child that execs first (fork + exec,
 * the common case) runs no exit handler, and would leave a file behind.
 */
static void stats_start(struct uswap *us, bool lazy)
{
	pthread_t th;

	if (!lazy)
		stats_create(us);
	if ((sf || lazy) &&
	    uswap__thread_create(&th, NULL, stats_main, lazy ? (void *)1 : NULL) == 0) {
		pthread_setname_np(th, "uswap-stats");
		pthread_detach(th);
	}
}

/* At exit (and _exit, which a forked child uses): the last snapshot, the
 * file removed, and with `uswap run --stats` the table on stderr. */
static void shim_exit(void)
{
	static _Atomic pid_t done;
	pid_t me = getpid();
	struct uswap *us = atomic_load(&g_us);
	const char *e = getenv("USWAP_STATS_EXIT"), *pid = getenv("USWAP_STATS_PID");

	if (atomic_exchange(&done, me) == me)
		return;
	inside++;
	if (sf && sf_pid == me) {
		if (us)
			stats_publish(us);
		unlink(sf_path);
	}
	if (e && !strcmp(e, "1") && pid && atoi(pid) == me) {
		if (us) {
			struct uswap_stats st;

			uswap_stats(us, &st);
			uswap_stats_print(&st, stderr);
			fprintf(stderr, "  managed by the shim: %.1f MiB at exit, %.1f MiB at most "
				"(threshold %zu bytes)\n", atomic_load(&managed_bytes) / 1048576.0,
				atomic_load(&managed_peak) / 1048576.0, threshold);
		} else {
			fprintf(stderr, "uswap statistics\n  no managed memory: nothing was mapped or "
				"allocated at or above the threshold (%zu bytes)\n", threshold);
		}
		fflush(stderr);
	}
	inside--;
}

__attribute__((destructor)) static void shim_fini(void)
{
	shim_exit();
}

EXPORT void _exit(int status)
{
	shim_exit();
	for (;;)
		syscall(SYS_exit_group, status);
}

EXPORT void _Exit(int status) __attribute__((alias("_exit")));

/* ---- fork: the engine's handlers around our own lock ---- */

/* The engine prepare stopped: parent and child use that one, even if
 * another thread opened the engine in between (orphan_lock orders the
 * handlers). */
static struct uswap *fork_us;

static void fork_prepare(void)
{
	pthread_mutex_lock(&orphan_lock);
	fork_us = atomic_load(&g_us);
	if (fork_us && uswap_fork_prepare)
		uswap_fork_prepare(fork_us);
}

static void fork_parent(void)
{
	struct uswap *us = fork_us;

	fork_us = NULL;
	if (us && uswap_fork_parent)
		uswap_fork_parent(us);
	pthread_mutex_unlock(&orphan_lock);
}

static void fork_child(void)
{
	struct uswap *us = fork_us;

	fork_us = NULL;
	pthread_mutex_init(&orphan_lock, NULL);
	if (!us)
		return;
	if (uswap_fork_child) {
		int err = uswap_fork_child(us);

		if (err) {
			/* Its evicted pages would read as zeros: never let the
			 * child run on wrong memory.  No exit handlers: they
			 * could touch that memory. */
			uswap__warn("uswap: the child %d of a managed process cannot keep "
				    "its managed memory (%s): it exits with status 70",
				    (int)getpid(), strerror(-err));
			syscall(SYS_exit_group, 70);
		}
	}
	/* The child's own statistics: the parent's file stays the parent's. */
	if (sf)
		uswap__raw_munmap(sf, sizeof(*sf));
	sf = NULL;
	stats_start(us, true);
}

__attribute__((constructor(101))) static void shim_init(void)
{
	read_config();
	mode();
}

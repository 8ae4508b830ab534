/*
 * uswap.h - swap for one process, in user space.
 *
 * uswap manages large anonymous regions of the calling process with
 * userfaultfd: it keeps the pages of those regions that are resident under a
 * limit, evicts cold pages to a backend (a compressed in-memory pool, like
 * zram), and swaps them back in when the application touches them again.
 * The application reads and writes managed memory as ordinary memory.
 *
 * All functions return 0 or a negative errno value, except those returning a
 * pointer, which return NULL and set errno.
 *
 * Caveats
 * -------
 * Threads:  every function is thread-safe.  Any number of application threads
 *           may fault on managed memory at once.
 * Pager threads:  uswap runs handler threads (they serve faults) and one
 *           evictor thread.  Code that uswap calls back (none today) and
 *           signal handlers that run on those threads must never touch
 *           managed memory: a fault there waits on itself.
 * System calls:  the kernel resolves faults raised inside system calls
 *           (read(2) into a managed buffer, write(2) from one) through the
 *           same handlers; this needs root or /dev/userfaultfd access.
 * fork:     the kernel drops a child's userfaultfd registration, so a child
 *           would read zeros where the parent had evicted pages.  A program
 *           that forks calls uswap_fork_prepare/parent/child() around fork
 *           (pthread_atfork(3) does it; the LD_PRELOAD shim registers them):
 *           the child then gets an engine of its own with exactly the
 *           parent's memory.  vfork(2) and posix_spawn(3) need nothing.
 * madvise:  discard managed memory with uswap_discard(), not madvise(2)
 *           directly; a direct MADV_DONTNEED is tolerated (the page reads as
 *           zeros) but its swap copy is only freed when the page is touched.
 * Limits:   the limit counts managed pages resident in RAM; the compressed
 *           pool is reported separately (uswap_stats.pool_bytes).
 */
#ifndef USWAP_H
#define USWAP_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define USWAP_API __attribute__((visibility("default")))
#else
#define USWAP_API
#endif

#define USWAP_VERSION_MAJOR 0
#define USWAP_VERSION_MINOR 1
#define USWAP_VERSION_PATCH 0
#define USWAP_VERSION_STRING "0.1.0"

/* How the handler threads wait for fault messages. */
enum uswap_wait_mode {
	USWAP_WAIT_BLOCK = 0,	/* block in poll(2) */
	USWAP_WAIT_SPIN = 1,	/* spin up to spin_us, then block */
};

/* How a swap-in keeps two faults (and a discard) from racing on one slot
 * (DESIGN.md, "Swap-in designs A, B, C"). */
enum uswap_swapin {
	USWAP_SWAPIN_MARKER = 0,	/* B: a marker in the entry names the reader */
	USWAP_SWAPIN_PIN = 1,		/* A: a pin on the slot; losers wait, retry */
	USWAP_SWAPIN_CACHE = 2,		/* C: an in-flight slot -> reader map */
};

/*
 * Engine configuration.  uswap_config_init() fills it with defaults taken
 * from the USWAP_* environment variables (sizes take K, M, G suffixes):
 *
 *   USWAP_LIMIT          resident limit of managed memory   (default 256M)
 *   USWAP_BACKEND        backend: "zram" (compressed RAM)   (default zram)
 *   USWAP_COMPRESSOR     "lz4" or "zstd"                    (default lz4)
 *   USWAP_LZ4_ACCEL      LZ4 acceleration, 1..65537         (default 1)
 *   USWAP_ZSTD_LEVEL     zstd level, -7..19                 (default 1)
 *   USWAP_THREADS        fault handler threads, 1..64       (default 1)
 *   USWAP_POOL_CAP       cap on the compressed pool, 0=none (default 0)
 *   USWAP_READAHEAD      readahead window max, pages 0..256 (default 32)
 *   USWAP_HIGH_WMARK     evictor starts at this % of limit  (default 98)
 *   USWAP_LOW_WMARK      evictor stops at this % of limit   (default 94)
 *   USWAP_WAIT           handler wait: "spin" or "block"    (default spin)
 *   USWAP_SPIN_US        spin time before blocking, us      (default 50)
 *   USWAP_VERBOSE        0 or 1: print the effective config (default 0)
 *   USWAP_USER_MODE_ONLY 0 or 1: if kernel-mode faults may not be handled,
 *                        settle for user-mode ones; system calls on
 *                        evicted memory then fail with EFAULT (default 0)
 *   USWAP_SWAPIN         swap-in synchronization: "marker" (design B),
 *                        "pin" (A: slot pin + retry, kernel 6.8) or
 *                        "cache" (C: in-flight slot map, kernel 7.0)
 *                                                           (default marker)
 */
struct uswap_config {
	size_t limit;			/* bytes of managed memory kept resident */
	char backend[16];
	char compressor[16];
	int lz4_accel;
	int zstd_level;
	unsigned threads;
	size_t pool_cap;		/* bytes; 0 = no cap */
	unsigned readahead_max;		/* pages; 0 disables readahead */
	unsigned high_wmark_pct;
	unsigned low_wmark_pct;
	enum uswap_wait_mode wait_mode;
	unsigned spin_us;
	int verbose;
	enum uswap_swapin swapin;	/* swap-in design (default marker) */
};

/*
 * Fill @cfg with the defaults, then apply the USWAP_* environment variables.
 * On a bad value, returns -EINVAL and writes a message naming the variable
 * and the accepted values into @err (if not NULL, @errlen bytes).
 */
USWAP_API int uswap_config_init(struct uswap_config *cfg, char *err,
				size_t errlen);

/* Check @cfg; same errors and messages as uswap_config_init(). */
USWAP_API int uswap_config_check(const struct uswap_config *cfg, char *err,
				 size_t errlen);

struct uswap;

/*
 * Open an engine: create the userfaultfd, the backend and the threads.
 * @cfg may be NULL (defaults from the environment).
 * Errors (errno): EINVAL bad configuration (a message goes to stderr),
 * EPERM/ENOSYS userfaultfd not usable, ENOMEM.
 */
USWAP_API struct uswap *uswap_open(const struct uswap_config *cfg);

/*
 * Close the engine: stop its threads, unmap every region still mapped,
 * free the backend.  No thread may touch managed memory any more.
 */
USWAP_API int uswap_close(struct uswap *us);

/*
 * Map a managed region of @len bytes (rounded up to the page size),
 * private, anonymous, readable and writable, reading as zeros.
 * Errors (errno): EINVAL len 0, ENOMEM, and those of UFFDIO_REGISTER.
 */
USWAP_API void *uswap_map(struct uswap *us, size_t len);

/*
 * Unmap a region returned by uswap_map(); @addr and @len must be exactly
 * that region's.  Waits for the faults and evictions in flight on it.
 * Errors: -EINVAL not a managed region, or @len does not match.
 */
USWAP_API int uswap_unmap(struct uswap *us, void *addr, size_t len);

/*
 * Discard [addr, addr+len): the pages read as zeros afterwards and their
 * swap copies are freed (the zap).  Safe against concurrent faults and
 * swap-ins on the same pages.
 * Errors: -EINVAL addr or len not page-aligned, or not inside one region.
 */
USWAP_API int uswap_discard(struct uswap *us, void *addr, size_t len);

/*
 * Evict the resident pages of [addr, addr+len) now (like MADV_PAGEOUT).
 * Pages that cannot be stored (pool cap) stay resident.
 * Returns the number of pages evicted, or -EINVAL as uswap_discard().
 */
USWAP_API long uswap_pageout(struct uswap *us, void *addr, size_t len);

/*
 * Swap in the swapped pages of [addr, addr+len) now (like MADV_WILLNEED),
 * as long as the limit allows.  Returns the number of pages read, or -EINVAL
 * as uswap_discard(), or -EIO if the backend failed to read one (that page is
 * then poisoned: touching it raises SIGBUS).
 */
USWAP_API long uswap_prefetch(struct uswap *us, void *addr, size_t len);

/* Change the resident limit (bytes, at least 16 pages).  -EINVAL if smaller. */
USWAP_API int uswap_set_limit(struct uswap *us, size_t limit);

/* Statistics.  Counters are monotonic; gauges are instantaneous. */
struct uswap_stats {
	/* gauges */
	uint64_t limit_bytes;
	uint64_t resident_bytes;	/* managed pages present in RAM */
	uint64_t resident_peak_bytes;
	uint64_t swapped_pages;		/* pages whose only copy is in the backend */
	uint64_t clean_cached_pages;	/* resident pages that kept a swap copy */
	uint64_t stored_pages;		/* objects in the backend */
	uint64_t stored_orig_bytes;	/* their original size */
	uint64_t stored_compr_bytes;	/* their compressed size */
	uint64_t pool_bytes;		/* bytes the pool holds from the OS */
	double compression_ratio;	/* stored_orig / stored_compr */
	double memory_efficiency;	/* stored_orig / pool_bytes */
	uint64_t regions;
	/* faults by kind */
	uint64_t faults;		/* fault messages handled */
	uint64_t faults_zero;		/* first touch: zero-filled */
	uint64_t zero_fill_ahead;	/* untouched pages mapped by fault-around */
	uint64_t faults_swapin;		/* served by a swap-in */
	uint64_t faults_wp;		/* first write to a clean page */
	uint64_t faults_marker;		/* found a swap-in in flight (marker) */
	uint64_t faults_evicting;	/* found an eviction in flight: waited */
	uint64_t faults_present;	/* stale duplicate: page already there */
	uint64_t faults_unmanaged;	/* address no longer managed */
	/* swap traffic */
	uint64_t swapins;		/* pages read from the backend */
	uint64_t swapouts;		/* pages written to the backend */
	uint64_t clean_drops;		/* evicted without writing: kept copy */
	uint64_t swap_copy_drops;	/* kept copies dropped on write (I7) */
	uint64_t readahead_pages;	/* pages read by readahead */
	uint64_t readahead_hits;	/* of those, followed by the stream */
	uint64_t prefetch_pages;
	uint64_t discards;		/* pages discarded */
	uint64_t discard_during_swapin;	/* discards that met a marker (I9) */
	uint64_t discard_during_evict;
	uint64_t retries;		/* fault retried after waiting */
	uint64_t eexist;		/* UFFDIO_COPY found the page there */
	uint64_t store_failures;	/* backend full: page kept resident */
	uint64_t load_failures;		/* backend read error: page poisoned */
	uint64_t evict_busy;		/* page could not be moved (shared) */
	uint64_t direct_reclaims;	/* faults that reclaimed synchronously */
	uint64_t over_limit;		/* reservations past the limit: nothing evictable */
	uint64_t evictor_runs;
	uint64_t zero_pages_stored;	/* zero/same-filled: no pool space */
	uint64_t raw_pages_stored;	/* incompressible: stored as is */
	/* slow paths of the swap-in designs (faults_marker is design B's) */
	uint64_t swapin_pin_retries;	/* A: fault found the slot pinned, waited, retried */
	uint64_t swapin_cache_waits;	/* C: fault found the slot in flight, waited */
};

USWAP_API int uswap_stats(struct uswap *us, struct uswap_stats *st);

/* Print @st as a table on @f (a FILE *; void * to keep stdio out). */
USWAP_API void uswap_stats_print(const struct uswap_stats *st, void *f);

/*
 * fork(2) support.  A process that forks while uswap manages memory calls
 * these around fork, as pthread_atfork(3) handlers do (the LD_PRELOAD shim
 * registers them itself):
 *   uswap_fork_prepare()  before fork: waits until no fault, eviction or
 *                         call is in flight and holds the engine still;
 *   uswap_fork_parent()   in the parent after fork: lets it go on;
 *   uswap_fork_child()    in the child: gives the child an engine of its
 *                         own over the same regions (a new userfaultfd,
 *                         new threads), so the child sees exactly the
 *                         parent's memory as of the fork, evicted pages
 *                         included; later writes stay each side's own.
 * uswap_fork_child() returns 0, or -errno if the child's engine could not
 * be started (its managed memory is then unusable: the child should exit
 * or exec).  Costs: see uswap(7) and DESIGN.md, "fork".
 */
USWAP_API void uswap_fork_prepare(struct uswap *us);
USWAP_API void uswap_fork_parent(struct uswap *us);
USWAP_API int uswap_fork_child(struct uswap *us);

/* The library's version string. */
USWAP_API const char *uswap_version(void);

#ifdef __cplusplus
}
#endif
#endif /* USWAP_H */

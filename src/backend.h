/*
 * backend.h - where evicted pages go.
 *
 * A backend stores page-sized objects in numbered slots.  It is synchronous:
 * store() and load() complete before they return (like zram).
 *
 * Contract, for every function:
 *  - page buffers are USWAP_PAGE_SIZE bytes and never managed memory;
 *  - @ctx is the calling thread's own context from ctx_create(); a context is
 *    used by one thread at a time.  Nothing on the store/load/free paths calls
 *    malloc: all memory comes from the context or from mmap'ed pool spans;
 *  - store/load/free/dup may run concurrently from many threads;
 *  - a slot is referenced by a count: store() returns it at 1, dup() adds 1,
 *    free() drops 1 and releases the slot at 0 (I1/I2).  Dropping a slot that
 *    is not allocated is a bug and aborts with a message.
 */
#ifndef USWAP_BACKEND_H
#define USWAP_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#define USWAP_PAGE_SIZE 4096u
#define USWAP_PAGE_SHIFT 12

struct uswap_backend;
struct uswap_bctx;

struct uswap_backend_stats {
	uint64_t stored_pages;		/* allocated slots */
	uint64_t stored_orig_bytes;	/* stored_pages * page size */
	uint64_t stored_compr_bytes;	/* bytes of objects (0 for zero/same) */
	uint64_t pool_bytes;		/* bytes held from the OS (spans + metadata) */
	uint64_t zero_pages;		/* zero/same-filled, currently stored */
	uint64_t raw_pages;		/* incompressible, stored raw, currently */
	uint64_t store_failures;	/* stores refused (cap) since creation */
};

struct uswap_backend_ops {
	const char *name;
	/* A context for one thread (may malloc). NULL + errno on failure. */
	struct uswap_bctx *(*ctx_create)(struct uswap_backend *b);
	void (*ctx_destroy)(struct uswap_backend *b, struct uswap_bctx *ctx);
	/* Store a copy of @page.  0 and *slot, or -ENOSPC (pool cap reached),
	 * -ENOMEM (no memory for the pool).  Nothing is stored on error. */
	int (*store)(struct uswap_backend *b, struct uswap_bctx *ctx,
		     const void *page, uint32_t *slot);
	/* Read slot into @page.  0, or -EIO (object corrupt or unreadable:
	 * @page content is then unspecified and must not be used). */
	int (*load)(struct uswap_backend *b, struct uswap_bctx *ctx,
		    uint32_t slot, void *page);
	/* Add a reference to an allocated slot. */
	void (*dup)(struct uswap_backend *b, uint32_t slot);
	/* Drop a reference; the slot and its object go at 0. */
	void (*free)(struct uswap_backend *b, struct uswap_bctx *ctx,
		     uint32_t slot);
	/* References of a slot (0 = free).  For invariant checks. */
	unsigned (*count)(struct uswap_backend *b, uint32_t slot);
	void (*stats)(struct uswap_backend *b, struct uswap_backend_stats *st);
	void (*destroy)(struct uswap_backend *b);
};

struct uswap_backend {
	const struct uswap_backend_ops *ops;
};

/* Configuration of the compressed in-memory backend ("zram"). */
struct uswap_zconfig {
	int compressor;		/* USWAP_COMP_LZ4 or USWAP_COMP_ZSTD */
	int lz4_accel;		/* >= 1 */
	int zstd_level;
	size_t pool_cap;	/* bytes, 0 = unlimited */
};
#define USWAP_COMP_LZ4 0
#define USWAP_COMP_ZSTD 1

/* Create the compressed backend.  NULL + errno (EINVAL, ENOMEM). */
struct uswap_backend *uswap_zbackend_create(const struct uswap_zconfig *cfg);

#endif

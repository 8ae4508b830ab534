/*
 * manage.h - what the LD_PRELOAD shim (shim/preload.c) needs from the
 * engine beyond the public API: to tell managed addresses from others
 * without a lock, and to follow munmap, MAP_FIXED, mremap and mprotect on
 * managed memory.  Internal: not exported from libuswap.so.
 *
 * Contract: addresses and lengths are page-aligned and non-zero; a range
 * given to uswap__release() or uswap__replace() lies inside one region
 * (uswap__kind() splits a range so).  Return 0 or -errno.
 */
#ifndef USWAP_MANAGE_H
#define USWAP_MANAGE_H

#include <stddef.h>
#include <stdint.h>

#include "uswap.h"

#define USWAP__MAX_REGIONS 4096		/* MAX_REGIONS of internal.h */

/* What an address is to the engine. */
enum uswap_kind {
	USWAP_FOREIGN = 0,	/* not managed: pass the call through */
	USWAP_MANAGED = 1,	/* a live page of a managed region */
	USWAP_RESERVED = 2,	/* released by uswap and held as a PROT_NONE
				 * reservation: unmapped as far as the
				 * application can tell */
};

/*
 * The kind of [addr, addr+len) from @addr on: returns the kind of the
 * page at @addr and sets *@run to the bytes from @addr that have that
 * kind (at least a page, at most @len, never past the end of a region)
 * and *@id to the region's slot (-1 for FOREIGN).  Lock-free; a hint
 * when other threads change the same range at the same time.
 */
int uswap__kind(struct uswap *us, uintptr_t addr, size_t len, size_t *run,
		int *id);

/* The region slot of a live managed page at @addr, or -1.  Lock-free: one
 * load of the directory for an address no region is near. */
int uswap__managed(struct uswap *us, const void *addr);

/* Base and length of the region in slot @id; -EINVAL if unused. */
int uswap__region(struct uswap *us, int id, uintptr_t *base, size_t *len);

/*
 * Release [addr, addr+len) of a region (munmap, mremap shrink): discard
 * its pages (slots freed, resident released) and replace the range with
 * a PROT_NONE, MAP_NORESERVE reservation, so that the kernel cannot give
 * the address range to anyone else while the region's directory granules
 * name the region.  When every page of the region is released, the region
 * is unmapped.  Pages already released stay so.
 */
int uswap__release(struct uswap *us, void *addr, size_t len);

/*
 * The same, for a range the application is about to map over with
 * MAP_FIXED (or MREMAP_FIXED): the pages become RELEASED_GIVEN, and
 * uswap never unmaps that range (the application's mapping replaces the
 * reservation).  Also turns RESERVED pages of the range into given ones.
 */
int uswap__replace(struct uswap *us, void *addr, size_t len);

/*
 * Unmanage every region with a page in [addr, addr+len) (mprotect other
 * than read-write, MREMAP_FIXED): swap every page in regardless of the
 * limit, unregister the memory, and forget the region.  The memory stays
 * mapped as plain anonymous memory with the same contents; the region's
 * reservations are unmapped.  Holds the engine still (like a fork) while
 * it works: a rare operation.
 */
int uswap__unmanage(struct uswap *us, void *addr, size_t len);

/*
 * Copy @len bytes from managed @src to @dst, a fresh region (reading as
 * zeros), skipping the source pages never touched or discarded: they would
 * only fault in zeros.  For realloc and mremap growth.
 */
void uswap__copy(struct uswap *us, void *dst, const void *src, size_t len);

#endif

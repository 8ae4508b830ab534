/*
 * pool.h - size-classed allocator for compressed objects (like zsmalloc).
 *
 * Objects of 1..USWAP_PAGE_SIZE bytes live in fixed-size slots of size
 * classes (16-byte steps).  Each class carves objects out of spans taken from
 * one large reserved virtual arena; a span that empties is returned to the OS
 * (MADV_DONTNEED) and goes back to a free-span list for any class.
 *
 * Memory held from the OS = the pages of spans used so far + metadata +
 * what the owner charges (pool_charge); the
 * memory efficiency reported by uswap is original bytes / that figure.
 *
 * Thread-safe: one mutex per class, one for the span list.  No malloc after
 * pool_create().  Handles are opaque 64-bit values, never 0.
 */
#ifndef USWAP_POOL_H
#define USWAP_POOL_H

#include <stddef.h>
#include <stdint.h>

struct uswap_pool;

struct uswap_pool *pool_create(size_t cap_bytes);	/* 0 = no cap */
void pool_destroy(struct uswap_pool *p);
/* 0 and *handle, -ENOSPC cap reached, -ENOMEM arena exhausted. */
int pool_alloc(struct uswap_pool *p, size_t size, uint64_t *handle);
void pool_free(struct uswap_pool *p, uint64_t handle);
/* Address of the object; valid until pool_free(). */
void *pool_map(struct uswap_pool *p, uint64_t handle);
/* Class size of the object (its bytes in the pool). */
size_t pool_obj_size(struct uswap_pool *p, uint64_t handle);
uint64_t pool_bytes(struct uswap_pool *p);	/* held from the OS */
uint64_t pool_obj_bytes(struct uswap_pool *p);	/* sum of class sizes in use */
/* Charge (or, negative, give back) bytes the pool's owner holds for its
 * objects (a slot table) to pool_bytes() and the cap.  0 or -ENOSPC. */
int pool_charge(struct uswap_pool *p, int64_t bytes);
#endif

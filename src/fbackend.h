/*
 * fbackend.h - fault injection for tests: a backend that wraps another one
 * and fails, corrupts or slows its operations on command, plus the hooks
 * into the compressed backend that it (and tests) use.
 *
 * The knobs are atomics: a test may turn them from any thread while other
 * threads run operations; an operation sees a knob's value of some instant
 * during the call.  Injected failures obey the backend contract: nothing is
 * stored when a store fails, and a failed load leaves @page unspecified.
 */
#ifndef USWAP_FBACKEND_H
#define USWAP_FBACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "backend.h"

/* ------------------------------------------------------ faulty backend */

#define USWAP_FAULTY_OWN_INNER 1u	/* destroy() destroys the inner too */

/*
 * Wrap @inner.  With no knob set the wrapper only forwards, so it may sit
 * under a whole test run.  NULL + errno (EINVAL no inner, ENOMEM).
 */
struct uswap_backend *uswap_faulty_backend_create(struct uswap_backend *inner,
						  unsigned flags);
struct uswap_backend *uswap_faulty_inner(struct uswap_backend *fb);

/* The next @n stores fail with @err (-ENOSPC or -ENOMEM; else -EINVAL). */
int uswap_faulty_fail_stores(struct uswap_backend *fb, unsigned n, int err);

/* Loads of @slot fail with -EIO, or of every slot (USWAP_FAULTY_ALL), or
 * none any more (USWAP_FAULTY_NONE). */
#define USWAP_FAULTY_NONE (-1)
#define USWAP_FAULTY_ALL (-2)
void uswap_faulty_fail_loads(struct uswap_backend *fb, int64_t slot);

/*
 * The next @n loads of a stored object first corrupt it for good (flip the
 * bits of its middle byte, like bit rot in the pool) and then run the inner
 * load, whose own checks must answer -EIO.  Where there is no object to
 * corrupt (a same-filled page, or an inner backend without the hook below)
 * the load returns -EIO itself.
 */
void uswap_faulty_corrupt_loads(struct uswap_backend *fb, unsigned n);

/* Every load / store first sleeps this long (0 = no delay). */
void uswap_faulty_delay(struct uswap_backend *fb, unsigned load_us,
			unsigned store_us);

/* Clear every knob. */
void uswap_faulty_reset(struct uswap_backend *fb);

struct uswap_faulty_counts {
	uint64_t store_failures;	/* stores failed on command */
	uint64_t load_failures;		/* loads failed on command */
	uint64_t corruptions;		/* objects corrupted (then loaded) */
	uint64_t corrupt_loads_eio;	/* of all corrupt loads, -EIO seen */
};
void uswap_faulty_counts(struct uswap_backend *fb,
			 struct uswap_faulty_counts *c);

/* ------------------------------------------- compressed backend hooks */

enum { USWAP_ZSLOT_SAME = 1, USWAP_ZSLOT_COMP, USWAP_ZSLOT_RAW };

struct uswap_zslot_info {
	int kind;		/* USWAP_ZSLOT_* */
	size_t len;		/* object bytes (compressed length, page) */
	size_t obj_size;	/* its pool class size; 0 for SAME */
	unsigned count;		/* references */
};

/* What slot @slot of the compressed backend @b holds.  0, -EINVAL (@b is
 * not a compressed backend, or no such slot), -ENOENT (slot free). */
int uswap_zbackend_slot_info(struct uswap_backend *b, uint32_t slot,
			     struct uswap_zslot_info *info);

/*
 * XOR byte @off of the stored object of @slot with @mask (do it again to
 * undo).  0, -EINVAL (not a compressed backend, no such slot, @off beyond
 * the object), -ENOENT (slot free), -ENODATA (same-filled: no object).
 * The caller must own a reference and no load of @slot may run meanwhile.
 */
int uswap_zbackend_corrupt(struct uswap_backend *b, uint32_t slot,
			   size_t off, uint8_t mask);

#endif

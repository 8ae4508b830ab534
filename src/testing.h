/*
 * testing.h - what the tests may reach inside the engine.  Hooks exist only
 * in -DUSWAP_TESTING builds; the introspection functions exist in every
 * build but are not exported from the shared library.
 */
#ifndef USWAP_TESTING_H
#define USWAP_TESTING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "uswap.h"
#include "backend.h"

struct uswap;

/* Entry states, as uswap__pte_state() reports them (internal.h). */
enum {
	USWAP_T_NONE = 0, USWAP_T_PRESENT, USWAP_T_SWAPPED, USWAP_T_MARKER,
	USWAP_T_EVICTING, USWAP_T_POISON,
};

/* Open an engine on a given backend (e.g. the fault-injecting one). */
struct uswap *uswap__open_backend(const struct uswap_config *cfg,
				  struct uswap_backend *backend, bool own);
struct uswap_backend *uswap__backend(struct uswap *us);
/* State of the page at @addr (-1 if unmanaged), its payload (slot). */
int uswap__pte_state(struct uswap *us, void *addr, uint32_t *payload);
/* The swap-in design the engine runs (enum uswap_swapin). */
int uswap__swapin_design(struct uswap *us);
/* Is a swap-in of the page at @addr in flight?  B: its entry is a MARKER;
 * A, C: its entry is SWAPPED(S) and S is pinned / in the in-flight map. */
bool uswap__swapin_inflight(struct uswap *us, void *addr);
/* Quiescent invariant sweep: 0, or -1 and a message. */
int uswap__validate(struct uswap *us, char *msg, size_t len);

#ifdef USWAP_TESTING
/* Called at named points: "fault", "fault_marker", "swapin_marker",
 * "swapin_read", "readahead_read", "wp_dropped", "evict_moved",
 * "evict_stored", "discard_done", "wait_sleep" (pte_wait, between dropping
 * the region reference and the futex wait).  Runs on pager threads (or the API
 * caller): it may block to force an interleaving, never touch managed
 * memory.  In every swap-in design, "swapin_marker" follows the claims of
 * a swap-in and "fault_marker" is a fault that found its page's swap-in in
 * flight (B: the marker; A: the pin; C: the in-flight map). */
typedef void (*uswap_hook_fn)(const char *point, struct uswap *us,
			      uintptr_t addr);
extern _Atomic(uswap_hook_fn) uswap__hook;
/* Fault injection in uswap__release: when set to N > 0, the N-th
 * reservation mmap from now fails with ENOMEM (as at vm.max_map_count). */
extern _Atomic int uswap__fail_reserve_at;
#endif
#endif

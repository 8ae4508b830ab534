/*
 * uswap.pml - a Promela model of uswap's swap-in protocol, for one page.
 *
 * Default: design B as implemented in src/ (a "swap-in in progress" marker
 * in the page's entry; DESIGN.md §2, src/fault.c, src/reclaim.c,
 * src/engine.c discard_chunk_locked, src/region.c, src/pte.c).
 * -DDESIGN_A: the kernel 6.8 fix (a SWAP_HAS_CACHE pin on the slot taken
 * before reading; a losing fault retries) in the same user-space setting.
 * model/README.md says what is modelled and how; model/run.sh runs it all.
 *
 * Written against src/ at 23c8ebf; since 9a56bd9, read_failed() wakes the
 * threads waiting on a readahead marker (the default here; -DOLD_RA_NOWAKE is
 * 23c8ebf, where the model finds those threads left asleep).  9a56bd9 also
 * makes EVICTING name its owner, which matters with two evicting contexts;
 * the model has one evictor (see README.md, limits).
 *
 * Every assertion carries a tag [P:...] on its line naming the property
 * (DESIGN.md invariant where there is one); run.sh prints the line of the
 * assertion a counterexample violates.
 *
 * Granularity.  Every change of the entry happens under the chunk PTL
 * together with the kernel page-table operation that goes with it
 * (DESIGN.md §2, "Rule"), so a PTL critical section is one atomic step.
 * What the code does without the PTL (the lock-free read of the entry,
 * slot_put, wakes, region references, futex waits, the store) are steps
 * of their own, in the code's order.  The few merges of adjacent steps are
 * each argued where they are made.
 */

/* ---------------------------------------------------------------- sizes */
#ifndef NSLOT
#define NSLOT 2		/* backend slots (2 or 3); a store takes any free one */
#endif
#ifndef NOPS0
#define NOPS0 1		/* operations of application thread 0 */
#endif
#ifndef NOPS1
#define NOPS1 2		/* operations of application thread 1 */
#endif
#ifndef MAXW
#define MAXW 2		/* application writes in all */
#endif
#ifndef MAXEV
#define MAXEV 2		/* eviction attempts of the evictor */
#endif
#ifndef NH
#define NH 2		/* handler threads (1 or 2) */
#endif
#ifndef MAXERR
#define MAXERR 1	/* backend read errors (with -DREADERR) */
#endif
#ifndef INIT
#define INIT 3		/* the page at the start: 0 NONE, 1 PRESENT dirty,
			   2 PRESENT clean, 3 SWAPPED, 4 any of these */
#endif

/* actors (indices of held[], pin[], buf[]; a marker names its owner) */
#define NAPP 2		/* application threads 0 and 1 */
#define H0 2		/* handler threads H0, H0+1 */
#define EV 4		/* the evictor */
#define RA 5		/* a readahead of this page (-DREADAHEAD) */
#define UM 6		/* init, when it unmaps the region at the end */
#define NACT 7

#define NIL 255
#define GARBAGE 15	/* what a free slot holds: never a version written */
#ifdef NO_SCRUB
#define SCRUB(d) skip	/* a freed slot keeps its old content (like zram) */
#else
#define SCRUB(d) d = GARBAGE	/* fewer states; a read of it shows */
#endif

/* entry states (src/internal.h enum pte_state) */
#define NONE 0
#define PRESENT 1
#define SWAPPED 2
#define MARKER 3
#define EVICTING 4
#define POISON 5

/* the kernel PTE of the page */
#define KNONE 0
#define KPRESENT 1
#define KPOISON 2

/* fault results (src/fault.c enum fault_res), and the model's own */
#define DONE 0
#define RETRY 1
#define WAIT 2
#define SWAPIN 3	/* marker installed and slot read: commit next */

/* ----------------------------------------------------- shared state */

/* the page's entry r->pte[idx] */
byte est = NONE;	/* state */
byte eslot = 0;		/* payload: the slot (SWAPPED; PRESENT and EVICTING with
			   HAS_SLOT) or the marker's descriptor = owner's id */
bool ehs = 0;		/* HAS_SLOT */
bool ew = 0;		/* WAITERS */

/* the kernel page table entry of the page */
byte kst = KNONE;	/* none / present / poison marker */
byte kdata = 0;		/* the page's content (a version) when present */
bool kwp = 0;		/* write-protected */

/* the backend */
bool alloc[NSLOT];	/* slot allocated */
byte count[NSLOT];	/* its count (references); 0 or 1 in design B */
byte cache[NSLOT];	/* design A: SWAP_HAS_CACHE, the pin */
byte data[NSLOT];	/* the version it holds */

/* the actors' state that others' correctness depends on */
byte held[NACT];	/* the slot the actor must free or hand over, or NIL */
byte pin[NACT];		/* design A: the slot the actor pinned, or NIL */
byte buf[NACT];		/* a swap-in's page (descriptor buffer) */
byte stg;		/* the evictor's staging page */
byte rd[NSLOT];		/* ghost: swap-in copies of the slot in flight */

/* sleepers */
byte wmask = 0;		/* application threads asleep on a uffd fault (bits) */
byte fsl = 0;		/* pager actors asleep on the entry's futex (bits) */

/* The uffd fault queue.  A thread's message belongs to its sleep: the
 * kernel queues it with the thread and a wake of the page dequeues it, read
 * or not (userfaultfd_wake_function).  So a thread has at most one unread
 * message. */
bool pend[NAPP];	/* thread t has an unread message */
bool pwp[NAPP];		/* ... of a write-protect fault */
bool pwr[NAPP];		/* ... of a write */

/* the region */
byte inflight = 0;	/* references; unmap waits for 0 */
bool dying = 0;
bool unmapped = 0;	/* munmap done, entries freed */

byte resident = 0;	/* us->resident: reserved + mapped + being evicted */

/* ghost: the application's own actions are the linearization points */
byte gdata = 0;		/* what a read must see: the last write, 0 after discard */
byte ver = 1;		/* the last version written (1: initial content) */
byte nwrites = 0;
byte nerr = 0;
byte futex_uaf = 0;	/* futex_wait on a freed entry array (EFAULT) */

bool hb[2];		/* handler i is serving a message */
byte apps_done = 0;
bool ev_done = 0;
bool ra_done = 0;

/* ------------------------------------------------------ invariants */

/* Structural assertions (the invariants of DESIGN.md at the points where
 * they apply) are sassert(); -DOBSERVABLE_ONLY turns them and check() off
 * and leaves what a user of uswap could observe: the data a read returns,
 * a double free (zb_free aborts), a thread or pager thread asleep for good
 * (invalid end state), and the accounting uswap__validate() checks at
 * quiescence and after unmap. */
#ifdef OBSERVABLE_ONLY
#define sassert(e) skip
#else
#define sassert(e) assert(e)
#endif

#define NAMES(s) ((est == SWAPPED || (est == PRESENT && ehs)) && eslot == s)
#define HELD(s) ((held[0] == s) + (held[1] == s) + (held[2] == s) + \
		 (held[3] == s) + (held[4] == s) + (held[5] == s) + (held[6] == s))
#define PINS(s) ((pin[0] == s) + (pin[1] == s) + (pin[2] == s) + \
		 (pin[3] == s) + (pin[4] == s) + (pin[5] == s) + (pin[6] == s))

inline check_slot(s)
{
	assert(count[s] == NAMES(s) + HELD(s));	/* [P:I2 count = references] */
	assert(cache[s] == PINS(s));	/* [P:I1/I3 pins = pinners (design A)] */
	assert(alloc[s] == (count[s] > 0 || cache[s] > 0));	/* [P:I1 allocated iff referenced] */
}

/*
 * The invariants that must hold in every state.  They can only be falsified
 * by a change of the variables they read, and every such change is made in
 * an atomic step that ends with check(): so they are checked in every
 * reachable state, at no cost in states (a monitor process would either
 * double the states or hide deadlocks).
 */
inline check()
{
#ifdef OBSERVABLE_ONLY
	skip
#else
	check_slot(0);
	check_slot(1);
#if NSLOT > 2
	check_slot(2);
#endif
	if
	:: !unmapped ->
		/* where the latest data is, for each entry state */
		assert(est != NONE || (kst == KNONE && gdata == 0));	/* [P:no lost update: NONE reads zero] */
		assert(est != PRESENT || (kst == KPRESENT && kdata == gdata));	/* [P:no lost update: PRESENT maps the last write] */
		assert(est != PRESENT || !ehs || (kwp && data[eslot] == gdata));	/* [P:I7 a kept copy is current and write-protected] */
		assert(!kwp || (est == PRESENT && ehs));	/* [P:I7 write-protected only with a kept copy] */
		assert(est != SWAPPED || (kst == KNONE && data[eslot] == gdata));	/* [P:no lost update: SWAPPED slot holds the last write] */
		assert(est != MARKER || (kst == KNONE && held[eslot] != NIL && data[held[eslot]] == gdata));	/* [P:I3 MARKER: its owner holds the slot with the last write] */
		assert(est != EVICTING || (kst == KNONE && stg == gdata));	/* [P:no lost update: EVICTING staging has the last write] */
		assert(est != POISON || kst == KPOISON);	/* [P:entry and kernel PTE agree] */
	:: else -> skip
	fi
#endif
}

/* ---------------------------------------------------------- helpers */

/* pte_set(), PTL held: replace the entry; wake the futex sleepers if the
 * old value had WAITERS (a new value never has it). */
inline pte_set(st_, sl_, hs_)
{
	if
	:: ew -> fsl = 0
	:: else -> skip
	fi;
	est = st_;
	eslot = sl_;
	ehs = hs_;
	ew = 0
}

/* UFFDIO_COPY / WAKE / POISON / WRITEPROTECT (clear) / MOVE into the page:
 * the kernel wakes every thread asleep on a fault of the page and dequeues
 * their unread messages. */
#define uffd_wake() atomic { wmask = 0; pend[0] = 0; pend[1] = 0; pwp[0] = 0; pwp[1] = 0; pwr[0] = 0; pwr[1] = 0 }

/* slot_put(): drop actor a's reference; the backend frees the slot when no
 * reference (nor, in design A, the pin) is left.  zb_free() aborts on a
 * double free: here it is an assertion. */
inline slot_put(a)
{
	assert(held[a] != NIL && alloc[held[a]] && count[held[a]] > 0);	/* [P:I1 a slot is freed once] */
	count[held[a]]--;
	if
	:: count[held[a]] == 0 && cache[held[a]] == 0 ->
		alloc[held[a]] = 0; SCRUB(data[held[a]])
	:: else -> skip
	fi;
	held[a] = NIL
}

/*
 * Region references: region_get (inflight++, then check dying: a Dekker
 * pair with unmap, sequentially consistent here) and region_put.  They only
 * matter to a concurrent unmap: without -DUNMAP_RACE the region is unmapped
 * by init at the end, when every actor is idle, so references are not
 * modelled (fewer steps) and every lookup succeeds.
 */
#ifdef UNMAP_RACE
inline region_get(ok_)
{
	atomic {
		if
		:: !dying -> inflight++; ok_ = 1
		:: else -> ok_ = 0
		fi
	}
}
#define region_put() inflight--
#define PUT_STEP inflight--;	/* a region_put() that is a step of its own */
#else
#define region_get(ok_) ok_ = 1
#define region_put() skip
#define PUT_STEP
#endif

/* ------------------------------------------------ design B swap-in */
#ifndef DESIGN_A

/* fault.c back_out(): the marker is gone (a discard cleared it, I9): free
 * the slot, drop the reservation, wake the faulting threads (I11). */
inline back_out(me)
{
	atomic { slot_put(me); resident--; check() }
#ifndef MUT_NO_BACKOUT_WAKE
	uffd_wake()
#endif
}

/* fault.c commit_page() + install_locked() */
inline commit_page(me, wr)
{
	atomic {	/* PTL */
#if defined(MUT_B_NOCHECK)
		mine = 1;			/* MUTANT: commit unconditionally */
#elif defined(MUT_B_ANYMARKER)
		mine = (est == MARKER);		/* MUTANT: any marker, not ours */
#else
		mine = (est == MARKER && eslot == me);	/* marker_is(): ours (I4) */
#endif
		rd[held[me]] = 0;	/* the copy is installed or abandoned */
		if
		:: mine && kst != KPRESENT ->	/* UFFDIO_COPY: maps, wakes */
			sassert(buf[me] == gdata);	/* [P:I4 a commit installs the current data] */
			kst = KPRESENT; kdata = buf[me]; kwp = !wr;
			uffd_wake();
			if
			:: wr -> pte_set(PRESENT, 0, 0)	/* dirty: the slot is freed below */
			:: else -> pte_set(PRESENT, held[me], 1); held[me] = NIL
			fi
		:: mine && kst == KPRESENT ->	/* -EEXIST: keep theirs, dirty */
			uffd_wake();
			pte_set(PRESENT, 0, 0)
		:: else -> skip
		fi;
		buf[me] = 0;
		check()
	}
	if
	:: !mine -> back_out(me)
	:: mine && held[me] != NIL -> atomic { slot_put(me); check() }
	:: else -> skip
	fi
}

/* fault.c read_failed(): never map what we got (I6) */
inline read_failed(me, poison)
{
	atomic {	/* PTL */
		mine = (est == MARKER && eslot == me);
		rd[held[me]] = 0;
		buf[me] = 0;
		if
		:: mine && poison ->		/* UFFDIO_POISON: wakes; SIGBUS */
			kst = KPOISON; kdata = 0; kwp = 0;
			uffd_wake();
			pte_set(POISON, 0, 0)
		:: mine && !poison ->		/* readahead page: back to SWAPPED */
			pte_set(SWAPPED, held[me], 0);
			held[me] = NIL
#if !defined(OLD_RA_NOWAKE) || defined(FIX_RA_WAKE)
			; uffd_wake()		/* 9a56bd9: wake who waits on the marker */
#endif
		:: else -> skip
		fi;
		check()
	}
	if
	:: !mine -> back_out(me)
	:: else ->
		atomic {
			resident--;
			if
			:: held[me] != NIL -> slot_put(me)	/* unreadable: let it go */
			:: else -> skip
			fi;
			check()
		}
	fi
}

/*
 * fault.c swapin_range() for this page, step 1 (marker_install() under the
 * PTL) and step 2 (the backend load, no lock held) in one step.  This merge
 * loses no behaviour: the load reads only data[slot], which no one can
 * change while the owner holds the slot, and check() verifies in every state
 * that a held slot is allocated with its count = its references (I2), so
 * nobody else can free, reallocate or rewrite it.  What can interleave
 * between the load and the commit (discard, faults, eviction) still does.
 * res = SWAPIN: step 3 next; RETRY: the entry was not SWAPPED any more.
 */
inline swapin_step1(me)
{
	atomic {	/* reserve_pages, PTL, marker_install(), unlock, load */
		st = 0; sl = 0; hs = 0; w = 0;
		if
		:: est == SWAPPED ->
			resident++;
			held[me] = eslot;
			pte_set(MARKER, me, 0);
			/* the load */
			sassert(alloc[held[me]] && count[held[me]] == 1);	/* [P:I1 read only a live slot we own] */
			sassert(rd[held[me]] == 0);	/* [P:I3 one swap-in copy of a slot in flight] */
			rd[held[me]] = 1;
			buf[me] = data[held[me]];
			fail = 0;
#ifdef READERR
			if
			:: nerr < MAXERR -> nerr++; fail = 1	/* the load fails */
			:: true -> skip
			fi;
#endif
			res = SWAPIN
		:: else -> res = RETRY
		fi;
		check()
	}
}

/* step 3 */
inline swapin_rest(me, wr, isfault)
{
	if
	:: fail -> read_failed(me, isfault)
	:: else -> commit_page(me, wr)
	fi;
	res = DONE
}

#else /* DESIGN_A */

/*
 * Design A (kernel 6.8, "mm/swap: fix race when skipping swapcache") in the
 * same setting.  The entry stays SWAPPED(slot) during the read.  The reader
 * pins the slot first (swapcache_prepare: SWAP_HAS_CACHE as a try-lock);
 * the loser returns and its thread faults again.  The commit checks
 * pte_same ("the entry still says SWAPPED(slot)"), and the pin is cleared
 * after it (swapcache_clear), freeing the slot if no count is left.
 * sl: the slot from the lock-free read of the entry.
 */
inline swapin_A(me, wr, sl)
{
#ifndef MUT_A_NOPIN
	atomic {	/* reserve_pages + swapcache_prepare(slot) */
		st = 0; hs = 0; w = 0;
		if
		:: count[sl] > 0 && cache[sl] == 0 ->
			cache[sl] = 1; pin[me] = sl; ok = 1; resident++
		:: else -> ok = 0	/* -EEXIST (pinned) or -ENOENT (freed) */
		fi;
		check()
	}
#else
	atomic { st = 0; hs = 0; w = 0; ok = 1; resident++ }	/* MUTANT: no pin */
#endif
	if
	:: !ok -> uffd_wake(); res = DONE	/* loser: its thread faults again */
	:: else ->
		atomic {	/* the backend load, no lock held */
#ifndef MUT_A_NOPIN
			sassert(pin[me] == sl && cache[sl] == 1);	/* [P:I3 the reader pinned the slot] */
#endif
			sassert(alloc[sl]);	/* [P:I1 read only a live slot] */
			sassert(rd[sl] == 0);	/* [P:I3 one swap-in copy of a slot in flight] */
			rd[sl] = 1;
			buf[me] = data[sl]
		}
		atomic {	/* PTL: pte_same() */
			mine = (est == SWAPPED && eslot == sl);
			rd[sl] = 0;
			if
			:: mine ->
				sassert(buf[me] == gdata);	/* [P:I4 a commit installs the current data] */
				kst = KPRESENT; kdata = buf[me]; kwp = !wr;
				uffd_wake();
				if
				:: wr ->		/* dirty: swap_free() under the PTL */
					pte_set(PRESENT, 0, 0);
					assert(count[sl] > 0);	/* [P:I1 a slot is freed once] */
					count[sl]--;
					if
					:: count[sl] == 0 && cache[sl] == 0 ->
						alloc[sl] = 0; SCRUB(data[sl])
					:: else -> skip
					fi
				:: else -> pte_set(PRESENT, sl, 1)	/* clean: the copy is kept */
				fi
			:: else -> skip
			fi;
			buf[me] = 0;
			check()
		}
#ifndef MUT_A_NOPIN
		atomic {	/* swapcache_clear() */
			cache[sl] = 0; pin[me] = NIL;
			if
			:: count[sl] == 0 -> alloc[sl] = 0; SCRUB(data[sl])
			:: else -> skip
			fi;
			check()
		}
#endif
		if
		:: !mine -> atomic { resident--; uffd_wake() }	/* out_nomap: fault again */
		:: else -> skip
		fi;
		res = DONE
	fi
}
#endif /* DESIGN_A */

/* -------------------------------------------------- the other faults */

/* fault.c fault_none(): first touch or discarded: zero-fill, dirty */
inline fault_none(me)
{
	atomic {	/* reserve_pages + PTL */
		st = 0; sl = 0; hs = 0; w = 0;
		if
		:: est == NONE ->
			sassert(kst == KNONE);	/* [P:entry and kernel PTE agree] */
			kst = KPRESENT; kdata = 0; kwp = 0;
			uffd_wake();
			resident++;
			pte_set(PRESENT, 0, 0);
			res = DONE
		:: else -> res = RETRY
		fi;
		check()
	}
}

/* fault.c fault_present(): a duplicate message: COPY gets -EEXIST, wake */
inline fault_present(me)
{
	atomic {	/* PTL */
		st = 0; sl = 0; hs = 0; w = 0;
		if
		:: est == PRESENT ->
			sassert(kst == KPRESENT);	/* [P:entry and kernel PTE agree] */
			uffd_wake();
			res = DONE
		:: else -> res = RETRY
		fi
	}
}

/* fault.c fault_wp(): the first write to a clean page drops the kept copy
 * under the PTL (I7), unprotects and so wakes the writer. */
inline fault_wp(me)
{
	atomic {	/* PTL */
		if
		:: est == PRESENT ->
			sassert(kst == KPRESENT);	/* [P:entry and kernel PTE agree] */
#ifndef MUT_WP_KEEPS_COPY
			if
			:: ehs -> held[me] = eslot; pte_set(PRESENT, 0, 0)
			:: else -> skip
			fi;
#endif
			kwp = 0;		/* UFFDIO_WRITEPROTECT clear: wakes */
			uffd_wake();
			res = DONE
		:: est == EVICTING ->
			st = est; sl = eslot; hs = ehs; w = ew;
			res = WAIT
		:: else ->
			uffd_wake();		/* the page left memory: fault again */
			res = DONE
		fi;
		check()
	}
}

/* fault_wp() after unlocking: free the dropped copy */
inline fault_wp_drop(me)
{
	if
	:: held[me] != NIL -> atomic { slot_put(me); check() }
	:: else -> skip
	fi
}

/* fault.c fault_missing(), after attempt() */
inline fault_missing(me, wr)
{
	if
#ifndef DESIGN_A
	:: res == SWAPIN -> swapin_rest(me, wr, 1)	/* design B */
#endif
	:: res == DONE || res == RETRY -> skip		/* done in attempt() */
	:: res == NIL && st == SWAPPED ->		/* design A */
#ifdef DESIGN_A
		swapin_A(me, wr, sl)
#else
		assert(false)
#endif
	:: res == NIL && st == MARKER ->
		/* a swap-in is in flight: its owner's COPY or WAKE wakes the
		 * thread; nothing to do (and no wake) */
		atomic { res = DONE; st = 0; sl = 0; hs = 0; w = 0 }
	:: res == NIL && st == EVICTING -> res = WAIT
	:: res == NIL && st == POISON ->	/* the kernel raises SIGBUS */
		atomic { uffd_wake(); res = DONE; st = 0; sl = 0; hs = 0; w = 0 }
	fi
}

/* pte.c pte_wait(): CAS WAITERS into the entry if it is still what we saw,
 * drop the region reference, then futex_wait on the entry's low 32 bits
 * (state and flags, not the payload) while they equal seen|WAITERS. */
inline pte_wait(me)
{
	atomic {
		if
		:: w -> ok = 1
		:: !w && est == st && eslot == sl && ehs == hs && !ew -> ew = 1; ok = 1
		:: else -> ok = 0		/* it changed already: retry */
		fi
	}
	PUT_STEP
	if
	:: ok ->
		atomic {	/* futex_wait(word, seen|WAITERS) */
			if
			:: unmapped ->		/* the entry array is gone: EFAULT */
				futex_uaf++;
#ifdef STRICT_UAF
				assert(false);	/* [P:futex_wait on a freed entry array] */
#endif
				skip
			:: !unmapped && est == st && ehs == hs && ew ->
				fsl = fsl | (1 << me)
			:: else -> skip
			fi;
			st = 0; sl = 0; hs = 0; w = 0
		}
		((fsl & (1 << me)) == 0)
	:: else -> st = 0; sl = 0; hs = 0; w = 0
	fi
}

/* ----------------------------------------------------- the handlers */

/*
 * handle_fault(): the first step of one attempt.  The region lookup is
 * merged with the first step of the fault (they commute: only unmap sets
 * dying, and it waits for our reference).  For a missing fault, the paths
 * that re-check under the PTL (NONE, PRESENT, and SWAPPED in design B) take
 * their PTL step here too, with the lock-free read of the entry: a stale
 * hint would only make that PTL step a no-op and a retry, the same as
 * reading the hint later.  Design A keeps the read apart: its pin acts on
 * the slot the hint named, without the PTL.  Always inside an atomic.
 */
inline attempt(me)
{
	region_get(ok);
	if
	:: !ok -> uffd_wake()	/* unmapped: the thread finds no mapping */
	:: ok && !wp ->
		st = est; sl = eslot; hs = ehs; w = ew;	/* lock-free read */
		res = NIL;
		if
		:: st == NONE -> fault_none(me)
		:: st == PRESENT -> fault_present(me)
#ifndef DESIGN_A
		:: st == SWAPPED -> swapin_step1(me)
#endif
		:: else -> skip
		fi
	:: ok && wp -> fault_wp(me)
	fi
}

/* handler_main() + handle_fault(): every attempt starts from the region
 * lookup; a wait drops the reference first (I5, I12). */
proctype handler(byte me)
{
	bool wp, wr, ok, mine, fail, hs, w;
	byte st, sl, res;
end:
	do
	:: atomic {
		/* read(uffd): one unread message.  Symmetry reduction: idle
		 * handlers are interchangeable (nothing of theirs survives a
		 * message), so the first idle one takes the next message. */
		(me == H0 || hb[0]) && (pend[0] || pend[1]);
		if
		:: pend[0] -> wp = pwp[0]; wr = pwr[0]; pend[0] = 0; pwp[0] = 0; pwr[0] = 0
		:: pend[1] -> wp = pwp[1]; wr = pwr[1]; pend[1] = 0; pwp[1] = 0; pwr[1] = 0
		fi;
		hb[me - H0] = 1;
		attempt(me)
	   }
		do
		:: !ok -> break
		:: ok ->
			if
			:: !wp -> fault_missing(me, wr)
			:: wp -> fault_wp_drop(me)
			fi;
			if
			:: res == WAIT -> pte_wait(me); atomic { attempt(me) }
			:: res == RETRY -> PUT_STEP atomic { attempt(me) }
			:: res == DONE -> break
			fi
		od;
		atomic {
			if
			:: ok -> region_put()
			:: else -> skip
			fi;
			hb[me - H0] = 0;
			wp = 0; wr = 0; ok = 0; mine = 0; fail = 0; hs = 0; w = 0;
			st = 0; sl = 0; res = 0
		}
	od
}

#if defined(READAHEAD) && !defined(DESIGN_A)
/* A readahead of this page: a handler serving a fault on the page before it
 * (and holding a region reference) put a marker on this page as well, in
 * the same swapin_range(); it reads it after its own page and commits it
 * clean (commit_run -> commit_page), or, if the read fails, puts it back to
 * SWAPPED (read_failed() with poison = false). */
proctype readahead()
{
	bool ok, mine, fail, hs, w;
	byte res, st, sl;

	region_get(ok);
	if
	:: ok ->
		swapin_step1(RA);
		if
		:: res == SWAPIN -> swapin_rest(RA, 0, 0)
		:: else -> skip
		fi;
		region_put()
	:: else -> skip
	fi;
	ra_done = 1
}
#endif

/* ------------------------------------------------------ the evictor */

/* reclaim.c evict_window() + move_out(), the store, evict_finish(),
 * put_back(): this page, at most MAXEV attempts, at any time.  (The clock's
 * aging only delays an eviction: any time is possible here.) */
proctype evictor()
{
	byte k = 0;
	bool ok, moved, clean, back, disc;
	do
	:: k < MAXEV ->
		atomic {
			k++;
			region_get(ok);	/* hand_claim(); commutes with the PTL step */
			if
			:: ok && est == PRESENT ->	/* PTL: -> EVICTING, UFFDIO_MOVE out */
				sassert(kst == KPRESENT);	/* [P:entry and kernel PTE agree] */
				clean = ehs;
				if
				:: ehs -> held[EV] = eslot	/* the eviction owns the copy (I1) */
				:: else -> skip
				fi;
				pte_set(EVICTING, eslot, ehs);
				stg = kdata; kst = KNONE; kdata = 0; kwp = 0;
				moved = 1;
				/* a clean page is dropped without storing: its copy
				 * must be current (nobody else touches the slot or
				 * the staging page until we are done) */
				sassert(!clean || data[held[EV]] == stg)	/* [P:I7 a kept copy is current when a clean page is dropped] */
			:: ok && est != PRESENT -> region_put(); ok = 0	/* nothing to evict */
			:: else -> skip
			fi;
			check()
		}
		if
		:: moved && !clean ->
			atomic {	/* the store: any free slot, or full */
				if
				:: !alloc[0] -> held[EV] = 0
				:: !alloc[1] -> held[EV] = 1
#if NSLOT > 2
				:: !alloc[2] -> held[EV] = 2
#endif
#ifdef STOREFAIL
				:: true -> skip		/* any store may fail */
#endif
				:: else -> skip		/* the pool is full */
				fi;
				if
				:: held[EV] != NIL ->
					alloc[held[EV]] = 1; count[held[EV]] = 1;
					data[held[EV]] = stg
				:: else -> skip
				fi;
				check()
			}
		:: else -> skip
		fi;
		if
		:: moved && held[EV] != NIL ->
			atomic {	/* evict_finish(), PTL */
				disc = (est != EVICTING);
				if
				:: !disc ->
					pte_set(SWAPPED, held[EV], 0);
					held[EV] = NIL
				:: else -> skip
				fi;
				check()
			}
			atomic {	/* a discard left the slot to us (I9) */
				if
				:: disc ->
#ifndef MUT_EVICT_NOFREE
					slot_put(EV)
#else
					held[EV] = NIL	/* MUTANT: forget it */
#endif
				:: else -> skip
				fi;
				resident--;	/* unreserve_pages */
				region_put();
				moved = 0; clean = 0; disc = 0; stg = 0; ok = 0;
				check()
			}
		:: moved && held[EV] == NIL ->
			atomic {	/* put_back(), PTL: MOVE back in (wakes) */
				back = (est == EVICTING);
				if
				:: back ->
					kst = KPRESENT; kdata = stg; kwp = 0;
					uffd_wake();
					pte_set(PRESENT, 0, 0)
				:: else -> resident--	/* discarded: unreserve */
				fi;
				region_put();
				moved = 0; clean = 0; back = 0; stg = 0; ok = 0;
				check()
			}
		:: else -> skip
		fi
	:: k == MAXEV -> break
	od;
	ev_done = 1
}

/* ---------------------------------------------- the application side */

/* One access by application thread me.  The CPU does it if the kernel PTE
 * allows; otherwise a uffd fault: the thread is queued asleep on the page
 * with its message, atomically with the PTE check (handle_userfault checks
 * again after queueing); it retries when woken.  A read checks the ghost;
 * a write is the linearization point of the new version. */
inline access(me, wr)
{
	do
	:: atomic {
		if
		:: unmapped -> break			/* SIGSEGV */
		:: !unmapped && kst == KPOISON -> break	/* SIGBUS */
		:: !unmapped && kst == KPRESENT && (!wr || !kwp) ->
			if
			:: wr -> ver++; kdata = ver; gdata = ver; check()
			:: else -> assert(kdata == gdata)	/* [P:no lost update: a read sees the last write, or zero after a discard] */
			fi;
			break
		:: !unmapped && kst == KNONE ->		/* missing fault */
			wmask = wmask | (1 << me);
			pend[me] = 1; pwr[me] = wr
		:: !unmapped && kst == KPRESENT && wr && kwp ->	/* WP fault */
			wmask = wmask | (1 << me);
			pend[me] = 1; pwp[me] = 1; pwr[me] = 1
		fi
	   }
	   ((wmask & (1 << me)) == 0)		/* asleep until a COPY/WAKE */
	od
}

/* engine.c uswap_discard() + discard_chunk_locked(), after range_get()
 * (region_get) set ok */
inline discard(me)
{
	if
	:: ok ->
		atomic {	/* PTL: MADV_DONTNEED, then the entry */
			kst = KNONE; kdata = 0; kwp = 0;
			gdata = 0;	/* the discard's linearization point */
			if
			:: est == PRESENT ->
				resident--;
				if
				:: ehs -> held[me] = eslot
				:: else -> skip
				fi
			:: est == SWAPPED -> held[me] = eslot
#ifdef MUT_DISCARD_FREES_MARKER
			:: est == MARKER -> held[me] = held[eslot]	/* MUTANT: free the reader's slot */
#endif
			:: else -> skip		/* MARKER, EVICTING: the owner frees (I9) */
			fi;
			if
			:: est != NONE -> pte_set(NONE, 0, 0)
			:: else -> skip
			fi;
			if
			:: held[me] == NIL -> region_put(); ok = 0
			:: else -> skip
			fi;
			check()
		}
		if
		:: held[me] != NIL -> atomic { slot_put(me); region_put(); ok = 0; check() }
		:: else -> skip
		fi
	:: else -> skip		/* -EINVAL */
	fi
}

/* region.c region_unmap_locked() + region_release_pages(), after a
 * region_get (uswap_unmap finds a live region) set ok */
inline unmap_region(me)
{
	if
	:: ok ->
		atomic { region_put(); dying = 1 }	/* and the directory cleared */
		(inflight == 0);			/* futex_wait on inflight */
		atomic {
			unmapped = 1;			/* munmap */
			kst = KNONE; kdata = 0; kwp = 0;
			sassert(est != MARKER && est != EVICTING);	/* [P:I9/I11 no in-flight owner left at unmap] */
			if
			:: est == PRESENT ->
				resident--;
				if
				:: ehs -> held[me] = eslot
				:: else -> skip
				fi
			:: est == SWAPPED -> held[me] = eslot
			:: else -> skip
			fi;
			est = NONE; eslot = 0; ehs = 0; ew = 0;	/* region_free_meta */
			check()
		}
		if
		:: held[me] != NIL -> atomic { slot_put(me); check() }
		:: else -> skip
		fi
	:: else -> skip
	fi;
	ok = 0
}

/* An application thread: nops operations, each chosen nondeterministically
 * among read, write (MAXW in all) and discard (and, thread 1 with
 * -DUNMAP_RACE, unmap); the choice is merged with the operation's first
 * step. */
proctype app(byte me; byte nops)
{
	byte k = 0;
	bool ok = 0;
	do
	:: k < nops -> atomic { k++; access(me, 0) }
	:: k < nops && nwrites < MAXW -> atomic { k++; nwrites++; access(me, 1) }
	:: k < nops -> atomic { k++; region_get(ok) }; discard(me)
#ifdef UNMAP_RACE
	:: k < nops && me == 1 -> atomic { k++; region_get(ok) }; unmap_region(me)
#endif
	:: k == nops -> break
	od;
	apps_done++
}

/* ------------------------------------------------------------- init */
init {
	byte i = 0;
	bool ok = 0;
	atomic {
		do
		:: i < NACT -> held[i] = NIL; pin[i] = NIL; i++
		:: else -> break
		od;
		i = 0;
		do
		:: i < NSLOT -> data[i] = GARBAGE; i++
		:: else -> break
		od;
#if INIT == 4
		if
		:: i = 0
		:: i = 1
		:: i = 2
		:: i = 3
		fi;
#else
		i = INIT;
#endif
		if
		:: i == 0 -> skip
		:: i == 1 ->
			est = PRESENT; kst = KPRESENT; kdata = 1; gdata = 1; resident = 1
		:: i == 2 ->
			est = PRESENT; eslot = 0; ehs = 1;
			kst = KPRESENT; kdata = 1; kwp = 1; gdata = 1; resident = 1;
			alloc[0] = 1; count[0] = 1; data[0] = 1
		:: i == 3 ->
			est = SWAPPED; eslot = 0; gdata = 1;
			alloc[0] = 1; count[0] = 1; data[0] = 1
		fi;
		i = 0;
		check();
		run app(0, NOPS0);
		run app(1, NOPS1);
		run handler(H0);
#if NH > 1
		run handler(H0 + 1);
#endif
		run evictor();
#if defined(READAHEAD) && !defined(DESIGN_A)
		run readahead()
#else
		ra_done = 1
#endif
	}

	/* The end: the application threads are done, the evictor and the
	 * readahead too, the handlers idle.  Anyone asleep for good blocks
	 * this: an invalid end state (a deadlock, or a lost wake-up). */
	(apps_done == NAPP && ev_done && ra_done);
	(!pend[0] && !pend[1] && !hb[0] && !hb[1]);
	atomic {
		if
		:: !unmapped ->	/* uswap__validate() at quiescence */
			assert(est != MARKER && est != EVICTING && !ew);	/* [P:quiescent: nothing in flight] */
			assert(fsl == 0 && wmask == 0);	/* [P:quiescent: nobody asleep] */
			assert(resident == (est == PRESENT));	/* [P:I11 quiescent: resident = mapped pages] */
			do
			:: i < NSLOT ->
				assert(count[i] == NAMES(i) && alloc[i] == (count[i] > 0));	/* [P:I1/I2 quiescent: a slot is allocated iff the entry names it] */
				i++
			:: else -> break
			od;
			i = 0
		:: else -> skip
		fi
	}
	region_get(ok);
	unmap_region(UM);
	atomic {
		do
		:: i < NSLOT ->
			assert(!alloc[i] && count[i] == 0 && cache[i] == 0);	/* [P:I1/I11 no slot leaked after unmap] */
			i++
		:: else -> break
		od;
		assert(resident == 0 && inflight == 0 && wmask == 0 && fsl == 0);	/* [P:I11 nothing leaked or asleep after unmap] */
		i = 0
	}
}

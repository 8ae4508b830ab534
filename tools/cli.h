/*
 * cli.h - the pieces of the uswap command: `uswap run` (uswap.c), the
 * userfaultfd probe (uffdcheck.c) and `uswap stat` (stat.c).
 *
 * Exit statuses of uswap itself (uswap(1), EXIT STATUS):
 *   2    usage or configuration error
 *   126  userfaultfd unusable, shim not found, program not executable
 *   127  program not found
 * otherwise `uswap run` execs the program, whose status is the result.
 */
#ifndef USWAP_CLI_H
#define USWAP_CLI_H

#include <stddef.h>

#define EXIT_USAGE 2
#define EXIT_CANNOT 126
#define EXIT_NOTFOUND 127

/* What the userfaultfd probe found, best first. */
enum uffd_verdict {
	UFFD_USABLE,		/* kernel-mode and user-mode faults, all features */
	UFFD_USER_ONLY,		/* only UFFD_USER_MODE_ONLY descriptors */
	UFFD_OLD_KERNEL,	/* a descriptor, but features uswap needs are missing */
	UFFD_UNAVAILABLE,	/* no descriptor at all */
};

/*
 * Probe userfaultfd the way the engine opens it (src/uffd.c): the system
 * call, then /dev/userfaultfd, then (to tell the cases apart) a user-mode-
 * only descriptor, and UFFDIO_API with the features the engine needs.
 * Writes into @msg (@len bytes) what failed and how to fix it, one
 * indented line each, for every verdict but UFFD_USABLE.
 */
enum uffd_verdict uffd_probe(char *msg, size_t len);

/* `uswap stat [-w [SECS]] [-n COUNT] [PID]`: argv[0] is "stat". */
int cmd_stat(int argc, char **argv);

#endif

/*
 * uffdcheck.c - can this process use userfaultfd the way uswap needs?
 *
 * The CLI asks before it execs the program, so that a pager that cannot
 * start is a clear message here instead of an unmanaged (or dead) program.
 * The seccomp filter, uid and capabilities it probes with are the ones the
 * program inherits across exec.
 *
 * The kernel's rules (fs/userfaultfd.c, 6.1+): userfaultfd(2) without
 * UFFD_USER_MODE_ONLY needs vm.unprivileged_userfaultfd=1 or CAP_SYS_PTRACE;
 * with it, any process may; opening /dev/userfaultfd and USERFAULTFD_IOC_NEW
 * gives a full descriptor to whoever may open the device.  A seccomp filter
 * may refuse the system call (EPERM, ENOSYS) whatever the rest says.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "cli.h"
#include "uffd_compat.h"

#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif

/* Keep in step with USWAP_UFFD_FEATURES in src/uffd.c. */
static const struct {
	unsigned long long bit;
	const char *name, *since;
} needed[] = {
	{ UFFD_FEATURE_MOVE, "UFFD_FEATURE_MOVE", "6.8" },
	{ UFFD_FEATURE_POISON, "UFFD_FEATURE_POISON", "6.6" },
};

static void add(char *msg, size_t len, const char *fmt, ...)
{
	size_t n = strnlen(msg, len);
	va_list ap;

	if (n + 1 >= len)
		return;
	va_start(ap, fmt);
	vsnprintf(msg + n, len - n, fmt, ap);
	va_end(ap);
}

/* An integer from /proc (the sysctl, or a "Key:\tN" line of status), or -1. */
static long proc_long(const char *path, const char *key)
{
	char line[256];
	long v = -1;
	FILE *f = fopen(path, "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (!key) {
			v = strtol(line, NULL, 10);
			break;
		}
		if (!strncmp(line, key, strlen(key))) {
			v = strtol(line + strlen(key), NULL, 10);
			break;
		}
	}
	fclose(f);
	return v;
}

/* What opening a full descriptor met: -errno of the system call, of
 * opening /dev/userfaultfd, of its USERFAULTFD_IOC_NEW (0: fine or not
 * reached). */
struct attempt {
	int sys_err, open_err, ioc_err;
};

/* A full (kernel- and user-mode) descriptor, the engine's way, or -1. */
static int open_full(struct attempt *a)
{
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);

	*a = (struct attempt){ .sys_err = fd < 0 ? -errno : 0 };
	if (fd >= 0)
		return fd;
	int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);

	if (dev < 0) {
		a->open_err = -errno;
		return -1;
	}
	fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
	a->ioc_err = fd < 0 ? -errno : 0;
	close(dev);
	return fd;
}

/* UFFDIO_API with the features the engine needs: 0, or what is missing
 * (named in @msg) and UFFD_OLD_KERNEL. */
static enum uffd_verdict check_api(int fd, int user_only, char *msg, size_t len)
{
	unsigned long long want = 0;
	struct uffdio_api api;

	for (size_t i = 0; i < sizeof(needed) / sizeof(needed[0]); i++)
		want |= needed[i].bit;
	api = (struct uffdio_api){ .api = UFFD_API, .features = want };
	if (!ioctl(fd, UFFDIO_API, &api) && (api.ioctls & (1ull << _UFFDIO_REGISTER))) {
		close(fd);
		return UFFD_USABLE;
	}
	int err = errno;

	close(fd);
	/* The handshake is once per descriptor: ask a new one what it has. */
	struct attempt a;

	fd = user_only ? (int)syscall(SYS_userfaultfd, UFFD_USER_MODE_ONLY | O_CLOEXEC)
		       : open_full(&a);
	api = (struct uffdio_api){ .api = UFFD_API, .features = 0 };
	if (fd < 0 || ioctl(fd, UFFDIO_API, &api)) {
		add(msg, len, "  UFFDIO_API failed: %s\n", strerror(err));
	} else {
		for (size_t i = 0; i < sizeof(needed) / sizeof(needed[0]); i++)
			if (!(api.features & needed[i].bit))
				add(msg, len, "  this kernel lacks %s (Linux %s or later has it)\n",
				    needed[i].name, needed[i].since);
	}
	if (fd >= 0)
		close(fd);
	add(msg, len, "  uswap needs Linux 6.8 or later built with CONFIG_USERFAULTFD: upgrade the kernel\n");
	return UFFD_OLD_KERNEL;
}

/* Why the system call failed, and the fixes for it. */
static void explain(const struct attempt *a, int user_err, char *msg, size_t len)
{
	long unpriv = proc_long("/proc/sys/vm/unprivileged_userfaultfd", NULL);
	long seccomp = proc_long("/proc/self/status", "Seccomp:");
	struct stat st;

	add(msg, len, "  userfaultfd(2): %s", strerror(-a->sys_err));
	if (a->sys_err == -EPERM && unpriv == 0 && geteuid() != 0)
		add(msg, len, " (vm.unprivileged_userfaultfd is 0 and this process lacks CAP_SYS_PTRACE)");
	add(msg, len, "\n");
	if (user_err && user_err != a->sys_err)
		add(msg, len, "  userfaultfd(2) with UFFD_USER_MODE_ONLY: %s\n", strerror(-user_err));
	if (a->open_err == -ENOENT)
		add(msg, len, "  /dev/userfaultfd: does not exist (Linux 6.1+ with CONFIG_USERFAULTFD has it)\n");
	else if (a->open_err && !stat("/dev/userfaultfd", &st))
		add(msg, len, "  /dev/userfaultfd: %s (mode %03o, owner uid %u, group gid %u; this is uid %u)\n",
		    strerror(-a->open_err), st.st_mode & 0777, st.st_uid, st.st_gid, geteuid());
	else if (a->open_err)
		add(msg, len, "  /dev/userfaultfd: %s\n", strerror(-a->open_err));
	else if (a->ioc_err)
		add(msg, len, "  /dev/userfaultfd opens, but USERFAULTFD_IOC_NEW: %s\n", strerror(-a->ioc_err));
	if (seccomp == 2)
		add(msg, len, "  a seccomp filter is active (Seccomp: 2 in /proc/self/status): container "
			      "runtimes' default profiles refuse userfaultfd\n");

	add(msg, len, "fix, one of:\n");
	if (seccomp == 2)
		add(msg, len, "  allow the system call userfaultfd (%d on this architecture) in the seccomp "
			      "profile, e.g. docker run --security-opt seccomp=<profile allowing userfaultfd>\n",
		    (int)SYS_userfaultfd);
	if (a->sys_err == -ENOSYS && seccomp != 2) {
		add(msg, len, "  boot a kernel built with CONFIG_USERFAULTFD=y\n");
		return;
	}
	if (unpriv == 0 && geteuid() != 0)
		add(msg, len, "  sysctl -w vm.unprivileged_userfaultfd=1   (as root; persist it in /etc/sysctl.d/)\n");
	if (a->open_err == -EACCES || a->open_err == -EPERM)
		add(msg, len, "  give this user /dev/userfaultfd (as root): groupadd -f userfaultfd; "
			      "chgrp userfaultfd /dev/userfaultfd; chmod 0660 /dev/userfaultfd; "
			      "usermod -aG userfaultfd $USER (and log in again)\n");
	if (geteuid() != 0)
		add(msg, len, "  run as root\n");
}

enum uffd_verdict uffd_probe(char *msg, size_t len)
{
	struct attempt a;
	int fd = open_full(&a);

	msg[0] = 0;
	if (fd >= 0)
		return check_api(fd, 0, msg, len);

	int ufd = (int)syscall(SYS_userfaultfd, UFFD_USER_MODE_ONLY | O_CLOEXEC);
	int user_err = ufd < 0 ? -errno : 0;

	if (ufd >= 0) {
		/* Only user-mode faults: usable, with a consequence to explain. */
		char api_msg[512] = "";

		if (check_api(ufd, 1, api_msg, sizeof(api_msg)) != UFFD_USABLE) {
			add(msg, len, "%s", api_msg);
			return UFFD_OLD_KERNEL;
		}
		explain(&a, user_err, msg, len);
		return UFFD_USER_ONLY;
	}
	explain(&a, user_err, msg, len);
	return UFFD_UNAVAILABLE;
}

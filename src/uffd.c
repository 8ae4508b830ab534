/*
 * uffd.c - userfaultfd ioctls, each returning 0 (or a count) or -errno.
 * Kept thin so the protocol code reads as the protocol.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "uffd_compat.h"

/* Features uswap needs: MOVE (evict without copying), POISON (a failed
 * read gives SIGBUS, never wrong data).  WP on anonymous memory is a
 * registration mode, available since 5.7. */
#define USWAP_UFFD_FEATURES (UFFD_FEATURE_MOVE | UFFD_FEATURE_POISON)

/* USWAP_USER_MODE_ONLY=1 (checked by uswap_config_init()): when a full
 * descriptor is refused, settle for one that sees user-mode faults only. */
static bool user_mode_only_allowed(void)
{
	const char *v = getenv("USWAP_USER_MODE_ONLY");

	return v && !strcmp(v, "1");
}

int uffd_open(void)
{
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);

	if (fd < 0 && (errno == EPERM || errno == EACCES)) {
		/* Without vm.unprivileged_userfaultfd, /dev/userfaultfd may
		 * still be open to us. */
		int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);

		if (dev >= 0) {
			fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
			close(dev);
		}
	}
	if (fd < 0 && user_mode_only_allowed()) {
		/* uswap run --user-mode-only: faults raised inside system
		 * calls on evicted memory then fail with EFAULT (uswap(7)). */
		int err = errno;

		fd = (int)syscall(SYS_userfaultfd, UFFD_USER_MODE_ONLY | O_CLOEXEC | O_NONBLOCK);
		if (fd < 0)
			errno = err;
	}
	if (fd < 0)
		return -errno;

	struct uffdio_api api = { .api = UFFD_API, .features = USWAP_UFFD_FEATURES };
	if (ioctl(fd, UFFDIO_API, &api) < 0) {
		int err = -errno;

		close(fd);
		return err == -EINVAL ? -ENOSYS : err;
	}
	if (!(api.ioctls & (1ull << _UFFDIO_REGISTER))) {
		close(fd);
		return -ENOSYS;
	}
	return fd;
}

int uffd_register(int uffd, void *addr, size_t len, bool wp)
{
	struct uffdio_register reg = {
		.range = { .start = (uintptr_t)addr, .len = len },
		.mode = UFFDIO_REGISTER_MODE_MISSING |
			(wp ? UFFDIO_REGISTER_MODE_WP : 0),
	};

	if (ioctl(uffd, UFFDIO_REGISTER, &reg) < 0)
		return -errno;
	return 0;
}

/* Copy @len bytes into the unmapped range at @dst (installing the pages,
 * write-protected if @wp) and wake the threads waiting on it.  Returns the
 * bytes copied, which is less than @len after a partial copy (the page at
 * that offset failed: copy it alone to learn why), or -errno if none. */
long uffd_copy(int uffd, uintptr_t dst, const void *src, size_t len, bool wp)
{
	struct uffdio_copy c = {
		.dst = dst, .src = (uintptr_t)src, .len = len,
		.mode = wp ? UFFDIO_COPY_MODE_WP : 0,
	};

	if (ioctl(uffd, UFFDIO_COPY, &c) < 0)
		return c.copy > 0 ? c.copy : -errno;
	return c.copy;
}

int uffd_wake(int uffd, uintptr_t addr, size_t len)
{
	struct uffdio_range r = { .start = addr, .len = len };

	return ioctl(uffd, UFFDIO_WAKE, &r) < 0 ? -errno : 0;
}

int uffd_unprotect(int uffd, uintptr_t addr, size_t len)
{
	struct uffdio_writeprotect wp = {
		.range = { .start = addr, .len = len },
		.mode = 0,	/* clear WP and wake the writer */
	};

	return ioctl(uffd, UFFDIO_WRITEPROTECT, &wp) < 0 ? -errno : 0;
}

/* Write-protect [addr, addr+len): writes then fault to the handlers. */
int uffd_protect(int uffd, uintptr_t addr, size_t len)
{
	struct uffdio_writeprotect wp = {
		.range = { .start = addr, .len = len },
		.mode = UFFDIO_WRITEPROTECT_MODE_WP,
	};

	return ioctl(uffd, UFFDIO_WRITEPROTECT, &wp) < 0 ? -errno : 0;
}

int uffd_poison(int uffd, uintptr_t addr, size_t len)
{
	struct uffdio_poison p = { .range = { .start = addr, .len = len } };

	return ioctl(uffd, UFFDIO_POISON, &p) < 0 ? -errno : 0;
}

/* Move [src, src+len) to dst; returns bytes moved (>= 0) or -errno when
 * nothing moved.  A partial move returns the bytes done: the caller looks at
 * the page at that offset to learn why (ENOENT hole, EBUSY shared). */
long uffd_move(int uffd, uintptr_t dst, uintptr_t src, size_t len)
{
	struct uffdio_move m = { .dst = dst, .src = src, .len = len, .mode = 0 };

	if (ioctl(uffd, UFFDIO_MOVE, &m) < 0) {
		if (m.move > 0)
			return m.move;
		return -errno;
	}
	return m.move;
}

int futex_wait(_Atomic uint32_t *addr, uint32_t val)
{
	if (syscall(SYS_futex, addr, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0) < 0)
		return -errno;
	return 0;
}

/* The same, for at most @ns nanoseconds (-ETIMEDOUT). */
int futex_wait_ns(_Atomic uint32_t *addr, uint32_t val, long ns)
{
	struct timespec ts = { .tv_sec = ns / 1000000000L, .tv_nsec = ns % 1000000000L };

	if (syscall(SYS_futex, addr, FUTEX_WAIT_PRIVATE, val, &ts, NULL, 0) < 0)
		return -errno;
	return 0;
}

void futex_wake_all(_Atomic uint32_t *addr)
{
	syscall(SYS_futex, addr, FUTEX_WAKE_PRIVATE, INT32_MAX, NULL, NULL, 0);
}

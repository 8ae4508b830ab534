/*
 * nouffd.c - run a command under a seccomp filter that takes userfaultfd
 * away, as container runtimes' default profiles do: the tests' way to make
 * userfaultfd unavailable for real, even to root.
 *
 *   nouffd [--user-mode | --no-api] PROGRAM [ARGS...]
 *
 * The filter refuses userfaultfd(2) and ioctl(USERFAULTFD_IOC_NEW) on
 * /dev/userfaultfd with EPERM; with --user-mode it lets userfaultfd(2)
 * with UFFD_USER_MODE_ONLY through, which is what an unprivileged process
 * gets with vm.unprivileged_userfaultfd=0.  With --no-api it lets
 * descriptors be made but fails their UFFDIO_API handshake with EINVAL, as
 * a kernel without the features uswap asks for does.
 */
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <linux/userfaultfd.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__x86_64__)
#define ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define ARCH AUDIT_ARCH_AARCH64
#else
#error "nouffd: add this architecture's AUDIT_ARCH"
#endif
#ifndef USERFAULTFD_IOC_NEW
#define USERFAULTFD_IOC_NEW _IO(0xAA, 0x00)
#endif
#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif

#define LD(field) BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, field))
#define ARG_LO(n) BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[n]))
#define RET(v) BPF_STMT(BPF_RET | BPF_K, (v))

int main(int argc, char **argv)
{
	int user_mode = argc > 1 && !strcmp(argv[1], "--user-mode");
	int no_api = argc > 1 && !strcmp(argv[1], "--no-api");

	argv += 1 + user_mode + no_api;
	if (!*argv) {
		fprintf(stderr, "usage: nouffd [--user-mode | --no-api] PROGRAM [ARGS...]\n");
		return 2;
	}
	struct sock_filter f[] = {
		LD(arch),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ARCH, 1, 0),
		RET(SECCOMP_RET_ALLOW),
		LD(nr),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_userfaultfd, 0, 4),
		ARG_LO(0),
		/* --user-mode: flags with UFFD_USER_MODE_ONLY pass. */
		BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, user_mode ? UFFD_USER_MODE_ONLY : 0, 0, 1),
		RET(SECCOMP_RET_ALLOW),
		RET(SECCOMP_RET_ERRNO | EPERM),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_ioctl, 0, 3),
		ARG_LO(1),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, USERFAULTFD_IOC_NEW, 0, 1),
		RET(SECCOMP_RET_ERRNO | EPERM),
		RET(SECCOMP_RET_ALLOW),
	};
	struct sock_filter g[] = {
		LD(arch),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ARCH, 1, 0),
		RET(SECCOMP_RET_ALLOW),
		LD(nr),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_ioctl, 0, 3),
		ARG_LO(1),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)UFFDIO_API, 0, 1),
		RET(SECCOMP_RET_ERRNO | EINVAL),
		RET(SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { .len = sizeof(f) / sizeof(f[0]), .filter = f };

	if (no_api)
		prog = (struct sock_fprog){ .len = sizeof(g) / sizeof(g[0]), .filter = g };

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) ||
	    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog)) {
		perror("nouffd: seccomp");
		return 2;
	}
	execvp(argv[0], argv);
	perror(argv[0]);
	return 127;
}

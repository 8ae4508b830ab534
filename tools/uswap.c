/*
 * uswap.c - the uswap command.
 *
 *   uswap run [OPTIONS] [--] PROGRAM [ARGS...]
 *   uswap stat [-w [SECS]] [-n COUNT] [PID]
 *
 * `run` checks everything that would make the pager fail before the
 * program starts (the configuration, the program, the shim, userfaultfd),
 * then sets the USWAP_* environment, prepends the shim to LD_PRELOAD and
 * execs the program: the program keeps uswap's pid, and its exit status is
 * the command's.  The contract with the shim (src/manage.c): the variables
 * below, and USWAP_STATS_EXIT=1 + USWAP_STATS_PID=<this pid> for --stats.
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "uswap.h"
#include "internal.h"	/* parse_size(): the library's own size parser */
#include "cli.h"

#define SHIM_NAME "libuswap-preload.so"

static const char usage_text[] =
	"usage: uswap run [OPTIONS] [--] PROGRAM [ARGS...]\n"
	"       uswap stat [-w [SECS]] [-n COUNT] [PID]\n"
	"       uswap --help | --version\n"
	"\n"
	"Run PROGRAM with its large anonymous memory managed by uswap: resident\n"
	"pages kept under a limit, cold pages swapped to a compressed pool in RAM.\n"
	"\n"
	"run options:\n"
	"  -l, --limit SIZE        resident limit of managed memory (K/M/G; default 256M)\n"
	"  -b, --backend NAME      swap backend: zram (default)\n"
	"  -c, --compressor NAME   lz4 (default) or zstd\n"
	"  -t, --threads N         fault handler threads, 1..64 (default 1)\n"
	"  -m, --min-region SIZE   manage mappings of at least SIZE (default 1M)\n"
	"  -s, --stats             print the statistics when PROGRAM exits\n"
	"  -v, --verbose           say what uswap sets up\n"
	"      --fail-open         if uswap cannot manage PROGRAM, run it unmanaged\n"
	"                          (with a warning) instead of refusing\n"
	"      --user-mode-only    accept userfaultfd limited to user-mode faults\n"
	"                          (system calls on evicted memory fail with EFAULT)\n"
	"Other USWAP_* variables in the environment (uswap(3)) pass through.\n"
	"\n"
	"stat: print the statistics of a managed process, or list them all;\n"
	"  -w [SECS] redraws every SECS (default 1) like top, -n COUNT stops after\n"
	"  COUNT screens.\n"
	"\n"
	"Exit status: PROGRAM's; 2 usage or configuration error, 126 uswap cannot\n"
	"manage PROGRAM (userfaultfd, shim, static or set-user-ID program),\n"
	"127 PROGRAM not found.  See uswap(1), uswap(7).\n";

static void __attribute__((format(printf, 1, 2), noreturn)) usage_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "uswap: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\nTry 'uswap --help'.\n");
	va_end(ap);
	exit(EXIT_USAGE);
}

/* Options and the variables that carry them to the shim. */
enum { OPT_FAIL_OPEN = 256, OPT_USER_MODE };
static const struct {
	int opt;
	const char *name, *var;
} opt_vars[] = {
	{ 'l', "--limit", "USWAP_LIMIT" },
	{ 'b', "--backend", "USWAP_BACKEND" },
	{ 'c', "--compressor", "USWAP_COMPRESSOR" },
	{ 't', "--threads", "USWAP_THREADS" },
	{ 'm', "--min-region", "USWAP_MIN_REGION" },
};
#define N_OPT_VARS (sizeof(opt_vars) / sizeof(opt_vars[0]))

struct run_opts {
	const char *given[N_OPT_VARS];	/* value from the command line, or NULL */
	int stats, verbose, fail_open, user_mode;
};

/*
 * Check every USWAP_* value the engine will read, with the library's own
 * parser, so a bad one stops us here.  A message about a variable that came
 * from an option names the option.
 */
static void check_config(const struct run_opts *o)
{
	struct uswap_config cfg;
	char err[256];
	size_t min_region;
	const char *mr = getenv("USWAP_MIN_REGION");

	if (!uswap_config_init(&cfg, err, sizeof(err))) {
		if (mr && parse_size(mr, &min_region))
			snprintf(err, sizeof(err), "USWAP_MIN_REGION: invalid size '%s' (accepted: a number "
				 "of bytes with an optional K, M, G or T suffix, e.g. 1M)", mr);
		else
			return;
	}
	for (size_t i = 0; i < N_OPT_VARS; i++) {
		size_t n = strlen(opt_vars[i].var);

		if (o->given[i] && !strncmp(err, opt_vars[i].var, n) && err[n] == ':') {
			fprintf(stderr, "uswap: %s%s\n", opt_vars[i].name, err + n);
			exit(EXIT_USAGE);
		}
	}
	fprintf(stderr, "uswap: %s\n", err);
	exit(EXIT_USAGE);
}

/* PROGRAM as execvp(3) would find it, into @path; exits 127/126 if not. */
static void find_program(const char *prog, char *path, size_t len)
{
	int denied = 0;

	if (strchr(prog, '/')) {
		snprintf(path, len, "%s", prog);
		if (access(path, F_OK)) {
			fprintf(stderr, "uswap: %s: %s\n", prog, strerror(errno));
			exit(EXIT_NOTFOUND);
		}
		if (access(path, X_OK)) {
			fprintf(stderr, "uswap: %s: %s\n", prog, strerror(errno));
			exit(EXIT_CANNOT);
		}
		return;
	}
	const char *p = getenv("PATH");

	if (!p)
		p = "/usr/local/bin:/usr/bin:/bin";
	while (*p) {
		const char *colon = strchrnul(p, ':');
		int dlen = (int)(colon - p);
		struct stat st;

		snprintf(path, len, "%.*s%s%s", dlen, p, dlen ? "/" : "", prog);
		if (!stat(path, &st) && S_ISREG(st.st_mode)) {
			if (!access(path, X_OK))
				return;
			denied = 1;
		}
		p = *colon ? colon + 1 : colon;
	}
	if (denied) {
		fprintf(stderr, "uswap: %s: found in PATH but not executable\n", prog);
		exit(EXIT_CANNOT);
	}
	fprintf(stderr, "uswap: %s: command not found\n", prog);
	exit(EXIT_NOTFOUND);
}

/*
 * Why the dynamic linker would not load the shim into @path, or NULL:
 * a statically linked ELF has no dynamic linker, and a set-user-ID,
 * set-group-ID or capability-raising one runs it in secure mode, which
 * ignores LD_PRELOAD paths.
 * Scripts and unreadable files pass (their interpreter decides).
 */
static const char *preload_obstacle(const char *path)
{
	struct stat st;
	unsigned char ident[EI_NIDENT];
	int fd, has_interp = 0;

	if (stat(path, &st))
		return NULL;
	/* Secure mode is for a change of identity (AT_SECURE): a set-user-ID
	 * program of our own uid, or capabilities for root, change nothing. */
	if ((st.st_mode & S_ISUID) && st.st_uid != getuid())
		return "is set-user-ID: the dynamic linker ignores LD_PRELOAD for it";
	if ((st.st_mode & (S_ISGID | S_IXGRP)) == (S_ISGID | S_IXGRP) && st.st_gid != getgid())
		return "is set-group-ID: the dynamic linker ignores LD_PRELOAD for it";
	if (geteuid() != 0 && getxattr(path, "security.capability", NULL, 0) > 0)
		return "has file capabilities (getcap): the dynamic linker ignores LD_PRELOAD for it";
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	if (pread(fd, ident, sizeof(ident), 0) != sizeof(ident) || memcmp(ident, ELFMAG, SELFMAG)) {
		close(fd);
		return NULL;
	}
	if (ident[EI_CLASS] == ELFCLASS64) {
		Elf64_Ehdr eh;
		Elf64_Phdr ph;

		if (pread(fd, &eh, sizeof(eh), 0) != sizeof(eh))
			goto unknown;
		for (unsigned i = 0; i < eh.e_phnum; i++) {
			if (pread(fd, &ph, sizeof(ph), (off_t)(eh.e_phoff + (Elf64_Off)i * eh.e_phentsize)) != sizeof(ph))
				goto unknown;
			has_interp |= ph.p_type == PT_INTERP;
		}
	} else if (ident[EI_CLASS] == ELFCLASS32) {
		Elf32_Ehdr eh;
		Elf32_Phdr ph;

		if (pread(fd, &eh, sizeof(eh), 0) != sizeof(eh))
			goto unknown;
		for (unsigned i = 0; i < eh.e_phnum; i++) {
			if (pread(fd, &ph, sizeof(ph), (off_t)(eh.e_phoff + (Elf32_Off)i * eh.e_phentsize)) != sizeof(ph))
				goto unknown;
			has_interp |= ph.p_type == PT_INTERP;
		}
	} else {
		goto unknown;
	}
	close(fd);
	if (!has_interp)
		return "is statically linked: no dynamic linker runs to load the shim "
		       "(link it dynamically, or manage its memory with the library, uswap(3))";
	return NULL;
unknown:
	close(fd);
	return NULL;
}

/* The shim's absolute path into @path (uswap(1), FILES), or -1 with a
 * message in @path. */
static int find_shim(char *path, size_t len)
{
	char exe[PATH_MAX], cand[PATH_MAX + 64], *slash;
	const char *env = getenv("USWAP_PRELOAD");
	ssize_t n;

	if (env && *env) {
		if (!realpath(env, path) || access(path, R_OK)) {
			snprintf(path, len, "USWAP_PRELOAD=%s: %s", env, strerror(errno));
			return -1;
		}
		return 0;
	}
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n < 0) {
		snprintf(path, len, "cannot read /proc/self/exe: %s", strerror(errno));
		return -1;
	}
	exe[n] = 0;
	slash = strrchr(exe, '/');
	*slash = 0;
	snprintf(cand, sizeof(cand), "%s/../lib/uswap/" SHIM_NAME, exe);
	if (realpath(cand, path) && !access(path, R_OK))
		return 0;
	snprintf(cand, sizeof(cand), "%s/" SHIM_NAME, exe);
	if (realpath(cand, path) && !access(path, R_OK))
		return 0;
	/* "/usr/local/bin" -> "/usr/local/lib/uswap/" in the message. */
	slash = strrchr(exe, '/');
	snprintf(path, len, "the shim " SHIM_NAME " is in neither %.*s/lib/uswap/ nor %s/ "
		 "(install uswap with make install, or set USWAP_PRELOAD to its path)",
		 slash ? (int)(slash - exe) : 0, exe, exe);
	return -1;
}

/* LD_PRELOAD = shim, then whatever was there (unless the shim already is). */
static void set_preload(const char *shim)
{
	const char *old = getenv("LD_PRELOAD");
	char *v;

	if (old && strstr(old, shim))
		return;
	if (old && *old) {
		if (asprintf(&v, "%s:%s", shim, old) < 0)
			exit(EXIT_CANNOT);
	} else {
		v = strdup(shim);
	}
	if (!v || setenv("LD_PRELOAD", v, 1))
		exit(EXIT_CANNOT);
	free(v);
}

static void exec_program(const char *path, char **argv)
{
	execv(path, argv);
	int err = errno;

	fprintf(stderr, "uswap: %s: %s\n", argv[0], strerror(err));
	exit(err == ENOENT ? EXIT_NOTFOUND : EXIT_CANNOT);
}

/* uswap cannot manage the program: refuse (126), or with --fail-open run
 * it as it is, with a warning. */
static void cannot_manage(const struct run_opts *o, const char *path, char **argv)
{
	if (!o->fail_open) {
		fprintf(stderr, "uswap: not running %s (uswap run --fail-open would run it unmanaged)\n",
			argv[0]);
		exit(EXIT_CANNOT);
	}
	fprintf(stderr, "uswap: warning: running %s unmanaged (--fail-open): its memory is not limited\n",
		argv[0]);
	exec_program(path, argv);
}

static int cmd_run(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "limit", required_argument, NULL, 'l' },
		{ "backend", required_argument, NULL, 'b' },
		{ "compressor", required_argument, NULL, 'c' },
		{ "threads", required_argument, NULL, 't' },
		{ "min-region", required_argument, NULL, 'm' },
		{ "stats", no_argument, NULL, 's' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "fail-open", no_argument, NULL, OPT_FAIL_OPEN },
		{ "user-mode-only", no_argument, NULL, OPT_USER_MODE },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct run_opts o = { 0 };
	char path[PATH_MAX], shim[2 * PATH_MAX + 256], msg[4096], pid[32];
	const char *why;
	int c;

	opterr = 0;
	optind = 1;
	/* '+': options end at PROGRAM, whose own options are its own. */
	while ((c = getopt_long(argc, argv, "+:l:b:c:t:m:svh", longopts, NULL)) != -1) {
		switch (c) {
		case 's': o.stats = 1; break;
		case 'v': o.verbose = 1; break;
		case OPT_FAIL_OPEN: o.fail_open = 1; break;
		case OPT_USER_MODE: o.user_mode = 1; break;
		case 'h': fputs(usage_text, stdout); exit(0);
		case ':': usage_error("run: option '%s' needs a value", argv[optind - 1]); break;
		case '?':
			if (optopt)
				usage_error("run: unknown option '-%c'", optopt);
			usage_error("run: unknown option '%s'", argv[optind - 1]);
		default:
			for (size_t i = 0; i < N_OPT_VARS; i++)
				if (opt_vars[i].opt == c)
					o.given[i] = optarg;
		}
	}
	if (optind >= argc)
		usage_error("run: no PROGRAM to run");
	argv += optind;

	for (size_t i = 0; i < N_OPT_VARS; i++)
		if (o.given[i])
			setenv(opt_vars[i].var, o.given[i], 1);
	if (o.verbose)
		setenv("USWAP_VERBOSE", "1", 1);
	check_config(&o);
	find_program(argv[0], path, sizeof(path));

	if ((why = preload_obstacle(path))) {
		fprintf(stderr, "uswap: %s %s\n", path, why);
		cannot_manage(&o, path, argv);
	}
	if (find_shim(shim, sizeof(shim))) {
		fprintf(stderr, "uswap: %s\n", shim);
		cannot_manage(&o, path, argv);
	}
	switch (uffd_probe(msg, sizeof(msg))) {
	case UFFD_USABLE:
		break;
	case UFFD_USER_ONLY:
		if (o.user_mode) {
			setenv("USWAP_USER_MODE_ONLY", "1", 1);
			if (o.verbose)
				fprintf(stderr, "uswap: user-mode faults only (--user-mode-only): system calls "
						"on evicted memory fail with EFAULT\n");
			break;
		}
		fprintf(stderr, "uswap: userfaultfd is limited to user-mode faults for this process:\n"
				"  a system call that reads or writes an evicted page of managed memory (read(2)\n"
				"  into a buffer, write(2) or send(2) from one) would fail with EFAULT instead of\n"
				"  waiting for the page, and most programs take that for a fatal I/O error.\n"
				"%s  or accept the EFAULTs: uswap run --user-mode-only ...\n", msg);
		cannot_manage(&o, path, argv);
		break;
	case UFFD_OLD_KERNEL:
		fprintf(stderr, "uswap: userfaultfd lacks what uswap needs:\n%s", msg);
		cannot_manage(&o, path, argv);
		break;
	case UFFD_UNAVAILABLE:
		fprintf(stderr, "uswap: userfaultfd is not usable by this process, so uswap cannot "
				"manage its memory:\n%s", msg);
		cannot_manage(&o, path, argv);
		break;
	}

	set_preload(shim);
	if (o.stats) {
		snprintf(pid, sizeof(pid), "%d", (int)getpid());
		setenv("USWAP_STATS_EXIT", "1", 1);
		setenv("USWAP_STATS_PID", pid, 1);
	}
	if (o.verbose) {
		fprintf(stderr, "uswap: running %s (pid %d)\n  LD_PRELOAD=%s\n", path, (int)getpid(),
			getenv("LD_PRELOAD"));
		for (size_t i = 0; i < N_OPT_VARS; i++) {
			const char *v = getenv(opt_vars[i].var);

			if (v)
				fprintf(stderr, "  %s=%s\n", opt_vars[i].var, v);
		}
	}
	exec_program(path, argv);
	return EXIT_CANNOT;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fputs(usage_text, stderr);
		return EXIT_USAGE;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		fputs(usage_text, stdout);
		return 0;
	}
	if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V")) {
		printf("uswap %s (library %s)\n", USWAP_VERSION_STRING, uswap_version());
		return 0;
	}
	if (!strcmp(argv[1], "run"))
		return cmd_run(argc - 1, argv + 1);
	if (!strcmp(argv[1], "stat"))
		return cmd_stat(argc - 1, argv + 1);
	usage_error("unknown command '%s'", argv[1]);
	return EXIT_USAGE;
}

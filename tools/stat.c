/*
 * stat.c - `uswap stat`: read the statistics a managed process publishes
 * (src/statsfile.h: <dir>/uswap.<pid>, a seqlock-protected struct) and show
 * them: one process, all of them, or one refreshed live like top(1).
 *
 * Exit status: 0; 1 no such managed process (or its file is unreadable);
 * 2 usage error.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "uswap.h"
#include "backend.h"	/* USWAP_PAGE_SIZE: the unit of the page counters */
#include "statsfile.h"
#include "cli.h"

static const char stat_usage[] =
	"usage: uswap stat [-a] [-w [SECS]] [-n COUNT] [PID]\n"
	"  PID        a process started with uswap run (none: list them all)\n"
	"  -a, --all  every counter of the engine, not just the summary\n"
	"  -w [SECS], --watch[=SECS]\n"
	"             redraw every SECS seconds (default 1) with rates, until the\n"
	"             process exits or Ctrl-C; -w SECS PID takes SECS first\n"
	"  -n COUNT   stop after COUNT screens\n"
	"Files: $USWAP_STATS_DIR (default " USWAP_STATSFILE_DIR ")/" USWAP_STATSFILE_PREFIX "<pid>\n";

static const char *stats_dir(void)
{
	const char *d = getenv("USWAP_STATS_DIR");

	return d && *d ? d : USWAP_STATSFILE_DIR;
}

/* "256.0 MiB": @b bytes in the largest binary unit that keeps it >= 1. */
static const char *fmt_bytes(char *buf, size_t len, uint64_t b)
{
	static const char *unit[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	double v = (double)b;
	int u = 0;

	while (v >= 1024 && u < 4) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%llu B", (unsigned long long)b);
	else
		snprintf(buf, len, "%.1f %s", v, unit[u]);
	return buf;
}
/* A buffer of the enclosing statement's own: several in one printf. */
#define BYTES(x) fmt_bytes((char[32]){ 0 }, 32, (x))

enum snap_err { SNAP_OK, SNAP_NONE, SNAP_GONE, SNAP_BAD };

/*
 * Copy the statsfile of @pid into @out under its seqlock.  SNAP_NONE: no
 * file; SNAP_GONE: the file was stale (its process is gone) and has been
 * removed; SNAP_BAD: unreadable or not a layout we know (message in @err).
 */
static enum snap_err snapshot(pid_t pid, struct uswap_statsfile *out, char *err, size_t errlen)
{
	char path[4096];
	struct uswap_statsfile hdr;
	struct stat st;
	const struct uswap_statsfile *m;
	int fd;

	snprintf(path, sizeof(path), "%s/" USWAP_STATSFILE_PREFIX "%d", stats_dir(), (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return SNAP_NONE;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return SNAP_BAD;
	}
	if (fstat(fd, &st) || pread(fd, &hdr, offsetof(struct uswap_statsfile, seq), 0) !=
				      (ssize_t)offsetof(struct uswap_statsfile, seq)) {
		snprintf(err, errlen, "%s: too short to be a uswap statsfile", path);
		goto bad;
	}
	if (memcmp(hdr.magic, USWAP_STATSFILE_MAGIC, sizeof(hdr.magic))) {
		snprintf(err, errlen, "%s: not a uswap statsfile (bad magic)", path);
		goto bad;
	}
	if (hdr.version != USWAP_STATSFILE_VERSION || hdr.size != sizeof(*out)) {
		snprintf(err, errlen, "%s: statsfile version %u, %u bytes; this uswap %s reads version %u, "
			 "%zu bytes: use the uswap that matches the program's shim", path, hdr.version,
			 hdr.size, USWAP_VERSION_STRING, USWAP_STATSFILE_VERSION, sizeof(*out));
		goto bad;
	}
	if ((size_t)st.st_size < sizeof(*out)) {
		snprintf(err, errlen, "%s: %lld bytes, short of %zu", path, (long long)st.st_size, sizeof(*out));
		goto bad;
	}
	if (hdr.pid != pid) {
		snprintf(err, errlen, "%s: names pid %d", path, (int)hdr.pid);
		goto bad;
	}
	if (kill(pid, 0) && errno == ESRCH) {
		/* The process died without removing its file (killed, _exit). */
		unlink(path);
		close(fd);
		return SNAP_GONE;
	}
	m = mmap(NULL, sizeof(*m), PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	if (m == MAP_FAILED) {
		snprintf(err, errlen, "%s: mmap: %s", path, strerror(errno));
		return SNAP_BAD;
	}
	/* The seqlock: an even sequence before and the same after the copy. */
	for (int tries = 0;; tries++) {
		uint64_t s1 = __atomic_load_n(&m->seq, __ATOMIC_ACQUIRE);

		if (!(s1 & 1)) {
			memcpy(out, m, sizeof(*out));
			__atomic_thread_fence(__ATOMIC_ACQUIRE);
			if (__atomic_load_n(&m->seq, __ATOMIC_RELAXED) == s1)
				break;
		}
		if (tries == 1000) {
			munmap((void *)m, sizeof(*m));
			snprintf(err, errlen, "%s: the writer holds the sequence odd (stuck mid-update?)", path);
			return SNAP_BAD;
		}
		if (tries > 100)
			usleep(1000);
	}
	munmap((void *)m, sizeof(*m));
	out->cmdline[sizeof(out->cmdline) - 1] = 0;
	return SNAP_OK;
bad:
	close(fd);
	return SNAP_BAD;
}

static double pct(uint64_t a, uint64_t b)
{
	return b ? 100.0 * (double)a / (double)b : 0;
}

static void print_uptime(FILE *f, uint64_t start_ns, uint64_t now_ns)
{
	uint64_t s = now_ns > start_ns ? (now_ns - start_ns) / 1000000000ull : 0;

	fprintf(f, "%llu:%02llu:%02llu", (unsigned long long)(s / 3600),
		(unsigned long long)(s / 60 % 60), (unsigned long long)(s % 60));
}

/* Per-second rate of counter @field between @p and @c, as text. */
#define RATE(buf, p, c, field)                                                     \
	rate(buf, sizeof(buf), (p) ? (p)->stats.field : 0, (c)->stats.field,        \
	     (p) ? (c)->update_ns - (p)->update_ns : 0)
static const char *rate(char *buf, size_t len, uint64_t a, uint64_t b, uint64_t dt_ns)
{
	if (!dt_ns || b < a)
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, "%.0f/s", (double)(b - a) * 1e9 / (double)dt_ns);
	return buf;
}

/*
 * The summary of one snapshot; with @prev (an earlier snapshot of the
 * same process), the rates between them as well.
 */
static void print_one(FILE *f, const struct uswap_statsfile *c, const struct uswap_statsfile *prev, int all)
{
	const struct uswap_stats *s = &c->stats;
	char r1[32], r2[32], r3[32];
	struct timespec now;
	uint64_t now_ns;
	uint64_t other = s->faults - s->faults_zero - s->faults_swapin - s->faults_wp;

	clock_gettime(CLOCK_REALTIME, &now);
	now_ns = (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec;
	fprintf(f, "pid %d  %s\n", (int)c->pid, c->cmdline[0] ? c->cmdline : "?");
	fprintf(f, "  managed for ");
	print_uptime(f, c->start_ns, c->update_ns);
	if (now_ns > c->update_ns && now_ns - c->update_ns > 5000000000ull)
		fprintf(f, "   (not updated for %llu s)", (unsigned long long)((now_ns - c->update_ns) / 1000000000ull));
	fprintf(f, "   regions %llu (of %s or more)\n", (unsigned long long)s->regions, BYTES(c->min_region));
	fprintf(f, "  limit        %12s\n", BYTES(s->limit_bytes));
	fprintf(f, "  resident     %12s   %5.1f%% of limit   peak %s (%.1f%%)\n", BYTES(s->resident_bytes),
		pct(s->resident_bytes, s->limit_bytes), BYTES(s->resident_peak_bytes),
		pct(s->resident_peak_bytes, s->limit_bytes));
	fprintf(f, "  swapped      %12s   %llu pages\n", BYTES(s->swapped_pages * USWAP_PAGE_SIZE),
		(unsigned long long)s->swapped_pages);
	fprintf(f, "  pool         %12s   holds %s compressed to %s\n", BYTES(s->pool_bytes),
		BYTES(s->stored_orig_bytes), BYTES(s->stored_compr_bytes));
	fprintf(f, "  ratio        %11.2fx   memory efficiency %.2fx (stored / pool)\n",
		s->compression_ratio, s->memory_efficiency);
	fprintf(f, "  faults       %12llu", (unsigned long long)s->faults);
	if (prev)
		fprintf(f, "   %-10s", RATE(r1, prev, c, faults));
	fprintf(f, "   zero %llu, swap-in %llu, write-protect %llu, other %llu\n",
		(unsigned long long)s->faults_zero, (unsigned long long)s->faults_swapin,
		(unsigned long long)s->faults_wp, (unsigned long long)other);
	fprintf(f, "  swap-ins     %12llu", (unsigned long long)s->swapins);
	if (prev)
		fprintf(f, "   %-10s", RATE(r2, prev, c, swapins));
	fprintf(f, "   readahead %llu (hits %llu)\n", (unsigned long long)s->readahead_pages,
		(unsigned long long)s->readahead_hits);
	fprintf(f, "  swap-outs    %12llu", (unsigned long long)s->swapouts);
	if (prev)
		fprintf(f, "   %-10s", RATE(r3, prev, c, swapouts));
	fprintf(f, "   clean drops %llu\n", (unsigned long long)s->clean_drops);
	if (s->store_failures || s->load_failures || s->over_limit)
		fprintf(f, "  failures     store %llu (pool full), load %llu (pages poisoned), over limit %llu\n",
			(unsigned long long)s->store_failures, (unsigned long long)s->load_failures,
			(unsigned long long)s->over_limit);
	if (all) {
		fprintf(f, "\n");
		uswap_stats_print(s, f);
	}
}

static int is_pid(const char *s)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	return *s >= '0' && *s <= '9' && !*end && !errno && v > 0 && v <= 0x7fffffff;
}

/* `uswap stat` with no PID: one line per managed process. */
static int list_all(void)
{
	const char *dir = stats_dir();
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;
	size_t plen = strlen(USWAP_STATSFILE_PREFIX);

	if (!d) {
		fprintf(stderr, "uswap stat: %s: %s\n", dir, strerror(errno));
		return 1;
	}
	while ((e = readdir(d))) {
		struct uswap_statsfile sf;
		char err[4608];
		const char *p = e->d_name + plen;

		if (strncmp(e->d_name, USWAP_STATSFILE_PREFIX, plen) || !is_pid(p))
			continue;
		switch (snapshot(atoi(p), &sf, err, sizeof(err))) {
		case SNAP_OK:
			if (!n++)
				printf("%8s %11s %11s %11s %11s %7s  %s\n", "PID", "LIMIT", "RESIDENT",
				       "SWAPPED", "POOL", "RATIO", "COMMAND");
			printf("%8d %11s %11s %11s %11s %6.2fx  %.60s\n", (int)sf.pid,
			       BYTES(sf.stats.limit_bytes), BYTES(sf.stats.resident_bytes),
			       BYTES(sf.stats.swapped_pages * USWAP_PAGE_SIZE), BYTES(sf.stats.pool_bytes),
			       sf.stats.compression_ratio, sf.cmdline);
			break;
		case SNAP_BAD:
			fprintf(stderr, "uswap stat: %s\n", err);
			break;
		default:	/* raced with its exit, or stale and removed */
			break;
		}
	}
	closedir(d);
	if (!n)
		printf("no process managed by uswap (no %s/%s<pid>)\n", dir, USWAP_STATSFILE_PREFIX);
	return 0;
}

/* Why @pid has no statistics, on stderr; returns the exit status 1. */
static int no_stats(pid_t pid, enum snap_err r, const char *err)
{
	if (r == SNAP_BAD)
		fprintf(stderr, "uswap stat: %s\n", err);
	else if (r == SNAP_GONE || (kill(pid, 0) && errno == ESRCH))
		fprintf(stderr, "uswap stat: process %d does not exist (any more)\n", (int)pid);
	else
		fprintf(stderr, "uswap stat: process %d is not managed by uswap (no %s/%s%d; "
				"start it with uswap run)\n", (int)pid, stats_dir(), USWAP_STATSFILE_PREFIX, (int)pid);
	return 1;
}

static int watch(pid_t pid, double secs, long count, int all)
{
	struct uswap_statsfile snap[2];
	int cur = 0, have_prev = 0, tty = isatty(STDOUT_FILENO);
	char err[4608];
	enum snap_err r;

	for (long i = 0; count <= 0 || i < count; i++) {
		if (i) {
			struct timespec ts = { (time_t)secs, (long)((secs - (time_t)secs) * 1e9) };

			nanosleep(&ts, NULL);
		}
		r = snapshot(pid, &snap[cur], err, sizeof(err));
		if (r != SNAP_OK) {
			if (!i)
				return no_stats(pid, r, err);
			if (r == SNAP_BAD)
				return no_stats(pid, r, err);
			printf("\nprocess %d has exited\n", (int)pid);
			return 0;
		}
		/* The screen is composed first, then drawn over the last one
		 * in one write: home, each line cleared to its end, the rest of
		 * the screen cleared (top's way, without the flicker of a full
		 * clear).  Not a terminal: screens one after another. */
		char *buf = NULL;
		size_t len = 0;
		FILE *f = open_memstream(&buf, &len);
		time_t t = time(NULL);
		char when[32];

		if (!f)
			return 1;
		strftime(when, sizeof(when), "%H:%M:%S", localtime(&t));
		fprintf(f, "uswap stat %s, every %gs (Ctrl-C to stop)\n", when, secs);
		print_one(f, &snap[cur], have_prev ? &snap[!cur] : NULL, all);
		fclose(f);
		if (tty) {
			fputs("\033[H", stdout);
			for (char *l = buf, *nl; *l; l = nl + 1) {
				nl = strchrnul(l, '\n');
				printf("%.*s\033[K\n", (int)(nl - l), l);
				if (!*nl)
					break;
			}
			fputs("\033[J", stdout);
		} else {
			printf("%s%s", i ? "\n" : "", buf);
		}
		free(buf);
		fflush(stdout);
		/* Keep the older snapshot if the writer has not refreshed yet,
		 * so rates never divide by zero time. */
		if (!have_prev || snap[cur].update_ns != snap[!cur].update_ns) {
			cur = !cur;
			have_prev = 1;
		}
	}
	return 0;
}

int cmd_stat(int argc, char **argv)
{
	int watching = 0, all = 0, npos = 0;
	double secs = 1;
	long count = 0;
	const char *pos[2], *secs_arg = NULL, *pids = NULL;
	char *end;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			fputs(stat_usage, stdout);
			return 0;
		} else if (!strcmp(a, "-a") || !strcmp(a, "--all")) {
			all = 1;
		} else if (!strcmp(a, "-w") || !strcmp(a, "--watch")) {
			watching = 1;
		} else if (!strncmp(a, "-w", 2) || !strncmp(a, "--watch=", 8)) {
			watching = 1;
			secs_arg = a + (a[1] == 'w' ? 2 : 8);
		} else if (!strcmp(a, "-n") && i + 1 < argc) {
			count = strtol(argv[++i], &end, 10);
			if (*end || count < 1) {
				fprintf(stderr, "uswap stat: -n %s: COUNT must be a positive integer\n", argv[i]);
				return EXIT_USAGE;
			}
		} else if (a[0] != '-' && npos < 2) {
			pos[npos++] = a;
		} else {
			fprintf(stderr, "uswap stat: unexpected argument '%s'\n%s", a, stat_usage);
			return EXIT_USAGE;
		}
	}
	/* "-w SECS PID": two positionals when watching. */
	if (npos == 2 && watching && !secs_arg) {
		secs_arg = pos[0];
		pids = pos[1];
	} else if (npos == 2) {
		fprintf(stderr, "uswap stat: one PID at a time\n%s", stat_usage);
		return EXIT_USAGE;
	} else if (npos == 1) {
		pids = pos[0];
	}
	if (secs_arg) {
		secs = strtod(secs_arg, &end);
		if (!*secs_arg || *end || !(secs > 0) || secs > 86400) {
			fprintf(stderr, "uswap stat: -w %s: SECS must be a number of seconds in (0, 86400]\n",
				secs_arg);
			return EXIT_USAGE;
		}
	}
	if (pids && !is_pid(pids)) {
		fprintf(stderr, "uswap stat: '%s' is not a process id\n", pids);
		return EXIT_USAGE;
	}
	if (!pids) {
		if (watching) {
			fprintf(stderr, "uswap stat: -w needs a PID\n");
			return EXIT_USAGE;
		}
		return list_all();
	}
	pid_t pid = (pid_t)atoi(pids);

	if (watching || count)
		return watch(pid, secs, count, all);

	struct uswap_statsfile sf;
	char err[4608];
	enum snap_err r = snapshot(pid, &sf, err, sizeof(err));

	if (r != SNAP_OK)
		return no_stats(pid, r, err);
	print_one(stdout, &sf, NULL, all);
	return 0;
}

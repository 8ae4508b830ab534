/*
 * statpub.c - publish a statsfile the way the shim does (src/statsfile.h),
 * from a real engine, for test_cli_stat.sh to read with `uswap stat`.
 *
 *   statpub SECONDS [--stale]
 *   statpub --file PID badmagic|badversion|odd
 *
 * Maps 32 MiB under an 8 MiB limit and keeps writing it, refreshing
 * $USWAP_STATS_DIR/uswap.<pid> every 100 ms, for SECONDS; then removes the
 * file and exits 0, or with --stale exits leaving it behind (a killed
 * process).  Prints "ready" on stdout once the first snapshot is out.
 */
#include <err.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "uswap.h"
#include "statsfile.h"

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void publish(struct uswap_statsfile *sf, struct uswap *us)
{
	uint64_t s = __atomic_load_n(&sf->seq, __ATOMIC_RELAXED);

	__atomic_store_n(&sf->seq, s + 1, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_RELEASE);
	uswap_stats(us, &sf->stats);
	sf->update_ns = now_ns();
	__atomic_store_n(&sf->seq, s + 2, __ATOMIC_RELEASE);
}

static int write_broken(const char *dir, int pid, const char *how)
{
	struct uswap_statsfile sf = { .version = USWAP_STATSFILE_VERSION, .size = sizeof(sf), .pid = pid };
	char path[4096];
	FILE *f;

	memcpy(sf.magic, USWAP_STATSFILE_MAGIC, sizeof(sf.magic));
	if (!strcmp(how, "badmagic"))
		memcpy(sf.magic, "NOTUSWAP", 8);
	else if (!strcmp(how, "badversion"))
		sf.version = USWAP_STATSFILE_VERSION + 1;
	else if (!strcmp(how, "odd"))
		sf.seq = 7;
	else
		errx(2, "unknown breakage '%s'", how);
	snprintf(path, sizeof(path), "%s/" USWAP_STATSFILE_PREFIX "%d", dir, pid);
	if (!(f = fopen(path, "w")) || fwrite(&sf, sizeof(sf), 1, f) != 1 || fclose(f))
		err(1, "%s", path);
	return 0;
}

int main(int argc, char **argv)
{
	const size_t len = 32u << 20;
	const char *dir = getenv("USWAP_STATS_DIR");
	struct uswap_config cfg;
	struct uswap_statsfile *sf;
	char path[4096], e[256];
	int fd, stale = argc > 2 && !strcmp(argv[2], "--stale");
	double secs = argc > 1 ? atof(argv[1]) : 2;

	if (argc == 4 && !strcmp(argv[1], "--file"))
		return write_broken(dir && *dir ? dir : USWAP_STATSFILE_DIR, atoi(argv[2]), argv[3]);

	if (uswap_config_init(&cfg, e, sizeof(e)))
		errx(2, "%s", e);
	cfg.limit = 8u << 20;
	struct uswap *us = uswap_open(&cfg);
	if (!us)
		err(77, "uswap_open");
	unsigned char *p = uswap_map(us, len);
	if (!p)
		err(1, "uswap_map");

	snprintf(path, sizeof(path), "%s/" USWAP_STATSFILE_PREFIX "%d",
		 dir && *dir ? dir : USWAP_STATSFILE_DIR, (int)getpid());
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || ftruncate(fd, sizeof(*sf)))
		err(1, "%s", path);
	sf = mmap(NULL, sizeof(*sf), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (sf == MAP_FAILED)
		err(1, "mmap");
	close(fd);
	memcpy(sf->magic, USWAP_STATSFILE_MAGIC, sizeof(sf->magic));
	sf->version = USWAP_STATSFILE_VERSION;
	sf->size = sizeof(*sf);
	sf->pid = getpid();
	sf->start_ns = now_ns();
	sf->min_region = 1u << 20;
	snprintf(sf->cmdline, sizeof(sf->cmdline), "statpub %s", argc > 1 ? argv[1] : "2");
	publish(sf, us);
	printf("ready\n");
	fflush(stdout);

	uint64_t end = now_ns() + (uint64_t)(secs * 1e9), next = 0;
	for (unsigned round = 1; now_ns() < end; round++) {
		for (size_t off = 0; off < 2 * len; off += 4096) {
			size_t o = off % len;

			if (off < len)
				p[o] = (unsigned char)(round + o / 4096);
			else if (p[o] != (unsigned char)(round + o / 4096))
				errx(1, "page %zu: bad data", o / 4096);
			if (!(off & (255 << 12)) && now_ns() >= next) {
				publish(sf, us);
				next = now_ns() + 100000000ull;
			}
		}
	}
	publish(sf, us);
	if (stale)
		_exit(0);
	unlink(path);
	uswap_unmap(us, p, len);
	uswap_close(us);
	return 0;
}

/*
 * bigmem.c - an ordinary program that knows nothing of uswap, for
 * test_cli_run.sh: it maps MIB MiB (mmap and malloc halves), fills them,
 * verifies them twice, passes them through write(2) and read(2) (system
 * calls on memory that may be evicted), optionally sleeps (so that `uswap
 * stat` can look), and exits with STATUS.
 *
 *   bigmem MIB STATUS [SLEEP_SECONDS]
 *
 * BIGMEM_NO_IO=1 leaves out the system calls (for user-mode-only runs).
 */
#include <err.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static unsigned char pattern(size_t i, unsigned salt)
{
	return (unsigned char)(i * 31 + (i >> 12) * 7 + salt);
}

static void fill(unsigned char *p, size_t len, unsigned salt)
{
	for (size_t i = 0; i < len; i++)
		p[i] = pattern(i, salt);
}

static void verify(const unsigned char *p, size_t len, unsigned salt, const char *what)
{
	for (size_t i = 0; i < len; i++)
		if (p[i] != pattern(i, salt))
			errx(1, "%s: byte %zu is %u, want %u", what, i, p[i], pattern(i, salt));
}

int main(int argc, char **argv)
{
	if (argc < 3)
		errx(2, "usage: bigmem MIB STATUS [SLEEP_SECONDS]");
	size_t half = (size_t)atoi(argv[1]) << 19;
	unsigned char *a = mmap(NULL, half, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	unsigned char *b = malloc(half);

	if (a == MAP_FAILED || !b)
		err(1, "allocating");
	fill(a, half, 1);
	fill(b, half, 2);
	for (int pass = 0; pass < 2; pass++) {
		verify(a, half, 1, "mmap");
		verify(b, half, 2, "malloc");
	}
	/* write(2) from managed memory, read(2) back into it. */
	const char *no_io = getenv("BIGMEM_NO_IO");
	char path[] = "/tmp/bigmem.XXXXXX";
	int fd = no_io && *no_io == '1' ? -2 : mkstemp(path);
	ssize_t n;

	if (fd == -1)
		err(1, "mkstemp");
	if (fd >= 0) {
		unlink(path);
		if ((n = write(fd, a, half)) != (ssize_t)half)
			err(1, "write(2) from managed memory returned %zd", n);
		memset(a, 0, half);
		if ((n = pread(fd, a, half, 0)) != (ssize_t)half)
			err(1, "read(2) into managed memory returned %zd", n);
		verify(a, half, 1, "after read(2)");
		close(fd);
	}
	printf("bigmem: %zu MiB verified\n", 2 * half >> 20);
	fflush(stdout);
	if (argc > 3)
		sleep((unsigned)atoi(argv[3]));
	return atoi(argv[2]);
}

/*
 * gen_corpus.c - writes the seed inputs of fuzz/corpus/<target>/seed-*.
 * Deterministic; the seeds are small hand-made operation sequences (their
 * byte layout is each target's decoder, see fuzz_<target>.c), plus, for
 * fuzz_decompress, a valid LZ4 block and zstd frame of a page.
 *   make fuzz-seeds        (or: build with src/compress.c -llz4 -lzstd and
 *                           run with the corpus root as argument)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "backend.h"
#include "compress.h"

static const char *root;

static void put(const char *target, const char *name, const void *data, size_t len)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", root, target);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/%s/seed-%s", root, target, name);
	f = fopen(path, "wb");
	if (!f || fwrite(data, 1, len, f) != len || fclose(f)) {
		perror(path);
		exit(1);
	}
}

#define PUT(t, n, ...) do {                                        \
		static const unsigned char b_[] = { __VA_ARGS__ }; \
		put(t, n, b_, sizeof(b_));                         \
	} while (0)

static void pool(void)
{
	/* header: cap selector (< 32: none), arena selector (% 4 == 0: small);
	 * ops: 0 alloc(mode, size16), 2 free(idx16), 4 rewrite, 5 verify all,
	 * 6 charge, 7 burst(mode, size16, n), 8 free every k-th, 9 free newest */
	PUT("pool", "basic", 0, 1,
	    0, 0, 10, 0,  0, 1, 0x10, 0x03,  0, 2, 5, 0,  0, 4, 3, 0,
	    5,  2, 1, 0,  4, 0, 0,  0, 3, 7, 0,  5,  9, 4);
	PUT("pool", "burst", 0, 1,
	    7, 2, 100, 0, 120,  7, 5, 0, 2, 40,  8, 2, 1,  5,  9, 31,  5);
	PUT("pool", "cap", 40, 1,
	    7, 4, 0, 0, 127,  7, 4, 1, 0, 127,  7, 1, 0x55, 0x0a, 127,  6, 8,
	    6, 0x85,  9, 31,  7, 4, 0, 0, 127);
	PUT("pool", "small-arena", 4, 4,
	    7, 4, 0, 0, 127,  7, 2, 255, 0, 127,  7, 0, 60, 0, 127,  8, 3, 0,
	    7, 5, 0, 0, 127,  9, 31,  7, 2, 1, 0, 127);
	PUT("pool", "edges", 0, 1,
	    0, 6, 0, 0,  0, 0x86, 0, 0,  0, 3, 255, 0,  0, 4, 0, 0,  0, 4, 31, 0,
	    0, 2, 0, 0,  0, 3, 0, 0,  5,  2, 0, 0,  2, 1, 0);
}

static void zbackend(void)
{
	/* header: h0 (bit 0 zstd, (h0>>1)%8 level index), h1 cap (< 64: none);
	 * ops: 0 store(kind, param16 [, len16, bytes]), 2 store input page,
	 * 3 store modified copy(idx16, n, (off16, mask)*), 4 load(idx16),
	 * 5 load all, 6 dup(idx16), 7 free(idx16); bit 7: second context */
	PUT("zbackend", "lz4-kinds", 0, 0,
	    0, 0, 0, 0,  0, 1, 7, 0,  0, 2, 9, 1,  0, 3, 3, 0,  0, 4, 1, 0,
	    0, 5, 44, 0,  0, 7, 5, 0,  0x80, 6, 4, 0, 16, 0, 'u', 's', 'w', 'a',
	    'p', '!', 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
	    5,  6, 1, 0,  6, 3, 0,  7, 1, 0,  0x84, 2, 0,  3, 4, 0, 2, 9, 0, 1,
	    0xd0, 7, 0x80,  5,  7, 0, 0,  7, 3, 0);
	PUT("zbackend", "zstd-kinds", 5, 0,
	    0, 3, 3, 0,  0, 4, 7, 0,  0, 5, 20, 1,  0, 7, 9, 0,  0, 1, 2, 0,
	    5,  6, 0, 0,  6, 0, 0,  7, 0, 0,  7, 0, 0,  0x85,  7, 1, 0);
	PUT("zbackend", "zstd-neg", 3, 0,
	    0, 3, 1, 0,  0, 4, 2, 0,  0, 7, 3, 0,  5,  7, 0, 0,  5);
	PUT("zbackend", "lz4-accel", 8, 0,
	    0, 3, 1, 0,  0, 5, 100, 0,  0, 7, 3, 0,  5);
	PUT("zbackend", "lz4-accel57", 10, 0,
	    0, 3, 1, 0,  0, 5, 100, 0,  0, 7, 3, 0,  5);
	PUT("zbackend", "zstd-19", 15, 0,
	    0, 3, 1, 0,  0, 7, 3, 0,  0, 5, 200, 0,  5);
	PUT("zbackend", "cap", 0, 70,
	    0, 4, 1, 0,  0, 4, 2, 0,  0, 4, 3, 0,  0, 4, 4, 0,  0, 4, 5, 0,
	    0, 4, 6, 0,  0, 4, 7, 0,  0, 4, 8, 0,  0, 4, 9, 0,  0, 4, 10, 0,
	    0, 4, 11, 0,  0, 4, 12, 0,  0, 4, 13, 0,  0, 4, 14, 0,  0, 4, 15, 0,
	    0, 4, 16, 0,  0, 4, 17, 0,  0, 4, 18, 0,  0, 4, 19, 0,  0, 4, 20, 0,
	    5,  7, 0, 0,  0, 3, 1, 0,  5);
}

static void decompress(void)
{
	unsigned char page[USWAP_PAGE_SIZE], out[1 + USWAP_PAGE_SIZE];
	struct uswap_codec *c;
	int n;

	for (unsigned i = 0; i < sizeof(page); i++)
		page[i] = (unsigned char)("uswap page seed "[i % 16] + (i / 512));
	for (int z = 0; z < 2; z++) {
		c = codec_create(z ? USWAP_COMP_ZSTD : USWAP_COMP_LZ4, 1);
		if (!c) {
			perror("codec_create");
			exit(1);
		}
		out[0] = (unsigned char)z;	/* mode 0: raw LZ4, 1: raw zstd */
		n = codec_compress(c, page, out + 1, USWAP_PAGE_SIZE);
		if (n <= 0) {
			fprintf(stderr, "codec_compress: %d\n", n);
			exit(1);
		}
		put("decompress", z ? "zstd-frame" : "lz4-block", out, 1 + (size_t)n);
		put("decompress", z ? "zstd-truncated" : "lz4-truncated", out,
		    1 + (size_t)n / 2);
		codec_destroy(c);
	}
	/* corrupt mode (2): backend index, kind, param16, nflips,
	 * (off16, mask)*, page bytes */
	PUT("decompress", "corrupt-lz4", 2, 0, 3, 7, 0, 2, 0x10, 0, 0x01, 0x40, 0, 0x80);
	PUT("decompress", "corrupt-lz4-9", 2, 1, 7, 50, 0, 1, 3, 0, 0xff);
	PUT("decompress", "corrupt-zstd", 2, 2, 3, 7, 0, 1, 0x20, 0, 0x04);
	PUT("decompress", "corrupt-zstd-neg", 2, 3, 5, 100, 1, 2, 1, 0, 0x10, 9, 0, 0x02);
	PUT("decompress", "corrupt-zstd-9", 2, 4, 6, 0, 0, 1, 0x33, 0, 0x08,
	    'a', 'b', 'c', 'd', 'a', 'b', 'c', 'e');
	PUT("decompress", "corrupt-raw", 3, 0, 4, 0, 0, 1, 0x00, 0x08, 0x01);
	PUT("decompress", "corrupt-same", 2, 0, 1, 9, 0, 1, 0, 0, 1);
	PUT("decompress", "corrupt-input", 2, 2, 0x80, 0x20, 0, 1, 5, 0, 0x40,
	    'h', 'e', 'l', 'l', 'o', ' ', 'p', 'a', 'g', 'e', ' ', 'h', 'e', 'l', 'l', 'o');
}

/* NUL-separated strings: the literal's bytes without its final NUL */
#define CFG(name, lit) put("config", name, lit, sizeof(lit) - 1)

static void config(void)
{
	CFG("ok-small", "LIMIT=64K\0THREADS=2\0READAHEAD=4\0WAIT=spin");
	CFG("ok-zstd", "POOL_CAP=1G\0COMPRESSOR=zstd\0ZSTD_LEVEL=-7\0SPIN_US=100000");
	/* positional: the variables in fuzz_config.c's table order */
	CFG("ok-positional", "256M\0" "0\0" "zram\0" "lz4\0" "block\0" "1\0"
	    "1\0" "1\0" "32\0" "98\0" "94\0" "50\0" "0");
	CFG("bad-wmarks", "LOW_WMARK=98\0HIGH_WMARK=98");
	CFG("bad-readahead", "READAHEAD=257");
	CFG("bad-limit", "LIMIT=63K");
	CFG("bad-suffix", "LIMIT=64KiBx");
	CFG("bad-backend", "BACKEND=zram2");
	CFG("sizes", "LIMIT=16777215T\0POOL_CAP=18446744073709551615");
	CFG("verbose", "VERBOSE=1\0LZ4_ACCEL=65537");
}

static void engine(void)
{
	/* first byte: limit (16 + b % 64 pages); ops (k % 16): 0 write(p,
	 * kind), 2 poke(p, off16, v), 3 read(p), 4 read byte, 5 stream read
	 * (a, n, short), 6 stream write(kind, a, n, short), 7 discard, 8
	 * pageout, 10 prefetch, 11 set_limit, 12 parallel(mode, rounds, kind,
	 * a, n, short), 13 validate, 14 delay(point, us), 15 misuse */
	PUT("engine", "write-read", 0,
	    0, 1, 3,  0, 2, 4,  0, 3, 0,  3, 1,  3, 2,  3, 3,  8, 0, 8, 0,
	    3, 1,  2, 2, 16, 0, 0x77,  3, 2);
	PUT("engine", "streams", 0,
	    6, 3, 0, 63, 0,  5, 0, 63, 0,  8, 0, 63, 0,  5, 0, 63, 0,  13);
	PUT("engine", "discard-pageout-prefetch", 16,
	    6, 4, 0, 40, 0,  8, 0, 40, 0,  10, 8, 16, 0,  7, 4, 8, 0,  5, 0, 40, 0,
	    7, 30, 33, 0,  5, 0, 63, 0);
	PUT("engine", "chunk-edge", 8,
	    6, 3, 28, 8, 0,  8, 28, 8, 0,  7, 30, 4, 0,  5, 28, 8, 0);
	PUT("engine", "limits", 0,
	    6, 3, 0, 63, 0,  11, 0,  11, 70,  5, 0, 63, 0,  11, 5,  15, 4,  13);
	PUT("engine", "parallel", 0,
	    6, 3, 0, 31, 0,  12, 0, 2, 3, 0, 31, 0,  12, 1, 1, 4, 0, 31, 0,
	    12, 2, 1, 3, 0, 15, 0,  12, 3, 0, 4, 16, 15, 0,  5, 0, 63, 0);
	PUT("engine", "delays", 4,
	    14, 3, 50,  6, 3, 0, 20, 0,  8, 0, 20, 0,  12, 0, 1, 3, 0, 20, 0,
	    14, 6, 100,  12, 1, 2, 3, 0, 20, 0,  14, 8, 20,  12, 2, 0, 3, 0, 20, 0);
	PUT("engine", "wp-fault", 0,
	    0, 5, 3,  8, 5, 1, 0,  3, 5,  2, 5, 0, 1, 0x42,  8, 5, 1, 0,  3, 5);
	PUT("engine", "misuse", 0, 15, 0, 15, 1, 15, 2, 15, 3, 15, 4, 15, 5);
}

int main(int argc, char **argv)
{
	root = argc > 1 ? argv[1] : "fuzz/corpus";
	mkdir(root, 0755);
	pool();
	zbackend();
	decompress();
	config();
	engine();
	return 0;
}

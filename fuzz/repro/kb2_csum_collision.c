/*
 * KB2: the page checksum misses a whole class of errors, so a corrupted
 * compressed object loads as wrong data with status 0.
 *
 * page_csum() runs four CRC32C streams over interleaved 8-byte words
 * (stream k takes words 4i+k) and folds them with
 *     f = crc32c(crc32c(~0, s0 | s1 << 32), s2 | s3 << 32).
 * An identical error E in words 4p+2 and 4p+4 (16 bytes apart) sits at
 * position p of stream 2 and p+1 of stream 0: one word (x^64) closer to the
 * end of its stream, so ds2 = ds0 * x^64.  The fold multiplies s0's change
 * by x^64 (one 64-bit step) before it adds s2's: they cancel, f is
 * unchanged.
 * Likewise words 4p+3 and 4p+5 (s3, s1).  So every pair of identical
 * errors 16 bytes apart that starts in the second half of a 32-byte group
 * is invisible, and so is any run of them with period 16 that starts at a
 * word = 2 or 3 (mod 4) and has an even count.  That is exactly what LZ77
 * decoding makes of one corrupted literal that a match at offset 16 copies.
 *
 * Part 1 shows the blind spot on the checksum alone; part 2 corrupts one
 * byte of a stored object (the literal of a 16-byte pattern repeated 4
 * times) and the compressed backend returns the wrong page with 0.
 *
 * Build and run (from the repository root):
 *   clang -std=gnu11 -D_GNU_SOURCE -Iinclude -Isrc fuzz/repro/kb2_csum_collision.c \
 *       src/compress.c src/zbackend.c src/pool.c -o /tmp/kb2 -llz4 -lzstd -lpthread && /tmp/kb2
 * Expected with the bug: "undetected" counts of 100% in part 1 and
 * "load returned 0 with N wrong bytes" in part 2; exit status 1.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "compress.h"
#include "fbackend.h"

static int part1(void)
{
	static unsigned char pg[4096];
	int miss = 0, total = 0;

	srand(1);
	for (int i = 0; i < 4096; i++)
		pg[i] = (unsigned char)rand();
	uint32_t c0 = page_csum(pg);
	for (int w = 2; w + 2 < 512; w += 4)	/* words 4p+2 and 4p+4 */
		for (int bit = 0; bit < 64; bit++) {
			pg[w * 8 + bit / 8] ^= (unsigned char)(1 << (bit % 8));
			pg[(w + 2) * 8 + bit / 8] ^= (unsigned char)(1 << (bit % 8));
			miss += page_csum(pg) == c0;
			total++;
			pg[w * 8 + bit / 8] ^= (unsigned char)(1 << (bit % 8));
			pg[(w + 2) * 8 + bit / 8] ^= (unsigned char)(1 << (bit % 8));
		}
	printf("part 1: same bit flipped in words 4p+2 and 4p+4: %d of %d undetected\n",
	       miss, total);
	return miss > 0;
}

static int part2(int compressor, int level)
{
	static unsigned char page[4096], out[4096], comp[4096];
	struct uswap_zconfig zc = { compressor, level, level, 0 };
	struct uswap_backend *b = uswap_zbackend_create(&zc);
	struct uswap_bctx *ctx = b->ops->ctx_create(b);
	struct uswap_codec *c = codec_create(compressor, level);
	unsigned char pat[16];
	uint32_t slot;
	int n, bad = 0, err;

	/* zeros, and at byte 1360 (word 170 = 4*42+2) a 16-byte pattern
	 * repeated 4 times: compressed as 16 literals + a match at offset 16 */
	for (int i = 0; i < 16; i++)
		pat[i] = (unsigned char)(0x41 + i * 7);
	for (int r = 0; r < 4; r++)
		memcpy(page + 1360 + 16 * r, pat, 16);
	if (b->ops->store(b, ctx, page, &slot))
		return 0;
	n = codec_compress(c, page, comp, 3072);
	unsigned char *lit = memmem(comp, (size_t)n, pat, 16);
	if (!lit) {
		printf("part 2 (%s): literal not found in the object\n", codec_name(compressor));
		return 0;
	}
	/* one corrupted byte of the object: the first literal of the pattern */
	uswap_zbackend_corrupt(b, slot, (size_t)(lit - comp), 0x04);
	err = b->ops->load(b, ctx, slot, out);
	for (int i = 0; i < 4096; i++)
		bad += out[i] != page[i];
	printf("part 2 (%s level %d): object of %d bytes, byte %td flipped: load returned %d "
	       "with %d wrong bytes (checksum %08x, original %08x)\n",
	       codec_name(compressor), level, n, lit - comp, err, bad, page_csum(out),
	       page_csum(page));
	return err == 0 && bad > 0;
}

int main(void)
{
	int hit = part1();

	hit |= part2(USWAP_COMP_LZ4, 1);
	hit |= part2(USWAP_COMP_ZSTD, 1);
	return hit ? 1 : 0;
}

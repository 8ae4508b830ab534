/*
 * compress.c - page classification, page checksum, LZ4 and zstd codecs.
 *
 * The codecs wrap the libraries' one-shot calls with per-context state so
 * that the store/load paths never allocate:
 *   LZ4:  one LZ4_stream_t per context, reset with LZ4_resetStream_fast()
 *         before each page (no history, no 16 KiB re-initialisation) and
 *         LZ4_compress_fast_continue(); LZ4_decompress_safe() (no state).
 *   zstd: one ZSTD_CCtx and one ZSTD_DCtx per context.  ZSTD_CCtx sizes its
 *         workspace lazily on the first compression, so codec_create()
 *         compresses one page to get that allocation out of the way; the
 *         parameters never change afterwards (same level, same 4 KiB input),
 *         so the workspace is reused as is.
 * Decompression succeeds only when exactly one page comes out.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <lz4.h>
#include <zstd.h>
#include <zstd_errors.h>

#include "backend.h"
#include "compress.h"

#define PAGE_WORDS (USWAP_PAGE_SIZE / sizeof(uint64_t))

/* ------------------------------------------------------ classification */

static inline uint64_t load64(const unsigned char *p)
{
	uint64_t w;

	memcpy(&w, p, sizeof(w));
	return w;
}

int page_same_filled(const void *page, uint64_t *word)
{
	const unsigned char *p = page;
	uint64_t first = load64(p);

	/* cheap reject: the last word differs in most pages that the first
	 * 64 bytes did not already reject */
	if (load64(p + USWAP_PAGE_SIZE - 8) != first)
		return 0;
	for (size_t off = 0; off < USWAP_PAGE_SIZE; off += 64) {
		uint64_t diff = 0;

		/* branch once per cache line; the compiler vectorises this */
		for (size_t i = 0; i < 64; i += 8)
			diff |= load64(p + off + i) ^ first;
		if (diff)
			return 0;
	}
	*word = first;
	return 1;
}

void page_fill_word(void *page, uint64_t word)
{
	unsigned char *p = page;

	if (word == (word & 0xff) * 0x0101010101010101ull) {
		memset(p, (int)(word & 0xff), USWAP_PAGE_SIZE);
		return;
	}
	for (size_t off = 0; off < USWAP_PAGE_SIZE; off += 8)
		memcpy(p + off, &word, sizeof(word));
}

/* ------------------------------------------------------------ checksum */

#define CRC32C_POLY 0x82f63b78u	/* reflected Castagnoli polynomial */

static uint32_t crc_table[8][256];	/* written once under crc_once */
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_table_init(void)
{
	for (unsigned i = 0; i < 256; i++) {
		uint32_t c = i;

		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (CRC32C_POLY & (0u - (c & 1)));
		crc_table[0][i] = c;
	}
	for (unsigned i = 0; i < 256; i++)
		for (int t = 1; t < 8; t++)
			crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^
					  crc_table[0][crc_table[t - 1][i] & 0xff];
}

/* CRC32C of one little-endian 8-byte word, as the crc32q instruction. */
static inline uint32_t crc_u64_soft(uint32_t crc, uint64_t w)
{
	w ^= crc;
	return crc_table[7][w & 0xff] ^ crc_table[6][(w >> 8) & 0xff] ^
	       crc_table[5][(w >> 16) & 0xff] ^ crc_table[4][(w >> 24) & 0xff] ^
	       crc_table[3][(w >> 32) & 0xff] ^ crc_table[2][(w >> 40) & 0xff] ^
	       crc_table[1][(w >> 48) & 0xff] ^ crc_table[0][w >> 56];
}

/*
 * Combine the four stream CRCs.  Not with another CRC: that is linear, and
 * the same error in words 4p+2 and 4p+4 (one stream apart, one group
 * apart) shifts into exactly the same place in both streams' terms and
 * cancels (found by fuzz_decompress: an LZ4 match at offset 16 copies a
 * corrupted literal into just that pattern).  A non-linear mixer of each
 * pair keeps a multi-stream error from cancelling except by 2^-32 chance;
 * each stream alone is a CRC, so an error confined to one is always seen.
 */
static inline uint64_t csum_mix(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static inline uint32_t csum_combine(uint32_t a, uint32_t b, uint32_t c, uint32_t d)
{
	uint64_t h = csum_mix(a | (uint64_t)b << 32) ^
		     csum_mix((c | (uint64_t)d << 32) + 0x9e3779b97f4a7c15ull);

	return (uint32_t)(h ^ (h >> 32));
}

uint32_t page_csum_soft(const void *page)
{
	const unsigned char *p = page;
	uint32_t s[4] = { ~0u, ~0u, ~0u, ~0u };

	pthread_once(&crc_once, crc_table_init);
	for (size_t i = 0; i < PAGE_WORDS; i += 4)
		for (int k = 0; k < 4; k++)
			s[k] = crc_u64_soft(s[k], load64(p + (i + k) * 8));
	return csum_combine(s[0], s[1], s[2], s[3]);
}

#if defined(__x86_64__)
#include <nmmintrin.h>

/* Four independent streams: crc32q has a latency of 3 cycles and a
 * throughput of 1, so one stream would run at a third of the speed. */
__attribute__((target("sse4.2"))) static uint32_t page_csum_hw(const void *page)
{
	const unsigned char *p = page;
	uint64_t a = ~0u, b = ~0u, c = ~0u, d = ~0u;

	for (size_t i = 0; i < PAGE_WORDS; i += 4) {
		a = _mm_crc32_u64(a, load64(p + i * 8));
		b = _mm_crc32_u64(b, load64(p + i * 8 + 8));
		c = _mm_crc32_u64(c, load64(p + i * 8 + 16));
		d = _mm_crc32_u64(d, load64(p + i * 8 + 24));
	}
	return csum_combine((uint32_t)a, (uint32_t)b, (uint32_t)c, (uint32_t)d);
}

uint32_t page_csum(const void *page)
{
	if (__builtin_cpu_supports("sse4.2"))
		return page_csum_hw(page);
	return page_csum_soft(page);
}
#else
uint32_t page_csum(const void *page)
{
	return page_csum_soft(page);
}
#endif

/* --------------------------------------------------------------- codecs */

struct uswap_codec {
	int compressor;		/* USWAP_COMP_*: constant */
	int level;		/* acceleration or zstd level: constant */
	LZ4_stream_t *lz4_state;	/* LZ4 */
	ZSTD_CCtx *cctx;	/* zstd */
	ZSTD_DCtx *dctx;	/* zstd */
};

const char *codec_name(int compressor)
{
	switch (compressor) {
	case USWAP_COMP_LZ4:
		return "lz4";
	case USWAP_COMP_ZSTD:
		return "zstd";
	}
	return NULL;
}

int codec_check(int compressor, int level)
{
	if (compressor == USWAP_COMP_LZ4 && level >= 1)
		return 0;
	if (compressor == USWAP_COMP_ZSTD && level >= ZSTD_minCLevel() &&
	    level <= ZSTD_maxCLevel())
		return 0;
	return -EINVAL;
}

/* One compression and decompression so the contexts are sized now. */
static int codec_warm_up(struct uswap_codec *c)
{
	unsigned char page[USWAP_PAGE_SIZE], out[USWAP_PAGE_SIZE];
	int n;

	for (size_t i = 0; i < sizeof(page); i++)
		page[i] = (unsigned char)(i * 7 + (i >> 5));
	n = codec_compress(c, page, out, sizeof(out));
	/* At high LZ4 acceleration this page may not fit (-E2BIG): the
	 * context is sized all the same, and such pages are stored raw. */
	if (n == -E2BIG)
		return 0;
	if (n < 0 || codec_decompress(c, out, (size_t)n, page))
		return -ENOMEM;
	return 0;
}

struct uswap_codec *codec_create(int compressor, int level)
{
	struct uswap_codec *c;

	if (codec_check(compressor, level)) {
		errno = EINVAL;
		return NULL;
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		goto nomem;
	c->compressor = compressor;
	c->level = level;
	if (compressor == USWAP_COMP_LZ4) {
		/* malloc's alignment (16) covers LZ4's 8-byte requirement */
		c->lz4_state = LZ4_createStream();
		if (!c->lz4_state)
			goto nomem;
	} else {
		c->cctx = ZSTD_createCCtx();
		c->dctx = ZSTD_createDCtx();
		if (!c->cctx || !c->dctx)
			goto nomem;
	}
	if (codec_warm_up(c))
		goto nomem;
	return c;
nomem:
	codec_destroy(c);
	errno = ENOMEM;
	return NULL;
}

void codec_destroy(struct uswap_codec *c)
{
	if (!c)
		return;
	LZ4_freeStream(c->lz4_state);
	ZSTD_freeCCtx(c->cctx);
	ZSTD_freeDCtx(c->dctx);
	free(c);
}

static int lz4_compress(struct uswap_codec *c, const void *page, void *dst,
			size_t dst_cap)
{
	int cap = dst_cap > (size_t)LZ4_compressBound(USWAP_PAGE_SIZE) ?
		  LZ4_compressBound(USWAP_PAGE_SIZE) : (int)dst_cap;
	/* A stream reset "fast" keeps its tables (no 16 KiB memset per page,
	 * ~200 ns of a ~2.3 us store) and drops any history, so each page is
	 * still an independent block for LZ4_decompress_safe(). */
	LZ4_resetStream_fast(c->lz4_state);
	int n = LZ4_compress_fast_continue(c->lz4_state, page, dst,
					   USWAP_PAGE_SIZE, cap, c->level);

	/* 0 = did not fit (limited-output mode stops as soon as it knows) */
	return n > 0 ? n : -E2BIG;
}

static int zstd_compress(struct uswap_codec *c, const void *page, void *dst,
			 size_t dst_cap)
{
	size_t n = ZSTD_compressCCtx(c->cctx, dst, dst_cap, page,
				     USWAP_PAGE_SIZE, c->level);

	if (!ZSTD_isError(n))
		return (int)n;
	return ZSTD_getErrorCode(n) == ZSTD_error_dstSize_tooSmall ? -E2BIG
								    : -EIO;
}

int codec_compress(struct uswap_codec *c, const void *page, void *dst,
		   size_t dst_cap)
{
	if (c->compressor == USWAP_COMP_LZ4)
		return lz4_compress(c, page, dst, dst_cap);
	return zstd_compress(c, page, dst, dst_cap);
}

int codec_decompress(struct uswap_codec *c, const void *src, size_t src_len,
		     void *page)
{
	if (src_len == 0 || src_len > INT_MAX)
		return -EIO;
	if (c->compressor == USWAP_COMP_LZ4) {
		int n = LZ4_decompress_safe(src, page, (int)src_len,
					    USWAP_PAGE_SIZE);

		return n == (int)USWAP_PAGE_SIZE ? 0 : -EIO;
	} else {
		size_t n = ZSTD_decompressDCtx(c->dctx, page, USWAP_PAGE_SIZE,
					       src, src_len);

		return !ZSTD_isError(n) && n == USWAP_PAGE_SIZE ? 0 : -EIO;
	}
}

/*
 * compress.h - what a page is made of, and the codecs that shrink it.
 *
 * Contract, for every function: page buffers are USWAP_PAGE_SIZE bytes
 * (any alignment); other buffers are as long as their length argument says.
 * Functions return 0 (or a length) or -errno.  A codec is used by one
 * thread at a time; nothing but codec_create() allocates memory.
 */
#ifndef USWAP_COMPRESS_H
#define USWAP_COMPRESS_H

#include <stddef.h>
#include <stdint.h>

/* True when @page is one 8-byte word repeated (zero included); the word
 * goes to *word.  Looks at the first and last words first: most pages
 * that are not same-filled are rejected within 64 bytes. */
int page_same_filled(const void *page, uint64_t *word);

/* Fill @page with @word repeated (the inverse of page_same_filled). */
void page_fill_word(void *page, uint64_t word);

/*
 * 32-bit checksum of a page: CRC32C (Castagnoli) of four interleaved 8-byte
 * streams, folded by a CRC32C of the four results.  Each stream detects any
 * error burst up to 32 bits; the four run in parallel on the SSE4.2 crc32
 * instruction (~0.1-0.2 us per page), with a table fallback giving the
 * same value.  Not the standard CRC32C of the page.
 */
uint32_t page_csum(const void *page);
uint32_t page_csum_soft(const void *page);	/* portable, same value */

struct uswap_codec;

/*
 * A codec context: @compressor is USWAP_COMP_LZ4 (@level = acceleration,
 * >= 1) or USWAP_COMP_ZSTD (@level = zstd level, ZSTD_minCLevel() ..
 * ZSTD_maxCLevel()).  Allocates the LZ4 state or the zstd contexts, and
 * warms them up so that later calls do not allocate.  NULL + errno
 * (EINVAL, ENOMEM).
 */
struct uswap_codec *codec_create(int compressor, int level);
/* 0 if codec_create() would accept @compressor and @level, else -EINVAL. */
int codec_check(int compressor, int level);
void codec_destroy(struct uswap_codec *c);

/*
 * Compress one page into @dst (@dst_cap bytes).  The compressed length
 * (> 0), -E2BIG when the result would not fit in @dst_cap (a small @dst_cap
 * makes incompressible pages fail fast), -EIO on a codec error.
 */
int codec_compress(struct uswap_codec *c, const void *page, void *dst,
		   size_t dst_cap);

/*
 * Decompress @src_len bytes into @page.  0, or -EIO unless the input is
 * well formed and decodes to exactly USWAP_PAGE_SIZE bytes.  Never writes
 * outside @page; @page is unspecified after an error.
 */
int codec_decompress(struct uswap_codec *c, const void *src, size_t src_len,
		     void *page);

/* "lz4", "zstd", or NULL for an unknown compressor. */
const char *codec_name(int compressor);

#endif

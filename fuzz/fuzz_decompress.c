/*
 * fuzz_decompress.c - corrupted objects and arbitrary codec input.
 *
 * First byte % 4 picks the mode:
 *  0, 1  raw: the rest of the input goes to codec_decompress() as an LZ4
 *        block (0) or a zstd frame (1), from an exactly sized heap buffer
 *        into an exactly sized 4096-byte page (ASan sees any read past the
 *        input or write past the page).  It must return 0 or -EIO; when it
 *        returns 0, the reference decoder (liblz4 / libzstd with a 3-page
 *        output buffer) must produce exactly 4096 bytes, the same ones; for
 *        zstd the converse too (a frame of exactly 4096 bytes is accepted).
 *  2, 3  corrupt: store a page (kinds of fuzz_common.h, or bytes of the
 *        input) in a compressed backend (lz4 or zstd, several levels), then
 *        flip up to 8 bytes of its stored object (offset and mask from the
 *        input) with uswap_zbackend_corrupt(), and load: the load must
 *        return -EIO or exactly the original page, never other data.  The
 *        same flips are applied to an exactly sized heap copy of the
 *        compressed object (re-compressed here by a codec in the same state
 *        as the backend's context: both fresh; its length must equal the
 *        stored one) and fed to
 *        codec_decompress() (0 or -EIO, no out-of-bounds access).  Then the
 *        flips are undone and the page must load exactly again; a
 *        same-filled page has no object (-ENODATA) and must load intact.
 */
#include <errno.h>
#include <lz4.h>
#include <zstd.h>

#include "fuzz_common.h"
#include "backend.h"
#include "compress.h"
#include "fbackend.h"

#define MAX_FLIPS 8

static struct uswap_codec *raw_codec[2];
struct bk {
	int comp, level;
	struct uswap_backend *b;
	struct uswap_bctx *ctx;
	struct uswap_codec *codec;	/* same compressor and level */
};
static struct bk bks[] = {
	{ USWAP_COMP_LZ4, 1, 0, 0, 0 }, { USWAP_COMP_LZ4, 9, 0, 0, 0 },
	{ USWAP_COMP_ZSTD, 1, 0, 0, 0 }, { USWAP_COMP_ZSTD, -5, 0, 0, 0 },
	{ USWAP_COMP_ZSTD, 9, 0, 0, 0 },
};
#define NBK (sizeof(bks) / sizeof(bks[0]))

static uint8_t *page_out;		/* malloc(4096): exact bounds for ASan */
static uint8_t ref[3 * FZ_PAGE];
static uint8_t orig[FZ_PAGE], comp[FZ_PAGE];

static void setup(void)
{
	if (page_out)
		return;
	page_out = malloc(FZ_PAGE);
	raw_codec[0] = codec_create(USWAP_COMP_LZ4, 1);
	raw_codec[1] = codec_create(USWAP_COMP_ZSTD, 1);
	FZ_CHECK(page_out && raw_codec[0] && raw_codec[1], "setup");
	for (unsigned i = 0; i < NBK; i++) {
		struct uswap_zconfig zc = { .compressor = bks[i].comp,
					    .lz4_accel = bks[i].level,
					    .zstd_level = bks[i].level };

		bks[i].b = uswap_zbackend_create(&zc);
		FZ_CHECK(bks[i].b, "zbackend_create");
	}
}

static void raw_mode(int zstd, const uint8_t *src, size_t len)
{
	uint8_t *in = malloc(len ? len : 1);
	int err;

	memcpy(in, src, len);
	memset(page_out, 0xa5, FZ_PAGE);
	err = codec_decompress(raw_codec[zstd], in, len, page_out);
	FZ_CHECK(err == 0 || err == -EIO, "codec_decompress returned %d", err);

	long n;
	if (!zstd) {
		n = len ? LZ4_decompress_safe((const char *)in, (char *)ref, (int)len,
					      (int)sizeof(ref)) : -1;
	} else {
		size_t r = ZSTD_decompress(ref, sizeof(ref), in, len);

		n = ZSTD_isError(r) ? -1 : (long)r;
	}
	if (err == 0) {
		FZ_CHECK(n == FZ_PAGE, "%s: codec accepted input that decodes to %ld bytes",
			 zstd ? "zstd" : "lz4", n);
		FZ_CHECK(!memcmp(ref, page_out, FZ_PAGE), "%s: codec output differs",
			 zstd ? "zstd" : "lz4");
	} else if (zstd) {
		FZ_CHECK(n != FZ_PAGE, "zstd: a frame of exactly one page was refused");
	}
	free(in);
}

static void corrupt_mode(struct fz *f)
{
	uint8_t h = fz_u8(f), kind = fz_u8(f);
	unsigned param = fz_u16(f), nflips = fz_u8(f) % (MAX_FLIPS + 1);
	struct bk *k = &bks[h % NBK];
	struct { uint16_t off; uint8_t mask; } flips[MAX_FLIPS];
	struct uswap_zslot_info in;
	uint32_t slot;
	int err, n;

	for (unsigned i = 0; i < nflips; i++) {
		flips[i].off = fz_u16(f);
		flips[i].mask = fz_u8(f);
	}
	if (kind & 0x80) {	/* the page is the rest of the input */
		size_t got;
		const uint8_t *p = fz_bytes(f, FZ_PAGE, &got);

		memset(orig, (int)(param & 0xff), FZ_PAGE);
		memcpy(orig, p, got);
	} else {
		size_t got;
		const uint8_t *p = fz_bytes(f, FZ_PAGE, &got);

		fz_page(orig, kind, param * 0x9e3779b1u + h, param, p, got);
	}

	/* Fresh contexts for the backend and for the re-compression here: an
	 * LZ4 stream reset with LZ4_resetStream_fast() keeps its hash table,
	 * so its output (not its decodability) depends on the pages it
	 * compressed before; from the same state both give the same bytes. */
	k->ctx = k->b->ops->ctx_create(k->b);
	k->codec = codec_create(k->comp, k->level);
	FZ_CHECK(k->ctx && k->codec, "contexts");
	err = k->b->ops->store(k->b, k->ctx, orig, &slot);
	FZ_CHECK(err == 0, "store: %d", err);
	FZ_CHECK(uswap_zbackend_slot_info(k->b, slot, &in) == 0, "slot_info");
	if (in.kind == USWAP_ZSLOT_SAME) {
		FZ_CHECK(uswap_zbackend_corrupt(k->b, slot, 0, 1) == -ENODATA,
			 "corrupt of a same-filled slot");
		nflips = 0;
	} else {
		FZ_CHECK(uswap_zbackend_corrupt(k->b, slot, in.len, 1) == -EINVAL,
			 "corrupt past the object");
	}
	if (in.kind == USWAP_ZSLOT_COMP) {
		n = codec_compress(k->codec, orig, comp, FZ_PAGE * 3 / 4);
		FZ_CHECK(n == (int)in.len, "re-compressed to %d bytes, stored %zu", n, in.len);
	} else if (in.kind == USWAP_ZSLOT_RAW) {
		memcpy(comp, orig, FZ_PAGE);
	}

	for (unsigned i = 0; i < nflips; i++) {
		size_t off = flips[i].off % in.len;

		FZ_CHECK(uswap_zbackend_corrupt(k->b, slot, off, flips[i].mask) == 0,
			 "corrupt");
		comp[off] ^= flips[i].mask;
	}
	memset(page_out, 0x5a, FZ_PAGE);
	err = k->b->ops->load(k->b, k->ctx, slot, page_out);
	FZ_CHECK(err == 0 || err == -EIO, "load of a corrupted object: %d", err);
	if (err == 0 && memcmp(page_out, orig, FZ_PAGE) &&
	    !fz_known_bug("KB2", page_csum(page_out) == page_csum(orig))) {
		unsigned i = 0;

		while (page_out[i] == orig[i])
			i++;
		FZ_CHECK(0, "corrupted %s object (level %d, len %zu, %u flips) loaded "
			 "as wrong data: byte %u is %#x, was %#x",
			 in.kind == USWAP_ZSLOT_RAW ? "raw" : "compressed", k->level,
			 in.len, nflips, i, page_out[i], orig[i]);
	}
	if (in.kind == USWAP_ZSLOT_COMP) {
		uint8_t *src = malloc(in.len);

		memcpy(src, comp, in.len);
		err = codec_decompress(k->codec, src, in.len, page_out);
		FZ_CHECK(err == 0 || err == -EIO, "codec_decompress: %d", err);
		free(src);
	}

	/* undo (XOR again, in reverse), then it must load intact */
	for (unsigned i = nflips; i-- > 0;)
		FZ_CHECK(uswap_zbackend_corrupt(k->b, slot, flips[i].off % in.len,
						flips[i].mask) == 0, "uncorrupt");
	err = k->b->ops->load(k->b, k->ctx, slot, page_out);
	FZ_CHECK(err == 0 && !memcmp(page_out, orig, FZ_PAGE),
		 "restored object does not load intact: %d", err);
	k->b->ops->free(k->b, k->ctx, slot);
	k->b->ops->ctx_destroy(k->b, k->ctx);
	codec_destroy(k->codec);

	struct uswap_backend_stats st;
	k->b->ops->stats(k->b, &st);
	FZ_CHECK(st.stored_pages == 0, "slots left");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz f = { data, size };
	uint8_t mode;

	setup();
	if (!size)
		return 0;
	mode = fz_u8(&f);
	if (mode % 4 < 2)
		raw_mode(mode % 4, f.p, f.n);
	else
		corrupt_mode(&f);
	return 0;
}

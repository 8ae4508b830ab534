/*
 * test_zbackend.c - the compressed backend ("zram") and its pieces: page
 * classification, checksum, codecs, every page kind with LZ4 and zstd,
 * reference counts, the I1 abort, memory efficiency on ~2.3x data,
 * corruption (always -EIO, never wrong data), fault injection, the cap,
 * no malloc on the data paths, and four threads sharing slots.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <lz4.h>
#include <zstd.h>

#include "backend.h"
#include "compress.h"
#include "fbackend.h"
#include "test.h"

#define PAGE USWAP_PAGE_SIZE
#define MiB ((size_t)1 << 20)

static unsigned scale = 1;	/* USWAP_TEST_SCALE: divide the work */

static uint64_t rnd(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545f4914f6cdd1dull;
}

static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	x ^= x >> 33;
	return x;
}

static double now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e9 + t.tv_nsec;
}

static void rand_bytes(unsigned char *p, size_t n, uint64_t *s)
{
	size_t i = 0;
	uint64_t w;

	for (; i + 8 <= n; i += 8) {
		w = rnd(s);
		memcpy(p + i, &w, 8);
	}
	w = rnd(s);
	memcpy(p + i, &w, n - i);
}

/*
 * "Realistic" page, ~2.27x with LZ4 (1740-1890 bytes, like the data in
 * performance-floor.md): 1030-1130 random bytes, 600 bytes of text-like
 * low-entropy symbols (which zstd's entropy coder shrinks and LZ4 cannot),
 * then a repeated 64-byte record with the page index stamped every 512 B.
 */
static void gen_real(unsigned char *p, uint64_t idx, uint64_t seed)
{
	static const char tmpl[64] =
		"struct record { u32 key; u32 flags; char name[16]; } = {0};\n";
	uint64_t s = mix(idx * 0x9e3779b97f4a7c15ull ^ seed) | 1;
	size_t nrand = 1030 + rnd(&s) % 100, off = 0;

	rand_bytes(p, nrand, &s);
	off = nrand;
	for (size_t i = 0; i < 600; i++)
		p[off + i] = "etaoinshrdlucmfw"[rnd(&s) >> 60];
	off += 600;
	for (size_t k = 0; off < PAGE; k++) {
		size_t n = PAGE - off < 64 ? PAGE - off : 64;

		memcpy(p + off, tmpl, n);
		if (k % 8 == 0 && n >= 16) {
			memcpy(p + off, &idx, 8);
			memcpy(p + off + 8, &seed, 8);
		}
		off += n;
	}
}

/* A page fully determined by @id: 1/8 zero, 1/8 same-filled, 1/8 random
 * (stored raw), 5/8 realistic. */
static void gen_by_id(unsigned char *p, uint32_t id)
{
	uint64_t s = mix(id) | 1;

	switch (id % 8) {
	case 0:
		memset(p, 0, PAGE);
		break;
	case 1:
		page_fill_word(p, mix(id + 1));
		break;
	case 2:
		rand_bytes(p, PAGE, &s);
		break;
	default:
		gen_real(p, id, 0x5eed);
	}
}

static struct uswap_backend *mk(int compressor, int level, size_t cap)
{
	struct uswap_zconfig cfg = {
		.compressor = compressor,
		.lz4_accel = compressor == USWAP_COMP_LZ4 ? level : 1,
		.zstd_level = compressor == USWAP_COMP_ZSTD ? level : 1,
		.pool_cap = cap,
	};
	struct uswap_backend *b = uswap_zbackend_create(&cfg);

	if (!b)
		T_FAIL("uswap_zbackend_create: %s", strerror(errno));
	return b;
}

#define OPS(b) ((b)->ops)

static void stats(struct uswap_backend *b, struct uswap_backend_stats *st)
{
	OPS(b)->stats(b, st);
}


/* ------------------------------------------------------------- pieces */

static void t_same_filled(void)
{
	unsigned char p[PAGE];
	uint64_t w = 0, words[] = { 0, 0xdeadbeefcafebabeull, ~0ull,
				    0x5a5a5a5a5a5a5a5aull };

	for (size_t k = 0; k < sizeof(words) / sizeof(words[0]); k++) {
		page_fill_word(p, words[k]);
		T_ASSERT(page_same_filled(p, &w));
		T_EQ(w, words[k]);
		/* one differing byte anywhere breaks it */
		for (size_t i = 0; i < PAGE; i += 7) {
			p[i] ^= 1;
			T_ASSERT(!page_same_filled(p, &w));
			p[i] ^= 1;
		}
	}
	/* a 4-byte pattern is an 8-byte word too; a 3-byte one is not */
	for (size_t i = 0; i < PAGE; i++)
		p[i] = (unsigned char)(i % 4);
	T_ASSERT(page_same_filled(p, &w));
	for (size_t i = 0; i < PAGE; i++)
		p[i] = (unsigned char)(i % 3);
	T_ASSERT(!page_same_filled(p, &w));
}

static void t_checksum(void)
{
	unsigned char p[PAGE];
	uint64_t s = 1;
	uint32_t c;
	double t0, t1;
	enum { N = 20000 };
	volatile uint32_t sink = 0;

	for (int r = 0; r < 50; r++) {
		rand_bytes(p, PAGE, &s);
		T_EQ(page_csum(p), page_csum_soft(p));
	}
	/* every single-bit flip of a page changes the checksum */
	gen_real(p, 3, 4);
	c = page_csum(p);
	for (size_t bit = 0; bit < PAGE * 8; bit += 3) {
		p[bit / 8] ^= (unsigned char)(1u << (bit % 8));
		T_ASSERT(page_csum(p) != c);
		p[bit / 8] ^= (unsigned char)(1u << (bit % 8));
	}
	t0 = now_ns();
	for (int i = 0; i < N; i++) {
		p[i % PAGE] ^= 1;
		sink += page_csum(p);
	}
	t1 = now_ns();
	fprintf(stderr, "    page_csum: %.0f ns/page", (t1 - t0) / N);
	t0 = now_ns();
	for (int i = 0; i < N / 10; i++) {
		p[i % PAGE] ^= 1;
		sink += page_csum_soft(p);
	}
	t1 = now_ns();
	fprintf(stderr, " (table fallback %.0f ns)\n", (t1 - t0) / (N / 10));
	(void)sink;
}

static void t_codecs(void)
{
	unsigned char p[PAGE], out[PAGE], back[PAGE];
	int comps[] = { USWAP_COMP_LZ4, USWAP_COMP_ZSTD };

	for (int k = 0; k < 2; k++) {
		struct uswap_codec *c = codec_create(comps[k], 1);
		uint64_t s = 9;
		int n;

		T_ASSERT(c);
		gen_real(p, 1, 2);
		n = codec_compress(c, p, out, sizeof(out));
		T_ASSERT(n > 0 && n < 2048);
		T_EQ(codec_decompress(c, out, (size_t)n, back), 0);
		T_ASSERT(!memcmp(p, back, PAGE));
		/* truncated or over-long input never passes as a page */
		T_EQ(codec_decompress(c, out, (size_t)n - 1, back), -EIO);
		T_EQ(codec_decompress(c, out, 0, back), -EIO);
		/* random data does not fit 3/4 of a page */
		rand_bytes(p, PAGE, &s);
		T_EQ(codec_compress(c, p, out, PAGE * 3 / 4), -E2BIG);
		/* valid streams of 100 and 5000 bytes are refused */
		for (size_t len = 100; len <= 5000; len += 4900) {
			static unsigned char big[5000];
			unsigned char z[8192];
			size_t m;

			memset(big, 'x', sizeof(big));
			if (comps[k] == USWAP_COMP_LZ4)
				m = (size_t)LZ4_compress_default(
					(char *)big, (char *)z, (int)len,
					sizeof(z));
			else
				m = ZSTD_compress(z, sizeof(z), big, len, 1);
			T_ASSERT(m > 0 && m < sizeof(z));
			T_EQ(codec_decompress(c, z, m, back), -EIO);
		}
		codec_destroy(c);
	}
	errno = 0;
	T_ASSERT(!codec_create(USWAP_COMP_LZ4, 0) && errno == EINVAL);
	T_ASSERT(!codec_create(USWAP_COMP_ZSTD, 1000) && errno == EINVAL);
	T_ASSERT(!codec_create(7, 1) && errno == EINVAL);
}


/* ------------------------------------------------------------ backend */

static const char *cname(int comp)
{
	return codec_name(comp);
}

static void store_ok(struct uswap_backend *b, struct uswap_bctx *cx,
		     const void *page, uint32_t *slot)
{
	int err = OPS(b)->store(b, cx, page, slot);

	if (err)
		T_FAIL("store: %s", strerror(-err));
	T_ASSERT(*slot != 0);
}

static void load_same(struct uswap_backend *b, struct uswap_bctx *cx,
		      uint32_t slot, const void *want)
{
	unsigned char got[PAGE];
	int err = OPS(b)->load(b, cx, slot, got);

	if (err)
		T_FAIL("load of slot %u: %s", slot, strerror(-err));
	if (memcmp(got, want, PAGE))
		T_FAIL("load of slot %u: wrong data", slot);
}

/* Every kind of page, both ways, with the statistics that follow. */
static void kinds(int comp)
{
	struct uswap_backend *b = mk(comp, 1, 0);
	struct uswap_bctx *cx = OPS(b)->ctx_create(b);
	struct uswap_backend_stats st;
	unsigned char pg[6][PAGE];
	int want[6] = { USWAP_ZSLOT_SAME, USWAP_ZSLOT_SAME, USWAP_ZSLOT_SAME,
			USWAP_ZSLOT_RAW, USWAP_ZSLOT_COMP, USWAP_ZSLOT_COMP };
	uint32_t slot[6];
	uint64_t s = 77, compr = 0;
	struct uswap_zslot_info in;

	T_ASSERT(cx);
	memset(pg[0], 0, PAGE);				/* zero */
	page_fill_word(pg[1], 0x0123456789abcdefull);	/* same-filled */
	memset(pg[2], 0xa7, PAGE);			/* same byte */
	rand_bytes(pg[3], PAGE, &s);			/* incompressible */
	gen_real(pg[4], 42, 1);				/* realistic */
	page_fill_word(pg[5], 0x1111);			/* almost same */
	pg[5][PAGE - 1] = 0x22;
	for (int i = 0; i < 6; i++) {
		store_ok(b, cx, pg[i], &slot[i]);
		T_EQ(uswap_zbackend_slot_info(b, slot[i], &in), 0);
		T_EQ(in.kind, want[i]);
		T_EQ(in.count, 1);
		if (in.kind == USWAP_ZSLOT_RAW)
			T_EQ(in.len, PAGE);
		if (in.kind == USWAP_ZSLOT_COMP)
			T_ASSERT(in.len <= PAGE * 3 / 4 && in.obj_size >= in.len &&
				 in.obj_size < in.len + 16);
		compr += in.len;
		T_EQ(OPS(b)->count(b, slot[i]), 1);
	}
	for (int i = 0; i < 6; i++)
		load_same(b, cx, slot[i], pg[i]);
	stats(b, &st);
	T_EQ(st.stored_pages, 6);
	T_EQ(st.stored_orig_bytes, 6 * PAGE);
	T_EQ(st.stored_compr_bytes, compr);
	T_EQ(st.zero_pages, 3);
	T_EQ(st.raw_pages, 1);
	T_EQ(st.store_failures, 0);
	T_ASSERT(st.pool_bytes > compr);
	{
		struct uswap_zslot_info r;

		T_EQ(uswap_zbackend_slot_info(b, slot[4], &r), 0);
		fprintf(stderr, "    %s: realistic page -> %zu bytes (class "
			"%zu), random page raw, 3 same-filled: 0 bytes\n",
			cname(comp), r.len, r.obj_size);
	}
	for (int i = 0; i < 6; i++)
		OPS(b)->free(b, cx, slot[i]);
	stats(b, &st);
	T_EQ(st.stored_pages, 0);
	T_EQ(st.stored_compr_bytes, 0);
	T_EQ(st.zero_pages, 0);
	T_EQ(st.raw_pages, 0);
	OPS(b)->ctx_destroy(b, cx);
	OPS(b)->destroy(b);
}

static void t_kinds(void)
{
	kinds(USWAP_COMP_LZ4);
	kinds(USWAP_COMP_ZSTD);
}

static void t_refcount(void)
{
	struct uswap_backend *b = mk(USWAP_COMP_LZ4, 1, 0);
	struct uswap_bctx *cx = OPS(b)->ctx_create(b);
	unsigned char pg[PAGE], got[PAGE];
	struct uswap_backend_stats st;
	uint32_t s, s2;

	gen_real(pg, 1, 1);
	store_ok(b, cx, pg, &s);
	OPS(b)->dup(b, s);
	OPS(b)->dup(b, s);
	T_EQ(OPS(b)->count(b, s), 3);
	OPS(b)->free(b, cx, s);
	T_EQ(OPS(b)->count(b, s), 2);
	load_same(b, cx, s, pg);
	OPS(b)->free(b, cx, s);
	load_same(b, cx, s, pg);
	stats(b, &st);
	T_EQ(st.stored_pages, 1);	/* dup does not add a page */
	OPS(b)->free(b, cx, s);
	T_EQ(OPS(b)->count(b, s), 0);
	T_EQ(OPS(b)->load(b, cx, s, got), -EIO);	/* free slot */
	T_EQ(OPS(b)->load(b, cx, 0, got), -EIO);	/* never a slot */
	T_EQ(OPS(b)->load(b, cx, UINT32_MAX, got), -EIO);
	T_EQ(OPS(b)->count(b, UINT32_MAX), 0);
	stats(b, &st);
	T_EQ(st.stored_pages, 0);
	store_ok(b, cx, pg, &s2);
	T_EQ(s2, s);			/* the slot was recycled */
	OPS(b)->free(b, cx, s2);
	OPS(b)->ctx_destroy(b, cx);
	OPS(b)->destroy(b);
}

/* Run @fn in a child; it must die of SIGABRT printing @msg. */
static void expect_abort(void (*fn)(struct uswap_backend *, uint32_t),
			 const char *msg)
{
	struct uswap_backend *b = mk(USWAP_COMP_LZ4, 1, 0);
	struct uswap_bctx *cx = OPS(b)->ctx_create(b);
	unsigned char pg[PAGE];
	char out[512] = "";
	int fd[2], status;
	uint32_t s;
	ssize_t n;
	pid_t pid;

	gen_real(pg, 5, 5);
	store_ok(b, cx, pg, &s);
	OPS(b)->free(b, cx, s);
	T_EQ(pipe(fd), 0);
	pid = fork();
	T_ASSERT(pid >= 0);
	if (pid == 0) {
		struct rlimit no_core = { 0, 0 };

		setrlimit(RLIMIT_CORE, &no_core);
		dup2(fd[1], 2);
		fn(b, s);
		_exit(0);
	}
	close(fd[1]);
	for (size_t got = 0; (n = read(fd[0], out + got,
				       sizeof(out) - 1 - got)) > 0;)
		got += (size_t)n, out[got] = 0;
	close(fd[0]);
	T_EQ(waitpid(pid, &status, 0), pid);
	T_ASSERT(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
	{
		char want[128];

		snprintf(want, sizeof(want), msg, s);
		if (!strstr(out, want))
			T_FAIL("abort message \"%s\" lacks \"%s\"", out, want);
		fprintf(stderr, "    aborted with: %s", out);
	}
	OPS(b)->ctx_destroy(b, cx);
	OPS(b)->destroy(b);
}

static void free_free_slot(struct uswap_backend *b, uint32_t s)
{
	OPS(b)->free(b, NULL, s);
}

static void dup_free_slot(struct uswap_backend *b, uint32_t s)
{
	OPS(b)->dup(b, s);
}

static void t_abort_on_free_slot(void)
{
	expect_abort(free_free_slot, "free of free slot %u");
	expect_abort(dup_free_slot, "dup of free slot %u");
}

/* ~64 MiB of realistic pages: compression ratio and memory efficiency. */
static double efficiency(int comp, int level)
{
	size_t n = 64 * MiB / PAGE / scale;
	struct uswap_backend *b = mk(comp, level, 0);
	struct uswap_bctx *cx = OPS(b)->ctx_create(b);
	uint32_t *slot = calloc(n, sizeof(*slot));
	struct uswap_backend_stats st, st0;
	unsigned char pg[PAGE];
	uint64_t classed = 0;
	double ratio, eff;

	T_ASSERT(cx && slot);
	stats(b, &st0);
	for (size_t i = 0; i < n; i++) {
		struct uswap_zslot_info in;

		gen_real(pg, i, 0xface);
		store_ok(b, cx, pg, &slot[i]);
		T_EQ(uswap_zbackend_slot_info(b, slot[i], &in), 0);
		classed += in.obj_size;
	}
	stats(b, &st);
	ratio = (double)st.stored_orig_bytes / (double)st.stored_compr_bytes;
	eff = (double)st.stored_orig_bytes / (double)st.pool_bytes;
	fprintf(stderr, "    %s-%d, %zu MiB: compressed %.0f B/page, in size "
		"classes +%.2f%%, held +%.2f%% more (tails, metadata, slot "
		"table): compression %.3fx, memory efficiency %.3fx\n",
		cname(comp), level, n * PAGE / MiB,
		(double)st.stored_compr_bytes / (double)n,
		100.0 * ((double)classed / (double)st.stored_compr_bytes - 1),
		100.0 * ((double)st.pool_bytes / (double)classed - 1), ratio,
		eff);
	/* spot checks, then everything goes back */
	for (size_t i = 0; i < n; i += 97) {
		gen_real(pg, i, 0xface);
		load_same(b, cx, slot[i], pg);
	}
	for (size_t i = 0; i < n; i++)
		OPS(b)->free(b, cx, slot[(i * 7919) % n]);
	stats(b, &st);
	T_EQ(st.stored_pages, 0);
	/* all spans returned; metadata and the touched slot table stay */
	T_ASSERT(st.pool_bytes < st0.pool_bytes + n * 32 + 64 * 1024);
	fprintf(stderr, "      after freeing all: pool_bytes %llu (was %llu "
		"empty)\n", (unsigned long long)st.pool_bytes,
		(unsigned long long)st0.pool_bytes);
	free(slot);
	OPS(b)->ctx_destroy(b, cx);
	OPS(b)->destroy(b);
	return eff;
}

static void t_efficiency(void)
{
	double e = efficiency(USWAP_COMP_LZ4, 1);

	T_ASSERT(e >= 2.0);	/* zram: 2.22x on this kind of data */
	T_ASSERT(efficiency(USWAP_COMP_ZSTD, 1) >= 2.0);
}

/*
 * ns per store, load and free of realistic pages (one thread).  "cold"
 * stores fill a growing pool and so include the first-touch page faults of
 * new pool memory; "warm" stores refill the holes that frees left in
 * spans already in RAM, the steady state of a busy swap.
 */
static void speed(int comp, int level)
{
	size_t n = 8192 / scale;
	struct uswap_backend *b = mk(comp, level, 0);
	struct uswap_bctx *cx = OPS(b)->ctx_create(b);
	unsigned char *pages = malloc(n * PAGE), got[PAGE];
	uint32_t *slot = calloc(n, sizeof(*slot));
	double t0, t1, t2, t3, t4, t5;

	T_ASSERT(cx && pages && slot);
	for (size_t i = 0; i < n; i++)
		gen_real(pages + i * PAGE, i, 0xbeef);
	t0 = now_ns();
	for (size_t i = 0; i < n; i++)
		store_ok(b, cx, pages + i * PAGE, &slot[i]);
	t1 = now_ns();
	for (size_t i = 0; i < n; i += 2)
		OPS(b)->free(b, cx, slot[i]);
	t2 = now_ns();
	for (size_t i = 0; i < n; i += 2)
		store_ok(b, cx, pages + i * PAGE, &slot[i]);
	t3 = now_ns();
	for (size_t i = 0; i < n; i++)
		T_EQ(OPS(b)->load(b, cx, slot[(i * 7919) % n], got), 0);
	t4 = now_ns();
	for (size_t i = 0; i < n; i++)
		OPS(b)->free(b, cx, slot[(i * 7919) % n]);
	t5 = now_ns();
	fprintf(stderr, "    %-4s %d: store %5.0f ns warm (%5.0f cold), load "
		"%5.0f ns, free %4.0f ns (%3.0f without span returns)\n",
		cname(comp), level, (t3 - t2) / (n / 2), (t1 - t0) / n,
		(t4 - t3) / n, (t5 - t4) / n, (t2 - t1) / (n / 2));
	free(slot);
	free(pages);
	OPS(b)->ctx_destroy(b, cx);
	OPS(b)->destroy(b);
}

static void t_speed(void)
{
	speed(USWAP_COMP_LZ4, 1);
	speed(USWAP_COMP_LZ4, 4);
	speed(USWAP_COMP_ZSTD, 1);
	speed(USWAP_COMP_ZSTD, 3);
}

/*
 * Flip every byte of a stored object, one at a time: each load must give
 * -EIO or the exact page, never wrong data.  A private copy of the object
 * (same codec, same input: same bytes) tells which check caught it.
 */
static void corrupt(int comp, int raw)
{
	struct uswap_backend *b = mk(comp, 1, 0);
	struct uswap_bctx *cx = OPS(b)->ctx_create(b);
	struct uswap_codec *c = codec_create(comp, 1);
	unsigned char pg[PAGE], got[PAGE], obj[PAGE], copy[PAGE];
	unsigned decoder = 0, csum = 0, same = 0;
	const uint8_t masks[] = { 0x01, 0x80, 0xff };
	struct uswap_zslot_info in;
	uint64_t s = 5;
	uint32_t slot;
	int n;

	T_ASSERT(cx && c);
	if (raw)
		rand_bytes(pg, PAGE, &s);
	else
		gen_real(pg, 11, 12);
	store_ok(b, cx, pg, &slot);
	T_EQ(uswap_zbackend_slot_info(b, slot, &in), 0);
	T_EQ(in.kind, raw ? USWAP_ZSLOT_RAW : USWAP_ZSLOT_COMP);
	if (raw) {
		memcpy(obj, pg, PAGE);
		n = PAGE;
	} else {
		n = codec_compress(c, pg, obj, PAGE * 3 / 4);
		T_EQ(n, in.len);
	}
	for (int off = 0; off < n; off++)
		for (size_t m = 0; m < sizeof(masks); m++) {
			int err, dec;

			T_EQ(uswap_zbackend_corrupt(b, slot, (size_t)off,
						    masks[m]), 0);
			err = OPS(b)->load(b, cx, slot, got);
			T_EQ(uswap_zbackend_corrupt(b, slot, (size_t)off,
						    masks[m]), 0);
			if (err == 0 && memcmp(got, pg, PAGE))
				T_FAIL("%s: flip %#x at %d: wrong data, no error",
				       cname(comp), masks[m], off);
			T_ASSERT(err == 0 || err == -EIO);
			/* classify with the private copy */
			memcpy(copy, obj, (size_t)n);
			copy[off] ^= masks[m];
			if (raw) {
				memcpy(got, copy, PAGE);
				dec = 0;
			} else {
				dec = codec_decompress(c, copy, (size_t)n, got);
			}
			if (dec)
				decoder++;
			else if (memcmp(got, pg, PAGE))
				csum++;
			else
				same++;
			T_EQ(err, dec || memcmp(got, pg, PAGE) ? -EIO : 0);
		}
	load_same(b, cx, slot, pg);	/* all flips undone */
	fprintf(stderr, "    %s %s object of %d bytes, %d flips: %u rejected by "
		"the decoder, %u wrong pages caught by the checksum, %u "
		"harmless (right page)\n", cname(comp),
		raw ? "raw" : "compressed", n, n * 3, decoder, csum, same);
	OPS(b)->free(b, cx, slot);
	codec_destroy(c);
	OPS(b)->ctx_destroy(b, cx);
	OPS(b)->destroy(b);
}

static void t_corrupt(void)
{
	corrupt(USWAP_COMP_LZ4, 0);
	corrupt(USWAP_COMP_ZSTD, 0);
	corrupt(USWAP_COMP_LZ4, 1);
}

/* The fault-injecting wrapper. */
static void t_faulty(void)
{
	struct uswap_backend *fb =
		uswap_faulty_backend_create(mk(USWAP_COMP_LZ4, 1, 0),
					    USWAP_FAULTY_OWN_INNER);
	struct uswap_bctx *cx;
	unsigned char pg[3][PAGE], got[PAGE];
	struct uswap_faulty_counts fc;
	struct uswap_backend_stats st;
	uint32_t s[3], x;
	double t0;

	T_ASSERT(fb);
	cx = OPS(fb)->ctx_create(fb);
	T_ASSERT(cx);
	gen_real(pg[0], 1, 0);
	gen_real(pg[1], 2, 0);
	memset(pg[2], 0, PAGE);
	/* stores */
	T_EQ(uswap_faulty_fail_stores(fb, 2, -ENOSPC), 0);
	T_EQ(OPS(fb)->store(fb, cx, pg[0], &x), -ENOSPC);
	T_EQ(OPS(fb)->store(fb, cx, pg[0], &x), -ENOSPC);
	T_EQ(uswap_faulty_fail_stores(fb, 1, -ENOMEM), 0);
	T_EQ(OPS(fb)->store(fb, cx, pg[0], &x), -ENOMEM);
	T_EQ(uswap_faulty_fail_stores(fb, 1, -EPERM), -EINVAL);
	for (int i = 0; i < 3; i++)
		store_ok(fb, cx, pg[i], &s[i]);
	stats(fb, &st);
	T_EQ(st.store_failures, 3);
	T_EQ(st.stored_pages, 3);	/* nothing stored by failed stores */
	/* loads of one slot, of all, of none */
	uswap_faulty_fail_loads(fb, s[1]);
	load_same(fb, cx, s[0], pg[0]);
	T_EQ(OPS(fb)->load(fb, cx, s[1], got), -EIO);
	uswap_faulty_fail_loads(fb, USWAP_FAULTY_ALL);
	T_EQ(OPS(fb)->load(fb, cx, s[0], got), -EIO);
	uswap_faulty_fail_loads(fb, USWAP_FAULTY_NONE);
	load_same(fb, cx, s[1], pg[1]);
	/* corruption: caught by the inner backend, and it stays */
	uswap_faulty_corrupt_loads(fb, 1);
	T_EQ(OPS(fb)->load(fb, cx, s[0], got), -EIO);
	T_EQ(OPS(fb)->load(fb, cx, s[0], got), -EIO);
	load_same(fb, cx, s[1], pg[1]);
	uswap_faulty_corrupt_loads(fb, 1);	/* zero page: simulated */
	T_EQ(OPS(fb)->load(fb, cx, s[2], got), -EIO);
	load_same(fb, cx, s[2], pg[2]);
	uswap_faulty_counts(fb, &fc);
	T_EQ(fc.store_failures, 3);
	T_EQ(fc.load_failures, 2);
	T_EQ(fc.corruptions, 2);
	T_EQ(fc.corrupt_loads_eio, 2);
	/* delays */
	uswap_faulty_delay(fb, 20000, 0);
	t0 = now_ns();
	load_same(fb, cx, s[1], pg[1]);
	T_ASSERT(now_ns() - t0 >= 20e6);
	uswap_faulty_reset(fb);
	t0 = now_ns();
	load_same(fb, cx, s[1], pg[1]);
	T_ASSERT(now_ns() - t0 < 20e6);
	/* refcounts pass through */
	OPS(fb)->dup(fb, s[1]);
	T_EQ(OPS(fb)->count(fb, s[1]), 2);
	for (int i = 0; i < 3; i++)
		OPS(fb)->free(fb, cx, s[i]);
	OPS(fb)->free(fb, cx, s[1]);
	T_EQ(OPS(fb)->count(fb, s[1]), 0);
	OPS(fb)->ctx_destroy(fb, cx);
	OPS(fb)->destroy(fb);
}

static void t_cap(void)
{
	const size_t cap = 4 * MiB;
	struct uswap_backend *b = mk(USWAP_COMP_LZ4, 1, cap);
	struct uswap_bctx *cx = OPS(b)->ctx_create(b);
	struct uswap_backend_stats st;
	unsigned char pg[PAGE];
	uint32_t slot[8192], z;
	size_t n = 0;
	int err;

	for (;;) {
		gen_real(pg, n, 3);
		err = OPS(b)->store(b, cx, pg, &slot[n]);
		if (err)
			break;
		n++;
		T_ASSERT(n < 8192);
	}
	T_EQ(err, -ENOSPC);
	stats(b, &st);
	T_EQ(st.store_failures, 1);
	T_EQ(st.stored_pages, n);
	T_ASSERT(st.pool_bytes <= cap);	/* slot table included */
	fprintf(stderr, "    cap %zu MiB: %zu realistic pages (%.1f MiB) "
		"stored, then -ENOSPC; pool_bytes %llu\n", cap / MiB, n,
		(double)n * PAGE / MiB, (unsigned long long)st.pool_bytes);
	memset(pg, 0, PAGE);		/* same-filled pages need no pool */
	store_ok(b, cx, pg, &z);
	OPS(b)->free(b, cx, z);
	while (n--)
		OPS(b)->free(b, cx, slot[n]);
	gen_real(pg, 0, 3);
	store_ok(b, cx, pg, &z);
	OPS(b)->free(b, cx, z);
	OPS(b)->ctx_destroy(b, cx);
	OPS(b)->destroy(b);
}

static void t_config(void)
{
	struct uswap_zconfig bad[] = {
		{ .compressor = 2, .lz4_accel = 1 },
		{ .compressor = USWAP_COMP_LZ4, .lz4_accel = 0 },
		{ .compressor = USWAP_COMP_ZSTD, .zstd_level = 99 },
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		errno = 0;
		T_ASSERT(!uswap_zbackend_create(&bad[i]) && errno == EINVAL);
	}
	errno = 0;
	T_ASSERT(!uswap_zbackend_create(NULL) && errno == EINVAL);
	{	/* a cap that cannot even hold the backend's own records */
		struct uswap_zconfig tiny = { .compressor = USWAP_COMP_LZ4,
					      .lz4_accel = 1,
					      .pool_cap = 8192 };

		errno = 0;
		T_ASSERT(!uswap_zbackend_create(&tiny) && errno == EINVAL);
	}
}

/* ------------------------------------------------------- no malloc */

#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
/* Count allocations by interposing the allocator (the sanitizers have
 * their own, so this runs in the plain build only). */
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);
static _Atomic long n_allocs;

void *malloc(size_t n)
{
	atomic_fetch_add_explicit(&n_allocs, 1, memory_order_relaxed);
	return __libc_malloc(n);
}

void *calloc(size_t n, size_t m)
{
	atomic_fetch_add_explicit(&n_allocs, 1, memory_order_relaxed);
	return __libc_calloc(n, m);
}

void *realloc(void *p, size_t n)
{
	atomic_fetch_add_explicit(&n_allocs, 1, memory_order_relaxed);
	return __libc_realloc(p, n);
}

void free(void *p)
{
	__libc_free(p);
}

static void no_malloc(int comp, int level)
{
	struct uswap_backend *b = mk(comp, level, 0);
	struct uswap_bctx *cx = OPS(b)->ctx_create(b);
	enum { N = 2000 };
	static uint32_t slot[N];
	unsigned char pg[PAGE], got[PAGE];
	long before;

	T_ASSERT(cx);
	gen_by_id(pg, 3);	/* warm the checksum table etc. */
	before = atomic_load(&n_allocs);
	for (uint32_t i = 0; i < N; i++) {
		gen_by_id(pg, i);
		store_ok(b, cx, pg, &slot[i]);
		OPS(b)->dup(b, slot[i]);
	}
	for (uint32_t i = 0; i < N; i++) {
		T_EQ(OPS(b)->load(b, cx, slot[i], got), 0);
		OPS(b)->free(b, cx, slot[i]);
		OPS(b)->free(b, cx, slot[i]);
	}
	T_EQ(atomic_load(&n_allocs) - before, 0);
	OPS(b)->ctx_destroy(b, cx);
	OPS(b)->destroy(b);
}

static void t_no_malloc(void)
{
	no_malloc(USWAP_COMP_LZ4, 1);
	no_malloc(USWAP_COMP_ZSTD, 1);
	no_malloc(USWAP_COMP_ZSTD, 5);
	fprintf(stderr, "    0 allocations in %d store/dup/load/free x2 "
		"(lz4, zstd-1, zstd-5)\n", 2000);
}
#else
static void t_no_malloc(void)
{
	fprintf(stderr, "    (skipped under a sanitizer)\n");
}
#endif

/* ------------------------------------------------------------ threads */

#define NTHREADS 4
#define NCELLS 64
#define LIVE 256

struct shared {
	struct uswap_backend *b;
	_Atomic uint64_t cell[NCELLS];	/* slot << 32 | id, 0 = empty */
	unsigned iters;
};

struct live {
	uint32_t slot, id;
};

static void verify(struct uswap_backend *b, struct uswap_bctx *cx,
		   uint32_t slot, uint32_t id)
{
	unsigned char want[PAGE];

	gen_by_id(want, id);
	load_same(b, cx, slot, want);
}

static void *worker(void *arg)
{
	struct shared *sh = arg;
	struct uswap_backend *b = sh->b;
	struct uswap_bctx *cx = OPS(b)->ctx_create(b);
	static _Atomic unsigned seeds;
	uint64_t s = mix(atomic_fetch_add(&seeds, 1) + 1) | 1;
	struct live *lv = calloc(LIVE, sizeof(*lv));
	unsigned char pg[PAGE];
	size_t n = 0;

	T_ASSERT(cx && lv);
	for (unsigned it = 0; it < sh->iters; it++) {
		unsigned op = (unsigned)(rnd(&s) % 20);

		if (op < 8 && n < LIVE) {		/* store */
			lv[n].id = (uint32_t)rnd(&s);
			gen_by_id(pg, lv[n].id);
			store_ok(b, cx, pg, &lv[n].slot);
			n++;
		} else if (op < 13 && n) {		/* load */
			struct live *l = &lv[rnd(&s) % n];

			T_ASSERT(OPS(b)->count(b, l->slot) >= 1);
			verify(b, cx, l->slot, l->id);
		} else if (op < 17 && n) {		/* free */
			size_t i = rnd(&s) % n;

			OPS(b)->free(b, cx, lv[i].slot);
			lv[i] = lv[--n];
		} else if (n) {				/* share a reference */
			struct live *l = &lv[rnd(&s) % n];
			uint64_t v = (uint64_t)l->slot << 32 | l->id, old;

			OPS(b)->dup(b, l->slot);
			old = atomic_exchange_explicit(
				&sh->cell[rnd(&s) % NCELLS], v,
				memory_order_acq_rel);
			if (old) {
				verify(b, cx, (uint32_t)(old >> 32),
				       (uint32_t)old);
				OPS(b)->free(b, cx, (uint32_t)(old >> 32));
			}
		}
	}
	while (n--)
		OPS(b)->free(b, cx, lv[n].slot);
	free(lv);
	OPS(b)->ctx_destroy(b, cx);
	return NULL;
}

static void threads(int comp)
{
	struct shared sh = { .b = mk(comp, 1, 0), .iters = 40000 / scale };
	struct uswap_bctx *cx = OPS(sh.b)->ctx_create(sh.b);
	struct uswap_backend_stats st;
	pthread_t t[NTHREADS];
	double t0, t1;

	t0 = now_ns();
	for (int i = 0; i < NTHREADS; i++)
		T_EQ(pthread_create(&t[i], NULL, worker, &sh), 0);
	for (int i = 0; i < NTHREADS; i++)
		pthread_join(t[i], NULL);
	t1 = now_ns();
	for (int i = 0; i < NCELLS; i++) {
		uint64_t v = atomic_load(&sh.cell[i]);

		if (!v)
			continue;
		verify(sh.b, cx, (uint32_t)(v >> 32), (uint32_t)v);
		OPS(sh.b)->free(sh.b, cx, (uint32_t)(v >> 32));
	}
	stats(sh.b, &st);
	T_EQ(st.stored_pages, 0);
	T_EQ(st.stored_compr_bytes, 0);
	T_EQ(st.zero_pages, 0);
	T_EQ(st.raw_pages, 0);
	fprintf(stderr, "    %s: %d threads x %u ops (store/load+verify/free/"
		"share): %.0f ns/op per thread; end pool_bytes %llu\n",
		cname(comp), NTHREADS, sh.iters, (t1 - t0) / sh.iters,
		(unsigned long long)st.pool_bytes);
	OPS(sh.b)->ctx_destroy(sh.b, cx);
	OPS(sh.b)->destroy(sh.b);
}

static void t_threads(void)
{
	threads(USWAP_COMP_LZ4);
	threads(USWAP_COMP_ZSTD);
}

/* Knobs turned while threads run: exactly N injected store failures, and
 * loads that either fail with -EIO or return the right page. */
struct fshared {
	struct uswap_backend *fb;
	unsigned stores;
	_Atomic unsigned enospc, eio;
};

static void *fworker(void *arg)
{
	struct fshared *sh = arg;
	struct uswap_bctx *cx = OPS(sh->fb)->ctx_create(sh->fb);
	uint32_t *slot = calloc(sh->stores, sizeof(*slot));
	unsigned char pg[PAGE];
	static _Atomic uint32_t ids;
	uint32_t base = atomic_fetch_add(&ids, sh->stores);

	T_ASSERT(cx && slot);
	for (unsigned i = 0; i < sh->stores; i++) {
		int err;

		gen_by_id(pg, base + i);
		err = OPS(sh->fb)->store(sh->fb, cx, pg, &slot[i]);
		if (err == -ENOSPC) {
			atomic_fetch_add(&sh->enospc, 1);
			slot[i] = 0;
			continue;
		}
		T_EQ(err, 0);
	}
	for (unsigned i = 0; i < sh->stores; i++) {
		unsigned char got[PAGE];
		int err;

		if (!slot[i])
			continue;
		err = OPS(sh->fb)->load(sh->fb, cx, slot[i], got);
		gen_by_id(pg, base + i);
		if (err == -EIO)
			atomic_fetch_add(&sh->eio, 1);
		else if (err || memcmp(got, pg, PAGE))
			T_FAIL("load through the faulty backend: %d", err);
		OPS(sh->fb)->free(sh->fb, cx, slot[i]);
	}
	free(slot);
	OPS(sh->fb)->ctx_destroy(sh->fb, cx);
	return NULL;
}

static void t_faulty_threads(void)
{
	struct fshared sh = {
		.fb = uswap_faulty_backend_create(mk(USWAP_COMP_LZ4, 1, 0),
						  USWAP_FAULTY_OWN_INNER),
		.stores = 2000 / scale,
	};
	struct uswap_faulty_counts fc;
	struct uswap_backend_stats st;
	pthread_t t[NTHREADS];
	const unsigned nfail = 100 / scale;

	T_ASSERT(sh.fb);
	T_EQ(uswap_faulty_fail_stores(sh.fb, nfail, -ENOSPC), 0);
	for (int i = 0; i < NTHREADS; i++)
		T_EQ(pthread_create(&t[i], NULL, fworker, &sh), 0);
	for (int k = 0; k < 200; k++) {	/* flip the load knob meanwhile */
		uswap_faulty_fail_loads(sh.fb, k % 2 ? USWAP_FAULTY_ALL
						     : USWAP_FAULTY_NONE);
		usleep(100);
	}
	uswap_faulty_fail_loads(sh.fb, USWAP_FAULTY_NONE);
	for (int i = 0; i < NTHREADS; i++)
		pthread_join(t[i], NULL);
	uswap_faulty_counts(sh.fb, &fc);
	T_EQ(atomic_load(&sh.enospc), nfail);
	T_EQ(fc.store_failures, nfail);
	T_EQ(fc.load_failures, atomic_load(&sh.eio));
	stats(sh.fb, &st);
	T_EQ(st.stored_pages, 0);
	T_EQ(st.store_failures, nfail);
	fprintf(stderr, "    %d threads: %u of %u stores failed on command, "
		"%u loads failed while the knob flipped\n", NTHREADS, nfail,
		NTHREADS * sh.stores, atomic_load(&sh.eio));
	OPS(sh.fb)->destroy(sh.fb);
}

int main(void)
{
	const char *sc = getenv("USWAP_TEST_SCALE");

	if (sc && atoi(sc) > 0)
		scale = (unsigned)atoi(sc);
	T_RUN(t_same_filled);
	T_RUN(t_checksum);
	T_RUN(t_codecs);
	T_RUN(t_config);
	T_RUN(t_kinds);
	T_RUN(t_refcount);
	T_RUN(t_abort_on_free_slot);
	T_RUN(t_faulty);
	T_RUN(t_corrupt);
	T_RUN(t_cap);
	T_RUN(t_no_malloc);
	T_RUN(t_efficiency);
	T_RUN(t_speed);
	T_RUN(t_threads);
	T_RUN(t_faulty_threads);
	fprintf(stderr, "test_zbackend: ok\n");
	return 0;
}

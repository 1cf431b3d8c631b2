/*
 * search.c — SIMD substring search (see search.h).
 *
 * The "generic SIMD" method (W. Muła): for two fixed offsets p1 < p2 inside
 * the needle, compare 16 bytes of the haystack at i+p1 with needle[p1] and at
 * i+p2 with needle[p2]; the AND of both masks marks starts i+k where both bytes
 * agree, and only those are checked with memcmp. Choosing p1/p2 inside the
 * quotes of a literal like "ListAccounts" keeps false candidates rare.
 *
 * nt_json_structure_ok (the prefilter's completeness check) works on 64-byte
 * blocks of bit masks, as described above the function.
 * Where the CPU has AVX2 (checked once at run time) the same loop takes 32
 * starts per step. nt_search_clean also ORs a third comparison, with '\\', into
 * an accumulator, so a search that runs to the end without a match has also
 * told the prefilter whether the record holds any JSON escape, which saves it
 * a separate pass.
 */
#include "search.h"

#include <stdint.h>
#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define NT_SEARCH_AVX2 1
#endif

/* Offsets of the two probe bytes: inside the quotes when the literal has them. */
static void probes(const char *needle, size_t m, size_t *p1, size_t *p2)
{
    *p1 = 0;
    *p2 = m - 1;
    if (m >= 4 && needle[0] == '"') *p1 = 1;
    if (m >= 4 && needle[m - 1] == '"') *p2 = m - 2;
}

/* Starts i.. to the end, one by one. */
static const char *search_tail(const char *hay, size_t n, const char *needle, size_t m, size_t i,
                               size_t p1, size_t p2)
{
    for (; i + m <= n; i++)
        if (hay[i + p1] == needle[p1] && hay[i + p2] == needle[p2] &&
            memcmp(hay + i, needle, m) == 0)
            return hay + i;
    return NULL;
}

#ifdef NT_SEARCH_AVX2
__attribute__((target("avx2"))) static const char *
search_avx2(const char *hay, size_t n, const char *needle, size_t m, int *clean)
{
    size_t p1, p2;
    probes(needle, m, &p1, &p2);
    const __m256i b1 = _mm256_set1_epi8(needle[p1]);
    const __m256i b2 = _mm256_set1_epi8(needle[p2]);
    const __m256i bsl = _mm256_set1_epi8('\\');
    __m256i seen = _mm256_setzero_si256();
    size_t i = 0;
    /* A 32-byte load at i + p2 must stay inside hay: i + p2 + 32 <= n. */
    for (; i + p2 + 32 <= n; i += 32) {
        __m256i h1 = _mm256_loadu_si256((const __m256i *)(const void *)(hay + i + p1));
        __m256i h2 = _mm256_loadu_si256((const __m256i *)(const void *)(hay + i + p2));
        if (clean) seen = _mm256_or_si256(seen, _mm256_cmpeq_epi8(h1, bsl));
        unsigned mask = (unsigned)_mm256_movemask_epi8(
            _mm256_and_si256(_mm256_cmpeq_epi8(h1, b1), _mm256_cmpeq_epi8(h2, b2)));
        while (mask) {
            size_t k = i + (size_t)__builtin_ctz(mask);
            if (k + m <= n && memcmp(hay + k, needle, m) == 0) return hay + k;
            mask &= mask - 1;
        }
    }
    const char *r = search_tail(hay, n, needle, m, i, p1, p2);
    /* The loads covered bytes [p1, i + p1); the rest is checked directly. */
    if (!r && clean && _mm256_testz_si256(seen, seen) && !memchr(hay, '\\', p1 < n ? p1 : n) &&
        !(i + p1 < n && memchr(hay + i + p1, '\\', n - i - p1)))
        *clean = 1;
    return r;
}

static int have_avx2(void)
{
    /* __builtin_cpu_init is idempotent and cheap once done; no cache of our
     * own, so no data race between worker threads */
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") ? 1 : 0;
}
#endif

const char *nt_search_clean(const char *hay, size_t n, const char *needle, size_t m, int *clean)
{
    if (m == 0) return hay;
    if (m > n) {
        if (clean && !memchr(hay, '\\', n)) *clean = 1;
        return NULL;
    }
    if (m == 1) {
        const char *r = memchr(hay, needle[0], n);
        if (!r && clean && !memchr(hay, '\\', n)) *clean = 1;
        return r;
    }
#ifdef NT_SEARCH_AVX2
    if (have_avx2()) return search_avx2(hay, n, needle, m, clean);
#endif
    size_t p1, p2;
    probes(needle, m, &p1, &p2);
    size_t i = 0;
#if defined(__SSE2__)
    const __m128i b1 = _mm_set1_epi8(needle[p1]);
    const __m128i b2 = _mm_set1_epi8(needle[p2]);
    /* A 16-byte load at i + p2 must stay inside hay: i + p2 + 16 <= n. */
    for (; i + p2 + 16 <= n; i += 16) {
        __m128i h1 = _mm_loadu_si128((const __m128i *)(const void *)(hay + i + p1));
        __m128i h2 = _mm_loadu_si128((const __m128i *)(const void *)(hay + i + p2));
        unsigned mask = (unsigned)_mm_movemask_epi8(
            _mm_and_si128(_mm_cmpeq_epi8(h1, b1), _mm_cmpeq_epi8(h2, b2)));
        while (mask) {
            size_t k = i + (size_t)__builtin_ctz(mask);
            if (k + m <= n && memcmp(hay + k, needle, m) == 0) return hay + k;
            mask &= mask - 1;
        }
    }
#endif
    const char *r = search_tail(hay, n, needle, m, i, p1, p2);
    if (!r && clean && !memchr(hay, '\\', n)) *clean = 1;
    return r;
}

const char *nt_search(const char *hay, size_t n, const char *needle, size_t m)
{
    return nt_search_clean(hay, n, needle, m, NULL);
}

int nt_has_unicode_escape(const char *text, size_t n)
{
    const char *p = text, *end = text + n;
    while (p < end && (p = memchr(p, '\\', (size_t)(end - p))) != NULL) {
        if (p + 1 < end && p[1] == 'u') return 1;
        p += 2; /* skip the escaped character: "\\\\u" is a backslash, then 'u' */
    }
    return 0;
}

/* The scan is a byte-at-a-time state machine (scan_byte) with a fast path
 * that takes 64 (else 16) bytes at once when the block holds no backslash
 * and no escape is pending: SSE2 compares give one bit per byte for quotes,
 * whitespace, brackets and control bytes, quote positions give the
 * in-string mask by a prefix XOR (as in simdjson), and only the few braces
 * and brackets outside strings are visited one by one. Both paths implement
 * the same rules, so the answer never depends on where blocks fall. Cost on
 * the bench corpus (1.7 KB CloudTrail records): ~8k instructions per record,
 * ~5 per byte; a 1 MB string takes ~0.16 ms. */
typedef struct json_scan {
    uint64_t objects; /* bit d set: level d+1 is an object (else an array) */
    unsigned depth;
    int in_string;
    int escape; /* 1: after a backslash; 2..5: hex digits of \uXXXX still expected + 1 */
    int values; /* top-level values seen */
    int bad;
} json_scan;

#define JSON_SCAN_DEPTH 64

static int hex_digit(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static int is_ws(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static void scan_open(json_scan *j, unsigned char c)
{
    if (j->depth == JSON_SCAN_DEPTH) {
        j->bad = 1;
        return;
    }
    if (j->depth == 0) j->values++;
    if (c == '{')
        j->objects |= 1ull << j->depth;
    else
        j->objects &= ~(1ull << j->depth);
    j->depth++;
}

static void scan_close(json_scan *j, unsigned char c)
{
    if (j->depth == 0 || ((j->objects >> (j->depth - 1)) & 1) != (c == '}')) {
        j->bad = 1;
        return;
    }
    j->depth--;
}

static void scan_byte(json_scan *j, unsigned char c)
{
    if (j->in_string) {
        if (j->escape == 1) {
            if (c == 'u')
                j->escape = 5;
            else if (c == '"' || c == '\\' || c == '/' || c == 'b' || c == 'f' || c == 'n' ||
                     c == 'r' || c == 't')
                j->escape = 0;
            else
                j->bad = 1;
        } else if (j->escape > 1) {
            if (!hex_digit(c)) j->bad = 1;
            j->escape = j->escape == 2 ? 0 : j->escape - 1;
        } else if (c == '"') {
            j->in_string = 0;
        } else if (c == '\\') {
            j->escape = 1;
        } else if (c < 0x20) {
            j->bad = 1;
        }
        return;
    }
    if (is_ws(c)) return;
    if (c == '{' || c == '[') {
        scan_open(j, c);
    } else if (j->depth == 0 || c < 0x20) {
        j->bad = 1; /* only objects and arrays at the top; no raw control byte */
    } else if (c == '}' || c == ']') {
        scan_close(j, c);
    } else if (c == '"') {
        j->in_string = 1;
    }
}

#if defined(__SSE2__)
/* Bit masks of one block (bit k = byte k). */
typedef struct json_masks {
    uint64_t quote, ws, open, close, brace, ctl, bslash;
} json_masks;

/* Inlined with a constant shift and width, so each block size compiles to
 * straight-line code. */
#define JSON_INLINE static inline __attribute__((always_inline))

JSON_INLINE void masks16(const unsigned char *s, json_masks *m, unsigned shift)
{
    const __m128i x = _mm_loadu_si128((const __m128i *)(const void *)s);
#define EQ(c) (uint64_t)(unsigned) _mm_movemask_epi8(_mm_cmpeq_epi8(x, _mm_set1_epi8(c)))
    uint64_t brace_open = EQ('{'), brace_close = EQ('}');
    m->quote |= EQ('"') << shift;
    m->ws |= (EQ(' ') | EQ('\t') | EQ('\n') | EQ('\r')) << shift;
    m->open |= (brace_open | EQ('[')) << shift;
    m->close |= (brace_close | EQ(']')) << shift;
    m->brace |= (brace_open | brace_close) << shift;
    m->bslash |= EQ('\\') << shift;
#undef EQ
    /* x < 0x20 unsigned  <=>  max(x, 0x20) != x */
    m->ctl |= (uint64_t)((unsigned)_mm_movemask_epi8(
                             _mm_cmpeq_epi8(_mm_max_epu8(x, _mm_set1_epi8(0x20)), x)) ^
                         0xFFFFu)
              << shift;
}

/* One block of `width` (16 or 64) bytes without backslashes, no escape
 * pending, given its masks. */
JSON_INLINE void scan_block(json_scan *j, const unsigned char *s, unsigned width,
                            const json_masks *m)
{
    const uint64_t full = width == 64 ? ~0ull : (1ull << width) - 1;
    /* inside: 1 from an opening quote up to (not including) its closing quote. */
    uint64_t inside = m->quote;
    inside ^= inside << 1;
    inside ^= inside << 2;
    inside ^= inside << 4;
    inside ^= inside << 8;
    if (width == 64) {
        inside ^= inside << 16;
        inside ^= inside << 32;
    }
    inside &= full;
    if (j->in_string) inside ^= full;
    if (m->ctl & ~(m->ws & ~inside)) {
        j->bad = 1; /* a raw control byte in a string, or outside one and not whitespace */
        return;
    }
    uint64_t events = (m->open | m->close) & ~inside & full;

    /* Common case, deep inside a document: branch-free stack updates (the
     * open/close sequence is data, so branches on it mispredict). When
     * depth reaches 0 the top-level rules apply: redo the block below. */
    if (j->depth > 0) {
        uint64_t objects = j->objects;
        unsigned depth = j->depth, err = 0, zero = 0;
        for (uint64_t ev = events; ev; ev &= ev - 1) {
            unsigned k = (unsigned)__builtin_ctzll(ev);
            unsigned is_open = (unsigned)(m->open >> k) & 1u, b = (unsigned)(m->brace >> k) & 1u;
            unsigned below = (depth - 1) & 63, at = depth & 63;
            err |= (is_open ^ 1u) & (((unsigned)(objects >> below) & 1u) ^ b);
            uint64_t opened = (objects & ~(1ull << at)) | ((uint64_t)b << at);
            objects = is_open ? opened : objects;
            err |= is_open & (depth >= JSON_SCAN_DEPTH);
            depth = is_open ? depth + 1 : depth - 1;
            zero |= depth == 0;
        }
        if (!zero) {
            j->objects = objects;
            j->depth = depth;
            j->bad |= (int)err;
            j->in_string = (int)((inside >> (width - 1)) & 1);
            return;
        }
    }

    uint64_t outside_nonws = (~inside | m->quote) & ~m->ws & full;
    unsigned pos = 0; /* bits below pos are done */
    for (;;) {
        unsigned upto = events ? (unsigned)__builtin_ctzll(events) : width;
        if (j->depth == 0) {
            /* At the top only whitespace may come before the next opener. */
            uint64_t below_upto = upto >= 64 ? ~0ull : (1ull << upto) - 1;
            uint64_t from_pos = pos >= 64 ? 0 : ~0ull << pos;
            if (outside_nonws & below_upto & from_pos) {
                j->bad = 1;
                return;
            }
        }
        if (!events) break;
        if ((m->open >> upto) & 1)
            scan_open(j, s[upto]);
        else
            scan_close(j, s[upto]);
        if (j->bad) return;
        events &= events - 1;
        pos = upto + 1;
    }
    /* The block ends inside a string when its last byte is inside (an
     * opening quote counts as inside, a closing one does not). */
    j->in_string = (int)((inside >> (width - 1)) & 1);
}

/* 16 bytes: the block path when there is no backslash, else byte by byte. */
static void scan16(json_scan *j, const unsigned char *s)
{
    json_masks m = {0};
    masks16(s, &m, 0);
    if (j->escape || m.bslash) {
        for (int k = 0; k < 16 && !j->bad; k++)
            scan_byte(j, s[k]);
    } else {
        scan_block(j, s, 16, &m);
    }
}
#endif

int nt_json_structure_ok(const char *text, size_t n)
{
    const unsigned char *s = (const unsigned char *)text;
    json_scan j = {0};
    size_t i = 0;
#if defined(__SSE2__)
    /* 64 bytes at a time; a block with a backslash (or after one) goes 16
     * bytes at a time, and a 16-byte piece with one byte by byte. */
    while (i + 64 <= n && !j.bad) {
        json_masks m = {0};
        masks16(s + i, &m, 0);
        masks16(s + i + 16, &m, 16);
        masks16(s + i + 32, &m, 32);
        masks16(s + i + 48, &m, 48);
        if (j.escape || m.bslash) {
            for (unsigned k = 0; k < 4 && !j.bad; k++)
                scan16(&j, s + i + 16 * k);
        } else {
            scan_block(&j, s + i, 64, &m);
        }
        i += 64;
    }
    for (; i + 16 <= n && !j.bad; i += 16)
        scan16(&j, s + i);
#endif
    for (; i < n && !j.bad; i++)
        scan_byte(&j, s[i]);
    return !j.bad && !j.in_string && j.depth == 0 && j.values > 0;
}

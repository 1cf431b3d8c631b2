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
 * blocks of bit masks, as described above json_scan (AVX2 and a carry-less
 * multiply where the CPU has them).
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
#define SEARCH_PAD_P2 64 /* the padded tail serves needles with p2 up to this */

/* The first start among start + [0, 64) whose probe bytes matched (bits of
 * mask) and where the needle really is in hay, or NULL. */
static const char *search_confirm(const char *hay, size_t n, const char *needle, size_t m,
                                  size_t start, uint64_t mask)
{
    for (; mask; mask &= mask - 1) {
        size_t k = start + (size_t)__builtin_ctzll(mask);
        if (k + m <= n && memcmp(hay + k, needle, m) == 0) return hay + k;
    }
    return NULL;
}

/* Bits of the starts among the 32 at p whose probe bytes match. */
__attribute__((target("avx2"))) static inline uint32_t
search_probe32(const char *p, size_t p1, size_t p2, __m256i b1, __m256i b2)
{
    const __m256i h1 = _mm256_loadu_si256((const __m256i *)(const void *)(p + p1));
    const __m256i h2 = _mm256_loadu_si256((const __m256i *)(const void *)(p + p2));
    return (uint32_t)_mm256_movemask_epi8(
        _mm256_and_si256(_mm256_cmpeq_epi8(h1, b1), _mm256_cmpeq_epi8(h2, b2)));
}

/* Candidate bits of the 64 starts at p (the loads at p + p1 .. p + p2 + 64). */
__attribute__((target("avx2"))) static inline __m256i
search_pair64(const char *p, size_t p1, size_t p2, __m256i b1, __m256i b2, __m256i *hi)
{
    const __m256i lo = _mm256_and_si256(
        _mm256_cmpeq_epi8(_mm256_loadu_si256((const __m256i *)(const void *)(p + p1)), b1),
        _mm256_cmpeq_epi8(_mm256_loadu_si256((const __m256i *)(const void *)(p + p2)), b2));
    *hi = _mm256_and_si256(
        _mm256_cmpeq_epi8(_mm256_loadu_si256((const __m256i *)(const void *)(p + p1 + 32)), b1),
        _mm256_cmpeq_epi8(_mm256_loadu_si256((const __m256i *)(const void *)(p + p2 + 32)), b2));
    return lo;
}

__attribute__((target("avx2"))) static uint64_t search_bits64(__m256i lo, __m256i hi)
{
    return (uint64_t)(uint32_t)_mm256_movemask_epi8(lo) |
           (uint64_t)(uint32_t)_mm256_movemask_epi8(hi) << 32;
}

/* 128 starts per step (four 32-byte quarters tested together), then 64;
 * the last starts from a copy of the tail padded with zero bytes (a zero
 * byte can match a probe, but a candidate is confirmed in hay only where the
 * needle fits), or one by one for a needle whose second probe lies beyond
 * the pad. With clean, the bytes at the first probe are also compared with a
 * backslash. */
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
    if (!clean) /* the prefilter's usual case: the pass already knows about backslashes */
        for (; i + p2 + 128 <= n; i += 128) {
            __m256i ha, hb;
            const __m256i la = search_pair64(hay + i, p1, p2, b1, b2, &ha);
            const __m256i lb = search_pair64(hay + i + 64, p1, p2, b1, b2, &hb);
            const __m256i any = _mm256_or_si256(_mm256_or_si256(la, ha), _mm256_or_si256(lb, hb));
            if (_mm256_testz_si256(any, any)) continue;
            const char *r = search_confirm(hay, n, needle, m, i, search_bits64(la, ha));
            if (!r) r = search_confirm(hay, n, needle, m, i + 64, search_bits64(lb, hb));
            if (r) return r;
        }
    /* The 32-byte loads at i + p2 + 32 must stay inside hay: i + p2 + 64 <= n. */
    for (; i + p2 + 64 <= n; i += 64) {
        __m256i hi;
        const __m256i lo = search_pair64(hay + i, p1, p2, b1, b2, &hi);
        if (clean) {
            const __m256i h1a = _mm256_loadu_si256((const __m256i *)(const void *)(hay + i + p1));
            const __m256i h1b =
                _mm256_loadu_si256((const __m256i *)(const void *)(hay + i + p1 + 32));
            seen = _mm256_or_si256(
                seen, _mm256_or_si256(_mm256_cmpeq_epi8(h1a, bsl), _mm256_cmpeq_epi8(h1b, bsl)));
        }
        const __m256i any = _mm256_or_si256(lo, hi);
        if (_mm256_testz_si256(any, any)) continue;
        const char *r = search_confirm(hay, n, needle, m, i, search_bits64(lo, hi));
        if (r) return r;
    }
    const char *r = NULL;
    if (i + m > n) {
        /* no start left */
    } else if (p2 <= SEARCH_PAD_P2) {
        /* fewer than 64 + p2 bytes left: starts i .. n - m from a padded copy */
        char pad[64 + SEARCH_PAD_P2 + 32 + SEARCH_PAD_P2];
        size_t used = n - i + 32 + p2; /* what the loads below read */
        memcpy(pad, hay + i, n - i);
        memset(pad + (n - i), 0, used - (n - i));
        for (size_t j = 0; !r && i + j + m <= n; j += 32)
            r = search_confirm(hay, n, needle, m, i + j, search_probe32(pad + j, p1, p2, b1, b2));
    } else {
        r = search_tail(hay, n, needle, m, i, p1, p2);
    }
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
 * the same rules, so the answer never depends on where blocks fall.
 *
 * Where the CPU has AVX2 and PCLMUL (checked at run time), structure_ok_avx2
 * goes first on every 64-byte block: the byte classes of 32 bytes from two
 * nibble-table look-ups (json_class), the prefix XOR as one carry-less
 * multiply, and no whitespace or control-byte mask at all when the block has
 * neither a backslash nor a byte below 0x20 and the nesting stays above the
 * top level (whitespace matters only there). A block with a backslash or a
 * control byte takes the SSE2 path above. The last partial
 * block is padded with spaces to 64 bytes, which changes no verdict: a space
 * is allowed between values, inside a string, and anywhere inside a
 * document, while an unclosed string or escape stays unclosed (or turns into
 * a bad escape). Cost on the bench's Mix B (1.9 KB EventBridge-wrapped
 * records, no backslash): ~2.6k instructions per record with AVX2 against
 * ~9k on the SSE2 path. */
typedef struct json_scan {
    uint64_t objects; /* the open levels, innermost in bit 0: 1 an object, 0 an array */
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
    j->objects = j->objects << 1 | (c == '{');
    j->depth++;
}

static void scan_close(json_scan *j, unsigned char c)
{
    if (j->depth == 0 || (j->objects & 1) != (c == '}')) {
        j->bad = 1;
        return;
    }
    j->objects >>= 1;
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
/* Inlined with a constant shift and width, so each block size compiles to
 * straight-line code. */
#define JSON_INLINE static inline __attribute__((always_inline))

/* The brackets outside strings of one block (bit k of events: s[k] is one
 * of {}[]), deep inside a document. The bracket's own bits tell it apart:
 * bit 1 is set for '{' and '[' (0x7B, 0x5B), clear for '}' and ']' (0x7D,
 * 0x5D); bit 5 is set for the braces. Errors are not told apart here: one
 * flag collects a closer of the other kind and a depth that reaches 0 or
 * passes 64. Returns 0 and leaves j alone when it is set (the top-level
 * rules apply, or there is an error: scan_top redoes the block bracket by
 * bracket), else commits the block, whose last byte is inside a string when
 * last_inside is 1. (A branch-free select of the new stack cost 4% more
 * instructions and no time on the bench's records, whose bracket sequences
 * the branch predictor learns.) */
JSON_INLINE int scan_deep(json_scan *j, const unsigned char *s, uint64_t events,
                          unsigned last_inside)
{
    uint64_t objects = j->objects;
    unsigned depth = j->depth, off = 0;
    for (uint64_t ev = events; ev; ev &= ev - 1) {
        unsigned c = s[__builtin_ctzll(ev)];
        unsigned is_open = (c >> 1) & 1u, brace = (c >> 5) & 1u;
        off |= ~is_open & ((unsigned)objects ^ brace); /* bit 0: a closer of the other kind */
        objects = is_open ? objects << 1 | brace : objects >> 1;
        depth += 2 * is_open - 1;
        off |= depth - 1 >= JSON_SCAN_DEPTH; /* 0, or past the limit */
    }
    if (off & 1u) return 0;
    j->objects = objects;
    j->depth = depth;
    j->in_string = (int)last_inside;
    return 1;
}

/* Bit masks of one block (bit k = byte k). */
typedef struct json_masks {
    uint64_t quote, ws, open, close, ctl, bslash;
} json_masks;

JSON_INLINE void masks16(const unsigned char *s, json_masks *m, unsigned shift)
{
    const __m128i x = _mm_loadu_si128((const __m128i *)(const void *)s);
#define EQ(c) (uint64_t)(unsigned) _mm_movemask_epi8(_mm_cmpeq_epi8(x, _mm_set1_epi8(c)))
    m->quote |= EQ('"') << shift;
    m->ws |= (EQ(' ') | EQ('\t') | EQ('\n') | EQ('\r')) << shift;
    m->open |= (EQ('{') | EQ('[')) << shift;
    m->close |= (EQ('}') | EQ(']')) << shift;
    m->bslash |= EQ('\\') << shift;
#undef EQ
    /* x < 0x20 unsigned  <=>  max(x, 0x20) != x */
    m->ctl |= (uint64_t)((unsigned)_mm_movemask_epi8(
                             _mm_cmpeq_epi8(_mm_max_epu8(x, _mm_set1_epi8(0x20)), x)) ^
                         0xFFFFu)
              << shift;
}

/* One block of `width` (16 or 64) bytes without backslashes, no escape
 * pending, given its masks, the in-string mask `inside` (see scan_block) and
 * the brackets outside strings (events), where the depth is 0 or reaches 0:
 * bracket by bracket, with the top-level rules. */
JSON_INLINE void scan_top(json_scan *j, const unsigned char *s, unsigned width, const json_masks *m,
                          uint64_t inside, uint64_t events)
{
    const uint64_t full = width == 64 ? ~0ull : (1ull << width) - 1;
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

    /* Common case: deep inside a document. When depth reaches 0 the
     * top-level rules apply: redo the block in scan_top. */
    if (j->depth > 0 && scan_deep(j, s, events, (unsigned)(inside >> (width - 1)) & 1u)) return;
    scan_top(j, s, width, m, inside, events);
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

/* 64 bytes: one block when there is no backslash (nor an escape pending),
 * else 16 bytes at a time. */
JSON_INLINE void scan64(json_scan *j, const unsigned char *s)
{
    json_masks m = {0};
    masks16(s, &m, 0);
    masks16(s + 16, &m, 16);
    masks16(s + 32, &m, 32);
    masks16(s + 48, &m, 48);
    if (j->escape || m.bslash) {
        for (unsigned k = 0; k < 4 && !j->bad; k++)
            scan16(j, s + 16 * k);
    } else {
        scan_block(j, s, 64, &m);
    }
}
#endif

static int scan_verdict(const json_scan *j)
{
    return !j->bad && !j->in_string && j->depth == 0 && j->values > 0;
}

int nt_json_structure_ok_portable(const char *text, size_t n)
{
    const unsigned char *s = (const unsigned char *)text;
    json_scan j = {0};
    size_t i = 0;
#if defined(__SSE2__)
    for (; i + 64 <= n && !j.bad; i += 64)
        scan64(&j, s + i);
    for (; i + 16 <= n && !j.bad; i += 16)
        scan16(&j, s + i);
#endif
    for (; i < n && !j.bad; i++)
        scan_byte(&j, s[i]);
    return scan_verdict(&j);
}

#if defined(NT_SEARCH_AVX2) && defined(__SSE2__)
#define NT_STRUCTURE_AVX2 1

/* The SSE2 path for one 64-byte block (a backslash, a control byte, or an
 * escape pending), out of line and by value, so structure_ok_avx2's loop
 * keeps its state in registers. */
__attribute__((noinline)) static json_scan scan64_general(json_scan j, const unsigned char *s)
{
    scan64(&j, s);
    return j;
}

/* A 64-byte block with neither backslash nor control byte (so the only
 * whitespace is ' ') at or down to the top level, given its quote mask, its
 * in-string mask and its brackets outside strings. */
__attribute__((noinline, target("avx2"))) static json_scan
scan_top64(json_scan j, const unsigned char *s, uint64_t quote, uint64_t inside, uint64_t events)
{
    const __m256i x0 = _mm256_loadu_si256((const __m256i *)(const void *)s);
    const __m256i x1 = _mm256_loadu_si256((const __m256i *)(const void *)(s + 32));
    const __m256i space = _mm256_set1_epi8(' '), open = _mm256_set1_epi8('[');
    const __m256i fold = _mm256_set1_epi8((char)0xDF); /* '{' -> '[', '}' -> ']' */
    json_masks m = {0};
    m.quote = quote;
    m.ws = (uint64_t)(uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(x0, space)) |
           (uint64_t)(uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(x1, space)) << 32;
    m.open = (uint64_t)(uint32_t)_mm256_movemask_epi8(
                 _mm256_cmpeq_epi8(_mm256_and_si256(x0, fold), open)) |
             (uint64_t)(uint32_t)_mm256_movemask_epi8(
                 _mm256_cmpeq_epi8(_mm256_and_si256(x1, fold), open))
                 << 32;
    m.close = events & ~m.open;
    scan_top(&j, s, 64, &m, inside, events);
    return j;
}

/* Byte classes by two table look-ups, one on each nibble, ANDed (as in
 * simdjson): bit 7 '"' (0x22), bit 3 a bracket (0x5B 0x5D 0x7B 0x7D), bit 2
 * '\\' (0x5C), bit 0 a control byte (0x00-0x1F). A byte >= 0x80 has no
 * class (vpshufb gives 0 for an index with bit 7 set). Loaded from memory,
 * so a call on the loop's general path costs no constant rebuilding. */
#define NT_REP2(...) __VA_ARGS__, __VA_ARGS__
static const unsigned char json_class_tables[3][32] __attribute__((aligned(32))) = {
    /* by low nibble */
    {NT_REP2(0x01, 0x01, 0x81, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x09, 0x05, 0x09,
             0x01, 0x01)},
    /* by high nibble */
    {NT_REP2(0x01, 0x01, 0x80, 0x00, 0x00, 0x0C, 0x00, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
             0x00, 0x00)},
    /* the low nibble; the classes that send a block to the general path */
    {NT_REP2(0x0F, 0x0F, 0x0F, 0x0F, 0x0F, 0x0F, 0x0F, 0x0F, 0x0F, 0x0F, 0x0F, 0x0F, 0x0F, 0x0F,
             0x0F, 0x0F)},
};
#undef NT_REP2

__attribute__((target("avx2"))) static inline __m256i json_class(__m256i x)
{
    const __m256i *t = (const __m256i *)(const void *)json_class_tables;
    __m256i lo = _mm256_shuffle_epi8(_mm256_load_si256(t), x);
    __m256i hi =
        _mm256_shuffle_epi8(_mm256_load_si256(t + 1),
                            _mm256_and_si256(_mm256_srli_epi16(x, 4), _mm256_load_si256(t + 2)));
    return _mm256_and_si256(lo, hi);
}

/* The quote mask, the in-string mask (given whether the block starts in a
 * string) and the brackets outside strings of a block, from its classes. */
__attribute__((target("avx2,pclmul"))) static inline uint64_t
json_block_events(__m256i c0, __m256i c1, unsigned in_string, uint64_t *quote, uint64_t *inside)
{
    uint64_t q = (uint64_t)(uint32_t)_mm256_movemask_epi8(c0) |
                 (uint64_t)(uint32_t)_mm256_movemask_epi8(c1) << 32;
    uint64_t br = (uint64_t)(uint32_t)_mm256_movemask_epi8(_mm256_slli_epi16(c0, 4)) |
                  (uint64_t)(uint32_t)_mm256_movemask_epi8(_mm256_slli_epi16(c1, 4)) << 32;
    /* the prefix XOR of the quote bits: a carry-less product with all ones */
    uint64_t in = (uint64_t)_mm_cvtsi128_si64(
        _mm_clmulepi64_si128(_mm_cvtsi64_si128((long long)q), _mm_set1_epi8((char)0xFF), 0));
    in ^= 0 - (uint64_t)in_string;
    *quote = q;
    *inside = in;
    return br & ~in;
}

__attribute__((target("avx2,pclmul"))) static int structure_ok_avx2(const unsigned char *s,
                                                                    size_t n)
{
    json_scan j = {0};
    unsigned char pad[64];
    const __m256i general = _mm256_set1_epi8(0x05); /* a backslash or a control byte */
    size_t i = 0;
    while (i < n && !j.bad) {
        /* The hot loop: whole blocks deep inside a document with neither
         * backslash nor control byte. No call, so its constants stay in
         * registers; j's fields are locals. */
        if (!j.escape && j.depth > 0) {
            json_scan f = j;
            for (; i + 64 <= n; i += 64) {
                const __m256i c0 =
                    json_class(_mm256_loadu_si256((const __m256i *)(const void *)(s + i)));
                const __m256i c1 =
                    json_class(_mm256_loadu_si256((const __m256i *)(const void *)(s + i + 32)));
                if (!_mm256_testz_si256(_mm256_or_si256(c0, c1), general)) break;
                uint64_t q, inside;
                uint64_t events = json_block_events(c0, c1, (unsigned)f.in_string, &q, &inside);
                if (!scan_deep(&f, s + i, events, (unsigned)(inside >> 63))) break;
            }
            j = f;
            if (i >= n) break;
        }
        /* This block otherwise: the last one (padded with spaces), one at
         * or down to the top level, or one for the general path. */
        const unsigned char *b = s + i;
        if (n - i < 64) {
            memset(pad, ' ', sizeof pad);
            memcpy(pad, b, n - i);
            b = pad;
        }
        const __m256i c0 = json_class(_mm256_loadu_si256((const __m256i *)(const void *)b));
        const __m256i c1 = json_class(_mm256_loadu_si256((const __m256i *)(const void *)(b + 32)));
        i += 64;
        if (j.escape || !_mm256_testz_si256(_mm256_or_si256(c0, c1), general)) {
            j = scan64_general(j, b);
            continue;
        }
        uint64_t q, inside;
        uint64_t events = json_block_events(c0, c1, (unsigned)j.in_string, &q, &inside);
        if (j.depth > 0 && scan_deep(&j, b, events, (unsigned)(inside >> 63))) continue;
        j = scan_top64(j, b, q, inside, events);
    }
    return scan_verdict(&j);
}

static int have_avx2_pclmul(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("pclmul");
}
#endif

int nt_json_structure_ok(const char *text, size_t n)
{
#ifdef NT_STRUCTURE_AVX2
    if (have_avx2_pclmul()) return structure_ok_avx2((const unsigned char *)text, n);
#endif
    return nt_json_structure_ok_portable(text, n);
}

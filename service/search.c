/*
 * search.c — SIMD substring search (see search.h).
 *
 * The "generic SIMD" method (W. Muła): for two fixed offsets p1 < p2 inside
 * the needle, compare 16 bytes of the haystack at i+p1 with needle[p1] and at
 * i+p2 with needle[p2]; the AND of both masks marks starts i+k where both bytes
 * agree, and only those are checked with memcmp. Choosing p1/p2 inside the
 * quotes of a literal like "ListAccounts" keeps false candidates rare.
 *
 * nt_json_structure_ok spends most of its time inside strings, so it skips
 * 16 string bytes at a time with SSE2 up to the next quote, backslash or
 * control byte; outside strings a byte-class table decides.
 */
#include "search.h"

#include <stdint.h>
#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

const char *nt_search(const char *hay, size_t n, const char *needle, size_t m)
{
    if (m == 0) return hay;
    if (m > n) return NULL;
    if (m == 1) return memchr(hay, needle[0], n);
#if defined(__SSE2__)
    size_t p1 = 0, p2 = m - 1;
    if (m >= 4 && needle[0] == '"') p1 = 1;
    if (m >= 4 && needle[m - 1] == '"') p2 = m - 2;
    const __m128i b1 = _mm_set1_epi8(needle[p1]);
    const __m128i b2 = _mm_set1_epi8(needle[p2]);
    size_t i = 0;
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
    /* The tail, fewer than 16 + p2 bytes: check the remaining starts one by one. */
    for (; i + m <= n; i++)
        if (hay[i + p1] == needle[p1] && hay[i + p2] == needle[p2] &&
            memcmp(hay + i, needle, m) == 0)
            return hay + i;
    return NULL;
#else
    return memmem(hay, n, needle, m);
#endif
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

/* Byte classes outside strings. */
enum { JC_BAD = 0, JC_WS, JC_SCALAR, JC_PUNCT, JC_OPEN, JC_CLOSE, JC_QUOTE };

static unsigned char json_class(unsigned char c)
{
    switch (c) {
    case ' ':
    case '\t':
    case '\n':
    case '\r':
        return JC_WS;
    case ':':
    case ',':
        return JC_PUNCT;
    case '{':
    case '[':
        return JC_OPEN;
    case '}':
    case ']':
        return JC_CLOSE;
    case '"':
        return JC_QUOTE;
    case '-':
    case '+':
    case '.':
        return JC_SCALAR;
    default:
        if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
            return JC_SCALAR;
        return JC_BAD;
    }
}

static int hex_digit(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* Index of the first byte at or after i that is '"', '\\' or below 0x20, or n. */
static size_t string_special(const unsigned char *s, size_t n, size_t i)
{
#if defined(__SSE2__)
    const __m128i quote = _mm_set1_epi8('"'), bslash = _mm_set1_epi8('\\'),
                  space = _mm_set1_epi8(0x20);
    for (; i + 16 <= n; i += 16) {
        __m128i x = _mm_loadu_si128((const __m128i *)(const void *)(s + i));
        /* x < 0x20 unsigned  <=>  max(x, 0x20) != x */
        __m128i ctl = _mm_cmpeq_epi8(_mm_max_epu8(x, space), x);
        unsigned mask = (unsigned)_mm_movemask_epi8(
                            _mm_or_si128(_mm_cmpeq_epi8(x, quote), _mm_cmpeq_epi8(x, bslash))) |
                        ((unsigned)_mm_movemask_epi8(ctl) ^ 0xFFFFu);
        if (mask) return i + (size_t)__builtin_ctz(mask);
    }
#endif
    for (; i < n; i++)
        if (s[i] == '"' || s[i] == '\\' || s[i] < 0x20) return i;
    return n;
}

#define JSON_SCAN_DEPTH 64

int nt_json_structure_ok(const char *text, size_t n)
{
    const unsigned char *s = (const unsigned char *)text;
    uint64_t objects = 0; /* bit d set: level d+1 is an object (else an array) */
    size_t depth = 0, values = 0;
    for (size_t i = 0; i < n; i++) {
        switch (json_class(s[i])) {
        case JC_WS:
            break;
        case JC_SCALAR:
        case JC_PUNCT:
            if (depth == 0) return 0; /* top-level values are objects or arrays */
            break;
        case JC_OPEN:
            if (depth == JSON_SCAN_DEPTH) return 0;
            if (depth == 0) values++;
            objects = s[i] == '{' ? objects | (1ull << depth) : objects & ~(1ull << depth);
            depth++;
            break;
        case JC_CLOSE:
            if (depth == 0 || ((objects >> (depth - 1)) & 1) != (s[i] == '}')) return 0;
            depth--;
            break;
        case JC_QUOTE:
            if (depth == 0) return 0;
            for (i++;; i++) {
                i = string_special(s, n, i);
                if (i == n || s[i] < 0x20) return 0; /* unterminated, or a raw control byte */
                if (s[i] == '"') break;
                /* a backslash */
                if (i + 1 >= n) return 0;
                unsigned char e = s[++i];
                if (e == 'u') {
                    if (i + 4 >= n || !hex_digit(s[i + 1]) || !hex_digit(s[i + 2]) ||
                        !hex_digit(s[i + 3]) || !hex_digit(s[i + 4]))
                        return 0;
                    i += 4;
                } else if (!strchr("\"\\/bfnrt", e) || e == 0) {
                    return 0;
                }
            }
            break;
        default:
            return 0;
        }
    }
    return depth == 0 && values > 0;
}

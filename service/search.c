/*
 * search.c — SIMD substring search (see search.h).
 *
 * The "generic SIMD" method (W. Muła): for two fixed offsets p1 < p2 inside
 * the needle, compare 16 bytes of the haystack at i+p1 with needle[p1] and at
 * i+p2 with needle[p2]; the AND of both masks marks starts i+k where both bytes
 * agree, and only those are checked with memcmp. Choosing p1/p2 inside the
 * quotes of a literal like "ListAccounts" keeps false candidates rare.
 */
#include "search.h"

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

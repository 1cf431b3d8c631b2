/*
 * search.c — SIMD substring search (see search.h).
 *
 * The "generic SIMD" method (W. Muła): for two fixed offsets p1 < p2 inside
 * the needle, compare 16 bytes of the haystack at i+p1 with needle[p1] and at
 * i+p2 with needle[p2]; the AND of both masks marks starts i+k where both bytes
 * agree, and only those are checked with memcmp. Choosing p1/p2 inside the
 * quotes of a literal like "ListAccounts" keeps false candidates rare.
 *
 * Where the CPU has AVX2 (checked once at run time) the same loop takes 32
 * starts per step. nt_search_clean also ORs a third comparison, with '\\', into
 * an accumulator, so a search that runs to the end without a match has also
 * told the prefilter whether the record holds any JSON escape, which saves it
 * a separate pass.
 */
#include "search.h"

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

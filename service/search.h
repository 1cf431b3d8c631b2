/*
 * search.h — substring search for the rule prefilter's hot loop.
 *
 * nt_search finds a short literal in a record's raw bytes. glibc's memmem is
 * a portable two-way search that callgrind showed at ~18k instructions per
 * 1.9 KB record for the shipped rule's prefilter; this one uses SSE2 to test
 * 16 candidate positions at a time on two bytes of the needle (skipping a
 * leading and trailing quote, which JSON is full of) and confirms candidates
 * with memcmp (64 positions at a time where the CPU has AVX2, 128 when no
 * clean flag is asked for, the last ones from a zero-padded copy of the
 * tail). Without SSE2 it checks position by position.
 */
#ifndef NT_SEARCH_H
#define NT_SEARCH_H

#include <stddef.h>

/* Pointer to the first occurrence of needle[0..m) in hay[0..n), or NULL. m = 0 matches at hay. */
const char *nt_search(const char *hay, size_t n, const char *needle, size_t m);

/* nt_search, and when there is no match, *clean = 1 if hay holds no backslash
 * at all (so no JSON escape can hide anything in it); *clean is left alone
 * otherwise. clean may be NULL. */
const char *nt_search_clean(const char *hay, size_t n, const char *needle, size_t m, int *clean);

/* 1 when text contains a JSON \u escape (a backslash followed by 'u'). */
int nt_has_unicode_escape(const char *text, size_t n);

/* 1 when text[0..n) is, structurally, one or more complete JSON objects or
 * arrays (concatenated or whitespace-separated, as the decoders accept):
 * every string closed, no raw control byte inside one, every escape one of
 * \" \\ \/ \b \f \n \r \t \uXXXX, braces and brackets balanced and
 * properly nested outside strings (at most 64 deep), no raw control byte
 * but whitespace outside strings, and nothing but whitespace between the
 * top-level values. A single pass (64 bytes at a time with SSE2, or AVX2
 * and PCLMUL where the CPU has them), no allocation; NOT a parse:
 * `{"a" "b"}`, `[1 2]` or `{"a": @}` pass.
 * The prefilter's skip path uses it so a truncated or garbled unit is parsed
 * (and rejected as not_json) instead of being counted as prefiltered. */
int nt_json_structure_ok(const char *text, size_t n);

/* nt_json_structure_ok without the AVX2 path, whatever the CPU: the SSE2 (or
 * byte-at-a-time) scan other CPUs take. For the tests, which hold both paths
 * to one reference. */
int nt_json_structure_ok_portable(const char *text, size_t n);

#endif

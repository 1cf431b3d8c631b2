/*
 * search.h — substring search for the rule prefilter's hot loop.
 *
 * nt_search finds a short literal in a record's raw bytes. glibc's memmem is
 * a portable two-way search that callgrind showed at ~18k instructions per
 * 1.9 KB record for the shipped rule's prefilter; this one uses SSE2 to test
 * 16 candidate positions at a time on two bytes of the needle (skipping a
 * leading and trailing quote, which JSON is full of) and confirms candidates
 * with memcmp (32 positions at a time where the CPU has AVX2). Without SSE2 it
 * checks position by position.
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

#endif

/*
 * glob.c — compile and match ES-style wildcard patterns (see glob.h).
 *
 * A pattern compiles to an array of 16-bit ops (a literal byte, `*` or `?`).
 * When the only stars are at the ends and there is no `?`, the pattern is one
 * literal and matching is a memcmp or memmem. Otherwise the general matcher
 * splits the pattern at its stars into segments of literal bytes and `?`:
 *
 *   head * s1 * s2 * … * tail
 *
 * A segment matched from a given position is deterministic (each `?` takes the
 * UTF-8 sequence that starts there), so the head is tried once at 0, the tail
 * only at the few starts that can end exactly at the end of the text (its byte
 * length lies between lits+ones and lits+4·ones), and every middle segment
 * takes the match that ENDS earliest from the current position: any match of
 * the rest that fits after a later end also fits after the earliest one, so
 * this greedy choice never loses a match and nothing is ever retried.
 * A middle segment without `?` is found with memmem (linear); one with `?` is
 * tried at the starts where it fits, at most (n - L + 1)·L byte steps for a
 * segment of L ops against n text bytes; successive segments scan disjoint
 * ranges of starts, so a whole match costs at most n·Lmax steps plus O(n+m).
 * Linear in the text except for middle `?` segments, whose cost callers bound
 * by bounding the pattern and the text (exceptions: 1024-byte patterns and
 * ignore_above values, see exception.h: measured worst ~0.6 ms per value and
 * entry, a middle segment of ~512 ops against 1024 bytes). The classic single-
 * backtrack algorithm this replaced spent O(n·m) on `*aaaa…b?` against a long
 * run of `a` (12 s for 4 entries and a 1 MB value); now the tail makes that
 * O(m). No recursion and no allocation while matching.
 */
#include "glob.h"

#include <stdlib.h>
#include <string.h>

void nt_glob_free(nt_glob *g)
{
    if (!g) return;
    free(g->lit);
    free(g->ops);
    memset(g, 0, sizeof *g);
}

static nt_status glob_oom(nt_glob *g, nt_err *err)
{
    nt_glob_free(g);
    return nt_fail(err, NT_ERR_NOMEM, "out of memory compiling a wildcard");
}

nt_status nt_glob_compile(nt_glob *g, const char *pattern, size_t len, nt_err *err)
{
    memset(g, 0, sizeof *g);
    g->ops = malloc((len + 1) * sizeof *g->ops);
    if (!g->ops) return glob_oom(g, err);
    size_t n = 0, stars = 0, ones = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)pattern[i];
        if (c == '\\') {
            if (i + 1 >= len) {
                nt_glob_free(g);
                return nt_fail(err, NT_ERR_PARSE, "wildcard pattern ends with a lone backslash");
            }
            g->ops[n++] = (unsigned char)pattern[++i];
        } else if (c == '*') {
            if (n == 0 || g->ops[n - 1] != NT_GLOB_OP_STAR) g->ops[n++] = NT_GLOB_OP_STAR, stars++;
        } else if (c == '?') {
            g->ops[n++] = NT_GLOB_OP_ONE, ones++;
        } else {
            g->ops[n++] = c;
        }
    }
    g->ops_len = n;
    g->stars = stars;
    g->ones = ones;

    size_t lo = 0, hi = n;
    int lead = lo < hi && g->ops[lo] == NT_GLOB_OP_STAR;
    if (lead) lo++;
    int trail = hi > lo && g->ops[hi - 1] == NT_GLOB_OP_STAR;
    if (trail) hi--;
    if (ones > 0 || stars != (size_t)lead + (size_t)trail) {
        /* lit = the ops as bytes (`*`/`?` positions hold 0), for memmem. */
        g->kind = NT_GLOB_GENERAL;
        g->lit = malloc(n + 1);
        if (!g->lit) return glob_oom(g, err);
        for (size_t i = 0; i < n; i++)
            g->lit[i] = g->ops[i] < 256 ? (char)g->ops[i] : 0;
        g->lit[n] = 0;
        return NT_OK;
    }
    g->lit_len = hi - lo;
    g->lit = malloc(g->lit_len + 1);
    if (!g->lit) return glob_oom(g, err);
    for (size_t i = 0; i < g->lit_len; i++)
        g->lit[i] = (char)g->ops[lo + i];
    g->lit[g->lit_len] = 0;
    if (lead || trail) {
        if (g->lit_len == 0)
            g->kind = NT_GLOB_ANY;
        else
            g->kind = lead && trail ? NT_GLOB_CONTAINS : lead ? NT_GLOB_SUFFIX : NT_GLOB_PREFIX;
    } else {
        g->kind = NT_GLOB_EXACT;
    }
    return NT_OK;
}

/* Length of the UTF-8 sequence that starts with byte c (1 for a stray byte). */
static size_t utf8_len(unsigned char c)
{
    if (c >= 0xF0 && c < 0xF8) return 4;
    if (c >= 0xE0 && c < 0xF0) return 3;
    if (c >= 0xC0 && c < 0xE0) return 2;
    return 1;
}

#define NO_MATCH ((size_t)-1)

/* Match ops[a..b) (literals and `?` only) at text position i: the end
 * position, or NO_MATCH. */
static size_t seg_at(const uint16_t *ops, size_t a, size_t b, const unsigned char *t, size_t tn,
                     size_t i)
{
    for (size_t p = a; p < b; p++) {
        if (i >= tn) return NO_MATCH;
        if (ops[p] == NT_GLOB_OP_ONE) {
            size_t l = utf8_len(t[i]);
            i += i + l > tn ? 1 : l;
        } else if (ops[p] != t[i]) {
            return NO_MATCH;
        } else {
            i++;
        }
    }
    return i;
}

/* The earliest end of a match of ops[a..b) starting at or after i. */
static size_t seg_earliest(const nt_glob *g, size_t a, size_t b, const unsigned char *t, size_t tn,
                           size_t i)
{
    size_t ones = 0;
    for (size_t p = a; p < b; p++)
        ones += g->ops[p] == NT_GLOB_OP_ONE;
    if (ones == 0) {
        if (b - a > tn - i) return NO_MATCH;
        const unsigned char *hit = memmem(t + i, tn - i, g->lit + a, b - a);
        return hit ? (size_t)(hit - t) + (b - a) : NO_MATCH;
    }
    /* Every op takes at least one byte: no start after tn - (b - a) fits. */
    if (b - a > tn - i) return NO_MATCH;
    size_t best = NO_MATCH;
    for (size_t s = i; s <= tn - (b - a) && (best == NO_MATCH || s < best); s++) {
        size_t e = seg_at(g->ops, a, b, t, tn, s);
        if (e == NO_MATCH || e >= best) continue;
        best = e;
        /* Every `?` took one byte: no later start can end sooner. Only a
         * multi-byte UTF-8 sequence under a `?` makes that possible. */
        if (e - s == b - a) break;
    }
    return best;
}

static int match_general(const nt_glob *g, const unsigned char *t, size_t tn)
{
    const uint16_t *ops = g->ops;
    size_t nops = g->ops_len;
    if (g->stars == 0) return seg_at(ops, 0, nops, t, tn, 0) == tn;
    size_t first = 0, last = nops - 1;
    while (ops[first] != NT_GLOB_OP_STAR)
        first++;
    while (ops[last] != NT_GLOB_OP_STAR)
        last--;
    size_t i = seg_at(ops, 0, first, t, tn, 0);
    if (i == NO_MATCH) return 0;
    for (size_t a = first + 1; a < last;) {
        size_t b = a;
        while (ops[b] != NT_GLOB_OP_STAR)
            b++;
        if (b > a && (i = seg_earliest(g, a, b, t, tn, i)) == NO_MATCH) return 0;
        a = b + 1;
    }
    /* The tail ends at tn; its length is lits + (1..4 per `?`). */
    size_t lits = 0, ones = 0;
    for (size_t p = last + 1; p < nops; p++)
        ops[p] == NT_GLOB_OP_ONE ? ones++ : lits++;
    if (lits + ones == 0) return 1;
    size_t lo = lits + ones, hi = lits + 4 * ones;
    if (tn < lo || tn - lo < i) return 0;
    size_t from = tn >= hi && tn - hi > i ? tn - hi : i;
    for (size_t s = from; s <= tn - lo; s++)
        if (seg_at(ops, last + 1, nops, t, tn, s) == tn) return 1;
    return 0;
}

int nt_glob_match(const nt_glob *g, const char *text, size_t len)
{
    switch (g->kind) {
    case NT_GLOB_ANY:
        return 1;
    case NT_GLOB_EXACT:
        return len == g->lit_len && memcmp(text, g->lit, len) == 0;
    case NT_GLOB_PREFIX:
        return len >= g->lit_len && memcmp(text, g->lit, g->lit_len) == 0;
    case NT_GLOB_SUFFIX:
        return len >= g->lit_len && memcmp(text + len - g->lit_len, g->lit, g->lit_len) == 0;
    case NT_GLOB_CONTAINS:
        return memmem(text, len, g->lit, g->lit_len) != NULL;
    case NT_GLOB_GENERAL:
        break;
    }
    return match_general(g, (const unsigned char *)text, len);
}

void nt_glob_longest_literal(const nt_glob *g, const char **lit, size_t *len)
{
    *lit = NULL;
    *len = 0;
    if (g->kind == NT_GLOB_GENERAL || g->kind == NT_GLOB_ANY) return;
    *lit = g->lit;
    *len = g->lit_len;
}

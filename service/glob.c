/*
 * glob.c — compile and match ES-style wildcard patterns (see glob.h).
 *
 * A pattern compiles to an array of 16-bit ops (a literal byte, `*` or `?`).
 * When the only stars are at the ends and there is no `?`, the pattern is one
 * literal and matching is a memcmp or memmem. Otherwise the general matcher is
 * the classic iterative algorithm that remembers the last `*` and retries from
 * there: O(n·m) worst case, no recursion and no allocation.
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

    size_t lo = 0, hi = n;
    int lead = lo < hi && g->ops[lo] == NT_GLOB_OP_STAR;
    if (lead) lo++;
    int trail = hi > lo && g->ops[hi - 1] == NT_GLOB_OP_STAR;
    if (trail) hi--;
    if (ones > 0 || stars != (size_t)lead + (size_t)trail) {
        g->kind = NT_GLOB_GENERAL;
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

static int match_general(const uint16_t *ops, size_t nops, const unsigned char *t, size_t tn)
{
    size_t p = 0, i = 0;
    size_t star_p = (size_t)-1, star_i = 0;
    while (i < tn) {
        if (p < nops && ops[p] < 256 && ops[p] == t[i]) {
            p++;
            i++;
        } else if (p < nops && ops[p] == NT_GLOB_OP_ONE) {
            size_t l = utf8_len(t[i]);
            i += i + l > tn ? 1 : l;
            p++;
        } else if (p < nops && ops[p] == NT_GLOB_OP_STAR) {
            star_p = ++p;
            star_i = i;
        } else if (star_p != (size_t)-1) {
            p = star_p;
            i = ++star_i;
        } else {
            return 0;
        }
    }
    while (p < nops && ops[p] == NT_GLOB_OP_STAR)
        p++;
    return p == nops;
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
    return match_general(g->ops, g->ops_len, (const unsigned char *)text, len);
}

void nt_glob_longest_literal(const nt_glob *g, const char **lit, size_t *len)
{
    *lit = NULL;
    *len = 0;
    if (g->kind == NT_GLOB_GENERAL || g->kind == NT_GLOB_ANY) return;
    *lit = g->lit;
    *len = g->lit_len;
}

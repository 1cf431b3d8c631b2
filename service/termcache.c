/*
 * termcache.c — the known-term hint (see termcache.h).
 */
#include "termcache.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define WAYS 4

typedef struct tc_entry {
    uint64_t k0, k1;  /* 0, 0 = empty */
    nt_time_ms until; /* the history key lives at least until then */
} tc_entry;

struct nt_termcache {
    tc_entry *e;
    size_t sets; /* a power of two */
};

nt_termcache *termcache_new(size_t entries)
{
    if (entries == 0) return NULL;
    size_t sets = 1;
    while (sets * WAYS < entries && sets < ((size_t)1 << 40))
        sets <<= 1;
    nt_termcache *tc = malloc(sizeof *tc);
    if (!tc) return NULL;
    tc->e = calloc(sets * WAYS, sizeof *tc->e);
    if (!tc->e) {
        free(tc);
        return NULL;
    }
    tc->sets = sets;
    return tc;
}

void termcache_free(nt_termcache *tc)
{
    if (!tc) return;
    free(tc->e);
    free(tc);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return 0;
}

/* 128 bits of the term hash (its first 32 hex digits) mixed with an FNV-1a of
 * the rule id; never 0, 0. */
static void make_key(const char *rule_id, const char *term_hash, uint64_t *k0, uint64_t *k1)
{
    uint64_t h = 1469598103934665603ull;
    for (const unsigned char *p = (const unsigned char *)rule_id; *p; p++)
        h = (h ^ *p) * 1099511628211ull;
    uint64_t a = 0, b = 0;
    size_t i = 0;
    for (; i < 16 && term_hash[i]; i++)
        a = a << 4 | (uint64_t)hexval(term_hash[i]);
    for (; i < 32 && term_hash[i]; i++)
        b = b << 4 | (uint64_t)hexval(term_hash[i]);
    *k0 = a ^ h;
    *k1 = b ^ (h * 0x9E3779B97F4A7C15ull);
    if (*k0 == 0 && *k1 == 0) *k1 = 1;
}

static tc_entry *set_of(const nt_termcache *tc, uint64_t k0)
{
    size_t set = (size_t)(k0 ^ (k0 >> 29)) & (tc->sets - 1);
    return &tc->e[set * WAYS];
}

int termcache_known(const nt_termcache *tc, const char *rule_id, const char *term_hash,
                    nt_time_ms now)
{
    if (!tc) return 0;
    uint64_t k0, k1;
    make_key(rule_id, term_hash, &k0, &k1);
    const tc_entry *set = set_of(tc, k0);
    for (int w = 0; w < WAYS; w++)
        if (set[w].k0 == k0 && set[w].k1 == k1) return now + TERMCACHE_MARGIN_MS < set[w].until;
    return 0;
}

void termcache_put(nt_termcache *tc, const char *rule_id, const char *term_hash, nt_time_ms until)
{
    if (!tc) return;
    uint64_t k0, k1;
    make_key(rule_id, term_hash, &k0, &k1);
    tc_entry *set = set_of(tc, k0);
    tc_entry *victim = &set[0];
    for (int w = 0; w < WAYS; w++) {
        if (set[w].k0 == k0 && set[w].k1 == k1) {
            if (until > set[w].until) set[w].until = until;
            return;
        }
        if (set[w].k0 == 0 && set[w].k1 == 0) {
            victim = &set[w];
            break;
        }
        if (set[w].until < victim->until) victim = &set[w];
    }
    victim->k0 = k0;
    victim->k1 = k1;
    victim->until = until;
}

size_t termcache_size(const nt_termcache *tc)
{
    size_t n = 0;
    for (size_t i = 0; tc && i < tc->sets * WAYS; i++)
        n += tc->e[i].k0 != 0 || tc->e[i].k1 != 0;
    return n;
}

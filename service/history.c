/*
 * history.c — the in-memory history backend (see history.h).
 *
 * An open-addressing hash table keyed by "rule_id\0term_hash" holding the
 * expiry time of each term (last sighting + window), exactly mirroring what
 * Redis does with `SET … PX window` refreshed on every sighting. Expired
 * entries are treated as absent and overwritten in place.
 */
#include "history.h"

#include "sha256.h"

#include <stdlib.h>
#include <string.h>

typedef struct mh_entry {
    unsigned char key[32]; /* sha256(rule_id \0 term_hash) */
    nt_time_ms expires;    /* 0 = empty slot */
} mh_entry;

struct memhist {
    mh_entry *slots;
    size_t cap, used;
};

memhist *memhist_new(void)
{
    memhist *h = calloc(1, sizeof *h);
    if (!h) return NULL;
    h->cap = 1024;
    h->slots = calloc(h->cap, sizeof *h->slots);
    if (!h->slots) {
        free(h);
        return NULL;
    }
    return h;
}

void memhist_free(memhist *h)
{
    if (!h) return;
    free(h->slots);
    free(h);
}

size_t memhist_size(const memhist *h)
{
    return h->used;
}

static size_t slot_of(const memhist *h, const unsigned char key[32])
{
    size_t v;
    memcpy(&v, key, sizeof v);
    return v & (h->cap - 1);
}

static mh_entry *find(memhist *h, const unsigned char key[32])
{
    size_t i = slot_of(h, key);
    while (h->slots[i].expires != 0 && memcmp(h->slots[i].key, key, 32) != 0)
        i = (i + 1) & (h->cap - 1);
    return &h->slots[i];
}

static int grow(memhist *h)
{
    mh_entry *old = h->slots;
    size_t oldcap = h->cap;
    mh_entry *slots = calloc(oldcap * 2, sizeof *slots);
    if (!slots) return -1;
    h->slots = slots;
    h->cap = oldcap * 2;
    for (size_t i = 0; i < oldcap; i++)
        if (old[i].expires != 0) *find(h, old[i].key) = old[i];
    free(old);
    return 0;
}

static nt_status memhist_observe(void *ctx, store_obs *obs, size_t n, nt_err *err)
{
    memhist *h = ctx;
    for (size_t i = 0; i < n; i++) {
        store_obs *o = &obs[i];
        o->is_new = 0;
        if (o->mode == STORE_OBS_BACKFILL && o->ttl_ms <= 0) continue;
        if ((h->used + 1) * 2 > h->cap && grow(h) != 0)
            return nt_fail(err, NT_ERR_NOMEM, "out of memory in the history table");
        sha256_ctx c;
        unsigned char key[32];
        sha256_init(&c);
        sha256_update(&c, o->rule_id, strlen(o->rule_id) + 1);
        sha256_update(&c, o->term_hash, strlen(o->term_hash));
        sha256_final(&c, key);
        mh_entry *e = find(h, key);
        int present = e->expires != 0 && e->expires > o->seen_ms;
        /* Live and learning sightings expire one window after they happen;
         * backfill gives the remaining TTL as of created_ms (now). */
        nt_time_ms expires =
            (o->mode == STORE_OBS_BACKFILL ? o->created_ms : o->seen_ms) + o->ttl_ms;
        if (e->expires == 0) {
            memcpy(e->key, key, 32);
            h->used++;
        }
        if (o->mode == STORE_OBS_BACKFILL) {
            if (!present || expires > e->expires) e->expires = expires;
            continue;
        }
        /* A sighting refreshes the TTL whether or not the term was new. */
        e->expires = expires > 0 ? expires : 1;
        o->is_new = !present;
    }
    return NT_OK;
}

nt_history memhist_history(memhist *h)
{
    return (nt_history){.ctx = h, .observe = memhist_observe};
}

static nt_status store_history_observe(void *ctx, store_obs *obs, size_t n, nt_err *err)
{
    return store_observe(ctx, obs, n, err);
}

nt_history store_history(store *st)
{
    return (nt_history){.ctx = st, .observe = store_history_observe};
}

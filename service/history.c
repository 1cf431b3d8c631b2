/*
 * history.c — the in-memory history backend (see history.h).
 *
 * An open-addressing hash table of 32-byte keys, each with an expiry time,
 * mirrors what the Redis script keeps:
 *   'N' rule\0term   a new_terms term: last sighting + window, exactly like
 *                    `SET … PX window` refreshed on every sighting;
 *   'A' alert id     an alert exists (query rules: one alert per event);
 *   'S' rule\0group  a suppression group: first alert + duration, and that
 *                    alert's id (later alerts of the group are counted on it);
 *   'D' owner\0id    an event already counted on a suppressed alert;
 *   'T' rule\0group  a threshold group: index of its event window in groups[].
 * Expired entries are treated as absent and overwritten in place. Threshold
 * windows are small arrays pruned to [seen − window, seen] on every sighting,
 * with the same rules as OBSERVE_LUA in store.c.
 */
#include "history.h"

#include "sha256.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MH_FOREVER INT64_MAX

typedef struct mh_entry {
    unsigned char key[32];
    nt_time_ms expires; /* 0 = empty slot */
    size_t group;       /* 'T': index + 1 into groups */
    char alert_id[33];  /* 'S': the alert the group's events are counted on */
} mh_entry;

typedef struct mh_event {
    char id[33];      /* the event's alert id */
    nt_time_ms etime; /* event time */
    nt_time_ms seen;
    int used; /* already counted in an alert */
} mh_event;

typedef struct mh_card {
    char hash[17];
    nt_time_ms seen;
} mh_card;

typedef struct mh_group {
    mh_event *ev;
    size_t n, cap;
    mh_card *card;
    size_t nc, capc;
    unsigned long late_call; /* = memhist.calls: an observation of this call needs its doc */
} mh_group;

struct memhist {
    mh_entry *slots;
    size_t cap, used, terms;
    mh_group *groups;
    size_t n_groups, cap_groups;
    unsigned long calls; /* memhist_observe calls so far */
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
    for (size_t i = 0; i < h->n_groups; i++) {
        free(h->groups[i].ev);
        free(h->groups[i].card);
    }
    free(h->groups);
    free(h->slots);
    free(h);
}

size_t memhist_size(const memhist *h)
{
    return h->terms;
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

/* The key of kind k over a\0b. */
static void make_key(unsigned char key[32], char k, const char *a, const char *b)
{
    sha256_ctx c;
    sha256_init(&c);
    sha256_update(&c, &k, 1);
    sha256_update(&c, a, strlen(a) + 1);
    sha256_update(&c, b, strlen(b));
    sha256_final(&c, key);
}

/* The slot for key, claimed (expires = 1) when it was empty. NULL on OOM. */
static mh_entry *slot(memhist *h, const unsigned char key[32])
{
    if ((h->used + 1) * 2 > h->cap && grow(h) != 0) return NULL;
    mh_entry *e = find(h, key);
    if (e->expires == 0) {
        memcpy(e->key, key, 32);
        e->expires = 1;
        e->group = 0;
        e->alert_id[0] = '\0';
        h->used++;
    }
    return e;
}

static int live(const mh_entry *e, nt_time_ms at)
{
    return e->expires > at;
}

/* Alert suppression and the alert itself (alert_or_suppress in OBSERVE_LUA). */
static nt_status alert_or_suppress(memhist *h, store_obs *o, nt_err *err)
{
    unsigned char key[32];
    mh_entry *s = NULL;
    if (o->supp_ms > 0) {
        make_key(key, 'S', o->rule_id, o->supp_hash);
        if (!(s = slot(h, key))) goto nomem;
        if (live(s, o->seen_ms) && strcmp(s->alert_id, o->alert_id) != 0) {
            char owner[33];
            memcpy(owner, s->alert_id, sizeof owner);
            make_key(key, 'D', owner, o->alert_id);
            mh_entry *d = slot(h, key);
            if (!d) goto nomem;
            if (d->expires == MH_FOREVER) return NT_OK; /* counted on it before */
            d->expires = MH_FOREVER;
            o->suppressed = 1;
            memcpy(o->supp_into, owner, sizeof o->supp_into);
            return NT_OK;
        }
    }
    make_key(key, 'A', o->alert_id, "");
    mh_entry *a = slot(h, key);
    if (!a) goto nomem;
    if (a->expires == MH_FOREVER) return NT_OK; /* the alert exists: a duplicate */
    a->expires = MH_FOREVER;
    o->is_new = 1;
    if (o->mode != STORE_OBS_LIVE) return NT_OK;
    o->alert_written = 1;
    if (s) {
        /* slot() may have moved s when the table grew: look it up again. */
        make_key(key, 'S', o->rule_id, o->supp_hash);
        s = find(h, key);
        s->expires = o->seen_ms + o->supp_ms;
        snprintf(s->alert_id, sizeof s->alert_id, "%s", o->alert_id);
    }
    return NT_OK;
nomem:
    return nt_fail(err, NT_ERR_NOMEM, "out of memory in the history table");
}

static nt_status observe_new_terms(memhist *h, store_obs *o, nt_err *err)
{
    if (o->mode == STORE_OBS_BACKFILL && o->ttl_ms <= 0) return NT_OK;
    unsigned char key[32];
    make_key(key, 'N', o->rule_id, o->term_hash);
    mh_entry *e = slot(h, key);
    if (!e) return nt_fail(err, NT_ERR_NOMEM, "out of memory in the history table");
    int fresh = e->expires == 1;
    int present = !fresh && live(e, o->seen_ms);
    if (o->defer_doc && !present && o->mode == STORE_OBS_LIVE) {
        o->needs_doc = 1; /* nothing written: the caller sends it again with its document */
        return NT_OK;
    }
    if (fresh) h->terms++;
    /* Live and learning sightings expire one window after they happen;
     * backfill gives the remaining TTL as of created_ms (now). */
    nt_time_ms expires = (o->mode == STORE_OBS_BACKFILL ? o->created_ms : o->seen_ms) + o->ttl_ms;
    if (o->mode == STORE_OBS_BACKFILL) {
        if (!present || expires > e->expires) e->expires = expires > 1 ? expires : 2;
        return NT_OK;
    }
    /* A sighting refreshes the TTL whether or not the term was new. */
    e->expires = expires > 1 ? expires : 2;
    if (present) return NT_OK;
    if (o->mode != STORE_OBS_LIVE) {
        o->is_new = 1;
        return NT_OK;
    }
    nt_status st = alert_or_suppress(h, o, err);
    /* A new term is new even when its alert was suppressed or already stored. */
    if (st == NT_OK && !o->suppressed) o->is_new = 1;
    return st;
}

static mh_group *group_of(memhist *h, const store_obs *o)
{
    unsigned char key[32];
    make_key(key, 'T', o->rule_id, o->term_hash);
    mh_entry *e = slot(h, key);
    if (!e) return NULL;
    e->expires = MH_FOREVER;
    if (e->group == 0) {
        if (h->n_groups == h->cap_groups) {
            size_t cap = h->cap_groups ? h->cap_groups * 2 : 16;
            mh_group *g = realloc(h->groups, cap * sizeof *g);
            if (!g) return NULL;
            h->groups = g;
            h->cap_groups = cap;
        }
        memset(&h->groups[h->n_groups], 0, sizeof *h->groups);
        e->group = ++h->n_groups;
    }
    return &h->groups[e->group - 1];
}

/* The distinct cardinality values g would hold with those of card added. */
static long long card_after(const mh_group *g, const char *card)
{
    long long n = (long long)g->nc;
    for (const char *p = card ? card : ""; *p;) {
        size_t len = strcspn(p, ",");
        if (len == 16) {
            int known = 0;
            for (size_t i = 0; i < g->nc && !known; i++)
                known = memcmp(g->card[i].hash, p, 16) == 0;
            for (const char *q = card; q < p && !known;) {
                size_t qlen = strcspn(q, ",");
                known = qlen == 16 && memcmp(q, p, 16) == 0;
                q += qlen + (q[qlen] == ',');
            }
            n += !known;
        }
        p += len + (p[len] == ',');
    }
    return n;
}

/* A deferred document (store_obs.defer_doc): 1 when this event would reach
 * the threshold, or an earlier one of its group in this call did. */
static int threshold_needs_doc(const memhist *h, const mh_group *g, const store_obs *o)
{
    if (g->late_call == h->calls) return 1;
    long long count = 1;
    for (size_t i = 0; i < g->n; i++)
        count += !g->ev[i].used;
    return count >= o->thr_value && (o->card_value <= 0 || card_after(g, o->card) >= o->card_value);
}

static nt_status observe_threshold(memhist *h, store_obs *o, nt_err *err)
{
    mh_group *g = group_of(h, o);
    if (!g) return nt_fail(err, NT_ERR_NOMEM, "out of memory in the history table");
    nt_time_ms from = o->seen_ms - o->ttl_ms;
    nt_time_ms etime = o->event_time >= 0 ? o->event_time : o->seen_ms;
    size_t k = 0;
    int dup = 0;
    for (size_t i = 0; i < g->n; i++) {
        if (g->ev[i].seen < from) continue;
        if (g->ev[i].etime == etime && strcmp(g->ev[i].id, o->alert_id) == 0) dup = 1;
        g->ev[k++] = g->ev[i];
    }
    g->n = k;
    k = 0;
    for (size_t i = 0; i < g->nc; i++)
        if (g->card[i].seen >= from) g->card[k++] = g->card[i];
    g->nc = k;
    if (dup) return NT_OK;
    if (o->defer_doc && o->mode == STORE_OBS_LIVE && threshold_needs_doc(h, g, o)) {
        g->late_call = h->calls;
        o->needs_doc = 1; /* nothing written: the caller sends it again with its document */
        return NT_OK;
    }
    if (g->n == g->cap) {
        size_t cap = g->cap ? g->cap * 2 : 8;
        mh_event *ev = realloc(g->ev, cap * sizeof *ev);
        if (!ev) return nt_fail(err, NT_ERR_NOMEM, "out of memory in the history table");
        g->ev = ev;
        g->cap = cap;
    }
    mh_event *ne = &g->ev[g->n++];
    snprintf(ne->id, sizeof ne->id, "%s", o->alert_id);
    ne->etime = etime;
    ne->seen = o->seen_ms;
    ne->used = 0;
    for (const char *p = o->card ? o->card : ""; *p;) {
        size_t len = strcspn(p, ",");
        if (len == 16) {
            size_t i;
            for (i = 0; i < g->nc; i++)
                if (memcmp(g->card[i].hash, p, 16) == 0) break;
            if (i == g->nc) {
                if (g->nc == g->capc) {
                    size_t cap = g->capc ? g->capc * 2 : 8;
                    mh_card *c = realloc(g->card, cap * sizeof *c);
                    if (!c) return nt_fail(err, NT_ERR_NOMEM, "out of memory in the history table");
                    g->card = c;
                    g->capc = cap;
                }
                memcpy(g->card[g->nc].hash, p, 16);
                g->card[g->nc].hash[16] = '\0';
                g->nc++;
            }
            g->card[i].seen = o->seen_ms;
        }
        p += len + (p[len] == ',');
    }
    long long count = 0;
    nt_time_ms first = 0, last = 0;
    for (size_t i = 0; i < g->n; i++) {
        if (g->ev[i].used) continue;
        if (count == 0 || g->ev[i].etime < first) first = g->ev[i].etime;
        if (count == 0 || g->ev[i].etime > last) last = g->ev[i].etime;
        count++;
    }
    long long distinct = (long long)g->nc;
    if (count < o->thr_value || (o->card_value > 0 && distinct < o->card_value)) return NT_OK;
    /* Reached: the counted events no longer count for this group. */
    for (size_t i = 0; i < g->n; i++)
        g->ev[i].used = 1;
    g->nc = 0;
    o->thr_count = count;
    o->thr_card = distinct;
    o->thr_first = first;
    o->thr_last = last;
    if (o->mode != STORE_OBS_LIVE) {
        o->is_new = 1;
        return NT_OK;
    }
    return alert_or_suppress(h, o, err);
}

static nt_status memhist_observe(void *ctx, store_obs *obs, size_t n, nt_err *err)
{
    memhist *h = ctx;
    h->calls++;
    for (size_t i = 0; i < n; i++) {
        store_obs *o = &obs[i];
        o->is_new = o->alert_written = o->suppressed = o->needs_doc = 0;
        o->supp_into[0] = '\0';
        o->thr_count = o->thr_card = 0;
        o->thr_first = o->thr_last = 0;
        nt_status st;
        if (o->kind == STORE_KIND_THRESHOLD)
            st = observe_threshold(h, o, err);
        else if (o->kind == STORE_KIND_QUERY)
            st = o->mode == STORE_OBS_BACKFILL ? NT_OK : alert_or_suppress(h, o, err);
        else
            st = observe_new_terms(h, o, err);
        if (st != NT_OK) return st;
    }
    return NT_OK;
}

nt_history memhist_history(memhist *h)
{
    return (nt_history){.ctx = h, .observe = memhist_observe};
}

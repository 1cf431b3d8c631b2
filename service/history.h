/*
 * history.h — where new-terms history lives, behind one interface.
 *
 * The engine never talks to a backend directly: the pipeline hands a batch of
 * observations (store_obs, below) to an nt_history, which decides for
 * each one whether its term is new and, in LIVE mode, records the alert in the
 * same atomic step. Two backends implement it:
 *   - store.c: Redis, one Lua script call per batch (chunked), one round trip;
 *   - memhist (below): a hash table in memory, for `replay` and unit tests. Its
 *     clock is the observation's seen_ms (event time in replay), and a term is
 *     new when it has no sighting in [seen_ms − window, seen_ms), i.e. the
 *     Redis TTL semantics: a key written at t expires at t + window.
 */
#ifndef NT_HISTORY_H
#define NT_HISTORY_H

#include "common.h"

/* One observation of a term (or a threshold group) by a rule: the core
 * produces it (pipeline.c), a history backend decides it. The name keeps its
 * store_ prefix from when it lived in store.h; it belongs to the core. */
typedef enum {
    STORE_OBS_LIVE,    /* set/refresh the term; alert when it was new */
    STORE_OBS_LEARN,   /* set/refresh the term; never alert */
    STORE_OBS_BACKFILL /* set the term only if that lengthens its TTL; never alert */
} store_obs_mode;

/* What the observation decides, by rule type (see OBSERVE_LUA in store.c). */
typedef enum {
    STORE_KIND_NEW_TERMS, /* alert when the term is new within ttl_ms */
    STORE_KIND_QUERY,     /* alert for every observation (one per alert id) */
    STORE_KIND_THRESHOLD  /* count in the group's window of ttl_ms; alert on reaching it */
} store_obs_kind;

typedef struct store_obs {
    /* in */
    store_obs_kind kind;             /* BACKFILL and LEARN are for new_terms only */
    store_obs_mode mode;             /* beside kind: no padding between two enums */
    const char *rule_id, *term_hash; /* non-empty; threshold: the group hash */
    /* LIVE/LEARN: the history window (> 0). BACKFILL: eventTime + window - now;
     * <= 0 means too old: no term key is written (history_since is still lowered). */
    nt_time_ms ttl_ms;
    nt_time_ms seen_ms;         /* LIVE/LEARN: arrival time. BACKFILL: eventTime */
    nt_time_ms created_ms;      /* LIVE: the alert's created time (now) */
    const char *alert_id;       /* LIVE: [A-Za-z0-9._-]{1,128}, deterministic */
    const char *alert_json;     /* LIVE: the alert JSON object without status fields */
    const char *account, *user; /* LIVE: index values; NULL or "" = not indexed */
    /* threshold: alert when the group holds thr_value events (and card_value
     * distinct cardinality values, when card_value > 0) within ttl_ms of
     * seen_ms; card = comma-separated value hashes of this event ("" or NULL:
     * none); event_time names the event (with alert_id) and gives the alert's
     * first/last event times. */
    long long thr_value, card_value;
    const char *card;
    nt_time_ms event_time;
    /* alert suppression: supp_ms > 0 → later alerts of group supp_hash within
     * supp_ms of the first are counted on it instead of being created. */
    nt_time_ms supp_ms;
    const char *supp_hash;
    /* (defer_doc, an input, sits with the outcome flags below for packing) */
    /* out */
    /* 1 when the term had no history key before this observation (LIVE: the
     * alert alert_id now exists; LEARN/BACKFILL: never an alert). */
    int is_new;
    /* in: LIVE new_terms or threshold without suppression only: alert_json is
     * NULL. new_terms: the term was believed known (the pipeline's term cache);
     * if it turns out new, the backend writes nothing for this observation and
     * sets needs_doc. threshold: if the event would reach the threshold, or an
     * earlier observation of its group in the same call asked for its document,
     * the backend writes nothing for it (not the window, the cardinality or
     * used sets, nor events_matched) and sets needs_doc; every other
     * observation is applied as usual. The caller observes the needs_doc ones
     * again, in order, with their documents, in a second call: the outcome is
     * the one a single call with every document gives, provided the
     * observations of one threshold group in a call all defer or none do. */
    int defer_doc;
    /* 1: defer_doc was set and the observation needs its document; nothing was
     * written for it. */
    int needs_doc;
    /* LIVE: 1 when this observation stored the alert (0 when an alert with that
     * id was already stored, e.g. by a retried delivery after the term expired). */
    int alert_written;
    /* 1 when the alert was suppressed: the event belongs on alert supp_into
     * (Redis: also when a retry finds it counted already; memhist: only the
     * first time, so `replay` can count docs_count from it). */
    int suppressed;
    char supp_into[33];
    /* threshold, when is_new (the threshold was reached): the group's count,
     * distinct cardinality values and first/last event times. */
    long long thr_count, thr_card;
    nt_time_ms thr_first, thr_last;
} store_obs;

typedef struct nt_history {
    void *ctx;
    nt_status (*observe)(void *ctx, store_obs *obs, size_t n, nt_err *err);
} nt_history;

typedef struct memhist memhist;

memhist *memhist_new(void);
void memhist_free(memhist *h);
/* The nt_history view of h (h must outlive it). */
nt_history memhist_history(memhist *h);
/* Number of live terms (for tests). */
size_t memhist_size(const memhist *h);

#endif

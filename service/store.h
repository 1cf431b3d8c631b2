/*
 * store.h — the Redis layer: new-terms history, alerts, exceptions, the
 * dead-letter list of rejected records and per-rule counters.
 *
 * A `store` is ONE connection to Redis (TCP, TLS for rediss://, or a unix
 * socket; see netio.h), used by one thread at a time (the server keeps a pool
 * of them). It connects lazily on the first call, loads its
 * Lua scripts once per connection, and after any connection, I/O or timeout
 * error drops the connection and reconnects on a later call with exponential
 * backoff (100 ms doubling to 2 s). It never sleeps: a call made while the
 * backoff runs fails at once with NT_ERR_STORE. A call blocks for at most
 * connect_timeout_ms (when it has to connect) plus command_timeout_ms per
 * socket read (plus wait_timeout_ms for a store_observe that ends with WAIT).
 *
 * Key layout (all keys start with "nt:"; use a separate database or Redis per
 * deployment; the scripts touch keys they build themselves, so this layout
 * needs a standalone Redis, not Redis Cluster):
 *
 *   nt:term:{rule_id}:{term_hash}     string = last-seen ms; PX = history window,
 *                                     refreshed on every live sighting (new_terms)
 *   nt:thr:{rule_id}:{group}:w        zset: a threshold group's pending events,
 *                                     member "eventTimeMs:alertId", score = seen ms;
 *                                     PEXPIRE window + 1 min
 *   nt:thr:{rule_id}:{group}:u        zset: events already counted in an alert (so a
 *                                     retried event is not counted again), same
 *   nt:thr:{rule_id}:{group}:c        zset: cardinality value hashes, score = the
 *                                     latest sighting; same
 *   nt:thr:{rule_id}:groups           zset: groups with pending events, score = last
 *                                     sighting (GET /api/v1/rules counts them)
 *   nt:supp:{rule_id}:{group}         string = the id of the alert that later events
 *                                     of the group are counted on; PX = the rule's
 *                                     suppression duration
 *   nt:alert:{id}:suppressed          set of event alert ids counted on alert id
 *                                     (once each); PEXPIRE = retention
 *   nt:alert:{id}                     hash: doc (alert JSON without status
 *                                     fields), status, status_reason, created_ms,
 *                                     updated_ms, rule_id, account, user,
 *                                     history_since_ms, window_ms (new_terms),
 *                                     thr_count, thr_card, thr_first_ms,
 *                                     thr_last_ms, thr_from_ms (threshold),
 *                                     supp_start_ms, supp_end_ms,
 *                                     supp_docs_count (suppressed rules);
 *                                     PEXPIRE = alert retention
 *   nt:alerts                         zset score created_ms, member alert id
 *   nt:alerts:rule:{rule_id}          the same, per rule        } filter indexes,
 *   nt:alerts:account:{account}       per cloud.account.id     } each with
 *   nt:alerts:user:{user}             per user.name            } PEXPIRE =
 *   nt:alerts:status:{status}         per status               } retention
 *   nt:rule:{rule_id}:stats           hash: events_matched, alerts,
 *                                     last_alert_ms, history_since_ms
 *   nt:rule:{rule_id}:learning_since  string ms, set once (SET NX)
 *   nt:exceptions                     hash exception id -> item JSON text
 *   nt:exceptions:version             integer, INCR on every change
 *   nt:exceptions:rule                hash exception id -> its rule_id ('' = none),
 *                                     for the per-rule quota
 *   nt:rejects                        list of reject JSON objects, newest
 *                                     first, LTRIM to reject_cap
 *   nt:outputs:stream                 stream of {alert, event=trigger|resolve},
 *                                     XADDed by the observe and status scripts
 *                                     while it exists, MAXLEN ~ 100000; the
 *                                     other nt:outputs:* keys belong to
 *                                     deliver.c (see deliver.h)
 *
 * Alerts are trimmed when an alert is written: entries of nt:alerts older than
 * the retention, then the oldest beyond alert_cap, are removed from every index
 * and their hash deleted (at most 100 of each per write). Index zsets of other
 * rules/accounts/users are trimmed lazily (they expire as a whole, and listing
 * skips ids whose hash is gone).
 *
 * A failed connection attempt (refused, TLS certificate refused, AUTH refused)
 * is also logged, once per distinct cause for the whole process (event
 * "redis_connect"), and so is the recovery; never the password.
 *
 * Errors: NT_ERR_STORE for anything Redis-side ("redis 127.0.0.1:6399:
 * Connection refused", "redis 127.0.0.1:6399: timed out after 500 ms", script
 * error replies); NT_ERR_INVALID for bad arguments; NT_ERR_NOTFOUND /
 * NT_ERR_CONFLICT where documented. Every function writes its message into err.
 *
 * Ownership: strings passed in are only borrowed for the call (store_open copies
 * the config). json_t results are new references the caller json_decref()s;
 * char * results are malloc'd and the caller free()s them.
 */
#ifndef NT_STORE_H
#define NT_STORE_H

#include "common.h"
#include "history.h"
#include "netio.h"
#include "redis_url.h"

#include <jansson.h>
#include <stddef.h>

typedef struct store store;

/* Every field is the caller's: the store has no defaults of its own
 * (config_store() builds this from the parsed options, whose table in
 * config.c owns the defaults). store_open refuses a NULL url, a timeout,
 * retention or alert cap that is not positive. */
typedef struct store_config {
    const char *url;               /* redis[s]://[user[:password]@]host[:port][/db] or
                                      unix:///path[?db=N]; NULL = redis://127.0.0.1:6379/0 */
    const char *password;          /* may be NULL; overrides one in the URL. A user in the URL
                                      needs a password: AUTH user password */
    netio_tls_config tls;          /* rediss:// only (any field set with redis:// is an error);
                                      strings borrowed for store_open */
    int wait_replicas;             /* 0 = off; N: every store_observe ends with WAIT N and fails
                                      when fewer replicas acknowledged */
    int wait_timeout_ms;           /* WAIT's timeout, > 0 */
    int connect_timeout_ms;        /* > 0 */
    int command_timeout_ms;        /* > 0 */
    nt_time_ms alert_retention_ms; /* > 0 */
    size_t alert_cap;              /* > 0 */
    size_t reject_cap; /* 0 = keep no dead-lettered record (store_reject_push stores nothing) */
} store_config;

/* Validates and copies cfg (parses the URL). Does not connect. */
nt_status store_open(store **out, const store_config *cfg, nt_err *err);
void store_free(store *s);

/* "127.0.0.1:6379/0" or "/run/redis.sock/0": where this store points, for logs. */
const char *store_endpoint(const store *s);

nt_status store_ping(store *s, nt_err *err);

/* ---- new-terms history ------------------------------------------------- */

/* store_obs, store_obs_mode and store_obs_kind: see history.h. */

/* The live state of an alert beyond its stored document: threshold figures
 * and suppression counters. has_* = 0 when the alert has none. */
typedef struct store_alert_state {
    int has_thr;
    long long thr_count, thr_card;
    long long thr_first, thr_last, thr_from; /* ms */
    int has_supp;
    long long supp_start, supp_end; /* ms */
    long long supp_docs;
} store_alert_state;

/* Writes st into an alert document: threshold_result.count / .cardinality[0].value /
 * .from / .first_event_time / .last_event_time, and suppression.start / .end /
 * .docs_count. Used for stored alerts and by `replay`. */
void store_alert_apply_state(json_t *doc, const store_alert_state *st);

/* One pipelined round trip: one EVALSHA of the observe script per observation.
 * Each observation is atomic on the server. A query observation alerts unless
 * its id exists; new_terms and threshold as described above; then suppression.
 * LIVE and LEARN count events_matched;
 * every mode sets history_since_ms (BACKFILL lowers it to seen_ms). On any error
 * the whole call fails (observations before the failing one may have been
 * applied; a retry is safe because alert ids are deterministic and never
 * overwritten). */
nt_status store_observe(store *s, store_obs *obs, size_t n, nt_err *err);
/* The nt_history view of a Redis connection (st must outlive it). */
nt_history store_history(store *st);

/* ---- alerts ------------------------------------------------------------- */

/* Full alert documents: the stored doc merged with id, status, status_reason,
 * created_at, updated_at and history {since, depth_seconds, complete}, where
 * complete = depth >= the history window the alert was raised under. */

int store_alert_status_valid(const char *status); /* open | acknowledged | closed */
int store_alert_reason_valid(const char *reason); /* false_positive | duplicate | true_positive |
                                                     benign_positive | automated_closure | other */

/* NT_ERR_NOTFOUND when no such alert (or it expired). */
nt_status store_alert_get(store *s, const char *id, json_t **out, nt_err *err);

typedef struct store_alert_filter {
    const char *status, *rule_id, *account, *user; /* NULL = any; ANDed */
    nt_time_ms since, until;                       /* on created_ms, inclusive, when has_… */
    size_t limit;                                  /* 1..1000; 0 = 100 */
    const char *cursor;                            /* NULL or a next_cursor from a previous page */
    int has_since, has_until; /* 0 = that bound is not given (any time, also before 1970) */
} store_alert_filter;

/* Newest first (created desc, then id desc). *alerts = array of documents;
 * *next_cursor = NULL when nothing is left, else a cursor for the next page.
 * One page examines at most limit + 5000 index entries, so with sparse filters a
 * page may hold fewer than limit alerts while next_cursor is still set. The
 * cursor is a position (created_ms, id), not an offset: alerts created later
 * never shift pages. Errors: NT_ERR_INVALID for a bad status, limit or cursor
 * ("cursor is not valid"). */
nt_status store_alert_list(store *s, const store_alert_filter *f, json_t **alerts,
                           char **next_cursor, nt_err *err);

/* Atomically sets status and status_reason (reason NULL clears it), stamps
 * updated_ms = now and moves the id between status indexes. *out (may be NULL)
 * = the new document. NT_ERR_INVALID bad status/reason; NT_ERR_NOTFOUND. */
nt_status store_alert_set_status(store *s, const char *id, const char *status, const char *reason,
                                 nt_time_ms now, json_t **out, nt_err *err);

/* The same for ids[0..n) (1 <= n <= 1000) in ONE script, all or nothing:
 * every id is checked first; when any names no alert, nothing changes, the
 * result is NT_ERR_NOTFOUND and *missing = a new array of those ids (the
 * caller json_decref()s it; NULL otherwise). NT_ERR_INVALID for a bad id,
 * status or reason (before anything is sent). */
nt_status store_alert_set_status_many(store *s, const char *const *ids, size_t n,
                                      const char *status, const char *reason, nt_time_ms now,
                                      json_t **missing, nt_err *err);

/* ---- exceptions ---------------------------------------------------------- */

/* id: [A-Za-z0-9._-]{1,128}; json: a JSON object (stored as given). create=1:
 * NT_ERR_CONFLICT when the id exists; create=0 (replace): NT_ERR_NOTFOUND when
 * absent. Every change bumps nt:exceptions:version in the same script. */
typedef struct store_exception_quota {
    const char *rule_id; /* the item's rule_id; NULL or "" = none (one group of its own) */
    size_t max_total;    /* most items in the store, checked on create; 0 = no limit */
    size_t max_per_rule; /* most items with the same rule_id, this one included; 0 = no limit */
} store_exception_quota;

/* q (may be NULL: no limits) is checked in the same script that writes, so
 * concurrent writers cannot exceed it: NT_ERR_LIMIT with a sentence naming
 * the full quota. */
nt_status store_exception_put(store *s, const char *id, const char *json, int create,
                              const store_exception_quota *q, nt_err *err);
/* *json: malloc'd text. NT_ERR_NOTFOUND. */
nt_status store_exception_get(store *s, const char *id, char **json, nt_err *err);
/* NT_ERR_NOTFOUND. */
nt_status store_exception_delete(store *s, const char *id, nt_err *err);
/* All items (parsed objects, sorted by id) and the version they belong to, read
 * atomically (MULTI). version 0 = never changed. */
nt_status store_exception_all(store *s, json_t **items, long long *version, nt_err *err);
nt_status store_exception_version(store *s, long long *version, nt_err *err);
/* One page of items sorted by id: at most limit (1..1000) items with ids
 * after the cursor (NULL = from the start). *next_cursor = NULL on the last
 * page, else an opaque cursor for the next one (malloc'd). The cursor is a
 * position (an id), not an offset, so changes between pages never repeat or
 * skip an item that exists throughout. NT_ERR_INVALID "cursor is not valid". */
nt_status store_exception_page(store *s, const char *cursor, size_t limit, json_t **items,
                               char **next_cursor, nt_err *err);

/* ---- rejects (dead letters) --------------------------------------------- */

typedef struct store_reject {
    const char *reason, *route, *delivery_id, *prefix; /* NULL -> JSON null */
    long record_index;                                 /* < 0 -> null */
    nt_time_ms at;
} store_reject;

/* Pushes r[0..n) (r[n-1] ends up newest) and trims the list to reject_cap. */
nt_status store_reject_push(store *s, const store_reject *r, size_t n, nt_err *err);
/* *out = array of {"reason","at","route","delivery_id","record_index","prefix"},
 * newest first; limit 0 = 100; at most reject_cap. */
nt_status store_reject_list(store *s, size_t limit, json_t **out, nt_err *err);

/* ---- rules ---------------------------------------------------------------- */

/* *out = {"events_matched": N, "alerts": N, "last_alert_at": RFC3339|null,
 *         "history_since": RFC3339|null}; zeros/nulls for an unknown rule. */
nt_status store_rule_stats(store *s, const char *rule_id, json_t **out, nt_err *err);
/* Threshold groups of a rule that hold pending events within window_ms of now. */
nt_status store_threshold_groups(store *s, const char *rule_id, nt_time_ms now,
                                 nt_time_ms window_ms, long long *out, nt_err *err);
/* When the rule's learning period began: SET NX now, then GET (one round trip). */
nt_status store_learning_since(store *s, const char *rule_id, nt_time_ms now, nt_time_ms *since,
                               nt_err *err);

/* ---- raw commands (outputs) ---------------------------------------------- */

/* Runs one command (argv[0..argc), lens may be NULL for C strings) on this
 * store's connection, with its reconnect and timeout rules. *out = the reply
 * (the caller freeReplyObject()s it); an error reply is NT_ERR_STORE naming the
 * command. For modules that own a key space of their own (deliver.c:
 * nt:outputs:*); everything else belongs in a typed function here. */
struct redisReply;
nt_status store_command(store *s, int argc, const char **argv, const size_t *lens,
                        struct redisReply **out, nt_err *err);

/* ---- counters -------------------------------------------------------------- */

typedef struct store_counters {
    unsigned long long round_trips;      /* pipelined request/response exchanges */
    unsigned long long errors;           /* calls that failed with NT_ERR_STORE */
    unsigned long long reconnects;       /* successful connects after the first */
    unsigned long long latency_us_total; /* summed over round_trips */
    unsigned long long noscript_reloads; /* NOSCRIPT replies answered by SCRIPT LOAD */
} store_counters;

/* Plain counters, not atomics: read them from the thread that holds the store. */
void store_get_counters(const store *s, store_counters *out);

#endif

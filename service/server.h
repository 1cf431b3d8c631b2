/*
 * server.h — the state `newtermsd serve` shares between the HTTP front end
 * (http.c), the REST handlers (api.c) and the ingestion handlers (ingest.c):
 * the configuration, the rule set, a pool of Redis connections, the current
 * exception snapshot, the learning periods and the alert outputs. Nothing
 * here knows about HTTP or libmicrohttpd: http.c keeps its daemon and its
 * connection counters in its own struct.
 *
 * Ownership: the server owns its rule set, Redis connection pool, exception
 * snapshot and outputs; the configuration is borrowed from main. Rules are
 * immutable for the life of the process. Exceptions are an exc_set swapped
 * under a mutex by a background thread that polls nt:exceptions:version every
 * 250 ms, so a change made through any replica takes effect on every replica
 * within a second.
 */
#ifndef NT_SERVER_H
#define NT_SERVER_H

#include "common.h"
#include "config.h"
#include "exception.h"
#include "rule.h"
#include "store.h"

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>

typedef struct server {
    config *cfg;       /* borrowed from main */
    nt_ruleset *rules; /* owned */

    pthread_mutex_t pool_lock;
    pthread_cond_t pool_cond;
    store **pool; /* idle connections */
    size_t pool_n, pool_cap;

    pthread_mutex_t exc_lock;
    exc_set *exc;          /* current snapshot, never NULL once started */
    long long exc_version; /* version the snapshot came from, -1 before the first load */

    /* Per rule index; -1 = unknown (Redis not reached yet). Written by the
     * poller thread while workers read it, hence atomic. */
    _Atomic(nt_time_ms) *learning_since;
    atomic_int redis_ok;
    atomic_int stopping;
    pthread_t poller;
    int poller_started;
    struct deliver *deliver; /* owned; NULL without --outputs */

    /* Known-term caches (termcache.h), one per delivery in progress: taken
     * and given back like the connections, created on demand, each holding
     * about cfg->term_cache entries. */
    pthread_mutex_t terms_lock;
    struct nt_termcache **terms; /* idle caches */
    size_t terms_n, terms_cap;
} server;

/* Open the Redis pool (cfg->workers + 2 connections, lazily connected),
 * start the exception poller and, with --outputs, the output workers. Takes
 * ownership of rules (released on failure too). */
nt_status server_start(server **out, config *cfg, nt_ruleset *rules, nt_err *err);
/* Stop the output workers and the poller, then free everything. NULL is fine. */
void server_stop(server *s);

/* Borrow a Redis connection (blocks while all are in use) and give it back. */
store *server_store_acquire(server *s);
void server_store_release(server *s, store *st);
/* A known-term cache for one delivery (NULL with --term-cache 0 or out of
 * memory), and giving it back. A cache is used by one delivery at a time. */
struct nt_termcache *server_terms_acquire(server *s);
void server_terms_release(server *s, struct nt_termcache *tc);
/* PING Redis through the pool; records the answer as the server's Redis health. */
nt_status server_ping(server *s, nt_err *err);
/* The current exception snapshot, referenced; release with exc_set_unref. */
exc_set *server_exceptions(server *s);
/* Reload exceptions from Redis now (after a change made by this replica). */
void server_exceptions_refresh(server *s, store *st);
/* LIVE, or LEARN while the rule's learning period runs. */
store_obs_mode server_rule_mode(server *s, size_t rule_index, nt_time_ms now);

/* Count a request or connection refused by one of the limits of
 * api/LIMITS.md. `limit` is one of a fixed set of literals: connection_limit,
 * body, body_not_allowed, inflate, inflate_budget, json. */
void server_limit_refused(const char *limit);

#endif

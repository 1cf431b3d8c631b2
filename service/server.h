/*
 * server.h — the state `newtermsd serve` shares between its HTTP front end
 * (http.c), the REST handlers (api.c) and the ingestion pipeline.
 *
 * Ownership: the server owns its configuration, rule set, Redis connection
 * pool and the current exception snapshot. Rules are immutable for the life
 * of the process. Exceptions are an exc_set swapped under a mutex by a
 * background thread that polls nt:exceptions:version every 250 ms, so a change
 * made through any replica takes effect on every replica within a second.
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
    atomic_long inflight;   /* requests begun and not completed */
    atomic_long open_conns; /* accepted connections not yet closed */
    pthread_t poller;
    int poller_started;
    struct MHD_Daemon *mhd;
    struct deliver *deliver; /* owned; NULL without --outputs */
} server;

/* Borrow a Redis connection (blocks while all are in use) and give it back. */
store *server_store_acquire(server *s);
void server_store_release(server *s, store *st);
/* The current exception snapshot, referenced; release with exc_set_unref. */
exc_set *server_exceptions(server *s);
/* Reload exceptions from Redis now (after a change made by this replica). */
void server_exceptions_refresh(server *s, store *st);
/* LIVE, or LEARN while the rule's learning period runs. */
store_obs_mode server_rule_mode(server *s, size_t rule_index, nt_time_ms now);

/* A response as handlers produce it: a status and a JSON body (owned), or
 * plain text for /metrics. */
typedef struct http_reply {
    unsigned status;
    json_t *json;
    char *text; /* malloc'd; used when json is NULL */
    const char *content_type;
    const char *allow; /* Allow header for 405 */
} http_reply;

/* Fill `r` with the standard error body {"error": code, "message": msg}. */
void http_error(http_reply *r, unsigned status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* REST API request bodies, as sent and after gzip decoding. */
#define API_MAX_BODY (1024 * 1024)

/* What api.c needs to know about a request. */
typedef struct api_request {
    const char *method;
    const char *path; /* after /api/v1 */
    const char *body;
    size_t body_len;
    int can_write;               /* the token was a write token */
    struct MHD_Connection *conn; /* for query arguments */
} api_request;

void api_handle(server *s, const api_request *req, http_reply *r);

#endif

/*
 * http.c — routes, authentication and body limits of `newtermsd serve` on
 * libmicrohttpd; the only file that includes <microhttpd.h>. The handlers
 * behind the routes take plain data: ingest.c (deliveries), api.c (the REST
 * API); /healthz, /readyz and /metrics are answered here.
 *
 * A request goes through three calls of the MHD access handler:
 *   1. headers: pick the route, check the method and the credentials, refuse
 *      a Content-Length over the limit — each refusal is answered at once,
 *      before any body byte is read;
 *   2. body chunks: appended to a buffer that never grows past --max-body
 *      (the rest is discarded and the answer is 413);
 *   3. end of body: the handler runs and the reply is queued.
 * Every reply is counted in /metrics by route and status, and its latency
 * observed, in the completion callback.
 */
#include "http.h"

#include "api.h"
#include "awake.h"
#include "bufcache.h"
#include "decode.h"
#include "ingest.h"
#include "log.h"
#include "metrics.h"
#include "reply.h"
#include "server.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef enum route_id {
    R_NONE = 0,
    R_FIREHOSE,
    R_EVENTBRIDGE,
    R_EVENTS,
    R_API,
    R_HEALTHZ,
    R_READYZ,
    R_METRICS,
} route_id;

static const char *route_name(route_id r)
{
    /* R_NONE is "other": a label never carries the raw URL. */
    static const char *const names[] = {"other", "firehose", "eventbridge", "events",
                                        "api",   "healthz",  "readyz",      "metrics"};
    return names[r];
}

/* The front end: the shared server state plus what only HTTP knows. */
struct http_server {
    server *s; /* owned */
    struct MHD_Daemon *mhd;
    atomic_long inflight;   /* requests begun and not completed */
    atomic_long open_conns; /* accepted connections not yet closed */
    nt_awake *awake;        /* --busy-poll-us spinner; NULL = off */
};

typedef struct request {
    route_id route;
    char api_label[48]; /* finer route label for /api/v1 */
    struct timespec start;
    char *body;
    size_t len, cap;
    size_t max_body; /* this route's limit on the body as sent; 0 = takes none */
    int too_large;
    int can_write;
    unsigned status;
    int answered;
} request;

static enum MHD_Result send_reply(struct MHD_Connection *conn, request *rq, reply *r)
{
    char *buf;
    size_t len;
    const char *ctype = r->content_type;
    if (r->json) {
        buf = json_dumps(r->json, JSON_COMPACT);
        if (!buf) {
            buf = strdup("{\"error\":\"internal\",\"message\":\"out of memory\"}");
            r->status = 500;
        }
        len = buf ? strlen(buf) : 0;
        if (!ctype) ctype = "application/json";
    } else {
        buf = r->text ? r->text : strdup("");
        r->text = NULL;
        len = buf ? strlen(buf) : 0;
        if (!ctype) ctype = "text/plain; charset=utf-8";
    }
    json_decref(r->json);
    r->json = NULL;
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        len, buf ? buf : (char *)"", buf ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!resp) {
        free(buf);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", ctype);
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    if (r->allow) MHD_add_response_header(resp, "Allow", r->allow);
    if (r->status == 401 && rq->route == R_API)
        MHD_add_response_header(resp, "WWW-Authenticate", "Bearer realm=\"newtermsd\"");
    rq->status = r->status;
    rq->answered = 1;
    enum MHD_Result ret = MHD_queue_response(conn, r->status, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* ---- authentication ------------------------------------------------------ */

/* Bearer token, or Basic with the token as password (EventBridge connections). */
static int credential_from_authorization(struct MHD_Connection *conn, char *out, size_t cap,
                                         size_t *len)
{
    const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    if (!auth) return 0;
    if (strncasecmp(auth, "Bearer ", 7) == 0) {
        const char *t = auth + 7;
        while (*t == ' ')
            t++;
        *len = strlen(t);
        if (*len >= cap) return 0;
        memcpy(out, t, *len + 1);
        return 1;
    }
    if (strncasecmp(auth, "Basic ", 6) == 0) {
        char *pass = NULL;
        char *user = MHD_basic_auth_get_username_password(conn, &pass);
        int ok = 0;
        if (pass && strlen(pass) < cap) {
            *len = strlen(pass);
            memcpy(out, pass, *len + 1);
            ok = 1;
        }
        if (user) MHD_free(user);
        if (pass) {
            memset(pass, 0, strlen(pass));
            MHD_free(pass);
        }
        return ok;
    }
    return 0;
}

typedef enum auth_result { AUTH_OK, AUTH_MISSING, AUTH_WRONG, AUTH_READ_ONLY } auth_result;

/* Room for the longest token the configuration accepts (CONFIG_SECRET_ITEM_MAX
 * in config.c): a shorter buffer would make longer tokens unusable. */
#define HTTP_CREDENTIAL_MAX 4096

static auth_result authenticate(server *s, request *rq, struct MHD_Connection *conn,
                                const char *method)
{
    char cred[HTTP_CREDENTIAL_MAX + 1];
    size_t len = 0;
    const config *c = s->cfg;
    switch (rq->route) {
    case R_FIREHOSE: {
        const char *k =
            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Amz-Firehose-Access-Key");
        if (!k) return AUTH_MISSING;
        return config_secret_match(&c->firehose_keys, k, strlen(k)) ? AUTH_OK : AUTH_WRONG;
    }
    case R_EVENTBRIDGE:
    case R_EVENTS:
        if (!credential_from_authorization(conn, cred, sizeof cred, &len)) return AUTH_MISSING;
        return config_secret_match(&c->ingest_tokens, cred, len) ? AUTH_OK : AUTH_WRONG;
    case R_API:
    case R_METRICS: {
        if (rq->route == R_METRICS && !c->metrics_auth) return AUTH_OK;
        if (!credential_from_authorization(conn, cred, sizeof cred, &len)) return AUTH_MISSING;
        int w = config_secret_match(&c->write_tokens, cred, len);
        int r = config_secret_match(&c->read_tokens, cred, len);
        memset(cred, 0, sizeof cred);
        if (!w && !r) return AUTH_WRONG;
        rq->can_write = w;
        if (!w && strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) return AUTH_READ_ONLY;
        return AUTH_OK;
    }
    default:
        return AUTH_OK;
    }
}

static void handle_readyz(server *s, reply *r)
{
    nt_err err;
    nt_status rc = server_ping(s, &err);
    /* /readyz needs no credential: Redis's address and error go to the log only. */
    if (rc != NT_OK) log_msg(NT_LOG_WARN, "readyz", "state store unavailable: %s", err.msg);
    int ok = rc == NT_OK && s->rules->n > 0;
    r->status = ok ? 200 : 503;
    r->json = json_pack("{s:s,s:I,s:s}", "status", ok ? "ready" : "not_ready", "rules",
                        (json_int_t)s->rules->n, "redis", rc == NT_OK ? "ok" : "unavailable");
}

static void handle_metrics(http_server *h, reply *r)
{
    metrics_update_process();
    metrics_gauge_set("newtermsd_http_connections_open", NULL, (double)atomic_load(&h->open_conns));
    /* this /metrics request is one of them */
    metrics_gauge_set("newtermsd_http_requests_in_flight", NULL, (double)atomic_load(&h->inflight));
    if (h->awake)
        metrics_gauge_set("newtermsd_busy_poll_seconds", NULL, awake_spin_seconds(h->awake));
    r->status = 200;
    r->text = metrics_render();
    r->content_type = "text/plain; version=0.0.4; charset=utf-8";
}

/* ---- the MHD callbacks ---------------------------------------------------- */

static route_id route_of(const char *url)
{
    if (strcmp(url, "/v1/firehose") == 0) return R_FIREHOSE;
    if (strcmp(url, "/v1/eventbridge") == 0) return R_EVENTBRIDGE;
    if (strcmp(url, "/v1/events") == 0) return R_EVENTS;
    if (strcmp(url, "/healthz") == 0) return R_HEALTHZ;
    if (strcmp(url, "/readyz") == 0) return R_READYZ;
    if (strcmp(url, "/metrics") == 0) return R_METRICS;
    if (strncmp(url, "/api/v1/", 8) == 0) return R_API;
    return R_NONE;
}

static int is_post_route(route_id r)
{
    return r == R_FIREHOSE || r == R_EVENTBRIDGE || r == R_EVENTS;
}

/* Fill r with the refusal `status` of this route: Firehose's own shape on
 * /v1/firehose, the standard error body elsewhere; a 405 names the methods. */
static void refusal(struct MHD_Connection *conn, const request *rq, unsigned status,
                    const char *msg, reply *r)
{
    if (rq->route == R_FIREHOSE) {
        const char *hdr_id =
            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Amz-Firehose-Request-Id");
        ingest_firehose_reply(r, status, hdr_id, reply_code(status), msg);
    } else {
        reply_error(r, status, reply_code(status), "%s", msg);
    }
    if (status == 405)
        r->allow = rq->route == R_API         ? "GET, POST, PUT, PATCH, DELETE"
                   : is_post_route(rq->route) ? "POST"
                                              : "GET";
}

static enum MHD_Result refuse(struct MHD_Connection *conn, request *rq, unsigned status,
                              const char *msg)
{
    reply r = {0};
    refusal(conn, rq, status, msg, &r);
    return send_reply(conn, rq, &r);
}

/* The method as a metric label: one of a fixed set, never the raw token a
 * client sent (an unauthenticated client could otherwise mint series). */
static const char *method_label(const char *method)
{
    static const char *const known[] = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strcmp(method, known[i]) == 0) return known[i];
    return "other";
}

static void api_label(request *rq, const char *url, const char *method_raw)
{
    /* Collapse ids so the metric has a bounded number of series. */
    const char *method = method_label(method_raw);
    const char *p = url + 8;
    const char *kinds[] = {"alerts/status", "alerts", "exceptions", "rules", "rejects", "outputs"};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        size_t n = strlen(kinds[i]);
        if (strncmp(p, kinds[i], n) == 0 && (p[n] == 0 || p[n] == '/')) {
            snprintf(rq->api_label, sizeof rq->api_label, "%s %s%s", method, kinds[i],
                     p[n] == '/' && p[n + 1] ? "/{id}" : "");
            return;
        }
    }
    snprintf(rq->api_label, sizeof rq->api_label, "%s other", method);
}

/* Phase 1, the headers: route, method, credentials, Content-Encoding and the
 * announced length. A refusal is queued at once (rq->answered is then set and
 * the body, if any, discarded). */
static enum MHD_Result accept_headers(http_server *h, request *rq, struct MHD_Connection *conn,
                                      const char *url, const char *method)
{
    server *s = h->s;
    rq->route = route_of(url);
    if (rq->route == R_API) api_label(rq, url, method);
    if (rq->route == R_NONE) return refuse(conn, rq, 404, "no such route");
    int post = is_post_route(rq->route);
    if (post && strcmp(method, "POST") != 0) return refuse(conn, rq, 405, "use POST");
    if ((rq->route == R_HEALTHZ || rq->route == R_READYZ || rq->route == R_METRICS) &&
        strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return refuse(conn, rq, 405, "use GET");
    switch (authenticate(s, rq, conn, method)) {
    case AUTH_OK:
        break;
    case AUTH_MISSING:
        metrics_counter_add("newtermsd_auth_failures_total", "reason=\"missing\"", 1);
        return refuse(conn, rq, 401, "credentials are missing");
    case AUTH_WRONG:
        metrics_counter_add("newtermsd_auth_failures_total", "reason=\"wrong\"", 1);
        return refuse(conn, rq, 401, "credentials are not valid");
    case AUTH_READ_ONLY:
        metrics_counter_add("newtermsd_auth_failures_total", "reason=\"read_only\"", 1);
        return refuse(conn, rq, 403, "a read token cannot change anything");
    }
    const char *enc = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Encoding");
    if (enc && strcasecmp(enc, "gzip") != 0 && strcasecmp(enc, "identity") != 0)
        return refuse(conn, rq, 415, "Content-Encoding must be gzip or identity");
    rq->max_body = post ? s->cfg->max_body : rq->route == R_API ? (size_t)API_MAX_BODY : 0;
    const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
    const char *te = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Transfer-Encoding");
    if (rq->max_body == 0 && (te || (cl && strcmp(cl, "0") != 0))) {
        server_limit_refused("body_not_allowed");
        return refuse(conn, rq, 413, "this route takes no request body");
    }
    if (cl) {
        char *end;
        unsigned long long n = strtoull(cl, &end, 10);
        if (*end == 0 && n > rq->max_body) {
            server_limit_refused("body");
            return refuse(conn, rq, 413, "the request body is larger than the limit");
        }
        if (*end == 0 && n > 0 && n <= rq->max_body) {
            /* the thread's spare buffer when it fits: no fresh pages per delivery */
            rq->body = bufcache_take(n + 1, &rq->cap);
        }
    }
    return MHD_YES;
}

/* Phase 2, a body chunk: appended to a buffer that never grows past the
 * route's limit (beyond it the body is dropped and too_large set). */
static void take_body_chunk(request *rq, const char *data, size_t n)
{
    if (rq->too_large || rq->answered) return;
    if (rq->len + n > rq->max_body) {
        rq->too_large = 1;
        free(rq->body);
        rq->body = NULL;
        rq->len = rq->cap = 0;
        return;
    }
    if (rq->len + n + 1 > rq->cap) {
        size_t cap = rq->cap ? rq->cap : 64 * 1024;
        while (cap < rq->len + n + 1)
            cap *= 2;
        if (cap > rq->max_body + 1) cap = rq->max_body + 1;
        char *b = realloc(rq->body, cap);
        if (!b) {
            rq->too_large = 1;
            return;
        }
        rq->body = b;
        rq->cap = cap;
    }
    memcpy(rq->body + rq->len, data, n);
    rq->len += n;
}

/* Phase 3, Content-Encoding: gzip undone, within the route's inflate cap.
 * Reached only for a route that takes a body, once the credentials are
 * checked: nothing is inflated for a stranger. NT_OK with *inflated NULL when
 * the body is not gzip'd; on failure r holds the refusal. */
static nt_status inflate_body(server *s, request *rq, struct MHD_Connection *conn,
                              unsigned char **inflated, size_t *inflated_len, reply *r)
{
    *inflated = NULL;
    *inflated_len = 0;
    const char *enc = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Encoding");
    if (!enc || strcasecmp(enc, "gzip") != 0 || rq->len == 0) return NT_OK;
    nt_err err;
    size_t cap = rq->route == R_API ? (size_t)API_MAX_BODY : s->cfg->max_inflate;
    nt_status st = dec_body_inflate((const unsigned char *)rq->body, rq->len, cap, inflated,
                                    inflated_len, &err);
    if (st != NT_OK) {
        if (st == NT_ERR_LIMIT) server_limit_refused("inflate");
        metrics_counter_add("newtermsd_bad_deliveries_total", "route=\"gzip\"", 1);
        refusal(conn, rq, reply_status(st), err.msg, r);
    }
    return st;
}

/* The query arguments of an API request, for api.c (api_request's callbacks). */
static const char *query_value(void *ctx, const char *key)
{
    return MHD_lookup_connection_value(ctx, MHD_GET_ARGUMENT_KIND, key);
}

typedef struct query_walk {
    int (*fn)(void *arg, const char *key);
    void *arg;
} query_walk;

static enum MHD_Result query_walk_one(void *cls, enum MHD_ValueKind kind, const char *key,
                                      const char *value)
{
    (void)kind;
    (void)value;
    query_walk *w = cls;
    return w->fn(w->arg, key) ? MHD_YES : MHD_NO;
}

static void query_keys(void *ctx, int (*fn)(void *arg, const char *key), void *arg)
{
    query_walk w = {.fn = fn, .arg = arg};
    MHD_get_connection_values(ctx, MHD_GET_ARGUMENT_KIND, query_walk_one, &w);
}

/* Phase 4, dispatch: the route's handler fills r. */
static void dispatch(http_server *h, request *rq, struct MHD_Connection *conn, const char *url,
                     const char *method, const char *body, size_t len, size_t inflated_len,
                     reply *r)
{
    server *s = h->s;
    switch (rq->route) {
    case R_FIREHOSE:
        ingest_firehose(
            s, MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Amz-Firehose-Request-Id"),
            body, len, inflated_len, r);
        break;
    case R_EVENTBRIDGE:
        ingest_events(s, INGEST_EVENTBRIDGE, body, len, r);
        break;
    case R_EVENTS:
        ingest_events(s, INGEST_EVENTS, body, len, r);
        break;
    case R_HEALTHZ:
        r->status = 200;
        r->json = json_pack("{s:s}", "status", "ok");
        break;
    case R_READYZ:
        handle_readyz(s, r);
        break;
    case R_METRICS:
        handle_metrics(h, r);
        break;
    case R_API: {
        api_request ar = {.method = method,
                          .path = url + 7,
                          .body = body,
                          .body_len = len,
                          .can_write = rq->can_write,
                          .query = query_value,
                          .query_keys = query_keys,
                          .query_ctx = conn};
        api_handle(s, &ar, r);
        break;
    }
    case R_NONE:
        break;
    }
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    (void)version;
    http_server *h = cls;
    request *rq = *con_cls;
    if (!rq) {
        rq = calloc(1, sizeof *rq);
        if (!rq) return MHD_NO;
        clock_gettime(CLOCK_MONOTONIC, &rq->start);
        awake_touch(h->awake);
        *con_cls = rq;
        atomic_fetch_add(&h->inflight, 1);
        return accept_headers(h, rq, conn, url, method);
    }
    if (*upload_data_size) {
        take_body_chunk(rq, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (rq->answered) return MHD_YES;
    if (rq->too_large) {
        server_limit_refused(rq->max_body ? "body" : "body_not_allowed");
        return refuse(conn, rq, 413,
                      rq->max_body ? "the request body is larger than the limit"
                                   : "this route takes no request body");
    }
    reply r = {0};
    unsigned char *inflated = NULL;
    size_t inflated_len = 0;
    if (inflate_body(h->s, rq, conn, &inflated, &inflated_len, &r) != NT_OK)
        return send_reply(conn, rq, &r);
    if (inflated)
        dispatch(h, rq, conn, url, method, (const char *)inflated, inflated_len, inflated_len, &r);
    else
        dispatch(h, rq, conn, url, method, rq->body ? rq->body : "", rq->len, 0, &r);
    free(inflated);
    if (!r.json && !r.text) reply_error(&r, 500, "internal", "no reply was produced");
    return send_reply(conn, rq, &r);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)conn;
    http_server *h = cls;
    request *rq = *con_cls;
    if (!rq) return;
    struct timespec end;
    clock_gettime(CLOCK_MONOTONIC, &end);
    double secs =
        (double)(end.tv_sec - rq->start.tv_sec) + (double)(end.tv_nsec - rq->start.tv_nsec) / 1e9;
    char labels[128];
    const char *route = rq->route == R_API ? rq->api_label : route_name(rq->route);
    if (rq->answered) {
        snprintf(labels, sizeof labels, "route=\"%s\",code=\"%u\"", route, rq->status);
    } else {
        snprintf(labels, sizeof labels, "route=\"%s\",code=\"%s\"", route,
                 toe == MHD_REQUEST_TERMINATED_TIMEOUT_REACHED ? "timeout" : "aborted");
    }
    metrics_counter_add("newtermsd_http_requests_total", labels, 1);
    snprintf(labels, sizeof labels, "route=\"%s\"", route);
    metrics_histogram_observe("newtermsd_http_request_duration_seconds", labels, secs);
    bufcache_give(rq->body, rq->cap);
    free(rq);
    *con_cls = NULL;
    awake_touch(h->awake);
    atomic_fetch_sub(&h->inflight, 1);
}

static void describe_metrics(void)
{
    metrics_describe("newtermsd_http_requests_total", "counter",
                     "HTTP requests by route and status code.");
    metrics_describe("newtermsd_http_request_duration_seconds", "histogram",
                     "HTTP request latency by route.");
    metrics_describe("newtermsd_records_total", "counter",
                     "Ingested records by route, shape and outcome.");
    metrics_describe("newtermsd_rejected_records_total", "counter",
                     "Records dead-lettered, by route and reason.");
    metrics_describe("newtermsd_bad_deliveries_total", "counter",
                     "Request bodies refused with 4xx, by route.");
    metrics_describe("newtermsd_auth_failures_total", "counter",
                     "Requests refused for credentials.");
    metrics_describe("newtermsd_rule_matches_total", "counter", "Events that passed a rule query.");
    metrics_describe("newtermsd_exception_hits_total", "counter",
                     "Rule matches dropped by an exception.");
    metrics_describe("newtermsd_candidates_total", "counter",
                     "New-terms candidates sent to the history.");
    metrics_describe("newtermsd_combinations_capped_total", "counter",
                     "Events whose term combinations hit the cap of 100.");
    metrics_describe("newtermsd_alerts_total", "counter", "Alerts raised.");
    metrics_describe("newtermsd_alert_docs_deferred_total", "counter",
                     "Sightings sent without an alert document (new_terms: term known to this "
                     "worker; threshold: live, unsuppressed).");
    metrics_describe("newtermsd_alert_docs_late_total", "counter",
                     "Deferred sightings that needed their document after all (a new term, a "
                     "threshold reached): built and sent again.");
    metrics_describe("newtermsd_redis_round_trips_total", "counter",
                     "Pipelined Redis round trips.");
    metrics_describe("newtermsd_redis_errors_total", "counter", "Redis errors.");
    metrics_describe("newtermsd_redis_reconnects_total", "counter", "Redis reconnections.");
    metrics_describe("newtermsd_redis_script_reloads_total", "counter",
                     "Lua script reloads after NOSCRIPT.");
    metrics_describe("newtermsd_redis_latency_seconds", "histogram", "Redis round-trip latency.");
    metrics_describe("newtermsd_limit_refusals_total", "counter",
                     "Requests and connections refused by a limit of api/LIMITS.md, by limit.");
    metrics_describe("newtermsd_http_connections_open", "gauge",
                     "HTTP connections accepted and not yet closed.");
    metrics_describe(
        "newtermsd_http_requests_in_flight", "gauge",
        "HTTP requests begun (headers read) and not yet completed, this one included.");
    metrics_describe("newtermsd_busy_poll_seconds", "gauge",
                     "Time the --busy-poll-us spinner has been awake since start (a running "
                     "total; the CPU it took is at most this).");
    metrics_describe("newtermsd_exceptions_loaded", "gauge",
                     "Exception items in the current snapshot.");
}

/* --connection-limit, enforced here rather than by libmicrohttpd: at its own
 * limit MHD stops polling the listen socket, so a new client waits in the
 * kernel's backlog (it hangs). Refusing in the accept policy closes it at once. */
static enum MHD_Result on_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
    (void)addr;
    (void)addrlen;
    http_server *h = cls;
    /* The slot is taken here, atomically, so pool threads accepting at the
     * same moment cannot overshoot; MHD_CONNECTION_NOTIFY_CLOSED gives it
     * back. (A connection MHD then fails to set up, out of memory, keeps its
     * slot: rare, and it errs on the side of fewer connections.) */
    if (atomic_fetch_add(&h->open_conns, 1) >= (long)h->s->cfg->connection_limit) {
        atomic_fetch_sub(&h->open_conns, 1);
        server_limit_refused("connection_limit");
        return MHD_NO;
    }
    return MHD_YES;
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    (void)conn;
    (void)socket_context;
    http_server *h = cls;
    if (toe == MHD_CONNECTION_NOTIFY_CLOSED) atomic_fetch_sub(&h->open_conns, 1);
}

/* The attribute tells the compiler fmt is a printf format taken from libmicrohttpd
 * (clang's -Wformat-nonliteral refuses vsnprintf with an unannotated format). */
static void mhd_log(void *cls, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = 0;
    log_msg(NT_LOG_WARN, "mhd", "%s", msg);
}

nt_status http_server_start(http_server **out, config *cfg, nt_ruleset *rules, nt_err *err)
{
    *out = NULL;
    http_server *h = calloc(1, sizeof *h);
    if (!h) {
        ruleset_free(rules);
        return nt_fail(err, NT_ERR_NOMEM, "out of memory");
    }
    atomic_init(&h->inflight, 0);
    atomic_init(&h->open_conns, 0);
    describe_metrics();
    nt_status st = server_start(&h->s, cfg, rules, err);
    if (st != NT_OK) goto fail;
    if (cfg->busy_poll_us > 0) {
        st = awake_start(&h->awake, cfg->busy_poll_us, err);
        if (st != NT_OK) goto fail;
    }

    struct sockaddr_storage addr;
    memset(&addr, 0, sizeof addr);
    /* poll(), not epoll: libmicrohttpd 0.9.75 in epoll mode misses a client's
     * close that arrives together with its data, and such a socket stays in
     * CLOSE-WAIT, holding a connection slot, until the request timeout
     * (1,100 connect-send-close bursts locked every slot). With poll() the
     * close is seen at once; see README "Hostile input". */
    unsigned flags =
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ITC | MHD_USE_ERROR_LOG;
    if (strchr(cfg->listen_host, ':')) {
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&addr;
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)cfg->listen_port);
        if (inet_pton(AF_INET6, cfg->listen_host, &a6->sin6_addr) != 1) {
            st = nt_fail(err, NT_ERR_INVALID, "listen address %s is not an IPv6 address",
                         cfg->listen_host);
            goto fail;
        }
        flags |= MHD_USE_IPv6;
    } else {
        struct sockaddr_in *a4 = (struct sockaddr_in *)&addr;
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)cfg->listen_port);
        const char *host =
            strcmp(cfg->listen_host, "localhost") == 0 ? "127.0.0.1" : cfg->listen_host;
        if (inet_pton(AF_INET, host, &a4->sin_addr) != 1) {
            st = nt_fail(err, NT_ERR_INVALID, "listen address %s is not an IPv4 address",
                         cfg->listen_host);
            goto fail;
        }
    }
    /* The logger comes first: MHD reports problems with the options that
     * follow through it, and otherwise warns on stderr (not as JSON). */
    /* MHD's own limit is per pool thread (the total divided among them) and
     * only a backstop: on_accept enforces --connection-limit. */
    unsigned pool = (unsigned)(cfg->workers > 1 ? cfg->workers : 1);
    unsigned mhd_limit = cfg->connection_limit <= (UINT_MAX - 64) / pool - 64
                             ? (cfg->connection_limit + 64) * pool
                             : UINT_MAX - 64;
    h->mhd = MHD_start_daemon(
        flags, (uint16_t)cfg->listen_port, on_accept, h, on_request, h, MHD_OPTION_EXTERNAL_LOGGER,
        mhd_log, NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr, MHD_OPTION_THREAD_POOL_SIZE,
        (unsigned)(cfg->workers > 1 ? cfg->workers : 0), MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)cfg->request_timeout_s, MHD_OPTION_CONNECTION_LIMIT, mhd_limit,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, h, MHD_OPTION_NOTIFY_CONNECTION, on_connection,
        h, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(64 * 1024), MHD_OPTION_END);
    if (!h->mhd) {
        st = nt_fail(err, NT_ERR_IO, "cannot listen on %s:%d (address in use or not permitted)",
                     cfg->listen_host, cfg->listen_port);
        goto fail;
    }
    *out = h;
    return NT_OK;
fail:
    http_server_stop(h);
    return st;
}

void http_server_stop(http_server *h)
{
    if (!h) return;
    if (h->mhd) {
        /* Stop accepting: quiesce takes the listen socket from MHD's threads
         * (with a delay, so it must stay open until MHD_stop_daemon), and
         * shutdown() makes the kernel refuse new connections at once instead
         * of queueing them in the backlog. */
        MHD_socket lfd = MHD_quiesce_daemon(h->mhd);
        if (lfd == MHD_INVALID_SOCKET)
            log_msg(NT_LOG_WARN, "drain", "cannot stop accepting connections before the drain");
        else
            shutdown(lfd, SHUT_RDWR);
        /* Then let in-flight requests finish, for at most --drain-timeout-s.
         * A request whose client went away completes at once (poll mode sees
         * the close), so only live requests hold the drain. */
        nt_time_ms deadline = nt_now_ms() + (nt_time_ms)h->s->cfg->drain_timeout_s * 1000;
        while (atomic_load(&h->inflight) > 0 && nt_now_ms() < deadline) {
            struct timespec ts = {0, 20 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
        long left = atomic_load(&h->inflight);
        if (left > 0)
            log_msg(NT_LOG_WARN, "drain",
                    "%ld requests still in flight after %d s; stopping anyway", left,
                    h->s->cfg->drain_timeout_s);
        MHD_stop_daemon(h->mhd);
        if (lfd != MHD_INVALID_SOCKET) close(lfd);
    }
    awake_stop(h->awake);
    server_stop(h->s);
    free(h);
}

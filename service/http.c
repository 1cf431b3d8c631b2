/*
 * http.c — routes, authentication, body limits and the ingestion handlers of
 * `newtermsd serve` on libmicrohttpd.
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
 *
 * Ingestion is fail-closed: a delivery's observations are committed to Redis
 * in one pipelined round trip before it is acknowledged; if that fails the
 * answer is 503 and the sender retries (the alert ids are deterministic and
 * the history check is atomic, so a retry never duplicates an alert).
 */
#include "http.h"

#include "bufcache.h"
#include "decode.h"
#include "deliver.h"
#include "log.h"
#include "metrics.h"
#include "pipeline.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
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

/* ---- replies ------------------------------------------------------------ */

void http_error(http_reply *r, unsigned status, const char *code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    r->status = status;
    json_decref(r->json);
    r->json = json_pack("{s:s,s:s}", "error", code, "message", msg);
}

static enum MHD_Result send_reply(struct MHD_Connection *conn, request *rq, http_reply *r)
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

/* Firehose wants its own error shape: requestId, timestamp, errorMessage. */
static void firehose_reply(http_reply *r, unsigned status, const char *request_id, const char *code,
                           const char *msg)
{
    r->status = status;
    json_decref(r->json);
    r->json = json_pack("{s:s,s:I}", "requestId", request_id ? request_id : "", "timestamp",
                        (json_int_t)nt_now_ms());
    if (r->json && code) {
        char text[600];
        snprintf(text, sizeof text, "%s: %s", code, msg);
        json_object_set_new(r->json, "errorMessage", json_string(text));
    }
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

/* ---- metrics helpers ----------------------------------------------------- */

/* A request or connection refused by one of the limits of api/LIMITS.md.
 * `limit` is one of a fixed set of literals: connection_limit, body,
 * body_not_allowed, inflate, inflate_budget, json. */
static void limit_refused(const char *limit)
{
    char labels[64];
    snprintf(labels, sizeof labels, "limit=\"%s\"", limit);
    metrics_counter_add("newtermsd_limit_refusals_total", labels, 1);
}

static void count_pipe(const char *route, const pipe_run *p)
{
    char labels[160];
    for (int sh = 0; sh <= DEC_SHAPE_COUNT; sh++) {
        for (int o = 0; o < PIPE_OUTCOME_COUNT; o++) {
            if (!p->counts[sh][o]) continue;
            snprintf(labels, sizeof labels, "route=\"%s\",shape=\"%s\",outcome=\"%s\"", route,
                     sh == PIPE_SHAPE_RAW ? "raw" : dec_shape_name((dec_shape)sh),
                     pipe_outcome_name((pipe_outcome)o));
            metrics_counter_add("newtermsd_records_total", labels, p->counts[sh][o]);
        }
    }
    for (size_t i = 0; i < p->n_rejects; i++) {
        snprintf(labels, sizeof labels, "route=\"%s\",reason=\"%s\"", route, p->rejects[i].reason);
        metrics_counter_add("newtermsd_rejected_records_total", labels, 1);
    }
    metrics_counter_add("newtermsd_rule_matches_total", NULL, p->st.rule_matches);
    metrics_counter_add("newtermsd_exception_hits_total", NULL, p->st.exception_hits);
    metrics_counter_add("newtermsd_candidates_total", NULL, p->st.candidates);
    metrics_counter_add("newtermsd_combinations_capped_total", NULL, p->st.combos_capped);
    metrics_counter_add("newtermsd_alerts_total", NULL, p->alerts);
}

static void count_store(store *st, const store_counters *before)
{
    store_counters after;
    store_get_counters(st, &after);
    metrics_counter_add("newtermsd_redis_round_trips_total", NULL,
                        after.round_trips - before->round_trips);
    metrics_counter_add("newtermsd_redis_errors_total", NULL, after.errors - before->errors);
    metrics_counter_add("newtermsd_redis_reconnects_total", NULL,
                        after.reconnects - before->reconnects);
    metrics_counter_add("newtermsd_redis_script_reloads_total", NULL,
                        after.noscript_reloads - before->noscript_reloads);
    if (after.round_trips > before->round_trips)
        metrics_histogram_observe("newtermsd_redis_latency_seconds", NULL,
                                  (double)(after.latency_us_total - before->latency_us_total) /
                                      1e6 / (double)(after.round_trips - before->round_trips));
}

/* ---- committing a delivery ----------------------------------------------- */

/* Write observations and rejects; NT_ERR_STORE means nothing may be acknowledged. */
static nt_status commit_delivery(server *s, pipe_run *p, const char *route, const char *delivery_id,
                                 nt_err *err)
{
    if (p->fatal) return nt_fail(err, p->fatal, "out of memory while decoding the delivery");
    if (p->n_obs == 0 && p->n_rejects == 0) return NT_OK; /* no Redis round trip */
    store *st = server_store_acquire(s);
    store_counters before;
    store_get_counters(st, &before);
    nt_status rc = NT_OK;
    if (p->n_obs) {
        nt_history h = store_history(st);
        rc = pipe_commit(p, &h, err);
    }
    if (rc == NT_OK && p->n_rejects) {
        nt_time_ms now = nt_now_ms();
        store_reject *rj = calloc(p->n_rejects, sizeof *rj);
        if (!rj) {
            rc = nt_fail(err, NT_ERR_NOMEM, "out of memory writing rejects");
        } else {
            for (size_t i = 0; i < p->n_rejects; i++) {
                rj[i].reason = p->rejects[i].reason;
                rj[i].route = route;
                rj[i].delivery_id = delivery_id;
                rj[i].prefix = p->rejects[i].prefix;
                rj[i].record_index = (long)p->rejects[i].record_index;
                rj[i].at = now;
            }
            rc = store_reject_push(st, rj, p->n_rejects, err);
            free(rj);
        }
    }
    count_store(st, &before);
    atomic_store(&s->redis_ok, rc != NT_ERR_STORE);
    server_store_release(s, st);
    return rc;
}

static void prepare_pipe(server *s, pipe_run *p, nt_time_ms now, store_obs_mode *modes)
{
    for (size_t i = 0; i < s->rules->n; i++)
        modes[i] = server_rule_mode(s, i, now);
    p->modes = modes;
    p->max_record = s->cfg->max_record;
    /* A record's gzip cap stays DEC_MAX_INFLATE: --max-inflate bounds whole bodies. */
}

static void log_delivery(const char *route, const char *id, const pipe_run *p, unsigned status)
{
    log_json(NT_LOG_INFO, "delivery", "delivery processed",
             json_pack("{s:s,s:s,s:i,s:I,s:I,s:I,s:I}", "route", route, "delivery_id", id ? id : "",
                       "status", (int)status, "accepted", (json_int_t)p->accepted, "rejected",
                       (json_int_t)p->rejected, "candidates", (json_int_t)p->n_obs, "alerts",
                       (json_int_t)p->alerts));
}

/* ---- ingestion handlers --------------------------------------------------- */

/* body_inflated: bytes the body's own Content-Encoding: gzip produced, which
 * count against the delivery's inflate budget (--max-inflate). */
static void handle_firehose(server *s, struct MHD_Connection *conn, const char *body, size_t len,
                            size_t body_inflated, http_reply *r)
{
    const char *hdr_id =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Amz-Firehose-Request-Id");
    fh_envelope env;
    fh_envelope_init(&env);
    nt_err err;
    nt_status st = fh_scan(body, len, &env, NULL, NULL, &err);
    const char *rid = st == NT_OK ? env.request_id : hdr_id;
    if (st != NT_OK) {
        firehose_reply(r, st == NT_ERR_LIMIT ? 413 : 400, rid,
                       st == NT_ERR_LIMIT ? "payload_too_large" : "bad_request", err.msg);
        metrics_counter_add("newtermsd_bad_deliveries_total", "route=\"firehose\"", 1);
        fh_envelope_free(&env);
        return;
    }
    nt_time_ms now = nt_now_ms();
    store_obs_mode modes[s->rules->n ? s->rules->n : 1];
    exc_set *exc = server_exceptions(s);
    pipe_run p;
    pipe_init(&p, s->rules, exc, now);
    prepare_pipe(s, &p, now, modes);
    p.inflate_budget =
        s->cfg->max_inflate > body_inflated ? s->cfg->max_inflate - body_inflated : 1;
    for (size_t i = 0; i < env.record_count && !p.over_budget; i++)
        pipe_firehose_record(&p, i, env.records[i].data, env.records[i].len, env.records[i].flags);
    if (p.over_budget) {
        /* Nothing is committed: the sender gets one clear refusal. */
        char msg[160];
        snprintf(msg, sizeof msg,
                 "the delivery's gzip'd records expand beyond %zu bytes in total (--max-inflate)",
                 s->cfg->max_inflate);
        firehose_reply(r, 413, env.request_id, "payload_too_large", msg);
        limit_refused("inflate_budget");
        metrics_counter_add("newtermsd_bad_deliveries_total", "route=\"firehose\"", 1);
    } else if (commit_delivery(s, &p, "firehose", env.request_id, &err) == NT_OK) {
        firehose_reply(r, 200, env.request_id, NULL, NULL);
    } else {
        log_msg(NT_LOG_ERROR, "delivery_failed", "firehose delivery %s not acknowledged: %s",
                env.request_id, err.msg);
        firehose_reply(r, 503, env.request_id, "store_unavailable",
                       "state store unavailable; retry later");
    }
    count_pipe("firehose", &p);
    log_delivery("firehose", env.request_id, &p, r->status);
    pipe_free(&p);
    exc_set_unref(exc);
    fh_envelope_free(&env);
}

static void handle_events(server *s, route_id route, const char *body, size_t len, http_reply *r)
{
    const char *name = route_name(route);
    nt_time_ms now = nt_now_ms();
    store_obs_mode modes[s->rules->n ? s->rules->n : 1];
    exc_set *exc = server_exceptions(s);
    pipe_run p;
    pipe_init(&p, s->rules, exc, now);
    prepare_pipe(s, &p, now, modes);
    nt_err err;
    char delivery_id[40];
    snprintf(delivery_id, sizeof delivery_id, "%s-%lld", name, (long long)now);
    /* A single EventBridge event that no rule can match is not parsed. */
    nt_status st = route == R_EVENTBRIDGE && pipe_skip_unparsed(&p, body, len)
                       ? NT_OK
                       : pipe_body(&p, body, len, &err);
    if (st == NT_OK && route == R_EVENTBRIDGE && p.accepted != 1) {
        st = NT_ERR_INVALID;
        nt_fail(&err, st, "an EventBridge API destination call carries exactly one event, not %zu",
                p.accepted + p.rejected);
    }
    if (st != NT_OK) {
        if (st == NT_ERR_LIMIT) limit_refused("json");
        http_error(r, st == NT_ERR_LIMIT ? 413 : 400,
                   st == NT_ERR_LIMIT ? "payload_too_large" : "bad_request", "%s", err.msg);
        metrics_counter_add("newtermsd_bad_deliveries_total",
                            route == R_EVENTBRIDGE ? "route=\"eventbridge\"" : "route=\"events\"",
                            1);
    } else if (commit_delivery(s, &p, name, delivery_id, &err) != NT_OK) {
        log_msg(NT_LOG_ERROR, "delivery_failed", "%s delivery not acknowledged: %s", name, err.msg);
        http_error(r, 503, "store_unavailable", "state store unavailable; retry later");
    } else if (route == R_EVENTBRIDGE) {
        r->status = 200;
        r->json = json_pack("{s:i,s:I}", "accepted", 1, "alerts", (json_int_t)p.alerts);
    } else {
        r->status = 200;
        r->json = json_pack("{s:I,s:I,s:I}", "accepted", (json_int_t)p.accepted, "rejected",
                            (json_int_t)p.rejected, "alerts", (json_int_t)p.alerts);
    }
    count_pipe(name, &p);
    log_delivery(name, delivery_id, &p, r->status);
    pipe_free(&p);
    exc_set_unref(exc);
}

static void handle_readyz(server *s, http_reply *r)
{
    store *st = server_store_acquire(s);
    nt_err err;
    nt_status rc = store_ping(st, &err);
    server_store_release(s, st);
    atomic_store(&s->redis_ok, rc == NT_OK);
    /* /readyz needs no credential: Redis's address and error go to the log only. */
    if (rc != NT_OK) log_msg(NT_LOG_WARN, "readyz", "state store unavailable: %s", err.msg);
    int ok = rc == NT_OK && s->rules->n > 0;
    r->status = ok ? 200 : 503;
    r->json = json_pack("{s:s,s:I,s:s}", "status", ok ? "ready" : "not_ready", "rules",
                        (json_int_t)s->rules->n, "redis", rc == NT_OK ? "ok" : "unavailable");
}

static void handle_metrics(server *s, http_reply *r)
{
    metrics_update_process();
    metrics_gauge_set("newtermsd_http_connections_open", NULL, (double)atomic_load(&s->open_conns));
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

static enum MHD_Result refuse(struct MHD_Connection *conn, request *rq, unsigned status,
                              const char *code, const char *msg)
{
    http_reply r = {0};
    if (rq->route == R_FIREHOSE) {
        const char *hdr_id =
            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Amz-Firehose-Request-Id");
        firehose_reply(&r, status, hdr_id, code, msg);
    } else {
        http_error(&r, status, code, "%s", msg);
    }
    if (status == 405)
        r.allow = rq->route == R_API         ? "GET, POST, PUT, PATCH, DELETE"
                  : is_post_route(rq->route) ? "POST"
                                             : "GET";
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

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    (void)version;
    server *s = cls;
    request *rq = *con_cls;
    if (!rq) {
        rq = calloc(1, sizeof *rq);
        if (!rq) return MHD_NO;
        clock_gettime(CLOCK_MONOTONIC, &rq->start);
        *con_cls = rq;
        atomic_fetch_add(&s->inflight, 1);
        rq->route = route_of(url);
        if (rq->route == R_API) api_label(rq, url, method);
        if (rq->route == R_NONE) return refuse(conn, rq, 404, "not_found", "no such route");
        int post = is_post_route(rq->route);
        if (post && strcmp(method, "POST") != 0)
            return refuse(conn, rq, 405, "method_not_allowed", "use POST");
        if ((rq->route == R_HEALTHZ || rq->route == R_READYZ || rq->route == R_METRICS) &&
            strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
            return refuse(conn, rq, 405, "method_not_allowed", "use GET");
        switch (authenticate(s, rq, conn, method)) {
        case AUTH_OK:
            break;
        case AUTH_MISSING:
            metrics_counter_add("newtermsd_auth_failures_total", "reason=\"missing\"", 1);
            return refuse(conn, rq, 401, "unauthorized", "credentials are missing");
        case AUTH_WRONG:
            metrics_counter_add("newtermsd_auth_failures_total", "reason=\"wrong\"", 1);
            return refuse(conn, rq, 401, "unauthorized", "credentials are not valid");
        case AUTH_READ_ONLY:
            metrics_counter_add("newtermsd_auth_failures_total", "reason=\"read_only\"", 1);
            return refuse(conn, rq, 403, "forbidden", "a read token cannot change anything");
        }
        const char *enc = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Encoding");
        if (enc && strcasecmp(enc, "gzip") != 0 && strcasecmp(enc, "identity") != 0)
            return refuse(conn, rq, 415, "unsupported_media_type",
                          "Content-Encoding must be gzip or identity");
        rq->max_body = post ? s->cfg->max_body : rq->route == R_API ? (size_t)API_MAX_BODY : 0;
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
        const char *te = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Transfer-Encoding");
        if (rq->max_body == 0 && (te || (cl && strcmp(cl, "0") != 0))) {
            limit_refused("body_not_allowed");
            return refuse(conn, rq, 413, "payload_too_large", "this route takes no request body");
        }
        if (cl) {
            char *end;
            unsigned long long n = strtoull(cl, &end, 10);
            if (*end == 0 && n > rq->max_body) {
                limit_refused("body");
                return refuse(conn, rq, 413, "payload_too_large",
                              "the request body is larger than the limit");
            }
            if (*end == 0 && n > 0 && n <= rq->max_body) {
                /* the thread's spare buffer when it fits: no fresh pages per delivery */
                rq->body = bufcache_take(n + 1, &rq->cap);
            }
        }
        return MHD_YES;
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (rq->too_large || rq->answered) return MHD_YES;
        if (rq->len + n > rq->max_body) {
            rq->too_large = 1;
            free(rq->body);
            rq->body = NULL;
            rq->len = rq->cap = 0;
            return MHD_YES;
        }
        if (rq->len + n + 1 > rq->cap) {
            size_t cap = rq->cap ? rq->cap : 64 * 1024;
            while (cap < rq->len + n + 1)
                cap *= 2;
            if (cap > rq->max_body + 1) cap = rq->max_body + 1;
            char *b = realloc(rq->body, cap);
            if (!b) {
                rq->too_large = 1;
                return MHD_YES;
            }
            rq->body = b;
            rq->cap = cap;
        }
        memcpy(rq->body + rq->len, upload_data, n);
        rq->len += n;
        return MHD_YES;
    }
    if (rq->answered) return MHD_YES;
    if (rq->too_large) {
        limit_refused(rq->max_body ? "body" : "body_not_allowed");
        return refuse(conn, rq, 413, "payload_too_large",
                      rq->max_body ? "the request body is larger than the limit"
                                   : "this route takes no request body");
    }

    http_reply r = {0};
    const char *body = rq->body ? rq->body : "";
    size_t len = rq->len;
    unsigned char *inflated = NULL;
    size_t inflated_len = 0;
    const char *enc = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Encoding");
    if (enc && strcasecmp(enc, "gzip") == 0 && len > 0) {
        /* Reached only for a route that takes a body, once the credentials
         * are checked: nothing is inflated for a stranger. */
        size_t ilen = 0;
        nt_err err;
        size_t cap = rq->route == R_API ? (size_t)API_MAX_BODY : s->cfg->max_inflate;
        nt_status st =
            dec_body_inflate((const unsigned char *)body, len, cap, &inflated, &ilen, &err);
        if (st != NT_OK) {
            if (st == NT_ERR_LIMIT) limit_refused("inflate");
            metrics_counter_add("newtermsd_bad_deliveries_total", "route=\"gzip\"", 1);
            return refuse(conn, rq, st == NT_ERR_LIMIT ? 413 : 400,
                          st == NT_ERR_LIMIT ? "payload_too_large" : "bad_request", err.msg);
        }
        body = (const char *)inflated;
        len = ilen;
        inflated_len = ilen;
    }
    switch (rq->route) {
    case R_FIREHOSE:
        handle_firehose(s, conn, body, len, inflated_len, &r);
        break;
    case R_EVENTBRIDGE:
    case R_EVENTS:
        handle_events(s, rq->route, body, len, &r);
        break;
    case R_HEALTHZ:
        r.status = 200;
        r.json = json_pack("{s:s}", "status", "ok");
        break;
    case R_READYZ:
        handle_readyz(s, &r);
        break;
    case R_METRICS:
        handle_metrics(s, &r);
        break;
    case R_API: {
        api_request ar = {.method = method,
                          .path = url + 7,
                          .body = body,
                          .body_len = len,
                          .can_write = rq->can_write,
                          .conn = conn};
        api_handle(s, &ar, &r);
        break;
    }
    case R_NONE:
        break;
    }
    free(inflated);
    if (!r.json && !r.text) http_error(&r, 500, "internal", "no reply was produced");
    return send_reply(conn, rq, &r);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)conn;
    server *s = cls;
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
    atomic_fetch_sub(&s->inflight, 1);
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
    metrics_describe("newtermsd_exceptions_loaded", "gauge",
                     "Exception items in the current snapshot.");
}

/* ---- server lifecycle ----------------------------------------------------- */

store *server_store_acquire(server *s)
{
    pthread_mutex_lock(&s->pool_lock);
    while (s->pool_n == 0)
        pthread_cond_wait(&s->pool_cond, &s->pool_lock);
    store *st = s->pool[--s->pool_n];
    pthread_mutex_unlock(&s->pool_lock);
    return st;
}

void server_store_release(server *s, store *st)
{
    pthread_mutex_lock(&s->pool_lock);
    s->pool[s->pool_n++] = st;
    pthread_cond_signal(&s->pool_cond);
    pthread_mutex_unlock(&s->pool_lock);
}

exc_set *server_exceptions(server *s)
{
    pthread_mutex_lock(&s->exc_lock);
    exc_set *e = exc_set_ref(s->exc);
    pthread_mutex_unlock(&s->exc_lock);
    return e;
}

static void on_bad_exception(void *ud, const char *id, const nt_err *e)
{
    (void)ud;
    log_msg(NT_LOG_WARN, "exception_skipped", "stored exception %s is not valid and is ignored: %s",
            id ? id : "?", e->msg);
}

void server_exceptions_refresh(server *s, store *st)
{
    json_t *items = NULL;
    long long version = 0;
    nt_err err;
    if (store_exception_all(st, &items, &version, &err) != NT_OK) {
        atomic_store(&s->redis_ok, 0);
        return;
    }
    nt_field_source src = ct_schema_source(s->rules->schema);
    exc_set *fresh = exc_set_from_json(items, &src, on_bad_exception, NULL);
    json_decref(items);
    if (!fresh) return;
    /* Counted before it is published: once swapped in, another refresh (the
     * poller, or an API write) may replace and free it at any time. */
    size_t count = exc_set_count(fresh);
    pthread_mutex_lock(&s->exc_lock);
    exc_set *old = s->exc;
    s->exc = fresh;
    s->exc_version = version;
    pthread_mutex_unlock(&s->exc_lock);
    exc_set_unref(old);
    metrics_gauge_set("newtermsd_exceptions_loaded", NULL, (double)count);
}

store_obs_mode server_rule_mode(server *s, size_t i, nt_time_ms now)
{
    const nt_rule *r = s->rules->rules[i];
    if (r->learning_ms <= 0) return STORE_OBS_LIVE;
    nt_time_ms since = atomic_load(&s->learning_since[i]);
    /* Unknown start (Redis not reached yet): stay silent rather than alert. */
    if (since < 0 || now < since + r->learning_ms) return STORE_OBS_LEARN;
    return STORE_OBS_LIVE;
}

/* Background thread: exception changes from any replica, learning-period
 * start times, Redis health. Wakes every 250 ms. */
static void *poller_main(void *arg)
{
    server *s = arg;
    store *st = NULL;
    nt_err err;
    store_config sc;
    config_store(s->cfg, &sc);
    if (store_open(&st, &sc, &err) != NT_OK) {
        log_msg(NT_LOG_ERROR, "poller", "cannot create the poller's Redis connection: %s", err.msg);
        return NULL;
    }
    while (!atomic_load(&s->stopping)) {
        long long version = 0;
        if (store_exception_version(st, &version, &err) == NT_OK) {
            atomic_store(&s->redis_ok, 1);
            pthread_mutex_lock(&s->exc_lock);
            long long have = s->exc_version;
            pthread_mutex_unlock(&s->exc_lock);
            if (version != have) server_exceptions_refresh(s, st);
            nt_time_ms now = nt_now_ms();
            for (size_t i = 0; i < s->rules->n; i++) {
                if (s->rules->rules[i]->learning_ms <= 0 || atomic_load(&s->learning_since[i]) >= 0)
                    continue;
                nt_time_ms since;
                if (store_learning_since(st, s->rules->rules[i]->rule_id, now, &since, &err) ==
                    NT_OK)
                    atomic_store(&s->learning_since[i], since);
            }
        } else {
            atomic_store(&s->redis_ok, 0);
        }
        struct timespec ts = {0, 250 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    store_free(st);
    return NULL;
}

static void server_free(server *s)
{
    if (!s) return;
    deliver_stop(s->deliver); /* bounded: aborts transfers in flight */
    s->deliver = NULL;
    if (s->poller_started) {
        atomic_store(&s->stopping, 1);
        pthread_join(s->poller, NULL);
    }
    for (size_t i = 0; i < s->pool_n; i++)
        store_free(s->pool[i]);
    free(s->pool);
    exc_set_unref(s->exc);
    free(s->learning_since);
    ruleset_free(s->rules);
    pthread_mutex_destroy(&s->pool_lock);
    pthread_cond_destroy(&s->pool_cond);
    pthread_mutex_destroy(&s->exc_lock);
    free(s);
}

/* --connection-limit, enforced here rather than by libmicrohttpd: at its own
 * limit MHD stops polling the listen socket, so a new client waits in the
 * kernel's backlog (it hangs). Refusing in the accept policy closes it at once. */
static enum MHD_Result on_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
    (void)addr;
    (void)addrlen;
    server *s = cls;
    /* The slot is taken here, atomically, so pool threads accepting at the
     * same moment cannot overshoot; MHD_CONNECTION_NOTIFY_CLOSED gives it
     * back. (A connection MHD then fails to set up, out of memory, keeps its
     * slot: rare, and it errs on the side of fewer connections.) */
    if (atomic_fetch_add(&s->open_conns, 1) >= (long)s->cfg->connection_limit) {
        atomic_fetch_sub(&s->open_conns, 1);
        limit_refused("connection_limit");
        return MHD_NO;
    }
    return MHD_YES;
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    (void)conn;
    (void)socket_context;
    server *s = cls;
    if (toe == MHD_CONNECTION_NOTIFY_CLOSED) atomic_fetch_sub(&s->open_conns, 1);
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

nt_status http_server_start(server **out, config *cfg, nt_ruleset *rules, nt_err *err)
{
    *out = NULL;
    server *s = calloc(1, sizeof *s);
    if (!s) {
        ruleset_free(rules);
        return nt_fail(err, NT_ERR_NOMEM, "out of memory");
    }
    s->cfg = cfg;
    s->rules = rules;
    pthread_mutex_init(&s->pool_lock, NULL);
    pthread_cond_init(&s->pool_cond, NULL);
    pthread_mutex_init(&s->exc_lock, NULL);
    s->exc_version = -1;
    s->exc = exc_set_new(NULL, 0);
    s->learning_since = malloc((rules->n ? rules->n : 1) * sizeof *s->learning_since);
    size_t conns = (size_t)cfg->workers + 2;
    s->pool = calloc(conns, sizeof *s->pool);
    nt_status st = NT_OK;
    if (!s->exc || !s->learning_since || !s->pool) {
        st = nt_fail(err, NT_ERR_NOMEM, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < rules->n; i++)
        atomic_init(&s->learning_since[i], -1);
    store_config sc;
    config_store(cfg, &sc);
    for (size_t i = 0; i < conns; i++) {
        if ((st = store_open(&s->pool[i], &sc, err)) != NT_OK) goto fail;
        s->pool_n++;
    }
    s->pool_cap = conns;
    describe_metrics();
    if (pthread_create(&s->poller, NULL, poller_main, s) != 0) {
        st = nt_fail(err, NT_ERR_NOMEM, "cannot start the poller thread");
        goto fail;
    }
    s->poller_started = 1;
    /* outputs: parse --outputs (a bad file stops startup) and start the delivery
     * threads before ingestion, so their consumer groups exist first. */
    if (cfg->outputs_file) {
        outputs *outs = NULL;
        if ((st = outputs_load(cfg->outputs_file, NULL, &outs, err)) != NT_OK) goto fail;
        for (size_t i = 0; i < outs->n; i++) {
            if (outs->items[i].secret) log_add_secret(outs->items[i].secret);
            if (outs->items[i].type == OUTPUT_SLACK) log_add_secret(outs->items[i].url);
        }
        deliver_config dc = {.max_age_ms = cfg->output_max_age_ms,
                             .timeout_ms = cfg->output_timeout_ms,
                             .claim_idle_ms = cfg->output_claim_idle_ms};
        config_store(cfg, &dc.store);
        if ((st = deliver_start(&s->deliver, outs, &dc, err)) != NT_OK) goto fail;
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
    s->mhd = MHD_start_daemon(
        flags, (uint16_t)cfg->listen_port, on_accept, s, on_request, s, MHD_OPTION_EXTERNAL_LOGGER,
        mhd_log, NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr, MHD_OPTION_THREAD_POOL_SIZE,
        (unsigned)(cfg->workers > 1 ? cfg->workers : 0), MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)cfg->request_timeout_s, MHD_OPTION_CONNECTION_LIMIT, mhd_limit,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_NOTIFY_CONNECTION, on_connection,
        s, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(64 * 1024), MHD_OPTION_END);
    if (!s->mhd) {
        st = nt_fail(err, NT_ERR_IO, "cannot listen on %s:%d (address in use or not permitted)",
                     cfg->listen_host, cfg->listen_port);
        goto fail;
    }
    *out = s;
    return NT_OK;
fail:
    server_free(s);
    return st;
}

void http_server_stop(server *s)
{
    if (!s) return;
    if (s->mhd) {
        /* Stop accepting: quiesce takes the listen socket from MHD's threads
         * (with a delay, so it must stay open until MHD_stop_daemon), and
         * shutdown() makes the kernel refuse new connections at once instead
         * of queueing them in the backlog. */
        MHD_socket lfd = MHD_quiesce_daemon(s->mhd);
        if (lfd == MHD_INVALID_SOCKET)
            log_msg(NT_LOG_WARN, "drain", "cannot stop accepting connections before the drain");
        else
            shutdown(lfd, SHUT_RDWR);
        /* Then let in-flight requests finish, for at most --drain-timeout-s.
         * A request whose client went away completes at once (poll mode sees
         * the close), so only live requests hold the drain. */
        nt_time_ms deadline = nt_now_ms() + (nt_time_ms)s->cfg->drain_timeout_s * 1000;
        while (atomic_load(&s->inflight) > 0 && nt_now_ms() < deadline) {
            struct timespec ts = {0, 20 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
        long left = atomic_load(&s->inflight);
        if (left > 0)
            log_msg(NT_LOG_WARN, "drain",
                    "%ld requests still in flight after %d s; stopping anyway", left,
                    s->cfg->drain_timeout_s);
        MHD_stop_daemon(s->mhd);
        if (lfd != MHD_INVALID_SOCKET) close(lfd);
    }
    server_free(s);
}

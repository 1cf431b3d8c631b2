/*
 * api.c — the REST API under /api/v1: alerts (list, get, triage), exceptions
 * (CRUD), rules (with lint warnings and counters) and rejected records.
 *
 * Handlers validate their input completely before they touch Redis and answer
 * 400 with a sentence naming the bad parameter or JSON path. A Redis failure
 * is a 503: the caller can retry. Exceptions changed here are reloaded on this
 * replica at once; other replicas see the version bump within 250 ms.
 *
 * The contract, route by route (parameters, bodies, every status and error
 * code), is api/openapi.yaml; tests/integration/openapi_walk.py drives every
 * operation it lists against the real binary (test_openapi.py), and
 * api/LIMITS.md lists the limits behind the 400s and 413s.
 */
#include "api.h"

#include "deliver.h"
#include "log.h"
#include "metrics.h"

#include <pthread.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void api_describe_metrics(void)
{
    metrics_describe("newtermsd_api_refused_total", "counter",
                     "API requests refused for their input, by reason.");
}

/* Count a refused hostile or invalid API input by a fixed reason (never a
 * client-chosen string, so the series stay bounded). */
static void api_refused(const char *reason)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, api_describe_metrics);
    char labels[64];
    snprintf(labels, sizeof labels, "reason=\"%s\"", reason);
    metrics_counter_add("newtermsd_api_refused_total", labels, 1);
}

/* A store failure names Redis's address and its error: that goes to the log,
 * never to the client, who only learns that it may retry. */
static void fail_with(reply *r, nt_status st, const nt_err *err)
{
    if (reply_status(st) == 503)
        log_msg(NT_LOG_ERROR, "store_unavailable", "API request failed: %s", err->msg);
    reply_fail(r, st, err->msg);
}

static json_t *parse_body(const api_request *req, reply *r)
{
    if (req->body_len == 0) {
        reply_error(r, 400, "bad_request", "a JSON body is required");
        return NULL;
    }
    if (req->body_len > API_MAX_BODY) {
        reply_error(r, 413, "payload_too_large", "API bodies are limited to %d bytes",
                    API_MAX_BODY);
        return NULL;
    }
    json_error_t jerr;
    json_t *doc = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!doc) {
        reply_error(r, 400, "bad_request", "body is not JSON: %s at line %d column %d", jerr.text,
                    jerr.line, jerr.column);
        return NULL;
    }
    if (!json_is_object(doc)) {
        json_decref(doc);
        reply_error(r, 400, "bad_request", "body must be a JSON object");
        return NULL;
    }
    return doc;
}

static const char *query_arg(const api_request *req, const char *name)
{
    return req->query ? req->query(req->query_ctx, name) : NULL;
}

/* Reject query parameters the route does not know: a typo must not silently
 * widen a filter. */
typedef struct arg_check {
    const char *const *allowed;
    const char *bad;
} arg_check;

static int check_arg(void *cls, const char *key)
{
    arg_check *ac = cls;
    for (const char *const *a = ac->allowed; *a; a++)
        if (strcmp(*a, key) == 0) return 1;
    ac->bad = key;
    return 0;
}

static int only_args(const api_request *req, const char *const *allowed, reply *r)
{
    arg_check ac = {.allowed = allowed};
    if (req->query_keys) req->query_keys(req->query_ctx, check_arg, &ac);
    if (ac.bad) {
        reply_error(r, 400, "bad_request", "unknown query parameter '%.64s'", ac.bad);
        return 0;
    }
    return 1;
}

static int parse_limit(const api_request *req, size_t dflt, size_t max, size_t *out, reply *r)
{
    const char *v = query_arg(req, "limit");
    *out = dflt;
    if (!v) return 1;
    char *end;
    long n = strtol(v, &end, 10);
    if (*v == 0 || *end != 0 || n < 1 || (size_t)n > max) {
        reply_error(r, 400, "bad_request", "limit must be an integer from 1 to %zu", max);
        return 0;
    }
    *out = (size_t)n;
    return 1;
}

/* *has = 0 when the parameter is absent; any parsed instant (also one before
 * 1970) is honoured. */
static int parse_time_arg(const api_request *req, const char *name, nt_time_ms *out, int *has,
                          reply *r)
{
    const char *v = query_arg(req, name);
    *out = 0;
    *has = 0;
    if (!v) return 1;
    nt_err err;
    if (nt_time_parse(v, strlen(v), out, &err) != NT_OK) {
        api_refused("bad_time");
        reply_error(r, 400, "bad_request", "%s: %s", name, err.msg);
        return 0;
    }
    *has = 1;
    return 1;
}

static int one_of(const char *v, const char *const *set)
{
    for (; *set; set++)
        if (strcmp(v, *set) == 0) return 1;
    return 0;
}

/* ---- alerts ---------------------------------------------------------------- */

static void alerts_list(server *s, const api_request *req, reply *r)
{
    static const char *const allowed[] = {"status", "rule_id", "account", "user", "since",
                                          "until",  "limit",   "cursor",  NULL};
    if (!only_args(req, allowed, r)) return;
    store_alert_filter f = {.status = query_arg(req, "status"),
                            .rule_id = query_arg(req, "rule_id"),
                            .account = query_arg(req, "account"),
                            .user = query_arg(req, "user"),
                            .cursor = query_arg(req, "cursor")};
    if (f.status && !store_alert_status_valid(f.status)) {
        reply_error(r, 400, "bad_request", "status must be open, acknowledged or closed");
        return;
    }
    if (!parse_limit(req, 100, 1000, &f.limit, r) ||
        !parse_time_arg(req, "since", &f.since, &f.has_since, r) ||
        !parse_time_arg(req, "until", &f.until, &f.has_until, r))
        return;
    if (f.has_since && f.has_until && f.since > f.until) {
        reply_error(r, 400, "bad_request", "since is later than until");
        return;
    }
    store *st = server_store_acquire(s);
    json_t *alerts = NULL;
    char *next = NULL;
    nt_err err;
    nt_status rc = store_alert_list(st, &f, &alerts, &next, &err);
    server_store_release(s, st);
    if (rc != NT_OK) {
        fail_with(r, rc, &err);
        return;
    }
    r->status = 200;
    r->json = json_pack("{s:o,s:o}", "alerts", alerts, "next_cursor",
                        next ? json_string(next) : json_null());
    free(next);
}

static void alert_get(server *s, const char *id, reply *r)
{
    store *st = server_store_acquire(s);
    json_t *doc = NULL;
    nt_err err;
    nt_status rc = store_alert_get(st, id, &doc, &err);
    server_store_release(s, st);
    if (rc != NT_OK) {
        fail_with(r, rc, &err);
        return;
    }
    r->status = 200;
    r->json = doc;
}

/* Validate {"status", "reason"} of a triage body. */
static int triage_fields(json_t *body, const char **status, const char **reason, reply *r)
{
    json_t *sv = json_object_get(body, "status"), *rv = json_object_get(body, "reason");
    if (!json_is_string(sv) || !store_alert_status_valid(json_string_value(sv))) {
        reply_error(r, 400, "bad_request", "status must be open, acknowledged or closed");
        return 0;
    }
    if (rv && !json_is_null(rv) &&
        (!json_is_string(rv) || !store_alert_reason_valid(json_string_value(rv)))) {
        reply_error(r, 400, "bad_request",
                    "reason must be one of false_positive, duplicate, true_positive, "
                    "benign_positive, automated_closure, other");
        return 0;
    }
    *status = json_string_value(sv);
    *reason = json_is_string(rv) ? json_string_value(rv) : NULL;
    return 1;
}

static int known_keys(json_t *body, const char *const *keys, reply *r)
{
    const char *k;
    json_t *v;
    json_object_foreach(body, k, v)
    {
        (void)v;
        if (!one_of(k, keys)) {
            reply_error(r, 400, "bad_request", "unknown field '%.64s' in the body", k);
            return 0;
        }
    }
    return 1;
}

static void alert_patch(server *s, const api_request *req, const char *id, reply *r)
{
    json_t *body = parse_body(req, r);
    if (!body) return;
    static const char *const keys[] = {"status", "reason", NULL};
    const char *status, *reason;
    if (known_keys(body, keys, r) && triage_fields(body, &status, &reason, r)) {
        store *st = server_store_acquire(s);
        json_t *doc = NULL;
        nt_err err;
        nt_status rc = store_alert_set_status(st, id, status, reason, nt_now_ms(), &doc, &err);
        server_store_release(s, st);
        if (rc != NT_OK) {
            fail_with(r, rc, &err);
        } else {
            r->status = 200;
            r->json = doc;
        }
    }
    json_decref(body);
}

static int valid_id(const char *id);

static void alerts_bulk(server *s, const api_request *req, reply *r)
{
    json_t *body = parse_body(req, r);
    if (!body) return;
    static const char *const keys[] = {"ids", "status", "reason", NULL};
    const char *status, *reason;
    json_t *ids = json_object_get(body, "ids");
    if (!known_keys(body, keys, r) || !triage_fields(body, &status, &reason, r)) goto done;
    if (!json_is_array(ids) || json_array_size(ids) == 0 || json_array_size(ids) > 1000) {
        reply_error(r, 400, "bad_request", "ids must be an array of 1 to 1000 alert ids");
        goto done;
    }
    /* Every id is checked before anything is written, and the store applies
     * the batch in one script: a request either changes every alert or none. */
    size_t n = json_array_size(ids), i;
    const char **list = calloc(n, sizeof *list);
    if (!list) {
        reply_error(r, 500, "internal", "out of memory");
        goto done;
    }
    json_t *v;
    json_array_foreach(ids, i, v)
    {
        if (!json_is_string(v)) {
            reply_error(r, 400, "bad_request", "ids[%zu] is not a string; nothing was changed", i);
            goto done_list;
        }
        if (!valid_id(json_string_value(v))) {
            api_refused("bulk_bad_id");
            reply_error(r, 400, "bad_request",
                        "ids[%zu] is not an alert id ([A-Za-z0-9._-]{1,128}); nothing was changed",
                        i);
            goto done_list;
        }
        list[i] = json_string_value(v);
    }
    store *st = server_store_acquire(s);
    json_t *missing = NULL;
    nt_err err;
    nt_status rc =
        store_alert_set_status_many(st, list, n, status, reason, nt_now_ms(), &missing, &err);
    server_store_release(s, st);
    if (rc == NT_OK) {
        r->status = 200;
        r->json = json_pack("{s:I,s:[]}", "updated", (json_int_t)n, "not_found");
    } else if (rc == NT_ERR_NOTFOUND && missing) {
        api_refused("bulk_unknown_id");
        reply_error(r, 404, "not_found",
                    "%zu of the %zu ids name no alert (listed in not_found); nothing was changed",
                    json_array_size(missing), n);
        json_object_set_new(r->json, "not_found", missing);
        missing = NULL;
    } else {
        fail_with(r, rc, &err);
    }
    json_decref(missing);
done_list:
    free(list);
done:
    json_decref(body);
}

/* ---- exceptions ------------------------------------------------------------ */

static int valid_id(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n > 128) return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)id[i]) && id[i] != '.' && id[i] != '_' && id[i] != '-')
            return 0;
    return 1;
}

static void random_id(char out[33])
{
    unsigned char b[16];
    FILE *f = fopen("/dev/urandom", "rb");
    size_t got = f ? fread(b, 1, sizeof b, f) : 0;
    if (f) fclose(f);
    if (got != sizeof b) {
        nt_time_ms t = nt_now_ms();
        for (size_t i = 0; i < sizeof b; i++)
            b[i] = (unsigned char)(t >> (i % 8 * 8)) ^ (unsigned char)i;
    }
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 16; i++) {
        out[2 * i] = hex[b[i] >> 4];
        out[2 * i + 1] = hex[b[i] & 15];
    }
    out[32] = 0;
}

/* Validate a client document and complete the server-owned fields. On
 * success returns the document to store (new reference). */
static json_t *exception_prepare(server *s, json_t *body, const char *id, json_t *previous,
                                 reply *r)
{
    char now_text[NT_TIME_BUF];
    nt_time_format(nt_now_ms(), now_text);
    json_t *doc = json_deep_copy(body);
    if (!doc) {
        reply_error(r, 500, "internal", "out of memory");
        return NULL;
    }
    json_t *given = json_object_get(doc, "id");
    if (given && (!json_is_string(given) || strcmp(json_string_value(given), id) != 0)) {
        reply_error(r, 400, "bad_request", "id in the body does not match the id in the path");
        json_decref(doc);
        return NULL;
    }
    json_object_set_new(doc, "id", json_string(id));
    if (!json_object_get(doc, "type")) json_object_set_new(doc, "type", json_string("simple"));
    json_t *created = previous ? json_object_get(previous, "created_at") : NULL;
    if (json_is_string(created))
        json_object_set(doc, "created_at", created);
    else
        json_object_set_new(doc, "created_at", json_string(now_text));
    json_object_set_new(doc, "updated_at", json_string(now_text));
    json_t *comments = json_object_get(doc, "comments");
    if (json_is_array(comments)) {
        size_t i;
        json_t *c;
        json_array_foreach(comments, i, c)
        {
            if (json_is_object(c) && !json_object_get(c, "created_at"))
                json_object_set_new(c, "created_at", json_string(now_text));
        }
    }
    nt_field_source src = ct_schema_source(s->rules->schema);
    exc_item *it = NULL;
    nt_err err;
    nt_status st = exc_item_parse(doc, &src, &it, &err);
    exc_limits lim = {.max_entries = s->cfg->exception_max_entries,
                      .max_values = s->cfg->exception_max_values};
    if (st == NT_OK) st = exc_item_check_limits(it, &lim, &err);
    if (st != NT_OK) {
        api_refused("invalid_exception");
        reply_error(r, 400, "bad_request", "%s", err.msg);
        exc_item_free(it);
        json_decref(doc);
        return NULL;
    }
    const char *rid = exc_item_rule_id(it);
    if (rid && !ruleset_find(s->rules, rid))
        log_msg(NT_LOG_WARN, "exception_rule_unknown",
                "exception %s names rule_id %s, which is not loaded on this replica", id, rid);
    exc_item_free(it);
    return doc;
}

static void exception_write(server *s, const api_request *req, const char *path_id, reply *r)
{
    json_t *body = parse_body(req, r);
    if (!body) return;
    char idbuf[33];
    const char *id = path_id;
    json_t *previous = NULL;
    store *st = server_store_acquire(s);
    nt_err err;
    nt_status rc;
    if (!id) {
        json_t *given = json_object_get(body, "id");
        if (json_is_string(given)) {
            id = json_string_value(given);
        } else if (given) {
            reply_error(r, 400, "bad_request", "id must be a string");
            goto done;
        } else {
            random_id(idbuf);
            id = idbuf;
        }
    } else {
        char *old = NULL;
        rc = store_exception_get(st, id, &old, &err);
        if (rc != NT_OK) {
            fail_with(r, rc, &err);
            goto done;
        }
        previous = json_loads(old, 0, NULL);
        free(old);
    }
    if (!valid_id(id)) {
        reply_error(r, 400, "bad_request", "id must match [A-Za-z0-9._-]{1,128}");
        goto done;
    }
    json_t *doc = exception_prepare(s, body, id, previous, r);
    if (!doc) goto done;
    char *text = json_dumps(doc, JSON_COMPACT);
    size_t max_bytes = s->cfg->exception_max_bytes;
    if (text && max_bytes && strlen(text) > max_bytes) {
        api_refused("exception_too_large");
        reply_error(r, 413, "payload_too_large",
                    "the exception item is %zu bytes as stored (compact JSON); at most %zu are "
                    "allowed (--exception-max-bytes)",
                    strlen(text), max_bytes);
        free(text);
        json_decref(doc);
        goto done;
    }
    const char *rule_id = json_string_value(json_object_get(doc, "rule_id"));
    store_exception_quota quota = {.rule_id = rule_id,
                                   .max_total = s->cfg->exceptions_max,
                                   .max_per_rule = s->cfg->exceptions_per_rule_max};
    rc = text ? store_exception_put(st, id, text, path_id == NULL, &quota, &err)
              : nt_fail(&err, NT_ERR_NOMEM, "out of memory");
    free(text);
    if (rc == NT_ERR_LIMIT) {
        /* A full quota is a conflict with the current state, not a size problem. */
        api_refused("exception_quota");
        reply_error(r, 409, "conflict", "%s (--exceptions-max, --exceptions-per-rule-max)",
                    err.msg);
        json_decref(doc);
        goto done;
    }
    if (rc != NT_OK) {
        if (rc == NT_ERR_CONFLICT) nt_fail(&err, rc, "an exception with id %s already exists", id);
        fail_with(r, rc, &err);
        json_decref(doc);
        goto done;
    }
    server_exceptions_refresh(s, st);
    r->status = path_id ? 200 : 201;
    r->json = doc;
done:
    server_store_release(s, st);
    json_decref(previous);
    json_decref(body);
}

static void exception_get(server *s, const char *id, reply *r)
{
    store *st = server_store_acquire(s);
    char *text = NULL;
    nt_err err;
    nt_status rc = store_exception_get(st, id, &text, &err);
    server_store_release(s, st);
    if (rc != NT_OK) {
        fail_with(r, rc, &err);
        return;
    }
    r->json = json_loads(text, 0, NULL);
    free(text);
    r->status = r->json ? 200 : 500;
    if (!r->json) reply_error(r, 500, "internal", "stored exception %s is not JSON", id);
}

static void exception_delete(server *s, const char *id, reply *r)
{
    store *st = server_store_acquire(s);
    nt_err err;
    nt_status rc = store_exception_delete(st, id, &err);
    if (rc == NT_OK) server_exceptions_refresh(s, st);
    server_store_release(s, st);
    if (rc != NT_OK) {
        fail_with(r, rc, &err);
        return;
    }
    r->status = 204;
    r->text = strdup("");
}

static void exceptions_list(server *s, const api_request *req, reply *r)
{
    static const char *const allowed[] = {"limit", "cursor", NULL};
    size_t limit;
    if (!only_args(req, allowed, r) || !parse_limit(req, 50, 200, &limit, r)) return;
    store *st = server_store_acquire(s);
    json_t *items = NULL;
    char *next = NULL;
    nt_err err;
    nt_status rc = store_exception_page(st, query_arg(req, "cursor"), limit, &items, &next, &err);
    server_store_release(s, st);
    if (rc == NT_ERR_INVALID) api_refused("bad_cursor");
    if (rc != NT_OK) {
        fail_with(r, rc, &err);
        return;
    }
    r->status = 200;
    r->json = json_pack("{s:o,s:o}", "exceptions", items, "next_cursor",
                        next ? json_string(next) : json_null());
    free(next);
}

/* ---- rules and rejects ----------------------------------------------------- */

static json_t *rule_doc(server *s, store *st, size_t i, nt_status *rc, nt_err *err)
{
    const nt_rule *rule = s->rules->rules[i];
    json_t *doc = rule_to_json(rule);
    json_t *stats = NULL;
    *rc = store_rule_stats(st, rule->rule_id, &stats, err);
    if (*rc == NT_OK && rule->type == RULE_THRESHOLD && stats) {
        /* Groups now counting toward the threshold (events within the window
         * that have not yet gone into an alert). */
        long long groups = 0;
        *rc = store_threshold_groups(st, rule->rule_id, nt_now_ms(), rule->window_ms, &groups, err);
        json_object_set_new(stats, "threshold_groups", json_integer((json_int_t)groups));
    }
    json_object_set_new(doc, "counters", stats ? stats : json_null());
    nt_time_ms since = atomic_load(&s->learning_since[i]);
    char buf[NT_TIME_BUF];
    json_object_set_new(doc, "learning_until",
                        rule->learning_ms > 0 && since >= 0
                            ? json_string(nt_time_format(since + rule->learning_ms, buf))
                            : json_null());
    return doc;
}

static void rules_get(server *s, const char *id, reply *r)
{
    store *st = server_store_acquire(s);
    nt_err err;
    nt_status rc = NT_OK;
    if (id) {
        for (size_t i = 0; i < s->rules->n; i++) {
            if (strcmp(s->rules->rules[i]->rule_id, id) != 0) continue;
            r->json = rule_doc(s, st, i, &rc, &err);
            break;
        }
        if (!r->json) reply_error(r, 404, "not_found", "no rule with rule_id %.128s", id);
    } else {
        json_t *list = json_array();
        for (size_t i = 0; i < s->rules->n && rc == NT_OK; i++)
            json_array_append_new(list, rule_doc(s, st, i, &rc, &err));
        r->json = json_pack("{s:o,s:O}", "rules", list, "load_errors", s->rules->errors);
    }
    server_store_release(s, st);
    if (rc != NT_OK) {
        fail_with(r, rc, &err);
        return;
    }
    if (!r->status) r->status = 200;
}

static void rejects_list(server *s, const api_request *req, reply *r)
{
    static const char *const allowed[] = {"limit", NULL};
    size_t limit;
    if (!only_args(req, allowed, r) || !parse_limit(req, 100, 1000, &limit, r)) return;
    store *st = server_store_acquire(s);
    json_t *items = NULL;
    nt_err err;
    nt_status rc = store_reject_list(st, limit, &items, &err);
    server_store_release(s, st);
    if (rc != NT_OK) {
        fail_with(r, rc, &err);
        return;
    }
    r->status = 200;
    r->json = json_pack("{s:o}", "rejects", items);
}

/* ---- outputs (deliver.c) ----------------------------------------------------- */

static void method_not_allowed(reply *r, const char *allow);

static void outputs_list(server *s, const api_request *req, reply *r)
{
    static const char *const allowed[] = {NULL};
    if (!only_args(req, allowed, r)) return;
    store *st = server_store_acquire(s);
    json_t *doc = NULL;
    nt_err err;
    nt_status rc = deliver_status(deliver_outputs(s->deliver), st, &doc, &err);
    server_store_release(s, st);
    if (rc != NT_OK) {
        fail_with(r, rc, &err);
        return;
    }
    r->status = 200;
    r->json = doc;
}

/* "/outputs/{name}/failed" and "/outputs/{name}/retry": 1 with name and action set. */
static int outputs_route(const char *path, char *name, size_t cap, const char **action)
{
    static const char prefix[] = "/outputs/";
    if (strncmp(path, prefix, sizeof prefix - 1) != 0) return 0;
    const char *p = path + sizeof prefix - 1, *slash = strchr(p, '/');
    if (!slash || slash == p || (size_t)(slash - p) >= cap) return 0;
    if (strcmp(slash + 1, "failed") != 0 && strcmp(slash + 1, "retry") != 0) return 0;
    memcpy(name, p, (size_t)(slash - p));
    name[slash - p] = '\0';
    *action = slash + 1;
    return 1;
}

static void outputs_action(server *s, const api_request *req, const char *name, const char *action,
                           reply *r)
{
    int get = strcmp(req->method, "GET") == 0 || strcmp(req->method, "HEAD") == 0;
    int failed = strcmp(action, "failed") == 0;
    if (failed && !get) {
        method_not_allowed(r, "GET");
        return;
    }
    if (!failed && strcmp(req->method, "POST") != 0) {
        method_not_allowed(r, "POST");
        return;
    }
    if (!outputs_find(deliver_outputs(s->deliver), name)) {
        reply_error(r, 404, "not_found", "no output with that name is configured");
        return;
    }
    static const char *const with_limit[] = {"limit", NULL}, *const none[] = {NULL};
    size_t limit = 100;
    if (!only_args(req, failed ? with_limit : none, r)) return;
    if (failed && !parse_limit(req, 100, 1000, &limit, r)) return;
    store *st = server_store_acquire(s);
    nt_err err;
    json_t *items = NULL;
    long long requeued = 0;
    nt_status rc = failed ? deliver_failed(st, name, limit, &items, &err)
                          : deliver_retry(st, name, &requeued, &err);
    server_store_release(s, st);
    if (rc != NT_OK) {
        fail_with(r, rc, &err);
        return;
    }
    r->status = 200;
    r->json = failed ? json_pack("{s:s,s:o}", "output", name, "failed", items)
                     : json_pack("{s:s,s:I}", "output", name, "requeued", (json_int_t)requeued);
}

/* ---- routing --------------------------------------------------------------- */

/* Match "/<kind>" or "/<kind>/<id>"; *id gets the decoded id (or NULL). */
static int route_match(const char *path, const char *kind, char *id, size_t cap, int *has_id)
{
    size_t n = strlen(kind);
    if (path[0] != '/' || strncmp(path + 1, kind, n) != 0) return 0;
    const char *rest = path + 1 + n;
    if (*rest == 0) {
        *has_id = 0;
        return 1;
    }
    if (*rest != '/' || rest[1] == 0 || strchr(rest + 1, '/')) return 0;
    size_t len = strlen(rest + 1);
    if (len >= cap) return 0;
    memcpy(id, rest + 1, len + 1);
    *has_id = 1;
    return 1;
}

static void method_not_allowed(reply *r, const char *allow)
{
    reply_error(r, 405, "method_not_allowed", "allowed methods: %s", allow);
    r->allow = allow;
}

void api_handle(server *s, const api_request *req, reply *r)
{
    char id[256];
    int has_id = 0;
    const char *action = NULL;
    const char *m = req->method;
    int get = strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0;
    if (strcmp(req->path, "/alerts/status") == 0) {
        if (strcmp(m, "POST") == 0)
            alerts_bulk(s, req, r);
        else
            method_not_allowed(r, "POST");
    } else if (route_match(req->path, "alerts", id, sizeof id, &has_id)) {
        if (!has_id) {
            if (get)
                alerts_list(s, req, r);
            else
                method_not_allowed(r, "GET");
        } else if (get) {
            alert_get(s, id, r);
        } else if (strcmp(m, "PATCH") == 0) {
            alert_patch(s, req, id, r);
        } else {
            method_not_allowed(r, "GET, PATCH");
        }
    } else if (route_match(req->path, "exceptions", id, sizeof id, &has_id)) {
        if (!has_id) {
            if (get)
                exceptions_list(s, req, r);
            else if (strcmp(m, "POST") == 0)
                exception_write(s, req, NULL, r);
            else
                method_not_allowed(r, "GET, POST");
        } else if (!valid_id(id)) {
            reply_error(r, 404, "not_found", "no exception with that id");
        } else if (get) {
            exception_get(s, id, r);
        } else if (strcmp(m, "PUT") == 0) {
            exception_write(s, req, id, r);
        } else if (strcmp(m, "DELETE") == 0) {
            exception_delete(s, id, r);
        } else {
            method_not_allowed(r, "GET, PUT, DELETE");
        }
    } else if (route_match(req->path, "rules", id, sizeof id, &has_id)) {
        if (get)
            rules_get(s, has_id ? id : NULL, r);
        else
            method_not_allowed(r, "GET");
    } else if (strcmp(req->path, "/outputs") == 0) {
        if (get)
            outputs_list(s, req, r);
        else
            method_not_allowed(r, "GET");
    } else if (outputs_route(req->path, id, sizeof id, &action)) {
        outputs_action(s, req, id, action, r);
    } else if (strcmp(req->path, "/rejects") == 0) {
        if (get)
            rejects_list(s, req, r);
        else
            method_not_allowed(r, "GET");
    } else {
        reply_error(r, 404, "not_found", "no such API route");
    }
}

/*
 * ingest.c — the ingestion handlers (ingest.h): run a delivery through the
 * pipeline, commit what it produced, answer, count and log it.
 */
#include "ingest.h"

#include "decode.h"
#include "log.h"
#include "metrics.h"
#include "pipeline.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *ingest_route_name(ingest_route route)
{
    static const char *const names[] = {"firehose", "eventbridge", "events"};
    return names[route];
}

/* Firehose wants its own error shape: requestId, timestamp, errorMessage. */
void ingest_firehose_reply(reply *r, unsigned status, const char *request_id, const char *code,
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

/* ---- metrics and the log ------------------------------------------------ */

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
    metrics_counter_add("newtermsd_alert_docs_deferred_total", NULL, p->docs_deferred);
    metrics_counter_add("newtermsd_alert_docs_late_total", NULL, p->docs_late);
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

/* The delivery's dead-lettered records, pushed to nt:rejects. */
static nt_status commit_rejects(store *st, const pipe_run *p, const char *route,
                                const char *delivery_id, nt_err *err)
{
    nt_time_ms now = nt_now_ms();
    store_reject *rj = calloc(p->n_rejects, sizeof *rj);
    if (!rj) return nt_fail(err, NT_ERR_NOMEM, "out of memory writing rejects");
    for (size_t i = 0; i < p->n_rejects; i++) {
        rj[i].reason = p->rejects[i].reason;
        rj[i].route = route;
        rj[i].delivery_id = delivery_id;
        rj[i].prefix = p->rejects[i].prefix;
        rj[i].record_index = (long)p->rejects[i].record_index;
        rj[i].at = now;
    }
    nt_status rc = store_reject_push(st, rj, p->n_rejects, err);
    free(rj);
    return rc;
}

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
    if (rc == NT_OK && p->n_rejects) rc = commit_rejects(st, p, route, delivery_id, err);
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
    p->terms = server_terms_acquire(s);
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
void ingest_firehose(server *s, const char *hdr_id, const char *body, size_t len,
                     size_t body_inflated, reply *r)
{
    fh_envelope env;
    fh_envelope_init(&env);
    nt_err err;
    nt_status st = fh_scan(body, len, &env, NULL, NULL, &err);
    const char *rid = st == NT_OK ? env.request_id : hdr_id;
    if (st != NT_OK) {
        ingest_firehose_reply(r, reply_status(st), rid, reply_code(reply_status(st)), err.msg);
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
        ingest_firehose_reply(r, 413, env.request_id, "payload_too_large", msg);
        server_limit_refused("inflate_budget");
        metrics_counter_add("newtermsd_bad_deliveries_total", "route=\"firehose\"", 1);
    } else if (commit_delivery(s, &p, "firehose", env.request_id, &err) == NT_OK) {
        ingest_firehose_reply(r, 200, env.request_id, NULL, NULL);
    } else {
        log_msg(NT_LOG_ERROR, "delivery_failed", "firehose delivery %s not acknowledged: %s",
                env.request_id, err.msg);
        ingest_firehose_reply(r, 503, env.request_id, "store_unavailable",
                              "state store unavailable; retry later");
    }
    count_pipe("firehose", &p);
    log_delivery("firehose", env.request_id, &p, r->status);
    server_terms_release(s, p.terms);
    pipe_free(&p);
    exc_set_unref(exc);
    fh_envelope_free(&env);
}

void ingest_events(server *s, ingest_route route, const char *body, size_t len, reply *r)
{
    const char *name = ingest_route_name(route);
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
    nt_status st = route == INGEST_EVENTBRIDGE && pipe_skip_unparsed(&p, body, len)
                       ? NT_OK
                       : pipe_body(&p, body, len, &err);
    if (st == NT_OK && route == INGEST_EVENTBRIDGE && p.accepted != 1) {
        st = NT_ERR_INVALID;
        nt_fail(&err, st, "an EventBridge API destination call carries exactly one event, not %zu",
                p.accepted + p.rejected);
    }
    if (st != NT_OK) {
        if (st == NT_ERR_LIMIT) server_limit_refused("json");
        reply_fail(r, st, err.msg);
        metrics_counter_add(
            "newtermsd_bad_deliveries_total",
            route == INGEST_EVENTBRIDGE ? "route=\"eventbridge\"" : "route=\"events\"", 1);
    } else if (commit_delivery(s, &p, name, delivery_id, &err) != NT_OK) {
        log_msg(NT_LOG_ERROR, "delivery_failed", "%s delivery not acknowledged: %s", name, err.msg);
        reply_error(r, 503, reply_code(503), "state store unavailable; retry later");
    } else if (route == INGEST_EVENTBRIDGE) {
        r->status = 200;
        r->json = json_pack("{s:i,s:I}", "accepted", 1, "alerts", (json_int_t)p.alerts);
    } else {
        r->status = 200;
        r->json = json_pack("{s:I,s:I,s:I}", "accepted", (json_int_t)p.accepted, "rejected",
                            (json_int_t)p.rejected, "alerts", (json_int_t)p.alerts);
    }
    count_pipe(name, &p);
    log_delivery(name, delivery_id, &p, r->status);
    server_terms_release(s, p.terms);
    pipe_free(&p);
    exc_set_unref(exc);
}

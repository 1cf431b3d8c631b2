/*
 * Deferred threshold documents (store_obs.defer_doc on threshold sightings)
 * must not change an outcome. A live, unsuppressed threshold sighting goes to
 * the history without its alert document; only the one that would make its
 * group reach the threshold (and every later one of that group in the same
 * call) comes back as needs_doc and is observed again, in order, with its
 * document. Every test here runs the same sightings twice — every document
 * built at once (pipe_run.thr_docs_eager) and deferred — against a real
 * redis-server (tests/unit/redis_harness.h) and against memhist, and requires
 * the same outcomes per sighting (alert id, new, written, count, cardinality,
 * first/last event times) and the same Redis state key by key (values, and
 * whether a key has a TTL).
 *
 * Data: the rule pack's threshold corpus (tests/data/rulepack/threshold: per
 * rule a burst one event under the threshold and one that reaches it, two
 * groups per file) with the pack's own rules (rules/elastic-aws), cut into
 * deliveries of 1, 3, 7, 10 records and all in one; and the same corpus with
 * every "over" group continued by clones of its first event, so groups reach
 * and go on counting inside one delivery.
 */
#include "history.h"
#include "pipeline.h"
#include "redis_harness.h"
#include "rule.h"
#include "store.h"
#include "testutil.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define T0 1795843752000LL /* 2026-11-28T05:29:12Z */

static redis_harness shared;
static nt_ruleset *pack;
static json_t *manifest;
static json_t *corpus;   /* every threshold file's records, in file order */
static json_t *extended; /* corpus + clones continuing each "over" group */
static size_t want_alerts;

/* ---- Redis ------------------------------------------------------------------ */

static store *open_shared(void)
{
    store_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.url = shared.url;
    cfg.connect_timeout_ms = 2000;
    cfg.command_timeout_ms = 5000;
    cfg.alert_retention_ms = 30LL * 86400 * 1000;
    cfg.alert_cap = 100000;
    cfg.reject_cap = 10;
    store *s = NULL;
    nt_err err = {{0}};
    ck_assert_msg(store_open(&s, &cfg, &err) == NT_OK, "store_open: %s", err.msg);
    return s;
}

static void flush_shared(void)
{
    redisReply *r = redis_harness_command(&shared, "FLUSHALL");
    ck_assert_ptr_nonnull(r);
    freeReplyObject(r);
}

static json_t *reply_json(const redisReply *r)
{
    switch (r->type) {
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
        return json_stringn(r->str, r->len);
    case REDIS_REPLY_INTEGER:
        return json_integer(r->integer);
    case REDIS_REPLY_ARRAY: {
        json_t *a = json_array();
        for (size_t i = 0; i < r->elements; i++)
            json_array_append_new(a, reply_json(r->element[i]));
        return a;
    }
    default:
        return json_null();
    }
}

static int cmp_strp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every key of the database: {key: {"type", "value", "ttl": has one}}. Hash
 * fields become an object and set members a sorted array, so the order
 * Redis keeps them in does not matter. */
static json_t *snapshot(void)
{
    redisContext *c = redisConnect("127.0.0.1", shared.port);
    ck_assert_msg(c && !c->err, "connect to redis");
    redisReply *keys = redisCommand(c, "KEYS *");
    ck_assert_ptr_nonnull(keys);
    ck_assert_int_eq(keys->type, REDIS_REPLY_ARRAY);
    json_t *out = json_object();
    for (size_t i = 0; i < keys->elements; i++) {
        const char *k = keys->element[i]->str;
        redisReply *t = redisCommand(c, "TYPE %s", k);
        ck_assert_ptr_nonnull(t);
        redisReply *v = NULL;
        json_t *value = NULL;
        if (strcmp(t->str, "string") == 0) {
            v = redisCommand(c, "GET %s", k);
            value = reply_json(v);
        } else if (strcmp(t->str, "hash") == 0) {
            v = redisCommand(c, "HGETALL %s", k);
            value = json_object();
            for (size_t j = 0; j + 1 < v->elements; j += 2)
                json_object_set_new(value, v->element[j]->str, reply_json(v->element[j + 1]));
        } else if (strcmp(t->str, "zset") == 0) {
            v = redisCommand(c, "ZRANGE %s 0 -1 WITHSCORES", k);
            value = reply_json(v);
        } else if (strcmp(t->str, "set") == 0) {
            v = redisCommand(c, "SMEMBERS %s", k);
            char **m = calloc(v->elements + 1, sizeof *m);
            ck_assert_ptr_nonnull(m);
            for (size_t j = 0; j < v->elements; j++)
                m[j] = v->element[j]->str;
            qsort(m, v->elements, sizeof *m, cmp_strp);
            value = json_array();
            for (size_t j = 0; j < v->elements; j++)
                json_array_append_new(value, json_string(m[j]));
            free(m);
        } else if (strcmp(t->str, "list") == 0) {
            v = redisCommand(c, "LRANGE %s 0 -1", k);
            value = reply_json(v);
        } else {
            value = json_string("(not compared)");
        }
        redisReply *ttl = redisCommand(c, "PTTL %s", k);
        ck_assert_ptr_nonnull(ttl);
        json_object_set_new(
            out, k,
            json_pack("{s:s,s:o,s:b}", "type", t->str, "value", value, "ttl", ttl->integer > 0));
        freeReplyObject(ttl);
        if (v) freeReplyObject(v);
        freeReplyObject(t);
    }
    freeReplyObject(keys);
    redisFree(c);
    return out;
}

/* ---- runs ------------------------------------------------------------------- */

typedef struct run_result {
    json_t *outcomes; /* per sighting, in commit order */
    size_t alerts, deferred, late;
    size_t thr_obs, thr_alerts, thr_docs; /* threshold sightings, their alerts, documents */
} run_result;

/* Redis also reports the count of a group that did not reach its threshold;
 * memhist reports figures only with an alert. */
static json_t *outcome(const store_obs *o, int all_figures)
{
    if (!all_figures && !o->is_new)
        return json_pack("{s:s,s:s}", "rule", o->rule_id, "alert_id", o->alert_id);
    return json_pack("{s:s,s:s,s:i,s:i,s:i,s:I,s:I,s:I,s:I}", "rule", o->rule_id, "alert_id",
                     o->alert_id, "new", o->is_new, "written", o->alert_written, "suppressed",
                     o->suppressed, "count", (json_int_t)o->thr_count, "card",
                     (json_int_t)o->thr_card, "first", (json_int_t)o->thr_first, "last",
                     (json_int_t)o->thr_last);
}

/* records cut into deliveries of `per` records, delivery k at T0 + k s; each
 * delivery a body (pipe_body), or with via_unit one unit (pipe_unit, as a
 * Firehose record is: late documents are then rebuilt from a copy of the
 * unit's text, split again). */
static run_result run_cut(json_t *records, size_t per, int eager, nt_history h, int all_figures,
                          int via_unit)
{
    run_result rr = {.outcomes = json_array()};
    size_t n = json_array_size(records);
    for (size_t at = 0, k = 0; at < n; at += per, k++) {
        json_t *part = json_array();
        for (size_t i = at; i < n && i < at + per; i++)
            json_array_append(part, json_array_get(records, i));
        json_t *body = json_pack("{s:o}", "Records", part);
        char *text = json_dumps(body, JSON_COMPACT);
        json_decref(body);
        ck_assert_ptr_nonnull(text);
        pipe_run p;
        pipe_init(&p, pack, NULL, T0 + (nt_time_ms)k * 1000);
        p.thr_docs_eager = eager;
        nt_err err = {{0}};
        if (via_unit)
            pipe_unit(&p, k, 0, text, strlen(text));
        else
            ck_assert_msg(pipe_body(&p, text, strlen(text), &err) == NT_OK, "%s", err.msg);
        free(text);
        ck_assert_msg(pipe_commit(&p, &h, &err) == NT_OK, "commit: %s", err.msg);
        for (size_t i = 0; i < p.n_obs; i++) {
            json_array_append_new(rr.outcomes, outcome(&p.obs[i], all_figures));
            if (p.obs[i].kind != STORE_KIND_THRESHOLD) continue;
            rr.thr_obs++;
            rr.thr_alerts += p.obs[i].is_new;
            rr.thr_docs += p.items[i].alert_text != NULL;
        }
        rr.alerts += p.alerts;
        rr.deferred += p.docs_deferred;
        rr.late += p.docs_late;
        pipe_free(&p);
    }
    return rr;
}

static run_result run(json_t *records, size_t per, int eager, nt_history h, int all_figures)
{
    return run_cut(records, per, eager, h, all_figures, 0);
}

static void expect_equal_json(json_t *a, json_t *b, const char *what, size_t per)
{
    if (json_equal(a, b)) return;
    char *x = json_dumps(a, JSON_COMPACT | JSON_SORT_KEYS);
    char *y = json_dumps(b, JSON_COMPACT | JSON_SORT_KEYS);
    size_t d = 0;
    while (x && y && x[d] && x[d] == y[d])
        d++;
    size_t from = d > 200 ? d - 200 : 0;
    ck_abort_msg("%s differ (deliveries of %zu): eager ...%.400s\ndeferred ...%.400s", what, per,
                 x ? x + from : "?", y ? y + from : "?");
}

/* Eager and deferred, through Redis and through memhist: same outcomes and
 * the same Redis state. Returns the deferred Redis run (outcomes owned). */
static run_result compare_runs(json_t *records, size_t per)
{
    store *s = open_shared();
    flush_shared();
    run_result eager = run(records, per, 1, store_history(s), 1);
    json_t *state_eager = snapshot();
    flush_shared();
    run_result deferred = run(records, per, 0, store_history(s), 1);
    json_t *state_deferred = snapshot();
    flush_shared();
    run_result alerts = run(records, per, 0, store_history(s), 0); /* figures of alerts only */
    flush_shared();
    run_result units = run_cut(records, per, 0, store_history(s), 1, 1);
    json_t *state_units = snapshot();
    store_free(s);
    expect_equal_json(eager.outcomes, units.outcomes, "Redis outcomes through units", per);
    expect_equal_json(state_eager, state_units, "Redis states through units", per);
    ck_assert_uint_eq(units.late, deferred.late);
    json_decref(units.outcomes);
    json_decref(state_units);
    expect_equal_json(eager.outcomes, deferred.outcomes, "Redis outcomes", per);
    expect_equal_json(state_eager, state_deferred, "Redis states", per);
    ck_assert_uint_gt(json_object_size(state_eager), 0);
    ck_assert_uint_eq(eager.alerts, deferred.alerts);
    ck_assert_uint_eq(eager.deferred, 0);
    ck_assert_uint_eq(eager.late, 0);

    memhist *m1 = memhist_new(), *m2 = memhist_new();
    ck_assert_ptr_nonnull(m1);
    ck_assert_ptr_nonnull(m2);
    run_result me = run(records, per, 1, memhist_history(m1), 0);
    run_result md = run(records, per, 0, memhist_history(m2), 0);
    expect_equal_json(me.outcomes, md.outcomes, "memhist outcomes", per);
    expect_equal_json(alerts.outcomes, md.outcomes, "Redis and memhist outcomes", per);
    ck_assert_uint_eq(md.late, deferred.late);
    ck_assert_uint_eq(md.deferred, deferred.deferred);
    memhist_free(m1);
    memhist_free(m2);
    json_decref(me.outcomes);
    json_decref(md.outcomes);
    json_decref(alerts.outcomes);
    json_decref(eager.outcomes);
    json_decref(state_eager);
    json_decref(state_deferred);
    return deferred;
}

/* ---- tests -------------------------------------------------------------------- */

static const size_t cuts[] = {1, 3, 7, 10, 100000};

START_TEST(bursts_under_and_over_the_threshold_alert_alike_with_deferred_documents)
{
    size_t per = cuts[_i];
    run_result d = compare_runs(corpus, per);
    ck_assert_uint_eq(d.thr_alerts, want_alerts);
    /* every threshold sighting was sent without its document; only those
     * that reached a threshold were built (and sent again). (The pack's query
     * and new_terms rules match some of these records too: documents at once.) */
    ck_assert_uint_gt(d.thr_obs, 100);
    ck_assert_uint_eq(d.deferred, d.thr_obs);
    ck_assert_uint_eq(d.late, want_alerts);
    ck_assert_uint_eq(d.thr_docs, want_alerts);
    json_decref(d.outcomes);
}
END_TEST

START_TEST(groups_that_reach_and_go_on_counting_in_one_delivery_alert_alike)
{
    size_t per = cuts[_i];
    run_result d = compare_runs(extended, per);
    /* the count rules' clones (as many as the threshold) reach once more; the
     * cardinality rules' clones repeat one value and never do */
    size_t more = 0;
    size_t i;
    json_t *r;
    json_array_foreach(json_object_get(manifest, "threshold"), i, r)
    {
        more += json_array_size(json_object_get(r, "cardinality")) == 0;
    }
    ck_assert_uint_eq(d.thr_alerts, want_alerts + more);
    ck_assert_uint_ge(d.late, d.thr_alerts);
    ck_assert_uint_eq(d.thr_docs, d.late);
    json_decref(d.outcomes);
}
END_TEST

/* One call, by hand: two events of g1 counted, the third would reach (6), the
 * fourth follows it (6), g2 is applied; nothing is written for the 6s, not
 * even events_matched. The second call with their documents: the third
 * alerts with count 3, the fourth starts over. */
static void thr_obs(store_obs *o, const char *group, const char *id, long long at, int defer)
{
    memset(o, 0, sizeof *o);
    o->kind = STORE_KIND_THRESHOLD;
    o->mode = STORE_OBS_LIVE;
    o->rule_id = "rt";
    o->term_hash = group;
    o->alert_id = id;
    o->alert_json = defer ? NULL : "{\"x\":1}";
    o->defer_doc = defer;
    o->seen_ms = o->created_ms = T0;
    o->event_time = T0 + at;
    o->ttl_ms = 60000;
    o->thr_value = 3;
    o->card = "";
}

START_TEST(a_sighting_that_would_reach_changes_nothing_and_asks_for_its_document)
{
    flush_shared();
    store *s = open_shared();
    memhist *mh = memhist_new();
    nt_history hs = store_history(s), hm = memhist_history(mh);
    nt_history hist[2] = {hs, hm};
    static const char *const groups[] = {"g1", "g1", "g2", "g1", "g1", "g1"};
    static const char *const ids[] = {"a1", "a2", "b1", "a3", "a4", "a3"};
    static const int needs[] = {0, 0, 0, 1, 1, 1};
    for (int b = 0; b < 2; b++) {
        store_obs o[6];
        for (int i = 0; i < 6; i++)
            thr_obs(&o[i], groups[i], ids[i], i == 5 ? 3 : i, 1);
        nt_err err = {{0}};
        ck_assert_msg(hist[b].observe(hist[b].ctx, o, 6, &err) == NT_OK, "%s", err.msg);
        for (int i = 0; i < 6; i++) {
            ck_assert_msg(o[i].needs_doc == needs[i], "%s %d", b ? "memhist" : "redis", i);
            ck_assert_int_eq(o[i].is_new, 0);
        }
        if (b == 0) {
            redisReply *r = redis_harness_command(&shared, "ZCARD nt:thr:rt:g1:w");
            ck_assert_int_eq(r->integer, 2);
            freeReplyObject(r);
            r = redis_harness_command(&shared, "HGET nt:rule:rt:stats events_matched");
            ck_assert_str_eq(r->str, "3");
            freeReplyObject(r);
        }
        store_obs again[3];
        for (int i = 0; i < 3; i++)
            thr_obs(&again[i], "g1", ids[3 + i], i == 2 ? 3 : 3 + i, 0);
        ck_assert_msg(hist[b].observe(hist[b].ctx, again, 3, &err) == NT_OK, "%s", err.msg);
        ck_assert_int_eq(again[0].is_new, 1);
        ck_assert_int_eq(again[0].thr_count, 3);
        ck_assert_int_eq(again[0].thr_first, T0);
        ck_assert_int_eq(again[0].thr_last, T0 + 3);
        ck_assert_int_eq(again[1].is_new, 0);
        ck_assert_int_eq(again[2].is_new, 0); /* a retry of a3: counted already */
        ck_assert_int_eq(again[2].needs_doc, 0);
    }
    redisReply *r = redis_harness_command(&shared, "ZCARD nt:thr:rt:g1:w");
    ck_assert_int_eq(r->integer, 1); /* a4 counts anew */
    freeReplyObject(r);
    r = redis_harness_command(&shared, "HGET nt:rule:rt:stats events_matched");
    ck_assert_str_eq(r->str, "6");
    freeReplyObject(r);
    r = redis_harness_command(&shared, "HGET nt:alert:a3 thr_count");
    ck_assert_str_eq(r->str, "3");
    freeReplyObject(r);
    memhist_free(mh);
    store_free(s);
}
END_TEST

START_TEST(only_live_unsuppressed_threshold_and_new_terms_sightings_may_defer)
{
    store *s = open_shared();
    store_obs o;
    nt_err err = {{0}};
    thr_obs(&o, "g", "x1", 0, 1);
    o.supp_ms = 1000;
    o.supp_hash = "s";
    ck_assert_int_eq(store_observe(s, &o, 1, &err), NT_ERR_INVALID);
    thr_obs(&o, "g", "x1", 0, 1);
    o.kind = STORE_KIND_QUERY;
    ck_assert_int_eq(store_observe(s, &o, 1, &err), NT_ERR_INVALID);
    thr_obs(&o, "g", "x1", 0, 1);
    o.mode = STORE_OBS_LEARN;
    ck_assert_int_eq(store_observe(s, &o, 1, &err), NT_ERR_INVALID);
    store_free(s);
}
END_TEST

/* A retried event is told apart before the window is trimmed: a retry
 * within the window (pending or counted in an alert) is not counted again; one
 * whose first sighting left the window counts anew, in Redis as in memhist. */
START_TEST(a_retry_counts_again_only_after_its_first_sighting_left_the_window)
{
    flush_shared();
    store *s = open_shared();
    memhist *mh = memhist_new();
    nt_history hist[2] = {store_history(s), memhist_history(mh)};
    static const struct {
        const char *id;
        long long seen, etime; /* offsets from T0 */
        int is_new;
        long long count;
    } steps[] = {
        {"e1", 0, 0, 0, 0},     {"e1", 30000, 0, 0, 0}, /* retry: pending */
        {"e2", 40000, 1, 1, 2},                         /* alert: e1, e2 counted */
        {"e1", 50000, 0, 0, 0},                         /* retry: counted */
        {"e1", 70000, 0, 0, 0}, /* its first sighting (T0) left the window: 1 */
        {"e2", 75000, 1, 0, 0}, /* counted at +40 s, still in the window */
        {"e3", 80000, 2, 1, 2}, /* e1 (+70 s) and e3 */
    };
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        for (int b = 0; b < 2; b++) {
            store_obs o;
            thr_obs(&o, "g", steps[i].id, steps[i].etime, 0);
            o.thr_value = 2;
            o.seen_ms = o.created_ms = T0 + steps[i].seen;
            nt_err err = {{0}};
            ck_assert_msg(hist[b].observe(hist[b].ctx, &o, 1, &err) == NT_OK, "%s", err.msg);
            ck_assert_msg(o.is_new == steps[i].is_new, "step %zu %s: is_new %d", i,
                          b ? "memhist" : "redis", o.is_new);
            if (o.is_new) ck_assert_int_eq(o.thr_count, steps[i].count);
        }
    }
    redisReply *r = redis_harness_command(&shared, "HGET nt:rule:rt:stats events_matched");
    ck_assert_str_eq(r->str, "7");
    freeReplyObject(r);
    memhist_free(mh);
    store_free(s);
}
END_TEST

/* The script takes what observations share once per call (a profile per
 * rule, kind, mode, times, threshold and suppression) and only the fields an
 * observation needs: a call mixing every kind, mode and optional field must
 * decide and write exactly what one call per observation does. */
typedef struct mix_case {
    const char *rule;
    store_obs_kind kind;
    store_obs_mode mode;
    const char *term, *id;
    long long at;                  /* seen and event time offset */
    int defer, doc, supp, indexed; /* defer_doc; a document; suppression; account/user */
    long long thr, cval;
    const char *card;
} mix_case;

static const mix_case mix[] = {
    {"ra", STORE_KIND_NEW_TERMS, STORE_OBS_LIVE, "t1", "a1", 0, 0, 1, 0, 1, 0, 0, NULL},
    {"ra", STORE_KIND_NEW_TERMS, STORE_OBS_LIVE, "t1", "a2", 0, 1, 0, 0, 0, 0, 0, NULL},
    {"ra", STORE_KIND_NEW_TERMS, STORE_OBS_LIVE, "t2", "a3", 0, 1, 0, 0, 0, 0, 0, NULL},
    {"rs", STORE_KIND_NEW_TERMS, STORE_OBS_LIVE, "t1", "s1", 0, 0, 1, 1, 1, 0, 0, NULL},
    {"rs", STORE_KIND_NEW_TERMS, STORE_OBS_LIVE, "t2", "s2", 0, 0, 1, 1, 0, 0, 0, NULL},
    {"rb", STORE_KIND_NEW_TERMS, STORE_OBS_LEARN, "t1", "b1", 0, 0, 0, 0, 0, 0, 0, NULL},
    {"rb", STORE_KIND_NEW_TERMS, STORE_OBS_LEARN, "t1", "b2", 0, 0, 0, 0, 0, 0, 0, NULL},
    {"rc", STORE_KIND_NEW_TERMS, STORE_OBS_BACKFILL, "t1", "c1", -5000, 0, 0, 0, 0, 0, 0, NULL},
    {"rc", STORE_KIND_NEW_TERMS, STORE_OBS_BACKFILL, "t1", "c2", -3000, 0, 0, 0, 0, 0, 0, NULL},
    {"rc", STORE_KIND_NEW_TERMS, STORE_OBS_BACKFILL, "t9", "c3", -90000, 0, 0, 0, 0, 0, 0, NULL},
    {"rq", STORE_KIND_QUERY, STORE_OBS_LIVE, "q", "q1", 0, 0, 1, 1, 1, 0, 0, NULL},
    {"rq", STORE_KIND_QUERY, STORE_OBS_LIVE, "q", "q2", 0, 0, 1, 1, 0, 0, 0, NULL},
    {"rq", STORE_KIND_QUERY, STORE_OBS_LIVE, "q", "q3", 0, 0, 1, 0, 1, 0, 0, NULL},
    {"rq", STORE_KIND_QUERY, STORE_OBS_LEARN, "q", "q4", 0, 0, 0, 0, 0, 0, 0, NULL},
    {"rt", STORE_KIND_THRESHOLD, STORE_OBS_LIVE, "g", "e1", 1, 0, 1, 1, 1, 2, 2,
     "aaaaaaaaaaaaaaaa"},
    {"rt", STORE_KIND_THRESHOLD, STORE_OBS_LIVE, "g", "e2", 2, 0, 1, 1, 0, 2, 2,
     "aaaaaaaaaaaaaaaa"},
    {"rt", STORE_KIND_THRESHOLD, STORE_OBS_LIVE, "g", "e3", 3, 0, 1, 1, 1, 2, 2,
     "bbbbbbbbbbbbbbbb,cccccccccccccccc"},
    {"ru", STORE_KIND_THRESHOLD, STORE_OBS_LIVE, "g", "f1", 1, 1, 0, 0, 0, 2, 0, ""},
    {"ru", STORE_KIND_THRESHOLD, STORE_OBS_LIVE, "g", "f2", 2, 1, 0, 0, 0, 2, 0, ""},
    {"ru", STORE_KIND_THRESHOLD, STORE_OBS_LIVE, "h", "f3", 2, 0, 1, 0, 1, 2, 0, NULL},
    {"rv", STORE_KIND_THRESHOLD, STORE_OBS_LEARN, "g", "v1", 1, 0, 0, 0, 0, 1, 0, ""},
};

static void mix_obs(store_obs *o, const mix_case *m)
{
    memset(o, 0, sizeof *o);
    o->rule_id = m->rule;
    o->kind = m->kind;
    o->mode = m->mode;
    o->term_hash = m->term;
    o->alert_id = m->id;
    o->defer_doc = m->defer;
    o->alert_json = m->doc ? "{\"doc\":true}" : NULL;
    o->account = m->indexed ? "111122223333" : NULL;
    o->user = m->indexed ? "alice" : "";
    o->supp_ms = m->supp ? 3600000 : 0;
    o->supp_hash = m->supp ? "sg" : NULL;
    o->thr_value = m->thr;
    o->card_value = m->cval;
    o->card = m->card;
    o->created_ms = T0;
    o->seen_ms = m->mode == STORE_OBS_BACKFILL ? T0 + m->at : T0;
    o->event_time = T0 + m->at;
    o->ttl_ms = m->mode == STORE_OBS_BACKFILL ? 60000 + m->at : 60000;
}

static json_t *mix_outcome(const store_obs *o)
{
    return json_pack("{s:s,s:i,s:i,s:i,s:i,s:s,s:I,s:I,s:I,s:I}", "id", o->alert_id, "new",
                     o->is_new, "written", o->alert_written, "suppressed", o->suppressed,
                     "needs_doc", o->needs_doc, "into", o->supp_into, "count",
                     (json_int_t)o->thr_count, "card", (json_int_t)o->thr_card, "first",
                     (json_int_t)o->thr_first, "last", (json_int_t)o->thr_last);
}

START_TEST(every_kind_mode_and_field_in_one_call_decides_as_one_call_each)
{
    const size_t n = sizeof mix / sizeof mix[0];
    store_obs o[sizeof mix / sizeof mix[0]];
    json_t *got[2], *state[2];
    store *s = open_shared();
    for (int way = 0; way < 2; way++) {
        flush_shared();
        for (size_t i = 0; i < n; i++)
            mix_obs(&o[i], &mix[i]);
        nt_err err = {{0}};
        if (way == 0) {
            ck_assert_msg(store_observe(s, o, n, &err) == NT_OK, "%s", err.msg);
        } else {
            for (size_t i = 0; i < n; i++)
                ck_assert_msg(store_observe(s, &o[i], 1, &err) == NT_OK, "%zu: %s", i, err.msg);
        }
        got[way] = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append_new(got[way], mix_outcome(&o[i]));
        state[way] = snapshot();
    }
    store_free(s);
    expect_equal_json(got[1], got[0], "outcomes", 1);
    expect_equal_json(state[1], state[0], "Redis states", 1);
    /* and they are what they should be */
    static const int want_new[] = {1, 0, 0, 1, 0, 1, 0, 1, 0, 0, 1, 0, 1, 1, 0, 0, 1, 0, 0, 0, 1};
    static const int want_needs[] = {0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0};
    for (size_t i = 0; i < n; i++) {
        json_t *g = json_array_get(got[0], i);
        ck_assert_msg(json_integer_value(json_object_get(g, "new")) == want_new[i], "%zu new", i);
        ck_assert_msg(json_integer_value(json_object_get(g, "needs_doc")) == want_needs[i],
                      "%zu needs_doc", i);
    }
    /* s2 and q2 were suppressed into s1 and q1; e3 reached with 3 events, 3 values */
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(got[0], 4), "into")), "s1");
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(got[0], 11), "into")), "q1");
    ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(got[0], 16), "count")), 3);
    ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(got[0], 16), "card")), 3);
    ck_assert_ptr_nonnull(json_object_get(state[0], "nt:alerts:account:111122223333"));
    ck_assert_ptr_nonnull(json_object_get(state[0], "nt:alerts:user:alice"));
    for (int way = 0; way < 2; way++) {
        json_decref(got[way]);
        json_decref(state[way]);
    }
}
END_TEST

/* ---- setup -------------------------------------------------------------------- */

/* The event's clone with a new eventID (seq) and a later eventTime. */
static json_t *clone_event(json_t *rec, int seq)
{
    json_t *c = json_deep_copy(rec);
    char id[64];
    snprintf(id, sizeof id, "0000c10e-0000-4000-8000-%012d", seq);
    json_object_set_new(c, "eventID", json_string(id));
    char t[32];
    snprintf(t, sizeof t, "2026-11-18T12:%02d:%02dZ", (seq / 60) % 60, seq % 60);
    json_object_set_new(c, "eventTime", json_string(t));
    return c;
}

static json_t *find_event(json_t *records, const char *event_id)
{
    size_t i;
    json_t *r;
    json_array_foreach(records, i, r)
    {
        if (strcmp(json_string_value(json_object_get(r, "eventID")), event_id) == 0) return r;
    }
    return NULL;
}

static Suite *thrdefer_suite(void)
{
    if (redis_harness_start(&shared, NULL) != 0) {
        fprintf(stderr, "test_thrdefer: cannot start redis-server\n");
        return NULL;
    }
    nt_err err;
    if (ruleset_load_dir(NT_TEST_DATA "/../../rules/elastic-aws", 1, &pack, &err) != NT_OK)
        tu_fail("rules/elastic-aws: %s", err.msg);
    manifest = tu_load_json(NT_TEST_DATA "/rulepack/manifest.json", 0);
    corpus = json_array();
    extended = json_array();
    int seq = 0;
    size_t i;
    json_t *rule;
    json_array_foreach(json_object_get(manifest, "threshold"), i, rule)
    {
        char path[512];
        tu_path(path, sizeof path, "%s/rulepack/%s", NT_TEST_DATA,
                json_string_value(json_object_get(rule, "file")));
        json_t *file = tu_load_json(path, 0);
        json_t *records = json_object_get(file, "Records");
        json_array_extend(corpus, records);
        json_array_extend(extended, records);
        const char *first_over = NULL;
        size_t k;
        json_t *c;
        json_array_foreach(json_object_get(rule, "cases"), k, c)
        {
            want_alerts += json_is_true(json_object_get(c, "alert"));
            if (!first_over && strcmp(json_string_value(json_object_get(c, "group")), "over") == 0)
                first_over = json_string_value(json_object_get(c, "event_id"));
        }
        json_t *ev = first_over ? find_event(records, first_over) : NULL;
        if (!ev) tu_fail("%s: no event of the over group", path);
        long long value = json_integer_value(json_object_get(rule, "value"));
        for (long long n = 0; n < (value > 3 ? value : 3); n++)
            json_array_append_new(extended, clone_event(ev, ++seq));
        json_decref(file);
    }
    if (want_alerts != 5)
        tu_fail("the threshold corpus should hold 5 alerts, not %zu", want_alerts);

    Suite *s = suite_create("thrdefer");
    TCase *tc = tcase_create("thrdefer");
    tcase_set_timeout(tc, 120);
    int ncuts = (int)(sizeof cuts / sizeof cuts[0]);
    tcase_add_loop_test(tc, bursts_under_and_over_the_threshold_alert_alike_with_deferred_documents,
                        0, ncuts);
    tcase_add_loop_test(tc, groups_that_reach_and_go_on_counting_in_one_delivery_alert_alike, 0,
                        ncuts);
    tcase_add_test(tc, a_sighting_that_would_reach_changes_nothing_and_asks_for_its_document);
    tcase_add_test(tc, only_live_unsuppressed_threshold_and_new_terms_sightings_may_defer);
    tcase_add_test(tc, every_kind_mode_and_field_in_one_call_decides_as_one_call_each);
    tcase_add_test(tc, a_retry_counts_again_only_after_its_first_sighting_left_the_window);
    suite_add_tcase(s, tc);
    return s;
}

static void thrdefer_teardown(void)
{
    ruleset_free(pack);
    json_decref(manifest);
    json_decref(corpus);
    json_decref(extended);
    redis_harness_cleanup(&shared);
}

NT_TEST_MAIN_TEARDOWN(thrdefer_suite, thrdefer_teardown)

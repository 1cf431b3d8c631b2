/*
 * New-terms decisions end to end in memory: rules loaded from TOML, records
 * through the pipeline (view, query, exceptions, tuples) and the in-memory
 * history judged on event time. Scenarios are data: tests/data/engine/scenarios.json.
 */
#include "exception.h"
#include "history.h"
#include "pipeline.h"
#include "rule.h"
#include "termcache.h"
#include "testutil.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static json_t *scenarios;
static nt_ruleset *shipped, *multi;

/* Set or delete a dotted path in an object. */
static void set_path(json_t *obj, const char *path, json_t *value)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    char *dot, *key = buf;
    while ((dot = strchr(key, '.'))) {
        *dot = 0;
        json_t *next = json_object_get(obj, key);
        if (!json_is_object(next)) {
            next = json_object();
            json_object_set_new(obj, key, next);
        }
        obj = next;
        key = dot + 1;
    }
    if (value)
        json_object_set_new(obj, key, value);
    else
        json_object_del(obj, key);
}

/* Build a CloudTrail record from a scenario event description. */
static json_t *make_record(json_t *base, json_t *spec, int seq)
{
    json_t *r = json_deep_copy(base);
    char id[64];
    snprintf(id, sizeof id, "00000000-0000-4000-8000-%012d", seq);
    set_path(r, "eventID", json_string(id));
    const char *user = json_string_value(json_object_get(spec, "user"));
    if (user) set_path(r, "userIdentity.userName", json_string(user));
    const char *account = json_string_value(json_object_get(spec, "account"));
    if (account) set_path(r, "userIdentity.accountId", json_string(account));
    const char *t = json_string_value(json_object_get(spec, "time"));
    set_path(r, "eventTime", json_string(t ? t : "2026-11-01T12:00:00Z"));
    const char *action = json_string_value(json_object_get(spec, "action"));
    if (action) set_path(r, "eventName", json_string(action));
    json_t *sts = json_object_get(spec, "sts");
    json_t *sts_count = json_object_get(spec, "sts_count");
    if (sts || sts_count) {
        set_path(r, "eventSource", json_string("sts.amazonaws.com"));
        set_path(r, "eventName", json_string("AssumeRole"));
        json_t *res = json_array();
        size_t i;
        json_t *v;
        json_array_foreach(sts, i, v)
        {
            json_array_append_new(res, json_pack("{s:O,s:s}", "ARN", v, "type", "AWS::IAM::Role"));
        }
        for (json_int_t k = 0; k < json_integer_value(sts_count); k++) {
            char arn[64];
            snprintf(arn, sizeof arn, "arn:aws:iam::1:role/r%lld", (long long)k);
            json_array_append_new(res, json_pack("{s:s}", "ARN", arn));
        }
        set_path(r, "resources", res);
    }
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(spec, "set"), k, v)
    {
        set_path(r, k, json_incref(v));
    }
    size_t i;
    json_array_foreach(json_object_get(spec, "delete"), i, v)
    {
        set_path(r, json_string_value(v), NULL);
    }
    return r;
}

START_TEST(scenario)
{
    json_t *sc = json_array_get(scenarios, (size_t)_i);
    const char *name = json_string_value(json_object_get(sc, "name"));
    const char *rules = json_string_value(json_object_get(sc, "rules"));
    nt_ruleset *rs = rules && strcmp(rules, "multi") == 0 ? multi : shipped;
    json_t *base =
        tu_load_json(NT_TEST_DATA "/cloudtrail/organizations_ListAccounts_IAMUser.json", 0);
    ck_assert_ptr_nonnull(base);

    nt_field_source src = ct_schema_source(rs->schema);
    json_t *items = json_object_get(sc, "exceptions");
    json_t *none = json_array();
    exc_set *exc = exc_set_from_json(items ? items : none, &src, NULL, NULL);
    json_decref(none);
    ck_assert_ptr_nonnull(exc);

    json_t *records = json_array();
    size_t i;
    json_t *ev;
    json_array_foreach(json_object_get(sc, "events"), i, ev)
    {
        json_array_append_new(records, make_record(base, ev, (int)i));
    }
    json_t *doc = json_pack("{s:o}", "Records", records);
    char *text = json_dumps(doc, JSON_COMPACT);

    memhist *mh = memhist_new();
    pipe_run p;
    pipe_init(&p, rs, exc, 1795843752000);
    p.event_clock = 1;
    p.keep_alerts = 1;
    nt_err err;
    ck_assert_int_eq(pipe_body(&p, text, strlen(text), &err), NT_OK);
    nt_history h = memhist_history(mh);
    ck_assert_int_eq(pipe_commit(&p, &h, &err), NT_OK);

    /* Collect the alerts as [term..., original_time]. */
    json_t *got = json_array();
    for (size_t k = 0; k < p.n_obs; k++) {
        if (!p.obs[k].is_new) continue;
        json_t *a = p.items[k].alert;
        json_t *row = json_deep_copy(json_object_get(a, "new_terms"));
        char t[NT_TIME_BUF];
        nt_time_format(p.items[k].event_time, t);
        t[19] = 'Z';
        t[20] = 0; /* drop milliseconds: the scenarios use whole seconds */
        json_array_append_new(row, json_string(t));
        json_array_append_new(got, row);
    }
    json_t *want = json_object_get(sc, "alerts");
    if (want) {
        ck_assert_msg(json_array_size(got) == json_array_size(want), "%s: %zu alerts, want %zu",
                      name, json_array_size(got), json_array_size(want));
        json_array_foreach(want, i, ev)
        {
            json_t *g = json_array_get(got, i);
            size_t n = json_array_size(ev);
            for (size_t c = 0; c < n; c++) {
                const char *w = json_string_value(json_array_get(ev, c));
                const char *gv = json_string_value(json_array_get(g, c));
                if (c == n - 1 && strcmp(w, "*") == 0) continue;
                ck_assert_msg(gv && strcmp(w, gv) == 0, "%s: alert %zu field %zu is %s, want %s",
                              name, i, c, gv ? gv : "(none)", w);
            }
        }
    }
    json_t *count = json_object_get(sc, "alert_count");
    if (count)
        ck_assert_msg(json_array_size(got) == (size_t)json_integer_value(count), "%s: %zu alerts",
                      name, json_array_size(got));
    const char *key;
    json_t *val;
    json_object_foreach(json_object_get(sc, "stats"), key, val)
    {
        unsigned long long have = strcmp(key, "rule_matches") == 0     ? p.st.rule_matches
                                  : strcmp(key, "missing_terms") == 0  ? p.st.missing_terms
                                  : strcmp(key, "candidates") == 0     ? p.st.candidates
                                  : strcmp(key, "exception_hits") == 0 ? p.st.exception_hits
                                  : strcmp(key, "combos_capped") == 0  ? p.st.combos_capped
                                                                       : ~0ULL;
        ck_assert_msg(have == (unsigned long long)json_integer_value(val),
                      "%s: %s is %llu, want %lld", name, key, have,
                      (long long)json_integer_value(val));
    }
    json_decref(got);
    pipe_free(&p);
    memhist_free(mh);
    exc_set_unref(exc);
    free(text);
    json_decref(doc);
    json_decref(base);
}
END_TEST

START_TEST(alert_ids_are_deterministic_and_differ_per_event)
{
    json_t *base =
        tu_load_json(NT_TEST_DATA "/cloudtrail/organizations_ListAccounts_IAMUser.json", 0);
    char *text = json_dumps(base, JSON_COMPACT);
    char ids[2][33];
    for (int round = 0; round < 2; round++) {
        memhist *mh = memhist_new();
        pipe_run p;
        pipe_init(&p, shipped, NULL, 1795843752000 + round * 1000);
        nt_err err;
        ck_assert_int_eq(pipe_body(&p, text, strlen(text), &err), NT_OK);
        nt_history h = memhist_history(mh);
        ck_assert_int_eq(pipe_commit(&p, &h, &err), NT_OK);
        ck_assert_int_eq(p.alerts, 1);
        memcpy(ids[round], p.items[0].alert_id, 33);
        pipe_free(&p);
        memhist_free(mh);
    }
    ck_assert_str_eq(ids[0], ids[1]);
    free(text);
    json_object_set_new(base, "eventID", json_string("another-event"));
    text = json_dumps(base, JSON_COMPACT);
    pipe_run p;
    pipe_init(&p, shipped, NULL, 1795843752000);
    nt_err err;
    ck_assert_int_eq(pipe_body(&p, text, strlen(text), &err), NT_OK);
    ck_assert_int_eq(p.n_obs, 1);
    ck_assert_str_ne(p.items[0].alert_id, ids[0]);
    pipe_free(&p);
    free(text);
    json_decref(base);
}
END_TEST

START_TEST(the_prefilter_never_changes_the_outcome)
{
    /* Every scenario record, with and without the prefilter, as Firehose units. */
    json_t *base =
        tu_load_json(NT_TEST_DATA "/cloudtrail/organizations_ListAccounts_IAMUser.json", 0);
    json_t *noise = tu_load_json(NT_TEST_DATA "/cloudtrail/s3_GetObject_AssumedRole.json", 0);
    size_t i;
    json_t *sc;
    json_array_foreach(scenarios, i, sc)
    {
        size_t j;
        json_t *ev;
        json_array_foreach(json_object_get(sc, "events"), j, ev)
        {
            json_t *r = make_record(base, ev, (int)j);
            char *text = json_dumps(r, JSON_COMPACT);
            size_t obs[2];
            for (int pf = 0; pf < 2; pf++) {
                pipe_run p;
                pipe_init(&p, shipped, NULL, 1795843752000);
                p.prefilter = pf;
                pipe_unit(&p, 0, 0, text, strlen(text));
                obs[pf] = p.n_obs;
                pipe_free(&p);
            }
            ck_assert_msg(obs[0] == obs[1], "%s event %zu: %zu vs %zu",
                          json_string_value(json_object_get(sc, "name")), j, obs[0], obs[1]);
            free(text);
            json_decref(r);
        }
    }
    char *text = json_dumps(noise, JSON_COMPACT);
    pipe_run p;
    pipe_init(&p, shipped, NULL, 1795843752000);
    pipe_unit(&p, 0, 0, text, strlen(text));
    ck_assert_int_eq(p.counts[PIPE_SHAPE_RAW][PIPE_PREFILTERED], 1);
    pipe_free(&p);
    free(text);
    json_decref(base);
    json_decref(noise);
}
END_TEST

/* One live delivery of `text` at `now` into mh, with the term cache tc (NULL:
 * none). Returns the pipeline, committed; the caller frees it. */
static void run_live(pipe_run *p, const char *text, memhist *mh, nt_termcache *tc, nt_time_ms now)
{
    pipe_init(p, shipped, NULL, now);
    p->terms = tc;
    nt_err err;
    ck_assert_int_eq(pipe_body(p, text, strlen(text), &err), NT_OK);
    nt_history h = memhist_history(mh);
    ck_assert_int_eq(pipe_commit(p, &h, &err), NT_OK);
}

START_TEST(deferred_documents_raise_the_same_alerts_as_built_ones)
{
    /* Five principals, two sightings each: ten candidates, five new terms. */
    json_t *base =
        tu_load_json(NT_TEST_DATA "/cloudtrail/organizations_ListAccounts_IAMUser.json", 0);
    json_t *records = json_array();
    for (int i = 0; i < 10; i++) {
        json_t *r = json_deep_copy(base);
        char user[32], id[64];
        snprintf(user, sizeof user, "principal-%d", i % 5);
        snprintf(id, sizeof id, "0000000%d-aaaa-bbbb-cccc-dddddddddddd", i);
        json_object_set_new(json_object_get(r, "userIdentity"), "userName", json_string(user));
        json_object_set_new(r, "eventID", json_string(id));
        json_array_append_new(records, r);
    }
    json_t *doc = json_pack("{s:o}", "Records", records);
    char *text = json_dumps(doc, JSON_COMPACT);
    const nt_time_ms now = 1795843752000;

    /* A: no cache, every document built up front. */
    memhist *ma = memhist_new();
    pipe_run a;
    run_live(&a, text, ma, NULL, now);
    ck_assert_int_eq(a.alerts, 5);
    ck_assert_int_eq(a.docs_deferred, 0);

    /* B: a cache that believes every term known (it learnt them from another
     * history), against an empty history: every document is deferred, the
     * history asks for each new one, and the alerts are A's, byte for byte. */
    nt_termcache *tc = termcache_new(64);
    memhist *mx = memhist_new();
    pipe_run x;
    run_live(&x, text, mx, tc, now);
    ck_assert_int_eq(termcache_size(tc), 5);
    pipe_free(&x);
    memhist_free(mx);
    memhist *mb = memhist_new();
    pipe_run b;
    run_live(&b, text, mb, tc, now);
    ck_assert_int_eq(b.docs_deferred, b.n_obs);
    ck_assert_int_eq(b.docs_late, 10); /* each sighting asked: none was written the first time */
    ck_assert_int_eq(b.alerts, a.alerts);
    ck_assert_int_eq(b.n_obs, a.n_obs);
    for (size_t i = 0; i < a.n_obs; i++) {
        ck_assert_int_eq(b.obs[i].is_new, a.obs[i].is_new);
        ck_assert_str_eq(b.items[i].alert_id, a.items[i].alert_id);
        if (!a.obs[i].is_new) continue;
        ck_assert_str_eq(b.items[i].alert_text, a.items[i].alert_text);
        ck_assert_str_eq(b.obs[i].account, a.obs[i].account);
        ck_assert_str_eq(b.obs[i].user, a.obs[i].user);
    }

    /* C: the same delivery again into A's history: nothing new, no document
     * built, nothing asked for. */
    pipe_run c;
    run_live(&c, text, ma, tc, now + 1000);
    ck_assert_int_eq(c.alerts, 0);
    ck_assert_int_eq(c.docs_deferred, c.n_obs);
    ck_assert_int_eq(c.docs_late, 0);
    for (size_t i = 0; i < c.n_obs; i++)
        ck_assert_ptr_null(c.items[i].alert_text);

    pipe_free(&a);
    pipe_free(&b);
    pipe_free(&c);
    memhist_free(ma);
    memhist_free(mb);
    termcache_free(tc);
    free(text);
    json_decref(doc);
    json_decref(base);
}
END_TEST

START_TEST(the_term_cache_keeps_a_margin_and_evicts_the_earliest_expiry)
{
    ck_assert_ptr_null(termcache_new(0));
    nt_termcache *tc = termcache_new(4); /* one set of four */
    const char *h = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    ck_assert_int_eq(termcache_known(tc, "r", h, 0), 0);
    termcache_put(tc, "r", h, 100000);
    ck_assert_int_eq(termcache_known(tc, "r", h, 0), 1);
    ck_assert_int_eq(termcache_known(tc, "other-rule", h, 0), 0);
    ck_assert_int_eq(termcache_known(tc, "r", h, 100000 - TERMCACHE_MARGIN_MS - 1), 1);
    ck_assert_int_eq(termcache_known(tc, "r", h, 100000 - TERMCACHE_MARGIN_MS), 0);
    termcache_put(tc, "r", h, 50000); /* an earlier expiry never shortens a later one */
    ck_assert_int_eq(termcache_known(tc, "r", h, 90000), 1);
    char rule[8];
    for (int i = 0; i < 4; i++) { /* four more in a set of four: r, expiring first, goes */
        snprintf(rule, sizeof rule, "q%d", i);
        termcache_put(tc, rule, h, 200000 + i);
    }
    ck_assert_int_eq(termcache_size(tc), 4);
    ck_assert_int_eq(termcache_known(tc, "r", h, 0), 0);
    ck_assert_int_eq(termcache_known(tc, "q0", h, 0), 1);
    ck_assert_int_eq(termcache_known(tc, "q3", h, 0), 1);
    termcache_free(tc);
    termcache_free(NULL);
}
END_TEST

static void engine_teardown(void)
{
    ruleset_free(shipped);
    ruleset_free(multi);
    json_decref(scenarios);
}

static Suite *engine_suite(void)
{
    nt_err err;
    scenarios = tu_load_json(NT_TEST_DATA "/engine/scenarios.json", 0);
    if (!scenarios || ruleset_load_dir(NT_TEST_DATA "/../../rules", 1, &shipped, &err) != NT_OK ||
        ruleset_load_dir(NT_TEST_DATA "/engine/rules_multi", 1, &multi, &err) != NT_OK) {
        fprintf(stderr, "setup: %s\n", err.msg);
        return NULL;
    }
    Suite *s = suite_create("engine");
    TCase *tc = tcase_create("scenarios");
    tcase_add_loop_test(tc, scenario, 0, (int)json_array_size(scenarios));
    tcase_add_test(tc, alert_ids_are_deterministic_and_differ_per_event);
    tcase_add_test(tc, the_prefilter_never_changes_the_outcome);
    tcase_add_test(tc, deferred_documents_raise_the_same_alerts_as_built_ones);
    tcase_add_test(tc, the_term_cache_keeps_a_margin_and_evicts_the_earliest_expiry);
    suite_add_tcase(s, tc);
    return s;
}

NT_TEST_MAIN_TEARDOWN(engine_suite, engine_teardown)

/*
 * Unit tests for store.c against a real redis-server (tests/unit/redis_harness.h).
 *
 * One shared server is started by main() before the suites run; each test runs
 * in its own forked child (check's default) after a FLUSHALL. Tests that stop,
 * pause or reconfigure Redis start a private server of their own.
 */
#include "store.h"

#include "history.h"

#include "redis_harness.h"
#include "testutil.h"

#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static redis_harness shared;

#define WINDOW_MS (10LL * 86400 * 1000)
#define T0 1795843752000LL /* 2026-11-28T05:29:12Z */

static store_config config_for(const char *url)
{
    store_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.url = url;
    cfg.connect_timeout_ms = 1000;
    cfg.command_timeout_ms = 1000;
    /* the store has no defaults of its own: these were its built-in values */
    cfg.alert_retention_ms = 30LL * 86400 * 1000;
    cfg.alert_cap = 100000;
    cfg.reject_cap = 1000;
    return cfg;
}

static store *open_with(const store_config *cfg)
{
    store *s = NULL;
    nt_err err = {{0}};
    ck_assert_msg(store_open(&s, cfg, &err) == NT_OK, "store_open: %s", err.msg);
    return s;
}

static store *open_shared(void)
{
    store_config cfg = config_for(shared.url);
    return open_with(&cfg);
}

static void flush_shared(void)
{
    redisReply *r = redis_harness_command(&shared, "FLUSHALL");
    ck_assert_ptr_nonnull(r);
    freeReplyObject(r);
}

static long long redis_ll(const redis_harness *h, const char *fmt, const char *arg)
{
    redisReply *r = redis_harness_command(h, fmt, arg);
    ck_assert_ptr_nonnull(r);
    long long v = r->type == REDIS_REPLY_INTEGER  ? r->integer
                  : r->type == REDIS_REPLY_STRING ? atoll(r->str)
                                                  : -999;
    freeReplyObject(r);
    return v;
}

static char *alert_json(const char *id, const char *rule)
{
    char *out = NULL;
    ck_assert_int_ge(asprintf(&out,
                              "{\"id\":\"%s\",\"rule\":{\"id\":\"%s\"},\"history_window\":\"10d\","
                              "\"new_terms\":[\"111122223333\",\"OrgAdmin\"]}",
                              id, rule),
                     0);
    return out;
}

/* One LIVE observation; returns is_new, stores alert_written in *written. */
static int observe_live(store *s, const char *rule, const char *term, const char *id,
                        nt_time_ms created, const char *account, const char *user, int *written)
{
    char *doc = alert_json(id, rule);
    store_obs o;
    memset(&o, 0, sizeof o);
    o.rule_id = rule;
    o.term_hash = term;
    o.ttl_ms = WINDOW_MS;
    o.seen_ms = created;
    o.created_ms = created;
    o.mode = STORE_OBS_LIVE;
    o.alert_id = id;
    o.alert_json = doc;
    o.account = account;
    o.user = user;
    nt_err err = {{0}};
    ck_assert_msg(store_observe(s, &o, 1, &err) == NT_OK, "observe: %s", err.msg);
    free(doc);
    if (written) *written = o.alert_written;
    return o.is_new;
}

static int observe_mode(store *s, store_obs_mode mode, const char *rule, const char *term,
                        nt_time_ms ttl, nt_time_ms seen)
{
    store_obs o;
    memset(&o, 0, sizeof o);
    o.rule_id = rule;
    o.term_hash = term;
    o.ttl_ms = ttl;
    o.seen_ms = seen;
    o.mode = mode;
    nt_err err = {{0}};
    ck_assert_msg(store_observe(s, &o, 1, &err) == NT_OK, "observe: %s", err.msg);
    ck_assert_int_eq(o.alert_written, 0);
    return o.is_new;
}

/* ---- URLs ------------------------------------------------------------------------ */

static const struct {
    const char *url;
    int is_unix;
    const char *host_or_path;
    int port, db;
    const char *user, *password;
} good_urls[] = {
    {"redis://127.0.0.1:6379/0", 0, "127.0.0.1", 6379, 0, NULL, NULL},
    {"redis://localhost", 0, "localhost", 6379, 0, NULL, NULL},
    {"redis://redis.example.com:6380/5", 0, "redis.example.com", 6380, 5, NULL, NULL},
    {"redis://host/", 0, "host", 6379, 0, NULL, NULL},
    {"redis://:s%40cret@10.0.0.1:7000/2", 0, "10.0.0.1", 7000, 2, NULL, "s@cret"},
    {"redis://app:pw@host/1", 0, "host", 6379, 1, "app", "pw"},
    {"redis://:p@ss@host", 0, "host", 6379, 0, NULL, "p@ss"},
    {"redis://[::1]:6390/3", 0, "::1", 6390, 3, NULL, NULL},
    {"redis://[fe80::1]", 0, "fe80::1", 6379, 0, NULL, NULL},
    {"redis://app@host:6380/1", 0, "host", 6380, 1, "app", NULL},
    {"redis://svc%2Dbot@host", 0, "host", 6379, 0, "svc-bot", NULL},
    {"rediss://host", 0, "host", 6379, 0, NULL, NULL},
    {"rediss://app@master.cache.amazonaws.com:6379/2", 0, "master.cache.amazonaws.com", 6379, 2,
     "app", NULL},
    {"rediss://[::1]:6390", 0, "::1", 6390, 0, NULL, NULL},
    {"unix:///run/redis.sock", 1, "/run/redis.sock", 0, 0, NULL, NULL},
    {"unix:///tmp/r.sock?db=4", 1, "/tmp/r.sock", 0, 4, NULL, NULL},
};

START_TEST(good_redis_urls_parse_into_their_parts)
{
    redis_url u;
    nt_err err = {{0}};
    ck_assert_msg(redis_url_parse(good_urls[_i].url, &u, &err) == NT_OK, "%s: %s",
                  good_urls[_i].url, err.msg);
    ck_assert_int_eq(u.is_unix, good_urls[_i].is_unix);
    ck_assert_int_eq(u.is_tls, strncmp(good_urls[_i].url, "rediss://", 9) == 0);
    ck_assert_str_eq(u.is_unix ? u.path : u.host, good_urls[_i].host_or_path);
    if (!u.is_unix) ck_assert_int_eq(u.port, good_urls[_i].port);
    ck_assert_int_eq(u.db, good_urls[_i].db);
    if (good_urls[_i].user)
        ck_assert_str_eq(u.username, good_urls[_i].user);
    else
        ck_assert_ptr_null(u.username);
    if (good_urls[_i].password)
        ck_assert_str_eq(u.password, good_urls[_i].password);
    else
        ck_assert_ptr_null(u.password);
    redis_url_clear(&u);
}
END_TEST

static char long_unix_url[160];

static const struct {
    const char *url;
    nt_status status;
    const char *fragment;
} bad_urls[] = {
    {"", NT_ERR_INVALID, "empty"},
    {"http://host:6379", NT_ERR_INVALID, "scheme 'http'"},
    {"localhost:6379", NT_ERR_INVALID, "must start with redis://"},
    {"rediss://", NT_ERR_INVALID, "no host"},
    {"rediss://@host", NT_ERR_INVALID, "empty user name"},
    {"redis://a%zz@host", NT_ERR_INVALID, "percent-escape"},
    {"redis://a%20b@host", NT_ERR_INVALID, "user name contains a space"},
    {"redis://", NT_ERR_INVALID, "no host"},
    {"redis://:6379/0", NT_ERR_INVALID, "no host"},
    {"redis://host:0", NT_ERR_INVALID, "port '0'"},
    {"redis://host:65536", NT_ERR_INVALID, "port '65536'"},
    {"redis://host:abc/0", NT_ERR_INVALID, "port 'abc'"},
    {"redis://host:", NT_ERR_INVALID, "port ''"},
    {"redis://host:6379/x", NT_ERR_INVALID, "database must be a number"},
    {"redis://host:6379/-1", NT_ERR_INVALID, "database must be a number"},
    {"redis://host:6379/0/1", NT_ERR_INVALID, "database must be a number"},
    {"redis://host/1?timeout=5", NT_ERR_INVALID, "query"},
    {"redis://:@host", NT_ERR_INVALID, "empty password"},
    {"redis://:%zz@host", NT_ERR_INVALID, "percent-escape"},
    {"redis://:a%00b@host", NT_ERR_INVALID, "percent-escape"},
    {"redis://[::1:6379", NT_ERR_INVALID, "unclosed '['"},
    {"redis://[::1]x:6379", NT_ERR_INVALID, "junk after ']'"},
    {"redis://ho st:6379", NT_ERR_INVALID, "not a valid host"},
    {"unix://", NT_ERR_INVALID, "absolute socket path"},
    {"unix://relative.sock", NT_ERR_INVALID, "absolute socket path"},
    {"unix:///tmp/x.sock?db=abc", NT_ERR_INVALID, "database must be a number"},
    {"unix:///tmp/x.sock?timeout=1", NT_ERR_INVALID, "unknown query parameter 'timeout=1'"},
    {long_unix_url, NT_ERR_INVALID, "the limit is 107"},
};

START_TEST(bad_redis_urls_are_refused_with_a_precise_message)
{
    memset(long_unix_url, 0, sizeof long_unix_url);
    strcpy(long_unix_url, "unix:///");
    memset(long_unix_url + 8, 'a', 120);
    redis_url u;
    nt_err err = {{0}};
    ck_assert_int_eq(redis_url_parse(bad_urls[_i].url, &u, &err), bad_urls[_i].status);
    ck_assert_msg(strstr(err.msg, bad_urls[_i].fragment), "%s: got '%s'", bad_urls[_i].url,
                  err.msg);
    ck_assert_ptr_null(u.host);
    ck_assert_ptr_null(u.password);
}
END_TEST

START_TEST(url_errors_never_echo_the_password)
{
    redis_url u;
    nt_err err = {{0}};
    ck_assert_int_eq(redis_url_parse("redis://:hunter2@host:99999", &u, &err), NT_ERR_INVALID);
    ck_assert_ptr_null(strstr(err.msg, "hunter2"));
    ck_assert_int_eq(redis_url_parse("rediss://app:hunter2@host:0", &u, &err), NT_ERR_INVALID);
    ck_assert_ptr_null(strstr(err.msg, "hunter2"));
}
END_TEST

START_TEST(store_open_refuses_a_bad_url)
{
    store_config cfg = config_for("redis://host:notaport");
    store *s = NULL;
    nt_err err = {{0}};
    ck_assert_int_eq(store_open(&s, &cfg, &err), NT_ERR_INVALID);
    ck_assert_ptr_null(s);
    ck_assert_ptr_nonnull(strstr(err.msg, "port"));
    store_free(NULL);
}
END_TEST

static const struct {
    const char *url, *password;
    netio_tls_config tls;
    const char *fragment;
} bad_opens[] = {
    {"redis://app@h", NULL, {0}, "names a user but no password is set"},
    {"redis://h", NULL, {.ca_file = "/etc/ca.pem"}, "the URL is not rediss://"},
    {"unix:///run/r.sock", NULL, {.insecure = 1}, "the URL is not rediss://"},
    {"rediss://h", NULL, {.cert_file = "/c.pem"}, "needs both a certificate file and a key file"},
    {"rediss://h", NULL, {.ca_file = "/nonexistent/ca.pem"}, "cannot load the TLS CA bundle"},
    {"rediss://h",
     NULL,
     {.cert_file = "/nonexistent/c.pem", .key_file = "/k.pem"},
     "cannot load the TLS client certificate '/nonexistent/c.pem'"},
};

START_TEST(store_open_refuses_inconsistent_auth_or_tls_settings)
{
    store_config cfg = config_for(bad_opens[_i].url);
    cfg.password = bad_opens[_i].password;
    cfg.tls = bad_opens[_i].tls;
    store *s = NULL;
    nt_err err = {{0}};
    ck_assert_int_ne(store_open(&s, &cfg, &err), NT_OK);
    ck_assert_ptr_null(s);
    ck_assert_msg(strstr(err.msg, bad_opens[_i].fragment), "%s: got '%s'", bad_opens[_i].url,
                  err.msg);
}
END_TEST

/* ---- observing terms ------------------------------------------------------------------ */

START_TEST(a_new_term_writes_an_open_alert_and_reports_it_new)
{
    flush_shared();
    store *s = open_shared();
    int written = 0;
    ck_assert_int_eq(
        observe_live(s, "r1", "h1", "alert1", T0, "111122223333", "OrgAdmin", &written), 1);
    ck_assert_int_eq(written, 1);

    json_t *doc = NULL;
    nt_err err = {{0}};
    ck_assert_int_eq(store_alert_get(s, "alert1", &doc, &err), NT_OK);
    ck_assert_str_eq(json_string_value(json_object_get(doc, "id")), "alert1");
    ck_assert_str_eq(json_string_value(json_object_get(doc, "status")), "open");
    ck_assert(json_is_null(json_object_get(doc, "status_reason")));
    ck_assert_str_eq(json_string_value(json_object_get(doc, "created_at")),
                     "2026-11-28T05:29:12.000Z");
    ck_assert_str_eq(json_string_value(json_object_get(doc, "updated_at")),
                     "2026-11-28T05:29:12.000Z");
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(doc, "rule"), "id")), "r1");
    json_t *history = json_object_get(doc, "history");
    ck_assert_str_eq(json_string_value(json_object_get(history, "since")),
                     "2026-11-28T05:29:12.000Z");
    ck_assert_int_eq(json_integer_value(json_object_get(history, "depth_seconds")), 0);
    ck_assert(json_is_false(json_object_get(history, "complete")));
    json_decref(doc);

    ck_assert_int_eq(redis_ll(&shared, "ZCARD %s", "nt:alerts"), 1);
    ck_assert_int_eq(redis_ll(&shared, "ZCARD %s", "nt:alerts:rule:r1"), 1);
    ck_assert_int_eq(redis_ll(&shared, "ZCARD %s", "nt:alerts:status:open"), 1);
    ck_assert_int_eq(redis_ll(&shared, "ZCARD %s", "nt:alerts:account:111122223333"), 1);
    ck_assert_int_eq(redis_ll(&shared, "ZCARD %s", "nt:alerts:user:OrgAdmin"), 1);
    ck_assert_int_eq(redis_ll(&shared, "GET %s", "nt:term:r1:h1"), T0);
    store_free(s);
}
END_TEST

START_TEST(a_second_sighting_is_not_new_and_refreshes_ttl_and_last_seen)
{
    flush_shared();
    store *s = open_shared();
    store_obs o;
    memset(&o, 0, sizeof o);
    o.rule_id = "r1";
    o.term_hash = "h1";
    o.ttl_ms = 5000;
    o.seen_ms = T0;
    o.created_ms = T0;
    o.mode = STORE_OBS_LIVE;
    o.alert_id = "a1";
    o.alert_json = "{}";
    nt_err err = {{0}};
    ck_assert_int_eq(store_observe(s, &o, 1, &err), NT_OK);
    ck_assert_int_eq(o.is_new, 1);
    ck_assert_int_le(redis_ll(&shared, "PTTL %s", "nt:term:r1:h1"), 5000);

    o.ttl_ms = 100000;
    o.seen_ms = T0 + 42;
    o.alert_id = "a2";
    ck_assert_int_eq(store_observe(s, &o, 1, &err), NT_OK);
    ck_assert_int_eq(o.is_new, 0);
    ck_assert_int_eq(o.alert_written, 0);
    ck_assert_int_gt(redis_ll(&shared, "PTTL %s", "nt:term:r1:h1"), 90000);
    ck_assert_int_eq(redis_ll(&shared, "GET %s", "nt:term:r1:h1"), T0 + 42);
    ck_assert_int_eq(redis_ll(&shared, "EXISTS %s", "nt:alert:a2"), 0);
    ck_assert_int_eq(redis_ll(&shared, "ZCARD %s", "nt:alerts"), 1);
    store_free(s);
}
END_TEST

START_TEST(the_term_ttl_equals_the_history_window)
{
    flush_shared();
    store *s = open_shared();
    observe_live(s, "r1", "h1", "a1", T0, NULL, NULL, NULL);
    long long pttl = redis_ll(&shared, "PTTL %s", "nt:term:r1:h1");
    ck_assert_int_le(pttl, WINDOW_MS);
    ck_assert_int_gt(pttl, WINDOW_MS - 2000);
    store_free(s);
}
END_TEST

/* A live sighting of term `term` by rule r1 at T0, with an empty document. */
static void live_obs(store_obs *o, const char *term, const char *id)
{
    memset(o, 0, sizeof *o);
    o->rule_id = "r1";
    o->term_hash = term;
    o->ttl_ms = WINDOW_MS;
    o->seen_ms = o->created_ms = T0;
    o->mode = STORE_OBS_LIVE;
    o->alert_id = id;
    o->alert_json = "{}";
}

/* store_observe of o[0..n), which must succeed in exactly one round trip. */
static void observe_in_one_round_trip(store *s, store_obs *o, size_t n)
{
    nt_err err = {{0}};
    store_counters before, after;
    ck_assert_int_eq(store_ping(s, &err), NT_OK);
    store_get_counters(s, &before);
    ck_assert_msg(store_observe(s, o, n, &err) == NT_OK, "observe: %s", err.msg);
    store_get_counters(s, &after);
    ck_assert_int_eq(after.round_trips - before.round_trips, 1);
}

START_TEST(two_sightings_of_one_term_in_one_batch_make_one_alert)
{
    flush_shared();
    store *s = open_shared();
    store_obs o[3];
    const char *ids[3] = {"x1", "x2", "x3"};
    const char *terms[3] = {"same", "same", "other"};
    for (int i = 0; i < 3; i++)
        live_obs(&o[i], terms[i], ids[i]);
    observe_in_one_round_trip(s, o, 3);
    ck_assert_int_eq(o[0].is_new, 1);
    ck_assert_int_eq(o[1].is_new, 0);
    ck_assert_int_eq(o[2].is_new, 1);
    ck_assert_int_eq(redis_ll(&shared, "ZCARD %s", "nt:alerts"), 2);
    ck_assert_int_eq(redis_ll(&shared, "HGET %s events_matched", "nt:rule:r1:stats"), 3);
    ck_assert_int_eq(redis_ll(&shared, "HGET %s alerts", "nt:rule:r1:stats"), 2);
    store_free(s);
}
END_TEST

START_TEST(a_deferred_sighting_refreshes_a_known_term_and_writes_nothing_for_a_new_one)
{
    flush_shared();
    store *s = open_shared();
    nt_err err = {{0}};
    int written = 0;
    ck_assert_int_eq(observe_live(s, "r1", "known", "a-known", T0, "111122223333", "u", &written),
                     1);
    store_obs o[2];
    const char *terms[2] = {"known", "unseen"};
    const char *ids[2] = {"d1", "d2"};
    for (int i = 0; i < 2; i++) {
        live_obs(&o[i], terms[i], ids[i]);
        o[i].seen_ms = o[i].created_ms = T0 + 1000;
        o[i].alert_json = NULL;
        o[i].defer_doc = 1;
    }
    ck_assert_int_eq(store_observe(s, o, 2, &err), NT_OK);
    ck_assert_int_eq(o[0].is_new, 0);
    ck_assert_int_eq(o[0].needs_doc, 0);
    ck_assert_int_eq(redis_ll(&shared, "GET %s", "nt:term:r1:known"), T0 + 1000);
    ck_assert_int_eq(o[1].is_new, 0);
    ck_assert_int_eq(o[1].needs_doc, 1);
    ck_assert_int_eq(redis_ll(&shared, "EXISTS %s", "nt:term:r1:unseen"), 0);
    ck_assert_int_eq(redis_ll(&shared, "EXISTS %s", "nt:alert:d2"), 0);
    /* counted once for the first sighting and once for the refresh, not for the deferred new one */
    ck_assert_int_eq(redis_ll(&shared, "HGET %s events_matched", "nt:rule:r1:stats"), 2);
    /* Sent again with its document, the new one alerts. */
    o[1].defer_doc = 0;
    o[1].alert_json = "{}";
    ck_assert_int_eq(store_observe(s, &o[1], 1, &err), NT_OK);
    ck_assert_int_eq(o[1].is_new, 1);
    ck_assert_int_eq(o[1].alert_written, 1);
    ck_assert_int_eq(redis_ll(&shared, "ZCARD %s", "nt:alerts"), 2);
    /* A deferred document is only for live, unsuppressed new_terms sightings. */
    o[0].supp_ms = 1000;
    o[0].supp_hash = "g";
    ck_assert_int_eq(store_observe(s, o, 1, &err), NT_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(err.msg, "defers its document"));
    store_free(s);
}
END_TEST

START_TEST(a_batch_larger_than_one_script_call_is_one_round_trip_in_order)
{
    flush_shared();
    store *s = open_shared();
    enum { N = 600 }; /* three script calls of at most 256 */
    static store_obs o[N];
    static char terms[N][16], ids[N][16];
    for (int i = 0; i < N; i++) {
        snprintf(terms[i], sizeof terms[i], "t%d", i % 300); /* each term twice */
        snprintf(ids[i], sizeof ids[i], "b%d", i);
        live_obs(&o[i], terms[i], ids[i]);
    }
    observe_in_one_round_trip(s, o, N);
    for (int i = 0; i < N; i++)
        ck_assert_msg(o[i].is_new == (i < 300), "observation %d: is_new %d", i, o[i].is_new);
    ck_assert_int_eq(redis_ll(&shared, "ZCARD %s", "nt:alerts"), 300);
    ck_assert_int_eq(redis_ll(&shared, "HGET %s events_matched", "nt:rule:r1:stats"), N);
    store_free(s);
}
END_TEST

#define RACE_TERMS 200
#define RACE_BATCH 20

typedef struct racer {
    int which;
    pthread_barrier_t *start;
    int is_new[RACE_TERMS];
    nt_status status;
    char msg[NT_ERR_MSG_MAX];
} racer;

static void *race_thread(void *arg)
{
    racer *r = arg;
    store_config cfg = config_for(shared.url);
    store *s = NULL;
    nt_err err = {{0}};
    r->status = store_open(&s, &cfg, &err);
    pthread_barrier_wait(r->start);
    char terms[RACE_TERMS][16], ids[RACE_TERMS][16];
    store_obs o[RACE_BATCH];
    for (int base = 0; base < RACE_TERMS && r->status == NT_OK; base += RACE_BATCH) {
        memset(o, 0, sizeof o);
        for (int i = 0; i < RACE_BATCH; i++) {
            int t = base + i;
            snprintf(terms[t], sizeof terms[t], "t%d", t);
            snprintf(ids[t], sizeof ids[t], "id%d-%d", r->which, t);
            o[i].rule_id = "race";
            o[i].term_hash = terms[t];
            o[i].ttl_ms = WINDOW_MS;
            o[i].seen_ms = o[i].created_ms = T0 + t;
            o[i].mode = STORE_OBS_LIVE;
            o[i].alert_id = ids[t];
            o[i].alert_json = "{}";
        }
        r->status = store_observe(s, o, RACE_BATCH, &err);
        for (int i = 0; i < RACE_BATCH; i++)
            r->is_new[base + i] = o[i].is_new;
    }
    snprintf(r->msg, sizeof r->msg, "%s", err.msg);
    store_free(s);
    return NULL;
}

START_TEST(two_connections_racing_for_the_same_terms_make_exactly_one_alert_per_term)
{
    flush_shared();
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, 2);
    static racer racers[2];
    memset(racers, 0, sizeof racers);
    pthread_t th[2];
    for (int i = 0; i < 2; i++) {
        racers[i].which = i;
        racers[i].start = &start;
        pthread_create(&th[i], NULL, race_thread, &racers[i]);
    }
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&start);
    for (int i = 0; i < 2; i++)
        ck_assert_msg(racers[i].status == NT_OK, "%s", racers[i].msg);
    for (int t = 0; t < RACE_TERMS; t++)
        ck_assert_int_eq(racers[0].is_new[t] + racers[1].is_new[t], 1);
    ck_assert_int_eq(redis_ll(&shared, "ZCARD %s", "nt:alerts"), RACE_TERMS);
    ck_assert_int_eq(redis_ll(&shared, "HGET %s alerts", "nt:rule:race:stats"), RACE_TERMS);
}
END_TEST

START_TEST(learn_and_backfill_record_terms_but_never_alert)
{
    flush_shared();
    store *s = open_shared();
    ck_assert_int_eq(observe_mode(s, STORE_OBS_LEARN, "r1", "learned", WINDOW_MS, T0), 1);
    ck_assert_int_eq(observe_mode(s, STORE_OBS_LEARN, "r1", "learned", WINDOW_MS, T0 + 1), 0);
    ck_assert_int_eq(observe_mode(s, STORE_OBS_BACKFILL, "r1", "filled", 3600000, T0 - 5000), 1);
    ck_assert_int_eq(redis_ll(&shared, "EXISTS %s", "nt:alerts"), 0);
    ck_assert_int_eq(redis_ll(&shared, "EXISTS %s", "nt:term:r1:learned"), 1);
    ck_assert_int_eq(redis_ll(&shared, "EXISTS %s", "nt:term:r1:filled"), 1);
    /* A live sighting of a learned term is history, not news. */
    ck_assert_int_eq(observe_live(s, "r1", "learned", "a1", T0 + 2, NULL, NULL, NULL), 0);
    ck_assert_int_eq(observe_live(s, "r1", "filled", "a2", T0 + 2, NULL, NULL, NULL), 0);
    ck_assert_int_eq(redis_ll(&shared, "EXISTS %s", "nt:alerts"), 0);
    /* Backfill is not counted as matched events; learn and live are. */
    ck_assert_int_eq(redis_ll(&shared, "HGET %s events_matched", "nt:rule:r1:stats"), 4);
    store_free(s);
}
END_TEST

START_TEST(backfill_sets_a_term_only_when_that_lengthens_its_ttl)
{
    flush_shared();
    store *s = open_shared();
    ck_assert_int_eq(observe_mode(s, STORE_OBS_BACKFILL, "r1", "h", 50000, T0 - 100), 1);
    long long p = redis_ll(&shared, "PTTL %s", "nt:term:r1:h");
    ck_assert(p > 45000 && p <= 50000);
    ck_assert_int_eq(observe_mode(s, STORE_OBS_BACKFILL, "r1", "h", 20000, T0 - 200), 0);
    p = redis_ll(&shared, "PTTL %s", "nt:term:r1:h");
    ck_assert(p > 45000 && p <= 50000);
    ck_assert_int_eq(redis_ll(&shared, "GET %s", "nt:term:r1:h"), T0 - 100);
    ck_assert_int_eq(observe_mode(s, STORE_OBS_BACKFILL, "r1", "h", 80000, T0 - 50), 0);
    p = redis_ll(&shared, "PTTL %s", "nt:term:r1:h");
    ck_assert(p > 75000 && p <= 80000);
    ck_assert_int_eq(redis_ll(&shared, "GET %s", "nt:term:r1:h"), T0 - 50);
    /* A live sighting then restores the full window. */
    ck_assert_int_eq(observe_live(s, "r1", "h", "a1", T0, NULL, NULL, NULL), 0);
    ck_assert_int_gt(redis_ll(&shared, "PTTL %s", "nt:term:r1:h"), WINDOW_MS - 2000);
    store_free(s);
}
END_TEST

START_TEST(backfill_older_than_the_window_writes_no_term_but_lowers_history_since)
{
    flush_shared();
    store *s = open_shared();
    ck_assert_int_eq(observe_mode(s, STORE_OBS_BACKFILL, "r1", "old", -5, T0 - WINDOW_MS - 5), 0);
    ck_assert_int_eq(observe_mode(s, STORE_OBS_BACKFILL, "r1", "old", 0, T0 - WINDOW_MS), 0);
    ck_assert_int_eq(redis_ll(&shared, "EXISTS %s", "nt:term:r1:old"), 0);
    ck_assert_int_eq(redis_ll(&shared, "HGET %s history_since_ms", "nt:rule:r1:stats"),
                     T0 - WINDOW_MS - 5);
    /* So the next live term is new, and its alert has complete history. */
    ck_assert_int_eq(observe_live(s, "r1", "old", "a1", T0, NULL, NULL, NULL), 1);
    json_t *doc = NULL;
    nt_err err = {{0}};
    ck_assert_int_eq(store_alert_get(s, "a1", &doc, &err), NT_OK);
    json_t *history = json_object_get(doc, "history");
    ck_assert_int_eq(json_integer_value(json_object_get(history, "depth_seconds")),
                     (WINDOW_MS + 5) / 1000);
    ck_assert(json_is_true(json_object_get(history, "complete")));
    json_decref(doc);
    store_free(s);
}
END_TEST

START_TEST(an_existing_alert_id_is_never_overwritten)
{
    flush_shared();
    store *s = open_shared();
    observe_live(s, "r1", "h1", "same-id", T0, "acct", "u", NULL);
    /* The term expires, then the same event is delivered again. */
    redisReply *r = redis_harness_command(&shared, "DEL nt:term:r1:h1");
    freeReplyObject(r);
    int written = -1;
    ck_assert_int_eq(observe_live(s, "r1", "h1", "same-id", T0 + 999999, "acct", "u", &written), 1);
    ck_assert_int_eq(written, 0);
    ck_assert_int_eq(redis_ll(&shared, "HGET %s created_ms", "nt:alert:same-id"), T0);
    ck_assert_int_eq(redis_ll(&shared, "ZCARD %s", "nt:alerts"), 1);
    ck_assert_int_eq(redis_ll(&shared, "HGET %s alerts", "nt:rule:r1:stats"), 1);
    store_free(s);
}
END_TEST

START_TEST(a_script_error_fails_the_whole_batch_with_the_redis_message)
{
    flush_shared();
    redisReply *r = redis_harness_command(&shared, "SET nt:alerts notazset");
    freeReplyObject(r);
    store *s = open_shared();
    store_obs o[2];
    memset(o, 0, sizeof o);
    o[0].rule_id = o[1].rule_id = "r1";
    o[0].term_hash = "learned";
    o[0].mode = STORE_OBS_LEARN;
    o[0].ttl_ms = o[1].ttl_ms = WINDOW_MS;
    o[1].term_hash = "live";
    o[1].mode = STORE_OBS_LIVE;
    o[1].alert_id = "a1";
    o[1].alert_json = "{}";
    nt_err err = {{0}};
    ck_assert_int_eq(store_observe(s, o, 2, &err), NT_ERR_STORE);
    ck_assert_msg(strstr(err.msg, "observe script failed") && strstr(err.msg, "WRONGTYPE"), "%s",
                  err.msg);
    ck_assert_int_eq(o[0].is_new, 0);
    store_counters c;
    store_get_counters(s, &c);
    ck_assert_int_eq(c.errors, 1);
    store_free(s);
}
END_TEST

START_TEST(bad_observations_are_refused_before_anything_is_sent)
{
    store *s = open_shared();
    store_obs o;
    memset(&o, 0, sizeof o);
    o.rule_id = "r1";
    o.term_hash = "h";
    o.mode = STORE_OBS_LIVE;
    o.ttl_ms = WINDOW_MS;
    o.alert_id = "bad id";
    o.alert_json = "{}";
    nt_err err = {{0}};
    ck_assert_int_eq(store_observe(s, &o, 1, &err), NT_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(err.msg, "alert id"));
    o.alert_id = "ok";
    o.ttl_ms = 0;
    ck_assert_int_eq(store_observe(s, &o, 1, &err), NT_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(err.msg, "history window"));
    o.ttl_ms = 1;
    o.term_hash = "";
    ck_assert_int_eq(store_observe(s, &o, 1, &err), NT_ERR_INVALID);
    store_counters c;
    store_get_counters(s, &c);
    ck_assert_int_eq(c.round_trips, 0);
    store_free(s);
}
END_TEST

START_TEST(alerts_beyond_the_cap_or_the_retention_are_trimmed_from_every_index)
{
    flush_shared();
    store_config cfg = config_for(shared.url);
    cfg.alert_cap = 10;
    cfg.alert_retention_ms = 100000;
    store *s = open_with(&cfg);
    char term[16], id[16];
    for (int i = 0; i < 15; i++) {
        snprintf(term, sizeof term, "t%d", i);
        snprintf(id, sizeof id, "cap%02d", i);
        observe_live(s, "r1", term, id, T0 + i, "acct", "user", NULL);
    }
    ck_assert_int_eq(redis_ll(&shared, "ZCARD %s", "nt:alerts"), 10);
    ck_assert_int_eq(redis_ll(&shared, "ZCARD %s", "nt:alerts:rule:r1"), 10);
    ck_assert_int_eq(redis_ll(&shared, "ZCARD %s", "nt:alerts:account:acct"), 10);
    ck_assert_int_eq(redis_ll(&shared, "ZCARD %s", "nt:alerts:status:open"), 10);
    ck_assert_int_eq(redis_ll(&shared, "EXISTS %s", "nt:alert:cap04"), 0);
    ck_assert_int_eq(redis_ll(&shared, "EXISTS %s", "nt:alert:cap05"), 1);
    long long pttl = redis_ll(&shared, "PTTL %s", "nt:alert:cap05");
    ck_assert(pttl > 90000 && pttl <= 100000);

    /* One alert far later: everything older than the retention goes. */
    observe_live(s, "r2", "late", "late", T0 + 200000, "acct", NULL, NULL);
    ck_assert_int_eq(redis_ll(&shared, "ZCARD %s", "nt:alerts"), 1);
    ck_assert_int_eq(redis_ll(&shared, "ZCARD %s", "nt:alerts:account:acct"), 1);
    ck_assert_int_eq(redis_ll(&shared, "EXISTS %s", "nt:alert:cap14"), 0);
    ck_assert_int_eq(redis_ll(&shared, "EXISTS %s", "nt:alerts:rule:r1"), 0);
    store_free(s);
}
END_TEST

/* ---- listing ---------------------------------------------------------------------- */

#define LIST_N 250

typedef struct fixture_alert {
    char id[24];
    long long created;
    const char *rule, *account, *user, *status;
} fixture_alert;

static fixture_alert fixture[LIST_N + 100];
static int fixture_n;

static const char *const rules3[] = {"r1", "r2", "r3"};
static const char *const accounts2[] = {"111122223333", "444455556666"};
static const char *const users5[] = {"OrgAdmin", "alice", "bob", "ci-deploy", "Admin"};

/* 250 alerts; three share each created_ms so ties are ordered by id. Ids are
 * scrambled so id order differs from insertion order. */
static void build_list_fixture(store *s)
{
    nt_err err = {{0}};
    fixture_n = 0;
    for (int i = 0; i < LIST_N; i++) {
        fixture_alert *a = &fixture[fixture_n++];
        snprintf(a->id, sizeof a->id, "%08x", (unsigned)(i * 2654435761u));
        a->created = T0 + i / 3;
        a->rule = rules3[i % 3];
        a->account = accounts2[(i / 2) % 2];
        a->user = users5[(i / 5) % 5];
        a->status = "open";
        char term[16];
        snprintf(term, sizeof term, "t%d", i);
        observe_live(s, a->rule, term, a->id, a->created, a->account, a->user, NULL);
        if (i % 7 == 0) a->status = "acknowledged";
        if (i % 11 == 0) a->status = "closed";
        if (strcmp(a->status, "open") != 0)
            ck_assert_int_eq(
                store_alert_set_status(s, a->id, a->status, NULL, T0 + 5000, NULL, &err), NT_OK);
    }
}

static int fixture_cmp(const void *a, const void *b)
{
    const fixture_alert *x = a, *y = b;
    if (x->created != y->created) return x->created > y->created ? -1 : 1;
    return -strcmp(x->id, y->id);
}

static int fixture_matches(const fixture_alert *a, const store_alert_filter *f)
{
    return (!f->status || strcmp(a->status, f->status) == 0) &&
           (!f->rule_id || strcmp(a->rule, f->rule_id) == 0) &&
           (!f->account || strcmp(a->account, f->account) == 0) &&
           (!f->user || strcmp(a->user, f->user) == 0) &&
           (!f->has_since || a->created >= f->since) && (!f->has_until || a->created <= f->until);
}

/* Pages through f and checks the ids against the brute-force answer over the
 * first `upto` fixtures; inserts `more` fresh alerts between pages. */
static void check_paging(store *s, store_alert_filter f, int upto, int more)
{
    fixture_alert want[LIST_N];
    memset(want, 0, sizeof want);
    int nwant = 0;
    for (int i = 0; i < upto; i++)
        if (fixture_matches(&fixture[i], &f)) want[nwant++] = fixture[i];
    qsort(want, (size_t)nwant, sizeof want[0], fixture_cmp);

    int got = 0, pages = 0;
    char *cursor = NULL;
    nt_err err = {{0}};
    for (;;) {
        json_t *alerts = NULL;
        char *next = NULL;
        f.cursor = cursor;
        ck_assert_msg(store_alert_list(s, &f, &alerts, &next, &err) == NT_OK, "%s", err.msg);
        size_t i;
        json_t *doc;
        json_array_foreach(alerts, i, doc)
        {
            ck_assert_int_lt(got, nwant);
            ck_assert_str_eq(json_string_value(json_object_get(doc, "id")), want[got].id);
            ck_assert_str_eq(json_string_value(json_object_get(doc, "status")), want[got].status);
            got++;
        }
        ck_assert_int_le(json_array_size(alerts), f.limit);
        json_decref(alerts);
        free(cursor);
        cursor = next;
        pages++;
        ck_assert_int_lt(pages, 100);
        if (!cursor) break;
        for (int k = 0; k < more; k++) {
            char id[24], term[24];
            snprintf(id, sizeof id, "new%04d", fixture_n);
            snprintf(term, sizeof term, "new%d", fixture_n);
            /* Newer alerts, and one joining the newest tie group (already paged;
             * its "new…" id sorts above the hex ids of that group). */
            long long created = k == 0 ? T0 + (LIST_N - 1) / 3 : T0 + 100000 + fixture_n;
            observe_live(s, "r1", term, id, created, accounts2[0], users5[0], NULL);
            fixture_n++;
        }
    }
    ck_assert_int_eq(got, nwant);
}

START_TEST(listing_pages_newest_first_without_repeats_or_gaps_while_alerts_arrive)
{
    flush_shared();
    store *s = open_shared();
    build_list_fixture(s);
    store_alert_filter f = {NULL, NULL, NULL, NULL, -1, -1, 40, NULL, 0, 0};
    check_paging(s, f, LIST_N, 3);
    store_free(s);
}
END_TEST

START_TEST(listing_filters_are_anded_and_page_correctly)
{
    flush_shared();
    store *s = open_shared();
    build_list_fixture(s);
    const store_alert_filter filters[] = {
        {"open", NULL, NULL, NULL, -1, -1, 17, NULL, 0, 0},
        {"closed", NULL, NULL, NULL, -1, -1, 5, NULL, 0, 0},
        {NULL, "r2", NULL, NULL, -1, -1, 17, NULL, 0, 0},
        {NULL, "r1", "111122223333", NULL, -1, -1, 9, NULL, 0, 0},
        {"acknowledged", NULL, "444455556666", "alice", -1, -1, 3, NULL, 0, 0},
        {NULL, NULL, NULL, "bob", -1, -1, 1000, NULL, 0, 0},
        {NULL, NULL, NULL, NULL, T0 + 10, T0 + 40, 7, NULL, 1, 1},
        {"open", "r3", NULL, NULL, T0 + 20, -1, 11, NULL, 1, 0},
        {NULL, "no-such-rule", NULL, NULL, -1, -1, 10, NULL, 0, 0},
        {NULL, NULL, NULL, NULL, T0 + 50, T0 + 40, 10, NULL, 1, 1},
        {NULL, NULL, NULL, NULL, -1000, T0 + 40, 10, NULL, 1, 1},
        {NULL, NULL, NULL, NULL, -1, -1000, 10, NULL, 0, 1},
    };
    for (size_t i = 0; i < sizeof filters / sizeof filters[0]; i++)
        check_paging(s, filters[i], LIST_N, 0);
    store_free(s);
}
END_TEST

START_TEST(listing_skips_alerts_whose_hash_is_gone)
{
    flush_shared();
    store *s = open_shared();
    observe_live(s, "r1", "a", "keep1", T0, NULL, NULL, NULL);
    observe_live(s, "r1", "b", "gone", T0 + 1, NULL, NULL, NULL);
    observe_live(s, "r1", "c", "keep2", T0 + 2, NULL, NULL, NULL);
    redisReply *r = redis_harness_command(&shared, "DEL nt:alert:gone");
    freeReplyObject(r);
    store_alert_filter f = {NULL, "r1", NULL, NULL, -1, -1, 0, NULL, 0, 0};
    json_t *alerts = NULL;
    char *next = NULL;
    nt_err err = {{0}};
    ck_assert_int_eq(store_alert_list(s, &f, &alerts, &next, &err), NT_OK);
    ck_assert_int_eq(json_array_size(alerts), 2);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(alerts, 0), "id")), "keep2");
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(alerts, 1), "id")), "keep1");
    ck_assert_ptr_null(next);
    json_decref(alerts);
    store_free(s);
}
END_TEST

START_TEST(the_last_page_has_no_next_cursor)
{
    flush_shared();
    store *s = open_shared();
    observe_live(s, "r1", "a", "a1", T0, NULL, NULL, NULL);
    observe_live(s, "r1", "b", "a2", T0 + 1, NULL, NULL, NULL);
    store_alert_filter f = {NULL, NULL, NULL, NULL, -1, -1, 2, NULL, 0, 0};
    json_t *alerts = NULL;
    char *next = NULL;
    nt_err err = {{0}};
    ck_assert_int_eq(store_alert_list(s, &f, &alerts, &next, &err), NT_OK);
    ck_assert_int_eq(json_array_size(alerts), 2);
    ck_assert_ptr_null(next);
    json_decref(alerts);
    f.limit = 1;
    ck_assert_int_eq(store_alert_list(s, &f, &alerts, &next, &err), NT_OK);
    ck_assert_int_eq(json_array_size(alerts), 1);
    ck_assert_ptr_nonnull(next);
    json_decref(alerts);
    free(next);
    store_free(s);
}
END_TEST

static const char *const bad_cursors[] = {
    "!!!!",         /* not base64url */
    "abcde",        /* impossible length */
    "MTIz",         /* "123": no colon */
    "eDp5",         /* "x:y": score not a number */
    "MTI6YmFkIGlk", /* "12:bad id": space in id */
    "MTI6",         /* "12:": no id */
    "",             /* empty */
};

START_TEST(a_malformed_cursor_is_invalid)
{
    store *s = open_shared();
    store_alert_filter f = {NULL, NULL, NULL, NULL, -1, -1, 10, bad_cursors[_i], 0, 0};
    json_t *alerts = NULL;
    char *next = NULL;
    nt_err err = {{0}};
    ck_assert_int_eq(store_alert_list(s, &f, &alerts, &next, &err), NT_ERR_INVALID);
    ck_assert_str_eq(err.msg, "cursor is not valid");
    ck_assert_ptr_null(alerts);
    ck_assert_ptr_null(next);
    store_free(s);
}
END_TEST

START_TEST(a_bad_limit_or_status_filter_is_invalid)
{
    store *s = open_shared();
    store_alert_filter f = {NULL, NULL, NULL, NULL, -1, -1, 1001, NULL, 0, 0};
    json_t *alerts = NULL;
    char *next = NULL;
    nt_err err = {{0}};
    ck_assert_int_eq(store_alert_list(s, &f, &alerts, &next, &err), NT_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(err.msg, "limit"));
    f.limit = 10;
    f.status = "pending";
    ck_assert_int_eq(store_alert_list(s, &f, &alerts, &next, &err), NT_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(err.msg, "status"));
    store_free(s);
}
END_TEST

/* ---- status ------------------------------------------------------------------------ */

START_TEST(a_status_change_moves_the_alert_between_status_indexes)
{
    flush_shared();
    store *s = open_shared();
    observe_live(s, "r1", "h", "a1", T0, NULL, NULL, NULL);
    json_t *doc = NULL;
    nt_err err = {{0}};
    ck_assert_int_eq(
        store_alert_set_status(s, "a1", "closed", "false_positive", T0 + 60000, &doc, &err), NT_OK);
    ck_assert_str_eq(json_string_value(json_object_get(doc, "status")), "closed");
    ck_assert_str_eq(json_string_value(json_object_get(doc, "status_reason")), "false_positive");
    ck_assert_str_eq(json_string_value(json_object_get(doc, "updated_at")),
                     "2026-11-28T05:30:12.000Z");
    ck_assert_str_eq(json_string_value(json_object_get(doc, "created_at")),
                     "2026-11-28T05:29:12.000Z");
    json_decref(doc);
    ck_assert_int_eq(redis_ll(&shared, "ZCARD %s", "nt:alerts:status:open"), 0);
    ck_assert_int_eq(redis_ll(&shared, "ZSCORE nt:alerts:status:closed %s", "a1"), T0);

    ck_assert_int_eq(store_alert_set_status(s, "a1", "open", NULL, T0 + 120000, &doc, &err), NT_OK);
    ck_assert(json_is_null(json_object_get(doc, "status_reason")));
    json_decref(doc);
    ck_assert_int_eq(redis_ll(&shared, "ZCARD %s", "nt:alerts:status:closed"), 0);
    ck_assert_int_eq(redis_ll(&shared, "ZCARD %s", "nt:alerts:status:open"), 1);
    store_free(s);
}
END_TEST

START_TEST(a_bad_status_or_reason_is_invalid_and_an_unknown_alert_is_not_found)
{
    flush_shared();
    store *s = open_shared();
    observe_live(s, "r1", "h", "a1", T0, NULL, NULL, NULL);
    nt_err err = {{0}};
    ck_assert_int_eq(store_alert_set_status(s, "a1", "resolved", NULL, T0, NULL, &err),
                     NT_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(err.msg, "open, acknowledged or closed"));
    ck_assert_int_eq(store_alert_set_status(s, "a1", "closed", "because", T0, NULL, &err),
                     NT_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(err.msg, "false_positive"));
    ck_assert_int_eq(store_alert_set_status(s, "nope", "closed", NULL, T0, NULL, &err),
                     NT_ERR_NOTFOUND);
    ck_assert_int_eq(redis_ll(&shared, "EXISTS %s", "nt:alert:nope"), 0);
    json_t *doc = NULL;
    ck_assert_int_eq(store_alert_get(s, "nope", &doc, &err), NT_ERR_NOTFOUND);
    ck_assert_str_eq(err.msg, "alert nope not found");
    ck_assert_int_eq(store_alert_get(s, "../etc", &doc, &err), NT_ERR_INVALID);
    redisReply *r = redis_harness_command(&shared, "HGET nt:alert:a1 status");
    ck_assert_str_eq(r->str, "open");
    freeReplyObject(r);
    store_free(s);
}
END_TEST

START_TEST(a_bulk_status_change_with_an_unknown_id_changes_nothing_and_names_it)
{
    flush_shared();
    store *s = open_shared();
    observe_live(s, "r1", "h1", "a1", T0, NULL, NULL, NULL);
    observe_live(s, "r1", "h2", "a2", T0 + 1, NULL, NULL, NULL);
    nt_err err = {{0}};
    json_t *missing = NULL;
    const char *some_gone[] = {"a1", "gone1", "a2", "gone2"};
    ck_assert_int_eq(store_alert_set_status_many(s, some_gone, 4, "closed", "duplicate", T0 + 10,
                                                 &missing, &err),
                     NT_ERR_NOTFOUND);
    ck_assert_str_eq(err.msg, "2 of the 4 alert ids name no alert");
    ck_assert_int_eq(json_array_size(missing), 2);
    ck_assert_str_eq(json_string_value(json_array_get(missing, 0)), "gone1");
    ck_assert_str_eq(json_string_value(json_array_get(missing, 1)), "gone2");
    json_decref(missing);
    ck_assert_int_eq(redis_ll(&shared, "ZCARD %s", "nt:alerts:status:open"), 2);
    ck_assert_int_eq(redis_ll(&shared, "EXISTS %s", "nt:alerts:status:closed"), 0);

    const char *bad[] = {"a1", "bad id!", "a2"};
    ck_assert_int_eq(
        store_alert_set_status_many(s, bad, 3, "closed", NULL, T0 + 10, &missing, &err),
        NT_ERR_INVALID);
    ck_assert_str_eq(err.msg, "alert id 1 is not valid");
    ck_assert_int_eq(redis_ll(&shared, "ZCARD %s", "nt:alerts:status:open"), 2);

    const char *both[] = {"a1", "a2", "a1"};
    ck_assert_int_eq(
        store_alert_set_status_many(s, both, 3, "closed", "duplicate", T0 + 10, &missing, &err),
        NT_OK);
    ck_assert_ptr_null(missing);
    ck_assert_int_eq(redis_ll(&shared, "ZCARD %s", "nt:alerts:status:open"), 0);
    ck_assert_int_eq(redis_ll(&shared, "ZCARD %s", "nt:alerts:status:closed"), 2);
    redisReply *r = redis_harness_command(&shared, "HGET nt:alert:a2 status_reason");
    ck_assert_str_eq(r->str, "duplicate");
    freeReplyObject(r);
    store_free(s);
}
END_TEST

/* ---- exceptions ---------------------------------------------------------------------- */

START_TEST(exceptions_support_create_read_replace_delete_with_a_version_bump)
{
    flush_shared();
    store *s = open_shared();
    nt_err err = {{0}};
    long long v = -1;
    ck_assert_int_eq(store_exception_version(s, &v, &err), NT_OK);
    ck_assert_int_eq(v, 0);
    ck_assert_int_eq(store_exception_put(s, "b-item", "{\"id\":\"b-item\",\"n\":1}", 1, NULL, &err),
                     NT_OK);
    ck_assert_int_eq(store_exception_put(s, "a-item", "{\"id\":\"a-item\"}", 1, NULL, &err), NT_OK);
    ck_assert_int_eq(store_exception_put(s, "b-item", "{\"id\":\"b-item\"}", 1, NULL, &err),
                     NT_ERR_CONFLICT);
    ck_assert_str_eq(err.msg, "exception b-item already exists");
    ck_assert_int_eq(store_exception_put(s, "c-item", "{}", 0, NULL, &err), NT_ERR_NOTFOUND);
    ck_assert_int_eq(store_exception_put(s, "b-item", "{\"id\":\"b-item\",\"n\":2}", 0, NULL, &err),
                     NT_OK);
    ck_assert_int_eq(store_exception_version(s, &v, &err), NT_OK);
    ck_assert_int_eq(v, 3);

    char *text = NULL;
    ck_assert_int_eq(store_exception_get(s, "b-item", &text, &err), NT_OK);
    ck_assert_str_eq(text, "{\"id\":\"b-item\",\"n\":2}");
    free(text);

    json_t *items = NULL;
    ck_assert_int_eq(store_exception_all(s, &items, &v, &err), NT_OK);
    ck_assert_int_eq(v, 3);
    ck_assert_int_eq(json_array_size(items), 2);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(items, 0), "id")), "a-item");
    ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(items, 1), "n")), 2);
    json_decref(items);

    ck_assert_int_eq(store_exception_delete(s, "a-item", &err), NT_OK);
    ck_assert_int_eq(store_exception_delete(s, "a-item", &err), NT_ERR_NOTFOUND);
    ck_assert_int_eq(store_exception_get(s, "a-item", &text, &err), NT_ERR_NOTFOUND);
    ck_assert_int_eq(store_exception_version(s, &v, &err), NT_OK);
    ck_assert_int_eq(v, 4);
    store_free(s);
}
END_TEST

START_TEST(an_exception_with_a_bad_id_or_json_is_invalid)
{
    flush_shared();
    store *s = open_shared();
    nt_err err = {{0}};
    ck_assert_int_eq(store_exception_put(s, "has space", "{}", 1, NULL, &err), NT_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(err.msg, "exception id"));
    ck_assert_int_eq(store_exception_put(s, "ok", "{not json", 1, NULL, &err), NT_ERR_INVALID);
    ck_assert_int_eq(store_exception_put(s, "ok", "[1,2]", 1, NULL, &err), NT_ERR_INVALID);
    ck_assert_int_eq(store_exception_put(s, "ok", NULL, 1, NULL, &err), NT_ERR_INVALID);
    ck_assert_int_eq(redis_ll(&shared, "EXISTS %s", "nt:exceptions:version"), 0);
    store_free(s);
}
END_TEST

START_TEST(an_empty_exception_list_reads_as_version_zero)
{
    flush_shared();
    store *s = open_shared();
    json_t *items = NULL;
    long long v = -1;
    nt_err err = {{0}};
    ck_assert_int_eq(store_exception_all(s, &items, &v, &err), NT_OK);
    ck_assert_int_eq(json_array_size(items), 0);
    ck_assert_int_eq(v, 0);
    json_decref(items);
    store_free(s);
}
END_TEST

START_TEST(exception_quotas_hold_per_rule_and_in_total_and_index_old_items)
{
    flush_shared();
    store *s = open_shared();
    nt_err err = {{0}};
    /* An item written before nt:exceptions:rule existed (an older version). */
    redisReply *r = redis_harness_command(&shared, "HSET nt:exceptions old %s",
                                          "{\"id\":\"old\",\"rule_id\":\"r1\"}");
    freeReplyObject(r);
    store_exception_quota q = {"r1", 4, 2};
    ck_assert_int_eq(store_exception_put(s, "e1", "{\"rule_id\":\"r1\"}", 1, &q, &err), NT_OK);
    ck_assert_int_eq(store_exception_put(s, "e2", "{\"rule_id\":\"r1\"}", 1, &q, &err),
                     NT_ERR_LIMIT);
    ck_assert_str_eq(err.msg, "rule_id r1 already has 2 exception items, the most allowed");
    /* Replacing an item of a full rule is fine: it does not add one. */
    ck_assert_int_eq(store_exception_put(s, "e1", "{\"rule_id\":\"r1\",\"n\":2}", 0, &q, &err),
                     NT_OK);
    store_exception_quota g = {NULL, 4, 2};
    ck_assert_int_eq(store_exception_put(s, "g1", "{}", 1, &g, &err), NT_OK);
    ck_assert_int_eq(store_exception_put(s, "g2", "{}", 1, &g, &err), NT_OK);
    ck_assert_int_eq(store_exception_put(s, "g3", "{}", 1, &g, &err), NT_ERR_LIMIT);
    ck_assert_str_eq(err.msg, "there are already 4 exception items, the most allowed");
    ck_assert_int_eq(store_exception_delete(s, "g2", &err), NT_OK);
    ck_assert_int_eq(store_exception_put(s, "g3", "{}", 1, &g, &err), NT_OK);
    ck_assert_int_eq(redis_ll(&shared, "HLEN %s", "nt:exceptions"), 4);
    ck_assert_int_eq(redis_ll(&shared, "HLEN %s", "nt:exceptions:rule"), 4);
    store_free(s);
}
END_TEST

START_TEST(exception_pages_are_sorted_by_id_without_repeats_or_gaps)
{
    flush_shared();
    store *s = open_shared();
    nt_err err = {{0}};
    char id[16];
    for (int i = 0; i < 25; i++) {
        snprintf(id, sizeof id, "x%02d", (i * 7) % 25);
        ck_assert_int_eq(store_exception_put(s, id, "{}", 1, NULL, &err), NT_OK);
    }
    char *cursor = NULL;
    int seen = 0, pages = 0;
    do {
        json_t *items = NULL;
        char *next = NULL;
        ck_assert_msg(store_exception_page(s, cursor, 10, &items, &next, &err) == NT_OK, "%s",
                      err.msg);
        size_t i;
        json_t *it;
        json_array_foreach(items, i, it)
        {
            (void)it;
            seen++;
        }
        ck_assert_int_le(json_array_size(items), 10);
        json_decref(items);
        free(cursor);
        cursor = next;
        /* An item deleted between pages is simply absent later on. */
        if (pages == 0) ck_assert_int_eq(store_exception_delete(s, "x24", &err), NT_OK);
        pages++;
    } while (cursor && pages < 10);
    ck_assert_int_eq(pages, 3);
    ck_assert_int_eq(seen, 24);
    json_t *items = NULL;
    char *next = NULL;
    ck_assert_int_eq(store_exception_page(s, "!!", 10, &items, &next, &err), NT_ERR_INVALID);
    ck_assert_str_eq(err.msg, "cursor is not valid");
    ck_assert_int_eq(store_exception_page(s, NULL, 0, &items, &next, &err), NT_ERR_INVALID);
    store_free(s);
}
END_TEST

/* ---- rejects, rules --------------------------------------------------------------------- */

START_TEST(rejects_are_listed_newest_first_and_capped)
{
    flush_shared();
    store_config cfg = config_for(shared.url);
    cfg.reject_cap = 5;
    store *s = open_with(&cfg);
    store_reject r[8];
    char reasons[8][16];
    for (int i = 0; i < 8; i++) {
        snprintf(reasons[i], sizeof reasons[i], "reason%d", i);
        r[i] = (store_reject){reasons[i], "/v1/firehose", "req-1", "not json \\x00", i, T0 + i};
    }
    r[7].record_index = -1;
    r[7].delivery_id = NULL;
    nt_err err = {{0}};
    ck_assert_int_eq(store_reject_push(s, r, 3, &err), NT_OK);
    ck_assert_int_eq(store_reject_push(s, r + 3, 5, &err), NT_OK);
    ck_assert_int_eq(redis_ll(&shared, "LLEN %s", "nt:rejects"), 5);
    json_t *list = NULL;
    ck_assert_int_eq(store_reject_list(s, 0, &list, &err), NT_OK);
    ck_assert_int_eq(json_array_size(list), 5);
    json_t *newest = json_array_get(list, 0);
    ck_assert_str_eq(json_string_value(json_object_get(newest, "reason")), "reason7");
    ck_assert(json_is_null(json_object_get(newest, "record_index")));
    ck_assert(json_is_null(json_object_get(newest, "delivery_id")));
    ck_assert_str_eq(json_string_value(json_object_get(newest, "at")), "2026-11-28T05:29:12.007Z");
    json_t *oldest = json_array_get(list, 4);
    ck_assert_str_eq(json_string_value(json_object_get(oldest, "reason")), "reason3");
    ck_assert_int_eq(json_integer_value(json_object_get(oldest, "record_index")), 3);
    ck_assert_str_eq(json_string_value(json_object_get(oldest, "route")), "/v1/firehose");
    ck_assert_str_eq(json_string_value(json_object_get(oldest, "prefix")), "not json \\x00");
    json_decref(list);
    ck_assert_int_eq(store_reject_list(s, 2, &list, &err), NT_OK);
    ck_assert_int_eq(json_array_size(list), 2);
    json_decref(list);
    store_free(s);
}
END_TEST

START_TEST(a_reject_cap_of_0_keeps_no_dead_letter_list)
{
    flush_shared();
    store_config cfg = config_for(shared.url);
    cfg.reject_cap = 0; /* --reject-cap 0: the store used to turn this into 1000 */
    store *s = open_with(&cfg);
    nt_err err = {{0}};
    /* a list left by an earlier run with a cap is not shown either */
    ck_assert_int_eq(redis_ll(&shared, "RPUSH nt:rejects %s", "{}"), 1);
    store_reject r = {"not_json", "/v1/firehose", "req-1", "junk", 0, T0};
    ck_assert_int_eq(store_reject_push(s, &r, 1, &err), NT_OK);
    ck_assert_int_eq(redis_ll(&shared, "LLEN %s", "nt:rejects"), 1);
    json_t *list = NULL;
    ck_assert_int_eq(store_reject_list(s, 0, &list, &err), NT_OK);
    ck_assert_int_eq(json_array_size(list), 0);
    json_decref(list);
    store_free(s);
}
END_TEST

START_TEST(store_open_has_no_defaults_of_its_own)
{
    static const char *const why = "store timeouts, alert retention and alert cap must be positive";
    for (int field = 0; field < 4; field++) {
        store_config cfg = config_for(shared.url);
        if (field == 0) cfg.connect_timeout_ms = 0;
        if (field == 1) cfg.command_timeout_ms = 0;
        if (field == 2) cfg.alert_retention_ms = 0;
        if (field == 3) cfg.alert_cap = 0;
        store *s = NULL;
        nt_err err = {{0}};
        ck_assert_int_eq(store_open(&s, &cfg, &err), NT_ERR_INVALID);
        ck_assert_ptr_null(s);
        ck_assert_str_eq(err.msg, why);
    }
    store_config cfg = config_for(NULL);
    store *s = NULL;
    nt_err err = {{0}};
    ck_assert_int_eq(store_open(&s, &cfg, &err), NT_ERR_INVALID);
    ck_assert_str_eq(err.msg, "no Redis URL");
}
END_TEST

START_TEST(rule_stats_count_matches_and_alerts)
{
    flush_shared();
    store *s = open_shared();
    json_t *st = NULL;
    nt_err err = {{0}};
    ck_assert_int_eq(store_rule_stats(s, "r1", &st, &err), NT_OK);
    ck_assert_int_eq(json_integer_value(json_object_get(st, "events_matched")), 0);
    ck_assert(json_is_null(json_object_get(st, "last_alert_at")));
    ck_assert(json_is_null(json_object_get(st, "history_since")));
    json_decref(st);
    observe_live(s, "r1", "a", "a1", T0, NULL, NULL, NULL);
    observe_live(s, "r1", "a", "a2", T0 + 1000, NULL, NULL, NULL);
    observe_live(s, "r1", "b", "a3", T0 + 2000, NULL, NULL, NULL);
    ck_assert_int_eq(store_rule_stats(s, "r1", &st, &err), NT_OK);
    ck_assert_int_eq(json_integer_value(json_object_get(st, "events_matched")), 3);
    ck_assert_int_eq(json_integer_value(json_object_get(st, "alerts")), 2);
    ck_assert_str_eq(json_string_value(json_object_get(st, "last_alert_at")),
                     "2026-11-28T05:29:14.000Z");
    ck_assert_str_eq(json_string_value(json_object_get(st, "history_since")),
                     "2026-11-28T05:29:12.000Z");
    json_decref(st);
    store_free(s);
}
END_TEST

START_TEST(learning_since_is_set_once)
{
    flush_shared();
    store *s = open_shared();
    nt_time_ms since = 0;
    nt_err err = {{0}};
    ck_assert_int_eq(store_learning_since(s, "r1", T0, &since, &err), NT_OK);
    ck_assert_int_eq(since, T0);
    ck_assert_int_eq(store_learning_since(s, "r1", T0 + 5000, &since, &err), NT_OK);
    ck_assert_int_eq(since, T0);
    ck_assert_int_eq(store_learning_since(s, "r2", T0 + 5000, &since, &err), NT_OK);
    ck_assert_int_eq(since, T0 + 5000);
    store_free(s);
}
END_TEST

/* ---- connection behaviour ------------------------------------------------------------ */

START_TEST(script_flush_is_recovered_by_reloading_and_resending)
{
    flush_shared();
    store *s = open_shared();
    observe_live(s, "r1", "a", "a1", T0, NULL, NULL, NULL);
    redisReply *r = redis_harness_command(&shared, "SCRIPT FLUSH");
    freeReplyObject(r);
    int written = 0;
    ck_assert_int_eq(observe_live(s, "r1", "b", "a2", T0 + 1, NULL, NULL, &written), 1);
    ck_assert_int_eq(written, 1);
    store_counters c;
    store_get_counters(s, &c);
    ck_assert_int_eq(c.noscript_reloads, 1);
    ck_assert_int_eq(redis_ll(&shared, "ZCARD %s", "nt:alerts"), 2);
    ck_assert_int_eq(redis_ll(&shared, "HGET %s events_matched", "nt:rule:r1:stats"), 2);

    r = redis_harness_command(&shared, "SCRIPT FLUSH");
    freeReplyObject(r);
    nt_err err = {{0}};
    json_t *doc = NULL;
    ck_assert_int_eq(store_alert_set_status(s, "a1", "acknowledged", NULL, T0, &doc, &err), NT_OK);
    json_decref(doc);
    store_get_counters(s, &c);
    ck_assert_int_eq(c.noscript_reloads, 2);
    store_free(s);
}
END_TEST

static double elapsed_ms(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) * 1000.0 + (double)(t1.tv_nsec - t0->tv_nsec) / 1e6;
}

/* One LIVE observation with a WAIT; returns store_observe's status. */
static nt_status observe_waiting(store *s, const char *term, const char *id, nt_err *err)
{
    char *doc = alert_json(id, "r1");
    store_obs o;
    memset(&o, 0, sizeof o);
    o.rule_id = "r1";
    o.term_hash = term;
    o.ttl_ms = WINDOW_MS;
    o.seen_ms = o.created_ms = T0;
    o.mode = STORE_OBS_LIVE;
    o.alert_id = id;
    o.alert_json = doc;
    nt_status st = store_observe(s, &o, 1, err);
    free(doc);
    return st;
}

START_TEST(waiting_for_a_replica_that_is_not_there_fails_after_the_writes)
{
    flush_shared();
    store_config cfg = config_for(shared.url);
    cfg.wait_replicas = 1;
    cfg.wait_timeout_ms = 150;
    store *s = open_with(&cfg);
    nt_err err = {{0}};
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    ck_assert_int_eq(observe_waiting(s, "a", "w1", &err), NT_ERR_STORE);
    ck_assert_double_ge(elapsed_ms(&t0), 140.0);
    ck_assert_msg(strstr(err.msg, "only 0 of 1 replicas acknowledged the writes within 150 ms"),
                  "%s", err.msg);
    /* The primary has the alert: a retry finds the term seen and duplicates nothing. */
    ck_assert_int_eq(redis_ll(&shared, "ZCARD %s", "nt:alerts"), 1);
    ck_assert_int_eq(observe_waiting(s, "a", "w1", &err), NT_ERR_STORE);
    ck_assert_int_eq(redis_ll(&shared, "ZCARD %s", "nt:alerts"), 1);

    /* After a SCRIPT FLUSH the resent script is followed by the WAIT again. */
    redisReply *r = redis_harness_command(&shared, "SCRIPT FLUSH");
    freeReplyObject(r);
    ck_assert_int_eq(observe_waiting(s, "b", "w2", &err), NT_ERR_STORE);
    ck_assert_msg(strstr(err.msg, "only 0 of 1 replicas"), "%s", err.msg);
    store_counters c;
    store_get_counters(s, &c);
    ck_assert_int_eq(c.noscript_reloads, 1);
    ck_assert_int_eq(redis_ll(&shared, "ZCARD %s", "nt:alerts"), 2);
    /* Other calls never wait. */
    clock_gettime(CLOCK_MONOTONIC, &t0);
    ck_assert_int_eq(store_ping(s, &err), NT_OK);
    ck_assert_double_lt(elapsed_ms(&t0), 100.0);
    store_free(s);
}
END_TEST

START_TEST(an_acl_user_in_the_url_authenticates_as_that_user)
{
    redisReply *r = redis_harness_command(&shared, "ACL SETUSER %s on >app-pw-123 ~* +@all", "app");
    ck_assert_ptr_nonnull(r);
    ck_assert_int_ne(r->type, REDIS_REPLY_ERROR);
    freeReplyObject(r);
    char url[256];
    snprintf(url, sizeof url, "redis://app@127.0.0.1:%d/0", shared.port);
    store_config cfg = config_for(url);
    cfg.password = "app-pw-123";
    store *s = open_with(&cfg);
    nt_err err = {{0}};
    ck_assert_msg(store_ping(s, &err) == NT_OK, "%s", err.msg);
    r = redis_harness_command(&shared, "CLIENT LIST");
    ck_assert_ptr_nonnull(strstr(r->str, "user=app"));
    freeReplyObject(r);
    store_free(s);

    const char *users[] = {"app", "nobody"};
    for (int i = 0; i < 2; i++) {
        snprintf(url, sizeof url, "redis://%s@127.0.0.1:%d/0", users[i], shared.port);
        cfg = config_for(url);
        cfg.password = i == 0 ? "not-the-pw" : "app-pw-123";
        s = open_with(&cfg);
        ck_assert_int_eq(store_ping(s, &err), NT_ERR_STORE);
        char want[128];
        snprintf(want, sizeof want,
                 "authentication failed for user '%s': wrong password or unknown user", users[i]);
        ck_assert_msg(strstr(err.msg, want), "%s", err.msg);
        ck_assert_ptr_null(strstr(err.msg, "not-the-pw"));
        ck_assert_ptr_null(strstr(err.msg, "app-pw-123"));
        store_free(s);
    }
}
END_TEST

START_TEST(a_stopped_redis_fails_fast_and_a_restarted_one_is_used_again)
{
    redis_harness h;
    ck_assert_int_eq(redis_harness_start(&h, NULL), 0);
    store_config cfg = config_for(h.url);
    cfg.connect_timeout_ms = 500;
    cfg.command_timeout_ms = 500;
    store *s = open_with(&cfg);
    nt_err err = {{0}};
    ck_assert_int_eq(store_ping(s, &err), NT_OK);

    redis_harness_stop(&h);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    ck_assert_int_eq(store_ping(s, &err), NT_ERR_STORE);
    char expect[64];
    snprintf(expect, sizeof expect, "redis 127.0.0.1:%d/0: ", h.port);
    ck_assert_msg(strncmp(err.msg, expect, strlen(expect)) == 0, "%s", err.msg);
    /* The dropped connection is retried at once and refused. */
    ck_assert_int_eq(store_ping(s, &err), NT_ERR_STORE);
    ck_assert_msg(strstr(err.msg, "Connection refused"), "%s", err.msg);
    /* Then the backoff answers without trying. */
    ck_assert_int_eq(store_ping(s, &err), NT_ERR_STORE);
    ck_assert_msg(strstr(err.msg, "Connection refused (next connection attempt in"), "%s", err.msg);
    ck_assert_double_lt(elapsed_ms(&t0), 500.0);

    ck_assert_int_eq(redis_harness_restart(&h), 0);
    int ok = 0;
    for (int i = 0; i < 100 && !ok; i++) {
        ok = store_ping(s, &err) == NT_OK;
        if (!ok) redis_harness_sleep_ms(50);
    }
    ck_assert_msg(ok, "%s", err.msg);
    /* Scripts are loaded again on the new server. */
    ck_assert_int_eq(observe_live(s, "r1", "a", "a1", T0, NULL, NULL, NULL), 1);
    store_counters c;
    store_get_counters(s, &c);
    ck_assert_int_eq(c.reconnects, 1);
    ck_assert_int_ge(c.errors, 3);
    store_free(s);
    redis_harness_cleanup(&h);
}
END_TEST

START_TEST(a_hung_redis_fails_within_the_command_timeout)
{
    redis_harness h;
    ck_assert_int_eq(redis_harness_start(&h, NULL), 0);
    store_config cfg = config_for(h.url);
    cfg.connect_timeout_ms = 300;
    cfg.command_timeout_ms = 300;
    store *s = open_with(&cfg);
    nt_err err = {{0}};
    ck_assert_int_eq(store_ping(s, &err), NT_OK);
    kill(h.pid, SIGSTOP);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    ck_assert_int_eq(store_ping(s, &err), NT_ERR_STORE);
    double ms = elapsed_ms(&t0);
    ck_assert_msg(strstr(err.msg, "timed out after 300 ms"), "%s", err.msg);
    ck_assert_msg(ms >= 250.0 && ms < 1500.0, "took %.0f ms", ms);
    /* Reconnecting to a hung server: the TCP connect succeeds (the kernel
     * accepts), the handshake times out within the connect timeout. */
    clock_gettime(CLOCK_MONOTONIC, &t0);
    ck_assert_int_eq(store_ping(s, &err), NT_ERR_STORE);
    ms = elapsed_ms(&t0);
    ck_assert_msg(strstr(err.msg, "timed out"), "%s", err.msg);
    ck_assert_msg(ms < 1500.0, "took %.0f ms", ms);
    kill(h.pid, SIGCONT);
    int ok = 0;
    for (int i = 0; i < 100 && !ok; i++) {
        ok = store_ping(s, &err) == NT_OK;
        if (!ok) redis_harness_sleep_ms(50);
    }
    ck_assert_msg(ok, "%s", err.msg);
    store_free(s);
    redis_harness_cleanup(&h);
}
END_TEST

START_TEST(a_wrong_or_missing_password_is_reported)
{
    redis_harness_opts opts = {"s3cret-pw", 0};
    redis_harness h;
    ck_assert_int_eq(redis_harness_start(&h, &opts), 0);
    nt_err err = {{0}};

    store_config cfg = config_for(h.url);
    store *s = open_with(&cfg);
    ck_assert_int_eq(store_ping(s, &err), NT_ERR_STORE);
    ck_assert_msg(strstr(err.msg, "NOAUTH"), "%s", err.msg);
    store_free(s);

    cfg.password = "wrong";
    s = open_with(&cfg);
    ck_assert_int_eq(store_ping(s, &err), NT_ERR_STORE);
    ck_assert_msg(strstr(err.msg, "authentication failed: wrong password (WRONGPASS"), "%s",
                  err.msg);
    ck_assert_ptr_null(strstr(err.msg, "'wrong'"));
    store_free(s);

    char url[256];
    snprintf(url, sizeof url, "redis://:s3cret-pw@127.0.0.1:%d/0", h.port);
    cfg = config_for(url);
    s = open_with(&cfg);
    ck_assert_msg(store_ping(s, &err) == NT_OK, "%s", err.msg);
    store_free(s);

    snprintf(url, sizeof url, "redis://:stale@127.0.0.1:%d/0", h.port);
    cfg = config_for(url);
    cfg.password = "s3cret-pw"; /* the config's password wins over the URL's */
    s = open_with(&cfg);
    ck_assert_msg(store_ping(s, &err) == NT_OK, "%s", err.msg);
    store_free(s);

    snprintf(url, sizeof url, "redis://default:s3cret-pw@127.0.0.1:%d/0", h.port);
    cfg = config_for(url);
    s = open_with(&cfg);
    ck_assert_msg(store_ping(s, &err) == NT_OK, "%s", err.msg);
    store_free(s);
    redis_harness_cleanup(&h);
}
END_TEST

static long long db_exists(const redis_harness *h, int db, const char *key)
{
    redisContext *c = redis_harness_connect(h);
    ck_assert_ptr_nonnull(c);
    redisReply *r = redisCommand(c, "SELECT %d", db);
    freeReplyObject(r);
    r = redisCommand(c, "EXISTS %s", key);
    long long v = r->integer;
    freeReplyObject(r);
    redisFree(c);
    return v;
}

START_TEST(a_unix_socket_url_with_a_database_is_used)
{
    redis_harness_opts opts = {NULL, 1};
    redis_harness h;
    ck_assert_int_eq(redis_harness_start(&h, &opts), 0);
    char url[300];
    snprintf(url, sizeof url, "%s?db=2", h.unix_url);
    store_config cfg = config_for(url);
    store *s = open_with(&cfg);
    ck_assert_int_eq(observe_live(s, "r1", "a", "a1", T0, NULL, NULL, NULL), 1);
    ck_assert_int_eq(db_exists(&h, 2, "nt:alert:a1"), 1);
    ck_assert_int_eq(db_exists(&h, 0, "nt:alert:a1"), 0);
    ck_assert_ptr_nonnull(strstr(store_endpoint(s), "redis.sock/2"));
    store_free(s);
    redis_harness_cleanup(&h);
}
END_TEST

START_TEST(a_tcp_url_selects_its_database)
{
    flush_shared();
    char url[300];
    snprintf(url, sizeof url, "%s/3", shared.url);
    store_config cfg = config_for(url);
    store *s = open_with(&cfg);
    ck_assert_int_eq(observe_live(s, "r1", "a", "a1", T0, NULL, NULL, NULL), 1);
    ck_assert_int_eq(db_exists(&shared, 3, "nt:alert:a1"), 1);
    ck_assert_int_eq(db_exists(&shared, 0, "nt:alert:a1"), 0);
    store_free(s);
}
END_TEST

START_TEST(an_unreachable_unix_socket_names_the_path)
{
    store_config cfg = config_for("unix:///nonexistent/dir/redis.sock");
    store *s = open_with(&cfg);
    nt_err err = {{0}};
    ck_assert_int_eq(store_ping(s, &err), NT_ERR_STORE);
    ck_assert_msg(strstr(err.msg, "redis /nonexistent/dir/redis.sock/0: No such file"), "%s",
                  err.msg);
    store_free(s);
}
END_TEST

/* ---- rule kinds: query, threshold, suppression ------------------------------ */

typedef struct kind_case {
    store_obs_kind kind;
    const char *group, *id; /* term/group hash, alert id */
    long long at;           /* seen_ms offset from T0 */
    const char *card;
    const char *supp; /* suppression group or NULL */
} kind_case;

/* One sequence, observed one at a time through Redis and through memhist:
 * the outcomes must be the same (the in-memory history mirrors the script). */
static const kind_case kind_cases[] = {
    /* threshold value 3, window 60 s */
    {STORE_KIND_THRESHOLD, "g1", "e1", 0, "", NULL},
    {STORE_KIND_THRESHOLD, "g1", "e2", 1000, "", NULL},
    {STORE_KIND_THRESHOLD, "g1", "e2", 1500, "", NULL},  /* retry: not counted */
    {STORE_KIND_THRESHOLD, "g2", "e3", 2000, "", NULL},  /* another group */
    {STORE_KIND_THRESHOLD, "g1", "e4", 3000, "", NULL},  /* third: alert, count 3 */
    {STORE_KIND_THRESHOLD, "g1", "e4", 3500, "", NULL},  /* retry after the alert */
    {STORE_KIND_THRESHOLD, "g1", "e5", 4000, "", NULL},  /* starts over: 1 */
    {STORE_KIND_THRESHOLD, "g1", "e6", 70000, "", NULL}, /* e5 left the window: 1 */
    {STORE_KIND_THRESHOLD, "g1", "e7", 71000, "", NULL},
    {STORE_KIND_THRESHOLD, "g1", "e8", 72000, "", NULL}, /* alert */
    /* query with suppression (duration 1 h) */
    {STORE_KIND_QUERY, "q", "q1", 0, NULL, "s1"},    /* alert */
    {STORE_KIND_QUERY, "q", "q2", 1000, NULL, "s1"}, /* counted on q1 */
    {STORE_KIND_QUERY, "q", "q2", 1000, NULL, "s1"}, /* retry: not counted again */
    {STORE_KIND_QUERY, "q", "q1", 1000, NULL, "s1"}, /* q1 retried: exists */
    {STORE_KIND_QUERY, "q", "q3", 2000, NULL, "s2"}, /* other group: alert */
    {STORE_KIND_QUERY, "q", "q4", 3000, NULL, NULL}, /* no suppression: alert */
    {STORE_KIND_QUERY, "q", "q4", 3000, NULL, NULL}, /* retried: exists */
};

static void kind_obs(store_obs *o, const kind_case *k, const char *rule)
{
    memset(o, 0, sizeof *o);
    o->kind = k->kind;
    o->rule_id = rule;
    o->term_hash = k->group;
    o->alert_id = k->id;
    o->alert_json = "{}";
    o->mode = STORE_OBS_LIVE;
    o->seen_ms = o->created_ms = T0 + k->at;
    o->event_time = T0 + k->at;
    if (strcmp(k->id, "e2") == 0 || strcmp(k->id, "e4") == 0) o->event_time = T0; /* retries */
    o->ttl_ms = 60000;
    o->thr_value = 3;
    o->card = k->card;
    o->supp_hash = k->supp;
    o->supp_ms = k->supp ? 3600000 : 0;
}

START_TEST(query_threshold_and_suppression_decide_alike_in_redis_and_in_memory)
{
    flush_shared();
    store *s = open_shared();
    memhist *mh = memhist_new();
    nt_history h = memhist_history(mh);
    const size_t n = sizeof kind_cases / sizeof kind_cases[0];
    int want_new[] = {0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 1, 0, 0, 0, 1, 1, 0};
    int want_supp[] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0};
    for (size_t i = 0; i < n; i++) {
        store_obs a, b;
        kind_obs(&a, &kind_cases[i], "rk");
        kind_obs(&b, &kind_cases[i], "rk");
        nt_err err = {{0}};
        ck_assert_msg(store_observe(s, &a, 1, &err) == NT_OK, "%zu: %s", i, err.msg);
        ck_assert_int_eq(h.observe(h.ctx, &b, 1, &err), NT_OK);
        /* Redis reports a retried alert id as "new, already stored" (2);
         * memhist says not new. Both raise nothing. */
        int redis_new = a.is_new && (a.alert_written || a.kind == STORE_KIND_THRESHOLD);
        ck_assert_msg(redis_new == want_new[i], "%zu redis is_new %d", i, a.is_new);
        ck_assert_msg(b.is_new == want_new[i], "%zu memhist is_new %d", i, b.is_new);
        /* memhist counts an event once; Redis says "suppressed" on retries too */
        ck_assert_msg(b.suppressed == want_supp[i], "%zu memhist suppressed", i);
        if (want_supp[i]) {
            ck_assert_int_eq(a.suppressed, 1);
            ck_assert_str_eq(a.supp_into, "q1");
            ck_assert_str_eq(b.supp_into, "q1");
        }
        if (want_new[i] && a.kind == STORE_KIND_THRESHOLD) {
            ck_assert_int_eq(a.thr_count, 3);
            ck_assert_int_eq(b.thr_count, 3);
            ck_assert_int_eq(a.thr_first, b.thr_first);
            ck_assert_int_eq(a.thr_last, b.thr_last);
        }
    }
    /* the suppressed alert counted q2 once, and its document says so */
    ck_assert_int_eq(redis_ll(&shared, "HGET %s supp_docs_count", "nt:alert:q1"), 1);
    ck_assert_int_eq(redis_ll(&shared, "HGET %s thr_count", "nt:alert:e4"), 3);
    ck_assert_int_eq(redis_ll(&shared, "HGET %s thr_first_ms", "nt:alert:e4"), T0);
    ck_assert_int_eq(redis_ll(&shared, "ZCARD %s", "nt:alerts:rule:rk"), 5);
    /* g2 still counts; g1 went into its alert */
    long long groups = -1;
    nt_err err = {{0}};
    ck_assert_int_eq(store_threshold_groups(s, "rk", T0 + 72000, 60000, &groups, &err), NT_OK);
    ck_assert_int_eq(groups, 0); /* g2's only event (at +2 s) left the window */
    store_obs g3;
    kind_case k3 = {STORE_KIND_THRESHOLD, "g3", "e9", 73000, "", NULL};
    kind_obs(&g3, &k3, "rk");
    ck_assert_int_eq(store_observe(s, &g3, 1, &err), NT_OK);
    ck_assert_int_eq(g3.is_new, 0);
    ck_assert_int_eq(store_threshold_groups(s, "rk", T0 + 73000, 60000, &groups, &err), NT_OK);
    ck_assert_int_eq(groups, 1);
    /* a closed alert ends suppression: the group's next event alerts */
    ck_assert_int_eq(store_alert_set_status(s, "q1", "closed", NULL, T0, NULL, &err), NT_OK);
    store_obs o;
    kind_case next = {STORE_KIND_QUERY, "q", "q9", 5000, NULL, "s1"};
    kind_obs(&o, &next, "rk");
    ck_assert_int_eq(store_observe(s, &o, 1, &err), NT_OK);
    ck_assert_int_eq(o.alert_written, 1);
    ck_assert_int_eq(o.suppressed, 0);
    json_t *doc = NULL;
    ck_assert_int_eq(store_alert_get(s, "e4", &doc, &err), NT_OK);
    ck_assert_ptr_null(json_object_get(doc, "history")); /* no history block but new_terms' */
    json_decref(doc);
    memhist_free(mh);
    store_free(s);
}
END_TEST

START_TEST(threshold_cardinality_counts_distinct_values_in_the_window)
{
    flush_shared();
    store *s = open_shared();
    memhist *mh = memhist_new();
    nt_history h = memhist_history(mh);
    /* value 1, cardinality 3: a, b, a, c → alert at c (3 distinct) */
    static const char *const cards[] = {"aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbb", "aaaaaaaaaaaaaaaa",
                                        "cccccccccccccccc"};
    static const char *const ids[] = {"c1", "c2", "c3", "c4"};
    for (int i = 0; i < 4; i++) {
        store_obs o[2];
        for (int k = 0; k < 2; k++) {
            memset(&o[k], 0, sizeof o[k]);
            o[k].kind = STORE_KIND_THRESHOLD;
            o[k].rule_id = "rc";
            o[k].term_hash = "g";
            o[k].alert_id = ids[i];
            o[k].alert_json = "{}";
            o[k].mode = STORE_OBS_LIVE;
            o[k].seen_ms = o[k].created_ms = o[k].event_time = T0 + i * 1000;
            o[k].ttl_ms = 60000;
            o[k].thr_value = 1;
            o[k].card_value = 3;
            o[k].card = cards[i];
        }
        nt_err err = {{0}};
        ck_assert_int_eq(store_observe(s, &o[0], 1, &err), NT_OK);
        ck_assert_int_eq(h.observe(h.ctx, &o[1], 1, &err), NT_OK);
        ck_assert_int_eq(o[0].is_new, i == 3);
        ck_assert_int_eq(o[1].is_new, i == 3);
        if (i == 3) {
            ck_assert_int_eq(o[0].thr_card, 3);
            ck_assert_int_eq(o[1].thr_card, 3);
            ck_assert_int_eq(o[0].thr_count, 4);
            ck_assert_int_eq(o[1].thr_count, 4);
        }
    }
    memhist_free(mh);
    store_free(s);
}
END_TEST

static Suite *store_suite(void)
{
    Suite *s = suite_create("store");
    TCase *url = tcase_create("url");
    tcase_add_loop_test(url, good_redis_urls_parse_into_their_parts, 0,
                        (int)(sizeof good_urls / sizeof good_urls[0]));
    tcase_add_loop_test(url, bad_redis_urls_are_refused_with_a_precise_message, 0,
                        (int)(sizeof bad_urls / sizeof bad_urls[0]));
    tcase_add_test(url, url_errors_never_echo_the_password);
    tcase_add_test(url, store_open_refuses_a_bad_url);
    tcase_add_loop_test(url, store_open_refuses_inconsistent_auth_or_tls_settings, 0,
                        (int)(sizeof bad_opens / sizeof bad_opens[0]));
    suite_add_tcase(s, url);

    TCase *obs = tcase_create("observe");
    tcase_add_test(obs, a_new_term_writes_an_open_alert_and_reports_it_new);
    tcase_add_test(obs, a_second_sighting_is_not_new_and_refreshes_ttl_and_last_seen);
    tcase_add_test(obs,
                   a_deferred_sighting_refreshes_a_known_term_and_writes_nothing_for_a_new_one);
    tcase_add_test(obs, a_batch_larger_than_one_script_call_is_one_round_trip_in_order);
    tcase_add_test(obs, the_term_ttl_equals_the_history_window);
    tcase_add_test(obs, two_sightings_of_one_term_in_one_batch_make_one_alert);
    tcase_add_test(obs, two_connections_racing_for_the_same_terms_make_exactly_one_alert_per_term);
    tcase_add_test(obs, learn_and_backfill_record_terms_but_never_alert);
    tcase_add_test(obs, backfill_sets_a_term_only_when_that_lengthens_its_ttl);
    tcase_add_test(obs, backfill_older_than_the_window_writes_no_term_but_lowers_history_since);
    tcase_add_test(obs, an_existing_alert_id_is_never_overwritten);
    tcase_add_test(obs, a_script_error_fails_the_whole_batch_with_the_redis_message);
    tcase_add_test(obs, bad_observations_are_refused_before_anything_is_sent);
    tcase_add_test(obs, alerts_beyond_the_cap_or_the_retention_are_trimmed_from_every_index);
    tcase_add_test(obs, query_threshold_and_suppression_decide_alike_in_redis_and_in_memory);
    tcase_add_test(obs, threshold_cardinality_counts_distinct_values_in_the_window);
    suite_add_tcase(s, obs);

    TCase *list = tcase_create("alerts");
    tcase_set_timeout(list, 120);
    tcase_add_test(list, listing_pages_newest_first_without_repeats_or_gaps_while_alerts_arrive);
    tcase_add_test(list, listing_filters_are_anded_and_page_correctly);
    tcase_add_test(list, listing_skips_alerts_whose_hash_is_gone);
    tcase_add_test(list, the_last_page_has_no_next_cursor);
    tcase_add_loop_test(list, a_malformed_cursor_is_invalid, 0,
                        (int)(sizeof bad_cursors / sizeof bad_cursors[0]));
    tcase_add_test(list, a_bad_limit_or_status_filter_is_invalid);
    tcase_add_test(list, a_status_change_moves_the_alert_between_status_indexes);
    tcase_add_test(list, a_bad_status_or_reason_is_invalid_and_an_unknown_alert_is_not_found);
    tcase_add_test(list, a_bulk_status_change_with_an_unknown_id_changes_nothing_and_names_it);
    suite_add_tcase(s, list);

    TCase *misc = tcase_create("exceptions, rejects, rules");
    tcase_add_test(misc, exceptions_support_create_read_replace_delete_with_a_version_bump);
    tcase_add_test(misc, an_exception_with_a_bad_id_or_json_is_invalid);
    tcase_add_test(misc, an_empty_exception_list_reads_as_version_zero);
    tcase_add_test(misc, exception_quotas_hold_per_rule_and_in_total_and_index_old_items);
    tcase_add_test(misc, exception_pages_are_sorted_by_id_without_repeats_or_gaps);
    tcase_add_test(misc, rejects_are_listed_newest_first_and_capped);
    tcase_add_test(misc, a_reject_cap_of_0_keeps_no_dead_letter_list);
    tcase_add_test(misc, store_open_has_no_defaults_of_its_own);
    tcase_add_test(misc, rule_stats_count_matches_and_alerts);
    tcase_add_test(misc, learning_since_is_set_once);
    suite_add_tcase(s, misc);

    TCase *conn = tcase_create("connection");
    tcase_set_timeout(conn, 60);
    tcase_add_test(conn, script_flush_is_recovered_by_reloading_and_resending);
    tcase_add_test(conn, a_stopped_redis_fails_fast_and_a_restarted_one_is_used_again);
    tcase_add_test(conn, a_hung_redis_fails_within_the_command_timeout);
    tcase_add_test(conn, a_wrong_or_missing_password_is_reported);
    tcase_add_test(conn, a_unix_socket_url_with_a_database_is_used);
    tcase_add_test(conn, a_tcp_url_selects_its_database);
    tcase_add_test(conn, an_unreachable_unix_socket_names_the_path);
    tcase_add_test(conn, waiting_for_a_replica_that_is_not_there_fails_after_the_writes);
    tcase_add_test(conn, an_acl_user_in_the_url_authenticates_as_that_user);
    suite_add_tcase(s, conn);
    return s;
}

static void store_teardown(void)
{
    redis_harness_cleanup(&shared);
}

static Suite *store_setup(void)
{
    if (redis_harness_start(&shared, NULL) != 0) {
        fprintf(stderr, "test_store: cannot start redis-server\n");
        return NULL;
    }
    return store_suite();
}

NT_TEST_MAIN_TEARDOWN(store_setup, store_teardown)

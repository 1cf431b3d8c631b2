/*
 * test_api.c — the REST API and the reply without libmicrohttpd or Redis:
 * the one nt_status → HTTP status table, the error bodies (a 503 never shows
 * its detail), and api_handle's answers to requests it refuses from their
 * method, path, query and body alone (tests/data/api/refusals.json), with
 * the query arguments given through api_request's callbacks. The server has
 * no Redis connection: a case that reached Redis would block on the empty
 * pool and fail on the test timeout.
 */
#include "testutil.h"

#include "api.h"
#include "reply.h"
#include "server.h"

#include <stdlib.h>
#include <string.h>

/* ---- the status table and the error bodies ------------------------------- */

static const struct {
    nt_status st;
    unsigned status;
    const char *code;
} status_cases[] = {
    {NT_ERR_NOTFOUND, 404, "not_found"},
    {NT_ERR_CONFLICT, 409, "conflict"},
    {NT_ERR_INVALID, 400, "bad_request"},
    {NT_ERR_PARSE, 400, "bad_request"},
    {NT_ERR_UNSUPPORTED, 400, "bad_request"},
    {NT_ERR_LIMIT, 413, "payload_too_large"},
    {NT_ERR_STORE, 503, "store_unavailable"},
    {NT_ERR_NOMEM, 500, "internal"},
    {NT_ERR_IO, 500, "internal"},
    {NT_OK, 500, "internal"},
};

START_TEST(each_status_has_one_http_status_and_code)
{
    unsigned status = reply_status(status_cases[_i].st);
    ck_assert_uint_eq(status, status_cases[_i].status);
    ck_assert_str_eq(reply_code(status), status_cases[_i].code);
}
END_TEST

START_TEST(codes_of_the_refusals_http_makes_itself)
{
    ck_assert_str_eq(reply_code(401), "unauthorized");
    ck_assert_str_eq(reply_code(403), "forbidden");
    ck_assert_str_eq(reply_code(405), "method_not_allowed");
    ck_assert_str_eq(reply_code(415), "unsupported_media_type");
    ck_assert_str_eq(reply_code(418), "internal");
}
END_TEST

START_TEST(a_failure_body_names_code_and_message)
{
    reply r = {0};
    reply_fail(&r, NT_ERR_INVALID, "limit must be an integer");
    ck_assert_uint_eq(r.status, 400);
    ck_assert_str_eq(json_string_value(json_object_get(r.json, "error")), "bad_request");
    ck_assert_str_eq(json_string_value(json_object_get(r.json, "message")),
                     "limit must be an integer");
    ck_assert_uint_eq(json_object_size(r.json), 2);
    /* a second error replaces the first body (no leak: ASan checks) */
    reply_error(&r, 409, "conflict", "id %s exists", "x");
    ck_assert_uint_eq(r.status, 409);
    ck_assert_str_eq(json_string_value(json_object_get(r.json, "message")), "id x exists");
    reply_clear(&r);
    ck_assert_ptr_null(r.json);
    reply_clear(&r);
    reply_clear(NULL);
}
END_TEST

START_TEST(a_store_failure_hides_its_detail)
{
    reply r = {0};
    reply_fail(&r, NT_ERR_STORE, "redis 10.0.0.7:6379: NOAUTH Authentication required");
    ck_assert_uint_eq(r.status, 503);
    ck_assert_str_eq(json_string_value(json_object_get(r.json, "error")), "store_unavailable");
    const char *msg = json_string_value(json_object_get(r.json, "message"));
    ck_assert_str_eq(msg, "state store unavailable; retry later");
    reply_clear(&r);
}
END_TEST

/* ---- api_handle on requests it refuses before Redis ------------------------ */

typedef struct query_table {
    json_t *pairs; /* [[key, value|null], …] */
} query_table;

static const char *table_value(void *ctx, const char *key)
{
    query_table *q = ctx;
    size_t i;
    json_t *kv;
    json_array_foreach(q->pairs, i, kv)
    {
        if (strcmp(json_string_value(json_array_get(kv, 0)), key) == 0)
            return json_string_value(json_array_get(kv, 1)); /* NULL for null */
    }
    return NULL;
}

static void table_keys(void *ctx, int (*fn)(void *arg, const char *key), void *arg)
{
    query_table *q = ctx;
    size_t i;
    json_t *kv;
    json_array_foreach(q->pairs, i, kv)
    {
        if (!fn(arg, json_string_value(json_array_get(kv, 0)))) return;
    }
}

static json_t *refusals;

START_TEST(requests_refused_before_redis)
{
    json_t *c = json_array_get(json_object_get(refusals, "cases"), (size_t)_i);
    const char *method = json_string_value(json_object_get(c, "method"));
    const char *path = json_string_value(json_object_get(c, "path"));
    const char *body = json_string_value(json_object_get(c, "body"));
    json_t *empty = json_array();
    query_table q = {.pairs = json_object_get(c, "query") ? json_object_get(c, "query") : empty};
    api_request req = {.method = method,
                       .path = path,
                       .body = body ? body : "",
                       .body_len = body ? strlen(body) : 0,
                       .can_write = 1,
                       .query = table_value,
                       .query_keys = table_keys,
                       .query_ctx = &q};
    server s = {0}; /* no pool: reaching Redis would block */
    reply r = {0};
    api_handle(&s, &req, &r);
    char what[300];
    tu_path(what, sizeof what, "case %d: %s %s", _i, method, path);
    ck_assert_msg(r.status == json_integer_value(json_object_get(c, "status")), "%s: status %u",
                  what, r.status);
    ck_assert_msg(json_is_object(r.json), "%s: no JSON body", what);
    const char *err = json_string_value(json_object_get(r.json, "error"));
    const char *msg = json_string_value(json_object_get(r.json, "message"));
    ck_assert_msg(err && strcmp(err, reply_code(r.status)) == 0, "%s: error %s", what, err);
    const char *want_err = json_string_value(json_object_get(c, "error"));
    if (want_err) ck_assert_str_eq(err, want_err);
    const char *want_msg = json_string_value(json_object_get(c, "message"));
    if (want_msg) ck_assert_msg(msg && strcmp(msg, want_msg) == 0, "%s: message %s", what, msg);
    const char *prefix = json_string_value(json_object_get(c, "message_prefix"));
    if (prefix)
        ck_assert_msg(msg && strncmp(msg, prefix, strlen(prefix)) == 0, "%s: message %s", what,
                      msg);
    const char *allow = json_string_value(json_object_get(c, "allow"));
    if (allow)
        ck_assert_msg(r.allow && strcmp(r.allow, allow) == 0, "%s: Allow %s", what, r.allow);
    else
        ck_assert_msg(r.allow == NULL || r.status == 405, "%s: Allow without 405", what);
    reply_clear(&r);
    json_decref(empty);
}
END_TEST

static Suite *api_suite(void)
{
    refusals = tu_load_json(NT_TEST_DATA "/api/refusals.json", 0);
    Suite *s = suite_create("api");
    TCase *tc = tcase_create("api");
    tcase_add_loop_test(tc, each_status_has_one_http_status_and_code, 0,
                        (int)(sizeof status_cases / sizeof status_cases[0]));
    tcase_add_test(tc, codes_of_the_refusals_http_makes_itself);
    tcase_add_test(tc, a_failure_body_names_code_and_message);
    tcase_add_test(tc, a_store_failure_hides_its_detail);
    tcase_add_loop_test(tc, requests_refused_before_redis, 0,
                        (int)json_array_size(json_object_get(refusals, "cases")));
    suite_add_tcase(s, tc);
    return s;
}

static void api_teardown(void)
{
    json_decref(refusals);
}

NT_TEST_MAIN_TEARDOWN(api_suite, api_teardown)

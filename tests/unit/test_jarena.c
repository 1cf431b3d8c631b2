/* jarena: jansson trees built inside a scope come from chunks, outlive the
 * scope, may be freed on another thread, and chunks are reused. */
#include "jarena.h"
#include "jfast.h"
#include "testutil.h"

#include <check.h>
#include <jansson.h>
#include <pthread.h>
#include <string.h>

static const char RECORD[] =
    "{\"eventVersion\":\"1.08\",\"userIdentity\":{\"type\":\"IAMUser\",\"arn\":"
    "\"arn:aws:iam::111122223333:user/alice\",\"accountId\":\"111122223333\",\"userName\":"
    "\"alice\"},\"eventTime\":\"2026-12-01T10:00:00Z\",\"eventSource\":"
    "\"organizations.amazonaws.com\",\"eventName\":\"ListAccounts\",\"awsRegion\":\"us-east-1\","
    "\"sourceIPAddress\":\"203.0.113.9\",\"requestParameters\":null,\"responseElements\":null,"
    "\"readOnly\":true,\"resources\":[{\"arn\":\"a\"},{\"arn\":\"b\"}],\"n\":12,\"r\":1.5}";

static json_t *parse(void)
{
    json_error_t e;
    json_t *v = jfast_loadb(RECORD, sizeof RECORD - 1, 0, &e);
    ck_assert_ptr_nonnull(v);
    return v;
}

START_TEST(a_parsed_record_comes_from_chunks_and_equals_janssons)
{
    if (!jarena_install()) return; /* compiled out (sanitizer build) */
    unsigned long before = jarena_blocks_total();
    json_t *v = parse();
    ck_assert_uint_gt(jarena_blocks_total(), before + 20);
    json_error_t e;
    json_t *ref = json_loadb(RECORD, sizeof RECORD - 1, 0, &e); /* outside a scope: malloc */
    ck_assert_ptr_nonnull(ref);
    ck_assert(json_equal(v, ref));
    /* values built outside a scope and added to a chunk tree mix freely */
    ck_assert_int_eq(json_object_set_new(v, "added", json_string("x")), 0);
    ck_assert_int_eq(json_object_set(ref, "sub", json_object_get(v, "userIdentity")), 0);
    json_decref(v); /* userIdentity lives on inside ref */
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(ref, "sub"), "userName")),
                     "alice");
    json_decref(ref);
}
END_TEST

START_TEST(chunks_are_reused_once_their_trees_are_freed)
{
    if (!jarena_install()) return;
    /* warm: the thread's first chunks */
    for (int i = 0; i < 200; i++)
        json_decref(parse());
    unsigned long chunks = jarena_chunks_total();
    for (int i = 0; i < 5000; i++)
        json_decref(parse());
    /* 5000 trees of a few KB each: without reuse that is hundreds of chunks */
    ck_assert_uint_le(jarena_chunks_total(), chunks + 2);
}
END_TEST

static void *free_there(void *arg)
{
    json_decref(arg);
    return NULL;
}

static void *parse_there(void *arg)
{
    json_t **out = arg;
    for (int i = 0; i < 100; i++)
        json_decref(parse());
    *out = parse();
    return NULL; /* the thread ends holding chunks: they go to the shared list */
}

START_TEST(trees_cross_threads_both_ways)
{
    if (!jarena_install()) return;
    json_t *v = parse();
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, free_there, v), 0);
    ck_assert_int_eq(pthread_join(th, NULL), 0);
    json_t *w = NULL;
    ck_assert_int_eq(pthread_create(&th, NULL, parse_there, &w), 0);
    ck_assert_int_eq(pthread_join(th, NULL), 0);
    ck_assert_ptr_nonnull(w);
    ck_assert_str_eq(json_string_value(json_object_get(w, "eventName")), "ListAccounts");
    json_decref(w);
    /* and the chunks that thread left are taken again here */
    unsigned long chunks = jarena_chunks_total();
    for (int i = 0; i < 2000; i++)
        json_decref(parse());
    ck_assert_uint_le(jarena_chunks_total(), chunks + 2);
}
END_TEST

START_TEST(large_values_and_nested_scopes)
{
    if (!jarena_install()) return;
    static char big[20000];
    memset(big, 'a', sizeof big);
    big[0] = '"';
    big[sizeof big - 1] = '"';
    int outer = jarena_begin();
    int inner = jarena_begin();
    json_t *s = json_stringn(big + 1, sizeof big - 2); /* larger than a chunk block: malloc */
    jarena_end(inner);
    json_t *o = json_object(); /* still inside the outer scope */
    jarena_end(outer);
    ck_assert_ptr_nonnull(s);
    ck_assert_ptr_nonnull(o);
    ck_assert_int_eq(json_object_set_new(o, "s", s), 0);
    ck_assert_uint_eq(json_string_length(json_object_get(o, "s")), sizeof big - 2);
    json_decref(o);
    jarena_end(0); /* a token from an uninstalled arena ends nothing */
}
END_TEST

static Suite *jarena_suite(void)
{
    Suite *s = suite_create("jarena");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, a_parsed_record_comes_from_chunks_and_equals_janssons);
    tcase_add_test(tc, chunks_are_reused_once_their_trees_are_freed);
    tcase_add_test(tc, trees_cross_threads_both_ways);
    tcase_add_test(tc, large_values_and_nested_scopes);
    suite_add_tcase(s, tc);
    return s;
}

NT_TEST_MAIN(jarena_suite)

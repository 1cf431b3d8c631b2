/*
 * test_jsonout.c — nt_json_dumps writes json_dumps(v, JSON_COMPACT)'s bytes.
 */
#include "jsonout.h"
#include "testutil.h"

#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void same_as_jansson(json_t *v)
{
    char *want = json_dumps(v, JSON_COMPACT);
    char *got = nt_json_dumps(v);
    ck_assert_ptr_nonnull(want);
    ck_assert_ptr_nonnull(got);
    ck_assert_str_eq(got, want);
    free(want);
    free(got);
}

static const char *const docs[] = {
    "{}",
    "[]",
    "{\"a\":{},\"b\":[],\"c\":[{}],\"d\":null,\"e\":true,\"f\":false}",
    "{\"n\":0,\"m\":-9223372036854775808,\"x\":9223372036854775807}",
    "{\"r\":1.5,\"e\":1e300,\"z\":-0.0}",
    "{\"s\":\"quote \\\" backslash \\\\ slash / \\b\\f\\n\\r\\t \\u0001 \\u001f \\u007f\"}",
    "{\"u\":\"caf\\u00e9 \\u2028 \\ud83d\\ude00 \\u0000 tail\"}",
    "{\"k\\\"ey\\n\":\"v\",\"\":\"\"}",
    "[1,[2,[3,[4,{\"deep\":[\"x\"]}]]]]",
    "{\"z\":1,\"a\":2,\"m\":3}", /* insertion order, not sorted */
};

START_TEST(writes_the_same_bytes_as_json_dumps)
{
    json_error_t e;
    json_t *v = json_loads(docs[_i], JSON_ALLOW_NUL, &e);
    ck_assert_msg(v != NULL, "%s: %s", docs[_i], e.text);
    same_as_jansson(v);
    json_decref(v);
}
END_TEST

START_TEST(every_byte_in_a_string)
{
    char s[128];
    json_t *o = json_object();
    for (int c = 1; c < 128; c++)
        s[c - 1] = (char)c;
    json_object_set_new(o, "all", json_stringn(s, 127));
    json_object_set_new(o, "nul", json_stringn("a\0b", 3));
    same_as_jansson(o);
    json_decref(o);
}
END_TEST

START_TEST(a_scalar_root_is_refused_like_json_dumps)
{
    json_t *v = json_integer(5);
    ck_assert_ptr_null(nt_json_dumps(v));
    ck_assert_ptr_null(json_dumps(v, JSON_COMPACT));
    json_decref(v);
}
END_TEST

static Suite *jsonout_suite(void)
{
    Suite *s = suite_create("jsonout");
    TCase *tc = tcase_create("core");
    tcase_add_loop_test(tc, writes_the_same_bytes_as_json_dumps, 0,
                        (int)(sizeof docs / sizeof docs[0]));
    tcase_add_test(tc, every_byte_in_a_string);
    tcase_add_test(tc, a_scalar_root_is_refused_like_json_dumps);
    suite_add_tcase(s, tc);
    return s;
}

NT_TEST_MAIN(jsonout_suite)

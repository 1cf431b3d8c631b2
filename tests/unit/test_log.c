/* Unit tests for log.c: line shape, levels, escaping, redaction, threads. */
#include "log.h"

#include "common.h"
#include "testutil.h"

#include <check.h>
#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define TS 1795843752123LL /* 2026-11-28T05:29:12.123Z */

/* Format one line and parse it back; the line must be exactly one JSON object
 * followed by one newline. Caller decrefs. */
static json_t *line_json(char *line)
{
    ck_assert_ptr_nonnull(line);
    size_t n = strlen(line);
    ck_assert_uint_gt(n, 1);
    ck_assert_int_eq(line[n - 1], '\n');
    ck_assert_ptr_null(memchr(line, '\n', n - 1));
    json_error_t e;
    json_t *j = json_loadb(line, n - 1, 0, &e);
    if (!j) ck_abort_msg("not JSON (%s): %s", e.text, line);
    ck_assert(json_is_object(j));
    return j;
}

static void teardown(void)
{
    log_reset_secrets();
    log_set_output(NULL);
    log_set_level(NT_LOG_INFO);
}

START_TEST(a_line_has_ts_level_event_and_msg_first_then_the_fields)
{
    char *line =
        log_format_line(TS, NT_LOG_WARN, "delivery", "hello",
                        json_pack("{s:i,s:s,s:b}", "records", 3, "route", "firehose", "ok", 1));
    ck_assert_str_eq(line, "{\"ts\":\"2026-11-28T05:29:12.123Z\",\"level\":\"warn\",\"event\":"
                           "\"delivery\",\"msg\":\"hello\",\"records\":3,\"route\":\"firehose\","
                           "\"ok\":true}\n");
    json_decref(line_json(line));
    free(line);
}
END_TEST

START_TEST(fields_cannot_override_the_envelope)
{
    char *line = log_format_line(TS, NT_LOG_INFO, "e", "m",
                                 json_pack("{s:s,s:s,s:s,s:s,s:i}", "ts", "x", "level", "debug",
                                           "event", "y", "msg", "z", "n", 1));
    json_t *j = line_json(line);
    ck_assert_str_eq(json_string_value(json_object_get(j, "level")), "info");
    ck_assert_str_eq(json_string_value(json_object_get(j, "msg")), "m");
    ck_assert_str_eq(json_string_value(json_object_get(j, "event")), "e");
    ck_assert_str_eq(json_string_value(json_object_get(j, "ts")), "2026-11-28T05:29:12.123Z");
    ck_assert_int_eq(json_object_size(j), 5);
    json_decref(j);
    free(line);
}
END_TEST

START_TEST(null_event_msg_and_non_object_fields_still_give_a_valid_line)
{
    char *line = log_format_line(TS, NT_LOG_ERROR, NULL, NULL, json_string("not an object"));
    json_t *j = line_json(line);
    ck_assert_str_eq(json_string_value(json_object_get(j, "event")), "");
    ck_assert_str_eq(json_string_value(json_object_get(j, "msg")), "");
    ck_assert_int_eq(json_object_size(j), 4);
    json_decref(j);
    free(line);
}
END_TEST

START_TEST(numbers_nested_values_and_non_finite_reals_are_written_as_json)
{
    json_t *f = json_pack("{s:f,s:f,s:I,s:[i,s,n,{s:f}],s:n}", "a", 0.1, "b", 1e300, "c",
                          (json_int_t)-9007199254740993LL, "d", 1, "x", "k", 2.5, "e");
    char *line = log_format_line(TS, NT_LOG_INFO, "e", "m", f);
    ck_assert_ptr_nonnull(strstr(line, "\"a\":0.1,"));
    ck_assert_ptr_nonnull(strstr(line, "\"c\":-9007199254740993,"));
    ck_assert_ptr_nonnull(strstr(line, "\"d\":[1,\"x\",null,{\"k\":2.5}]"));
    json_t *j = line_json(line);
    ck_assert(json_real_value(json_object_get(j, "b")) == 1e300);
    json_decref(j);
    free(line);
}
END_TEST

START_TEST(nesting_beyond_the_depth_cap_is_cut_not_crashed)
{
    json_t *root = json_object(), *cur = root;
    for (int i = 0; i < 200; i++) {
        json_t *next = json_object();
        json_object_set_new(cur, "n", next);
        cur = next;
    }
    char *line = log_format_line(TS, NT_LOG_INFO, "e", "m", root);
    ck_assert_ptr_nonnull(strstr(line, "[too deep]"));
    json_decref(line_json(line));
    free(line);
}
END_TEST

/* ---- escaping: (input bytes, the string the JSON must decode to) ---------- */
static const struct {
    const char *in;
    size_t len;
    const char *decoded; /* what jansson reads back */
} esc_cases[] = {
    {"plain", 5, "plain"},
    {"q\"b\\s/", 6, "q\"b\\s/"},
    {"a\nb\rc\td\be\ff", 11, "a\nb\rc\td\be\ff"},
    {"\x01\x1f\x7f", 3, "\x01\x1f\x7f"},
    {"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 14, "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"},
    {"bad\xff", 4, "bad\xc3\xbf"},                               /* 0xff -> \u00ff */
    {"\xc0\x80", 2, "\xc3\x80\xc2\x80"},                         /* overlong NUL */
    {"\xed\xa0\x80", 3, "\xc3\xad\xc2\xa0\xc2\x80"},             /* surrogate */
    {"\xe2\x82", 2, "\xc3\xa2\xc2\x82"},                         /* truncated sequence */
    {"\xf4\x90\x80\x80", 4, "\xc3\xb4\xc2\x90\xc2\x80\xc2\x80"}, /* > U+10FFFF */
    {"nul\0x", 5, "nul\0x"},
};

START_TEST(every_byte_string_is_escaped_into_valid_json)
{
    json_t *f = json_object();
    json_object_set_new(f, "v", json_stringn_nocheck(esc_cases[_i].in, esc_cases[_i].len));
    char *line = log_format_line(TS, NT_LOG_INFO, "e", "m", f);
    json_error_t e;
    json_t *j = json_loads(line, JSON_ALLOW_NUL, &e);
    if (!j) ck_abort_msg("case %d not JSON (%s): %s", _i, e.text, line);
    json_t *v = json_object_get(j, "v");
    size_t want = strlen(esc_cases[_i].decoded);
    if (_i == 10) want = 5; /* embedded NUL */
    ck_assert_uint_eq(json_string_length(v), want);
    ck_assert(memcmp(json_string_value(v), esc_cases[_i].decoded, want) == 0);
    json_decref(j);
    free(line);
}
END_TEST

START_TEST(invalid_utf8_in_messages_and_keys_keeps_the_line_valid)
{
    json_t *f = json_object();
    json_object_set_new_nocheck(f, "k\xfe", json_true());
    char *line = log_format_line(TS, NT_LOG_INFO, "ev\x80", "m\xff\xfe", f);
    ck_assert_ptr_nonnull(strstr(line, "\"msg\":\"m\\u00ff\\u00fe\""));
    ck_assert_ptr_nonnull(strstr(line, "\"k\\u00fe\":true"));
    json_decref(line_json(line));
    free(line);
}
END_TEST

/* ---- levels ------------------------------------------------------------------ */
static const struct {
    const char *text;
    int ok;
    log_level want;
} level_cases[] = {
    {"debug", 1, NT_LOG_DEBUG}, {"info", 1, NT_LOG_INFO},    {"warn", 1, NT_LOG_WARN},
    {"error", 1, NT_LOG_ERROR}, {"WARNING", 1, NT_LOG_WARN}, {"Info", 1, NT_LOG_INFO},
    {"", 0, NT_LOG_INFO},       {"verbose", 0, NT_LOG_INFO}, {"infox", 0, NT_LOG_INFO},
};

START_TEST(level_names_parse_case_insensitively)
{
    log_level l = NT_LOG_ERROR;
    nt_err err = {{0}};
    nt_status st = log_level_parse(level_cases[_i].text, &l, &err);
    ck_assert_int_eq(st, level_cases[_i].ok ? NT_OK : NT_ERR_INVALID);
    if (level_cases[_i].ok) {
        ck_assert_int_eq(l, level_cases[_i].want);
        ck_assert_int_eq(log_level_parse(log_level_name(l), &l, NULL), NT_OK);
    } else {
        ck_assert_msg(strstr(err.msg, "is not a log level (debug, info, warn or error)") != NULL,
                      "%s", err.msg);
    }
    ck_assert_int_eq(log_level_parse(NULL, &l, NULL), NT_ERR_INVALID);
}
END_TEST

/* Read everything written to f since it was created. Caller frees. */
static char *slurp(FILE *f)
{
    fflush(f);
    long n = ftell(f);
    ck_assert_int_ge(n, 0);
    char *buf = malloc((size_t)n + 1);
    rewind(f);
    ck_assert_uint_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = 0;
    return buf;
}

START_TEST(lines_below_the_level_are_dropped_and_their_fields_freed)
{
    FILE *f = tmpfile();
    log_set_output(f);
    log_set_level(NT_LOG_WARN);
    ck_assert_int_eq(log_get_level(), NT_LOG_WARN);
    log_msg(NT_LOG_INFO, "quiet", "not written %d", 1);
    log_json(NT_LOG_DEBUG, "quiet", "not written",
             json_pack("{s:s}", "a", "b")); /* ASan: no leak */
    log_msg(NT_LOG_ERROR, "loud", "written %d", 2);
    char *out = slurp(f);
    ck_assert_ptr_null(strstr(out, "quiet"));
    json_t *j = line_json(out);
    ck_assert_str_eq(json_string_value(json_object_get(j, "msg")), "written 2");
    ck_assert_str_eq(json_string_value(json_object_get(j, "level")), "error");
    nt_time_ms t;
    const char *ts = json_string_value(json_object_get(j, "ts"));
    ck_assert_int_eq(nt_time_parse(ts, strlen(ts), &t, NULL), NT_OK);
    ck_assert_int_lt(llabs(t - nt_now_ms()), 60000);
    json_decref(j);
    free(out);
    fclose(f);
}
END_TEST

START_TEST(a_long_printf_message_is_written_whole)
{
    FILE *f = tmpfile();
    log_set_output(f);
    char big[5000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = 0;
    log_msg(NT_LOG_INFO, "big", "<%s>", big);
    char *out = slurp(f);
    json_t *j = line_json(out);
    ck_assert_uint_eq(strlen(json_string_value(json_object_get(j, "msg"))), 5001);
    json_decref(j);
    free(out);
    fclose(f);
}
END_TEST

/* ---- redaction ---------------------------------------------------------------- */
static const struct {
    const char *secrets[3];
    const char *text;
    const char *want;
} redact_cases[] = {
    {{"s3cr3t-key"}, "key=s3cr3t-key!", "key=[REDACTED]!"},
    {{"s3cr3t-key"}, "s3cr3t-keys3cr3t-key", "[REDACTED]"},
    {{"s3cr3t-key"}, "s3cr3t-ke", "s3cr3t-ke"},
    {{"abcd", "cdef"}, "xabcdefx", "x[REDACTED]x"}, /* overlapping secrets */
    {{"aaaa"}, "aaaaaa", "[REDACTED]"},             /* overlapping occurrences */
    {{"tok1", "tok2"}, "Bearer tok1, Basic tok2", "Bearer [REDACTED], Basic [REDACTED]"},
    {{"abc"}, "abc is too short to redact", "abc is too short to redact"},
    {{"p\"w\\d"}, "pass p\"w\\d", "pass [REDACTED]"},
};

static void add_case_secrets(int i)
{
    for (int k = 0; k < 3 && redact_cases[i].secrets[k]; k++)
        log_add_secret(redact_cases[i].secrets[k]);
}

START_TEST(secrets_in_the_message_are_redacted)
{
    add_case_secrets(_i);
    char *line = log_format_line(TS, NT_LOG_INFO, "e", redact_cases[_i].text, NULL);
    json_t *j = line_json(line);
    ck_assert_str_eq(json_string_value(json_object_get(j, "msg")), redact_cases[_i].want);
    json_decref(j);
    free(line);
}
END_TEST

START_TEST(secrets_in_field_values_and_keys_at_any_depth_are_redacted)
{
    add_case_secrets(_i);
    const char *t = redact_cases[_i].text;
    json_t *f = json_pack("{s:s,s:{s:[s,i]}}", "top", t, "nested", "list", t, 1);
    json_object_set_new(f, t, json_string("key holds it"));
    char *line = log_format_line(TS, NT_LOG_INFO, t, "m", f);
    json_t *j = line_json(line);
    const char *want = redact_cases[_i].want;
    ck_assert_str_eq(json_string_value(json_object_get(j, "top")), want);
    ck_assert_str_eq(json_string_value(json_object_get(j, "event")), want);
    json_t *arr = json_object_get(json_object_get(j, "nested"), "list");
    ck_assert_str_eq(json_string_value(json_array_get(arr, 0)), want);
    ck_assert_ptr_nonnull(json_object_get(j, want));
    json_decref(j);
    free(line);
}
END_TEST

START_TEST(a_secret_passed_through_log_msg_and_log_json_never_reaches_the_output)
{
    const char *secret = "AKIA-very-secret-firehose-key";
    FILE *f = tmpfile();
    log_set_output(f);
    log_add_secret(secret);
    log_add_secret(secret); /* duplicates are harmless */
    log_msg(NT_LOG_WARN, "auth", "wrong key %s from %s", secret, "1.2.3.4");
    log_json(NT_LOG_INFO, "auth", secret,
             json_pack("{s:s,s:[s]}", "header", secret, "all", secret));
    char *out = slurp(f);
    ck_assert_ptr_null(strstr(out, secret));
    ck_assert_ptr_null(strstr(out, "very-secret"));
    ck_assert_ptr_nonnull(strstr(out, "wrong key [REDACTED] from 1.2.3.4"));
    log_reset_secrets();
    log_msg(NT_LOG_INFO, "after", "%s", secret); /* forgotten secrets are no longer redacted */
    free(out);
    out = slurp(f);
    ck_assert_ptr_nonnull(strstr(out, secret));
    free(out);
    fclose(f);
}
END_TEST

START_TEST(a_secret_in_a_long_value_is_redacted_too)
{
    log_add_secret("needle-secret");
    char *big = malloc(100001);
    memset(big, 'y', 100000);
    big[100000] = 0;
    memcpy(big + 50000, "needle-secret", 13);
    memcpy(big + 99987, "needle-secret", 13);
    char *line = log_format_line(TS, NT_LOG_INFO, "e", big, NULL);
    ck_assert_ptr_null(strstr(line, "needle"));
    json_t *j = line_json(line);
    ck_assert_uint_eq(strlen(json_string_value(json_object_get(j, "msg"))),
                      100000 - 26 + 2 * strlen("[REDACTED]"));
    json_decref(j);
    free(line);
    free(big);
}
END_TEST

/* ---- threads ------------------------------------------------------------------ */
#define THREADS 4
#define PER_THREAD 2000

static void *writer(void *arg)
{
    long id = (long)arg;
    for (int i = 0; i < PER_THREAD; i++)
        log_json(NT_LOG_INFO, "t", "concurrent line with some padding to make it longer",
                 json_pack("{s:i,s:i}", "thread", (int)id, "i", i));
    return NULL;
}

START_TEST(lines_from_many_threads_never_interleave)
{
    FILE *f = tmpfile();
    log_set_output(f);
    pthread_t th[THREADS];
    for (long i = 0; i < THREADS; i++)
        pthread_create(&th[i], NULL, writer, (void *)i);
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    char *out = slurp(f);
    int count = 0, seen[THREADS] = {0};
    for (char *save = NULL, *l = strtok_r(out, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        json_error_t e;
        json_t *j = json_loads(l, 0, &e);
        if (!j) ck_abort_msg("line %d is not JSON: %s", count, l);
        int t = (int)json_integer_value(json_object_get(j, "thread"));
        ck_assert_int_eq(json_integer_value(json_object_get(j, "i")), seen[t]++);
        json_decref(j);
        count++;
    }
    ck_assert_int_eq(count, (long)THREADS * PER_THREAD);
    free(out);
    fclose(f);
}
END_TEST

static Suite *log_suite(void)
{
    Suite *s = suite_create("log");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, a_line_has_ts_level_event_and_msg_first_then_the_fields);
    tcase_add_test(tc, fields_cannot_override_the_envelope);
    tcase_add_test(tc, null_event_msg_and_non_object_fields_still_give_a_valid_line);
    tcase_add_test(tc, numbers_nested_values_and_non_finite_reals_are_written_as_json);
    tcase_add_test(tc, nesting_beyond_the_depth_cap_is_cut_not_crashed);
    tcase_add_loop_test(tc, every_byte_string_is_escaped_into_valid_json, 0,
                        sizeof esc_cases / sizeof esc_cases[0]);
    tcase_add_test(tc, invalid_utf8_in_messages_and_keys_keeps_the_line_valid);
    tcase_add_loop_test(tc, level_names_parse_case_insensitively, 0,
                        sizeof level_cases / sizeof level_cases[0]);
    tcase_add_test(tc, lines_below_the_level_are_dropped_and_their_fields_freed);
    tcase_add_test(tc, a_long_printf_message_is_written_whole);
    tcase_add_loop_test(tc, secrets_in_the_message_are_redacted, 0,
                        sizeof redact_cases / sizeof redact_cases[0]);
    tcase_add_loop_test(tc, secrets_in_field_values_and_keys_at_any_depth_are_redacted, 0,
                        sizeof redact_cases / sizeof redact_cases[0]);
    tcase_add_test(tc, a_secret_passed_through_log_msg_and_log_json_never_reaches_the_output);
    tcase_add_test(tc, a_secret_in_a_long_value_is_redacted_too);
    tcase_add_test(tc, lines_from_many_threads_never_interleave);
    suite_add_tcase(s, tc);
    return s;
}

NT_TEST_MAIN(log_suite)

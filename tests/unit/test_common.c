/* Unit tests for common.c (time, durations, constant-time compare) and glob.c. */
#include "common.h"
#include "glob.h"
#include "testutil.h"

#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const struct {
    const char *text;
    nt_time_ms want;
} time_cases[] = {
    {"1970-01-01T00:00:00Z", 0},
    {"2026-11-28T05:29:12Z", 1795843752000},
    {"2026-11-28T05:29:12.123Z", 1795843752123},
    {"2026-11-28T06:29:12.5+01:00", 1795843752500},
    {"2026-11-28T04:59:12-00:30", 1795843752000},
    {"2024-02-29T00:00:00Z", 1709164800000},
    {"2026-11-28", 1795824000000},
    {"2000-02-29T00:00:00Z", 951782400000},
    {"1960-01-01T00:00:00Z", -315619200000},
};

START_TEST(rfc3339_dates_parse_to_epoch_milliseconds)
{
    nt_time_ms t;
    nt_err err;
    ck_assert_int_eq(nt_time_parse(time_cases[_i].text, strlen(time_cases[_i].text), &t, &err),
                     NT_OK);
    ck_assert_int_eq(t, time_cases[_i].want);
}
END_TEST

static const char *bad_times[] = {"", "2026-13-01T00:00:00Z", "2026-11-28T05:29:12",
                                  "2026-11-28T25:00:00Z", "yesterday", "2026-11-28T05:29:12.Z",
                                  "2026-11-28T05:29:12Zjunk",
                                  /* days a month does not have */
                                  "2024-02-30T00:00:00Z", "2023-02-29T00:00:00Z", "1900-02-29",
                                  "2026-04-31T00:00:00Z", "2026-06-31"};

START_TEST(malformed_dates_are_refused_with_a_message)
{
    nt_time_ms t;
    nt_err err = {{0}};
    ck_assert_int_eq(nt_time_parse(bad_times[_i], strlen(bad_times[_i]), &t, &err), NT_ERR_PARSE);
    ck_assert_ptr_nonnull(strstr(err.msg, "RFC 3339"));
}
END_TEST

START_TEST(formatting_round_trips)
{
    char buf[NT_TIME_BUF];
    ck_assert_str_eq(nt_time_format(1795843752123, buf), "2026-11-28T05:29:12.123Z");
    ck_assert_str_eq(nt_time_format(0, buf), "1970-01-01T00:00:00.000Z");
    nt_time_ms t;
    ck_assert_int_eq(nt_time_parse(buf, strlen(buf), &t, NULL), NT_OK);
    ck_assert_int_eq(t, 0);
}
END_TEST

START_TEST(durations_parse)
{
    nt_time_ms d;
    ck_assert_int_eq(nt_duration_parse("10d", 3, &d, NULL), NT_OK);
    ck_assert_int_eq(d, 10LL * 86400 * 1000);
    ck_assert_int_eq(nt_duration_parse("6m", 2, &d, NULL), NT_OK);
    ck_assert_int_eq(d, 360000);
    ck_assert_int_eq(nt_duration_parse("d", 1, &d, NULL), NT_ERR_PARSE);
    ck_assert_int_eq(nt_duration_parse("10x", 3, &d, NULL), NT_ERR_PARSE);
    ck_assert_int_eq(nt_duration_parse("10", 2, &d, NULL), NT_ERR_PARSE);
}
END_TEST

START_TEST(secret_compare_is_exact)
{
    ck_assert(nt_secret_equal("abc", 3, "abc", 3));
    ck_assert(!nt_secret_equal("abc", 3, "abd", 3));
    ck_assert(!nt_secret_equal("abc", 3, "abcd", 4));
    ck_assert(!nt_secret_equal("", 0, "a", 1));
    ck_assert(nt_secret_equal("", 0, "", 0));
}
END_TEST

static const struct {
    const char *pattern, *text;
    int want;
} glob_cases[] = {
    {"abc", "abc", 1},
    {"abc", "abcd", 0},
    {"ab*", "abcd", 1},
    {"ab*", "xabcd", 0},
    {"*cd", "abcd", 1},
    {"*Terraform*", "x Terraform y", 1},
    {"*Terraform*", "terraform", 0},
    {"*", "", 1},
    {"*", "anything", 1},
    {"*role/AgentCore-*", "arn:aws:iam::1:role/AgentCore-x", 1},
    {"a*b*c", "aXXbYYc", 1},
    {"a*b*c", "aXXbYY", 0},
    {"a?c", "abc", 1},
    {"a?c", "ac", 0},
    {"a?c",
     "a\xc3\xa9"
     "c",
     1},
    {"a\\*c", "a*c", 1},
    {"a\\*c", "abc", 0},
    {"a\\?c", "abc", 0},
    {"**x**", "yxy", 1},
    {"*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaac", 0},
};

START_TEST(wildcards_match_case_sensitively)
{
    nt_glob g;
    ck_assert_int_eq(
        nt_glob_compile(&g, glob_cases[_i].pattern, strlen(glob_cases[_i].pattern), NULL), NT_OK);
    ck_assert_msg(nt_glob_match(&g, glob_cases[_i].text, strlen(glob_cases[_i].text)) ==
                      glob_cases[_i].want,
                  "pattern %s text %s", glob_cases[_i].pattern, glob_cases[_i].text);
    nt_glob_free(&g);
}
END_TEST

/* Exhaustive reference: any way of matching, with the same `?` rule (one
 * UTF-8 sequence, or one byte when the sequence is cut by the end). */
static size_t ref_utf8_len(unsigned char c)
{
    return c >= 0xF0 && c < 0xF8 ? 4 : c >= 0xE0 && c < 0xF0 ? 3 : c >= 0xC0 && c < 0xE0 ? 2 : 1;
}

static int ref_match(const char *p, size_t pn, const unsigned char *t, size_t tn)
{
    if (pn == 0) return tn == 0;
    if (p[0] == '*') {
        for (size_t k = 0; k <= tn; k++)
            if (ref_match(p + 1, pn - 1, t + k, tn - k)) return 1;
        return 0;
    }
    if (tn == 0) return 0;
    if (p[0] == '?') {
        size_t l = ref_utf8_len(t[0]);
        if (l > tn) l = 1;
        return ref_match(p + 1, pn - 1, t + l, tn - l);
    }
    return (unsigned char)p[0] == t[0] && ref_match(p + 1, pn - 1, t + 1, tn - 1);
}

START_TEST(the_segment_matcher_agrees_with_exhaustive_backtracking)
{
    static const char pat_alpha[] = {'a', 'b', '*', '?', '*', '\xc3', '\xa9'};
    static const char txt_alpha[] = {'a', 'b', '\xc3', '\xa9', '\xe2'};
    unsigned seed = 12345;
    for (int n = 0; n < 200000; n++) {
        char pat[10], txt[14];
        seed = seed * 1103515245u + 12345u;
        size_t pn = (seed >> 16) % 9, tn = (seed >> 8) % 13;
        for (size_t i = 0; i < pn; i++) {
            seed = seed * 1103515245u + 12345u;
            pat[i] = pat_alpha[(seed >> 16) % sizeof pat_alpha];
        }
        for (size_t i = 0; i < tn; i++) {
            seed = seed * 1103515245u + 12345u;
            txt[i] = txt_alpha[(seed >> 16) % sizeof txt_alpha];
        }
        nt_glob g;
        ck_assert_int_eq(nt_glob_compile(&g, pat, pn, NULL), NT_OK);
        int want = ref_match(pat, pn, (const unsigned char *)txt, tn);
        ck_assert_msg(nt_glob_match(&g, txt, tn) == want, "pattern '%.*s' text '%.*s': want %d",
                      (int)pn, pat, (int)tn, txt, want);
        nt_glob_free(&g);
    }
}
END_TEST

/* Issue 10: `*` + 4000 `a` + `b?` against 1 MB of `a` took 3 s per pattern
 * with the single-backtrack matcher; the anchored tail makes it O(pattern). */
START_TEST(a_long_tail_after_a_star_against_a_long_text_is_fast)
{
    size_t pn = 4003, tn = 1 << 20;
    char *pat = malloc(pn), *txt = malloc(tn);
    ck_assert(pat && txt);
    pat[0] = '*';
    memset(pat + 1, 'a', 4000);
    memcpy(pat + 4001, "b?", 2);
    memset(txt, 'a', tn);
    nt_glob g;
    ck_assert_int_eq(nt_glob_compile(&g, pat, pn, NULL), NT_OK);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < 100; i++)
        ck_assert_int_eq(nt_glob_match(&g, txt, tn), 0);
    memcpy(txt + tn - 4002, pat + 1, 4002); /* now it ends in a…ab? */
    ck_assert_int_eq(nt_glob_match(&g, txt, tn), 1);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    ck_assert_msg(secs < 0.5, "101 matches took %.3f s", secs);
    nt_glob_free(&g);
    free(pat);
    free(txt);
}
END_TEST

START_TEST(wildcard_literal_for_prefilter)
{
    nt_glob g;
    const char *lit;
    size_t len;
    ck_assert_int_eq(nt_glob_compile(&g, "*Terraform*", 11, NULL), NT_OK);
    nt_glob_longest_literal(&g, &lit, &len);
    ck_assert_int_eq(len, 9);
    ck_assert(memcmp(lit, "Terraform", 9) == 0);
    nt_glob_free(&g);
    ck_assert_int_eq(nt_glob_compile(&g, "a*b", 3, NULL), NT_OK);
    nt_glob_longest_literal(&g, &lit, &len);
    ck_assert_int_eq(len, 0);
    nt_glob_free(&g);
    nt_err err;
    ck_assert_int_eq(nt_glob_compile(&g, "ab\\", 3, &err), NT_ERR_PARSE);
}
END_TEST

static const struct {
    const char *bytes;
    size_t n, want;
} utf8_cases[] = {
    {"a", 1, 1},
    {"\xc3\xa9", 2, 2},
    {"\xe2\x82\xac", 3, 3},
    {"\xf0\x9f\x98\x80", 4, 4},
    {"\xc0\xaf", 2, 0},
    {"\xed\xa0\x80", 3, 0},
    {"\xf4\x90\x80\x80", 4, 0},
    {"\xe2\x82", 2, 0},
    {"\x80", 1, 0},
};

START_TEST(utf8_sequences_are_validated_strictly)
{
    ck_assert_uint_eq(
        nt_utf8_seq_len((const unsigned char *)utf8_cases[_i].bytes, utf8_cases[_i].n),
        utf8_cases[_i].want);
}
END_TEST

START_TEST(a_prefix_goes_in_front_of_the_message_already_there)
{
    nt_err err;
    nt_fail(&err, NT_ERR_PARSE, "truncated gzip stream");
    ck_assert_int_eq(nt_err_prefix(&err, NT_ERR_PARSE, "%s", "/var/log/ct.json.gz"), NT_ERR_PARSE);
    ck_assert_str_eq(err.msg, "/var/log/ct.json.gz: truncated gzip stream");
    /* twice: each layer adds its own context, nothing is repeated */
    nt_err_prefix(&err, NT_ERR_PARSE, "file %d", 3);
    ck_assert_str_eq(err.msg, "file 3: /var/log/ct.json.gz: truncated gzip stream");
    /* an empty message gets the context alone, with no dangling ": " */
    err.msg[0] = '\0';
    nt_err_prefix(&err, NT_ERR_IO, "%s", "x");
    ck_assert_str_eq(err.msg, "x");
    ck_assert_int_eq(nt_err_prefix(NULL, NT_ERR_IO, "%s", "x"), NT_ERR_IO);
}
END_TEST

START_TEST(a_long_prefix_is_cut_and_stays_terminated)
{
    nt_err err;
    char longpath[600];
    memset(longpath, 'p', sizeof longpath - 1);
    longpath[sizeof longpath - 1] = '\0';
    nt_fail(&err, NT_ERR_IO, "cannot read");
    nt_err_prefix(&err, NT_ERR_IO, "%s", longpath);
    ck_assert_uint_eq(strlen(err.msg), NT_ERR_MSG_MAX - 1);
    ck_assert_int_eq(err.msg[0], 'p');
    /* a long message after a short prefix keeps the prefix and the start */
    memset(err.msg, 'm', sizeof err.msg - 1);
    err.msg[sizeof err.msg - 1] = '\0';
    nt_err_prefix(&err, NT_ERR_IO, "%s", "ctx");
    ck_assert_uint_eq(strlen(err.msg), NT_ERR_MSG_MAX - 1);
    ck_assert(strncmp(err.msg, "ctx: mmm", 8) == 0);
}
END_TEST

START_TEST(the_first_invalid_utf8_byte_is_found)
{
    static const struct {
        const char *s;
        size_t at;
    } cases[] = {
        {"plain ascii", 11},
        {"caf\xc3\xa9", 5},
        {"\xf0\x9f\x98\x80!", 5},
        {"ab\xc3", 2},
        {"ab\xc0\xaf", 2},
        {"x\xed\xa0\x80", 1},
        {"\xf4\x90\x80\x80", 0},
        {"ok\xe2\x82\xacthen\xff", 9},
        {"", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        ck_assert_msg(nt_utf8_invalid_at((const unsigned char *)cases[i].s, strlen(cases[i].s)) ==
                          cases[i].at,
                      "case %zu", i);
}
END_TEST

START_TEST(hex_digits_of_either_case_and_nothing_else)
{
    ck_assert_int_eq(nt_hex_digit('0'), 0);
    ck_assert_int_eq(nt_hex_digit('9'), 9);
    ck_assert_int_eq(nt_hex_digit('a'), 10);
    ck_assert_int_eq(nt_hex_digit('F'), 15);
    ck_assert_int_eq(nt_hex_digit('g'), -1);
    ck_assert_int_eq(nt_hex_digit('/'), -1);
    ck_assert_int_eq(nt_hex_digit(0), -1);
    ck_assert_int_eq(nt_hex_digit((char)0xC1), -1);
    ck_assert_int_eq(nt_hex_digit(0xC1), -1);
}
END_TEST

START_TEST(a_buffer_grows_stays_terminated_and_fails_once)
{
    nt_buf b = {0};
    for (int i = 0; i < 1000; i++)
        nt_buf_str(&b, "abc");
    nt_buf_char(&b, '!');
    nt_buf_add(&b, "xyz", 0);
    ck_assert_uint_eq(b.len, 3001);
    ck_assert_uint_eq(strlen(b.p), 3001);
    ck_assert_int_eq(b.p[3000], '!');
    ck_assert_int_eq(b.oom, 0);
    /* a request that cannot be met sets oom; later adds do nothing */
    ck_assert_int_eq(nt_buf_reserve(&b, SIZE_MAX - 8), -1);
    ck_assert_int_eq(b.oom, 1);
    nt_buf_str(&b, "more");
    ck_assert_uint_eq(b.len, 3001);
    nt_buf_free(&b);
    ck_assert_ptr_null(b.p);
    nt_buf_free(&b); /* twice is fine */
}
END_TEST

static Suite *common_suite(void)
{
    Suite *s = suite_create("common");
    TCase *tc = tcase_create("core");
    tcase_add_loop_test(tc, rfc3339_dates_parse_to_epoch_milliseconds, 0,
                        sizeof time_cases / sizeof time_cases[0]);
    tcase_add_loop_test(tc, malformed_dates_are_refused_with_a_message, 0,
                        sizeof bad_times / sizeof bad_times[0]);
    tcase_add_test(tc, formatting_round_trips);
    tcase_add_test(tc, a_prefix_goes_in_front_of_the_message_already_there);
    tcase_add_test(tc, a_long_prefix_is_cut_and_stays_terminated);
    tcase_add_test(tc, the_first_invalid_utf8_byte_is_found);
    tcase_add_test(tc, hex_digits_of_either_case_and_nothing_else);
    tcase_add_test(tc, a_buffer_grows_stays_terminated_and_fails_once);
    tcase_add_test(tc, durations_parse);
    tcase_add_test(tc, secret_compare_is_exact);
    tcase_add_loop_test(tc, wildcards_match_case_sensitively, 0,
                        sizeof glob_cases / sizeof glob_cases[0]);
    tcase_add_test(tc, wildcard_literal_for_prefilter);
    tcase_add_test(tc, the_segment_matcher_agrees_with_exhaustive_backtracking);
    tcase_add_test(tc, a_long_tail_after_a_star_against_a_long_text_is_fast);
    tcase_add_loop_test(tc, utf8_sequences_are_validated_strictly, 0,
                        sizeof utf8_cases / sizeof utf8_cases[0]);
    suite_add_tcase(s, tc);
    return s;
}

NT_TEST_MAIN(common_suite)

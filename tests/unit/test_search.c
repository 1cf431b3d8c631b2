/* nt_search must agree with memmem everywhere; nt_has_unicode_escape with a plain scan. */
#include "search.h"
#include "testutil.h"

#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const needles[] = {
    "\"iam.amazonaws.com\"", "\"ListAccounts\"", "ab", "a", "\"x\"", "Terraform", "\"\"", "aaaa"};

START_TEST(agrees_with_memmem_on_random_text)
{
    /* Small alphabets make near-misses and overlaps frequent. */
    const char alphabet[] = "\"ab.xiListAcounts";
    unsigned seed = 12345u + (unsigned)_i;
    char hay[300];
    for (int round = 0; round < 4000; round++) {
        size_t n = (size_t)(rand_r(&seed) % (int)sizeof hay);
        for (size_t k = 0; k < n; k++)
            hay[k] = alphabet[rand_r(&seed) % (int)(sizeof alphabet - 1)];
        const char *nd = needles[round % (int)(sizeof needles / sizeof needles[0])];
        size_t m = strlen(nd);
        /* Plant the needle sometimes, at the very end too. */
        if (n >= m && round % 3 == 0)
            memcpy(hay + n - m - (size_t)(rand_r(&seed) % 2 ? 0 : (n - m) / 2), nd, m);
        const char *want = memmem(hay, n, nd, m);
        const char *got = nt_search(hay, n, nd, m);
        ck_assert_msg(want == got, "round %d n %zu needle %s: %td vs %td", round, n, nd,
                      want ? want - hay : -1, got ? got - hay : -1);
    }
}
END_TEST

/* nt_search_clean finds what nt_search finds, and sets *clean exactly when
 * there is no match and no backslash anywhere: a backslash at every position
 * of every length up to 200 (the vector loop's first and last bytes, the
 * tail after it) must be seen. */
START_TEST(clean_is_set_only_without_a_match_and_without_a_backslash)
{
    char hay[201];
    for (size_t n = 0; n <= 200; n++) {
        for (size_t bs = 0; bs <= n; bs++) { /* bs == n: no backslash */
            for (size_t k = 0; k < n; k++)
                hay[k] = "abcdefgh.\"ListAccounts"[k % 8];
            if (bs < n) hay[bs] = '\\';
            for (size_t w = 0; w < sizeof needles / sizeof needles[0]; w++) {
                const char *nd = needles[w];
                size_t m = strlen(nd);
                int clean = 0;
                const char *got = nt_search_clean(hay, n, nd, m, &clean);
                ck_assert_ptr_eq(got, memmem(hay, n, nd, m));
                int want = !got && bs == n;
                ck_assert_msg(clean == want, "n %zu backslash at %zu needle %s: clean %d", n, bs,
                              nd, clean);
            }
        }
    }
}
END_TEST

START_TEST(edge_lengths)
{
    ck_assert_ptr_null(nt_search("abc", 3, "abcd", 4));
    ck_assert_ptr_nonnull(nt_search("abc", 3, "", 0));
    const char *h = "0123456789abcdef0123456789abcdef\"ListAccounts\"";
    ck_assert_ptr_eq(nt_search(h, strlen(h), "\"ListAccounts\"", 14), h + 32);
    ck_assert_ptr_null(nt_search(h, strlen(h) - 1, "\"ListAccounts\"", 14));
}
END_TEST

START_TEST(unicode_escapes_are_found)
{
    ck_assert(nt_has_unicode_escape("x\\u0041", 7));
    ck_assert(!nt_has_unicode_escape("x\\\\u0041", 8)); /* an escaped backslash, then u */
    ck_assert(nt_has_unicode_escape("x\\\\\\u0041", 9));
    ck_assert(!nt_has_unicode_escape("\\\"quoted\\\"", 10));
    ck_assert(!nt_has_unicode_escape("trailing\\", 9));
    ck_assert(!nt_has_unicode_escape("", 0));
}
END_TEST

/* The structural scan: (text, 1 when structurally complete JSON). */
static const struct {
    const char *text;
    int want;
} structure_cases[] = {
    {"{}", 1},
    {"[]", 1},
    {" {\"eventVersion\": \"1.11\"} ", 1},
    {"{\"a\":[1,2.5e-3,true,false,null,{\"b\":\"\\u00e9\\\"\\\\\\/\\b\\f\\n\\r\\t\"}]}", 1},
    {"{\"a\":1}\n{\"b\":2}\n", 1}, /* NDJSON */
    {"{\"a\":1}{\"b\":2}", 1},     /* concatenated */
    {"{\"s\":\"caf\xc3\xa9 \xe2\x82\xac\"}", 1},
    {"{\"eventVersion\": \"1.11\", \"truncated", 0}, /* issue 10 */
    {"{\"eventVersion\": \"1.11\", \"a\": 1", 0},
    {"{\"eventVersion\": \"1.11\"}}", 0},
    {"{\"a\": [1, 2}", 0},
    {"{\"a\": {1, 2]}", 0},
    {"[{\"a\":1]}", 0},
    {"{\"a\": \"\\x\"}", 0},       /* bad escape */
    {"{\"a\": \"\\u12g4\"}", 0},   /* bad \\u escape */
    {"{\"a\": \"\\u12\"}", 0},     /* short \\u escape */
    {"{\"a\": \"tab\there\"}", 0}, /* raw control byte in a string */
    {"{\"a\": \"ends in a backslash\\", 0},
    {"{\"a\": 1} x", 0},
    {"{\"a\": 1}, {}", 0},
    {"{\"a\": @}", 1}, /* not a parse: bytes between tokens are not checked */
    {"{\"a\": \x01}", 0},
    {"[\"0123456789abcdef\", \"0123456789abcdef0123456789\", {\"k\": [\"\\\"}\"]}]", 1},
    {"[\"0123456789abcdef\", \"0123456789abcdef0123456789\", {\"k\": [\"\\\"}\"}]]", 0},
    {"", 0},
    {"   ", 0},
    {"\"just a string\"", 0},
    {"42", 0},
};

START_TEST(the_structure_scan_accepts_complete_json_and_refuses_broken_units)
{
    const char *t = structure_cases[_i].text;
    ck_assert_msg(nt_json_structure_ok(t, strlen(t)) == structure_cases[_i].want, "%s -> %d", t,
                  !structure_cases[_i].want);
}
END_TEST

START_TEST(nesting_deeper_than_64_is_refused)
{
    char deep[2 * 65 + 1];
    for (int d = 64; d <= 65; d++) {
        memset(deep, '[', (size_t)d);
        memset(deep + d, ']', (size_t)d);
        ck_assert_int_eq(nt_json_structure_ok(deep, 2 * (size_t)d), d <= 64);
    }
}
END_TEST

/* Every real record passes, and every proper prefix of it (a truncated record)
 * fails, also once the record is compact JSON, at every cut. */
START_TEST(every_truncation_of_a_real_record_is_refused)
{
    static const char *const files[] = {"organizations_ListAccounts_IAMUser.json",
                                        "s3_GetObject_AssumedRole.json"};
    for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
        char path[512];
        snprintf(path, sizeof path, "%s/cloudtrail/%s", NT_TEST_DATA, files[f]);
        size_t n;
        char *text = tu_read_file(path, &n);
        json_error_t jerr;
        json_t *doc = json_loadb(text, n, 0, &jerr);
        ck_assert_ptr_nonnull(doc);
        char *compact = json_dumps(doc, JSON_COMPACT | JSON_ENSURE_ASCII);
        const char *forms[] = {text, compact};
        size_t lens[] = {n, strlen(compact)};
        for (int k = 0; k < 2; k++) {
            size_t end = lens[k];
            while (end > 0 && strchr(" \n\r\t", forms[k][end - 1]))
                end--;
            ck_assert(nt_json_structure_ok(forms[k], lens[k]));
            for (size_t cut = 0; cut < end; cut++)
                ck_assert_msg(!nt_json_structure_ok(forms[k], cut), "%s cut at %zu", files[f], cut);
        }
        free(compact);
        json_decref(doc);
        free(text);
    }
}
END_TEST

/* An independent byte-at-a-time reference of the documented rules. */
static int ref_structure_ok(const unsigned char *s, size_t n)
{
    char stack[64];
    size_t depth = 0;
    int values = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = s[i];
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r') continue;
        if (c == '{' || c == '[') {
            if (depth == 64) return 0;
            values += depth == 0;
            stack[depth++] = (char)c;
        } else if (depth == 0 || c < 0x20) {
            return 0;
        } else if (c == '}' || c == ']') {
            if (stack[--depth] != (c == '}' ? '{' : '[')) return 0;
        } else if (c == '"') {
            for (i++;; i++) {
                if (i >= n || s[i] < 0x20) return 0;
                if (s[i] == '"') break;
                if (s[i] != '\\') continue;
                if (++i >= n) return 0;
                if (s[i] == 'u') {
                    for (int k = 0; k < 4; k++)
                        if (++i >= n || !strchr("0123456789abcdefABCDEF", s[i]) || !s[i]) return 0;
                } else if (!s[i] || !strchr("\"\\/bfnrt", s[i])) {
                    return 0;
                }
            }
        }
    }
    return depth == 0 && values > 0;
}

START_TEST(the_block_scan_agrees_with_a_byte_reference_on_mutated_records)
{
    char path[512];
    snprintf(path, sizeof path, "%s/cloudtrail/s3_GetObject_AssumedRole.json", NT_TEST_DATA);
    size_t n;
    char *text = tu_read_file(path, &n);
    json_error_t jerr;
    json_t *doc = json_loadb(text, n, 0, &jerr);
    char *compact = json_dumps(doc, JSON_COMPACT);
    size_t m = strlen(compact);
    char *buf = malloc(2 * m + 96);
    static const char edits[] = {'"', '\\', '{', '}', '[', ']', 'u', '\n', 1, 'a', '0', ' '};
    unsigned seed = 7;
    int agree_ok = 0, agree_bad = 0;
    for (int it = 0; it < 20000; it++) {
        seed = seed * 1103515245u + 12345u;
        size_t pad = (seed >> 16) % 16, len = m;
        memset(buf, ' ', pad);
        memcpy(buf + pad, compact, m);
        if (it % 2) { /* NDJSON: a second copy after 0..70 bytes of whitespace */
            size_t gap = (seed >> 5) % 71;
            memset(buf + pad + m, '\n', gap);
            memcpy(buf + pad + m + gap, compact, m);
            len = 2 * m + gap;
        }
        int nedits = (int)((seed >> 8) % 4);
        for (int e = 0; e < nedits; e++) {
            seed = seed * 1103515245u + 12345u;
            size_t at = pad + (seed >> 12) % len;
            buf[at] = edits[(seed >> 4) % sizeof edits];
        }
        seed = seed * 1103515245u + 12345u;
        if ((seed >> 16) % 4 == 0) len = (seed >> 3) % len;
        int want = ref_structure_ok((const unsigned char *)buf, pad + len);
        ck_assert_msg(nt_json_structure_ok(buf, pad + len) == want, "iteration %d", it);
        want ? agree_ok++ : agree_bad++;
    }
    ck_assert_int_gt(agree_ok, 1000); /* both outcomes are exercised */
    ck_assert_int_gt(agree_bad, 1000);
    free(buf);
    free(compact);
    json_decref(doc);
    free(text);
}
END_TEST

static Suite *search_suite(void)
{
    Suite *s = suite_create("search");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60); /* the backslash-at-every-position sweep, on a shared machine */
    tcase_add_loop_test(tc, agrees_with_memmem_on_random_text, 0, 8);
    tcase_add_test(tc, edge_lengths);
    tcase_add_test(tc, clean_is_set_only_without_a_match_and_without_a_backslash);
    tcase_add_test(tc, unicode_escapes_are_found);
    tcase_add_loop_test(tc, the_structure_scan_accepts_complete_json_and_refuses_broken_units, 0,
                        (int)(sizeof structure_cases / sizeof structure_cases[0]));
    tcase_add_test(tc, nesting_deeper_than_64_is_refused);
    tcase_add_test(tc, every_truncation_of_a_real_record_is_refused);
    tcase_add_test(tc, the_block_scan_agrees_with_a_byte_reference_on_mutated_records);
    suite_add_tcase(s, tc);
    return s;
}

NT_TEST_MAIN(search_suite)

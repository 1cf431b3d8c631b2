/* jfast_loadb must be json_loadb: same accept/reject, same error text and
 * position, json_equal trees with the same key order and the same numbers
 * (compared through json_dumps too), on every file under tests/data, on
 * truncations and byte mutations of records, on generated nasty cases and on
 * random documents. The fast path must also really be taken on ordinary
 * CloudTrail, or the speed-up would be silently gone. */
#include "jfast.h"
#include "testutil.h"

#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The flag sets the service uses (dec_split, split_cwl, the CWL root), and
 * jansson's strictest default. */
static const size_t flag_sets[] = {
    JSON_DECODE_ANY | JSON_DISABLE_EOF_CHECK | JSON_ALLOW_NUL,
    JSON_DECODE_ANY | JSON_ALLOW_NUL,
    JSON_ALLOW_NUL,
    0,
};
#define NFLAGS (sizeof flag_sets / sizeof flag_sets[0])

static size_t fast_taken; /* inputs the fast path parsed itself */

static char *dump(const json_t *v)
{
    return json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
}

/* Same accept/reject, same tree, same error; what: names the input. */
static void same(const char *buf, size_t len, size_t flags, const char *what)
{
    json_error_t je, fe;
    memset(&je, 0x55, sizeof je);
    memset(&fe, 0x55, sizeof fe);
    json_t *want = json_loadb(buf, len, flags, &je);
    json_t *got = jfast_loadb(buf, len, flags, &fe);
    ck_assert_msg(!want == !got, "%s (flags %zx, %zu bytes): jansson %s, jfast %s", what, flags,
                  len, want ? "accepts" : je.text, got ? "accepts" : fe.text);
    ck_assert_msg(je.position == fe.position && je.line == fe.line && je.column == fe.column,
                  "%s (flags %zx): position %d/%d line %d/%d column %d/%d", what, flags,
                  je.position, fe.position, je.line, fe.line, je.column, fe.column);
    ck_assert_msg(strcmp(je.text, fe.text) == 0 && strcmp(je.source, fe.source) == 0,
                  "%s (flags %zx): error \"%s\" vs \"%s\"", what, flags, je.text, fe.text);
    if (want) {
        ck_assert_msg(json_equal(want, got), "%s (flags %zx): trees differ", what, flags);
        char *a = dump(want), *b = dump(got);
        ck_assert_msg(a && b && strcmp(a, b) == 0, "%s (flags %zx): %.200s vs %.200s", what, flags,
                      a ? a : "?", b ? b : "?");
        free(a);
        free(b);
        json_error_t te;
        json_t *t = jfast_try_loadb(buf, len, flags, &te);
        if (t) fast_taken++;
        json_decref(t);
    }
    json_decref(want);
    json_decref(got);
}

static void same_all_flags(const char *buf, size_t len, const char *what)
{
    for (size_t f = 0; f < NFLAGS; f++)
        same(buf, len, flag_sets[f], what);
}

/* ------------------------------------------------------------------------- */

static void check_file(const char *path, void *ctx)
{
    size_t *files = ctx;
    size_t len;
    char *text = tu_read_file(path, &len);
    same_all_flags(text, len, path);
    /* Each line on its own too (NDJSON, TSV tables of JSON). */
    for (size_t at = 0; at < len;) {
        const char *nl = memchr(text + at, '\n', len - at);
        size_t end = nl ? (size_t)(nl - text) : len;
        same_all_flags(text + at, end - at, path);
        at = end + 1;
    }
    free(text);
    (*files)++;
}

START_TEST(every_file_under_tests_data)
{
    size_t files = 0;
    fast_taken = 0;
    tu_walk(NT_TEST_DATA, NULL, 8, check_file, &files);
    ck_assert_msg(files > 100, "only %zu files under tests/data", files);
    ck_assert_msg(fast_taken > 400, "the fast path took only %zu inputs", fast_taken);
}
END_TEST

/* Ordinary CloudTrail must not fall back to jansson. */
START_TEST(cloudtrail_takes_the_fast_path)
{
    static const char *const files[] = {"/cloudtrail/organizations_ListAccounts_IAMUser.json",
                                        "/cloudtrail/s3_GetObject_AssumedRole.json"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char path[512];
        tu_path(path, sizeof path, "%s%s", NT_TEST_DATA, files[i]);
        size_t len;
        char *text = tu_read_file(path, &len);
        json_error_t je;
        json_t *v = jfast_try_loadb(text, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
        ck_assert_msg(v != NULL, "%s fell back to jansson", files[i]);
        ck_assert_int_eq(je.position, (int)len);
        json_decref(v);
        free(text);
    }
}
END_TEST

/* Every prefix, and every byte replaced by each of a set of troublemakers. */
START_TEST(truncations_and_mutations_of_records)
{
    static const char *const files[] = {"/cloudtrail/organizations_ListAccounts_IAMUser.json",
                                        "/cloudtrail/s3_GetObject_AssumedRole.json"};
    static const unsigned char bytes[] = {'"',  '\\', 0,   0x1f, 0x7f, 0x80, 0xc3, 0xe2, 0xf0,
                                          0xff, '{',  '}', '[',  ']',  ',',  ':',  '0',  '9',
                                          '-',  '+',  '.', 'e',  'u',  't',  ' ',  '\n', 'a'};
    char path[512];
    tu_path(path, sizeof path, "%s%s", NT_TEST_DATA, files[_i]);
    size_t len;
    char *text = tu_read_file(path, &len);
    char *copy = malloc(len + 1);
    ck_assert_ptr_nonnull(copy);
    for (size_t n = 0; n <= len; n++) {
        /* A private copy of exactly n bytes, so ASan sees any read past it. */
        char *cut = malloc(n ? n : 1);
        ck_assert_ptr_nonnull(cut);
        memcpy(cut, text, n);
        same(cut, n, flag_sets[0], "truncation");
        same(cut, n, flag_sets[1], "truncation");
        free(cut);
    }
    for (size_t at = 0; at < len; at++) {
        /* A quarter of the troublemakers at each position, in turn: every
         * one still lands at hundreds of places, at a quarter of the cost. */
        for (size_t b = at % 4; b < sizeof bytes; b += 4) {
            memcpy(copy, text, len);
            copy[at] = (char)bytes[b];
            same(copy, len, flag_sets[at % 2], "mutation");
        }
    }
    free(copy);
    free(text);
}
END_TEST

static void same_str(const char *s)
{
    same_all_flags(s, strlen(s), s);
}

START_TEST(duplicate_keys_the_later_value_wins)
{
    same_str("{\"a\":1,\"a\":2}");
    same_str("{\"a\":{\"b\":1},\"a\":[1]}");
    same_str("{\"a\":1,\"b\":2,\"a\":3,\"c\":4}");
    same_str("{\"a\\u0062\":1,\"ab\":2}");
    same_str("[{\"x\":null,\"x\":true,\"x\":false}]");
    same_str("{\"\":1,\"\":2}");
}
END_TEST

/* depth containers, each holding the next; inner is what the innermost holds. */
static void nest(int depth, int objects, const char *inner)
{
    size_t cap = (size_t)depth * 8 + strlen(inner) + 8, n = 0;
    char *b = malloc(cap);
    ck_assert_ptr_nonnull(b);
    for (int i = 0; i < depth; i++)
        n += (size_t)sprintf(b + n, "%s", objects ? "{\"a\":" : "[");
    n += (size_t)sprintf(b + n, "%s", inner);
    for (int i = 0; i < depth; i++)
        b[n++] = objects ? '}' : ']';
    char what[64];
    snprintf(what, sizeof what, "nesting %d %s around %s", depth, objects ? "objects" : "arrays",
             inner);
    same_all_flags(b, n, what);
    free(b);
}

START_TEST(nesting_around_both_limits)
{
    static const int depths[] = {1, 2, 62, 63, 64, 65, 66, 2046, 2047, 2048, 2049, 2050};
    for (size_t i = 0; i < sizeof depths / sizeof depths[0]; i++) {
        nest(depths[i], 0, "");
        nest(depths[i], 0, "1");
        nest(depths[i], 0, "[]");
        nest(depths[i], 1, "{}");
        nest(depths[i], 1, "\"s\"");
    }
}
END_TEST

START_TEST(numbers)
{
    static const char *const nums[] = {
        "0",
        "-0",
        "1",
        "-1",
        "7",
        "123456789012345678",
        "-123456789012345678",
        "999999999999999999",
        "1234567890123456789",
        "9223372036854775807",
        "-9223372036854775808",
        "9223372036854775808",
        "-9223372036854775809",
        "99999999999999999999999",
        "00",
        "01",
        "-01",
        "-",
        "--1",
        "+1",
        "1.",
        ".5",
        "1.5",
        "-0.0",
        "0.0",
        "-0.5",
        "1e5",
        "1E5",
        "1e+5",
        "1e-5",
        "1E-05",
        "1e",
        "1e+",
        "1.e5",
        "1.5e308",
        "1.7976931348623157e308",
        "1.8e308",
        "-1e400",
        "1e-400",
        "4.9e-324",
        "2.4703282292062327e-324",
        "0.1",
        "3.141592653589793238462643383279",
        "123456789012345678901234567890.5",
        "1x",
        "1 2",
        "0x10",
        "Infinity",
        "NaN",
        "1e5e5",
        "0.0000000000000000000000000000000000000000000000000000000000000000000000001",
        "12345678901234567890123456789012345678901234567890123456789012345678901234567890"};
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
        char b[256];
        snprintf(b, sizeof b, "[%s]", nums[i]);
        same_str(b);
        snprintf(b, sizeof b, "{\"n\":%s}", nums[i]);
        same_str(b);
        snprintf(b, sizeof b, "[%s,%s ]", nums[i], nums[i]);
        same_str(b);
        same_str(nums[i]); /* top-level scalars go to jansson, still the same */
    }
}
END_TEST

START_TEST(escapes_and_surrogates)
{
    static const char *const strs[] = {
        "\\\"",
        "\\\\",
        "\\/",
        "\\b\\f\\n\\r\\t",
        "\\u0041",
        "\\u00e9",
        "\\u00E9",
        "\\u20ac",
        "\\uffff",
        "\\ud83d\\ude00",
        "\\uD83D\\uDE00",
        "\\ud83d",
        "\\ud83dx",
        "\\ud83d\\u0041",
        "\\ud83d\\ud83d",
        "\\ud83d\\uee00",
        "\\ude00",
        "\\udfff",
        "\\udbff\\udfff",
        "\\ud800\\udc00",
        "\\u0000",
        "a\\u0000b",
        "\\u000",
        "\\u00g0",
        "\\x41",
        "\\a",
        "\\",
        "\\u",
        "\\ud83d\\",
        "\\ud83d\\u",
        "\\ud83d\\ude0",
        "\\'",
        "plain",
        "",
        "tab\there",
        "nl\nhere",
        "del\x7fok",
        "a long plain string of more than thirty-two bytes, so the vector loop runs twice"};
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++) {
        char b[512];
        snprintf(b, sizeof b, "[\"%s\"]", strs[i]);
        same_str(b);
        snprintf(b, sizeof b, "{\"%s\":\"%s\"}", strs[i], strs[i]);
        same_str(b);
        snprintf(b, sizeof b, "{\"k\":\"%s\",\"k%s\":1}", strs[i], strs[i]);
        same_str(b);
    }
}
END_TEST

START_TEST(utf8_valid_and_invalid)
{
    static const char *const seqs[] = {
        "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "\xf4\x8f\xbf\xbf", "\xc2\x80", "\xdf\xbf",
        "\xe0\xa0\x80", "\xef\xbf\xbf", "\xf0\x90\x80\x80",
        /* invalid: lone continuation, overlong, surrogate, above U+10FFFF, truncated */
        "\x80", "\xbf", "\xc0\x80", "\xc1\xbf", "\xe0\x80\x80", "\xe0\x9f\xbf", "\xed\xa0\x80",
        "\xed\xbf\xbf", "\xf0\x80\x80\x80", "\xf0\x8f\xbf\xbf", "\xf4\x90\x80\x80",
        "\xf5\x80\x80\x80", "\xff", "\xfe", "\xc3", "\xe2\x82", "\xf0\x9f\x98", "\xc3\x28",
        "\xe2\x28\xa1"};
    for (size_t i = 0; i < sizeof seqs / sizeof seqs[0]; i++) {
        char b[256];
        /* At the start, the middle and the end of a string, in keys and outside strings. */
        snprintf(b, sizeof b, "[\"%s\"]", seqs[i]);
        same_str(b);
        snprintf(b, sizeof b, "[\"abcdefghijklmnopqrstuvwxyz0123456789%sxyz\"]", seqs[i]);
        same_str(b);
        snprintf(b, sizeof b, "{\"k%s\":\"v%s\"}", seqs[i], seqs[i]);
        same_str(b);
        snprintf(b, sizeof b, "[1,%s]", seqs[i]);
        same_str(b);
    }
}
END_TEST

START_TEST(control_bytes_and_whitespace)
{
    for (int c = 0; c < 0x20; c++) {
        char b[64];
        size_t n = (size_t)snprintf(b, sizeof b, "[\"a?b\", \"0123456789abcdefghij?\"]");
        for (size_t k = 0; k < n; k++)
            if (b[k] == '?') b[k] = (char)c;
        same_all_flags(b, n, "control byte in a string");
        n = (size_t)snprintf(b, sizeof b, "{\"a\":?1}");
        for (size_t k = 0; k < n; k++)
            if (b[k] == '?') b[k] = (char)c;
        same_all_flags(b, n, "control byte outside a string");
    }
    same_str(" \t\r\n{ \"a\" : [ 1 , 2 ] , \"b\" : { } } \n");
    same_str("{\"a\":1} {\"b\":2}");
    same_str("[1] x");
    same_str("[] ");
    same_str("{}\n{}");
    same_str("");
    same_str("   ");
    same_str("[true,false,null]");
    same_str("[truex]");
    same_str("[tru]");
    same_str("[nulll]");
    same_str("[True]");
    same_str("[1,]");
    same_str("{\"a\":1,}");
    same_str("{\"a\"1}");
    same_str("{1:1}");
    same_str("[");
    same_str("{");
    same_str("{\"a\":");
    same_str("[\"abc");
}
END_TEST

/* ------------------------------------------------------------------------- */
/* Random documents from tables of nasty pieces, then one byte changed. */

static const char *const keys[] = {"a",       "b",    "eventName", "",
                                   "\\u0061", "k\\n", "\xc3\xa9",  "\\ud83d\\ude00"};
static const char *const leaves[] = {"1",
                                     "-0",
                                     "0",
                                     "-1.5e-3",
                                     "1E400",
                                     "9223372036854775807",
                                     "9223372036854775808",
                                     "true",
                                     "false",
                                     "null",
                                     "\"\"",
                                     "\"plain text\"",
                                     "\"\\u0000\"",
                                     "\"esc\\\"aped\\\\\"",
                                     "\"\xe2\x82\xac uro\"",
                                     "\"\\ud800\"",
                                     "\"0123456789012345678901234567890123456789\"",
                                     "[]",
                                     "{}",
                                     "1.7976931348623157e308",
                                     "2.2250738585072014e-308"};

typedef struct gen {
    char *b;
    size_t n, cap;
    unsigned seed;
} gen;

static void put(gen *g, const char *s)
{
    size_t m = strlen(s);
    if (g->n + m + 1 > g->cap) {
        g->cap = (g->n + m + 1) * 2;
        g->b = realloc(g->b, g->cap);
        ck_assert_ptr_nonnull(g->b);
    }
    memcpy(g->b + g->n, s, m);
    g->n += m;
}

static int pick(gen *g, int n)
{
    return rand_r(&g->seed) % n;
}

static void gen_value(gen *g, int depth)
{
    int kind = depth > 5 ? 2 : pick(g, 3);
    if (kind == 2) {
        put(g, leaves[pick(g, (int)(sizeof leaves / sizeof leaves[0]))]);
        return;
    }
    int n = pick(g, 5);
    put(g, kind ? "{" : "[");
    for (int i = 0; i < n; i++) {
        if (i) put(g, pick(g, 4) ? "," : " , ");
        if (kind) {
            put(g, "\"");
            put(g, keys[pick(g, (int)(sizeof keys / sizeof keys[0]))]);
            put(g, "\":");
        }
        gen_value(g, depth + 1);
    }
    put(g, kind ? "}" : "]");
}

START_TEST(random_documents_and_their_mutations)
{
    gen g = {.seed = 4242u};
    for (int round = 0; round < 20000; round++) {
        g.n = 0;
        gen_value(&g, 0);
        same(g.b, g.n, flag_sets[round % NFLAGS], "random document");
        if (g.n > 0) {
            size_t at = (size_t)pick(&g, (int)g.n);
            g.b[at] = "\"\\{}[],:0e-. \x80\xc3"[pick(&g, 16)];
            same(g.b, g.n, flag_sets[round % NFLAGS], "mutated random document");
        }
    }
    free(g.b);
}
END_TEST

static Suite *jfast_suite(void)
{
    Suite *s = suite_create("jfast");
    TCase *tc = tcase_create("differential");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, every_file_under_tests_data);
    tcase_add_test(tc, cloudtrail_takes_the_fast_path);
    tcase_add_loop_test(tc, truncations_and_mutations_of_records, 0, 2);
    tcase_add_test(tc, duplicate_keys_the_later_value_wins);
    tcase_add_test(tc, nesting_around_both_limits);
    tcase_add_test(tc, numbers);
    tcase_add_test(tc, escapes_and_surrogates);
    tcase_add_test(tc, utf8_valid_and_invalid);
    tcase_add_test(tc, control_bytes_and_whitespace);
    tcase_add_test(tc, random_documents_and_their_mutations);
    suite_add_tcase(s, tc);
    return s;
}

NT_TEST_MAIN(jfast_suite)

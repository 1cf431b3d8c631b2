/* Unit tests for outputs.c: a good file read completely, and a table of bad
 * files (tests/data/outputs/bad/NAME.toml, each starting with "# expect: <the exact
 * message>") refused with exactly that message. */
#include "outputs.h"
#include "testutil.h"

#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DIR_BAD NT_TEST_DATA "/outputs/bad"

static const char *fake_getenv(const char *name)
{
    static const char *const env[][2] = {
        {"TEST_SET", "hmac-secret-value"},
        {"TEST_EMPTY", ""},
        {"TEST_BOTH", "x"},
        {"TEST_BOTH_FILE", "/tmp/x"},
        {"TEST_MISSING_FILE", "/nonexistent/newtermsd-key"},
        {"TEST_KEYFILE_FILE", NT_TEST_DATA "/outputs/routing-key.txt"},
    };
    for (size_t i = 0; i < sizeof env / sizeof env[0]; i++)
        if (strcmp(env[i][0], name) == 0) return env[i][1];
    return NULL;
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    static char buf[65536];
    *len = fread(buf, 1, sizeof buf - 1, f);
    buf[*len] = '\0';
    fclose(f);
    return buf;
}

START_TEST(a_good_file_is_read_completely)
{
    size_t len;
    char *text = slurp(NT_TEST_DATA "/outputs/good.toml", &len);
    outputs *o = NULL;
    nt_err err = {{0}};
    ck_assert_int_eq(outputs_parse(text, len, fake_getenv, &o, &err), NT_OK);
    ck_assert_uint_eq(o->n, 3);
    const output *w = &o->items[0], *s = &o->items[1], *p = &o->items[2];
    ck_assert_str_eq(w->name, "soc-webhook");
    ck_assert_int_eq(w->type, OUTPUT_WEBHOOK);
    ck_assert_str_eq(w->secret, "hmac-secret-value");
    ck_assert_str_eq(w->secret_env, "TEST_SET");
    ck_assert_int_eq(w->min_severity, 3);
    ck_assert_uint_eq(w->n_rules, 2);
    ck_assert_int_eq(s->type, OUTPUT_SLACK);
    ck_assert_ptr_null(s->secret);
    ck_assert_int_eq(p->type, OUTPUT_PAGERDUTY);
    ck_assert_str_eq(p->url, OUTPUTS_PAGERDUTY_URL);
    ck_assert_str_eq(p->secret, "R0UT1NGKEY0123456789abcdef012345"); /* newline stripped */
    ck_assert_ptr_eq(outputs_find(o, "chat"), s);
    ck_assert_ptr_null(outputs_find(o, "nope"));
    outputs_free(o);
}
END_TEST

START_TEST(filters_on_severity_and_rule)
{
    output o = {0};
    ck_assert(output_wants(&o, "any", "low"));
    o.min_severity = output_severity_rank("high");
    ck_assert(!output_wants(&o, "r", "medium"));
    ck_assert(output_wants(&o, "r", "high"));
    ck_assert(output_wants(&o, "r", "critical"));
    ck_assert(!output_wants(&o, "r", NULL));
    char *rules[] = {"r1", "r2"};
    o.rules = rules;
    o.n_rules = 2;
    ck_assert(output_wants(&o, "r2", "critical"));
    ck_assert(!output_wants(&o, "r3", "critical"));
    ck_assert(!output_wants(&o, NULL, "critical"));
}
END_TEST

START_TEST(every_bad_file_gets_its_exact_message)
{
    DIR *d = opendir(DIR_BAD);
    ck_assert_ptr_nonnull(d);
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d)) != NULL) {
        size_t nl = strlen(e->d_name);
        if (nl < 6 || strcmp(e->d_name + nl - 5, ".toml") != 0) continue;
        char path[512];
        snprintf(path, sizeof path, "%s/%s", DIR_BAD, e->d_name);
        size_t len;
        char *text = slurp(path, &len);
        ck_assert_msg(strncmp(text, "# expect: ", 10) == 0, "%s lacks '# expect: '", e->d_name);
        char want[512];
        size_t wl = strcspn(text + 10, "\n");
        snprintf(want, sizeof want, "%.*s", (int)wl, text + 10);
        outputs *o = NULL;
        nt_err err = {{0}};
        nt_status st = outputs_parse(text, len, fake_getenv, &o, &err);
        ck_assert_msg(st != NT_OK, "%s was accepted", e->d_name);
        ck_assert_ptr_null(o);
        ck_assert_msg(strcmp(err.msg, want) == 0, "%s:\n  got  %s\n  want %s", e->d_name, err.msg,
                      want);
        /* no secret value ever reaches a message */
        ck_assert_ptr_null(strstr(err.msg, "hmac-secret-value"));
        ck_assert_ptr_null(strstr(err.msg, "SECRETPATH"));
        n++;
    }
    closedir(d);
    ck_assert_int_ge(n, 20);
}
END_TEST

START_TEST(a_missing_file_names_the_path)
{
    outputs *o = NULL;
    nt_err err = {{0}};
    ck_assert_int_eq(outputs_load("/nonexistent/outputs.toml", fake_getenv, &o, &err), NT_ERR_IO);
    ck_assert_str_eq(err.msg, "outputs file /nonexistent/outputs.toml: No such file or directory");
    ck_assert_int_eq(
        outputs_load(NT_TEST_DATA "/outputs/bad/type_unknown.toml", fake_getenv, &o, &err),
        NT_ERR_INVALID);
    ck_assert_str_eq(err.msg, "outputs file " NT_TEST_DATA
                              "/outputs/bad/type_unknown.toml: output 1 (\"soc\"): type must be "
                              "\"webhook\", \"slack\" or \"pagerduty\"");
    outputs_free(NULL);
}
END_TEST

static Suite *outputs_suite(void)
{
    Suite *s = suite_create("outputs");
    TCase *tc = tcase_create("outputs");
    tcase_add_test(tc, a_good_file_is_read_completely);
    tcase_add_test(tc, filters_on_severity_and_rule);
    tcase_add_test(tc, every_bad_file_gets_its_exact_message);
    tcase_add_test(tc, a_missing_file_names_the_path);
    suite_add_tcase(s, tc);
    return s;
}

NT_TEST_MAIN(outputs_suite)

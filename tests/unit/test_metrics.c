/* Unit tests for metrics.c: exposition format, ordering, escaping, limits, threads. */
#include "metrics.h"
#include "testutil.h"

#include <check.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DROPPED_BLOCK(n)                                                                           \
    "# HELP newtermsd_metrics_dropped_total Samples dropped: series table full, invalid name or "  \
    "labels, or a type clash.\n"                                                                   \
    "# TYPE newtermsd_metrics_dropped_total counter\n"                                             \
    "newtermsd_metrics_dropped_total " #n "\n"

static void reset(void)
{
    metrics_reset();
}

/* The value of the sample line that starts with `prefix` + ' ', or -1. */
static double sample(const char *text, const char *prefix)
{
    size_t pl = strlen(prefix);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, prefix, pl) == 0 && p[pl] == ' ') return strtod(p + pl + 1, NULL);
    }
    return -1;
}

START_TEST(an_empty_registry_renders_only_the_dropped_counter)
{
    char *t = metrics_render();
    ck_assert_str_eq(t, DROPPED_BLOCK(0));
    free(t);
}
END_TEST

START_TEST(counters_render_with_help_type_and_labels)
{
    metrics_describe("app_requests_total", "counter", "Requests by route.\nSecond \\ line.");
    metrics_counter_add("app_requests_total", "route=\"firehose\",code=\"200\"", 2);
    metrics_counter_add("app_requests_total", "route=\"firehose\",code=\"200\"", 3);
    metrics_counter_add("app_requests_total", NULL, 0);
    char *t = metrics_render();
    ck_assert_str_eq(t, "# HELP app_requests_total Requests by route.\\nSecond \\\\ line.\n"
                        "# TYPE app_requests_total counter\n"
                        "app_requests_total 0\n"
                        "app_requests_total{route=\"firehose\",code=\"200\"} 5\n" DROPPED_BLOCK(0));
    free(t);
}
END_TEST

START_TEST(histograms_render_cumulative_buckets_sum_and_count)
{
    metrics_describe("lat_seconds", "histogram", "Latency.");
    double obs[] = {0.0003, 0.0005, 0.003, 0.7, 10, 20};
    for (size_t i = 0; i < sizeof obs / sizeof obs[0]; i++)
        metrics_histogram_observe("lat_seconds", "route=\"a\"", obs[i]);
    metrics_histogram_observe("lat_seconds", "route=\"a\"", NAN); /* dropped */
    char *t = metrics_render();
    ck_assert_str_eq(t, "# HELP lat_seconds Latency.\n"
                        "# TYPE lat_seconds histogram\n"
                        "lat_seconds_bucket{route=\"a\",le=\"0.0005\"} 2\n"
                        "lat_seconds_bucket{route=\"a\",le=\"0.001\"} 2\n"
                        "lat_seconds_bucket{route=\"a\",le=\"0.0025\"} 2\n"
                        "lat_seconds_bucket{route=\"a\",le=\"0.005\"} 3\n"
                        "lat_seconds_bucket{route=\"a\",le=\"0.01\"} 3\n"
                        "lat_seconds_bucket{route=\"a\",le=\"0.025\"} 3\n"
                        "lat_seconds_bucket{route=\"a\",le=\"0.05\"} 3\n"
                        "lat_seconds_bucket{route=\"a\",le=\"0.1\"} 3\n"
                        "lat_seconds_bucket{route=\"a\",le=\"0.25\"} 3\n"
                        "lat_seconds_bucket{route=\"a\",le=\"0.5\"} 3\n"
                        "lat_seconds_bucket{route=\"a\",le=\"1\"} 4\n"
                        "lat_seconds_bucket{route=\"a\",le=\"2.5\"} 4\n"
                        "lat_seconds_bucket{route=\"a\",le=\"5\"} 4\n"
                        "lat_seconds_bucket{route=\"a\",le=\"10\"} 5\n"
                        "lat_seconds_bucket{route=\"a\",le=\"+Inf\"} 6\n"
                        "lat_seconds_sum{route=\"a\"} 30.7038\n"
                        "lat_seconds_count{route=\"a\"} 6\n" DROPPED_BLOCK(1));
    free(t);
}
END_TEST

START_TEST(a_histogram_without_labels_has_only_le_in_braces)
{
    metrics_histogram_observe("h_seconds", NULL, 0.2);
    char *t = metrics_render();
    ck_assert_ptr_nonnull(strstr(t, "# TYPE h_seconds histogram\n"));
    ck_assert_ptr_nonnull(strstr(t, "\nh_seconds_bucket{le=\"0.1\"} 0\n"));
    ck_assert_ptr_nonnull(strstr(t, "\nh_seconds_bucket{le=\"0.25\"} 1\n"));
    ck_assert_ptr_nonnull(strstr(t, "\nh_seconds_sum 0.2\nh_seconds_count 1\n"));
    ck_assert_ptr_null(strstr(t, "# HELP h_seconds"));
    free(t);
}
END_TEST

static const struct {
    double v;
    const char *text;
} gauge_cases[] = {
    {42, "42"},
    {0.1, "0.1"},
    {-3.5, "-3.5"},
    {1e21, "1e+21"},
    {NAN, "NaN"},
    {INFINITY, "+Inf"},
    {-INFINITY, "-Inf"},
    {123456789012.0, "123456789012"},
    {1.0 / 3, "0.3333333333333333"},
};

START_TEST(gauge_values_use_the_shortest_exact_text)
{
    metrics_gauge_set("g", NULL, 7);
    metrics_gauge_set("g", NULL, gauge_cases[_i].v);
    char *t = metrics_render();
    char want[128];
    snprintf(want, sizeof want, "# TYPE g gauge\ng %s\n", gauge_cases[_i].text);
    ck_assert_msg(strstr(t, want), "want %s in\n%s", want, t);
    free(t);
}
END_TEST

START_TEST(output_is_sorted_by_name_then_labels_and_grouped_per_name)
{
    metrics_counter_add("zeta_total", "b=\"2\"", 1);
    metrics_gauge_set("alpha", "x=\"9\"", 1);
    metrics_counter_add("zeta_total", "a=\"1\"", 1);
    metrics_gauge_set("alpha", "x=\"1\"", 2);
    metrics_counter_add("mid_total", NULL, 1);
    metrics_gauge_set("alpha", NULL, 3);
    char *t = metrics_render();
    ck_assert_str_eq(t, "# TYPE alpha gauge\n"
                        "alpha 3\n"
                        "alpha{x=\"1\"} 2\n"
                        "alpha{x=\"9\"} 1\n"
                        "# TYPE mid_total counter\n"
                        "mid_total 1\n" DROPPED_BLOCK(0) "# TYPE zeta_total counter\n"
                                                         "zeta_total{a=\"1\"} 1\n"
                                                         "zeta_total{b=\"2\"} 1\n");
    free(t);
}
END_TEST

static const struct {
    const char *in;
    size_t len, cap;
    const char *want;
} esc_cases[] = {
    {"plain", 5, 64, "plain"},
    {"a\"b\\c\nd", 7, 64, "a\\\"b\\\\c\\nd"},
    {"tab\tok\r\x01", 8, 64, "tab\tok??"},
    {"caf\xc3\xa9", 5, 64, "caf\xc3\xa9"},
    {"bad\xff\xc3", 5, 64, "bad??"},
    {"abcdef", 6, 4, "abc"},
    {"ab\"cd", 5, 4, "ab"},   /* the escape does not fit: not split */
    {"a\xc3\xa9", 3, 3, "a"}, /* the UTF-8 character does not fit: not split */
    {"", 0, 1, ""},
    {"x", 1, 1, ""},
};

START_TEST(label_values_are_escaped_and_truncated_cleanly)
{
    char out[64];
    memset(out, 'Z', sizeof out);
    size_t n = metrics_label_escape(esc_cases[_i].in, esc_cases[_i].len, out, esc_cases[_i].cap);
    ck_assert_str_eq(out, esc_cases[_i].want);
    ck_assert_uint_eq(n, strlen(esc_cases[_i].want));
    ck_assert_uint_eq(metrics_label_escape("abc", 3, out, 0), 0);
}
END_TEST

START_TEST(an_escaped_label_value_renders_and_round_trips)
{
    char v[64], labels[96];
    metrics_label_escape("we\"ird\\\nname", 12, v, sizeof v);
    snprintf(labels, sizeof labels, "user=\"%s\"", v);
    metrics_counter_add("users_total", labels, 1);
    char *t = metrics_render();
    ck_assert_ptr_nonnull(strstr(t, "\nusers_total{user=\"we\\\"ird\\\\\\nname\"} 1\n"));
    free(t);
}
END_TEST

static const struct {
    const char *name, *labels;
} bad_series[] = {
    {"1starts_with_digit", NULL},
    {"has-dash", NULL},
    {"", NULL},
    {NULL, NULL},
    {"ok_total", "unquoted=1"},
    {"ok_total", "a=\"x\",,b=\"y\""},
    {"ok_total", "a=\"x\","},
    {"ok_total", "a=\"raw\nnewline\""},
    {"ok_total", "a=\"bad\\escape\""},
    {"ok_total", "a=\"unterminated"},
    {"ok_total", "=\"noname\""},
    {"newtermsd_metrics_dropped_total", NULL},
};

START_TEST(invalid_names_and_label_strings_are_dropped_and_counted)
{
    metrics_counter_add(bad_series[_i].name, bad_series[_i].labels, 1);
    char *t = metrics_render();
    ck_assert_str_eq(t, DROPPED_BLOCK(1));
    free(t);
}
END_TEST

START_TEST(a_histogram_may_not_use_the_le_label)
{
    metrics_histogram_observe("h_seconds", "le=\"1\"", 0.1);
    metrics_histogram_observe("h_seconds", "lex=\"1\"", 0.1);
    char *t = metrics_render();
    ck_assert_ptr_nonnull(strstr(t, "newtermsd_metrics_dropped_total 1\n"));
    ck_assert_ptr_nonnull(strstr(t, "h_seconds_count{lex=\"1\"} 1\n"));
    free(t);
}
END_TEST

START_TEST(one_name_never_renders_with_two_types)
{
    metrics_counter_add("x_total", "a=\"1\"", 1);
    metrics_gauge_set("x_total", "a=\"1\"", 5);    /* same series, other type */
    metrics_gauge_set("x_total", "a=\"2\"", 5);    /* other series, other type */
    metrics_histogram_observe("x_total", NULL, 1); /* and again */
    metrics_describe("g_described", "gauge", "A gauge.");
    metrics_counter_add("g_described", NULL, 1);          /* described as a gauge */
    metrics_describe("x_total", "gauge", "Redescribed."); /* type stays counter */
    char *t = metrics_render();
    ck_assert_str_eq(t, DROPPED_BLOCK(4) "# HELP x_total Redescribed.\n"
                                         "# TYPE x_total counter\n"
                                         "x_total{a=\"1\"} 1\n");
    free(t);
}
END_TEST

START_TEST(describe_ignores_unknown_types_and_bad_names)
{
    metrics_describe("a_total", "summary", "no");
    metrics_describe("bad name", "counter", "no");
    metrics_describe(NULL, "counter", "no");
    metrics_describe("a_total", NULL, "no");
    metrics_counter_add("a_total", NULL, 1);
    char *t = metrics_render();
    ck_assert_str_eq(t, "# TYPE a_total counter\na_total 1\n" DROPPED_BLOCK(0));
    free(t);
}
END_TEST

START_TEST(series_beyond_the_table_limit_are_dropped_and_counted)
{
    char labels[32];
    for (int i = 0; i < METRICS_MAX_SERIES + 10; i++) {
        snprintf(labels, sizeof labels, "i=\"%d\"", i);
        metrics_counter_add("many_total", labels, 1);
    }
    metrics_counter_add("many_total", "i=\"0\"", 1); /* existing series still count */
    char *t = metrics_render();
    ck_assert_ptr_nonnull(strstr(t, "newtermsd_metrics_dropped_total 10\n"));
    ck_assert_ptr_nonnull(strstr(t, "many_total{i=\"0\"} 2\n"));
    size_t lines = 0;
    for (const char *p = t; (p = strchr(p, '\n')); p++)
        lines++;
    ck_assert_uint_eq(lines, 1 + METRICS_MAX_SERIES + 3);
    free(t);
}
END_TEST

START_TEST(reset_forgets_every_series_and_description)
{
    metrics_describe("a_total", "counter", "help");
    metrics_counter_add("a_total", NULL, 3);
    metrics_counter_add("1bad", NULL, 1);
    metrics_reset();
    char *t = metrics_render();
    ck_assert_str_eq(t, DROPPED_BLOCK(0));
    free(t);
    metrics_gauge_set("a_total", NULL, 1); /* a fresh name may take another type */
    t = metrics_render();
    ck_assert_ptr_nonnull(strstr(t, "# TYPE a_total gauge\na_total 1\n"));
    free(t);
}
END_TEST

START_TEST(process_metrics_come_from_proc)
{
    metrics_update_process();
    char *t = metrics_render();
    ck_assert_ptr_nonnull(strstr(t, "# TYPE process_resident_memory_bytes gauge\n"));
    double rss = sample(t, "process_resident_memory_bytes");
    double fds = sample(t, "process_open_fds");
    double start = sample(t, "process_start_time_seconds");
    ck_assert(rss > 100000 && rss < 1e11);
    ck_assert(fds >= 3 && fds < 100000);
    double now = (double)time(NULL);
    ck_assert_msg(start > now - 86400.0 * 7 && start <= now + 2, "start %f now %f", start, now);
    free(t);
}
END_TEST

/* Every line is a comment or `name[{labels}] value`, names of one family are contiguous. */
START_TEST(rendered_text_is_well_formed)
{
    metrics_describe("h_seconds", "histogram", "h");
    metrics_histogram_observe("h_seconds", "r=\"x\"", 0.01);
    metrics_counter_add("c_total", "a=\"q\\\"\"", 1);
    metrics_gauge_set("g", NULL, -1);
    metrics_update_process();
    char *t = metrics_render();
    ck_assert_int_eq(t[strlen(t) - 1], '\n');
    for (char *save = NULL, *l = strtok_r(t, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        if (l[0] == '#') {
            ck_assert(strncmp(l, "# HELP ", 7) == 0 || strncmp(l, "# TYPE ", 7) == 0);
            continue;
        }
        char *sp = strrchr(l, ' ');
        ck_assert_ptr_nonnull(sp);
        char *end;
        strtod(sp + 1, &end);
        ck_assert_msg(*end == 0, "bad value in %s", l);
        ck_assert(l[0] == '_' || (l[0] >= 'a' && l[0] <= 'z'));
    }
    free(t);
}
END_TEST

/* ---- threads ----------------------------------------------------------------- */
#define INCREMENTS 500000

static void *incrementer(void *arg)
{
    const char *labels = arg;
    for (int i = 0; i < INCREMENTS; i++) {
        metrics_counter_add("hot_total", "route=\"firehose\",code=\"200\"", 1);
        if ((i & 1023) == 0) metrics_histogram_observe("hot_seconds", labels, 0.001);
    }
    return NULL;
}

START_TEST(a_million_increments_from_two_threads_are_exact_and_fast)
{
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    pthread_t t1, t2;
    pthread_create(&t1, NULL, incrementer, "t=\"1\"");
    pthread_create(&t2, NULL, incrementer, "t=\"2\"");
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    clock_gettime(CLOCK_MONOTONIC, &b);
    double secs = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
    fprintf(stderr, "metrics: 1M counter increments from 2 threads took %.3f s\n", secs);
    ck_assert_msg(secs < 5.0, "took %.3f s", secs);
    char *t = metrics_render();
    ck_assert_ptr_nonnull(strstr(t, "hot_total{route=\"firehose\",code=\"200\"} 1000000\n"));
    ck_assert_ptr_nonnull(strstr(t, "hot_seconds_count{t=\"1\"} 489\n"));
    ck_assert_ptr_nonnull(strstr(t, "hot_seconds_count{t=\"2\"} 489\n"));
    free(t);
}
END_TEST

#define RACERS 4
static void *creator(void *arg)
{
    (void)arg;
    char labels[32];
    for (int i = 0; i < 500; i++) {
        snprintf(labels, sizeof labels, "i=\"%d\"", i);
        metrics_counter_add("race_total", labels, 1);
        metrics_histogram_observe("race_seconds", labels, 1.5);
    }
    return NULL;
}

START_TEST(threads_racing_to_create_the_same_series_share_one)
{
    pthread_t th[RACERS];
    for (int i = 0; i < RACERS; i++)
        pthread_create(&th[i], NULL, creator, NULL);
    char *mid = metrics_render(); /* rendering while writers run is safe */
    free(mid);
    for (int i = 0; i < RACERS; i++)
        pthread_join(th[i], NULL);
    char *t = metrics_render();
    char want[96];
    for (int i = 0; i < 500; i++) {
        snprintf(want, sizeof want, "\nrace_total{i=\"%d\"} %d\n", i, RACERS);
        ck_assert_msg(strstr(t, want), "missing %s", want);
        snprintf(want, sizeof want, "\nrace_seconds_sum{i=\"%d\"} %d\n", i, RACERS * 3 / 2);
        ck_assert_msg(strstr(t, want), "missing %s", want);
    }
    ck_assert_ptr_nonnull(strstr(t, "newtermsd_metrics_dropped_total 0\n"));
    free(t);
}
END_TEST

static Suite *metrics_suite(void)
{
    Suite *s = suite_create("metrics");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, reset, reset);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, an_empty_registry_renders_only_the_dropped_counter);
    tcase_add_test(tc, counters_render_with_help_type_and_labels);
    tcase_add_test(tc, histograms_render_cumulative_buckets_sum_and_count);
    tcase_add_test(tc, a_histogram_without_labels_has_only_le_in_braces);
    tcase_add_loop_test(tc, gauge_values_use_the_shortest_exact_text, 0,
                        sizeof gauge_cases / sizeof gauge_cases[0]);
    tcase_add_test(tc, output_is_sorted_by_name_then_labels_and_grouped_per_name);
    tcase_add_loop_test(tc, label_values_are_escaped_and_truncated_cleanly, 0,
                        sizeof esc_cases / sizeof esc_cases[0]);
    tcase_add_test(tc, an_escaped_label_value_renders_and_round_trips);
    tcase_add_loop_test(tc, invalid_names_and_label_strings_are_dropped_and_counted, 0,
                        sizeof bad_series / sizeof bad_series[0]);
    tcase_add_test(tc, a_histogram_may_not_use_the_le_label);
    tcase_add_test(tc, one_name_never_renders_with_two_types);
    tcase_add_test(tc, describe_ignores_unknown_types_and_bad_names);
    tcase_add_test(tc, series_beyond_the_table_limit_are_dropped_and_counted);
    tcase_add_test(tc, reset_forgets_every_series_and_description);
    tcase_add_test(tc, process_metrics_come_from_proc);
    tcase_add_test(tc, rendered_text_is_well_formed);
    tcase_add_test(tc, a_million_increments_from_two_threads_are_exact_and_fast);
    tcase_add_test(tc, threads_racing_to_create_the_same_series_share_one);
    suite_add_tcase(s, tc);
    return s;
}

NT_TEST_MAIN(metrics_suite)

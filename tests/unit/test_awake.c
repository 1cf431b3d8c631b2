/* awake (--busy-poll-us): the spinner runs at SCHED_IDLE, spins for a window
 * after each touch, sleeps when the window passes, and a touch wakes it. */
#include "awake.h"
#include "testutil.h"

#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <time.h>

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Threads of this process whose policy (field 41 of /proc/self/task/T/stat)
 * is SCHED_IDLE (5). */
static int idle_threads(void)
{
    DIR *d = opendir("/proc/self/task");
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char path[300], buf[1024];
        snprintf(path, sizeof path, "/proc/self/task/%s/stat", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        size_t len = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[len] = 0;
        char *p = strrchr(buf, ')'); /* the name may hold spaces */
        if (!p) continue;
        int field = 2;
        long policy = -1;
        for (char *t = strtok(p + 1, " "); t; t = strtok(NULL, " "))
            if (++field == 41) {
                policy = strtol(t, NULL, 10);
                break;
            }
        if (policy == 5) n++;
    }
    closedir(d);
    return n;
}

/* The spinner runs at the lowest priority, so on a loaded machine (ctest -j)
 * it may wait for a CPU: every check polls with a generous deadline. */
static int eventually_idle_threads(int want)
{
    for (int i = 0; i < 500 && idle_threads() != want; i++)
        sleep_ms(10);
    return idle_threads();
}

/* Waits until the spin total stops growing (two readings 100 ms apart within
 * 1 ms), at most 10 s; returns it. */
static double settled(nt_awake *a)
{
    double prev = awake_spin_seconds(a);
    for (int i = 0; i < 100; i++) {
        sleep_ms(100);
        double now = awake_spin_seconds(a);
        if (now - prev < 0.001) return now;
        prev = now;
    }
    ck_abort_msg("the spinner never went back to sleep");
    return prev;
}

START_TEST(the_spinner_runs_at_idle_priority_for_a_window_after_a_touch)
{
    nt_err err;
    nt_awake *a = NULL;
    ck_assert_int_eq(awake_start(&a, 50 * 1000, &err), NT_OK); /* 50 ms */
    ck_assert_ptr_nonnull(a);
    ck_assert_int_eq(eventually_idle_threads(1), 1);
    /* never touched: asleep, nothing spent */
    sleep_ms(50);
    ck_assert(awake_spin_seconds(a) < 0.005);
    awake_touch(a);
    double once = settled(a);
    /* about one window: at least most of it, and it ended */
    ck_assert_msg(once > 0.03, "spun %.3f s for one 50 ms window", once);
    /* touches that keep coming keep it up for as long as they come */
    for (int i = 0; i < 20; i++) {
        awake_touch(a);
        sleep_ms(20);
    }
    double more = settled(a) - once;
    ck_assert_msg(more > 0.3, "spun %.3f s over 400 ms of touches", more);
    /* and nothing more without touches */
    sleep_ms(200);
    ck_assert(awake_spin_seconds(a) - once - more < 0.001);
    awake_stop(a);
}
END_TEST

START_TEST(stop_joins_a_spinning_thread_and_null_is_off)
{
    nt_err err;
    nt_awake *a = NULL;
    ck_assert_int_eq(awake_start(&a, 10 * 1000 * 1000, &err), NT_OK); /* 10 s window */
    awake_touch(a);
    sleep_ms(10);
    awake_stop(a); /* returns at once, though the window is far from over */
    ck_assert_int_eq(idle_threads(), 0);
    awake_touch(NULL);
    awake_stop(NULL);
    ck_assert(awake_spin_seconds(NULL) == 0);
}
END_TEST

START_TEST(a_window_must_be_positive)
{
    nt_err err;
    nt_awake *a = (nt_awake *)&err;
    ck_assert_int_eq(awake_start(&a, 0, &err), NT_ERR_INVALID);
    ck_assert_ptr_null(a);
    ck_assert_str_eq(err.msg, "busy-poll window must be positive");
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("awake");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, the_spinner_runs_at_idle_priority_for_a_window_after_a_touch);
    tcase_add_test(tc, stop_joins_a_spinning_thread_and_null_is_off);
    tcase_add_test(tc, a_window_must_be_positive);
    suite_add_tcase(s, tc);
    return s;
}

NT_TEST_MAIN(suite)

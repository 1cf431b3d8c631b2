/* Replays every input under tests/data/fuzz-regressions/<target>/ through the
 * fuzz target of that name (tests/fuzz/targets.c, the library ntfuzz, which
 * the normal gcc build makes too: no clang or libFuzzer needed). Each file is
 * an input that once crashed a fuzzer or broke one of its invariants; the
 * ASan+UBSan build of this test catches the memory errors, and the targets'
 * own checks abort on a broken contract, which fails the test.
 * tests/fuzz/README.md says how a new crash becomes a file here. */
#include "targets.h"
#include "testutil.h"

#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define REGRESSIONS NT_TEST_DATA "/fuzz-regressions"

START_TEST(the_fuzz_setup_builds_from_its_built_in_rules_and_events)
{
    fuzz_env *env = fuzz_env_new();
    ck_assert_msg(env != NULL, "fuzz_env_new failed (see stderr): a built-in rule or event "
                               "in tests/fuzz/targets.c no longer loads");
    ck_assert_uint_eq(fuzz_env_rule_count(env), 3);
    fuzz_env_free(env);
}
END_TEST

START_TEST(every_regression_input_replays_without_a_crash_or_broken_invariant)
{
    const fuzz_target *t = &fuzz_targets[_i];
    char dir[512];
    tu_path(dir, sizeof dir, REGRESSIONS "/%s", t->name);
    size_t n = 0;
    char **names = tu_list(dir, 0, &n);
    ck_assert_msg(n > 0, "%s holds no regression input", dir);
    fuzz_env *env = fuzz_env_new();
    ck_assert_ptr_nonnull(env);
    for (size_t i = 0; i < n; i++) {
        char path[1024];
        tu_path(path, sizeof path, "%s/%s", dir, names[i]);
        size_t len = 0;
        char *data = tu_read_file(path, &len);
        /* names the input in the log before a crash can cut the test short */
        fprintf(stderr, "replaying %s/%s (%zu bytes)\n", t->name, names[i], len);
        t->run(env, (const uint8_t *)data, len);
        free(data);
    }
    tu_names_free(names, n);
    fuzz_env_free(env);
}
END_TEST

START_TEST(every_regression_folder_names_a_fuzz_target)
{
    size_t n = 0;
    char **folders = tu_list(REGRESSIONS, 1, &n);
    ck_assert_uint_gt(n, 0);
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(fuzz_target_find(folders[i]) != NULL,
                      "%s/%s is not the name of a fuzz target, so its inputs would never run",
                      REGRESSIONS, folders[i]);
    tu_names_free(folders, n);
}
END_TEST

START_TEST(every_target_accepts_empty_and_one_byte_inputs)
{
    fuzz_env *env = fuzz_env_new();
    ck_assert_ptr_nonnull(env);
    static const uint8_t one[] = {0};
    for (const fuzz_target *t = fuzz_targets; t->name; t++) {
        t->run(env, one, 0);
        for (unsigned b = 0; b < 256; b++) {
            uint8_t byte = (uint8_t)b;
            t->run(env, b ? &byte : one, 1);
        }
    }
    fuzz_env_free(env);
}
END_TEST

static Suite *fuzz_regressions_suite(void)
{
    Suite *s = suite_create("fuzz_regressions");
    TCase *tc = tcase_create("replay");
    tcase_set_timeout(tc, 120);
    size_t n_targets = 0;
    while (fuzz_targets[n_targets].name)
        n_targets++;
    tcase_add_test(tc, the_fuzz_setup_builds_from_its_built_in_rules_and_events);
    tcase_add_loop_test(tc, every_regression_input_replays_without_a_crash_or_broken_invariant, 0,
                        (int)n_targets);
    tcase_add_test(tc, every_regression_folder_names_a_fuzz_target);
    tcase_add_test(tc, every_target_accepts_empty_and_one_byte_inputs);
    suite_add_tcase(s, tc);
    return s;
}

NT_TEST_MAIN(fuzz_regressions_suite)

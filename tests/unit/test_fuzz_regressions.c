/* Replays every input under tests/data/fuzz-regressions/<target>/ through the
 * fuzz target of that name (tests/fuzz/targets.c, compiled in here so the
 * normal gcc build needs neither clang nor libFuzzer). Each file is an input
 * that once crashed a fuzzer or broke one of its invariants; the ASan+UBSan
 * build of this test catches the memory errors, and the targets' own checks
 * abort on a broken contract, which fails the test. tests/fuzz/README.md says
 * how a new crash becomes a file here. */
#include "../fuzz/targets.c"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <sys/stat.h>

#define REGRESSIONS NT_TEST_DATA "/fuzz-regressions"

static unsigned char *read_input(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s: %s", path, strerror(errno));
    size_t cap = 4096, n = 0;
    unsigned char *buf = malloc(cap);
    ck_assert_ptr_nonnull(buf);
    size_t got;
    while ((got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            cap *= 2;
            unsigned char *grown = realloc(buf, cap);
            ck_assert_ptr_nonnull(grown);
            buf = grown;
        }
    }
    ck_assert_msg(!ferror(f), "cannot read %s", path);
    fclose(f);
    *len = n;
    return buf;
}

static int is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The regular files of dir, sorted (so a failure always names the same file
 * first); the caller frees each name and the array. */
static char **list_files(const char *dir, size_t *n)
{
    DIR *d = opendir(dir);
    ck_assert_msg(d != NULL, "cannot open %s: %s", dir, strerror(errno));
    char **names = NULL;
    size_t cap = 0;
    *n = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        if (is_dir(path)) continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            char **grown = realloc(names, cap * sizeof *names);
            ck_assert_ptr_nonnull(grown);
            names = grown;
        }
        names[(*n)++] = strdup(de->d_name);
    }
    closedir(d);
    if (*n) qsort(names, *n, sizeof *names, cmp_names);
    return names;
}

START_TEST(the_fuzz_setup_builds_from_its_built_in_rules_and_events)
{
    fuzz_env *env = fuzz_env_new();
    ck_assert_msg(env != NULL, "fuzz_env_new failed (see stderr): a built-in rule or event "
                               "in tests/fuzz/targets.c no longer loads");
    ck_assert_uint_eq(env->rs->n, 3);
    fuzz_env_free(env);
}
END_TEST

START_TEST(every_regression_input_replays_without_a_crash_or_broken_invariant)
{
    const fuzz_target *t = &fuzz_targets[_i];
    char dir[512];
    snprintf(dir, sizeof dir, REGRESSIONS "/%s", t->name);
    size_t n = 0;
    char **names = list_files(dir, &n);
    ck_assert_msg(n > 0, "%s holds no regression input", dir);
    fuzz_env *env = fuzz_env_new();
    ck_assert_ptr_nonnull(env);
    for (size_t i = 0; i < n; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        size_t len = 0;
        unsigned char *data = read_input(path, &len);
        /* names the input in the log before a crash can cut the test short */
        fprintf(stderr, "replaying %s/%s (%zu bytes)\n", t->name, names[i], len);
        t->run(env, data, len);
        free(data);
        free(names[i]);
    }
    free(names);
    fuzz_env_free(env);
}
END_TEST

START_TEST(every_regression_folder_names_a_fuzz_target)
{
    DIR *d = opendir(REGRESSIONS);
    ck_assert_msg(d != NULL, "cannot open %s: %s", REGRESSIONS, strerror(errno));
    struct dirent *de;
    size_t folders = 0;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", REGRESSIONS, de->d_name);
        if (!is_dir(path)) continue;
        folders++;
        ck_assert_msg(fuzz_target_find(de->d_name) != NULL,
                      "%s is not the name of a fuzz target, so its inputs would never run", path);
    }
    closedir(d);
    ck_assert_uint_gt(folders, 0);
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

int main(void)
{
    SRunner *sr = srunner_create(fuzz_regressions_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

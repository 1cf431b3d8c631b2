/*
 * testutil.h — what every unit test needs and none should write again:
 * one main() (NT_TEST_MAIN), reading a file or a JSON document from
 * tests/data, building a path that is known to fit, and walking a folder.
 *
 * Failures: inside a running test the helpers fail that test with a message
 * (ck_abort_msg); during setup (a suite function, before the runner starts)
 * they print the message to stderr and exit with status 2, so a missing data
 * file is never mistaken for a passing suite.
 *
 * Every returned buffer is owned by the caller (free / json_decref).
 */
#ifndef NT_TESTUTIL_H
#define NT_TESTUTIL_H

#include <check.h>
#include <jansson.h>
#include <stddef.h>

/* Fails the current test, or the setup (see above), with a printf message. */
void tu_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* snprintf into buf[cap] that fails (tu_fail) instead of truncating. */
void tu_path(char *buf, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* The whole file, NUL-terminated (the NUL is not counted in *len; len may be
 * NULL). Fails when it cannot be opened or read. */
char *tu_read_file(const char *path, size_t *len);

/* A JSON document (json_load_file with flags); fails with the file, line and
 * jansson's message when it does not parse. */
json_t *tu_load_json(const char *path, size_t flags);

/* 1 when name ends in suffix. */
int tu_has_suffix(const char *name, const char *suffix);

/* Calls fn(path, ctx) for every regular file under dir whose name ends in
 * suffix (NULL = every file), in name order, descending into at most
 * max_depth levels of sub-folders (0 = dir only). Names starting with '.' are
 * skipped. Fails when a folder cannot be read or a path would not fit.
 * Returns how many files fn was called for. */
size_t tu_walk(const char *dir, const char *suffix, int max_depth,
               void (*fn)(const char *path, void *ctx), void *ctx);

/* The names (not paths) of the entries of dir that are folders (dirs = 1) or
 * regular files (dirs = 0), sorted, skipping names starting with '.'; *n gets
 * the count. Free with tu_names_free. */
char **tu_list(const char *dir, int dirs, size_t *n);
void tu_names_free(char **names, size_t n);

/* Runs the suite that suite_fn builds (CK_NORMAL), then teardown (may be NULL),
 * and returns the process exit status: 0 when every test passed. suite_fn may
 * do the setup; it returns NULL when setup failed (exit status 1). */
int tu_main(Suite *(*suite_fn)(void), void (*teardown)(void));

/* The whole main() of a test program. */
#define NT_TEST_MAIN(suite_fn)                                                                     \
    int main(void)                                                                                 \
    {                                                                                              \
        return tu_main(suite_fn, NULL);                                                            \
    }
#define NT_TEST_MAIN_TEARDOWN(suite_fn, teardown_fn)                                               \
    int main(void)                                                                                 \
    {                                                                                              \
        return tu_main(suite_fn, teardown_fn);                                                     \
    }

#endif

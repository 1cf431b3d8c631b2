/*
 * testutil.c — the helpers every unit test shares (see testutil.h).
 */
#include "testutil.h"

#include "jarena.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Set while srunner_run_all runs: a failure then belongs to a test. */
static int tu_running;

void tu_fail(const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (tu_running) ck_abort_msg("%s", msg);
    fprintf(stderr, "test setup failed: %s\n", msg);
    exit(2);
}

void tu_path(char *buf, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, cap, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= cap) tu_fail("path does not fit in %zu bytes: %.200s…", cap, buf);
}

char *tu_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) tu_fail("cannot open %s: %s", path, strerror(errno));
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    if (!buf) tu_fail("out of memory reading %s", path);
    for (;;) {
        if (n + 1 >= cap) {
            char *grown = realloc(buf, cap * 2);
            if (!grown) tu_fail("out of memory reading %s", path);
            buf = grown;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) tu_fail("cannot read %s", path);
    buf[n] = '\0';
    if (len) *len = n;
    return buf;
}

json_t *tu_load_json(const char *path, size_t flags)
{
    json_error_t e;
    json_t *j = json_load_file(path, flags, &e);
    if (!j) tu_fail("%s:%d: %s", path, e.line, e.text);
    return j;
}

int tu_has_suffix(const char *name, const char *suffix)
{
    size_t n = strlen(name), s = strlen(suffix);
    return n >= s && strcmp(name + n - s, suffix) == 0;
}

static int tu_cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* 1 folder, 0 regular file, -1 anything else. */
static int tu_kind(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) tu_fail("cannot stat %s: %s", path, strerror(errno));
    return S_ISDIR(st.st_mode) ? 1 : S_ISREG(st.st_mode) ? 0 : -1;
}

char **tu_list(const char *dir, int dirs, size_t *n)
{
    DIR *d = opendir(dir);
    if (!d) tu_fail("cannot open %s: %s", dir, strerror(errno));
    char **names = NULL;
    size_t cap = 0;
    *n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.') continue;
        char path[4096];
        tu_path(path, sizeof path, "%s/%s", dir, de->d_name);
        if (tu_kind(path) != (dirs ? 1 : 0)) continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            char **grown = realloc(names, cap * sizeof *names);
            if (!grown) tu_fail("out of memory listing %s", dir);
            names = grown;
        }
        if (!(names[*n] = strdup(de->d_name))) tu_fail("out of memory listing %s", dir);
        (*n)++;
    }
    closedir(d);
    if (*n) qsort(names, *n, sizeof *names, tu_cmp_names);
    return names;
}

void tu_names_free(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

size_t tu_walk(const char *dir, const char *suffix, int max_depth,
               void (*fn)(const char *path, void *ctx), void *ctx)
{
    size_t visited = 0, n = 0;
    char path[4096];
    char **files = tu_list(dir, 0, &n);
    for (size_t i = 0; i < n; i++) {
        if (suffix && !tu_has_suffix(files[i], suffix)) continue;
        tu_path(path, sizeof path, "%s/%s", dir, files[i]);
        fn(path, ctx);
        visited++;
    }
    tu_names_free(files, n);
    if (max_depth <= 0) return visited;
    char **dirs = tu_list(dir, 1, &n);
    for (size_t i = 0; i < n; i++) {
        tu_path(path, sizeof path, "%s/%s", dir, dirs[i]);
        visited += tu_walk(path, suffix, max_depth - 1, fn, ctx);
    }
    tu_names_free(dirs, n);
    return visited;
}

int tu_main(Suite *(*suite_fn)(void), void (*teardown)(void))
{
    /* as newtermsd's main does, so every test parses records into chunks */
    jarena_install();
    Suite *s = suite_fn();
    if (!s) {
        if (teardown) teardown();
        return EXIT_FAILURE;
    }
    SRunner *sr = srunner_create(s);
    tu_running = 1;
    srunner_run_all(sr, CK_NORMAL);
    tu_running = 0;
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    if (teardown) teardown();
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

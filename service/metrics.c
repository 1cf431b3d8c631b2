/*
 * metrics.c — the Prometheus registry (see metrics.h).
 *
 * Series live in a fixed open-addressing table of METRICS_SLOTS atomic
 * pointers (twice METRICS_MAX_SERIES, so a probe always meets an empty slot
 * and stays short). A slot goes from NULL to a fully built series exactly
 * once, published with a release store; nothing is removed except by
 * metrics_reset(). That makes lookup lock-free: hash (name, labels), probe
 * with acquire loads until the series or a NULL slot is found. Only creating
 * a series takes the mutex, re-probing under it so two threads racing to
 * create the same series end up sharing one.
 *
 * Values are C11 atomics: counters and histogram buckets are fetch_add;
 * gauges and histogram sums are doubles stored as their bit pattern (a store
 * for gauges, a compare-exchange loop for sums). Histogram buckets are kept
 * non-cumulative (one increment per observation) and summed at render time,
 * so _count always equals the +Inf bucket.
 *
 * Per metric name a "family" records the type (fixed by the first series, or
 * by metrics_describe when it comes first) and the HELP text. A series whose
 * type disagrees with its family is refused, so one name never renders with
 * two types. Everything refused is counted in newtermsd_metrics_dropped_total,
 * which is always rendered.
 */
#include "metrics.h"

#include "common.h"

#include <dirent.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define METRICS_SLOTS 8192 /* power of two, > 2 * METRICS_MAX_SERIES */
#define METRICS_MAX_FAMILIES 1024
#define METRICS_NAME_MAX 200
#define HIST_BOUNDS 14
#define DROPPED_NAME "newtermsd_metrics_dropped_total"

typedef enum { KIND_NONE = 0, KIND_COUNTER, KIND_GAUGE, KIND_HISTOGRAM } metric_kind;

static const double hist_bounds[HIST_BOUNDS] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                0.1,    0.25,  0.5,    1,     2.5,  5,     10};
static const char *const hist_bound_text[HIST_BOUNDS] = {
    "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05",
    "0.1",    "0.25",  "0.5",    "1",     "2.5",  "5",     "10"};
static const char *const kind_names[] = {"untyped", "counter", "gauge", "histogram"};

typedef struct series {
    uint64_t hash;
    metric_kind kind;
    char *name;
    char *labels;                     /* "" when none */
    _Atomic unsigned long long count; /* counter value */
    _Atomic uint64_t bits;            /* gauge value / histogram sum, as double bits */
    _Atomic unsigned long long
        buckets[HIST_BOUNDS + 1]; /* histogram, non-cumulative; last = +Inf */
} series;

typedef struct family {
    char *name;
    char *help; /* NULL when not described */
    metric_kind kind;
    size_t n_series;
} family;

static pthread_mutex_t metrics_lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic(series *) slots[METRICS_SLOTS];
static size_t n_series;  /* guarded by metrics_lock */
static family *families; /* guarded by metrics_lock */
static size_t n_families;
static _Atomic unsigned long long dropped;

/* ---- helpers ------------------------------------------------------------- */

static uint64_t series_hash(const char *name, const char *labels)
{
    uint64_t h = 1469598103934665603ULL;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        h = (h ^ *p) * 1099511628211ULL;
    h = (h ^ 0xff) * 1099511628211ULL; /* separator: no name byte is 0xff */
    for (const unsigned char *p = (const unsigned char *)labels; *p; p++)
        h = (h ^ *p) * 1099511628211ULL;
    return h;
}

static int valid_name(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++) {
        char c = s[n];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
                 (n > 0 && c >= '0' && c <= '9');
        if (!ok) return 0;
    }
    return n > 0 && n <= METRICS_NAME_MAX;
}

/* `k="v",k2="v2"` with v escaped as the text format wants. A histogram may
 * not use the label `le`, which rendering adds. */
static int valid_labels(const char *s, metric_kind kind)
{
    size_t n = strlen(s);
    if (n == 0) return 1;
    if (n >= METRICS_LABELS_MAX) return 0;
    size_t i = 0;
    for (;;) {
        size_t k0 = i;
        while ((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || s[i] == '_' ||
               (i > k0 && s[i] >= '0' && s[i] <= '9'))
            i++;
        if (i == k0) return 0;
        if (kind == KIND_HISTOGRAM && i - k0 == 2 && s[k0] == 'l' && s[k0 + 1] == 'e') return 0;
        if (s[i++] != '=' || s[i++] != '"') return 0;
        for (;;) {
            char c = s[i];
            if (c == 0 || c == '\n') return 0;
            if (c == '"') break;
            if (c == '\\') {
                char e = s[i + 1];
                if (e != '\\' && e != '"' && e != 'n') return 0;
                i += 2;
                continue;
            }
            i++;
        }
        i++; /* closing quote */
        if (s[i] == 0) return 1;
        if (s[i++] != ',') return 0;
    }
}

static double bits_to_double(uint64_t b)
{
    double d;
    memcpy(&d, &b, sizeof d);
    return d;
}

static uint64_t double_to_bits(double d)
{
    uint64_t b;
    memcpy(&b, &d, sizeof b);
    return b;
}

/* Caller holds metrics_lock. */
static family *family_find(const char *name, int create)
{
    for (size_t i = 0; i < n_families; i++)
        if (strcmp(families[i].name, name) == 0) return &families[i];
    if (!create || n_families >= METRICS_MAX_FAMILIES) return NULL;
    family *nf = realloc(families, (n_families + 1) * sizeof *nf);
    if (!nf) return NULL;
    families = nf;
    family *f = &families[n_families];
    memset(f, 0, sizeof *f);
    f->name = strdup(name);
    if (!f->name) return NULL;
    n_families++;
    return f;
}

static series *probe(const char *name, const char *labels, uint64_t h)
{
    size_t i = (size_t)h & (METRICS_SLOTS - 1);
    for (size_t step = 0; step < METRICS_SLOTS; step++) {
        series *s = atomic_load_explicit(&slots[i], memory_order_acquire);
        if (!s) return NULL;
        if (s->hash == h && strcmp(s->name, name) == 0 && strcmp(s->labels, labels) == 0) return s;
        i = (i + 1) & (METRICS_SLOTS - 1);
    }
    return NULL;
}

static series *create_locked(const char *name, const char *labels, uint64_t h, metric_kind kind)
{
    if (n_series >= METRICS_MAX_SERIES) return NULL;
    if (!valid_name(name) || strcmp(name, DROPPED_NAME) == 0 || !valid_labels(labels, kind))
        return NULL;
    family *f = family_find(name, 1);
    if (!f) return NULL;
    if (f->kind != KIND_NONE && f->kind != kind) return NULL;
    series *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->name = f->name; /* shared with the family; freed with it */
    s->labels = strdup(labels);
    if (!s->labels) {
        free(s);
        return NULL;
    }
    s->hash = h;
    s->kind = kind;
    f->kind = kind;
    f->n_series++;
    size_t i = (size_t)h & (METRICS_SLOTS - 1);
    while (atomic_load_explicit(&slots[i], memory_order_relaxed))
        i = (i + 1) & (METRICS_SLOTS - 1);
    atomic_store_explicit(&slots[i], s, memory_order_release);
    n_series++;
    return s;
}

/* The series for (name, labels) of the given kind, created on first use; NULL
 * (and one more dropped sample) when it cannot be. */
static series *series_get(const char *name, const char *labels, metric_kind kind)
{
    if (!name) goto drop;
    if (!labels) labels = "";
    uint64_t h = series_hash(name, labels);
    series *s = probe(name, labels, h);
    if (!s) {
        pthread_mutex_lock(&metrics_lock);
        s = probe(name, labels, h);
        if (!s) s = create_locked(name, labels, h, kind);
        pthread_mutex_unlock(&metrics_lock);
        if (!s) goto drop;
    }
    if (s->kind != kind) goto drop;
    return s;
drop:
    atomic_fetch_add_explicit(&dropped, 1, memory_order_relaxed);
    return NULL;
}

/* ---- recording ------------------------------------------------------------- */

void metrics_describe(const char *name, const char *type, const char *help)
{
    if (!name || !type) return;
    metric_kind kind = KIND_NONE;
    for (int k = KIND_COUNTER; k <= KIND_HISTOGRAM; k++)
        if (strcmp(type, kind_names[k]) == 0) kind = (metric_kind)k;
    if (kind == KIND_NONE || !valid_name(name)) return;
    pthread_mutex_lock(&metrics_lock);
    family *f = family_find(name, 1);
    if (f) {
        if (f->n_series == 0) f->kind = kind;
        char *h = help ? strdup(help) : NULL;
        if (h || !help) {
            free(f->help);
            f->help = h;
        }
    }
    pthread_mutex_unlock(&metrics_lock);
}

void metrics_counter_add(const char *name, const char *labels, unsigned long long delta)
{
    series *s = series_get(name, labels, KIND_COUNTER);
    if (s) atomic_fetch_add_explicit(&s->count, delta, memory_order_relaxed);
}

void metrics_gauge_set(const char *name, const char *labels, double v)
{
    series *s = series_get(name, labels, KIND_GAUGE);
    if (s) atomic_store_explicit(&s->bits, double_to_bits(v), memory_order_relaxed);
}

void metrics_histogram_observe(const char *name, const char *labels, double seconds)
{
    if (isnan(seconds)) {
        atomic_fetch_add_explicit(&dropped, 1, memory_order_relaxed);
        return;
    }
    series *s = series_get(name, labels, KIND_HISTOGRAM);
    if (!s) return;
    size_t b = 0;
    while (b < HIST_BOUNDS && seconds > hist_bounds[b])
        b++;
    atomic_fetch_add_explicit(&s->buckets[b], 1, memory_order_relaxed);
    uint64_t old = atomic_load_explicit(&s->bits, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(&s->bits, &old,
                                                  double_to_bits(bits_to_double(old) + seconds),
                                                  memory_order_relaxed, memory_order_relaxed)) {
    }
}

/* ---- rendering --------------------------------------------------------------- */

static void out_double(nt_buf *b, double v)
{
    char tmp[40];
    if (isnan(v)) {
        nt_buf_str(b, "NaN");
        return;
    }
    if (isinf(v)) {
        nt_buf_str(b, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*g", prec, v);
        if (strtod(tmp, NULL) == v) break;
    }
    nt_buf_str(b, tmp);
}

static void out_ull(nt_buf *b, unsigned long long v)
{
    char tmp[24];
    snprintf(tmp, sizeof tmp, "%llu", v);
    nt_buf_str(b, tmp);
}

/* name{labels[,extra]} — braces only when there is something inside. */
static void out_series_name(nt_buf *b, const char *name, const char *suffix, const char *labels,
                            const char *extra)
{
    nt_buf_str(b, name);
    nt_buf_str(b, suffix);
    if (!*labels && !extra) {
        nt_buf_str(b, " ");
        return;
    }
    nt_buf_str(b, "{");
    nt_buf_str(b, labels);
    if (extra) {
        if (*labels) nt_buf_str(b, ",");
        nt_buf_str(b, extra);
    }
    nt_buf_str(b, "} ");
}

static void out_help(nt_buf *b, const char *name, const char *help)
{
    nt_buf_str(b, "# HELP ");
    nt_buf_str(b, name);
    nt_buf_str(b, " ");
    for (const char *p = help; *p; p++) {
        if (*p == '\\')
            nt_buf_str(b, "\\\\");
        else if (*p == '\n')
            nt_buf_str(b, "\\n");
        else
            nt_buf_add(b, p, 1);
    }
    nt_buf_str(b, "\n");
}

static int series_cmp(const void *a, const void *b)
{
    const series *x = *(const series *const *)a, *y = *(const series *const *)b;
    int c = strcmp(x->name, y->name);
    return c ? c : strcmp(x->labels, y->labels);
}

static void render_series(nt_buf *b, const series *s)
{
    switch (s->kind) {
    case KIND_COUNTER:
        out_series_name(b, s->name, "", s->labels, NULL);
        out_ull(b, atomic_load_explicit(&s->count, memory_order_relaxed));
        nt_buf_str(b, "\n");
        break;
    case KIND_GAUGE:
        out_series_name(b, s->name, "", s->labels, NULL);
        out_double(b, bits_to_double(atomic_load_explicit(&s->bits, memory_order_relaxed)));
        nt_buf_str(b, "\n");
        break;
    case KIND_HISTOGRAM: {
        unsigned long long cum = 0;
        char le[32];
        for (int i = 0; i <= HIST_BOUNDS; i++) {
            cum += atomic_load_explicit(&s->buckets[i], memory_order_relaxed);
            snprintf(le, sizeof le, "le=\"%s\"", i < HIST_BOUNDS ? hist_bound_text[i] : "+Inf");
            out_series_name(b, s->name, "_bucket", s->labels, le);
            out_ull(b, cum);
            nt_buf_str(b, "\n");
        }
        out_series_name(b, s->name, "_sum", s->labels, NULL);
        out_double(b, bits_to_double(atomic_load_explicit(&s->bits, memory_order_relaxed)));
        nt_buf_str(b, "\n");
        out_series_name(b, s->name, "_count", s->labels, NULL);
        out_ull(b, cum);
        nt_buf_str(b, "\n");
        break;
    }
    case KIND_NONE:
        break;
    }
}

char *metrics_render(void)
{
    nt_buf b = {0};
    series dropped_series = {.kind = KIND_COUNTER, .name = DROPPED_NAME, .labels = ""};
    atomic_store(&dropped_series.count, atomic_load(&dropped));

    pthread_mutex_lock(&metrics_lock);
    series **all = malloc((n_series + 1) * sizeof(series *));
    if (!all) {
        pthread_mutex_unlock(&metrics_lock);
        return NULL;
    }
    size_t n = 0;
    for (size_t i = 0; i < METRICS_SLOTS; i++) {
        series *s = atomic_load_explicit(&slots[i], memory_order_acquire);
        if (s) all[n++] = s;
    }
    all[n++] = &dropped_series;
    qsort(all, n, sizeof(series *), series_cmp);
    for (size_t i = 0; i < n; i++) {
        const series *s = all[i];
        if (i == 0 || strcmp(all[i - 1]->name, s->name) != 0) {
            const family *f = s == &dropped_series ? NULL : family_find(s->name, 0);
            if (f && f->help) out_help(&b, s->name, f->help);
            if (s == &dropped_series)
                out_help(&b, s->name,
                         "Samples dropped: series table full, invalid name or labels, or a type "
                         "clash.");
            nt_buf_str(&b, "# TYPE ");
            nt_buf_str(&b, s->name);
            nt_buf_str(&b, " ");
            nt_buf_str(&b, kind_names[s->kind]);
            nt_buf_str(&b, "\n");
        }
        render_series(&b, s);
    }
    pthread_mutex_unlock(&metrics_lock);
    free(all);
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    return b.p;
}

/* ---- process metrics --------------------------------------------------------- */

static int read_small_file(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    size_t n = fread(buf, 1, cap - 1, f);
    fclose(f);
    buf[n] = 0;
    return n > 0 ? 0 : -1;
}

void metrics_update_process(void)
{
    metrics_describe("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
    metrics_describe("process_open_fds", "gauge", "Number of open file descriptors.");
    metrics_describe("process_start_time_seconds", "gauge",
                     "Start time of the process since unix epoch in seconds.");
    char buf[4096];
    unsigned long long size_pages, resident_pages;
    long page = sysconf(_SC_PAGESIZE);
    if (read_small_file("/proc/self/statm", buf, sizeof buf) == 0 &&
        sscanf(buf, "%llu %llu", &size_pages, &resident_pages) == 2 && page > 0)
        metrics_gauge_set("process_resident_memory_bytes", NULL,
                          (double)resident_pages * (double)page);

    DIR *d = opendir("/proc/self/fd");
    if (d) {
        long fds = 0;
        struct dirent *e;
        while ((e = readdir(d)) != NULL)
            if (e->d_name[0] != '.') fds++;
        closedir(d);
        metrics_gauge_set("process_open_fds", NULL, (double)(fds > 0 ? fds - 1 : 0)); /* minus d */
    }

    /* Field 22 of /proc/self/stat is the start time in clock ticks since boot.
     * The command name (field 2) may contain spaces and parentheses, so count
     * from the last ')'. */
    unsigned long long btime = 0, start_ticks = 0;
    long tck = sysconf(_SC_CLK_TCK);
    if (read_small_file("/proc/self/stat", buf, sizeof buf) == 0) {
        char *p = strrchr(buf, ')');
        int field = 2;
        while (p && *p && field < 22) {
            p = strchr(p, ' ');
            if (!p) break;
            p++;
            field++;
        }
        if (p && field == 22 && sscanf(p, "%llu", &start_ticks) == 1) {
            if (read_small_file("/proc/stat", buf, sizeof buf) == 0) {
                char *bt = strstr(buf, "\nbtime ");
                if (bt && sscanf(bt + 7, "%llu", &btime) == 1 && tck > 0)
                    metrics_gauge_set("process_start_time_seconds", NULL,
                                      (double)btime + (double)start_ticks / (double)tck);
            }
        }
    }
}

/* ---- reset and escaping ------------------------------------------------------- */

void metrics_reset(void)
{
    pthread_mutex_lock(&metrics_lock);
    for (size_t i = 0; i < METRICS_SLOTS; i++) {
        series *s = atomic_load_explicit(&slots[i], memory_order_relaxed);
        if (!s) continue;
        free(s->labels);
        free(s);
        atomic_store_explicit(&slots[i], NULL, memory_order_relaxed);
    }
    for (size_t i = 0; i < n_families; i++) {
        free(families[i].name);
        free(families[i].help);
    }
    free(families);
    families = NULL;
    n_families = 0;
    n_series = 0;
    atomic_store(&dropped, 0);
    pthread_mutex_unlock(&metrics_lock);
}

size_t metrics_label_escape(const char *in, size_t len, char *out, size_t cap)
{
    if (cap == 0) return 0;
    size_t o = 0, i = 0;
    while (i < len) {
        unsigned char c = (unsigned char)in[i];
        const char *rep;
        size_t rlen, used = 1;
        if (c == '\\')
            rep = "\\\\", rlen = 2;
        else if (c == '"')
            rep = "\\\"", rlen = 2;
        else if (c == '\n')
            rep = "\\n", rlen = 2;
        else if ((c < 0x20 && c != '\t') || c == 0x7f)
            rep = "?", rlen = 1;
        else {
            size_t k = nt_utf8_seq_len((const unsigned char *)in + i, len - i);
            if (k == 0) {
                rep = "?";
                rlen = 1;
            } else {
                rep = in + i;
                rlen = used = k;
            }
        }
        if (o + rlen > cap - 1) break;
        memcpy(out + o, rep, rlen);
        o += rlen;
        i += used;
    }
    out[o] = 0;
    return o;
}

/*
 * javamap.c — Java's Map.toString() of a JSON payload (javamap.h).
 *
 * HashMap iteration order: bucket = spread(String.hashCode) & (capacity-1),
 * capacity 16 doubled while size > 0.75·capacity, insertion order inside a
 * bucket (the sort key is bucket << 32 | insertion index, heap-sorted in the
 * caller's scratch space, so nothing is allocated).
 */
#include "javamap.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Double.toString (JDK 19+: shortest digits that round-trip). */
size_t javamap_double(double d, char out[JAVAMAP_DOUBLE_BUF])
{
    if (d == 0) return (size_t)snprintf(out, 40, signbit(d) ? "-0.0" : "0.0");
    if (!isfinite(d))
        return (size_t)snprintf(out, 40, isnan(d) ? "NaN" : d > 0 ? "Infinity" : "-Infinity");
    char sci[40];
    for (int p = 1; p <= 17; p++) {
        snprintf(sci, sizeof sci, "%.*e", p - 1, d);
        if (strtod(sci, NULL) == d) break;
    }
    /* sci = [-]D[.DDD]e[+-]XX */
    char digits[24] = "0";
    size_t nd = 0;
    const char *p = sci;
    int neg = 0;
    if (*p == '-') {
        neg = 1;
        p++;
    }
    for (; *p && *p != 'e'; p++)
        if (*p != '.' && nd < sizeof digits) digits[nd++] = *p;
    int e10 = *p == 'e' ? (int)strtol(p + 1, NULL, 10) : 0;
    if (nd == 0) nd = 1;
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;
    size_t len = 0;
    if (neg) out[len++] = '-';
    double ad = fabs(d);
    if (ad >= 1e-3 && ad < 1e7) {
        if (e10 >= 0) {
            for (size_t k = 0; k <= (size_t)e10; k++) {
                char c = '0';
                if (k < nd) c = digits[k];
                out[len++] = c;
            }
            out[len++] = '.';
            if ((size_t)e10 + 1 < nd)
                for (size_t k = (size_t)e10 + 1; k < nd; k++)
                    out[len++] = digits[k];
            else
                out[len++] = '0';
        } else {
            out[len++] = '0';
            out[len++] = '.';
            for (int k = 0; k < -e10 - 1; k++)
                out[len++] = '0';
            for (size_t k = 0; k < nd; k++)
                out[len++] = digits[k];
        }
        out[len] = '\0';
        return len;
    }
    out[len++] = digits[0];
    out[len++] = '.';
    if (nd > 1)
        for (size_t k = 1; k < nd; k++)
            out[len++] = digits[k];
    else
        out[len++] = '0';
    len += (size_t)snprintf(out + len, 40 - len, "E%d", e10);
    return len;
}

static size_t utf16_units(const char *s, size_t n)
{
    size_t u = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c & 0xC0) != 0x80) u += c >= 0xF0 ? 2 : 1;
    }
    return u;
}

/* Java String.hashCode over the UTF-16 code units of a UTF-8 key. */
static uint32_t java_hash(const char *s, size_t n)
{
    uint32_t h = 0;
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        uint32_t cp;
        size_t k;
        if (c < 0x80) {
            cp = c;
            k = 1;
        } else if (c >= 0xF0) {
            cp = c & 0x07;
            k = 4;
        } else if (c >= 0xE0) {
            cp = c & 0x0F;
            k = 3;
        } else {
            cp = c & 0x1F;
            k = 2;
        }
        for (size_t j = 1; j < k && i + j < n; j++)
            cp = cp << 6 | ((unsigned char)s[i + j] & 0x3F);
        i += k;
        if (cp >= 0x10000) {
            cp -= 0x10000;
            h = 31 * h + (0xD800 + (cp >> 10));
            h = 31 * h + (0xDC00 + (cp & 0x3FF));
        } else {
            h = 31 * h + cp;
        }
    }
    return h;
}

static void sift_down(uint64_t *a, size_t start, size_t n)
{
    size_t root = start;
    while (2 * root + 1 < n) {
        size_t child = 2 * root + 1;
        if (child + 1 < n && a[child] < a[child + 1]) child++;
        if (a[root] >= a[child]) return;
        uint64_t t = a[root];
        a[root] = a[child];
        a[child] = t;
        root = child;
    }
}

static void heap_sort(uint64_t *a, size_t n)
{
    for (size_t i = n / 2; i > 0; i--)
        sift_down(a, i - 1, n);
    for (size_t end = n; end > 1; end--) {
        uint64_t t = a[0];
        a[0] = a[end - 1];
        a[end - 1] = t;
        sift_down(a, 0, end - 1);
    }
}

static void jw_put(javamap_writer *w, const char *s, size_t n)
{
    if (w->buf && w->len + n <= w->cap) memcpy(w->buf + w->len, s, n);
    w->len += n;
    w->units += utf16_units(s, n);
}

/* Render v; returns 1 when something was written, 0 when v is absent after
 * clean-up (and nothing was written). `hide` is a top-level key to skip. */
static int jw_value(javamap_writer *w, json_t *v, unsigned depth, const char *hide)
{
    char num[40];
    if (depth > w->max_depth) w->max_depth = depth;
    if (depth > w->depth_limit) {
        w->fail = 1;
        return 0;
    }
    switch (json_typeof(v)) {
    case JSON_STRING:
        if (w->absent && w->absent(json_string_value(v), json_string_length(v))) return 0;
        jw_put(w, json_string_value(v), json_string_length(v));
        return 1;
    case JSON_INTEGER:
        jw_put(w, num,
               (size_t)snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v)));
        return 1;
    case JSON_REAL:
        jw_put(w, num, javamap_double(json_real_value(v), num));
        return 1;
    case JSON_TRUE:
        jw_put(w, "true", 4);
        return 1;
    case JSON_FALSE:
        jw_put(w, "false", 5);
        return 1;
    case JSON_NULL:
        return 0;
    case JSON_ARRAY: {
        size_t save = w->len, save_u = w->units, i;
        int any = 0;
        json_t *m;
        jw_put(w, "[", 1);
        json_array_foreach(v, i, m)
        {
            size_t s2 = w->len, s2u = w->units;
            if (any) jw_put(w, ", ", 2);
            if (jw_value(w, m, depth + 1, NULL)) {
                any = 1;
            } else {
                w->len = s2;
                w->units = s2u;
            }
            if (w->fail) return 0;
        }
        if (!any) {
            w->len = save;
            w->units = save_u;
            return 0;
        }
        jw_put(w, "]", 1);
        return 1;
    }
    case JSON_OBJECT:
        break;
    }
    size_t n = json_object_size(v);
    if (n == 0) return 0;
    uint64_t *order = NULL;
    void **iters = NULL;
    size_t tmp_save = w->tmp_used;
    if (w->buf) { /* the write pass needs HashMap order */
        size_t need = n * (sizeof(uint64_t) + sizeof(void *));
        size_t start = w->tmp_used + (size_t)(-(uintptr_t)(w->tmp + w->tmp_used) & 7);
        if (n > UINT32_MAX || start > w->tmp_cap || need > w->tmp_cap - start) {
            w->fail = 1;
            return 0;
        }
        order = (uint64_t *)(void *)(w->tmp + start);
        iters = (void **)(void *)(w->tmp + start + n * sizeof(uint64_t));
        w->tmp_used = start + need;
        size_t cap = 16;
        while (n > cap / 4 * 3)
            cap *= 2;
        size_t k = 0;
        for (void *it = json_object_iter(v); it && k < n; it = json_object_iter_next(v, it), k++) {
            uint32_t h = java_hash(json_object_iter_key(it), json_object_iter_key_len(it));
            h ^= h >> 16;
            order[k] = (uint64_t)(h & (cap - 1)) << 32 | k;
            iters[k] = it;
        }
        n = k;
        heap_sort(order, n);
    }
    size_t save = w->len, save_u = w->units;
    int any = 0;
    jw_put(w, "{", 1);
    void *it = order ? NULL : json_object_iter(v);
    for (size_t k = 0; k < n; k++) {
        if (order) it = iters[order[k] & 0xffffffffu];
        if (!it) break;
        const char *key = json_object_iter_key(it);
        size_t klen = json_object_iter_key_len(it);
        json_t *m = json_object_iter_value(it);
        if (!order) it = json_object_iter_next(v, it);
        if (hide && strlen(hide) == klen && memcmp(key, hide, klen) == 0) continue;
        size_t s2 = w->len, s2u = w->units;
        if (any) jw_put(w, ", ", 2);
        jw_put(w, key, klen);
        jw_put(w, "=", 1);
        if (jw_value(w, m, depth + 1, NULL)) {
            any = 1;
        } else {
            w->len = s2;
            w->units = s2u;
        }
        if (w->fail) break;
    }
    w->tmp_used = tmp_save;
    if (w->fail || !any) {
        w->len = save;
        w->units = save_u;
        return 0;
    }
    jw_put(w, "}", 1);
    return 1;
}

int javamap_write(javamap_writer *w, json_t *v, const char *hide)
{
    return jw_value(w, v, 1, hide);
}

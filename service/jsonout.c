/*
 * jsonout.c — compact JSON text of a jansson value (see jsonout.h).
 */
#include "jsonout.h"

#include "common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* 1 for the bytes json_dumps escapes (controls, quote, backslash). */
static const unsigned char needs_escape[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,         1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, ['"'] = 1, ['\\'] = 1,
};

static void put_string(nt_buf *b, const char *s, size_t n)
{
    nt_buf_char(b, '"');
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!needs_escape[c]) continue;
        nt_buf_add(b, s + run, i - run);
        run = i + 1;
        char esc[8];
        switch (c) {
        case '"':
            nt_buf_add(b, "\\\"", 2);
            break;
        case '\\':
            nt_buf_add(b, "\\\\", 2);
            break;
        case '\b':
            nt_buf_add(b, "\\b", 2);
            break;
        case '\f':
            nt_buf_add(b, "\\f", 2);
            break;
        case '\n':
            nt_buf_add(b, "\\n", 2);
            break;
        case '\r':
            nt_buf_add(b, "\\r", 2);
            break;
        case '\t':
            nt_buf_add(b, "\\t", 2);
            break;
        default:
            snprintf(esc, sizeof esc, "\\u%04X", (unsigned)c);
            nt_buf_add(b, esc, 6);
            break;
        }
    }
    nt_buf_add(b, s + run, n - run);
    nt_buf_char(b, '"');
}

static void put_value(nt_buf *b, const json_t *v, int depth)
{
    char num[32];
    if (depth > 2048) { /* jansson's own parser bound; a deeper tree is not ours */
        b->oom = 1;
        return;
    }
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        nt_buf_char(b, '{');
        int first = 1;
        for (void *it = json_object_iter((json_t *)v); it;
             it = json_object_iter_next((json_t *)v, it)) {
            if (!first) nt_buf_char(b, ',');
            first = 0;
            const char *k = json_object_iter_key(it);
            put_string(b, k, json_object_iter_key_len(it));
            nt_buf_char(b, ':');
            put_value(b, json_object_iter_value(it), depth + 1);
        }
        nt_buf_char(b, '}');
        break;
    }
    case JSON_ARRAY: {
        nt_buf_char(b, '[');
        for (size_t i = 0; i < json_array_size(v); i++) {
            if (i) nt_buf_char(b, ',');
            put_value(b, json_array_get(v, i), depth + 1);
        }
        nt_buf_char(b, ']');
        break;
    }
    case JSON_STRING:
        put_string(b, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER: {
        int n = snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        nt_buf_add(b, num, (size_t)n);
        break;
    }
    case JSON_REAL: {
        char *t = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        if (!t) {
            b->oom = 1;
            return;
        }
        nt_buf_str(b, t);
        free(t);
        break;
    }
    case JSON_TRUE:
        nt_buf_add(b, "true", 4);
        break;
    case JSON_FALSE:
        nt_buf_add(b, "false", 5);
        break;
    case JSON_NULL:
        nt_buf_add(b, "null", 4);
        break;
    }
}

char *nt_json_dumps(const json_t *v)
{
    if (!json_is_object(v) && !json_is_array(v)) return NULL;
    nt_buf b = {0};
    nt_buf_reserve(&b, 4096);
    put_value(&b, v, 0);
    if (b.oom) {
        nt_buf_free(&b);
        return NULL;
    }
    return b.p;
}

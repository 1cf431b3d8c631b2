/*
 * log.c — JSON-lines logger with secret redaction (see log.h).
 *
 * A line is built by a small JSON writer of our own rather than json_dumps():
 * jansson refuses strings that are not valid UTF-8, and a log line must never
 * be lost because a client sent garbage. The writer walks the fields object
 * (insertion order, depth-capped) and passes every string — keys included —
 * through one routine that first redacts and then escapes:
 *
 *   - redaction marks every byte covered by an occurrence of any registered
 *     secret (overlapping occurrences included), then each run of marked bytes
 *     is written as [REDACTED]. Marking first makes overlapping or adjacent
 *     secrets come out right without any re-scanning.
 *   - escaping writes valid UTF-8 sequences unchanged, the JSON short escapes
 *     for quote, backslash and \n \r \t \b \f, \u00XX for other control bytes
 *     and DEL, and \u00XX (the byte's value) for every byte that is not part
 *     of a valid UTF-8 sequence (overlong forms and surrogates included).
 *
 * One mutex guards the secret list and the output: the line is formatted and
 * written with a single fwrite while it is held, so lines never interleave
 * and a secret added by one thread is honoured by the next line of any other.
 * The level is an atomic so a filtered-out line costs one load.
 */
#include "log.h"

#include "common.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define LOG_SECRET_MIN 4
#define LOG_MAX_DEPTH 32
#define LOG_REDACTED "[REDACTED]"

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic int log_min_level = NT_LOG_INFO;
static FILE *log_out;      /* NULL = stderr; guarded by log_lock */
static char **log_secrets; /* guarded by log_lock */
static size_t *log_secret_lens;
static size_t log_n_secrets;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

/* ---- a growable byte buffer ---------------------------------------------- */

/* ---- escaping -------------------------------------------------------------- */

static void escape_bytes(nt_buf *b, const unsigned char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        const char *short_esc = NULL;
        switch (c) {
        case '"':
            short_esc = "\\\"";
            break;
        case '\\':
            short_esc = "\\\\";
            break;
        case '\n':
            short_esc = "\\n";
            break;
        case '\r':
            short_esc = "\\r";
            break;
        case '\t':
            short_esc = "\\t";
            break;
        case '\b':
            short_esc = "\\b";
            break;
        case '\f':
            short_esc = "\\f";
            break;
        default:
            break;
        }
        if (short_esc) {
            nt_buf_str(b, short_esc);
            i++;
            continue;
        }
        size_t k = c < 0x20 || c == 0x7f ? 0 : nt_utf8_seq_len(s + i, n - i);
        if (k == 0) {
            char u[7] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15], 0};
            nt_buf_add(b, u, 6);
            i++;
        } else {
            nt_buf_add(b, (const char *)s + i, k);
            i += k;
        }
    }
}

/* Write s as a JSON string (with quotes), secrets redacted. Caller holds log_lock. */
static void write_string(nt_buf *b, const char *s, size_t n)
{
    nt_buf_char(b, '"');
    unsigned char small[512];
    unsigned char *mask = NULL;
    int any = 0;
    if (log_n_secrets && n >= LOG_SECRET_MIN) {
        mask = n <= sizeof small ? small : malloc(n);
        if (!mask) {
            /* Cannot mark safely: write nothing of the value rather than risk a secret. */
            nt_buf_str(b, LOG_REDACTED "\"");
            return;
        }
        memset(mask, 0, n);
        for (size_t k = 0; k < log_n_secrets; k++) {
            size_t sl = log_secret_lens[k];
            const char *from = s;
            size_t left = n;
            const char *hit;
            while (left >= sl && (hit = memmem(from, left, log_secrets[k], sl))) {
                memset(mask + (hit - s), 1, sl);
                any = 1;
                left -= (size_t)(hit - from) + 1;
                from = hit + 1;
            }
        }
    }
    if (!any) {
        escape_bytes(b, (const unsigned char *)s, n);
    } else {
        size_t i = 0;
        while (i < n) {
            size_t j = i;
            if (mask[i]) {
                while (j < n && mask[j])
                    j++;
                nt_buf_str(b, LOG_REDACTED);
            } else {
                while (j < n && !mask[j])
                    j++;
                escape_bytes(b, (const unsigned char *)s + i, j - i);
            }
            i = j;
        }
    }
    if (mask && mask != small) free(mask);
    nt_buf_char(b, '"');
}

static void write_cstring(nt_buf *b, const char *s)
{
    if (!s) s = "";
    write_string(b, s, strlen(s));
}

static void write_real(nt_buf *b, double v)
{
    if (!isfinite(v)) {
        nt_buf_str(b, "null");
        return;
    }
    char tmp[40];
    /* Shortest %g precision that reads back as the same double. */
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*g", prec, v);
        if (strtod(tmp, NULL) == v) break;
    }
    nt_buf_str(b, tmp);
}

static void write_value(nt_buf *b, json_t *v, int depth)
{
    if (depth > LOG_MAX_DEPTH) {
        nt_buf_str(b, "\"[too deep]\"");
        return;
    }
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        const char *k;
        json_t *x;
        size_t idx = 0;
        nt_buf_char(b, '{');
        json_object_foreach(v, k, x)
        {
            if (idx++) nt_buf_char(b, ',');
            write_cstring(b, k);
            nt_buf_char(b, ':');
            write_value(b, x, depth + 1);
        }
        nt_buf_char(b, '}');
        break;
    }
    case JSON_ARRAY: {
        size_t i;
        json_t *x;
        nt_buf_char(b, '[');
        json_array_foreach(v, i, x)
        {
            if (i) nt_buf_char(b, ',');
            write_value(b, x, depth + 1);
        }
        nt_buf_char(b, ']');
        break;
    }
    case JSON_STRING:
        write_string(b, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER: {
        char tmp[32];
        snprintf(tmp, sizeof tmp, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        nt_buf_str(b, tmp);
        break;
    }
    case JSON_REAL:
        write_real(b, json_real_value(v));
        break;
    case JSON_TRUE:
        nt_buf_str(b, "true");
        break;
    case JSON_FALSE:
        nt_buf_str(b, "false");
        break;
    case JSON_NULL:
        nt_buf_str(b, "null");
        break;
    }
}

static int reserved_key(const char *k)
{
    return !strcmp(k, "ts") || !strcmp(k, "level") || !strcmp(k, "event") || !strcmp(k, "msg");
}

/* Caller holds log_lock. Returns a malloc'd line or NULL on OOM. */
static char *format_locked(nt_time_ms ts, log_level lvl, const char *event, const char *msg,
                           json_t *fields)
{
    nt_buf b = {0};
    char tbuf[NT_TIME_BUF];
    nt_buf_str(&b, "{\"ts\":\"");
    nt_buf_str(&b, nt_time_format(ts, tbuf));
    nt_buf_str(&b, "\",\"level\":\"");
    nt_buf_str(&b, log_level_name(lvl));
    nt_buf_str(&b, "\",\"event\":");
    write_cstring(&b, event);
    nt_buf_str(&b, ",\"msg\":");
    write_cstring(&b, msg);
    if (json_is_object(fields)) {
        const char *k;
        json_t *x;
        json_object_foreach(fields, k, x)
        {
            if (reserved_key(k)) continue;
            nt_buf_char(&b, ',');
            write_cstring(&b, k);
            nt_buf_char(&b, ':');
            write_value(&b, x, 1);
        }
    }
    nt_buf_str(&b, "}\n");
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    return b.p;
}

/* ---- public API ------------------------------------------------------------ */

void log_set_level(log_level lvl)
{
    atomic_store(&log_min_level, (int)lvl);
}

log_level log_get_level(void)
{
    return (log_level)atomic_load(&log_min_level);
}

void log_set_output(FILE *f)
{
    pthread_mutex_lock(&log_lock);
    log_out = f;
    pthread_mutex_unlock(&log_lock);
}

nt_status log_level_parse(const char *s, log_level *out, nt_err *err)
{
    if (!s) return nt_fail(err, NT_ERR_INVALID, "no log level given");
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(s, level_names[i]) == 0) {
            *out = (log_level)i;
            return NT_OK;
        }
    }
    if (strcasecmp(s, "warning") == 0) {
        *out = NT_LOG_WARN;
        return NT_OK;
    }
    return nt_fail(err, NT_ERR_INVALID, "'%.64s' is not a log level (debug, info, warn or error)",
                   s);
}

const char *log_level_name(log_level lvl)
{
    return (unsigned)lvl < 4 ? level_names[lvl] : "error";
}

char *log_format_line(long long ts_ms, log_level lvl, const char *event, const char *msg,
                      json_t *fields)
{
    pthread_mutex_lock(&log_lock);
    char *line = format_locked((nt_time_ms)ts_ms, lvl, event, msg, fields);
    pthread_mutex_unlock(&log_lock);
    json_decref(fields);
    return line;
}

void log_json(log_level lvl, const char *event, const char *msg, json_t *fields)
{
    if ((int)lvl < atomic_load(&log_min_level)) {
        json_decref(fields);
        return;
    }
    nt_time_ms now = nt_now_ms();
    pthread_mutex_lock(&log_lock);
    FILE *f = log_out ? log_out : stderr;
    char *line = format_locked(now, lvl, event, msg, fields);
    if (line) {
        fwrite(line, 1, strlen(line), f);
    } else {
        static const char oom[] = "{\"level\":\"error\",\"event\":\"log_nomem\",\"msg\":\"out of "
                                  "memory formatting a log line\"}\n";
        fwrite(oom, 1, sizeof oom - 1, f);
    }
    fflush(f);
    pthread_mutex_unlock(&log_lock);
    free(line);
    json_decref(fields);
}

void log_msg(log_level lvl, const char *event, const char *fmt, ...)
{
    if ((int)lvl < atomic_load(&log_min_level)) return;
    char small[1024];
    char *big = NULL;
    const char *msg = small;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) {
        msg = "(unformattable log message)";
    } else if ((size_t)n >= sizeof small && (big = malloc((size_t)n + 1)) != NULL) {
        va_start(ap, fmt);
        vsnprintf(big, (size_t)n + 1, fmt, ap);
        va_end(ap);
        msg = big;
    } /* else on OOM: keep the truncated text in `small` */
    log_json(lvl, event, msg, NULL);
    free(big);
}

void log_add_secret(const char *s)
{
    if (!s) return;
    size_t n = strlen(s);
    if (n < LOG_SECRET_MIN) return;
    pthread_mutex_lock(&log_lock);
    for (size_t i = 0; i < log_n_secrets; i++) {
        if (log_secret_lens[i] == n && memcmp(log_secrets[i], s, n) == 0) goto out;
    }
    char **ns = realloc(log_secrets, (log_n_secrets + 1) * sizeof *ns);
    if (!ns) goto out;
    log_secrets = ns;
    size_t *nl = realloc(log_secret_lens, (log_n_secrets + 1) * sizeof *nl);
    if (!nl) goto out;
    log_secret_lens = nl;
    char *copy = strdup(s);
    if (!copy) goto out;
    log_secrets[log_n_secrets] = copy;
    log_secret_lens[log_n_secrets] = n;
    log_n_secrets++;
out:
    pthread_mutex_unlock(&log_lock);
}

void log_reset_secrets(void)
{
    pthread_mutex_lock(&log_lock);
    for (size_t i = 0; i < log_n_secrets; i++)
        free(log_secrets[i]);
    free(log_secrets);
    free(log_secret_lens);
    log_secrets = NULL;
    log_secret_lens = NULL;
    log_n_secrets = 0;
    pthread_mutex_unlock(&log_lock);
}

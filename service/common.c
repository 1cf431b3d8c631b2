/*
 * common.c — status messages, time parsing/formatting and constant-time
 * comparison shared by every module. See common.h for the contracts.
 */
#include "common.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

nt_status nt_fail(nt_err *err, nt_status status, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return status;
}

nt_status nt_err_prefix(nt_err *err, nt_status status, const char *fmt, ...)
{
    if (!err) return status;
    char old[NT_ERR_MSG_MAX];
    memcpy(old, err->msg, sizeof old);
    old[sizeof old - 1] = '\0';
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    if (n < 0) n = 0;
    size_t used = (size_t)n < sizeof err->msg ? (size_t)n : sizeof err->msg - 1;
    /* then ": " and as much of the old message as fits (no snprintf: the
     * compiler cannot see that the cut is intended) */
    static const char sep[] = ": ";
    for (size_t i = 0; old[0] && i < sizeof sep - 1 && used < sizeof err->msg - 1; i++)
        err->msg[used++] = sep[i];
    size_t room = sizeof err->msg - 1 - used, n_old = strlen(old);
    if (old[0]) {
        if (n_old > room) n_old = room;
        memcpy(err->msg + used, old, n_old);
        used += n_old;
    }
    err->msg[used] = '\0';
    return status;
}

const char *nt_status_name(nt_status status)
{
    switch (status) {
    case NT_OK:
        return "ok";
    case NT_ERR_NOMEM:
        return "nomem";
    case NT_ERR_PARSE:
        return "parse";
    case NT_ERR_INVALID:
        return "invalid";
    case NT_ERR_UNSUPPORTED:
        return "unsupported";
    case NT_ERR_LIMIT:
        return "limit";
    case NT_ERR_NOTFOUND:
        return "not_found";
    case NT_ERR_IO:
        return "io";
    case NT_ERR_STORE:
        return "store";
    case NT_ERR_CONFLICT:
        return "conflict";
    }
    return "unknown";
}

nt_time_ms nt_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (nt_time_ms)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t nt_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar
 * (Howard Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int *y, unsigned *m, unsigned *d)
{
    z += 719468;
    const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const unsigned doe = (unsigned)(z - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const int64_t yy = (int64_t)yoe + era * 400;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int)(yy + (*m <= 2));
}

/* Days in month m (1..12) of year y, proleptic Gregorian. */
static int days_in_month(int y, int m)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : days[m - 1];
}

static int take_digits(const char *s, size_t len, size_t *pos, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (*pos >= len || s[*pos] < '0' || s[*pos] > '9') return -1;
        v = v * 10 + (s[(*pos)++] - '0');
    }
    *out = v;
    return 0;
}

static int expect_char(const char *s, size_t len, size_t *pos, char c)
{
    if (*pos >= len || s[*pos] != c) return -1;
    (*pos)++;
    return 0;
}

nt_status nt_time_parse(const char *s, size_t len, nt_time_ms *out, nt_err *err)
{
    size_t p = 0;
    int y, mo, d, h = 0, mi = 0, sec = 0, ms = 0;
    if (take_digits(s, len, &p, 4, &y) || expect_char(s, len, &p, '-') ||
        take_digits(s, len, &p, 2, &mo) || expect_char(s, len, &p, '-') ||
        take_digits(s, len, &p, 2, &d))
        goto bad;
    if (p < len && (s[p] == 'T' || s[p] == 't' || s[p] == ' ')) {
        p++;
        if (take_digits(s, len, &p, 2, &h) || expect_char(s, len, &p, ':') ||
            take_digits(s, len, &p, 2, &mi) || expect_char(s, len, &p, ':') ||
            take_digits(s, len, &p, 2, &sec))
            goto bad;
        if (p < len && s[p] == '.') {
            p++;
            int digits = 0;
            while (p < len && s[p] >= '0' && s[p] <= '9') {
                if (digits < 3) ms = ms * 10 + (s[p] - '0');
                digits++;
                p++;
            }
            if (digits == 0) goto bad;
            for (int i = digits; i < 3; i++)
                ms *= 10;
        }
        int offset_min = 0;
        if (p < len && (s[p] == 'Z' || s[p] == 'z')) {
            p++;
        } else if (p < len && (s[p] == '+' || s[p] == '-')) {
            int sign = s[p] == '-' ? -1 : 1, oh, om;
            p++;
            if (take_digits(s, len, &p, 2, &oh)) goto bad;
            if (p < len && s[p] == ':') p++;
            if (take_digits(s, len, &p, 2, &om)) goto bad;
            if (oh > 23 || om > 59) goto bad;
            offset_min = sign * (oh * 60 + om);
        } else {
            goto bad; /* a date-time without a zone is ambiguous */
        }
        if (p != len) goto bad;
        if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60) goto bad;
        if (d > days_in_month(y, mo)) goto no_day;
        int64_t days = days_from_civil(y, (unsigned)mo, (unsigned)d);
        int64_t secs = days * 86400 + h * 3600 + mi * 60 + sec - (int64_t)offset_min * 60;
        *out = secs * 1000 + ms;
        return NT_OK;
    }
    if (p != len || mo < 1 || mo > 12 || d < 1 || d > 31) goto bad;
    if (d > days_in_month(y, mo)) goto no_day;
    *out = days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 * 1000;
    return NT_OK;
bad:
    return nt_fail(err, NT_ERR_PARSE, "'%.*s' is not an RFC 3339 date-time",
                   (int)(len > 64 ? 64 : len), s);
no_day:
    return nt_fail(err, NT_ERR_PARSE, "'%.*s' is not an RFC 3339 date-time: %04d-%02d has %d days",
                   (int)(len > 64 ? 64 : len), s, y, mo, days_in_month(y, mo));
}

char *nt_time_format(nt_time_ms t, char buf[NT_TIME_BUF])
{
    int64_t secs = t >= 0 ? t / 1000 : (t - 999) / 1000;
    int ms = (int)(t - secs * 1000);
    int64_t days = secs >= 0 ? secs / 86400 : (secs - 86399) / 86400;
    int rem = (int)(secs - days * 86400);
    int y;
    unsigned m, d;
    civil_from_days(days, &y, &m, &d);
    snprintf(buf, NT_TIME_BUF, "%04d-%02u-%02uT%02d:%02d:%02d.%03dZ", y, m, d, rem / 3600,
             rem / 60 % 60, rem % 60, ms);
    return buf;
}

nt_status nt_duration_parse(const char *s, size_t len, nt_time_ms *out, nt_err *err)
{
    size_t p = 0;
    int64_t n = 0;
    while (p < len && s[p] >= '0' && s[p] <= '9') {
        if (n > 1000000000) goto bad;
        n = n * 10 + (s[p++] - '0');
    }
    if (p == 0 || p + 1 != len) goto bad;
    int64_t unit;
    switch (s[p]) {
    case 's':
        unit = 1000;
        break;
    case 'm':
        unit = 60 * 1000;
        break;
    case 'h':
        unit = 3600 * 1000;
        break;
    case 'd':
        unit = 86400 * 1000;
        break;
    case 'w':
        unit = 7 * 86400 * 1000;
        break;
    default:
        goto bad;
    }
    *out = n * unit;
    return NT_OK;
bad:
    return nt_fail(err, NT_ERR_PARSE,
                   "'%.*s' is not a duration (a number followed by s, m, h, d or w)",
                   (int)(len > 32 ? 32 : len), s);
}

int nt_secret_equal(const char *a, size_t alen, const char *b, size_t blen)
{
    /* Compare over the longer length so the time taken does not reveal where
     * the first difference is; the length difference is folded in too. */
    size_t n = alen > blen ? alen : blen;
    volatile unsigned char diff = (unsigned char)(alen != blen);
    for (size_t i = 0; i < n; i++) {
        unsigned char x = i < alen ? (unsigned char)a[i] : 0;
        unsigned char y = i < blen ? (unsigned char)b[i] : 0;
        diff |= (unsigned char)(x ^ y);
    }
    return diff == 0;
}

/* Length of the valid UTF-8 sequence starting at s (1..4), or 0 when the byte
 * at s does not start one (RFC 3629: no overlongs, no surrogates, <= U+10FFFF). */
size_t nt_utf8_seq_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    if (c < 0x80) return 1;
    if (c < 0xC2) return 0;
    if (c < 0xE0) return n >= 2 && (s[1] & 0xC0) == 0x80 ? 2 : 0;
    if (c < 0xF0) {
        if (n < 3 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80) return 0;
        if (c == 0xE0 && s[1] < 0xA0) return 0;  /* overlong */
        if (c == 0xED && s[1] >= 0xA0) return 0; /* surrogate */
        return 3;
    }
    if (c < 0xF5) {
        if (n < 4 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80)
            return 0;
        if (c == 0xF0 && s[1] < 0x90) return 0;  /* overlong */
        if (c == 0xF4 && s[1] >= 0x90) return 0; /* > U+10FFFF */
        return 4;
    }
    return 0;
}

size_t nt_utf8_invalid_at(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        if (s[i] < 0x80) { /* ASCII, the common case, without a call per byte */
            i++;
            continue;
        }
        size_t k = nt_utf8_seq_len(s + i, n - i);
        if (k == 0) return i;
        i += k;
    }
    return n;
}

int nt_hex_digit(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int nt_buf_reserve(nt_buf *b, size_t extra)
{
    if (b->oom) return -1;
    if (extra < b->cap && b->len < b->cap - extra) return 0; /* len + extra + 1 <= cap */
    if (extra > SIZE_MAX / 2 - b->len) {
        b->oom = 1;
        return -1;
    }
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        b->oom = 1;
        return -1;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

void nt_buf_add(nt_buf *b, const void *s, size_t n)
{
    if (nt_buf_reserve(b, n) != 0) return;
    if (n) memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void nt_buf_str(nt_buf *b, const char *s)
{
    nt_buf_add(b, s, strlen(s));
}

void nt_buf_char(nt_buf *b, char c)
{
    nt_buf_add(b, &c, 1);
}

void nt_buf_free(nt_buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
    b->oom = 0;
}

long long nt_decimal_parse(const char *s, size_t n, long long lo, long long hi)
{
    if (n == 0 || n > 18) return -1;
    long long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v < lo || v > hi ? -1 : v;
}

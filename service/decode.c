/*
 * decode.c — Firehose envelope scanner, record decoding and record-shape
 * classification (see decode.h for the pipeline and the contracts).
 *
 * 1. fh_scan is a hand-written, zero-copy JSON scanner for the one document
 *    shape Firehose sends. A 64 MiB body with 10,000 records of ~100 KB of
 *    base64 would cost a DOM parser tens of megabytes of string copies; here the
 *    "data" strings are found with two memchr() calls each (closing quote, then
 *    "any backslash before it?") and recorded as (pointer, length) slices into
 *    the body. Everything else (keys, requestId, unknown values) is validated
 *    strictly: string escapes, UTF-8, control characters, number grammar,
 *    literals, nesting (an explicit stack of at most FH_MAX_DEPTH container
 *    bytes — no recursion, so 100k '[' cannot overflow the C stack). Each error
 *    names the place ("records[3].data is not a string", "truncated body: input
 *    ends at offset 812 inside records[2].data").
 *    The slices are collected in env->records first and the callback runs only
 *    after the closing brace has been seen, so a body that turns out to be
 *    malformed at its end has not had any record processed.
 *
 * 2. dec_record base64-decodes into the reusable scratch buffer, gunzips when
 *    the bytes start with the gzip magic, and unpacks CloudWatch Logs
 *    subscription messages (jansson) into their log event messages.
 *
 * 3. dec_split parses a unit into jansson trees, one JSON value at a time,
 *    with jfast_loadb (json_loadb's exact result at a fraction of its cost,
 *    see jfast.h; JSON_DISABLE_EOF_CHECK reports where the value ended, so
 *    NDJSON and concatenated values need no line splitting), after a depth
 *    pre-scan that skips over strings with memchr. Each value is classified
 *    per docs/delivery.md §2.4 and every CloudTrail record found is handed
 *    to the callback as a borrowed json_t.
 */
#include "decode.h"

#include "base64.h"
#include "gz.h"
#include "jfast.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#define TRY(expr)                                                                                  \
    do {                                                                                           \
        nt_status try_st_ = (expr);                                                                \
        if (try_st_ != NT_OK) return try_st_;                                                      \
    } while (0)

/* ========================================================================= */
/* Shared JSON lexical helpers                                               */

static long hex4(const char *p)
{
    long v = 0;
    for (int k = 0; k < 4; k++) {
        int h = nt_hex_digit((unsigned char)p[k]);
        if (h < 0) return -1;
        v = v << 4 | h;
    }
    return v;
}

/* Length of the escape sequence starting at the backslash p (2, 6 or 12 for a
 * surrogate pair), 0 when the input ends inside it, -1 when it is invalid. */
static int esc_len(const char *p, const char *end)
{
    size_t avail = (size_t)(end - p);
    if (avail < 2) return 0;
    char c = p[1];
    if (c == '"' || c == '\\' || c == '/' || c == 'b' || c == 'f' || c == 'n' || c == 'r' ||
        c == 't')
        return 2;
    if (c != 'u') return -1;
    for (size_t k = 2; k < 6; k++) {
        if (k >= avail) return 0;
        if (nt_hex_digit((unsigned char)p[k]) < 0) return -1;
    }
    long hi = hex4(p + 2);
    if (hi >= 0xDC00 && hi <= 0xDFFF) return -1;
    if (hi < 0xD800 || hi > 0xDBFF) return 6;
    if (avail < 7) return 0;
    if (p[6] != '\\') return -1;
    if (avail < 8) return 0;
    if (p[7] != 'u') return -1;
    for (size_t k = 8; k < 12; k++) {
        if (k >= avail) return 0;
        if (nt_hex_digit((unsigned char)p[k]) < 0) return -1;
    }
    long lo = hex4(p + 8);
    return lo >= 0xDC00 && lo <= 0xDFFF ? 12 : -1;
}

nt_status fh_unescape(const char *s, size_t len, char *out, size_t cap, size_t *outlen, nt_err *err)
{
    const char *p = s, *end = s + len;
    size_t o = 0;
    while (p < end) {
        if (*p != '\\') {
            /* Copy the whole run up to the next backslash at once. */
            const char *bs = memchr(p, '\\', (size_t)(end - p));
            size_t run = (size_t)((bs ? bs : end) - p);
            if (run > cap - o)
                return nt_fail(err, NT_ERR_LIMIT, "unescaped string exceeds %zu bytes", cap);
            memcpy(out + o, p, run);
            o += run;
            p += run;
            continue;
        }
        int n = esc_len(p, end);
        if (n <= 0)
            return nt_fail(err, NT_ERR_PARSE, "invalid JSON escape at offset %zu", (size_t)(p - s));
        unsigned long cp;
        char simple = 0;
        switch (p[1]) {
        case '"':
            simple = '"';
            break;
        case '\\':
            simple = '\\';
            break;
        case '/':
            simple = '/';
            break;
        case 'b':
            simple = '\b';
            break;
        case 'f':
            simple = '\f';
            break;
        case 'n':
            simple = '\n';
            break;
        case 'r':
            simple = '\r';
            break;
        case 't':
            simple = '\t';
            break;
        default:
            break;
        }
        if (n == 2) {
            if (o >= cap)
                return nt_fail(err, NT_ERR_LIMIT, "unescaped string exceeds %zu bytes", cap);
            out[o++] = simple;
            p += 2;
            continue;
        }
        cp = (unsigned long)hex4(p + 2);
        if (n == 12) cp = 0x10000 + ((cp - 0xD800) << 10) + ((unsigned long)hex4(p + 8) - 0xDC00);
        unsigned char u[4];
        size_t un;
        if (cp < 0x80) {
            u[0] = (unsigned char)cp;
            un = 1;
        } else if (cp < 0x800) {
            u[0] = (unsigned char)(0xC0 | cp >> 6);
            u[1] = (unsigned char)(0x80 | (cp & 0x3F));
            un = 2;
        } else if (cp < 0x10000) {
            u[0] = (unsigned char)(0xE0 | cp >> 12);
            u[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
            u[2] = (unsigned char)(0x80 | (cp & 0x3F));
            un = 3;
        } else {
            u[0] = (unsigned char)(0xF0 | cp >> 18);
            u[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
            u[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
            u[3] = (unsigned char)(0x80 | (cp & 0x3F));
            un = 4;
        }
        if (cap - o < un)
            return nt_fail(err, NT_ERR_LIMIT, "unescaped string exceeds %zu bytes", cap);
        memcpy(out + o, u, un);
        o += un;
        p += n;
    }
    *outlen = o;
    return NT_OK;
}

/* ========================================================================= */
/* a) Firehose envelope scanner                                              */

typedef enum fh_ctx {
    CTX_ENVELOPE,
    CTX_REQUEST_ID,
    CTX_TIMESTAMP,
    CTX_RECORDS,
    CTX_RECORD,
    CTX_DATA,
} fh_ctx;

typedef struct fh_scanner {
    const char *base, *p, *end;
    fh_ctx ctx;
    size_t record; /* index, in CTX_RECORD and CTX_DATA */
} fh_scanner;

/* Where the scanner is, for messages: "records[3].data". */
static const char *sc_where(const fh_scanner *sc, char *buf, size_t cap)
{
    switch (sc->ctx) {
    case CTX_ENVELOPE:
        return "the envelope";
    case CTX_REQUEST_ID:
        return "requestId";
    case CTX_TIMESTAMP:
        return "timestamp";
    case CTX_RECORDS:
        return "records";
    case CTX_RECORD:
        snprintf(buf, cap, "records[%zu]", sc->record);
        return buf;
    case CTX_DATA:
        snprintf(buf, cap, "records[%zu].data", sc->record);
        return buf;
    }
    return "the envelope";
}

static nt_status sc_truncated(const fh_scanner *sc, nt_err *err)
{
    char buf[48];
    return nt_fail(err, NT_ERR_PARSE, "truncated body: input ends at offset %zu inside %s",
                   (size_t)(sc->end - sc->base), sc_where(sc, buf, sizeof buf));
}

/* Describe the byte at p for a message: 'x' or byte 0xHH. */
static const char *sc_byte_desc(unsigned char c, char *buf, size_t cap)
{
    if (c >= 0x20 && c < 0x7f)
        snprintf(buf, cap, "'%c'", c);
    else
        snprintf(buf, cap, "byte 0x%02x", c);
    return buf;
}

/* A syntax error at the current position (or truncation when at the end). */
static nt_status sc_syntax(const fh_scanner *sc, const char *expected, nt_err *err)
{
    if (sc->p >= sc->end) return sc_truncated(sc, err);
    char where[48], what[16];
    return nt_fail(err, NT_ERR_PARSE, "not JSON: expected %s but found %s at offset %zu in %s",
                   expected, sc_byte_desc((unsigned char)*sc->p, what, sizeof what),
                   (size_t)(sc->p - sc->base), sc_where(sc, where, sizeof where));
}

static nt_status sc_syntax_at(const fh_scanner *sc, const char *at, const char *problem,
                              nt_err *err)
{
    char where[48];
    return nt_fail(err, NT_ERR_PARSE, "not JSON: %s at offset %zu in %s", problem,
                   (size_t)(at - sc->base), sc_where(sc, where, sizeof where));
}

static inline void sc_ws(fh_scanner *sc)
{
    const char *p = sc->p, *end = sc->end;
    while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
        p++;
    sc->p = p;
}

/* Skip whitespace; fail with "truncated" if nothing follows. */
static inline nt_status sc_more(fh_scanner *sc, nt_err *err)
{
    sc_ws(sc);
    return sc->p < sc->end ? NT_OK : sc_truncated(sc, err);
}

/* The JSON type a value starting with c would have, or NULL if c cannot start
 * a value. */
static const char *sc_type_name(char c)
{
    switch (c) {
    case '{':
        return "an object";
    case '[':
        return "an array";
    case '"':
        return "a string";
    case 't':
    case 'f':
        return "a boolean";
    case 'n':
        return "null";
    default:
        return (c == '-' || (c >= '0' && c <= '9')) ? "a number" : NULL;
    }
}

/* A value of the wrong type where c starts it: "records is not an array (found
 * a string)". Not-a-value characters are syntax errors instead. */
static nt_status sc_wrong_type(const fh_scanner *sc, const char *what, const char *want,
                               nt_err *err)
{
    const char *found = sc_type_name(*sc->p);
    if (!found) return sc_syntax(sc, "a JSON value", err);
    return nt_fail(err, NT_ERR_INVALID, "%s is not %s (found %s at offset %zu)", what, want, found,
                   (size_t)(sc->p - sc->base));
}

/* Scan the string literal at sc->p (which is '"'). *s and *n receive the raw
 * contents, *escaped whether a backslash occurs. With validate, control
 * characters and malformed UTF-8 are errors too (keys, requestId, skipped
 * values); "data" is scanned without it (base64 checks its bytes). Escape
 * sequences are always checked. */
static nt_status sc_string(fh_scanner *sc, const char **s, size_t *n, int *escaped, int validate,
                           nt_err *err)
{
    const char *start = sc->p + 1, *end = sc->end;
    const char *q = memchr(start, '"', (size_t)(end - start));
    const char *bs = memchr(start, '\\', (size_t)((q ? q : end) - start));
    if (bs) {
        /* Slow path: walk escapes to find the real closing quote. */
        const char *p = bs;
        for (;;) {
            while (p < end && *p != '"' && *p != '\\')
                p++;
            if (p >= end) {
                sc->p = end;
                return sc_truncated(sc, err);
            }
            if (*p == '"') break;
            int k = esc_len(p, end);
            if (k == 0) {
                sc->p = end;
                return sc_truncated(sc, err);
            }
            if (k < 0) return sc_syntax_at(sc, p, "invalid escape sequence in a string", err);
            p += k;
        }
        q = p;
    } else if (!q) {
        sc->p = end;
        return sc_truncated(sc, err);
    }
    if (validate) {
        for (const char *c = start; c < q; c++)
            if ((unsigned char)*c < 0x20)
                return sc_syntax_at(sc, c, "unescaped control character in a string", err);
        size_t bad = nt_utf8_invalid_at((const unsigned char *)start, (size_t)(q - start));
        if (bad < (size_t)(q - start))
            return sc_syntax_at(sc, start + bad, "invalid UTF-8 in a string", err);
    }
    *s = start;
    *n = (size_t)(q - start);
    *escaped = bs != NULL;
    sc->p = q + 1;
    return NT_OK;
}

/* Scan a number at sc->p per the JSON grammar. When ival is not NULL it
 * receives the value if the number is an integer that fits in int64
 * (*is_int = 1); otherwise *is_int = 0 (fraction, exponent or overflow → 2). */
static nt_status sc_number(fh_scanner *sc, int64_t *ival, int *is_int, nt_err *err)
{
    const char *p = sc->p, *end = sc->end;
    int neg = 0, integer = 1, overflow = 0;
    uint64_t v = 0;
    if (*p == '-') {
        neg = 1;
        p++;
    }
    if (p >= end) goto truncated;
    if (*p == '0') {
        p++;
    } else if (*p >= '1' && *p <= '9') {
        while (p < end && *p >= '0' && *p <= '9') {
            unsigned d = (unsigned)(*p - '0');
            if (v > (UINT64_MAX - d) / 10)
                overflow = 1;
            else
                v = v * 10 + d;
            p++;
        }
    } else {
        sc->p = p;
        return sc_syntax(sc, "a digit", err);
    }
    if (p < end && *p == '.') {
        integer = 0;
        p++;
        if (p >= end) goto truncated;
        if (*p < '0' || *p > '9') {
            sc->p = p;
            return sc_syntax(sc, "a digit after '.'", err);
        }
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        integer = 0;
        p++;
        if (p < end && (*p == '+' || *p == '-')) p++;
        if (p >= end) goto truncated;
        if (*p < '0' || *p > '9') {
            sc->p = p;
            return sc_syntax(sc, "a digit in the exponent", err);
        }
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    }
    sc->p = p;
    if (ival) {
        if (!integer) {
            *is_int = 0;
        } else if (overflow || (neg ? v > (uint64_t)INT64_MAX + 1 : v > (uint64_t)INT64_MAX)) {
            *is_int = 2;
        } else {
            *is_int = 1;
            *ival = neg ? (int64_t)(0 - v) : (int64_t)v;
        }
    }
    return NT_OK;
truncated:
    sc->p = end;
    return sc_truncated(sc, err);
}

static nt_status sc_literal(fh_scanner *sc, nt_err *err)
{
    const char *lit = *sc->p == 't' ? "true" : *sc->p == 'f' ? "false" : "null";
    size_t n = strlen(lit), avail = (size_t)(sc->end - sc->p);
    if (memcmp(sc->p, lit, avail < n ? avail : n) != 0) return sc_syntax(sc, "a JSON value", err);
    if (avail < n) {
        sc->p = sc->end;
        return sc_truncated(sc, err);
    }
    sc->p += n;
    return NT_OK;
}

/* An object key at sc->p followed by ':' and whitespace; leaves sc->p on the
 * value (which is known to exist). */
static nt_status sc_key(fh_scanner *sc, const char **k, size_t *kn, int *kesc, nt_err *err)
{
    if (*sc->p != '"') return sc_syntax(sc, "a key string", err);
    TRY(sc_string(sc, k, kn, kesc, 1, err));
    TRY(sc_more(sc, err));
    if (*sc->p != ':') return sc_syntax(sc, "':' after a key", err);
    sc->p++;
    return sc_more(sc, err);
}

/* Does the key (raw contents, maybe escaped) equal the literal? */
static int sc_key_is(const char *k, size_t kn, int kesc, const char *lit)
{
    size_t ln = strlen(lit);
    if (!kesc) return kn == ln && memcmp(k, lit, ln) == 0;
    char buf[32];
    size_t n = 0;
    if (fh_unescape(k, kn, buf, sizeof buf, &n, NULL) != NT_OK) return 0;
    return n == ln && memcmp(buf, lit, ln) == 0;
}

/* Skip one JSON value at sc->p (whitespace already skipped), validating it.
 * depth = containers already open around it. Iterative: stack[] holds the
 * closing bracket of each open container. */
static nt_status sc_skip_value(fh_scanner *sc, int depth, nt_err *err)
{
    char stack[FH_MAX_DEPTH];
    int sp = 0;
    const char *k = NULL;
    size_t kn = 0;
    int kesc = 0;
    for (;;) {
        /* A value starts here. */
        char c = *sc->p;
        if (c == '{' || c == '[') {
            if (depth + sp + 1 > FH_MAX_DEPTH) {
                char where[48];
                return nt_fail(
                    err, NT_ERR_LIMIT, "JSON nested deeper than %d levels at offset %zu in %s",
                    FH_MAX_DEPTH, (size_t)(sc->p - sc->base), sc_where(sc, where, sizeof where));
            }
            stack[sp++] = c == '{' ? '}' : ']';
            sc->p++;
            TRY(sc_more(sc, err));
            if (*sc->p == stack[sp - 1]) {
                sc->p++;
                sp--;
            } else {
                if (c == '{') TRY(sc_key(sc, &k, &kn, &kesc, err));
                continue;
            }
        } else if (c == '"') {
            TRY(sc_string(sc, &k, &kn, &kesc, 1, err));
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            TRY(sc_number(sc, NULL, NULL, err));
        } else if (c == 't' || c == 'f' || c == 'n') {
            TRY(sc_literal(sc, err));
        } else {
            return sc_syntax(sc, "a JSON value", err);
        }
        /* After a value: close containers or move to the next element. */
        for (;;) {
            if (sp == 0) return NT_OK;
            TRY(sc_more(sc, err));
            char close = stack[sp - 1];
            if (*sc->p == close) {
                sc->p++;
                sp--;
                continue;
            }
            if (*sc->p != ',')
                return sc_syntax(sc, close == '}' ? "',' or '}'" : "',' or ']'", err);
            sc->p++;
            TRY(sc_more(sc, err));
            if (close == '}') TRY(sc_key(sc, &k, &kn, &kesc, err));
            break;
        }
    }
}

static nt_status fh_push(fh_envelope *env, const char *data, size_t n, unsigned flags, nt_err *err)
{
    if (env->record_count == env->records_cap) {
        size_t cap = env->records_cap ? env->records_cap * 2 : 64;
        fh_record *r = realloc(env->records, cap * sizeof *r);
        if (!r) return nt_fail(err, NT_ERR_NOMEM, "out of memory for %zu records", cap);
        env->records = r;
        env->records_cap = cap;
    }
    fh_record *r = &env->records[env->record_count++];
    r->data = data;
    r->len = n;
    r->flags = flags;
    return NT_OK;
}

/* One record object at sc->p ('{' already checked). */
static nt_status sc_record(fh_scanner *sc, fh_envelope *env, nt_err *err)
{
    const char *k = NULL, *data = NULL;
    size_t kn = 0, dn = 0;
    int kesc = 0, desc = 0, have = 0;
    sc->ctx = CTX_RECORD;
    sc->p++;
    TRY(sc_more(sc, err));
    if (*sc->p != '}') {
        for (;;) {
            TRY(sc_key(sc, &k, &kn, &kesc, err));
            if (sc_key_is(k, kn, kesc, "data")) {
                if (have)
                    return nt_fail(err, NT_ERR_INVALID, "records[%zu] has two \"data\" keys",
                                   sc->record);
                if (*sc->p != '"') {
                    char what[24];
                    snprintf(what, sizeof what, "records[%zu].data", sc->record);
                    return sc_wrong_type(sc, what, "a string", err);
                }
                sc->ctx = CTX_DATA;
                TRY(sc_string(sc, &data, &dn, &desc, 0, err));
                sc->ctx = CTX_RECORD;
                have = 1;
            } else {
                TRY(sc_skip_value(sc, 3, err));
            }
            TRY(sc_more(sc, err));
            if (*sc->p == '}') break;
            if (*sc->p != ',') return sc_syntax(sc, "',' or '}'", err);
            sc->p++;
            TRY(sc_more(sc, err));
        }
    }
    sc->p++; /* '}' */
    if (!have) return nt_fail(err, NT_ERR_INVALID, "records[%zu] has no \"data\"", sc->record);
    return fh_push(env, data, dn, desc ? FH_REC_ESCAPED : 0, err);
}

/* The records array at sc->p ('[' already checked). */
static nt_status sc_records(fh_scanner *sc, fh_envelope *env, nt_err *err)
{
    sc->ctx = CTX_RECORDS;
    sc->p++;
    TRY(sc_more(sc, err));
    if (*sc->p == ']') {
        sc->p++;
        return NT_OK;
    }
    for (size_t i = 0;; i++) {
        if (i >= FH_MAX_RECORDS)
            return nt_fail(err, NT_ERR_LIMIT, "more than %d records in one delivery",
                           FH_MAX_RECORDS);
        sc->record = i;
        if (*sc->p != '{') {
            char what[24];
            snprintf(what, sizeof what, "records[%zu]", i);
            sc->ctx = CTX_RECORDS;
            return sc_wrong_type(sc, what, "an object", err);
        }
        TRY(sc_record(sc, env, err));
        sc->ctx = CTX_RECORDS;
        TRY(sc_more(sc, err));
        if (*sc->p == ']') {
            sc->p++;
            return NT_OK;
        }
        if (*sc->p != ',') return sc_syntax(sc, "',' or ']' after a record", err);
        sc->p++;
        TRY(sc_more(sc, err));
    }
}

void fh_envelope_init(fh_envelope *env)
{
    memset(env, 0, sizeof *env);
}

void fh_envelope_free(fh_envelope *env)
{
    if (!env) return;
    free(env->records);
    memset(env, 0, sizeof *env);
}

static nt_status fh_scan_body(fh_scanner *sc, fh_envelope *env, nt_err *err)
{
    int have_id = 0, have_records = 0;
    const char *k = NULL;
    size_t kn = 0;
    int kesc = 0;

    sc_ws(sc);
    if (sc->p >= sc->end) return nt_fail(err, NT_ERR_PARSE, "not JSON: the body is empty");
    if (*sc->p != '{') return sc_wrong_type(sc, "the body", "a JSON object", err);
    sc->p++;
    TRY(sc_more(sc, err));
    if (*sc->p != '}') {
        for (;;) {
            TRY(sc_key(sc, &k, &kn, &kesc, err));
            if (sc_key_is(k, kn, kesc, "requestId")) {
                if (have_id) return nt_fail(err, NT_ERR_INVALID, "requestId is given twice");
                sc->ctx = CTX_REQUEST_ID;
                if (*sc->p != '"') return sc_wrong_type(sc, "requestId", "a string", err);
                const char *s = NULL;
                size_t n = 0;
                int esc = 0;
                TRY(sc_string(sc, &s, &n, &esc, 1, err));
                env->request_id_raw = s;
                env->request_id_raw_len = n;
                nt_status st = fh_unescape(s, n, env->request_id, FH_REQUEST_ID_MAX,
                                           &env->request_id_len, NULL);
                if (st == NT_ERR_LIMIT)
                    return nt_fail(err, NT_ERR_INVALID, "requestId is longer than %d bytes",
                                   FH_REQUEST_ID_MAX);
                if (st != NT_OK) return sc_syntax_at(sc, s, "invalid escape in requestId", err);
                env->request_id[env->request_id_len] = '\0';
                have_id = 1;
            } else if (sc_key_is(k, kn, kesc, "timestamp")) {
                if (env->has_timestamp)
                    return nt_fail(err, NT_ERR_INVALID, "timestamp is given twice");
                sc->ctx = CTX_TIMESTAMP;
                char c = *sc->p;
                if (c != '-' && (c < '0' || c > '9'))
                    return sc_wrong_type(sc, "timestamp", "an integer", err);
                int is_int = 0;
                const char *at = sc->p;
                TRY(sc_number(sc, &env->timestamp, &is_int, err));
                if (is_int == 0)
                    return nt_fail(err, NT_ERR_INVALID, "timestamp is not an integer (offset %zu)",
                                   (size_t)(at - sc->base));
                if (is_int == 2)
                    return nt_fail(err, NT_ERR_INVALID, "timestamp is out of range (offset %zu)",
                                   (size_t)(at - sc->base));
                env->has_timestamp = 1;
            } else if (sc_key_is(k, kn, kesc, "records")) {
                if (have_records) return nt_fail(err, NT_ERR_INVALID, "records is given twice");
                sc->ctx = CTX_RECORDS;
                if (*sc->p != '[') return sc_wrong_type(sc, "records", "an array", err);
                TRY(sc_records(sc, env, err));
                have_records = 1;
            } else {
                TRY(sc_skip_value(sc, 1, err));
            }
            sc->ctx = CTX_ENVELOPE;
            TRY(sc_more(sc, err));
            if (*sc->p == '}') break;
            if (*sc->p != ',') return sc_syntax(sc, "',' or '}'", err);
            sc->p++;
            TRY(sc_more(sc, err));
        }
    }
    sc->p++; /* '}' */
    sc_ws(sc);
    if (sc->p < sc->end)
        return nt_fail(err, NT_ERR_PARSE,
                       "not JSON: trailing data after the envelope at offset %zu",
                       (size_t)(sc->p - sc->base));
    if (!have_id) return nt_fail(err, NT_ERR_INVALID, "missing requestId");
    if (!have_records) return nt_fail(err, NT_ERR_INVALID, "missing records");
    return NT_OK;
}

nt_status fh_scan(const char *body, size_t len, fh_envelope *env, fh_record_fn fn, void *ud,
                  nt_err *err)
{
    fh_record *keep = env->records;
    size_t keep_cap = env->records_cap;
    memset(env, 0, sizeof *env);
    env->records = keep;
    env->records_cap = keep_cap;

    fh_scanner sc = {.base = body, .p = body, .end = body + len, .ctx = CTX_ENVELOPE};
    nt_status st = fh_scan_body(&sc, env, err);
    if (st != NT_OK) {
        env->record_count = 0;
        return st;
    }
    if (fn)
        for (size_t i = 0; i < env->record_count; i++)
            TRY(fn(ud, i, env->records[i].data, env->records[i].len, env->records[i].flags, err));
    return NT_OK;
}

/* ========================================================================= */
/* Structure pre-scan (jansson has no depth or size option)                  */

/* What jansson's tree of a value costs, estimated from its text. Measured on
 * jansson 2.14 (x86-64, glibc): an empty object 232 bytes, an empty array
 * 136, an integer 40, a one-byte string 88. The estimate rounds up: an object
 * 256, an array 144, a string (key or value) 64 + its length, and each ','
 * 48 (the element it introduces, at least a number). */
#define DEC_TREE_OBJECT 256u
#define DEC_TREE_ARRAY 144u
#define DEC_TREE_STRING 64u
#define DEC_TREE_ELEMENT 48u

typedef enum dec_scan_result { DEC_SCAN_OK = 0, DEC_SCAN_DEEP, DEC_SCAN_BIG } dec_scan_result;

/* Scan s[0..n) as a sequence of JSON values: DEC_SCAN_DEEP when one nests
 * deeper than DEC_MAX_DEPTH (*at = the bracket that went too deep),
 * DEC_SCAN_BIG when the estimated tree of one top-level value exceeds
 * DEC_MAX_TREE_BYTES (*at = where the estimate crossed it), else DEC_SCAN_OK.
 * Each top-level value is estimated on its own, as each is parsed and freed
 * before the next. Strings are skipped with memchr; a quote is escaped when
 * an odd run of backslashes precedes it. Unbalanced closers are left for the
 * parser to report. Linear in n, no allocation. */
/* 1 when s[0..n) cannot reach either limit: no byte adds more than
 * DEC_TREE_OBJECT to the estimate, and every level of nesting needs a '{' or
 * '[' byte (counted anywhere, strings included). A CloudTrail record passes
 * in one vectorised count instead of dec_scan's walk (~9k instructions for a
 * 2 KB record). */
static int dec_scan_surely_ok(const char *s, size_t n)
{
    if (n > DEC_MAX_TREE_BYTES / DEC_TREE_OBJECT) return 0;
    size_t open = 0, i = 0;
#ifdef __SSE2__
    /* per-lane counts in bytes (a lane gains at most 1 a step), summed every
     * 128 steps with SAD: no popcount (not in the x86-64 baseline) */
    const __m128i lb = _mm_set1_epi8('{'), ls = _mm_set1_epi8('['), zero = _mm_setzero_si128();
    while (i + 16 <= n) {
        __m128i acc = zero;
        for (int k = 0; k < 128 && i + 16 <= n; k++, i += 16) {
            __m128i x = _mm_loadu_si128((const __m128i *)(const void *)(s + i));
            acc = _mm_sub_epi8(acc, _mm_or_si128(_mm_cmpeq_epi8(x, lb), _mm_cmpeq_epi8(x, ls)));
        }
        __m128i sum = _mm_sad_epu8(acc, zero);
        open += (size_t)_mm_cvtsi128_si32(sum) + (size_t)_mm_extract_epi16(sum, 4);
        if (open > DEC_MAX_DEPTH) return 0;
    }
#endif
    for (; i < n; i++)
        open += (size_t)((s[i] == '{') | (s[i] == '['));
    return open <= DEC_MAX_DEPTH;
}

static dec_scan_result dec_scan(const char *s, size_t n, size_t *at)
{
    if (dec_scan_surely_ok(s, n)) return DEC_SCAN_OK;
    int depth = 0;
    size_t cost = 0, i = 0;
    while (i < n) {
        char c = s[i];
        if (c == '"') {
            size_t from = i + 1;
            for (;;) {
                const char *q = memchr(s + from, '"', n - from);
                if (!q) return DEC_SCAN_OK; /* unterminated: the parser will say so */
                size_t qi = (size_t)(q - s), b = qi;
                while (b > i + 1 && s[b - 1] == '\\')
                    b--;
                from = qi + 1;
                if ((qi - b) % 2 == 0) break;
            }
            cost += DEC_TREE_STRING + (from - i);
            i = from;
        } else {
            if (c == '{' || c == '[') {
                if (++depth > DEC_MAX_DEPTH) {
                    *at = i;
                    return DEC_SCAN_DEEP;
                }
                cost += c == '{' ? DEC_TREE_OBJECT : DEC_TREE_ARRAY;
            } else if ((c == '}' || c == ']') && depth > 0) {
                depth--;
            } else if (c == ',') {
                cost += DEC_TREE_ELEMENT;
            }
            i++;
        }
        if (cost > DEC_MAX_TREE_BYTES) {
            *at = i;
            return DEC_SCAN_BIG;
        }
        if (depth == 0) cost = 0;
    }
    return DEC_SCAN_OK;
}

/* The refusal for a unit dec_scan did not pass, as "<what>: …". */
static nt_status dec_scan_fail(nt_err *err, dec_scan_result r, const char *what, size_t at)
{
    if (r == DEC_SCAN_DEEP)
        return nt_fail(err, NT_ERR_LIMIT, "%sJSON nested deeper than %d levels at offset %zu", what,
                       DEC_MAX_DEPTH, at);
    return nt_fail(
        err, NT_ERR_LIMIT,
        "%sJSON value too large to parse: its tree would exceed %u bytes (at offset %zu)", what,
        (unsigned)DEC_MAX_TREE_BYTES, at);
}

/* ========================================================================= */
/* b) Records                                                                */

void dec_buf_init(dec_buf *b)
{
    memset(b, 0, sizeof *b);
    b->max_record = DEC_MAX_RECORD_BYTES;
    b->max_inflate = DEC_MAX_INFLATE;
}

void dec_buf_free(dec_buf *b)
{
    if (!b) return;
    free(b->raw);
    free(b->inflated);
    free(b->cwl);
    free(b->unescaped);
    size_t mr = b->max_record, mi = b->max_inflate;
    memset(b, 0, sizeof *b);
    b->max_record = mr;
    b->max_inflate = mi;
}

static int dec_all_space(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != ' ' && p[i] != '\n' && p[i] != '\r' && p[i] != '\t') return 0;
    return 1;
}

static const char *dec_str_or_null(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

/* Unpack a parsed CloudWatch Logs envelope (root has a string messageType). */
static nt_status dec_cwl(json_t *root, size_t record_index, dec_item_fn fn, void *ud,
                         dec_info *info, nt_err *err)
{
    const char *mt = dec_str_or_null(root, "messageType");
    if (strcmp(mt, "CONTROL_MESSAGE") == 0) {
        info->control = 1;
        return NT_OK;
    }
    if (strcmp(mt, "DATA_MESSAGE") != 0)
        return nt_fail(err, NT_ERR_INVALID,
                       "CloudWatch Logs messageType \"%.64s\" is neither DATA_MESSAGE nor "
                       "CONTROL_MESSAGE",
                       mt);
    json_t *events = json_object_get(root, "logEvents");
    if (!json_is_array(events))
        return nt_fail(err, NT_ERR_INVALID, "CloudWatch Logs logEvents is not an array");
    size_t i;
    json_t *ev;
    json_array_foreach(events, i, ev)
    {
        if (!json_is_object(ev))
            return nt_fail(err, NT_ERR_INVALID, "CloudWatch Logs logEvents[%zu] is not an object",
                           i);
        if (!json_is_string(json_object_get(ev, "message")))
            return nt_fail(err, NT_ERR_INVALID,
                           "CloudWatch Logs logEvents[%zu].message is not a string", i);
    }
    dec_origin o = {
        .record_index = record_index,
        .kind = DEC_CWL,
        .gzipped = info->gzipped,
        .owner = dec_str_or_null(root, "owner"),
        .log_group = dec_str_or_null(root, "logGroup"),
        .log_stream = dec_str_or_null(root, "logStream"),
    };
    json_array_foreach(events, i, ev)
    {
        json_t *m = json_object_get(ev, "message");
        json_t *ts = json_object_get(ev, "timestamp");
        o.sub_index = i;
        o.event_id = dec_str_or_null(ev, "id");
        o.event_timestamp = json_is_integer(ts) ? (int64_t)json_integer_value(ts) : 0;
        info->units++;
        TRY(fn(ud, json_string_value(m), json_string_length(m), &o, err));
    }
    return NT_OK;
}

/* The CloudWatch Logs envelope without jansson: one pass of the envelope
 * scanner collects the logEvents[].message slices, then each message is
 * unescaped into scratch and handed on. Profiling showed jansson building the
 * whole envelope (50 escaped records of ~1.7 KB) dominated CWL deliveries.
 * Returns 1 when it handled the text (*st is the result), 0 when the text is
 * not a well-formed envelope of the expected shape: the caller then takes the
 * jansson path, which gives the precise error. */
typedef struct cwl_slice {
    const char *s;
    size_t n;
    int esc;
    int64_t ts;
    const char *id; /* logEvents[].id, unescaped ids only */
    size_t idn;
} cwl_slice;

static int cwl_copy_field(fh_scanner *sc, char *buf, size_t cap, const char **out, nt_err *err)
{
    const char *v;
    size_t n;
    int esc;
    if (*sc->p != '"' || sc_string(sc, &v, &n, &esc, 1, err) != NT_OK) return 0;
    if (!esc && n < cap) {
        memcpy(buf, v, n);
        buf[n] = 0;
        *out = buf;
    }
    return 1;
}

/* A member callback of sc_each_member: sc->p is at the value of key k, which
 * the callback consumes. 0 stops the walk (the shape is not the expected one). */
typedef int (*sc_member_fn)(fh_scanner *sc, const char *k, size_t kn, int kesc, void *ctx);

/* For each key: walks the non-empty JSON object at sc->p ('{'), calling
 * member for every key. 1 with sc->p after the closing '}'; 0 when the object
 * is empty or malformed or member returned 0. Always inlined, so each of
 * its two callers calls its member function directly (the CWL scan is a hot
 * path). */
static inline __attribute__((always_inline)) int sc_each_member(fh_scanner *sc, sc_member_fn member,
                                                                void *ctx)
{
    nt_err e;
    const char *k = NULL;
    size_t kn = 0;
    int kesc = 0;
    if (sc->p >= sc->end || *sc->p != '{') return 0;
    sc->p++;
    if (sc_more(sc, &e) != NT_OK || *sc->p == '}') return 0;
    for (;;) {
        if (sc_key(sc, &k, &kn, &kesc, &e) != NT_OK) return 0;
        if (!member(sc, k, kn, kesc, ctx)) return 0;
        if (sc_more(sc, &e) != NT_OK) return 0;
        if (*sc->p == '}') break;
        if (*sc->p != ',') return 0;
        sc->p++;
        if (sc_more(sc, &e) != NT_OK) return 0;
    }
    sc->p++;
    return 1;
}

/* One logEvents[] element: message (required, once), id, timestamp. */
typedef struct cwl_event {
    cwl_slice m;
    int have;
} cwl_event;

static int cwl_event_member(fh_scanner *sc, const char *k, size_t kn, int kesc, void *ctx)
{
    cwl_event *ev = ctx;
    nt_err e;
    if (sc_key_is(k, kn, kesc, "message")) {
        if (ev->have || *sc->p != '"' ||
            sc_string(sc, &ev->m.s, &ev->m.n, &ev->m.esc, 1, &e) != NT_OK)
            return 0;
        ev->have = 1;
    } else if (sc_key_is(k, kn, kesc, "id") && *sc->p == '"') {
        int esc = 0;
        if (sc_string(sc, &ev->m.id, &ev->m.idn, &esc, 1, &e) != NT_OK) return 0;
        if (esc) ev->m.id = NULL;
    } else if (sc_key_is(k, kn, kesc, "timestamp") && *sc->p != '"') {
        int is_int = 0;
        if (sc_number(sc, &ev->m.ts, &is_int, &e) != NT_OK) return 0;
        if (is_int != 1) ev->m.ts = 0;
    } else if (sc_skip_value(sc, 3, &e) != NT_OK) {
        return 0;
    }
    return 1;
}

/* What the envelope scan collects. */
typedef struct cwl_envelope {
    dec_buf *scratch; /* scratch->cwl[0..count) are the messages */
    size_t count;
    int control; /* -1 until messageType is seen */
    char owner[64], group[512], stream[512];
    dec_origin o;
} cwl_envelope;

/* The logEvents array: each element's slices appended to scratch->cwl. */
static int cwl_scan_events(fh_scanner *sc, cwl_envelope *env)
{
    nt_err e;
    dec_buf *scratch = env->scratch;
    if (*sc->p != '[' || env->count) return 0;
    sc->p++;
    if (sc_more(sc, &e) != NT_OK) return 0;
    if (*sc->p == ']') {
        sc->p++;
        return 1;
    }
    for (;;) {
        cwl_event ev = {0};
        if (!sc_each_member(sc, cwl_event_member, &ev) || !ev.have) return 0;
        if (env->count == scratch->cwl_cap) {
            size_t cap = scratch->cwl_cap ? scratch->cwl_cap * 2 : 64;
            cwl_slice *nm = realloc(scratch->cwl, cap * sizeof *nm);
            if (!nm) return 0;
            scratch->cwl = nm;
            scratch->cwl_cap = cap;
        }
        scratch->cwl[env->count++] = ev.m;
        if (sc_more(sc, &e) != NT_OK) return 0;
        if (*sc->p == ']') {
            sc->p++;
            return 1;
        }
        if (*sc->p != ',') return 0;
        sc->p++;
        if (sc_more(sc, &e) != NT_OK) return 0;
    }
}

static int cwl_envelope_member(fh_scanner *sc, const char *k, size_t kn, int kesc, void *ctx)
{
    cwl_envelope *env = ctx;
    nt_err e;
    if (sc_key_is(k, kn, kesc, "messageType")) {
        const char *v;
        size_t n;
        int esc;
        if (*sc->p != '"' || sc_string(sc, &v, &n, &esc, 1, &e) != NT_OK || esc) return 0;
        if (n == 15 && memcmp(v, "CONTROL_MESSAGE", 15) == 0)
            env->control = 1;
        else if (n == 12 && memcmp(v, "DATA_MESSAGE", 12) == 0)
            env->control = 0;
        else
            return 0;
        return 1;
    }
    if (sc_key_is(k, kn, kesc, "owner"))
        return cwl_copy_field(sc, env->owner, sizeof env->owner, &env->o.owner, &e);
    if (sc_key_is(k, kn, kesc, "logGroup"))
        return cwl_copy_field(sc, env->group, sizeof env->group, &env->o.log_group, &e);
    if (sc_key_is(k, kn, kesc, "logStream"))
        return cwl_copy_field(sc, env->stream, sizeof env->stream, &env->o.log_stream, &e);
    if (sc_key_is(k, kn, kesc, "logEvents")) return cwl_scan_events(sc, env);
    return sc_skip_value(sc, 1, &e) == NT_OK;
}

/* Hand each collected message on, unescaped into scratch when it has
 * escapes. Returns 1 (*st is the result), or 0 when an escape that the scan
 * accepted does not unescape (cannot happen). */
static int cwl_emit(cwl_envelope *env, dec_item_fn fn, void *ud, dec_info *info, nt_status *st,
                    nt_err *err)
{
    dec_buf *scratch = env->scratch;
    nt_err e;
    *st = NT_OK;
    for (size_t i = 0; i < env->count; i++) {
        const cwl_slice *msg = &scratch->cwl[i];
        const char *m = msg->s;
        size_t n = msg->n;
        if (msg->esc) {
            if (scratch->unescaped_cap < n + 1) {
                char *u = realloc(scratch->unescaped, n + 1);
                if (!u) {
                    *st = nt_fail(err, NT_ERR_NOMEM, "out of memory unescaping a log event");
                    return 1;
                }
                scratch->unescaped = u;
                scratch->unescaped_cap = n + 1;
            }
            size_t un = 0;
            if (fh_unescape(m, n, scratch->unescaped, scratch->unescaped_cap, &un, &e) != NT_OK)
                return 0;
            m = scratch->unescaped;
            n = un;
        }
        char idbuf[128];
        env->o.event_id = NULL;
        if (msg->id && msg->idn < sizeof idbuf) {
            memcpy(idbuf, msg->id, msg->idn);
            idbuf[msg->idn] = 0;
            env->o.event_id = idbuf;
        }
        env->o.sub_index = i;
        env->o.event_timestamp = msg->ts;
        info->units++;
        *st = fn(ud, m, n, &env->o, err);
        if (*st != NT_OK) return 1;
    }
    return 1;
}

/* Scan, then emit. */
static int dec_cwl_fast(const char *text, size_t tlen, size_t record_index, dec_buf *scratch,
                        dec_item_fn fn, void *ud, dec_info *info, nt_status *st, nt_err *err)
{
    fh_scanner sc = {.base = text, .p = text, .end = text + tlen, .ctx = CTX_ENVELOPE};
    cwl_envelope env = {
        .scratch = scratch,
        .control = -1,
        .o = {.record_index = record_index, .kind = DEC_CWL, .gzipped = info->gzipped}};
    sc_ws(&sc);
    if (!sc_each_member(&sc, cwl_envelope_member, &env)) return 0;
    sc_ws(&sc);
    if (sc.p != sc.end || env.control < 0) return 0;
    *st = NT_OK;
    if (env.control) {
        info->control = 1;
        return 1;
    }
    return cwl_emit(&env, fn, ud, info, st, err);
}

nt_status dec_record(const char *b64, size_t len, size_t record_index, dec_buf *scratch,
                     dec_item_fn fn, void *ud, dec_info *info, nt_err *err)
{
    dec_info local;
    if (!info) info = &local;
    memset(info, 0, sizeof *info);

    if (len % 4 == 0) {
        size_t exact = b64_decoded_len(b64, len);
        if (exact > scratch->max_record)
            return nt_fail(err, NT_ERR_LIMIT,
                           "record decodes to %zu bytes, more than the limit of %zu", exact,
                           scratch->max_record);
    }
    size_t need = b64_decoded_max(len) + 1;
    if (scratch->raw_cap < need) {
        unsigned char *p = realloc(scratch->raw, need);
        if (!p) return nt_fail(err, NT_ERR_NOMEM, "out of memory decoding a %zu-byte record", len);
        scratch->raw = p;
        scratch->raw_cap = need;
    }
    size_t n = 0;
    nt_err e;
    nt_status st = b64_decode(b64, len, scratch->raw, scratch->raw_cap, &n, &e);
    if (st != NT_OK) return nt_fail(err, st, "bad base64: %s", e.msg);
    scratch->raw[n] = '\0';
    info->decoded_bytes = n;

    const unsigned char *text = scratch->raw;
    size_t tlen = n;
    if (gz_is_gzip(scratch->raw, n)) {
        info->gzipped = 1;
        TRY(gz_inflate_into(scratch->raw, n, scratch->max_inflate, &scratch->inflated,
                            &scratch->inflated_cap, &tlen, err));
        text = scratch->inflated;
        info->inflated_bytes = tlen;
        /* CloudWatch Logs subscription payloads are the reason records are
         * gzip'd; anything else gzip'd is handed on as one plain unit. */
        static const char key[] = "\"logEvents\"";
        size_t at;
        if (memmem(text, tlen, key, sizeof key - 1)) {
            if (dec_cwl_fast((const char *)text, tlen, record_index, scratch, fn, ud, info, &st,
                             err))
                return st;
            dec_scan_result sr = dec_scan((const char *)text, tlen, &at);
            if (sr != DEC_SCAN_OK) return dec_scan_fail(err, sr, "gunzipped record: ", at);
            json_error_t je;
            json_t *root = jfast_loadb((const char *)text, tlen, JSON_ALLOW_NUL, &je);
            if (json_is_object(root) && json_is_string(json_object_get(root, "messageType"))) {
                st = dec_cwl(root, record_index, fn, ud, info, err);
                json_decref(root);
                return st;
            }
            json_decref(root);
        }
    }
    if (dec_all_space(text, tlen)) return NT_OK;
    dec_origin o = {.record_index = record_index, .kind = DEC_PLAIN, .gzipped = info->gzipped};
    info->units = 1;
    return fn(ud, (const char *)text, tlen, &o, err);
}

/* ========================================================================= */
/* c) Units → CloudTrail records                                             */

static const char *const dec_shape_names[DEC_SHAPE_COUNT] = {
    [DEC_SHAPE_EVENTBRIDGE] = "eventbridge",
    [DEC_SHAPE_BARE] = "bare",
    [DEC_SHAPE_S3_LOG] = "s3_log",
    [DEC_SHAPE_NDJSON] = "ndjson",
    [DEC_SHAPE_ARRAY] = "array",
    [DEC_SHAPE_CWL] = "cwl",
};

const char *dec_shape_name(dec_shape shape)
{
    return (unsigned)shape < DEC_SHAPE_COUNT ? dec_shape_names[shape] : "unknown";
}

int dec_is_cloudtrail(const json_t *v)
{
    return json_is_object(v) && json_is_string(json_object_get(v, "eventVersion")) &&
           json_is_string(json_object_get(v, "eventSource")) &&
           json_is_string(json_object_get(v, "eventName"));
}

typedef struct split_ctx {
    dec_record_fn fn;
    dec_bad_fn bad;
    void *ud;
    nt_err *err;
    size_t sub;        /* next sub_index */
    nt_status first;   /* status of the first bad piece */
    const char *vtext; /* the JSON value being classified */
    size_t vlen;
} split_ctx;

/* Report a bad piece of the current value; remembers the first one. */
__attribute__((format(printf, 3, 4))) static void split_bad(split_ctx *c, nt_status st,
                                                            const char *fmt, ...)
{
    nt_err e;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e.msg, sizeof e.msg, fmt, ap);
    va_end(ap);
    if (c->bad) c->bad(c->ud, c->sub, st, e.msg, c->vtext, c->vlen);
    c->sub++;
    if (c->first == NT_OK) {
        c->first = st;
        if (c->err) *c->err = e;
    }
}

static nt_status split_emit(split_ctx *c, json_t *rec, dec_shape shape)
{
    return c->fn(c->ud, rec, shape, c->sub++, c->err);
}

/* A short description of an unrecognised value: its type, and for an object
 * its first keys ("an object with keys \"CHANGE\", \"PRICE\", …"). */
static void split_describe(const json_t *v, char *buf, size_t cap)
{
    if (!v) {
        snprintf(buf, cap, "nothing");
        return;
    }
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        size_t off = (size_t)snprintf(buf, cap, "an object");
        int k = 0;
        for (void *it = json_object_iter((json_t *)v); it && off < cap;
             it = json_object_iter_next((json_t *)v, it)) {
            const char *key = json_object_iter_key(it);
            if (k == 3) {
                snprintf(buf + off, cap - off, ", …");
                break;
            }
            off += (size_t)snprintf(buf + off, cap - off, "%s\"%.24s\"",
                                    k == 0 ? " with keys " : ", ", key);
            k++;
        }
        if (k == 0 && off < cap) snprintf(buf + off, cap - off, " without keys");
        return;
    }
    case JSON_ARRAY:
        snprintf(buf, cap, "an array");
        return;
    case JSON_STRING:
        snprintf(buf, cap, "a JSON string");
        return;
    case JSON_INTEGER:
    case JSON_REAL:
        snprintf(buf, cap, "a JSON number");
        return;
    case JSON_TRUE:
    case JSON_FALSE:
        snprintf(buf, cap, "a JSON boolean");
        return;
    case JSON_NULL:
        snprintf(buf, cap, "JSON null");
        return;
    }
    snprintf(buf, cap, "an unknown value");
}

/* An EventBridge event: "detail-type" string and "detail" object. */
static int split_is_eventbridge(const json_t *v)
{
    return json_is_string(json_object_get(v, "detail-type")) &&
           json_is_object(json_object_get(v, "detail"));
}

/* An element that must be a record: a CloudTrail record (given shape) or an
 * EventBridge event carrying one. `what` names it for messages. */
static nt_status split_element(split_ctx *c, json_t *v, dec_shape shape, const char *what)
{
    if (dec_is_cloudtrail(v)) return split_emit(c, v, shape);
    if (json_is_object(v) && split_is_eventbridge(v)) {
        json_t *detail = json_object_get(v, "detail");
        if (dec_is_cloudtrail(detail)) return split_emit(c, detail, DEC_SHAPE_EVENTBRIDGE);
        split_bad(c, NT_ERR_INVALID,
                  "not a CloudTrail record or envelope: %s is an EventBridge event \"%.64s\" "
                  "whose detail is not a CloudTrail record",
                  what, json_string_value(json_object_get(v, "detail-type")));
        return NT_OK;
    }
    char desc[128];
    split_describe(v, desc, sizeof desc);
    split_bad(c, NT_ERR_INVALID, "not a CloudTrail record or envelope: %s is %s", what, desc);
    return NT_OK;
}

/* A CloudWatch Logs envelope that arrived un-gzipped (Firehose's Decompression
 * processor, or a replayed file): parse each message as a record. */
static nt_status split_cwl(split_ctx *c, json_t *v)
{
    const char *mt = json_string_value(json_object_get(v, "messageType"));
    if (strcmp(mt, "CONTROL_MESSAGE") == 0) return NT_OK;
    json_t *events = json_object_get(v, "logEvents");
    if (strcmp(mt, "DATA_MESSAGE") != 0 || !json_is_array(events)) {
        split_bad(c, NT_ERR_INVALID,
                  "not a CloudTrail record or envelope: a CloudWatch Logs envelope with "
                  "messageType \"%.64s\" and logEvents of type %s",
                  mt, json_is_array(events) ? "array" : "not array");
        return NT_OK;
    }
    size_t i;
    json_t *ev;
    json_array_foreach(events, i, ev)
    {
        json_t *m = json_object_get(ev, "message");
        if (!json_is_string(m)) {
            split_bad(c, NT_ERR_INVALID,
                      "not a CloudTrail record or envelope: logEvents[%zu].message is not a "
                      "string",
                      i);
            continue;
        }
        const char *s = json_string_value(m);
        size_t n = json_string_length(m), at;
        dec_scan_result sr = dec_scan(s, n, &at);
        if (sr == DEC_SCAN_DEEP) {
            split_bad(c, NT_ERR_LIMIT,
                      "logEvents[%zu].message: JSON nested deeper than %d levels at offset %zu", i,
                      DEC_MAX_DEPTH, at);
            continue;
        }
        if (sr == DEC_SCAN_BIG) {
            split_bad(c, NT_ERR_LIMIT,
                      "logEvents[%zu].message: JSON value too large to parse: its tree would "
                      "exceed %u bytes (at offset %zu)",
                      i, (unsigned)DEC_MAX_TREE_BYTES, at);
            continue;
        }
        json_error_t je;
        json_t *rec = jfast_loadb(s, n, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
        if (!rec) {
            split_bad(c, NT_ERR_PARSE, "not JSON: logEvents[%zu].message: %s at line %d column %d",
                      i, je.text, je.line, je.column);
            continue;
        }
        char what[40];
        snprintf(what, sizeof what, "logEvents[%zu].message", i);
        nt_status st = split_element(c, rec, DEC_SHAPE_CWL, what);
        json_decref(rec);
        TRY(st);
    }
    return NT_OK;
}

/* Classify one top-level JSON value of the unit. */
static nt_status split_value(split_ctx *c, json_t *v, int several)
{
    if (json_is_array(v)) {
        size_t i;
        json_t *el;
        json_array_foreach(v, i, el)
        {
            char what[40];
            snprintf(what, sizeof what, "array element %zu", i);
            TRY(split_element(c, el, DEC_SHAPE_ARRAY, what));
        }
        return NT_OK;
    }
    if (json_is_object(v)) {
        if (json_is_string(json_object_get(v, "messageType")) && json_object_get(v, "logEvents"))
            return split_cwl(c, v);
        if (split_is_eventbridge(v)) return split_element(c, v, DEC_SHAPE_EVENTBRIDGE, "the event");
        json_t *records = json_object_get(v, "Records");
        if (json_is_array(records) && !dec_is_cloudtrail(v)) {
            size_t i;
            json_t *el;
            json_array_foreach(records, i, el)
            {
                char what[40];
                snprintf(what, sizeof what, "Records[%zu]", i);
                TRY(split_element(c, el, DEC_SHAPE_S3_LOG, what));
            }
            return NT_OK;
        }
        if (dec_is_cloudtrail(v))
            return split_emit(c, v, several ? DEC_SHAPE_NDJSON : DEC_SHAPE_BARE);
    }
    char desc[128];
    split_describe(v, desc, sizeof desc);
    split_bad(c, NT_ERR_INVALID, "not a CloudTrail record or envelope: %s", desc);
    return NT_OK;
}

static int split_is_space(char ch)
{
    return ch == ' ' || ch == '\n' || ch == '\r' || ch == '\t';
}

/* Line/column bookkeeping for messages. Offsets asked for only grow, so the
 * newlines are counted once in total (no quadratic cost on a unit made of many
 * bad lines). */
typedef struct split_lines {
    const char *text;
    size_t at;  /* counted up to here */
    int line;   /* 1-based line of `at` */
    size_t bol; /* offset where that line begins */
} split_lines;

static void split_lines_to(split_lines *l, size_t off)
{
    for (; l->at < off; l->at++)
        if (l->text[l->at] == '\n') {
            l->line++;
            l->bol = l->at + 1;
        }
}

/* Offset just past the next '\n' at or after off, or len. */
static size_t split_next_line(const char *text, size_t len, size_t off)
{
    const char *nl = off < len ? memchr(text + off, '\n', len - off) : NULL;
    return nl ? (size_t)(nl - text) + 1 : len;
}

nt_status dec_split(const char *text, size_t len, dec_record_fn fn, dec_bad_fn bad, void *ud,
                    nt_err *err)
{
    split_ctx c = {.fn = fn, .bad = bad, .ud = ud, .err = err, .first = NT_OK};
    size_t at;
    dec_scan_result sr = dec_scan(text, len, &at);
    if (sr != DEC_SCAN_OK) {
        /* Refused whole, before jansson allocates anything. */
        c.vtext = text;
        c.vlen = len;
        if (sr == DEC_SCAN_DEEP)
            split_bad(&c, NT_ERR_LIMIT, "JSON nested deeper than %d levels at offset %zu",
                      DEC_MAX_DEPTH, at);
        else
            split_bad(&c, NT_ERR_LIMIT,
                      "JSON value too large to parse: its tree would exceed %u bytes (at offset "
                      "%zu)",
                      (unsigned)DEC_MAX_TREE_BYTES, at);
        return c.first;
    }
    split_lines lines = {.text = text, .line = 1};
    size_t pos = 0;
    int values = 0;
    for (;;) {
        while (pos < len && split_is_space(text[pos]))
            pos++;
        if (pos >= len) break;
        json_error_t je;
        json_t *v = jfast_loadb(text + pos, len - pos,
                                JSON_DECODE_ANY | JSON_DISABLE_EOF_CHECK | JSON_ALLOW_NUL, &je);
        size_t used = je.position > 0 ? (size_t)je.position : 0;
        if (used > len - pos) used = len - pos;
        if (!v) {
            /* jansson's line/column count from pos; make them absolute. */
            split_lines_to(&lines, pos);
            int line = lines.line + (je.line > 0 ? je.line - 1 : 0);
            size_t col = je.line <= 1 ? pos - lines.bol + (size_t)(je.column > 0 ? je.column : 1)
                                      : (size_t)je.column;
            size_t next = split_next_line(text, len, pos + used);
            c.vtext = text + pos;
            c.vlen = next - pos;
            split_bad(&c, NT_ERR_PARSE, "not JSON: %s at line %d column %zu", je.text, line, col);
            pos = next;
            values++;
            continue;
        }
        size_t next = pos + (used ? used : 1);
        if (!json_is_object(v) && !json_is_array(v)) {
            /* A scalar is never a record. It takes the rest of its line with it,
             * so "2 123456789 eni-0b27…" (a VPC flow log line) is one bad
             * piece, and only a line that is exactly one scalar is called JSON. */
            size_t eol = split_next_line(text, len, next), rest = next;
            while (rest < eol && split_is_space(text[rest]))
                rest++;
            c.vtext = text + pos;
            c.vlen = eol - pos;
            if (rest < eol) {
                split_lines_to(&lines, rest);
                split_bad(&c, NT_ERR_PARSE,
                          "not JSON: unexpected text after a JSON value at line %d column %zu",
                          lines.line, rest - lines.bol + 1);
            } else {
                char desc[128];
                split_describe(v, desc, sizeof desc);
                split_bad(&c, NT_ERR_INVALID, "not a CloudTrail record or envelope: %s", desc);
            }
            json_decref(v);
            pos = eol;
            values++;
            continue;
        }
        size_t after = next;
        while (after < len && split_is_space(text[after]))
            after++;
        c.vtext = text + pos;
        c.vlen = next - pos;
        nt_status st = split_value(&c, v, values > 0 || after < len);
        json_decref(v);
        if (st != NT_OK) return st;
        pos = after;
        values++;
    }
    return c.first;
}

/* ========================================================================= */
/* d) Request bodies                                                         */

nt_status dec_body_inflate(const unsigned char *in, size_t len, size_t max_out, unsigned char **out,
                           size_t *outlen, nt_err *err)
{
    nt_err e;
    nt_status st = gz_inflate(in, len, max_out, out, outlen, &e);
    if (st == NT_ERR_LIMIT)
        return nt_fail(err, st, "request body expands beyond %zu bytes when gunzipped", max_out);
    if (st != NT_OK) return nt_fail(err, st, "request body: %s", e.msg);
    return NT_OK;
}

/* ========================================================================= */
/* e) Dead-letter prefix                                                     */

size_t dec_escape_prefix(const unsigned char *p, size_t len, char *out, size_t cap)
{
    static const char hex[] = "0123456789abcdef";
    if (cap == 0) return 0;
    size_t o = 0;
    for (size_t i = 0; i < len && i < DEC_PREFIX_BYTES; i++) {
        unsigned char c = p[i];
        if (c >= 0x20 && c < 0x7f && c != '\\') {
            if (o + 1 >= cap) break;
            out[o++] = (char)c;
        } else {
            if (o + 4 >= cap) break;
            out[o++] = '\\';
            out[o++] = 'x';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    out[o] = '\0';
    return o;
}

/*
 * common.h — the few types every newtermsd module shares.
 *
 * - nt_status + nt_err: one result type for the whole program (in the spirit of
 *   CURLcode + errstr). A function that can fail returns nt_status and, when it
 *   is given an nt_err, writes one human sentence into it. The sentence travels
 *   unchanged to the HTTP error body and the log.
 * - nt_value: one value of a field, as a borrowed (pointer, length) slice. It
 *   never owns memory: it points into the JSON document of the event or into
 *   static storage, and is valid while the event is.
 * - nt_field_source: the contract between whoever produces field values (the
 *   CloudTrail→ECS view, or a plain JSON document in tests) and whoever reads
 *   them (KQL, exceptions, new terms, alerts). Field names are resolved once at
 *   load time into small integers, so evaluation does no string lookups.
 * - time helpers: milliseconds since the Unix epoch, RFC 3339 in and out.
 */
#ifndef NT_COMMON_H
#define NT_COMMON_H

#include <stddef.h>
#include <stdint.h>

typedef enum nt_status {
    NT_OK = 0,
    NT_ERR_NOMEM,       /* allocation failed */
    NT_ERR_PARSE,       /* syntax error in some input (TOML, KQL, JSON, base64 …) */
    NT_ERR_INVALID,     /* well-formed but semantically wrong input */
    NT_ERR_UNSUPPORTED, /* a feature we knowingly do not implement */
    NT_ERR_LIMIT,       /* a size, depth or count limit was exceeded */
    NT_ERR_NOTFOUND,
    NT_ERR_IO,    /* file or socket error */
    NT_ERR_STORE, /* Redis unreachable or a command failed */
    NT_ERR_CONFLICT,
} nt_status;

#define NT_ERR_MSG_MAX 256
typedef struct nt_err {
    char msg[NT_ERR_MSG_MAX];
} nt_err;

/* Writes the message into err (when err is not NULL) and returns status, so a
 * failing function can say `return nt_fail(err, NT_ERR_PARSE, "...", ...);`. */
nt_status nt_fail(nt_err *err, nt_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Puts context in front of the message already in err: err->msg becomes
 * "<fmt…>: <old message>" (cut to NT_ERR_MSG_MAX - 1 bytes, the context
 * first). Safe where nt_fail(err, st, "%s: %s", path, err->msg) is not (the
 * old message is copied out before err->msg is written). Returns status, so
 * `return nt_err_prefix(err, st, "%s", path);`. err may be NULL. */
nt_status nt_err_prefix(nt_err *err, nt_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A short stable name for a status ("parse", "limit", …), for metrics labels. */
const char *nt_status_name(nt_status status);

typedef enum nt_value_type {
    NT_VAL_STRING = 0, /* keyword */
    NT_VAL_NUMBER,     /* the number's JSON text, e.g. "216025" */
    NT_VAL_BOOL,       /* "true" or "false" */
} nt_value_type;

typedef struct nt_value {
    const char *ptr; /* not NUL-terminated in general */
    size_t len;
    nt_value_type type;
} nt_value;

/* The most values any one field of one event may yield to a reader; extra
 * values are ignored (counted by the producer where it matters). */
#define NT_FIELD_MAX_VALUES 256

typedef struct nt_field_source {
    void *ctx;
    /* Resolve a dotted field name at load time: a field id >= 0, or -1 when
     * this source can never produce the field. */
    int (*resolve)(void *ctx, const char *name, size_t len);
    /* Fill out[0..max) with the values of field `field` of `event` and return
     * how many were written (0 = the field is missing). Must not allocate on
     * the heap; values stay valid while the event lives. */
    size_t (*get)(void *ctx, void *event, int field, nt_value *out, size_t max);
    /* Optional (may be NULL = never). 1 when every value of `field` is a JSON
     * string copied unchanged from the raw record text, so a string value v
     * of the field appears in the raw bytes as "v" (with its quotes) unless the
     * record uses JSON escapes. 2 when each value is such a string or the
     * text of a JSON number or boolean of the record (a flattened payload
     * path): a value no number or boolean text can match is then verbatim.
     * The KQL prefilter relies on this. */
    int (*verbatim)(void *ctx, int field);
    /* Optional (may be NULL = none). Bytes that end a JSON object key every
     * record with any value of `field` carries (e.g. "serialNumber" for a
     * flattened request parameter: the key, possibly after a dotted prefix);
     * NULL when there are none. The KQL prefilter then requires `key"`. */
    const char *(*key_suffix)(void *ctx, int field, size_t *len);
} nt_field_source;

/* A growable text buffer. Zero-initialise it; p is NUL-terminated once
 * anything was added. A failed allocation sets oom and turns every later add
 * into a no-op, so a writer checks oom once at the end. p is owned by the
 * buffer until the caller takes it; nt_buf_free releases it (safe on a zeroed
 * buffer) and zeroes the buffer. */
typedef struct nt_buf {
    char *p;
    size_t len, cap;
    int oom;
} nt_buf;

/* Room for `extra` more bytes and the NUL: 0, or -1 (and oom set). */
int nt_buf_reserve(nt_buf *b, size_t extra);
void nt_buf_add(nt_buf *b, const void *s, size_t n);
void nt_buf_str(nt_buf *b, const char *s);
void nt_buf_char(nt_buf *b, char c);
void nt_buf_free(nt_buf *b);

/* Milliseconds since 1970-01-01T00:00:00Z. */
typedef int64_t nt_time_ms;

/* Wall clock; only the edges (HTTP, CLI) call this — the core takes time as an argument. */
nt_time_ms nt_now_ms(void);

/* CLOCK_MONOTONIC in nanoseconds: for intervals and deadlines, never for dates. */
int64_t nt_mono_ns(void);

/* Parse RFC 3339 / ISO 8601 date-time ("2026-11-28T05:29:12Z",
 * "2026-11-28T05:29:12.123+01:00"). */
nt_status nt_time_parse(const char *s, size_t len, nt_time_ms *out, nt_err *err);

#define NT_TIME_BUF 48
/* Format as "YYYY-MM-DDTHH:MM:SS.mmmZ" into buf (NT_TIME_BUF bytes); returns buf. */
char *nt_time_format(nt_time_ms t, char buf[NT_TIME_BUF]);

/* Parse an Elastic duration ("10d", "6m", "30s", "2h", "1w") into milliseconds. */
nt_status nt_duration_parse(const char *s, size_t len, nt_time_ms *out, nt_err *err);

/* Compare two byte strings in time that depends only on the lengths (for secrets). */
int nt_secret_equal(const char *a, size_t alen, const char *b, size_t blen);

/* Length of the valid UTF-8 sequence at s[0..n) (1..4), or 0 when s does not
 * start one (RFC 3629: no overlongs, no surrogates, nothing above U+10FFFF). */
size_t nt_utf8_seq_len(const unsigned char *s, size_t n);

/* Offset of the first byte of s[0..n) that is not part of well-formed UTF-8
 * (same rules as nt_utf8_seq_len), or n when all of it is. */
size_t nt_utf8_invalid_at(const unsigned char *s, size_t n);

/* The value of one hexadecimal digit (0-9, a-f, A-F), or -1. Takes a char or
 * an unsigned char alike (anything outside the digits, negative included, is -1). */
int nt_hex_digit(int c);

/* The decimal digits s[0..n) (1 to 18 of them, nothing else) as a number in
 * [lo, hi], or -1 when they are not one. */
long long nt_decimal_parse(const char *s, size_t n, long long lo, long long hi);

#endif

/*
 * decode.h — from delivery bytes to CloudTrail records.
 *
 *   body ──fh_scan──> base64 slices ──dec_record──> text units ──dec_split──> json_t records
 *         (Firehose      (no copy)     (base64, gunzip,        (caller's      (EventBridge detail,
 *          envelope)                    CloudWatch Logs         prefilter      bare, S3 log file,
 *                                       envelope)               runs here)     array, NDJSON, CWL)
 *
 * /v1/firehose uses all three stages; /v1/events and /v1/eventbridge bodies go
 * straight to dec_split (after dec_body_inflate when Content-Encoding: gzip).
 *
 * Status codes, so the HTTP layer can map them (docs/delivery.md §1.3):
 *   fh_scan:    NT_ERR_PARSE (not JSON, truncated), NT_ERR_INVALID (JSON of the
 *               wrong shape) → 400; NT_ERR_LIMIT (nesting, record count) → 413.
 *   dec_record / dec_split: NT_ERR_PARSE / NT_ERR_INVALID / NT_ERR_LIMIT → the
 *               record is rejected (dead letter), the batch goes on;
 *               NT_ERR_NOMEM → 503. A callback's own non-NT_OK status stops the
 *               walk and is returned unchanged with the callback's message.
 */
#ifndef NT_DECODE_H
#define NT_DECODE_H

#include "common.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define FH_MAX_DEPTH 64                           /* JSON nesting of the whole envelope */
#define FH_MAX_RECORDS 100000                     /* Firehose sends at most 10,000 */
#define FH_REQUEST_ID_MAX 256                     /* bytes of the unescaped requestId */
#define DEC_MAX_DEPTH 64                          /* JSON nesting inside a record */
#define DEC_MAX_TREE_BYTES (64u << 20)            /* estimated jansson tree of one JSON value */
#define DEC_MAX_RECORD_BYTES 1024000u             /* Firehose's limit on one record, decoded */
#define DEC_MAX_INFLATE (16u << 20)               /* default cap on a gunzipped record */
#define DEC_PREFIX_BYTES 128                      /* input bytes shown in a dead-letter prefix */
#define DEC_PREFIX_BUF (DEC_PREFIX_BYTES * 4 + 1) /* room for all of them escaped */

/* ------------------------------------------------------------------------- */
/* a) Firehose envelope: {"requestId": s, "timestamp": n, "records": [{"data": s}…]} */

/* Set on a record whose "data" string contains JSON escapes (legal JSON, e.g.
 * "\/", but never produced by Firehose): the slice is the raw escaped text. A
 * caller either rejects such a record or unescapes it with fh_unescape()
 * before dec_record(). */
#define FH_REC_ESCAPED 1u

typedef struct fh_record {
    const char *data; /* into the body, between the quotes; not NUL-terminated */
    size_t len;
    unsigned flags; /* FH_REC_* */
} fh_record;

typedef struct fh_envelope {
    const char *request_id_raw; /* into the body, as written (may hold escapes) */
    size_t request_id_raw_len;
    char request_id[FH_REQUEST_ID_MAX + 1]; /* unescaped, NUL-terminated, valid UTF-8 */
    size_t request_id_len;                  /* strlen() is shorter only if it holds \u0000 */
    int64_t timestamp;                      /* ms as sent; 0 when absent */
    int has_timestamp;
    size_t record_count;
    fh_record *records; /* records[0..record_count): owned by the envelope,
                           reused by the next fh_scan */
    size_t records_cap;
} fh_envelope;

/* fh_envelope_init zeroes; fh_envelope_free releases the record array (NULL ok).
 * One envelope may serve any number of fh_scan calls (the array is reused). */
void fh_envelope_init(fh_envelope *env);
void fh_envelope_free(fh_envelope *env);

/* Called once per record, in order, with the base64 slice. A non-NT_OK return
 * stops the walk; fh_scan returns it (err as the callback left it). */
typedef nt_status (*fh_record_fn)(void *ud, size_t index, const char *data, size_t len,
                                  unsigned flags, nt_err *err);

/* Validate the whole envelope in one pass over body[0..len) and fill env; the
 * body must outlive env's slices. Only after the whole body has been validated,
 * and only if fn is not NULL, is fn called for each record (so a bad body is
 * refused before any record is processed). With fn NULL, iterate env->records.
 * Keys in any order, unknown keys skipped (any JSON value, depth-limited),
 * whitespace anywhere. "timestamp" is optional but must be an integer when
 * present; "requestId" and "records" are required; a key given twice is an
 * error. Not allocated per record: env->records grows by doubling and is kept.
 * The content of "data" strings is not checked here (b64_decode does that:
 * any byte outside the base64 alphabet, control characters included, makes
 * that one record bad). */
nt_status fh_scan(const char *body, size_t len, fh_envelope *env, fh_record_fn fn, void *ud,
                  nt_err *err);

/* Unescape the contents of a JSON string literal (without its quotes) into
 * out[0..cap); \uXXXX and surrogate pairs become UTF-8. NT_ERR_PARSE on a bad
 * escape, NT_ERR_LIMIT when cap is too small (len bytes always suffice). */
nt_status fh_unescape(const char *s, size_t len, char *out, size_t cap, size_t *outlen,
                      nt_err *err);

/* ------------------------------------------------------------------------- */
/* b) One Firehose record: base64 → (gunzip → CloudWatch Logs envelope) → units */

/* Scratch space reused across records: no allocation per record once the
 * buffers have grown to the largest record seen (CWL envelopes are parsed with
 * jansson, which allocates). The limits may be changed after dec_buf_init. */
typedef struct dec_buf {
    unsigned char *raw; /* base64-decoded bytes */
    size_t raw_cap;
    unsigned char *inflated; /* gunzipped bytes */
    size_t inflated_cap;
    struct cwl_slice *cwl; /* CloudWatch Logs message slices (decode.c) */
    size_t cwl_cap;
    char *unescaped; /* one unescaped CloudWatch Logs message */
    size_t unescaped_cap;
    size_t max_record;  /* decoded-size cap, default DEC_MAX_RECORD_BYTES */
    size_t max_inflate; /* gunzipped-size cap, default DEC_MAX_INFLATE */
} dec_buf;

void dec_buf_init(dec_buf *b);
void dec_buf_free(dec_buf *b); /* NULL ok; leaves b initialised and empty */

typedef enum dec_kind {
    DEC_PLAIN = 0, /* the decoded (maybe gunzipped) bytes are one unit */
    DEC_CWL,       /* one logEvents[].message of a CloudWatch Logs DATA_MESSAGE */
} dec_kind;

typedef struct dec_origin {
    size_t record_index; /* as passed to dec_record */
    size_t sub_index;    /* DEC_CWL: index in logEvents; DEC_PLAIN: 0 */
    dec_kind kind;
    int gzipped; /* the record was gzip-compressed */
    /* DEC_CWL only (else NULL / 0); borrowed, valid during the callback: */
    const char *owner; /* account id */
    const char *log_group;
    const char *log_stream;
    const char *event_id;    /* logEvents[].id */
    int64_t event_timestamp; /* logEvents[].timestamp, ms */
} dec_origin;

/* Receives one unit of text (not NUL-terminated, valid during the call). */
typedef nt_status (*dec_item_fn)(void *ud, const char *text, size_t len, const dec_origin *origin,
                                 nt_err *err);

typedef struct dec_info {
    size_t decoded_bytes;  /* after base64 */
    size_t inflated_bytes; /* after gunzip, 0 if not gzipped */
    int gzipped;
    int control;  /* a CWL CONTROL_MESSAGE: skipped, nothing handed on */
    size_t units; /* calls made to fn */
} dec_info;

/* Decode one record's base64 b64[0..len) into scratch and hand its units to fn:
 * - gzip (1f 8b) → inflate (cap scratch->max_inflate). A CloudWatch Logs
 *   subscription message (object with messageType and logEvents) is then
 *   unpacked: CONTROL_MESSAGE → info->control = 1, no unit; DATA_MESSAGE → one
 *   unit per logEvents[].message, kind DEC_CWL. The envelope is validated
 *   completely before the first unit is handed on. Other gzip'd content (a
 *   gzip'd CloudTrail record or S3 log file) is one DEC_PLAIN unit.
 * - otherwise the decoded bytes are one DEC_PLAIN unit, unless they are empty
 *   or only whitespace (then no unit: §2.4 "if empty → ignore").
 * Errors: bad base64 → NT_ERR_PARSE; decoded > scratch->max_record or inflated
 * > scratch->max_inflate → NT_ERR_LIMIT; corrupt/truncated gzip → NT_ERR_PARSE;
 * a CWL envelope of the wrong shape → NT_ERR_INVALID. info may be NULL. */
nt_status dec_record(const char *b64, size_t len, size_t record_index, dec_buf *scratch,
                     dec_item_fn fn, void *ud, dec_info *info, nt_err *err);

/* ------------------------------------------------------------------------- */
/* c) A unit of text → CloudTrail records (docs/delivery.md §2.4) */

typedef enum dec_shape {
    DEC_SHAPE_EVENTBRIDGE = 0, /* "detail" of an EventBridge event */
    DEC_SHAPE_BARE,            /* the unit is one CloudTrail record */
    DEC_SHAPE_S3_LOG,          /* an element of {"Records": [...]} */
    DEC_SHAPE_NDJSON,          /* one of several JSON values in the unit */
    DEC_SHAPE_ARRAY,           /* an element of a top-level JSON array */
    DEC_SHAPE_CWL,             /* a logEvents[].message of an un-gzipped CWL envelope */
    DEC_SHAPE_COUNT
} dec_shape;

/* "eventbridge", "bare", "s3_log", "ndjson", "array", "cwl" (for metrics). */
const char *dec_shape_name(dec_shape shape);

/* A CloudTrail record, borrowed: valid during the call; json_incref to keep it.
 * sub_index counts records and rejected pieces of the unit together, in order. */
typedef nt_status (*dec_record_fn)(void *ud, json_t *record, dec_shape shape, size_t sub_index,
                                   nt_err *err);

/* A piece of the unit that is rejected while the rest goes on: status and
 * message as dec_split would return them, and the text of the JSON value it
 * belongs to (for the dead-letter prefix). */
typedef void (*dec_bad_fn)(void *ud, size_t sub_index, nt_status status, const char *message,
                           const char *text, size_t len);

/* Split text[0..len) into CloudTrail records. The unit may hold several JSON
 * values (NDJSON or concatenated); each value is an EventBridge event (its
 * "detail" must be a CloudTrail record), an S3 log file {"Records": [...]}, a
 * CloudWatch Logs envelope (messages parsed; CONTROL_MESSAGE skipped), a JSON
 * array of records / events, or a bare record (an object with string
 * eventVersion, eventSource and eventName).
 * Returns NT_OK when every piece was a record. Otherwise each bad piece is given
 * to bad (may be NULL) and the first one's status and message are returned:
 *   NT_ERR_PARSE   "not JSON: <jansson message> at line L column C"; parsing
 *                  resumes after the next newline, so one broken NDJSON line
 *                  costs only that line;
 *   NT_ERR_INVALID "not a CloudTrail record or envelope" (with detail);
 *   NT_ERR_LIMIT   nesting deeper than DEC_MAX_DEPTH, or one JSON value whose
 *                  parse tree would take more than DEC_MAX_TREE_BYTES (estimated
 *                  from its text: "[{},{},…]" costs ~100x its size in jansson);
 *                  the whole unit is refused by a linear pre-scan, before
 *                  jansson allocates anything, since jansson has no such option.
 * Empty or whitespace-only text yields nothing and NT_OK. Records found before
 * or after a bad piece are still handed to fn. */
nt_status dec_split(const char *text, size_t len, dec_record_fn fn, dec_bad_fn bad, void *ud,
                    nt_err *err);

/* 1 when v is an object with string eventVersion, eventSource and eventName. */
int dec_is_cloudtrail(const json_t *v);

/* ------------------------------------------------------------------------- */
/* d) Content-Encoding: gzip (or deflate = zlib) request bodies. */

/* gz_inflate with the body's wording: NT_ERR_LIMIT "request body expands beyond N
 * bytes", NT_ERR_PARSE "request body: truncated gzip stream" / "… corrupt …".
 * *out is malloc'd (NUL-terminated), the caller frees it; NULL on failure. */
nt_status dec_body_inflate(const unsigned char *in, size_t len, size_t max_out, unsigned char **out,
                           size_t *outlen, nt_err *err);

/* ------------------------------------------------------------------------- */
/* e) Dead-letter prefix: the first min(len, DEC_PREFIX_BYTES) bytes, printable
 * ASCII (0x20–0x7e) kept except '\\', every other byte (and '\\') as \xHH.
 * Writes at most cap - 1 characters, cutting only between whole escapes, and
 * always NUL-terminates (cap ≥ 1); DEC_PREFIX_BUF is enough for everything.
 * Returns the length written. */
size_t dec_escape_prefix(const unsigned char *p, size_t len, char *out, size_t cap);

#endif

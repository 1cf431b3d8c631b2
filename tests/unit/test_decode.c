/* Unit tests for decode.c (Firehose envelope scanner, record decoding, unit
 * splitting, prefixes) and gz.c (bounded inflate). Tables live under
 * tests/data/decode/ (see SOURCES.txt there); large inputs are built here. */
#include "base64.h"
#include "decode.h"
#include "gz.h"
#include "testutil.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

#define DATA NT_TEST_DATA "/decode/"

#define TRY_UNIT(expr)                                                                             \
    do {                                                                                           \
        nt_status st_ = (expr);                                                                    \
        if (st_ != NT_OK) return st_;                                                              \
    } while (0)

/* ------------------------------------------------------------------------- */
/* helpers                                                                    */

static char *read_file(const char *rel, size_t *len)
{
    char path[512];
    tu_path(path, sizeof path, DATA "%s", rel);
    return tu_read_file(path, len);
}

/* A tab-separated table: rows of up to 8 fields; '#' lines are comments. */
#define TSV_MAX_ROWS 128
#define TSV_MAX_COLS 8
typedef struct tsv {
    char *text;
    size_t rows;
    char *cell[TSV_MAX_ROWS][TSV_MAX_COLS];
} tsv;

static tsv t_valid, t_invalid, t_units, t_requests;

static void tsv_load(tsv *t, const char *rel)
{
    size_t len;
    t->text = read_file(rel, &len);
    t->rows = 0;
    for (char *line = strtok(t->text, "\n"); line; line = strtok(NULL, "\n")) {
        if (line[0] == '#' || line[0] == '\0') continue;
        if (t->rows == TSV_MAX_ROWS) {
            fprintf(stderr, "%s: more than %d rows\n", rel, TSV_MAX_ROWS);
            exit(2);
        }
        char **row = t->cell[t->rows++];
        int col = 0;
        for (char *p = line; col < TSV_MAX_COLS;) {
            row[col++] = p;
            char *tab = strchr(p, '\t');
            if (!tab) break;
            *tab = '\0';
            p = tab + 1;
        }
        while (col < TSV_MAX_COLS)
            row[col++] = "";
    }
}

/* gzip in[0..len) at `level` (1 member). */
static unsigned char *gzip_buf(const void *in, size_t len, size_t *outlen)
{
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    ck_assert_int_eq(deflateInit2(&zs, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
    size_t cap = deflateBound(&zs, len);
    unsigned char *out = malloc(cap);
    zs.next_in = (Bytef *)(uintptr_t)in;
    zs.avail_in = (uInt)len;
    zs.next_out = out;
    zs.avail_out = (uInt)cap;
    ck_assert_int_eq(deflate(&zs, Z_FINISH), Z_STREAM_END);
    *outlen = cap - zs.avail_out;
    deflateEnd(&zs);
    return out;
}

static char *b64_of(const unsigned char *in, size_t len, size_t *outlen)
{
    size_t cap = b64_encoded_len(len) + 1;
    char *out = malloc(cap);
    ck_assert_int_eq(b64_encode(in, len, out, cap, outlen, NULL), NT_OK);
    return out;
}

/* A gzip stream of `mib` MiB of zeros, built from one deflate block of 1 MiB of
 * zeros ended by a full flush (byte-aligned, no references into earlier data),
 * repeated, then a final empty block and the gzip trailer. Deflating 1 GiB for
 * real takes ~10 s; this takes milliseconds and is the same stream a real
 * compressor could have produced. */
static unsigned char *gzip_bomb(size_t mib, size_t *outlen)
{
    static const unsigned char zero[1 << 20];
    unsigned char block[8192] = {0}, fin[64] = {0};
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    ck_assert_int_eq(deflateInit2(&zs, 9, Z_DEFLATED, -15, 9, Z_DEFAULT_STRATEGY), Z_OK);
    zs.next_in = (Bytef *)(uintptr_t)zero;
    zs.avail_in = sizeof zero;
    zs.next_out = block;
    zs.avail_out = sizeof block;
    ck_assert_int_eq(deflate(&zs, Z_FULL_FLUSH), Z_OK);
    ck_assert_uint_eq(zs.avail_in, 0);
    size_t blen = sizeof block - zs.avail_out;
    zs.next_out = fin;
    zs.avail_out = sizeof fin;
    ck_assert_int_eq(deflate(&zs, Z_FINISH), Z_STREAM_END);
    size_t flen = sizeof fin - zs.avail_out;
    deflateEnd(&zs);

    uLong crc1 = crc32(0L, zero, sizeof zero), crc = crc32(0L, Z_NULL, 0);
    for (size_t i = 0; i < mib; i++)
        crc = crc32_combine(crc, crc1, (z_off_t)sizeof zero);
    uint32_t isize = (uint32_t)((uint64_t)mib << 20);

    static const unsigned char header[10] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3};
    size_t n = sizeof header + blen * mib + flen + 8;
    unsigned char *out = malloc(n), *p = out;
    memcpy(p, header, sizeof header);
    p += sizeof header;
    for (size_t i = 0; i < mib; i++, p += blen)
        memcpy(p, block, blen);
    memcpy(p, fin, flen);
    p += flen;
    for (int k = 0; k < 4; k++)
        *p++ = (unsigned char)(crc >> (8 * k));
    for (int k = 0; k < 4; k++)
        *p++ = (unsigned char)(isize >> (8 * k));
    *outlen = n;
    return out;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ------------------------------------------------------------------------- */
/* a) Firehose envelope                                                       */

typedef struct fh_seen {
    size_t calls;
    size_t last_index;
    int stop_at; /* return NT_ERR_STORE at this index; -1 = never */
} fh_seen;

static nt_status fh_count(void *ud, size_t index, const char *data, size_t len, unsigned flags,
                          nt_err *err)
{
    (void)data;
    (void)len;
    (void)flags;
    fh_seen *s = ud;
    ck_assert_uint_eq(index, s->calls);
    s->calls++;
    s->last_index = index;
    if (s->stop_at >= 0 && index == (size_t)s->stop_at)
        return nt_fail(err, NT_ERR_STORE, "callback stops at %zu", index);
    return NT_OK;
}

/* valid.tsv writes one backslash as "\\". */
static void tsv_unescape(const char *in, char *out)
{
    while (*in) {
        if (in[0] == '\\' && in[1] == '\\') in++;
        *out++ = *in++;
    }
    *out = '\0';
}

START_TEST(valid_envelopes_are_accepted_with_their_records)
{
    char **row = t_valid.cell[_i], path[256], want_id[300];
    snprintf(path, sizeof path, "envelopes/valid/%s", row[0]);
    size_t len;
    char *body = read_file(path, &len);
    fh_envelope env;
    fh_envelope_init(&env);
    fh_seen seen = {.stop_at = -1};
    nt_err err = {{0}};
    nt_status st = fh_scan(body, len, &env, fh_count, &seen, &err);
    ck_assert_msg(st == NT_OK, "%s: %s", row[0], err.msg);
    ck_assert_uint_eq(env.record_count, strtoul(row[1], NULL, 10));
    ck_assert_uint_eq(seen.calls, env.record_count);
    tsv_unescape(row[2], want_id);
    ck_assert_str_eq(env.request_id, want_id);
    ck_assert_uint_eq(env.request_id_len, strlen(want_id));
    if (strcmp(row[3], "-") == 0) {
        ck_assert_int_eq(env.has_timestamp, 0);
    } else {
        ck_assert_int_eq(env.has_timestamp, 1);
        ck_assert_int_eq(env.timestamp, strtoll(row[3], NULL, 10));
    }
    for (size_t i = 0; i < env.record_count; i++) {
        char idx[24];
        snprintf(idx, sizeof idx, "%zu", i);
        int want_esc = strcmp(row[4], idx) == 0;
        ck_assert_int_eq((env.records[i].flags & FH_REC_ESCAPED) != 0, want_esc);
        /* every slice lies inside the body, between quotes */
        ck_assert(env.records[i].data > body &&
                  env.records[i].data + env.records[i].len < body + len);
        ck_assert_int_eq(env.records[i].data[-1], '"');
        ck_assert_int_eq(env.records[i].data[env.records[i].len], '"');
    }
    fh_envelope_free(&env);
    free(body);
}
END_TEST

START_TEST(malformed_envelopes_are_refused_with_a_precise_message)
{
    char **row = t_invalid.cell[_i], path[256];
    snprintf(path, sizeof path, "envelopes/invalid/%s", row[0]);
    size_t len;
    char *body = read_file(path, &len);
    /* exact-size copy, so ASan sees any read past the end */
    char *exact = malloc(len ? len : 1);
    memcpy(exact, body, len);
    fh_envelope env;
    fh_envelope_init(&env);
    fh_seen seen = {.stop_at = -1};
    nt_err err = {{0}};
    nt_status st = fh_scan(exact, len, &env, fh_count, &seen, &err);
    ck_assert_msg(strcmp(nt_status_name(st), row[1]) == 0, "%s: status %s (%s), want %s", row[0],
                  nt_status_name(st), err.msg, row[1]);
    ck_assert_msg(strstr(err.msg, row[2]) != NULL, "%s: message \"%s\" lacks \"%s\"", row[0],
                  err.msg, row[2]);
    ck_assert_uint_eq(seen.calls, 0);
    ck_assert_uint_eq(env.record_count, 0);
    fh_envelope_free(&env);
    free(exact);
    free(body);
}
END_TEST

static void check_every_truncation(const char *body, size_t len, const char *name)
{
    size_t end = len;
    while (end > 0 && (body[end - 1] == ' ' || body[end - 1] == '\n' || body[end - 1] == '\r' ||
                       body[end - 1] == '\t'))
        end--;
    fh_envelope env;
    fh_envelope_init(&env);
    for (size_t cut = 0; cut < end; cut++) {
        char *prefix = malloc(cut ? cut : 1);
        memcpy(prefix, body, cut);
        fh_seen seen = {.stop_at = -1};
        nt_err err = {{0}};
        nt_status st = fh_scan(prefix, cut, &env, fh_count, &seen, &err);
        ck_assert_msg(st == NT_ERR_PARSE, "%s cut at %zu: status %s (%s)", name, cut,
                      nt_status_name(st), err.msg);
        ck_assert_msg(strstr(err.msg, "truncated body: input ends at offset") ||
                          strstr(err.msg, "the body is empty"),
                      "%s cut at %zu: %s", name, cut, err.msg);
        ck_assert_uint_eq(seen.calls, 0);
        free(prefix);
    }
    fh_envelope_free(&env);
}

START_TEST(a_valid_envelope_truncated_at_any_offset_is_refused)
{
    char **row = t_valid.cell[_i], path[256];
    snprintf(path, sizeof path, "envelopes/valid/%s", row[0]);
    size_t len;
    char *body = read_file(path, &len);
    check_every_truncation(body, len, row[0]);
    free(body);
}
END_TEST

START_TEST(a_reference_request_truncated_at_any_offset_is_refused)
{
    char **row = t_requests.cell[_i], path[256];
    snprintf(path, sizeof path, "firehose-requests/%s", row[0]);
    size_t len;
    char *body = read_file(path, &len);
    check_every_truncation(body, len, row[0]);
    free(body);
}
END_TEST

START_TEST(records_are_handed_on_only_after_the_whole_envelope_is_valid)
{
    static const char body[] = "{\"requestId\":\"r\",\"records\":[{\"data\":\"Zm9v\"},"
                               "{\"data\":\"YmFy\"},{\"data\":\"YmF6\"}],\"timestamp\":1.5}";
    fh_envelope env;
    fh_envelope_init(&env);
    fh_seen seen = {.stop_at = -1};
    nt_err err = {{0}};
    ck_assert_int_eq(fh_scan(body, sizeof body - 1, &env, fh_count, &seen, &err), NT_ERR_INVALID);
    ck_assert_uint_eq(seen.calls, 0);
    ck_assert_ptr_nonnull(strstr(err.msg, "timestamp is not an integer"));
    fh_envelope_free(&env);
}
END_TEST

START_TEST(a_failing_record_callback_stops_the_walk_with_its_status)
{
    static const char body[] = "{\"requestId\":\"r\",\"records\":[{\"data\":\"Zm9v\"},"
                               "{\"data\":\"YmFy\"},{\"data\":\"YmF6\"}]}";
    fh_envelope env;
    fh_envelope_init(&env);
    fh_seen seen = {.stop_at = 1};
    nt_err err = {{0}};
    ck_assert_int_eq(fh_scan(body, sizeof body - 1, &env, fh_count, &seen, &err), NT_ERR_STORE);
    ck_assert_uint_eq(seen.calls, 2);
    ck_assert_str_eq(err.msg, "callback stops at 1");
    /* without a callback the records are simply listed */
    ck_assert_int_eq(fh_scan(body, sizeof body - 1, &env, NULL, NULL, &err), NT_OK);
    ck_assert_uint_eq(env.record_count, 3);
    ck_assert_uint_eq(env.records[2].len, 4);
    ck_assert(memcmp(env.records[2].data, "YmF6", 4) == 0);
    fh_envelope_free(&env);
}
END_TEST

/* {"requestId":"r","x":<depth '['><depth ']'>,"records":[]} */
static char *nested_envelope(size_t depth, size_t *len)
{
    char *b = malloc(depth * 2 + 64), *p = b;
    p += sprintf(p, "{\"requestId\":\"r\",\"x\":");
    memset(p, '[', depth);
    p += depth;
    memset(p, ']', depth);
    p += depth;
    p += sprintf(p, ",\"records\":[]}");
    *len = (size_t)(p - b);
    return b;
}

START_TEST(deep_nesting_in_an_envelope_is_refused_without_recursion)
{
    size_t len;
    nt_err err = {{0}};
    fh_envelope env;
    fh_envelope_init(&env);
    char *b = nested_envelope(100000, &len);
    ck_assert_int_eq(fh_scan(b, len, &env, NULL, NULL, &err), NT_ERR_LIMIT);
    ck_assert_ptr_nonnull(
        strstr(err.msg, "JSON nested deeper than 64 levels at offset 84 in the envelope"));
    free(b);
    b = nested_envelope(63, &len); /* the envelope itself is level 1 */
    ck_assert_int_eq(fh_scan(b, len, &env, NULL, NULL, &err), NT_OK);
    free(b);
    b = nested_envelope(64, &len);
    ck_assert_int_eq(fh_scan(b, len, &env, NULL, NULL, &err), NT_ERR_LIMIT);
    free(b);
    fh_envelope_free(&env);
}
END_TEST

static char *many_records(size_t n, size_t *len)
{
    char *b = malloc(n * 16 + 64), *p = b;
    p += sprintf(p, "{\"requestId\":\"r\",\"records\":[");
    for (size_t i = 0; i < n; i++)
        p += sprintf(p, "%s{\"data\":\"Zm9v\"}", i ? "," : "");
    p += sprintf(p, "]}");
    *len = (size_t)(p - b);
    return b;
}

START_TEST(ten_thousand_records_are_listed_and_more_than_100000_are_refused)
{
    size_t len;
    nt_err err = {{0}};
    fh_envelope env;
    fh_envelope_init(&env);
    char *b = many_records(10000, &len);
    ck_assert_int_eq(fh_scan(b, len, &env, NULL, NULL, &err), NT_OK);
    ck_assert_uint_eq(env.record_count, 10000);
    ck_assert(memcmp(env.records[9999].data, "Zm9v", 4) == 0);
    free(b);
    b = many_records(100001, &len);
    ck_assert_int_eq(fh_scan(b, len, &env, NULL, NULL, &err), NT_ERR_LIMIT);
    ck_assert_ptr_nonnull(strstr(err.msg, "more than 100000 records"));
    free(b);
    b = many_records(100000, &len);
    ck_assert_int_eq(fh_scan(b, len, &env, NULL, NULL, &err), NT_OK);
    ck_assert_uint_eq(env.record_count, 100000);
    free(b);
    /* the envelope is reused: a smaller body after a larger one */
    b = many_records(1, &len);
    ck_assert_int_eq(fh_scan(b, len, &env, NULL, NULL, &err), NT_OK);
    ck_assert_uint_eq(env.record_count, 1);
    free(b);
    fh_envelope_free(&env);
    fh_envelope_free(&env); /* freeing twice (or NULL) is harmless */
    fh_envelope_free(NULL);
}
END_TEST

static const struct {
    const char *in, *out; /* out NULL = error */
    size_t cap;
    nt_status st;
} unescape_cases[] = {
    {"plain", "plain", 16, NT_OK},
    {"a\\nb\\t\\\"\\\\\\/", "a\nb\t\"\\/", 16, NT_OK},
    {"\\u00e9", "\xc3\xa9", 16, NT_OK},
    {"\\u4e2d", "\xe4\xb8\xad", 16, NT_OK},
    {"\\ud83d\\ude00", "\xf0\x9f\x98\x80", 16, NT_OK},
    {"\\u0041\\u0000", "A\0", 16, NT_OK},
    {"\\x", NULL, 16, NT_ERR_PARSE},
    {"\\u12", NULL, 16, NT_ERR_PARSE},
    {"\\udc00", NULL, 16, NT_ERR_PARSE},
    {"\\ud800\\u0041", NULL, 16, NT_ERR_PARSE},
    {"\\", NULL, 16, NT_ERR_PARSE},
    {"abcdef", NULL, 5, NT_ERR_LIMIT},
    {"\\u00e9", NULL, 1, NT_ERR_LIMIT},
};

START_TEST(json_string_escapes_unescape_to_utf8)
{
    char out[16];
    size_t n;
    nt_err err = {{0}};
    nt_status st = fh_unescape(unescape_cases[_i].in, strlen(unescape_cases[_i].in), out,
                               unescape_cases[_i].cap, &n, &err);
    ck_assert_msg(st == unescape_cases[_i].st, "%s: %s", unescape_cases[_i].in, err.msg);
    if (unescape_cases[_i].out) {
        size_t want =
            strlen(unescape_cases[_i].out) + (strstr(unescape_cases[_i].in, "0000") != NULL);
        ck_assert_uint_eq(n, want);
        ck_assert(memcmp(out, unescape_cases[_i].out, n) == 0);
    }
}
END_TEST

/* ------------------------------------------------------------------------- */
/* b) records                                                                 */

typedef struct units_seen {
    size_t calls;
    dec_kind kind[64];
    size_t sub[64];
    char text[64][96];
    size_t len[64];
    char owner[32], group[64], stream[64], event_id[64];
    int64_t event_ts;
    int gzipped;
} units_seen;

static nt_status unit_collect(void *ud, const char *text, size_t len, const dec_origin *o,
                              nt_err *err)
{
    (void)err;
    units_seen *s = ud;
    ck_assert_uint_lt(s->calls, 64);
    s->kind[s->calls] = o->kind;
    s->sub[s->calls] = o->sub_index;
    s->len[s->calls] = len;
    snprintf(s->text[s->calls], sizeof s->text[0], "%.*s", (int)(len < 95 ? len : 95), text);
    s->gzipped = o->gzipped;
    if (o->kind == DEC_CWL) {
        snprintf(s->owner, sizeof s->owner, "%s", o->owner ? o->owner : "");
        snprintf(s->group, sizeof s->group, "%s", o->log_group ? o->log_group : "");
        snprintf(s->stream, sizeof s->stream, "%s", o->log_stream ? o->log_stream : "");
        snprintf(s->event_id, sizeof s->event_id, "%s", o->event_id ? o->event_id : "");
        s->event_ts = o->event_timestamp;
    }
    s->calls++;
    return NT_OK;
}

/* dec_split collector: "shape:eventName,…", bad count, first bad message. */
typedef struct split_seen {
    char records[512];
    size_t nrecords, nbad;
    char first_bad[NT_ERR_MSG_MAX];
    size_t next_sub;
    int stop_after; /* return NT_ERR_STORE after this many records; -1 never */
} split_seen;

static nt_status split_collect(void *ud, json_t *rec, dec_shape shape, size_t sub, nt_err *err)
{
    split_seen *s = ud;
    ck_assert_uint_eq(sub, s->next_sub);
    s->next_sub++;
    ck_assert(dec_is_cloudtrail(rec));
    size_t off = strlen(s->records);
    snprintf(s->records + off, sizeof s->records - off, "%s%s:%s", s->nrecords ? "," : "",
             dec_shape_name(shape), json_string_value(json_object_get(rec, "eventName")));
    s->nrecords++;
    if (s->stop_after >= 0 && s->nrecords == (size_t)s->stop_after)
        return nt_fail(err, NT_ERR_STORE, "store is down");
    return NT_OK;
}

static void split_bad_collect(void *ud, size_t sub, nt_status st, const char *msg, const char *text,
                              size_t len)
{
    split_seen *s = ud;
    ck_assert_uint_eq(sub, s->next_sub);
    s->next_sub++;
    ck_assert_int_ne(st, NT_OK);
    ck_assert(text != NULL);
    (void)len;
    if (s->nbad++ == 0) snprintf(s->first_bad, sizeof s->first_bad, "%s", msg);
}

static nt_status split_text(const char *text, size_t len, split_seen *s, nt_err *err)
{
    memset(s, 0, sizeof *s);
    s->stop_after = -1;
    return dec_split(text, len, split_collect, split_bad_collect, s, err);
}

typedef struct request_seen {
    dec_buf *buf;
    char outcome[256];
    char split[128];
    units_seen units;
} request_seen;

/* Unit callback for whole requests: note the unit, and split plain ones. */
static nt_status request_unit(void *ud, const char *text, size_t len, const dec_origin *o,
                              nt_err *err)
{
    request_seen *r = ud;
    TRY_UNIT(unit_collect(&r->units, text, len, o, err));
    if (o->kind == DEC_PLAIN) {
        split_seen s;
        nt_err se;
        nt_status st = split_text(text, len, &s, &se);
        size_t off = strlen(r->split);
        snprintf(r->split + off, sizeof r->split - off, "%s%s", r->split[0] ? "," : "",
                 nt_status_name(st));
    }
    return NT_OK;
}

static nt_status request_record(void *ud, size_t index, const char *data, size_t len,
                                unsigned flags, nt_err *err)
{
    (void)flags;
    (void)err;
    request_seen *r = ud;
    dec_info info;
    nt_err e = {{0}};
    char one[64];
    memset(&r->units, 0, sizeof r->units);
    nt_status st = dec_record(data, len, index, r->buf, request_unit, r, &info, &e);
    if (st != NT_OK)
        snprintf(one, sizeof one, "err:%s", nt_status_name(st));
    else if (info.control)
        snprintf(one, sizeof one, "control");
    else if (info.units == 0)
        snprintf(one, sizeof one, "empty");
    else if (r->units.kind[0] == DEC_CWL)
        snprintf(one, sizeof one, "cwl:%zu", info.units);
    else
        snprintf(one, sizeof one, "plain%s", info.gzipped ? "+gzip" : "");
    ck_assert_uint_eq(r->units.calls, info.units);
    size_t off = strlen(r->outcome);
    snprintf(r->outcome + off, sizeof r->outcome - off, "%s%s", index ? "," : "", one);
    return NT_OK;
}

START_TEST(reference_firehose_requests_decode_as_their_upstream_tests_expect)
{
    char **row = t_requests.cell[_i], path[256];
    snprintf(path, sizeof path, "firehose-requests/%s", row[0]);
    size_t len;
    char *body = read_file(path, &len);
    fh_envelope env;
    fh_envelope_init(&env);
    dec_buf buf;
    dec_buf_init(&buf);
    request_seen r = {.buf = &buf};
    nt_err err = {{0}};
    ck_assert_msg(fh_scan(body, len, &env, request_record, &r, &err) == NT_OK, "%s: %s", row[0],
                  err.msg);
    ck_assert_uint_eq(env.record_count, strtoul(row[1], NULL, 10));
    ck_assert_str_eq(env.request_id, row[2]);
    ck_assert_int_eq(env.timestamp, strtoll(row[3], NULL, 10));
    ck_assert_str_eq(r.outcome, row[4]);
    ck_assert_str_eq(r.split[0] ? r.split : "-", row[5]);
    dec_buf_free(&buf);
    dec_buf_free(&buf);
    dec_buf_free(NULL);
    fh_envelope_free(&env);
    free(body);
}
END_TEST

static char *cwl_record_b64(const char *rel, int members, size_t *b64len)
{
    size_t len, glen;
    char *json = read_file(rel, &len);
    unsigned char *gz = gzip_buf(json, len, &glen);
    unsigned char *all = malloc(glen * (size_t)members);
    for (int i = 0; i < members; i++)
        memcpy(all + glen * (size_t)i, gz, glen);
    char *b64 = b64_of(all, glen * (size_t)members, b64len);
    free(all);
    free(gz);
    free(json);
    return b64;
}

START_TEST(a_gzipped_cloudwatch_logs_data_message_yields_one_unit_per_log_event)
{
    size_t blen;
    char *b64 = cwl_record_b64("cwl/data_message.json", 1, &blen);
    dec_buf buf;
    dec_buf_init(&buf);
    units_seen u = {0};
    dec_info info;
    nt_err err = {{0}};
    ck_assert_int_eq(dec_record(b64, blen, 7, &buf, unit_collect, &u, &info, &err), NT_OK);
    ck_assert_uint_eq(info.units, 2);
    ck_assert_int_eq(info.gzipped, 1);
    ck_assert_int_eq(info.control, 0);
    ck_assert_uint_gt(info.inflated_bytes, info.decoded_bytes);
    ck_assert_int_eq(u.kind[0], DEC_CWL);
    ck_assert_int_eq(u.kind[1], DEC_CWL);
    ck_assert_uint_eq(u.sub[1], 1);
    ck_assert_str_eq(u.owner, "111122223333");
    ck_assert_str_eq(u.group, "aws-cloudtrail-logs-111122223333");
    ck_assert_str_eq(u.stream, "111122223333_CloudTrail_us-east-1");
    ck_assert_str_eq(u.event_id, "38480917865042697267627490045603633139480491071049695231");
    ck_assert_int_eq(u.event_ts, 1795843200001);
    ck_assert(strncmp(u.text[0], "{\"eventVersion\":\"1.08\"", 22) == 0);
    free(b64);
    dec_buf_free(&buf);
}
END_TEST

/* Collects full unit texts and splits each one. */
static nt_status unit_then_split(void *ud, const char *text, size_t len, const dec_origin *o,
                                 nt_err *err)
{
    split_seen *s = ud;
    (void)o;
    split_seen one;
    nt_status st = split_text(text, len, &one, err);
    ck_assert_int_eq(st, NT_OK);
    size_t off = strlen(s->records);
    snprintf(s->records + off, sizeof s->records - off, "%s%s", s->nrecords ? "," : "",
             one.records);
    s->nrecords += one.nrecords;
    return NT_OK;
}

START_TEST(log_event_messages_split_into_bare_cloudtrail_records)
{
    size_t blen;
    char *b64 = cwl_record_b64("cwl/data_message.json", 1, &blen);
    dec_buf buf;
    dec_buf_init(&buf);
    split_seen s = {0};
    ck_assert_int_eq(dec_record(b64, blen, 0, &buf, unit_then_split, &s, NULL, NULL), NT_OK);
    ck_assert_str_eq(s.records, "bare:ListAccounts,bare:DescribeOrganization");
    free(b64);
    dec_buf_free(&buf);
}
END_TEST

START_TEST(a_gzipped_control_message_is_skipped_and_reported)
{
    size_t blen;
    char *b64 = cwl_record_b64("cwl/control_message.json", 1, &blen);
    dec_buf buf;
    dec_buf_init(&buf);
    units_seen u = {0};
    dec_info info;
    ck_assert_int_eq(dec_record(b64, blen, 0, &buf, unit_collect, &u, &info, NULL), NT_OK);
    ck_assert_int_eq(info.control, 1);
    ck_assert_uint_eq(info.units, 0);
    ck_assert_uint_eq(u.calls, 0);
    free(b64);
    dec_buf_free(&buf);
}
END_TEST

START_TEST(two_gzip_members_of_data_messages_become_one_plain_unit_of_two_envelopes)
{
    size_t blen;
    char *b64 = cwl_record_b64("cwl/data_message.json", 2, &blen);
    dec_buf buf;
    dec_buf_init(&buf);
    split_seen s = {0};
    dec_info info;
    ck_assert_int_eq(dec_record(b64, blen, 0, &buf, unit_then_split, &s, &info, NULL), NT_OK);
    ck_assert_uint_eq(info.units, 1);
    ck_assert_int_eq(info.gzipped, 1);
    ck_assert_str_eq(s.records, "cwl:ListAccounts,cwl:DescribeOrganization,"
                                "cwl:ListAccounts,cwl:DescribeOrganization");
    free(b64);
    dec_buf_free(&buf);
}
END_TEST

START_TEST(a_gzipped_s3_log_file_is_one_plain_unit)
{
    size_t blen;
    char *b64 = cwl_record_b64("cwl/s3_log_file.json", 1, &blen);
    dec_buf buf;
    dec_buf_init(&buf);
    split_seen s = {0};
    units_seen u = {0};
    ck_assert_int_eq(dec_record(b64, blen, 0, &buf, unit_collect, &u, NULL, NULL), NT_OK);
    ck_assert_uint_eq(u.calls, 1);
    ck_assert_int_eq(u.kind[0], DEC_PLAIN);
    ck_assert_int_eq(u.gzipped, 1);
    ck_assert_int_eq(dec_record(b64, blen, 0, &buf, unit_then_split, &s, NULL, NULL), NT_OK);
    ck_assert_str_eq(s.records, "s3_log:ListAccounts,s3_log:DescribeOrganization,s3_log:ListRoots");
    free(b64);
    dec_buf_free(&buf);
}
END_TEST

static const struct {
    const char *data, *msg;
    nt_status st;
} bad_records[] = {
    {"Zm9v!A==", "bad base64: invalid base64 character 0x21 ('!') at offset 4", NT_ERR_PARSE},
    {"Zm9vY", "bad base64: base64 length 5 is not a multiple of 4", NT_ERR_PARSE},
    /* gzip magic then garbage */
    {"H4sIAAAAAAAAA///", "corrupt gzip stream", NT_ERR_PARSE},
    /* a gzip header and nothing more */
    {"H4sIAAAAAAAAAw==", "truncated gzip stream", NT_ERR_PARSE},
};

START_TEST(an_undecodable_record_is_rejected_with_a_reason)
{
    dec_buf buf;
    dec_buf_init(&buf);
    units_seen u = {0};
    nt_err err = {{0}};
    ck_assert_int_eq(dec_record(bad_records[_i].data, strlen(bad_records[_i].data), 0, &buf,
                                unit_collect, &u, NULL, &err),
                     bad_records[_i].st);
    ck_assert_msg(strstr(err.msg, bad_records[_i].msg), "%s", err.msg);
    ck_assert_uint_eq(u.calls, 0);
    dec_buf_free(&buf);
}
END_TEST

START_TEST(a_record_over_1024000_decoded_bytes_is_refused)
{
    size_t n = DEC_MAX_RECORD_BYTES, blen;
    unsigned char *raw = malloc(n + 3);
    memset(raw, 'a', n + 3);
    dec_buf buf;
    dec_buf_init(&buf);
    units_seen u = {0};
    nt_err err = {{0}};
    char *b64 = b64_of(raw, n, &blen);
    ck_assert_int_eq(dec_record(b64, blen, 0, &buf, unit_collect, &u, NULL, &err), NT_OK);
    ck_assert_uint_eq(u.calls, 1);
    ck_assert_uint_eq(u.len[0], n);
    free(b64);
    b64 = b64_of(raw, n + 1, &blen);
    ck_assert_int_eq(dec_record(b64, blen, 0, &buf, unit_collect, &u, NULL, &err), NT_ERR_LIMIT);
    ck_assert_ptr_nonnull(strstr(err.msg, "record decodes to 1024001 bytes"));
    ck_assert_uint_eq(u.calls, 1);
    free(b64);
    free(raw);
    dec_buf_free(&buf);
}
END_TEST

START_TEST(an_empty_or_blank_record_yields_no_unit)
{
    dec_buf buf;
    dec_buf_init(&buf);
    units_seen u = {0};
    dec_info info;
    ck_assert_int_eq(dec_record("", 0, 0, &buf, unit_collect, &u, &info, NULL), NT_OK);
    ck_assert_uint_eq(info.units, 0);
    ck_assert_int_eq(dec_record("IAoJDQ==", 8, 0, &buf, unit_collect, &u, &info, NULL), NT_OK);
    ck_assert_uint_eq(info.decoded_bytes, 4);
    ck_assert_uint_eq(info.units, 0);
    ck_assert_uint_eq(u.calls, 0);
    dec_buf_free(&buf);
}
END_TEST

START_TEST(a_gzip_bomb_stops_at_the_cap_quickly)
{
    size_t glen;
    unsigned char *bomb = gzip_bomb(1024, &glen); /* 1 GiB of zeros */
    ck_assert_uint_lt(glen, 2u << 20);
    unsigned char *buf = NULL;
    size_t cap = 0, n = 0;
    nt_err err = {{0}};
    double t0 = now_s();
    ck_assert_int_eq(gz_inflate_into(bomb, glen, DEC_MAX_INFLATE, &buf, &cap, &n, &err),
                     NT_ERR_LIMIT);
    double dt = now_s() - t0;
    ck_assert_str_eq(err.msg, "gzip expands beyond 16777216 bytes");
    ck_assert_uint_le(cap, (size_t)DEC_MAX_INFLATE + 2); /* memory never exceeded the cap */
    ck_assert_msg(dt < 2.0, "took %.3f s", dt);
    free(buf);
    free(bomb);

    /* the same through dec_record: 512 MiB of zeros fits in one Firehose record */
    bomb = gzip_bomb(512, &glen);
    size_t blen;
    char *b64 = b64_of(bomb, glen, &blen);
    dec_buf db;
    dec_buf_init(&db);
    units_seen u = {0};
    ck_assert_int_eq(dec_record(b64, blen, 0, &db, unit_collect, &u, NULL, &err), NT_ERR_LIMIT);
    ck_assert_str_eq(err.msg, "gzip expands beyond 16777216 bytes");
    db.max_inflate = 1000;
    ck_assert_int_eq(dec_record(b64, blen, 0, &db, unit_collect, &u, NULL, &err), NT_ERR_LIMIT);
    ck_assert_str_eq(err.msg, "gzip expands beyond 1000 bytes");
    ck_assert_uint_eq(u.calls, 0);
    dec_buf_free(&db);
    free(b64);
    free(bomb);
}
END_TEST

START_TEST(the_bomb_construction_is_a_valid_gzip_stream)
{
    size_t glen, n;
    unsigned char *bomb = gzip_bomb(3, &glen), *out;
    ck_assert_int_eq(gz_inflate(bomb, glen, 3u << 20, &out, &n, NULL), NT_OK);
    ck_assert_uint_eq(n, 3u << 20);
    for (size_t i = 0; i < n; i += 4093)
        ck_assert_int_eq(out[i], 0);
    free(out);
    ck_assert_int_eq(gz_inflate(bomb, glen, (3u << 20) - 1, &out, &n, NULL), NT_ERR_LIMIT);
    ck_assert_ptr_null(out);
    free(bomb);
}
END_TEST

START_TEST(a_gzip_stream_cut_anywhere_is_a_truncated_stream)
{
    size_t len, glen;
    char *json = read_file("cwl/data_message.json", &len);
    unsigned char *gz = gzip_buf(json, len, &glen);
    for (size_t cut = 0; cut < glen; cut++) {
        unsigned char *prefix = malloc(cut ? cut : 1), *out;
        memcpy(prefix, gz, cut);
        size_t n;
        nt_err err = {{0}};
        ck_assert_int_eq(gz_inflate(prefix, cut, 1u << 20, &out, &n, &err), NT_ERR_PARSE);
        ck_assert_msg(strcmp(err.msg, "truncated gzip stream") == 0, "cut %zu: %s", cut, err.msg);
        ck_assert_ptr_null(out);
        free(prefix);
    }
    free(gz);
    free(json);
}
END_TEST

START_TEST(gzip_framing_members_zlib_and_corruption_are_handled)
{
    static const char text[] = "hello, hello, hello";
    size_t glen, n;
    unsigned char *gz = gzip_buf(text, sizeof text - 1, &glen), *out;
    ck_assert(gz_is_gzip(gz, glen));
    ck_assert(!gz_is_gzip(gz, 1));
    ck_assert(!gz_is_gzip((const unsigned char *)"{}", 2));
    nt_err err = {{0}};

    /* concatenated members decode as their concatenation */
    unsigned char *two = malloc(glen * 2);
    memcpy(two, gz, glen);
    memcpy(two + glen, gz, glen);
    ck_assert_int_eq(gz_inflate(two, glen * 2, 1000, &out, &n, &err), NT_OK);
    ck_assert_uint_eq(n, 2 * (sizeof text - 1));
    ck_assert(memcmp(out + n / 2, text, n / 2) == 0);
    ck_assert_int_eq(out[n], '\0');
    free(out);

    /* trailing bytes that are not a member */
    memcpy(two + glen, "junk", 4);
    ck_assert_int_eq(gz_inflate(two, glen + 4, 1000, &out, &n, &err), NT_ERR_PARSE);
    char want[96];
    snprintf(want, sizeof want, "corrupt gzip stream: 4 bytes of trailing data at offset %zu",
             glen);
    ck_assert_str_eq(err.msg, want);

    /* a flipped bit in the data is caught (by the data or the CRC) */
    memcpy(two, gz, glen);
    two[glen - 9] ^= 0x01;
    ck_assert_int_eq(gz_inflate(two, glen, 1000, &out, &n, &err), NT_ERR_PARSE);
    ck_assert_ptr_nonnull(strstr(err.msg, "corrupt gzip stream: "));

    /* zlib framing (HTTP "deflate") */
    unsigned char z[128];
    uLongf zlen = sizeof z;
    ck_assert_int_eq(compress(z, &zlen, (const Bytef *)text, sizeof text - 1), Z_OK);
    ck_assert_int_eq(gz_inflate(z, zlen, 1000, &out, &n, &err), NT_OK);
    ck_assert_uint_eq(n, sizeof text - 1);
    free(out);

    /* not compressed at all */
    ck_assert_int_eq(gz_inflate((const unsigned char *)"{\"a\":1}", 7, 1000, &out, &n, &err),
                     NT_ERR_PARSE);
    ck_assert_str_eq(err.msg, "corrupt gzip stream: incorrect header check");

    /* the limit is exact */
    ck_assert_int_eq(gz_inflate(gz, glen, sizeof text - 1, &out, &n, &err), NT_OK);
    free(out);
    ck_assert_int_eq(gz_inflate(gz, glen, sizeof text - 2, &out, &n, &err), NT_ERR_LIMIT);
    ck_assert_str_eq(err.msg, "gzip expands beyond 18 bytes");
    free(two);
    free(gz);
}
END_TEST

START_TEST(request_bodies_inflate_within_their_own_limit)
{
    size_t len, glen, n;
    char *body = read_file("envelopes/valid/minimal.json", &len);
    unsigned char *gz = gzip_buf(body, len, &glen), *out;
    nt_err err = {{0}};
    ck_assert_int_eq(dec_body_inflate(gz, glen, 256u << 20, &out, &n, &err), NT_OK);
    ck_assert_uint_eq(n, len);
    ck_assert(memcmp(out, body, len) == 0);
    free(out);
    ck_assert_int_eq(dec_body_inflate(gz, glen, 10, &out, &n, &err), NT_ERR_LIMIT);
    ck_assert_str_eq(err.msg, "request body expands beyond 10 bytes when gunzipped");
    ck_assert_ptr_null(out);
    ck_assert_int_eq(dec_body_inflate(gz, glen - 3, 1000, &out, &n, &err), NT_ERR_PARSE);
    ck_assert_str_eq(err.msg, "request body: truncated gzip stream");
    free(gz);
    free(body);
}
END_TEST

/* ------------------------------------------------------------------------- */
/* c) units                                                                   */

START_TEST(every_unit_shape_yields_its_records)
{
    char **row = t_units.cell[_i], path[256];
    snprintf(path, sizeof path, "units/%s", row[0]);
    size_t len;
    char *text = read_file(path, &len);
    char *exact = malloc(len ? len : 1);
    memcpy(exact, text, len);
    split_seen s;
    nt_err err = {{0}};
    nt_status st = split_text(exact, len, &s, &err);
    ck_assert_msg(strcmp(nt_status_name(st), row[1]) == 0, "%s: status %s (%s)", row[0],
                  nt_status_name(st), err.msg);
    ck_assert_str_eq(s.nrecords ? s.records : "-", row[2]);
    ck_assert_uint_eq(s.nbad, strtoul(row[3], NULL, 10));
    if (strcmp(row[4], "-") != 0) {
        ck_assert_msg(strstr(err.msg, row[4]) != NULL, "%s: \"%s\" lacks \"%s\"", row[0], err.msg,
                      row[4]);
        ck_assert_str_eq(s.first_bad, err.msg);
    }
    free(exact);
    free(text);
}
END_TEST

/* "[{},{},…]" costs ~100 times its size in jansson: one value whose estimated
 * tree passes DEC_MAX_TREE_BYTES is refused before parsing, while the same
 * bytes as NDJSON lines (each value on its own) are parsed one by one. */
START_TEST(a_value_whose_tree_is_too_large_is_refused_before_parsing)
{
    size_t n = 300000; /* 300,000 empty objects: ~91 MB estimated, 900 KB of text */
    size_t len = 3 * n + 1;
    char *text = malloc(len + 1);
    ck_assert_ptr_nonnull(text);
    text[0] = '[';
    for (size_t i = 0; i < n; i++)
        memcpy(text + 1 + 3 * i, "{},", 3);
    text[len - 1] = ']';
    split_seen s;
    nt_err err = {{0}};
    ck_assert_int_eq(split_text(text, len, &s, &err), NT_ERR_LIMIT);
    ck_assert_msg(strstr(err.msg, "JSON value too large to parse: its tree would exceed 67108864 "
                                  "bytes") != NULL,
                  "%s", err.msg);
    ck_assert_uint_eq(s.nbad, 1);
    ck_assert_uint_eq(s.nrecords, 0);

    /* The same objects one per line: every value is small, none is refused
     * for size (each is "not a CloudTrail record"). */
    for (size_t i = 0; i < n; i++)
        text[1 + 3 * i + 2] = '\n';
    text[0] = ' ';
    text[len - 1] = '\n';
    ck_assert_int_eq(split_text(text, len, &s, &err), NT_ERR_INVALID);
    ck_assert_uint_eq(s.nbad, n);
    free(text);
}
END_TEST

START_TEST(deep_nesting_in_a_unit_is_refused_without_stack_overflow)
{
    size_t n = 100000;
    char *deep = malloc(n);
    memset(deep, '[', n);
    split_seen s;
    nt_err err = {{0}};
    ck_assert_int_eq(split_text(deep, n, &s, &err), NT_ERR_LIMIT);
    ck_assert_str_eq(err.msg, "JSON nested deeper than 64 levels at offset 64");
    ck_assert_uint_eq(s.nbad, 1);
    free(deep);

    /* 64 levels inside a record are fine, 65 are not; brackets in strings do
     * not count. With no bracket in a string, 64 brackets in all pass the
     * quick count and 65 go to the walk, which refuses them at the 65th. */
    static const char *const source[] = {"\"[[[[{{\\\"\"", "\"iam.amazonaws.com\""};
    char rec[1024];
    for (int v = 0; v < 2; v++) {
        for (int depth = 63; depth <= 64; depth++) {
            int k = sprintf(rec,
                            "{\"eventVersion\":\"1.08\",\"eventSource\":%s,"
                            "\"eventName\":\"ListAccounts\",\"x\":",
                            source[v]);
            for (int i = 0; i < depth; i++)
                rec[k++] = '[';
            for (int i = 0; i < depth; i++)
                rec[k++] = ']';
            rec[k++] = '}';
            ck_assert_int_eq(split_text(rec, (size_t)k, &s, &err),
                             depth == 63 ? NT_OK : NT_ERR_LIMIT);
            if (depth == 64)
                ck_assert(strstr(err.msg, "JSON nested deeper than 64 levels") != NULL);
        }
    }
}
END_TEST

START_TEST(a_failing_record_callback_stops_the_split_with_its_status)
{
    size_t len;
    char *text = read_file("units/ndjson_of_three.txt", &len);
    split_seen s;
    memset(&s, 0, sizeof s);
    s.stop_after = 2;
    nt_err err = {{0}};
    ck_assert_int_eq(dec_split(text, len, split_collect, NULL, &s, &err), NT_ERR_STORE);
    ck_assert_str_eq(err.msg, "store is down");
    ck_assert_uint_eq(s.nrecords, 2);
    free(text);
}
END_TEST

START_TEST(shape_names_are_the_metric_labels)
{
    ck_assert_str_eq(dec_shape_name(DEC_SHAPE_EVENTBRIDGE), "eventbridge");
    ck_assert_str_eq(dec_shape_name(DEC_SHAPE_BARE), "bare");
    ck_assert_str_eq(dec_shape_name(DEC_SHAPE_S3_LOG), "s3_log");
    ck_assert_str_eq(dec_shape_name(DEC_SHAPE_NDJSON), "ndjson");
    ck_assert_str_eq(dec_shape_name(DEC_SHAPE_ARRAY), "array");
    ck_assert_str_eq(dec_shape_name(DEC_SHAPE_CWL), "cwl");
    ck_assert_str_eq(dec_shape_name(DEC_SHAPE_COUNT), "unknown");
}
END_TEST

/* ------------------------------------------------------------------------- */
/* e) dead-letter prefix                                                      */

static const struct {
    const char *in;
    size_t len, cap;
    const char *out;
} prefix_cases[] = {
    {"abc", 3, DEC_PREFIX_BUF, "abc"},
    {"\x1f\x8b\x08\x00", 4, DEC_PREFIX_BUF, "\\x1f\\x8b\\x08\\x00"},
    {"a\\b\"c", 5, DEC_PREFIX_BUF, "a\\x5cb\"c"},
    {"line\nnext\x7f", 10, DEC_PREFIX_BUF, "line\\x0anext\\x7f"},
    {"", 0, DEC_PREFIX_BUF, ""},
    {"abcdef", 6, 4, "abc"},
    {"ab\xff", 3, 6, "ab"}, /* an escape never gets cut in half */
    {"ab\xff", 3, 7, "ab\\xff"},
    {"abc", 3, 1, ""},
};

START_TEST(dead_letter_prefixes_are_escaped_and_bounded)
{
    char out[DEC_PREFIX_BUF];
    memset(out, 'Z', sizeof out);
    size_t n = dec_escape_prefix((const unsigned char *)prefix_cases[_i].in, prefix_cases[_i].len,
                                 out, prefix_cases[_i].cap);
    ck_assert_str_eq(out, prefix_cases[_i].out);
    ck_assert_uint_eq(n, strlen(prefix_cases[_i].out));
}
END_TEST

START_TEST(a_dead_letter_prefix_shows_at_most_128_bytes)
{
    unsigned char in[300];
    char out[DEC_PREFIX_BUF];
    memset(in, 'x', sizeof in);
    ck_assert_uint_eq(dec_escape_prefix(in, sizeof in, out, sizeof out), 128);
    memset(in, 0xff, sizeof in);
    ck_assert_uint_eq(dec_escape_prefix(in, sizeof in, out, sizeof out), 512);
    ck_assert_uint_eq(strlen(out), 512);
}
END_TEST

static void decode_teardown(void)
{
    free(t_valid.text);
    free(t_invalid.text);
    free(t_units.text);
    free(t_requests.text);
}

static Suite *decode_suite(void)
{
    tsv_load(&t_valid, "envelopes/valid.tsv");
    tsv_load(&t_invalid, "envelopes/invalid.tsv");
    tsv_load(&t_units, "units.tsv");
    tsv_load(&t_requests, "firehose-requests.tsv");

    Suite *s = suite_create("decode");
    TCase *env = tcase_create("envelope");
    tcase_add_loop_test(env, valid_envelopes_are_accepted_with_their_records, 0, (int)t_valid.rows);
    tcase_add_loop_test(env, malformed_envelopes_are_refused_with_a_precise_message, 0,
                        (int)t_invalid.rows);
    tcase_add_loop_test(env, a_valid_envelope_truncated_at_any_offset_is_refused, 0,
                        (int)t_valid.rows);
    tcase_add_loop_test(env, a_reference_request_truncated_at_any_offset_is_refused, 0,
                        (int)t_requests.rows);
    tcase_add_test(env, records_are_handed_on_only_after_the_whole_envelope_is_valid);
    tcase_add_test(env, a_failing_record_callback_stops_the_walk_with_its_status);
    tcase_add_test(env, deep_nesting_in_an_envelope_is_refused_without_recursion);
    tcase_add_test(env, ten_thousand_records_are_listed_and_more_than_100000_are_refused);
    tcase_add_loop_test(env, json_string_escapes_unescape_to_utf8, 0,
                        sizeof unescape_cases / sizeof unescape_cases[0]);
    suite_add_tcase(s, env);

    TCase *rec = tcase_create("record");
    tcase_set_timeout(rec, 120);
    tcase_add_loop_test(rec, reference_firehose_requests_decode_as_their_upstream_tests_expect, 0,
                        (int)t_requests.rows);
    tcase_add_test(rec, a_gzipped_cloudwatch_logs_data_message_yields_one_unit_per_log_event);
    tcase_add_test(rec, log_event_messages_split_into_bare_cloudtrail_records);
    tcase_add_test(rec, a_gzipped_control_message_is_skipped_and_reported);
    tcase_add_test(rec, two_gzip_members_of_data_messages_become_one_plain_unit_of_two_envelopes);
    tcase_add_test(rec, a_gzipped_s3_log_file_is_one_plain_unit);
    tcase_add_loop_test(rec, an_undecodable_record_is_rejected_with_a_reason, 0,
                        sizeof bad_records / sizeof bad_records[0]);
    tcase_add_test(rec, a_record_over_1024000_decoded_bytes_is_refused);
    tcase_add_test(rec, an_empty_or_blank_record_yields_no_unit);
    tcase_add_test(rec, a_gzip_bomb_stops_at_the_cap_quickly);
    tcase_add_test(rec, the_bomb_construction_is_a_valid_gzip_stream);
    tcase_add_test(rec, a_gzip_stream_cut_anywhere_is_a_truncated_stream);
    tcase_add_test(rec, gzip_framing_members_zlib_and_corruption_are_handled);
    tcase_add_test(rec, request_bodies_inflate_within_their_own_limit);
    suite_add_tcase(s, rec);

    TCase *unit = tcase_create("unit");
    tcase_add_loop_test(unit, every_unit_shape_yields_its_records, 0, (int)t_units.rows);
    tcase_add_test(unit, deep_nesting_in_a_unit_is_refused_without_stack_overflow);
    tcase_add_test(unit, a_value_whose_tree_is_too_large_is_refused_before_parsing);
    tcase_add_test(unit, a_failing_record_callback_stops_the_split_with_its_status);
    tcase_add_test(unit, shape_names_are_the_metric_labels);
    tcase_add_loop_test(unit, dead_letter_prefixes_are_escaped_and_bounded, 0,
                        sizeof prefix_cases / sizeof prefix_cases[0]);
    tcase_add_test(unit, a_dead_letter_prefix_shows_at_most_128_bytes);
    suite_add_tcase(s, unit);
    return s;
}

NT_TEST_MAIN_TEARDOWN(decode_suite, decode_teardown)

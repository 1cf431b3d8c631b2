/*
 * Unit tests for ctview.c, the CloudTrail→ECS view.
 *
 * Data lives in tests/data/ctview/ (see SOURCES.txt there):
 * - elastic/: Elastic's own pipeline fixtures; every field of every expected
 *   document that the view claims must come out identical, and every static
 *   field the view produces must be in the expected document, except the
 *   fields listed (with reasons) in the tables below.
 * - samples/: real CloudTrail records, with a table of values read by hand.
 * - identity_cases.json: user.* and cloud.account.id per userIdentity shape.
 * - java_render.json: payloads and the Map.toString() text a JVM prints.
 */
#include "ctview.h"
#include "testutil.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DATA NT_TEST_DATA "/ctview/"
#define MAXV NT_FIELD_MAX_VALUES

/* ---- helpers --------------------------------------------------------------------------------- */

/* The records in a sample file: {"Records": [...]}, an array, or one record. */
static json_t *records_of(json_t *doc)
{
    json_t *recs = json_object_get(doc, "Records");
    if (json_is_array(recs)) return json_incref(recs);
    if (json_is_array(doc)) return json_incref(doc);
    json_t *a = json_array();
    json_array_append(a, doc);
    return a;
}

typedef struct view {
    ct_schema *schema;
    json_t *record;
    ct_event ev;
} view;

static view *view_new(json_t *record /* stolen */)
{
    view *v = calloc(1, sizeof *v);
    ck_assert_ptr_nonnull(v);
    v->schema = ct_schema_new();
    v->record = record;
    ct_event_init(&v->ev, v->schema, record, 1795843752123);
    return v;
}

static void view_free(view *v)
{
    json_decref(v->record);
    ct_schema_free(v->schema);
    free(v);
}

static view *view_parse(const char *text)
{
    json_error_t e;
    json_t *r = json_loads(text, 0, &e);
    if (!r) ck_abort_msg("bad test JSON: %s", e.text);
    return view_new(r);
}

static size_t get(view *v, const char *name, nt_value *out)
{
    int id = ct_schema_resolve(v->schema, name, strlen(name));
    ck_assert_msg(id >= 0, "%s does not resolve", name);
    return ct_view_get(&v->ev, id, out, MAXV);
}

static int val_is(const nt_value *v, const char *s)
{
    return v->len == strlen(s) && memcmp(v->ptr, s, v->len) == 0;
}

/* Assert the field's values are exactly want[0..n) (n = 0: missing). */
static void expect_values(view *v, const char *what, const char *name, const char *const *want,
                          size_t n)
{
    nt_value got[MAXV];
    size_t k = get(v, name, got);
    char buf[2048] = "";
    for (size_t i = 0; i < k; i++) {
        size_t used = strlen(buf);
        snprintf(buf + used, sizeof buf - used, "%s\"%.*s\"", i ? ", " : "",
                 (int)(got[i].len > 300 ? 300 : got[i].len), got[i].ptr);
    }
    ck_assert_msg(k == n, "%s: %s has %zu values [%s], want %zu", what, name, k, buf, n);
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(val_is(&got[i], want[i]), "%s: %s[%zu] = \"%.*s\", want \"%s\"", what, name,
                      i, (int)(got[i].len > 300 ? 300 : got[i].len), got[i].ptr, want[i]);
}

static void expect_one(view *v, const char *what, const char *name, const char *want)
{
    expect_values(v, what, name, want ? &want : NULL, want ? 1 : 0);
}

/* Text of a JSON scalar the way the view prints it. */
static const char *scalar_text(json_t *j, char *buf, size_t cap)
{
    if (json_is_string(j)) return json_string_value(j);
    if (json_is_true(j)) return "true";
    if (json_is_false(j)) return "false";
    if (json_is_integer(j)) {
        snprintf(buf, cap, "%" JSON_INTEGER_FORMAT, json_integer_value(j));
        return buf;
    }
    if (json_is_real(j)) {
        snprintf(buf, cap, "%.17g", json_real_value(j));
        return buf;
    }
    return NULL;
}

/* Expected values given as JSON: null = missing, scalar, or list. */
static void expect_json(view *v, const char *what, const char *name, json_t *want)
{
    const char *w[MAXV];
    char bufs[MAXV][64];
    size_t n = 0;
    if (json_is_array(want)) {
        size_t i;
        json_t *m;
        json_array_foreach(want, i, m)
        {
            w[n] = scalar_text(m, bufs[n], sizeof bufs[n]);
            n++;
        }
    } else if (!json_is_null(want)) {
        w[n++] = scalar_text(want, bufs[0], sizeof bufs[0]);
    }
    expect_values(v, what, name, w, n);
}

/* ---- (a) Elastic pipeline fixtures ---------------------------------------------------------- */

static const char *const fixtures[] = {
    "test-assume-role-aws-service-json.log", "test-assume-role-email-session-json.log",
    "test-console-login-json.log",           "test-get-caller-identity-json.log",
    "test-user-authentication.log",
};

/* Fields in the expected documents that the view deliberately does not produce
 * (ct_schema_resolve gives -1). A name ending in '.' is a prefix. */
static const struct {
    const char *field, *reason;
} not_produced[] = {
    {"event.created", "the input's timestamp from the test config, not from the record"},
    {"event.original", "raw text kept by the preserve_original_event tag; the alert carries the "
                       "record itself"},
    {"event.category", "per-eventName category table not in the docs"},
    {"event.type", "per-eventName type table not in the docs (only the 'info' default is)"},
    {"tags", "set by the test config"},
    {"source.geo.", "GeoIP enrichment"},
    {"source.as.", "ASN enrichment"},
    {"user_agent.name", "user-agent parser"},
    {"user_agent.version", "user-agent parser"},
    {"user_agent.os.", "user-agent parser"},
    {"user_agent.device.", "user-agent parser"},
    {"actor.entity.id", "actor_target_mapping entity script: per-source table not in the docs"},
    {"user.entity.id", "actor_target_mapping entity script"},
    {"service.entity.id", "actor_target_mapping entity script"},
    {"target.entity.id", "actor_target_mapping entity script"},
    {"user.target.entity.id", "actor_target_mapping entity script"},
    {"related.entity", "actor_target_mapping entity script"},
};

/* Fields the view produces whose expected value differs for a documented
 * reason (file "*" = every fixture). Checked in both directions. */
static const struct {
    const char *file, *field, *reason;
} skipped[] = {
    {"*", "data_stream.dataset", "set by the data stream, never in pipeline test output"},
    {"*", "event.dataset", "set by the data stream, never in pipeline test output"},
    {"*", "event.ingested", "set by Fleet's final pipeline, never in pipeline test output"},
    {"test-get-caller-identity-json.log", "related.user",
     "expected output predates 7.x: user.id was not yet added to related.user"},
    {"test-get-caller-identity-json.log", "related.ip", "expected output predates related.ip"},
    {"test-get-caller-identity-json.log", "cloud.provider", "expected output predates 7.x"},
    {"test-get-caller-identity-json.log", "cloud.service.name", "expected output predates 7.x"},
    {"test-user-authentication.log", "related.user",
     "expected output predates user.id/on_behalf_of entries in related.user"},
    {"test-user-authentication.log", "user.id",
     "expected output predates the onBehalfOf.userId fallback"},
    {"test-user-authentication.log", "aws.cloudtrail.user_identity.on_behalf_of.user_id",
     "expected output predates 7.x, which keeps previously dropped fields"},
    {"test-user-authentication.log", "aws.cloudtrail.user_identity.on_behalf_of.identity_store_arn",
     "expected output predates 7.x"},
    {"test-user-authentication.log", "aws.cloudtrail.user_identity.credential_id",
     "expected output predates 7.x"},
    {"test-user-authentication.log", "cloud.provider", "expected output predates 7.x"},
    {"test-user-authentication.log", "cloud.service.name", "expected output predates 7.x"},
};

static int is_skipped(const char *file, const char *field)
{
    for (size_t i = 0; i < sizeof skipped / sizeof skipped[0]; i++)
        if ((strcmp(skipped[i].file, "*") == 0 || strcmp(skipped[i].file, file) == 0) &&
            strcmp(skipped[i].field, field) == 0)
            return 1;
    return 0;
}

static int is_not_produced(const char *field)
{
    for (size_t i = 0; i < sizeof not_produced / sizeof not_produced[0]; i++) {
        const char *p = not_produced[i].field;
        size_t n = strlen(p);
        if (p[n - 1] == '.' ? strncmp(field, p, n) == 0 : strcmp(field, p) == 0) return 1;
    }
    return 0;
}

/* ES-style flattening of a document: {"a": {"b": [1, {"c": 2}]}} gives
 * a.b → [1] and a.b.c → [2]. */
static void flatten(json_t *doc, const char *prefix, json_t *into)
{
    if (json_is_object(doc)) {
        const char *k;
        json_t *m;
        json_object_foreach(doc, k, m)
        {
            char name[512];
            snprintf(name, sizeof name, "%s%s%s", prefix, *prefix ? "." : "", k);
            flatten(m, name, into);
        }
    } else if (json_is_array(doc)) {
        size_t i;
        json_t *m;
        json_array_foreach(doc, i, m) flatten(m, prefix, into);
    } else if (!json_is_null(doc)) {
        json_t *list = json_object_get(into, prefix);
        if (!list) json_object_set_new(into, prefix, list = json_array());
        json_array_append(list, doc);
    }
}

static int fixture_record(const char *file, size_t index, json_t **record, json_t **expected)
{
    char path[512];
    snprintf(path, sizeof path, DATA "elastic/%s", file);
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    char *line = NULL;
    size_t cap = 0, i = 0;
    *record = NULL;
    while (getline(&line, &cap, f) > 0) {
        if (line[0] == '\n') continue;
        if (i++ == index) {
            json_error_t e;
            *record = json_loads(line, 0, &e);
            ck_assert_msg(*record != NULL, "%s line %zu: %s", file, index, e.text);
            break;
        }
    }
    free(line);
    fclose(f);
    if (!*record) return 0;
    snprintf(path, sizeof path, DATA "elastic/%s-expected.json", file);
    json_t *exp = tu_load_json(path, 0);
    *expected = json_incref(json_array_get(json_object_get(exp, "expected"), index));
    json_decref(exp);
    ck_assert_ptr_nonnull(*expected);
    return 1;
}

static int is_flattened(const char *name)
{
    return strncmp(name, "aws.cloudtrail.flattened.", 25) == 0;
}

START_TEST(every_claimed_field_of_the_elastic_fixtures_matches_the_pipeline_output)
{
    const char *file = fixtures[_i];
    json_t *record, *expected;
    size_t checked = 0;
    for (size_t idx = 0; fixture_record(file, idx, &record, &expected); idx++) {
        view *v = view_new(record);
        json_t *flat = json_object();
        flatten(expected, "", flat);
        const char *name;
        json_t *want;
        char what[600];
        json_object_foreach(flat, name, want)
        {
            snprintf(what, sizeof what, "%s[%zu]", file, idx);
            int id = ct_schema_resolve(v->schema, name, strlen(name));
            if (id < 0) {
                ck_assert_msg(is_not_produced(name),
                              "%s: expected field %s is not produced and not "
                              "listed in not_produced[]",
                              what, name);
                continue;
            }
            ck_assert_msg(!is_not_produced(name), "%s: %s is produced but listed as not produced",
                          what, name);
            if (is_skipped(file, name)) continue;
            expect_json(v, what, name, want);
            /* types: booleans are NT_VAL_BOOL except inside flattened payloads */
            nt_value got[MAXV];
            size_t k = ct_view_get(&v->ev, id, got, MAXV);
            for (size_t j = 0; j < k; j++) {
                json_t *w = json_array_get(want, j);
                nt_value_type t =
                    is_flattened(name) || !json_is_boolean(w) ? NT_VAL_STRING : NT_VAL_BOOL;
                ck_assert_msg(got[j].type == t, "%s: %s has type %d", what, name, got[j].type);
            }
            checked++;
        }
        /* Reverse: every static field the view yields is in the expected document. */
        ct_schema *fresh = ct_schema_new();
        size_t n_static = ct_schema_field_count(fresh);
        ct_schema_free(fresh);
        for (int id = 0; id < (int)n_static; id++) {
            const char *fname = ct_schema_field_name(v->schema, id);
            nt_value got[MAXV];
            if (ct_view_get(&v->ev, id, got, MAXV) == 0 || is_skipped(file, fname)) continue;
            int found = json_object_get(flat, fname) != NULL;
            if (!found && is_flattened(fname)) { /* a root: some leaf below it */
                const char *k;
                json_t *m;
                size_t fl = strlen(fname);
                json_object_foreach(flat, k, m) if (strncmp(k, fname, fl) == 0 && k[fl] == '.')
                    found = 1;
            }
            ck_assert_msg(found, "%s[%zu]: the view yields %s = \"%.*s\" but the pipeline does not",
                          file, idx, fname, (int)got[0].len, got[0].ptr);
        }
        json_decref(flat);
        json_decref(expected);
        view_free(v);
    }
    ck_assert_msg(checked > 20, "%s: only %zu fields checked", file, checked);
}
END_TEST

START_TEST(every_listed_difference_gives_its_reason)
{
    for (size_t i = 0; i < sizeof not_produced / sizeof not_produced[0]; i++)
        ck_assert_msg(strlen(not_produced[i].reason) > 8, "%s", not_produced[i].field);
    for (size_t i = 0; i < sizeof skipped / sizeof skipped[0]; i++)
        ck_assert_msg(strlen(skipped[i].reason) > 8, "%s", skipped[i].field);
}
END_TEST

START_TEST(verbatim_fields_appear_quoted_in_the_raw_record_text)
{
    /* The contract of verbatim(): each value v of such a field occurs as "v". */
    const char *file = fixtures[_i];
    json_t *record, *expected;
    for (size_t idx = 0; fixture_record(file, idx, &record, &expected); idx++) {
        char *raw = json_dumps(record, JSON_COMPACT);
        view *v = view_new(record);
        nt_field_source src = ct_schema_source(v->schema);
        size_t n = ct_schema_field_count(v->schema), verbatim = 0;
        for (int id = 0; id < (int)n; id++) {
            int vb = src.verbatim(src.ctx, id);
            if (!vb) continue;
            verbatim++;
            nt_value got[MAXV];
            size_t k = src.get(src.ctx, &v->ev, id, got, MAXV);
            size_t klen = 0;
            const char *key = src.key_suffix ? src.key_suffix(src.ctx, id, &klen) : NULL;
            if (k && key) { /* a value implies the key: `key"` is in the raw text */
                char kneedle[512];
                snprintf(kneedle, sizeof kneedle, "%.*s\"", (int)klen, key);
                ck_assert_msg(strstr(raw, kneedle) != NULL, "%s: %s has values but no key %s", file,
                              ct_schema_field_name(v->schema, id), kneedle);
            }
            for (size_t j = 0; j < k; j++) {
                char needle[4096];
                ck_assert(got[j].type == NT_VAL_STRING);
                snprintf(needle, sizeof needle, "\"%.*s\"", (int)got[j].len, got[j].ptr);
                if (vb == 2 && !strstr(raw, needle)) {
                    /* else the text of a number or boolean leaf */
                    int num = strspn(needle + 1, "0123456789.eE+-") == got[j].len;
                    int word = (got[j].len == 4 && !memcmp(got[j].ptr, "true", 4)) ||
                               (got[j].len == 5 && !memcmp(got[j].ptr, "false", 5));
                    ck_assert_msg(num || word,
                                  "%s: %s value %s neither in the raw text nor a number", file,
                                  ct_schema_field_name(v->schema, id), needle);
                    continue;
                }
                ck_assert_msg(strstr(raw, needle) != NULL, "%s: %s value %s not in the raw text",
                              file, ct_schema_field_name(v->schema, id), needle);
            }
        }
        ck_assert_uint_gt(verbatim, 30);
        ck_assert_int_eq(src.verbatim(src.ctx, ct_schema_resolve(v->schema, "event.outcome", 13)),
                         0);
        free(raw);
        json_decref(expected);
        view_free(v);
    }
}
END_TEST

/* ---- (b) real CloudTrail samples
 * ----------------------------------------------------------------- */

#define V(...) ((const char *const[]){__VA_ARGS__, NULL})
#define NONE ((const char *const[]){NULL})

static const struct {
    const char *file;
    size_t index;
    const char *field;
    const char *const *want; /* NULL-terminated; empty = missing */
} sample_cases[] = {
    {"awsdocs_S3logfile_cloudtrail_UpdateTrail_TrailNotFoundException_IAMUser.json", 0, "user.name",
     V("Alice")},
    {"awsdocs_S3logfile_cloudtrail_UpdateTrail_TrailNotFoundException_IAMUser.json", 0,
     "event.outcome", V("failure")},
    {"awsdocs_S3logfile_cloudtrail_UpdateTrail_TrailNotFoundException_IAMUser.json", 0,
     "aws.cloudtrail.error_code", V("TrailNotFoundException")},
    {"awsdocs_S3logfile_cloudtrail_UpdateTrail_TrailNotFoundException_IAMUser.json", 0, "source.ip",
     V("205.251.233.182")},
    {"awsdocs_S3logfile_cloudtrail_UpdateTrail_TrailNotFoundException_IAMUser.json", 0,
     "aws.cloudtrail.request_parameters", V("{name=myTrail2}")},
    {"awsdocs_S3logfile_cloudtrail_UpdateTrail_TrailNotFoundException_IAMUser.json", 0,
     "aws.cloudtrail.flattened.request_parameters.name", V("myTrail2")},
    {"awsdocs_S3logfile_cloudtrail_UpdateTrail_TrailNotFoundException_IAMUser.json", 0,
     "aws.cloudtrail.response_elements", NONE},
    {"awsdocs_S3logfile_cloudtrail_UpdateTrail_TrailNotFoundException_IAMUser.json", 0,
     "related.user", V("EX_PRINCIPAL_ID", "Alice")},
    {"awsdocs_S3logfile_cloudtrail_UpdateTrail_TrailNotFoundException_IAMUser.json", 0,
     "cloud.service.name", V("cloudtrail")},
    {"awsdocs_S3logfile_cloudtrail_UpdateTrail_TrailNotFoundException_IAMUser.json", 0,
     "@timestamp", V("2016-07-14T19:15:45.000Z")},
    {"awsdocs_lambda_kms_Decrypt_AssumedRole_invokedBy_lambda_console.json", 0, "user.name",
     V("role-name")},
    {"awsdocs_lambda_kms_Decrypt_AssumedRole_invokedBy_lambda_console.json", 0, "user.id",
     V("AROA123456789EXAMPLE:example")},
    {"awsdocs_lambda_kms_Decrypt_AssumedRole_invokedBy_lambda_console.json", 0, "related.user",
     V("example", "AROA123456789EXAMPLE:example", "role-name")},
    {"awsdocs_lambda_kms_Decrypt_AssumedRole_invokedBy_lambda_console.json", 0, "source.ip", NONE},
    {"awsdocs_lambda_kms_Decrypt_AssumedRole_invokedBy_lambda_console.json", 0, "source.address",
     V("lambda.amazonaws.com")},
    {"awsdocs_lambda_kms_Decrypt_AssumedRole_invokedBy_lambda_console.json", 0, "related.hosts",
     NONE},
    {"awsdocs_lambda_kms_Decrypt_AssumedRole_invokedBy_lambda_console.json", 0,
     "aws.cloudtrail.user_identity.invoked_by", V("lambda.amazonaws.com")},
    {"awsdocs_lambda_kms_Decrypt_AssumedRole_invokedBy_lambda_console.json", 0, "service.name",
     NONE},
    {"awsdocs_lambda_kms_Decrypt_AssumedRole_invokedBy_lambda_console.json", 0,
     "aws.cloudtrail.resources.account_id", V("AWS Internal")},
    {"awsdocs_lambda_kms_Decrypt_AssumedRole_invokedBy_lambda_console.json", 0,
     "aws.cloudtrail.resources.arn",
     V("arn:aws:kms:eu-west-1:123456789012:key/a1b2c3d4-5678-90ab-cdef-EXAMPLE11111")},
    {"awsdocs_lambda_kms_Decrypt_AssumedRole_invokedBy_lambda_console.json", 0,
     "aws.cloudtrail.resources.type", V("AWS::KMS::Key")},
    {"awsdocs_lambda_kms_Decrypt_AssumedRole_invokedBy_lambda_console.json", 0,
     "aws.cloudtrail.session_credential_from_console", V("true")},
    {"awsdocs_lambda_kms_Decrypt_AssumedRole_invokedBy_lambda_console.json", 0,
     "aws.cloudtrail.management_event", V("true")},
    {"awsdocs_lambda_kms_Decrypt_AssumedRole_invokedBy_lambda_console.json", 0,
     "aws.cloudtrail.read_only", V("true")},
    {"awsdocs_lambda_kms_Decrypt_AssumedRole_invokedBy_lambda_console.json", 0,
     "aws.cloudtrail.user_identity.session_context.creation_date", V("2024-05-30T00:45:23.000Z")},
    {"awsdocs_lambda_kms_Decrypt_AssumedRole_invokedBy_lambda_console.json", 0,
     "aws.cloudtrail.user_identity.session_context.mfa_authenticated", V("false")},
    {"awsdocs_lambda_kms_Decrypt_AssumedRole_invokedBy_lambda_console.json", 0,
     "aws.cloudtrail.user_identity.session_context.session_issuer.arn",
     V("arn:aws:iam::123456789012:role/role-name")},
    {"awsdocs_lambda_kms_Decrypt_AssumedRole_invokedBy_lambda_console.json", 0,
     "aws.cloudtrail.flattened.request_parameters.encryptionContext.aws:lambda:FunctionArn",
     V("arn:aws:lambda:eu-west-1:123456789012:function:sample-function")},
    {"awsdocs_lambda_kms_Decrypt_AssumedRole_invokedBy_lambda_console.json", 0,
     "aws.cloudtrail.request_parameters",
     V("{keyId=arn:aws:kms:eu-west-1:123456789012:key/a1b2c3d4-5678-90ab-cdef-EXAMPLE11111, "
       "encryptionAlgorithm=SYMMETRIC_DEFAULT, "
       "encryptionContext={aws-crypto-public-key=ABCD+7876787678+CDEFGHIJKL/"
       "888666888999888555444111555222888333111==, "
       "aws:lambda:EventSourceArn=arn:aws:sqs:eu-west-1:123456789012:sample-source, "
       "aws:lambda:FunctionArn=arn:aws:lambda:eu-west-1:123456789012:function:sample-function}}")},
    {"awsdocs_lambda_kms_Decrypt_AssumedRole_invokedBy_lambda_console.json", 0, "tls.version",
     NONE},
    {"awsdocs_lambda_kms_DescribeKey_console_sessionCredentialFromConsole.json", 0, "source.ip",
     V("54.240.197.238")},
    {"awsdocs_lambda_kms_DescribeKey_console_sessionCredentialFromConsole.json", 0, "tls.version",
     V("1.3")},
    {"awsdocs_lambda_kms_DescribeKey_console_sessionCredentialFromConsole.json", 0,
     "tls.version_protocol", V("tls")},
    {"awsdocs_lambda_kms_DescribeKey_console_sessionCredentialFromConsole.json", 0, "tls.cipher",
     V("TLS_AES_256_GCM_SHA384")},
    {"awsdocs_lambda_kms_DescribeKey_console_sessionCredentialFromConsole.json", 0,
     "tls.client.server_name", V("kms.eu-west-1.amazonaws.com")},
    {"awsdocs_lambda_kms_DescribeKey_console_sessionCredentialFromConsole.json", 0,
     "aws.cloudtrail.session_credential_from_console", V("true")},
    {"awsdocs_lambda_kms_DescribeKey_console_sessionCredentialFromConsole.json", 0,
     "user_agent.original",
     V("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
       "Chrome/125.0.0.0 Safari/537.36")},
    {"elastic_fixture_sts_AssumeRole_AWSService_ec2.json", 0, "user.name", NONE},
    {"elastic_fixture_sts_AssumeRole_AWSService_ec2.json", 0, "user.id", NONE},
    {"elastic_fixture_sts_AssumeRole_AWSService_ec2.json", 0, "cloud.account.id",
     V("111111111111")},
    {"elastic_fixture_sts_AssumeRole_AWSService_ec2.json", 0, "service.name",
     V("ec2.amazonaws.com")},
    {"elastic_fixture_sts_AssumeRole_AWSService_ec2.json", 0, "related.user", NONE},
    {"elastic_fixture_sts_AssumeRole_AWSService_ec2.json", 0, "source.ip", NONE},
    {"lookupevents_iam_GetAccountSummary_IAMUser_v1.11_redacted.json", 0, "user.name",
     V("daniel.austin.admin")},
    {"lookupevents_iam_GetAccountSummary_IAMUser_v1.11_redacted.json", 0, "cloud.account.id",
     V("[AWS_ACCOUNT_ID_REDACTED]")},
    {"lookupevents_iam_GetAccountSummary_IAMUser_v1.11_redacted.json", 0, "source.ip",
     V("47.146.81.109")},
    {"lookupevents_iam_GetAccountSummary_IAMUser_v1.11_redacted.json", 0, "event.action",
     V("GetAccountSummary")},
    {"lookupevents_iam_GetAccountSummary_IAMUser_v1.11_redacted.json", 0, "event.provider",
     V("iam.amazonaws.com")},
    {"lookupevents_iam_GetAccountSummary_IAMUser_v1.11_redacted.json", 0, "event.outcome",
     V("success")},
    {"lookupevents_iam_GetAccountSummary_IAMUser_v1.11_redacted.json", 0,
     "aws.cloudtrail.event_version", V("1.11")},
    {"lookupevents_iam_GetAccountSummary_IAMUser_v1.11_redacted.json", 0,
     "aws.cloudtrail.session_credential_from_console", NONE},
    {"lookupevents_iam_GetAccountSummary_IAMUser_v1.11_redacted.json", 0, "data_stream.dataset",
     V("aws.cloudtrail")},
    {"lookupevents_iam_ListAccountAliases_IAMUser_v1.11_redacted.json", 0, "event.action",
     V("ListAccountAliases")},
    {"lookupevents_iam_ListAccountAliases_IAMUser_v1.11_redacted.json", 0,
     "aws.cloudtrail.request_parameters", NONE},
    {"lookupevents_iam_ListAccountAliases_IAMUser_v1.11_redacted.json", 0,
     "aws.cloudtrail.flattened.request_parameters", NONE},
    {"lookupevents_iam_ListAccountAliases_IAMUser_v1.11_redacted.json", 0, "user_agent.original",
     V("aws-cli/2.36.32 md/awscrt#0.36.2 ua/2.1 os/macos#25.5.0 md/arch#arm64 lang/python#3.14.7 "
       "md/pyimpl#CPython m/b,C,n,AP,E,Z cfg/retry-mode#standard md/installer#source md/prompt#off "
       "md/command#iam.list-account-aliases")},
    {"lookupevents_sts_GetCallerIdentity_IAMUser_v1.11_redacted.json", 0,
     "aws.cloudtrail.flattened.additional_eventdata.RequestDetails.endpointType", V("regional")},
    {"lookupevents_sts_GetCallerIdentity_IAMUser_v1.11_redacted.json", 0,
     "aws.cloudtrail.flattened.additional_eventdata.RequestDetails", NONE},
    {"lookupevents_sts_GetCallerIdentity_IAMUser_v1.11_redacted.json", 0,
     "aws.cloudtrail.flattened.additional_eventdata",
     V("MTp1cy1lYXN0LTE6UzoxNzg3ODU4OTY4NDgxOlI6MkdVdXpram4=", "regional", "us-east-1")},
    {"lookupevents_sts_GetCallerIdentity_IAMUser_v1.11_redacted.json", 0,
     "aws.cloudtrail.additional_eventdata",
     V("{ExtendedRequestId=MTp1cy1lYXN0LTE6UzoxNzg3ODU4OTY4NDgxOlI6MkdVdXpram4=, "
       "RequestDetails={endpointType=regional, awsServingRegion=us-east-1}}")},
    {"lookupevents_sts_GetCallerIdentity_IAMUser_v1.11_redacted.json", 0, "tls.client.server_name",
     V("sts.us-east-1.amazonaws.com")},
    {"pwnedlabs_iam_ListAccountAliases_AccessDenied_IAMUser.json", 0, "event.outcome",
     V("failure")},
    {"pwnedlabs_iam_ListAccountAliases_AccessDenied_IAMUser.json", 0, "user.name", V("temp-user")},
    {"pwnedlabs_iam_ListAccountAliases_AccessDenied_IAMUser.json", 0, "tls.version", V("1.2")},
    {"pwnedlabs_iam_ListAccountAliases_AccessDenied_IAMUser.json", 0,
     "aws.cloudtrail.user_identity.access_key_id", V("AKIARSCCN4A3WD4RO4P4")},
    {"pwnedlabs_organizations_ListAccounts_AccessDenied_IAMUser.json", 0, "event.provider",
     V("organizations.amazonaws.com")},
    {"pwnedlabs_organizations_ListAccounts_AccessDenied_IAMUser.json", 0, "event.action",
     V("ListAccounts")},
    {"pwnedlabs_organizations_ListAccounts_AccessDenied_IAMUser.json", 0, "event.outcome",
     V("failure")},
    {"pwnedlabs_organizations_ListAccounts_AccessDenied_IAMUser.json", 0, "cloud.account.id",
     V("107513503799")},
    {"pwnedlabs_organizations_ListAccounts_AccessDenied_IAMUser.json", 0, "source.ip",
     V("84.32.71.47")},
    {"pwnedlabs_organizations_ListAccounts_AccessDenied_IAMUser.json", 0, "related.ip",
     V("84.32.71.47")},
    {"pwnedlabs_organizations_ListAccounts_AccessDenied_IAMUser.json", 0, "cloud.region",
     V("us-east-1")},
    {"stratus_detonation_aws.defense-evasion.organizations-leave_full.json", 0, "event.action",
     V("AssumeRole")},
    {"stratus_detonation_aws.defense-evasion.organizations-leave_full.json", 0,
     "aws.cloudtrail.flattened.request_parameters.durationSeconds", V("900")},
    {"stratus_detonation_aws.defense-evasion.organizations-leave_full.json", 0,
     "aws.cloudtrail.resources.arn",
     V("arn:aws:iam::307578594326:role/stratus-red-team-leave-org-role")},
    {"stratus_detonation_aws.defense-evasion.organizations-leave_full.json", 1, "event.action",
     V("LeaveOrganization")},
    {"stratus_detonation_aws.defense-evasion.organizations-leave_full.json", 1, "user.name",
     V("stratus-red-team-leave-org-role")},
    {"stratus_detonation_aws.defense-evasion.organizations-leave_full.json", 2, "user.name",
     V("christophe")},
    {"stratus_organizations_LeaveOrganization_AccessDenied_AssumedRole.json", 0, "user.name",
     V("stratus-red-team-leave-org-role")},
    {"stratus_organizations_LeaveOrganization_AccessDenied_AssumedRole.json", 0, "event.outcome",
     V("failure")},
    {"stratus_organizations_LeaveOrganization_AccessDenied_AssumedRole.json", 0, "cloud.account.id",
     V("307578594326")},
    {"stratus_organizations_LeaveOrganization_AccessDenied_AssumedRole.json", 0, "related.user",
     V("aws-go-sdk-1722587398902687000", "AROAHKPEEQ9BHUOX4D93T:aws-go-sdk-1722587398902687000",
       "stratus-red-team-leave-org-role")},
    {"stratus_organizations_LeaveOrganization_AccessDenied_AssumedRole.json", 0, "source.ip",
     V("252.5.222.230")},
    {"stratus_organizations_LeaveOrganization_AccessDenied_AssumedRole.json", 0,
     "aws.cloudtrail.user_identity.type", V("AssumedRole")},
    {"stratus_organizations_LeaveOrganization_AccessDenied_AssumedRole.json", 0,
     "aws.cloudtrail.read_only", V("false")},
    {"stratus_signin_ConsoleLogin_IAMUser_noMFA.json", 0, "event.outcome", V("success")},
    {"stratus_signin_ConsoleLogin_IAMUser_noMFA.json", 0,
     "aws.cloudtrail.console_login.additional_eventdata.mfa_used", V("false")},
    {"stratus_signin_ConsoleLogin_IAMUser_noMFA.json", 0,
     "aws.cloudtrail.console_login.additional_eventdata.mobile_version", V("false")},
    {"stratus_signin_ConsoleLogin_IAMUser_noMFA.json", 0,
     "aws.cloudtrail.console_login.additional_eventdata.login_to",
     V("https://console.aws.amazon.com/console/home")},
    {"stratus_signin_ConsoleLogin_IAMUser_noMFA.json", 0, "source.ip", NONE},
    {"stratus_signin_ConsoleLogin_IAMUser_noMFA.json", 0, "source.address", V("225.01.00.16")},
    {"stratus_signin_ConsoleLogin_IAMUser_noMFA.json", 0, "related.hosts", V("225.01.00.16")},
    {"stratus_signin_ConsoleLogin_IAMUser_noMFA.json", 0, "aws.cloudtrail.event_type",
     V("AwsConsoleSignIn")},
    {"stratus_signin_ConsoleLogin_IAMUser_noMFA.json", 0, "cloud.account.id", V("562283505220")},
    {"stratus_sts_AssumeRole_AccessDenied_IAMUser.json", 0, "event.id",
     V("4cf5dad6-648f-48eb-85a7-6181c5d79424")},
    {"stratus_sts_AssumeRole_AccessDenied_IAMUser.json", 1, "event.id",
     V("67fa9341-bd06-4ceb-a8b8-6815522b5a1b")},
    {"stratus_sts_AssumeRole_AccessDenied_IAMUser.json", 1, "event.outcome", V("failure")},
    {"stratus_sts_AssumeRole_AccessDenied_IAMUser.json", 1, "user.name", V("christophe")},
    {"stratus_sts_AssumeRole_AccessDenied_IAMUser.json", 1, "source.ip", NONE},
    {"stratus_sts_GetCallerIdentity_AssumedRole_ec2_instance_creds.json", 0, "user.name",
     V("stratus-red-team-ec2-steal-credentials-role")},
    {"stratus_sts_GetCallerIdentity_AssumedRole_ec2_instance_creds.json", 0, "user.id",
     V("AROALHCCSKSM395EGX3XN:i-786a3A8B5C0d92eF4")},
    {"stratus_sts_GetCallerIdentity_AssumedRole_ec2_instance_creds.json", 0,
     "aws.cloudtrail.user_identity.session_context.ec2_role_delivery", V("1.0")},
    {"stratus_sts_GetCallerIdentity_AssumedRole_ec2_instance_creds.json", 0, "related.user",
     V("i-786a3A8B5C0d92eF4", "AROALHCCSKSM395EGX3XN:i-786a3A8B5C0d92eF4",
       "stratus-red-team-ec2-steal-credentials-role")},
    {"stratus_sts_GetCallerIdentity_AssumedRole_ec2_instance_creds.json", 0, "source.ip",
     V("18.236.253.47")},
    {"stratus_sts_GetCallerIdentity_FederatedUser.json", 0, "user.name",
     V("stratus-red-team-user-federation-user")},
    {"stratus_sts_GetCallerIdentity_FederatedUser.json", 0, "user.id",
     V("742491224508:stratus_red_team")},
    {"stratus_sts_GetCallerIdentity_FederatedUser.json", 0, "related.user",
     V("stratus_red_team", "742491224508:stratus_red_team",
       "stratus-red-team-user-federation-user")},
    {"stratus_sts_GetCallerIdentity_FederatedUser.json", 0,
     "aws.cloudtrail.user_identity.session_context.session_issuer.type", V("IAMUser")},
    {"stratus_sts_GetCallerIdentity_FederatedUser.json", 0, "source.ip", NONE},
    {"stratus_sts_GetCallerIdentity_IAMUser.json", 0, "user.name", V("christophe")},
    {"stratus_sts_GetCallerIdentity_IAMUser.json", 0, "source.ip", V("253.234.5.234")},
    {"stratus_sts_GetCallerIdentity_IAMUser.json", 0, "cloud.account.id", V("070411556318")},
    {"stratus_sts_GetFederationToken_IAMUser.json", 0,
     "aws.cloudtrail.flattened.request_parameters.name", V("stratus_red_team")},
    {"stratus_sts_GetFederationToken_IAMUser.json", 0,
     "aws.cloudtrail.flattened.response_elements.packedPolicySize", V("4")},
    {"stratus_sts_GetFederationToken_IAMUser.json", 0,
     "aws.cloudtrail.flattened.response_elements.federatedUser.arn",
     V("arn:aws:sts::742491224508:federated-user/stratus_red_team")},
    {"stratus_sts_GetFederationToken_IAMUser.json", 0, "user.name",
     V("stratus-red-team-user-federation-user")},
    {"stratus_sts_GetFederationToken_IAMUser.json", 0, "user.target.name", NONE},
};

static json_t *sample_record(const char *file, size_t index)
{
    char path[512];
    snprintf(path, sizeof path, DATA "samples/%s", file);
    json_t *doc = tu_load_json(path, 0);
    json_t *recs = records_of(doc);
    json_t *r = json_incref(json_array_get(recs, index));
    json_decref(recs);
    json_decref(doc);
    ck_assert_msg(r != NULL, "%s has no record %zu", file, index);
    return r;
}

START_TEST(real_samples_give_the_values_read_by_hand)
{
    view *v = view_new(sample_record(sample_cases[_i].file, sample_cases[_i].index));
    size_t n = 0;
    while (sample_cases[_i].want[n])
        n++;
    char what[600];
    snprintf(what, sizeof what, "%s[%zu]", sample_cases[_i].file, sample_cases[_i].index);
    ck_assert_msg(ct_record_valid(v->record, NULL) == NT_OK, "%s is not a valid record", what);
    expect_values(v, what, sample_cases[_i].field, sample_cases[_i].want, n);
    view_free(v);
}
END_TEST

START_TEST(booleans_of_the_samples_are_typed_as_booleans)
{
    view *v = view_new(sample_record("stratus_signin_ConsoleLogin_IAMUser_noMFA.json", 0));
    nt_value got[MAXV];
    ck_assert_uint_eq(get(v, "aws.cloudtrail.console_login.additional_eventdata.mfa_used", got), 1);
    ck_assert_int_eq(got[0].type, NT_VAL_BOOL);
    ck_assert_uint_eq(get(v, "aws.cloudtrail.management_event", got), 1);
    ck_assert_int_eq(got[0].type, NT_VAL_BOOL);
    view_free(v);
    v = view_new(
        sample_record("awsdocs_lambda_kms_Decrypt_AssumedRole_invokedBy_lambda_console.json", 0));
    ck_assert_uint_eq(get(v, "aws.cloudtrail.session_credential_from_console", got), 1);
    ck_assert_int_eq(got[0].type, NT_VAL_STRING); /* a JSON string in CloudTrail, kept as is */
    view_free(v);
}
END_TEST

/* ---- (c) identity types
 * --------------------------------------------------------------------------- */

static json_t *identity_cases(void)
{
    json_t *doc = tu_load_json(DATA "identity_cases.json", 0);
    json_t *cases = json_incref(json_object_get(doc, "cases"));
    json_decref(doc);
    return cases;
}

START_TEST(identity_types_map_to_user_and_account_fields)
{
    json_t *cases = identity_cases();
    json_t *c = json_array_get(cases, (size_t)_i);
    ck_assert_ptr_nonnull(c);
    json_t *rec = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "eventVersion", "1.08", "eventTime",
                            "2026-11-28T05:29:12Z", "eventSource", "iam.amazonaws.com", "eventName",
                            "ListUsers", "sourceIPAddress", "192.0.2.1", "recipientAccountId",
                            "222222222222");
    const char *k;
    json_t *m;
    json_object_foreach(c, k, m)
    {
        if (strcmp(k, "name") == 0 || strcmp(k, "want") == 0) continue;
        if (json_is_null(m))
            json_object_del(rec, k);
        else
            json_object_set(rec, k, m);
    }
    view *v = view_new(rec);
    const char *what = json_string_value(json_object_get(c, "name"));
    json_object_foreach(json_object_get(c, "want"), k, m) expect_json(v, what, k, m);
    view_free(v);
    json_decref(cases);
}
END_TEST

/* ---- (d) source.ip
 * ------------------------------------------------------------------------------- */

static const struct {
    const char *address, *ip; /* ip NULL = no source.ip */
} ip_cases[] = {
    {"1.2.3.4", "1.2.3.4"},
    {"0.0.0.0", "0.0.0.0"},
    {"255.255.255.255", "255.255.255.255"},
    {"::1", "::1"},
    {"::", "::"},
    {"2001:db8::1", "2001:db8::1"},
    {"2001:DB8:0:0:0:0:0:1", "2001:db8::1"},
    {"2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"},
    {"2001:0db8:0000:0000:0000:ff00:0042:8329", "2001:db8::ff00:42:8329"},
    {"fe80::1:2:3:4:5:6", "fe80:0:1:2:3:4:5:6"},
    {"::ffff:1.2.3.4", "1.2.3.4"},
    {"::ffff:0102:0304", "1.2.3.4"},
    {"64:ff9b::1.2.3.4", "64:ff9b::102:304"},
    {"1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8"},
    {"ec2.amazonaws.com", NULL},
    {"AWS Internal", NULL},
    {"1.2.3.256", NULL},
    {"01.2.3.4", NULL},
    {"1.2.3", NULL},
    {"1.2.3.4.5", NULL},
    {"1.2.3.4 ", NULL},
    {" 1.2.3.4", NULL},
    {"1..2.3", NULL},
    {"1.2.3.-4", NULL},
    {"1.2.3.4/32", NULL},
    {"1:2:3:4:5:6:7:8:9", NULL},
    {"1:2:3:4:5:6:7", NULL},
    {"1::2::3", NULL},
    {":1:2:3:4:5:6:7", NULL},
    {"1:2:3:4:5:6:7:", NULL},
    {"12345::1", NULL},
    {"fe80::1%eth0", NULL},
    {"[::1]", NULL},
    {"::ffff:1.2.3.256", NULL},
    {"1:2:3:4:5:6:7:1.2.3.4", NULL},
    {"g::1", NULL},
    {"", NULL},
    {"-", NULL},
    {"redacted", NULL},
};

START_TEST(source_ip_exists_only_for_literal_addresses)
{
    json_t *rec = json_pack("{s:s,s:s,s:s,s:s,s:s}", "eventVersion", "1.08", "eventTime",
                            "2026-11-28T05:29:12Z", "eventSource", "sts.amazonaws.com", "eventName",
                            "GetCallerIdentity", "sourceIPAddress", ip_cases[_i].address);
    view *v = view_new(rec);
    expect_one(v, ip_cases[_i].address, "source.ip", ip_cases[_i].ip);
    expect_one(v, ip_cases[_i].address, "related.ip", ip_cases[_i].ip);
    int empty = ip_cases[_i].address[0] == '\0' || strcmp(ip_cases[_i].address, "-") == 0;
    expect_one(v, ip_cases[_i].address, "source.address", empty ? NULL : ip_cases[_i].address);
    view_free(v);
}
END_TEST

START_TEST(related_hosts_holds_non_aws_host_names_only)
{
    static const struct {
        const char *address, *host;
    } cases[] = {{"ec2.amazonaws.com", NULL}, {"AWS Internal", NULL},
                 {"1.2.3.4", NULL},           {"host.example.com", "host.example.com"},
                 {"localhost", NULL},         {"bad host.example", NULL}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *rec = json_pack("{s:s}", "sourceIPAddress", cases[i].address);
        view *v = view_new(rec);
        expect_one(v, cases[i].address, "related.hosts", cases[i].host);
        view_free(v);
    }
}
END_TEST

/* ---- (e) record shape
 * ------------------------------------------------------------------------------- */

static const struct {
    const char *json, *why; /* why NULL = valid */
} shape_cases[] = {
    {"{\"eventVersion\":\"1.08\",\"eventSource\":\"s\",\"eventName\":\"n\",\"eventTime\":\"2026-11-"
     "28T05:29:12Z\"}",
     NULL},
    {"{\"eventVersion\":\"2.0\",\"eventSource\":\"s\",\"eventName\":\"n\",\"eventTime\":\"2026-11-"
     "28T05:29:12.5+01:00\",\"future\":[1]}",
     NULL},
    {"[]", "record is not a JSON object"},
    {"\"x\"", "record is not a JSON object"},
    {"{\"eventSource\":\"s\",\"eventName\":\"n\",\"eventTime\":\"2026-11-28T05:29:12Z\"}",
     "missing eventVersion"},
    {"{\"eventVersion\":1.08,\"eventSource\":\"s\",\"eventName\":\"n\",\"eventTime\":\"2026-11-"
     "28T05:29:12Z\"}",
     "eventVersion is not a string"},
    {"{\"eventVersion\":\"\",\"eventSource\":\"s\",\"eventName\":\"n\",\"eventTime\":\"2026-11-"
     "28T05:29:12Z\"}",
     "eventVersion is empty"},
    {"{\"eventVersion\":\"1.08\",\"eventName\":\"n\",\"eventTime\":\"2026-11-28T05:29:12Z\"}",
     "missing eventSource"},
    {"{\"eventVersion\":\"1.08\",\"eventSource\":null,\"eventName\":\"n\",\"eventTime\":\"2026-11-"
     "28T05:29:12Z\"}",
     "missing eventSource"},
    {"{\"eventVersion\":\"1.08\",\"eventSource\":[\"s\"],\"eventName\":\"n\",\"eventTime\":\"2026-"
     "11-28T05:29:12Z\"}",
     "eventSource is not a string"},
    {"{\"eventVersion\":\"1.08\",\"eventSource\":\"s\",\"eventTime\":\"2026-11-28T05:29:12Z\"}",
     "missing eventName"},
    {"{\"eventVersion\":\"1.08\",\"eventSource\":\"s\",\"eventName\":{},\"eventTime\":\"2026-11-"
     "28T05:29:12Z\"}",
     "eventName is not a string"},
    {"{\"eventVersion\":\"1.08\",\"eventSource\":\"s\",\"eventName\":\"\",\"eventTime\":\"2026-11-"
     "28T05:29:12Z\"}",
     "eventName is empty"},
    {"{\"eventVersion\":\"1.08\",\"eventSource\":\"s\",\"eventName\":\"n\"}", "missing eventTime"},
    {"{\"eventVersion\":\"1.08\",\"eventSource\":\"s\",\"eventName\":\"n\",\"eventTime\":"
     "1700000000}",
     "eventTime is not a string"},
    {"{\"eventVersion\":\"1.08\",\"eventSource\":\"s\",\"eventName\":\"n\",\"eventTime\":"
     "\"yesterday\"}",
     "eventTime is not an RFC 3339 date-time"},
    {"{\"eventVersion\":\"1.08\",\"eventSource\":\"s\",\"eventName\":\"n\",\"eventTime\":\"2026-11-"
     "28T05:29:12\"}",
     "eventTime is not an RFC 3339 date-time"},
};

START_TEST(record_shape_check_names_the_first_problem)
{
    json_t *r = json_loads(shape_cases[_i].json, JSON_DECODE_ANY, NULL);
    ck_assert_ptr_nonnull(r);
    nt_err why = {"unset"};
    nt_status st = ct_record_valid(r, &why);
    if (shape_cases[_i].why) {
        ck_assert_int_eq(st, NT_ERR_INVALID);
        ck_assert_str_eq(why.msg, shape_cases[_i].why);
    } else {
        ck_assert_int_eq(st, NT_OK);
        ck_assert_str_eq(why.msg, "unset"); /* untouched on success */
    }
    ck_assert_int_eq(ct_record_valid(r, NULL), st);
    json_decref(r);
}
END_TEST

START_TEST(a_null_record_is_not_valid)
{
    nt_err why;
    ck_assert_int_eq(ct_record_valid(NULL, &why), NT_ERR_INVALID);
    ck_assert_str_eq(why.msg, "record is not a JSON object");
}
END_TEST

/* ---- (f) hostile records
 * ------------------------------------------------------------------------------ */

static const char *const hostile_values[] = {
    "42",         "-1.5e300", "true",
    "false",      "null",     "[]",
    "[\"x\", 1]", "{}",       "{\"a\": {\"b\": \"c\"}}",
    "\"\"",       "\"-\"",    "\"none\"",
};

/* A raw key and a field that must be missing when the key holds a value of
 * the wrong type (or a clean-up value). */
static const struct {
    const char *key, *field;
} typed_keys[] = {
    {"eventName", "event.action"},
    {"eventSource", "event.provider"},
    {"eventSource", "cloud.service.name"},
    {"awsRegion", "cloud.region"},
    {"eventID", "event.id"},
    {"eventTime", "@timestamp"},
    {"userAgent", "user_agent.original"},
    {"sourceIPAddress", "source.ip"},
    {"sourceIPAddress", "source.address"},
    {"userIdentity", "user.name"},
    {"userIdentity", "user.id"},
    {"userIdentity", "aws.cloudtrail.user_identity.arn"},
    {"errorCode", "aws.cloudtrail.error_code"},
    {"recipientAccountId", "aws.cloudtrail.recipient_account_id"},
    {"eventType", "aws.cloudtrail.event_type"},
    {"eventCategory", "aws.cloudtrail.event_category"},
    {"requestID", "aws.cloudtrail.request_id"},
    {"sessionCredentialFromConsole", "aws.cloudtrail.session_credential_from_console"},
    {"resources", "aws.cloudtrail.resources.arn"},
    {"tlsDetails", "tls.version"},
    {"tlsDetails", "tls.client.server_name"},
    {"eventVersion", "aws.cloudtrail.event_version"},
};

/* The fields of a fresh schema (static ones) plus a few flattened paths. */
static const char *const extra_fields[] = {
    "aws.cloudtrail.flattened.request_parameters.a",
    "aws.cloudtrail.flattened.request_parameters.a.b",
    "aws.cloudtrail.flattened.response_elements.credentials.accessKeyId",
    "aws.cloudtrail.flattened.additional_eventdata.x",
};

static void get_everything(view *v)
{
    for (size_t i = 0; i < sizeof extra_fields / sizeof extra_fields[0]; i++)
        ck_assert_int_ge(ct_schema_resolve(v->schema, extra_fields[i], strlen(extra_fields[i])), 0);
    size_t n = ct_schema_field_count(v->schema);
    for (int id = 0; id < (int)n; id++) {
        nt_value got[MAXV];
        size_t k = ct_view_get(&v->ev, id, got, MAXV);
        for (size_t j = 0; j < k; j++)
            ck_assert(got[j].ptr != NULL || got[j].len == 0);
    }
    static const char *const names[] = {"user.name", "aws.cloudtrail.flattened.request_parameters",
                                        "aws.cloudtrail.flattened.request_parameters.a",
                                        "related.user", "aws.cloudtrail.read_only"};
    json_t *j = ct_view_fields_json(&v->ev, names, 5);
    ck_assert_ptr_nonnull(j);
    json_decref(j);
    (void)ct_event_id(&v->ev);
    (void)ct_event_time(&v->ev);
}

static const char base_record[] =
    "{\"eventVersion\":\"1.08\",\"eventTime\":\"2026-11-28T05:29:12Z\",\"eventSource\":\"iam."
    "amazonaws.com\","
    "\"eventName\":\"ListUsers\",\"awsRegion\":\"us-east-1\",\"eventID\":\"e1\",\"userAgent\":"
    "\"ua\","
    "\"sourceIPAddress\":\"192.0.2.1\",\"errorCode\":\"AccessDenied\",\"recipientAccountId\":"
    "\"222222222222\","
    "\"eventType\":\"AwsApiCall\",\"eventCategory\":\"Management\",\"requestID\":\"r1\","
    "\"sessionCredentialFromConsole\":\"true\",\"resources\":[{\"ARN\":\"arn:x\"}],"
    "\"tlsDetails\":{\"tlsVersion\":\"TLSv1.3\",\"clientProvidedHostHeader\":\"iam.amazonaws.com\"}"
    ","
    "\"userIdentity\":{\"type\":\"IAMUser\",\"userName\":\"alice\",\"principalId\":\"AIDA1\","
    "\"arn\":\"arn:aws:iam::1:user/alice\"},"
    "\"requestParameters\":{\"a\":{\"b\":\"c\"}}}";

START_TEST(wrong_json_types_make_a_field_missing)
{
    for (size_t h = 0; h < sizeof hostile_values / sizeof hostile_values[0]; h++) {
        view *v = view_parse(base_record);
        const char *key = typed_keys[_i].key;
        /* sanity: the base record has the field */
        nt_value got[MAXV];
        ck_assert_msg(get(v, typed_keys[_i].field, got) > 0, "base lacks %s", typed_keys[_i].field);
        json_object_set_new(v->record, key, json_loads(hostile_values[h], JSON_DECODE_ANY, NULL));
        ct_event_init(&v->ev, v->schema, v->record, 0);
        char what[200];
        snprintf(what, sizeof what, "%s = %s", key, hostile_values[h]);
        expect_values(v, what, typed_keys[_i].field, NULL, 0);
        get_everything(v);
        view_free(v);
    }
}
END_TEST

START_TEST(hostile_values_anywhere_never_crash)
{
    /* Every key of the record, and every key of userIdentity, replaced by every hostile value. */
    json_t *base = json_loads(base_record, 0, NULL);
    json_object_set_new(json_object_get(base, "userIdentity"), "sessionContext",
                        json_pack("{s:{s:s},s:{s:s,s:s}}", "attributes", "creationDate", "x",
                                  "sessionIssuer", "userName", "R", "arn",
                                  "arn:aws:iam::1:role/R"));
    const char *key;
    size_t rounds = 0;
    json_t *containers[] = {
        base, json_object_get(base, "userIdentity"),
        json_object_get(json_object_get(base, "userIdentity"), "sessionContext")};
    for (size_t c = 0; c < 3; c++) {
        json_t *m;
        json_object_foreach(containers[c], key, m)
        {
            for (size_t h = 0; h < sizeof hostile_values / sizeof hostile_values[0]; h++) {
                json_t *copy = json_deep_copy(base);
                json_t *target = c == 0   ? copy
                                 : c == 1 ? json_object_get(copy, "userIdentity")
                                          : json_object_get(json_object_get(copy, "userIdentity"),
                                                            "sessionContext");
                json_object_set_new(target, key,
                                    json_loads(hostile_values[h], JSON_DECODE_ANY, NULL));
                view *v = view_new(copy);
                get_everything(v);
                view_free(v);
                rounds++;
            }
        }
    }
    ck_assert_uint_gt(rounds, 200);
    json_decref(base);
}
END_TEST

START_TEST(records_that_are_not_objects_have_no_fields)
{
    static const char *const docs[] = {"[1,2]", "\"x\"", "42", "null"};
    for (size_t i = 0; i < 4; i++) {
        view *v = view_new(json_loads(docs[i], JSON_DECODE_ANY, NULL));
        get_everything(v);
        expect_one(v, docs[i], "user.name", NULL);
        expect_one(v, docs[i], "event.action", NULL);
        expect_one(v, docs[i], "data_stream.dataset", NULL);
        expect_one(v, docs[i], "event.outcome", NULL);
        ck_assert_ptr_null(ct_event_id(&v->ev));
        ck_assert_int_eq(ct_event_time(&v->ev), -1);
        view_free(v);
    }
}
END_TEST

static json_t *nest(size_t depth, json_t *leaf)
{
    json_t *v = leaf;
    for (size_t i = 0; i < depth; i++) {
        json_t *o = json_object();
        json_object_set_new(o, "a", v);
        v = o;
    }
    return v;
}

START_TEST(deep_nesting_in_payloads_is_cut_off_without_crashing)
{
    view *v = view_parse(base_record);
    json_object_set_new(v->record, "requestParameters", nest(3000, json_string("deep")));
    json_object_set_new(v->record, "errorCode", nest(3000, json_string("")));
    json_object_set_new(
        v->record, "responseElements",
        json_pack("{s:o}", "x",
                  json_pack("[[[[[[[[[[[[o]]]]]]]]]]]]", nest(40, json_string("y")))));
    ct_event_init(&v->ev, v->schema, v->record, 0);
    get_everything(v);
    expect_one(v, "deep", "aws.cloudtrail.request_parameters", NULL);
    expect_one(v, "deep", "aws.cloudtrail.flattened.request_parameters.a.a.a", NULL);
    expect_one(v, "deep", "aws.cloudtrail.flattened.request_parameters", NULL);
    expect_one(v, "deep", "aws.cloudtrail.response_elements", NULL);
    /* a nested errorCode deeper than the limit counts as present */
    expect_one(v, "deep", "event.outcome", "failure");
    view_free(v);
    /* just inside the limit still works */
    v = view_parse(base_record);
    json_object_set_new(v->record, "requestParameters", nest(20, json_string("ok")));
    ct_event_init(&v->ev, v->schema, v->record, 0);
    expect_one(v, "depth 20", "aws.cloudtrail.flattened.request_parameters", "ok");
    expect_one(
        v, "depth 20",
        "aws.cloudtrail.flattened.request_parameters.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a",
        "ok");
    view_free(v);
}
END_TEST

START_TEST(huge_strings_are_returned_whole_and_payload_renderings_respect_the_scratch)
{
    size_t big = 1 << 20;
    char *s = malloc(big + 1);
    memset(s, 'x', big);
    s[big] = '\0';
    view *v = view_parse(base_record);
    json_object_set_new(v->record, "userAgent", json_string(s));
    json_object_set_new(v->record, "requestParameters", json_pack("{s:s}", "policy", s));
    ct_event_init(&v->ev, v->schema, v->record, 0);
    nt_value got[MAXV];
    ck_assert_uint_eq(get(v, "user_agent.original", got), 1);
    ck_assert_uint_eq(got[0].len, big);
    /* too large for the built-in scratch: missing, and counted */
    ck_assert_uint_eq(get(v, "aws.cloudtrail.request_parameters", got), 0);
    ck_assert_uint_gt(ct_event_dropped(&v->ev), 0);
    /* over 32766 UTF-16 units: no flattened copy, as in the pipeline */
    ck_assert_uint_eq(get(v, "aws.cloudtrail.flattened.request_parameters.policy", got), 0);
    /* with a caller buffer the string is produced */
    char *buf = malloc(big + 4096);
    ct_event_set_scratch(&v->ev, buf, big + 4096);
    ck_assert_uint_eq(get(v, "aws.cloudtrail.request_parameters", got), 0); /* failure is cached */
    ct_event_init(&v->ev, v->schema, v->record, 0);
    ct_event_set_scratch(&v->ev, buf, big + 4096);
    ck_assert_uint_eq(get(v, "aws.cloudtrail.request_parameters", got), 1);
    ck_assert_uint_eq(got[0].len, big + strlen("{policy=}"));
    ck_assert(memcmp(got[0].ptr, "{policy=xxx", 11) == 0);
    free(buf);
    free(s);
    view_free(v);
}
END_TEST

START_TEST(flattened_copies_exist_only_below_32766_utf16_units)
{
    /* "{k=" + value + "}" is value + 4 units long. */
    static const struct {
        size_t units;
        int flattened;
    } cases[] = {{32765, 1}, {32766, 0}};
    for (size_t i = 0; i < 2; i++) {
        size_t n = cases[i].units - 4;
        char *s = malloc(n + 1);
        memset(s, 'v', n);
        s[n] = '\0';
        view *v = view_parse(base_record);
        json_object_set_new(v->record, "requestParameters", json_pack("{s:s}", "k", s));
        ct_event_init(&v->ev, v->schema, v->record, 0);
        char *buf = malloc(65536);
        ct_event_set_scratch(&v->ev, buf, 65536);
        nt_value got[MAXV];
        ck_assert_uint_eq(get(v, "aws.cloudtrail.request_parameters", got), 1);
        ck_assert_uint_eq(got[0].len, cases[i].units);
        ck_assert_uint_eq(get(v, "aws.cloudtrail.flattened.request_parameters.k", got),
                          (size_t)cases[i].flattened);
        free(buf);
        free(s);
        view_free(v);
    }
    /* units, not bytes: 8191 four-byte characters are 16382 units, 32764 bytes */
    view *v = view_parse(base_record);
    size_t n = (size_t)8191 * 4;
    char *s = malloc(n + 1);
    for (size_t i = 0; i < n; i += 4)
        memcpy(s + i, "\xF0\x9F\x98\x80", 4);
    s[n] = '\0';
    json_object_set_new(v->record, "requestParameters", json_pack("{s:s}", "k", s));
    ct_event_init(&v->ev, v->schema, v->record, 0);
    char *buf = malloc(65536);
    ct_event_set_scratch(&v->ev, buf, 65536);
    nt_value got[MAXV];
    ck_assert_uint_eq(get(v, "aws.cloudtrail.flattened.request_parameters.k", got), 1);
    free(buf);
    free(s);
    view_free(v);
}
END_TEST

/* ---- Java Map.toString renderings
 * ------------------------------------------------------------------- */

START_TEST(payload_strings_match_what_the_jvm_prints)
{
    json_t *doc = tu_load_json(DATA "java_render.json", 0);
    json_t *c = json_array_get(json_object_get(doc, "cases"), (size_t)_i);
    ck_assert_ptr_nonnull(c);
    {
        view *v = view_parse(base_record);
        json_object_set(v->record, "requestParameters", json_object_get(c, "input"));
        json_object_set(v->record, "responseElements", json_object_get(c, "input"));
        ct_event_init(&v->ev, v->schema, v->record, 0);
        json_t *want = json_object_get(c, "want");
        const char *w = json_string_value(want);
        char what[32];
        snprintf(what, sizeof what, "case %d", _i);
        expect_one(v, what, "aws.cloudtrail.request_parameters", w);
        expect_one(v, what, "aws.cloudtrail.response_elements", w);
        /* the flattened root exists exactly when something is left */
        nt_value got[MAXV];
        ck_assert_int_eq(get(v, "aws.cloudtrail.flattened.request_parameters", got) > 0, w != NULL);
        ck_assert_uint_eq(ct_event_dropped(&v->ev), 0);
        view_free(v);
    }
    json_decref(doc);
}
END_TEST

START_TEST(flattened_paths_walk_arrays_and_print_numbers_as_keywords)
{
    view *v = view_parse(base_record);
    json_object_set_new(
        v->record, "requestParameters",
        json_loads("{\"ipPermissions\":{\"items\":[{\"fromPort\":22,\"ipRanges\":{\"items\":[{"
                   "\"cidrIp\":\"0.0.0.0/0\"},{\"cidrIp\":\"10.0.0.0/8\"}]}},"
                   "{\"fromPort\":3389,\"ipRanges\":{\"items\":[{\"cidrIp\":\"0.0.0.0/0\"}]}}]},"
                   "\"withDecryption\":true,\"ratio\":1.5,\"x-amz-acl\":\"public-read\",\"a.b\":"
                   "\"dotted\",\"a\":{\"b\":\"nested\"},"
                   "\"empty\":\"\",\"omitted\":false}",
                   0, NULL));
    ct_event_init(&v->ev, v->schema, v->record, 0);
    const char *ports[] = {"22", "3389"};
    expect_values(v, "ports",
                  "aws.cloudtrail.flattened.request_parameters.ipPermissions.items.fromPort", ports,
                  2);
    const char *cidrs[] = {"0.0.0.0/0", "10.0.0.0/8"};
    expect_values(
        v, "cidr",
        "aws.cloudtrail.flattened.request_parameters.ipPermissions.items.ipRanges.items.cidrIp",
        cidrs, 2);
    expect_one(v, "bool", "aws.cloudtrail.flattened.request_parameters.withDecryption", "true");
    expect_one(v, "real", "aws.cloudtrail.flattened.request_parameters.ratio", "1.5");
    expect_one(v, "dash", "aws.cloudtrail.flattened.request_parameters.x-amz-acl", "public-read");
    const char *ab[] = {"dotted", "nested"};
    expect_values(v, "dots", "aws.cloudtrail.flattened.request_parameters.a.b", ab, 2);
    expect_one(v, "object", "aws.cloudtrail.flattened.request_parameters.a", NULL);
    expect_one(v, "empty", "aws.cloudtrail.flattened.request_parameters.empty", NULL);
    expect_one(v, "false", "aws.cloudtrail.flattened.request_parameters.omitted", "false");
    expect_one(v, "absent", "aws.cloudtrail.flattened.request_parameters.nope", NULL);
    nt_value got[MAXV];
    ck_assert_uint_eq(
        get(v, "aws.cloudtrail.flattened.request_parameters.ipPermissions.items.fromPort", got), 2);
    ck_assert_int_eq(got[0].type, NT_VAL_STRING);
    /* asking again reuses the memoised number text */
    size_t used = v->ev.arena_used;
    for (int i = 0; i < 100; i++)
        get(v, "aws.cloudtrail.flattened.request_parameters.ipPermissions.items.fromPort", got);
    ck_assert_uint_eq(v->ev.arena_used, used);
    view_free(v);
}
END_TEST

START_TEST(a_field_with_more_values_than_max_is_cut_and_counted)
{
    view *v = view_parse(base_record);
    json_t *res = json_array();
    for (int i = 0; i < 100; i++) {
        char arn[32];
        snprintf(arn, sizeof arn, "arn:%d", i);
        json_array_append_new(res, json_pack("{s:s,s:s}", "ARN", arn, "accountId", "1"));
    }
    json_object_set_new(v->record, "resources", res);
    ct_event_init(&v->ev, v->schema, v->record, 0);
    nt_value got[MAXV];
    int id = ct_schema_resolve(v->schema, "aws.cloudtrail.resources.arn", 28);
    ck_assert_uint_eq(ct_view_get(&v->ev, id, got, 10), 10);
    ck_assert_uint_gt(ct_event_dropped(&v->ev), 0);
    ck_assert(val_is(&got[9], "arn:9"));
    /* duplicates collapse */
    expect_one(v, "dup", "aws.cloudtrail.resources.account_id", "1");
    view_free(v);
}
END_TEST

/* ---- other behaviours
 * ---------------------------------------------------------------------------------------- */

START_TEST(unknown_fields_resolve_to_minus_one)
{
    ct_schema *s = ct_schema_new();
    static const char *const unknown[] = {
        "source.as.organization.name",
        "source.geo.country_name",
        "host.name",
        "user_agent.name",
        "event.category",
        "related.entity",
        "entity.target.id",
        "nonsense",
        "aws.cloudtrail.flattened",
        "aws.cloudtrail.flattened.request_parameters.",
        "aws.cloudtrail.flattened.other.x",
        "aws.cloudtrail.request_parameters.keyId",
        "aws.cloudtrail.user_identity.session_context.session_issuer.user_name",
        "",
        "user.nam",
    };
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++)
        ck_assert_msg(ct_schema_resolve(s, unknown[i], strlen(unknown[i])) == -1, "%s resolved",
                      unknown[i]);
    ck_assert_int_eq(ct_schema_resolve(s, NULL, 0), -1);
    ck_assert_int_eq(ct_schema_resolve(NULL, "user.name", 9), -1);
    ck_assert_ptr_null(ct_schema_field_name(s, -1));
    ck_assert_ptr_null(ct_schema_field_name(s, 100000));
    ct_schema_free(s);
    ct_schema_free(NULL);
}
END_TEST

START_TEST(resolving_a_flattened_path_twice_gives_the_same_id)
{
    ct_schema *s = ct_schema_new();
    size_t before = ct_schema_field_count(s);
    const char *a = "aws.cloudtrail.flattened.request_parameters.serialNumber";
    int id1 = ct_schema_resolve(s, a, strlen(a));
    int id2 = ct_schema_resolve(s, a, strlen(a));
    ck_assert_int_ge(id1, 0);
    ck_assert_int_eq(id1, id2);
    ck_assert_uint_eq(ct_schema_field_count(s), before + 1);
    ck_assert_str_eq(ct_schema_field_name(s, id1), a);
    /* a name given with a length is not read past it */
    int id3 = ct_schema_resolve(s, "aws.cloudtrail.flattened.request_parameters.serialNumberXYZ",
                                strlen(a));
    ck_assert_int_eq(id3, id1);
    const char *b = "aws.cloudtrail.flattened.response_elements.serialNumber";
    ck_assert_int_ne(ct_schema_resolve(s, b, strlen(b)), id1);
    /* static names keep fixed ids */
    ck_assert_int_eq(ct_schema_resolve(s, "user.name", 9), ct_schema_resolve(s, "user.name", 9));
    ck_assert_str_eq(ct_schema_field_name(s, ct_schema_resolve(s, "user.name", 9)), "user.name");
    ct_schema_free(s);
}
END_TEST

START_TEST(the_dynamic_registry_is_bounded)
{
    ct_schema *s = ct_schema_new();
    char name[128];
    int last = 0;
    for (int i = 0; i < CT_SCHEMA_MAX_DYNAMIC + 10; i++) {
        snprintf(name, sizeof name, "aws.cloudtrail.flattened.request_parameters.p%d", i);
        last = ct_schema_resolve(s, name, strlen(name));
        if (i < CT_SCHEMA_MAX_DYNAMIC) ck_assert_int_ge(last, 0);
    }
    ck_assert_int_eq(last, -1);
    char longname[CT_FIELD_NAME_MAX + 50];
    memset(longname, 'a', sizeof longname);
    static const char prefix[] = "aws.cloudtrail.flattened.request_parameters.";
    memcpy(longname, prefix, sizeof prefix - 1);
    ck_assert_int_eq(ct_schema_resolve(s, longname, sizeof longname), -1);
    ct_schema_free(s);
}
END_TEST

START_TEST(constants_and_timestamps)
{
    view *v = view_parse(base_record);
    expect_one(v, "c", "data_stream.dataset", "aws.cloudtrail");
    expect_one(v, "c", "event.dataset", "aws.cloudtrail");
    expect_one(v, "c", "cloud.provider", "aws");
    expect_one(v, "c", "event.kind", "event");
    expect_one(v, "c", "@timestamp", "2026-11-28T05:29:12.000Z");
    expect_one(v, "c", "event.ingested", "2026-11-28T05:29:12.000Z"); /* 05:29:12.123 truncated */
    ck_assert_int_eq(ct_event_time(&v->ev), 1795843752000);
    ck_assert_str_eq(ct_event_id(&v->ev), "e1");
    /* memoised: asking a thousand times costs no scratch */
    nt_value got[MAXV];
    get(v, "@timestamp", got);
    size_t used = v->ev.arena_used;
    const char *p = got[0].ptr;
    for (int i = 0; i < 1000; i++)
        get(v, "@timestamp", got);
    ck_assert_ptr_eq(got[0].ptr, p);
    ck_assert_uint_eq(v->ev.arena_used, used);
    ck_assert_uint_eq(ct_event_dropped(&v->ev), 0);
    view_free(v);
}
END_TEST

START_TEST(event_outcome_follows_errors_and_the_console_login_response)
{
    static const struct {
        const char *extra, *outcome;
    } cases[] = {
        {"", "success"},
        {",\"errorCode\":\"AccessDenied\"", "failure"},
        {",\"errorMessage\":\"Failed authentication\"", "failure"},
        {",\"errorCode\":\"\"", "success"},
        {",\"errorCode\":\"-\"", "success"},
        {",\"errorCode\":null", "success"},
        {",\"errorCode\":{}", "success"},
        {",\"errorCode\":42", "failure"},
        {",\"eventName\":\"ConsoleLogin\",\"responseElements\":{\"ConsoleLogin\":\"Success\"},"
         "\"errorMessage\":\"x\"",
         "success"},
        {",\"eventName\":\"ConsoleLogin\",\"responseElements\":{\"ConsoleLogin\":\"Failure\"}",
         "failure"},
        {",\"eventName\":\"ConsoleLogin\",\"responseElements\":{\"ConsoleLogin\":\"Weird\"}",
         "weird"},
        {",\"eventName\":\"ConsoleLogin\",\"errorMessage\":\"x\"", "failure"},
        {",\"eventName\":\"Other\",\"responseElements\":{\"ConsoleLogin\":\"Success\"},"
         "\"errorCode\":\"X\"",
         "failure"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char text[512];
        snprintf(text, sizeof text, "{\"eventName\":\"ListUsers\"%s}", cases[i].extra);
        view *v = view_parse(text);
        expect_one(v, text, "event.outcome", cases[i].outcome);
        view_free(v);
    }
}
END_TEST

START_TEST(creation_dates_parse_in_basic_and_extended_form)
{
    static const struct {
        const char *in, *out;
    } cases[] = {{"20131102T010628Z", "2013-11-02T01:06:28.000Z"},
                 {"2019-10-02T21:50:54Z", "2019-10-02T21:50:54.000Z"},
                 {"2019-10-02T21:50:54.250+02:00", "2019-10-02T19:50:54.250Z"},
                 {"20131302T010628Z", NULL},
                 {"garbage", NULL}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *rec = json_pack("{s:{s:{s:{s:s}}}}", "userIdentity", "sessionContext", "attributes",
                                "creationDate", cases[i].in);
        view *v = view_new(rec);
        expect_one(v, cases[i].in, "aws.cloudtrail.user_identity.session_context.creation_date",
                   cases[i].out);
        view_free(v);
    }
}
END_TEST

START_TEST(fields_json_gives_scalars_arrays_booleans_and_payload_objects)
{
    view *v = view_new(
        sample_record("awsdocs_lambda_kms_Decrypt_AssumedRole_invokedBy_lambda_console.json", 0));
    static const char *const names[] = {
        "user.name",
        "related.user",
        "aws.cloudtrail.read_only",
        "source.ip",
        "host.name",
        "aws.cloudtrail.flattened.request_parameters",
        "aws.cloudtrail.flattened.request_parameters.encryptionAlgorithm",
        "@timestamp",
        NULL};
    json_t *got = ct_view_fields_json(&v->ev, names, 9);
    json_t *want = json_loads(
        "{\"user.name\":\"role-name\",\"related.user\":[\"example\",\"AROA123456789EXAMPLE:"
        "example\",\"role-name\"],"
        "\"aws.cloudtrail.read_only\":true,"
        "\"aws.cloudtrail.flattened.request_parameters\":{\"keyId\":\"arn:aws:kms:eu-west-1:"
        "123456789012:key/a1b2c3d4-5678-90ab-cdef-EXAMPLE11111\","
        "\"encryptionContext\":{\"aws-crypto-public-key\":\"ABCD+7876787678+CDEFGHIJKL/"
        "888666888999888555444111555222888333111==\","
        "\"aws:lambda:EventSourceArn\":\"arn:aws:sqs:eu-west-1:123456789012:sample-source\","
        "\"aws:lambda:FunctionArn\":\"arn:aws:lambda:eu-west-1:123456789012:function:sample-"
        "function\"},"
        "\"encryptionAlgorithm\":\"SYMMETRIC_DEFAULT\"},"
        "\"aws.cloudtrail.flattened.request_parameters.encryptionAlgorithm\":\"SYMMETRIC_DEFAULT\","
        "\"@timestamp\":\"2024-05-30T01:05:46.000Z\"}",
        0, NULL);
    ck_assert_ptr_nonnull(want);
    char *g = json_dumps(got, JSON_SORT_KEYS);
    ck_assert_msg(json_equal(got, want), "got %s", g);
    free(g);
    json_decref(want);
    json_decref(got);
    /* numbers in a flattened path keep their JSON type in the alert */
    json_object_set_new(v->record, "requestParameters",
                        json_pack("{s:i,s:[s,s]}", "n", 7, "l", "a", "b"));
    ct_event_init(&v->ev, v->schema, v->record, 0);
    static const char *const n2[] = {"aws.cloudtrail.flattened.request_parameters.n",
                                     "aws.cloudtrail.flattened.request_parameters.l"};
    got = ct_view_fields_json(&v->ev, n2, 2);
    want = json_pack("{s:i,s:[s,s]}", n2[0], 7, n2[1], "a", "b");
    ck_assert(json_equal(got, want));
    json_decref(want);
    json_decref(got);
    /* fields_json registers nothing */
    size_t count = ct_schema_field_count(v->schema);
    static const char *const n3[] = {"aws.cloudtrail.flattened.request_parameters.zzz"};
    got = ct_view_fields_json(&v->ev, n3, 1);
    ck_assert_uint_eq(json_object_size(got), 0);
    ck_assert_uint_eq(ct_schema_field_count(v->schema), count);
    json_decref(got);
    view_free(v);
}
END_TEST

START_TEST(the_field_source_interface_forwards_to_the_view)
{
    view *v = view_parse(base_record);
    nt_field_source src = ct_schema_source(v->schema);
    ck_assert_ptr_eq(src.ctx, v->schema);
    int id = src.resolve(src.ctx, "user.name", 9);
    ck_assert_int_ge(id, 0);
    nt_value got[4];
    ck_assert_uint_eq(src.get(src.ctx, &v->ev, id, got, 4), 1);
    ck_assert(val_is(&got[0], "alice"));
    ck_assert_int_eq(src.verbatim(src.ctx, id), 1);
    ck_assert_uint_eq(src.get(src.ctx, &v->ev, -1, got, 4), 0);
    ck_assert_uint_eq(src.get(src.ctx, &v->ev, 99999, got, 4), 0);
    ck_assert_uint_eq(src.get(src.ctx, &v->ev, id, got, 0), 0);
    view_free(v);
}
END_TEST

/* Table size of a data file, for loop tests; a missing file stops the run. */
static size_t cases_in(const char *path)
{
    json_t *doc = json_load_file(path, 0, NULL);
    size_t n = json_array_size(json_object_get(doc, "cases"));
    json_decref(doc);
    if (n == 0) {
        fprintf(stderr, "%s: no cases\n", path);
        exit(EXIT_FAILURE);
    }
    return n;
}

static Suite *suite(void)
{
    size_t n_identity = cases_in(DATA "identity_cases.json");
    size_t n_java = cases_in(DATA "java_render.json");
    Suite *s = suite_create("ctview");
    TCase *t = tcase_create("elastic fixtures");
    tcase_add_loop_test(t, every_claimed_field_of_the_elastic_fixtures_matches_the_pipeline_output,
                        0, sizeof fixtures / sizeof fixtures[0]);
    tcase_add_test(t, every_listed_difference_gives_its_reason);
    tcase_add_loop_test(t, verbatim_fields_appear_quoted_in_the_raw_record_text, 0,
                        sizeof fixtures / sizeof fixtures[0]);
    suite_add_tcase(s, t);

    t = tcase_create("samples");
    tcase_add_loop_test(t, real_samples_give_the_values_read_by_hand, 0,
                        sizeof sample_cases / sizeof sample_cases[0]);
    tcase_add_test(t, booleans_of_the_samples_are_typed_as_booleans);
    suite_add_tcase(s, t);

    t = tcase_create("identity");
    tcase_add_loop_test(t, identity_types_map_to_user_and_account_fields, 0, (int)n_identity);
    suite_add_tcase(s, t);

    t = tcase_create("source ip");
    tcase_add_loop_test(t, source_ip_exists_only_for_literal_addresses, 0,
                        sizeof ip_cases / sizeof ip_cases[0]);
    tcase_add_test(t, related_hosts_holds_non_aws_host_names_only);
    suite_add_tcase(s, t);

    t = tcase_create("shape");
    tcase_add_loop_test(t, record_shape_check_names_the_first_problem, 0,
                        sizeof shape_cases / sizeof shape_cases[0]);
    tcase_add_test(t, a_null_record_is_not_valid);
    suite_add_tcase(s, t);

    t = tcase_create("hostile");
    tcase_set_timeout(t, 120);
    tcase_add_loop_test(t, wrong_json_types_make_a_field_missing, 0,
                        sizeof typed_keys / sizeof typed_keys[0]);
    tcase_add_test(t, hostile_values_anywhere_never_crash);
    tcase_add_test(t, records_that_are_not_objects_have_no_fields);
    tcase_add_test(t, deep_nesting_in_payloads_is_cut_off_without_crashing);
    tcase_add_test(t, huge_strings_are_returned_whole_and_payload_renderings_respect_the_scratch);
    tcase_add_test(t, flattened_copies_exist_only_below_32766_utf16_units);
    tcase_add_test(t, a_field_with_more_values_than_max_is_cut_and_counted);
    suite_add_tcase(s, t);

    t = tcase_create("payloads");
    tcase_add_loop_test(t, payload_strings_match_what_the_jvm_prints, 0, (int)n_java);
    tcase_add_test(t, flattened_paths_walk_arrays_and_print_numbers_as_keywords);
    suite_add_tcase(s, t);

    t = tcase_create("schema and misc");
    tcase_add_test(t, unknown_fields_resolve_to_minus_one);
    tcase_add_test(t, resolving_a_flattened_path_twice_gives_the_same_id);
    tcase_add_test(t, the_dynamic_registry_is_bounded);
    tcase_add_test(t, constants_and_timestamps);
    tcase_add_test(t, event_outcome_follows_errors_and_the_console_login_response);
    tcase_add_test(t, creation_dates_parse_in_basic_and_extended_form);
    tcase_add_test(t, fields_json_gives_scalars_arrays_booleans_and_payload_objects);
    tcase_add_test(t, the_field_source_interface_forwards_to_the_view);
    suite_add_tcase(s, t);
    return s;
}

NT_TEST_MAIN(suite)

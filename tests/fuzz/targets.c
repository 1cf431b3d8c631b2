/*
 * targets.c — what each fuzz target does with its bytes (see targets.h).
 *
 * Every target is a plain function over (env, bytes). This file is the
 * library ntfuzz, built in every configuration (gcc included) with no
 * libFuzzer in it: the one libFuzzer entry point is fuzz_main.c, built once
 * per target with clang (-DNT_FUZZ=ON), and tests/unit/test_fuzz_regressions.c
 * links ntfuzz to replay the committed crash inputs through the same
 * functions in the normal and the ASan build.
 *
 * Besides "does not crash, does not leak, no undefined behaviour" (which the
 * sanitizers judge), the targets check the contracts the service relies on
 * and that a crash would not reveal:
 *   - fh_scan: every slice lies inside the body, requestId is NUL-terminated
 *     and bounded, a callback walk sees exactly the records a plain scan
 *     found; fh_unescape never writes more than the input length.
 *   - jfast_loadb (the parse of every unit) equals json_loadb: same
 *     accept/reject, error text and position, json_equal trees with the
 *     same key order (checked on every unit of the record target, and on raw
 *     bytes with every flag set the service uses by the jfast target).
 *   - dec_record / dec_split: units and records arrive with sane origins;
 *     every record handed on is a CloudTrail record (dec_is_cloudtrail);
 *     errors carry one of the documented statuses and a message.
 *   - pipeline: the raw-byte KQL prefilter never changes the observations
 *     (the same delivery with and without it yields the same alert ids).
 *   - b64_decode (AVX2 blocks where the CPU has them) accepts exactly what a
 *     one-character-at-a-time decoder accepts, and decodes to the same bytes.
 *   - nt_json_structure_ok (AVX2 blocks where the CPU has them) gives the
 *     verdict of its portable SSE2 form on any bytes.
 *   - ctview: a verbatim field's values appear quoted in the raw record when
 *     the record has no JSON escapes (the prefilter depends on that).
 *   - KQL: whatever the query, an event it matches passes its prefilter;
 *     what compiles also parses, to the same tree.
 *   - exceptions: an expired item never matches; a validated item's own
 *     document validates again.
 * A broken contract prints a line to stderr and aborts.
 *
 * The fixed inputs (three rules, four CloudTrail records) are compiled in, so
 * the fuzzers need no files and every run is deterministic; time is a
 * constant (FUZZ_NOW).
 */
#include "targets.h"

#include "ctview.h"
#include "decode.h"
#include "exception.h"
#include "history.h"
#include "jfast.h"
#include "kql.h"
#include "pipeline.h"
#include "rule.h"
#include "search.h"
#include "toml.h"

#include "base64.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* 2026-11-20T12:00:00Z: two hours after the fixed events, well inside the windows. */
#define FUZZ_NOW ((nt_time_ms)1795176000000)
/* The service's default cap for Content-Encoding: gzip bodies (config.c --max-inflate). */
#define FUZZ_BODY_INFLATE_MAX ((size_t)256 << 20)

#define FUZZ_CHECK(cond, ...)                                                                      \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz invariant broken at %s:%d: %s: ", __FILE__, __LINE__, #cond);    \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* ---- fixtures ----------------------------------------------------------- */

/* The shipped rule's detection part (rules/aws_account_discovery_by_rare_user.toml),
 * and a second rule that reads arrays, flattened payloads and three terms so
 * the engine's combinations run too. */
static const char fuzz_rule_shipped[] =
    "[rule]\n"
    "rule_id = \"444c8fad-874f-4f59-b0ea-cf26cea478bd\"\n"
    "name = \"AWS Account Discovery By Rare User\"\n"
    "severity = \"low\"\nrisk_score = 21\ntype = \"new_terms\"\nlanguage = \"kuery\"\n"
    "from = \"now-6m\"\n"
    "query = '''\n"
    "data_stream.dataset: \"aws.cloudtrail\"\n"
    "    and event.outcome: \"success\"\n"
    "    and source.ip:*\n"
    "    and not aws.cloudtrail.session_credential_from_console: \"true\"\n"
    "    and not aws.cloudtrail.user_identity.type: \"AWSService\"\n"
    "    and (\n"
    "        (\n"
    "            event.provider: \"organizations.amazonaws.com\"\n"
    "            and event.action: (\n"
    "                \"DescribeOrganization\" or \"DescribeOrganizationalUnit\" or "
    "\"ListAccounts\"\n"
    "                or \"ListRoots\" or \"ListOrganizationalUnitsForParent\"\n"
    "                or \"ListAccountsForParent\" or \"ListPolicies\"\n"
    "                or \"ListAWSServiceAccessForOrganization\" or "
    "\"ListDelegatedAdministrators\"\n"
    "                or \"ListDelegatedServicesForAccount\" or \"DescribeResourcePolicy\"\n"
    "            )\n"
    "        )\n"
    "        or (\n"
    "            event.provider: \"iam.amazonaws.com\"\n"
    "            and event.action: (\"ListAccountAliases\" or \"GetAccountSummary\")\n"
    "        )\n"
    "    )\n"
    "'''\n"
    "[rule.investigation_fields]\n"
    "field_names = [\"@timestamp\", \"user.name\", \"user_agent.original\", \"source.ip\",\n"
    "  \"aws.cloudtrail.user_identity.arn\", \"aws.cloudtrail.user_identity.type\",\n"
    "  \"aws.cloudtrail.user_identity.access_key_id\", \"event.action\", \"event.outcome\",\n"
    "  \"event.provider\", \"cloud.account.id\", \"cloud.region\"]\n"
    "[rule.new_terms]\n"
    "field = \"new_terms_fields\"\n"
    "value = [\"cloud.account.id\", \"user.name\"]\n"
    "[[rule.new_terms.history_window_start]]\n"
    "field = \"history_window_start\"\n"
    "value = \"now-10d\"\n";

static const char fuzz_rule_wide[] =
    "[rule]\n"
    "rule_id = \"f0220000-0000-4000-8000-000000000001\"\n"
    "name = \"Fuzz: anything with resources\"\n"
    "severity = \"medium\"\nrisk_score = 47\ntype = \"new_terms\"\nlanguage = \"kuery\"\n"
    "from = \"now-9m\"\n"
    "query = '''\n"
    "event.provider: (s3.amazonaws.com or *.amazonaws.com) and not event.action: Delete*\n"
    "  and (aws.cloudtrail.flattened.request_parameters.bucketName: * or related.user: *\n"
    "       or aws.cloudtrail.resources.arn: \"arn:aws:s3:::example-app-data\"\n"
    "       or aws.cloudtrail.flattened.additional_eventdata.bytesTransferredOut >= 10)\n"
    "'''\n"
    "[rule.investigation_fields]\n"
    "field_names = [\"related.user\", \"related.ip\", \"aws.cloudtrail.request_parameters\",\n"
    "  \"aws.cloudtrail.flattened.request_parameters\", \"@timestamp\"]\n"
    "[rule.new_terms]\n"
    "field = \"new_terms_fields\"\n"
    "value = [\"aws.cloudtrail.resources.arn\", \"related.user\", \"user.name\"]\n"
    "[[rule.new_terms.history_window_start]]\n"
    "field = \"history_window_start\"\n"
    "value = \"now-7d\"\n";

/* Only verbatim fields, with prefixes, suffixes and infixes: the rule whose
 * prefilter clauses the record target's with/without comparison tests hardest. */
static const char fuzz_rule_prefilter[] =
    "[rule]\n"
    "rule_id = \"f0220000-0000-4000-8000-000000000002\"\n"
    "name = \"Fuzz: prefilter clauses\"\n"
    "severity = \"high\"\nrisk_score = 73\ntype = \"new_terms\"\nlanguage = \"kuery\"\n"
    "from = \"now-5m\"\n"
    "query = '''\n"
    "user.name: (*admin* or \"OrgAdmin\" or app-*) and event.action: (*Policy or List* or "
    "GetObject)\n"
    "  and not aws.cloudtrail.error_code: AccessDenied and cloud.account.id: *3333\n"
    "'''\n"
    "[rule.new_terms]\n"
    "field = \"new_terms_fields\"\n"
    "value = [\"user.name\"]\n"
    "[[rule.new_terms.history_window_start]]\n"
    "field = \"history_window_start\"\n"
    "value = \"now-2d\"\n";

/* Four records that together reach most of the view: an IAM user listing
 * accounts (the shipped rule's match), an assumed role with payloads and
 * resources, an AWS service actor with an error, and a record full of JSON
 * escapes, numbers where strings belong and an IPv6 source. */
static const char *const fuzz_events[] = {
    "{\"eventVersion\":\"1.09\",\"userIdentity\":{\"type\":\"IAMUser\",\"principalId\":"
    "\"AIDAEXAMPLEPRINCIPAL1\",\"arn\":\"arn:aws:iam::111122223333:user/OrgAdmin\",\"accountId\":"
    "\"111122223333\",\"accessKeyId\":\"AKIAEXAMPLEKEY000001\",\"userName\":\"OrgAdmin\"},"
    "\"eventTime\":\"2026-11-20T10:00:00Z\",\"eventSource\":\"organizations.amazonaws.com\","
    "\"eventName\":\"ListAccounts\",\"awsRegion\":\"us-east-1\",\"sourceIPAddress\":"
    "\"203.0.113.10\",\"userAgent\":\"aws-cli/2.15.30\",\"requestParameters\":null,"
    "\"responseElements\":null,\"requestID\":\"5b3c7a4e-0f51-4c1d-9a62-2c5e0f7d9a11\","
    "\"eventID\":\"0c6a9a57-6f1e-4c5b-8f0c-4a3b2d1e0f99\",\"readOnly\":true,\"eventType\":"
    "\"AwsApiCall\",\"managementEvent\":true,\"recipientAccountId\":\"111122223333\","
    "\"eventCategory\":\"Management\",\"tlsDetails\":{\"tlsVersion\":\"TLSv1.3\",\"cipherSuite\":"
    "\"TLS_AES_128_GCM_SHA256\",\"clientProvidedHostHeader\":"
    "\"organizations.us-east-1.amazonaws.com\"}}",

    "{\"eventVersion\":\"1.10\",\"userIdentity\":{\"type\":\"AssumedRole\",\"principalId\":"
    "\"AROAEXAMPLEROLEID0001:i-0abc\",\"arn\":\"arn:aws:sts::111122223333:assumed-role/app-server/"
    "i-0abc\",\"accountId\":\"111122223333\",\"accessKeyId\":\"ASIAEXAMPLEKEY000002\","
    "\"sessionContext\":{\"sessionIssuer\":{\"type\":\"Role\",\"principalId\":"
    "\"AROAEXAMPLEROLEID0001\",\"arn\":\"arn:aws:iam::111122223333:role/app-server\","
    "\"accountId\":\"111122223333\",\"userName\":\"app-server\"},\"attributes\":{\"creationDate\":"
    "\"2026-11-20T09:00:00Z\",\"mfaAuthenticated\":\"false\"},\"ec2RoleDelivery\":\"2.0\"}},"
    "\"eventTime\":\"2026-11-20T10:00:01Z\",\"eventSource\":\"s3.amazonaws.com\",\"eventName\":"
    "\"GetObject\",\"awsRegion\":\"us-east-1\",\"sourceIPAddress\":\"10.0.12.34\",\"userAgent\":"
    "\"[aws-sdk-java/2.25.10]\",\"requestParameters\":{\"bucketName\":\"example-app-data\","
    "\"Host\":\"example-app-data.s3.us-east-1.amazonaws.com\",\"key\":\"reports/summary.csv\","
    "\"list\":[1,2.5,true,{\"a\":\"b\"}]},\"responseElements\":null,\"additionalEventData\":"
    "{\"SignatureVersion\":\"SigV4\",\"bytesTransferredIn\":0,\"bytesTransferredOut\":18244},"
    "\"requestID\":\"EXAMPLE8A2F1C3D4\",\"eventID\":\"5a9f6d3c-1b2e-4f70-8d9c-0e1f2a3b4c5d\","
    "\"readOnly\":true,\"resources\":[{\"type\":\"AWS::S3::Object\",\"ARN\":"
    "\"arn:aws:s3:::example-app-data/reports/summary.csv\"},{\"accountId\":\"111122223333\","
    "\"type\":\"AWS::S3::Bucket\",\"ARN\":\"arn:aws:s3:::example-app-data\"}],\"eventType\":"
    "\"AwsApiCall\",\"managementEvent\":false,\"recipientAccountId\":\"111122223333\","
    "\"eventCategory\":\"Data\"}",

    "{\"eventVersion\":\"1.08\",\"userIdentity\":{\"type\":\"AWSService\",\"invokedBy\":"
    "\"cloudtrail.amazonaws.com\"},\"eventTime\":\"2026-11-20T10:00:02.5+01:00\","
    "\"eventSource\":\"sts.amazonaws.com\",\"eventName\":\"AssumeRole\",\"awsRegion\":"
    "\"eu-west-1\",\"sourceIPAddress\":\"cloudtrail.amazonaws.com\",\"userAgent\":"
    "\"cloudtrail.amazonaws.com\",\"errorCode\":\"AccessDenied\",\"errorMessage\":\"-\","
    "\"requestParameters\":{\"roleArn\":\"arn:aws:iam::444455556666:role/x\","
    "\"roleSessionName\":\"s\",\"durationSeconds\":3600},\"responseElements\":{"
    "\"credentials\":{\"accessKeyId\":\"ASIAX\",\"expiration\":\"Nov 20, 2026, 11:00:02 AM\"}},"
    "\"serviceEventDetails\":{\"k\":[\"v\",\"\",null]},\"eventID\":\"e3\",\"eventType\":"
    "\"AwsApiCall\",\"recipientAccountId\":\"444455556666\",\"sharedEventID\":\"s-1\"}",

    "{\"eventVersion\":\"1.11\",\"userIdentity\":{\"type\":\"Root\",\"principalId\":"
    "\"111122223333\",\"arn\":\"arn:aws:iam::111122223333:root\",\"accountId\":42},"
    "\"eventTime\":\"2026-11-20T10:00:03Z\",\"eventSource\":\"signin.amazonaws.com\","
    "\"eventName\":\"ConsoleLogin\",\"awsRegion\":\"us-east-1\",\"sourceIPAddress\":"
    "\"2001:DB8::0:1\",\"userAgent\":\"Mozilla\\/5.0 \\u00e9\",\"requestParameters\":null,"
    "\"responseElements\":{\"ConsoleLogin\":\"Failure\"},\"additionalEventData\":{\"MFAUsed\":"
    "\"Yes\",\"MobileVersion\":\"No\",\"LoginTo\":\"https://console.aws.amazon.com\"},"
    "\"eventID\":\"e4\",\"eventType\":\"AwsConsoleSignIn\",\"recipientAccountId\":"
    "\"111122223333\",\"sessionCredentialFromConsole\":\"true\"}",
};
#define FUZZ_N_EVENTS (sizeof fuzz_events / sizeof fuzz_events[0])

/* Flattened paths the ctview target asks for (resolved once in env->schema). */
static const char *const fuzz_flat_paths[] = {
    "aws.cloudtrail.flattened.request_parameters.bucketName",
    "aws.cloudtrail.flattened.request_parameters.list",
    "aws.cloudtrail.flattened.request_parameters.list.a",
    "aws.cloudtrail.flattened.response_elements.credentials.accessKeyId",
    "aws.cloudtrail.flattened.additional_eventdata.bytesTransferredOut",
    "aws.cloudtrail.flattened.service_event_details.k",
    "aws.cloudtrail.flattened.request_parameters.a.b.c.d.e.f.g.h",
};
#define FUZZ_N_FLAT (sizeof fuzz_flat_paths / sizeof fuzz_flat_paths[0])

struct fuzz_env {
    nt_ruleset *rs;    /* the three rules above, for the pipeline */
    ct_schema *schema; /* static fields + fuzz_flat_paths (ctview) */
    int flat_ids[FUZZ_N_FLAT];
    json_t *events[FUZZ_N_EVENTS]; /* fuzz_events parsed */
    const char **field_names;      /* every field of env->schema, for fields_json */
    size_t n_field_names;
};

void fuzz_env_free(fuzz_env *env)
{
    if (!env) return;
    ruleset_free(env->rs);
    ct_schema_free(env->schema);
    for (size_t i = 0; i < FUZZ_N_EVENTS; i++)
        json_decref(env->events[i]);
    free(env->field_names);
    free(env);
}

static int env_add_rule(fuzz_env *env, const char *text)
{
    nt_err err;
    nt_rule *r = NULL;
    if (rule_load("fuzz-builtin.toml", text, strlen(text), env->rs->schema, &r, &err) != NT_OK) {
        fprintf(stderr, "fuzz: built-in rule does not load: %s\n", err.msg);
        return -1;
    }
    env->rs->rules[env->rs->n++] = r;
    return 0;
}

fuzz_env *fuzz_env_new(void)
{
    fuzz_env *env = calloc(1, sizeof *env);
    if (!env) return NULL;
    env->rs = calloc(1, sizeof *env->rs);
    if (!env->rs || !(env->rs->schema = ct_schema_new()) || !(env->rs->errors = json_array()) ||
        !(env->rs->rules = calloc(3, sizeof *env->rs->rules)))
        goto fail;
    if (env_add_rule(env, fuzz_rule_shipped) != 0 || env_add_rule(env, fuzz_rule_wide) != 0 ||
        env_add_rule(env, fuzz_rule_prefilter) != 0)
        goto fail;
    if (!(env->schema = ct_schema_new())) goto fail;
    for (size_t i = 0; i < FUZZ_N_FLAT; i++) {
        env->flat_ids[i] =
            ct_schema_resolve(env->schema, fuzz_flat_paths[i], strlen(fuzz_flat_paths[i]));
        if (env->flat_ids[i] < 0) {
            fprintf(stderr, "fuzz: view cannot resolve %s\n", fuzz_flat_paths[i]);
            goto fail;
        }
    }
    for (size_t i = 0; i < FUZZ_N_EVENTS; i++) {
        json_error_t je;
        env->events[i] = json_loads(fuzz_events[i], 0, &je);
        if (!env->events[i] || ct_record_valid(env->events[i], NULL) != NT_OK) {
            fprintf(stderr, "fuzz: built-in event %zu is not a CloudTrail record: %s\n", i,
                    env->events[i] ? "invalid" : je.text);
            goto fail;
        }
    }
    size_t n = ct_schema_field_count(env->schema);
    if (!(env->field_names = calloc(n + 2, sizeof *env->field_names))) goto fail;
    for (size_t i = 0; i < n; i++)
        env->field_names[env->n_field_names++] = ct_schema_field_name(env->schema, (int)i);
    env->field_names[env->n_field_names++] = "source.geo.city_name"; /* never produced */
    env->field_names[env->n_field_names++] = "aws.cloudtrail.flattened.request_parameters.key";
    return env;
fail:
    fuzz_env_free(env);
    return NULL;
}

size_t fuzz_env_rule_count(const fuzz_env *env)
{
    return env->rs->n;
}

/* ---- helpers ------------------------------------------------------------ */

/* Reads every byte of v so ASan sees any value that points outside its buffer,
 * and checks the value's shape. Returns a byte sum so the reads are not elided. */
static unsigned touch_value(const nt_value *v)
{
    FUZZ_CHECK(v->ptr != NULL || v->len == 0, "value with length %zu has no bytes", v->len);
    FUZZ_CHECK(v->type == NT_VAL_STRING || v->type == NT_VAL_NUMBER || v->type == NT_VAL_BOOL,
               "value type %d", (int)v->type);
    if (v->type == NT_VAL_BOOL)
        FUZZ_CHECK((v->len == 4 && memcmp(v->ptr, "true", 4) == 0) ||
                       (v->len == 5 && memcmp(v->ptr, "false", 5) == 0),
                   "boolean value '%.*s'", (int)v->len, v->ptr);
    unsigned sum = 0;
    for (size_t i = 0; i < v->len; i++)
        sum += (unsigned char)v->ptr[i];
    return sum;
}

/* "v" (with quotes) occurs in raw. */
static int contains_quoted(const char *raw, size_t rlen, const char *v, size_t vlen)
{
    for (const char *p = raw, *end = raw + rlen; p < end;) {
        const char *q = memmem(p, (size_t)(end - p), v, vlen);
        if (!q) return 0;
        if (q > raw && q[-1] == '"' && q + vlen < end && q[vlen] == '"') return 1;
        p = q + 1;
    }
    return 0;
}

static void check_error(nt_status st, const nt_err *err, const char *what)
{
    FUZZ_CHECK(st == NT_ERR_PARSE || st == NT_ERR_INVALID || st == NT_ERR_LIMIT ||
                   st == NT_ERR_UNSUPPORTED || st == NT_ERR_NOMEM,
               "%s returned status %d", what, (int)st);
    FUZZ_CHECK(memchr(err->msg, 0, sizeof err->msg) != NULL && err->msg[0] != 0,
               "%s failed without a message", what);
}

/* ---- firehose ----------------------------------------------------------- */

typedef struct fh_walk {
    const char *body;
    size_t len;
    const fh_envelope *env;
    size_t seen;
} fh_walk;

static nt_status fh_on_record(void *ud, size_t index, const char *data, size_t len, unsigned flags,
                              nt_err *err)
{
    (void)err;
    fh_walk *w = ud;
    FUZZ_CHECK(index == w->seen, "record %zu handed on as %zu", w->seen, index);
    FUZZ_CHECK(index < w->env->record_count, "record %zu of %zu", index, w->env->record_count);
    FUZZ_CHECK(data >= w->body && data + len <= w->body + w->len,
               "records[%zu].data slice lies outside the body", index);
    FUZZ_CHECK(data == w->env->records[index].data && len == w->env->records[index].len &&
                   flags == w->env->records[index].flags,
               "callback and env->records disagree on records[%zu]", index);
    w->seen++;
    return NT_OK;
}

/* What fh_scan accepted must be JSON to jansson too, with the same requestId,
 * timestamp and records. Not compared: bodies whose "data" strings hold
 * escapes, control characters or non-ASCII bytes (fh_scan leaves those to
 * fh_unescape and the base64 decoder on purpose), and bodies with integers
 * beyond 64 bits or keys holding \u0000 (which only jansson refuses). */
static void fh_compare_jansson(const char *body, size_t size, const fh_envelope *env)
{
    for (size_t i = 0; i < env->record_count; i++)
        for (size_t j = 0; j < env->records[i].len; j++) {
            unsigned char c = (unsigned char)env->records[i].data[j];
            if (c < 0x20 || c >= 0x80 || c == '\\') return;
        }
    json_error_t je;
    json_t *doc = json_loadb(body, size, JSON_ALLOW_NUL, &je);
    if (!doc) {
        FUZZ_CHECK(strstr(je.text, "too big") || strstr(je.text, "overflow") ||
                       strstr(je.text, "NUL byte in object key"),
                   "fh_scan accepted a body that jansson refuses: %s (offset %d)", je.text,
                   je.position);
        return;
    }
    json_t *rid = json_object_get(doc, "requestId");
    FUZZ_CHECK(json_is_string(rid) && json_string_length(rid) == env->request_id_len &&
                   memcmp(json_string_value(rid), env->request_id, env->request_id_len) == 0,
               "requestId differs from jansson's");
    json_t *ts = json_object_get(doc, "timestamp");
    FUZZ_CHECK(env->has_timestamp == (ts != NULL), "timestamp presence differs");
    if (ts)
        FUZZ_CHECK(json_is_integer(ts) && json_integer_value(ts) == env->timestamp,
                   "timestamp %lld, jansson %lld", (long long)env->timestamp,
                   (long long)json_integer_value(ts));
    json_t *recs = json_object_get(doc, "records");
    FUZZ_CHECK(json_is_array(recs) && json_array_size(recs) == env->record_count,
               "%zu records, jansson %zu", env->record_count, json_array_size(recs));
    for (size_t i = 0; i < env->record_count; i++) {
        json_t *d = json_object_get(json_array_get(recs, i), "data");
        FUZZ_CHECK(json_is_string(d), "records[%zu].data is no string to jansson", i);
        const fh_record *r = &env->records[i];
        FUZZ_CHECK(json_string_length(d) == r->len &&
                       memcmp(json_string_value(d), r->data, r->len) == 0,
                   "records[%zu].data differs from jansson's", i);
    }
    json_decref(doc);
}

void fuzz_firehose(const fuzz_env *env, const uint8_t *data, size_t size)
{
    (void)env;
    const char *body = (const char *)data;
    fh_envelope a, b;
    fh_envelope_init(&a);
    fh_envelope_init(&b);
    nt_err err;
    nt_status st = fh_scan(body, size, &a, NULL, NULL, &err);
    if (st != NT_OK) {
        check_error(st, &err, "fh_scan");
    } else {
        FUZZ_CHECK(a.record_count <= FH_MAX_RECORDS, "%zu records", a.record_count);
        FUZZ_CHECK(a.request_id_len <= FH_REQUEST_ID_MAX, "requestId of %zu bytes",
                   a.request_id_len);
        FUZZ_CHECK(a.request_id[a.request_id_len] == 0, "requestId is not NUL-terminated");
        FUZZ_CHECK(a.request_id_raw >= body &&
                       a.request_id_raw + a.request_id_raw_len <= body + size,
                   "requestId slice lies outside the body");
        char *out = NULL;
        for (size_t i = 0; i < a.record_count; i++) {
            const fh_record *r = &a.records[i];
            FUZZ_CHECK(r->data >= body && r->data + r->len <= body + size,
                       "records[%zu].data slice lies outside the body", i);
            if (!(r->flags & FH_REC_ESCAPED)) continue;
            /* exactly len bytes, so ASan catches a write past what the header promises */
            char *grown = realloc(out, r->len ? r->len : 1);
            FUZZ_CHECK(grown != NULL, "out of memory");
            out = grown;
            size_t olen = 0;
            nt_err uerr;
            nt_status ust = fh_unescape(r->data, r->len, out, r->len, &olen, &uerr);
            if (ust == NT_OK)
                FUZZ_CHECK(olen <= r->len, "unescaped %zu > %zu", olen, r->len);
            else
                check_error(ust, &uerr, "fh_unescape");
        }
        free(out);
    }
    if (st == NT_OK) fh_compare_jansson(body, size, &a);
    /* The same body again with a callback, into an envelope whose array is reused. */
    fh_walk w = {.body = body, .len = size, .env = &b};
    for (int round = 0; round < 2; round++) {
        w.seen = 0;
        nt_status st2 = fh_scan(body, size, &b, fh_on_record, &w, &err);
        FUZZ_CHECK(st2 == st, "fh_scan gave %d, then %d with a callback", (int)st, (int)st2);
        if (st2 == NT_OK)
            FUZZ_CHECK(w.seen == a.record_count && b.record_count == a.record_count,
                       "a callback walk saw %zu of %zu records", w.seen, a.record_count);
    }
    char prefix[DEC_PREFIX_BUF];
    size_t plen = dec_escape_prefix(data, size, prefix, sizeof prefix);
    FUZZ_CHECK(plen < sizeof prefix && prefix[plen] == 0 && strlen(prefix) == plen,
               "dead-letter prefix of %zu bytes", plen);
    char small[7];
    plen = dec_escape_prefix(data, size, small, sizeof small);
    FUZZ_CHECK(plen < sizeof small && small[plen] == 0, "short prefix of %zu bytes", plen);
    fh_envelope_free(&a);
    fh_envelope_free(&b);
}

/* ---- record ------------------------------------------------------------- */

typedef struct rec_walk {
    size_t index;
    size_t units;
    size_t records;
} rec_walk;

static nt_status rec_on_split_record(void *ud, json_t *record, dec_shape shape, size_t sub_index,
                                     nt_err *err)
{
    (void)err;
    (void)sub_index;
    rec_walk *w = ud;
    FUZZ_CHECK(shape < DEC_SHAPE_COUNT, "shape %d", (int)shape);
    FUZZ_CHECK(dec_is_cloudtrail(record), "a %s record that is not CloudTrail",
               dec_shape_name(shape));
    nt_err why = {{0}};
    if (ct_record_valid(record, &why) != NT_OK)
        FUZZ_CHECK(why.msg[0] != '\0', "invalid record without a reason");
    w->records++;
    return NT_OK;
}

static void rec_on_split_bad(void *ud, size_t sub_index, nt_status status, const char *message,
                             const char *text, size_t len)
{
    (void)ud;
    (void)sub_index;
    FUZZ_CHECK(status == NT_ERR_PARSE || status == NT_ERR_INVALID || status == NT_ERR_LIMIT ||
                   status == NT_ERR_NOMEM,
               "bad piece with status %d", (int)status);
    FUZZ_CHECK(message && message[0], "bad piece without a message");
    FUZZ_CHECK(text != NULL || len == 0, "bad piece without text");
    char prefix[DEC_PREFIX_BUF];
    dec_escape_prefix((const unsigned char *)text, len, prefix, sizeof prefix);
}

/* ---- jfast ------------------------------------------------------------- */

/* The flag sets the decoder passes (dec_split, split_cwl, the CWL root). */
static const size_t jfast_flag_sets[] = {
    JSON_DECODE_ANY | JSON_DISABLE_EOF_CHECK | JSON_ALLOW_NUL,
    JSON_DECODE_ANY | JSON_ALLOW_NUL,
    JSON_ALLOW_NUL,
};

/* jfast_loadb(text, len, flags) must be json_loadb's result. */
static void jfast_same(const char *text, size_t len, size_t flags)
{
    json_error_t je, fe;
    json_t *want = json_loadb(text, len, flags, &je);
    json_t *got = jfast_loadb(text, len, flags, &fe);
    FUZZ_CHECK(!want == !got, "flags %zx: jansson %s, jfast %s", flags, want ? "accepts" : je.text,
               got ? "accepts" : fe.text);
    FUZZ_CHECK(je.position == fe.position && je.line == fe.line && je.column == fe.column &&
                   strcmp(je.text, fe.text) == 0,
               "flags %zx: error \"%s\" at %d vs \"%s\" at %d", flags, je.text, je.position,
               fe.text, fe.position);
    if (want) {
        FUZZ_CHECK(json_equal(want, got), "flags %zx: the trees differ", flags);
        /* json_equal ignores key order and -0.0 vs 0.0; the dumps do not. */
        char *a = json_dumps(want, JSON_COMPACT | JSON_ENCODE_ANY);
        char *b = json_dumps(got, JSON_COMPACT | JSON_ENCODE_ANY);
        FUZZ_CHECK((!a && !b) || (a && b && strcmp(a, b) == 0), "flags %zx: %.120s vs %.120s",
                   flags, a ? a : "?", b ? b : "?");
        free(a);
        free(b);
    }
    json_decref(want);
    json_decref(got);
}

void fuzz_jfast(const fuzz_env *env, const uint8_t *data, size_t size)
{
    (void)env;
    /* A private copy of exactly size bytes, so ASan sees a read past the end. */
    char *copy = malloc(size ? size : 1);
    if (!copy) return;
    if (size) memcpy(copy, data, size);
    for (size_t f = 0; f < sizeof jfast_flag_sets / sizeof jfast_flag_sets[0]; f++)
        jfast_same(copy, size, jfast_flag_sets[f]);
    free(copy);
}

static void split_unit(const char *text, size_t len, rec_walk *w)
{
    jfast_same(text, len, jfast_flag_sets[0]);
    nt_err err;
    nt_status st = dec_split(text, len, rec_on_split_record, rec_on_split_bad, w, &err);
    if (st != NT_OK) check_error(st, &err, "dec_split");
}

static nt_status rec_on_unit(void *ud, const char *text, size_t len, const dec_origin *origin,
                             nt_err *err)
{
    (void)err;
    rec_walk *w = ud;
    FUZZ_CHECK(text != NULL || len == 0, "unit without text");
    FUZZ_CHECK(origin && origin->record_index == w->index, "unit of record %zu",
               origin ? origin->record_index : (size_t)-1);
    if (origin->kind == DEC_CWL) {
        FUZZ_CHECK(origin->sub_index == w->units, "CWL unit %zu handed on as %zu", w->units,
                   origin->sub_index);
        FUZZ_CHECK(origin->gzipped, "a CWL unit that was not gzip'd");
    } else {
        FUZZ_CHECK(origin->kind == DEC_PLAIN && origin->sub_index == 0, "plain unit %zu",
                   origin->sub_index);
    }
    w->units++;
    split_unit(text, len, w);
    return NT_OK;
}

/* gzip of in[0..len) (level 6, like CloudWatch Logs); malloc'd, NULL on failure. */
static unsigned char *gzip_bytes(const uint8_t *in, size_t len, size_t *outlen)
{
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (deflateInit2(&zs, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) return NULL;
    uLong cap = deflateBound(&zs, (uLong)len);
    unsigned char *out = malloc(cap ? cap : 1);
    if (out) {
        zs.next_in = (Bytef *)(uintptr_t)in;
        zs.avail_in = (uInt)len;
        zs.next_out = out;
        zs.avail_out = (uInt)cap;
        if (deflate(&zs, Z_FINISH) != Z_STREAM_END) {
            free(out);
            out = NULL;
        } else {
            *outlen = zs.total_out;
        }
    }
    deflateEnd(&zs);
    return out;
}

static char *base64_of(const unsigned char *in, size_t len, size_t *outlen)
{
    size_t cap = b64_encoded_len(len) + 1;
    char *out = malloc(cap);
    nt_err err;
    if (out && b64_encode(in, len, out, cap, outlen, &err) != NT_OK) {
        free(out);
        out = NULL;
    }
    return out;
}

static int cmp_alert_ids(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

/* The observations of one pipeline run, as sorted alert ids. */
typedef struct pipe_result {
    size_t n;
    char (*ids)[33];
} pipe_result;

static void run_pipeline(const fuzz_env *env, int prefilter, const char *b64, size_t b64len,
                         const char *body, size_t body_len, pipe_result *res)
{
    pipe_run p;
    pipe_init(&p, env->rs, NULL, FUZZ_NOW);
    /* 3: the rules' literals shared and the exact ones found by one scan,
     * 2: shared, searched; 1: each rule's own; 0: none */
    p.prefilter = prefilter != 0;
    p.pf_shared = prefilter >= 2 ? prefilter - 1 : 0;
    if (b64) {
        /* twice, as two records of one delivery: the scratch buffers are reused */
        pipe_firehose_record(&p, 0, b64, b64len, 0);
        pipe_firehose_record(&p, 1, b64, b64len, 0);
    }
    if (body) {
        nt_err err;
        nt_status st = pipe_body(&p, body, body_len, &err);
        if (st != NT_OK) check_error(st, &err, "pipe_body");
    }
    FUZZ_CHECK(p.n_rejects <= PIPE_MAX_REJECTS, "%zu rejects kept", p.n_rejects);
    for (size_t i = 0; i < p.n_rejects; i++) {
        const pipe_reject *r = &p.rejects[i];
        FUZZ_CHECK(r->reason[0] && memchr(r->reason, 0, sizeof r->reason), "reject reason");
        FUZZ_CHECK(memchr(r->prefix, 0, sizeof r->prefix) != NULL, "reject prefix");
    }
    memhist *mh = memhist_new();
    FUZZ_CHECK(mh != NULL, "out of memory");
    nt_history h = memhist_history(mh);
    nt_err err;
    nt_status st = pipe_commit(&p, &h, &err);
    FUZZ_CHECK(st == NT_OK, "pipe_commit: %s", err.msg);
    FUZZ_CHECK(p.alerts <= p.n_obs, "%zu alerts from %zu observations", p.alerts, p.n_obs);
    res->n = p.n_obs;
    res->ids = calloc(p.n_obs ? p.n_obs : 1, sizeof *res->ids);
    FUZZ_CHECK(res->ids != NULL, "out of memory");
    for (size_t i = 0; i < p.n_obs; i++) {
        FUZZ_CHECK(strlen(p.items[i].alert_id) == 32, "alert id '%s'", p.items[i].alert_id);
        memcpy(res->ids[i], p.items[i].alert_id, 33);
        FUZZ_CHECK(p.items[i].alert_text != NULL, "observation %zu has no alert", i);
    }
    qsort(res->ids, res->n, sizeof *res->ids, cmp_alert_ids);
    memhist_free(mh);
    pipe_free(&p);
}

static void pipeline_twice(const fuzz_env *env, const char *b64, size_t b64len, const char *body,
                           size_t body_len)
{
    pipe_result with = {0}, without = {0}, own = {0};
    run_pipeline(env, 3, b64, b64len, body, body_len, &with);
    run_pipeline(env, 0, b64, b64len, body, body_len, &without);
    run_pipeline(env, (b64len + body_len) % 2 ? 1 : 2, b64, b64len, body, body_len, &own);
    FUZZ_CHECK(own.n == without.n,
               "%zu observations with the per-rule or searched prefilter, %zu without", own.n,
               without.n);
    for (size_t i = 0; i < own.n; i++)
        FUZZ_CHECK(strcmp(own.ids[i], without.ids[i]) == 0,
                   "each rule's prefilter changed observation %zu (%s vs %s)", i, own.ids[i],
                   without.ids[i]);
    free(own.ids);
    FUZZ_CHECK(with.n == without.n, "%zu observations with the prefilter, %zu without", with.n,
               without.n);
    for (size_t i = 0; i < with.n; i++)
        FUZZ_CHECK(strcmp(with.ids[i], without.ids[i]) == 0,
                   "the prefilter changed observation %zu (%s vs %s)", i, with.ids[i],
                   without.ids[i]);
    free(with.ids);
    free(without.ids);
}

/* Strict base64 one character at a time: 1 and the bytes when in[0..len)
 * is valid (padded, '=' only at the end, zero padding bits), else 0. */
static int b64_reference(const char *in, size_t len, unsigned char *out, size_t *outlen)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    if (len % 4) return 0;
    size_t o = 0;
    for (size_t i = 0; i < len; i += 4) {
        unsigned v[4], pad = 0;
        for (size_t k = 0; k < 4; k++) {
            char c = in[i + k];
            const char *at = c ? strchr(alphabet, c) : NULL;
            if (c == '=' && i + 4 == len && k >= 2 && (k == 3 || in[i + 3] == '=')) {
                v[k] = 0;
                pad++;
            } else if (at && !pad) {
                v[k] = (unsigned)(at - alphabet);
            } else {
                return 0;
            }
        }
        unsigned x = v[0] << 18 | v[1] << 12 | v[2] << 6 | v[3];
        if ((pad == 1 && (v[2] & 3)) || (pad == 2 && (v[1] & 15))) return 0;
        out[o++] = (unsigned char)(x >> 16);
        if (pad < 2) out[o++] = (unsigned char)(x >> 8);
        if (pad < 1) out[o++] = (unsigned char)x;
    }
    *outlen = o;
    return 1;
}

static void b64_against_reference(const char *b64, size_t len)
{
    size_t cap = b64_decoded_max(len) + 1;
    unsigned char *a = malloc(cap), *b = malloc(cap);
    FUZZ_CHECK(a && b, "out of memory");
    size_t alen = 0, blen = 0;
    nt_err err;
    int ok = b64_decode(b64, len, a, cap, &alen, &err) == NT_OK;
    int ref = b64_reference(b64, len, b, &blen);
    FUZZ_CHECK(ok == ref, "b64_decode says %s, the reference %s", ok ? "valid" : "invalid",
               ref ? "valid" : "invalid");
    FUZZ_CHECK(!ok || (alen == blen && memcmp(a, b, alen) == 0), "b64_decode's bytes differ");
    free(a);
    free(b);
}

/* Every rule's prefilter verdict on a unit, each rule's own against the
 * shared table's one call (kql_prefilter_all with the exact-literal pass
 * forced on, so its dispatch runs whatever the number of literals), with
 * the AVX2 pass where the CPU has it and with the portable one; and every
 * literal the call looked at is remembered as found exactly when memmem
 * finds it. */
static void prefilter_verdicts(const fuzz_env *env, const char *text, size_t len)
{
    size_t n = env->rs->n;
    const kql_query **qs = calloc(n + 1, sizeof *qs);
    FUZZ_CHECK(qs != NULL, "out of memory");
    for (size_t i = 0; i < n; i++)
        qs[i] = env->rs->rules[i]->query;
    for (int portable = 0; portable < 2; portable++) {
        kql_pfshare *share = kql_pfshare_new(qs, n, 2 | (portable ? KQL_PF_PORTABLE : 0));
        FUZZ_CHECK(share != NULL, "kql_pfshare_new failed");
        size_t nl = kql_pfshare_nlits(share);
        unsigned char *memo = malloc(nl + 1), *may = malloc(n + 1);
        FUZZ_CHECK(memo != NULL && may != NULL, "out of memory");
        kql_pfrec rec = {.memo = memo};
        int any = kql_prefilter_all(share, &rec, text, len, may), own_any = 0;
        for (size_t i = 0; i < n; i++) {
            int own = kql_prefilter(qs[i], text, len);
            FUZZ_CHECK(may[i] == own, "rule %zu: prefilter %d alone, %d dispatched (portable %d)",
                       i, own, may[i], portable);
            own_any |= own;
        }
        FUZZ_CHECK(any == own_any, "kql_prefilter_all said %d, the rules %d", any, own_any);
        for (size_t li = 0; li < nl && text && len; li++) {
            size_t ln;
            const char *l = kql_pfshare_lit(share, li, &ln);
            if (!memo[li]) continue; /* not looked at */
            int in = memmem(text, len, l, ln) != NULL;
            FUZZ_CHECK(memo[li] == (in ? 1 : 2),
                       "literal %zu remembered %d, memmem %d (portable %d)", li, memo[li], in,
                       portable);
        }
        free(memo);
        free(may);
        kql_pfshare_free(share);
    }
    free(qs);
}

static void record_b64(const fuzz_env *env, const char *b64, size_t len)
{
    b64_against_reference(b64, len);
    dec_buf scratch;
    dec_buf_init(&scratch);
    for (size_t index = 0; index < 2; index++) { /* twice: grown buffers are reused */
        rec_walk w = {.index = index};
        dec_info info;
        memset(&info, 0xa5, sizeof info); /* dec_record must fill all of it */
        nt_err err;
        nt_status st = dec_record(b64, len, index, &scratch, rec_on_unit, &w, &info, &err);
        if (st != NT_OK) {
            check_error(st, &err, "dec_record");
        } else {
            FUZZ_CHECK(info.units == w.units, "info.units %zu, %zu calls", info.units, w.units);
            FUZZ_CHECK(info.decoded_bytes <= b64_decoded_max(len), "decoded %zu from %zu",
                       info.decoded_bytes, len);
            FUZZ_CHECK(info.decoded_bytes <= scratch.max_record, "decoded %zu", info.decoded_bytes);
            FUZZ_CHECK(info.inflated_bytes <= scratch.max_inflate, "inflated %zu",
                       info.inflated_bytes);
            FUZZ_CHECK(!info.control || w.units == 0, "a control message with units");
        }
    }
    dec_buf_free(&scratch);
    pipeline_twice(env, b64, len, NULL, 0);
}

void fuzz_record(const fuzz_env *env, const uint8_t *data, size_t size)
{
    if (size == 0) return;
    unsigned mode = data[0] % 5;
    data++;
    size--;
    /* The structure scan takes an AVX2 path where the CPU has it: it must
     * agree with the portable one on any bytes. */
    FUZZ_CHECK(nt_json_structure_ok((const char *)data, size) ==
                   nt_json_structure_ok_portable((const char *)data, size),
               "nt_json_structure_ok and nt_json_structure_ok_portable disagree");
    switch (mode) {
    case 0:
        record_b64(env, (const char *)data, size);
        break;
    case 1:
    case 2: {
        size_t zlen = 0, blen = 0;
        unsigned char *z = mode == 2 ? gzip_bytes(data, size, &zlen) : NULL;
        FUZZ_CHECK(mode == 1 || z != NULL, "gzip failed");
        char *b64 = mode == 2 ? base64_of(z, zlen, &blen) : base64_of(data, size, &blen);
        FUZZ_CHECK(b64 != NULL, "base64 failed");
        record_b64(env, b64, blen);
        free(b64);
        free(z);
        break;
    }
    case 3: {
        rec_walk w = {0};
        split_unit((const char *)data, size, &w);
        pipeline_twice(env, NULL, 0, (const char *)data, size);
        prefilter_verdicts(env, (const char *)data, size);
        break;
    }
    default: {
        unsigned char *out = NULL;
        size_t outlen = 0;
        nt_err err;
        nt_status st = dec_body_inflate(data, size, FUZZ_BODY_INFLATE_MAX, &out, &outlen, &err);
        if (st == NT_OK) {
            FUZZ_CHECK(out != NULL && out[outlen] == 0, "inflated body is not NUL-terminated");
            rec_walk w = {0};
            split_unit((const char *)out, outlen, &w);
        } else {
            check_error(st, &err, "dec_body_inflate");
            FUZZ_CHECK(out == NULL, "a failed inflate left a buffer");
        }
        free(out);
        break;
    }
    }
}

/* ---- ctview ------------------------------------------------------------- */

/* strict: the event has its built-in scratch, so nothing may be dropped for
 * lack of space and asking for one value must give one when there are any. */
static void view_all_fields(const fuzz_env *env, ct_event *ev, const char *raw, size_t rlen,
                            int strict)
{
    int escapes = memchr(raw, '\\', rlen) != NULL;
    nt_value vals[NT_FIELD_MAX_VALUES];
    unsigned sum = 0;
    size_t n_fields = ct_schema_field_count(env->schema);
    for (size_t f = 0; f < n_fields; f++) {
        size_t n = ct_view_get(ev, (int)f, vals, NT_FIELD_MAX_VALUES);
        FUZZ_CHECK(n <= NT_FIELD_MAX_VALUES, "%zu values", n);
        int verbatim = ct_schema_verbatim(env->schema, (int)f);
        for (size_t i = 0; i < n; i++) {
            sum += touch_value(&vals[i]);
            if (verbatim && !escapes)
                FUZZ_CHECK(vals[i].type == NT_VAL_STRING &&
                               contains_quoted(raw, rlen, vals[i].ptr, vals[i].len),
                           "verbatim field %s has value '%.*s', not a quoted string of the record",
                           ct_schema_field_name(env->schema, (int)f), (int)vals[i].len,
                           vals[i].ptr);
        }
        /* Asking for fewer values yields a prefix of at most that many. */
        nt_value one;
        size_t n1 = ct_view_get(ev, (int)f, &one, 1);
        FUZZ_CHECK(n1 <= 1, "field %zu: %zu values of max 1", f, n1);
        if (strict)
            FUZZ_CHECK((n1 == 0) == (n == 0), "field %s: %zu of max 1, %zu of max 64",
                       ct_schema_field_name(env->schema, (int)f), n1, n);
        if (n1) sum += touch_value(&one);
    }
    for (size_t i = 0; i < FUZZ_N_FLAT; i++) {
        size_t n = ct_view_get(ev, env->flat_ids[i], vals, 3);
        FUZZ_CHECK(n <= 3, "%zu values of max 3", n);
        for (size_t j = 0; j < n; j++)
            sum += touch_value(&vals[j]);
    }
    FUZZ_CHECK(ct_view_get(ev, -1, vals, NT_FIELD_MAX_VALUES) == 0, "field -1 has values");
    FUZZ_CHECK(ct_view_get(ev, (int)n_fields, vals, NT_FIELD_MAX_VALUES) == 0,
               "an unregistered field has values");
    json_t *fields = ct_view_fields_json(ev, env->field_names, env->n_field_names);
    FUZZ_CHECK(json_is_object(fields), "ct_view_fields_json gave no object");
    char *text = json_dumps(fields, JSON_COMPACT | JSON_ENCODE_ANY);
    FUZZ_CHECK(text != NULL, "the fields do not serialise");
    free(text);
    json_decref(fields);
    const char *id = ct_event_id(ev);
    if (id) sum += (unsigned)strlen(id);
    /* any value: dates before 1970 are negative (and 1969-12-31T23:59:59.999Z is -1) */
    sum += (unsigned)ct_event_time(ev);
    (void)sum;
}

void fuzz_ctview(const fuzz_env *env, const uint8_t *data, size_t size)
{
    json_error_t je;
    json_t *record = json_loadb((const char *)data, size, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
    if (!record) return;
    nt_err why = {{0}};
    int valid = ct_record_valid(record, &why) == NT_OK;
    FUZZ_CHECK(valid || why.msg[0], "an invalid record without a reason");
    if (valid) FUZZ_CHECK(dec_is_cloudtrail(record), "valid for the view but not for decode");
    /* The view promises to cope with any object (wrong types count as
     * absent), so it is exercised on invalid records too. */
    if (json_is_object(record)) {
        ct_event ev;
        ct_event_init(&ev, env->schema, record, FUZZ_NOW);
        view_all_fields(env, &ev, (const char *)data, size, 1);
        /* Again with a scratch far too small for any derived string. */
        char tiny[24];
        ct_event_init(&ev, env->schema, record, FUZZ_NOW);
        ct_event_set_scratch(&ev, tiny, sizeof tiny);
        view_all_fields(env, &ev, (const char *)data, size, 0);
    }
    json_decref(record);
}

/* ---- kql ---------------------------------------------------------------- */

static void kql_term(void *ud, const char *field, const char *value, size_t len, int is_wildcard,
                     int line, int column)
{
    unsigned *sum = ud;
    FUZZ_CHECK(field != NULL && (value != NULL || len == 0), "term without field or value");
    FUZZ_CHECK(line >= 1 && column >= 1, "term at line %d column %d", line, column);
    *sum += (unsigned)strlen(field) + (unsigned)is_wildcard;
    for (size_t i = 0; i < len; i++)
        *sum += (unsigned char)value[i];
}

void fuzz_kql(const fuzz_env *env, const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    nt_err perr;
    char *parsed = NULL;
    nt_status pst = kql_parse_json(text, size, &parsed, &perr);
    if (pst != NT_OK) {
        check_error(pst, &perr, "kql_parse_json");
        FUZZ_CHECK(parsed == NULL, "a failed parse left a tree");
    } else {
        json_error_t je;
        json_t *tree = json_loads(parsed, JSON_ALLOW_NUL, &je);
        FUZZ_CHECK(json_is_object(tree), "kql_parse_json wrote invalid JSON: %s", je.text);
        json_decref(tree);
    }

    ct_schema *schema = ct_schema_new();
    FUZZ_CHECK(schema != NULL, "out of memory");
    nt_field_source src = ct_schema_source(schema);
    kql_query *q = NULL;
    nt_err err;
    nt_status st = kql_compile(text, size, &src, &q, &err);
    if (st != NT_OK) {
        check_error(st, &err, "kql_compile");
        FUZZ_CHECK(q == NULL, "a failed compile left a query");
        /* everything that compiles parses; only these refusals are compile-only */
        if (pst == NT_OK)
            FUZZ_CHECK(st == NT_ERR_UNSUPPORTED || st == NT_ERR_NOMEM,
                       "parses, but compile says %d: %s", (int)st, err.msg);
    } else {
        FUZZ_CHECK(pst == NT_OK, "compiles, but the parse failed: %s", perr.msg);
        char *ast = kql_ast_json(q);
        FUZZ_CHECK(ast != NULL, "no AST");
        FUZZ_CHECK(strcmp(ast, parsed) == 0, "compiled and parsed trees differ:\n%s\n%s", ast,
                   parsed);
        free(ast);
        for (size_t i = 0; i < FUZZ_N_EVENTS; i++) {
            ct_event ev;
            ct_event_init(&ev, schema, env->events[i], FUZZ_NOW);
            int m = kql_match(q, &ev);
            FUZZ_CHECK(m == 0 || m == 1, "kql_match returned %d", m);
            int pass = kql_prefilter(q, fuzz_events[i], strlen(fuzz_events[i]));
            FUZZ_CHECK(!m || pass, "event %zu matches, but the prefilter rejects it", i);
            FUZZ_CHECK(kql_match(q, &ev) == m, "kql_match is not repeatable");
        }
        int pf = kql_prefilter(q, text, size);
        FUZZ_CHECK(pf == 0 || pf == 1, "kql_prefilter returned %d", pf);
        size_t clauses = kql_prefilter_clauses(q);
        char buf[64];
        size_t full = kql_prefilter_describe(q, buf, sizeof buf);
        FUZZ_CHECK(strlen(buf) == (full < sizeof buf ? full : sizeof buf - 1),
                   "describe wrote %zu of %zu", strlen(buf), full);
        FUZZ_CHECK((full == 0) == (clauses == 0), "%zu clauses described in %zu bytes", clauses,
                   full);
        char *whole = malloc(full + 1);
        FUZZ_CHECK(whole != NULL, "out of memory");
        FUZZ_CHECK(kql_prefilter_describe(q, whole, full + 1) == full, "describe is not stable");
        FUZZ_CHECK(strlen(whole) == full, "describe wrote %zu of %zu", strlen(whole), full);
        free(whole);
        const char *const *unknown = NULL;
        size_t n_unknown = kql_unknown_fields(q, &unknown);
        /* (names are C strings: a field name holding NUL bytes is cut at the first) */
        int has_nul = memchr(text, 0, size) != NULL;
        for (size_t i = 0; i < n_unknown; i++)
            FUZZ_CHECK(unknown[i] != NULL && (has_nul || ct_schema_resolve(schema, unknown[i],
                                                                           strlen(unknown[i])) < 0),
                       "unknown field '%s' resolves", unknown[i]);
        unsigned sum = 0;
        kql_visit_terms(q, kql_term, &sum);
        (void)sum;
        kql_free(q);
    }
    free(parsed);
    ct_schema_free(schema);
}

/* ---- toml --------------------------------------------------------------- */

void fuzz_toml(const fuzz_env *env, const uint8_t *data, size_t size)
{
    (void)env;
    const char *text = (const char *)data;
    json_t *doc = NULL;
    nt_err err;
    nt_status st = toml_parse(text, size, &doc, &err);
    if (st != NT_OK) {
        check_error(st, &err, "toml_parse");
        FUZZ_CHECK(doc == NULL, "a failed parse left a document");
        return;
    }
    FUZZ_CHECK(json_is_object(doc), "toml_parse gave no object");
    char *dumped = json_dumps(doc, JSON_COMPACT);
    FUZZ_CHECK(dumped != NULL, "the document does not serialise");
    free(dumped);
    json_decref(doc);

    ct_schema *schema = ct_schema_new();
    FUZZ_CHECK(schema != NULL, "out of memory");
    nt_rule *r = NULL;
    st = rule_load("fuzz.toml", text, size, schema, &r, &err);
    if (st != NT_OK) {
        FUZZ_CHECK(r == NULL, "a failed load left a rule");
        FUZZ_CHECK(err.msg[0] != 0, "rule_load failed without a message");
    } else {
        /* new_terms rules have 1..RULE_MAX_TERMS fields and a history window
         * longer than the look-back; threshold rules 0..RULE_MAX_TERMS group-by
         * fields and query rules none, both with a window equal to the look-back. */
        if (r->type == RULE_NEW_TERMS) {
            FUZZ_CHECK(r->n_terms >= 1 && r->n_terms <= RULE_MAX_TERMS, "%zu terms", r->n_terms);
            FUZZ_CHECK(r->window_ms > r->lookback_ms, "window not longer than lookback");
        } else {
            FUZZ_CHECK(r->n_terms <= (r->type == RULE_THRESHOLD ? RULE_MAX_TERMS : 0),
                       "%zu terms on a %s rule", r->n_terms, rule_type_name(r->type));
            FUZZ_CHECK(r->window_ms == r->lookback_ms, "window differs from the look-back");
        }
        FUZZ_CHECK(r->query != NULL && r->rule_id && r->name, "rule without query, id or name");
        json_t *j = rule_to_json(r);
        FUZZ_CHECK(j != NULL, "rule_to_json gave nothing");
        char *s = json_dumps(j, JSON_COMPACT);
        FUZZ_CHECK(s != NULL, "the rule does not serialise");
        free(s);
        json_decref(j);
        rule_free(r);
    }
    ct_schema_free(schema);
}

/* ---- exception ---------------------------------------------------------- */

static void exc_check_item(const fuzz_env *env, const exc_item *it, ct_schema *schema)
{
    static const char *const rule_ids[] = {NULL, "444c8fad-874f-4f59-b0ea-cf26cea478bd", "r1"};
    const json_t *doc = exc_item_json(it);
    FUZZ_CHECK(json_is_object(doc), "an item without its document");
    const char *id = exc_item_id(it);
    if (id) FUZZ_CHECK(strlen(id) <= EXC_MAX_ID, "id of %zu bytes", strlen(id));
    nt_time_ms exp = exc_item_expire_time(it);
    FUZZ_CHECK(exp >= -1, "expire_time %lld", (long long)exp);
    const nt_time_ms nows[] = {0, FUZZ_NOW, exp > 0 ? exp - 1 : 1, exp > 0 ? exp : 2, INT64_MAX};
    for (size_t e = 0; e < FUZZ_N_EVENTS; e++) {
        ct_event ev;
        ct_event_init(&ev, schema, env->events[e], FUZZ_NOW);
        for (size_t r = 0; r < sizeof rule_ids / sizeof rule_ids[0]; r++)
            for (size_t n = 0; n < sizeof nows / sizeof nows[0]; n++) {
                int m = exc_item_match(it, rule_ids[r], &ev, nows[n]);
                FUZZ_CHECK(m == 0 || m == 1, "exc_item_match returned %d", m);
                if (exp >= 0 && nows[n] >= exp)
                    FUZZ_CHECK(!m, "an item that expired at %lld matches at %lld", (long long)exp,
                               (long long)nows[n]);
                if (rule_ids[r] == NULL && exc_item_rule_id(it))
                    FUZZ_CHECK(!m, "a rule-scoped item matches a NULL rule id");
            }
    }
}

void fuzz_exception(const fuzz_env *env, const uint8_t *data, size_t size)
{
    json_error_t je;
    json_t *doc = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &je);
    if (!doc) return;
    ct_schema *schema = ct_schema_new();
    FUZZ_CHECK(schema != NULL, "out of memory");
    nt_field_source src = ct_schema_source(schema);
    exc_item *it = NULL;
    nt_err err;
    nt_status st = exc_item_parse(doc, &src, &it, &err);
    if (st != NT_OK) {
        check_error(st, &err, "exc_item_parse");
        FUZZ_CHECK(it == NULL, "a failed parse left an item");
    } else {
        exc_check_item(env, it, schema);
        /* A validated document validates again, to the same scope and expiry. */
        json_t *copy = json_deep_copy(exc_item_json(it));
        exc_item *again = NULL;
        nt_err err2;
        nt_status st2 = exc_item_parse(copy, &src, &again, &err2);
        FUZZ_CHECK(st2 == NT_OK, "its own document is refused: %s", err2.msg);
        FUZZ_CHECK(exc_item_expire_time(again) == exc_item_expire_time(it), "expiry changed");
        const char *r1 = exc_item_rule_id(it), *r2 = exc_item_rule_id(again);
        FUZZ_CHECK((!r1 && !r2) || (r1 && r2 && strcmp(r1, r2) == 0), "rule_id changed");
        for (size_t e = 0; e < FUZZ_N_EVENTS; e++) {
            ct_event ev;
            ct_event_init(&ev, schema, env->events[e], FUZZ_NOW);
            FUZZ_CHECK(exc_item_match(it, r1, &ev, FUZZ_NOW) ==
                           exc_item_match(again, r1, &ev, FUZZ_NOW),
                       "the item and its re-validated document disagree on event %zu", e);
        }
        exc_item_free(again);
        json_decref(copy);
        exc_item_free(it);
    }
    if (json_is_array(doc)) {
        exc_set *set = exc_set_from_json(doc, &src, NULL, NULL);
        FUZZ_CHECK(set != NULL, "exc_set_from_json gave nothing");
        FUZZ_CHECK(exc_set_count(set) <= json_array_size(doc), "%zu items from %zu",
                   exc_set_count(set), json_array_size(doc));
        for (size_t i = 0; i < exc_set_count(set); i++)
            exc_check_item(env, exc_set_item(set, i), schema);
        FUZZ_CHECK(exc_set_item(set, exc_set_count(set)) == NULL, "an item past the end");
        for (size_t e = 0; e < FUZZ_N_EVENTS; e++) {
            ct_event ev;
            ct_event_init(&ev, schema, env->events[e], FUZZ_NOW);
            const exc_item *m = exc_set_match(set, "r1", &ev, FUZZ_NOW);
            if (m) FUZZ_CHECK(exc_item_match(m, "r1", &ev, FUZZ_NOW), "set and item disagree");
        }
        exc_set *ref = exc_set_ref(set);
        exc_set_unref(ref);
        exc_set_unref(set);
    }
    ct_schema_free(schema);
    json_decref(doc);
}

/* ---- table -------------------------------------------------------------- */

const fuzz_target fuzz_targets[] = {
    {"firehose", fuzz_firehose}, {"record", fuzz_record},
    {"ctview", fuzz_ctview},     {"kql", fuzz_kql},
    {"toml", fuzz_toml},         {"exception", fuzz_exception},
    {"jfast", fuzz_jfast},       {NULL, NULL},
};

const fuzz_target *fuzz_target_find(const char *name)
{
    for (const fuzz_target *t = fuzz_targets; t->name; t++)
        if (strcmp(t->name, name) == 0) return t;
    return NULL;
}

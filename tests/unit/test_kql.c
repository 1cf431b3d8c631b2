/*
 * Unit tests for kql.c.
 *
 * (a) Kibana conformance: every case of tests/data/kql/kibana_kql_cases.json
 *     is parsed; valid ones must give Kibana's tree (our JSON is turned into
 *     the file's is(…)/and(…) notation), invalid ones must fail with peggy's
 *     message at the right place. Each case is also compiled: it must either
 *     compile to the same tree, or be refused as unsupported for a stated
 *     reason (free text, field wildcards, null, …).
 * (b) Evaluation table tests/data/kql/eval_cases.json: query × JSON doc → 0/1,
 *     through a field source that reads JSON documents by dotted path.
 * (c) Prefilter property: it never says 0 for a record that matches.
 * (d) Error messages with line and column for malformed queries.
 * (e) Every truncation and many mutations of the seed rule query are handled.
 * Plus unknown fields, term visits, limits and "kql_match allocates nothing".
 */
#include "kql.h"
#include "testutil.h"

#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DATA NT_TEST_DATA "/kql/"

/* ---------------------------------------------------- test field source */

/* Resolves any name (names starting with "unknown." resolve to -1 when
 * asked); get() walks a jansson document by dotted path, through flattened
 * keys ("a.b" as one key) and arrays; every field is verbatim except the
 * names in `typed`, which some docs hold as numbers or booleans. */
typedef struct doc_src {
    char *names[256];
    size_t n;
    const json_t *typed; /* array of names, may be NULL */
    int unknown_prefix;
    char num[NT_FIELD_MAX_VALUES][40]; /* number texts of the last get() */
    size_t nnum;
} doc_src;

static int src_resolve(void *ctx, const char *name, size_t len)
{
    doc_src *s = ctx;
    if (s->unknown_prefix && len >= 8 && memcmp(name, "unknown.", 8) == 0) return -1;
    for (size_t i = 0; i < s->n; i++)
        if (strlen(s->names[i]) == len && memcmp(s->names[i], name, len) == 0) return (int)i;
    if (s->n == 256) return -1;
    s->names[s->n] = strndup(name, len);
    return (int)s->n++;
}

static void add_leaf(doc_src *s, const json_t *v, nt_value *out, size_t max, size_t *n)
{
    if (*n >= max) return;
    if (json_is_array(v)) {
        size_t i;
        const json_t *e;
        json_array_foreach(v, i, e) add_leaf(s, e, out, max, n);
        return;
    }
    if (json_is_string(v)) {
        out[(*n)++] = (nt_value){json_string_value(v), json_string_length(v), NT_VAL_STRING};
    } else if (json_is_boolean(v)) {
        const char *t = json_is_true(v) ? "true" : "false";
        out[(*n)++] = (nt_value){t, strlen(t), NT_VAL_BOOL};
    } else if (json_is_number(v) && s->nnum < NT_FIELD_MAX_VALUES) {
        char *b = s->num[s->nnum++];
        if (json_is_integer(v))
            snprintf(b, 40, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        else
            snprintf(b, 40, "%.17g", json_real_value(v));
        out[(*n)++] = (nt_value){b, strlen(b), NT_VAL_NUMBER};
    }
}

static void collect(doc_src *s, const json_t *node, const char *path, size_t plen, nt_value *out,
                    size_t max, size_t *n)
{
    if (plen == 0) {
        add_leaf(s, node, out, max, n);
        return;
    }
    if (json_is_array(node)) {
        size_t i;
        const json_t *e;
        json_array_foreach(node, i, e) collect(s, e, path, plen, out, max, n);
        return;
    }
    if (!json_is_object(node)) return;
    for (size_t k = 1; k <= plen; k++) {
        if (k < plen && path[k] != '.') continue;
        const json_t *child = json_object_getn(node, path, k);
        if (child) {
            size_t skip = k < plen ? k + 1 : k;
            collect(s, child, path + skip, plen - skip, out, max, n);
        }
    }
}

static size_t src_get(void *ctx, void *event, int field, nt_value *out, size_t max)
{
    doc_src *s = ctx;
    size_t n = 0;
    s->nnum = 0;
    if (field < 0 || (size_t)field >= s->n) return 0;
    collect(s, event, s->names[field], strlen(s->names[field]), out, max, &n);
    return n;
}

static int src_verbatim(void *ctx, int field)
{
    doc_src *s = ctx;
    size_t i;
    const json_t *t;
    json_array_foreach(s->typed, i,
                       t) if (strcmp(json_string_value(t), s->names[field]) == 0) return 0;
    return 1;
}

static nt_field_source source_of(doc_src *s)
{
    return (nt_field_source){s, src_resolve, src_get, src_verbatim, NULL};
}

static void src_done(doc_src *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->names[i]);
    s->n = 0;
}

/* ------------------------------------------------ (a) Kibana conformance */

/* A JSON string as Python's json.dumps writes it (ensure_ascii), which is
 * how the case file prints strings inside its notation. */
static void py_string(FILE *o, const char *s, size_t n)
{
    fputc('"', o);
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        size_t k = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
        unsigned cp = k == 1 ? c : c & (k == 2 ? 0x1Fu : k == 3 ? 0x0Fu : 0x07u);
        for (size_t j = 1; j < k && i + j < n; j++)
            cp = cp << 6 | ((unsigned char)s[i + j] & 0x3Fu);
        i += k;
        if (cp == '"')
            fputs("\\\"", o);
        else if (cp == '\\')
            fputs("\\\\", o);
        else if (cp == '\n')
            fputs("\\n", o);
        else if (cp == '\r')
            fputs("\\r", o);
        else if (cp == '\t')
            fputs("\\t", o);
        else if (cp == '\b')
            fputs("\\b", o);
        else if (cp == '\f')
            fputs("\\f", o);
        else if (cp >= 0x20 && cp < 0x7F)
            fputc((int)cp, o);
        else if (cp > 0xFFFF)
            fprintf(o, "\\u%04x\\u%04x", 0xD800 + ((cp - 0x10000) >> 10), 0xDC00 + (cp & 0x3FF));
        else
            fprintf(o, "\\u%04x", cp);
    }
    fputc('"', o);
}

static void notation(FILE *o, const json_t *n)
{
    const char *type = json_string_value(json_object_get(n, "type"));
    if (json_is_string(n)) { /* range operator */
        fputs(json_string_value(n), o);
    } else if (type && strcmp(type, "literal") == 0) {
        const json_t *v = json_object_get(n, "value");
        if (json_is_null(v))
            fputs("null", o);
        else if (json_is_boolean(v))
            fputs(json_is_true(v) ? "bool:true" : "bool:false", o);
        else {
            fputc(json_is_true(json_object_get(n, "isQuoted")) ? 'q' : 'u', o);
            py_string(o, json_string_value(v), json_string_length(v));
        }
    } else if (type && strcmp(type, "wildcard") == 0) {
        const char *v = json_string_value(json_object_get(n, "value"));
        char *plain = malloc(strlen(v) + 1);
        size_t k = 0;
        for (const char *p = v; *p;) {
            if (strncmp(p, "@kuery-wildcard@", 16) == 0)
                plain[k++] = '*', p += 16;
            else
                plain[k++] = *p++;
        }
        fputc('w', o);
        py_string(o, plain, k);
        free(plain);
    } else {
        const json_t *args = json_object_get(n, "arguments");
        size_t i;
        const json_t *a;
        fprintf(o, "%s(", json_string_value(json_object_get(n, "function")));
        json_array_foreach(args, i, a)
        {
            if (i) fputs(", ", o);
            notation(o, a);
        }
        fputc(')', o);
    }
}

/* The case file's notation for our tree JSON; caller frees. */
static char *to_notation(const char *json)
{
    json_error_t jerr;
    json_t *j = json_loads(json, JSON_ALLOW_NUL, &jerr);
    if (!j) return strdup("<invalid JSON>");
    char *out = NULL;
    size_t len = 0;
    FILE *o = open_memstream(&out, &len);
    notation(o, j);
    fclose(o);
    json_decref(j);
    return out;
}

/* Whether kql_compile must refuse a valid query: it uses free text, a field
 * wildcard (other than the match-all *:*), null as a value, or a wildcard
 * range bound. Read off the notation. */
static int needs_unsupported(const char *ast)
{
    char *s = strdup(ast);
    char *p;
    while ((p = strstr(s, "is(w\"*\", w\"*\")")) != NULL)
        memset(p, '_', 14);
    int r = strstr(s, "is(null, ") || strstr(s, "is(w\"") || strstr(s, "range(w\"") ||
            strstr(s, ", null)") || (strstr(s, "range(") && strstr(s, ", w\"")) ||
            strstr(s, ", u\"now");
    free(s);
    return r;
}

/* peggy's message in our words: "Expected …" → "expected …", fieldName →
 * field name, no final period. */
static void normalise_peggy(const char *in, char *out, size_t cap)
{
    size_t o = 0;
    for (const char *p = in; *p && o + 12 < cap;) {
        if (strncmp(p, "fieldName", 9) == 0) {
            memcpy(out + o, "field name", 10);
            o += 10;
            p += 9;
        } else {
            out[o++] = *p++;
        }
    }
    if (o && out[o - 1] == '.') o--;
    out[o] = 0;
    if (out[0] == 'E') out[0] = 'e';
}

/* Runs one case; returns 1 when it passes, else writes why. */
static int kibana_case_passes(const json_t *c, char *why, size_t cap)
{
    const char *query = json_string_value(json_object_get(c, "query"));
    size_t qlen = json_string_length(json_object_get(c, "query"));
    int valid = json_is_true(json_object_get(c, "valid"));
    const char *want_ast = json_string_value(json_object_get(c, "ast"));
    const char *peggy = json_string_value(json_object_get(c, "peggy_error"));
    int has_options = json_object_get(c, "options") != NULL;
    char *json = NULL, *got = NULL;
    nt_err err = {{0}};
    int ok = 0;
    doc_src s = {0};
    nt_field_source src = source_of(&s);
    kql_query *q = NULL;

    nt_status st = kql_parse_json(query, qlen, &json, &err);
    if (has_options) {
        /* The only such case is allowLeadingWildcards=false; we always allow
         * leading wildcards, as the detection engine does. */
        if (st != NT_OK)
            snprintf(why, cap, "should parse with leading wildcards: %s", err.msg);
        else
            ok = 1;
        goto done;
    }
    if (valid) {
        if (st != NT_OK) {
            snprintf(why, cap, "parse failed: %s", err.msg);
            goto done;
        }
        got = to_notation(json);
        if (strcmp(got, want_ast) != 0) {
            snprintf(why, cap, "tree %s, want %s", got, want_ast);
            goto done;
        }
        nt_err cerr = {{0}};
        nt_status cst = kql_compile(query, qlen, &src, &q, &cerr);
        int want_unsup = needs_unsupported(want_ast);
        if (want_unsup && cst != NT_ERR_UNSUPPORTED) {
            snprintf(why, cap, "compile gave %s, want unsupported", nt_status_name(cst));
            goto done;
        }
        if (!want_unsup) {
            if (cst != NT_OK) {
                snprintf(why, cap, "compile failed: %s", cerr.msg);
                goto done;
            }
            char *cj = kql_ast_json(q);
            int same = cj && strcmp(cj, json) == 0;
            free(cj);
            if (!same) {
                snprintf(why, cap, "compiled tree differs from parsed tree");
                goto done;
            }
        }
        ok = 1;
        goto done;
    }
    if (st != NT_ERR_PARSE) {
        snprintf(why, cap, "should fail to parse, got %s", nt_status_name(st));
        goto done;
    }
    const char *msg = strstr(err.msg, ": ");
    if (strncmp(err.msg, "line ", 5) != 0 || !msg) {
        snprintf(why, cap, "message without line/column: %s", err.msg);
        goto done;
    }
    if (peggy) {
        char want[256];
        normalise_peggy(peggy, want, sizeof want);
        if (strcmp(msg + 2, want) != 0) {
            snprintf(why, cap, "message '%s', want '%s'", msg + 2, want);
            goto done;
        }
    }
    nt_err cerr = {{0}};
    if (kql_compile(query, qlen, &src, &q, &cerr) != NT_ERR_PARSE ||
        strcmp(cerr.msg, err.msg) != 0) {
        snprintf(why, cap, "kql_compile disagrees with kql_parse_json: %s", cerr.msg);
        goto done;
    }
    ok = 1;
done:
    kql_free(q);
    src_done(&s);
    free(json);
    free(got);
    return ok;
}

START_TEST(every_kibana_case_parses_like_kibana)
{
    json_t *cases = tu_load_json(DATA "kibana_kql_cases.json", JSON_ALLOW_NUL);
    char why[1024] = "";
    const json_t *c = json_array_get(cases, (size_t)_i);
    int ok = kibana_case_passes(c, why, sizeof why);
    ck_assert_msg(ok, "case %d (%s): %s", _i, json_string_value(json_object_get(c, "query")), why);
    json_decref(cases);
}
END_TEST

START_TEST(every_aws_rule_query_compiles)
{
    json_t *rules = tu_load_json(DATA "aws_rule_queries.json", JSON_ALLOW_NUL);
    const json_t *r = json_array_get(rules, (size_t)_i);
    const json_t *qt = json_object_get(r, "query");
    doc_src s = {0};
    nt_field_source src = source_of(&s);
    kql_query *q = NULL;
    nt_err err = {{0}};
    nt_status st = kql_compile(json_string_value(qt), json_string_length(qt), &src, &q, &err);
    ck_assert_msg(st == NT_OK, "%s: %s", json_string_value(json_object_get(r, "file")), err.msg);
    json_t *empty = json_object();
    kql_match(q, empty); /* evaluates without a crash on an empty document */
    json_decref(empty);
    kql_free(q);
    src_done(&s);
    json_decref(rules);
}
END_TEST

/* ------------------------------------------------- (b) evaluation table */

typedef struct eval_row {
    json_t *table; /* owns everything below */
    const json_t *row;
    const char *name;
    char *query;
    size_t qlen;
    const json_t *doc;
    int want;
} eval_row;

static void eval_row_load(int i, eval_row *r)
{
    r->table = tu_load_json(DATA "eval_cases.json", JSON_ALLOW_NUL);
    r->row = json_array_get(json_object_get(r->table, "cases"), (size_t)i);
    ck_assert_ptr_nonnull(r->row);
    r->name = json_string_value(json_object_get(r->row, "name"));
    const json_t *file = json_object_get(r->row, "query_file");
    if (file) {
        char path[512];
        snprintf(path, sizeof path, DATA "%s", json_string_value(file));
        r->query = tu_read_file(path, &r->qlen);
    } else {
        const json_t *qt = json_object_get(r->row, "query");
        r->qlen = json_string_length(qt);
        r->query = malloc(r->qlen + 1);
        memcpy(r->query, json_string_value(qt), r->qlen + 1);
    }
    r->doc = json_object_get(r->row, "doc");
    r->want = (int)json_integer_value(json_object_get(r->row, "match"));
}

static void eval_row_free(eval_row *r)
{
    free(r->query);
    json_decref(r->table);
}

static kql_query *compile_row(const eval_row *r, doc_src *s)
{
    s->typed = json_object_get(r->table, "typed_fields");
    nt_field_source src = source_of(s);
    kql_query *q = NULL;
    nt_err err = {{0}};
    nt_status st = kql_compile(r->query, r->qlen, &src, &q, &err);
    ck_assert_msg(st == NT_OK, "%s: %s", r->name, err.msg);
    return q;
}

START_TEST(evaluation_table_matches_expected)
{
    eval_row r;
    doc_src s = {0};
    eval_row_load(_i, &r);
    kql_query *q = compile_row(&r, &s);
    int got = kql_match(q, (void *)r.doc);
    ck_assert_msg(got == r.want, "%s: query %s gave %d, want %d", r.name, r.query, got, r.want);
    kql_free(q);
    src_done(&s);
    eval_row_free(&r);
}
END_TEST

/* ------------------------------------------------ (c) prefilter property */

/* The same JSON with every lower-case letter inside strings written as a
 * \u escape: still the same document, but no literal is visible verbatim. */
static char *escape_letters(const char *json)
{
    size_t n = strlen(json);
    char *out = malloc(6 * n + 1);
    size_t o = 0;
    int in_string = 0;
    for (size_t i = 0; i < n; i++) {
        char c = json[i];
        if (in_string && c == '\\') {
            out[o++] = c;
            out[o++] = json[++i];
            continue;
        }
        if (c == '"') in_string = !in_string;
        if (in_string && c >= 'a' && c <= 'z')
            o += (size_t)sprintf(out + o, "\\u%04x", c);
        else
            out[o++] = c;
    }
    out[o] = 0;
    return out;
}

START_TEST(prefilter_never_rejects_a_matching_record)
{
    static const size_t flags[] = {JSON_COMPACT, JSON_INDENT(2) | JSON_SORT_KEYS,
                                   JSON_COMPACT | JSON_ENSURE_ASCII,
                                   JSON_COMPACT | JSON_ESCAPE_SLASH};
    eval_row r;
    doc_src s = {0};
    eval_row_load(_i, &r);
    kql_query *q = compile_row(&r, &s);
    int matches = kql_match(q, (void *)r.doc);
    for (size_t f = 0; f < sizeof flags / sizeof flags[0]; f++) {
        char *raw = json_dumps(r.doc, flags[f] | JSON_ENCODE_ANY);
        ck_assert_ptr_nonnull(raw);
        int pass = kql_prefilter(q, raw, strlen(raw));
        ck_assert_msg(pass || !matches, "%s: prefilter rejected matching record %s", r.name, raw);
        char *hidden = escape_letters(raw);
        pass = kql_prefilter(q, hidden, strlen(hidden));
        ck_assert_msg(pass || !matches, "%s: prefilter rejected escaped record %s", r.name, hidden);
        free(hidden);
        free(raw);
    }
    kql_free(q);
    src_done(&s);
    eval_row_free(&r);
}
END_TEST

static kql_query *compile_seed(doc_src *s, json_t **table)
{
    *table = tu_load_json(DATA "eval_cases.json", JSON_ALLOW_NUL);
    s->typed = json_object_get(*table, "typed_fields");
    size_t len;
    char *text = tu_read_file(DATA "seed_query.kql", &len);
    nt_field_source src = source_of(s);
    kql_query *q = NULL;
    nt_err err = {{0}};
    ck_assert_int_eq(kql_compile(text, len, &src, &q, &err), NT_OK);
    free(text);
    return q;
}

START_TEST(prefilter_of_the_seed_rule_has_three_clauses_most_selective_first)
{
    doc_src s = {0};
    json_t *table;
    kql_query *q = compile_seed(&s, &table);
    char buf[512];
    size_t n = kql_prefilter_describe(q, buf, sizeof buf);
    ck_assert_str_eq(buf, "(\"organizations.amazonaws.com\" OR \"iam.amazonaws.com\") AND "
                          "\"aws.cloudtrail\" AND \"success\"");
    ck_assert_uint_eq(n, strlen(buf));
    ck_assert_uint_eq(kql_prefilter_clauses(q), 3);
    char small[8];
    ck_assert_uint_eq(kql_prefilter_describe(q, small, sizeof small), n);
    ck_assert_str_eq(small, "(\"organ");
    kql_free(q);
    src_done(&s);
    json_decref(table);
}
END_TEST

static const struct {
    const char *raw;
    int want;
} seed_raw[] = {
    /* an unrelated record: a GuardDuty finding */
    {"{\"data_stream\":{\"dataset\":\"aws.guardduty\"},\"event\":{\"outcome\":\"success\"}}", 0},
    /* right dataset and outcome, but neither provider */
    {"{\"data_stream\":{\"dataset\":\"aws.cloudtrail\"},\"event\":{\"outcome\":\"success\","
     "\"provider\":\"s3.amazonaws.com\"}}",
     0},
    /* provider appears only without its quotes */
    {"{\"data_stream\":{\"dataset\":\"aws.cloudtrail\"},\"event\":{\"outcome\":\"success\"},"
     "\"note\":\"see iam.amazonaws.com docs\"}",
     0},
    /* the same unrelated record, but with a \u escape somewhere: must pass */
    {"{\"data_stream\":{\"dataset\":\"aws.guardduty\"},\"x\":\"caf\\u00e9\"}", 1},
    /* every clause present, but no action of the iam branch: the query's
     * structure, (organizations and its actions) or (iam and its actions),
     * rules it out (an iam GetRole record is never parsed) */
    {"{\"data_stream\":{\"dataset\":\"aws.cloudtrail\"},\"event\":{\"outcome\":\"success\","
     "\"provider\":\"iam.amazonaws.com\",\"action\":\"GetRole\"}}",
     0},
    /* the iam provider with an iam action */
    {"{\"data_stream\":{\"dataset\":\"aws.cloudtrail\"},\"event\":{\"outcome\":\"success\","
     "\"provider\":\"iam.amazonaws.com\",\"action\":\"GetAccountSummary\"}}",
     1},
    /* an organizations action beside the iam provider: the branches cross,
     * which the clauses alone could not tell from a match */
    {"{\"data_stream\":{\"dataset\":\"aws.cloudtrail\"},\"event\":{\"outcome\":\"success\","
     "\"provider\":\"iam.amazonaws.com\",\"action\":\"ListAccounts\"}}",
     0},
    {"", 0},
};

START_TEST(prefilter_rejects_unrelated_records_and_passes_escaped_ones)
{
    doc_src s = {0};
    json_t *table;
    kql_query *q = compile_seed(&s, &table);
    const char *raw = seed_raw[_i].raw;
    ck_assert_int_eq(kql_prefilter(q, raw, strlen(raw)), seed_raw[_i].want);
    kql_free(q);
    src_done(&s);
    json_decref(table);
}
END_TEST

static const struct {
    const char *query;
    const char *describe;
} prefilter_shapes[] = {
    {"a: \"x\"", "\"x\""},
    {"a: x*", "\"x"},
    {"a: *x", "x\""},
    {"a: *mid*", "mid"},
    {"a: *x*y*", "x"}, /* general pattern: its longest literal run, unquoted */
    {"a: (x or y)", "(\"x\" OR \"y\")"},
    {"a: x or b: *yy*", "(\"x\" OR yy)"},
    {"a: x or b: *", ""}, /* exists gives no clause, so the OR gives none */
    {"not a: x", ""},
    {"a > 5", ""},
    {"a: \"x/y\"", "\"x"},               /* '/' may be escaped as \/ in JSON: the run before it */
    {"a: \"caf\u00e9\"", "\"caf"},       /* non-ASCII may be \u-escaped */
    {"a: \"say \\\"hi\\\"\"", "\"say "}, /* the longest run JSON never escapes */
    {"a: *role/AgentCore-*", "AgentCore-"},
    {"a: *role/*BedrockAgentCore*", "BedrockAgentCore"},
    {"a: arn*role/x", "\"arn"},
    {"a: (x or \"y/z\")", "(\"x\" OR \"y)"}, /* each alternative keeps a run */
    {"n: 5", ""},                            /* n is not verbatim (typed) */
    {"a: x and b: longer and a: x", "\"longer\" AND \"x\""},
    {"a: x and (a: x or b: y)", "\"x\""},                    /* the OR clause is implied by "x" */
    {"(a: x and b: yyyy) or c: zz", "(\"yyyy\" OR \"zz\")"}, /* longest of equally short */
    {"a: { b: \"q\" }", "\"q\""},
    {"", ""},
};

static const struct {
    const char *query;
    const char *raw;
    int want;
} prefilter_trees[] = {
    {"(a: x and b: yy) or (a: z and b: ww)", "{\"a\":\"x\",\"b\":\"yy\"}", 1},
    {"(a: x and b: yy) or (a: z and b: ww)", "{\"a\":\"z\",\"b\":\"ww\"}", 1},
    /* every CNF clause holds ("x" or "z", "yy" or "ww", ...), the structure does not */
    {"(a: x and b: yy) or (a: z and b: ww)", "{\"a\":\"x\",\"b\":\"ww\"}", 0},
    {"(a: x and b: yy) or (a: z and b: ww)", "{\"a\":\"x\",\"b\":\"w\\u0077\"}", 1},
    {"a: x and not b: y", "{\"a\":\"x\",\"b\":\"y\"}", 1}, /* not: no constraint */
    {"a: x and not b: y", "{\"a\":\"q\",\"b\":\"y\"}", 0},
    {"a: x or b: *", "{\"c\":1}", 1},
    {"a: x and (b: yy or n: 5)", "{\"a\":\"x\"}", 1}, /* n is typed: unconstrained */
    {"a: x and (b: yy or c: *zz*)", "{\"a\":\"x\",\"c\":\"azzb\"}", 1},
    {"a: x and (b: yy or c: *zz*)", "{\"a\":\"x\",\"c\":\"azb\"}", 0},
    {"a: (x or yy) and b: (x or yy)", "{\"a\":\"x\",\"b\":\"x\"}", 1}, /* one search, remembered */
    /* a leaf of inner runs tests their common run AgentCore first */
    {"a: (*role/AgentCore-* or *role/*BedrockAgentCore*)", "{\"a\":\"r/BedrockAgentCore1\"}", 1},
    {"a: (*role/AgentCore-* or *role/*BedrockAgentCore*)", "{\"a\":\"role/AgentCore-1\"}", 1},
    {"a: (*role/AgentCore-* or *role/*BedrockAgentCore*)", "{\"a\":\"AgentCore\"}", 0},
    {"a: (*role/AgentCore-* or *role/*BedrockAgentCore*)", "{\"a\":\"AgentCor-\"}", 0},
    {"a: (*role/AgentCore-* or *role/*BedrockAgentCore*)", "{\"a\":\"Agent\\u0043ore-\"}", 1},
    {"a: (*Browser* or *Cyberduck*)", "{\"a\":\"Cyberduck/1\"}", 1}, /* nothing in common */
    {"a: (*Browser* or *Cyberduck*)", "{\"a\":\"Browse\"}", 0},
};

/* The shared table (with and without the quoted-segment scan) gives
 * kql_prefilter's answer for every query of a set, on texts built from the
 * queries' own literals, quotes, backslashes and \u escapes. */
START_TEST(shared_prefilter_agrees_with_each_query_alone)
{
    static const char *const qs[] = {
        "a: x and (b: yy or c: *zz*)",
        "a: (x or yy) and b: (x or yy)",
        "a: \"x y\" or b: zz*",
        "b: *yy and c: \"\"",
        "a: \"say \\\"hi\\\"\"",
        "c: *zz* and not a: x",
        "n > 3 or a: ab",
        "a: abc and b: a",
    };
    static const char *const parts[] = {
        "\"", "x", "yy", "zz", "\"x\"", "\"yy\"", "\"x y\"", "\"\"",  "\\",       "\\u0078",
        ":",  ",", "{",  "}",  " ",     "ab",     "abc",     "\"a\"", "say \"hi", "a\""};
    enum { NQ = sizeof qs / sizeof qs[0], NP = sizeof parts / sizeof parts[0] };
    doc_src s = {0};
    json_t *typed = json_pack("[s]", "n");
    s.typed = typed;
    nt_field_source src = source_of(&s);
    kql_query *q[NQ];
    for (size_t i = 0; i < NQ; i++) {
        nt_err err = {{0}};
        ck_assert_msg(kql_compile(qs[i], strlen(qs[i]), &src, &q[i], &err) == NT_OK, "%s: %s",
                      qs[i], err.msg);
    }
    for (int scan = 0; scan < 3; scan += 2) {
        kql_pfshare *sh = kql_pfshare_new((const kql_query *const *)q, NQ, scan);
        ck_assert_ptr_nonnull(sh);
        unsigned char *memo = malloc(kql_pfshare_nlits(sh) + 1);
        unsigned seed = 12345u + (unsigned)scan;
        for (int t = 0; t < 4000; t++) {
            char raw[256];
            size_t n = 0;
            int k = (int)((seed = seed * 1103515245u + 12345u) >> 16) % 12;
            for (int j = 0; j < k; j++) {
                const char *p = parts[((seed = seed * 1103515245u + 12345u) >> 16) % NP];
                size_t l = strlen(p);
                if (n + l >= sizeof raw) break;
                memcpy(raw + n, p, l);
                n += l;
            }
            kql_pfrec rec = {.memo = memo};
            kql_pfrec_reset(&rec, sh, raw, n);
            for (size_t i = 0; i < NQ; i++)
                ck_assert_msg(kql_prefilter_shared(sh, i, &rec) == kql_prefilter(q[i], raw, n),
                              "scan %d, %s on '%.*s'", scan, qs[i], (int)n, raw);
        }
        free(memo);
        kql_pfshare_free(sh);
    }
    for (size_t i = 0; i < NQ; i++)
        kql_free(q[i]);
    src_done(&s);
    json_decref(typed);
}
END_TEST

/* Every kind of literal the pass answers (exact "v", prefix "X, a long "X"
 * over the exact table's 255 bytes) and those it leaves to searches (suffix
 * X", inner X) against the truth: after kql_prefilter_all, each literal's
 * memo is 1 exactly when memmem finds it, and each query's verdict is
 * kql_prefilter's. Texts put each piece (the literal, a near miss, an
 * escaped variant, a truncation) at every offset from 0 to 140, so across
 * the 64-byte blocks and at both ends, and from 4030 to 4100, across the
 * AVX2 pass's 4 KB rounds of masks; also the empty text and texts shorter
 * than the literals. Texts are exact-size heap copies (a read past one is a
 * sanitizer error). With the AVX2 pass, the portable one and without a pass. */
START_TEST(the_pass_answers_every_literal_kind_as_a_search_would)
{
    char longv[301];
    memset(longv, 'v', 300);
    longv[300] = 0;
    char longq[340];
    snprintf(longq, sizeof longq, "l: \"%s\"", longv);
    const char *const qs[] = {
        "a: AKIA* and b: x",         /* prefix "AKIA, exact "x" */
        "a: (Invoke* or Q*)",        /* prefixes, one of a single byte */
        "a: *key and not b: y",      /* suffix key" */
        "a: (*S3 Browser* or *Cy*)", /* inner runs */
        "b: \"\" or c: ab",          /* the empty value, exact "ab" */
        longq,                       /* "vvv…" over 255 bytes: a prefix literal */
        "a: *AgentCore-*",
    };
    char lq[320];
    snprintf(lq, sizeof lq, "\"%s\"", longv);
    const char *const pieces[] = {"\"AKIA",       "\"AKI",       "AKIA",
                                  "\"AKI\\u0041", "\\\"AKIA",    "\"x\"",
                                  "\"x",          "\"Invoke",    "\"Invok",
                                  "\"Q",          "\"Qz\"",      "key\"",
                                  "ke\"",         "\\u006bey\"", "S3 Browser",
                                  "S3 Browse",    "Cy",          "\"\"",
                                  "\"ab\"",       "\"a\"b\"",    lq,
                                  lq + 10,        "AgentCore-",  "gentCore-",
                                  "\"",           "\\",          "{\"a\":\"AKIAX\"}"};
    enum { NQ = sizeof qs / sizeof qs[0], NP = sizeof pieces / sizeof pieces[0] };
    doc_src src_state = {0};
    nt_field_source src = source_of(&src_state);
    kql_query *q[NQ];
    for (size_t i = 0; i < NQ; i++) {
        nt_err err = {{0}};
        ck_assert_msg(kql_compile(qs[i], strlen(qs[i]), &src, &q[i], &err) == NT_OK, "%s: %s",
                      qs[i], err.msg);
    }
    const int scans[] = {2, 2 | KQL_PF_PORTABLE, 0};
    char *text = malloc(4600);
    ck_assert_ptr_nonnull(text);
    for (size_t sc = 0; sc < sizeof scans / sizeof scans[0]; sc++) {
        kql_pfshare *sh = kql_pfshare_new((const kql_query *const *)q, NQ, scans[sc]);
        ck_assert_ptr_nonnull(sh);
        size_t nl = kql_pfshare_nlits(sh);
        unsigned char *memo = malloc(nl + 1), may[NQ];
        for (size_t p = 0; p < NP; p++) {
            for (size_t step = 0; step <= 141 + 71; step++) {
                /* step 141: the piece alone, then the empty text; from 142 on,
                 * offsets 4030..4100 */
                size_t off = step <= 141 ? step : 4030 + (step - 142);
                size_t pl = strlen(pieces[p]), n = 0;
                if (step != 141) {
                    for (; n < off; n++)
                        text[n] = "{\"k\": \"w\", "[n % 11];
                    memcpy(text + n, pieces[p], pl);
                    n += pl;
                    for (size_t t = 0; t < (off * 7) % 23; t++)
                        text[n++] = " z\":,}"[t % 6];
                } else if (p == 0) {
                    n = 0;
                } else {
                    memcpy(text, pieces[p], pl);
                    n = pl;
                }
                char *raw = malloc(n ? n : 1);
                ck_assert_ptr_nonnull(raw);
                memcpy(raw, text, n);
                kql_pfrec rec = {.memo = memo};
                kql_prefilter_all(sh, &rec, raw, n, may);
                for (size_t i = 0; i < NQ; i++)
                    ck_assert_msg(may[i] == kql_prefilter(q[i], raw, n),
                                  "scan %d, %s on '%.*s' (%zu bytes)", scans[sc], qs[i], (int)n,
                                  raw, n);
                for (size_t li = 0; li < nl && n; li++) {
                    size_t ln;
                    const char *l = kql_pfshare_lit(sh, li, &ln);
                    if (!memo[li]) continue; /* not looked at: no claim */
                    int in = memmem(raw, n, l, ln) != NULL;
                    ck_assert_msg(memo[li] == (in ? 1 : 2), "scan %d, literal %.*s on '%.*s': %d",
                                  scans[sc], (int)ln, l, (int)n, raw, memo[li]);
                }
                free(raw);
            }
        }
        free(memo);
        kql_pfshare_free(sh);
    }
    free(text);
    for (size_t i = 0; i < NQ; i++)
        kql_free(q[i]);
    src_done(&src_state);
}
END_TEST

START_TEST(prefilter_follows_the_and_or_structure)
{
    doc_src s = {0};
    json_t *typed = json_pack("[s]", "n");
    s.typed = typed;
    nt_field_source src = source_of(&s);
    kql_query *q = NULL;
    nt_err err = {{0}};
    const char *qt = prefilter_trees[_i].query, *raw = prefilter_trees[_i].raw;
    ck_assert_msg(kql_compile(qt, strlen(qt), &src, &q, &err) == NT_OK, "%s: %s", qt, err.msg);
    ck_assert_msg(kql_prefilter(q, raw, strlen(raw)) == prefilter_trees[_i].want,
                  "%s on %s: want %d", qt, raw, prefilter_trees[_i].want);
    /* the shared table gives the same verdict: searched, with the pass, with
     * the portable pass */
    const int scans[] = {0, 2, 2 | KQL_PF_PORTABLE};
    for (size_t sc = 0; sc < sizeof scans / sizeof scans[0]; sc++) {
        const kql_query *one = q;
        kql_pfshare *sh = kql_pfshare_new(&one, 1, scans[sc]);
        ck_assert_ptr_nonnull(sh);
        unsigned char *memo = malloc(kql_pfshare_nlits(sh) + 1), may = 9;
        kql_pfrec rec = {.memo = memo};
        ck_assert_int_eq(kql_prefilter_all(sh, &rec, raw, strlen(raw), &may),
                         prefilter_trees[_i].want);
        ck_assert_int_eq(may, prefilter_trees[_i].want);
        free(memo);
        kql_pfshare_free(sh);
    }
    kql_free(q);
    src_done(&s);
    json_decref(typed);
}
END_TEST

START_TEST(prefilter_clauses_follow_the_query_shape)
{
    doc_src s = {0};
    json_t *typed = json_pack("[s]", "n");
    s.typed = typed;
    nt_field_source src = source_of(&s);
    kql_query *q = NULL;
    nt_err err = {{0}};
    const char *qt = prefilter_shapes[_i].query;
    ck_assert_msg(kql_compile(qt, strlen(qt), &src, &q, &err) == NT_OK, "%s: %s", qt, err.msg);
    char buf[256];
    kql_prefilter_describe(q, buf, sizeof buf);
    ck_assert_msg(strcmp(buf, prefilter_shapes[_i].describe) == 0, "%s: got '%s', want '%s'", qt,
                  buf, prefilter_shapes[_i].describe);
    kql_free(q);
    src_done(&s);
    json_decref(typed);
}
END_TEST

/* ---------------------------------------------------- (d) error messages */

static const struct {
    const char *query;
    nt_status status;
    const char *msg;
} bad_queries[] = {
    {"response:", NT_ERR_PARSE,
     "line 1, column 10: expected \"(\", \"{\", value, or whitespace but end of input found"},
    {"a:b)", NT_ERR_PARSE,
     "line 1, column 4: expected AND, OR, end of input, or whitespace but \")\" found"},
    {"a:not b", NT_ERR_PARSE,
     "line 1, column 3: expected \"(\", \"{\", value, or whitespace but \"n\" found"},
    {"not not a", NT_ERR_PARSE,
     "line 1, column 5: expected \"(\", field name, or value but \"n\" found"},
    {"a:b\\q", NT_ERR_PARSE,
     "line 1, column 4: expected AND, OR, end of input, or whitespace but \"\\\\\" found"},
    {"< 1000", NT_ERR_PARSE,
     "line 1, column 1: expected \"(\", NOT, end of input, field name, value, or whitespace but "
     "\"<\" found"},
    {"foo >", NT_ERR_PARSE,
     "line 1, column 6: expected literal or whitespace but end of input found"},
    {"{ a:b }", NT_ERR_PARSE,
     "line 1, column 1: expected \"(\", NOT, end of input, field name, value, or whitespace but "
     "\"{\" found"},
    {"event.action: (\n  \"A\" or\n  \"B\"\n", NT_ERR_PARSE,
     "line 4, column 1: expected \")\" or whitespace but end of input found"},
    {"a: b and\n  c: d e:f", NT_ERR_PARSE,
     "line 2, column 9: expected AND, OR, end of input, or whitespace but \":\" found"},
    {"a: \"unterminated\n more", NT_ERR_PARSE,
     "line 1, column 4: expected \"(\", \"{\", value, or whitespace but \"\\\"\" found"},
    {"f:(a or )", NT_ERR_PARSE, "line 1, column 9: expected \"(\", NOT, or value but \")\" found"},
    {"x:{ y:1 ", NT_ERR_PARSE,
     "line 1, column 9: expected \"}\", AND, OR, or whitespace but end of input found"},
    {"a: b{c}", NT_ERR_PARSE,
     "line 1, column 5: expected AND, OR, end of input, or whitespace but \"{\" found"},
    {"a:\"x\"~2", NT_ERR_PARSE,
     "line 1, column 6: expected AND, OR, end of input, or whitespace but \"~\" found"},
    {"data_stream.dataset: \"aws.cloudtrail\"\n    and event.outcome: \"success\"\n    and "
     "(event.action: (\"A\" or \"B\") or\n",
     NT_ERR_PARSE,
     "line 4, column 1: expected \"(\", NOT, field name, or value but end of input found"},
    {"a:b \u00e9:c", NT_ERR_PARSE,
     "line 1, column 6: expected AND, OR, end of input, or whitespace but \":\" found"},
    {"a:\"x\"and b:c", NT_ERR_PARSE,
     "line 1, column 6: expected AND, OR, end of input, or whitespace but \"a\" found"},
    {"a:\xff", NT_ERR_PARSE, "line 1, column 3: the query is not valid UTF-8"},
    {"a:\\ud800x", NT_ERR_PARSE,
     "line 1, column 3: \\ud800 is half of a UTF-16 surrogate pair without its other half"},
    {"foo", NT_ERR_UNSUPPORTED,
     "line 1, column 1: free-text search without a field is not supported; name the field, as in "
     "field: value"},
    {"a:1 and\n  (b:2 or bare words)", NT_ERR_UNSUPPORTED,
     "line 2, column 11: free-text search without a field is not supported; name the field, as in "
     "field: value"},
    {"user.*: x", NT_ERR_UNSUPPORTED,
     "line 1, column 1: field-name wildcards such as 'user.*' are not supported; name each field"},
    {"a: null", NT_ERR_UNSUPPORTED,
     "line 1, column 4: a: null as a value is not supported (Elasticsearch rejects it)"},
    {"@timestamp > now-1d", NT_ERR_UNSUPPORTED,
     "line 1, column 14: date math ('now-1d') in a range is not supported; use an RFC 3339 date"},
    {"a > 1*", NT_ERR_UNSUPPORTED,
     "line 1, column 5: a range bound cannot be a wildcard ('1*'); escape a literal * as \\*"},
};

START_TEST(malformed_queries_fail_with_line_and_column)
{
    doc_src s = {0};
    nt_field_source src = source_of(&s);
    kql_query *q = NULL;
    nt_err err = {{0}};
    const char *qt = bad_queries[_i].query;
    nt_status st = kql_compile(qt, strlen(qt), &src, &q, &err);
    ck_assert_msg(st == bad_queries[_i].status, "%s: status %s (%s)", qt, nt_status_name(st),
                  err.msg);
    ck_assert_ptr_null(q);
    ck_assert_str_eq(err.msg, bad_queries[_i].msg);
    src_done(&s);
}
END_TEST

static char *repeat(const char *head, const char *open, int n, const char *mid, const char *close)
{
    size_t lh = strlen(head), lo = strlen(open), lm = strlen(mid), lc = strlen(close);
    char *s = malloc(lh + (size_t)n * (lo + lc) + lm + 1);
    size_t o = lh;
    memcpy(s, head, lh);
    for (int i = 0; i < n; i++)
        memcpy(s + o, open, lo), o += lo;
    memcpy(s + o, mid, lm), o += lm;
    for (int i = 0; i < n; i++)
        memcpy(s + o, close, lc), o += lc;
    s[o] = 0;
    return s;
}

START_TEST(nesting_up_to_the_limit_compiles_and_deeper_is_refused)
{
    static const struct {
        const char *head, *open, *mid, *close;
    } shapes[] = {{"", "(", "a:b", ")"},
                  {"a:", "(", "b", ")"},
                  {"", "a:{", "b:c", "}"},
                  {"", "not (", "a:b", ")"},
                  {"a:", "(not ", "b", ")"}};
    doc_src s = {0};
    nt_field_source src = source_of(&s);
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
        kql_query *q = NULL;
        nt_err err = {{0}};
        char *ok =
            repeat(shapes[k].head, shapes[k].open, KQL_MAX_DEPTH, shapes[k].mid, shapes[k].close);
        ck_assert_msg(kql_compile(ok, strlen(ok), &src, &q, &err) == NT_OK, "%s", err.msg);
        kql_free(q);
        q = NULL;
        char *deep = repeat(shapes[k].head, shapes[k].open, KQL_MAX_DEPTH + 1, shapes[k].mid,
                            shapes[k].close);
        ck_assert_int_eq(kql_compile(deep, strlen(deep), &src, &q, &err), NT_ERR_LIMIT);
        ck_assert_ptr_nonnull(strstr(err.msg, "nests deeper than 64 levels"));
        free(ok);
        free(deep);
    }
    src_done(&s);
}
END_TEST

START_TEST(queries_over_64_kib_are_refused)
{
    doc_src s = {0};
    nt_field_source src = source_of(&s);
    size_t n = KQL_MAX_QUERY_BYTES + 1;
    char *big = malloc(n);
    memset(big, ' ', n);
    memcpy(big, "a:b", 3);
    kql_query *q = NULL;
    nt_err err = {{0}};
    ck_assert_int_eq(kql_compile(big, n, &src, &q, &err), NT_ERR_LIMIT);
    ck_assert_str_eq(err.msg, "the query is 65537 bytes; the limit is 65536");
    ck_assert_int_eq(kql_compile(big, n - 1, &src, &q, &err), NT_OK);
    kql_free(q);
    free(big);
    src_done(&s);
}
END_TEST

START_TEST(long_whitespace_runs_parse_in_linear_time)
{
    /* Each blank of a run looks ahead for or/and; a naive parser is quadratic. */
    doc_src s = {0};
    nt_field_source src = source_of(&s);
    size_t n = KQL_MAX_QUERY_BYTES;
    char *big = malloc(n);
    memset(big, ' ', n);
    memcpy(big, "a:b", 3);
    memcpy(big + n - 1, "c", 1);
    kql_query *q = NULL;
    nt_err err = {{0}};
    for (int i = 0; i < 50; i++) {
        ck_assert_int_eq(kql_compile(big, n, &src, &q, &err), NT_OK);
        kql_free(q);
    }
    free(big);
    src_done(&s);
}
END_TEST

/* -------------------------------------------- (e) truncation and mutation */

START_TEST(every_truncation_of_the_seed_query_is_handled)
{
    size_t len;
    char *text = tu_read_file(DATA "seed_query.kql", &len);
    doc_src s = {0};
    nt_field_source src = source_of(&s);
    json_t *doc = json_pack("{s:{s:s}}", "event", "outcome", "success");
    size_t ok = 0;
    for (size_t cut = 0; cut <= len; cut++) {
        char *prefix = malloc(cut ? cut : 1); /* exact size, so ASan sees overreads */
        memcpy(prefix, text, cut);
        kql_query *q = NULL;
        nt_err err = {{0}};
        nt_status st = kql_compile(prefix, cut, &src, &q, &err);
        ck_assert_msg(st == NT_OK || st == NT_ERR_PARSE || st == NT_ERR_UNSUPPORTED, "cut %zu: %s",
                      cut, nt_status_name(st));
        if (st == NT_OK) {
            ok++;
            kql_match(q, doc);
            kql_prefilter(q, text, len);
        } else {
            ck_assert_msg(strncmp(err.msg, "line ", 5) == 0, "cut %zu: %s", cut, err.msg);
        }
        kql_free(q);
        free(prefix);
    }
    ck_assert_uint_ge(ok, 3); /* the empty prefix, blank prefixes and the whole query */
    json_decref(doc);
    src_done(&s);
    free(text);
}
END_TEST

START_TEST(single_byte_mutations_of_the_seed_query_never_crash)
{
    static const char subst[] = "()\":\\*{}<> \n\x01\x80";
    size_t len;
    char *text = tu_read_file(DATA "seed_query.kql", &len);
    doc_src s = {0};
    nt_field_source src = source_of(&s);
    json_t *doc = json_pack("{s:{s:s}}", "event", "outcome", "success");
    char *copy = malloc(len);
    for (size_t i = 0; i < len; i++) {
        for (size_t k = 0; k < sizeof subst - 1; k++) {
            memcpy(copy, text, len);
            copy[i] = subst[k];
            kql_query *q = NULL;
            nt_err err = {{0}};
            nt_status st = kql_compile(copy, len, &src, &q, &err);
            ck_assert(st == NT_OK || st == NT_ERR_PARSE || st == NT_ERR_UNSUPPORTED);
            if (st == NT_OK)
                kql_match(q, doc);
            else
                ck_assert(err.msg[0] != 0);
            kql_free(q);
        }
    }
    free(copy);
    json_decref(doc);
    src_done(&s);
    free(text);
}
END_TEST

/* ------------------------------------------------------- other behaviour */

START_TEST(unknown_fields_are_listed_once_in_order)
{
    doc_src s = {.unknown_prefix = 1};
    nt_field_source src = source_of(&s);
    const char *qt = "unknown.b: x and known: y and not unknown.a: * and unknown.b: z or "
                     "unknown:{ c: 1 } or unknown.d > 3";
    kql_query *q = NULL;
    nt_err err = {{0}};
    ck_assert_int_eq(kql_compile(qt, strlen(qt), &src, &q, &err), NT_OK);
    const char *const *names;
    ck_assert_uint_eq(kql_unknown_fields(q, &names), 4);
    ck_assert_str_eq(names[0], "unknown.b");
    ck_assert_str_eq(names[1], "unknown.a");
    ck_assert_str_eq(names[2], "unknown.c");
    ck_assert_str_eq(names[3], "unknown.d");
    /* a field the source never produces is missing: `not` over it is true */
    json_t *doc = json_pack("{s:s}", "known", "y");
    const char *nq = "known: y and not unknown.a: x";
    kql_free(q);
    ck_assert_int_eq(kql_compile(nq, strlen(nq), &src, &q, &err), NT_OK);
    ck_assert_int_eq(kql_match(q, doc), 1);
    json_decref(doc);
    kql_free(q);
    ck_assert_uint_eq(kql_unknown_fields(NULL, &names), 0);
    src_done(&s);
}
END_TEST

typedef struct visit_log {
    char text[1024];
    size_t n;
} visit_log;

static void log_term(void *ud, const char *field, const char *value, size_t len, int is_wildcard,
                     int line, int column)
{
    visit_log *l = ud;
    l->n += (size_t)snprintf(l->text + l->n, sizeof l->text - l->n, "%s%s=%.*s%s@%d:%d",
                             l->n ? " " : "", field, (int)len, value, is_wildcard ? "(w)" : "",
                             line, column);
}

START_TEST(visit_terms_reports_every_comparison_with_its_position)
{
    doc_src s = {0};
    nt_field_source src = source_of(&s);
    const char *qt = "a: \"x\" and not b: (y or Z*)\n  and c: * and d > 1 and e:{ f: tru\\*e? }"
                     " and g: true and h: \u00e9\u00e9 and i: \"q*\"";
    kql_query *q = NULL;
    nt_err err = {{0}};
    ck_assert_int_eq(kql_compile(qt, strlen(qt), &src, &q, &err), NT_OK);
    visit_log log = {"", 0};
    kql_visit_terms(q, log_term, &log);
    ck_assert_str_eq(log.text, "a=x@1:4 b=y@1:20 b=Z*(w)@1:25 e.f=tru*e?@2:33 g=true@2:50 "
                               "h=\u00e9\u00e9@2:62 i=q*@2:72");
    kql_visit_terms(NULL, log_term, &log);
    kql_free(q);
    src_done(&s);
}
END_TEST

START_TEST(wildcard_terms_are_visited_as_es_wildcard_patterns)
{
    doc_src s = {0};
    nt_field_source src = source_of(&s);
    const char *qt = "a: x\\*y?\\\\*";
    kql_query *q = NULL;
    nt_err err = {{0}};
    ck_assert_int_eq(kql_compile(qt, strlen(qt), &src, &q, &err), NT_OK);
    visit_log log = {"", 0};
    kql_visit_terms(q, log_term, &log);
    ck_assert_str_eq(log.text, "a=x\\*y\\?\\\\*(w)@1:4");
    kql_free(q);
    src_done(&s);
}
END_TEST

START_TEST(compiled_query_dumps_kibana_shaped_json)
{
    doc_src s = {0};
    nt_field_source src = source_of(&s);
    const char *qt = "a:{ b: \"x\" or c: y* } and not d >= 5 and e: (true or null)";
    kql_query *q = NULL;
    nt_err err = {{0}};
    char *json = NULL;
    ck_assert_int_eq(kql_parse_json(qt, strlen(qt), &json, &err), NT_OK);
    ck_assert_str_eq(json, "{\"type\":\"function\",\"function\":\"and\",\"arguments\":["
                           "{\"type\":\"function\",\"function\":\"nested\",\"arguments\":["
                           "{\"type\":\"literal\",\"value\":\"a\",\"isQuoted\":false},"
                           "{\"type\":\"function\",\"function\":\"or\",\"arguments\":["
                           "{\"type\":\"function\",\"function\":\"is\",\"arguments\":["
                           "{\"type\":\"literal\",\"value\":\"b\",\"isQuoted\":false},"
                           "{\"type\":\"literal\",\"value\":\"x\",\"isQuoted\":true}]},"
                           "{\"type\":\"function\",\"function\":\"is\",\"arguments\":["
                           "{\"type\":\"literal\",\"value\":\"c\",\"isQuoted\":false},"
                           "{\"type\":\"wildcard\",\"value\":\"y@kuery-wildcard@\"}]}]}]},"
                           "{\"type\":\"function\",\"function\":\"not\",\"arguments\":["
                           "{\"type\":\"function\",\"function\":\"range\",\"arguments\":["
                           "{\"type\":\"literal\",\"value\":\"d\",\"isQuoted\":false},\"gte\","
                           "{\"type\":\"literal\",\"value\":\"5\",\"isQuoted\":false}]}]},"
                           "{\"type\":\"function\",\"function\":\"or\",\"arguments\":["
                           "{\"type\":\"function\",\"function\":\"is\",\"arguments\":["
                           "{\"type\":\"literal\",\"value\":\"e\",\"isQuoted\":false},"
                           "{\"type\":\"literal\",\"value\":true,\"isQuoted\":false}]},"
                           "{\"type\":\"function\",\"function\":\"is\",\"arguments\":["
                           "{\"type\":\"literal\",\"value\":\"e\",\"isQuoted\":false},"
                           "{\"type\":\"literal\",\"value\":null,\"isQuoted\":false}]}]}]}");
    /* the null value is parsed but not evaluated */
    ck_assert_int_eq(kql_compile(qt, strlen(qt), &src, &q, &err), NT_ERR_UNSUPPORTED);
    free(json);
    const char *ok = "a:{ b: \"x\" or c: y* } and not d >= 5";
    ck_assert_int_eq(kql_compile(ok, strlen(ok), &src, &q, &err), NT_OK);
    json = kql_ast_json(q);
    char *json2 = NULL;
    ck_assert_int_eq(kql_parse_json(ok, strlen(ok), &json2, &err), NT_OK);
    ck_assert_str_eq(json, json2);
    free(json);
    free(json2);
    kql_free(q);
    kql_free(NULL);
    src_done(&s);
}
END_TEST

START_TEST(compile_refuses_a_source_without_callbacks)
{
    nt_field_source none = {0};
    kql_query *q = (kql_query *)&none;
    nt_err err = {{0}};
    ck_assert_int_eq(kql_compile("a:b", 3, &none, &q, &err), NT_ERR_INVALID);
    ck_assert_ptr_null(q);
    ck_assert_int_eq(kql_compile("a:b", 3, NULL, &q, &err), NT_ERR_INVALID);
    doc_src s = {0};
    nt_field_source src = source_of(&s);
    ck_assert_int_eq(kql_compile(NULL, 3, &src, &q, &err), NT_ERR_INVALID);
    ck_assert_int_eq(kql_compile(NULL, 0, &src, &q, &err), NT_OK);
    ck_assert_int_eq(kql_match(q, NULL), 1);
    kql_free(q);
    src_done(&s);
}
END_TEST

START_TEST(a_source_without_verbatim_gets_no_prefilter)
{
    doc_src s = {0};
    nt_field_source src = source_of(&s);
    src.verbatim = NULL;
    kql_query *q = NULL;
    nt_err err = {{0}};
    ck_assert_int_eq(kql_compile("a: \"x\"", 6, &src, &q, &err), NT_OK);
    ck_assert_uint_eq(kql_prefilter_clauses(q), 0);
    ck_assert_int_eq(kql_prefilter(q, "{}", 2), 1);
    kql_free(q);
    src_done(&s);
}
END_TEST

/* kql_match and kql_prefilter must not allocate. Counting needs our own
 * malloc in front of glibc's, which AddressSanitizer does not allow; the
 * check runs in the plain build only. */
#if defined(__SANITIZE_ADDRESS__)
#define KQL_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define KQL_TEST_ASAN 1
#endif
#endif

#ifndef KQL_TEST_ASAN
extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t k);
extern void *__libc_realloc(void *p, size_t n);
static size_t test_allocations;
void *malloc(size_t n)
{
    test_allocations++;
    return __libc_malloc(n);
}
void *calloc(size_t n, size_t k)
{
    test_allocations++;
    return __libc_calloc(n, k);
}
void *realloc(void *p, size_t n)
{
    test_allocations++;
    return __libc_realloc(p, n);
}

START_TEST(matching_allocates_nothing)
{
    doc_src s = {0};
    json_t *table;
    kql_query *q = compile_seed(&s, &table);
    const json_t *cases = json_object_get(table, "cases");
    char *raw = json_dumps(json_object_get(json_array_get(cases, 0), "doc"), JSON_COMPACT);
    const char *rq = "bytes > 10 and @timestamp < 2026-01-01 and n: 1e3 and a: *x*y* and not b: *";
    nt_field_source src = source_of(&s);
    kql_query *q2 = NULL;
    ck_assert_int_eq(kql_compile(rq, strlen(rq), &src, &q2, NULL), NT_OK);
    size_t i;
    const json_t *row;
    int matched = 0;
    size_t before = test_allocations;
    json_array_foreach(cases, i, row)
    {
        matched += kql_match(q, (void *)json_object_get(row, "doc"));
        kql_match(q2, (void *)json_object_get(row, "doc"));
        kql_prefilter(q, raw, strlen(raw));
    }
    ck_assert_uint_eq(test_allocations - before, 0);
    ck_assert_int_gt(matched, 0);
    free(raw);
    kql_free(q);
    kql_free(q2);
    src_done(&s);
    json_decref(table);
}
END_TEST
#endif

/* --------------------------------------------------------------- runner */

static int json_array_file_size(const char *path, const char *member)
{
    json_error_t jerr;
    json_t *j = json_load_file(path, 0, &jerr);
    if (!j) {
        fprintf(stderr, "%s: %s\n", path, jerr.text);
        return 0;
    }
    int n = (int)json_array_size(member ? json_object_get(j, member) : j);
    json_decref(j);
    return n;
}

/* Prints how many Kibana cases pass, for the record; the loop test asserts. */
static void print_conformance_summary(void)
{
    json_error_t jerr;
    json_t *cases = json_load_file(DATA "kibana_kql_cases.json", 0, &jerr);
    if (!cases) return;
    size_t i, pass = 0;
    const json_t *c;
    char why[1024];
    json_array_foreach(cases, i, c) pass += (size_t)kibana_case_passes(c, why, sizeof why);
    printf("kibana KQL conformance: %zu/%zu cases pass\n", pass, json_array_size(cases));
    json_decref(cases);
}

static Suite *kql_suite(void)
{
    Suite *s = suite_create("kql");
    TCase *tc = tcase_create("kql");
    tcase_set_timeout(tc, 120);
    int nkibana = json_array_file_size(DATA "kibana_kql_cases.json", NULL);
    int nrules = json_array_file_size(DATA "aws_rule_queries.json", NULL);
    int neval = json_array_file_size(DATA "eval_cases.json", "cases");
    tcase_add_loop_test(tc, every_kibana_case_parses_like_kibana, 0, nkibana ? nkibana : 1);
    tcase_add_loop_test(tc, every_aws_rule_query_compiles, 0, nrules ? nrules : 1);
    tcase_add_loop_test(tc, evaluation_table_matches_expected, 0, neval ? neval : 1);
    tcase_add_loop_test(tc, prefilter_never_rejects_a_matching_record, 0, neval ? neval : 1);
    tcase_add_test(tc, prefilter_of_the_seed_rule_has_three_clauses_most_selective_first);
    tcase_add_loop_test(tc, prefilter_rejects_unrelated_records_and_passes_escaped_ones, 0,
                        (int)(sizeof seed_raw / sizeof seed_raw[0]));
    tcase_add_loop_test(tc, prefilter_follows_the_and_or_structure, 0,
                        (int)(sizeof prefilter_trees / sizeof prefilter_trees[0]));
    tcase_add_loop_test(tc, prefilter_clauses_follow_the_query_shape, 0,
                        (int)(sizeof prefilter_shapes / sizeof prefilter_shapes[0]));
    tcase_add_loop_test(tc, malformed_queries_fail_with_line_and_column, 0,
                        (int)(sizeof bad_queries / sizeof bad_queries[0]));
    tcase_add_test(tc, nesting_up_to_the_limit_compiles_and_deeper_is_refused);
    tcase_add_test(tc, queries_over_64_kib_are_refused);
    tcase_add_test(tc, long_whitespace_runs_parse_in_linear_time);
    tcase_add_test(tc, every_truncation_of_the_seed_query_is_handled);
    tcase_add_test(tc, single_byte_mutations_of_the_seed_query_never_crash);
    tcase_add_test(tc, unknown_fields_are_listed_once_in_order);
    tcase_add_test(tc, visit_terms_reports_every_comparison_with_its_position);
    tcase_add_test(tc, wildcard_terms_are_visited_as_es_wildcard_patterns);
    tcase_add_test(tc, compiled_query_dumps_kibana_shaped_json);
    tcase_add_test(tc, compile_refuses_a_source_without_callbacks);
    tcase_add_test(tc, a_source_without_verbatim_gets_no_prefilter);
    tcase_add_test(tc, shared_prefilter_agrees_with_each_query_alone);
    tcase_add_test(tc, the_pass_answers_every_literal_kind_as_a_search_would);
#ifndef KQL_TEST_ASAN
    tcase_add_test(tc, matching_allocates_nothing);
#endif
    suite_add_tcase(s, tc);
    return s;
}

static Suite *kql_setup(void)
{
    print_conformance_summary();
    return kql_suite();
}

NT_TEST_MAIN(kql_setup)

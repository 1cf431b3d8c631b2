/*
 * The raw-byte prefilter must never change an outcome. Every CloudTrail file
 * the project keeps as test data (real samples, Elastic's pipeline fixtures,
 * our own records, decode fixtures) goes through the pipeline twice — with and
 * without the prefilter — against all 139 rules of Elastic's AWS pack
 * (rules/elastic-aws: 49 new_terms, 85 query, 5 threshold), and the candidates
 * (rule, term, alert id, suppression group, cardinality values) must be the
 * same. The rule-pack corpus (tests/data/rulepack) holds a positive and near
 * misses for every query and threshold rule; the other files are also tried
 * with provider/action pairs planted, so more rules get records that reach
 * their queries.
 * Each file is also tried with provider/action pairs that cross the branches
 * of an (A and B) or (C and D) query (iam GetRole, iam ListAccounts,
 * organizations GetAccountSummary), which the structured prefilter rejects
 * without parsing. Every unit also goes in as the base64 "data" of a Firehose
 * record (the AVX2 decoder and the prefilter on the decoded bytes): the same
 * candidates.
 * Below the candidates, every (rule, unit) verdict is compared too: each
 * rule's own kql_prefilter against the shared table (searched, and with the
 * one-pass scan) rule by rule, and against kql_prefilter_all, which walks
 * only the rules whose guard literals the scan found.
 */
#include "base64.h"
#include "kql.h"
#include "pipeline.h"
#include "rule.h"
#include "testutil.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static nt_ruleset *rules;
static kql_pfshare *share_search, *share_scan; /* the pack's literals: searched; one pass */
static unsigned char *memo, *may;
static size_t verdicts_compared;

typedef struct corpus {
    char **texts;
    size_t n, cap;
} corpus;

/* A tu_walk callback: keeps the text of every .json and .log file. */
static void corpus_add_file(const char *path, void *ctx)
{
    corpus *c = ctx;
    if (!tu_has_suffix(path, ".json") && !tu_has_suffix(path, ".log")) return;
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 64;
        char **grown = realloc(c->texts, c->cap * sizeof *c->texts);
        ck_assert_ptr_nonnull(grown);
        c->texts = grown;
    }
    c->texts[c->n++] = tu_read_file(path, NULL);
}

static void corpus_walk(corpus *c, const char *dir)
{
    tu_walk(dir, NULL, 8, corpus_add_file, c);
}

static size_t alerts_compared;

/* Candidates of one unit, as "rule_id term_hash alert_id" lines; as_b64: the
 * unit is the base64 data of a Firehose record. prefilter: 0 none, 1 each
 * rule's own, 2 the rules' literals shared (searched once per unit), 3 shared
 * and the exact ones answered by the one-pass quoted-segment scan. */
static char *candidates_of(const char *text, int prefilter, int as_b64)
{
    pipe_run p;
    pipe_init(&p, rules, NULL, 1795843752000);
    p.prefilter = prefilter != 0;
    p.pf_shared = prefilter >= 2 ? prefilter - 1 : 0;
    p.keep_alerts = 1;
    if (as_b64) {
        size_t n = strlen(text), cap = b64_encoded_len(n) + 1, elen = 0;
        char *b64 = malloc(cap);
        ck_assert_ptr_nonnull(b64);
        ck_assert_int_eq(b64_encode((const unsigned char *)text, n, b64, cap, &elen, NULL), NT_OK);
        pipe_firehose_record(&p, 0, b64, elen, 0);
        free(b64);
    } else {
        pipe_unit(&p, 0, 0, text, strlen(text));
    }
    for (size_t i = 0; i < p.n_obs; i++) {
        /* the fast alert text is json_dumps's, byte for byte */
        char *ref = json_dumps(p.items[i].alert, JSON_COMPACT);
        ck_assert_ptr_nonnull(ref);
        ck_assert_ptr_nonnull(p.items[i].alert_text);
        ck_assert_str_eq(p.items[i].alert_text, ref);
        free(ref);
        alerts_compared++;
    }
    size_t cap = 64 + p.n_obs * 400, used = 0;
    char *out = malloc(cap);
    out[0] = 0;
    for (size_t i = 0; i < p.n_obs; i++)
        used += (size_t)snprintf(out + used, cap - used, "%s %s %s %s %.40s\n", p.obs[i].rule_id,
                                 p.items[i].term_hash, p.items[i].alert_id, p.items[i].supp_hash,
                                 p.items[i].card);
    pipe_free(&p);
    return out;
}

static char *candidates(const char *text, int prefilter)
{
    return candidates_of(text, prefilter, 0);
}

static size_t compared, with_candidates;

/* Every rule's prefilter verdict on text, four ways: the same. */
static void check_verdicts(const char *text, size_t len, const char *what)
{
    kql_pfrec a = {.memo = memo}, b = {.memo = memo};
    unsigned char own[1024] = {0};
    ck_assert_uint_le(rules->n, sizeof own);
    for (size_t i = 0; i < rules->n; i++)
        own[i] = (unsigned char)kql_prefilter(rules->rules[i]->query, text, len);
    kql_pfrec_reset(&a, share_search, text, len);
    for (size_t i = 0; i < rules->n; i++)
        ck_assert_msg(kql_prefilter_shared(share_search, i, &a) == own[i],
                      "%s: rule %s: shared literals (searched) %d, own %d", what,
                      rules->rules[i]->rule_id, !own[i], own[i]);
    kql_pfrec_reset(&b, share_scan, text, len);
    for (size_t i = 0; i < rules->n; i++)
        ck_assert_msg(kql_prefilter_shared(share_scan, i, &b) == own[i],
                      "%s: rule %s: shared literals (scan) %d, own %d", what,
                      rules->rules[i]->rule_id, !own[i], own[i]);
    int any = 0;
    for (size_t i = 0; i < rules->n; i++)
        any |= own[i];
    kql_pfrec c = {.memo = memo};
    ck_assert_int_eq(kql_prefilter_all(share_scan, &c, text, len, may), any);
    for (size_t i = 0; i < rules->n; i++)
        ck_assert_msg(may[i] == own[i], "%s: rule %s: dispatched %d, own %d", what,
                      rules->rules[i]->rule_id, may[i], own[i]);
    ck_assert_int_eq(kql_prefilter_all(share_search, &c, text, len, may), any);
    for (size_t i = 0; i < rules->n; i++)
        ck_assert_msg(may[i] == own[i], "%s: rule %s: all (searched) %d, own %d", what,
                      rules->rules[i]->rule_id, may[i], own[i]);
    verdicts_compared += rules->n;
}

static void check_parity(const char *text, const char *what)
{
    check_verdicts(text, strlen(text), what);
    /* prefixes of the files as they are: literals cut at the end, a last
     * quote with no partner (the planted copies differ only in two values) */
    size_t n = strlen(text);
    for (size_t cut = 1; strcmp(what, "as is") == 0 && cut < n && cut < 4096; cut += 389)
        check_verdicts(text, cut, what);
    char *a = candidates(text, 3), *b = candidates(text, 0), *d = candidates(text, 1);
    char *e = candidates(text, 2);
    ck_assert_msg(strcmp(e, b) == 0, "%s: with shared literals, no scan:\n%s\nwithout:\n%s", what,
                  e, b);
    free(e);
    ck_assert_msg(strcmp(a, b) == 0, "%s: with prefilter:\n%s\nwithout:\n%s", what, a, b);
    ck_assert_msg(strcmp(d, b) == 0, "%s: with per-rule prefilter:\n%s\nwithout:\n%s", what, d, b);
    free(d);
    char *c = candidates_of(text, 3, 1);
    ck_assert_msg(strcmp(c, b) == 0, "%s: as Firehose base64 with prefilter:\n%s\nwithout:\n%s",
                  what, c, b);
    compared++;
    if (*b) with_candidates++;
    free(a);
    free(b);
    free(c);
}

START_TEST(the_prefilter_never_changes_a_candidate)
{
    corpus c = {0};
    corpus_walk(&c, NT_TEST_DATA "/cloudtrail");
    corpus_walk(&c, NT_TEST_DATA "/ctview");
    corpus_walk(&c, NT_TEST_DATA "/decode");
    corpus_walk(&c, NT_TEST_DATA "/engine");
    corpus_walk(&c, NT_TEST_DATA "/rulepack/query");
    corpus_walk(&c, NT_TEST_DATA "/rulepack/threshold");
    corpus_walk(&c, NT_TEST_DATA "/rulepack/suppression");
    ck_assert_int_gt(c.n, 140);
    for (size_t i = 0; i < c.n; i++) {
        check_parity(c.texts[i], "as is");
        /* Plant each rule's provider/action pair so its query can be reached:
         * rewrite eventSource/eventName to values the rule names. */
        json_t *doc = json_loads(c.texts[i], 0, NULL);
        json_t *recs = json_object_get(doc, "Records");
        for (size_t k = 0; k < json_array_size(recs); k++) {
            /* each record of an S3 log file alone, too */
            char *text = json_dumps(json_array_get(recs, k), JSON_COMPACT | JSON_ENCODE_ANY);
            if (text) check_parity(text, "one record");
            free(text);
        }
        if (!json_is_object(doc) || !json_is_string(json_object_get(doc, "eventSource"))) {
            json_decref(doc);
            continue;
        }
        static const char *const pairs[][2] = {
            {"organizations.amazonaws.com", "ListAccounts"},
            {"iam.amazonaws.com", "GetAccountSummary"},
            {"sts.amazonaws.com", "GetCallerIdentity"},
            {"sts.amazonaws.com", "AssumeRole"},
            {"s3.amazonaws.com", "PutBucketAcl"},
            {"ec2.amazonaws.com", "CreateKeyPair"},
            {"ssm.amazonaws.com", "SendCommand"},
            {"signin.amazonaws.com", "ConsoleLogin"},
            {"lambda.amazonaws.com", "Invoke"},
            {"secretsmanager.amazonaws.com", "GetSecretValue"},
            {"iam.amazonaws.com", "GetRole"},
            {"iam.amazonaws.com", "ListAccounts"},
            {"organizations.amazonaws.com", "GetAccountSummary"},
        };
        for (size_t k = 0; k < sizeof pairs / sizeof pairs[0]; k++) {
            json_object_set_new(doc, "eventSource", json_string(pairs[k][0]));
            json_object_set_new(doc, "eventName", json_string(pairs[k][1]));
            json_object_del(doc, "errorCode");
            json_object_del(doc, "errorMessage");
            char *text = json_dumps(doc, JSON_COMPACT);
            check_parity(text, pairs[k][1]);
            free(text);
        }
        json_decref(doc);
        free(c.texts[i]);
        c.texts[i] = NULL;
    }
    for (size_t i = 0; i < c.n; i++)
        free(c.texts[i]);
    free(c.texts);
    fprintf(stderr, "prefilter parity: %zu units compared, %zu with candidates\n", compared,
            with_candidates);
    ck_assert_int_gt(with_candidates, 400);
    fprintf(stderr, "prefilter parity: %zu alert texts equal to json_dumps's\n", alerts_compared);
    ck_assert_int_gt(alerts_compared, 1000);
    fprintf(stderr, "prefilter parity: %zu (rule, unit) verdicts equal four ways\n",
            verdicts_compared);
    ck_assert_int_gt(verdicts_compared, 100000); /* 139 rules x 2,000+ units */
}

/* Hand-made records for the scan's edges: a literal in the first and the
 * last quoted segment, an escaped quote inside a value, a \u escape, an
 * empty value, a rule's provider without its action and the reverse. */
START_TEST(the_dispatch_gives_each_rule_its_own_verdict_on_edges)
{
    static const char *const texts[] = {
        "\"cloudtrail.amazonaws.com\" \"CreateTrail\"",
        "{\"eventSource\":\"cloudtrail.amazonaws.com\",\"eventName\":\"CreateTrail\"}",
        "{\"eventSource\":\"cloudtrail.amazonaws.com\",\"eventName\":\"Create\\\"Trail\"}",
        "{\"eventSource\":\"cloudtrail.amazonaws.com\",\"eventName\":\"\\u0043reateTrail\"}",
        "{\"eventSource\":\"cloudtrail.amazonaws.com\",\"eventName\":\"\",\"x\":\"\"}",
        "{\"eventSource\":\"iam.amazonaws.com\",\"eventName\":\"GetRole\"}",
        "{\"eventSource\":\"s3.amazonaws.com\",\"eventName\":\"ListAccounts\"}",
        "{\"t\":\"AssumedRole\",\"k\":\"AKIAEX\",\"s\":\"iam.amazonaws.com\",\"n\":\"CreateUser\"}",
        "\"\"\"\"\"",
        "\"",
        "x",
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        size_t n = strlen(texts[i]);
        for (size_t cut = 0; cut <= n; cut++)
            check_verdicts(texts[i], cut, texts[i]);
    }
}
END_TEST
END_TEST

static void prefilter_parity_teardown(void)
{
    kql_pfshare_free(share_search);
    kql_pfshare_free(share_scan);
    free(memo);
    free(may);
    ruleset_free(rules);
}

static Suite *prefilter_parity_suite(void)
{
    nt_err err;
    if (ruleset_load_dir(NT_TEST_DATA "/../../rules/elastic-aws", 1, &rules, &err) != NT_OK) {
        fprintf(stderr, "setup: %s\n", err.msg);
        return NULL;
    }
    const kql_query **qs = calloc(rules->n, sizeof *qs);
    for (size_t i = 0; qs && i < rules->n; i++)
        qs[i] = rules->rules[i]->query;
    share_search = qs ? kql_pfshare_new(qs, rules->n, 0) : NULL;
    share_scan = qs ? kql_pfshare_new(qs, rules->n, 2) : NULL;
    free(qs);
    memo = malloc(kql_pfshare_nlits(share_scan) + 1);
    may = malloc(rules->n + 1);
    if (!share_search || !share_scan || !memo || !may) {
        fprintf(stderr, "setup: out of memory\n");
        return NULL;
    }
    Suite *s = suite_create("prefilter_parity");
    TCase *tc = tcase_create("corpus");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, the_prefilter_never_changes_a_candidate);
    tcase_add_test(tc, the_dispatch_gives_each_rule_its_own_verdict_on_edges);
    suite_add_tcase(s, tc);
    return s;
}

NT_TEST_MAIN_TEARDOWN(prefilter_parity_suite, prefilter_parity_teardown)

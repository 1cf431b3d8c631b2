/*
 * Rule loading and lint (docs/spec.md §5): Elastic's published rules load or are
 * refused with a precise message; lint warnings name the problem.
 */
#include "pipeline.h"
#include "rule.h"
#include "testutil.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

START_TEST(every_elastic_aws_new_terms_rule_loads)
{
    nt_ruleset *rs = NULL;
    nt_err err;
    ck_assert_int_eq(ruleset_load_dir(NT_TEST_DATA "/toml/rules/aws-new-terms", 1, &rs, &err),
                     NT_OK);
    ck_assert_int_eq(rs->n, 49);
    ck_assert_int_eq(json_array_size(rs->errors), 0);
    /* The action lint flags upstream's typo and nothing else: rules that also
     * name providers without a catalogue (ec2, s3, …) are not second-guessed. */
    size_t unknown_actions = 0;
    for (size_t i = 0; i < rs->n; i++) {
        size_t k;
        json_t *w;
        json_array_foreach(rs->rules[i]->warnings, k, w)
        {
            if (strcmp(json_string_value(json_object_get(w, "code")), "unknown_action") == 0)
                unknown_actions++;
        }
    }
    ck_assert_int_eq(unknown_actions, 1);
    /* Rules on enrichment fields load, with a warning that names the field. */
    const nt_rule *asn = ruleset_find(rs, "c8cc8192-f4f5-4ed3-8368-544ca738d506");
    ck_assert_ptr_nonnull(asn);
    char *w = json_dumps(asn->warnings, 0);
    ck_assert_ptr_nonnull(strstr(w, "source.as.organization.name"));
    free(w);
    ruleset_free(rs);
}
END_TEST

START_TEST(all_query_and_threshold_rules_load)
{
    nt_ruleset *rs = NULL;
    nt_err err;
    ck_assert_int_eq(ruleset_load_dir(NT_TEST_DATA "/toml/rules/aws-query", 1, &rs, &err), NT_OK);
    ck_assert_int_eq(rs->n, 85);
    for (size_t i = 0; i < rs->n; i++)
        ck_assert_int_eq(rs->rules[i]->type, RULE_QUERY);
    /* the one query rule with alert suppression */
    const nt_rule *s3 = ruleset_find(rs, "2f0ee9fe-4529-4b9e-9f78-6c81ef33c6ba");
    ck_assert_ptr_nonnull(s3);
    ck_assert_int_eq(s3->supp, 1);
    ck_assert_int_eq(s3->n_supp, 2);
    ck_assert_str_eq(s3->supp_fields[0], "source.ip");
    ck_assert_str_eq(s3->supp_fields[1], "cloud.account.id");
    ck_assert_int_eq(s3->supp_ms, 5 * 60 * 1000);
    ck_assert_int_eq(s3->supp_missing_ok, 1);
    json_t *j = rule_to_json(s3);
    ck_assert_str_eq(json_string_value(json_object_get(j, "type")), "query");
    ck_assert_str_eq(
        json_string_value(json_object_get(json_object_get(j, "alert_suppression"), "duration")),
        "5m");
    json_decref(j);
    ruleset_free(rs);

    ck_assert_int_eq(ruleset_load_dir(NT_TEST_DATA "/toml/rules/aws-threshold", 1, &rs, &err),
                     NT_OK);
    ck_assert_int_eq(rs->n, 5);
    const nt_rule *root = ruleset_find(rs, "4d50a94f-2844-43fa-8395-6afbd5e1c5ef");
    ck_assert_ptr_nonnull(root);
    ck_assert_int_eq(root->type, RULE_THRESHOLD);
    ck_assert_int_eq(root->n_terms, 1);
    ck_assert_str_eq(root->term_fields[0], "cloud.account.id");
    ck_assert_int_eq(root->thr_value, 10);
    ck_assert_ptr_null(root->card_field);
    ck_assert_int_eq(root->window_ms, 6 * 60 * 1000);
    const nt_rule *enumr = ruleset_find(rs, "5f0234fd-7f21-42af-8391-511d5fd11d5c");
    ck_assert_ptr_nonnull(enumr);
    ck_assert_int_eq(enumr->n_terms, 3);
    ck_assert_int_eq(enumr->thr_value, 1);
    ck_assert_str_eq(enumr->card_field, "event.id");
    ck_assert_int_eq(enumr->card_value, 40);
    ck_assert_int_ge(enumr->card_id, 0);
    j = rule_to_json(enumr);
    ck_assert_str_eq(json_string_value(json_object_get(j, "type")), "threshold");
    ck_assert_int_eq(
        json_integer_value(json_object_get(
            json_array_get(json_object_get(json_object_get(j, "threshold"), "cardinality"), 0),
            "value")),
        40);
    json_decref(j);
    ruleset_free(rs);
}
END_TEST

START_TEST(other_rule_types_are_refused_with_the_reason)
{
    static const char *const types[] = {"eql", "esql", "machine_learning"};
    char *text =
        tu_read_file(NT_TEST_DATA "/../../rules/aws_account_discovery_by_rare_user.toml", NULL);
    ck_assert_ptr_nonnull(text);
    char *at = strstr(text, "type = \"new_terms\"");
    ck_assert_ptr_nonnull(at);
    for (size_t i = 0; i < 3; i++) {
        char edited[65536];
        snprintf(edited, sizeof edited, "%.*stype = \"%s\"%s", (int)(at - text), text, types[i],
                 at + strlen("type = \"new_terms\""));
        ct_schema *schema = ct_schema_new();
        nt_rule *r = NULL;
        nt_err err = {{0}};
        ck_assert_int_eq(rule_load("x.toml", edited, strlen(edited), schema, &r, &err),
                         NT_ERR_UNSUPPORTED);
        char want[128];
        snprintf(want, sizeof want, "rule type '%s' is not supported", types[i]);
        ck_assert_msg(strstr(err.msg, want), "%s", err.msg);
        ct_schema_free(schema);
    }
    free(text);
}
END_TEST

START_TEST(the_upstream_typo_is_a_warning_with_a_suggestion)
{
    char *text = tu_read_file(NT_TEST_DATA "/rules/seed_upstream.toml", NULL);
    ck_assert_ptr_nonnull(text);
    ct_schema *schema = ct_schema_new();
    nt_rule *r = NULL;
    nt_err err;
    ck_assert_int_eq(rule_load("seed.toml", text, strlen(text), schema, &r, &err), NT_OK);
    ck_assert_int_eq(json_array_size(r->warnings), 1);
    json_t *w = json_array_get(r->warnings, 0);
    ck_assert_str_eq(json_string_value(json_object_get(w, "code")), "unknown_action");
    const char *msg = json_string_value(json_object_get(w, "message"));
    ck_assert_ptr_nonnull(strstr(msg, "\"DescribeOrgnanizationalUnit\""));
    ck_assert_ptr_nonnull(strstr(msg, "did you mean DescribeOrganizationalUnit?"));
    ck_assert_int_eq(r->window_ms, 10LL * 86400 * 1000);
    ck_assert_int_eq(r->lookback_ms, 6 * 60 * 1000);
    ck_assert_str_eq(r->window_text, "10d");
    ck_assert_int_eq(r->n_terms, 2);
    ck_assert_int_eq(r->n_inv, 12);
    rule_free(r);
    ct_schema_free(schema);
    free(text);
}
END_TEST

START_TEST(a_rule_that_can_never_alert_is_inert_and_its_records_are_not_parsed)
{
    /* The seed rule with a new_terms field the view never produces (host.name). */
    char *text =
        tu_read_file(NT_TEST_DATA "/../../rules/aws_account_discovery_by_rare_user.toml", NULL);
    ck_assert_ptr_nonnull(text);
    const char *from = "\"user.name\"]";
    char *at = strstr(text, from);
    ck_assert_ptr_nonnull(at);
    char edited[65536];
    snprintf(edited, sizeof edited, "%.*s\"host.name\"]%s", (int)(at - text), text,
             at + strlen(from));
    nt_ruleset rs = {.schema = ct_schema_new(), .n = 1};
    nt_rule *r = NULL;
    nt_err err = {{0}};
    ck_assert_int_eq(rule_load("x.toml", edited, strlen(edited), rs.schema, &r, &err), NT_OK);
    ck_assert_int_eq(r->inert, 1);
    rs.rules = &r;
    char *rec =
        tu_read_file(NT_TEST_DATA "/cloudtrail/organizations_ListAccounts_IAMUser.json", NULL);
    ck_assert_ptr_nonnull(rec);
    for (int pf = 0; pf < 2; pf++) {
        pipe_run p;
        pipe_init(&p, &rs, NULL, 1795843752000);
        p.prefilter = pf;
        pipe_unit(&p, 0, 0, rec, strlen(rec));
        ck_assert_int_eq(p.n_obs, 0);
        ck_assert_int_eq(p.st.rule_matches, 0); /* not even evaluated */
        /* with the prefilter, the record is not parsed at all */
        ck_assert_int_eq(p.counts[PIPE_SHAPE_RAW][PIPE_PREFILTERED], pf ? 1 : 0);
        pipe_free(&p);
    }
    /* The shipped rule as it is: evaluated, a candidate. */
    nt_rule *live = NULL;
    ck_assert_int_eq(rule_load("y.toml", text, strlen(text), rs.schema, &live, &err), NT_OK);
    ck_assert_int_eq(live->inert, 0);
    rs.rules = &live;
    pipe_run p;
    pipe_init(&p, &rs, NULL, 1795843752000);
    pipe_unit(&p, 0, 0, rec, strlen(rec));
    ck_assert_int_eq(p.n_obs, 1);
    pipe_free(&p);
    rule_free(r);
    rule_free(live);
    ct_schema_free(rs.schema);
    free(rec);
    free(text);
}
END_TEST

/* Each row: a replacement applied to the shipped rule, and the error expected. */
static const struct {
    const char *find, *replace, *want;
} broken[] = {
    {"type = \"new_terms\"", "type = \"eql\"", "rule type 'eql' is not supported"},
    {"type = \"new_terms\"", "type = \"threshold\"", "rule.threshold is missing"},
    {"[rule.new_terms]", "[rule.alert_suppression]\ngroup_by = []\n[rule.new_terms]",
     "group_by needs 1 to 3 fields, not 0"},
    {"[rule.new_terms]",
     "[rule.alert_suppression]\ngroup_by = [\"user.name\"]\nduration = {value = 5, unit = "
     "\"d\"}\n[rule.new_terms]",
     "duration must be"},
    {"[rule.new_terms]",
     "[rule.alert_suppression]\ngroup_by = [\"user.name\"]\nmissing_fields_strategy = "
     "\"ignore\"\n[rule.new_terms]",
     "missing_fields_strategy"},
    {"language = \"kuery\"", "language = \"lucene\"", "query language 'lucene' is not supported"},
    {"value = \"now-10d\"", "value = \"now-5m\"", "is not longer than the rule's lookback"},
    {"value = \"now-10d\"", "value = \"yesterday\"", "not of the form now-<duration>"},
    {"value = [\"cloud.account.id\", \"user.name\"]", "value = []", "1 to 3 new_terms fields"},
    {"value = [\"cloud.account.id\", \"user.name\"]",
     "value = [\"a.b\", \"c.d\", \"e.f\", \"g.h\"]", "1 to 3 new_terms fields, not 4"},
    {"value = [\"cloud.account.id\", \"user.name\"]", "value = [\"user.name\", \"user.name\"]",
     "listed twice"},
    {"rule_id = \"444c8fad-874f-4f59-b0ea-cf26cea478bd\"", "", "rule.rule_id is missing"},
    {"risk_score = 21", "risk_score = 210", "outside 0..100"},
    {"risk_score = 21", "risk_score = \"21\"", "risk_score"},
    {"    and event.outcome: \"success\"", "    and event.outcome: (\"success\"",
     "rule.query: line"},
    {"name = \"AWS Account Discovery By Rare User\"", "name = \"AWS Account", "line"},
    {"[rule.new_terms]", "[newtermsd]\nlearning_period = \"soon\"\n[rule.new_terms]",
     "learning_period"},
};

START_TEST(broken_rules_are_refused_with_a_precise_message)
{
    char *text =
        tu_read_file(NT_TEST_DATA "/../../rules/aws_account_discovery_by_rare_user.toml", NULL);
    ck_assert_ptr_nonnull(text);
    char *at = strstr(text, broken[_i].find);
    ck_assert_msg(at != NULL, "row %d: '%s' not in the rule", _i, broken[_i].find);
    size_t flen = strlen(broken[_i].find), rlen = strlen(broken[_i].replace);
    char *edited = malloc(strlen(text) + rlen + 1);
    memcpy(edited, text, (size_t)(at - text));
    memcpy(edited + (at - text), broken[_i].replace, rlen);
    memcpy(edited + (at - text) + rlen, at + flen, strlen(at + flen) + 1);
    ct_schema *schema = ct_schema_new();
    nt_rule *r = NULL;
    nt_err err = {{0}};
    ck_assert_int_ne(rule_load("x.toml", edited, strlen(edited), schema, &r, &err), NT_OK);
    ck_assert_ptr_null(r);
    ck_assert_msg(strstr(err.msg, broken[_i].want) != NULL, "row %d: got '%s'", _i, err.msg);
    ct_schema_free(schema);
    free(edited);
    free(text);
}
END_TEST

START_TEST(a_learning_period_can_be_set_per_rule)
{
    char *text =
        tu_read_file(NT_TEST_DATA "/../../rules/aws_account_discovery_by_rare_user.toml", NULL);
    char *edited = malloc(strlen(text) + 64);
    sprintf(edited, "%s\n[newtermsd]\nlearning_period = \"3d\"\n", text);
    ct_schema *schema = ct_schema_new();
    nt_rule *r = NULL;
    nt_err err;
    ck_assert_int_eq(rule_load("x.toml", edited, strlen(edited), schema, &r, &err), NT_OK);
    ck_assert_int_eq(r->learning_ms, 3LL * 86400 * 1000);
    json_t *j = rule_to_json(r);
    ck_assert_str_eq(json_string_value(json_object_get(j, "history_window")), "10d");
    json_decref(j);
    rule_free(r);
    ct_schema_free(schema);
    free(edited);
    free(text);
}
END_TEST

START_TEST(duplicate_rule_ids_are_refused)
{
    nt_ruleset *rs = NULL;
    nt_err err;
    /* tests/data/rules holds the upstream seed; the shipped rule has the same id. */
    char dir[] = "/tmp/nt-rules-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "cp %s/rules/seed_upstream.toml %s/a.toml && cp %s/rules/seed_upstream.toml %s/b.toml",
             NT_TEST_DATA, dir, NT_TEST_DATA, dir);
    ck_assert_int_eq(system(cmd), 0);
    ck_assert_int_eq(ruleset_load_dir(dir, 0, &rs, &err), NT_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(err.msg, "already used"));
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    ck_assert_int_eq(system(cmd), 0);
    ck_assert_int_eq(ruleset_load_dir("/nonexistent/rules", 0, &rs, &err), NT_ERR_IO);
}
END_TEST

static Suite *rule_suite(void)
{
    Suite *s = suite_create("rule");
    TCase *tc = tcase_create("load");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, every_elastic_aws_new_terms_rule_loads);
    tcase_add_test(tc, all_query_and_threshold_rules_load);
    tcase_add_test(tc, other_rule_types_are_refused_with_the_reason);
    tcase_add_test(tc, the_upstream_typo_is_a_warning_with_a_suggestion);
    tcase_add_test(tc, a_rule_that_can_never_alert_is_inert_and_its_records_are_not_parsed);
    tcase_add_loop_test(tc, broken_rules_are_refused_with_a_precise_message, 0,
                        sizeof broken / sizeof broken[0]);
    tcase_add_test(tc, a_learning_period_can_be_set_per_rule);
    tcase_add_test(tc, duplicate_rule_ids_are_refused);
    suite_add_tcase(s, tc);
    return s;
}

NT_TEST_MAIN(rule_suite)

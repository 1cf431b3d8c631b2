/*
 * Unit tests for catalog.c: the action tables are sorted and free of
 * duplicates, lookups are exact, suggestions find the intended action, and
 * every organizations/iam/sts/signin action that the copied Elastic rules
 * (tests/data/toml/rules/) name is known — except the upstream typo
 * "DescribeOrgnanizationalUnit", for which the suggestion is the real name.
 */
#include "catalog.h"
#include "toml.h"
#include "testutil.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RULES_DIR NT_TEST_DATA "/toml/rules"
#define ORG "organizations.amazonaws.com"
#define IAM "iam.amazonaws.com"
#define STS "sts.amazonaws.com"
#define SIGNIN "signin.amazonaws.com"
#define TYPO "DescribeOrgnanizationalUnit"

static const char *const providers[] = {ORG, IAM, STS, SIGNIN};

/* ---- helpers ------------------------------------------------------------ */

/* The rule.query of a rule file, as a new string. */
static char *rule_query(const char *path)
{
    size_t len;
    char *text = tu_read_file(path, &len);
    json_t *doc = NULL;
    nt_err err = {{0}};
    ck_assert_msg(toml_parse(text, len, &doc, &err) == NT_OK, "%s: %s", path, err.msg);
    const char *query = json_string_value(json_object_get(json_object_get(doc, "rule"), "query"));
    ck_assert_msg(query != NULL, "%s: no rule.query", path);
    char *copy = strdup(query);
    ck_assert_ptr_nonnull(copy);
    json_decref(doc);
    free(text);
    return copy;
}

/* ---- the tables --------------------------------------------------------- */

START_TEST(action_tables_are_sorted_and_without_duplicates)
{
    const char *const *actions = NULL;
    size_t n = catalog_actions(providers[_i], &actions);
    ck_assert_ptr_nonnull(actions);
    ck_assert_uint_gt(n, 5);
    for (size_t i = 0; i < n; i++) {
        ck_assert_uint_gt(strlen(actions[i]), 0);
        if (i > 0)
            ck_assert_msg(strcmp(actions[i - 1], actions[i]) < 0, "%s: \"%s\" then \"%s\"",
                          providers[_i], actions[i - 1], actions[i]);
    }
}
END_TEST

START_TEST(every_table_entry_is_found_by_lookup)
{
    const char *const *actions = NULL;
    size_t n = catalog_actions(providers[_i], &actions);
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(catalog_has_action(providers[_i], actions[i], strlen(actions[i])),
                      "%s: %s not found", providers[_i], actions[i]);
}
END_TEST

START_TEST(known_providers_are_recognised_exactly)
{
    for (size_t i = 0; i < sizeof providers / sizeof providers[0]; i++)
        ck_assert(catalog_has_provider(providers[i]));
    ck_assert(!catalog_has_provider("ec2.amazonaws.com"));
    ck_assert(!catalog_has_provider("IAM.amazonaws.com"));
    ck_assert(!catalog_has_provider("iam.amazonaws.com "));
    ck_assert(!catalog_has_provider(""));
    ck_assert(!catalog_has_provider(NULL));
    const char *const *actions = (const char *const *)1;
    ck_assert_uint_eq(catalog_actions("ec2.amazonaws.com", &actions), 0);
    ck_assert_ptr_null(actions);
}
END_TEST

START_TEST(lookups_are_exact_and_take_slices)
{
    ck_assert(catalog_has_action(ORG, "ListAccounts", 12));
    ck_assert(catalog_has_action(ORG, "ListAccountsForParent", 12)); /* the slice "ListAccounts" */
    ck_assert(catalog_has_action(ORG, "ListAccountsForParent", 21));
    ck_assert(!catalog_has_action(ORG, "ListAccount", 11));
    ck_assert(!catalog_has_action(ORG, "listaccounts", 12));
    ck_assert(!catalog_has_action(ORG, "ListAccounts ", 13));
    ck_assert(!catalog_has_action(ORG, "", 0));
    ck_assert(!catalog_has_action(ORG, "ListAccountAliases", 18)); /* an IAM action */
    ck_assert(catalog_has_action(IAM, "ListAccountAliases", 18));
    ck_assert(!catalog_has_action("ec2.amazonaws.com", "ListAccounts", 12));
    ck_assert(!catalog_has_action(NULL, "ListAccounts", 12));
    /* first and last entries, where an off-by-one in the search shows */
    ck_assert(catalog_has_action(ORG, "AcceptHandshake", 15));
    ck_assert(catalog_has_action(ORG, "UpdatePolicy", 12));
    ck_assert(catalog_has_action(IAM, "AddClientIDToOpenIDConnectProvider", 34));
    ck_assert(catalog_has_action(IAM, "UploadSigningCertificate", 24));
}
END_TEST

/* ---- suggestions -------------------------------------------------------- */

static const struct {
    const char *provider, *input, *want; /* want NULL = no suggestion */
} suggest_cases[] = {
    {ORG, TYPO, "DescribeOrganizationalUnit"},
    {ORG, "ListAcounts", "ListAccounts"},
    {ORG, "listaccounts", "ListAccounts"}, /* case-only difference wins outright */
    {ORG, "LISTROOTS", "ListRoots"},
    {ORG, "ListRoot", "ListRoots"},
    {ORG, "ListAccountsXYZ", "ListAccounts"}, /* 3 edits allowed at length 15 */
    {ORG, "ListAccountsWXYZ", NULL},          /* 4 edits are too many at length 16 */
    {ORG, "ListAccounts", "ListAccounts"},    /* a known action is its own suggestion */
    {IAM, "ListAccountAlias", "ListAccountAliases"},
    {IAM, "GetAcountSummary", "GetAccountSummary"},
    {STS, "AssumeRoel", "AssumeRole"},
    {STS, "AsusmeRoel", "AssumeRole"}, /* two swaps: 2 edits, not 4 */
    {STS, "GetCallerIdentiy", "GetCallerIdentity"},
    {SIGNIN, "ConsoleLogn", "ConsoleLogin"},
    {ORG, "DescribeInstances", NULL},
    {IAM, "Foo", NULL},
    {IAM, "", NULL},
    {"ec2.amazonaws.com", "DescribeInstances", NULL},
};

START_TEST(suggestions_name_the_closest_action)
{
    const char *got = catalog_suggest(suggest_cases[_i].provider, suggest_cases[_i].input,
                                      strlen(suggest_cases[_i].input));
    const char *want = suggest_cases[_i].want;
    ck_assert_msg(want ? got && strcmp(got, want) == 0 : got == NULL, "%s: suggested %s, want %s",
                  suggest_cases[_i].input, got ? got : "(none)", want ? want : "(none)");
}
END_TEST

START_TEST(overlong_input_gets_no_suggestion)
{
    char buf[300];
    memset(buf, 'A', sizeof buf);
    memcpy(buf, "ListAccounts", 12);
    ck_assert_ptr_null(catalog_suggest(ORG, buf, sizeof buf));
    ck_assert_ptr_null(catalog_suggest(ORG, NULL, 0));
}
END_TEST

/* ---- the actions the copied rules name ---------------------------------- */

/* Written by hand from the rule files: provider, the file, and the actions
 * (space-separated) its query names for that provider. This covers the rules
 * the scan below must skip: several providers in one query, or (the Bedrock
 * rule) STS actions named under `not` without their provider. */
static const struct {
    const char *provider, *file, *actions;
} rule_actions[] = {
    {ORG, "aws_account_discovery_by_rare_user.toml",
     "DescribeOrganization ListAccounts ListRoots ListOrganizationalUnitsForParent "
     "ListAccountsForParent "
     "ListPolicies ListAWSServiceAccessForOrganization ListDelegatedAdministrators "
     "ListDelegatedServicesForAccount DescribeResourcePolicy"},
    {IAM, "aws_account_discovery_by_rare_user.toml", "ListAccountAliases GetAccountSummary"},
    {ORG, "aws-new-terms/discovery_organization_discovery_by_rare_user.toml",
     "DescribeOrganization ListAccounts ListRoots ListOrganizationalUnitsForParent "
     "ListAccountsForParent "
     "ListPolicies ListAWSServiceAccessForOrganization ListDelegatedAdministrators "
     "ListDelegatedServicesForAccount DescribeResourcePolicy"},
    {IAM, "aws-new-terms/discovery_organization_discovery_by_rare_user.toml",
     "ListAccountAliases GetAccountSummary"},
    {ORG, "aws-query/defense_evasion_organizations_leave_organization.toml", "LeaveOrganization"},
    {ORG, "aws-query/impact_aws_account_closed.toml", "CloseAccount"},
    {IAM, "aws-new-terms/defense_evasion_iam_managed_policy_deleted_unusual_identity.toml",
     "DeletePolicy"},
    {IAM, "aws-new-terms/discovery_new_terms_vpn_asn_discovery_api_calls.toml",
     "ListUsers ListRoles ListAccessKeys GetAccountSummary ListAccountAliases ListGroups "
     "ListMFADevices"},
    {STS, "aws-new-terms/discovery_new_terms_vpn_asn_discovery_api_calls.toml",
     "GetCallerIdentity"},
    {IAM, "aws-new-terms/persistence_iam_create_user_via_assumed_role_on_ec2_instance.toml",
     "CreateUser"},
    {IAM, "aws-new-terms/persistence_iam_oidc_provider_created.toml",
     "CreateOpenIDConnectProvider"},
    {IAM, "aws-new-terms/privilege_escalation_iam_customer_managed_policy_attached_to_role.toml",
     "AttachRolePolicy"},
    {IAM, "aws-new-terms/privilege_escalation_iam_update_assume_role_policy.toml",
     "UpdateAssumeRolePolicy"},
    {IAM, "aws-query/credential_access_iam_user_addition_to_group.toml", "AddUserToGroup"},
    {IAM, "aws-query/defense_evasion_iam_account_password_policy_deleted.toml",
     "DeleteAccountPasswordPolicy"},
    {IAM, "aws-query/impact_iam_deactivate_mfa_device.toml", "DeactivateMFADevice"},
    {IAM, "aws-query/impact_iam_group_deletion.toml", "DeleteGroup"},
    {IAM, "aws-query/persistence_iam_group_creation.toml", "CreateGroup"},
    {IAM, "aws-query/persistence_iam_login_profile_created_or_modified.toml",
     "CreateLoginProfile UpdateLoginProfile"},
    {IAM, "aws-query/persistence_iam_saml_provider_created.toml", "CreateSAMLProvider"},
    {IAM, "aws-query/persistence_sensitive_operations_via_cloudshell.toml",
     "CreateAccessKey CreateUser AttachUserPolicy PutUserPolicy CreateRole AttachRolePolicy "
     "PutRolePolicy "
     "CreateInstanceProfile AddRoleToInstanceProfile"},
    {IAM,
     "aws-query/"
     "privilege_escalation_iam_customer_managed_policy_version_created_or_set_default.toml",
     "CreatePolicyVersion SetDefaultPolicyVersion"},
    {IAM, "aws-query/privilege_escalation_iam_inline_policy_added_to_group.toml", "PutGroupPolicy"},
    {IAM, "aws-query/privilege_escalation_iam_permissions_boundary_modified.toml",
     "PutUserPermissionsBoundary PutRolePermissionsBoundary DeleteUserPermissionsBoundary "
     "DeleteRolePermissionsBoundary"},
    {IAM, "aws-query/privilege_escalation_iam_privilege_operations_via_lambda_execution_role.toml",
     "AddRoleToInstanceProfile AddUserToGroup AttachGroupPolicy AttachRolePolicy AttachUserPolicy "
     "CreateAccessKey "
     "CreateInstanceProfile CreateRole CreateUser PutRolePolicy PutUserPolicy"},
    {IAM, "aws-query/privilege_escalation_iam_saml_provider_updated.toml", "UpdateSAMLProvider"},
    {STS, "aws-new-terms/defense_evasion_sts_get_federation_token.toml", "GetFederationToken"},
    {STS, "aws-new-terms/discovery_new_terms_sts_getcalleridentity.toml", "GetCallerIdentity"},
    {STS, "aws-new-terms/discovery_new_terms_sts_getcalleridentity_ec2_role_new_source_as.toml",
     "GetCallerIdentity"},
    {STS, "aws-new-terms/persistence_sts_assume_role_with_new_mfa.toml",
     "AssumeRole AssumeRoleWithSAML AssumeRoleWithWebIdentity"},
    {STS, "aws-new-terms/privilege_escalation_role_assumption_by_service.toml", "AssumeRole"},
    {STS, "aws-new-terms/privilege_escalation_role_assumption_by_user.toml", "AssumeRole"},
    {STS,
     "aws-new-terms/privilege_escalation_sts_assume_root_from_rare_user_and_member_account.toml",
     "AssumeRoot"},
    {STS, "aws-new-terms/privilege_escalation_sts_role_chaining.toml", "AssumeRole"},
    {STS,
     "aws-query/initial_access_assume_role_with_web_identity_kubernetes_sa_from_external_asn.toml",
     "AssumeRoleWithWebIdentity"},
    {STS, "aws-query/privilege_escalation_bedrock_phantom_user_activity_outside_bedrock.toml",
     "GetCallerIdentity GetSessionToken GetAccessKeyInfo"},
    {STS, "aws-query/privilege_escalation_sts_get_federation_token_administrator_access.toml",
     "GetFederationToken"},
    {SIGNIN, "aws-new-terms/initial_access_iam_user_console_login_without_mfa.toml",
     "ConsoleLogin"},
    {SIGNIN, "aws-query/initial_access_console_login_root.toml", "ConsoleLogin"},
    {SIGNIN, "aws-query/initial_access_password_recovery.toml", "PasswordRecoveryRequested"},
    {SIGNIN, "aws-query/initial_access_signin_console_login_federated_user.toml", "ConsoleLogin"},
};

START_TEST(every_action_the_rules_name_is_in_the_catalogue)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", RULES_DIR, rule_actions[_i].file);
    char *query = rule_query(path);
    const char *s = rule_actions[_i].actions;
    size_t checked = 0;
    while (*s) {
        size_t n = strcspn(s, " ");
        char action[128];
        snprintf(action, sizeof action, "%.*s", (int)n, s);
        ck_assert_msg(strstr(query, action) != NULL, "%s does not name %s", path, action);
        ck_assert_msg(catalog_has_action(rule_actions[_i].provider, action, n),
                      "%s: %s is not an action of %s", path, action, rule_actions[_i].provider);
        checked++;
        s += n;
        s += strspn(s, " ");
    }
    ck_assert_uint_gt(checked, 0);
    free(query);
}
END_TEST

START_TEST(the_seed_rule_typo_is_unknown_and_gets_the_real_name_suggested)
{
    char *query = rule_query(RULES_DIR "/aws_account_discovery_by_rare_user.toml");
    ck_assert_ptr_nonnull(strstr(query, "\"" TYPO "\""));
    free(query);
    ck_assert(!catalog_has_action(ORG, TYPO, strlen(TYPO)));
    ck_assert_str_eq(catalog_suggest(ORG, TYPO, strlen(TYPO)), "DescribeOrganizationalUnit");
}
END_TEST

/*
 * A rough scan of KQL text, independent of the hand-written table above: for
 * each rule whose query has exactly one event.provider clause (not negated)
 * with one value that the catalogue knows, every literal value of every
 * non-negated event.action clause must be an action of that provider.
 */
typedef struct scan_values {
    size_t n;
    char v[64][64];
} scan_values;

static int scan_is_word(const char *s, size_t n, const char *word)
{
    return strlen(word) == n && memcmp(s, word, n) == 0;
}

/* Is the clause at q negated by a "not" right before it? */
static int scan_negated(const char *query, const char *q)
{
    size_t pos = (size_t)(q - query);
    while (pos > 0 && strchr(" \t\n(", query[pos - 1]))
        pos--;
    if (pos < 3 || memcmp(query + pos - 3, "not", 3) != 0) return 0;
    return pos == 3 || query[pos - 4] == ' ' || query[pos - 4] == '\n';
}

/* Values of the clause `field : value` or `field : (v or v …)` after q. */
static void scan_clause(const char *q, scan_values *out)
{
    out->n = 0;
    q += strspn(q, " \t\n");
    if (*q != ':') return;
    q++;
    q += strspn(q, " \t\n");
    int depth = 0;
    do {
        q += strspn(q, " \t\n");
        if (*q == '(') {
            depth++;
            q++;
            continue;
        }
        if (*q == ')') {
            depth--;
            q++;
            continue;
        }
        const char *start = q;
        size_t n;
        if (*q == '"') {
            start = ++q;
            n = strcspn(q, "\"");
            q += n + (q[n] == '"');
        } else {
            n = strcspn(q, " \t\n()");
            q += n;
        }
        if (n == 0) break;
        if (scan_is_word(start, n, "or") || scan_is_word(start, n, "and") ||
            scan_is_word(start, n, "not"))
            continue;
        if (out->n < 64 && n < 64) {
            memcpy(out->v[out->n], start, n);
            out->v[out->n][n] = '\0';
            out->n++;
        }
    } while (depth > 0 && *q);
}

typedef struct scan_totals {
    size_t rules, pairs;
} scan_totals;

static void scan_rule(const char *path, void *ctx)
{
    scan_totals *totals = ctx;
    char *query = rule_query(path);
    const char *provider = NULL;
    static scan_values values;
    int provider_clauses = 0;
    for (const char *q = strstr(query, "event.provider"); q; q = strstr(q + 1, "event.provider")) {
        provider_clauses++;
        scan_clause(q + strlen("event.provider"), &values);
        if (!scan_negated(query, q) && values.n == 1) {
            for (size_t i = 0; i < sizeof providers / sizeof providers[0]; i++)
                if (strcmp(values.v[0], providers[i]) == 0) provider = providers[i];
        }
    }
    if (provider_clauses == 1 && provider) {
        totals->rules++;
        for (const char *q = strstr(query, "event.action"); q; q = strstr(q + 1, "event.action")) {
            if (scan_negated(query, q)) continue;
            scan_clause(q + strlen("event.action"), &values);
            for (size_t i = 0; i < values.n; i++) {
                if (strchr(values.v[i], '*')) continue;
                ck_assert_msg(catalog_has_action(provider, values.v[i], strlen(values.v[i])),
                              "%s: %s is not an action of %s", path, values.v[i], provider);
                totals->pairs++;
            }
        }
    }
    free(query);
}

START_TEST(a_scan_of_single_provider_rules_finds_only_known_actions)
{
    scan_totals totals = {0};
    tu_walk(RULES_DIR, ".toml", 3, scan_rule, &totals);
    /* the scan really looked: 37 copied rules (35 new_terms/query, 2
     * threshold) name exactly one of the four providers, and they list 60
     * literal event.action values */
    ck_assert_uint_eq(totals.rules, 37);
    ck_assert_uint_eq(totals.pairs, 60);
}
END_TEST

static Suite *catalog_suite(void)
{
    Suite *s = suite_create("catalog");
    TCase *tc = tcase_create("catalog");
    tcase_add_loop_test(tc, action_tables_are_sorted_and_without_duplicates, 0,
                        (int)(sizeof providers / sizeof providers[0]));
    tcase_add_loop_test(tc, every_table_entry_is_found_by_lookup, 0,
                        (int)(sizeof providers / sizeof providers[0]));
    tcase_add_test(tc, known_providers_are_recognised_exactly);
    tcase_add_test(tc, lookups_are_exact_and_take_slices);
    tcase_add_loop_test(tc, suggestions_name_the_closest_action, 0,
                        (int)(sizeof suggest_cases / sizeof suggest_cases[0]));
    tcase_add_test(tc, overlong_input_gets_no_suggestion);
    tcase_add_loop_test(tc, every_action_the_rules_name_is_in_the_catalogue, 0,
                        (int)(sizeof rule_actions / sizeof rule_actions[0]));
    tcase_add_test(tc, the_seed_rule_typo_is_unknown_and_gets_the_real_name_suggested);
    tcase_add_test(tc, a_scan_of_single_provider_rules_finds_only_known_actions);
    suite_add_tcase(s, tc);
    return s;
}

NT_TEST_MAIN(catalog_suite)

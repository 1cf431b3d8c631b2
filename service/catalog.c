/*
 * catalog.c — built-in lists of AWS API actions per CloudTrail event source,
 * used by rule lint to catch event.action values that can never match (the
 * seed rule's upstream typo "DescribeOrgnanizationalUnit" is the motivating
 * case) and to suggest the action that was meant.
 *
 * How it works. Each provider has one static, sorted array of names; lookups
 * are a binary search with a length-aware byte comparison, so callers can pass
 * slices of a query string without copying. Suggestions scan the provider's
 * list (at most a few hundred names) computing the optimal-string-alignment
 * distance, the usual "Damerau-Levenshtein" of spell checkers: it counts an
 * adjacent swap as one edit, which is the commonest typing slip. Rows live on
 * the stack; inputs over CATALOG_MAX_ACTION_LEN bytes get no suggestion, which
 * bounds the work and needs no allocation.
 *
 * Sources. The names are the operation names of the AWS API references:
 * "AWS Organizations API Reference — Actions", "IAM API Reference — Actions",
 * "AWS STS API Reference — Actions" (each operation is logged by CloudTrail
 * with eventName = operation name and eventSource = the provider below). The
 * sign-in names are the event names documented in "Logging IAM and AWS STS
 * API calls with AWS CloudTrail" (AWS sign-in events) and in the IAM Identity
 * Center sign-in event docs. Keep each array sorted in C byte order
 * (LC_ALL=C sort); tests/unit/test_catalog.c checks that it is.
 */
#include "catalog.h"

#include <string.h>

#define CATALOG_MAX_ACTION_LEN 128

/* AWS Organizations (organizations.amazonaws.com). */
static const char *const organizations_actions[] = {
    "AcceptHandshake",
    "AttachPolicy",
    "CancelHandshake",
    "CloseAccount",
    "CreateAccount",
    "CreateGovCloudAccount",
    "CreateOrganization",
    "CreateOrganizationalUnit",
    "CreatePolicy",
    "DeclineHandshake",
    "DeleteOrganization",
    "DeleteOrganizationalUnit",
    "DeletePolicy",
    "DeleteResourcePolicy",
    "DeregisterDelegatedAdministrator",
    "DescribeAccount",
    "DescribeCreateAccountStatus",
    "DescribeEffectivePolicy",
    "DescribeHandshake",
    "DescribeOrganization",
    "DescribeOrganizationalUnit",
    "DescribePolicy",
    "DescribeResourcePolicy",
    "DetachPolicy",
    "DisableAWSServiceAccess",
    "DisablePolicyType",
    "EnableAWSServiceAccess",
    "EnableAllFeatures",
    "EnablePolicyType",
    "InviteAccountToOrganization",
    "LeaveOrganization",
    "ListAWSServiceAccessForOrganization",
    "ListAccounts",
    "ListAccountsForParent",
    "ListAccountsWithInvalidEffectivePolicy",
    "ListChildren",
    "ListCreateAccountStatus",
    "ListDelegatedAdministrators",
    "ListDelegatedServicesForAccount",
    "ListEffectivePolicyValidationErrors",
    "ListHandshakesForAccount",
    "ListHandshakesForOrganization",
    "ListOrganizationalUnitsForParent",
    "ListParents",
    "ListPolicies",
    "ListPoliciesForTarget",
    "ListRoots",
    "ListTagsForResource",
    "ListTargetsForPolicy",
    "MoveAccount",
    "PutResourcePolicy",
    "RegisterDelegatedAdministrator",
    "RemoveAccountFromOrganization",
    "TagResource",
    "UntagResource",
    "UpdateOrganizationalUnit",
    "UpdatePolicy",
};

/* AWS Identity and Access Management (iam.amazonaws.com). */
static const char *const iam_actions[] = {
    "AddClientIDToOpenIDConnectProvider",
    "AddRoleToInstanceProfile",
    "AddUserToGroup",
    "AttachGroupPolicy",
    "AttachRolePolicy",
    "AttachUserPolicy",
    "ChangePassword",
    "CreateAccessKey",
    "CreateAccountAlias",
    "CreateGroup",
    "CreateInstanceProfile",
    "CreateLoginProfile",
    "CreateOpenIDConnectProvider",
    "CreatePolicy",
    "CreatePolicyVersion",
    "CreateRole",
    "CreateSAMLProvider",
    "CreateServiceLinkedRole",
    "CreateServiceSpecificCredential",
    "CreateUser",
    "CreateVirtualMFADevice",
    "DeactivateMFADevice",
    "DeleteAccessKey",
    "DeleteAccountAlias",
    "DeleteAccountPasswordPolicy",
    "DeleteGroup",
    "DeleteGroupPolicy",
    "DeleteInstanceProfile",
    "DeleteLoginProfile",
    "DeleteOpenIDConnectProvider",
    "DeletePolicy",
    "DeletePolicyVersion",
    "DeleteRole",
    "DeleteRolePermissionsBoundary",
    "DeleteRolePolicy",
    "DeleteSAMLProvider",
    "DeleteSSHPublicKey",
    "DeleteServerCertificate",
    "DeleteServiceLinkedRole",
    "DeleteServiceSpecificCredential",
    "DeleteSigningCertificate",
    "DeleteUser",
    "DeleteUserPermissionsBoundary",
    "DeleteUserPolicy",
    "DeleteVirtualMFADevice",
    "DetachGroupPolicy",
    "DetachRolePolicy",
    "DetachUserPolicy",
    "DisableOrganizationsRootCredentialsManagement",
    "DisableOrganizationsRootSessions",
    "EnableMFADevice",
    "EnableOrganizationsRootCredentialsManagement",
    "EnableOrganizationsRootSessions",
    "GenerateCredentialReport",
    "GenerateOrganizationsAccessReport",
    "GenerateServiceLastAccessedDetails",
    "GetAccessKeyLastUsed",
    "GetAccountAuthorizationDetails",
    "GetAccountPasswordPolicy",
    "GetAccountSummary",
    "GetContextKeysForCustomPolicy",
    "GetContextKeysForPrincipalPolicy",
    "GetCredentialReport",
    "GetGroup",
    "GetGroupPolicy",
    "GetInstanceProfile",
    "GetLoginProfile",
    "GetMFADevice",
    "GetOpenIDConnectProvider",
    "GetOrganizationsAccessReport",
    "GetPolicy",
    "GetPolicyVersion",
    "GetRole",
    "GetRolePolicy",
    "GetSAMLProvider",
    "GetSSHPublicKey",
    "GetServerCertificate",
    "GetServiceLastAccessedDetails",
    "GetServiceLastAccessedDetailsWithEntities",
    "GetServiceLinkedRoleDeletionStatus",
    "GetUser",
    "GetUserPolicy",
    "ListAccessKeys",
    "ListAccountAliases",
    "ListAttachedGroupPolicies",
    "ListAttachedRolePolicies",
    "ListAttachedUserPolicies",
    "ListEntitiesForPolicy",
    "ListGroupPolicies",
    "ListGroups",
    "ListGroupsForUser",
    "ListInstanceProfileTags",
    "ListInstanceProfiles",
    "ListInstanceProfilesForRole",
    "ListMFADeviceTags",
    "ListMFADevices",
    "ListOpenIDConnectProviderTags",
    "ListOpenIDConnectProviders",
    "ListOrganizationsFeatures",
    "ListPolicies",
    "ListPoliciesGrantingServiceAccess",
    "ListPolicyTags",
    "ListPolicyVersions",
    "ListRolePolicies",
    "ListRoleTags",
    "ListRoles",
    "ListSAMLProviderTags",
    "ListSAMLProviders",
    "ListSSHPublicKeys",
    "ListServerCertificateTags",
    "ListServerCertificates",
    "ListServiceSpecificCredentials",
    "ListSigningCertificates",
    "ListUserPolicies",
    "ListUserTags",
    "ListUsers",
    "ListVirtualMFADevices",
    "PutGroupPolicy",
    "PutRolePermissionsBoundary",
    "PutRolePolicy",
    "PutUserPermissionsBoundary",
    "PutUserPolicy",
    "RemoveClientIDFromOpenIDConnectProvider",
    "RemoveRoleFromInstanceProfile",
    "RemoveUserFromGroup",
    "ResetServiceSpecificCredential",
    "ResyncMFADevice",
    "SetDefaultPolicyVersion",
    "SetSecurityTokenServicePreferences",
    "SimulateCustomPolicy",
    "SimulatePrincipalPolicy",
    "TagInstanceProfile",
    "TagMFADevice",
    "TagOpenIDConnectProvider",
    "TagPolicy",
    "TagRole",
    "TagSAMLProvider",
    "TagServerCertificate",
    "TagUser",
    "UntagInstanceProfile",
    "UntagMFADevice",
    "UntagOpenIDConnectProvider",
    "UntagPolicy",
    "UntagRole",
    "UntagSAMLProvider",
    "UntagServerCertificate",
    "UntagUser",
    "UpdateAccessKey",
    "UpdateAccountPasswordPolicy",
    "UpdateAssumeRolePolicy",
    "UpdateGroup",
    "UpdateLoginProfile",
    "UpdateOpenIDConnectProviderThumbprint",
    "UpdateRole",
    "UpdateRoleDescription",
    "UpdateSAMLProvider",
    "UpdateSSHPublicKey",
    "UpdateServerCertificate",
    "UpdateServiceSpecificCredential",
    "UpdateSigningCertificate",
    "UpdateUser",
    "UploadSSHPublicKey",
    "UploadServerCertificate",
    "UploadSigningCertificate",
};

/* AWS Security Token Service (sts.amazonaws.com). */
static const char *const sts_actions[] = {
    "AssumeRole",        "AssumeRoleWithSAML",         "AssumeRoleWithWebIdentity",
    "AssumeRoot",        "DecodeAuthorizationMessage", "GetAccessKeyInfo",
    "GetCallerIdentity", "GetFederationToken",         "GetSessionToken",
};

/* AWS sign-in (signin.amazonaws.com): CloudTrail event names, not API
 * operations — console sign-in, role switching, root password recovery and
 * IAM Identity Center authentication. */
static const char *const signin_actions[] = {
    "CheckMfa",  "ConsoleLogin",   "CredentialChallenge",       "CredentialVerification",
    "ExitRole",  "GetSigninToken", "PasswordRecoveryCompleted", "PasswordRecoveryRequested",
    "RenewRole", "SwitchRole",     "UserAuthentication",
};

typedef struct catalog_provider {
    const char *name;
    const char *const *actions;
    size_t count;
} catalog_provider;

#define CATALOG_ENTRY(name, table)                                                                 \
    {                                                                                              \
        (name), (table), sizeof(table) / sizeof((table)[0])                                        \
    }

static const catalog_provider catalog_providers[] = {
    CATALOG_ENTRY("iam.amazonaws.com", iam_actions),
    CATALOG_ENTRY("organizations.amazonaws.com", organizations_actions),
    CATALOG_ENTRY("signin.amazonaws.com", signin_actions),
    CATALOG_ENTRY("sts.amazonaws.com", sts_actions),
};

static const catalog_provider *catalog_find(const char *provider)
{
    if (!provider) return NULL;
    for (size_t i = 0; i < sizeof catalog_providers / sizeof catalog_providers[0]; i++)
        if (strcmp(catalog_providers[i].name, provider) == 0) return &catalog_providers[i];
    return NULL;
}

/* Byte order of the NUL-terminated name against the slice s[0..len). */
static int catalog_compare(const char *name, const char *s, size_t len)
{
    size_t name_len = strlen(name);
    int c = memcmp(name, s, name_len < len ? name_len : len);
    if (c != 0) return c;
    return name_len < len ? -1 : name_len > len ? 1 : 0;
}

int catalog_has_provider(const char *provider)
{
    return catalog_find(provider) != NULL;
}

int catalog_has_action(const char *provider, const char *action, size_t len)
{
    const catalog_provider *p = catalog_find(provider);
    if (!p || !action) return 0;
    size_t lo = 0, hi = p->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = catalog_compare(p->actions[mid], action, len);
        if (c == 0) return 1;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return 0;
}

static char catalog_lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

static int catalog_equal_nocase(const char *name, const char *s, size_t len)
{
    if (strlen(name) != len) return 0;
    for (size_t i = 0; i < len; i++)
        if (catalog_lower(name[i]) != catalog_lower(s[i])) return 0;
    return 1;
}

static size_t catalog_min(size_t a, size_t b)
{
    return a < b ? a : b;
}

/* Optimal-string-alignment distance between a[0..alen) and b[0..blen), or
 * limit + 1 as soon as every entry of a row exceeds limit. Both lengths are at
 * most CATALOG_MAX_ACTION_LEN. */
static size_t catalog_distance(const char *a, size_t alen, const char *b, size_t blen, size_t limit)
{
    size_t rows[3][CATALOG_MAX_ACTION_LEN + 1];
    size_t *before = rows[0], *prev = rows[1], *cur = rows[2];
    if ((alen > blen ? alen - blen : blen - alen) > limit) return limit + 1;
    for (size_t j = 0; j <= blen; j++)
        prev[j] = j;
    for (size_t i = 1; i <= alen; i++) {
        cur[0] = i;
        size_t row_min = cur[0];
        for (size_t j = 1; j <= blen; j++) {
            size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
            size_t d = catalog_min(catalog_min(prev[j] + 1, cur[j - 1] + 1), prev[j - 1] + cost);
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
                d = catalog_min(d, before[j - 2] + 1);
            cur[j] = d;
            row_min = catalog_min(row_min, d);
        }
        if (row_min > limit) return limit + 1;
        size_t *spare = before;
        before = prev;
        prev = cur;
        cur = spare;
    }
    return prev[blen];
}

const char *catalog_suggest(const char *provider, const char *action, size_t len)
{
    const catalog_provider *p = catalog_find(provider);
    if (!p || !action || len == 0 || len > CATALOG_MAX_ACTION_LEN) return NULL;
    size_t limit = len / 5 > 2 ? len / 5 : 2;
    const char *best = NULL;
    size_t best_distance = limit + 1;
    for (size_t i = 0; i < p->count; i++) {
        const char *name = p->actions[i];
        if (catalog_equal_nocase(name, action, len)) return name;
        size_t name_len = strlen(name);
        if (name_len > CATALOG_MAX_ACTION_LEN) continue;
        size_t d = catalog_distance(action, len, name, name_len, best_distance - 1);
        if (d < best_distance) {
            best_distance = d;
            best = name;
        }
    }
    return best;
}

size_t catalog_actions(const char *provider, const char *const **out)
{
    const catalog_provider *p = catalog_find(provider);
    *out = p ? p->actions : NULL;
    return p ? p->count : 0;
}

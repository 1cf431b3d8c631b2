/*
 * catalog.h — the AWS API actions of the services the shipped rules name, so
 * rule lint can flag an event.action value that the named event.provider
 * never logs ("did you mean DescribeOrganizationalUnit?").
 *
 * Providers are CloudTrail eventSource values (= ECS event.provider):
 *   organizations.amazonaws.com  every AWS Organizations API operation
 *   iam.amazonaws.com            every IAM API operation
 *   sts.amazonaws.com            every AWS STS API operation
 *   signin.amazonaws.com         the CloudTrail sign-in event names
 *                                (ConsoleLogin, SwitchRole, …), which are
 *                                events, not a public API
 * All strings are static; nothing here allocates or needs freeing, and every
 * call is safe from any thread. Comparisons are exact and case-sensitive, as
 * KQL keyword matching is.
 */
#ifndef NT_CATALOG_H
#define NT_CATALOG_H

#include <stddef.h>

/* 1 when provider (NUL-terminated) has an action list here, else 0 (also for NULL). */
int catalog_has_provider(const char *provider);

/* 1 when action[0..len) (need not be NUL-terminated) is an action of
 * provider, else 0 (also when the provider is unknown). */
int catalog_has_action(const char *provider, const char *action, size_t len);

/* The action of provider closest to action[0..len) by Damerau-Levenshtein
 * distance (optimal string alignment: insert, delete, substitute, swap two
 * neighbours), when that distance is at most max(2, len / 5); ties go to the
 * first in sorted order. A case-insensitive exact match wins outright. An
 * action that is in the list is its own suggestion. NULL when nothing is close
 * enough, the provider is unknown, or len is 0 or over 128. The result is a
 * static string. */
const char *catalog_suggest(const char *provider, const char *action, size_t len);

/* Point *out at provider's actions, sorted in byte order without duplicates,
 * and return how many there are; 0 with *out = NULL for an unknown provider.
 * The array and its strings are static. */
size_t catalog_actions(const char *provider, const char *const **out);

#endif

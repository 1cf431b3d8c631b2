/*
 * exception.h — rule exceptions in Elastic's exception item model.
 *
 * An item is a JSON document (schema Exception in api/openapi.yaml: id, name, description,
 * rule_id, type "simple", entries, expire_time, comments, tags, os_types,
 * created_at, updated_at). Its entries are ANDed; the items of a set are ORed;
 * an event that matches any active item is dropped by the rule (it neither
 * alerts nor updates history).
 *
 * Entry types: match, match_any, wildcard, exists, each with operator
 * included ("is") or excluded ("is not" = the negation, so it holds when the
 * field is missing). list and nested entries are refused as unsupported.
 *
 * Items are compiled once (field names resolved through an nt_field_source,
 * wildcards compiled, match_any values sorted) and are immutable afterwards,
 * so any number of threads may match against them concurrently.
 */
#ifndef NT_EXCEPTION_H
#define NT_EXCEPTION_H

#include "common.h"

#include <jansson.h>

/* Limits enforced by exc_item_parse (over them the item is refused). They
 * are hard ceilings; the server applies its configured, possibly lower,
 * limits to items written through the API with exc_item_check_limits. */
#define EXC_MAX_ENTRIES 32
#define EXC_MAX_MATCH_ANY 1024
#define EXC_MAX_STRING 4096 /* bytes, for every string in the item */
#define EXC_MAX_ID 128
#define EXC_MAX_LIST 1024 /* tags and comments */
/* Event values longer than this are not indexed (Elastic keyword
 * `ignore_above`, the same 1024 bytes new-terms uses): for exceptions such a
 * value does not exist, so it satisfies no match, match_any, wildcard or
 * exists entry, and an "excluded" entry on it holds. A match/match_any value
 * or wildcard pattern longer than this is refused: it could never match. */
#define EXC_IGNORE_ABOVE 1024
/* Most `*` runs plus `?` in one wildcard pattern. With patterns and values
 * both at most 1024 bytes, one wildcard costs at most ~1M byte steps per
 * value however hostile the pair (see glob.c). */
#define EXC_MAX_WILDCARDS 16

typedef struct exc_item exc_item; /* one compiled, immutable item */

/* Validate and compile one JSON item. `doc` is only read: the item keeps its
 * own deep copy (see exc_item_json). `*src` is copied into the item and used
 * again by exc_item_match, so src->ctx must outlive the item. On success
 * *out owns the new item (free with exc_item_free). On failure *out is NULL,
 * the status is NT_ERR_INVALID (or NT_ERR_UNSUPPORTED for list/nested
 * entries, NT_ERR_NOMEM) and err names the JSON path of the first problem,
 * e.g. "entries[1].field 'foo.bar' is not produced by the CloudTrail view". */
nt_status exc_item_parse(json_t *doc, const nt_field_source *src, exc_item **out, nt_err *err);

/* The configurable limits an API write must also respect (0 = the ceiling). */
typedef struct exc_limits {
    size_t max_entries; /* <= EXC_MAX_ENTRIES */
    size_t max_values;  /* values of one match_any entry, <= EXC_MAX_MATCH_ANY */
} exc_limits;

/* NT_OK, or NT_ERR_INVALID naming the first entry over a limit. */
nt_status exc_item_check_limits(const exc_item *it, const exc_limits *lim, nt_err *err);

/* Frees the item; NULL is a no-op. */
void exc_item_free(exc_item *it);

/* The item's "id", or NULL when the document has none (the server assigns one). */
const char *exc_item_id(const exc_item *it);
/* The rule the item is scoped to; NULL = applies to every rule. */
const char *exc_item_rule_id(const exc_item *it);
/* Expiry in ms since the epoch; -1 = never (expire_time before 1970 is refused). */
nt_time_ms exc_item_expire_time(const exc_item *it);
/* The validated document, borrowed: valid while the item lives; do not modify. */
const json_t *exc_item_json(const exc_item *it);

/* 1 when the item applies to rule_id (an item without rule_id applies to all;
 * rule_id NULL matches only such global items), is active at `now` (no
 * expire_time, or expire_time > now) and every entry holds for `event`, read
 * through the item's field source; else 0. Values of type NT_VAL_NUMBER and
 * NT_VAL_BOOL compare by their text; values longer than EXC_IGNORE_ABOVE are
 * treated as absent. Allocates nothing. */
int exc_item_match(const exc_item *it, const char *rule_id, void *event, nt_time_ms now);

/* An immutable, reference-counted snapshot of items. The server swaps the
 * current set atomically when exceptions change; readers hold a reference
 * for as long as they evaluate against it. */
typedef struct exc_set exc_set;

/* A new set with one reference. Takes ownership of items[0..n) (NULL entries
 * are skipped); the array itself stays the caller's. On allocation failure it
 * frees the items and returns NULL. n may be 0 (an empty set). */
exc_set *exc_set_new(exc_item **items, size_t n);
/* Add a reference and return s (NULL-safe). Thread-safe (C11 atomics). */
exc_set *exc_set_ref(exc_set *s);
/* Drop a reference; the last one frees the set and its items. NULL is a no-op. */
void exc_set_unref(exc_set *s);
/* Number of items; 0 for NULL. */
size_t exc_set_count(const exc_set *s);
/* The i-th item (borrowed), or NULL when i is out of range. */
const exc_item *exc_set_item(const exc_set *s, size_t i);

/* The first item (in set order) that matches, or NULL. A NULL set matches nothing. */
const exc_item *exc_set_match(const exc_set *s, const char *rule_id, void *event, nt_time_ms now);

/* Build a set from a JSON array of stored items (as kept in Redis). An item
 * that fails to parse is skipped and reported through bad (when not NULL)
 * with its "id" (NULL when it has no string id) and the error, so one bad
 * stored item never disables the others. A non-array `array` is reported
 * once (id NULL) and yields an empty set. Returns NULL only when out of
 * memory. The caller keeps ownership of `array`. */
exc_set *exc_set_from_json(json_t *array, const nt_field_source *src,
                           void (*bad)(void *ud, const char *id, const nt_err *e), void *ud);

#endif

/*
 * exception.c — validation, compilation and evaluation of exception items.
 *
 * Parsing runs the same walk over the document twice. The first walk
 * validates the caller's document and compiles nothing; only once the
 * document is known to have the bounded shape of an item is it deep-copied
 * (so a hostile, deeply nested value is refused before anything recurses
 * into it), and the second walk, over the copy, fills the compiled entries.
 * Compiled strings point into the copy, which the item owns and never
 * changes, so a compiled item needs no string allocations of its own.
 *
 * Validation is strict on purpose: an unknown key (a typo such as
 * "vaule" or "rule-id") is refused, because silently ignoring it would turn
 * an exception into one that matches something other than what its author
 * meant. Every message names the JSON path of the offending value.
 *
 * Values longer than EXC_IGNORE_ABOVE are dropped before an entry looks at
 * them (Elastic's keyword ignore_above: not indexed, so absent), which also
 * bounds the text a wildcard ever scans to 1024 bytes.
 *
 * Evaluation follows Elastic's build_exception_filter: an entry reads up to
 * NT_FIELD_MAX_VALUES values into a stack buffer; "included" entries hold
 * when any value satisfies them (ES semantics for multi-valued fields),
 * "excluded" is the negation (ES must_not), so "is not X" holds when the
 * field is missing. Entries of an item are ANDed, items of a set ORed.
 * match_any values are sorted once so matching is a binary search.
 */
#include "exception.h"
#include "glob.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum exc_entry_type {
    EXC_MATCH,
    EXC_MATCH_ANY,
    EXC_WILDCARD,
    EXC_EXISTS,
} exc_entry_type;

typedef struct exc_str {
    const char *ptr; /* into the item's document */
    size_t len;
} exc_str;

typedef struct exc_entry {
    int field;
    exc_entry_type type;
    int excluded;
    exc_str value;   /* match */
    exc_str *values; /* match_any: sorted by (len, bytes); owned */
    size_t n_values;
    nt_glob glob; /* wildcard */
    int has_glob;
} exc_entry;

struct exc_item {
    json_t *doc; /* owned deep copy of the validated document */
    nt_field_source src;
    const char *id;      /* into doc, or NULL */
    const char *rule_id; /* into doc, or NULL = every rule */
    nt_time_ms expire;   /* -1 = never */
    size_t n_entries;
    exc_entry entries[];
};

struct exc_set {
    atomic_size_t refs;
    size_t n;
    exc_item *items[];
};

/* How much of a user string to quote back in a message. */
#define QUOTE_MAX 64
#define QUOTE(s, len) (int)((len) > QUOTE_MAX ? QUOTE_MAX : (len)), (s)

#define PATH_MAX_LEN 48

static const char *const top_keys[] = {
    "id",          "name",     "description", "rule_id",  "type",       "entries",
    "expire_time", "comments", "tags",        "os_types", "created_at", "updated_at",
};
static const char *const entry_keys[] = {"field", "operator", "type", "value"};
static const char *const comment_keys[] = {"comment", "created_at", "created_by",
                                           "id",      "updated_at", "updated_by"};

static int key_known(const char *key, size_t key_len, const char *const *known, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strlen(known[i]) == key_len && memcmp(known[i], key, key_len) == 0) return 1;
    return 0;
}

/* Refuse the first key of obj not in known; `where` prefixes the message. */
static nt_status check_keys(json_t *obj, const char *const *known, size_t n, const char *where,
                            nt_err *err)
{
    const char *key;
    size_t key_len;
    json_t *v;
    json_object_keylen_foreach(obj, key, key_len, v)
    {
        (void)v;
        if (!key_known(key, key_len, known, n))
            return nt_fail(err, NT_ERR_INVALID, "%s key '%.*s'", where, QUOTE(key, key_len));
    }
    return NT_OK;
}

static int is_blank(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r') return 0;
    return 1;
}

/* A string of at most EXC_MAX_STRING bytes; non-blank when nonblank is set. */
static nt_status check_string(const json_t *v, const char *path, int nonblank, exc_str *out,
                              nt_err *err)
{
    if (!json_is_string(v)) return nt_fail(err, NT_ERR_INVALID, "%s must be a string", path);
    size_t len = json_string_length(v);
    if (len > EXC_MAX_STRING)
        return nt_fail(err, NT_ERR_INVALID, "%s is longer than %d bytes", path, EXC_MAX_STRING);
    if (nonblank && is_blank(json_string_value(v), len))
        return nt_fail(err, NT_ERR_INVALID, "%s must not be empty", path);
    if (out) {
        out->ptr = json_string_value(v);
        out->len = len;
    }
    return NT_OK;
}

/* An optional RFC 3339 date-time (absent or null is fine). */
static nt_status check_time(const json_t *v, const char *path, nt_time_ms *out, nt_err *err)
{
    exc_str s = {"", 0};
    if (!v || json_is_null(v)) return NT_OK;
    if (!json_is_string(v))
        return nt_fail(err, NT_ERR_INVALID, "%s must be an RFC 3339 date-time string", path);
    nt_status st = check_string(v, path, 0, &s, err);
    if (st != NT_OK) return st;
    nt_time_ms t;
    if (nt_time_parse(s.ptr, s.len, &t, NULL) != NT_OK)
        return nt_fail(err, NT_ERR_INVALID, "%s '%.*s' is not an RFC 3339 date-time", path,
                       QUOTE(s.ptr, s.len));
    if (t < 0)
        return nt_fail(err, NT_ERR_INVALID, "%s '%.*s' is before 1970-01-01", path,
                       QUOTE(s.ptr, s.len));
    if (out) *out = t;
    return NT_OK;
}

static int id_valid(const char *s, size_t len)
{
    if (len < 1 || len > EXC_MAX_ID) return 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

static int str_cmp(const exc_str *a, const exc_str *b)
{
    if (a->len != b->len) return a->len < b->len ? -1 : 1;
    return a->len ? memcmp(a->ptr, b->ptr, a->len) : 0;
}

static int str_qsort_cmp(const void *a, const void *b)
{
    return str_cmp(a, b);
}

/* A value to compare with event values: longer than EXC_IGNORE_ABOVE, it
 * could never match (such event values are not indexed). */
static nt_status check_indexable(const json_t *v, const char *path, nt_err *err)
{
    if (json_is_string(v) && json_string_length(v) > EXC_IGNORE_ABOVE)
        return nt_fail(err, NT_ERR_INVALID,
                       "%s is %zu bytes; values longer than %d bytes are not indexed "
                       "(ignore_above), so it could never match",
                       path, json_string_length(v), EXC_IGNORE_ABOVE);
    return NT_OK;
}

static nt_status check_match_any(json_t *value, const char *path, exc_entry *e, nt_err *err)
{
    if (!json_is_array(value))
        return nt_fail(err, NT_ERR_INVALID, "%s must be an array of strings", path);
    size_t n = json_array_size(value);
    if (n == 0) return nt_fail(err, NT_ERR_INVALID, "%s must not be empty", path);
    if (n > EXC_MAX_MATCH_ANY)
        return nt_fail(err, NT_ERR_INVALID, "%s has %zu values; at most %d are allowed", path, n,
                       EXC_MAX_MATCH_ANY);
    if (e) {
        e->values = calloc(n, sizeof *e->values);
        if (!e->values) return nt_fail(err, NT_ERR_NOMEM, "out of memory compiling %s", path);
        e->n_values = n;
    }
    for (size_t j = 0; j < n; j++) {
        char elem[PATH_MAX_LEN + 48];
        snprintf(elem, sizeof elem, "%s[%zu]", path, j);
        nt_status st = check_indexable(json_array_get(value, j), elem, err);
        if (st == NT_OK)
            st = check_string(json_array_get(value, j), elem, 1, e ? &e->values[j] : NULL, err);
        if (st != NT_OK) return st;
    }
    if (e) qsort(e->values, n, sizeof *e->values, str_qsort_cmp);
    return NT_OK;
}

/* Validate entries[i]; when e is not NULL also compile it into e. */
static nt_status check_entry(json_t *entry, size_t i, const nt_field_source *src, exc_entry *e,
                             nt_err *err)
{
    char path[PATH_MAX_LEN], sub[PATH_MAX_LEN + 16];
    nt_status st;
    exc_str s = {"", 0};
    snprintf(path, sizeof path, "entries[%zu]", i);
    if (!json_is_object(entry)) return nt_fail(err, NT_ERR_INVALID, "%s must be an object", path);

    /* The type first, so that list and nested entries report as unsupported
     * rather than as having unknown keys. */
    json_t *type = json_object_get(entry, "type");
    snprintf(sub, sizeof sub, "%s.type", path);
    if (!type) return nt_fail(err, NT_ERR_INVALID, "%s is missing", sub);
    if ((st = check_string(type, sub, 1, &s, err)) != NT_OK) return st;
    exc_entry_type kind;
    if (strcmp(s.ptr, "match") == 0 && s.len == 5) {
        kind = EXC_MATCH;
    } else if (strcmp(s.ptr, "match_any") == 0 && s.len == 9) {
        kind = EXC_MATCH_ANY;
    } else if (strcmp(s.ptr, "wildcard") == 0 && s.len == 8) {
        kind = EXC_WILDCARD;
    } else if (strcmp(s.ptr, "exists") == 0 && s.len == 6) {
        kind = EXC_EXISTS;
    } else if ((strcmp(s.ptr, "list") == 0 && s.len == 4) ||
               (strcmp(s.ptr, "nested") == 0 && s.len == 6)) {
        return nt_fail(err, NT_ERR_UNSUPPORTED,
                       "%s: entry type '%s' is not supported (use match, match_any, wildcard or "
                       "exists)",
                       path, s.ptr);
    } else {
        return nt_fail(err, NT_ERR_INVALID,
                       "%s '%.*s' is not one of match, match_any, wildcard, exists", sub,
                       QUOTE(s.ptr, s.len));
    }

    char where[PATH_MAX_LEN + 16];
    snprintf(where, sizeof where, "%s: unknown", path);
    if ((st = check_keys(entry, entry_keys, sizeof entry_keys / sizeof entry_keys[0], where,
                         err)) != NT_OK)
        return st;

    json_t *field = json_object_get(entry, "field");
    snprintf(sub, sizeof sub, "%s.field", path);
    if (!field) return nt_fail(err, NT_ERR_INVALID, "%s is missing", sub);
    if ((st = check_string(field, sub, 1, &s, err)) != NT_OK) return st;
    int id = src->resolve(src->ctx, s.ptr, s.len);
    if (id < 0)
        return nt_fail(err, NT_ERR_INVALID, "%s '%.*s' is not produced by the CloudTrail view", sub,
                       QUOTE(s.ptr, s.len));

    json_t *op = json_object_get(entry, "operator");
    snprintf(sub, sizeof sub, "%s.operator", path);
    if (!op) return nt_fail(err, NT_ERR_INVALID, "%s is missing", sub);
    int excluded;
    if (json_is_string(op) && strcmp(json_string_value(op), "included") == 0 &&
        json_string_length(op) == 8)
        excluded = 0;
    else if (json_is_string(op) && strcmp(json_string_value(op), "excluded") == 0 &&
             json_string_length(op) == 8)
        excluded = 1;
    else
        return nt_fail(err, NT_ERR_INVALID, "%s must be \"included\" or \"excluded\"", sub);

    if (e) {
        e->field = id;
        e->type = kind;
        e->excluded = excluded;
    }

    json_t *value = json_object_get(entry, "value");
    snprintf(sub, sizeof sub, "%s.value", path);
    if (kind == EXC_EXISTS) {
        if (value)
            return nt_fail(err, NT_ERR_INVALID, "%s is not allowed for an exists entry", sub);
        return NT_OK;
    }
    if (!value) return nt_fail(err, NT_ERR_INVALID, "%s is missing", sub);
    switch (kind) {
    case EXC_MATCH:
        if (!json_is_string(value))
            return nt_fail(err, NT_ERR_INVALID, "%s must be a string for a match entry", sub);
        if ((st = check_indexable(value, sub, err)) != NT_OK) return st;
        return check_string(value, sub, 1, e ? &e->value : NULL, err);
    case EXC_MATCH_ANY:
        return check_match_any(value, sub, e, err);
    case EXC_WILDCARD: {
        if (!json_is_string(value))
            return nt_fail(err, NT_ERR_INVALID, "%s must be a string for a wildcard entry", sub);
        if ((st = check_indexable(value, sub, err)) != NT_OK) return st;
        if ((st = check_string(value, sub, 1, &s, err)) != NT_OK) return st;
        nt_glob g;
        nt_err gerr;
        st = nt_glob_compile(&g, s.ptr, s.len, &gerr);
        if (st == NT_ERR_NOMEM) return nt_fail(err, st, "out of memory compiling %s", sub);
        if (st != NT_OK) return nt_fail(err, NT_ERR_INVALID, "%s: %s", sub, gerr.msg);
        if (g.stars + g.ones > EXC_MAX_WILDCARDS) {
            size_t n = g.stars + g.ones;
            nt_glob_free(&g);
            return nt_fail(err, NT_ERR_INVALID,
                           "%s has %zu wildcards (runs of '*' and each '?'); at most %d are "
                           "allowed",
                           sub, n, EXC_MAX_WILDCARDS);
        }
        if (e) {
            e->glob = g;
            e->has_glob = 1;
        } else {
            nt_glob_free(&g);
        }
        return NT_OK;
    }
    case EXC_EXISTS:
        break;
    }
    return NT_OK;
}

static nt_status check_comments(json_t *v, nt_err *err)
{
    if (!v || json_is_null(v)) return NT_OK;
    if (!json_is_array(v))
        return nt_fail(err, NT_ERR_INVALID, "comments must be an array of objects");
    size_t n = json_array_size(v);
    if (n > EXC_MAX_LIST)
        return nt_fail(err, NT_ERR_INVALID, "comments has %zu items; at most %d are allowed", n,
                       EXC_MAX_LIST);
    for (size_t i = 0; i < n; i++) {
        char path[PATH_MAX_LEN], sub[PATH_MAX_LEN + 16];
        json_t *c = json_array_get(v, i);
        nt_status st;
        snprintf(path, sizeof path, "comments[%zu]", i);
        if (!json_is_object(c)) return nt_fail(err, NT_ERR_INVALID, "%s must be an object", path);
        snprintf(sub, sizeof sub, "%s: unknown", path);
        if ((st = check_keys(c, comment_keys, sizeof comment_keys / sizeof comment_keys[0], sub,
                             err)) != NT_OK)
            return st;
        json_t *text = json_object_get(c, "comment");
        snprintf(sub, sizeof sub, "%s.comment", path);
        if (!text) return nt_fail(err, NT_ERR_INVALID, "%s is missing", sub);
        if ((st = check_string(text, sub, 1, NULL, err)) != NT_OK) return st;
        static const char *const who[] = {"created_by", "id", "updated_by"};
        for (size_t k = 0; k < sizeof who / sizeof who[0]; k++) {
            json_t *w = json_object_get(c, who[k]);
            snprintf(sub, sizeof sub, "%s.%s", path, who[k]);
            if (w && !json_is_null(w) && (st = check_string(w, sub, 0, NULL, err)) != NT_OK)
                return st;
        }
        static const char *const when[] = {"created_at", "updated_at"};
        for (size_t k = 0; k < sizeof when / sizeof when[0]; k++) {
            snprintf(sub, sizeof sub, "%s.%s", path, when[k]);
            if ((st = check_time(json_object_get(c, when[k]), sub, NULL, err)) != NT_OK) return st;
        }
    }
    return NT_OK;
}

static nt_status check_tags(json_t *v, nt_err *err)
{
    if (!v || json_is_null(v)) return NT_OK;
    if (!json_is_array(v)) return nt_fail(err, NT_ERR_INVALID, "tags must be an array of strings");
    size_t n = json_array_size(v);
    if (n > EXC_MAX_LIST)
        return nt_fail(err, NT_ERR_INVALID, "tags has %zu items; at most %d are allowed", n,
                       EXC_MAX_LIST);
    for (size_t i = 0; i < n; i++) {
        char path[PATH_MAX_LEN];
        snprintf(path, sizeof path, "tags[%zu]", i);
        nt_status st = check_string(json_array_get(v, i), path, 0, NULL, err);
        if (st != NT_OK) return st;
    }
    return NT_OK;
}

/* Validate the whole item; when it is not NULL (second walk, over the
 * item's own copy) also record what matching needs. */
static nt_status check_item(json_t *doc, const nt_field_source *src, exc_item *it, nt_err *err)
{
    nt_status st;
    exc_str s = {"", 0};
    if (!json_is_object(doc))
        return nt_fail(err, NT_ERR_INVALID, "an exception item must be a JSON object");
    if ((st = check_keys(doc, top_keys, sizeof top_keys / sizeof top_keys[0], "unknown top-level",
                         err)) != NT_OK)
        return st;

    json_t *v = json_object_get(doc, "id");
    if (v && !json_is_null(v)) {
        if (!json_is_string(v)) return nt_fail(err, NT_ERR_INVALID, "id must be a string");
        if (!id_valid(json_string_value(v), json_string_length(v)))
            return nt_fail(err, NT_ERR_INVALID, "id '%.*s' must match [A-Za-z0-9._-]{1,%d}",
                           QUOTE(json_string_value(v), json_string_length(v)), EXC_MAX_ID);
        if (it) it->id = json_string_value(v);
    }

    v = json_object_get(doc, "name");
    if (!v || json_is_null(v)) return nt_fail(err, NT_ERR_INVALID, "name is missing");
    if ((st = check_string(v, "name", 1, NULL, err)) != NT_OK) return st;

    v = json_object_get(doc, "description");
    if (v && !json_is_null(v) && (st = check_string(v, "description", 0, NULL, err)) != NT_OK)
        return st;

    v = json_object_get(doc, "type");
    if (v && !json_is_null(v) &&
        !(json_is_string(v) && strcmp(json_string_value(v), "simple") == 0 &&
          json_string_length(v) == 6))
        return nt_fail(err, NT_ERR_INVALID, "type must be \"simple\"");

    v = json_object_get(doc, "rule_id");
    if (v && !json_is_null(v)) {
        if (!json_is_string(v))
            return nt_fail(err, NT_ERR_INVALID, "rule_id must be a string or null");
        if ((st = check_string(v, "rule_id", 1, &s, err)) != NT_OK) return st;
        if (it) it->rule_id = s.ptr;
    }

    nt_time_ms expire = -1;
    if ((st = check_time(json_object_get(doc, "expire_time"), "expire_time", &expire, err)) !=
            NT_OK ||
        (st = check_time(json_object_get(doc, "created_at"), "created_at", NULL, err)) != NT_OK ||
        (st = check_time(json_object_get(doc, "updated_at"), "updated_at", NULL, err)) != NT_OK)
        return st;
    if (it) it->expire = expire;

    if ((st = check_comments(json_object_get(doc, "comments"), err)) != NT_OK) return st;
    if ((st = check_tags(json_object_get(doc, "tags"), err)) != NT_OK) return st;

    v = json_object_get(doc, "os_types");
    if (v && !json_is_null(v)) {
        if (!json_is_array(v)) return nt_fail(err, NT_ERR_INVALID, "os_types must be an array");
        if (json_array_size(v) > 0)
            return nt_fail(err, NT_ERR_INVALID,
                           "os_types must be empty: CloudTrail events carry no host OS, so an "
                           "item limited to an OS could never match");
    }

    v = json_object_get(doc, "entries");
    if (!v || json_is_null(v)) return nt_fail(err, NT_ERR_INVALID, "entries is missing");
    if (!json_is_array(v)) return nt_fail(err, NT_ERR_INVALID, "entries must be an array");
    size_t n = json_array_size(v);
    if (n == 0) return nt_fail(err, NT_ERR_INVALID, "entries must not be empty");
    if (n > EXC_MAX_ENTRIES)
        return nt_fail(err, NT_ERR_INVALID, "entries has %zu entries; at most %d are allowed", n,
                       EXC_MAX_ENTRIES);
    for (size_t i = 0; i < n; i++) {
        /* Counted before it is filled, so exc_item_free releases a half-compiled entry. */
        if (it) it->n_entries = i + 1;
        if ((st = check_entry(json_array_get(v, i), i, src, it ? &it->entries[i] : NULL, err)) !=
            NT_OK)
            return st;
    }
    return NT_OK;
}

nt_status exc_item_parse(json_t *doc, const nt_field_source *src, exc_item **out, nt_err *err)
{
    exc_item *it = NULL;
    json_t *copy = NULL;
    nt_status st;
    *out = NULL;
    if (!src || !src->resolve || !src->get)
        return nt_fail(err, NT_ERR_INVALID, "exception items need a field source");
    if ((st = check_item(doc, src, NULL, err)) != NT_OK) return st;

    copy = json_deep_copy(doc);
    size_t n = json_array_size(json_object_get(doc, "entries"));
    it = copy ? calloc(1, sizeof *it + n * sizeof it->entries[0]) : NULL;
    if (!it) {
        st = nt_fail(err, NT_ERR_NOMEM, "out of memory compiling an exception item");
        goto fail;
    }
    it->doc = copy;
    copy = NULL;
    it->src = *src;
    it->expire = -1;
    if ((st = check_item(it->doc, src, it, err)) != NT_OK) goto fail;
    *out = it;
    return NT_OK;
fail:
    json_decref(copy);
    exc_item_free(it);
    return st;
}

nt_status exc_item_check_limits(const exc_item *it, const exc_limits *lim, nt_err *err)
{
    size_t max_entries = lim->max_entries ? lim->max_entries : EXC_MAX_ENTRIES;
    size_t max_values = lim->max_values ? lim->max_values : EXC_MAX_MATCH_ANY;
    if (it->n_entries > max_entries)
        return nt_fail(err, NT_ERR_INVALID, "entries has %zu entries; at most %zu are allowed",
                       it->n_entries, max_entries);
    for (size_t i = 0; i < it->n_entries; i++)
        if (it->entries[i].n_values > max_values)
            return nt_fail(err, NT_ERR_INVALID,
                           "entries[%zu].value has %zu values; at most %zu are allowed", i,
                           it->entries[i].n_values, max_values);
    return NT_OK;
}

void exc_item_free(exc_item *it)
{
    if (!it) return;
    for (size_t i = 0; i < it->n_entries; i++) {
        free(it->entries[i].values);
        if (it->entries[i].has_glob) nt_glob_free(&it->entries[i].glob);
    }
    json_decref(it->doc);
    free(it);
}

const char *exc_item_id(const exc_item *it)
{
    return it->id;
}
const char *exc_item_rule_id(const exc_item *it)
{
    return it->rule_id;
}
nt_time_ms exc_item_expire_time(const exc_item *it)
{
    return it->expire;
}
const json_t *exc_item_json(const exc_item *it)
{
    return it->doc;
}

/* 1 when some value satisfies the entry (before the operator is applied). */
static int entry_included(const exc_entry *e, const nt_value *vals, size_t n)
{
    switch (e->type) {
    case EXC_EXISTS:
        return n > 0;
    case EXC_MATCH:
        for (size_t i = 0; i < n; i++)
            if (vals[i].len == e->value.len && vals[i].len &&
                memcmp(vals[i].ptr, e->value.ptr, e->value.len) == 0)
                return 1;
        return 0;
    case EXC_MATCH_ANY:
        for (size_t i = 0; i < n; i++) {
            exc_str key = {vals[i].ptr, vals[i].len};
            if (bsearch(&key, e->values, e->n_values, sizeof *e->values, str_qsort_cmp)) return 1;
        }
        return 0;
    case EXC_WILDCARD:
        for (size_t i = 0; i < n; i++)
            if (nt_glob_match(&e->glob, vals[i].len ? vals[i].ptr : "", vals[i].len)) return 1;
        return 0;
    }
    return 0;
}

int exc_item_match(const exc_item *it, const char *rule_id, void *event, nt_time_ms now)
{
    if (!it) return 0;
    if (it->rule_id && (!rule_id || strcmp(it->rule_id, rule_id) != 0)) return 0;
    if (it->expire >= 0 && it->expire <= now) return 0;
    nt_value vals[NT_FIELD_MAX_VALUES];
    for (size_t i = 0; i < it->n_entries; i++) {
        const exc_entry *e = &it->entries[i];
        size_t n = it->src.get(it->src.ctx, event, e->field, vals, NT_FIELD_MAX_VALUES);
        if (n > NT_FIELD_MAX_VALUES) n = NT_FIELD_MAX_VALUES;
        size_t kept = 0; /* ignore_above: a longer value is not indexed */
        for (size_t k = 0; k < n; k++)
            if (vals[k].len <= EXC_IGNORE_ABOVE) vals[kept++] = vals[k];
        if (entry_included(e, vals, kept) == e->excluded) return 0;
    }
    return 1;
}

exc_set *exc_set_new(exc_item **items, size_t n)
{
    exc_set *s = malloc(sizeof *s + n * sizeof s->items[0]);
    if (!s) {
        for (size_t i = 0; i < n; i++)
            exc_item_free(items[i]);
        return NULL;
    }
    atomic_init(&s->refs, 1);
    s->n = 0;
    for (size_t i = 0; i < n; i++)
        if (items[i]) s->items[s->n++] = items[i];
    return s;
}

exc_set *exc_set_ref(exc_set *s)
{
    if (s) atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
    return s;
}

void exc_set_unref(exc_set *s)
{
    if (!s) return;
    /* acq_rel: the thread that frees sees every other holder's reads finished. */
    if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1) return;
    for (size_t i = 0; i < s->n; i++)
        exc_item_free(s->items[i]);
    free(s);
}

size_t exc_set_count(const exc_set *s)
{
    return s ? s->n : 0;
}

const exc_item *exc_set_item(const exc_set *s, size_t i)
{
    return s && i < s->n ? s->items[i] : NULL;
}

const exc_item *exc_set_match(const exc_set *s, const char *rule_id, void *event, nt_time_ms now)
{
    if (!s) return NULL;
    for (size_t i = 0; i < s->n; i++)
        if (exc_item_match(s->items[i], rule_id, event, now)) return s->items[i];
    return NULL;
}

exc_set *exc_set_from_json(json_t *array, const nt_field_source *src,
                           void (*bad)(void *ud, const char *id, const nt_err *e), void *ud)
{
    nt_err err;
    if (!json_is_array(array)) {
        nt_fail(&err, NT_ERR_INVALID, "stored exceptions are not a JSON array");
        if (bad) bad(ud, NULL, &err);
        return exc_set_new(NULL, 0);
    }
    size_t n = json_array_size(array), kept = 0;
    exc_item **items = calloc(n ? n : 1, sizeof *items);
    if (!items) return NULL;
    for (size_t i = 0; i < n; i++) {
        json_t *doc = json_array_get(array, i);
        nt_status st = exc_item_parse(doc, src, &items[kept], &err);
        if (st == NT_OK) {
            kept++;
            continue;
        }
        if (st == NT_ERR_NOMEM) {
            for (size_t k = 0; k < kept; k++)
                exc_item_free(items[k]);
            free(items);
            return NULL;
        }
        if (bad) {
            json_t *id = json_object_get(doc, "id");
            bad(ud, json_is_string(id) ? json_string_value(id) : NULL, &err);
        }
    }
    exc_set *s = exc_set_new(items, kept);
    free(items);
    return s;
}

/*
 * Unit tests for exception.c: the tables in tests/data/exception/ (cases.json:
 * items or sets against JSON documents; invalid.json: refused items with the
 * expected message), plus limits, hostile inputs, set reference counting
 * across threads and loading stored items.
 *
 * Events are plain JSON documents read through a test field source: a field
 * name is a dotted path, arrays at any level yield several values, null and
 * objects yield none, and names starting with "unknown." cannot be resolved.
 */
#include "exception.h"
#include "testutil.h"

#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- test field source ------------------------------------------------- */

#define TS_MAX_FIELDS 256

typedef struct test_source {
    char *names[TS_MAX_FIELDS];
    size_t lens[TS_MAX_FIELDS];
    size_t n;
} test_source;

/* The event handed to the source: the document plus room for number texts,
 * so concurrent readers of different events never share a buffer. */
typedef struct test_event {
    json_t *doc;
    char text[NT_FIELD_MAX_VALUES][40];
} test_event;

static int ts_resolve(void *ctx, const char *name, size_t len)
{
    test_source *ts = ctx;
    if (len >= 8 && memcmp(name, "unknown.", 8) == 0) return -1;
    for (size_t i = 0; i < ts->n; i++)
        if (ts->lens[i] == len && memcmp(ts->names[i], name, len) == 0) return (int)i;
    if (ts->n == TS_MAX_FIELDS) return -1;
    ts->names[ts->n] = malloc(len + 1);
    ck_assert_ptr_nonnull(ts->names[ts->n]);
    memcpy(ts->names[ts->n], name, len);
    ts->names[ts->n][len] = '\0';
    ts->lens[ts->n] = len;
    return (int)ts->n++;
}

static void ts_walk(json_t *node, const char *path, size_t len, test_event *ev, nt_value *out,
                    size_t max, size_t *n)
{
    if (*n >= max || !node) return;
    if (json_is_array(node)) {
        for (size_t i = 0; i < json_array_size(node); i++)
            ts_walk(json_array_get(node, i), path, len, ev, out, max, n);
        return;
    }
    if (len > 0) {
        if (!json_is_object(node)) return;
        const char *dot = memchr(path, '.', len);
        size_t seg = dot ? (size_t)(dot - path) : len;
        json_t *child = json_object_getn(node, path, seg);
        if (dot)
            ts_walk(child, dot + 1, len - seg - 1, ev, out, max, n);
        else
            ts_walk(child, path + len, 0, ev, out, max, n);
        return;
    }
    nt_value *v = &out[*n];
    if (json_is_string(node)) {
        *v = (nt_value){json_string_value(node), json_string_length(node), NT_VAL_STRING};
    } else if (json_is_integer(node)) {
        int k = snprintf(ev->text[*n], sizeof ev->text[0], "%" JSON_INTEGER_FORMAT,
                         json_integer_value(node));
        *v = (nt_value){ev->text[*n], (size_t)k, NT_VAL_NUMBER};
    } else if (json_is_real(node)) {
        int k = snprintf(ev->text[*n], sizeof ev->text[0], "%.17g", json_real_value(node));
        *v = (nt_value){ev->text[*n], (size_t)k, NT_VAL_NUMBER};
    } else if (json_is_true(node)) {
        *v = (nt_value){"true", 4, NT_VAL_BOOL};
    } else if (json_is_false(node)) {
        *v = (nt_value){"false", 5, NT_VAL_BOOL};
    } else {
        return; /* null and objects are not values */
    }
    (*n)++;
}

static size_t ts_get(void *ctx, void *event, int field, nt_value *out, size_t max)
{
    test_source *ts = ctx;
    test_event *ev = event;
    size_t n = 0;
    ck_assert(field >= 0 && (size_t)field < ts->n);
    ts_walk(ev->doc, ts->names[field], ts->lens[field], ev, out, max, &n);
    return n;
}

static void ts_free(test_source *ts)
{
    for (size_t i = 0; i < ts->n; i++)
        free(ts->names[i]);
}

#define TS_SOURCE(ts) ((nt_field_source){&(ts), ts_resolve, ts_get, NULL, NULL})

/* ---- tables ------------------------------------------------------------ */

static json_t *cases_file;   /* {"doc": default document, "rows": [...]} */
static json_t *invalid_file; /* [{"why","item","status","message"}] */

static json_t *load(const char *name)
{
    char path[512];
    tu_path(path, sizeof path, "%s/exception/%s", NT_TEST_DATA, name);
    return tu_load_json(path, 0);
}

static nt_time_ms row_time(json_t *row)
{
    json_t *now = json_object_get(row, "now");
    nt_time_ms t;
    ck_assert(json_is_string(now));
    ck_assert_int_eq(nt_time_parse(json_string_value(now), json_string_length(now), &t, NULL),
                     NT_OK);
    return t;
}

static exc_item *parse_ok(json_t *doc, test_source *ts, const char *why)
{
    exc_item *it = NULL;
    nt_err err = {{0}};
    nt_field_source src = TS_SOURCE(*ts);
    nt_status st = exc_item_parse(doc, &src, &it, &err);
    ck_assert_msg(st == NT_OK, "%s: item refused: %s", why, err.msg);
    ck_assert_ptr_nonnull(it);
    return it;
}

START_TEST(each_documented_case_matches_as_expected)
{
    json_t *row = json_array_get(json_object_get(cases_file, "rows"), (size_t)_i);
    const char *why = json_string_value(json_object_get(row, "why"));
    json_t *doc = json_object_get(row, "doc");
    test_event ev = {.doc = doc ? doc : json_object_get(cases_file, "doc")};
    json_t *rid = json_object_get(row, "rule_id");
    const char *rule_id = json_is_string(rid) ? json_string_value(rid) : NULL;
    nt_time_ms now = row_time(row);
    test_source ts = {0};

    if (json_object_get(row, "item")) {
        exc_item *it = parse_ok(json_object_get(row, "item"), &ts, why);
        int want = json_is_true(json_object_get(row, "expect"));
        ck_assert_msg(exc_item_match(it, rule_id, &ev, now) == want, "%s: expected %d", why, want);
        /* The same item alone in a set agrees. */
        exc_set *s = exc_set_new(&it, 1);
        ck_assert_ptr_nonnull(s);
        ck_assert_msg((exc_set_match(s, rule_id, &ev, now) != NULL) == want, "%s (as a set)", why);
        exc_set_unref(s);
    } else {
        json_t *items = json_object_get(row, "items");
        size_t n = json_array_size(items);
        exc_item *list[16];
        ck_assert_uint_le(n, 16);
        for (size_t k = 0; k < n; k++)
            list[k] = parse_ok(json_array_get(items, k), &ts, why);
        exc_set *s = exc_set_new(list, n);
        ck_assert_ptr_nonnull(s);
        ck_assert_uint_eq(exc_set_count(s), n);
        const exc_item *hit = exc_set_match(s, rule_id, &ev, now);
        json_t *want = json_object_get(row, "expect_id");
        if (json_is_string(want)) {
            ck_assert_msg(hit != NULL, "%s: expected %s, got no match", why,
                          json_string_value(want));
            ck_assert_str_eq(exc_item_id(hit), json_string_value(want));
        } else {
            ck_assert_msg(hit == NULL, "%s: expected no match, got %s", why, exc_item_id(hit));
        }
        exc_set_unref(s);
    }
    ts_free(&ts);
}
END_TEST

START_TEST(each_invalid_item_is_refused_with_a_message_naming_the_problem)
{
    json_t *row = json_array_get(invalid_file, (size_t)_i);
    const char *why = json_string_value(json_object_get(row, "why"));
    const char *want_msg = json_string_value(json_object_get(row, "message"));
    const char *want_status = json_string_value(json_object_get(row, "status"));
    test_source ts = {0};
    nt_field_source src = TS_SOURCE(ts);
    exc_item *it = (exc_item *)&ts; /* must be reset to NULL on failure */
    nt_err err = {{0}};
    nt_status st = exc_item_parse(json_object_get(row, "item"), &src, &it, &err);
    nt_status want = strcmp(want_status, "unsupported") == 0 ? NT_ERR_UNSUPPORTED : NT_ERR_INVALID;
    ck_assert_msg(st == want, "%s: status %s, want %s (%s)", why, nt_status_name(st), want_status,
                  err.msg);
    ck_assert_ptr_null(it);
    ck_assert_msg(strstr(err.msg, want_msg) != NULL, "%s: message \"%s\" lacks \"%s\"", why,
                  err.msg, want_msg);
    ts_free(&ts);
}
END_TEST

/* ---- helpers for built items ------------------------------------------ */

static json_t *entry(const char *field, const char *type, const char *op, json_t *value)
{
    json_t *e = json_pack("{s:s, s:s, s:s}", "field", field, "type", type, "operator", op);
    if (value) json_object_set_new(e, "value", value);
    return e;
}

static json_t *item_with(json_t *entries)
{
    return json_pack("{s:s, s:o}", "name", "built", "entries", entries);
}

static nt_status try_parse(json_t *doc, nt_err *err)
{
    test_source ts = {0};
    nt_field_source src = TS_SOURCE(ts);
    exc_item *it = NULL;
    nt_status st = exc_item_parse(doc, &src, &it, err);
    exc_item_free(it);
    ts_free(&ts);
    return st;
}

static char *filled(size_t len, char c)
{
    char *s = malloc(len + 1);
    ck_assert_ptr_nonnull(s);
    memset(s, c, len);
    s[len] = '\0';
    return s;
}

/* ---- accessors and ownership ------------------------------------------ */

START_TEST(accessors_report_id_rule_and_expiry)
{
    test_source ts = {0};
    json_t *doc = json_pack("{s:s, s:s, s:s, s:s, s:[o]}", "id", "allow-ci.1", "name", "n",
                            "rule_id", "rule-7", "expire_time", "2026-11-28T05:29:12.123Z",
                            "entries", entry("user.name", "exists", "included", NULL));
    exc_item *it = parse_ok(doc, &ts, "accessors");
    ck_assert_str_eq(exc_item_id(it), "allow-ci.1");
    ck_assert_str_eq(exc_item_rule_id(it), "rule-7");
    ck_assert_int_eq(exc_item_expire_time(it), 1795843752123);
    ck_assert(json_equal((json_t *)exc_item_json(it), doc));
    exc_item_free(it);
    json_decref(doc);

    doc = item_with(json_pack("[o]", entry("user.name", "exists", "included", NULL)));
    it = parse_ok(doc, &ts, "no id");
    ck_assert_ptr_null(exc_item_id(it));
    ck_assert_ptr_null(exc_item_rule_id(it));
    ck_assert_int_eq(exc_item_expire_time(it), -1);
    exc_item_free(it);
    json_decref(doc);
    ts_free(&ts);
}
END_TEST

START_TEST(an_item_keeps_its_own_copy_of_the_document)
{
    test_source ts = {0};
    json_t *doc = json_pack("{s:s, s:s, s:[o]}", "id", "x", "name", "n", "entries",
                            entry("user.name", "match", "included", json_string("alice")));
    exc_item *it = parse_ok(doc, &ts, "copy");
    /* Changing the caller's document afterwards changes nothing in the item. */
    json_t *e0 = json_array_get(json_object_get(doc, "entries"), 0);
    json_object_set_new(e0, "value", json_string("bob"));
    json_object_set_new(doc, "id", json_string("changed"));
    json_t *alice = json_pack("{s:{s:s}}", "user", "name", "alice");
    test_event ev = {.doc = alice};
    ck_assert_int_eq(exc_item_match(it, "r", &ev, 0), 1);
    ck_assert_str_eq(exc_item_id(it), "x");
    ck_assert_str_eq(
        json_string_value(json_object_get(
            json_array_get(json_object_get(exc_item_json(it), "entries"), 0), "value")),
        "alice");
    exc_item_free(it);
    json_decref(doc);
    json_decref(alice);
    ts_free(&ts);
}
END_TEST

START_TEST(parsing_needs_a_field_source_and_free_accepts_null)
{
    json_t *doc = item_with(json_pack("[o]", entry("user.name", "exists", "included", NULL)));
    exc_item *it = NULL;
    nt_err err = {{0}};
    ck_assert_int_eq(exc_item_parse(doc, NULL, &it, &err), NT_ERR_INVALID);
    ck_assert_ptr_null(it);
    ck_assert_ptr_nonnull(strstr(err.msg, "field source"));
    ck_assert_int_eq(exc_item_parse(NULL, NULL, &it, NULL), NT_ERR_INVALID);
    exc_item_free(NULL);
    ck_assert_int_eq(exc_item_match(NULL, "r", NULL, 0), 0);
    json_decref(doc);
}
END_TEST

/* ---- limits -------------------------------------------------------------- */

START_TEST(thirty_two_entries_are_allowed_and_thirty_three_refused)
{
    json_t *entries = json_array();
    for (int i = 0; i < EXC_MAX_ENTRIES; i++)
        json_array_append_new(entries, entry("user.name", "exists", "included", NULL));
    json_t *doc = item_with(entries);
    nt_err err = {{0}};
    ck_assert_int_eq(try_parse(doc, &err), NT_OK);
    json_array_append_new(entries, entry("user.name", "exists", "included", NULL));
    ck_assert_int_eq(try_parse(doc, &err), NT_ERR_INVALID);
    ck_assert_str_eq(err.msg, "entries has 33 entries; at most 32 are allowed");
    json_decref(doc);
}
END_TEST

START_TEST(match_any_takes_1024_values_and_finds_each_of_them)
{
    json_t *values = json_array();
    char buf[32];
    /* Descending and of varying length, so the compiled list must be sorted. */
    for (int i = EXC_MAX_MATCH_ANY - 1; i >= 0; i--) {
        snprintf(buf, sizeof buf, "v%d", i * 7);
        json_array_append_new(values, json_string(buf));
    }
    test_source ts = {0};
    json_t *doc = item_with(json_pack("[o]", entry("user.name", "match_any", "included", values)));
    exc_item *it = parse_ok(doc, &ts, "1024 values");
    for (int i = 0; i < EXC_MAX_MATCH_ANY * 7; i++) {
        snprintf(buf, sizeof buf, "v%d", i);
        json_t *ev_doc = json_pack("{s:{s:s}}", "user", "name", buf);
        test_event ev = {.doc = ev_doc};
        ck_assert_msg(exc_item_match(it, "r", &ev, 0) == (i % 7 == 0), "value %s", buf);
        json_decref(ev_doc);
    }
    exc_item_free(it);

    nt_err err = {{0}};
    json_array_append_new(values, json_string("one-too-many"));
    ck_assert_int_eq(try_parse(doc, &err), NT_ERR_INVALID);
    ck_assert_str_eq(err.msg, "entries[0].value has 1025 values; at most 1024 are allowed");
    json_decref(doc);
    ts_free(&ts);
}
END_TEST

static const struct {
    const char *what, *message;
} long_string_cases[] = {
    {"name", "name is longer than 4096 bytes"},
    {"description", "description is longer than 4096 bytes"},
    {"rule_id", "rule_id is longer than 4096 bytes"},
    {"field", "entries[0].field is longer than 4096 bytes"},
    {"tag", "tags[0] is longer than 4096 bytes"},
    {"comment", "comments[0].comment is longer than 4096 bytes"},
};

/* A string of `len` bytes in the place named by long_string_cases[i].what. */
static json_t *item_with_long_string(size_t i, size_t len)
{
    const char *what = long_string_cases[i].what;
    char *s = filled(len, 'a');
    json_t *str = json_string(s);
    free(s);
    json_t *e = entry("user.name", "match", "included", json_string("x"));
    json_t *doc = item_with(json_pack("[o]", e));
    if (strcmp(what, "name") == 0 || strcmp(what, "description") == 0 ||
        strcmp(what, "rule_id") == 0)
        json_object_set(doc, what, str);
    else if (strcmp(what, "field") == 0)
        json_object_set(e, "field", str);
    else if (strcmp(what, "match") == 0)
        json_object_set(e, "value", str);
    else if (strcmp(what, "match_any") == 0) {
        json_object_set_new(e, "type", json_string("match_any"));
        json_object_set_new(e, "value", json_pack("[O]", str));
    } else if (strcmp(what, "wildcard") == 0) {
        json_object_set_new(e, "type", json_string("wildcard"));
        json_object_set(e, "value", str);
    } else if (strcmp(what, "tag") == 0)
        json_object_set_new(doc, "tags", json_pack("[O]", str));
    else
        json_object_set_new(doc, "comments", json_pack("[{s:O}]", "comment", str));
    json_decref(str);
    return doc;
}

START_TEST(strings_of_4096_bytes_are_allowed_and_longer_ones_refused)
{
    nt_err err = {{0}};
    json_t *doc = item_with_long_string((size_t)_i, EXC_MAX_STRING);
    ck_assert_msg(try_parse(doc, &err) == NT_OK, "%s: %s", long_string_cases[_i].what, err.msg);
    json_decref(doc);
    doc = item_with_long_string((size_t)_i, EXC_MAX_STRING + 1);
    ck_assert_int_eq(try_parse(doc, &err), NT_ERR_INVALID);
    ck_assert_str_eq(err.msg, long_string_cases[_i].message);
    json_decref(doc);
    /* Far longer strings are refused the same way, quickly. */
    doc = item_with_long_string((size_t)_i, 8u << 20);
    ck_assert_int_eq(try_parse(doc, &err), NT_ERR_INVALID);
    ck_assert_str_eq(err.msg, long_string_cases[_i].message);
    json_decref(doc);
}
END_TEST

/* Values compared with event values stop at ignore_above (1024 bytes). */
static const struct {
    const char *what, *message;
} unindexable_cases[] = {
    {"match", "entries[0].value is 1025 bytes; values longer than 1024 bytes are not indexed "
              "(ignore_above), so it could never match"},
    {"match_any", "entries[0].value[0] is 1025 bytes; values longer than 1024 bytes are not "
                  "indexed (ignore_above), so it could never match"},
    {"wildcard", "entries[0].value is 1025 bytes; values longer than 1024 bytes are not indexed "
                 "(ignore_above), so it could never match"},
};

static json_t *item_with_long_value(size_t i, size_t len)
{
    char *s = filled(len, 'a');
    json_t *str = json_string(s);
    free(s);
    const char *type = unindexable_cases[i].what;
    json_t *value = strcmp(type, "match_any") == 0 ? json_pack("[o]", str) : str;
    return item_with(json_pack("[o]", entry("user.name", type, "included", value)));
}

START_TEST(values_of_1024_bytes_are_allowed_and_longer_ones_refused)
{
    nt_err err = {{0}};
    json_t *doc = item_with_long_value((size_t)_i, EXC_IGNORE_ABOVE);
    ck_assert_msg(try_parse(doc, &err) == NT_OK, "%s: %s", unindexable_cases[_i].what, err.msg);
    json_decref(doc);
    doc = item_with_long_value((size_t)_i, EXC_IGNORE_ABOVE + 1);
    ck_assert_int_eq(try_parse(doc, &err), NT_ERR_INVALID);
    ck_assert_str_eq(err.msg, unindexable_cases[_i].message);
    json_decref(doc);
}
END_TEST

START_TEST(tags_and_comments_are_capped_at_1024)
{
    json_t *doc = item_with(json_pack("[o]", entry("user.name", "exists", "included", NULL)));
    json_t *tags = json_array(), *comments = json_array();
    for (int i = 0; i < EXC_MAX_LIST; i++) {
        json_array_append_new(tags, json_string("t"));
        json_array_append_new(comments, json_pack("{s:s}", "comment", "c"));
    }
    json_object_set_new(doc, "tags", tags);
    json_object_set_new(doc, "comments", comments);
    nt_err err = {{0}};
    ck_assert_int_eq(try_parse(doc, &err), NT_OK);
    json_array_append_new(comments, json_pack("{s:s}", "comment", "c"));
    ck_assert_int_eq(try_parse(doc, &err), NT_ERR_INVALID);
    ck_assert_str_eq(err.msg, "comments has 1025 items; at most 1024 are allowed");
    json_array_remove(comments, 0);
    json_array_append_new(tags, json_string("t"));
    ck_assert_int_eq(try_parse(doc, &err), NT_ERR_INVALID);
    ck_assert_str_eq(err.msg, "tags has 1025 items; at most 1024 are allowed");
    json_decref(doc);
}
END_TEST

/* ---- hostile input --------------------------------------------------------- */

static json_t *nested_arrays(int depth)
{
    json_t *j = json_string("deep");
    for (int i = 0; i < depth; i++)
        j = json_pack("[o]", j);
    return j;
}

START_TEST(deeply_nested_and_huge_values_are_refused_without_crashing)
{
    nt_err err = {{0}};
    static const struct {
        const char *key, *message;
    } places[] = {
        {"tags", "tags[0] must be a string"},
        {"comments", "comments[0] must be an object"},
        {"name", "name must be a string"},
        {"os_types", "os_types must be empty"},
        {"surprise", "unknown top-level key 'surprise'"},
    };
    for (size_t i = 0; i < sizeof places / sizeof places[0]; i++) {
        json_t *doc = item_with(json_pack("[o]", entry("user.name", "exists", "included", NULL)));
        json_object_set_new(doc, places[i].key, nested_arrays(10000));
        ck_assert_int_eq(try_parse(doc, &err), NT_ERR_INVALID);
        ck_assert_msg(strncmp(err.msg, places[i].message, strlen(places[i].message)) == 0, "%s: %s",
                      places[i].key, err.msg);
        json_decref(doc);
    }
    /* Deep nesting inside an entry value. */
    json_t *doc = item_with(
        json_pack("[o]", entry("user.name", "match_any", "included", nested_arrays(10000))));
    ck_assert_int_eq(try_parse(doc, &err), NT_ERR_INVALID);
    ck_assert_str_eq(err.msg, "entries[0].value[0] must be a string");
    json_decref(doc);
    /* A match_any of 200,000 values is refused by its size before anything is read. */
    json_t *values = json_array();
    for (int i = 0; i < 200000; i++)
        json_array_append_new(values, json_integer(i));
    doc = item_with(json_pack("[o]", entry("user.name", "match_any", "included", values)));
    ck_assert_int_eq(try_parse(doc, &err), NT_ERR_INVALID);
    ck_assert_str_eq(err.msg, "entries[0].value has 200000 values; at most 1024 are allowed");
    json_decref(doc);
    /* 100,000 entries likewise. */
    json_t *entries = json_array();
    for (int i = 0; i < 100000; i++)
        json_array_append_new(entries, json_null());
    doc = item_with(entries);
    ck_assert_int_eq(try_parse(doc, &err), NT_ERR_INVALID);
    ck_assert_str_eq(err.msg, "entries has 100000 entries; at most 32 are allowed");
    json_decref(doc);
    /* Text the parser refuses never reaches us; what it accepts, we judge. */
    char *deep = filled(100000, '[');
    json_error_t jerr;
    ck_assert_ptr_null(json_loads(deep, 0, &jerr));
    free(deep);
}
END_TEST

START_TEST(long_unknown_keys_and_values_are_quoted_truncated_in_messages)
{
    char *key = filled(100000, 'k');
    json_t *doc = item_with(json_pack("[o]", entry("user.name", "exists", "included", NULL)));
    json_object_set_new(doc, key, json_true());
    nt_err err = {{0}};
    ck_assert_int_eq(try_parse(doc, &err), NT_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(err.msg, "unknown top-level key 'kkkk"));
    ck_assert_uint_lt(strlen(err.msg), NT_ERR_MSG_MAX);
    json_decref(doc);
    free(key);
    /* The field is refused by the view, and quoted at most 64 bytes long. */
    char *field = filled(4000, 'f');
    memcpy(field, "unknown.", 8);
    doc = item_with(json_pack("[o]", entry(field, "exists", "included", NULL)));
    ck_assert_int_eq(try_parse(doc, &err), NT_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(err.msg, "is not produced by the CloudTrail view"));
    json_decref(doc);
    free(field);
}
END_TEST

START_TEST(values_longer_than_ignore_above_are_absent_and_many_values_still_match)
{
    test_source ts = {0};
    json_t *doc = item_with(json_pack(
        "[o, o]", entry("user_agent.original", "wildcard", "included", json_string("*Terraform*")),
        entry("tags", "match", "included", json_string("needle"))));
    exc_item *it = parse_ok(doc, &ts, "long values");
    /* A 1024-byte user agent (the ignore_above limit) with the literal at the very end. */
    size_t big = EXC_IGNORE_ABOVE;
    char *ua = filled(4u << 20, 'x');
    memcpy(ua + big - 9, "Terraform", 9);
    ua[big] = 0;
    json_t *tags = json_array();
    for (int i = 0; i < 10; i++)
        json_array_append_new(tags, json_string("hay"));
    json_array_append_new(tags, json_string("needle"));
    for (int i = 0; i < 10000; i++)
        json_array_append_new(tags, json_string("hay"));
    json_t *ev_doc = json_pack("{s:{s:s}, s:o}", "user_agent", "original", ua, "tags", tags);
    test_event ev = {.doc = ev_doc};
    ck_assert_int_eq(exc_item_match(it, "r", &ev, 0), 1);
    /* A near miss the matcher must scan to the end to refute. */
    ua[big - 1] = 'X';
    json_object_set_new(json_object_get(ev_doc, "user_agent"), "original", json_string(ua));
    ck_assert_int_eq(exc_item_match(it, "r", &ev, 0), 0);
    /* One byte more (and 4 MB): not indexed, so absent: the wildcard cannot hold. */
    memset(ua, 'x', 4u << 20);
    memcpy(ua + (4u << 20) - 10, "Terraform", 9);
    ua[(4u << 20) - 1] = 0;
    json_object_set_new(json_object_get(ev_doc, "user_agent"), "original", json_string(ua));
    ck_assert_int_eq(exc_item_match(it, "r", &ev, 0), 0);
    ua[big + 1] = 0;
    memcpy(ua + big + 1 - 9, "Terraform", 9);
    json_object_set_new(json_object_get(ev_doc, "user_agent"), "original", json_string(ua));
    ck_assert_int_eq(exc_item_match(it, "r", &ev, 0), 0);
    exc_item_free(it);
    json_decref(doc);

    /* ... and "excluded" holds on it, as "is not" holds on a missing field. */
    doc = item_with(json_pack(
        "[o]", entry("user_agent.original", "wildcard", "excluded", json_string("*Terraform*"))));
    it = parse_ok(doc, &ts, "long values excluded");
    ck_assert_int_eq(exc_item_match(it, "r", &ev, 0), 1);
    exc_item_free(it);
    json_decref(doc);
    json_decref(ev_doc);
    free(ua);
    ts_free(&ts);
}
END_TEST

START_TEST(hostile_wildcards_are_refused_and_bounded)
{
    test_source ts = {0};
    nt_err err = {{0}};
    /* The pattern: '*' + 4000 'a' + "b?": longer than any indexed value. */
    char *pat = filled(4003, 'a');
    pat[0] = '*';
    memcpy(pat + 4001, "b?", 2);
    json_t *doc = item_with(
        json_pack("[o]", entry("user_agent.original", "wildcard", "included", json_string(pat))));
    ck_assert_int_eq(try_parse(doc, &err), NT_ERR_INVALID);
    ck_assert_str_eq(err.msg, "entries[0].value is 4003 bytes; values longer than 1024 bytes are "
                              "not indexed (ignore_above), so it could never match");
    json_decref(doc);
    doc = item_with(json_pack("[o]", entry("user.name", "wildcard", "included",
                                           json_string("a*b?c*d?e*f?g*h?i*j?k*l?m*n?o*p?q**r"))));
    ck_assert_int_eq(try_parse(doc, &err), NT_ERR_INVALID);
    ck_assert_str_eq(err.msg, "entries[0].value has 17 wildcards (runs of '*' and each '?'); at "
                              "most 16 are allowed");
    json_decref(doc);
    doc =
        item_with(json_pack("[o]", entry("user.name", "match", "included", json_string(pat + 1))));
    ck_assert_int_eq(try_parse(doc, &err), NT_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(err.msg, "ignore_above"));
    json_decref(doc);

    /* At the limits (1024-byte pattern, 16 wildcards, middle '?' segments)
     * against a 1024-byte value: bounded, whatever the pair. */
    memset(pat, 'a', 1024);
    for (int k = 0; k < 8; k++)
        pat[k * 120] = '*', pat[k * 120 + 60] = '?';
    pat[1023] = 'b';
    pat[1024] = 0;
    doc = item_with(
        json_pack("[o]", entry("user_agent.original", "wildcard", "included", json_string(pat))));
    exc_item *it = parse_ok(doc, &ts, "at the limits");
    char *ua = filled(EXC_IGNORE_ABOVE, 'a');
    json_t *ev_doc = json_pack("{s:{s:s}}", "user_agent", "original", ua);
    test_event ev = {.doc = ev_doc};
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < 100; i++)
        ck_assert_int_eq(exc_item_match(it, "r", &ev, 0), 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    ck_assert_msg(secs < 1.0, "100 matches at the limits took %.3f s", secs);
    exc_item_free(it);
    json_decref(doc);
    json_decref(ev_doc);
    free(ua);
    free(pat);
    ts_free(&ts);
}
END_TEST

START_TEST(values_compare_byte_exactly_even_with_nul_bytes)
{
    test_source ts = {0};
    json_error_t jerr;
    json_t *doc = json_loads("{\"name\":\"n\",\"entries\":[{\"field\":\"user.name\",\"operator\":"
                             "\"included\",\"type\":\"match\",\"value\":\"a\\u0000b\"}]}",
                             JSON_ALLOW_NUL, &jerr);
    ck_assert_ptr_nonnull(doc);
    exc_item *it = parse_ok(doc, &ts, "nul");
    json_t *same = json_loads("{\"user\":{\"name\":\"a\\u0000b\"}}", JSON_ALLOW_NUL, &jerr);
    json_t *prefix = json_loads("{\"user\":{\"name\":\"a\"}}", 0, &jerr);
    json_t *other = json_loads("{\"user\":{\"name\":\"a\\u0000c\"}}", JSON_ALLOW_NUL, &jerr);
    test_event e1 = {.doc = same}, e2 = {.doc = prefix}, e3 = {.doc = other};
    ck_assert_int_eq(exc_item_match(it, "r", &e1, 0), 1);
    ck_assert_int_eq(exc_item_match(it, "r", &e2, 0), 0);
    ck_assert_int_eq(exc_item_match(it, "r", &e3, 0), 0);
    exc_item_free(it);
    json_decref(doc);
    json_decref(same);
    json_decref(prefix);
    json_decref(other);
    ts_free(&ts);
}
END_TEST

/* ---- sets ---------------------------------------------------------------------- */

static exc_item *user_item(test_source *ts, const char *id, const char *user)
{
    json_t *doc = json_pack("{s:s, s:s, s:[o]}", "id", id, "name", "n", "entries",
                            entry("user.name", "match", "included", json_string(user)));
    exc_item *it = parse_ok(doc, ts, id);
    json_decref(doc);
    return it;
}

START_TEST(a_set_lives_until_its_last_reference_is_dropped)
{
    test_source ts = {0};
    exc_item *items[] = {user_item(&ts, "a", "alice"), NULL, user_item(&ts, "b", "bob")};
    exc_set *s = exc_set_new(items, 3);
    ck_assert_ptr_nonnull(s);
    ck_assert_uint_eq(exc_set_count(s), 2); /* the NULL slot is skipped */
    ck_assert_str_eq(exc_item_id(exc_set_item(s, 1)), "b");
    ck_assert_ptr_null(exc_set_item(s, 2));
    ck_assert_ptr_eq(exc_set_ref(s), s);
    ck_assert_ptr_eq(exc_set_ref(s), s);
    exc_set_unref(s);
    exc_set_unref(s);
    /* Still alive: one reference left. */
    json_t *bob = json_pack("{s:{s:s}}", "user", "name", "bob");
    test_event ev = {.doc = bob};
    ck_assert_str_eq(exc_item_id(exc_set_match(s, "r", &ev, 0)), "b");
    exc_set_unref(s); /* ASan reports a leak or a double free if counting is wrong */
    json_decref(bob);

    exc_set_unref(NULL);
    ck_assert_ptr_null(exc_set_ref(NULL));
    ck_assert_uint_eq(exc_set_count(NULL), 0);
    ck_assert_ptr_null(exc_set_match(NULL, "r", &ev, 0));
    ck_assert_ptr_null(exc_set_item(NULL, 0));
    exc_set *empty = exc_set_new(NULL, 0);
    ck_assert_ptr_nonnull(empty);
    ck_assert_uint_eq(exc_set_count(empty), 0);
    exc_set_unref(empty);
    ts_free(&ts);
}
END_TEST

typedef struct reader_arg {
    exc_set *set; /* one reference owned by the thread */
    json_t *doc;
    int hits;
} reader_arg;

static void *reader(void *p)
{
    reader_arg *a = p;
    test_event ev = {.doc = a->doc};
    for (int i = 0; i < 2000; i++) {
        exc_set *mine = exc_set_ref(a->set);
        if (exc_set_match(mine, "r", &ev, 0)) a->hits++;
        exc_set_unref(mine);
    }
    exc_set_unref(a->set);
    return NULL;
}

START_TEST(a_set_is_shared_safely_by_threads_that_drop_it_in_any_order)
{
    enum { THREADS = 4 };
    test_source ts = {0};
    /* Resolve the field before threads start; resolve is a load-time call. */
    exc_item *items[] = {user_item(&ts, "a", "alice"), user_item(&ts, "b", "bob")};
    exc_set *s = exc_set_new(items, 2);
    ck_assert_ptr_nonnull(s);
    json_t *bob = json_pack("{s:{s:s}}", "user", "name", "bob");
    pthread_t th[THREADS];
    reader_arg args[THREADS];
    for (int i = 0; i < THREADS; i++) {
        args[i] = (reader_arg){exc_set_ref(s), bob, 0};
        ck_assert_int_eq(pthread_create(&th[i], NULL, reader, &args[i]), 0);
    }
    exc_set_unref(s); /* the creator lets go while readers still run */
    for (int i = 0; i < THREADS; i++) {
        ck_assert_int_eq(pthread_join(th[i], NULL), 0);
        ck_assert_int_eq(args[i].hits, 2000);
    }
    json_decref(bob);
    ts_free(&ts);
}
END_TEST

typedef struct bad_log {
    int calls;
    char ids[8][32];
    char msgs[8][NT_ERR_MSG_MAX];
} bad_log;

static void record_bad(void *ud, const char *id, const nt_err *e)
{
    bad_log *log = ud;
    if (log->calls < 8) {
        snprintf(log->ids[log->calls], sizeof log->ids[0], "%s", id ? id : "(none)");
        snprintf(log->msgs[log->calls], sizeof log->msgs[0], "%s", e->msg);
    }
    log->calls++;
}

START_TEST(loading_stored_items_skips_the_bad_ones_and_reports_them)
{
    test_source ts = {0};
    nt_field_source src = TS_SOURCE(ts);
    json_error_t jerr;
    json_t *stored = json_loads(
        "[{\"id\":\"good-1\",\"name\":\"a\",\"entries\":[{\"field\":\"user.name\","
        "\"operator\":\"included\",\"type\":\"match\",\"value\":\"alice\"}]},"
        " {\"id\":\"bad-1\",\"name\":\"b\",\"entries\":[{\"field\":\"unknown.x\","
        "\"operator\":\"included\",\"type\":\"exists\"}]},"
        " {\"name\":\"no id\",\"entries\":[]},"
        " \"not an object\","
        " {\"id\":\"good-2\",\"name\":\"c\",\"rule_id\":\"r\",\"entries\":[{\"field\":"
        "\"user.name\",\"operator\":\"included\",\"type\":\"match\",\"value\":\"bob\"}]}]",
        0, &jerr);
    ck_assert_ptr_nonnull(stored);
    bad_log log = {0};
    exc_set *s = exc_set_from_json(stored, &src, record_bad, &log);
    ck_assert_ptr_nonnull(s);
    ck_assert_uint_eq(exc_set_count(s), 2);
    ck_assert_str_eq(exc_item_id(exc_set_item(s, 0)), "good-1");
    ck_assert_str_eq(exc_item_id(exc_set_item(s, 1)), "good-2");
    ck_assert_int_eq(log.calls, 3);
    ck_assert_str_eq(log.ids[0], "bad-1");
    ck_assert_str_eq(log.msgs[0],
                     "entries[0].field 'unknown.x' is not produced by the CloudTrail view");
    ck_assert_str_eq(log.ids[1], "(none)");
    ck_assert_str_eq(log.msgs[1], "entries must not be empty");
    ck_assert_str_eq(log.ids[2], "(none)");
    ck_assert_str_eq(log.msgs[2], "an exception item must be a JSON object");
    /* The good items still work. */
    json_t *bob = json_pack("{s:{s:s}}", "user", "name", "bob");
    test_event ev = {.doc = bob};
    ck_assert_str_eq(exc_item_id(exc_set_match(s, "r", &ev, 0)), "good-2");
    ck_assert_ptr_null(exc_set_match(s, "other-rule", &ev, 0));
    exc_set_unref(s);
    /* Without a callback the bad items are skipped silently. */
    s = exc_set_from_json(stored, &src, NULL, NULL);
    ck_assert_uint_eq(exc_set_count(s), 2);
    exc_set_unref(s);
    json_decref(stored);
    json_decref(bob);
    ts_free(&ts);
}
END_TEST

START_TEST(loading_something_other_than_an_array_yields_an_empty_set_and_a_report)
{
    test_source ts = {0};
    nt_field_source src = TS_SOURCE(ts);
    bad_log log = {0};
    json_t *obj = json_object();
    exc_set *s = exc_set_from_json(obj, &src, record_bad, &log);
    ck_assert_ptr_nonnull(s);
    ck_assert_uint_eq(exc_set_count(s), 0);
    ck_assert_int_eq(log.calls, 1);
    ck_assert_str_eq(log.msgs[0], "stored exceptions are not a JSON array");
    exc_set_unref(s);
    s = exc_set_from_json(NULL, &src, record_bad, &log);
    ck_assert_uint_eq(exc_set_count(s), 0);
    ck_assert_int_eq(log.calls, 2);
    exc_set_unref(s);
    json_decref(obj);
    ts_free(&ts);
}
END_TEST

START_TEST(a_stored_item_reloads_to_the_same_item)
{
    test_source ts = {0};
    nt_field_source src = TS_SOURCE(ts);
    json_t *rows = json_object_get(cases_file, "rows");
    json_t *stored = json_array();
    size_t n = 0;
    for (size_t i = 0; i < json_array_size(rows); i++) {
        json_t *doc = json_object_get(json_array_get(rows, i), "item");
        if (!doc) continue;
        exc_item *it = parse_ok(doc, &ts, "reload");
        json_array_append_new(stored, json_deep_copy(exc_item_json(it)));
        exc_item_free(it);
        n++;
    }
    bad_log log = {0};
    exc_set *s = exc_set_from_json(stored, &src, record_bad, &log);
    ck_assert_int_eq(log.calls, 0);
    ck_assert_uint_eq(exc_set_count(s), n);
    for (size_t i = 0, k = 0; i < json_array_size(rows); i++) {
        json_t *row = json_array_get(rows, i);
        if (!json_object_get(row, "item")) continue;
        json_t *doc = json_object_get(row, "doc"), *rid = json_object_get(row, "rule_id");
        test_event ev = {.doc = doc ? doc : json_object_get(cases_file, "doc")};
        int want = json_is_true(json_object_get(row, "expect"));
        ck_assert_int_eq(exc_item_match(exc_set_item(s, k++),
                                        json_is_string(rid) ? json_string_value(rid) : NULL, &ev,
                                        row_time(row)),
                         want);
    }
    exc_set_unref(s);
    json_decref(stored);
    ts_free(&ts);
}
END_TEST

static void exception_teardown(void)
{
    json_decref(cases_file);
    json_decref(invalid_file);
}

static Suite *exception_suite(void)
{
    cases_file = load("cases.json");
    invalid_file = load("invalid.json");
    Suite *s = suite_create("exception");
    TCase *tc = tcase_create("core");
    tcase_add_loop_test(tc, each_documented_case_matches_as_expected, 0,
                        (int)json_array_size(json_object_get(cases_file, "rows")));
    tcase_add_loop_test(tc, each_invalid_item_is_refused_with_a_message_naming_the_problem, 0,
                        (int)json_array_size(invalid_file));
    tcase_add_test(tc, accessors_report_id_rule_and_expiry);
    tcase_add_test(tc, an_item_keeps_its_own_copy_of_the_document);
    tcase_add_test(tc, parsing_needs_a_field_source_and_free_accepts_null);
    tcase_add_test(tc, thirty_two_entries_are_allowed_and_thirty_three_refused);
    tcase_add_test(tc, match_any_takes_1024_values_and_finds_each_of_them);
    tcase_add_loop_test(tc, strings_of_4096_bytes_are_allowed_and_longer_ones_refused, 0,
                        sizeof long_string_cases / sizeof long_string_cases[0]);
    tcase_add_test(tc, tags_and_comments_are_capped_at_1024);
    tcase_add_test(tc, deeply_nested_and_huge_values_are_refused_without_crashing);
    tcase_add_test(tc, long_unknown_keys_and_values_are_quoted_truncated_in_messages);
    tcase_add_test(tc, values_longer_than_ignore_above_are_absent_and_many_values_still_match);
    tcase_add_test(tc, hostile_wildcards_are_refused_and_bounded);
    tcase_add_loop_test(tc, values_of_1024_bytes_are_allowed_and_longer_ones_refused, 0,
                        (int)(sizeof unindexable_cases / sizeof unindexable_cases[0]));
    tcase_add_test(tc, values_compare_byte_exactly_even_with_nul_bytes);
    tcase_add_test(tc, a_set_lives_until_its_last_reference_is_dropped);
    tcase_add_test(tc, a_set_is_shared_safely_by_threads_that_drop_it_in_any_order);
    tcase_add_test(tc, loading_stored_items_skips_the_bad_ones_and_reports_them);
    tcase_add_test(tc, loading_something_other_than_an_array_yields_an_empty_set_and_a_report);
    tcase_add_test(tc, a_stored_item_reloads_to_the_same_item);
    suite_add_tcase(s, tc);
    return s;
}

NT_TEST_MAIN_TEARDOWN(exception_suite, exception_teardown)

/*
 * Unit tests for geoip.c and the enrichment fields of the CloudTrail view.
 *
 * The databases are real MaxMind DB files written by tests/tools/mmdb_writer.py
 * (tests/data/geoip/SOURCES.txt lists what they hold): test-asn.mmdb
 * (GeoLite2-ASN), test-city.mmdb (GeoLite2-City) and test-country.mmdb
 * (GeoLite2-Country), read here through libmaxminddb exactly as the service
 * reads them.
 */
#include "ctview.h"
#include "exception.h"
#include "geoip.h"
#include "kql.h"
#include "rule.h"
#include "testutil.h"

#include <arpa/inet.h>
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GEO NT_TEST_DATA "/geoip/"
#define ASN GEO "test-asn.mmdb"
#define CITY GEO "test-city.mmdb"
#define COUNTRY GEO "test-country.mmdb"

static geoip_db *open_dbs(const char *a, const char *b)
{
    const char *paths[2] = {a, b};
    geoip_db *g = NULL;
    nt_err err;
    nt_status st = geoip_open(paths, b ? 2 : 1, &g, &err);
    ck_assert_msg(st == NT_OK, "geoip_open: %s", err.msg);
    return g;
}

static void addr_of(const char *text, unsigned char a[16])
{
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (inet_pton(AF_INET, text, a + 12) == 1) {
        memcpy(a, mapped, 12);
        return;
    }
    ck_assert_int_eq(inet_pton(AF_INET6, text, a), 1);
}

static void expect_field(const geoip_result *r, geoip_field f, const char *want)
{
    int has = (r->present >> f) & 1u;
    if (!want) {
        ck_assert_msg(!has, "%s is present: %.*s", geoip_field_name(f), (int)r->len[f], r->ptr[f]);
        return;
    }
    ck_assert_msg(has, "%s is missing", geoip_field_name(f));
    ck_assert_msg(r->len[f] == strlen(want) && memcmp(r->ptr[f], want, r->len[f]) == 0,
                  "%s = \"%.*s\", want \"%s\"", geoip_field_name(f), (int)r->len[f], r->ptr[f],
                  want);
}

/* ---- geoip.c ---------------------------------------------------------------------------- */

/* address, then the expected value of every field in geoip_field order (NULL = missing). */
static const struct {
    const char *ip;
    const char *want[GEOIP_FIELD_COUNT];
} lookups[] = {
    {"203.0.113.7",
     {"64500", "Example Cloud Networks", "US", "United States", "NA", "North America", "US-WA",
      "Washington", "Seattle", "47.6062,-122.3321"}},
    {"2001:db8:1::5",
     {"64502", "Example IPv6 Hosting", "JP", "Japan", "AS", "Asia", "JP-13", "Tokyo", "Tokyo",
      "35.6895,139.6917"}},
    /* the City file has a country only; the ASN file the AS */
    {"198.51.100.200",
     {"64501", "Other Transit Ltd", "DE", "Germany", "EU", "Europe", NULL, NULL, NULL, NULL}},
    /* UTF-8 names come out as they are stored */
    {"2001:db8:2::1",
     {NULL, NULL, "BR", "Brazil", "SA", "South America", "BR-SP", "S\xc3\xa3o Paulo",
      "S\xc3\xa3o Paulo", "-23.5475,-46.63611"}},
    /* ASN records with a key missing, or of the wrong type */
    {"192.0.2.1", {NULL, "Org Without Number"}},
    {"192.0.2.200", {NULL}},
    /* private and unknown addresses */
    {"10.0.0.1", {NULL}},
    {"192.168.1.1", {NULL}},
    {"fd00::1", {NULL}},
    {"::1", {NULL}},
};

START_TEST(each_address_gives_the_fields_the_files_hold)
{
    geoip_db *g = open_dbs(ASN, CITY);
    unsigned char a[16];
    geoip_result r;
    addr_of(lookups[_i].ip, a);
    geoip_lookup(g, a, &r);
    for (int f = 0; f < GEOIP_FIELD_COUNT; f++)
        expect_field(&r, (geoip_field)f, lookups[_i].want[f]);
    geoip_free(g);
}
END_TEST

START_TEST(files_say_what_they_hold_through_their_metadata)
{
    geoip_db *g = open_dbs(ASN, CITY);
    ck_assert_uint_eq(geoip_kinds(g), GEOIP_KIND_ALL);
    ck_assert_uint_eq(geoip_file_count(g), 2);
    ck_assert_str_eq(geoip_file_type(g, 0), "GeoLite2-ASN");
    ck_assert_str_eq(geoip_file_type(g, 1), "GeoLite2-City");
    ck_assert_str_eq(geoip_file_path(g, 0), ASN);
    ck_assert_ptr_null(geoip_file_path(g, 2));
    geoip_free(g);
    g = open_dbs(ASN, NULL);
    ck_assert_uint_eq(geoip_kinds(g), GEOIP_KIND_ASN);
    geoip_free(g);
    g = open_dbs(COUNTRY, NULL);
    ck_assert_uint_eq(geoip_kinds(g), GEOIP_KIND_COUNTRY);
    geoip_result r;
    unsigned char a[16];
    addr_of("203.0.113.9", a);
    geoip_lookup(g, a, &r);
    expect_field(&r, GEOIP_COUNTRY_ISO_CODE, "US");
    expect_field(&r, GEOIP_CONTINENT_CODE, "NA");
    expect_field(&r, GEOIP_CITY_NAME, NULL);
    geoip_free(g);
    ck_assert_uint_eq(geoip_kinds(NULL), 0);
    geoip_lookup(NULL, a, &r);
    ck_assert_uint_eq(r.present, 0);
    geoip_free(NULL);
}
END_TEST

START_TEST(the_first_file_with_a_field_wins)
{
    /* Both the City and the Country file know 203.0.113.0/24 as US; order
     * decides, and a field only one file has is taken from it. */
    geoip_db *g = open_dbs(COUNTRY, CITY);
    unsigned char a[16];
    geoip_result r;
    addr_of("203.0.113.9", a);
    geoip_lookup(g, a, &r);
    expect_field(&r, GEOIP_COUNTRY_NAME, "United States");
    expect_field(&r, GEOIP_CITY_NAME, "Seattle");
    geoip_free(g);
}
END_TEST

START_TEST(a_file_that_cannot_be_opened_is_named_in_the_error)
{
    const char *missing[] = {GEO "does-not-exist.mmdb"};
    const char *not_mmdb[] = {ASN, GEO "SOURCES.txt"};
    const char *empty[] = {""};
    geoip_db *g = (geoip_db *)&g;
    nt_err err;
    ck_assert_int_eq(geoip_open(missing, 1, &g, &err), NT_ERR_IO);
    ck_assert_ptr_null(g);
    ck_assert_ptr_nonnull(strstr(err.msg, "does-not-exist.mmdb"));
    ck_assert_int_eq(geoip_open(not_mmdb, 2, &g, &err), NT_ERR_PARSE);
    ck_assert_ptr_null(g);
    ck_assert_ptr_nonnull(strstr(err.msg, "SOURCES.txt"));
    ck_assert_int_eq(geoip_open(empty, 1, &g, &err), NT_ERR_INVALID);
    ck_assert_int_eq(geoip_open(missing, 0, &g, &err), NT_ERR_INVALID);
    const char *many[GEOIP_MAX_FILES + 1];
    for (size_t i = 0; i <= GEOIP_MAX_FILES; i++)
        many[i] = ASN;
    ck_assert_int_eq(geoip_open(many, GEOIP_MAX_FILES + 1, &g, &err), NT_ERR_LIMIT);
}
END_TEST

START_TEST(field_names_map_both_ways)
{
    for (int f = 0; f < GEOIP_FIELD_COUNT; f++) {
        const char *n = geoip_field_name((geoip_field)f);
        ck_assert_int_eq(geoip_field_lookup(n, strlen(n)), f);
    }
    ck_assert_int_eq(geoip_field_lookup("source.as", 9), -1);
    ck_assert_ptr_null(geoip_field_name(GEOIP_FIELD_COUNT));
    ck_assert_uint_eq(geoip_field_kind(GEOIP_AS_ORG_NAME), GEOIP_KIND_ASN);
    ck_assert_uint_eq(geoip_field_kind(GEOIP_LOCATION), GEOIP_KIND_CITY);
}
END_TEST

/* ---- the view --------------------------------------------------------------------------- */

typedef struct view {
    geoip_db *g;
    ct_schema *schema;
    json_t *record;
    ct_event ev;
} view;

static view *view_new(const char *db1, const char *db2, const char *source_ip)
{
    view *v = calloc(1, sizeof *v);
    ck_assert_ptr_nonnull(v);
    v->g = db1 ? open_dbs(db1, db2) : NULL;
    v->schema = ct_schema_new();
    ct_schema_set_geoip(v->schema, v->g);
    v->record = json_pack("{s:s,s:s,s:s,s:s,s:s}", "eventVersion", "1.09", "eventSource",
                          "sts.amazonaws.com", "eventName", "GetCallerIdentity", "eventTime",
                          "2026-11-20T10:00:00Z", "sourceIPAddress", source_ip);
    ck_assert_ptr_nonnull(v->record);
    ct_event_init(&v->ev, v->schema, v->record, 0);
    return v;
}

static void view_free(view *v)
{
    json_decref(v->record);
    ct_schema_free(v->schema);
    geoip_free(v->g);
    free(v);
}

static size_t get(view *v, const char *name, nt_value *out)
{
    int id = ct_schema_resolve(v->schema, name, strlen(name));
    ck_assert_msg(id >= 0, "%s does not resolve", name);
    return ct_view_get(&v->ev, id, out, NT_FIELD_MAX_VALUES);
}

static void expect_value(view *v, const char *name, const char *want)
{
    nt_value out[NT_FIELD_MAX_VALUES];
    size_t n = get(v, name, out);
    if (!want) {
        ck_assert_msg(n == 0, "%s: %zu values, want none", name, n);
        return;
    }
    ck_assert_msg(n == 1, "%s: %zu values, want \"%s\"", name, n, want);
    ck_assert_msg(out[0].len == strlen(want) && memcmp(out[0].ptr, want, out[0].len) == 0,
                  "%s = \"%.*s\", want \"%s\"", name, (int)out[0].len, out[0].ptr, want);
}

START_TEST(without_a_database_the_fields_do_not_exist)
{
    view *v = view_new(NULL, NULL, "203.0.113.7");
    for (int f = 0; f < GEOIP_FIELD_COUNT; f++) {
        const char *n = geoip_field_name((geoip_field)f);
        ck_assert_int_eq(ct_schema_resolve(v->schema, n, strlen(n)), -1);
    }
    ck_assert_ptr_null(ct_schema_geoip(v->schema));
    const char *names[] = {"source.ip", "source.as.number"};
    json_t *j = ct_view_fields_json(&v->ev, names, 2);
    ck_assert_int_eq(json_object_size(j), 1);
    json_decref(j);
    view_free(v);
}
END_TEST

START_TEST(an_asn_file_alone_gives_source_as_and_not_source_geo)
{
    view *v = view_new(ASN, NULL, "203.0.113.7");
    expect_value(v, "source.as.organization.name", "Example Cloud Networks");
    ck_assert_int_eq(ct_schema_resolve(v->schema, "source.geo.city_name", 20), -1);
    ck_assert_int_eq(ct_schema_resolve(v->schema, "source.geo.country_iso_code", 27), -1);
    view_free(v);
}
END_TEST

/* source.ip text → the fields read through the view (NULL = missing). */
static const struct {
    const char *source, *asn, *org, *country, *city;
} view_cases[] = {
    {"203.0.113.7", "64500", "Example Cloud Networks", "US", "Seattle"},
    {"::ffff:203.0.113.7", "64500", "Example Cloud Networks", "US", "Seattle"}, /* IPv4-mapped */
    {"2001:DB8:1:0::5", "64502", "Example IPv6 Hosting", "JP", "Tokyo"},        /* IPv6, any case */
    {"198.51.100.1", "64501", "Other Transit Ltd", "DE", NULL},
    {"10.1.2.3", NULL, NULL, NULL, NULL},          /* private */
    {"203.0.113", NULL, NULL, NULL, NULL},         /* malformed */
    {"203.0.113.07", NULL, NULL, NULL, NULL},      /* leading zero: not an IP */
    {"ec2.amazonaws.com", NULL, NULL, NULL, NULL}, /* a service, no IP */
    {"AWS Internal", NULL, NULL, NULL, NULL},
    {"2001:db8:1::5%eth0", NULL, NULL, NULL, NULL}, /* zone index: not an IP */
    {"", NULL, NULL, NULL, NULL},
};

START_TEST(view_fields_follow_source_ip)
{
    view *v = view_new(ASN, CITY, view_cases[_i].source);
    expect_value(v, "source.as.number", view_cases[_i].asn);
    expect_value(v, "source.as.organization.name", view_cases[_i].org);
    expect_value(v, "source.geo.country_iso_code", view_cases[_i].country);
    expect_value(v, "source.geo.city_name", view_cases[_i].city);
    nt_value out[NT_FIELD_MAX_VALUES];
    if (view_cases[_i].asn && get(v, "source.as.number", out) == 1)
        ck_assert_int_eq(out[0].type, NT_VAL_NUMBER);
    view_free(v);
}
END_TEST

START_TEST(the_lookup_happens_once_and_only_when_asked)
{
    view *v = view_new(ASN, CITY, "203.0.113.7");
    nt_value out[NT_FIELD_MAX_VALUES];
    ck_assert_uint_eq(get(v, "source.ip", out), 1);
    ck_assert_uint_eq(get(v, "event.action", out), 1);
    ck_assert_uint_eq(get(v, "user_agent.original", out), 0);
    ck_assert_int_eq(v->ev.geo_done, 0); /* other fields never look up */
    expect_value(v, "source.geo.country_name", "United States");
    ck_assert_int_eq(v->ev.geo_done, 1);
    /* the cached answer serves every later field of the event */
    v->ev.geo.present &= ~(1u << GEOIP_CITY_NAME);
    expect_value(v, "source.geo.city_name", NULL);
    /* a fresh event looks up again */
    ct_event_init(&v->ev, v->schema, v->record, 0);
    expect_value(v, "source.geo.city_name", "Seattle");
    view_free(v);
}
END_TEST

START_TEST(alert_fields_carry_typed_values)
{
    view *v = view_new(ASN, CITY, "203.0.113.7");
    const char *names[] = {"source.as.number", "source.geo.location", "source.geo.region_iso_code",
                           "source.geo.continent_code"};
    json_t *j = ct_view_fields_json(&v->ev, names, 4);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "source.as.number")), 64500);
    json_t *loc = json_object_get(j, "source.geo.location");
    ck_assert(json_is_object(loc));
    ck_assert(json_real_value(json_object_get(loc, "lat")) == 47.6062);
    ck_assert(json_real_value(json_object_get(loc, "lon")) == -122.3321);
    ck_assert_str_eq(json_string_value(json_object_get(j, "source.geo.region_iso_code")), "US-WA");
    ck_assert_str_eq(json_string_value(json_object_get(j, "source.geo.continent_code")), "NA");
    json_decref(j);
    expect_value(v, "source.geo.location", "47.6062,-122.3321");
    view_free(v);
}
END_TEST

START_TEST(kql_and_exceptions_read_the_enrichment)
{
    view *v = view_new(ASN, CITY, "203.0.113.7");
    nt_field_source src = ct_schema_source(v->schema);
    static const struct {
        const char *q;
        int want;
    } queries[] = {
        {"source.as.organization.name:\"Example Cloud Networks\"", 1},
        {"source.as.organization.name:*Cloud*", 1},
        {"source.as.number:64500", 1},
        {"source.as.number >= 64500 and source.as.number < 64501", 1},
        {"source.as.number:64501", 0},
        {"not source.geo.country_iso_code:(US or CA)", 0},
        {"source.geo.city_name:Seattle and event.action:GetCallerIdentity", 1},
    };
    for (size_t i = 0; i < sizeof queries / sizeof queries[0]; i++) {
        kql_query *q = NULL;
        nt_err err;
        ck_assert_msg(kql_compile(queries[i].q, strlen(queries[i].q), &src, &q, &err) == NT_OK,
                      "%s: %s", queries[i].q, err.msg);
        const char *const *unknown;
        ck_assert_uint_eq(kql_unknown_fields(q, &unknown), 0);
        ck_assert_msg(kql_match(q, &v->ev) == queries[i].want, "%s", queries[i].q);
        kql_free(q);
    }
    json_t *doc = json_pack("{s:s,s:[{s:s,s:s,s:s,s:s}]}", "name", "known ASN", "entries", "field",
                            "source.as.organization.name", "operator", "included", "type", "match",
                            "value", "Example Cloud Networks");
    exc_item *it = NULL;
    nt_err err;
    ck_assert_msg(exc_item_parse(doc, &src, &it, &err) == NT_OK, "%s", err.msg);
    ck_assert_int_eq(exc_item_match(it, "any", &v->ev, 0), 1);
    exc_item_free(it);
    json_decref(doc);
    view_free(v);
}
END_TEST

/* ---- rules ------------------------------------------------------------------------------ */

static size_t enrichment_warnings(const nt_ruleset *rs)
{
    size_t n = 0;
    for (size_t i = 0; i < rs->n; i++) {
        size_t k;
        json_t *w;
        json_array_foreach(rs->rules[i]->warnings, k, w)
        {
            if (strstr(json_string_value(json_object_get(w, "message")), "'source.as.")) n++;
        }
    }
    return n;
}

static size_t entity_warnings(const nt_ruleset *rs)
{
    size_t n = 0;
    for (size_t i = 0; i < rs->n; i++) {
        size_t k;
        json_t *w;
        json_array_foreach(rs->rules[i]->warnings, k, w)
        {
            const char *m = json_string_value(json_object_get(w, "message"));
            if (strstr(m, "entity.target.id") || strstr(m, "related.entity")) n++;
        }
    }
    return n;
}

START_TEST(lint_warns_about_source_as_only_without_a_database_that_has_it)
{
    nt_ruleset *rs = NULL;
    nt_err err;
    char names[4096];
    const char *dir = NT_TEST_DATA "/toml/rules/aws-new-terms";
    ck_assert_int_eq(ruleset_load_dir(dir, 0, &rs, &err), NT_OK);
    size_t with_none = enrichment_warnings(rs), entities = entity_warnings(rs);
    ck_assert_uint_gt(with_none, 0);
    ck_assert_uint_gt(entities, 0);
    ck_assert_uint_eq(ruleset_geoip_rules(rs, names, sizeof names), 4);
    ck_assert_ptr_nonnull(strstr(names, "Unusual Source"));
    ruleset_free(rs);

    geoip_db *city = open_dbs(CITY, NULL); /* a City file has no AS */
    ck_assert_int_eq(ruleset_load_dir_geoip(dir, 0, city, &rs, &err), NT_OK);
    ck_assert_uint_eq(enrichment_warnings(rs), with_none);
    ck_assert_uint_eq(ruleset_geoip_rules(rs, names, sizeof names), 4);
    ruleset_free(rs);
    geoip_free(city);

    geoip_db *g = open_dbs(ASN, CITY);
    ck_assert_int_eq(ruleset_load_dir_geoip(dir, 0, g, &rs, &err), NT_OK);
    ck_assert_uint_eq(enrichment_warnings(rs), 0);
    ck_assert_uint_eq(entity_warnings(rs), entities);
    ck_assert_uint_eq(ruleset_geoip_rules(rs, names, sizeof names), 0);
    ck_assert_str_eq(names, "");
    ruleset_free(rs);
    geoip_free(g);
}
END_TEST

START_TEST(only_rules_that_name_enrichment_fields_put_them_in_alerts)
{
    geoip_db *g = open_dbs(ASN, CITY);
    nt_ruleset *rs = NULL;
    nt_err err;
    ck_assert_int_eq(ruleset_load_dir_geoip(NT_TEST_DATA "/geoip/rules", 0, g, &rs, &err), NT_OK);
    ck_assert_uint_eq(rs->n, 1);
    ck_assert_int_eq(rs->rules[0]->uses_geoip, 1);
    ck_assert_int_eq(rs->rules[0]->needs_geoip, 0);
    ruleset_free(rs);
    ck_assert_int_eq(ruleset_load_dir_geoip(NT_TEST_DATA "/rules", 0, g, &rs, &err), NT_OK);
    ck_assert_uint_eq(rs->n, 1);
    ck_assert_int_eq(rs->rules[0]->uses_geoip, 0); /* the seed rule: its alerts never look up */
    ruleset_free(rs);
    geoip_free(g);
}
END_TEST

START_TEST(the_rule_list_is_cut_cleanly)
{
    nt_ruleset *rs = NULL;
    nt_err err;
    char names[16];
    ck_assert_int_eq(ruleset_load_dir(NT_TEST_DATA "/toml/rules/aws-new-terms", 0, &rs, &err),
                     NT_OK);
    ck_assert_uint_eq(ruleset_geoip_rules(rs, names, sizeof names), 4);
    ck_assert_uint_lt(strlen(names), sizeof names);
    ck_assert_ptr_nonnull(strstr(names, "..."));
    ruleset_free(rs);
}
END_TEST

static Suite *geoip_suite(void)
{
    Suite *s = suite_create("geoip");
    TCase *tc = tcase_create("geoip");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, each_address_gives_the_fields_the_files_hold, 0,
                        sizeof lookups / sizeof lookups[0]);
    tcase_add_test(tc, files_say_what_they_hold_through_their_metadata);
    tcase_add_test(tc, the_first_file_with_a_field_wins);
    tcase_add_test(tc, a_file_that_cannot_be_opened_is_named_in_the_error);
    tcase_add_test(tc, field_names_map_both_ways);
    tcase_add_test(tc, without_a_database_the_fields_do_not_exist);
    tcase_add_test(tc, an_asn_file_alone_gives_source_as_and_not_source_geo);
    tcase_add_loop_test(tc, view_fields_follow_source_ip, 0,
                        sizeof view_cases / sizeof view_cases[0]);
    tcase_add_test(tc, the_lookup_happens_once_and_only_when_asked);
    tcase_add_test(tc, alert_fields_carry_typed_values);
    tcase_add_test(tc, kql_and_exceptions_read_the_enrichment);
    tcase_add_test(tc, lint_warns_about_source_as_only_without_a_database_that_has_it);
    tcase_add_test(tc, only_rules_that_name_enrichment_fields_put_them_in_alerts);
    tcase_add_test(tc, the_rule_list_is_cut_cleanly);
    suite_add_tcase(s, tc);
    return s;
}

NT_TEST_MAIN(geoip_suite)

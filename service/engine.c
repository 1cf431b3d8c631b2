/*
 * engine.c — query, exceptions, term tuples and alert documents for one event.
 *
 * Term values are copied into a fixed arena on the stack before the tuples are
 * built, so they stay valid even if the view reuses its scratch space between
 * fields; nothing is allocated on the heap until a candidate's alert document
 * is wanted (engine_alert), which only happens for the rare events that pass a
 * rule's query.
 */
#include "engine.h"

#include "sha256.h"

#include <stdio.h>
#include <string.h>

#define ARENA_BYTES (16 * 1024)

typedef struct term_values {
    nt_value v[NT_FIELD_MAX_VALUES];
    size_t n;
} term_values;

static int value_seen(const term_values *tv, const nt_value *v)
{
    for (size_t i = 0; i < tv->n; i++)
        if (tv->v[i].len == v->len && tv->v[i].type == v->type &&
            memcmp(tv->v[i].ptr, v->ptr, v->len) == 0)
            return 1;
    return 0;
}

/* Read one field into tv, copying into the arena; returns the value count. */
static size_t collect(const nt_field_source *src, ct_event *ev, int field, term_values *tv,
                      char *arena, size_t *used)
{
    nt_value raw[NT_FIELD_MAX_VALUES];
    tv->n = 0;
    if (field < 0) return 0;
    size_t n = src->get(src->ctx, ev, field, raw, NT_FIELD_MAX_VALUES);
    for (size_t i = 0; i < n; i++) {
        if (raw[i].len > ENGINE_VALUE_MAX) continue; /* ignore_above: not indexed */
        if (value_seen(tv, &raw[i])) continue;
        if (*used + raw[i].len > ARENA_BYTES) break;
        memcpy(arena + *used, raw[i].ptr, raw[i].len);
        tv->v[tv->n] = raw[i];
        tv->v[tv->n].ptr = arena + *used;
        *used += raw[i].len;
        tv->n++;
    }
    return tv->n;
}

static void hash_value(sha256_ctx *c, const char *field, const nt_value *v)
{
    unsigned char hdr[9];
    size_t flen = strlen(field);
    for (int i = 0; i < 8; i++)
        hdr[i] = (unsigned char)((uint64_t)flen >> (56 - 8 * i));
    sha256_update(c, hdr, 8);
    sha256_update(c, field, flen);
    hdr[0] = (unsigned char)v->type;
    for (int i = 0; i < 8; i++)
        hdr[1 + i] = (unsigned char)((uint64_t)v->len >> (56 - 8 * i));
    sha256_update(c, hdr, 9);
    sha256_update(c, v->ptr, v->len);
}

static void candidate_ids(nt_candidate *c, const char *event_id)
{
    sha256_ctx h;
    unsigned char d[32];
    sha256_init(&h);
    for (size_t i = 0; i < c->n_terms; i++)
        hash_value(&h, c->rule->term_fields[i], &c->terms[i]);
    sha256_final(&h, d);
    sha256_hex(d, 32, c->term_hash);
    sha256_init(&h);
    sha256_update(&h, c->rule->rule_id, strlen(c->rule->rule_id) + 1);
    sha256_update(&h, c->term_hash, 65);
    if (event_id) sha256_update(&h, event_id, strlen(event_id));
    sha256_final(&h, d);
    sha256_hex(d, 16, c->alert_id);
}

/* Suppression group of one event (see nt_candidate.supp). Hashes each
 * group_by field's values in order; a missing field hashes as a marker. */
static void suppression_group(const nt_rule *r, const nt_field_source *src, ct_event *ev,
                              nt_candidate *c)
{
    c->supp = 0;
    if (!r->supp) return;
    if (r->type == RULE_THRESHOLD) {
        memcpy(c->supp_hash, c->term_hash, sizeof c->supp_hash);
        c->supp = 1;
        return;
    }
    sha256_ctx h;
    unsigned char d[32];
    sha256_init(&h);
    sha256_update(&h, "supp", 5);
    for (size_t i = 0; i < r->n_supp; i++) {
        nt_value v[NT_FIELD_MAX_VALUES];
        size_t n = r->supp_ids[i] >= 0
                       ? src->get(src->ctx, ev, r->supp_ids[i], v, NT_FIELD_MAX_VALUES)
                       : 0;
        if (n == 0 && !r->supp_missing_ok) return; /* doNotSuppress: alerts on its own */
        nt_value missing = {.ptr = "", .len = 0, .type = (nt_value_type)0xff};
        if (n == 0) hash_value(&h, r->supp_fields[i], &missing);
        for (size_t k = 0; k < n; k++)
            hash_value(&h, r->supp_fields[i], &v[k]);
    }
    sha256_final(&h, d);
    sha256_hex(d, 32, c->supp_hash);
    c->supp = 1;
}

/* Threshold cardinality: hashes of the event's distinct values of the field. */
static void cardinality_values(const nt_rule *r, const nt_field_source *src, ct_event *ev,
                               nt_candidate *c)
{
    c->card[0] = 0;
    if (r->type != RULE_THRESHOLD || !r->card_field || r->card_id < 0) return;
    nt_value v[NT_FIELD_MAX_VALUES];
    size_t n = src->get(src->ctx, ev, r->card_id, v, NT_FIELD_MAX_VALUES);
    size_t used = 0, kept = 0;
    for (size_t i = 0; i < n && kept < ENGINE_MAX_CARD_VALUES; i++) {
        if (v[i].len > ENGINE_VALUE_MAX) continue;
        sha256_ctx h;
        unsigned char d[32];
        char hex[65];
        sha256_init(&h);
        hash_value(&h, r->card_field, &v[i]);
        sha256_final(&h, d);
        sha256_hex(d, 8, hex);
        if (strstr(c->card, hex)) continue; /* distinct values only */
        used +=
            (size_t)snprintf(c->card + used, sizeof c->card - used, "%s%s", kept ? "," : "", hex);
        kept++;
    }
}

static void evaluate_rule(const nt_rule *r, const nt_field_source *src, const exc_set *exc,
                          ct_event *ev, nt_time_ms now, engine_candidate_fn fn, void *ud,
                          engine_stats *st)
{
    if (!kql_match(r->query, ev)) return;
    st->rule_matches++;
    if (exc && exc_set_match(exc, r->rule_id, ev, now)) {
        st->exception_hits++;
        return;
    }
    char arena[ARENA_BYTES];
    size_t used = 0;
    term_values tv[RULE_MAX_TERMS];
    for (size_t i = 0; i < RULE_MAX_TERMS; i++)
        tv[i].n = 0;
    /* query: n_terms = 0. threshold: a group-by field missing from the event
     * keeps it out of every group, as Elastic's terms aggregation does. */
    for (size_t i = 0; i < r->n_terms; i++) {
        if (collect(src, ev, r->term_ids[i], &tv[i], arena, &used) == 0) {
            st->missing_terms++;
            return;
        }
    }
    /* Odometer over the cartesian product, capped. */
    size_t idx[RULE_MAX_TERMS] = {0};
    size_t emitted = 0;
    const char *event_id = ct_event_id(ev);
    for (;;) {
        if (emitted == ENGINE_MAX_COMBOS) {
            st->combos_capped++;
            break;
        }
        nt_candidate c = {.rule = r, .n_terms = r->n_terms};
        for (size_t i = 0; i < r->n_terms; i++)
            c.terms[i] = tv[i].v[idx[i]];
        candidate_ids(&c, event_id);
        suppression_group(r, src, ev, &c);
        cardinality_values(r, src, ev, &c);
        st->candidates++;
        emitted++;
        fn(ud, ev, &c);
        if (r->n_terms == 0) return;
        size_t k = r->n_terms;
        while (k > 0) {
            k--;
            if (++idx[k] < tv[k].n) break;
            idx[k] = 0;
            if (k == 0) return;
        }
    }
}

void engine_evaluate(const nt_ruleset *rs, const exc_set *exc, ct_event *ev, nt_time_ms now,
                     const unsigned char *only, engine_candidate_fn fn, void *ud, engine_stats *st)
{
    nt_field_source src = ct_schema_source(rs->schema);
    st->events++;
    for (size_t i = 0; i < rs->n; i++)
        if ((!only || only[i]) && !rs->rules[i]->inert)
            evaluate_rule(rs->rules[i], &src, exc, ev, now, fn, ud, st);
}

typedef struct again_ctx {
    const char *alert_id;
    nt_time_ms now;
    json_t *doc;
} again_ctx;

static void on_again(void *ud, ct_event *ev, const nt_candidate *c)
{
    again_ctx *ac = ud;
    if (!ac->doc && strcmp(c->alert_id, ac->alert_id) == 0) ac->doc = engine_alert(c, ev, ac->now);
}

json_t *engine_alert_again(const nt_ruleset *rs, const nt_rule *r, ct_event *ev, nt_time_ms now,
                           const char *alert_id)
{
    nt_field_source src = ct_schema_source(rs->schema);
    again_ctx ac = {.alert_id = alert_id, .now = now};
    engine_stats st = {0};
    evaluate_rule(r, &src, NULL, ev, now, on_again, &ac, &st);
    return ac.doc;
}

void engine_stats_add(engine_stats *a, const engine_stats *b)
{
    a->events += b->events;
    a->rule_matches += b->rule_matches;
    a->exception_hits += b->exception_hits;
    a->missing_terms += b->missing_terms;
    a->candidates += b->candidates;
    a->combos_capped += b->combos_capped;
}

static json_t *value_json(const nt_value *v)
{
    return json_stringn(v->ptr, v->len);
}

/* The first value of a field as a printable string, or a dash. */
static void first_value(ct_event *ev, const ct_schema *schema, const char *name, char *buf,
                        size_t cap)
{
    nt_value v[NT_FIELD_MAX_VALUES];
    int id = ct_schema_resolve((ct_schema *)schema, name, strlen(name));
    size_t n = id >= 0 ? ct_view_get(ev, id, v, NT_FIELD_MAX_VALUES) : 0;
    if (n == 0) {
        snprintf(buf, cap, "-");
        return;
    }
    snprintf(buf, cap, "%.*s", (int)(v[0].len > 200 ? 200 : v[0].len), v[0].ptr);
}

json_t *engine_alert(const nt_candidate *c, ct_event *ev, nt_time_ms now)
{
    const nt_rule *r = c->rule;
    const ct_schema *schema = ev->schema;
    char created[NT_TIME_BUF], original[NT_TIME_BUF];
    nt_time_format(now, created);
    nt_time_ms et = ct_event_time(ev);
    json_t *fields_arr = json_array(), *terms = json_array();
    for (size_t i = 0; i < c->n_terms; i++) {
        json_array_append_new(fields_arr, json_string(r->term_fields[i]));
        json_array_append_new(terms, value_json(&c->terms[i]));
    }
    /* fields: the rule's investigation fields, its new-terms fields and a few
     * that every analyst wants, in that order, each once. */
    static const char *const always[] = {
        "@timestamp",    "event.action",        "event.provider",
        "event.outcome", "cloud.account.id",    "user.name",
        "source.ip",     "user_agent.original", "aws.cloudtrail.user_identity.arn"};
    const char *names[64];
    size_t n = 0;
    for (size_t i = 0; i < r->n_inv && n < 64; i++)
        names[n++] = r->inv_fields[i];
    for (size_t i = 0; i < r->n_terms && n < 64; i++)
        names[n++] = r->term_fields[i];
    for (size_t i = 0; i < sizeof always / sizeof always[0] && n < 64; i++)
        names[n++] = always[i];
    /* IP enrichment next to source.ip, for rules that use it when a GeoIP
     * database is configured (fields the databases do not have for this address
     * are omitted). Other rules' alerts do not look up: the document is built
     * for every candidate, and candidates of those rules must not pay. */
    static const char *const enrichment[] = {
        "source.as.number",        "source.as.organization.name", "source.geo.country_iso_code",
        "source.geo.country_name", "source.geo.continent_name",   "source.geo.region_name",
        "source.geo.city_name",    "source.geo.location"};
    for (size_t i = 0; r->uses_geoip && ct_schema_geoip(schema) &&
                       i < sizeof enrichment / sizeof enrichment[0] && n < 64;
         i++)
        names[n++] = enrichment[i];
    size_t uniq = 0;
    for (size_t i = 0; i < n; i++) {
        size_t j;
        for (j = 0; j < uniq; j++)
            if (strcmp(names[j], names[i]) == 0) break;
        if (j == uniq) names[uniq++] = names[i];
    }
    json_t *fields = ct_view_fields_json(ev, names, uniq);

    char user[210], action[210], provider[210], account[210], ip[210];
    first_value(ev, schema, "user.name", user, sizeof user);
    first_value(ev, schema, "event.action", action, sizeof action);
    first_value(ev, schema, "event.provider", provider, sizeof provider);
    first_value(ev, schema, "cloud.account.id", account, sizeof account);
    first_value(ev, schema, "source.ip", ip, sizeof ip);
    char termtext[512] = "";
    for (size_t i = 0; i < c->n_terms; i++) {
        size_t used = strlen(termtext);
        snprintf(termtext + used, sizeof termtext - used, "%s%s=%.*s", i ? ", " : "",
                 r->term_fields[i], (int)(c->terms[i].len > 120 ? 120 : c->terms[i].len),
                 c->terms[i].ptr);
    }
    char reason[2048];
    if (r->type == RULE_NEW_TERMS)
        snprintf(reason, sizeof reason,
                 "%s called %s %s in account %s from %s; the combination %s was not seen in the "
                 "previous %s, so rule \"%s\" raised a %s alert.",
                 user, provider, action, account, ip, termtext, r->window_text, r->name,
                 r->severity);
    else if (r->type == RULE_THRESHOLD)
        snprintf(reason, sizeof reason,
                 "%s called %s %s in account %s from %s; the group %s reached the threshold of "
                 "rule \"%s\" (%lld events%s%s within %s), which raised a %s alert.",
                 user, provider, action, account, ip, c->n_terms ? termtext : "(all events)",
                 r->name, r->thr_value, r->card_field ? " and distinct " : "",
                 r->card_field ? r->card_field : "", r->window_text, r->severity);
    else
        snprintf(reason, sizeof reason,
                 "%s called %s %s in account %s from %s, which matches rule \"%s\" and raised a "
                 "%s alert.",
                 user, provider, action, account, ip, r->name, r->severity);

    json_t *rule = json_pack("{s:s,s:s,s:s,s:i,s:s,s:O}", "id", r->rule_id, "name", r->name,
                             "severity", r->severity, "risk_score", r->risk_score, "type",
                             rule_type_name(r->type), "threat", r->threat);
    const char *eid = ct_event_id(ev);
    json_t *doc =
        json_pack("{s:s,s:s,s:o,s:s,s:o,s:o,s:O?}", "id", c->alert_id, "created_at", created,
                  "rule", rule, "reason", reason, "event_id", eid ? json_string(eid) : json_null(),
                  "fields", fields ? fields : json_object(), "event", ev->record);
    if (!doc) {
        json_decref(fields_arr);
        json_decref(terms);
        return NULL;
    }
    if (r->type == RULE_NEW_TERMS) {
        json_object_set_new(doc, "new_terms_fields", fields_arr);
        json_object_set_new(doc, "new_terms", terms);
        json_object_set_new(doc, "history_window", json_string(r->window_text));
    } else {
        json_decref(fields_arr);
        json_decref(terms);
    }
    if (r->type == RULE_THRESHOLD) {
        json_t *tterms = json_array(), *card = json_array();
        for (size_t i = 0; i < c->n_terms; i++)
            json_array_append_new(tterms, json_pack("{s:s,s:o}", "field", r->term_fields[i],
                                                    "value", value_json(&c->terms[i])));
        if (r->card_field)
            json_array_append_new(
                card, json_pack("{s:s,s:I}", "field", r->card_field, "value", (json_int_t)0));
        json_object_set_new(doc, "threshold_result",
                            json_pack("{s:o,s:I,s:o,s:s}", "terms", tterms, "count", (json_int_t)0,
                                      "cardinality", card, "window", r->window_text));
    }
    if (r->supp && c->supp) {
        json_t *sterms = json_array();
        char *const *gnames = r->type == RULE_THRESHOLD ? r->term_fields : r->supp_fields;
        size_t n_names = r->type == RULE_THRESHOLD ? r->n_terms : r->n_supp;
        for (size_t i = 0; i < n_names; i++) {
            nt_value v[NT_FIELD_MAX_VALUES];
            int id = ct_schema_resolve((ct_schema *)schema, gnames[i], strlen(gnames[i]));
            size_t nv = id >= 0 ? ct_view_get(ev, id, v, NT_FIELD_MAX_VALUES) : 0;
            json_t *val = nv == 0 ? json_null() : nv == 1 ? value_json(&v[0]) : json_array();
            for (size_t k = 0; nv > 1 && k < nv; k++)
                json_array_append_new(val, value_json(&v[k]));
            json_array_append_new(sterms, json_pack("{s:s,s:o}", "field", gnames[i], "value", val));
        }
        json_object_set_new(doc, "suppression",
                            json_pack("{s:o,s:s}", "terms", sterms, "duration", r->supp_text));
    }
    if (et >= 0)
        json_object_set_new(doc, "original_time", json_string(nt_time_format(et, original)));
    return doc;
}

/*
 * rule.c — load Elastic TOML rules into nt_rule and lint them.
 *
 * Loading is strict about what changes the detection (type, language, query,
 * new_terms fields, history window) and lenient about the rest of Elastic's
 * metadata, which is kept only where the alert shows it (name, severity,
 * risk_score, threat, investigation fields). Lint findings are collected as
 * {"code","message"} objects so the API, the startup log and check-rules all
 * show the same words.
 */
#include "rule.h"

#include "catalog.h"
#include "toml.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define RULE_FILE_MAX (1024 * 1024)

static json_t *path_get(json_t *doc, const char *dotted)
{
    char key[64];
    json_t *cur = doc;
    while (cur && *dotted) {
        const char *dot = strchr(dotted, '.');
        size_t n = dot ? (size_t)(dot - dotted) : strlen(dotted);
        if (n >= sizeof key) return NULL;
        memcpy(key, dotted, n);
        key[n] = 0;
        cur = json_is_object(cur) ? json_object_get(cur, key) : NULL;
        dotted += n + (dot ? 1 : 0);
    }
    return cur;
}

static char *dup_string(json_t *v)
{
    return json_is_string(v) ? strdup(json_string_value(v)) : NULL;
}

static void warn(nt_rule *r, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void warn(nt_rule *r, const char *code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_array_append_new(r->warnings, json_pack("{s:s,s:s}", "code", code, "message", msg));
}

void rule_free(nt_rule *r)
{
    if (!r) return;
    free(r->path);
    free(r->rule_id);
    free(r->name);
    free(r->severity);
    free(r->query_text);
    kql_free(r->query);
    for (size_t i = 0; i < r->n_terms; i++)
        free(r->term_fields[i]);
    free(r->card_field);
    for (size_t i = 0; i < r->n_supp; i++)
        free(r->supp_fields[i]);
    for (size_t i = 0; i < r->n_inv; i++)
        free(r->inv_fields[i]);
    free(r->inv_fields);
    json_decref(r->threat);
    json_decref(r->warnings);
    free(r);
}

/* "now-10d" → 10 days. Elastic date math allows more, but rules use this form. */
static nt_status parse_now_minus(const char *what, const char *s, nt_time_ms *out, char *text,
                                 size_t textcap, nt_err *err)
{
    if (strncmp(s, "now-", 4) != 0)
        return nt_fail(err, NT_ERR_INVALID, "%s '%s' is not of the form now-<duration>", what, s);
    nt_err derr;
    if (nt_duration_parse(s + 4, strlen(s + 4), out, &derr) != NT_OK)
        return nt_fail(err, NT_ERR_INVALID, "%s: %s", what, derr.msg);
    if (*out <= 0) return nt_fail(err, NT_ERR_INVALID, "%s '%s' must be positive", what, s);
    if (text) snprintf(text, textcap, "%s", s + 4);
    return NT_OK;
}

/* Lint of event.action values against the action catalogue. */
typedef struct action_lint {
    const char *providers[16];
    size_t n_providers;
    nt_rule *rule;
    int uncatalogued; /* the query names a provider the catalogue does not know */
    int pass;         /* 0: collect providers, 1: check actions */
} action_lint;

static void lint_term(void *ud, const char *field, const char *value, size_t len, int is_wildcard,
                      int line, int column)
{
    action_lint *al = ud;
    if (is_wildcard) return;
    if (al->pass == 0) {
        if (strcmp(field, "event.provider") != 0) return;
        if (!catalog_has_provider(value))
            al->uncatalogued = 1;
        else if (al->n_providers < 16)
            al->providers[al->n_providers++] = value;
        return;
    }
    /* An action may belong to a provider we have no catalogue for: say nothing. */
    if (strcmp(field, "event.action") != 0 || al->n_providers == 0 || al->uncatalogued) return;
    const char *best = NULL;
    for (size_t i = 0; i < al->n_providers; i++) {
        if (catalog_has_action(al->providers[i], value, len)) return;
        if (!best) best = catalog_suggest(al->providers[i], value, len);
    }
    char names[256] = "";
    for (size_t i = 0; i < al->n_providers; i++) {
        size_t used = strlen(names);
        snprintf(names + used, sizeof names - used, "%s%s", i ? " or " : "", al->providers[i]);
    }
    if (best)
        warn(al->rule, "unknown_action",
             "query line %d, column %d: event.action \"%.*s\" is not an API action of %s; did you "
             "mean %s?",
             line, column, (int)len, value, names, best);
    else
        warn(al->rule, "unknown_action",
             "query line %d, column %d: event.action \"%.*s\" is not an API action of %s", line,
             column, (int)len, value, names);
}

/* source.as.* / source.geo.*: fields a GeoIP database gives. */
static int is_enrichment_field(const char *name)
{
    return name && (strncmp(name, "source.as.", 10) == 0 || strncmp(name, "source.geo.", 11) == 0);
}

static nt_status load_terms(nt_rule *r, json_t *doc, ct_schema *schema, nt_err *err)
{
    json_t *nt = path_get(doc, "rule.new_terms");
    json_t *fields = path_get(nt, "value");
    if (!json_is_object(nt) || !json_is_array(fields))
        return nt_fail(err, NT_ERR_INVALID,
                       "rule.new_terms.value (the new_terms fields) is missing");
    json_t *field_name = path_get(nt, "field");
    if (field_name && (!json_is_string(field_name) ||
                       strcmp(json_string_value(field_name), "new_terms_fields") != 0))
        return nt_fail(err, NT_ERR_INVALID, "rule.new_terms.field must be \"new_terms_fields\"");
    size_t n = json_array_size(fields);
    if (n < 1 || n > RULE_MAX_TERMS)
        return nt_fail(err, NT_ERR_INVALID,
                       "a new_terms rule needs 1 to 3 new_terms fields, not %zu", n);
    for (size_t i = 0; i < n; i++) {
        json_t *f = json_array_get(fields, i);
        if (!json_is_string(f) || json_string_length(f) == 0)
            return nt_fail(err, NT_ERR_INVALID, "rule.new_terms.value[%zu] is not a field name", i);
        for (size_t j = 0; j < i; j++)
            if (strcmp(r->term_fields[j], json_string_value(f)) == 0)
                return nt_fail(err, NT_ERR_INVALID, "new_terms field '%s' is listed twice",
                               json_string_value(f));
        r->term_fields[i] = strdup(json_string_value(f));
        if (!r->term_fields[i]) return nt_fail(err, NT_ERR_NOMEM, "out of memory");
        r->n_terms = i + 1;
        r->term_ids[i] = ct_schema_resolve(schema, r->term_fields[i], strlen(r->term_fields[i]));
        if (r->term_ids[i] < 0 && is_enrichment_field(r->term_fields[i])) {
            r->needs_geoip = 1;
            warn(r, "unknown_field",
                 "new_terms field '%s' comes from IP enrichment and no GeoIP database that has it "
                 "is configured (--geoip-db / NEWTERMSD_GEOIP_DB): no event will carry it, so the "
                 "rule can never alert",
                 r->term_fields[i]);
        } else if (r->term_ids[i] < 0)
            warn(r, "unknown_field",
                 "new_terms field '%s' is not produced by the CloudTrail view: no event will ever "
                 "carry it, so the rule can never alert",
                 r->term_fields[i]);
    }
    json_t *hws = path_get(nt, "history_window_start");
    json_t *hw = json_is_array(hws) ? json_array_get(hws, 0) : hws;
    json_t *hwv = json_is_object(hw) ? json_object_get(hw, "value") : hw;
    if (!json_is_string(hwv))
        return nt_fail(err, NT_ERR_INVALID,
                       "rule.new_terms.history_window_start (e.g. \"now-10d\") is missing");
    return parse_now_minus("history_window_start", json_string_value(hwv), &r->window_ms,
                           r->window_text, sizeof r->window_text, err);
}

/* A list of 0..3 distinct field names (a string counts as a list of one),
 * resolved in the schema; unknown fields are warnings. `what` names the key. */
static nt_status load_field_list(nt_rule *r, json_t *v, const char *what, size_t min,
                                 ct_schema *schema, char **names, int *ids, size_t *n, nt_err *err)
{
    json_t *one = json_is_string(v) ? v : NULL;
    size_t count = one ? 1 : json_array_size(v);
    if (!one && !json_is_array(v))
        return nt_fail(err, NT_ERR_INVALID, "%s must be a list of field names", what);
    if (count < min || count > RULE_MAX_TERMS)
        return nt_fail(err, NT_ERR_INVALID, "%s needs %zu to 3 fields, not %zu", what, min, count);
    for (size_t i = 0; i < count; i++) {
        json_t *f = one ? one : json_array_get(v, i);
        if (!json_is_string(f) || json_string_length(f) == 0)
            return nt_fail(err, NT_ERR_INVALID, "%s[%zu] is not a field name", what, i);
        for (size_t j = 0; j < i; j++)
            if (strcmp(names[j], json_string_value(f)) == 0)
                return nt_fail(err, NT_ERR_INVALID, "%s lists '%s' twice", what,
                               json_string_value(f));
        names[i] = strdup(json_string_value(f));
        if (!names[i]) return nt_fail(err, NT_ERR_NOMEM, "out of memory");
        *n = i + 1;
        ids[i] = ct_schema_resolve(schema, names[i], strlen(names[i]));
        if (ids[i] < 0)
            warn(r, "unknown_field",
                 "%s field '%s' is not produced by the CloudTrail view: no event will ever carry "
                 "it",
                 what, names[i]);
    }
    return NT_OK;
}

static int positive_int(json_t *v, long long *out)
{
    if (!json_is_integer(v) || json_integer_value(v) < 1) return 0;
    *out = (long long)json_integer_value(v);
    return 1;
}

/* [rule.threshold]: field (0..3), value >= 1, cardinality [{field, value}] (at most one). */
static nt_status load_threshold(nt_rule *r, json_t *doc, ct_schema *schema, nt_err *err)
{
    json_t *t = path_get(doc, "rule.threshold");
    if (!json_is_object(t))
        return nt_fail(err, NT_ERR_INVALID,
                       "rule.threshold is missing (a threshold rule needs it)");
    json_t *fields = json_object_get(t, "field");
    if (fields) {
        nt_status st = load_field_list(r, fields, "rule.threshold.field", 0, schema, r->term_fields,
                                       r->term_ids, &r->n_terms, err);
        if (st != NT_OK) return st;
    }
    if (!positive_int(json_object_get(t, "value"), &r->thr_value))
        return nt_fail(err, NT_ERR_INVALID, "rule.threshold.value must be an integer >= 1");
    json_t *card = json_object_get(t, "cardinality");
    if (card && !json_is_array(card))
        return nt_fail(err, NT_ERR_INVALID, "rule.threshold.cardinality must be a list");
    if (json_array_size(card) > 1)
        return nt_fail(err, NT_ERR_INVALID,
                       "rule.threshold.cardinality has %zu entries; Elastic allows one",
                       json_array_size(card));
    if (json_array_size(card) == 1) {
        json_t *c0 = json_array_get(card, 0);
        const char *f = json_string_value(json_object_get(c0, "field"));
        if (!f || !*f)
            return nt_fail(err, NT_ERR_INVALID, "rule.threshold.cardinality[0].field is missing");
        if (!positive_int(json_object_get(c0, "value"), &r->card_value))
            return nt_fail(err, NT_ERR_INVALID,
                           "rule.threshold.cardinality[0].value must be an integer >= 1");
        if (!(r->card_field = strdup(f))) return nt_fail(err, NT_ERR_NOMEM, "out of memory");
        r->card_id = ct_schema_resolve(schema, f, strlen(f));
        if (r->card_id < 0)
            warn(r, "unknown_field",
                 "threshold cardinality field '%s' is not produced by the CloudTrail view: the "
                 "rule can never alert",
                 f);
    }
    return NT_OK;
}

/* [rule.alert_suppression]: group_by (1..3; a threshold rule uses its own
 * group-by and may not set one), duration {value, unit s|m|h} (optional),
 * missing_fields_strategy suppress | doNotSuppress. */
static nt_status load_suppression(nt_rule *r, json_t *doc, ct_schema *schema, nt_err *err)
{
    json_t *s = path_get(doc, "rule.alert_suppression");
    if (!s) return NT_OK;
    if (!json_is_object(s))
        return nt_fail(err, NT_ERR_INVALID, "rule.alert_suppression must be a table");
    r->supp = 1;
    json_t *gb = json_object_get(s, "group_by");
    if (r->type == RULE_THRESHOLD) {
        if (gb)
            return nt_fail(err, NT_ERR_INVALID,
                           "rule.alert_suppression.group_by is not allowed on a threshold rule: "
                           "it suppresses by the threshold's own group-by fields");
        r->n_supp = 0;
    } else {
        if (!gb) return nt_fail(err, NT_ERR_INVALID, "rule.alert_suppression.group_by is missing");
        nt_status st = load_field_list(r, gb, "rule.alert_suppression.group_by", 1, schema,
                                       r->supp_fields, r->supp_ids, &r->n_supp, err);
        if (st != NT_OK) return st;
    }
    json_t *d = json_object_get(s, "duration");
    if (d) {
        long long v = 0;
        const char *unit = json_string_value(json_object_get(d, "unit"));
        if (!positive_int(json_object_get(d, "value"), &v) || !unit ||
            (strcmp(unit, "s") != 0 && strcmp(unit, "m") != 0 && strcmp(unit, "h") != 0))
            return nt_fail(err, NT_ERR_INVALID,
                           "rule.alert_suppression.duration must be {value = N, unit = \"s\", "
                           "\"m\" or \"h\"}");
        long long mult = unit[0] == 's' ? 1000 : unit[0] == 'm' ? 60000 : 3600000;
        if (v > 365LL * 24 * 3600)
            return nt_fail(err, NT_ERR_INVALID, "rule.alert_suppression.duration is too long");
        r->supp_ms = v * mult;
        snprintf(r->supp_text, sizeof r->supp_text, "%d%s", (int)v, unit);
    } else {
        /* Elastic suppresses for one rule execution without a duration; a
         * stream has no executions, so one interval stands in for one. */
        r->supp_ms = r->interval_ms;
        snprintf(r->supp_text, sizeof r->supp_text, "%llds",
                 (long long)(r->interval_ms / 1000) % 100000000000LL);
    }
    const char *mfs = json_string_value(json_object_get(s, "missing_fields_strategy"));
    if (!mfs || strcmp(mfs, "suppress") == 0)
        r->supp_missing_ok = 1;
    else if (strcmp(mfs, "doNotSuppress") == 0)
        r->supp_missing_ok = 0;
    else
        return nt_fail(err, NT_ERR_INVALID,
                       "rule.alert_suppression.missing_fields_strategy must be \"suppress\" or "
                       "\"doNotSuppress\"");
    return NT_OK;
}

const char *rule_type_name(nt_rule_type t)
{
    return t == RULE_QUERY ? "query" : t == RULE_THRESHOLD ? "threshold" : "new_terms";
}

/* rule.type, rule.language and rule.filters: what kind of rule, and whether
 * newtermsd runs it at all. */
static nt_status load_kind(nt_rule *r, json_t *doc, nt_err *err)
{
    const char *type = json_string_value(path_get(doc, "rule.type"));
    if (!type) return nt_fail(err, NT_ERR_INVALID, "rule.type is missing");
    if (strcmp(type, "new_terms") == 0)
        r->type = RULE_NEW_TERMS;
    else if (strcmp(type, "query") == 0)
        r->type = RULE_QUERY;
    else if (strcmp(type, "threshold") == 0)
        r->type = RULE_THRESHOLD;
    else
        return nt_fail(err, NT_ERR_UNSUPPORTED,
                       "rule type '%s' is not supported: newtermsd runs new_terms, query and "
                       "threshold rules",
                       type);
    const char *lang = json_string_value(path_get(doc, "rule.language"));
    if (lang && strcmp(lang, "kuery") != 0)
        return nt_fail(err, NT_ERR_UNSUPPORTED,
                       "query language '%s' is not supported: only kuery (KQL)", lang);
    if (path_get(doc, "rule.filters"))
        return nt_fail(err, NT_ERR_UNSUPPORTED,
                       "rule.filters (Query DSL filters) are not supported");
    return NT_OK;
}

/* rule_id, name, severity, query and risk_score: all required. */
static nt_status load_identity(nt_rule *r, json_t *doc, nt_err *err)
{
    r->rule_id = dup_string(path_get(doc, "rule.rule_id"));
    r->name = dup_string(path_get(doc, "rule.name"));
    r->severity = dup_string(path_get(doc, "rule.severity"));
    r->query_text = dup_string(path_get(doc, "rule.query"));
    json_t *risk = path_get(doc, "rule.risk_score");
    if (!r->rule_id || !r->name || !r->severity || !r->query_text || !json_is_integer(risk)) {
        /* The status is spelt out (not nt_fail's) so the analyzer sees that
         * no required field is NULL past this point. */
        nt_fail(err, NT_ERR_INVALID, "rule.%s is missing or not a %s",
                !r->rule_id      ? "rule_id"
                : !r->name       ? "name"
                : !r->severity   ? "severity"
                : !r->query_text ? "query"
                                 : "risk_score",
                json_is_integer(risk) || !r->query_text ? "string" : "integer");
        return NT_ERR_INVALID;
    }
    r->risk_score = (int)json_integer_value(risk);
    if (r->risk_score < 0 || r->risk_score > 100)
        return nt_fail(err, NT_ERR_INVALID, "rule.risk_score %d is outside 0..100", r->risk_score);
    return NT_OK;
}

/* rule.from (the look-back, as text in from_text) and rule.interval. */
static nt_status load_schedule(nt_rule *r, json_t *doc, char *from_text, size_t cap, nt_err *err)
{
    const char *from = json_string_value(path_get(doc, "rule.from"));
    nt_status st =
        parse_now_minus("rule.from", from ? from : "now-6m", &r->lookback_ms, from_text, cap, err);
    if (st != NT_OK) return st;
    const char *interval = json_string_value(path_get(doc, "rule.interval"));
    r->interval_ms = 5 * 60 * 1000;
    if (interval) {
        nt_err ierr;
        if (nt_duration_parse(interval, strlen(interval), &r->interval_ms, &ierr) != NT_OK ||
            r->interval_ms <= 0)
            return nt_fail(err, NT_ERR_INVALID, "rule.interval '%s' is not a duration such as 5m",
                           interval);
    }
    return NT_OK;
}

/* [newtermsd] learning_period: new_terms rules only (a warning otherwise). */
static nt_status load_learning(nt_rule *r, json_t *doc, nt_err *err)
{
    json_t *learn = path_get(doc, "newtermsd.learning_period");
    if (!learn) return NT_OK;
    if (r->type != RULE_NEW_TERMS) {
        warn(r, "ignored_key",
             "[newtermsd] learning_period applies to new_terms rules only; a %s rule has no "
             "history to learn",
             rule_type_name(r->type));
        return NT_OK;
    }
    nt_err derr;
    if (!json_is_string(learn) ||
        nt_duration_parse(json_string_value(learn), json_string_length(learn), &r->learning_ms,
                          &derr) != NT_OK)
        return nt_fail(err, NT_ERR_INVALID,
                       "newtermsd.learning_period must be a duration such as \"10d\"");
    return NT_OK;
}

/* The lint of a compiled query: fields the CloudTrail view never produces
 * (or only with a GeoIP database), and the API actions the catalogue does
 * not know. Warnings only: the rule loads. */
static void rule_lint(nt_rule *r)
{
    const char *const *unknown = NULL;
    size_t n_unknown = kql_unknown_fields(r->query, &unknown);
    for (size_t i = 0; i < n_unknown; i++) {
        if (is_enrichment_field(unknown[i])) {
            r->needs_geoip = 1;
            warn(r, "unknown_field",
                 "query field '%s' comes from IP enrichment and no GeoIP database that has it is "
                 "configured (--geoip-db / NEWTERMSD_GEOIP_DB): it is treated as missing",
                 unknown[i]);
            continue;
        }
        warn(r, "unknown_field",
             "query field '%s' is not produced by the CloudTrail view: it is treated as missing",
             unknown[i]);
    }
    action_lint al = {.rule = r};
    kql_visit_terms(r->query, lint_term, &al);
    al.pass = 1;
    kql_visit_terms(r->query, lint_term, &al);
}

/* What alerts carry beyond the query: investigation fields, MITRE threat,
 * and whether any field needs IP enrichment. */
static nt_status load_presentation(nt_rule *r, json_t *doc, nt_err *err)
{
    r->uses_geoip = r->needs_geoip || strstr(r->query_text, "source.as.") ||
                    strstr(r->query_text, "source.geo.");
    for (size_t i = 0; i < r->n_terms; i++)
        r->uses_geoip |= is_enrichment_field(r->term_fields[i]);
    json_t *inv = path_get(doc, "rule.investigation_fields.field_names");
    if (json_is_array(inv) && json_array_size(inv) > 0) {
        r->inv_fields = calloc(json_array_size(inv), sizeof *r->inv_fields);
        if (!r->inv_fields) return nt_fail(err, NT_ERR_NOMEM, "out of memory");
        size_t i;
        json_t *v;
        json_array_foreach(inv, i, v)
        {
            char *name = json_is_string(v) ? strdup(json_string_value(v)) : NULL;
            if (!name) continue;
            r->inv_fields[r->n_inv++] = name;
            r->uses_geoip |= is_enrichment_field(name);
        }
    }
    json_t *threat = path_get(doc, "rule.threat");
    r->threat = json_is_array(threat) ? json_incref(threat) : json_array();
    return NT_OK;
}

nt_status rule_load(const char *path, const char *text, size_t len, ct_schema *schema,
                    nt_rule **out, nt_err *err)
{
    *out = NULL;
    json_t *doc = NULL;
    nt_status st = toml_parse(text, len, &doc, err);
    if (st != NT_OK) return st;
    nt_rule *r = calloc(1, sizeof *r);
    if (!r || !(r->warnings = json_array()) || !(r->path = strdup(path ? path : "-"))) {
        st = nt_fail(err, NT_ERR_NOMEM, "out of memory");
        goto fail;
    }
    char from_text[16] = "";
    if ((st = load_kind(r, doc, err)) != NT_OK || (st = load_identity(r, doc, err)) != NT_OK ||
        (st = load_schedule(r, doc, from_text, sizeof from_text, err)) != NT_OK)
        goto fail;
    r->card_id = -1;
    if (r->type == RULE_NEW_TERMS) {
        if ((st = load_terms(r, doc, schema, err)) != NT_OK) goto fail;
    } else {
        /* query and threshold: the window is the look-back. */
        r->window_ms = r->lookback_ms;
        snprintf(r->window_text, sizeof r->window_text, "%s", from_text);
        if (r->type == RULE_THRESHOLD && (st = load_threshold(r, doc, schema, err)) != NT_OK)
            goto fail;
    }
    if ((st = load_suppression(r, doc, schema, err)) != NT_OK) goto fail;
    for (size_t i = 0; i < r->n_terms; i++)
        r->inert |= r->term_ids[i] < 0;
    if (r->type == RULE_NEW_TERMS && r->window_ms <= r->lookback_ms) {
        const char *from = json_string_value(path_get(doc, "rule.from"));
        st = nt_fail(err, NT_ERR_INVALID,
                     "history window %s is not longer than the rule's lookback (from = %s): "
                     "'history_window_start' must be earlier than 'from'",
                     r->window_text, from ? from : "now-6m");
        goto fail;
    }
    if ((st = load_learning(r, doc, err)) != NT_OK) goto fail;

    nt_field_source src = ct_schema_source(schema);
    nt_err qerr;
    st = kql_compile(r->query_text, strlen(r->query_text), &src, &r->query, &qerr);
    if (st != NT_OK) {
        nt_fail(err, st, "rule.query: %s", qerr.msg);
        goto fail;
    }
    rule_lint(r);
    if ((st = load_presentation(r, doc, err)) != NT_OK) goto fail;
    json_decref(doc);
    *out = r;
    return NT_OK;
fail:
    json_decref(doc);
    rule_free(r);
    return st;
}

static json_t *names_json(char *const *names, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_string(names[i]));
    return a;
}

json_t *rule_to_json(const nt_rule *r)
{
    json_t *doc =
        json_pack("{s:s,s:s,s:s,s:i,s:s,s:s,s:O}", "rule_id", r->rule_id, "name", r->name,
                  "severity", r->severity, "risk_score", r->risk_score, "type",
                  rule_type_name(r->type), "query", r->query_text, "warnings", r->warnings);
    if (!doc) return NULL;
    if (r->type == RULE_NEW_TERMS) {
        json_object_set_new(doc, "new_terms_fields", names_json(r->term_fields, r->n_terms));
        json_object_set_new(doc, "history_window", json_string(r->window_text));
    } else if (r->type == RULE_THRESHOLD) {
        json_t *card = json_array();
        if (r->card_field)
            json_array_append_new(card, json_pack("{s:s,s:I}", "field", r->card_field, "value",
                                                  (json_int_t)r->card_value));
        json_object_set_new(
            doc, "threshold",
            json_pack("{s:o,s:I,s:o,s:s}", "field", names_json(r->term_fields, r->n_terms), "value",
                      (json_int_t)r->thr_value, "cardinality", card, "window", r->window_text));
    }
    if (r->supp) {
        json_object_set_new(doc, "alert_suppression",
                            json_pack("{s:o,s:s,s:s}", "group_by",
                                      r->type == RULE_THRESHOLD
                                          ? names_json(r->term_fields, r->n_terms)
                                          : names_json(r->supp_fields, r->n_supp),
                                      "duration", r->supp_text, "missing_fields_strategy",
                                      r->supp_missing_ok ? "suppress" : "doNotSuppress"));
    }
    return doc;
}

void ruleset_free(nt_ruleset *rs)
{
    if (!rs) return;
    for (size_t i = 0; i < rs->n; i++)
        rule_free(rs->rules[i]);
    free(rs->rules);
    json_decref(rs->errors);
    ct_schema_free(rs->schema);
    kql_pfshare_free(rs->pfshare[0]);
    kql_pfshare_free(rs->pfshare[1]);
    free(rs);
}

const nt_rule *ruleset_find(const nt_ruleset *rs, const char *rule_id)
{
    for (size_t i = 0; i < rs->n; i++)
        if (strcmp(rs->rules[i]->rule_id, rule_id) == 0) return rs->rules[i];
    return NULL;
}

void ruleset_set_default_learning(nt_ruleset *rs, nt_time_ms learning_ms)
{
    for (size_t i = 0; i < rs->n; i++)
        if (rs->rules[i]->type == RULE_NEW_TERMS && rs->rules[i]->learning_ms == 0)
            rs->rules[i]->learning_ms = learning_ms;
}

static nt_status read_file(const char *path, char **text, size_t *len, nt_err *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) return nt_fail(err, NT_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    char *buf = malloc(RULE_FILE_MAX + 1);
    size_t n = buf ? fread(buf, 1, RULE_FILE_MAX + 1, f) : 0;
    int bad = ferror(f);
    fclose(f);
    if (!buf) return nt_fail(err, NT_ERR_NOMEM, "out of memory reading %s", path);
    if (bad) {
        free(buf);
        return nt_fail(err, NT_ERR_IO, "cannot read %s", path);
    }
    if (n > RULE_FILE_MAX) {
        free(buf);
        return nt_fail(err, NT_ERR_LIMIT, "%s is larger than %d bytes", path, RULE_FILE_MAX);
    }
    buf[n] = 0;
    *text = buf;
    *len = n;
    return NT_OK;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

size_t ruleset_geoip_rules(const nt_ruleset *rs, char *buf, size_t cap)
{
    size_t n = 0, used = 0;
    if (cap) buf[0] = '\0';
    for (size_t i = 0; rs && i < rs->n; i++) {
        if (!rs->rules[i]->needs_geoip) continue;
        n++;
        if (!cap || used >= cap) continue;
        int w = snprintf(buf + used, cap - used, "%s%s", used ? "; " : "", rs->rules[i]->name);
        if (w < 0 || (size_t)w >= cap - used) {
            if (cap > 4) snprintf(buf + cap - 5, 5, "%s", "...");
            used = cap;
        } else {
            used += (size_t)w;
        }
    }
    return n;
}

nt_status ruleset_load_dir(const char *dir, int require_all, nt_ruleset **out, nt_err *err)
{
    return ruleset_load_dir_geoip(dir, require_all, NULL, out, err);
}

kql_pfshare *ruleset_pfshare_new(const nt_ruleset *rs, int scan)
{
    const kql_query **qs = malloc((rs->n ? rs->n : 1) * sizeof *qs);
    if (!qs) return NULL;
    for (size_t i = 0; i < rs->n; i++)
        qs[i] = rs->rules[i]->query;
    kql_pfshare *s = kql_pfshare_new(qs, rs->n, scan);
    free(qs);
    return s;
}

/* Builds rs->pfshare once, so a delivery does not (it was ~2% of a pack
 * delivery's CPU). Out of memory leaves them NULL: deliveries build their own. */
static void ruleset_share_prefilter(nt_ruleset *rs)
{
    if (!rs) return;
    for (int v = 0; v < 2; v++)
        rs->pfshare[v] = ruleset_pfshare_new(rs, v);
}

nt_status ruleset_load_dir_geoip(const char *dir, int require_all, const geoip_db *geoip,
                                 nt_ruleset **out, nt_err *err)
{
    *out = NULL;
    DIR *d = opendir(dir);
    if (!d) return nt_fail(err, NT_ERR_IO, "cannot open rules folder %s: %s", dir, strerror(errno));
    char **names = NULL;
    size_t n_names = 0, cap = 0;
    nt_status st = NT_OK;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t l = strlen(de->d_name);
        if (l < 6 || strcmp(de->d_name + l - 5, ".toml") != 0 || de->d_name[0] == '.') continue;
        if (n_names == cap) {
            cap = cap ? cap * 2 : 16;
            char **nn = realloc(names, cap * sizeof *names);
            if (!nn) {
                st = nt_fail(err, NT_ERR_NOMEM, "out of memory");
                break;
            }
            names = nn;
        }
        if (!(names[n_names] = strdup(de->d_name))) {
            st = nt_fail(err, NT_ERR_NOMEM, "out of memory");
            break;
        }
        n_names++;
    }
    closedir(d);
    nt_ruleset *rs = NULL;
    if (st != NT_OK) goto done;
    if (n_names) qsort(names, n_names, sizeof *names, cmp_names);
    rs = calloc(1, sizeof *rs);
    if (!rs || !(rs->schema = ct_schema_new()) || !(rs->errors = json_array()) ||
        (n_names && !(rs->rules = calloc(n_names, sizeof *rs->rules)))) {
        st = nt_fail(err, NT_ERR_NOMEM, "out of memory");
        goto done;
    }
    ct_schema_set_geoip(rs->schema, geoip);
    for (size_t i = 0; i < n_names; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        char *text = NULL;
        size_t len = 0;
        nt_err ferr;
        nt_rule *r = NULL;
        nt_status fst = read_file(path, &text, &len, &ferr);
        if (fst == NT_OK) fst = rule_load(path, text, len, rs->schema, &r, &ferr);
        free(text);
        if (fst != NT_OK) {
            json_array_append_new(rs->errors,
                                  json_pack("{s:s,s:s}", "file", path, "message", ferr.msg));
            continue;
        }
        if (ruleset_find(rs, r->rule_id)) {
            st = nt_fail(err, NT_ERR_INVALID, "%s: rule_id %s is already used by another file",
                         path, r->rule_id);
            rule_free(r);
            goto done;
        }
        rs->rules[rs->n++] = r;
    }
    if (require_all && json_array_size(rs->errors) > 0) {
        json_t *e0 = json_array_get(rs->errors, 0);
        st = nt_fail(err, NT_ERR_INVALID, "%s: %s", json_string_value(json_object_get(e0, "file")),
                     json_string_value(json_object_get(e0, "message")));
    }
done:
    for (size_t i = 0; i < n_names; i++)
        free(names[i]);
    free(names);
    if (st != NT_OK) {
        ruleset_free(rs);
        return st;
    }
    ruleset_share_prefilter(rs);
    *out = rs;
    return NT_OK;
}

/*
 * rule.h — Elastic detection rules, loaded from their own TOML files and
 * linted (docs/spec.md §2, §5).
 *
 * A rule file is parsed by toml.c into a JSON tree; rule_load() reads the
 * fields newtermsd uses (rule_id, name, severity, risk_score, type, language,
 * query, new_terms fields, history_window_start, from, interval, threshold,
 * alert_suppression, investigation fields, threat) and compiles the KQL query
 * against the CloudTrail→ECS view.
 *
 * Rule types (docs/rule-types.md says how each one runs as a stream):
 *   new_terms  alert on a tuple of 1–3 fields not seen within the history window
 *   query      every matching event is an alert
 *   threshold  alert when a group (0–3 group-by fields) reaches `value` matching
 *              events, and optionally `cardinality` distinct values of one field,
 *              within the rule's look-back (`from`)
 * Any of them may carry [rule.alert_suppression] (group_by 1–3 fields — a
 * threshold rule's own group-by fields —, duration, missing_fields_strategy).
 *
 * Errors stop a rule from loading: TOML/KQL syntax errors (with line and
 * column), a type other than new_terms/query/threshold ("rule type 'eql' is not
 * supported"), a language other than kuery, missing keys, 0 or more than 3
 * new_terms fields, more than 3 threshold or suppression fields, a threshold
 * value below 1, a history window that is not longer than the rule's lookback.
 * Warnings do not: fields the view cannot produce,
 * event.action values that are not API actions of the named event.provider
 * ("did you mean …?"). Elastic's rule as published loads and runs exactly as
 * written, typo included.
 *
 * Besides Elastic's keys, a rule file may carry a `[newtermsd]` table:
 *   learning_period = "10d"   # sightings are recorded but no alert is raised
 *                             # for this long after the rule first runs
 */
#ifndef NT_RULE_H
#define NT_RULE_H

#include "common.h"
#include "ctview.h"
#include "kql.h"

#include <jansson.h>

#define RULE_MAX_TERMS 3

typedef enum nt_rule_type { RULE_NEW_TERMS, RULE_QUERY, RULE_THRESHOLD } nt_rule_type;

const char *rule_type_name(nt_rule_type t); /* "new_terms", "query", "threshold" */

typedef struct nt_rule {
    char *path; /* file it came from */
    char *rule_id;
    char *name;
    char *severity;
    int risk_score;
    char *query_text;
    kql_query *query;
    nt_rule_type type;
    /* A new_terms field or threshold group-by field that no event can carry here
     * (not in the view, or IP enrichment without a GeoIP database): the rule
     * can never produce a candidate, so it is not evaluated at all. Its
     * warnings say why. */
    int inert;
    /* new_terms: the new_terms fields (1..3). threshold: the group-by fields
     * (0..3; 0 = one group for every matching event). query: none. */
    size_t n_terms;
    char *term_fields[RULE_MAX_TERMS]; /* in order */
    int term_ids[RULE_MAX_TERMS];      /* resolved in the rule set's schema; -1 if unknown */
    nt_time_ms window_ms;              /* new_terms: history window (now-10d → 10 days);
                                          threshold: = lookback_ms; query: = lookback_ms */
    char window_text[16];              /* "10d" / "6m" */
    nt_time_ms lookback_ms;            /* `from` (now-6m → 6 minutes) */
    nt_time_ms interval_ms;            /* `interval`, default 5m */
    /* threshold */
    long long thr_value;  /* count >= thr_value (>= 1) */
    char *card_field;     /* NULL = no cardinality condition */
    int card_id;          /* resolved; -1 if unknown */
    long long card_value; /* distinct card_field values >= card_value */
    /* alert suppression */
    int supp;                          /* 1 when [rule.alert_suppression] is present */
    size_t n_supp;                     /* group_by fields (threshold: its own group-by) */
    char *supp_fields[RULE_MAX_TERMS]; /* query/new_terms: group_by; threshold: NULL */
    int supp_ids[RULE_MAX_TERMS];
    nt_time_ms supp_ms;     /* duration; without one, the rule's interval (one "run") */
    char supp_text[32];     /* "5m" */
    int supp_missing_ok;    /* missing_fields_strategy: 1 suppress (default), 0 doNotSuppress */
    nt_time_ms learning_ms; /* [newtermsd] learning_period, 0 = none */
    size_t n_inv;
    char **inv_fields; /* investigation_fields.field_names */
    json_t *threat;    /* array, owned */
    json_t *warnings;  /* array of {"code","message"}, owned */
    int needs_geoip;   /* names source.as.* / source.geo.* fields the schema cannot answer */
    int uses_geoip;    /* its query, new terms or investigation fields name source.as/geo.* */
} nt_rule;

/* Load and lint one TOML rule. On failure *out is NULL and err says why
 * (prefixed by nothing: callers add the file name). Warnings end up in
 * (*out)->warnings. The schema must outlive the rule. */
nt_status rule_load(const char *path, const char *text, size_t len, ct_schema *schema,
                    nt_rule **out, nt_err *err);
void rule_free(nt_rule *r);

/* A set of rules sharing one schema. */
typedef struct nt_ruleset {
    ct_schema *schema; /* owned */
    nt_rule **rules;   /* owned */
    size_t n;
    json_t *errors; /* array of {"file","message"} for files that failed to load, owned */
    /* The rules' prefilter literals shared once for every delivery (owned, read-only once
     * loaded): [0] without, [1] with the exact-literal pass (pipe_run.pf_shared 1 and 2).
     * NULL (out of memory, or a rule set not from ruleset_load_dir*): each delivery
     * builds its own. */
    kql_pfshare *pfshare[2];
} nt_ruleset;

/* Load every *.toml in dir (not recursive, sorted by name). A file that
 * fails is recorded in ->errors and skipped; the call itself fails only when
 * the folder cannot be read, two files share a rule_id, or, with
 * require_all, any file failed. */
nt_status ruleset_load_dir(const char *dir, int require_all, nt_ruleset **out, nt_err *err);
/* The same, with IP enrichment: the schema answers source.as.* / source.geo.*
 * from `geoip` (borrowed, must outlive the rule set; NULL = none, which is
 * ruleset_load_dir). */
nt_status ruleset_load_dir_geoip(const char *dir, int require_all, const geoip_db *geoip,
                                 nt_ruleset **out, nt_err *err);
void ruleset_free(nt_ruleset *rs);
/* The shared prefilter tables of rs's rules as they are now (kql_pfshare_new
 * over every rule's query; scan as there). NULL when out of memory; the
 * caller frees it with kql_pfshare_free. */
kql_pfshare *ruleset_pfshare_new(const nt_ruleset *rs, int scan);
const nt_rule *ruleset_find(const nt_ruleset *rs, const char *rule_id);

/* Apply a default learning period to new_terms rules that do not set their
 * own (query and threshold rules have no history to learn). */
void ruleset_set_default_learning(nt_ruleset *rs, nt_time_ms learning_ms);

/* The names of the rules with needs_geoip set, separated by "; ", into buf (at
 * most cap bytes, "..." when cut); returns how many rules. For the startup
 * warning. */
size_t ruleset_geoip_rules(const nt_ruleset *rs, char *buf, size_t cap);

/* Rule summary for the API and check-rules: id, name, severity, risk_score,
 * type, query, new_terms_fields + history_window (new_terms), threshold
 * {field, value, cardinality, window} (threshold), alert_suppression
 * {group_by, duration, missing_fields_strategy} (when set), warnings. New
 * reference. */
json_t *rule_to_json(const nt_rule *r);

#endif

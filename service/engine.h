/*
 * engine.h — rule decisions for one event (docs/spec.md §2), pure: no I/O, no clock.
 *
 * For each rule the event must pass the KQL query and no exception. What
 * follows depends on the rule type:
 *   new_terms  one candidate per tuple of the new_terms fields (below);
 *   query      one candidate for the event (no tuple);
 *   threshold  one candidate per tuple of the group-by fields (0 fields: one
 *              candidate, one group), carrying the hashes of the event's
 *              cardinality-field values when the rule has a cardinality.
 * The store then decides: a new term, an alert, a threshold reached.
 *
 * The values of the rule's tuple fields are read through the CloudTrail view.
 * An event missing any field takes no part. Arrays expand to every
 * combination (deduplicated, at most ENGINE_MAX_COMBOS per event and rule;
 * the rest are counted in combos_capped). Values longer than 1024 bytes are
 * treated as missing, like Elastic's keyword `ignore_above`.
 *
 * Each surviving (rule, tuple) is a candidate with two identities:
 *   term_hash — SHA-256 of the length-prefixed (field, type, value) tuple: the
 *               history key, independent of the event;
 *   alert_id  — SHA-256 of rule id, term hash and the CloudTrail eventID:
 *               deterministic, so a retried or duplicated delivery yields the
 *               same id and never a second alert.
 */
#ifndef NT_ENGINE_H
#define NT_ENGINE_H

#include "common.h"
#include "ctview.h"
#include "exception.h"
#include "rule.h"

#define ENGINE_MAX_COMBOS 100
#define ENGINE_VALUE_MAX 1024

#define ENGINE_MAX_CARD_VALUES 32 /* cardinality values counted per event */

typedef struct nt_candidate {
    const nt_rule *rule;
    size_t n_terms;
    nt_value terms[RULE_MAX_TERMS]; /* valid during the callback only */
    char term_hash[65];             /* new_terms: history key; threshold: group key;
                                       query: the hash of the empty tuple */
    char alert_id[33];
    /* Alert suppression (rule->supp): supp = 1 when this candidate's alert is
     * subject to it. supp_hash identifies the group: the group_by values, with
     * missing fields marked (missing_fields_strategy = suppress); threshold
     * rules use term_hash. An event missing a group_by field under
     * doNotSuppress gets supp = 0 and alerts on its own. */
    int supp;
    char supp_hash[65];
    /* threshold cardinality: comma-separated 16-hex hashes of the event's
     * distinct values of the cardinality field ("" when it has none). */
    char card[ENGINE_MAX_CARD_VALUES * 17 + 1];
} nt_candidate;

typedef struct engine_stats {
    unsigned long long events;         /* events evaluated */
    unsigned long long rule_matches;   /* (event, rule) pairs passing the query */
    unsigned long long exception_hits; /* of those, dropped by an exception */
    unsigned long long missing_terms;  /* of those, missing a new_terms field */
    unsigned long long candidates;     /* (event, rule, tuple) candidates */
    unsigned long long combos_capped;  /* events whose combinations hit the cap */
} engine_stats;

typedef void (*engine_candidate_fn)(void *ud, ct_event *ev, const nt_candidate *c);

/* Evaluate one event against every rule; fn is called once per candidate.
 * `exc` may be NULL. `now` decides exception expiry. `only` (NULL = every
 * rule) has one byte per rule of the set: 0 = skip the rule, which the caller
 * proved cannot match (its raw-byte prefilter failed on the bytes the event
 * came from). Allocates nothing. */
void engine_evaluate(const nt_ruleset *rs, const exc_set *exc, ct_event *ev, nt_time_ms now,
                     const unsigned char *only, engine_candidate_fn fn, void *ud, engine_stats *st);

/* Add b's counters to a. */
void engine_stats_add(engine_stats *a, const engine_stats *b);

/* The alert document for a candidate (docs/spec.md §3), without the triage fields
 * (status, status_reason, updated_at, history) that the store adds.
 * new_terms: new_terms_fields, new_terms, history_window. threshold:
 * threshold_result {terms:[{field,value}], cardinality:[{field}], window}
 * whose count, cardinality values, from and first/last event times the store
 * fills in when the threshold is reached. Suppressed rules: suppression
 * {terms:[{field,value}], duration} (start, end, docs_count added by the store).
 * New reference; the CloudTrail record is copied in by reference. */
json_t *engine_alert(const nt_candidate *c, ct_event *ev, nt_time_ms now);

/* The alert document of the candidate of rule `r` on `ev` whose alert id is
 * `alert_id`, as engine_alert made it when the event was first evaluated at
 * `now` (the rule's query and term tuples are evaluated again; exceptions are
 * not, the caller already applied them). NULL when no candidate has that id
 * or out of memory. For documents deferred by the pipeline's term cache. */
json_t *engine_alert_again(const nt_ruleset *rs, const nt_rule *r, ct_event *ev, nt_time_ms now,
                           const char *alert_id);

#endif

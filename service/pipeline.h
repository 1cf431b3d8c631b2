/*
 * pipeline.h — one delivery's worth of records, from decoded bytes to the
 * observations that the history backend decides on.
 *
 *   pipe_firehose_record / pipe_body / pipe_record
 *        │  base64 + gzip + CWL (decode.c), rule prefilter on raw bytes (kql.c),
 *        │  split into CloudTrail records (decode.c), CloudTrail→ECS view
 *        v  (ctview.c), query + exceptions + term tuples (engine.c)
 *   store_obs[]  ──pipe_commit──>  nt_history (Redis or memory)
 *
 * Nothing touches the history until pipe_commit, and pipe_commit is all or
 * nothing, so the HTTP layer can answer 503 and acknowledge nothing when the
 * backend fails. Rejected records are collected (reason, index, escaped
 * prefix) for the dead-letter list and never fail the batch.
 *
 * The clock: live ingestion passes `now` (arrival time) and every sighting
 * refreshes its term for one window from now. Replay sets event_clock, so
 * each record is judged at its own eventTime. Backfill sets backfill, so terms
 * are written with the TTL left to them (eventTime + window − now) and no
 * alert is ever raised (and only new_terms rules take part: query and
 * threshold rules have no history to build).
 */
#ifndef NT_PIPELINE_H
#define NT_PIPELINE_H

#include "common.h"
#include "decode.h"
#include "engine.h"
#include "history.h"

typedef enum pipe_outcome {
    PIPE_CANDIDATE = 0, /* passed a rule's query and exceptions: needs the history */
    PIPE_NO_MATCH,      /* parsed, matched no rule */
    PIPE_PREFILTERED,   /* not parsed: the raw bytes cannot match any rule */
    PIPE_REJECTED,      /* bad base64 / not JSON / not CloudTrail / too large */
    PIPE_SKIPPED,       /* CloudWatch Logs CONTROL_MESSAGE */
    PIPE_OUTCOME_COUNT
} pipe_outcome;

const char *pipe_outcome_name(pipe_outcome o);

#define PIPE_SHAPE_RAW DEC_SHAPE_COUNT /* units counted before their shape is known */

typedef struct pipe_reject {
    char reason[32]; /* bad_base64, not_json, not_cloudtrail, too_large, bad_gzip, bad_envelope */
    char message[160];
    size_t record_index;
    size_t sub_index;
    char prefix[DEC_PREFIX_BUF];
} pipe_reject;

typedef struct pipe_item {
    char term_hash[65];
    char alert_id[33];
    char supp_hash[65];                         /* "" = not suppressed */
    char card[ENGINE_MAX_CARD_VALUES * 17 + 1]; /* threshold cardinality values */
    char *alert_text;                           /* owned; NULL unless LIVE */
    json_t *alert;                              /* owned; only with keep_alerts */
    char *account, *user;
    nt_time_ms event_time;
    size_t seq;
    /* a deferred document (store_obs.defer_doc): where the record is, the
     * rule's index and the clock it was judged at, to build the document if
     * the history says it needs one after all. A record from a unit
     * (pipe_unit) is found again by splitting a copy of the unit's text
     * (unit_off/unit_len in pipe_run.units, the record's sub_index
     * unit_sub), so its tree is freed right after it was judged, while still
     * in cache; any other record is kept (record, a reference). */
    json_t *record;
    size_t unit_off, unit_len, unit_sub;
    size_t rule;
    nt_time_ms clock;
} pipe_item;

typedef struct pipe_run {
    /* inputs */
    const nt_ruleset *rs;
    const exc_set *exc;
    nt_time_ms now;
    const store_obs_mode *modes; /* per rule index; NULL = all LIVE */
    int event_clock;             /* judge each record at its eventTime (replay) */
    int backfill;                /* record history only, TTL from eventTime */
    int prefilter;               /* skip parsing units no rule can match (default 1) */
    int pf_shared;               /* 1: prefilter literals searched once per unit for all
                                    rules; 2 (default): and the exact ones answered by one
                                    pass (kql_pfshare_new's scan); 0: each rule on its own.
                                    Same result every way. */
    int keep_alerts;             /* keep alert documents in items[].alert (replay) */
    int thr_docs_eager;          /* 1: build every live threshold sighting's document at
                                    once; 0 (default): only for those the history says
                                    reach the threshold (store_obs.defer_doc). Same
                                    alerts and state either way. */
    struct nt_termcache *terms;  /* live ingestion: terms known to the history (a hint, see
                                    termcache.h); their sightings go without an alert
                                    document. Borrowed; NULL = build every document. */
    size_t max_record;
    size_t max_inflate;    /* gunzipped bytes of one record */
    size_t inflate_budget; /* gunzipped bytes of all records together; 0 = no budget */
    /* outputs */
    store_obs *obs;
    pipe_item *items;
    size_t n_obs, cap_obs;
    pipe_reject *rejects;
    size_t n_rejects, cap_rejects;
    unsigned long long counts[DEC_SHAPE_COUNT + 1][PIPE_OUTCOME_COUNT];
    size_t accepted, rejected; /* records (or prefiltered units) */
    size_t alerts;             /* new alerts after pipe_commit */
    size_t docs_deferred;      /* sightings sent without a document (new_terms term cache
                                  hits, live unsuppressed threshold sightings) */
    size_t docs_late;          /* of those, needing one after all (a new term, a threshold
                                  reached): sent again with it */
    engine_stats st;
    /* internal */
    unsigned char *may;            /* per rule: its prefilter passed on the current unit */
    int may_valid;                 /* the unit's records are raw parts of its bytes */
    const unsigned char *only;     /* = may while a prefiltered unit is split; else NULL */
    struct kql_pfshare *pfshare;   /* owned: the rules' literals, deduplicated, when the rule
                                      set has none prebuilt (built on first use) */
    const struct kql_pfshare *pfs; /* in use: rs->pfshare[] or pfshare */
    /* the unit being split (pipe_unit): its text, the sub_index of the record
     * being judged, and where its copy is in units (SIZE_MAX: not copied) */
    const char *unit_text;
    size_t unit_len, unit_sub, unit_copy;
    nt_buf units;          /* copies of the units that have deferred documents */
    unsigned char *pfmemo; /* per shared literal, for the current unit */
    int pfshare_failed;    /* out of memory once: use each rule's own prefilter */
    int inert_known;       /* 0 not looked yet, 1 no inert rule, 2 some (nt_rule.inert) */
    dec_buf scratch;
    size_t cur_index;
    nt_status fatal;       /* NT_ERR_NOMEM seen: the delivery must fail */
    size_t inflated_total; /* gunzip work spent on records so far */
    int over_budget;       /* a record needed more than inflate_budget left: stop */
} pipe_run;

#define PIPE_MAX_REJECTS 1000

void pipe_init(pipe_run *p, const nt_ruleset *rs, const exc_set *exc, nt_time_ms now);
void pipe_free(pipe_run *p);

/* One Firehose record (its base64 slice, as fh_scan found it). */
void pipe_firehose_record(pipe_run *p, size_t index, const char *b64, size_t len, unsigned flags);

/* A unit of text: prefilter, then split into records. */
void pipe_unit(pipe_run *p, size_t index, size_t sub_index, const char *text, size_t len);

/* 1 when the prefilter proves no rule can match text, it looks like JSON
 * carrying CloudTrail records and it is structurally complete JSON
 * (nt_json_structure_ok): it is then counted as accepted and prefiltered
 * without being parsed. 0: the caller must parse it (and so rejects a
 * truncated unit as not_json). Every rule's prefilter is run once and the
 * result kept in p->may, so that records split from this unit are evaluated
 * only against the rules that may match them. */
int pipe_skip_unparsed(pipe_run *p, const char *text, size_t len);

/* A whole /v1/events or /v1/eventbridge body. NT_ERR_PARSE / NT_ERR_INVALID /
 * NT_ERR_LIMIT when nothing in it was a CloudTrail record (the caller answers
 * 400/413); otherwise NT_OK, with bad pieces among the rejects. */
nt_status pipe_body(pipe_run *p, const char *text, size_t len, nt_err *err);

/* One parsed CloudTrail record (borrowed). */
void pipe_record(pipe_run *p, json_t *record, dec_shape shape, size_t index);

/* Record a rejected piece. */
void pipe_reject_add(pipe_run *p, const char *reason, const char *message, size_t index,
                     size_t sub_index, const unsigned char *bytes, size_t len);

/* Hand every observation to the history in event-time order (earliest first,
 * so the earliest event carrying a new term becomes its alert, as in Elastic)
 * and count the new alerts. Deferred documents the history asks for are built
 * and sent in a second call; then p->terms learns every live new_terms term
 * the history now holds. */
nt_status pipe_commit(pipe_run *p, nt_history *h, nt_err *err);

#endif

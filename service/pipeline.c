/*
 * pipeline.c — decoded bytes → CloudTrail records → observations (see pipeline.h).
 *
 * The hot path is pipe_unit: most CloudTrail traffic cannot match any rule,
 * and the KQL prefilter proves that from the raw bytes with a few memmem
 * calls, so those units are never handed to jansson. Only units that some
 * rule might match are parsed, viewed and evaluated.
 */
#include "pipeline.h"

#include "jsonout.h"
#include "kql.h"
#include "search.h"
#include "termcache.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *pipe_outcome_name(pipe_outcome o)
{
    static const char *const names[] = {"candidate", "no_match", "prefiltered", "rejected",
                                        "skipped"};
    return o < PIPE_OUTCOME_COUNT ? names[o] : "unknown";
}

void pipe_init(pipe_run *p, const nt_ruleset *rs, const exc_set *exc, nt_time_ms now)
{
    memset(p, 0, sizeof *p);
    p->rs = rs;
    p->exc = exc;
    p->now = now;
    p->prefilter = 1;
    p->pf_shared = 2;
    p->max_record = DEC_MAX_RECORD_BYTES;
    p->max_inflate = DEC_MAX_INFLATE;
    dec_buf_init(&p->scratch);
}

void pipe_free(pipe_run *p)
{
    if (!p) return;
    for (size_t i = 0; i < p->n_obs; i++) {
        free(p->items[i].alert_text);
        json_decref(p->items[i].alert);
        free(p->items[i].account);
        free(p->items[i].user);
        json_decref(p->items[i].record);
    }
    nt_buf_free(&p->units);
    free(p->obs);
    free(p->items);
    free(p->rejects);
    free(p->may);
    kql_pfshare_free(p->pfshare);
    free(p->pfmemo);
    dec_buf_free(&p->scratch);
    memset(p, 0, sizeof *p);
}

void pipe_reject_add(pipe_run *p, const char *reason, const char *message, size_t index,
                     size_t sub_index, const unsigned char *bytes, size_t len)
{
    p->rejected++;
    if (p->n_rejects == PIPE_MAX_REJECTS) return; /* counted in rejected, not kept */
    if (p->n_rejects == p->cap_rejects) {
        size_t cap = p->cap_rejects ? p->cap_rejects * 2 : 8;
        pipe_reject *r = realloc(p->rejects, cap * sizeof *r);
        if (!r) {
            p->fatal = NT_ERR_NOMEM;
            return;
        }
        p->rejects = r;
        p->cap_rejects = cap;
    }
    pipe_reject *r = &p->rejects[p->n_rejects++];
    snprintf(r->reason, sizeof r->reason, "%s", reason);
    snprintf(r->message, sizeof r->message, "%s", message ? message : "");
    r->record_index = index;
    r->sub_index = sub_index;
    dec_escape_prefix(bytes, len, r->prefix, sizeof r->prefix);
}

static const char *reason_for(nt_status st)
{
    switch (st) {
    case NT_ERR_PARSE:
        return "not_json";
    case NT_ERR_LIMIT:
        return "too_large";
    default:
        return "not_cloudtrail";
    }
}

/* ---- candidates ------------------------------------------------------- */

typedef struct cand_ctx {
    pipe_run *p;
    nt_time_ms clock;
    nt_time_ms event_time;
} cand_ctx;

static char *first_value_dup(ct_event *ev, const nt_ruleset *rs, const char *name)
{
    nt_value v[NT_FIELD_MAX_VALUES];
    int id = ct_schema_resolve(rs->schema, name, strlen(name));
    if (id < 0 || ct_view_get(ev, id, v, NT_FIELD_MAX_VALUES) == 0) return NULL;
    return strndup(v[0].ptr, v[0].len);
}

/* The alert's index values (the store's account and user indexes). */
static void item_index_values(pipe_item *it, ct_event *ev, const nt_ruleset *rs)
{
    it->account = first_value_dup(ev, rs, "cloud.account.id");
    it->user = first_value_dup(ev, rs, "user.name");
}

static size_t rule_index(const nt_ruleset *rs, const nt_rule *r)
{
    for (size_t i = 0; i < rs->n; i++)
        if (rs->rules[i] == r) return i;
    return 0;
}

static store_obs_kind kind_of(const nt_rule *r)
{
    return r->type == RULE_QUERY       ? STORE_KIND_QUERY
           : r->type == RULE_THRESHOLD ? STORE_KIND_THRESHOLD
                                       : STORE_KIND_NEW_TERMS;
}

/* What a deferred document needs to find its record again (pipe_item):
 * inside a unit, a copy of the unit's text (once per unit); else a reference
 * to the record. -1 when out of memory. */
static int keep_record(pipe_run *p, pipe_item *it, ct_event *ev)
{
    if (!p->unit_text) {
        it->record = json_incref(ev->record);
        return 0;
    }
    if (p->unit_copy == SIZE_MAX) {
        size_t at = p->units.len;
        nt_buf_add(&p->units, p->unit_text, p->unit_len);
        if (p->units.oom) return -1;
        p->unit_copy = at;
    }
    it->record = NULL;
    it->unit_off = p->unit_copy;
    it->unit_len = p->unit_len;
    it->unit_sub = p->unit_sub;
    return 0;
}

/* Whether a live candidate's alert document can wait for the history to ask
 * for it (store_obs.defer_doc; pipe_commit builds it then), keeping only the
 * way to its record:
 * - a sighting of a term the history is known to hold (the common case);
 * - a threshold sighting, unless it makes its group reach the threshold.
 * Never with suppression, whose groups depend on the order alerts are created
 * in, nor when the documents themselves are the output (replay). */
static int doc_can_wait(const pipe_run *p, const nt_candidate *c, nt_time_ms clock)
{
    if (p->keep_alerts || p->event_clock || c->supp) return 0;
    if (c->rule->type == RULE_THRESHOLD) return !p->thr_docs_eager;
    return c->rule->type == RULE_NEW_TERMS && p->terms &&
           termcache_known(p->terms, c->rule->rule_id, c->term_hash, clock);
}

static void on_candidate(void *ud, ct_event *ev, const nt_candidate *c)
{
    cand_ctx *cc = ud;
    pipe_run *p = cc->p;
    if (p->fatal) return;
    if (p->backfill && c->rule->type != RULE_NEW_TERMS) return;
    if (p->n_obs == p->cap_obs) {
        size_t cap = p->cap_obs ? p->cap_obs * 2 : 16;
        store_obs *o = realloc(p->obs, cap * sizeof *o);
        if (!o) {
            p->fatal = NT_ERR_NOMEM;
            return;
        }
        p->obs = o;
        pipe_item *it = realloc(p->items, cap * sizeof *it);
        if (!it) {
            p->fatal = NT_ERR_NOMEM;
            return;
        }
        p->items = it;
        p->cap_obs = cap;
    }
    store_obs *o = &p->obs[p->n_obs];
    pipe_item *it = &p->items[p->n_obs];
    memset(o, 0, sizeof *o);
    memset(it, 0, sizeof *it);
    memcpy(it->term_hash, c->term_hash, sizeof it->term_hash);
    memcpy(it->alert_id, c->alert_id, sizeof it->alert_id);
    if (c->supp) memcpy(it->supp_hash, c->supp_hash, sizeof it->supp_hash);
    memcpy(it->card, c->card, sizeof it->card);
    it->event_time = cc->event_time;
    it->seq = p->n_obs;
    it->rule = rule_index(p->rs, c->rule);
    it->clock = cc->clock;

    o->rule_id = c->rule->rule_id;
    o->kind = kind_of(c->rule);
    o->thr_value = c->rule->thr_value;
    o->card_value = c->rule->card_field ? c->rule->card_value : 0;
    o->event_time = cc->event_time;
    o->supp_ms = c->supp ? c->rule->supp_ms : 0;
    o->created_ms = cc->clock;
    o->seen_ms = cc->clock;
    o->ttl_ms = c->rule->window_ms;
    if (p->backfill) {
        o->mode = STORE_OBS_BACKFILL;
        o->seen_ms = cc->event_time;
        o->ttl_ms = cc->event_time + c->rule->window_ms - p->now;
    } else {
        o->mode = p->modes ? p->modes[it->rule] : STORE_OBS_LIVE;
    }
    if (o->mode == STORE_OBS_LIVE && doc_can_wait(p, c, cc->clock)) {
        if (keep_record(p, it, ev) != 0) {
            p->fatal = NT_ERR_NOMEM;
            return;
        }
        o->defer_doc = 1;
        p->docs_deferred++;
        p->n_obs++;
        return;
    }
    item_index_values(it, ev, p->rs);
    if (o->mode == STORE_OBS_LIVE) {
        json_t *alert = engine_alert(c, ev, cc->clock);
        it->alert_text = alert ? nt_json_dumps(alert) : NULL; /* = json_dumps, faster */
        if (!it->alert_text) {
            json_decref(alert);
            free(it->account);
            free(it->user);
            p->fatal = NT_ERR_NOMEM;
            return;
        }
        if (p->keep_alerts)
            it->alert = alert;
        else
            json_decref(alert);
    }
    p->n_obs++;
}

void pipe_record(pipe_run *p, json_t *record, dec_shape shape, size_t index)
{
    nt_err why;
    if (ct_record_valid(record, &why) != NT_OK) {
        char *text = json_dumps(record, JSON_COMPACT);
        pipe_reject_add(p, "not_cloudtrail", why.msg, index, 0, (const unsigned char *)text,
                        text ? strlen(text) : 0);
        p->counts[shape][PIPE_REJECTED]++;
        free(text);
        return;
    }
    ct_event ev;
    ct_event_init(&ev, p->rs->schema, record, p->now);
    nt_time_ms et = ct_event_time(&ev);
    cand_ctx cc = {.p = p, .clock = p->now, .event_time = et};
    if (p->event_clock && et >= 0) {
        cc.clock = et;
        ct_event_init(&ev, p->rs->schema, record, et);
    }
    unsigned long long before = p->st.candidates;
    engine_evaluate(p->rs, p->exc, &ev, cc.clock, p->only, on_candidate, &cc, &p->st);
    p->accepted++;
    p->counts[shape][p->st.candidates > before ? PIPE_CANDIDATE : PIPE_NO_MATCH]++;
}

/* ---- units ------------------------------------------------------------ */

typedef struct split_ctx {
    pipe_run *p;
    size_t index;
    size_t sub_base;
} split_ctx;

static nt_status on_split_record(void *ud, json_t *record, dec_shape shape, size_t sub_index,
                                 nt_err *err)
{
    (void)err;
    split_ctx *sc = ud;
    sc->p->unit_sub = sub_index;
    pipe_record(sc->p, record, shape, sc->index);
    return NT_OK;
}

static void on_split_bad(void *ud, size_t sub_index, nt_status status, const char *message,
                         const char *text, size_t len)
{
    split_ctx *sc = ud;
    pipe_reject_add(sc->p, reason_for(status), message, sc->index, sc->sub_base + sub_index,
                    (const unsigned char *)text, len);
    sc->p->counts[PIPE_SHAPE_RAW][PIPE_REJECTED]++;
}

/* The ruleset's prefilter literals, deduplicated, built once per run; NULL
 * (each rule's own prefilter) when disabled or out of memory. */
static const kql_pfshare *shared_literals(pipe_run *p)
{
    if (p->pfs || !p->pf_shared || p->pfshare_failed) return p->pfs;
    int scan = p->pf_shared >= 2;
    const kql_pfshare *s = p->rs->pfshare[scan];
    if (!s) s = p->pfshare = ruleset_pfshare_new(p->rs, scan);
    size_t n = kql_pfshare_nlits(s);
    if (s && !(p->pfmemo = malloc(n ? n : 1))) s = NULL;
    if (!s) p->pfshare_failed = 1;
    p->pfs = s;
    return s;
}

/* Inert rules (nt_rule.inert) never produce a candidate: a record only they
 * might match is not worth parsing. Clears them from p->may; returns whether
 * any rule is left. */
static int drop_inert(pipe_run *p, int any)
{
    int changed = 0;
    for (size_t i = 0; any && i < p->rs->n; i++) {
        if (p->may[i] && p->rs->rules[i]->inert) {
            p->may[i] = 0;
            changed = 1;
        }
    }
    if (!changed) return any;
    for (size_t i = 0; i < p->rs->n; i++)
        if (p->may[i]) return 1;
    return 0;
}

/* Runs every rule's prefilter once on the unit: p->may[i] = rule i may
 * match. Returns 1 when any may; without memory for p->may, 1 (parse). With
 * the shared table a literal several rules use is searched once. */
static int any_rule_may_match(pipe_run *p, const char *text, size_t len)
{
    if (!p->may && p->rs->n) p->may = malloc(p->rs->n);
    const kql_pfshare *share = shared_literals(p);
    kql_pfrec rec = {.memo = p->pfmemo};
    if (p->inert_known == 0) {
        p->inert_known = 1;
        for (size_t i = 0; i < p->rs->n; i++)
            if (p->rs->rules[i]->inert) p->inert_known = 2;
    }
    if (share && p->may) {
        int any = kql_prefilter_all(share, &rec, text, len, p->may);
        return p->inert_known == 2 ? drop_inert(p, any) : any;
    }
    if (share) kql_pfrec_reset(&rec, share, text, len);
    int any = 0;
    for (size_t i = 0; i < p->rs->n; i++) {
        int m = share ? kql_prefilter_shared(share, i, &rec)
                      : kql_prefilter(p->rs->rules[i]->query, text, len);
        if (p->may)
            p->may[i] = (unsigned char)m;
        else if (m)
            return 1;
        any |= m;
    }
    return p->inert_known == 2 && p->may ? drop_inert(p, any) : any;
}

int pipe_skip_unparsed(pipe_run *p, const char *text, size_t len)
{
    p->may_valid = 0;
    if (!p->prefilter) return 0;
    int any = any_rule_may_match(p, text, len);
    size_t i = 0;
    while (i < len && (text[i] == ' ' || text[i] == '\n' || text[i] == '\r' || text[i] == '\t'))
        i++;
    if (i == len) return 0;
    /* Every shape we accept is JSON carrying CloudTrail records, and every
     * record has an "eventVersion" key: anything else is parsed, so it is
     * rejected with a precise reason instead of silently accepted. (A
     * CloudWatch Logs envelope carries its records JSON-escaped: parsed, and
     * judged against every rule.) */
    if ((text[i] != '{' && text[i] != '[') || !nt_search(text, len, "\"eventVersion\"", 14))
        return 0;
    if (any) {
        p->may_valid = p->may != NULL;
        return 0;
    }
    /* Nor is a unit skipped unless it is complete JSON structurally: a
     * truncated or garbled record must reach the dead-letter list (not_json),
     * not be counted as prefiltered. A single pass, no parse. */
    if (!nt_json_structure_ok(text + i, len - i)) return 0;
    p->accepted++;
    p->counts[PIPE_SHAPE_RAW][PIPE_PREFILTERED]++;
    return 1;
}

void pipe_unit(pipe_run *p, size_t index, size_t sub_index, const char *text, size_t len)
{
    if (pipe_skip_unparsed(p, text, len)) return;
    split_ctx sc = {.p = p, .index = index, .sub_base = sub_index};
    nt_err err;
    /* Every record of the unit is a part of its bytes: a rule whose prefilter
     * failed on the unit cannot match any of them. */
    p->only = p->may_valid ? p->may : NULL;
    p->unit_text = text;
    p->unit_len = len;
    p->unit_copy = SIZE_MAX;
    dec_split(text, len, on_split_record, on_split_bad, &sc, &err);
    p->unit_text = NULL;
    p->only = NULL;
}

static nt_status on_unit(void *ud, const char *text, size_t len, const dec_origin *origin,
                         nt_err *err)
{
    (void)err;
    pipe_run *p = ud;
    pipe_unit(p, origin->record_index, origin->sub_index, text, len);
    return NT_OK;
}

void pipe_firehose_record(pipe_run *p, size_t index, const char *b64, size_t len, unsigned flags)
{
    char *unescaped = NULL;
    if (flags & FH_REC_ESCAPED) {
        /* Legal JSON that Firehose never sends; unescape rather than reject. */
        unescaped = malloc(len + 1);
        size_t ulen = 0;
        nt_err uerr;
        if (!unescaped || fh_unescape(b64, len, unescaped, len + 1, &ulen, &uerr) != NT_OK) {
            pipe_reject_add(p, "bad_base64", unescaped ? uerr.msg : "out of memory", index, 0,
                            (const unsigned char *)b64, len);
            p->counts[PIPE_SHAPE_RAW][PIPE_REJECTED]++;
            free(unescaped);
            return;
        }
        b64 = unescaped;
        len = ulen;
    }
    /* The delivery's inflate budget: a record may inflate no further than
     * what is left of it, so a delivery of many gzip bombs costs at most the
     * budget, not the per-record cap times the record count. */
    size_t cap = p->max_inflate;
    int capped_by_budget = 0;
    if (p->inflate_budget) {
        size_t left =
            p->inflate_budget > p->inflated_total ? p->inflate_budget - p->inflated_total : 0;
        if (left < cap) {
            cap = left;
            capped_by_budget = 1;
        }
    }
    p->scratch.max_record = p->max_record;
    p->scratch.max_inflate = cap;
    dec_info info = {0};
    nt_err err;
    nt_status st = dec_record(b64, len, index, &p->scratch, on_unit, p, &info, &err);
    /* A gzip'd record refused with nothing inflated hit the cap: that work was done. */
    int inflate_capped = st == NT_ERR_LIMIT && info.gzipped && info.inflated_bytes == 0;
    p->inflated_total += inflate_capped ? cap : info.inflated_bytes;
    if (inflate_capped && capped_by_budget) {
        p->over_budget = 1;
        free(unescaped);
        return;
    }
    if (st == NT_ERR_NOMEM) {
        p->fatal = NT_ERR_NOMEM;
    } else if (st != NT_OK) {
        const char *reason = st == NT_ERR_LIMIT                         ? "too_large"
                             : info.decoded_bytes == 0 && !info.gzipped ? "bad_base64"
                             : info.gzipped                             ? "bad_gzip"
                                                                        : "bad_envelope";
        pipe_reject_add(p, reason, err.msg, index, 0, (const unsigned char *)b64, len);
        p->counts[info.gzipped ? DEC_SHAPE_CWL : PIPE_SHAPE_RAW][PIPE_REJECTED]++;
    } else if (info.control) {
        p->counts[DEC_SHAPE_CWL][PIPE_SKIPPED]++;
    }
    free(unescaped);
}

/* ---- bodies ----------------------------------------------------------- */

typedef struct body_ctx {
    pipe_run *p;
    size_t good;
} body_ctx;

static nt_status on_body_record(void *ud, json_t *record, dec_shape shape, size_t sub_index,
                                nt_err *err)
{
    (void)err;
    body_ctx *bc = ud;
    bc->good++;
    pipe_record(bc->p, record, shape, sub_index);
    return NT_OK;
}

static void on_body_bad(void *ud, size_t sub_index, nt_status status, const char *message,
                        const char *text, size_t len)
{
    body_ctx *bc = ud;
    pipe_reject_add(bc->p, reason_for(status), message, sub_index, 0, (const unsigned char *)text,
                    len);
    bc->p->counts[PIPE_SHAPE_RAW][PIPE_REJECTED]++;
}

nt_status pipe_body(pipe_run *p, const char *text, size_t len, nt_err *err)
{
    body_ctx bc = {.p = p};
    size_t rejects_before = p->n_rejects, rejected_before = p->rejected;
    nt_status st = dec_split(text, len, on_body_record, on_body_bad, &bc, err);
    if (st == NT_OK && bc.good == 0)
        st = nt_fail(err, NT_ERR_INVALID, "the body holds no CloudTrail record");
    if (st == NT_OK) return NT_OK;
    if (bc.good == 0) {
        /* Nothing usable: the body is not a delivery at all. Undo the rejects
         * so the caller answers 4xx instead of dead-lettering the body. */
        p->n_rejects = rejects_before;
        p->rejected = rejected_before;
        return st;
    }
    return NT_OK;
}

/* ---- commit ----------------------------------------------------------- */

static int cmp_items(const void *a, const void *b)
{
    const pipe_item *x = *(pipe_item *const *)a, *y = *(pipe_item *const *)b;
    if (x->event_time != y->event_time) return x->event_time < y->event_time ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Builds the item's alert document (alert_text, account, user) from its record. */
static void late_doc_from(pipe_run *p, pipe_item *it, json_t *record)
{
    ct_event ev;
    ct_event_init(&ev, p->rs->schema, record, it->clock);
    json_t *alert = engine_alert_again(p->rs, p->rs->rules[it->rule], &ev, it->clock, it->alert_id);
    it->alert_text = alert ? nt_json_dumps(alert) : NULL;
    json_decref(alert);
    item_index_values(it, &ev, p->rs);
}

typedef struct late_pick {
    pipe_run *p;
    pipe_item *it;
} late_pick;

static nt_status late_pick_record(void *ud, json_t *record, dec_shape shape, size_t sub_index,
                                  nt_err *err)
{
    (void)shape;
    (void)err;
    late_pick *lp = ud;
    if (sub_index == lp->it->unit_sub && !lp->it->alert_text) late_doc_from(lp->p, lp->it, record);
    return NT_OK;
}

/* The item's document: from the kept record, or from the record split again out of
 * the copy of its unit (the same bytes give the same records, in the same
 * order). alert_text stays NULL when out of memory. */
static void late_doc_build(pipe_run *p, pipe_item *it)
{
    if (it->record) {
        late_doc_from(p, it, it->record);
        return;
    }
    late_pick lp = {p, it};
    nt_err e;
    dec_split(p->units.p + it->unit_off, it->unit_len, late_pick_record, NULL, &lp, &e);
}

/* The second call for deferred documents the history asked for (needs_doc):
 * build each from its record, observe those again in order, and copy their
 * outcomes back. Nothing was written for them the first time (new_terms: the
 * term was new; threshold: the event would have reached its group's
 * threshold, or followed one of its group that would have). */
static nt_status commit_late_docs(pipe_run *p, nt_history *h, nt_err *err)
{
    size_t n = 0;
    for (size_t i = 0; i < p->n_obs; i++)
        n += p->obs[i].needs_doc != 0;
    if (n == 0) return NT_OK;
    size_t *at = malloc(n * sizeof *at);
    store_obs *again = malloc(n * sizeof *again);
    nt_status st = NT_OK;
    if (!at || !again) {
        st = nt_fail(err, NT_ERR_NOMEM, "out of memory committing the delivery");
        goto out;
    }
    size_t k = 0;
    for (size_t i = 0; i < p->n_obs && st == NT_OK; i++) {
        if (!p->obs[i].needs_doc) continue;
        pipe_item *it = &p->items[i];
        late_doc_build(p, it);
        if (!it->alert_text) {
            st = nt_fail(err, NT_ERR_NOMEM, "cannot rebuild a deferred alert document");
            break;
        }
        again[k] = p->obs[i];
        again[k].defer_doc = 0;
        again[k].alert_json = it->alert_text;
        again[k].account = it->account;
        again[k].user = it->user;
        at[k++] = i;
    }
    if (st == NT_OK) st = h->observe(h->ctx, again, n, err);
    for (size_t j = 0; j < k && st == NT_OK; j++)
        p->obs[at[j]] = again[j];
    p->docs_late += st == NT_OK ? n : 0;
out:
    free(at);
    free(again);
    return st;
}

nt_status pipe_commit(pipe_run *p, nt_history *h, nt_err *err)
{
    if (p->fatal) return nt_fail(err, p->fatal, "out of memory while decoding the delivery");
    if (p->n_obs == 0) return NT_OK;
    /* Sort items by event time and lay the observations out in that order. */
    pipe_item **order = malloc(p->n_obs * sizeof *order);
    store_obs *sorted = malloc(p->n_obs * sizeof *sorted);
    pipe_item *items = malloc(p->n_obs * sizeof *items);
    if (!order || !sorted || !items) {
        free(order);
        free(sorted);
        free(items);
        return nt_fail(err, NT_ERR_NOMEM, "out of memory committing the delivery");
    }
    for (size_t i = 0; i < p->n_obs; i++)
        order[i] = &p->items[i];
    qsort(order, p->n_obs, sizeof *order, cmp_items);
    for (size_t i = 0; i < p->n_obs; i++) {
        sorted[i] = p->obs[order[i]->seq];
        items[i] = *order[i];
        items[i].seq = i;
    }
    free(order);
    free(p->obs);
    free(p->items);
    p->obs = sorted;
    p->items = items;
    for (size_t i = 0; i < p->n_obs; i++) {
        p->obs[i].term_hash = p->items[i].term_hash;
        p->obs[i].alert_id = p->items[i].alert_id;
        p->obs[i].supp_hash = p->items[i].supp_hash;
        p->obs[i].card = p->items[i].card;
        p->obs[i].alert_json = p->items[i].alert_text;
        p->obs[i].account = p->items[i].account;
        p->obs[i].user = p->items[i].user;
    }
    nt_status st = h->observe(h->ctx, p->obs, p->n_obs, err);
    if (st == NT_OK) st = commit_late_docs(p, h, err);
    if (st != NT_OK) return st;
    for (size_t i = 0; p->terms && i < p->n_obs; i++) {
        const store_obs *o = &p->obs[i];
        if (o->kind == STORE_KIND_NEW_TERMS && o->mode == STORE_OBS_LIVE)
            termcache_put(p->terms, o->rule_id, o->term_hash, o->seen_ms + o->ttl_ms);
    }
    p->alerts = 0;
    for (size_t i = 0; i < p->n_obs; i++)
        if (p->obs[i].is_new && p->obs[i].mode == STORE_OBS_LIVE) p->alerts++;
    return NT_OK;
}

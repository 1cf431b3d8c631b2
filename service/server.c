/*
 * server.c — the shared state of `newtermsd serve` (server.h): the Redis
 * connection pool, the exception snapshot and its poller thread, learning
 * periods, and the alert outputs' workers.
 */
#include "server.h"

#include "deliver.h"
#include "log.h"
#include "metrics.h"
#include "termcache.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void server_limit_refused(const char *limit)
{
    char labels[64];
    snprintf(labels, sizeof labels, "limit=\"%s\"", limit);
    metrics_counter_add("newtermsd_limit_refusals_total", labels, 1);
}

store *server_store_acquire(server *s)
{
    pthread_mutex_lock(&s->pool_lock);
    while (s->pool_n == 0)
        pthread_cond_wait(&s->pool_cond, &s->pool_lock);
    store *st = s->pool[--s->pool_n];
    pthread_mutex_unlock(&s->pool_lock);
    return st;
}

void server_store_release(server *s, store *st)
{
    pthread_mutex_lock(&s->pool_lock);
    s->pool[s->pool_n++] = st;
    pthread_cond_signal(&s->pool_cond);
    pthread_mutex_unlock(&s->pool_lock);
}

nt_status server_ping(server *s, nt_err *err)
{
    store *st = server_store_acquire(s);
    nt_status rc = store_ping(st, err);
    server_store_release(s, st);
    atomic_store(&s->redis_ok, rc == NT_OK);
    return rc;
}

exc_set *server_exceptions(server *s)
{
    pthread_mutex_lock(&s->exc_lock);
    exc_set *e = exc_set_ref(s->exc);
    pthread_mutex_unlock(&s->exc_lock);
    return e;
}

static void on_bad_exception(void *ud, const char *id, const nt_err *e)
{
    (void)ud;
    log_msg(NT_LOG_WARN, "exception_skipped", "stored exception %s is not valid and is ignored: %s",
            id ? id : "?", e->msg);
}

void server_exceptions_refresh(server *s, store *st)
{
    json_t *items = NULL;
    long long version = 0;
    nt_err err;
    if (store_exception_all(st, &items, &version, &err) != NT_OK) {
        atomic_store(&s->redis_ok, 0);
        return;
    }
    nt_field_source src = ct_schema_source(s->rules->schema);
    exc_set *fresh = exc_set_from_json(items, &src, on_bad_exception, NULL);
    json_decref(items);
    if (!fresh) return;
    /* Counted before it is published: once swapped in, another refresh (the
     * poller, or an API write) may replace and free it at any time. */
    size_t count = exc_set_count(fresh);
    pthread_mutex_lock(&s->exc_lock);
    exc_set *old = s->exc;
    s->exc = fresh;
    s->exc_version = version;
    pthread_mutex_unlock(&s->exc_lock);
    exc_set_unref(old);
    metrics_gauge_set("newtermsd_exceptions_loaded", NULL, (double)count);
}

store_obs_mode server_rule_mode(server *s, size_t i, nt_time_ms now)
{
    const nt_rule *r = s->rules->rules[i];
    if (r->learning_ms <= 0) return STORE_OBS_LIVE;
    nt_time_ms since = atomic_load(&s->learning_since[i]);
    /* Unknown start (Redis not reached yet): stay silent rather than alert. */
    if (since < 0 || now < since + r->learning_ms) return STORE_OBS_LEARN;
    return STORE_OBS_LIVE;
}

/* Background thread: exception changes from any replica, learning-period
 * start times, Redis health. Wakes every 250 ms. */
static void *poller_main(void *arg)
{
    server *s = arg;
    store *st = NULL;
    nt_err err;
    store_config sc;
    config_store(s->cfg, &sc);
    if (store_open(&st, &sc, &err) != NT_OK) {
        log_msg(NT_LOG_ERROR, "poller", "cannot create the poller's Redis connection: %s", err.msg);
        return NULL;
    }
    while (!atomic_load(&s->stopping)) {
        long long version = 0;
        if (store_exception_version(st, &version, &err) == NT_OK) {
            atomic_store(&s->redis_ok, 1);
            pthread_mutex_lock(&s->exc_lock);
            long long have = s->exc_version;
            pthread_mutex_unlock(&s->exc_lock);
            if (version != have) server_exceptions_refresh(s, st);
            nt_time_ms now = nt_now_ms();
            for (size_t i = 0; i < s->rules->n; i++) {
                if (s->rules->rules[i]->learning_ms <= 0 || atomic_load(&s->learning_since[i]) >= 0)
                    continue;
                nt_time_ms since;
                if (store_learning_since(st, s->rules->rules[i]->rule_id, now, &since, &err) ==
                    NT_OK)
                    atomic_store(&s->learning_since[i], since);
            }
        } else {
            atomic_store(&s->redis_ok, 0);
        }
        struct timespec ts = {0, 250 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    store_free(st);
    return NULL;
}

nt_termcache *server_terms_acquire(server *s)
{
    if (s->cfg->term_cache == 0) return NULL;
    pthread_mutex_lock(&s->terms_lock);
    nt_termcache *tc = s->terms_n ? s->terms[--s->terms_n] : NULL;
    pthread_mutex_unlock(&s->terms_lock);
    return tc ? tc : termcache_new(s->cfg->term_cache);
}

void server_terms_release(server *s, nt_termcache *tc)
{
    if (!tc) return;
    pthread_mutex_lock(&s->terms_lock);
    if (s->terms_n == s->terms_cap) {
        size_t cap = s->terms_cap ? s->terms_cap * 2 : 4;
        nt_termcache **t = realloc(s->terms, cap * sizeof *t);
        if (!t) { /* drop it: a cache is only a hint */
            pthread_mutex_unlock(&s->terms_lock);
            termcache_free(tc);
            return;
        }
        s->terms = t;
        s->terms_cap = cap;
    }
    s->terms[s->terms_n++] = tc;
    pthread_mutex_unlock(&s->terms_lock);
}

void server_stop(server *s)
{
    if (!s) return;
    deliver_stop(s->deliver); /* bounded: aborts transfers in flight */
    s->deliver = NULL;
    if (s->poller_started) {
        atomic_store(&s->stopping, 1);
        pthread_join(s->poller, NULL);
    }
    for (size_t i = 0; s->pool && i < s->pool_n; i++)
        store_free(s->pool[i]);
    free(s->pool);
    for (size_t i = 0; i < s->terms_n; i++)
        termcache_free(s->terms[i]);
    free(s->terms);
    pthread_mutex_destroy(&s->terms_lock);
    exc_set_unref(s->exc);
    free(s->learning_since);
    ruleset_free(s->rules);
    pthread_mutex_destroy(&s->pool_lock);
    pthread_cond_destroy(&s->pool_cond);
    pthread_mutex_destroy(&s->exc_lock);
    free(s);
}

nt_status server_start(server **out, config *cfg, nt_ruleset *rules, nt_err *err)
{
    *out = NULL;
    server *s = calloc(1, sizeof *s);
    if (!s) {
        ruleset_free(rules);
        return nt_fail(err, NT_ERR_NOMEM, "out of memory");
    }
    s->cfg = cfg;
    s->rules = rules;
    pthread_mutex_init(&s->pool_lock, NULL);
    pthread_cond_init(&s->pool_cond, NULL);
    pthread_mutex_init(&s->exc_lock, NULL);
    pthread_mutex_init(&s->terms_lock, NULL);
    s->exc_version = -1;
    s->exc = exc_set_new(NULL, 0);
    s->learning_since = malloc((rules->n ? rules->n : 1) * sizeof *s->learning_since);
    size_t conns = (size_t)cfg->workers + 2;
    s->pool = calloc(conns, sizeof *s->pool);
    nt_status st = NT_OK;
    if (!s->exc || !s->learning_since || !s->pool) {
        st = nt_fail(err, NT_ERR_NOMEM, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < rules->n; i++)
        atomic_init(&s->learning_since[i], -1);
    store_config sc;
    config_store(cfg, &sc);
    for (size_t i = 0; i < conns; i++) {
        if ((st = store_open(&s->pool[i], &sc, err)) != NT_OK) goto fail;
        s->pool_n++;
    }
    s->pool_cap = conns;
    if (pthread_create(&s->poller, NULL, poller_main, s) != 0) {
        st = nt_fail(err, NT_ERR_NOMEM, "cannot start the poller thread");
        goto fail;
    }
    s->poller_started = 1;
    /* outputs: parse --outputs (a bad file stops startup) and start the delivery
     * threads before ingestion, so their consumer groups exist first. */
    if (cfg->outputs_file) {
        outputs *outs = NULL;
        if ((st = outputs_load(cfg->outputs_file, NULL, &outs, err)) != NT_OK) goto fail;
        for (size_t i = 0; i < outs->n; i++) {
            if (outs->items[i].secret) log_add_secret(outs->items[i].secret);
            if (outs->items[i].type == OUTPUT_SLACK) log_add_secret(outs->items[i].url);
        }
        deliver_config dc = {.max_age_ms = cfg->output_max_age_ms,
                             .timeout_ms = cfg->output_timeout_ms,
                             .claim_idle_ms = cfg->output_claim_idle_ms};
        config_store(cfg, &dc.store);
        if ((st = deliver_start(&s->deliver, outs, &dc, err)) != NT_OK) goto fail;
    }

    *out = s;
    return NT_OK;
fail:
    server_stop(s);
    return st;
}

/*
 * deliver.c — the delivery worker (see deliver.h for the design and the keys).
 *
 * One thread per output runs this loop:
 *
 *   ensure the consumer groups exist (after a start, a FLUSHALL, a failover)
 *   every claim_idle/2: XAUTOCLAIM entries idle for claim_idle from any consumer
 *   XREADGROUP GROUP <output> <consumer> COUNT 1 BLOCK 1000 STREAMS shared retry > >
 *   for each entry: fetch the alert, filter, build the payload (notify.c),
 *                   POST until 2xx / permanent failure / max age, then XACK
 *
 * The XACK and its bookkeeping (delivered counter, dead-letter list) run in
 * one Lua script, so an entry is never counted twice and a dead letter never
 * lost between "pushed" and "acked". A thread reads one entry at a time (COUNT
 * 1), so everything in its pending list is the entry it is working on and
 * keeps fresh with XCLAIM; entries it has not started are never held where a
 * claim could make two consumers send them. While a thread retries an entry,
 * later entries wait for one of the output's other threads (a receiver that
 * is down fails them all anyway); other outputs are unaffected.
 */
#include "deliver.h"

#include "log.h"
#include "metrics.h"
#include "notify.h"

#include <curl/curl.h>
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define DELIVER_STREAM "nt:outputs:stream"
#define DELIVER_STREAM_MAXLEN "100000"
#define DELIVER_FAILED_CAP 10000
#define DELIVER_BLOCK_MS 1000
#define DELIVER_BACKOFF_FIRST_MS 500
#define DELIVER_BACKOFF_MAX_MS (5 * 60 * 1000)
#define DELIVER_RETRY_AFTER_MAX_MS (60 * 60 * 1000)
#define DELIVER_CONSUMER_PRUNE_MS (60LL * 60 * 1000)
/* Threads (consumers) per webhook output: a burst of alerts is delivered four
 * at a time. Slack (about one message a second per webhook) and PagerDuty
 * (where a resolve must not overtake its trigger) keep one, in stream order. */
#define DELIVER_WEBHOOK_THREADS 4

typedef struct worker {
    struct deliver *d;
    const output *o;
    pthread_t thread;
    int started;
    store *st;
    CURL *curl;
    int groups_ok;
    char consumer[160];
    char k_retry[128], k_failed[128], k_stats[128];
    char labels[160];
    int64_t next_claim_ms, next_gauge_ms;
} worker;

struct deliver {
    outputs *outs;
    deliver_config cfg;
    worker *w;
    size_t n;
    atomic_int stopping;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char consumer[128];
    int curl_inited;
};

static int64_t mono_ms(void)
{
    return nt_mono_ns() / 1000000;
}

/* ---- Lua: bookkeeping that must go with the XACK ------------------------------------ */

/* KEYS[1] stream KEYS[2] stats. ARGV[1] group ARGV[2] id ARGV[3] now_ms. */
static const char DELIVERED_LUA[] = "if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 1 then\n"
                                    "  redis.call('HINCRBY', KEYS[2], 'delivered', 1)\n"
                                    "end\n"
                                    "redis.call('HSET', KEYS[2], 'last_success_ms', ARGV[3])\n"
                                    "return 1\n";

/* KEYS[1] stream KEYS[2] stats KEYS[3] failed list. ARGV[1] group ARGV[2] id
 * ARGV[3] dead-letter JSON ARGV[4] now_ms ARGV[5] error ARGV[6] cap. */
static const char DEAD_LUA[] =
    "if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 1 then\n"
    "  redis.call('LPUSH', KEYS[3], ARGV[3])\n"
    "  redis.call('LTRIM', KEYS[3], 0, tonumber(ARGV[6]) - 1)\n"
    "  redis.call('HINCRBY', KEYS[2], 'dead_lettered', 1)\n"
    "end\n"
    "redis.call('HSET', KEYS[2], 'last_error', ARGV[5], 'last_error_ms', ARGV[4])\n"
    "return 1\n";

/* KEYS[1] failed list KEYS[2] retry stream. ARGV[1] maxlen. Oldest first. */
static const char RETRY_LUA[] =
    "local items = redis.call('LRANGE', KEYS[1], 0, -1)\n"
    "for i = #items, 1, -1 do\n"
    "  local ok, d = pcall(cjson.decode, items[i])\n"
    "  if ok and type(d) == 'table' and type(d.alert_id) == 'string' then\n"
    "    redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[1], '*', 'alert', d.alert_id,\n"
    "      'event', d.event == 'resolve' and 'resolve' or 'trigger')\n"
    "  end\n"
    "end\n"
    "redis.call('DEL', KEYS[1])\n"
    "return #items\n";

/* ---- small Redis helpers ---------------------------------------------------------------- */

/* Runs one command given as C-string arguments:
 *   redis_run(st, &reply_or_NULL, err, "XACK", key, group, id). */
#define redis_run(st, out, err, ...)                                                               \
    redis_runv((st), (out), (err), (const char *[]){__VA_ARGS__},                                  \
               (int)(sizeof((const char *[]){__VA_ARGS__}) / sizeof(const char *)))

static nt_status redis_runv(store *st, redisReply **out, nt_err *err, const char **argv, int argc)
{
    redisReply *r = NULL;
    nt_status s = store_command(st, argc, argv, NULL, &r, err);
    if (out)
        *out = r;
    else if (r)
        freeReplyObject(r);
    return s;
}

static int reply_str_is(const redisReply *r, const char *s)
{
    return r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS) &&
           r->len == strlen(s) && memcmp(r->str, s, r->len) == 0;
}

static long long reply_int(const redisReply *r)
{
    if (!r) return 0;
    if (r->type == REDIS_REPLY_INTEGER) return r->integer;
    if (r->type == REDIS_REPLY_STRING) return strtoll(r->str, NULL, 10);
    return 0;
}

/* XGROUP CREATE, BUSYGROUP counting as success. */
static nt_status group_create(store *st, const char *key, const char *group, const char *from,
                              nt_err *err)
{
    nt_status s = redis_run(st, NULL, err, "XGROUP", "CREATE", key, group, from, "MKSTREAM");
    if (s != NT_OK && strstr(err->msg, "BUSYGROUP")) s = NT_OK;
    return s;
}

static nt_status ensure_groups(store *st, const output *o, nt_err *err)
{
    char k_retry[128];
    snprintf(k_retry, sizeof k_retry, "nt:outputs:retry:%s", o->name);
    nt_status s = group_create(st, DELIVER_STREAM, o->name, "$", err);
    /* the retry stream only ever holds this output's entries: read it all */
    if (s == NT_OK) s = group_create(st, k_retry, o->name, "0", err);
    return s;
}

/* ---- waiting ------------------------------------------------------------------------------ */

static int stopping(const worker *w)
{
    return atomic_load(&w->d->stopping);
}

/* Sleeps up to ms, waking at once on stop. */
static void nap(worker *w, int64_t ms)
{
    if (ms <= 0) return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&w->d->mu);
    if (!stopping(w)) pthread_cond_timedwait(&w->d->cv, &w->d->mu, &ts);
    pthread_mutex_unlock(&w->d->mu);
}

/* Keeps an entry this thread is still working on from being XAUTOCLAIMed. */
static void touch(worker *w, const char *key, const char *id)
{
    nt_err err;
    redis_run(w->st, NULL, &err, "XCLAIM", key, w->o->name, w->consumer, "0", id, "JUSTID");
}

/* Waits ms (stop wakes it), refreshing the claim on key/id every claim_idle/3. */
static void wait_holding(worker *w, const char *key, const char *id, int64_t ms)
{
    int64_t slice = w->d->cfg.claim_idle_ms / 3;
    if (slice < 100) slice = 100;
    int64_t end = mono_ms() + ms;
    while (!stopping(w)) {
        int64_t left = end - mono_ms();
        if (left <= 0) break;
        nap(w, left < slice ? left : slice);
        if (!stopping(w) && end - mono_ms() > 0) touch(w, key, id);
    }
}

/* ---- HTTP --------------------------------------------------------------------------------- */

typedef struct attempt {
    long http; /* 0 = no response */
    CURLcode rc;
    int64_t retry_after_ms; /* -1 none */
    char error[CURL_ERROR_SIZE + 32];
} attempt;

static size_t on_header(char *buf, size_t size, size_t n, void *ud)
{
    attempt *a = ud;
    size_t len = size * n;
    static const char name[] = "retry-after:";
    if (len > sizeof name && strncasecmp(buf, name, sizeof name - 1) == 0) {
        char v[128];
        size_t vl = len - (sizeof name - 1);
        if (vl >= sizeof v) vl = sizeof v - 1;
        memcpy(v, buf + sizeof name - 1, vl);
        v[vl] = '\0';
        char *p = v;
        while (*p == ' ' || *p == '\t')
            p++;
        char *end = p + strlen(p);
        while (end > p && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
            *--end = '\0';
        char *stop;
        long long secs = strtoll(p, &stop, 10);
        if (*p && !*stop && secs >= 0) {
            a->retry_after_ms = secs * 1000;
        } else {
            time_t t = curl_getdate(p, NULL);
            if (t > 0) {
                long long diff = (long long)(t - time(NULL));
                a->retry_after_ms = diff > 0 ? diff * 1000 : 0;
            }
        }
    }
    return len;
}

static size_t on_body(char *buf, size_t size, size_t n, void *ud)
{
    (void)buf;
    (void)ud;
    return size * n; /* the receiver's answer is not needed */
}

static int on_progress(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
    (void)dt, (void)dn, (void)ut, (void)un;
    return stopping(ud) ? 1 : 0;
}

/* One POST. Never quotes the URL (a Slack webhook URL is a credential). */
static void post(worker *w, const notify_msg *m, attempt *a)
{
    memset(a, 0, sizeof *a);
    a->retry_after_ms = -1;
    char errbuf[CURL_ERROR_SIZE] = "";
    struct curl_slist *hdrs = NULL, *tmp;
    for (size_t i = 0; i < m->n_headers; i++) {
        if (!(tmp = curl_slist_append(hdrs, m->headers[i]))) {
            curl_slist_free_all(hdrs);
            a->rc = CURLE_OUT_OF_MEMORY;
            snprintf(a->error, sizeof a->error, "out of memory");
            return;
        }
        hdrs = tmp;
    }
    hdrs = (tmp = curl_slist_append(hdrs, "Expect:")) ? tmp : hdrs;
    CURL *c = w->curl;
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, w->o->url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, m->body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)m->len);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)w->d->cfg.timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)w->d->cfg.timeout_ms);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
    const char *ca = getenv("CURL_CA_BUNDLE");
    if (ca && *ca) curl_easy_setopt(c, CURLOPT_CAINFO, ca);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, a);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, w);
    a->rc = curl_easy_perform(c);
    if (a->rc == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &a->http);
        snprintf(a->error, sizeof a->error, "HTTP %ld", a->http);
    } else {
        snprintf(a->error, sizeof a->error, "%s", errbuf[0] ? errbuf : curl_easy_strerror(a->rc));
    }
    curl_slist_free_all(hdrs);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, NULL);
    /* A message that quotes the URL or the secret is not shown anywhere. */
    if (strstr(a->error, w->o->url) || (w->o->secret && strstr(a->error, w->o->secret)))
        snprintf(a->error, sizeof a->error, "transfer failed (curl error %d)", (int)a->rc);
}

typedef enum { OUTCOME_OK, OUTCOME_RETRY, OUTCOME_PERMANENT, OUTCOME_STOPPED } outcome;

static outcome classify(const attempt *a)
{
    if (a->rc == CURLE_ABORTED_BY_CALLBACK) return OUTCOME_STOPPED;
    if (a->rc == CURLE_URL_MALFORMAT || a->rc == CURLE_UNSUPPORTED_PROTOCOL)
        return OUTCOME_PERMANENT;
    if (a->rc != CURLE_OK) return OUTCOME_RETRY;
    if (a->http >= 200 && a->http < 300) return OUTCOME_OK;
    if (a->http == 408 || a->http == 429 || a->http >= 500) return OUTCOME_RETRY;
    return OUTCOME_PERMANENT;
}

/* ---- one entry -------------------------------------------------------------------------- */

static void count(worker *w, const char *result)
{
    char labels[200];
    snprintf(labels, sizeof labels, "%s,result=\"%s\"", w->labels, result);
    metrics_counter_add("newtermsd_output_deliveries_total", labels, 1);
}

static void ack(worker *w, const char *key, const char *id)
{
    nt_err err;
    if (redis_run(w->st, NULL, &err, "XACK", key, w->o->name, id) != NT_OK)
        log_msg(NT_LOG_WARN, "output_ack", "output %s: cannot acknowledge %s: %s", w->o->name, id,
                err.msg);
}

static nt_status eval(worker *w, const char *script, const char *const *keys, int nkeys,
                      const char *const *args, int nargs, nt_err *err)
{
    const char *argv[16];
    int argc = 0;
    char nk[8];
    snprintf(nk, sizeof nk, "%d", nkeys);
    argv[argc++] = "EVAL";
    argv[argc++] = script;
    argv[argc++] = nk;
    for (int i = 0; i < nkeys; i++)
        argv[argc++] = keys[i];
    for (int i = 0; i < nargs; i++)
        argv[argc++] = args[i];
    redisReply *r = NULL;
    nt_status s = store_command(w->st, argc, argv, NULL, &r, err);
    if (r) freeReplyObject(r);
    return s;
}

static void delivered(worker *w, const char *key, const char *id, int64_t entry_ms)
{
    nt_err err;
    char now[24];
    nt_time_ms t = nt_now_ms();
    snprintf(now, sizeof now, "%lld", (long long)t);
    const char *keys[] = {key, w->k_stats};
    const char *args[] = {w->o->name, id, now};
    if (eval(w, DELIVERED_LUA, keys, 2, args, 3, &err) != NT_OK)
        log_msg(NT_LOG_WARN, "output_ack", "output %s: delivered %s but cannot record it: %s",
                w->o->name, id, err.msg);
    count(w, "delivered");
    double secs = entry_ms > 0 && t > entry_ms ? (double)(t - entry_ms) / 1000.0 : 0.0;
    metrics_histogram_observe("newtermsd_output_delivery_latency_seconds", w->labels, secs);
}

static void dead_letter(worker *w, const char *key, const char *id, const char *alert_id,
                        const char *event, const char *error, long http, int attempts)
{
    nt_err err;
    char now[24], cap[24], atbuf[NT_TIME_BUF];
    nt_time_ms t = nt_now_ms();
    snprintf(now, sizeof now, "%lld", (long long)t);
    snprintf(cap, sizeof cap, "%d", DELIVER_FAILED_CAP);
    json_t *item =
        json_pack("{s:s,s:s,s:s,s:o,s:i,s:s,s:s}", "alert_id", alert_id, "event", event, "error",
                  error, "http_status", http > 0 ? json_integer(http) : json_null(), "attempts",
                  attempts, "failed_at", nt_time_format(t, atbuf), "entry_id", id);
    char *text = item ? json_dumps(item, JSON_COMPACT) : NULL;
    json_decref(item);
    if (!text) return; /* left pending: retried after claim_idle */
    const char *keys[] = {key, w->k_stats, w->k_failed};
    const char *args[] = {w->o->name, id, text, now, error, cap};
    if (eval(w, DEAD_LUA, keys, 3, args, 6, &err) != NT_OK)
        log_msg(NT_LOG_WARN, "output_dead_letter", "output %s: cannot dead-letter %s: %s",
                w->o->name, id, err.msg);
    free(text);
    count(w, "dead_lettered");
    log_msg(NT_LOG_WARN, "output_dead_letter",
            "output %s: alert %s (%s) dead-lettered after %d "
            "attempt(s): %s",
            w->o->name, alert_id, event, attempts, error);
}

static void note_error(worker *w, const char *error)
{
    nt_err err;
    char now[24];
    snprintf(now, sizeof now, "%lld", (long long)nt_now_ms());
    redis_run(w->st, NULL, &err, "HSET", w->k_stats, "last_error", error, "last_error_ms", now);
}

static int64_t backoff_ms(int attempts)
{
    int64_t d = DELIVER_BACKOFF_FIRST_MS;
    for (int i = 1; i < attempts && d < DELIVER_BACKOFF_MAX_MS; i++)
        d *= 2;
    if (d > DELIVER_BACKOFF_MAX_MS) d = DELIVER_BACKOFF_MAX_MS;
    /* jitter: uniformly in [d/2, d], so replicas retrying together spread out */
    return d / 2 + (int64_t)((unsigned long long)random() % (unsigned long long)(d / 2 + 1));
}

static void handle_entry(worker *w, const char *key, const char *id, const redisReply *fields)
{
    const char *alert_id = NULL, *event = "trigger";
    for (size_t i = 0; fields && fields->type == REDIS_REPLY_ARRAY && i + 1 < fields->elements;
         i += 2) {
        const redisReply *k = fields->element[i], *v = fields->element[i + 1];
        if (v->type != REDIS_REPLY_STRING) continue;
        if (reply_str_is(k, "alert")) alert_id = v->str;
        if (reply_str_is(k, "event")) event = v->str;
    }
    notify_event ev = strcmp(event, "resolve") == 0 ? NOTIFY_RESOLVE : NOTIFY_TRIGGER;
    if (!alert_id || !notify_applies(w->o->type, ev)) {
        ack(w, key, id);
        return;
    }
    nt_err err;
    json_t *doc = NULL;
    nt_status s = store_alert_get(w->st, alert_id, &doc, &err);
    if (s == NT_ERR_STORE) return; /* left pending; XAUTOCLAIM retries it */
    if (s != NT_OK && ev == NOTIFY_TRIGGER) {
        ack(w, key, id); /* expired or trimmed before delivery: nothing to send */
        count(w, "skipped");
        json_decref(doc);
        return;
    }
    json_t *rule = json_object_get(doc, "rule");
    if (doc && !output_wants(w->o, json_string_value(json_object_get(rule, "id")),
                             json_string_value(json_object_get(rule, "severity")))) {
        ack(w, key, id);
        json_decref(doc);
        return;
    }
    notify_msg m;
    s = notify_build(w->o, ev, alert_id, doc, &m, &err);
    json_decref(doc);
    if (s != NT_OK) {
        if (s != NT_ERR_NOMEM) dead_letter(w, key, id, alert_id, event, err.msg, 0, 0);
        return;
    }
    int64_t entry_ms = strtoll(id, NULL, 10);
    for (int attempts = 1; !stopping(w); attempts++) {
        attempt a;
        post(w, &m, &a);
        outcome oc = classify(&a);
        if (oc == OUTCOME_STOPPED) break;
        if (oc == OUTCOME_OK) {
            delivered(w, key, id, entry_ms);
            break;
        }
        if (oc == OUTCOME_PERMANENT) {
            dead_letter(w, key, id, alert_id, event, a.error, a.http, attempts);
            break;
        }
        int64_t wait = backoff_ms(attempts);
        if (a.retry_after_ms > wait)
            wait = a.retry_after_ms > DELIVER_RETRY_AFTER_MAX_MS ? DELIVER_RETRY_AFTER_MAX_MS
                                                                 : a.retry_after_ms;
        int64_t age = nt_now_ms() - entry_ms;
        if (age + wait > w->d->cfg.max_age_ms) {
            char why[CURL_ERROR_SIZE + 96];
            snprintf(why, sizeof why, "gave up after %d attempts over the output max age: %s",
                     attempts, a.error);
            dead_letter(w, key, id, alert_id, event, why, a.http, attempts);
            break;
        }
        count(w, "retried");
        note_error(w, a.error);
        if (attempts == 1 || attempts % 10 == 0)
            log_msg(NT_LOG_WARN, "output_retry",
                    "output %s: alert %s (%s) attempt %d failed (%s); retrying in %lld ms",
                    w->o->name, alert_id, event, attempts, a.error, (long long)wait);
        wait_holding(w, key, id, wait);
    }
    notify_msg_clear(&m);
}

/* Handles every entry of an XREADGROUP/XAUTOCLAIM entry list. */
static void handle_entries(worker *w, const char *key, const redisReply *list)
{
    for (size_t i = 0; list && list->type == REDIS_REPLY_ARRAY && i < list->elements; i++) {
        if (stopping(w)) return;
        const redisReply *e = list->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 1 ||
            e->element[0]->type != REDIS_REPLY_STRING)
            continue;
        const char *id = e->element[0]->str;
        const redisReply *fields = e->elements > 1 ? e->element[1] : NULL;
        if (!fields || fields->type != REDIS_REPLY_ARRAY) {
            ack(w, key, id); /* trimmed away while pending */
            continue;
        }
        handle_entry(w, key, id, fields);
    }
}

/* Forgets consumers of dead processes (every restart makes new names): those
 * with nothing pending and no read for DELIVER_CONSUMER_PRUNE_MS. A live
 * consumer reads every second, and XREADGROUP would recreate one anyway. */
static void prune_consumers(worker *w, const char *key)
{
    redisReply *r = NULL;
    nt_err err;
    if (redis_run(w->st, &r, &err, "XINFO", "CONSUMERS", key, w->o->name) != NT_OK) return;
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        const redisReply *c = r->element[i];
        const char *name = NULL;
        long long pending = -1, idle = 0;
        for (size_t j = 0; c->type == REDIS_REPLY_ARRAY && j + 1 < c->elements; j += 2) {
            const redisReply *k = c->element[j], *v = c->element[j + 1];
            if (reply_str_is(k, "name") && v->type == REDIS_REPLY_STRING) name = v->str;
            if (reply_str_is(k, "pending")) pending = reply_int(v);
            if (reply_str_is(k, "idle")) idle = reply_int(v);
        }
        if (name && pending == 0 && idle > DELIVER_CONSUMER_PRUNE_MS &&
            strcmp(name, w->consumer) != 0)
            redis_run(w->st, NULL, &err, "XGROUP", "DELCONSUMER", key, w->o->name, name);
    }
    freeReplyObject(r);
}

/* Takes over entries another consumer (a dead replica) left idle, one at a
 * time: an entry this thread holds is always the one it is working on, so an
 * entry never sits in our pending list unattended (where another consumer
 * could claim it and both would deliver it). */
static void claim_round(worker *w)
{
    char idle[24];
    snprintf(idle, sizeof idle, "%lld", (long long)w->d->cfg.claim_idle_ms);
    const char *keys[2] = {DELIVER_STREAM, w->k_retry};
    for (int k = 0; k < 2 && !stopping(w); k++) {
        char cursor[64] = "0-0";
        for (int round = 0; round < 64 && !stopping(w); round++) {
            redisReply *r = NULL;
            nt_err err;
            if (redis_run(w->st, &r, &err, "XAUTOCLAIM", keys[k], w->o->name, w->consumer, idle,
                          cursor, "COUNT", "1") != NT_OK)
                return;
            int more = 0;
            if (r->type == REDIS_REPLY_ARRAY && r->elements >= 2) {
                if (r->element[1]->type == REDIS_REPLY_ARRAY && r->element[1]->elements)
                    log_msg(NT_LOG_INFO, "output_claim",
                            "output %s: took over %zu entries left pending by another consumer",
                            w->o->name, r->element[1]->elements);
                handle_entries(w, keys[k], r->element[1]);
                if (r->element[0]->type == REDIS_REPLY_STRING) {
                    snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
                    more = strcmp(cursor, "0-0") != 0;
                }
            }
            freeReplyObject(r);
            if (!more) break;
        }
        prune_consumers(w, keys[k]);
    }
}

/* pending = entries not yet read by the group (lag) + read but not acked, over
 * both streams. -1 when Redis cannot say. */
static long long group_pending(store *st, const char *key, const char *group)
{
    redisReply *r = NULL;
    nt_err err;
    if (redis_run(st, &r, &err, "XINFO", "GROUPS", key) != NT_OK) return -1;
    long long total = -1;
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        const redisReply *g = r->element[i];
        if (g->type != REDIS_REPLY_ARRAY) continue;
        int mine = 0;
        long long pending = 0, lag = 0;
        for (size_t j = 0; j + 1 < g->elements; j += 2) {
            const redisReply *k = g->element[j], *v = g->element[j + 1];
            if (reply_str_is(k, "name")) mine = reply_str_is(v, group);
            if (reply_str_is(k, "pending")) pending = reply_int(v);
            if (reply_str_is(k, "lag")) lag = reply_int(v);
        }
        if (mine) total = pending + lag;
    }
    freeReplyObject(r);
    return total;
}

static long long output_pending(store *st, const char *name)
{
    char k_retry[128];
    snprintf(k_retry, sizeof k_retry, "nt:outputs:retry:%s", name);
    long long a = group_pending(st, DELIVER_STREAM, name);
    long long b = group_pending(st, k_retry, name);
    if (a < 0 && b < 0) return -1;
    return (a > 0 ? a : 0) + (b > 0 ? b : 0);
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    const char *group = w->o->name;
    char block[16];
    snprintf(block, sizeof block, "%d", DELIVER_BLOCK_MS);
    while (!stopping(w)) {
        nt_err err;
        if (!w->groups_ok) {
            if (ensure_groups(w->st, w->o, &err) != NT_OK) {
                nap(w, 1000);
                continue;
            }
            w->groups_ok = 1;
        }
        int64_t now = mono_ms();
        if (now >= w->next_claim_ms) {
            claim_round(w);
            int64_t every = w->d->cfg.claim_idle_ms / 2;
            w->next_claim_ms = now + (every < 1000 ? 1000 : every);
        }
        if (now >= w->next_gauge_ms) {
            long long p = output_pending(w->st, group);
            if (p >= 0) metrics_gauge_set("newtermsd_output_pending", w->labels, (double)p);
            w->next_gauge_ms = now + 1000;
        }
        redisReply *r = NULL;
        nt_status s =
            redis_run(w->st, &r, &err, "XREADGROUP", "GROUP", group, w->consumer, "COUNT", "1",
                      "BLOCK", block, "STREAMS", DELIVER_STREAM, w->k_retry, ">", ">");
        if (s != NT_OK) {
            if (strstr(err.msg, "NOGROUP")) w->groups_ok = 0;
            nap(w, 500);
            continue;
        }
        for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
            const redisReply *sr = r->element[i];
            if (sr->type != REDIS_REPLY_ARRAY || sr->elements < 2 ||
                sr->element[0]->type != REDIS_REPLY_STRING)
                continue;
            handle_entries(w, sr->element[0]->str, sr->element[1]);
        }
        freeReplyObject(r);
    }
    return NULL;
}

/* ---- lifecycle ------------------------------------------------------------------------ */

static void describe(void)
{
    metrics_describe("newtermsd_output_deliveries_total", "counter",
                     "Alert deliveries by output and result (delivered, retried, dead_lettered, "
                     "skipped).");
    metrics_describe("newtermsd_output_pending", "gauge",
                     "Stream entries an output has not yet delivered (unread + unacknowledged).");
    metrics_describe("newtermsd_output_delivery_latency_seconds", "histogram",
                     "From the alert's write to the receiver's 2xx, by output.");
}

nt_status deliver_start(deliver **out, outputs *outs, const deliver_config *cfg, nt_err *err)
{
    *out = NULL;
    if (!outs) return NT_OK;
    if (cfg->claim_idle_ms <= cfg->timeout_ms) {
        outputs_free(outs);
        return nt_fail(err, NT_ERR_INVALID,
                       "--output-claim-idle (%lld ms) must be longer than --output-timeout (%lld "
                       "ms), or a slow delivery would be taken over and sent twice",
                       (long long)cfg->claim_idle_ms, (long long)cfg->timeout_ms);
    }
    deliver *d = calloc(1, sizeof *d);
    if (!d) {
        outputs_free(outs);
        return nt_fail(err, NT_ERR_NOMEM, "out of memory");
    }
    d->outs = outs;
    d->cfg = *cfg;
    d->cfg.store = (store_config){0}; /* borrowed: not kept */
    pthread_mutex_init(&d->mu, NULL);
    pthread_cond_init(&d->cv, NULL);
    char host[64] = "host";
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = '\0';
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    srandom((unsigned)(ts.tv_nsec ^ getpid()));
    snprintf(d->consumer, sizeof d->consumer, "%.60s-%d-%08lx", host, (int)getpid(),
             (unsigned long)random());
    nt_status st = NT_OK;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        st = nt_fail(err, NT_ERR_NOMEM, "cannot initialise libcurl");
        goto fail;
    }
    d->curl_inited = 1;
    describe();
    size_t nthreads = 0;
    for (size_t i = 0; i < outs->n; i++)
        nthreads += outs->items[i].type == OUTPUT_WEBHOOK ? DELIVER_WEBHOOK_THREADS : 1;
    d->w = calloc(nthreads ? nthreads : 1, sizeof *d->w);
    if (!d->w) {
        st = nt_fail(err, NT_ERR_NOMEM, "out of memory");
        goto fail;
    }
    d->n = nthreads;
    /* The same Redis settings as ingestion (TLS, user, limits), but a blocked
     * XREADGROUP answers only after DELIVER_BLOCK_MS, and deliveries never WAIT. */
    store_config sc = cfg->store;
    sc.command_timeout_ms += DELIVER_BLOCK_MS;
    sc.wait_replicas = 0;
    size_t k = 0;
    for (size_t i = 0; i < outs->n; i++) {
        int per = outs->items[i].type == OUTPUT_WEBHOOK ? DELIVER_WEBHOOK_THREADS : 1;
        for (int j = 0; j < per; j++, k++) {
            worker *w = &d->w[k];
            w->d = d;
            w->o = &outs->items[i];
            snprintf(w->consumer, sizeof w->consumer, "%s-%d", d->consumer, j);
            snprintf(w->k_retry, sizeof w->k_retry, "nt:outputs:retry:%s", w->o->name);
            snprintf(w->k_failed, sizeof w->k_failed, "nt:outputs:failed:%s", w->o->name);
            snprintf(w->k_stats, sizeof w->k_stats, "nt:outputs:stats:%s", w->o->name);
            snprintf(w->labels, sizeof w->labels, "output=\"%s\"", w->o->name);
            if ((st = store_open(&w->st, &sc, err)) != NT_OK) goto fail;
            if (!(w->curl = curl_easy_init())) {
                st = nt_fail(err, NT_ERR_NOMEM, "cannot create a libcurl handle");
                goto fail;
            }
            if (j > 0) continue;
            nt_err gerr;
            /* Create the groups now, before ingestion starts, so the first alerts
             * after this start are queued; a worker retries when Redis is down. */
            w->groups_ok = ensure_groups(w->st, w->o, &gerr) == NT_OK;
            if (!w->groups_ok)
                log_msg(NT_LOG_WARN, "output_groups",
                        "output %s: cannot create its consumer group yet: %s", w->o->name,
                        gerr.msg);
        }
    }
    for (size_t i = 0; i < nthreads; i++) {
        if (pthread_create(&d->w[i].thread, NULL, worker_main, &d->w[i]) != 0) {
            st = nt_fail(err, NT_ERR_NOMEM, "cannot start the delivery thread");
            goto fail;
        }
        d->w[i].started = 1;
    }
    log_json(NT_LOG_INFO, "outputs", "delivering alerts",
             json_pack("{s:i,s:s}", "outputs", (int)outs->n, "consumer", d->consumer));
    *out = d;
    return NT_OK;
fail:
    deliver_stop(d);
    return st;
}

void deliver_stop(deliver *d)
{
    if (!d) return;
    pthread_mutex_lock(&d->mu);
    atomic_store(&d->stopping, 1);
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
    for (size_t i = 0; d->w && i < d->n; i++) {
        worker *w = &d->w[i];
        if (w->started) pthread_join(w->thread, NULL);
        if (w->curl) curl_easy_cleanup(w->curl);
        store_free(w->st);
    }
    free(d->w);
    if (d->curl_inited) curl_global_cleanup();
    outputs_free(d->outs);
    pthread_mutex_destroy(&d->mu);
    pthread_cond_destroy(&d->cv);
    free(d);
}

const outputs *deliver_outputs(const deliver *d)
{
    return d ? d->outs : NULL;
}

/* ---- REST views --------------------------------------------------------------------------- */

nt_status deliver_status(const outputs *o, store *st, json_t **out, nt_err *err)
{
    *out = NULL;
    json_t *arr = json_array();
    if (!arr) return nt_fail(err, NT_ERR_NOMEM, "out of memory");
    for (size_t i = 0; o && i < o->n; i++) {
        const output *op = &o->items[i];
        char k_stats[128], k_failed[128];
        snprintf(k_stats, sizeof k_stats, "nt:outputs:stats:%s", op->name);
        snprintf(k_failed, sizeof k_failed, "nt:outputs:failed:%s", op->name);
        redisReply *h = NULL, *l = NULL;
        nt_status s =
            redis_run(st, &h, err, "HMGET", k_stats, "delivered", "last_error", "last_success_ms");
        if (s == NT_OK) s = redis_run(st, &l, err, "LLEN", k_failed);
        long long pending = s == NT_OK ? output_pending(st, op->name) : 0;
        if (s != NT_OK) {
            if (h) freeReplyObject(h);
            json_decref(arr);
            return s;
        }
        json_t *last_error = json_null(), *last_success = json_null();
        long long delivered = 0;
        if (h->type == REDIS_REPLY_ARRAY && h->elements == 3) {
            delivered = reply_int(h->element[0]);
            if (h->element[1]->type == REDIS_REPLY_STRING)
                last_error = json_stringn(h->element[1]->str, h->element[1]->len);
            if (h->element[2]->type == REDIS_REPLY_STRING) {
                char buf[NT_TIME_BUF];
                last_success = json_string(nt_time_format(reply_int(h->element[2]), buf));
            }
        }
        json_array_append_new(arr, json_pack("{s:s,s:s,s:I,s:I,s:I,s:o,s:o}", "name", op->name,
                                             "type", output_type_name(op->type), "delivered",
                                             (json_int_t)delivered, "pending",
                                             (json_int_t)(pending > 0 ? pending : 0), "failed",
                                             (json_int_t)reply_int(l), "last_error", last_error,
                                             "last_success_at", last_success));
        freeReplyObject(h);
        freeReplyObject(l);
    }
    *out = json_pack("{s:o}", "outputs", arr);
    return *out ? NT_OK : nt_fail(err, NT_ERR_NOMEM, "out of memory");
}

nt_status deliver_failed(store *st, const char *name, size_t limit, json_t **out, nt_err *err)
{
    *out = NULL;
    char key[128], stop[24];
    snprintf(key, sizeof key, "nt:outputs:failed:%s", name);
    snprintf(stop, sizeof stop, "%zu", (limit ? limit : 100) - 1);
    redisReply *r = NULL;
    nt_status s = redis_run(st, &r, err, "LRANGE", key, "0", stop);
    if (s != NT_OK) return s;
    json_t *arr = json_array();
    for (size_t i = 0; arr && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        json_t *item = json_loadb(r->element[i]->str, r->element[i]->len, 0, NULL);
        if (item) json_array_append_new(arr, item);
    }
    freeReplyObject(r);
    if (!arr) return nt_fail(err, NT_ERR_NOMEM, "out of memory");
    *out = arr;
    return NT_OK;
}

nt_status deliver_retry(store *st, const char *name, long long *requeued, nt_err *err)
{
    *requeued = 0;
    char k_failed[128], k_retry[128];
    snprintf(k_failed, sizeof k_failed, "nt:outputs:failed:%s", name);
    snprintf(k_retry, sizeof k_retry, "nt:outputs:retry:%s", name);
    redisReply *r = NULL;
    nt_status s =
        redis_run(st, &r, err, "EVAL", RETRY_LUA, "2", k_failed, k_retry, DELIVER_STREAM_MAXLEN);
    if (s != NT_OK) return s;
    *requeued = reply_int(r);
    freeReplyObject(r);
    return NT_OK;
}

/*
 * deliver.h — the delivery worker: alerts from a Redis Stream to webhook,
 * Slack and PagerDuty receivers, at least once.
 *
 * The observe script (store.c) XADDs {alert, event=trigger} to nt:outputs:stream
 * in the same script that writes the alert, and the status script XADDs
 * {alert, event=resolve} when an alert is closed — while that stream exists,
 * which deliver_start makes sure of. Keys owned here:
 *
 *   nt:outputs:stream          the shared stream; one consumer group per output
 *                              name, created at "$" the first time any replica
 *                              starts with that output
 *   nt:outputs:retry:{name}    per-output stream that POST .../retry re-queues
 *                              dead letters into (same group name, from "0")
 *   nt:outputs:failed:{name}   list of dead-letter JSON objects, newest first,
 *                              at most 10000
 *   nt:outputs:stats:{name}    hash: delivered, dead_lettered, last_error,
 *                              last_error_ms, last_success_ms (all replicas)
 *
 * Each output has its own thread, its own Redis connection and its own curl
 * handle, so a receiver that hangs holds up only its own output, and nothing
 * here shares a lock or a connection with ingestion. A thread reads with
 * XREADGROUP ... BLOCK 1000 (new entries wake it at once; the timeout only
 * bounds how long a stop takes) under a consumer name unique to the process
 * (host-pid-random), so N replicas split the entries. An entry is XACKed only
 * after the receiver answered 2xx, or when it is dead-lettered or does not
 * concern the output. Entries left pending by a replica that died (kill -9)
 * are taken over with XAUTOCLAIM once idle for claim_idle_ms; a thread that is
 * still retrying an entry refreshes its claim (XCLAIM ... JUSTID) well before
 * that, so a live replica's work is never stolen. Consumers of dead processes
 * (nothing pending, no read for an hour) are removed from the group.
 *
 * Retries: 408, 429, 5xx, timeouts and connection errors back off 0.5 s
 * doubling to 5 min with jitter (at least what Retry-After asks, at most 1 h)
 * until the entry is max_age_ms old (its stream id is its birth time); other
 * 4xx (and 3xx: redirects are not followed) and exhausted retries go to the
 * dead letters. Transfers use TLS verification, libcurl's proxy environment
 * variables (http_proxy, https_proxy, no_proxy), CURL_CA_BUNDLE when set, and
 * are aborted within about a second when the worker stops.
 *
 * Ownership: deliver_start takes ownership of `outs` (freed by deliver_stop,
 * also on failure). deliver_stop(NULL) is a no-op.
 */
#ifndef NT_DELIVER_H
#define NT_DELIVER_H

#include "common.h"
#include "outputs.h"
#include "store.h"

#include <jansson.h>
#include <stddef.h>

typedef struct deliver deliver;

typedef struct deliver_config {
    store_config store;       /* Redis settings as ingestion has them (config_store);
                                 strings borrowed for deliver_start only */
    nt_time_ms max_age_ms;    /* give up after this long: 24 h */
    nt_time_ms timeout_ms;    /* one HTTP attempt: 10 s */
    nt_time_ms claim_idle_ms; /* take over another consumer's entry after: 60 s */
} deliver_config;

/* Creates the consumer groups (best effort: a worker retries when Redis is
 * down) and starts one thread per output. NT_ERR_INVALID when claim_idle_ms is
 * not above timeout_ms (a slow transfer would be delivered twice). */
nt_status deliver_start(deliver **out, outputs *outs, const deliver_config *cfg, nt_err *err);

/* Stops the threads (aborting transfers in flight; their entries stay pending
 * and are delivered later) and frees everything. Returns within ~2 s. */
void deliver_stop(deliver *d);

const outputs *deliver_outputs(const deliver *d);

/* ---- the REST API's view (any replica, any pooled store) ----------------- */

/* *out = {"outputs": [{name, type, delivered, pending, failed, last_error,
 * last_success_at}]} for the outputs configured on this replica (o may be NULL:
 * an empty list). */
nt_status deliver_status(const outputs *o, store *st, json_t **out, nt_err *err);

/* *out = array of dead letters, newest first (limit 1..1000). */
nt_status deliver_failed(store *st, const char *name, size_t limit, json_t **out, nt_err *err);

/* Moves every dead letter of the output back into its retry stream;
 * *requeued = how many. */
nt_status deliver_retry(store *st, const char *name, long long *requeued, nt_err *err);

#endif

/*
 * ingest.h — the ingestion routes of `newtermsd serve`: a Firehose delivery
 * (POST /v1/firehose), one EventBridge event (POST /v1/eventbridge) and a
 * plain CloudTrail delivery (POST /v1/events).
 *
 * The handlers take the request as plain data — the body after any
 * Content-Encoding was undone, and the one header they read — and fill a
 * reply; http.c has done routing, authentication and the body limits. Each
 * runs the delivery through the pipeline (pipeline.h) and commits its
 * observations and dead-lettered records to Redis through the server's pool
 * in one pipelined round trip before it answers.
 *
 * Ingestion is fail-closed: if that commit fails the answer is 503 and the
 * sender retries (the alert ids are deterministic and the history check is
 * atomic, so a retry never duplicates an alert). Every delivery is counted in
 * /metrics and logged (event "delivery").
 */
#ifndef NT_INGEST_H
#define NT_INGEST_H

#include "reply.h"
#include "server.h"

typedef enum ingest_route {
    INGEST_FIREHOSE,
    INGEST_EVENTBRIDGE,
    INGEST_EVENTS,
} ingest_route;

/* "firehose", "eventbridge" or "events": the route's metric label. */
const char *ingest_route_name(ingest_route route);

/* A Firehose delivery. header_request_id is X-Amz-Firehose-Request-Id (may be
 * NULL), answered back when the body has no requestId of its own;
 * body_inflated is what the body's Content-Encoding: gzip produced (0 when
 * none), which counts against the delivery's --max-inflate budget. */
void ingest_firehose(server *s, const char *header_request_id, const char *body, size_t len,
                     size_t body_inflated, reply *r);

/* An EventBridge event or a CloudTrail delivery (route is INGEST_EVENTBRIDGE
 * or INGEST_EVENTS). */
void ingest_events(server *s, ingest_route route, const char *body, size_t len, reply *r);

/* Firehose's own reply shape: {"requestId", "timestamp"} and, for an error
 * (code not NULL), "errorMessage": "<code>: <msg>". Also used by http.c for
 * the refusals of the Firehose route. */
void ingest_firehose_reply(reply *r, unsigned status, const char *request_id, const char *code,
                           const char *msg);

#endif

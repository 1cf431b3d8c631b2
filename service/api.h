/*
 * api.h — the REST API under /api/v1 (api.c): alerts, exceptions, rules,
 * rejected records and outputs.
 *
 * A request is plain data: method, path, body and a way to read the query
 * arguments (two callbacks over the front end's own representation), so the
 * handlers know nothing of libmicrohttpd and a test can drive them with a
 * table of arguments. The answer is a reply (reply.h).
 */
#ifndef NT_API_H
#define NT_API_H

#include "reply.h"
#include "server.h"

/* REST API request bodies, as sent and after gzip decoding. */
#define API_MAX_BODY (1024 * 1024)

/* What api.c needs to know about a request. All borrowed for the call. */
typedef struct api_request {
    const char *method;
    const char *path; /* after /api/v1, e.g. "/alerts/abc" */
    const char *body;
    size_t body_len;
    int can_write; /* the token was a write token */
    /* The value of query argument `key` (the first one when repeated), or
     * NULL when it is absent or has no value. */
    const char *(*query)(void *ctx, const char *key);
    /* Calls fn(arg, key) for every query argument in order, until fn
     * returns 0. */
    void (*query_keys)(void *ctx, int (*fn)(void *arg, const char *key), void *arg);
    void *query_ctx;
} api_request;

/* Answer req into r (r zeroed by the caller; it owns r's body afterwards). */
void api_handle(server *s, const api_request *req, reply *r);

#endif

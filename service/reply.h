/*
 * reply.h — what a handler answers, before it is an HTTP response: a status,
 * a JSON body (or plain text) and the two headers a handler may choose.
 *
 * The one place where an nt_status becomes an HTTP status (reply_status) and
 * an HTTP status its error code (reply_code); every handler — the REST API
 * (api.c), the ingestion routes (ingest.c) and the refusals of http.c — goes
 * through this table. Nothing of libmicrohttpd here: http.c turns a reply into a
 * response, and tests read a reply directly.
 *
 * Ownership: a reply owns its json and text; reply_clear releases them (safe
 * on a zeroed reply) and zeroes the reply.
 */
#ifndef NT_REPLY_H
#define NT_REPLY_H

#include "common.h"

#include <jansson.h>

typedef struct reply {
    unsigned status;
    json_t *json;             /* owned; the body when not NULL */
    char *text;               /* malloc'd; the body when json is NULL */
    const char *content_type; /* static; NULL = JSON or plain UTF-8 text */
    const char *allow;        /* static; the Allow header of a 405 */
} reply;

/* The HTTP status for a failure: NOTFOUND 404, CONFLICT 409, INVALID / PARSE /
 * UNSUPPORTED 400, LIMIT 413, STORE 503, anything else 500 (NT_OK too). */
unsigned reply_status(nt_status st);

/* The error code of the body for an HTTP status: bad_request, unauthorized,
 * forbidden, not_found, method_not_allowed, conflict, payload_too_large,
 * unsupported_media_type, store_unavailable; internal for anything else. */
const char *reply_code(unsigned status);

/* Fill r with {"error": code, "message": <fmt…>} (replacing any body). */
void reply_error(reply *r, unsigned status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Fill r with the error body for st: reply_status(st), its reply_code and msg.
 * A 503 says only "state store unavailable; retry later": msg then names
 * Redis's address and error, which belong in the log (the caller's), never
 * in a body. */
void reply_fail(reply *r, nt_status st, const char *msg);

void reply_clear(reply *r);

#endif

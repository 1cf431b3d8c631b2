/*
 * reply.c — the status table and the error bodies of reply.h.
 */
#include "reply.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

unsigned reply_status(nt_status st)
{
    switch (st) {
    case NT_ERR_NOTFOUND:
        return 404;
    case NT_ERR_CONFLICT:
        return 409;
    case NT_ERR_INVALID:
    case NT_ERR_PARSE:
    case NT_ERR_UNSUPPORTED:
        return 400;
    case NT_ERR_LIMIT:
        return 413;
    case NT_ERR_STORE:
        return 503;
    default:
        return 500;
    }
}

const char *reply_code(unsigned status)
{
    switch (status) {
    case 400:
        return "bad_request";
    case 401:
        return "unauthorized";
    case 403:
        return "forbidden";
    case 404:
        return "not_found";
    case 405:
        return "method_not_allowed";
    case 409:
        return "conflict";
    case 413:
        return "payload_too_large";
    case 415:
        return "unsupported_media_type";
    case 503:
        return "store_unavailable";
    default:
        return "internal";
    }
}

void reply_error(reply *r, unsigned status, const char *code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    r->status = status;
    json_decref(r->json);
    r->json = json_pack("{s:s,s:s}", "error", code, "message", msg);
}

void reply_fail(reply *r, nt_status st, const char *msg)
{
    unsigned status = reply_status(st);
    if (status == 503) {
        reply_error(r, 503, reply_code(503), "state store unavailable; retry later");
        return;
    }
    reply_error(r, status, reply_code(status), "%s", msg ? msg : "");
}

void reply_clear(reply *r)
{
    if (!r) return;
    json_decref(r->json);
    free(r->text);
    *r = (reply){0};
}

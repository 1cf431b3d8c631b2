/*
 * notify.h — what an alert looks like on the wire to each kind of output.
 *
 * Pure functions: from the alert document (exactly as GET /api/v1/alerts/{id}
 * returns it) and an output's configuration to a request body and its headers.
 * No I/O, no clock; deliver.c does the sending.
 *
 *   webhook    body = the alert document; X-Newtermsd-Signature-256 =
 *              "sha256=" + hex HMAC-SHA256(secret, body) when a secret is set
 *   slack      an incoming-webhook message: `text` (one line) and `blocks`
 *   pagerduty  an Events API v2 event: trigger with dedup_key = alert id, and
 *              resolve (same dedup_key) when the alert is closed
 *
 * Every request carries Content-Type: application/json, User-Agent:
 * newtermsd/NT_VERSION and X-Newtermsd-Delivery: <alert id>.
 */
#ifndef NT_NOTIFY_H
#define NT_NOTIFY_H

#include "common.h"
#include "outputs.h"

#include <jansson.h>
#include <stddef.h>

#ifndef NT_VERSION
#define NT_VERSION "0.1.0"
#endif

#define NOTIFY_MAX_HEADERS 6

typedef enum notify_event { NOTIFY_TRIGGER, NOTIFY_RESOLVE } notify_event;

typedef struct notify_msg {
    char *body; /* malloc'd JSON text, NUL-terminated */
    size_t len;
    char *headers[NOTIFY_MAX_HEADERS]; /* malloc'd "Name: value" lines */
    size_t n_headers;
} notify_msg;

/* 1 when outputs of this type send this event (only pagerduty sends resolve). */
int notify_applies(output_type type, notify_event ev);

/* Builds the request into *out (zeroed first). alert is the full document; for
 * NOTIFY_RESOLVE it may be NULL (only the id is used). NT_ERR_INVALID when the
 * event does not apply to the output's type or the document lacks an id;
 * NT_ERR_NOMEM. On error *out holds nothing to free. */
nt_status notify_build(const output *o, notify_event ev, const char *alert_id, const json_t *alert,
                       notify_msg *out, nt_err *err);

void notify_msg_clear(notify_msg *m);

/* "sha256=<64 hex>" of body under key, into out (72 bytes). */
void notify_signature(const char *key, size_t keylen, const char *body, size_t len, char out[72]);

/* PagerDuty severity for a rule severity: critical → critical, high → error,
 * medium → warning, anything else → info. */
const char *notify_pagerduty_severity(const char *severity);

#endif

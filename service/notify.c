/*
 * notify.c — payload builders for webhook, Slack and PagerDuty (see notify.h).
 *
 * Everything a message says comes from the alert document; strings that come
 * from an event (user names, actions, the reason) are cut to each receiver's
 * limits on a UTF-8 character boundary and, for Slack mrkdwn, have &, < and >
 * escaped so an attacker-chosen user name cannot turn into a link or mention.
 * The Slack acknowledge recipe is a code block with $NEWTERMSD_URL and
 * $NEWTERMSD_TOKEN placeholders: copy-pasteable, never a clickable link, and
 * no token in a chat channel.
 */
#include "notify.h"

#include "sha256.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int notify_applies(output_type type, notify_event ev)
{
    return ev == NOTIFY_TRIGGER || type == OUTPUT_PAGERDUTY;
}

void notify_msg_clear(notify_msg *m)
{
    if (!m) return;
    free(m->body);
    for (size_t i = 0; i < m->n_headers; i++)
        free(m->headers[i]);
    memset(m, 0, sizeof *m);
}

void notify_signature(const char *key, size_t keylen, const char *body, size_t len, char out[72])
{
    unsigned char mac[32];
    char hex[65];
    hmac_sha256(key, keylen, body, len, mac);
    sha256_hex(mac, 32, hex);
    snprintf(out, 72, "sha256=%s", hex);
}

const char *notify_pagerduty_severity(const char *severity)
{
    if (!severity) return "info";
    if (strcmp(severity, "critical") == 0) return "critical";
    if (strcmp(severity, "high") == 0) return "error";
    if (strcmp(severity, "medium") == 0) return "warning";
    return "info";
}

/* ---- text helpers ----------------------------------------------------------------- */

/* Longest prefix of s (at most max bytes) that ends on a character boundary. */
static size_t utf8_prefix(const char *s, size_t max)
{
    size_t n = strlen(s), i = 0;
    while (i < n) {
        size_t k = nt_utf8_seq_len((const unsigned char *)s + i, n - i);
        if (k == 0) k = 1;
        if (i + k > max) break;
        i += k;
    }
    return i;
}

/* Copies s into buf (cap bytes), cut on a character boundary, with newlines and
 * tabs turned into spaces (the one-line texts). "…" marks a cut. */
static void one_line(const char *s, char *buf, size_t cap)
{
    if (!s) s = "";
    size_t n = strlen(s), keep = utf8_prefix(s, cap - 4);
    memcpy(buf, s, keep);
    if (keep < n) {
        memcpy(buf + keep, "\xe2\x80\xa6", 3); /* … */
        keep += 3;
    }
    buf[keep] = '\0';
    for (char *p = buf; *p; p++)
        if (*p == '\n' || *p == '\r' || *p == '\t') *p = ' ';
}

/* Slack mrkdwn escaping into buf (cap bytes), cutting on a boundary. */
static void slack_escape(const char *s, char *buf, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; s && s[i];) {
        const char *rep = s[i] == '&'   ? "&amp;"
                          : s[i] == '<' ? "&lt;"
                          : s[i] == '>' ? "&gt;"
                                        : NULL;
        size_t k = rep ? 1 : nt_utf8_seq_len((const unsigned char *)s + i, strlen(s + i));
        if (k == 0) k = 1;
        size_t add = rep ? strlen(rep) : k;
        if (o + add + 4 > cap) {
            memcpy(buf + o, "\xe2\x80\xa6", 3);
            o += 3;
            break;
        }
        memcpy(buf + o, rep ? rep : s + i, add);
        o += add;
        i += k;
    }
    buf[o] = '\0';
}

/* The first value of alert.fields[name] as text ("" when absent). */
static void field_text(const json_t *alert, const char *name, char *buf, size_t cap)
{
    json_t *v = json_object_get(json_object_get(alert, "fields"), name);
    if (json_is_array(v)) v = json_array_get(v, 0);
    buf[0] = '\0';
    if (json_is_string(v)) {
        one_line(json_string_value(v), buf, cap);
    } else if (json_is_integer(v)) {
        snprintf(buf, cap, "%lld", (long long)json_integer_value(v));
    } else if (json_is_boolean(v)) {
        snprintf(buf, cap, "%s", json_is_true(v) ? "true" : "false");
    }
}

static const char *or_dash(const char *s)
{
    return s && *s ? s : "-";
}

/* What every message says, pulled out of the document once. */
typedef struct alert_facts {
    char rule_id[160], rule_name[300], severity[32], user[260], action[260], provider[260],
        account[64], ip[64], created[64], reason[2400];
    char
        line[1100]; /* "[high] Rule name: alice called iam.amazonaws.com CreateUser in account 1" */
} alert_facts;

static void facts_of(const json_t *alert, alert_facts *f)
{
    json_t *rule = json_object_get(alert, "rule");
    one_line(json_string_value(json_object_get(rule, "id")), f->rule_id, sizeof f->rule_id);
    one_line(json_string_value(json_object_get(rule, "name")), f->rule_name, sizeof f->rule_name);
    one_line(json_string_value(json_object_get(rule, "severity")), f->severity, sizeof f->severity);
    field_text(alert, "user.name", f->user, sizeof f->user);
    field_text(alert, "event.action", f->action, sizeof f->action);
    field_text(alert, "event.provider", f->provider, sizeof f->provider);
    field_text(alert, "cloud.account.id", f->account, sizeof f->account);
    field_text(alert, "source.ip", f->ip, sizeof f->ip);
    one_line(json_string_value(json_object_get(alert, "created_at")), f->created,
             sizeof f->created);
    one_line(json_string_value(json_object_get(alert, "reason")), f->reason, sizeof f->reason);
    char line[1400];
    snprintf(line, sizeof line, "[%s] %s: %s called %s %s in account %s", or_dash(f->severity),
             or_dash(f->rule_name), or_dash(f->user), or_dash(f->provider), or_dash(f->action),
             or_dash(f->account));
    one_line(line, f->line, sizeof f->line);
}

/* ---- the three shapes --------------------------------------------------------------- */

static json_t *slack_field(const char *title, const char *value)
{
    char esc[1900], text[2000];
    slack_escape(or_dash(value), esc, sizeof esc);
    snprintf(text, sizeof text, "*%s*\n%s", title, esc);
    return json_pack("{s:s,s:s}", "type", "mrkdwn", "text", text);
}

static json_t *slack_message(const char *id, const alert_facts *f)
{
    char text[3100], header[160], what[600], reason[2950], ack[1000];
    slack_escape(f->line, text, sizeof text);
    char hdr[400];
    snprintf(hdr, sizeof hdr, "%s alert: %s", or_dash(f->severity), or_dash(f->rule_name));
    one_line(hdr, header, 150);
    snprintf(what, sizeof what, "%s %s", or_dash(f->provider), or_dash(f->action));
    slack_escape(or_dash(f->reason), reason, sizeof reason);
    snprintf(ack, sizeof ack,
             "Acknowledge (set NEWTERMSD_URL and NEWTERMSD_TOKEN first):\n```curl -sS -X PATCH "
             "\"$NEWTERMSD_URL/api/v1/alerts/%s\" -H \"Authorization: Bearer $NEWTERMSD_TOKEN\" "
             "-H 'Content-Type: application/json' -d '{\"status\":\"acknowledged\"}'```",
             id);
    json_t *fields = json_pack("[o,o,o,o,o,o,o,o]", slack_field("Rule", f->rule_name),
                               slack_field("Severity", f->severity), slack_field("User", f->user),
                               slack_field("Action", what), slack_field("Account", f->account),
                               slack_field("Source IP", f->ip), slack_field("Created", f->created),
                               slack_field("Alert id", id));
    return json_pack("{s:s,s:[{s:s,s:{s:s,s:s}},{s:s,s:o*},{s:s,s:{s:s,s:s}},{s:s,s:{s:s,s:s}}]}",
                     "text", text, "blocks", "type", "header", "text", "type", "plain_text", "text",
                     header, "type", "section", "fields", fields, "type", "section", "text", "type",
                     "mrkdwn", "text", reason, "type", "section", "text", "type", "mrkdwn", "text",
                     ack);
}

static json_t *pagerduty_event(const output *o, notify_event ev, const char *id,
                               const json_t *alert, const alert_facts *f)
{
    if (ev == NOTIFY_RESOLVE)
        return json_pack("{s:s,s:s,s:s}", "routing_key", o->secret ? o->secret : "", "event_action",
                         "resolve", "dedup_key", id);
    json_t *details =
        json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:O*,s:O*}", "alert_id", id, "rule_id",
                  f->rule_id, "rule_name", f->rule_name, "severity", f->severity, "user", f->user,
                  "action", f->action, "provider", f->provider, "account", f->account, "source_ip",
                  f->ip, "new_terms_fields", json_object_get(alert, "new_terms_fields"),
                  "new_terms", json_object_get(alert, "new_terms"));
    if (details) json_object_set_new(details, "reason", json_string(f->reason));
    return json_pack("{s:s,s:s,s:s,s:s,s:{s:s,s:s,s:s,s:s*,s:s,s:s,s:o*}}", "routing_key",
                     o->secret ? o->secret : "", "event_action", "trigger", "dedup_key", id,
                     "client", "newtermsd", "payload", "summary", f->line, "source",
                     f->account[0] ? f->account : "newtermsd", "severity",
                     notify_pagerduty_severity(f->severity), "timestamp",
                     f->created[0] ? f->created : NULL, "component", or_dash(f->provider), "class",
                     "new_terms", "custom_details", details);
}

static int add_header(notify_msg *m, const char *name, const char *value)
{
    if (m->n_headers >= NOTIFY_MAX_HEADERS) return -1;
    char *h = NULL;
    if (asprintf(&h, "%s: %s", name, value) < 0) return -1;
    m->headers[m->n_headers++] = h;
    return 0;
}

nt_status notify_build(const output *o, notify_event ev, const char *alert_id, const json_t *alert,
                       notify_msg *out, nt_err *err)
{
    memset(out, 0, sizeof *out);
    if (!notify_applies(o->type, ev))
        return nt_fail(err, NT_ERR_INVALID, "%s outputs do not send resolve events",
                       output_type_name(o->type));
    if (!alert_id || !*alert_id) return nt_fail(err, NT_ERR_INVALID, "the alert has no id");
    if (ev == NOTIFY_TRIGGER && !json_is_object(alert))
        return nt_fail(err, NT_ERR_INVALID, "alert %s has no document", alert_id);
    alert_facts *f = calloc(1, sizeof *f);
    if (!f) return nt_fail(err, NT_ERR_NOMEM, "out of memory");
    if (alert) facts_of(alert, f);

    json_t *doc = NULL;
    char *body = NULL;
    if (o->type == OUTPUT_WEBHOOK)
        body = json_dumps(alert, JSON_COMPACT);
    else if ((doc = o->type == OUTPUT_SLACK ? slack_message(alert_id, f)
                                            : pagerduty_event(o, ev, alert_id, alert, f)))
        body = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    free(f);
    if (!body)
        return nt_fail(err, NT_ERR_NOMEM, "out of memory building the %s payload",
                       output_type_name(o->type));
    out->body = body;
    out->len = strlen(body);
    int bad = add_header(out, "Content-Type", "application/json");
    bad |= add_header(out, "User-Agent", "newtermsd/" NT_VERSION);
    bad |= add_header(out, "X-Newtermsd-Delivery", alert_id);
    if (o->type == OUTPUT_WEBHOOK && o->secret) {
        char sig[72];
        notify_signature(o->secret, strlen(o->secret), out->body, out->len, sig);
        bad |= add_header(out, "X-Newtermsd-Signature-256", sig);
    }
    if (bad) {
        notify_msg_clear(out);
        return nt_fail(err, NT_ERR_NOMEM, "out of memory");
    }
    return NT_OK;
}

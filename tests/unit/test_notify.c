/* Unit tests for notify.c: the three payload shapes built from a real alert
 * document (tests/data/outputs/alert.json, as GET /api/v1/alerts/{id} returned
 * it), headers and signatures, escaping and cutting of hostile text. */
#include "notify.h"
#include "testutil.h"

#include "sha256.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

static json_t *alert_doc(void)
{
    json_error_t e;
    json_t *d = json_load_file(NT_TEST_DATA "/outputs/alert.json", 0, &e);
    ck_assert_msg(d != NULL, "alert.json: %s", e.text);
    return d;
}

static const char *header(const notify_msg *m, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < m->n_headers; i++)
        if (strncmp(m->headers[i], name, n) == 0 && m->headers[i][n] == ':')
            return m->headers[i] + n + 2;
    return NULL;
}

static json_t *body_json(const notify_msg *m)
{
    json_t *j = json_loadb(m->body, m->len, 0, NULL);
    ck_assert_ptr_nonnull(j);
    return j;
}

static const char *str_at(json_t *j, const char *path)
{
    char buf[128];
    snprintf(buf, sizeof buf, "%s", path);
    json_t *cur = j;
    for (char *tok = strtok(buf, "."); tok && cur; tok = strtok(NULL, "."))
        cur = json_object_get(cur, tok);
    return json_string_value(cur);
}

START_TEST(webhook_body_is_the_document_and_is_signed)
{
    json_t *doc = alert_doc();
    char secret[] = "k3y";
    output o = {
        .name = "hook", .type = OUTPUT_WEBHOOK, .url = "https://x.example/h", .secret = secret};
    notify_msg m;
    nt_err err;
    const char *id = json_string_value(json_object_get(doc, "id"));
    ck_assert_int_eq(notify_build(&o, NOTIFY_TRIGGER, id, doc, &m, &err), NT_OK);
    char *want = json_dumps(doc, JSON_COMPACT);
    ck_assert_str_eq(m.body, want);
    free(want);
    ck_assert_str_eq(header(&m, "Content-Type"), "application/json");
    ck_assert_str_eq(header(&m, "User-Agent"), "newtermsd/" NT_VERSION);
    ck_assert_str_eq(header(&m, "X-Newtermsd-Delivery"), id);
    unsigned char mac[32];
    char hex[65], sig[80];
    hmac_sha256("k3y", 3, m.body, m.len, mac);
    sha256_hex(mac, 32, hex);
    snprintf(sig, sizeof sig, "sha256=%s", hex);
    ck_assert_str_eq(header(&m, "X-Newtermsd-Signature-256"), sig);
    notify_msg_clear(&m);

    o.secret = NULL;
    ck_assert_int_eq(notify_build(&o, NOTIFY_TRIGGER, id, doc, &m, &err), NT_OK);
    ck_assert_ptr_null(header(&m, "X-Newtermsd-Signature-256"));
    notify_msg_clear(&m);
    ck_assert_int_eq(notify_build(&o, NOTIFY_RESOLVE, id, doc, &m, &err), NT_ERR_INVALID);
    json_decref(doc);
}
END_TEST

START_TEST(signature_matches_a_known_value)
{
    char sig[72];
    notify_signature("k3y", 3, "{\"id\":\"a1\"}", 11, sig);
    ck_assert_str_eq(sig,
                     "sha256=fe6096656834548edfc8bc1b4ed419923f8d4422689d58f6f7af4025bd85ac9f");
}
END_TEST

START_TEST(slack_message_is_one_line_text_plus_blocks_escaped_and_link_free)
{
    json_t *doc = alert_doc();
    output o = {.name = "chat", .type = OUTPUT_SLACK, .url = "https://hooks.slack.com/x"};
    notify_msg m;
    nt_err err;
    const char *id = json_string_value(json_object_get(doc, "id"));
    ck_assert_int_eq(notify_build(&o, NOTIFY_TRIGGER, id, doc, &m, &err), NT_OK);
    json_t *j = body_json(&m);
    const char *text = str_at(j, "text");
    ck_assert_str_eq(text, "[low] AWS Account Discovery By Rare User: alice&lt;script&gt;&amp;co "
                           "called organizations.amazonaws.com ListAccounts in account "
                           "111122223333");
    ck_assert_ptr_null(strchr(text, '\n'));
    json_t *blocks = json_object_get(j, "blocks");
    ck_assert_uint_eq(json_array_size(blocks), 4);
    ck_assert_str_eq(str_at(json_array_get(blocks, 0), "type"), "header");
    char *flat = json_dumps(blocks, 0);
    ck_assert_ptr_nonnull(strstr(flat, "curl -sS -X PATCH"));
    ck_assert_ptr_nonnull(strstr(flat, id));
    ck_assert_ptr_null(strstr(flat, "http://"));
    ck_assert_ptr_null(strstr(flat, "https://"));
    ck_assert_ptr_null(strstr(flat, "<script>")); /* escaped everywhere in mrkdwn */
    free(flat);
    json_decref(j);
    notify_msg_clear(&m);
    ck_assert_int_eq(notify_build(&o, NOTIFY_RESOLVE, id, doc, &m, &err), NT_ERR_INVALID);
    json_decref(doc);
}
END_TEST

START_TEST(pagerduty_trigger_and_resolve_follow_events_api_v2)
{
    json_t *doc = alert_doc();
    char key[] = "R0UT1NG";
    output o = {
        .name = "pd", .type = OUTPUT_PAGERDUTY, .url = OUTPUTS_PAGERDUTY_URL, .secret = key};
    notify_msg m;
    nt_err err;
    const char *id = json_string_value(json_object_get(doc, "id"));
    ck_assert_int_eq(notify_build(&o, NOTIFY_TRIGGER, id, doc, &m, &err), NT_OK);
    json_t *j = body_json(&m);
    ck_assert_str_eq(str_at(j, "routing_key"), "R0UT1NG");
    ck_assert_str_eq(str_at(j, "event_action"), "trigger");
    ck_assert_str_eq(str_at(j, "dedup_key"), id);
    ck_assert_str_eq(str_at(j, "payload.severity"), "info");
    ck_assert_str_eq(str_at(j, "payload.source"), "111122223333");
    ck_assert_str_eq(str_at(j, "payload.component"), "organizations.amazonaws.com");
    ck_assert_str_eq(str_at(j, "payload.timestamp"), str_at(doc, "created_at"));
    ck_assert_str_eq(str_at(j, "payload.custom_details.alert_id"), id);
    ck_assert_str_eq(str_at(j, "payload.custom_details.user"), "alice<script>&co");
    ck_assert_uint_le(strlen(str_at(j, "payload.summary")), 1024);
    json_decref(j);
    notify_msg_clear(&m);

    ck_assert_int_eq(notify_build(&o, NOTIFY_RESOLVE, id, NULL, &m, &err), NT_OK);
    j = body_json(&m);
    ck_assert_uint_eq(json_object_size(j), 3);
    ck_assert_str_eq(str_at(j, "event_action"), "resolve");
    ck_assert_str_eq(str_at(j, "dedup_key"), id);
    json_decref(j);
    notify_msg_clear(&m);
    json_decref(doc);
}
END_TEST

START_TEST(severities_map_to_pagerduty_levels)
{
    ck_assert_str_eq(notify_pagerduty_severity("critical"), "critical");
    ck_assert_str_eq(notify_pagerduty_severity("high"), "error");
    ck_assert_str_eq(notify_pagerduty_severity("medium"), "warning");
    ck_assert_str_eq(notify_pagerduty_severity("low"), "info");
    ck_assert_str_eq(notify_pagerduty_severity(NULL), "info");
}
END_TEST

START_TEST(huge_multibyte_names_are_cut_on_character_boundaries)
{
    json_t *doc = alert_doc();
    size_t n = 6000;
    char *big = malloc(2 * n + 1);
    for (size_t i = 0; i < n; i++)
        memcpy(big + 2 * i, "\xc3\xa9", 2); /* é */
    big[2 * n] = '\0';
    json_object_set_new(json_object_get(doc, "fields"), "user.name", json_string(big));
    json_object_set_new(doc, "reason", json_string(big));
    free(big);
    const char *id = json_string_value(json_object_get(doc, "id"));
    nt_err err;
    notify_msg m;
    output pd = {.name = "pd", .type = OUTPUT_PAGERDUTY, .url = OUTPUTS_PAGERDUTY_URL};
    ck_assert_int_eq(notify_build(&pd, NOTIFY_TRIGGER, id, doc, &m, &err), NT_OK);
    json_t *j = body_json(&m); /* jansson refuses invalid UTF-8, so this also checks the cut */
    ck_assert_uint_le(strlen(str_at(j, "payload.summary")), 1024);
    json_decref(j);
    notify_msg_clear(&m);
    output sl = {.name = "chat", .type = OUTPUT_SLACK, .url = "https://hooks.slack.com/x"};
    ck_assert_int_eq(notify_build(&sl, NOTIFY_TRIGGER, id, doc, &m, &err), NT_OK);
    j = body_json(&m);
    json_t *blocks = json_object_get(j, "blocks");
    ck_assert_uint_le(strlen(str_at(json_array_get(blocks, 2), "text.text")), 3000);
    json_t *fields = json_object_get(json_array_get(blocks, 1), "fields");
    for (size_t i = 0; i < json_array_size(fields); i++)
        ck_assert_uint_le(strlen(str_at(json_array_get(fields, i), "text")), 2000);
    json_decref(j);
    notify_msg_clear(&m);
    json_decref(doc);
}
END_TEST

static Suite *notify_suite(void)
{
    Suite *s = suite_create("notify");
    TCase *tc = tcase_create("notify");
    tcase_add_test(tc, webhook_body_is_the_document_and_is_signed);
    tcase_add_test(tc, signature_matches_a_known_value);
    tcase_add_test(tc, slack_message_is_one_line_text_plus_blocks_escaped_and_link_free);
    tcase_add_test(tc, pagerduty_trigger_and_resolve_follow_events_api_v2);
    tcase_add_test(tc, severities_map_to_pagerduty_levels);
    tcase_add_test(tc, huge_multibyte_names_are_cut_on_character_boundaries);
    suite_add_tcase(s, tc);
    return s;
}

NT_TEST_MAIN(notify_suite)

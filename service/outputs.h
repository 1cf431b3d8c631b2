/*
 * outputs.h — the `--outputs FILE` configuration: where alerts are sent.
 *
 * The file is TOML, one [[output]] table per destination:
 *
 *   [[output]]
 *   name = "soc-webhook"          # unique, [a-z0-9-]{1,64}
 *   type = "webhook"              # webhook | slack | pagerduty
 *   url = "https://hooks.example.com/newtermsd"   # http:// or https://;
 *                                 # pagerduty defaults to its Events API v2 endpoint
 *   secret_env = "SOC_HMAC_KEY"   # environment variable with the secret (or
 *                                 # SOC_HMAC_KEY_FILE=/path): the HMAC key of a
 *                                 # webhook (optional), the routing key of
 *                                 # pagerduty (required); slack takes none
 *   min_severity = "high"         # optional: low | medium | high | critical
 *   rules = ["rule-id", ...]      # optional: only these rule ids
 *
 * outputs_parse validates everything and reads the secrets; any problem is an
 * NT_ERR_INVALID (NT_ERR_PARSE for TOML syntax) whose message names the table
 * ("output 2 (\"pd\"): ...") and never contains a secret's value.
 *
 * Ownership: an `outputs` owns every string in it; outputs_free(NULL) is a
 * no-op. Secrets are wiped before their memory is freed.
 */
#ifndef NT_OUTPUTS_H
#define NT_OUTPUTS_H

#include "common.h"

#include <stddef.h>

#define OUTPUTS_MAX 64
#define OUTPUT_NAME_MAX 64
#define OUTPUTS_PAGERDUTY_URL "https://events.pagerduty.com/v2/enqueue"

typedef enum output_type { OUTPUT_WEBHOOK, OUTPUT_SLACK, OUTPUT_PAGERDUTY } output_type;

typedef struct output {
    char *name;
    output_type type;
    char *url;
    char *secret_env; /* the variable's name (NULL when none) — safe to show */
    char *secret;     /* its value (NULL when none) — never logged or shown */
    int min_severity; /* 0 = any, else output_severity_rank() of the minimum */
    char **rules;     /* NULL = every rule */
    size_t n_rules;
} output;

typedef struct outputs {
    output *items;
    size_t n;
} outputs;

/* Parses text[0..len). getenv_fn (NULL = getenv) reads secret_env and its
 * _FILE form. On NT_OK *out is owned by the caller (outputs_free). */
nt_status outputs_parse(const char *text, size_t len, const char *(*getenv_fn)(const char *name),
                        outputs **out, nt_err *err);

/* Reads and parses a file; messages start with "outputs file PATH: ". */
nt_status outputs_load(const char *path, const char *(*getenv_fn)(const char *name), outputs **out,
                       nt_err *err);

void outputs_free(outputs *o);

/* The output called name, or NULL. */
const output *outputs_find(const outputs *o, const char *name);

const char *output_type_name(output_type t); /* "webhook", "slack", "pagerduty" */

/* low 1, medium 2, high 3, critical 4; 0 for anything else. */
int output_severity_rank(const char *severity);

/* 1 when an alert of this rule and severity passes the output's filters. */
int output_wants(const output *o, const char *rule_id, const char *severity);

#endif

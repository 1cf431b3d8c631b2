// clang-format off
/*
 * config.h — command line and environment configuration of newtermsd.
 *
 *   newtermsd serve [options]
 *   newtermsd replay [options] FILE...
 *   newtermsd backfill [options] FILE...
 *   newtermsd check-rules [options] [DIR]
 *   newtermsd help | -h | --help
 *
 * Every option is a flag and an environment variable; the flag wins over the
 * variable, the variable over the default. Flags take `--flag value` or
 * `--flag=value` and may come before or after positional arguments; `--` ends
 * the options. An environment variable that is set but empty counts as unset
 * (secrets excepted: an empty secret is an error). The table is Markdown, one
 * row per line, so clang-format is switched off around this comment.
 *
 * | flag                  | environment                   | default                  | meaning |
 * |-----------------------|-------------------------------|--------------------------|---------|
 * | --listen HOST:PORT    | NEWTERMSD_LISTEN              | 0.0.0.0:8080             | address to listen on: IPv4, `localhost`, or `[IPv6]:port`; `:PORT` = all IPv4 interfaces; port 0..65535 (0 = any free port) |
 * | --redis URL           | NEWTERMSD_REDIS               | redis://127.0.0.1:6379/0 | `redis://[user@]host[:port][/db]`, `rediss://[user@]host[:port][/db]` (TLS) or `unix:///path/to/socket`; no password in the URL (a user name sends `AUTH user password`) |
 * | --rules DIR           | NEWTERMSD_RULES               | the shipped rules folder (NT_DEFAULT_RULES_DIR, else /etc/newtermsd/rules) | folder of TOML rules |
 * | --workers N           | NEWTERMSD_WORKERS             | online CPUs              | HTTP worker threads, 1..256 |
 * | --max-body SIZE       | NEWTERMSD_MAX_BODY            | 64MiB                    | largest request body (before gzip decoding) |
 * | --max-record SIZE     | NEWTERMSD_MAX_RECORD          | 1024000                  | largest decoded record |
 * | --max-inflate SIZE    | NEWTERMSD_MAX_INFLATE         | 256MiB                   | largest gzip output of one body or record |
 * | --redis-timeout-ms N  | NEWTERMSD_REDIS_TIMEOUT_MS    | 2000                     | Redis connect and command timeout, 1..600000 |
 * | --request-timeout-s N | NEWTERMSD_REQUEST_TIMEOUT_S   | 30                       | idle connection / request timeout, 1..3600 |
 * | --alert-retention D   | NEWTERMSD_ALERT_RETENTION     | 90d                      | how long alerts are kept (duration: 30s, 15m, 2h, 90d, 1w) |
 * | --alert-cap N         | NEWTERMSD_ALERT_CAP           | 1000000                  | most alerts kept, 1..1000000000 |
 * | --reject-cap N        | NEWTERMSD_REJECT_CAP          | 10000                    | most dead-lettered records kept, 0..10000000 |
 * | --learning-period D   | NEWTERMSD_LEARNING_PERIOD     | 0 (off)                  | after a rule first loads, only record history for this long (0 or a duration) |
 * | --metrics-auth        | NEWTERMSD_METRICS_AUTH=1      | off                      | /metrics needs a read or write token |
 * | --log-level L         | NEWTERMSD_LOG_LEVEL           | info                     | debug, info, warn or error |
 * | --connection-limit N  | NEWTERMSD_CONNECTION_LIMIT    | 1024                     | most concurrent HTTP connections, 1..1000000 |
 * | --strict-rules        | NEWTERMSD_STRICT_RULES=1      | off                      | refuse to start if any rule file fails to load |
 * | --exceptions-max N    | NEWTERMSD_EXCEPTIONS_MAX      | 1000                     | most exception items in total, 1..100000 (more: 409) |
 * | --exceptions-per-rule-max N | NEWTERMSD_EXCEPTIONS_PER_RULE_MAX | 100        | most items with one rule_id (items without one form one group), 1..100000 (more: 409) |
 * | --exception-max-bytes SIZE | NEWTERMSD_EXCEPTION_MAX_BYTES | 32KiB             | largest exception item, as stored (compact JSON), 256..1MiB (more: 413) |
 * | --exception-max-entries N | NEWTERMSD_EXCEPTION_MAX_ENTRIES | 32               | most entries in one item, 1..32 (more: 400) |
 * | --exception-max-values N | NEWTERMSD_EXCEPTION_MAX_VALUES | 1024               | most values in one match_any entry, 1..1024 (more: 400) |
 * | --redis-ca FILE       | NEWTERMSD_REDIS_CA_FILE       | the system CA store      | PEM CA bundle that verifies Redis' TLS certificate (rediss:// only) |
 * | --redis-cert FILE     | NEWTERMSD_REDIS_CERT_FILE     | none                     | PEM TLS client certificate for Redis (with --redis-key) |
 * | --redis-key FILE      | NEWTERMSD_REDIS_KEY_FILE      | none                     | PEM private key of the client certificate |
 * | --redis-tls-server-name NAME | NEWTERMSD_REDIS_TLS_SERVER_NAME | the URL's host | name verified in the certificate and sent as SNI (when connecting by IP) |
 * | --redis-tls-insecure  | NEWTERMSD_REDIS_TLS_INSECURE=1 | off                     | accept any Redis certificate: tests only, logged as a warning |
 * | --redis-wait-replicas N | NEWTERMSD_REDIS_WAIT_REPLICAS | 0 (off)                | after a delivery's writes, WAIT for N replicas; fewer within the timeout -> 503, 0..100 |
 * | --redis-wait-timeout-ms N | NEWTERMSD_REDIS_WAIT_TIMEOUT_MS | 1000             | WAIT's timeout, 1..600000 |
 * | --outputs FILE        | NEWTERMSD_OUTPUTS             | none                     | TOML file of [[output]] tables (webhook, slack, pagerduty) alerts are delivered to |
 * | --output-max-age D    | NEWTERMSD_OUTPUT_MAX_AGE      | 24h                      | how long a delivery is retried before it is dead-lettered |
 * | --output-timeout D    | NEWTERMSD_OUTPUT_TIMEOUT      | 10s                      | one delivery attempt, connect to response |
 * | --output-claim-idle D | NEWTERMSD_OUTPUT_CLAIM_IDLE   | 60s                      | a delivery another replica left pending this long is taken over (must exceed --output-timeout) |
 * | --geoip-db PATH       | NEWTERMSD_GEOIP_DB            | none                     | MaxMind DB file (GeoLite2-ASN/-City/-Country or compatible) for source.as.* and source.geo.*; the flag may be repeated, the variable takes comma-separated paths; at most CONFIG_MAX_GEOIP_DBS |
 * | (none: secret)        | NEWTERMSD_FIREHOSE_ACCESS_KEY | none                     | X-Amz-Firehose-Access-Key for /v1/firehose |
 * | (none: secret)        | NEWTERMSD_INGEST_TOKEN        | none                     | bearer/basic secret for /v1/eventbridge and /v1/events |
 * | (none: secret)        | NEWTERMSD_API_READ_TOKEN      | none                     | bearer token that may GET /api/v1/... (and /metrics with --metrics-auth) |
 * | (none: secret)        | NEWTERMSD_API_WRITE_TOKEN     | none                     | bearer token that may do everything in /api/v1/... |
 * | (none: secret)        | NEWTERMSD_REDIS_PASSWORD      | none                     | Redis AUTH password |
 *
 * SIZE: bytes, or a number with KiB, MiB or GiB (1048576, 512KiB, 64MiB).
 * Boolean variables accept 1/0, true/false, yes/no, on/off.
 * Secrets come only from the environment or from files, never from flags: each
 * secret variable X may instead be given as X_FILE=/path (the file is read and
 * one trailing newline, LF or CRLF, is stripped); setting both X and X_FILE is
 * an error. The four token variables take several comma-separated values for
 * rotation (spaces around commas are trimmed; empty values and control
 * characters are refused; at most CONFIG_MAX_SECRETS values). The Redis
 * password is one value, used as is.
 *
 * Positional arguments: `serve` takes none, `replay` and `backfill` at least
 * one FILE, `check-rules` at most one DIR.
 */
// clang-format on
#ifndef NT_CONFIG_H
#define NT_CONFIG_H

#include "common.h"
#include "log.h"
#include "netio.h"

#include <stdio.h>

#define CONFIG_MAX_SECRETS 64
#define CONFIG_MAX_GEOIP_DBS 8

typedef struct config_path_list {
    char **items; /* owned */
    size_t n;
} config_path_list;

typedef struct config_secret_list {
    char **items; /* owned */
    size_t n;
} config_secret_list;

typedef struct config {
    char *command;     /* "serve", "replay", "backfill", "check-rules"; NULL with help or when no
                          command was given */
    char *listen_host; /* without brackets for IPv6 */
    int listen_port;
    char *redis_url;
    char *redis_password; /* NULL if unset */
    char *rules_dir;
    int workers;
    size_t max_body;
    size_t max_record;
    size_t max_inflate;
    int redis_timeout_ms;
    int request_timeout_s;
    nt_time_ms alert_retention_ms;
    size_t alert_cap;
    size_t reject_cap;
    nt_time_ms learning_ms; /* 0 = off */
    int metrics_auth;
    log_level log_level;
    unsigned connection_limit;
    int require_all_rules;
    int drain_timeout_s; /* SIGTERM: longest wait for in-flight requests */
    size_t exceptions_max, exceptions_per_rule_max, exception_max_bytes, exception_max_entries,
        exception_max_values;
    netio_tls_config redis_tls; /* rediss:// options; strings owned */
    int redis_wait_replicas;    /* 0 = off */
    int redis_wait_timeout_ms;
    int busy_poll_us;                /* --busy-poll-us: spin window after a request; 0 = off */
    size_t term_cache;               /* known-term cache entries per concurrent delivery; 0 = off */
    char *outputs_file;              /* NULL = no outputs */
    nt_time_ms output_max_age_ms;    /* 24h */
    nt_time_ms output_timeout_ms;    /* 10s */
    nt_time_ms output_claim_idle_ms; /* 60s */
    config_path_list geoip_dbs;      /* --geoip-db, in the order given */
    config_secret_list firehose_keys, ingest_tokens, read_tokens, write_tokens;
    int help;    /* -h, --help or `help` anywhere: print config_usage() and exit 0 */
    char **args; /* positional arguments after the command; owned */
    size_t n_args;
} config;

/* Fill *c from argv (argv[0] the program, argv[1] the command) and the
 * environment, read through getenv_fn (NULL = getenv). Every string in *c is
 * owned by it; release with config_free(). On failure *c holds nothing that
 * needs freeing (config_free is still safe) and err says what is wrong,
 * naming the flag or variable. With -h/--help/`help`, returns NT_OK with
 * help = 1 and command = NULL, without looking at anything else. With no
 * arguments at all, returns NT_OK with command = NULL and help = 0. */
nt_status config_parse(config *c, int argc, char **argv, const char *(*getenv_fn)(const char *name),
                       nt_err *err);

/* Free every string and list in *c and set those pointers to NULL (scalar
 * fields such as help are left as they are). NULL-safe. */
void config_free(config *c);

/* The usage text with every option, for --help. */
void config_usage(FILE *f);

/* Every option and secret as one Markdown table (flag, environment variable,
 * default, meaning), from the same tables config_parse reads: what
 * `newtermsd config-table` prints and scripts/gen-config-table.sh puts in
 * README.md. The --rules default is shown relative to the install prefix, so
 * the table does not depend on where the binary was configured to go. */
void config_markdown(FILE *f);

/* 1 if (s, len) equals any item of l. Compares against every item in time
 * that depends only on the lengths, never stopping at the first match. 0 for
 * an empty or NULL list. */
int config_secret_match(const config_secret_list *l, const char *s, size_t len);

/* log_add_secret() for every token, key and the Redis password. */
void config_register_secrets(const config *c);

/* The store settings of a parsed configuration (store.h's store_config): the
 * one place they are built, so the option table in config.c is the one owner
 * of their defaults (store_open has none). The strings are borrowed from c. */
struct store_config;
void config_store(const config *c, struct store_config *out);

#endif

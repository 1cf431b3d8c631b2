/*
 * config.c — parse newtermsd's command line and environment (see config.h).
 *
 * Options are one table (opt_table): flag, environment variable, kind, range,
 * default text and help line, plus where the value lands in struct config
 * (offsetof). Parsing runs in three passes so precedence falls out naturally:
 *
 *   1. argv: find help, the command, positional arguments, and the last value
 *      given to each flag (nothing is interpreted yet);
 *   2. per option, take the flag value, else the environment value, else the
 *      default text, and parse it with the kind's parser — defaults go through
 *      the same parsers as user input, so the table cannot hold a value the
 *      parser would refuse without a test noticing;
 *   3. secrets, from the environment or from …_FILE files only.
 *
 * Every error names its source ("--workers: …", "NEWTERMSD_WORKERS: …") and
 * the offending text, except for secrets, whose content never appears in a
 * message. On error everything allocated so far is released in one place.
 */
#include "config.h"

#include "store.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#ifdef NT_DEFAULT_RULES_DIR
#define CONFIG_RULES_DEFAULT NT_DEFAULT_RULES_DIR
#else
#define CONFIG_RULES_DEFAULT "/etc/newtermsd/rules"
#endif

#define CONFIG_SECRET_FILE_MAX 65536
#define CONFIG_SECRET_ITEM_MAX 4096
#define CONFIG_SIZE_MAX (16ULL << 30)
#define SHOW 64 /* at most this many bytes of a bad value are quoted in an error */

typedef enum {
    K_LISTEN,   /* listen_host + listen_port */
    K_REDIS,    /* char *, a redis:// or unix:// URL */
    K_PATH,     /* char * */
    K_INT,      /* int in [min, max] */
    K_UINT,     /* unsigned in [min, max] */
    K_COUNT,    /* size_t in [min, max] */
    K_SIZE,     /* size_t bytes with optional unit, in [min, max] */
    K_DURATION, /* nt_time_ms, > 0 */
    K_PERIOD,   /* nt_time_ms, "0" or a duration */
    K_BOOL,     /* int 0/1; the flag takes no value */
    K_LOGLEVEL, /* log_level */
    K_PATHS,    /* config_path_list: the flag may repeat, the variable is comma-separated */
} opt_kind;

typedef struct opt_def {
    const char *flag; /* without the leading "--" */
    const char *env;
    opt_kind kind;
    size_t offset;
    long long min, max;
    const char *def; /* default text; NULL = computed (workers) */
    const char *arg; /* metavariable in usage */
    const char *help;
} opt_def;

#define OFF(f) offsetof(config, f)

static const opt_def opt_table[] = {
    {"listen", "NEWTERMSD_LISTEN", K_LISTEN, 0, 0, 0, "0.0.0.0:8080", "HOST:PORT",
     "address to listen on ([IPv6]:PORT ok)"},
    {"redis", "NEWTERMSD_REDIS", K_REDIS, OFF(redis_url), 0, 0, "redis://127.0.0.1:6379/0", "URL",
     "redis[s]://[user@]host[:port][/db] or unix:///path"},
    {"rules", "NEWTERMSD_RULES", K_PATH, OFF(rules_dir), 0, 0, CONFIG_RULES_DEFAULT, "DIR",
     "folder of TOML rules"},
    {"workers", "NEWTERMSD_WORKERS", K_INT, OFF(workers), 1, 256, NULL, "N",
     "HTTP worker threads, 1..256 (default: online CPUs)"},
    {"max-body", "NEWTERMSD_MAX_BODY", K_SIZE, OFF(max_body), 1, CONFIG_SIZE_MAX, "64MiB", "SIZE",
     "largest request body"},
    {"max-record", "NEWTERMSD_MAX_RECORD", K_SIZE, OFF(max_record), 1, CONFIG_SIZE_MAX, "1024000",
     "SIZE", "largest decoded record"},
    {"max-inflate", "NEWTERMSD_MAX_INFLATE", K_SIZE, OFF(max_inflate), 1, CONFIG_SIZE_MAX, "256MiB",
     "SIZE", "gzip output one request may produce: body and Firehose records together"},
    {"redis-timeout-ms", "NEWTERMSD_REDIS_TIMEOUT_MS", K_INT, OFF(redis_timeout_ms), 1, 600000,
     "2000", "N", "Redis connect and command timeout"},
    {"request-timeout-s", "NEWTERMSD_REQUEST_TIMEOUT_S", K_INT, OFF(request_timeout_s), 1, 3600,
     "30", "N", "HTTP request / idle connection timeout"},
    {"alert-retention", "NEWTERMSD_ALERT_RETENTION", K_DURATION, OFF(alert_retention_ms), 0, 0,
     "90d", "DURATION", "how long alerts are kept"},
    {"alert-cap", "NEWTERMSD_ALERT_CAP", K_COUNT, OFF(alert_cap), 1, 1000000000, "1000000", "N",
     "most alerts kept"},
    {"reject-cap", "NEWTERMSD_REJECT_CAP", K_COUNT, OFF(reject_cap), 0, 10000000, "10000", "N",
     "most dead-lettered records kept"},
    {"learning-period", "NEWTERMSD_LEARNING_PERIOD", K_PERIOD, OFF(learning_ms), 0, 0, "0",
     "DURATION", "only learn history this long after a rule first loads (0 = off)"},
    {"metrics-auth", "NEWTERMSD_METRICS_AUTH", K_BOOL, OFF(metrics_auth), 0, 0, "0", NULL,
     "/metrics needs a read or write token"},
    {"log-level", "NEWTERMSD_LOG_LEVEL", K_LOGLEVEL, OFF(log_level), 0, 0, "info", "LEVEL",
     "debug, info, warn or error"},
    {"connection-limit", "NEWTERMSD_CONNECTION_LIMIT", K_UINT, OFF(connection_limit), 1, 1000000,
     "1024", "N", "most concurrent HTTP connections"},
    {"strict-rules", "NEWTERMSD_STRICT_RULES", K_BOOL, OFF(require_all_rules), 0, 0, "0", NULL,
     "refuse to start if any rule file fails to load"},
    {"drain-timeout-s", "NEWTERMSD_DRAIN_TIMEOUT_S", K_INT, OFF(drain_timeout_s), 1, 3600, "20",
     "N", "SIGTERM: longest wait for in-flight requests before exiting"},
    /* Exception limits, enforced when an item is written through the API (see api/LIMITS.md). */
    {"exceptions-max", "NEWTERMSD_EXCEPTIONS_MAX", K_COUNT, OFF(exceptions_max), 1, 100000, "1000",
     "N", "most exception items in total"},
    {"exceptions-per-rule-max", "NEWTERMSD_EXCEPTIONS_PER_RULE_MAX", K_COUNT,
     OFF(exceptions_per_rule_max), 1, 100000, "100", "N", "most exception items per rule_id"},
    {"exception-max-bytes", "NEWTERMSD_EXCEPTION_MAX_BYTES", K_SIZE, OFF(exception_max_bytes), 256,
     1 << 20, "32KiB", "SIZE", "largest exception item (compact JSON)"},
    {"exception-max-entries", "NEWTERMSD_EXCEPTION_MAX_ENTRIES", K_COUNT,
     OFF(exception_max_entries), 1, 32, "32", "N", "most entries in one exception item"},
    {"exception-max-values", "NEWTERMSD_EXCEPTION_MAX_VALUES", K_COUNT, OFF(exception_max_values),
     1, 1024, "1024", "N", "most values in one match_any entry"},
    /* Managed Redis: TLS (rediss:// only) and acknowledgement by replicas. */
    {"redis-ca", "NEWTERMSD_REDIS_CA_FILE", K_PATH, OFF(redis_tls.ca_file), 0, 0, NULL, "FILE",
     "PEM CA bundle to verify Redis' TLS certificate (default: the system store)"},
    {"redis-cert", "NEWTERMSD_REDIS_CERT_FILE", K_PATH, OFF(redis_tls.cert_file), 0, 0, NULL,
     "FILE", "PEM TLS client certificate for Redis (needs the key too)"},
    {"redis-key", "NEWTERMSD_REDIS_KEY_FILE", K_PATH, OFF(redis_tls.key_file), 0, 0, NULL, "FILE",
     "PEM private key of the TLS client certificate"},
    {"redis-tls-server-name", "NEWTERMSD_REDIS_TLS_SERVER_NAME", K_PATH, OFF(redis_tls.server_name),
     0, 0, NULL, "NAME",
     "name to verify in Redis' certificate and send as SNI (default: the URL's host)"},
    {"redis-tls-insecure", "NEWTERMSD_REDIS_TLS_INSECURE", K_BOOL, OFF(redis_tls.insecure), 0, 0,
     "0", NULL, "do not verify Redis' TLS certificate (tests only; logged as a warning)"},
    {"redis-wait-replicas", "NEWTERMSD_REDIS_WAIT_REPLICAS", K_INT, OFF(redis_wait_replicas), 0,
     100, "0", "N", "answer a delivery only after N replicas have its writes (WAIT; 0 = off)"},
    {"redis-wait-timeout-ms", "NEWTERMSD_REDIS_WAIT_TIMEOUT_MS", K_INT, OFF(redis_wait_timeout_ms),
     1, 600000, "1000", "N", "how long WAIT waits for the replicas before the delivery gets 503"},
    {"busy-poll-us", "NEWTERMSD_BUSY_POLL_US", K_INT, OFF(busy_poll_us), 0, 1000000, "0", "N",
     "keep the HTTP thread's CPU busy this long after each request, so a VM's idle vCPU does not "
     "halt between deliveries (costs that CPU; 0 = off)"},
    {"term-cache", "NEWTERMSD_TERM_CACHE", K_COUNT, OFF(term_cache), 0, 100000000, "65536", "N",
     "new_terms terms remembered as known per worker, so their sightings skip the alert document "
     "(0 = off)"},
    /* outputs (deliver.c) */
    {"outputs", "NEWTERMSD_OUTPUTS", K_PATH, OFF(outputs_file), 0, 0, NULL, "FILE",
     "TOML file of [[output]] tables: webhook, slack, pagerduty (default: none)"},
    {"output-max-age", "NEWTERMSD_OUTPUT_MAX_AGE", K_DURATION, OFF(output_max_age_ms), 0, 0, "24h",
     "DURATION", "retry a delivery this long before dead-lettering it"},
    {"output-timeout", "NEWTERMSD_OUTPUT_TIMEOUT", K_DURATION, OFF(output_timeout_ms), 0, 0, "10s",
     "DURATION", "one delivery attempt (connect + response)"},
    {"output-claim-idle", "NEWTERMSD_OUTPUT_CLAIM_IDLE", K_DURATION, OFF(output_claim_idle_ms), 0,
     0, "60s", "DURATION", "take over deliveries another replica left pending this long"},
    {"geoip-db", "NEWTERMSD_GEOIP_DB", K_PATHS, OFF(geoip_dbs), 0, 0, NULL, "PATH",
     "MaxMind DB for source.as.*/source.geo.* (repeatable; env: comma-separated)"},
};
#define N_OPTS (sizeof opt_table / sizeof opt_table[0])

typedef struct secret_def {
    const char *env;
    const char *flag; /* the flag people might try, refused */
    size_t offset;    /* of a config_secret_list, or of redis_password */
    int is_list;
    const char *help;
} secret_def;

static const secret_def secret_table[] = {
    {"NEWTERMSD_FIREHOSE_ACCESS_KEY", "firehose-access-key", OFF(firehose_keys), 1,
     "X-Amz-Firehose-Access-Key for /v1/firehose"},
    {"NEWTERMSD_INGEST_TOKEN", "ingest-token", OFF(ingest_tokens), 1,
     "secret for /v1/eventbridge and /v1/events (Bearer, or Basic password)"},
    {"NEWTERMSD_API_READ_TOKEN", "api-read-token", OFF(read_tokens), 1,
     "bearer token that may read /api/v1/*"},
    {"NEWTERMSD_API_WRITE_TOKEN", "api-write-token", OFF(write_tokens), 1,
     "bearer token that may read and change /api/v1/*"},
    {"NEWTERMSD_REDIS_PASSWORD", "redis-password", OFF(redis_password), 0, "Redis AUTH password"},
};
#define N_SECRETS (sizeof secret_table / sizeof secret_table[0])

static const char *const commands[] = {"serve", "replay", "backfill", "check-rules"};

/* ---- small parsers ------------------------------------------------------- */

static const char *default_getenv(const char *name)
{
    return getenv(name);
}

/* Decimal digits with an optional leading '-'; 0 on success. */
static int parse_ll(const char *s, long long *out)
{
    const char *p = s;
    int neg = 0;
    if (*p == '-') {
        neg = 1;
        p++;
    }
    if (!*p) return -1;
    unsigned long long v = 0;
    for (; *p; p++) {
        if (*p < '0' || *p > '9') return -1;
        if (v > (1ULL << 62) / 10) return -1;
        v = v * 10 + (unsigned)(*p - '0');
    }
    *out = neg ? -(long long)v : (long long)v;
    return 0;
}

static int parse_size(const char *s, unsigned long long *out)
{
    const char *p = s;
    unsigned long long v = 0;
    if (*p < '0' || *p > '9') return -1;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (v > (1ULL << 50)) return -1;
        v = v * 10 + (unsigned)(*p - '0');
    }
    unsigned shift = 0;
    if (!*p || strcasecmp(p, "b") == 0)
        shift = 0;
    else if (strcasecmp(p, "kib") == 0 || strcasecmp(p, "k") == 0)
        shift = 10;
    else if (strcasecmp(p, "mib") == 0 || strcasecmp(p, "m") == 0)
        shift = 20;
    else if (strcasecmp(p, "gib") == 0 || strcasecmp(p, "g") == 0)
        shift = 30;
    else
        return -1;
    if (shift && v > (1ULL << (62 - shift))) return -1;
    *out = v << shift;
    return 0;
}

static int parse_bool(const char *s, int *out)
{
    static const char *const yes[] = {"1", "true", "yes", "on"};
    static const char *const no[] = {"0", "false", "no", "off"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0) return *out = 1, 0;
        if (strcasecmp(s, no[i]) == 0) return *out = 0, 0;
    }
    return -1;
}

static int valid_port(const char *s, int *port)
{
    long long v;
    size_t n = strlen(s);
    if (n == 0 || n > 5 || s[0] == '-' || parse_ll(s, &v) != 0 || v > 65535) return 0;
    *port = (int)v;
    return 1;
}

static nt_status parse_listen(config *c, const char *src, const char *v, nt_err *err)
{
    char host[256];
    const char *port_text;
    if (v[0] == '[') {
        const char *close = strchr(v, ']');
        if (!close || close[1] != ':')
            return nt_fail(err, NT_ERR_INVALID, "%s: '%.*s' is not [IPv6]:PORT (e.g. [::1]:8080)",
                           src, SHOW, v);
        size_t hl = (size_t)(close - v - 1);
        if (hl == 0 || hl >= sizeof host)
            return nt_fail(err, NT_ERR_INVALID, "%s: '%.*s' has no valid IPv6 address", src, SHOW,
                           v);
        memcpy(host, v + 1, hl);
        host[hl] = 0;
        struct in6_addr a6;
        if (inet_pton(AF_INET6, host, &a6) != 1)
            return nt_fail(err, NT_ERR_INVALID, "%s: '%.*s' is not an IPv6 address", src, SHOW,
                           host);
        port_text = close + 2;
    } else {
        const char *colon = strrchr(v, ':');
        if (!colon)
            return nt_fail(err, NT_ERR_INVALID,
                           "%s: '%.*s' is not HOST:PORT (e.g. 0.0.0.0:8080 or [::1]:8080)", src,
                           SHOW, v);
        size_t hl = (size_t)(colon - v);
        if (memchr(v, ':', hl))
            return nt_fail(err, NT_ERR_INVALID,
                           "%s: '%.*s': an IPv6 address goes in brackets, e.g. [::1]:8080", src,
                           SHOW, v);
        if (hl >= sizeof host)
            return nt_fail(err, NT_ERR_INVALID, "%s: the host in '%.*s…' is too long", src, SHOW,
                           v);
        memcpy(host, v, hl);
        host[hl] = 0;
        if (hl == 0) snprintf(host, sizeof host, "%s", "0.0.0.0");
        struct in_addr a4;
        if (strcmp(host, "localhost") != 0 && inet_pton(AF_INET, host, &a4) != 1)
            return nt_fail(err, NT_ERR_INVALID,
                           "%s: host '%.*s' is not an IPv4 address, localhost or [IPv6]", src, SHOW,
                           host);
        port_text = colon + 1;
    }
    int port;
    if (!valid_port(port_text, &port))
        return nt_fail(err, NT_ERR_INVALID, "%s: port '%.*s' is not a number from 0 to 65535", src,
                       SHOW, port_text);
    char *h = strdup(host);
    if (!h) return nt_fail(err, NT_ERR_NOMEM, "out of memory");
    free(c->listen_host);
    c->listen_host = h;
    c->listen_port = port;
    return NT_OK;
}

/* The URL's shape: redis[s]://[user@]host[:port][/db] or unix:///path. A
 * password in the URL is refused (it would show in process listings and
 * manifests); redis_url_parse checks the rest again when the store opens. */
static nt_status check_redis_url(const char *src, const char *v, nt_err *err)
{
    if (strncmp(v, "unix://", 7) == 0) {
        if (strchr(v, '@'))
            return nt_fail(err, NT_ERR_INVALID,
                           "%s: the URL must not hold credentials; the password is read from "
                           "NEWTERMSD_REDIS_PASSWORD or NEWTERMSD_REDIS_PASSWORD_FILE",
                           src);
        if (v[7] != '/')
            return nt_fail(err, NT_ERR_INVALID,
                           "%s: '%.*s' needs an absolute socket path, e.g. unix:///run/redis.sock",
                           src, SHOW, v);
        return NT_OK;
    }
    const char *p;
    if (strncmp(v, "redis://", 8) == 0)
        p = v + 8;
    else if (strncmp(v, "rediss://", 9) == 0)
        p = v + 9;
    else
        goto bad;
    const char *at = NULL;
    for (const char *q = p; *q && *q != '/'; q++)
        if (*q == '@') at = q;
    if (at) {
        if (memchr(p, ':', (size_t)(at - p)))
            return nt_fail(err, NT_ERR_INVALID,
                           "%s: the URL must not hold a password (only a user name, "
                           "rediss://user@host); the password is read from "
                           "NEWTERMSD_REDIS_PASSWORD or NEWTERMSD_REDIS_PASSWORD_FILE",
                           src);
        for (const char *q = p; q < at; q++)
            if (!isalnum((unsigned char)*q) && !strchr("._-~%", *q)) goto bad;
        if (at == p) goto bad;
        p = at + 1;
    }
    if (*p == '[') {
        const char *close = strchr(p, ']');
        if (!close || close == p + 1) goto bad;
        p = close + 1;
    } else {
        const char *h = p;
        while (*p && *p != ':' && *p != '/') {
            if (!isalnum((unsigned char)*p) && *p != '.' && *p != '-' && *p != '_') goto bad;
            p++;
        }
        if (p == h) goto bad;
    }
    if (*p == ':') {
        p++;
        const char *d = p;
        while (*p >= '0' && *p <= '9')
            p++;
        long long port = 0;
        char tmp[8];
        size_t dl = (size_t)(p - d);
        if (dl == 0 || dl > 5) goto bad;
        memcpy(tmp, d, dl);
        tmp[dl] = 0;
        if (parse_ll(tmp, &port) != 0 || port < 1 || port > 65535) goto bad;
    }
    if (*p == '/') {
        p++;
        const char *d = p;
        while (*p >= '0' && *p <= '9')
            p++;
        if (p - d > 5) goto bad;
    }
    if (*p) goto bad;
    return NT_OK;
bad:
    return nt_fail(err, NT_ERR_INVALID,
                   "%s: '%.*s' is not redis://host[:port][/db] (or rediss:// for TLS, either "
                   "with an optional user@) or unix:///path",
                   src, SHOW, v);
}

/* Parse `v` (from `src`) for option `o` into c. */
/* Append v[0..len) (trimmed of whitespace) to a path list. */
static nt_status paths_add(config_path_list *l, const char *src, const char *v, size_t len,
                           nt_err *err)
{
    while (len > 0 && isspace((unsigned char)*v))
        v++, len--;
    while (len > 0 && isspace((unsigned char)v[len - 1]))
        len--;
    if (len == 0)
        return nt_fail(err, NT_ERR_INVALID, "%s: empty path (a doubled or trailing comma?)", src);
    if (l->n >= CONFIG_MAX_GEOIP_DBS)
        return nt_fail(err, NT_ERR_LIMIT, "%s: at most %d files", src, CONFIG_MAX_GEOIP_DBS);
    if (!l->items && !(l->items = calloc(CONFIG_MAX_GEOIP_DBS, sizeof *l->items)))
        return nt_fail(err, NT_ERR_NOMEM, "out of memory");
    if (!(l->items[l->n] = strndup(v, len))) return nt_fail(err, NT_ERR_NOMEM, "out of memory");
    l->n++;
    return NT_OK;
}

static void paths_free(config_path_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->items[i]);
    free(l->items);
    l->items = NULL;
    l->n = 0;
}

static nt_status apply_opt(config *c, const opt_def *o, const char *src, const char *v, nt_err *err)
{
    char *base = (char *)c;
    switch (o->kind) {
    case K_PATHS: { /* from the environment: comma-separated */
        config_path_list *l = (config_path_list *)(void *)(base + o->offset);
        for (;;) {
            const char *end = strchr(v, ',');
            size_t len = end ? (size_t)(end - v) : strlen(v);
            nt_status st = paths_add(l, src, v, len, err);
            if (st != NT_OK || !end) return st;
            v = end + 1;
        }
    }
    case K_LISTEN:
        return parse_listen(c, src, v, err);
    case K_REDIS: {
        nt_status st = check_redis_url(src, v, err);
        if (st != NT_OK) return st;
    }
        /* fall through */
    case K_PATH: {
        if (!*v) return nt_fail(err, NT_ERR_INVALID, "%s: must not be empty", src);
        char **slot = (char **)(void *)(base + o->offset);
        char *copy = strdup(v);
        if (!copy) return nt_fail(err, NT_ERR_NOMEM, "out of memory");
        free(*slot);
        *slot = copy;
        return NT_OK;
    }
    case K_INT:
    case K_UINT:
    case K_COUNT: {
        long long n;
        if (parse_ll(v, &n) != 0)
            return nt_fail(err, NT_ERR_INVALID, "%s: '%.*s' is not an integer", src, SHOW, v);
        if (n < o->min || n > o->max)
            return nt_fail(err, NT_ERR_INVALID, "%s: %lld is out of range (%lld..%lld)", src, n,
                           o->min, o->max);
        if (o->kind == K_INT)
            *(int *)(void *)(base + o->offset) = (int)n;
        else if (o->kind == K_UINT)
            *(unsigned *)(void *)(base + o->offset) = (unsigned)n;
        else
            *(size_t *)(void *)(base + o->offset) = (size_t)n;
        return NT_OK;
    }
    case K_SIZE: {
        unsigned long long n;
        if (parse_size(v, &n) != 0)
            return nt_fail(err, NT_ERR_INVALID,
                           "%s: '%.*s' is not a size (bytes, or a number followed by KiB, MiB or "
                           "GiB)",
                           src, SHOW, v);
        if (n < (unsigned long long)o->min || n > (unsigned long long)o->max)
            return nt_fail(err, NT_ERR_INVALID, "%s: %llu bytes is out of range (%lld..%lld)", src,
                           n, o->min, o->max);
        *(size_t *)(void *)(base + o->offset) = (size_t)n;
        return NT_OK;
    }
    case K_DURATION:
    case K_PERIOD: {
        nt_time_ms d = 0;
        if (o->kind == K_PERIOD && strcmp(v, "0") == 0) {
            d = 0;
        } else {
            nt_err sub;
            if (nt_duration_parse(v, strlen(v), &d, &sub) != NT_OK)
                return nt_fail(err, NT_ERR_INVALID, "%s: %s", src, sub.msg);
            if (o->kind == K_DURATION && d <= 0)
                return nt_fail(err, NT_ERR_INVALID, "%s: must be longer than 0", src);
        }
        *(nt_time_ms *)(void *)(base + o->offset) = d;
        return NT_OK;
    }
    case K_BOOL: {
        int b;
        if (parse_bool(v, &b) != 0)
            return nt_fail(err, NT_ERR_INVALID,
                           "%s: '%.*s' is not a boolean (1/0, true/false, yes/no, on/off)", src,
                           SHOW, v);
        *(int *)(void *)(base + o->offset) = b;
        return NT_OK;
    }
    case K_LOGLEVEL: {
        log_level l;
        nt_status st = log_level_parse(v, &l, err);
        if (st != NT_OK) return nt_err_prefix(err, st, "%s", src);
        *(log_level *)(void *)(base + o->offset) = l;
        return NT_OK;
    }
    }
    return nt_fail(err, NT_ERR_INVALID, "%s: unknown option kind", src);
}

/* ---- secrets --------------------------------------------------------------- */

static nt_status read_secret_file(const char *var, const char *path, char **out, nt_err *err)
{
    nt_status st = NT_OK;
    char *buf = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return nt_fail(err, NT_ERR_IO, "%s_FILE: cannot read '%.*s': %s", var, SHOW * 2, path,
                       strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || S_ISDIR(sb.st_mode)) {
        st = nt_fail(err, NT_ERR_IO, "%s_FILE: cannot read '%.*s': %s", var, SHOW * 2, path,
                     S_ISDIR(sb.st_mode) ? "it is a directory" : strerror(errno));
        goto done;
    }
    buf = malloc(CONFIG_SECRET_FILE_MAX + 1);
    if (!buf) {
        st = nt_fail(err, NT_ERR_NOMEM, "out of memory");
        goto done;
    }
    size_t len = 0;
    for (;;) {
        ssize_t r = read(fd, buf + len, CONFIG_SECRET_FILE_MAX + 1 - len);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            st = nt_fail(err, NT_ERR_IO, "%s_FILE: cannot read '%.*s': %s", var, SHOW * 2, path,
                         strerror(errno));
            goto done;
        }
        if (r == 0) break;
        len += (size_t)r;
        if (len > CONFIG_SECRET_FILE_MAX) {
            st = nt_fail(err, NT_ERR_LIMIT, "%s_FILE: '%.*s' is larger than %d bytes", var,
                         SHOW * 2, path, CONFIG_SECRET_FILE_MAX);
            goto done;
        }
    }
    if (memchr(buf, 0, len)) {
        st = nt_fail(err, NT_ERR_INVALID, "%s_FILE: '%.*s' contains a NUL byte", var, SHOW * 2,
                     path);
        goto done;
    }
    if (len && buf[len - 1] == '\n') {
        len--;
        if (len && buf[len - 1] == '\r') len--;
    }
    if (len == 0) {
        st = nt_fail(err, NT_ERR_INVALID, "%s_FILE: '%.*s' is empty", var, SHOW * 2, path);
        goto done;
    }
    buf[len] = 0;
    *out = buf;
    buf = NULL;
done:
    free(buf);
    close(fd);
    return st;
}

static void secret_list_free(config_secret_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        /* wipe: a freed secret should not linger in the heap */
        volatile char *p = l->items[i];
        while (*p)
            *p++ = 0;
        free(l->items[i]);
    }
    free(l->items);
    l->items = NULL;
    l->n = 0;
}

static void secret_string_free(char **s)
{
    if (!*s) return;
    volatile char *p = *s;
    while (*p)
        *p++ = 0;
    free(*s);
    *s = NULL;
}

/* Split `text` (from `src`) on commas into l. Items are trimmed of
 * whitespace; empty items, control characters and oversized items are
 * refused. Messages number the item instead of quoting it. */
static nt_status split_secret(config_secret_list *l, const char *src, const char *text, nt_err *err)
{
    size_t n_items = 1;
    for (const char *p = text; *p; p++)
        n_items += *p == ',';
    if (n_items > CONFIG_MAX_SECRETS)
        return nt_fail(err, NT_ERR_LIMIT, "%s: %zu values given, at most %d are allowed", src,
                       n_items, CONFIG_MAX_SECRETS);
    l->items = calloc(n_items, sizeof *l->items);
    if (!l->items) return nt_fail(err, NT_ERR_NOMEM, "out of memory");
    const char *p = text;
    for (size_t k = 0; k < n_items; k++) {
        const char *end = strchr(p, ',');
        if (!end) end = p + strlen(p);
        const char *a = p, *b = end;
        while (a < b && isspace((unsigned char)*a))
            a++;
        while (b > a && isspace((unsigned char)b[-1]))
            b--;
        if (a == b)
            return nt_fail(err, NT_ERR_INVALID,
                           "%s: value %zu of %zu is empty (a doubled, leading or trailing comma?)",
                           src, k + 1, n_items);
        if ((size_t)(b - a) > CONFIG_SECRET_ITEM_MAX)
            return nt_fail(err, NT_ERR_LIMIT, "%s: value %zu of %zu is longer than %d bytes", src,
                           k + 1, n_items, CONFIG_SECRET_ITEM_MAX);
        for (const char *q = a; q < b; q++)
            if ((unsigned char)*q < 0x20 || *q == 0x7f)
                return nt_fail(err, NT_ERR_INVALID,
                               "%s: value %zu of %zu contains a control character", src, k + 1,
                               n_items);
        char *item = strndup(a, (size_t)(b - a));
        if (!item) return nt_fail(err, NT_ERR_NOMEM, "out of memory");
        l->items[l->n++] = item;
        p = *end ? end + 1 : end;
    }
    return NT_OK;
}

static nt_status load_secret(config *c, const secret_def *d, const char *(*env)(const char *),
                             nt_err *err)
{
    char file_var[96];
    snprintf(file_var, sizeof file_var, "%s_FILE", d->env);
    const char *direct = env(d->env);
    const char *path = env(file_var);
    if (path && !*path) path = NULL;
    if (direct && path)
        return nt_fail(err, NT_ERR_INVALID, "%s and %s are both set; set only one", d->env,
                       file_var);
    if (!direct && !path) return NT_OK;
    char *text = NULL;
    const char *src = d->env;
    if (path) {
        nt_status st = read_secret_file(d->env, path, &text, err);
        if (st != NT_OK) return st;
        if (!text) return nt_fail(err, NT_ERR_IO, "%s: cannot read '%s'", file_var, path);
        src = file_var;
    } else {
        if (!*direct) return nt_fail(err, NT_ERR_INVALID, "%s is set but empty", d->env);
        text = strdup(direct);
        if (!text) return nt_fail(err, NT_ERR_NOMEM, "out of memory");
    }
    nt_status st = NT_OK;
    char *base = (char *)c;
    if (d->is_list) {
        st = split_secret((config_secret_list *)(void *)(base + d->offset), src, text, err);
        secret_string_free(&text);
    } else {
        *(char **)(void *)(base + d->offset) = text;
    }
    return st;
}

/* ---- argv -------------------------------------------------------------------- */

static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 40 || lb > 40) return 99;
    size_t row[41];
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t prev = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t cur = row[j];
            size_t best = prev + (a[i - 1] != b[j - 1]);
            if (row[j] + 1 < best) best = row[j] + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            prev = cur;
        }
    }
    return row[lb];
}

static nt_status unknown_flag(const char *name, size_t len, nt_err *err)
{
    char given[48];
    if (len >= sizeof given) len = sizeof given - 1;
    memcpy(given, name, len);
    given[len] = 0;
    const char *best = NULL;
    size_t best_d = 3;
    for (size_t i = 0; i < N_OPTS; i++) {
        size_t d = edit_distance(given, opt_table[i].flag);
        if (d < best_d) best_d = d, best = opt_table[i].flag;
    }
    if (best)
        return nt_fail(err, NT_ERR_INVALID, "unknown flag --%s (did you mean --%s?)", given, best);
    return nt_fail(err, NT_ERR_INVALID, "unknown flag --%s", given);
}

/* NT_ERR_INVALID naming the variable when name[0..nlen) (without the leading
 * dashes) is one of the secret flags people might try, or its -file form. */
static nt_status refuse_secret_flag(const char *name, size_t nlen, nt_err *err)
{
    for (size_t s = 0; s < N_SECRETS; s++) {
        const char *f = secret_table[s].flag;
        size_t fl = strlen(f);
        int plain = nlen == fl && strncmp(name, f, fl) == 0;
        int file =
            nlen == fl + 5 && strncmp(name, f, fl) == 0 && strncmp(name + fl, "-file", 5) == 0;
        if (plain || file)
            return nt_fail(err, NT_ERR_INVALID,
                           "--%.*s is refused: secrets are read from %s or %s_FILE, never from "
                           "flags",
                           (int)nlen, name, secret_table[s].env, secret_table[s].env);
    }
    return NT_OK;
}

static int is_help(const char *a)
{
    return strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0;
}

static int online_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1) n = 1;
    if (n > 256) n = 256;
    return (int)n;
}

/* What the command line said, option by option (index into opt_table):
 * the value and where it came from ("--flag"), NULL when not given. */
typedef struct flag_values {
    const char *val[N_OPTS];
    const char *src[N_OPTS];
    char srcbuf[N_OPTS][64];
} flag_values;

/* Help anywhere (c->help set, *cmd stays NULL), else the command word argv[1]. */
static nt_status parse_command(config *c, int argc, char **argv, const char **cmd, nt_err *err)
{
    nt_status st;
    *cmd = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) break;
        if (is_help(argv[i]) || (i == 1 && strcmp(argv[i], "help") == 0)) {
            c->help = 1;
            return NT_OK; /* *cmd stays NULL */
        }
    }
    if (argv[1][0] == '-') {
        /* Quote the flag's name only: its value may be a secret. */
        const char *name = argv[1] + strspn(argv[1], "-");
        size_t nlen = strcspn(name, "=");
        if ((st = refuse_secret_flag(name, nlen, err)) != NT_OK) return st;
        size_t shown = strcspn(argv[1], "=");
        return nt_fail(err, NT_ERR_INVALID,
                       "the command comes first: newtermsd serve|replay|backfill|check-rules "
                       "[options] (got '%.*s')",
                       (int)(shown < SHOW ? shown : SHOW), argv[1]);
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i]) == 0) *cmd = commands[i];
    if (!*cmd)
        return nt_fail(err, NT_ERR_INVALID,
                       "unknown command '%.*s'; expected serve, replay, backfill, check-rules or "
                       "help",
                       SHOW, argv[1]);
    return NT_OK;
}

/* argv[2..]: arguments into c->args, flags into fv (repeatable path lists
 * are applied at once). */
static nt_status read_flags(config *c, int argc, char **argv, flag_values *fv, nt_err *err)
{
    nt_status st;
    c->args = calloc((size_t)argc, sizeof *c->args);
    if (!c->args) return nt_fail(err, NT_ERR_NOMEM, "out of memory");
    int only_args = 0;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (only_args || a[0] != '-' || strcmp(a, "-") == 0) {
            if (!(c->args[c->n_args] = strdup(a)))
                return nt_fail(err, NT_ERR_NOMEM, "out of memory");
            c->n_args++;
            continue;
        }
        if (strcmp(a, "--") == 0) {
            only_args = 1;
            continue;
        }
        if (a[1] != '-') {
            return nt_fail(err, NT_ERR_INVALID,
                           "unknown flag '%.*s' (flags are --long; see --help)", SHOW, a);
        }
        const char *name = a + 2;
        const char *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        if ((st = refuse_secret_flag(name, nlen, err)) != NT_OK) return st;
        const opt_def *o = NULL;
        size_t oi = 0;
        for (size_t k = 0; k < N_OPTS; k++) {
            if (strlen(opt_table[k].flag) == nlen && strncmp(opt_table[k].flag, name, nlen) == 0) {
                o = &opt_table[k];
                oi = k;
            }
        }
        if (!o) return unknown_flag(name, nlen, err);
        const char *val;
        if (o->kind == K_BOOL) {
            if (eq) return nt_fail(err, NT_ERR_INVALID, "--%s takes no value", o->flag);
            val = "1";
        } else if (eq) {
            val = eq + 1;
        } else if (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0) {
            val = argv[++i];
        } else {
            return nt_fail(err, NT_ERR_INVALID, "--%s needs a value (%s)", o->flag, o->arg);
        }
        if (o->kind == K_PATHS) { /* repeatable: every occurrence counts, commas and all */
            char fsrc[64];
            snprintf(fsrc, sizeof fsrc, "--%s", o->flag);
            st = paths_add((config_path_list *)(void *)((char *)c + o->offset), fsrc, val,
                           strlen(val), err);
            if (st != NT_OK) return st;
        }
        fv->val[oi] = val;
        snprintf(fv->srcbuf[oi], sizeof fv->srcbuf[oi], "--%s", o->flag);
        fv->src[oi] = fv->srcbuf[oi];
    }
    return NT_OK;
}

/* Every option from its flag, else its environment variable, else its
 * default; then the secrets (environment or *_FILE only). */
static nt_status apply_options(config *c, const flag_values *fv, const char *(*env)(const char *),
                               nt_err *err)
{
    nt_status st;
    c->workers = online_cpus();
    for (size_t k = 0; k < N_OPTS; k++) {
        const opt_def *o = &opt_table[k];
        const char *v = fv->val[k], *src = fv->src[k];
        if (v && o->kind == K_PATHS) continue; /* applied while reading argv */
        if (!v) {
            v = env(o->env);
            src = o->env;
            if (v && !*v) v = NULL;
        }
        if (!v) {
            v = o->def;
            src = "default";
        }
        if (!v) continue; /* computed default, set above */
        if ((st = apply_opt(c, o, src, v, err)) != NT_OK) return st;
    }

    for (size_t s = 0; s < N_SECRETS; s++)
        if ((st = load_secret(c, &secret_table[s], env, err)) != NT_OK) return st;
    return NT_OK;
}

/* The command's arguments: how many it takes. */
static nt_status check_arguments(const config *c, const char *cmd, nt_err *err)
{
    if (strcmp(cmd, "serve") == 0 && c->n_args > 0) {
        return nt_fail(err, NT_ERR_INVALID, "serve takes no arguments (got '%.*s')", SHOW,
                       c->args[0]);
    }
    if ((strcmp(cmd, "replay") == 0 || strcmp(cmd, "backfill") == 0) && c->n_args == 0) {
        return nt_fail(err, NT_ERR_INVALID, "%s needs at least one FILE", cmd);
    }
    if (strcmp(cmd, "check-rules") == 0 && c->n_args > 1) {
        return nt_fail(err, NT_ERR_INVALID, "check-rules takes at most one DIR (got %zu arguments)",
                       c->n_args);
    }
    return NT_OK;
}

nt_status config_parse(config *c, int argc, char **argv, const char *(*getenv_fn)(const char *name),
                       nt_err *err)
{
    const char *(*env)(const char *) = getenv_fn ? getenv_fn : default_getenv;
    flag_values fv = {0};
    const char *cmd = NULL;
    nt_status st = NT_OK;
    memset(c, 0, sizeof *c);

    if (argc < 2 || !argv) return NT_OK;
    if ((st = parse_command(c, argc, argv, &cmd, err)) != NT_OK || !cmd) return st;
    if ((st = read_flags(c, argc, argv, &fv, err)) != NT_OK ||
        (st = apply_options(c, &fv, env, err)) != NT_OK ||
        (st = check_arguments(c, cmd, err)) != NT_OK)
        goto fail;
    if (!(c->command = strdup(cmd))) {
        st = nt_fail(err, NT_ERR_NOMEM, "out of memory");
        goto fail;
    }
    return NT_OK;
fail:
    config_free(c);
    memset(c, 0, sizeof *c);
    return st;
}

void config_free(config *c)
{
    if (!c) return;
    free(c->command);
    free(c->listen_host);
    free(c->redis_url);
    free(c->rules_dir);
    free(c->redis_tls.ca_file);
    free(c->redis_tls.cert_file);
    free(c->redis_tls.key_file);
    free(c->redis_tls.server_name);
    c->redis_tls.ca_file = c->redis_tls.cert_file = c->redis_tls.key_file = NULL;
    c->redis_tls.server_name = NULL;
    free(c->outputs_file);
    secret_string_free(&c->redis_password);
    secret_list_free(&c->firehose_keys);
    secret_list_free(&c->ingest_tokens);
    secret_list_free(&c->read_tokens);
    secret_list_free(&c->write_tokens);
    paths_free(&c->geoip_dbs);
    for (size_t i = 0; i < c->n_args; i++)
        free(c->args[i]);
    free(c->args);
    c->command = c->listen_host = c->redis_url = c->rules_dir = NULL;
    c->args = NULL;
    c->n_args = 0;
}

void config_usage(FILE *f)
{
    fputs("usage: newtermsd serve [options]\n"
          "       newtermsd replay [options] FILE...      evaluate CloudTrail files offline, "
          "print alerts as NDJSON\n"
          "       newtermsd backfill [options] FILE...    record history in Redis without "
          "alerting\n"
          "       newtermsd check-rules [options] [DIR]   load and lint rules\n"
          "       newtermsd help\n"
          "       newtermsd config-table                  print this option table as Markdown\n\n"
          "options (each also settable by the environment variable shown; the flag wins):\n",
          f);
    for (size_t i = 0; i < N_OPTS; i++) {
        const opt_def *o = &opt_table[i];
        char left[48];
        snprintf(left, sizeof left, "--%s%s%s", o->flag, o->arg ? " " : "", o->arg ? o->arg : "");
        fprintf(f, "  %-28s %-29s %s", left, o->env, o->help);
        if (o->def && o->kind != K_BOOL) fprintf(f, " [%s]", o->def);
        fputc('\n', f);
    }
    fputs("\nsecrets (environment or file only, never flags; comma-separate several tokens to "
          "rotate):\n",
          f);
    for (size_t i = 0; i < N_SECRETS; i++)
        fprintf(f, "  %-29s or %s_FILE=/path\n      %s\n", secret_table[i].env, secret_table[i].env,
                secret_table[i].help);
    fputs("\nSIZE: bytes or a number with KiB, MiB, GiB. DURATION: 30s, 15m, 2h, 90d, 1w.\n", f);
}

int config_secret_match(const config_secret_list *l, const char *s, size_t len)
{
    if (!l || !s) return 0;
    int hit = 0;
    for (size_t i = 0; i < l->n; i++)
        hit |= nt_secret_equal(l->items[i], strlen(l->items[i]), s, len);
    return hit;
}

void config_register_secrets(const config *c)
{
    if (!c) return;
    const config_secret_list *lists[] = {&c->firehose_keys, &c->ingest_tokens, &c->read_tokens,
                                         &c->write_tokens};
    for (size_t k = 0; k < 4; k++)
        for (size_t i = 0; i < lists[k]->n; i++)
            log_add_secret(lists[k]->items[i]);
    if (c->redis_password) log_add_secret(c->redis_password);
}

void config_store(const config *c, store_config *out)
{
    *out = (store_config){.url = c->redis_url,
                          .password = c->redis_password,
                          .tls = c->redis_tls,
                          .wait_replicas = c->redis_wait_replicas,
                          .wait_timeout_ms = c->redis_wait_timeout_ms,
                          .connect_timeout_ms = c->redis_timeout_ms,
                          .command_timeout_ms = c->redis_timeout_ms,
                          .alert_retention_ms = c->alert_retention_ms,
                          .alert_cap = c->alert_cap,
                          .reject_cap = c->reject_cap};
}

/* Text with '|' escaped, for a Markdown table cell. */
static void md_cell(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (*s == '|') fputc('\\', f);
        fputc(*s, f);
    }
}

void config_markdown(FILE *f)
{
    fputs("| flag | environment | default | meaning |\n|---|---|---|---|\n", f);
    for (size_t i = 0; i < N_OPTS; i++) {
        const opt_def *o = &opt_table[i];
        fprintf(f, "| `--%s%s%s` | `%s` | ", o->flag, o->arg ? " " : "", o->arg ? o->arg : "",
                o->env);
        if (!o->def)
            fputs("computed", f);
        else if (o->kind == K_BOOL)
            fputs(strcmp(o->def, "0") == 0 ? "off" : "on", f);
        else if (o->kind == K_PATH && strcmp(o->def, CONFIG_RULES_DEFAULT) == 0)
            fputs("`share/newtermsd/rules` of the install prefix", f);
        else
            fprintf(f, "`%s`", o->def);
        fputs(" | ", f);
        md_cell(f, o->help);
        int ranged = o->kind == K_INT || o->kind == K_UINT || o->kind == K_COUNT;
        if (ranged && !strstr(o->help, "..")) fprintf(f, ", %lld..%lld", o->min, o->max);
        fputs(" |\n", f);
    }
    for (size_t i = 0; i < N_SECRETS; i++) {
        fprintf(f, "| (secret: no flag) | `%s` or `%s_FILE` | none | ", secret_table[i].env,
                secret_table[i].env);
        md_cell(f, secret_table[i].help);
        fputs(" |\n", f);
    }
}

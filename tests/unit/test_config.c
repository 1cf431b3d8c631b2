/* Unit tests for config.c: defaults, flag/env precedence, secrets, every error. */
#include "config.h"
#include "testutil.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- a fake environment -------------------------------------------------------
 * Values starting with '@' name a file in the per-test temporary folder: the
 * '@' is replaced by the folder path. */
#define MAX_ENV 8
static const char *const *cur_env;
static char tmpdir[64];
static char env_buf[MAX_ENV][256];

static const char *fake_getenv(const char *name)
{
    size_t n = strlen(name);
    for (int i = 0; cur_env && cur_env[i]; i++) {
        const char *e = cur_env[i];
        if (strncmp(e, name, n) == 0 && e[n] == '=') {
            const char *v = e + n + 1;
            if (v[0] != '@') return v;
            snprintf(env_buf[i], sizeof env_buf[i], "%s/%s", tmpdir, v + 1);
            return env_buf[i];
        }
    }
    return NULL;
}

static void write_file(const char *name, const char *content, size_t len)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(content, 1, len, f), len);
    fclose(f);
}

static void setup(void)
{
    snprintf(tmpdir, sizeof tmpdir, "%s", "/tmp/nt-config-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
    write_file("keys", "k1,k2\n", 6);
    write_file("crlf", "tok-crlf\r\n", 10);
    write_file("two-newlines", "tok\n\n", 5);
    write_file("pw", "pass word\n", 10);
    write_file("empty", "", 0);
    write_file("nl-only", "\n", 1);
    write_file("nul", "ab\0cd", 5);
    char big[70000];
    memset(big, 'a', sizeof big);
    write_file("big", big, sizeof big);
    char path[128];
    snprintf(path, sizeof path, "%s/dir", tmpdir);
    mkdir(path, 0700);
}

static void teardown(void)
{
    static const char *const names[] = {"keys",  "crlf",    "two-newlines", "pw",
                                        "empty", "nl-only", "nul",          "big"};
    char path[128];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", tmpdir, names[i]);
        unlink(path);
    }
    snprintf(path, sizeof path, "%s/dir", tmpdir);
    rmdir(path);
    rmdir(tmpdir);
    log_reset_secrets();
}

/* Split a command line on spaces into argv (no quoting). */
static int split_args(const char *line, char *store, size_t cap, char **argv, int max)
{
    snprintf(store, cap, "%s", line);
    int argc = 0;
    argv[argc++] = "newtermsd";
    for (char *save = NULL, *w = strtok_r(store, " ", &save); w && argc < max;
         w = strtok_r(NULL, " ", &save))
        argv[argc++] = w;
    argv[argc] = NULL;
    return argc;
}

static nt_status parse_line(config *c, const char *line, const char *const *env, nt_err *err)
{
    static char store[1024];
    static char *argv[64];
    cur_env = env;
    int argc = line ? split_args(line, store, sizeof store, argv, 63) : 1;
    return config_parse(c, argc, argv, fake_getenv, err);
}

static void join(char *out, size_t cap, char *const *items, size_t n)
{
    size_t len = 0;
    out[0] = 0;
    for (size_t i = 0; i < n && len < cap; i++)
        len += (size_t)snprintf(out + len, cap - len, "%s%s", i ? "|" : "", items[i]);
}

static void join_list(char *out, size_t cap, const config_secret_list *l)
{
    join(out, cap, l->items, l->n);
}

/* One line: " key=value key=value ... " for substring checks. */
static void dump(const config *c, char *out, size_t cap)
{
    char fh[256], ing[256], rd[256], wr[256], args[256];
    join_list(fh, sizeof fh, &c->firehose_keys);
    join_list(ing, sizeof ing, &c->ingest_tokens);
    join_list(rd, sizeof rd, &c->read_tokens);
    join_list(wr, sizeof wr, &c->write_tokens);
    join(args, sizeof args, c->args, c->n_args);
    snprintf(out, cap,
             " cmd=%s help=%d listen_host=%s listen_port=%d redis=%s rules=%s workers=%d "
             "max_body=%zu max_record=%zu max_inflate=%zu redis_timeout_ms=%d "
             "request_timeout_s=%d retention_ms=%lld alert_cap=%zu reject_cap=%zu "
             "learning_ms=%lld metrics_auth=%d log_level=%d connection_limit=%u strict=%d "
             "firehose=%s ingest=%s read=%s write=%s redis_password=%s args=%s ",
             c->command ? c->command : "(null)", c->help,
             c->listen_host ? c->listen_host : "(null)", c->listen_port,
             c->redis_url ? c->redis_url : "(null)", c->rules_dir ? c->rules_dir : "(null)",
             c->workers, c->max_body, c->max_record, c->max_inflate, c->redis_timeout_ms,
             c->request_timeout_s, (long long)c->alert_retention_ms, c->alert_cap, c->reject_cap,
             (long long)c->learning_ms, c->metrics_auth, (int)c->log_level, c->connection_limit,
             c->require_all_rules, fh, ing, rd, wr,
             c->redis_password ? c->redis_password : "(null)", args);
    size_t len = strlen(out);
    const netio_tls_config *t = &c->redis_tls;
    snprintf(out + len, cap - len,
             "redis_ca=%s redis_cert=%s redis_key=%s redis_server_name=%s redis_insecure=%d "
             "redis_wait=%d redis_wait_timeout_ms=%d busy_poll_us=%d ",
             t->ca_file ? t->ca_file : "(null)", t->cert_file ? t->cert_file : "(null)",
             t->key_file ? t->key_file : "(null)", t->server_name ? t->server_name : "(null)",
             t->insecure, c->redis_wait_replicas, c->redis_wait_timeout_ms, c->busy_poll_us);
}

/* ---- successful parses: (argv, env, every " key=value " that must appear) ----- */
static const struct {
    const char *args;
    const char *env[MAX_ENV];
    const char *want[12];
} ok_cases[] = {
    /* defaults */
    {"serve",
     {NULL},
     {"cmd=serve", "help=0", "listen_host=0.0.0.0", "listen_port=8080",
      "redis=redis://127.0.0.1:6379/0", "max_body=67108864", "max_record=1024000",
      "max_inflate=268435456", "redis_timeout_ms=2000", "request_timeout_s=30",
      "retention_ms=7776000000", "alert_cap=1000000"}},
    {"serve",
     {NULL},
     {"reject_cap=10000", "learning_ms=0", "metrics_auth=0", "log_level=1", "connection_limit=1024",
      "strict=0", "firehose=", "ingest=", "read=", "write=", "redis_password=(null)", "args="}},
    /* flag beats environment, environment beats default */
    {"serve --workers 5", {"NEWTERMSD_WORKERS=3", NULL}, {"workers=5"}},
    {"serve", {"NEWTERMSD_WORKERS=3", NULL}, {"workers=3"}},
    {"serve --workers=7", {NULL}, {"workers=7"}},
    {"serve --workers 2 --workers 9", {NULL}, {"workers=9"}},
    {"serve --workers 4", {"NEWTERMSD_WORKERS=banana", NULL}, {"workers=4"}},
    {"serve", {"NEWTERMSD_WORKERS=", NULL}, {"cmd=serve"}},
    {"serve --listen 127.0.0.1:9000",
     {"NEWTERMSD_LISTEN=10.0.0.1:1", NULL},
     {"listen_host=127.0.0.1", "listen_port=9000"}},
    {"serve", {"NEWTERMSD_LISTEN=[::1]:9001", NULL}, {"listen_host=::1", "listen_port=9001"}},
    {"serve --listen=[::]:0", {NULL}, {"listen_host=::", "listen_port=0"}},
    {"serve --listen :9090", {NULL}, {"listen_host=0.0.0.0", "listen_port=9090"}},
    {"serve --listen localhost:80", {NULL}, {"listen_host=localhost", "listen_port=80"}},
    {"serve --redis unix:///run/redis.sock", {NULL}, {"redis=unix:///run/redis.sock"}},
    {"serve",
     {"NEWTERMSD_REDIS=redis://cache.internal:6380/2", NULL},
     {"redis=redis://cache.internal:6380/2"}},
    {"serve --redis redis://[::1]:6379", {NULL}, {"redis=redis://[::1]:6379"}},
    {"serve --redis redis://h", {NULL}, {"redis=redis://h"}},
    /* managed Redis: TLS, an ACL user, WAIT */
    {"serve",
     {NULL},
     {"redis_ca=(null)", "redis_cert=(null)", "redis_key=(null)", "redis_server_name=(null)",
      "redis_insecure=0", "redis_wait=0", "redis_wait_timeout_ms=1000", "busy_poll_us=0"}},
    {"serve --redis rediss://app@cache.example.com:6380/1",
     {NULL},
     {"redis=rediss://app@cache.example.com:6380/1"}},
    {"serve --redis redis://app-user_1@h", {NULL}, {"redis=redis://app-user_1@h"}},
    {"serve --redis-ca /etc/ca.pem --redis-tls-server-name redis.internal",
     {"NEWTERMSD_REDIS_CERT_FILE=/c.pem", "NEWTERMSD_REDIS_KEY_FILE=/k.pem",
      "NEWTERMSD_REDIS_TLS_INSECURE=1", NULL},
     {"redis_ca=/etc/ca.pem", "redis_server_name=redis.internal", "redis_cert=/c.pem",
      "redis_key=/k.pem", "redis_insecure=1"}},
    {"serve --redis-wait-replicas 2",
     {"NEWTERMSD_REDIS_WAIT_TIMEOUT_MS=250", NULL},
     {"redis_wait=2", "redis_wait_timeout_ms=250"}},
    {"serve --busy-poll-us 20000", {NULL}, {"busy_poll_us=20000"}},
    {"serve", {"NEWTERMSD_BUSY_POLL_US=500", NULL}, {"busy_poll_us=500"}},
    {"serve --rules /srv/rules", {"NEWTERMSD_RULES=/x", NULL}, {"rules=/srv/rules"}},
    {"serve", {"NEWTERMSD_RULES=/x", NULL}, {"rules=/x"}},
    /* sizes */
    {"serve --max-body 512KiB --max-record 1048576 --max-inflate 2GiB",
     {NULL},
     {"max_body=524288", "max_record=1048576", "max_inflate=2147483648"}},
    {"serve --max-body 64mib --max-record 1k --max-inflate 3M",
     {NULL},
     {"max_body=67108864", "max_record=1024", "max_inflate=3145728"}},
    {"serve", {"NEWTERMSD_MAX_BODY=10B", NULL}, {"max_body=10"}},
    /* integers */
    {"serve --redis-timeout-ms 150 --request-timeout-s 5 --connection-limit 10",
     {NULL},
     {"redis_timeout_ms=150", "request_timeout_s=5", "connection_limit=10"}},
    {"serve --alert-cap 5 --reject-cap 0", {NULL}, {"alert_cap=5", "reject_cap=0"}},
    {"serve --workers 256", {NULL}, {"workers=256"}},
    {"serve --workers 1", {NULL}, {"workers=1"}},
    /* durations */
    {"serve --alert-retention 1w --learning-period 2h",
     {NULL},
     {"retention_ms=604800000", "learning_ms=7200000"}},
    {"serve",
     {"NEWTERMSD_LEARNING_PERIOD=30s", "NEWTERMSD_ALERT_RETENTION=15m", NULL},
     {"learning_ms=30000", "retention_ms=900000"}},
    {"serve --learning-period 0", {"NEWTERMSD_LEARNING_PERIOD=1d", NULL}, {"learning_ms=0"}},
    /* booleans and the log level */
    {"serve --metrics-auth --strict-rules", {NULL}, {"metrics_auth=1", "strict=1"}},
    {"serve",
     {"NEWTERMSD_METRICS_AUTH=1", "NEWTERMSD_STRICT_RULES=yes", NULL},
     {"metrics_auth=1", "strict=1"}},
    {"serve",
     {"NEWTERMSD_METRICS_AUTH=ON", "NEWTERMSD_STRICT_RULES=false", NULL},
     {"metrics_auth=1", "strict=0"}},
    {"serve --log-level debug", {"NEWTERMSD_LOG_LEVEL=error", NULL}, {"log_level=0"}},
    {"serve", {"NEWTERMSD_LOG_LEVEL=WARN", NULL}, {"log_level=2"}},
    /* positional arguments anywhere, -- and - */
    {"replay a.json --workers 2 b.json", {NULL}, {"cmd=replay", "args=a.json|b.json", "workers=2"}},
    {"backfill --rules=/r - -- --not-a-flag",
     {NULL},
     {"cmd=backfill", "args=-|--not-a-flag", "rules=/r"}},
    {"check-rules", {NULL}, {"cmd=check-rules", "args="}},
    {"check-rules rules/", {NULL}, {"cmd=check-rules", "args=rules/"}},
    /* secrets */
    {"serve",
     {"NEWTERMSD_FIREHOSE_ACCESS_KEY=fh-one", "NEWTERMSD_INGEST_TOKEN= a , b ,c ",
      "NEWTERMSD_API_READ_TOKEN=r1,r2", "NEWTERMSD_API_WRITE_TOKEN=w1", NULL},
     {"firehose=fh-one", "ingest=a|b|c", "read=r1|r2", "write=w1"}},
    {"serve", {"NEWTERMSD_INGEST_TOKEN_FILE=@keys", NULL}, {"ingest=k1|k2"}},
    {"serve", {"NEWTERMSD_API_READ_TOKEN_FILE=@crlf", NULL}, {"read=tok-crlf"}},
    {"serve", {"NEWTERMSD_API_WRITE_TOKEN_FILE=@two-newlines", NULL}, {"write=tok"}},
    {"serve", {"NEWTERMSD_REDIS_PASSWORD_FILE=@pw", NULL}, {"redis_password=pass word"}},
    {"serve",
     {"NEWTERMSD_REDIS_PASSWORD=p,w with, commas ", NULL},
     {"redis_password=p,w with, commas "}},
    {"serve", {"NEWTERMSD_INGEST_TOKEN=tok", "NEWTERMSD_INGEST_TOKEN_FILE=", NULL}, {"ingest=tok"}},
    /* help */
    {NULL, {NULL}, {"cmd=(null)", "help=0"}},
    {"help", {NULL}, {"cmd=(null)", "help=1"}},
    {"--help", {NULL}, {"cmd=(null)", "help=1"}},
    {"serve -h", {NULL}, {"cmd=(null)", "help=1"}},
    {"serve --bogus --help", {"NEWTERMSD_WORKERS=banana", NULL}, {"cmd=(null)", "help=1"}},
};

START_TEST(valid_flags_and_environment_give_the_expected_config)
{
    config c;
    nt_err err = {{0}};
    nt_status st = parse_line(&c, ok_cases[_i].args, ok_cases[_i].env, &err);
    ck_assert_msg(st == NT_OK, "case %d (%s): %s", _i, ok_cases[_i].args, err.msg);
    char text[2048], want[300];
    dump(&c, text, sizeof text);
    for (int k = 0; k < 12 && ok_cases[_i].want[k]; k++) {
        snprintf(want, sizeof want, " %s ", ok_cases[_i].want[k]);
        ck_assert_msg(strstr(text, want), "case %d: want %s in%s", _i, want, text);
    }
    config_free(&c);
}
END_TEST

START_TEST(workers_default_to_the_online_cpus_and_rules_to_the_shipped_folder)
{
    config c;
    ck_assert_int_eq(parse_line(&c, "serve", NULL, NULL), NT_OK);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    ck_assert_int_eq(c.workers, cpus < 1 ? 1 : cpus > 256 ? 256 : cpus);
    ck_assert_ptr_nonnull(c.rules_dir);
    ck_assert_uint_gt(strlen(c.rules_dir), 0);
    config_free(&c);
}
END_TEST

/* ---- errors: (argv, env, a piece of the message) ------------------------------ */
static const struct {
    const char *args;
    const char *env[MAX_ENV];
    const char *msg;
} err_cases[] = {
    {"frobnicate", {NULL}, "unknown command 'frobnicate'; expected serve, replay, backfill"},
    {"--listen :80 serve", {NULL}, "the command comes first"},
    {"serve --wrokers 3", {NULL}, "unknown flag --wrokers (did you mean --workers?)"},
    {"serve --zzzzzzzzzz", {NULL}, "unknown flag --zzzzzzzzzz"},
    {"serve -x", {NULL}, "unknown flag '-x'"},
    {"serve --listen", {NULL}, "--listen needs a value (HOST:PORT)"},
    {"serve --listen --workers 2", {NULL}, "--listen needs a value"},
    {"serve --metrics-auth=1", {NULL}, "--metrics-auth takes no value"},
    {"serve --workers abc", {NULL}, "--workers: 'abc' is not an integer"},
    {"serve", {"NEWTERMSD_WORKERS=4x", NULL}, "NEWTERMSD_WORKERS: '4x' is not an integer"},
    {"serve --workers 0", {NULL}, "--workers: 0 is out of range (1..256)"},
    {"serve --workers 257", {NULL}, "--workers: 257 is out of range (1..256)"},
    {"serve --workers -1", {NULL}, "--workers: -1 is out of range (1..256)"},
    {"serve --workers 99999999999999999999", {NULL}, "is not an integer"},
    {"serve --redis-timeout-ms 0", {NULL}, "--redis-timeout-ms: 0 is out of range"},
    {"serve --connection-limit 0", {NULL}, "--connection-limit: 0 is out of range"},
    {"serve --alert-cap 0", {NULL}, "--alert-cap: 0 is out of range"},
    {"serve --max-body 12XB",
     {NULL},
     "--max-body: '12XB' is not a size (bytes, or a number followed by KiB, MiB or GiB)"},
    {"serve --max-body 64MB", {NULL}, "is not a size"},
    {"serve --max-body MiB", {NULL}, "is not a size"},
    {"serve --max-body 0", {NULL}, "--max-body: 0 bytes is out of range"},
    {"serve --max-inflate 99999999999999GiB", {NULL}, "is not a size"},
    {"serve --max-record 17GiB", {NULL}, "--max-record: 18253611008 bytes is out of range"},
    {"serve", {"NEWTERMSD_MAX_RECORD=-5", NULL}, "NEWTERMSD_MAX_RECORD: '-5' is not a size"},
    {"serve --alert-retention 10x", {NULL}, "--alert-retention: '10x' is not a duration"},
    {"serve --alert-retention 0s", {NULL}, "--alert-retention: must be longer than 0"},
    {"serve",
     {"NEWTERMSD_LEARNING_PERIOD=soon", NULL},
     "NEWTERMSD_LEARNING_PERIOD: 'soon' is not a duration"},
    {"serve --listen nonsense", {NULL}, "--listen: 'nonsense' is not HOST:PORT"},
    {"serve --listen 1.2.3.4:99999", {NULL}, "--listen: port '99999' is not a number from 0"},
    {"serve --listen 1.2.3.4:", {NULL}, "--listen: port '' is not a number"},
    {"serve --listen 1.2.3.4:-1", {NULL}, "port '-1' is not a number"},
    {"serve --listen ::1:8080", {NULL}, "an IPv6 address goes in brackets, e.g. [::1]:8080"},
    {"serve --listen [::1]8080", {NULL}, "is not [IPv6]:PORT"},
    {"serve --listen [zz]:80", {NULL}, "'zz' is not an IPv6 address"},
    {"serve --listen []:80", {NULL}, "has no valid IPv6 address"},
    {"serve --listen example.com:80",
     {NULL},
     "host 'example.com' is not an IPv4 address, localhost or [IPv6]"},
    {"serve", {"NEWTERMSD_LISTEN=300.1.1.1:80", NULL}, "NEWTERMSD_LISTEN: host '300.1.1.1'"},
    {"serve --redis http://x", {NULL}, "--redis: 'http://x' is not redis://host[:port][/db]"},
    {"serve --redis redis://", {NULL}, "is not redis://"},
    {"serve --redis redis://h:0", {NULL}, "is not redis://"},
    {"serve --redis redis://h:abc", {NULL}, "is not redis://"},
    {"serve --redis redis://h/0?x=1", {NULL}, "is not redis://"},
    {"serve --redis redis://:pw@h:6379", {NULL}, "the URL must not hold a password"},
    {"serve --redis rediss://app:pw@h", {NULL}, "the URL must not hold a password"},
    {"serve --redis rediss://@h", {NULL}, "is not redis://"},
    {"serve --redis unix://u@/run/r.sock", {NULL}, "the URL must not hold credentials"},
    {"serve --redis-wait-replicas -1", {NULL}, "--redis-wait-replicas: -1 is out of range"},
    {"serve --busy-poll-us -5", {NULL}, "--busy-poll-us: -5 is out of range (0..1000000)"},
    {"serve",
     {"NEWTERMSD_BUSY_POLL_US=2000000", NULL},
     "NEWTERMSD_BUSY_POLL_US: 2000000 is out of range (0..1000000)"},
    {"serve --busy-poll-us 1ms", {NULL}, "--busy-poll-us: '1ms' is not an integer"},
    {"serve",
     {"NEWTERMSD_REDIS_WAIT_TIMEOUT_MS=0", NULL},
     "NEWTERMSD_REDIS_WAIT_TIMEOUT_MS: 0 is out of range"},
    {"serve --redis unix://rel.sock", {NULL}, "needs an absolute socket path"},
    {"serve --rules=", {NULL}, "--rules: must not be empty"},
    {"serve --log-level loud", {NULL}, "--log-level: 'loud' is not a log level"},
    {"serve",
     {"NEWTERMSD_METRICS_AUTH=maybe", NULL},
     "NEWTERMSD_METRICS_AUTH: 'maybe' is not a boolean"},
    /* secrets never from flags */
    {"serve --firehose-access-key abc",
     {NULL},
     "secrets are read from NEWTERMSD_FIREHOSE_ACCESS_KEY or NEWTERMSD_FIREHOSE_ACCESS_KEY_FILE, "
     "never from flags"},
    {"serve --ingest-token=abc", {NULL}, "--ingest-token is refused: secrets are read from"},
    {"serve --api-read-token-file /x", {NULL}, "NEWTERMSD_API_READ_TOKEN_FILE, never from flags"},
    {"serve --api-write-token x", {NULL}, "NEWTERMSD_API_WRITE_TOKEN or"},
    {"serve --redis-password x", {NULL}, "NEWTERMSD_REDIS_PASSWORD or"},
    /* secrets from the environment and files */
    {"serve",
     {"NEWTERMSD_INGEST_TOKEN=a", "NEWTERMSD_INGEST_TOKEN_FILE=@keys", NULL},
     "NEWTERMSD_INGEST_TOKEN and NEWTERMSD_INGEST_TOKEN_FILE are both set"},
    {"serve",
     {"NEWTERMSD_INGEST_TOKEN_FILE=@missing", NULL},
     "NEWTERMSD_INGEST_TOKEN_FILE: cannot read"},
    {"serve", {"NEWTERMSD_INGEST_TOKEN_FILE=@dir", NULL}, "it is a directory"},
    {"serve", {"NEWTERMSD_API_READ_TOKEN_FILE=@empty", NULL}, "NEWTERMSD_API_READ_TOKEN_FILE: '"},
    {"serve", {"NEWTERMSD_API_READ_TOKEN_FILE=@nl-only", NULL}, "' is empty"},
    {"serve", {"NEWTERMSD_API_READ_TOKEN_FILE=@nul", NULL}, "contains a NUL byte"},
    {"serve", {"NEWTERMSD_API_READ_TOKEN_FILE=@big", NULL}, "is larger than 65536 bytes"},
    {"serve", {"NEWTERMSD_INGEST_TOKEN=", NULL}, "NEWTERMSD_INGEST_TOKEN is set but empty"},
    {"serve",
     {"NEWTERMSD_INGEST_TOKEN=secret-a,,secret-b", NULL},
     "NEWTERMSD_INGEST_TOKEN: value 2 of 3 is empty"},
    {"serve",
     {"NEWTERMSD_API_WRITE_TOKEN=secret-a, ", NULL},
     "NEWTERMSD_API_WRITE_TOKEN: value 2 of 2 is empty"},
    {"serve", {"NEWTERMSD_API_WRITE_TOKEN=,secret-a", NULL}, "value 1 of 2 is empty"},
    {"serve",
     {"NEWTERMSD_FIREHOSE_ACCESS_KEY=secret\x01x", NULL},
     "NEWTERMSD_FIREHOSE_ACCESS_KEY: value 1 of 1 contains a control character"},
    {"serve",
     {"NEWTERMSD_FIREHOSE_ACCESS_KEY=,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,"
      ",,",
      NULL},
     "65 values given, at most 64 are allowed"},
    {"serve", {"NEWTERMSD_REDIS_PASSWORD=", NULL}, "NEWTERMSD_REDIS_PASSWORD is set but empty"},
    {"serve", {"NEWTERMSD_REDIS_PASSWORD_FILE=@empty", NULL}, "NEWTERMSD_REDIS_PASSWORD_FILE: '"},
    /* positional arguments */
    {"serve extra", {NULL}, "serve takes no arguments (got 'extra')"},
    {"replay --workers 2", {NULL}, "replay needs at least one FILE"},
    {"backfill", {NULL}, "backfill needs at least one FILE"},
    {"check-rules a b", {NULL}, "check-rules takes at most one DIR (got 2 arguments)"},
};

START_TEST(bad_input_is_refused_with_a_precise_message)
{
    config c;
    nt_err err = {{0}};
    nt_status st = parse_line(&c, err_cases[_i].args, err_cases[_i].env, &err);
    ck_assert_msg(st != NT_OK, "case %d (%s) was accepted", _i, err_cases[_i].args);
    ck_assert_msg(strstr(err.msg, err_cases[_i].msg), "case %d: want '%s' in '%s'", _i,
                  err_cases[_i].msg, err.msg);
    /* nothing is left to free, and no secret value is ever quoted */
    ck_assert_ptr_null(c.command);
    ck_assert_ptr_null(c.args);
    ck_assert_ptr_null(c.listen_host);
    ck_assert_ptr_null(c.ingest_tokens.items);
    ck_assert_ptr_null(strstr(err.msg, "secret-"));
    config_free(&c);
}
END_TEST

START_TEST(a_secret_matches_any_listed_value_and_nothing_else)
{
    config c;
    static const char *const env[] = {"NEWTERMSD_INGEST_TOKEN=alpha-token,beta-token", NULL};
    ck_assert_int_eq(parse_line(&c, "serve", env, NULL), NT_OK);
    ck_assert_int_eq(config_secret_match(&c.ingest_tokens, "alpha-token", 11), 1);
    ck_assert_int_eq(config_secret_match(&c.ingest_tokens, "beta-token", 10), 1);
    ck_assert_int_eq(config_secret_match(&c.ingest_tokens, "beta-tokenX", 11), 0);
    ck_assert_int_eq(config_secret_match(&c.ingest_tokens, "beta-toke", 9), 0);
    ck_assert_int_eq(config_secret_match(&c.ingest_tokens, "beta-token", 9), 0);
    ck_assert_int_eq(config_secret_match(&c.ingest_tokens, "", 0), 0);
    ck_assert_int_eq(config_secret_match(&c.read_tokens, "alpha-token", 11), 0);
    ck_assert_int_eq(config_secret_match(NULL, "alpha-token", 11), 0);
    ck_assert_int_eq(config_secret_match(&c.ingest_tokens, NULL, 0), 0);
    config_free(&c);
}
END_TEST

START_TEST(registered_secrets_are_redacted_from_the_log)
{
    config c;
    static const char *const env[] = {
        "NEWTERMSD_FIREHOSE_ACCESS_KEY=fh-key-123", "NEWTERMSD_INGEST_TOKEN=ing-tok-1,ing-tok-2",
        "NEWTERMSD_API_READ_TOKEN=read-tok",        "NEWTERMSD_API_WRITE_TOKEN=write-tok",
        "NEWTERMSD_REDIS_PASSWORD_FILE=@pw",        NULL};
    ck_assert_int_eq(parse_line(&c, "serve", env, NULL), NT_OK);
    config_register_secrets(&c);
    char *line = log_format_line(
        0, NT_LOG_INFO, "e", "fh-key-123 ing-tok-1 ing-tok-2 read-tok write-tok pass word", NULL);
    ck_assert_ptr_nonnull(strstr(line, "\"msg\":\"[REDACTED] [REDACTED] [REDACTED] [REDACTED] "
                                       "[REDACTED] [REDACTED]\""));
    free(line);
    config_free(&c);
}
END_TEST

START_TEST(config_free_is_null_safe_and_idempotent_and_keeps_help)
{
    config_free(NULL);
    config c;
    ck_assert_int_eq(parse_line(&c, "--help", NULL, NULL), NT_OK);
    config_free(&c);
    ck_assert_int_eq(c.help, 1); /* main() may read help after freeing */
    ck_assert_int_eq(parse_line(&c, "replay a b c", NULL, NULL), NT_OK);
    config_free(&c);
    config_free(&c);
    ck_assert_ptr_null(c.args);
    ck_assert_uint_eq(c.n_args, 0);
}
END_TEST

START_TEST(the_usage_text_names_every_flag_and_variable)
{
    static const char *const names[] = {
        "--listen",
        "NEWTERMSD_LISTEN",
        "--redis",
        "NEWTERMSD_REDIS",
        "--rules",
        "NEWTERMSD_RULES",
        "--workers",
        "--max-body",
        "--max-record",
        "--max-inflate",
        "--redis-timeout-ms",
        "--request-timeout-s",
        "--alert-retention",
        "--alert-cap",
        "--reject-cap",
        "--learning-period",
        "--metrics-auth",
        "--log-level",
        "--connection-limit",
        "--strict-rules",
        "--geoip-db",
        "NEWTERMSD_GEOIP_DB",
        "NEWTERMSD_FIREHOSE_ACCESS_KEY",
        "NEWTERMSD_INGEST_TOKEN",
        "NEWTERMSD_API_READ_TOKEN",
        "NEWTERMSD_API_WRITE_TOKEN",
        "NEWTERMSD_REDIS_PASSWORD",
        "_FILE",
        "serve",
        "replay",
        "backfill",
        "check-rules",
    };
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    config_usage(f);
    fclose(f);
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        ck_assert_msg(strstr(buf, names[i]), "usage lacks %s", names[i]);
    free(buf);
}
END_TEST

START_TEST(the_real_environment_is_used_without_a_getenv_function)
{
    setenv("NEWTERMSD_WORKERS", "11", 1);
    config c;
    char *argv[] = {"newtermsd", "serve", NULL};
    ck_assert_int_eq(config_parse(&c, 2, argv, NULL, NULL), NT_OK);
    ck_assert_int_eq(c.workers, 11);
    config_free(&c);
    unsetenv("NEWTERMSD_WORKERS");
}
END_TEST

/* --geoip-db repeats; NEWTERMSD_GEOIP_DB is comma-separated; the flags win. */
static const struct {
    const char *line, *env, *want[4]; /* want: the paths in order, or want[0] = error text */
    int ok;
} geoip_cases[] = {
    {"serve", NULL, {NULL}, 1},
    {"serve --geoip-db /a.mmdb", NULL, {"/a.mmdb"}, 1},
    {"serve --geoip-db /a.mmdb --geoip-db=/b,c.mmdb", NULL, {"/a.mmdb", "/b,c.mmdb"}, 1},
    {"serve", "NEWTERMSD_GEOIP_DB=/a.mmdb, /b.mmdb ,/c.mmdb", {"/a.mmdb", "/b.mmdb", "/c.mmdb"}, 1},
    {"serve --geoip-db /x.mmdb", "NEWTERMSD_GEOIP_DB=/a.mmdb,/b.mmdb", {"/x.mmdb"}, 1},
    {"serve", "NEWTERMSD_GEOIP_DB=/a.mmdb,,/b.mmdb", {"NEWTERMSD_GEOIP_DB: empty path"}, 0},
    {"serve", "NEWTERMSD_GEOIP_DB=1,2,3,4,5,6,7,8,9", {"NEWTERMSD_GEOIP_DB: at most 8 files"}, 0},
    {"serve --geoip-db", NULL, {"--geoip-db needs a value"}, 0},
};

START_TEST(geoip_databases_come_from_repeated_flags_or_a_list)
{
    char store[512], *argv[16];
    int argc = split_args(geoip_cases[_i].line, store, sizeof store, argv, 16);
    const char *env[2] = {geoip_cases[_i].env, NULL};
    cur_env = env;
    config c;
    nt_err err = {{0}};
    nt_status st = config_parse(&c, argc, argv, fake_getenv, &err);
    cur_env = NULL;
    if (!geoip_cases[_i].ok) {
        ck_assert_int_ne(st, NT_OK);
        ck_assert_msg(strstr(err.msg, geoip_cases[_i].want[0]), "%s: \"%s\"", geoip_cases[_i].line,
                      err.msg);
        return;
    }
    ck_assert_msg(st == NT_OK, "%s: %s", geoip_cases[_i].line, err.msg);
    size_t n = 0;
    while (n < 4 && geoip_cases[_i].want[n])
        n++;
    ck_assert_uint_eq(c.geoip_dbs.n, n);
    for (size_t i = 0; i < n; i++)
        ck_assert_str_eq(c.geoip_dbs.items[i], geoip_cases[_i].want[i]);
    config_free(&c);
    ck_assert_uint_eq(c.geoip_dbs.n, 0);
}
END_TEST

static Suite *config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_loop_test(tc, valid_flags_and_environment_give_the_expected_config, 0,
                        sizeof ok_cases / sizeof ok_cases[0]);
    tcase_add_test(tc, workers_default_to_the_online_cpus_and_rules_to_the_shipped_folder);
    tcase_add_loop_test(tc, bad_input_is_refused_with_a_precise_message, 0,
                        sizeof err_cases / sizeof err_cases[0]);
    tcase_add_test(tc, a_secret_matches_any_listed_value_and_nothing_else);
    tcase_add_test(tc, registered_secrets_are_redacted_from_the_log);
    tcase_add_test(tc, config_free_is_null_safe_and_idempotent_and_keeps_help);
    tcase_add_test(tc, the_usage_text_names_every_flag_and_variable);
    tcase_add_test(tc, the_real_environment_is_used_without_a_getenv_function);
    tcase_add_loop_test(tc, geoip_databases_come_from_repeated_flags_or_a_list, 0,
                        sizeof geoip_cases / sizeof geoip_cases[0]);
    suite_add_tcase(s, tc);
    return s;
}

NT_TEST_MAIN(config_suite)

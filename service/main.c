/*
 * main.c — the `newtermsd` command: serve, replay, backfill, check-rules.
 *
 *   serve        the HTTP daemon (http.c); SIGTERM/SIGINT drain and exit 0
 *   replay       evaluate CloudTrail files offline with an in-memory history
 *                judged on event time; alerts as NDJSON on stdout, a summary
 *                on stderr; no Redis
 *   backfill     write history to Redis from past CloudTrail logs (event-time
 *                TTLs), never alert
 *   check-rules  load and lint a folder of rules; exit 1 on any error
 *
 * Every command opens the GeoIP databases of --geoip-db / NEWTERMSD_GEOIP_DB
 * (geoip.c) before loading rules, hands them to the rule set's schema and
 * closes them after the rule set is gone.
 *
 * Files for replay and backfill may be CloudTrail S3 log files (.json or
 * .json.gz), NDJSON, EventBridge events, arrays of records or folders of them
 * (walked recursively, in name order).
 */
#include "common.h"
#include "config.h"
#include "jarena.h"
#include "decode.h"
#include "gz.h"
#include "geoip.h"
#include "history.h"
#include "http.h"
#include "log.h"
#include "pipeline.h"
#include "rule.h"
#include "store.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define FILE_MAX ((size_t)1 << 30)    /* 1 GiB per input file */
#define INFLATE_MAX ((size_t)4 << 30) /* 4 GiB after gunzip */

static const char *getenv_wrapper(const char *name)
{
    return getenv(name);
}

/* ---- files ---------------------------------------------------------------- */

static nt_status read_whole(const char *path, unsigned char **out, size_t *len, nt_err *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) return nt_fail(err, NT_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    unsigned char *buf = malloc(cap);
    while (buf) {
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) break;
        if (n == cap) {
            if (cap >= FILE_MAX) {
                free(buf);
                fclose(f);
                return nt_fail(err, NT_ERR_LIMIT, "%s is larger than 1 GiB", path);
            }
            unsigned char *b = realloc(buf, cap * 2);
            if (!b) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = b;
            cap *= 2;
        }
    }
    int bad = ferror(f);
    fclose(f);
    if (!buf) return nt_fail(err, NT_ERR_NOMEM, "out of memory reading %s", path);
    if (bad) {
        free(buf);
        return nt_fail(err, NT_ERR_IO, "cannot read %s", path);
    }
    if (gz_is_gzip(buf, n)) {
        unsigned char *plain = NULL;
        size_t plen = 0;
        nt_status st = dec_body_inflate(buf, n, INFLATE_MAX, &plain, &plen, err);
        free(buf);
        if (st != NT_OK) return nt_err_prefix(err, st, "%s", path);
        *out = plain;
        *len = plen;
        return NT_OK;
    }
    *out = buf;
    *len = n;
    return NT_OK;
}

typedef struct file_list {
    char **paths;
    size_t n, cap;
} file_list;

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static nt_status collect_files(const char *path, file_list *fl, int depth, nt_err *err)
{
    struct stat stt;
    if (stat(path, &stt) != 0)
        return nt_fail(err, NT_ERR_IO, "cannot read %s: %s", path, strerror(errno));
    if (S_ISDIR(stt.st_mode)) {
        if (depth > 16) return nt_fail(err, NT_ERR_LIMIT, "%s: folders nested too deep", path);
        DIR *d = opendir(path);
        if (!d) return nt_fail(err, NT_ERR_IO, "cannot open %s: %s", path, strerror(errno));
        file_list sub = {0};
        struct dirent *de;
        nt_status st = NT_OK;
        while ((de = readdir(d)) && st == NT_OK) {
            if (de->d_name[0] == '.') continue;
            size_t l = strlen(path) + strlen(de->d_name) + 2;
            char *p = malloc(l);
            if (!p) {
                st = nt_fail(err, NT_ERR_NOMEM, "out of memory");
                break;
            }
            snprintf(p, l, "%s/%s", path, de->d_name);
            if (sub.n == sub.cap) {
                sub.cap = sub.cap ? sub.cap * 2 : 16;
                char **np = realloc(sub.paths, sub.cap * sizeof *np);
                if (!np) {
                    free(p);
                    st = nt_fail(err, NT_ERR_NOMEM, "out of memory");
                    break;
                }
                sub.paths = np;
            }
            sub.paths[sub.n++] = p;
        }
        closedir(d);
        if (sub.n) qsort(sub.paths, sub.n, sizeof *sub.paths, cmp_str);
        for (size_t i = 0; i < sub.n; i++) {
            if (st == NT_OK) {
                struct stat cs;
                const char *p = sub.paths[i];
                size_t l = strlen(p);
                int is_dir = stat(p, &cs) == 0 && S_ISDIR(cs.st_mode);
                int wanted = (l > 5 && strcmp(p + l - 5, ".json") == 0) ||
                             (l > 8 && strcmp(p + l - 8, ".json.gz") == 0) ||
                             (l > 7 && strcmp(p + l - 7, ".ndjson") == 0) ||
                             (l > 6 && strcmp(p + l - 6, ".jsonl") == 0);
                if (is_dir || wanted) st = collect_files(p, fl, depth + 1, err);
            }
            free(sub.paths[i]);
        }
        free(sub.paths);
        return st;
    }
    if (fl->n == fl->cap || !fl->paths) {
        size_t cap = fl->cap ? fl->cap * 2 : 16;
        char **np = realloc(fl->paths, cap * sizeof *np);
        if (!np) return nt_fail(err, NT_ERR_NOMEM, "out of memory");
        fl->paths = np;
        fl->cap = cap;
    }
    if (!(fl->paths[fl->n] = strdup(path))) return nt_fail(err, NT_ERR_NOMEM, "out of memory");
    fl->n++;
    return NT_OK;
}

static void file_list_free(file_list *fl)
{
    for (size_t i = 0; i < fl->n; i++)
        free(fl->paths[i]);
    free(fl->paths);
}

/* ---- rules ---------------------------------------------------------------- */

/* Open the --geoip-db files: *out stays NULL when none are configured.
 * Returns 0 (logged) when a file cannot be opened. */
static int open_geoip(const config *c, int quiet, geoip_db **out)
{
    *out = NULL;
    if (c->geoip_dbs.n == 0) return 1;
    nt_err err;
    if (geoip_open((const char *const *)c->geoip_dbs.items, c->geoip_dbs.n, out, &err) != NT_OK) {
        log_msg(NT_LOG_ERROR, "geoip", "%s", err.msg);
        return 0;
    }
    for (size_t i = 0; !quiet && i < geoip_file_count(*out); i++)
        log_json(NT_LOG_INFO, "geoip", "GeoIP database opened",
                 json_pack("{s:s,s:s}", "file", geoip_file_path(*out, i), "database_type",
                           geoip_file_type(*out, i)));
    return 1;
}

/* One warning naming every rule whose source.as.* / source.geo.* fields no
 * configured database can answer. */
static void warn_geoip_rules(const nt_ruleset *rs, const geoip_db *geoip)
{
    char names[2048];
    size_t n = ruleset_geoip_rules(rs, names, sizeof names);
    if (n == 0) return;
    if (!geoip)
        log_json(NT_LOG_WARN, "geoip_missing",
                 "rules use source.as.* / source.geo.* fields but no GeoIP database is configured "
                 "(--geoip-db PATH or NEWTERMSD_GEOIP_DB, e.g. GeoLite2-ASN.mmdb and "
                 "GeoLite2-City.mmdb): those fields are missing and these rules cannot match on "
                 "them",
                 json_pack("{s:I,s:s}", "count", (json_int_t)n, "rules", names));
    else
        log_json(NT_LOG_WARN, "geoip_missing",
                 "rules use source.as.* / source.geo.* fields that none of the configured GeoIP "
                 "databases has (an ASN file gives source.as.*, a City file source.geo.*)",
                 json_pack("{s:I,s:s}", "count", (json_int_t)n, "rules", names));
}

static nt_ruleset *load_rules(const config *c, int quiet, const geoip_db *geoip)
{
    nt_ruleset *rs = NULL;
    nt_err err;
    if (ruleset_load_dir_geoip(c->rules_dir, c->require_all_rules, geoip, &rs, &err) != NT_OK) {
        log_msg(NT_LOG_ERROR, "rules", "%s", err.msg);
        return NULL;
    }
    size_t i;
    json_t *e;
    json_array_foreach(rs->errors, i, e)
    {
        log_json(NT_LOG_ERROR, "rule_error", "rule file not loaded", json_incref(e));
    }
    for (size_t k = 0; k < rs->n; k++) {
        const nt_rule *r = rs->rules[k];
        json_array_foreach(r->warnings, i, e)
        {
            if (!quiet)
                log_json(NT_LOG_WARN, "rule_warning",
                         json_string_value(json_object_get(e, "message")),
                         json_pack("{s:s,s:s,s:O}", "rule_id", r->rule_id, "file", r->path, "code",
                                   json_object_get(e, "code")));
        }
    }
    if (rs->n == 0) {
        log_msg(NT_LOG_ERROR, "rules", "no rule could be loaded from %s", c->rules_dir);
        ruleset_free(rs);
        return NULL;
    }
    warn_geoip_rules(rs, geoip);
    ruleset_set_default_learning(rs, c->learning_ms);
    return rs;
}

/* ---- check-rules ---------------------------------------------------------- */

static int cmd_check_rules(config *c)
{
    const char *dir = c->n_args ? c->args[0] : c->rules_dir;
    nt_ruleset *rs = NULL;
    nt_err err;
    geoip_db *geoip = NULL;
    if (c->geoip_dbs.n && geoip_open((const char *const *)c->geoip_dbs.items, c->geoip_dbs.n,
                                     &geoip, &err) != NT_OK) {
        fprintf(stderr, "error: %s\n", err.msg);
        return 1;
    }
    if (ruleset_load_dir_geoip(dir, 0, geoip, &rs, &err) != NT_OK) {
        fprintf(stderr, "error: %s\n", err.msg);
        geoip_free(geoip);
        return 1;
    }
    size_t warnings = 0, i;
    json_t *e;
    for (size_t k = 0; k < rs->n; k++) {
        const nt_rule *r = rs->rules[k];
        printf("ok      %s  %s (%s)\n", r->path, r->name, r->rule_id);
        json_array_foreach(r->warnings, i, e)
        {
            printf("warning %s: %s\n", r->path, json_string_value(json_object_get(e, "message")));
            warnings++;
        }
    }
    json_array_foreach(rs->errors, i, e)
    {
        printf("error   %s: %s\n", json_string_value(json_object_get(e, "file")),
               json_string_value(json_object_get(e, "message")));
    }
    size_t errors = json_array_size(rs->errors);
    printf("%zu rules loaded, %zu errors, %zu warnings\n", rs->n, errors, warnings);
    ruleset_free(rs);
    geoip_free(geoip);
    return errors ? 1 : 0;
}

/* ---- replay and backfill -------------------------------------------------- */

static void print_summary(const char *what, const pipe_run *p, size_t files, size_t alerts)
{
    fprintf(stderr,
            "%s: %zu files, %zu records accepted, %zu rejected, %llu rule matches, %llu "
            "exception hits, %llu candidates, %zu alerts\n",
            what, files, p->accepted, p->rejected, p->st.rule_matches, p->st.exception_hits,
            p->st.candidates, alerts);
}

/* A file is a saved Firehose delivery (its records are decoded as the
 * service would), or CloudTrail in any shape /v1/events accepts. */
static nt_status replay_buffer(pipe_run *p, const char *buf, size_t len, nt_err *err)
{
    fh_envelope env;
    fh_envelope_init(&env);
    nt_status st;
    if (fh_scan(buf, len, &env, NULL, NULL, NULL) == NT_OK) {
        for (size_t i = 0; i < env.record_count; i++)
            pipe_firehose_record(p, i, env.records[i].data, env.records[i].len,
                                 env.records[i].flags);
        st = NT_OK;
    } else {
        st = pipe_body(p, buf, len, err);
    }
    fh_envelope_free(&env);
    return st;
}

/* The alerts of a committed replay as NDJSON, in event-time order, each with
 * its threshold figures and the events suppressed onto it. Returns how many. */
static size_t replay_print(pipe_run *p)
{
    store_alert_state *states = calloc(p->n_obs ? p->n_obs : 1, sizeof *states);
    if (!states) {
        fprintf(stderr, "error: out of memory\n");
        return 0;
    }
    for (size_t i = 0; i < p->n_obs; i++) {
        const store_obs *o = &p->obs[i];
        if (o->is_new && p->items[i].alert) {
            states[i].has_thr = o->kind == STORE_KIND_THRESHOLD;
            states[i].thr_count = o->thr_count;
            states[i].thr_card = o->thr_card;
            states[i].thr_first = o->thr_first;
            states[i].thr_last = o->thr_last;
            states[i].thr_from = o->seen_ms - o->ttl_ms;
            states[i].has_supp = o->supp_ms > 0;
            states[i].supp_start = states[i].supp_end = o->seen_ms;
        } else if (o->suppressed) {
            for (size_t j = i; j-- > 0;) {
                if (!states[j].has_supp || strcmp(p->items[j].alert_id, o->supp_into) != 0)
                    continue;
                states[j].supp_docs++;
                if (o->seen_ms > states[j].supp_end) states[j].supp_end = o->seen_ms;
                break;
            }
        }
    }
    size_t alerts = 0;
    for (size_t i = 0; i < p->n_obs; i++) {
        if (!p->obs[i].is_new || !p->items[i].alert) continue;
        json_t *a = p->items[i].alert;
        store_alert_apply_state(a, &states[i]);
        json_object_set_new(a, "status", json_string("open"));
        json_object_set_new(a, "status_reason", json_null());
        json_object_set(a, "updated_at", json_object_get(a, "created_at"));
        char *line = json_dumps(a, JSON_COMPACT);
        if (line) {
            puts(line);
            free(line);
        }
        alerts++;
    }
    free(states);
    return alerts;
}

/* The start shared by replay and backfill: at least one FILE|FOLDER argument
 * (else `usage` and 2), the GeoIP files, then the rules. Returns -1 with
 * *geoip and *rs set (the caller frees both), or the exit code. */
static int open_inputs(config *c, const char *usage, geoip_db **geoip, nt_ruleset **rs)
{
    if (c->n_args == 0) {
        fputs(usage, stderr);
        return 2;
    }
    *geoip = NULL;
    if (!open_geoip(c, 1, geoip)) return 1;
    *rs = load_rules(c, 1, *geoip);
    if (!*rs) {
        geoip_free(*geoip);
        return 1;
    }
    return -1;
}

static int cmd_replay(config *c)
{
    geoip_db *geoip;
    nt_ruleset *rs;
    int opened =
        open_inputs(c, "usage: newtermsd replay [--rules DIR] FILE|FOLDER...\n", &geoip, &rs);
    if (opened >= 0) return opened;
    file_list fl = {0};
    nt_err err;
    int rc = 0;
    for (size_t i = 0; i < c->n_args && rc == 0; i++)
        if (collect_files(c->args[i], &fl, 0, &err) != NT_OK) {
            fprintf(stderr, "error: %s\n", err.msg);
            rc = 1;
        }
    memhist *mh = memhist_new();
    pipe_run p;
    pipe_init(&p, rs, NULL, nt_now_ms());
    p.event_clock = 1;
    p.keep_alerts = 1;
    p.prefilter = 0; /* replay parses everything so every bad record is reported */
    for (size_t i = 0; i < fl.n && rc == 0; i++) {
        unsigned char *buf = NULL;
        size_t len = 0;
        if (read_whole(fl.paths[i], &buf, &len, &err) != NT_OK) {
            fprintf(stderr, "error: %s\n", err.msg);
            rc = 1;
            break;
        }
        size_t before = p.n_rejects;
        if (replay_buffer(&p, (const char *)buf, len, &err) != NT_OK)
            fprintf(stderr, "warning: %s: %s\n", fl.paths[i], err.msg);
        for (size_t k = before; k < p.n_rejects; k++)
            fprintf(stderr, "rejected: %s record %zu: %s: %s\n", fl.paths[i],
                    p.rejects[k].record_index, p.rejects[k].reason, p.rejects[k].message);
        free(buf);
    }
    size_t alerts = 0;
    if (rc == 0 && mh) {
        nt_history h = memhist_history(mh);
        if (pipe_commit(&p, &h, &err) != NT_OK) {
            fprintf(stderr, "error: %s\n", err.msg);
            rc = 1;
        }
        if (rc == 0) alerts = replay_print(&p);
    } else if (!mh) {
        rc = 1;
    }
    print_summary("replay", &p, fl.n, alerts);
    pipe_free(&p);
    memhist_free(mh);
    file_list_free(&fl);
    ruleset_free(rs);
    geoip_free(geoip);
    return rc;
}

static int cmd_backfill(config *c)
{
    geoip_db *geoip;
    nt_ruleset *rs;
    int opened = open_inputs(
        c, "usage: newtermsd backfill [--redis URL] [--rules DIR] FILE|FOLDER...\n", &geoip, &rs);
    if (opened >= 0) return opened;
    file_list fl = {0};
    nt_err err;
    int rc = 0;
    store *st = NULL;
    store_config sc;
    config_store(c, &sc);
    sc.command_timeout_ms *= 5; /* backfill sends large batches */
    for (size_t i = 0; i < c->n_args && rc == 0; i++)
        if (collect_files(c->args[i], &fl, 0, &err) != NT_OK) {
            fprintf(stderr, "error: %s\n", err.msg);
            rc = 1;
        }
    if (rc == 0 && (store_open(&st, &sc, &err) != NT_OK || store_ping(st, &err) != NT_OK)) {
        fprintf(stderr, "error: %s\n", err.msg);
        rc = 1;
    }
    size_t records = 0, rejected = 0, written = 0;
    nt_history h = store_history(st);
    for (size_t i = 0; i < fl.n && rc == 0; i++) {
        unsigned char *buf = NULL;
        size_t len = 0;
        if (read_whole(fl.paths[i], &buf, &len, &err) != NT_OK) {
            fprintf(stderr, "error: %s\n", err.msg);
            rc = 1;
            break;
        }
        pipe_run p;
        pipe_init(&p, rs, NULL, nt_now_ms());
        p.backfill = 1;
        p.prefilter = 1;
        if (pipe_body(&p, (const char *)buf, len, &err) != NT_OK)
            fprintf(stderr, "warning: %s: %s\n", fl.paths[i], err.msg);
        free(buf);
        if (pipe_commit(&p, &h, &err) != NT_OK) {
            fprintf(stderr, "error: %s: %s\n", fl.paths[i], err.msg);
            rc = 1;
        }
        records += p.accepted;
        rejected += p.rejected;
        for (size_t k = 0; k < p.n_obs; k++)
            written += p.obs[k].ttl_ms > 0;
        fprintf(stderr,
                "\rbackfill: %zu/%zu files, %zu records, %zu history sightings, %zu rejected",
                i + 1, fl.n, records, written, rejected);
        pipe_free(&p);
    }
    fprintf(stderr, "\n");
    store_free(st);
    file_list_free(&fl);
    ruleset_free(rs);
    geoip_free(geoip);
    return rc;
}

/* ---- serve ---------------------------------------------------------------- */

static int cmd_serve(config *c)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL); /* every thread inherits the mask */
    signal(SIGPIPE, SIG_IGN);
    if (c->firehose_keys.n == 0 && c->ingest_tokens.n == 0)
        log_msg(NT_LOG_WARN, "config",
                "no NEWTERMSD_FIREHOSE_ACCESS_KEY or NEWTERMSD_INGEST_TOKEN is set: every "
                "ingestion request will be refused with 401");
    if (c->read_tokens.n == 0 && c->write_tokens.n == 0)
        log_msg(NT_LOG_WARN, "config",
                "no NEWTERMSD_API_READ_TOKEN or NEWTERMSD_API_WRITE_TOKEN is set: the REST API "
                "refuses every request with 401");
    geoip_db *geoip = NULL;
    if (!open_geoip(c, 0, &geoip)) return 1;
    nt_ruleset *rs = load_rules(c, 0, geoip);
    if (!rs) {
        geoip_free(geoip);
        return 1;
    }
    size_t nrules = rs->n;
    http_server *s = NULL;
    nt_err err;
    if (http_server_start(&s, c, rs, &err) != NT_OK) {
        log_msg(NT_LOG_ERROR, "startup", "%s", err.msg);
        geoip_free(geoip);
        return 1;
    }
    log_json(NT_LOG_INFO, "started", "newtermsd is listening",
             json_pack("{s:s,s:i,s:i,s:I}", "listen", c->listen_host, "port", c->listen_port,
                       "workers", c->workers, "rules", (json_int_t)nrules));
    int sig = 0;
    sigwait(&set, &sig);
    log_msg(NT_LOG_INFO, "stopping", "signal %d: draining in-flight requests", sig);
    http_server_stop(s); /* frees the rule set, the last user of geoip */
    geoip_free(geoip);
    log_msg(NT_LOG_INFO, "stopped", "bye");
    return 0;
}

int main(int argc, char **argv)
{
    /* before any jansson value exists: jansson's allocator is global */
    jarena_install();
    config c;
    nt_err err;
    /* Documentation, not a command: it reads neither flags nor environment. */
    if (argc == 2 && strcmp(argv[1], "config-table") == 0) {
        config_markdown(stdout);
        return 0;
    }
    if (config_parse(&c, argc, argv, getenv_wrapper, &err) != NT_OK) {
        fprintf(stderr, "newtermsd: %s\n(see newtermsd --help)\n", err.msg);
        return 2;
    }
    if (c.help || !c.command) {
        config_usage(stdout);
        config_free(&c);
        return c.help ? 0 : 2;
    }
    log_set_level(c.log_level);
    config_register_secrets(&c);
    int rc;
    if (strcmp(c.command, "serve") == 0)
        rc = cmd_serve(&c);
    else if (strcmp(c.command, "replay") == 0)
        rc = cmd_replay(&c);
    else if (strcmp(c.command, "backfill") == 0)
        rc = cmd_backfill(&c);
    else
        rc = cmd_check_rules(&c);
    config_free(&c);
    return rc;
}

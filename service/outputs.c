/*
 * outputs.c — read and validate the `--outputs` TOML file (see outputs.h).
 *
 * The document goes through the project's own strict TOML reader (toml.c),
 * which gives a jansson tree; this file then walks that tree once, table by
 * table, and stops at the first problem with a sentence that names the table
 * and the key. Secrets are read from the environment (or the file a *_FILE
 * variable names) while validating, so a deployment with a missing routing key
 * fails at startup instead of dead-lettering every alert later. A secret's value
 * never appears in a message; a URL is never quoted either (a Slack incoming
 * webhook URL is itself a credential).
 */
#include "outputs.h"

#include "toml.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define OUTPUTS_FILE_MAX ((size_t)1 << 20)
#define OUTPUTS_SECRET_MAX 4096
#define OUTPUTS_RULES_MAX 1024

static const char *default_getenv(const char *name)
{
    return getenv(name);
}

static void secret_wipe_free(char *s)
{
    if (!s) return;
    volatile char *p = s;
    while (*p)
        *p++ = 0;
    free(s);
}

static void output_clear(output *o)
{
    free(o->name);
    free(o->url);
    free(o->secret_env);
    secret_wipe_free(o->secret);
    for (size_t i = 0; i < o->n_rules; i++)
        free(o->rules[i]);
    free(o->rules);
    memset(o, 0, sizeof *o);
}

void outputs_free(outputs *o)
{
    if (!o) return;
    for (size_t i = 0; i < o->n; i++)
        output_clear(&o->items[i]);
    free(o->items);
    free(o);
}

const output *outputs_find(const outputs *o, const char *name)
{
    if (!o || !name) return NULL;
    for (size_t i = 0; i < o->n; i++)
        if (strcmp(o->items[i].name, name) == 0) return &o->items[i];
    return NULL;
}

const char *output_type_name(output_type t)
{
    switch (t) {
    case OUTPUT_WEBHOOK:
        return "webhook";
    case OUTPUT_SLACK:
        return "slack";
    case OUTPUT_PAGERDUTY:
        return "pagerduty";
    }
    return "?";
}

int output_severity_rank(const char *severity)
{
    static const char *const names[] = {"low", "medium", "high", "critical"};
    if (!severity) return 0;
    for (int i = 0; i < 4; i++)
        if (strcmp(severity, names[i]) == 0) return i + 1;
    return 0;
}

int output_wants(const output *o, const char *rule_id, const char *severity)
{
    if (o->min_severity > 0 && output_severity_rank(severity) < o->min_severity) return 0;
    if (!o->rules) return 1;
    for (size_t i = 0; rule_id && i < o->n_rules; i++)
        if (strcmp(o->rules[i], rule_id) == 0) return 1;
    return 0;
}

/* ---- one [[output]] table ---------------------------------------------------------- */

static int name_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > OUTPUT_NAME_MAX) return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
            return 0;
    return 1;
}

static int env_name_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 128 || !(isalpha((unsigned char)s[0]) || s[0] == '_')) return 0;
    for (size_t i = 1; i < n; i++)
        if (!(isalnum((unsigned char)s[i]) || s[i] == '_')) return 0;
    return 1;
}

static int url_valid(const char *s)
{
    size_t skip = strncmp(s, "https://", 8) == 0 ? 8 : strncmp(s, "http://", 7) == 0 ? 7 : 0;
    if (!skip || s[skip] == '\0' || s[skip] == '/') return 0;
    for (const char *p = s; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f) return 0;
    return strlen(s) <= 2048;
}

/* Reads the secret named by var (or var_FILE) into *out. `who` prefixes messages. */
static nt_status read_secret(const char *who, const char *var, const char *(*env)(const char *),
                             char **out, nt_err *err)
{
    char file_var[160];
    snprintf(file_var, sizeof file_var, "%s_FILE", var);
    const char *direct = env(var), *path = env(file_var);
    if (path && !*path) path = NULL;
    if (direct && path)
        return nt_fail(err, NT_ERR_INVALID, "%s: %s and %s are both set; set only one", who, var,
                       file_var);
    if (!direct && !path)
        return nt_fail(err, NT_ERR_INVALID, "%s: secret_env %s: neither %s nor %s is set", who, var,
                       var, file_var);
    if (direct) {
        if (!*direct) return nt_fail(err, NT_ERR_INVALID, "%s: %s is set but empty", who, var);
        if (strlen(direct) > OUTPUTS_SECRET_MAX)
            return nt_fail(err, NT_ERR_LIMIT, "%s: %s is longer than %d bytes", who, var,
                           OUTPUTS_SECRET_MAX);
        *out = strdup(direct);
        return *out ? NT_OK : nt_fail(err, NT_ERR_NOMEM, "out of memory");
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return nt_fail(err, NT_ERR_IO, "%s: %s: cannot read '%.120s': %s", who, file_var, path,
                       strerror(errno));
    char *buf = malloc(OUTPUTS_SECRET_MAX + 2);
    size_t len = 0;
    nt_status st = NT_OK;
    if (!buf) {
        st = nt_fail(err, NT_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (;;) {
        ssize_t r = read(fd, buf + len, OUTPUTS_SECRET_MAX + 1 - len);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            st = nt_fail(err, NT_ERR_IO, "%s: %s: cannot read '%.120s': %s", who, file_var, path,
                         strerror(errno));
            goto done;
        }
        if (r == 0) break;
        len += (size_t)r;
        if (len > OUTPUTS_SECRET_MAX) {
            st = nt_fail(err, NT_ERR_LIMIT, "%s: %s: '%.120s' is larger than %d bytes", who,
                         file_var, path, OUTPUTS_SECRET_MAX);
            goto done;
        }
    }
    if (len && buf[len - 1] == '\n') {
        len--;
        if (len && buf[len - 1] == '\r') len--;
    }
    buf[len] = '\0';
    if (len == 0 || strlen(buf) != len) {
        st = nt_fail(err, NT_ERR_INVALID, "%s: %s: '%.120s' is empty or holds a NUL byte", who,
                     file_var, path);
        goto done;
    }
    *out = buf;
    buf = NULL;
done:
    secret_wipe_free(buf);
    close(fd);
    return st;
}

static nt_status parse_rules(json_t *arr, output *o, const char *who, nt_err *err)
{
    if (!json_is_array(arr) || json_array_size(arr) > OUTPUTS_RULES_MAX)
        return nt_fail(err, NT_ERR_INVALID,
                       "%s: rules must be an array of at most %d rule id strings", who,
                       OUTPUTS_RULES_MAX);
    size_t n = json_array_size(arr);
    o->rules = calloc(n ? n : 1, sizeof *o->rules);
    if (!o->rules) return nt_fail(err, NT_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const char *id = json_string_value(json_array_get(arr, i));
        if (!id || !*id)
            return nt_fail(err, NT_ERR_INVALID, "%s: rules[%zu] must be a non-empty string", who,
                           i);
        if (!(o->rules[i] = strdup(id))) return nt_fail(err, NT_ERR_NOMEM, "out of memory");
        o->n_rules++;
    }
    return NT_OK;
}

static nt_status parse_output(json_t *t, size_t index, const outputs *done,
                              const char *(*env)(const char *), output *o, nt_err *err)
{
    static const char *const keys[] = {"name",         "type",  "url", "secret_env",
                                       "min_severity", "rules", NULL};
    char who[128];
    snprintf(who, sizeof who, "output %zu", index + 1);
    if (!json_is_object(t))
        return nt_fail(err, NT_ERR_INVALID, "%s: must be a table ([[output]])", who);
    json_t *name = json_object_get(t, "name");
    if (!name) return nt_fail(err, NT_ERR_INVALID, "%s: name is missing", who);
    if (!json_is_string(name) || !name_valid(json_string_value(name)))
        return nt_fail(err, NT_ERR_INVALID, "%s: name must be a string of 1 to %d of [a-z0-9-]",
                       who, OUTPUT_NAME_MAX);
    const char *nm = json_string_value(name);
    snprintf(who, sizeof who, "output %zu (\"%s\")", index + 1, nm);
    for (size_t i = 0; i < done->n; i++)
        if (done->items[i].name && strcmp(done->items[i].name, nm) == 0)
            return nt_fail(err, NT_ERR_INVALID, "%s: name is already used by output %zu", who,
                           i + 1);
    const char *key;
    json_t *v;
    json_object_foreach(t, key, v)
    {
        size_t k = 0;
        while (keys[k] && strcmp(keys[k], key) != 0)
            k++;
        if (!keys[k])
            return nt_fail(err, NT_ERR_INVALID,
                           "%s: unknown key '%.64s' (known: name, type, url, secret_env, "
                           "min_severity, rules)",
                           who, key);
    }
    if (!(o->name = strdup(nm))) return nt_fail(err, NT_ERR_NOMEM, "out of memory");

    json_t *type = json_object_get(t, "type");
    const char *ty = json_string_value(type);
    if (!type) return nt_fail(err, NT_ERR_INVALID, "%s: type is missing", who);
    if (ty && strcmp(ty, "webhook") == 0)
        o->type = OUTPUT_WEBHOOK;
    else if (ty && strcmp(ty, "slack") == 0)
        o->type = OUTPUT_SLACK;
    else if (ty && strcmp(ty, "pagerduty") == 0)
        o->type = OUTPUT_PAGERDUTY;
    else
        return nt_fail(err, NT_ERR_INVALID,
                       "%s: type must be \"webhook\", \"slack\" or "
                       "\"pagerduty\"",
                       who);

    json_t *url = json_object_get(t, "url");
    if (url && !json_is_string(url))
        return nt_fail(err, NT_ERR_INVALID, "%s: url must be a string", who);
    const char *u = url ? json_string_value(url) : NULL;
    if (!u && o->type == OUTPUT_PAGERDUTY) u = OUTPUTS_PAGERDUTY_URL;
    if (!u) return nt_fail(err, NT_ERR_INVALID, "%s: url is missing", who);
    if (!url_valid(u))
        return nt_fail(err, NT_ERR_INVALID,
                       "%s: url must be an http:// or https:// URL with a host and no spaces", who);
    if (!(o->url = strdup(u))) return nt_fail(err, NT_ERR_NOMEM, "out of memory");

    json_t *senv = json_object_get(t, "secret_env");
    if (senv && (!json_is_string(senv) || !env_name_valid(json_string_value(senv))))
        return nt_fail(err, NT_ERR_INVALID,
                       "%s: secret_env must name an environment variable ([A-Za-z_][A-Za-z0-9_]*)",
                       who);
    if (senv && o->type == OUTPUT_SLACK)
        return nt_fail(err, NT_ERR_INVALID,
                       "%s: slack outputs take no secret_env (the webhook URL is the secret)", who);
    if (!senv && o->type == OUTPUT_PAGERDUTY)
        return nt_fail(err, NT_ERR_INVALID,
                       "%s: pagerduty outputs need secret_env (the variable holding the routing "
                       "key)",
                       who);
    if (senv) {
        if (!(o->secret_env = strdup(json_string_value(senv))))
            return nt_fail(err, NT_ERR_NOMEM, "out of memory");
        nt_status st = read_secret(who, o->secret_env, env, &o->secret, err);
        if (st != NT_OK) return st;
    }

    json_t *sev = json_object_get(t, "min_severity");
    if (sev) {
        o->min_severity = output_severity_rank(json_string_value(sev));
        if (!o->min_severity)
            return nt_fail(err, NT_ERR_INVALID,
                           "%s: min_severity must be \"low\", \"medium\", \"high\" or \"critical\"",
                           who);
    }
    json_t *rules = json_object_get(t, "rules");
    if (rules) return parse_rules(rules, o, who, err);
    return NT_OK;
}

nt_status outputs_parse(const char *text, size_t len, const char *(*getenv_fn)(const char *name),
                        outputs **out, nt_err *err)
{
    *out = NULL;
    const char *(*env)(const char *) = getenv_fn ? getenv_fn : default_getenv;
    json_t *doc = NULL;
    nt_status st = toml_parse(text, len, &doc, err);
    if (st != NT_OK) return st;
    outputs *o = calloc(1, sizeof *o);
    if (!o) {
        st = nt_fail(err, NT_ERR_NOMEM, "out of memory");
        goto fail;
    }
    const char *key;
    json_t *v;
    json_object_foreach(doc, key, v)
    {
        if (strcmp(key, "output") != 0) {
            st = nt_fail(err, NT_ERR_INVALID,
                         "unknown top-level key '%.64s' (only [[output]] tables belong here)", key);
            goto fail;
        }
    }
    json_t *arr = json_object_get(doc, "output");
    if (!arr) {
        st = nt_fail(err, NT_ERR_INVALID, "no [[output]] table");
        goto fail;
    }
    if (!json_is_array(arr)) {
        st = nt_fail(err, NT_ERR_INVALID, "output must be an array of tables ([[output]])");
        goto fail;
    }
    size_t n = json_array_size(arr);
    if (n == 0 || n > OUTPUTS_MAX) {
        st =
            nt_fail(err, NT_ERR_LIMIT, "%zu outputs; between 1 and %d are allowed", n, OUTPUTS_MAX);
        goto fail;
    }
    o->items = calloc(n, sizeof *o->items);
    if (!o->items) {
        st = nt_fail(err, NT_ERR_NOMEM, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        st = parse_output(json_array_get(arr, i), i, o, env, &o->items[i], err);
        if (st != NT_OK) {
            output_clear(&o->items[i]);
            goto fail;
        }
        o->n++;
    }
    json_decref(doc);
    *out = o;
    return NT_OK;
fail:
    json_decref(doc);
    outputs_free(o);
    return st;
}

nt_status outputs_load(const char *path, const char *(*getenv_fn)(const char *name), outputs **out,
                       nt_err *err)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return nt_fail(err, NT_ERR_IO, "outputs file %.200s: %s", path, strerror(errno));
    char *buf = malloc(OUTPUTS_FILE_MAX + 1);
    size_t len = buf ? fread(buf, 1, OUTPUTS_FILE_MAX + 1, f) : 0;
    int bad = ferror(f);
    fclose(f);
    if (!buf) return nt_fail(err, NT_ERR_NOMEM, "out of memory");
    nt_status st;
    if (bad) {
        st = nt_fail(err, NT_ERR_IO, "outputs file %.200s: read error", path);
    } else if (len > OUTPUTS_FILE_MAX) {
        st = nt_fail(err, NT_ERR_LIMIT, "outputs file %.200s: larger than %zu bytes", path,
                     OUTPUTS_FILE_MAX);
    } else {
        nt_err inner;
        st = outputs_parse(buf, len, getenv_fn, out, &inner);
        if (st != NT_OK) nt_fail(err, st, "outputs file %.200s: %s", path, inner.msg);
    }
    free(buf);
    return st;
}

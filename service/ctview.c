/*
 * ctview.c — ECS fields of a CloudTrail record, computed on demand.
 *
 * Elastic's AWS CloudTrail integration turns each record into an ECS document
 * with an ingest pipeline (docs/cloudtrail-ecs.md summarises the 8.9.0
 * pipeline field by field). Rules only ever read a handful of fields, so
 * instead of building that document this file answers "what are the values of
 * field F?" straight from the parsed record:
 *
 * - A constant table (CT_FIELDS) lists every static field with its id and
 *   whether its values are verbatim JSON strings of the record. Flattened
 *   payload paths are parsed into (payload, path) and registered on first
 *   resolve; the registry is append-only, so ids never change.
 * - ct_view_get switches on the field and reads the record with the
 *   pipeline's rules: the clean-up pass (null, "", "-", "none" and empty
 *   containers are absent), the user.name order of precedence, the
 *   cloud.account.id fallback, the strict source.ip conversion, the ConsoleLogin
 *   outcome override, and so on. Values point into the record whenever they
 *   are substrings of it.
 * - Derived strings (dates, canonical IPv6, lowercased words, number texts,
 *   Java-map renderings) go into an append-only arena inside ct_event and are
 *   memoised, so asking for a field many times costs no extra scratch.
 * - aws.cloudtrail.request_parameters and its siblings are Java's
 *   Map.toString() of the payload as Elasticsearch parsed it, rendered by
 *   javamap.c. The string is measured first (UTF-8 bytes, UTF-16 units,
 *   depth) and then written into exactly that much arena; the sort keys for
 *   each map borrow arena space past the output.
 *   The flattened copies exist only when that string is shorter than 32766
 *   UTF-16 units, as in the pipeline.
 * - All walks over nested payloads stop at CT_MAX_DEPTH levels, so hostile
 *   nesting cannot exhaust the stack; a payload that deep yields nothing.
 * - source.as.* and source.geo.* come from the geoip_db the schema was given
 *   (ct_schema_set_geoip; none by default, and then they do not resolve). The
 *   first read of any of them parses sourceIPAddress as source.ip does, looks
 *   it up once and keeps the whole answer in the event, so events whose rules
 *   never read these fields never pay for a lookup.
 */
#include "ctview.h"

#include "javamap.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#define CT_MAX_DEPTH 32
#define CT_FLATTENED_MAX_UNITS 32766

/* ---- the field table ------------------------------------------------------ */

/* id, name, verbatim */
#define CT_FIELDS(X)                                                                               \
    X(TIMESTAMP, "@timestamp", 0)                                                                  \
    X(EVENT_INGESTED, "event.ingested", 0)                                                         \
    X(EVENT_ACTION, "event.action", 1)                                                             \
    X(EVENT_PROVIDER, "event.provider", 1)                                                         \
    X(EVENT_OUTCOME, "event.outcome", 0)                                                           \
    X(EVENT_KIND, "event.kind", 0)                                                                 \
    X(EVENT_ID, "event.id", 1)                                                                     \
    X(EVENT_DATASET, "event.dataset", 0)                                                           \
    X(DATA_STREAM_DATASET, "data_stream.dataset", 0)                                               \
    X(ECS_VERSION, "ecs.version", 0)                                                               \
    X(CLOUD_PROVIDER, "cloud.provider", 0)                                                         \
    X(CLOUD_REGION, "cloud.region", 1)                                                             \
    X(CLOUD_ACCOUNT_ID, "cloud.account.id", 1)                                                     \
    X(CLOUD_SERVICE_NAME, "cloud.service.name", 0)                                                 \
    X(USER_NAME, "user.name", 1)                                                                   \
    X(USER_ID, "user.id", 1)                                                                       \
    X(USER_EMAIL, "user.email", 0)                                                                 \
    X(USER_CHANGES_NAME, "user.changes.name", 1)                                                   \
    X(USER_TARGET_NAME, "user.target.name", 1)                                                     \
    X(USER_TARGET_ID, "user.target.id", 1)                                                         \
    X(GROUP_NAME, "group.name", 1)                                                                 \
    X(GROUP_ID, "group.id", 1)                                                                     \
    X(SERVICE_NAME, "service.name", 0)                                                             \
    X(RELATED_USER, "related.user", 0)                                                             \
    X(RELATED_IP, "related.ip", 0)                                                                 \
    X(RELATED_HOSTS, "related.hosts", 1)                                                           \
    X(SOURCE_ADDRESS, "source.address", 1)                                                         \
    X(SOURCE_IP, "source.ip", 0)                                                                   \
    X(USER_AGENT_ORIGINAL, "user_agent.original", 1)                                               \
    X(TLS_VERSION, "tls.version", 0)                                                               \
    X(TLS_VERSION_PROTOCOL, "tls.version_protocol", 0)                                             \
    X(TLS_CIPHER, "tls.cipher", 1)                                                                 \
    X(TLS_CLIENT_SERVER_NAME, "tls.client.server_name", 1)                                         \
    X(CT_EVENT_VERSION, "aws.cloudtrail.event_version", 1)                                         \
    X(CT_EVENT_TYPE, "aws.cloudtrail.event_type", 1)                                               \
    X(CT_EVENT_CATEGORY, "aws.cloudtrail.event_category", 1)                                       \
    X(CT_UI_TYPE, "aws.cloudtrail.user_identity.type", 1)                                          \
    X(CT_UI_ARN, "aws.cloudtrail.user_identity.arn", 1)                                            \
    X(CT_UI_ACCESS_KEY_ID, "aws.cloudtrail.user_identity.access_key_id", 1)                        \
    X(CT_UI_INVOKED_BY, "aws.cloudtrail.user_identity.invoked_by", 1)                              \
    X(CT_UI_MFA_AUTHENTICATED, "aws.cloudtrail.user_identity.session_context.mfa_authenticated",   \
      1)                                                                                           \
    X(CT_UI_CREATION_DATE, "aws.cloudtrail.user_identity.session_context.creation_date", 0)        \
    X(CT_UI_SOURCE_IDENTITY, "aws.cloudtrail.user_identity.session_context.source_identity", 1)    \
    X(CT_UI_EC2_ROLE_DELIVERY, "aws.cloudtrail.user_identity.session_context.ec2_role_delivery",   \
      1)                                                                                           \
    X(CT_UI_ISSUER_TYPE, "aws.cloudtrail.user_identity.session_context.session_issuer.type", 1)    \
    X(CT_UI_ISSUER_ARN, "aws.cloudtrail.user_identity.session_context.session_issuer.arn", 1)      \
    X(CT_UI_ISSUER_PRINCIPAL_ID,                                                                   \
      "aws.cloudtrail.user_identity.session_context.session_issuer.principal_id", 1)               \
    X(CT_UI_ISSUER_ACCOUNT_ID,                                                                     \
      "aws.cloudtrail.user_identity.session_context.session_issuer.account_id", 1)                 \
    X(CT_UI_OBO_USER_ID, "aws.cloudtrail.user_identity.on_behalf_of.user_id", 1)                   \
    X(CT_UI_OBO_STORE_ARN, "aws.cloudtrail.user_identity.on_behalf_of.identity_store_arn", 1)      \
    X(CT_UI_CREDENTIAL_ID, "aws.cloudtrail.user_identity.credential_id", 1)                        \
    X(CT_UI_IDENTITY_PROVIDER, "aws.cloudtrail.user_identity.identity_provider", 1)                \
    X(CT_SESSION_CRED_CONSOLE, "aws.cloudtrail.session_credential_from_console", 1)                \
    X(CT_ERROR_CODE, "aws.cloudtrail.error_code", 1)                                               \
    X(CT_ERROR_MESSAGE, "aws.cloudtrail.error_message", 1)                                         \
    X(CT_RECIPIENT_ACCOUNT_ID, "aws.cloudtrail.recipient_account_id", 1)                           \
    X(CT_REQUEST_ID, "aws.cloudtrail.request_id", 1)                                               \
    X(CT_SHARED_EVENT_ID, "aws.cloudtrail.shared_event_id", 1)                                     \
    X(CT_VPC_ENDPOINT_ID, "aws.cloudtrail.vpc_endpoint_id", 1)                                     \
    X(CT_MANAGEMENT_EVENT, "aws.cloudtrail.management_event", 0)                                   \
    X(CT_READ_ONLY, "aws.cloudtrail.read_only", 0)                                                 \
    X(CT_RESOURCES_ARN, "aws.cloudtrail.resources.arn", 1)                                         \
    X(CT_RESOURCES_ACCOUNT_ID, "aws.cloudtrail.resources.account_id", 1)                           \
    X(CT_RESOURCES_TYPE, "aws.cloudtrail.resources.type", 1)                                       \
    X(CT_REQUEST_PARAMETERS, "aws.cloudtrail.request_parameters", 0)                               \
    X(CT_RESPONSE_ELEMENTS, "aws.cloudtrail.response_elements", 0)                                 \
    X(CT_ADDITIONAL_EVENTDATA, "aws.cloudtrail.additional_eventdata", 0)                           \
    X(CT_SERVICE_EVENT_DETAILS, "aws.cloudtrail.service_event_details", 0)                         \
    X(CT_FLAT_REQUEST_PARAMETERS, "aws.cloudtrail.flattened.request_parameters", 0)                \
    X(CT_FLAT_RESPONSE_ELEMENTS, "aws.cloudtrail.flattened.response_elements", 0)                  \
    X(CT_FLAT_ADDITIONAL_EVENTDATA, "aws.cloudtrail.flattened.additional_eventdata", 0)            \
    X(CT_FLAT_SERVICE_EVENT_DETAILS, "aws.cloudtrail.flattened.service_event_details", 0)          \
    X(CT_CONSOLE_MFA_USED, "aws.cloudtrail.console_login.additional_eventdata.mfa_used", 0)        \
    X(CT_CONSOLE_MOBILE_VERSION,                                                                   \
      "aws.cloudtrail.console_login.additional_eventdata.mobile_version", 0)                       \
    X(CT_CONSOLE_LOGIN_TO, "aws.cloudtrail.console_login.additional_eventdata.login_to", 1)        \
    CT_GEO_FIELDS(X)

/* The enrichment fields, in geoip_field order (geoip.h); they resolve only in
 * a schema given a geoip_db that can answer them (ct_schema_set_geoip). */
#define CT_GEO_FIELDS(X)                                                                           \
    X(SOURCE_AS_NUMBER, "source.as.number", 0)                                                     \
    X(SOURCE_AS_ORG_NAME, "source.as.organization.name", 0)                                        \
    X(SOURCE_GEO_COUNTRY_ISO_CODE, "source.geo.country_iso_code", 0)                               \
    X(SOURCE_GEO_COUNTRY_NAME, "source.geo.country_name", 0)                                       \
    X(SOURCE_GEO_CONTINENT_CODE, "source.geo.continent_code", 0)                                   \
    X(SOURCE_GEO_CONTINENT_NAME, "source.geo.continent_name", 0)                                   \
    X(SOURCE_GEO_REGION_ISO_CODE, "source.geo.region_iso_code", 0)                                 \
    X(SOURCE_GEO_REGION_NAME, "source.geo.region_name", 0)                                         \
    X(SOURCE_GEO_CITY_NAME, "source.geo.city_name", 0)                                             \
    X(SOURCE_GEO_LOCATION, "source.geo.location", 0)

enum ct_field {
#define X(id, name, verbatim) F_##id,
    CT_FIELDS(X)
#undef X
        F_STATIC_COUNT
};

_Static_assert(F_SOURCE_GEO_LOCATION - F_SOURCE_AS_NUMBER == GEOIP_LOCATION - GEOIP_AS_NUMBER &&
                   F_SOURCE_GEO_LOCATION + 1 == F_STATIC_COUNT,
               "CT_GEO_FIELDS follows geoip_field and ends the table");

static int is_geo_field(int f)
{
    return f >= F_SOURCE_AS_NUMBER && f <= F_SOURCE_GEO_LOCATION;
}

static const struct {
    const char *name;
    unsigned char verbatim;
} static_fields[] = {
#define X(id, name, verbatim) {name, verbatim},
    CT_FIELDS(X)
#undef X
};

/* The four payloads: raw key, flattened prefix, string field, flattened root. */
enum { P_REQUEST, P_RESPONSE, P_ADDITIONAL, P_SERVICE, P_COUNT };
static const struct {
    const char *raw;
    const char *flat_prefix;
} payloads[P_COUNT] = {
    {"requestParameters", "aws.cloudtrail.flattened.request_parameters"},
    {"responseElements", "aws.cloudtrail.flattened.response_elements"},
    {"additionalEventData", "aws.cloudtrail.flattened.additional_eventdata"},
    {"serviceEventDetails", "aws.cloudtrail.flattened.service_event_details"},
};

/* ---- schema ----------------------------------------------------------------- */

typedef struct ct_dynamic {
    char *name;
    size_t len;
    int payload;
    size_t path_off; /* path = name + path_off, up to len */
} ct_dynamic;

/* Flattened paths may be registered while events are being read (an exception
 * created through the API names a new path), so the array never moves: it is
 * allocated whole, appends happen under `lock`, and n_dyn is published with
 * release/acquire so a reader sees only complete entries. */
struct ct_schema {
    const geoip_db *geoip; /* borrowed; NULL = no enrichment fields */
    ct_dynamic *dyn;       /* CT_SCHEMA_MAX_DYNAMIC entries, never reallocated */
    atomic_size_t n_dyn;
    pthread_mutex_t lock;
};

/* A resolved field: a static one, or a flattened payload path. */
typedef struct ct_spec {
    int field;   /* enum ct_field, or -1 for a flattened path */
    int payload; /* for flattened: which payload */
    const char *path;
    size_t plen; /* 0 = the root: every leaf */
} ct_spec;

ct_schema *ct_schema_new(void)
{
    ct_schema *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->dyn = calloc(CT_SCHEMA_MAX_DYNAMIC, sizeof *s->dyn);
    if (!s->dyn) {
        free(s);
        return NULL;
    }
    atomic_init(&s->n_dyn, 0);
    pthread_mutex_init(&s->lock, NULL);
    return s;
}

void ct_schema_free(ct_schema *s)
{
    if (!s) return;
    size_t n = atomic_load(&s->n_dyn);
    for (size_t i = 0; i < n; i++)
        free(s->dyn[i].name);
    free(s->dyn);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

/* Whether the schema's databases can answer enrichment field f. */
static int geo_available(const ct_schema *s, int f)
{
    return s &&
           (geoip_kinds(s->geoip) & geoip_field_kind((geoip_field)(f - F_SOURCE_AS_NUMBER))) != 0;
}

static int static_lookup(const ct_schema *s, const char *name, size_t len)
{
    for (int i = 0; i < F_STATIC_COUNT; i++)
        if (strlen(static_fields[i].name) == len && memcmp(static_fields[i].name, name, len) == 0)
            return is_geo_field(i) && !geo_available(s, i) ? -1 : i;
    return -1;
}

void ct_schema_set_geoip(ct_schema *s, const geoip_db *g)
{
    if (s) s->geoip = g;
}

const geoip_db *ct_schema_geoip(const ct_schema *s)
{
    return s ? s->geoip : NULL;
}

/* Payload index when name is "<flat_prefix>.<non-empty path>", else -1. */
static int flat_parse(const char *name, size_t len, size_t *path_off)
{
    for (int p = 0; p < P_COUNT; p++) {
        size_t pl = strlen(payloads[p].flat_prefix);
        if (len > pl + 1 && memcmp(name, payloads[p].flat_prefix, pl) == 0 && name[pl] == '.') {
            *path_off = pl + 1;
            return p;
        }
    }
    return -1;
}

static void spec_static(int f, ct_spec *spec)
{
    spec->field = f;
    spec->payload = -1;
    spec->path = NULL;
    spec->plen = 0;
    if (f >= F_CT_FLAT_REQUEST_PARAMETERS && f <= F_CT_FLAT_SERVICE_EVENT_DETAILS) {
        spec->field = -1;
        spec->payload = f - F_CT_FLAT_REQUEST_PARAMETERS;
        spec->path = "";
    }
}

/* Build a spec from a name without registering anything; 0 on success, -1
 * when the view cannot produce the field. */
static int spec_lookup(const ct_schema *s, const char *name, size_t len, ct_spec *spec)
{
    int f = static_lookup(s, name, len);
    if (f >= 0) {
        spec_static(f, spec);
        return 0;
    }
    size_t off;
    int p = flat_parse(name, len, &off);
    if (p < 0 || len > CT_FIELD_NAME_MAX) return -1;
    spec->field = -1;
    spec->payload = p;
    spec->path = name + off;
    spec->plen = len - off;
    return 0;
}

static int spec_by_id(const ct_schema *s, int id, ct_spec *spec)
{
    if (id < 0) return -1;
    if (id < F_STATIC_COUNT) {
        spec_static(id, spec);
        return 0;
    }
    size_t d = (size_t)id - F_STATIC_COUNT;
    if (!s || d >= atomic_load_explicit(&s->n_dyn, memory_order_acquire)) return -1;
    spec->field = -1;
    spec->payload = s->dyn[d].payload;
    spec->path = s->dyn[d].name + s->dyn[d].path_off;
    spec->plen = s->dyn[d].len - s->dyn[d].path_off;
    return 0;
}

int ct_schema_resolve(ct_schema *s, const char *name, size_t len)
{
    if (!s || !name) return -1;
    int f = static_lookup(s, name, len);
    if (f >= 0) return f;
    size_t off;
    int p = flat_parse(name, len, &off);
    if (p < 0 || len > CT_FIELD_NAME_MAX) return -1;
    pthread_mutex_lock(&s->lock);
    size_t n = atomic_load_explicit(&s->n_dyn, memory_order_relaxed);
    int id = -1;
    for (size_t i = 0; i < n && id < 0; i++)
        if (s->dyn[i].len == len && memcmp(s->dyn[i].name, name, len) == 0)
            id = F_STATIC_COUNT + (int)i;
    if (id < 0 && n < CT_SCHEMA_MAX_DYNAMIC) {
        char *copy = malloc(len + 1);
        if (copy) {
            memcpy(copy, name, len);
            copy[len] = '\0';
            s->dyn[n] = (ct_dynamic){copy, len, p, off};
            atomic_store_explicit(&s->n_dyn, n + 1, memory_order_release);
            id = F_STATIC_COUNT + (int)n;
        }
    }
    pthread_mutex_unlock(&s->lock);
    return id;
}

const char *ct_schema_field_name(const ct_schema *s, int field)
{
    if (!s || field < 0) return NULL;
    if (field < F_STATIC_COUNT) return static_fields[field].name;
    size_t d = (size_t)field - F_STATIC_COUNT;
    return d < atomic_load_explicit(&s->n_dyn, memory_order_acquire) ? s->dyn[d].name : NULL;
}

size_t ct_schema_field_count(const ct_schema *s)
{
    return s ? F_STATIC_COUNT + atomic_load_explicit(&s->n_dyn, memory_order_acquire) : 0;
}

int ct_schema_verbatim(const ct_schema *s, int field)
{
    (void)s;
    return field >= 0 && field < F_STATIC_COUNT ? static_fields[field].verbatim : 0;
}

static int source_resolve(void *ctx, const char *name, size_t len)
{
    return ct_schema_resolve(ctx, name, len);
}

static size_t source_get(void *ctx, void *event, int field, nt_value *out, size_t max)
{
    (void)ctx;
    return ct_view_get(event, field, out, max);
}

/* 1 for the static fields ct_schema_verbatim names; 2 for a flattened
 * payload path: its values are the payload's string leaves, verbatim, or the
 * texts of its number and boolean leaves (see flat_collect). */
static int source_verbatim(void *ctx, int field)
{
    ct_spec spec;
    if (spec_by_id(ctx, field, &spec) == 0 && spec.field == -1) return 2;
    return ct_schema_verbatim(ctx, field);
}

/* A flattened payload path "a.b.c" has values only when the payload holds
 * keys spelling it, the last of which is "c", "b.c" or "a.b.c" (flat_collect
 * also matches dotted keys): each ends with `c`. The root has no key. */
static const char *source_key_suffix(void *ctx, int field, size_t *len)
{
    ct_spec spec;
    if (spec_by_id(ctx, field, &spec) != 0 || spec.field != -1 || spec.plen == 0) return NULL;
    const char *last = spec.path + spec.plen;
    while (last > spec.path && last[-1] != '.')
        last--;
    *len = (size_t)(spec.path + spec.plen - last);
    return *len ? last : NULL;
}

nt_field_source ct_schema_source(ct_schema *s)
{
    return (nt_field_source){s, source_resolve, source_get, source_verbatim, source_key_suffix};
}

/* ---- small JSON helpers (clean-up semantics) ------------------------------- */

static int empty_text(const char *p, size_t n)
{
    return n == 0 || (n == 1 && p[0] == '-') || (n == 4 && memcmp(p, "none", 4) == 0);
}

static json_t *obj_get(json_t *obj, const char *key)
{
    return json_is_object(obj) ? json_object_get(obj, key) : NULL;
}

static json_t *obj_obj(json_t *obj, const char *key)
{
    json_t *v = obj_get(obj, key);
    return json_is_object(v) ? v : NULL;
}

/* A string member that survives the clean-up pass. */
static ct_str str_of(json_t *v)
{
    ct_str s = {NULL, 0};
    if (json_is_string(v)) {
        const char *p = json_string_value(v);
        size_t n = json_string_length(v);
        if (!empty_text(p, n)) {
            s.ptr = p;
            s.len = n;
        }
    }
    return s;
}

static ct_str get_str(json_t *obj, const char *key)
{
    return str_of(obj_get(obj, key));
}

static int str_eq(ct_str s, const char *lit)
{
    size_t n = strlen(lit);
    return s.ptr && s.len == n && memcmp(s.ptr, lit, n) == 0;
}

static const char *mem_find(const char *h, size_t hn, const char *needle)
{
    size_t nn = strlen(needle);
    if (nn > hn) return NULL;
    for (size_t i = 0; i + nn <= hn; i++)
        if (memcmp(h + i, needle, nn) == 0) return h + i;
    return NULL;
}

/* Whether a value survives the clean-up pass (bottom-up: containers whose
 * members are all absent are absent). Beyond CT_MAX_DEPTH: present. */
static int json_present(json_t *v, unsigned depth)
{
    if (!v || json_typeof(v) == JSON_NULL) return 0;
    if (json_is_string(v)) return !empty_text(json_string_value(v), json_string_length(v));
    if (depth >= CT_MAX_DEPTH) return 1;
    if (json_is_object(v)) {
        const char *k;
        json_t *m;
        json_object_foreach(v, k, m) if (json_present(m, depth + 1)) return 1;
        return 0;
    }
    if (json_is_array(v)) {
        size_t i;
        json_t *m;
        json_array_foreach(v, i, m) if (json_present(m, depth + 1)) return 1;
        return 0;
    }
    return 1;
}

/* ---- arena, memo and value output -------------------------------------------- */

static char *arena_alloc(ct_event *ev, size_t n)
{
    if (n > ev->arena_cap - ev->arena_used) {
        ev->dropped++;
        return NULL;
    }
    char *p = ev->arena + ev->arena_used;
    ev->arena_used += n;
    return p;
}

static int memo_find(ct_event *ev, uintptr_t key, ct_str *out)
{
    for (size_t i = 0; i < ev->memo_used; i++)
        if (ev->memo[i].key == key) {
            out->ptr = ev->memo[i].ptr;
            out->len = ev->memo[i].len;
            return 1;
        }
    return 0;
}

static void memo_put(ct_event *ev, uintptr_t key, const char *p, size_t n)
{
    if (ev->memo_used < CT_EVENT_MEMO) ev->memo[ev->memo_used++] = (ct_memo){key, p, n};
}

/* Copy n bytes into the arena and memoise them under key. */
static ct_str memo_store(ct_event *ev, uintptr_t key, const char *p, size_t n)
{
    ct_str s = {NULL, 0};
    char *dst = arena_alloc(ev, n ? n : 1);
    if (!dst) return s;
    memcpy(dst, p, n);
    memo_put(ev, key, dst, n);
    s.ptr = dst;
    s.len = n;
    return s;
}

#define MEMO_FIELD(f) ((uintptr_t)(f) + 1)

typedef struct vout {
    nt_value *out;
    size_t max, n;
    ct_event *ev;
    json_t **nodes; /* optional: the JSON leaf behind each value (fields_json) */
} vout;

static void vput(vout *o, const char *p, size_t len, nt_value_type t, json_t *node)
{
    if (!p) return;
    for (size_t i = 0; i < o->n; i++)
        if (o->out[i].len == len && o->out[i].type == t && memcmp(o->out[i].ptr, p, len) == 0)
            return;
    if (o->n >= o->max) {
        o->ev->dropped++;
        return;
    }
    if (o->nodes) o->nodes[o->n] = node;
    o->out[o->n++] = (nt_value){p, len, t};
}

static void vput_str(vout *o, ct_str s)
{
    vput(o, s.ptr, s.len, NT_VAL_STRING, NULL);
}

static void vput_lit(vout *o, const char *lit)
{
    vput(o, lit, strlen(lit), NT_VAL_STRING, NULL);
}

/* ---- identity ------------------------------------------------------------------ */

static int is_email(ct_str s)
{
    if (!s.ptr) return 0;
    const char *at = memchr(s.ptr, '@', s.len);
    return at && at > s.ptr;
}

/* arn:<partition>:sts:… */
static int is_sts_arn(ct_str a)
{
    if (!a.ptr || a.len < 4 || memcmp(a.ptr, "arn:", 4) != 0) return 0;
    const char *p = memchr(a.ptr + 4, ':', a.len - 4);
    if (!p) return 0;
    size_t rest = a.len - (size_t)(p + 1 - a.ptr);
    return rest >= 4 && memcmp(p + 1, "sts:", 4) == 0;
}

static ct_str after_last_slash(ct_str a)
{
    ct_str s = {NULL, 0};
    for (size_t i = a.len; i > 0; i--)
        if (a.ptr[i - 1] == '/') {
            if (i < a.len) {
                s.ptr = a.ptr + i;
                s.len = a.len - i;
            }
            break;
        }
    return s;
}

/* Decide who acted, once per event (pipeline steps "user.name" 1-5). */
/* The userIdentity object (cached), or NULL when absent or not an object. */
static json_t *user_identity(ct_event *ev)
{
    if (!ev->ui_done) {
        ev->ui_done = 1;
        ev->user_identity = obj_obj(ev->record, "userIdentity");
    }
    return ev->user_identity;
}

static void identity(ct_event *ev)
{
    if (ev->identity_done) return;
    ev->identity_done = 1; /* 2 once identity_full has run */
    json_t *ui = user_identity(ev);
    if (!ui) return;
    ct_str type = get_str(ui, "type");
    json_t *si = obj_obj(obj_obj(ui, "sessionContext"), "sessionIssuer");
    ct_str si_arn = get_str(si, "arn");
    static const char slr[] = ":role/aws-service-role/";
    const char *slr_at = si_arn.ptr ? mem_find(si_arn.ptr, si_arn.len, slr) : NULL;
    int assumed = str_eq(type, "AssumedRole");

    if (str_eq(type, "AWSService") || (assumed && slr_at)) {
        ev->service_actor = 1;
        ev->service_name = get_str(ui, "invokedBy");
        if (!ev->service_name.ptr && slr_at) {
            const char *p = slr_at + sizeof slr - 1, *end = si_arn.ptr + si_arn.len;
            const char *slash = memchr(p, '/', (size_t)(end - p));
            if (slash && slash > p) ev->service_name = (ct_str){p, (size_t)(slash - p)};
        }
    } else {
        ev->user_name = get_str(ui, "userName");
        if (assumed || str_eq(type, "FederatedUser")) {
            ct_str issuer = get_str(si, "userName");
            if (issuer.ptr) ev->user_name = issuer;
        }
        ev->user_id = get_str(ui, "principalId");
        if (!ev->user_id.ptr && str_eq(type, "IdentityCenterUser"))
            ev->user_id = get_str(obj_obj(ui, "onBehalfOf"), "userId");
    }
    if (assumed || str_eq(type, "FederatedUser") || str_eq(type, "IdentityCenterUser")) {
        ct_str arn = get_str(ui, "arn");
        if (is_sts_arn(arn)) ev->session_name = after_last_slash(arn);
    }
}

/* Identity plus the UserAuthentication rule, which needs the event name. */
static void identity_full(ct_event *ev)
{
    if (ev->identity_done == 2) return;
    identity(ev);
    ev->identity_done = 2;
    if (!ev->service_actor && !ev->user_name.ptr &&
        str_eq(get_str(ev->record, "eventName"), "UserAuthentication")) {
        ct_str u = get_str(obj_obj(ev->record, "additionalEventData"), "UserName");
        if (u.ptr) {
            ev->user_name = u;
            ev->hide_additional_username = 1;
        }
    }
    if (!ev->service_actor) {
        if (is_email(ev->user_name))
            ev->email = ev->user_name;
        else if (is_email(ev->session_name))
            ev->email = ev->session_name;
    }
}

/* ---- IP addresses --------------------------------------------------------------- */

/* Dotted quad, each part 0-255 in 1-3 digits without leading zeros. */
static int parse_ipv4(const char *s, size_t n, unsigned char out[4])
{
    size_t i = 0;
    for (int part = 0; part < 4; part++) {
        if (part > 0) {
            if (i >= n || s[i] != '.') return 0;
            i++;
        }
        size_t start = i;
        unsigned v = 0;
        while (i < n && s[i] >= '0' && s[i] <= '9' && i - start < 3)
            v = v * 10 + (unsigned)(s[i++] - '0');
        size_t digits = i - start;
        if (digits == 0 || v > 255 || (digits > 1 && s[start] == '0')) return 0;
        out[part] = (unsigned char)v;
    }
    return i == n;
}

/* RFC 4291 text form: up to 8 groups of 1-4 hex digits, at most one "::",
 * optionally ending in a dotted quad; no zone index, no brackets. */
static int parse_ipv6(const char *s, size_t n, unsigned char out[16])
{
    unsigned short g[8];
    int ng = 0, gap = -1;
    size_t i = 0;
    if (n < 2) return 0;
    if (s[0] == ':') {
        if (s[1] != ':') return 0;
        gap = 0;
        i = 2;
        if (i == n) goto done;
    }
    for (;;) {
        size_t start = i;
        unsigned v = 0;
        while (i < n && nt_hex_digit(s[i]) >= 0 && i - start < 5)
            v = v * 16 + (unsigned)nt_hex_digit(s[i++]);
        size_t digits = i - start;
        if (i < n && s[i] == '.') { /* embedded IPv4 in the last 32 bits */
            unsigned char v4[4];
            if (ng > 6 || !parse_ipv4(s + start, n - start, v4)) return 0;
            g[ng++] = (unsigned short)(v4[0] << 8 | v4[1]);
            g[ng++] = (unsigned short)(v4[2] << 8 | v4[3]);
            break;
        }
        if (digits == 0 || digits > 4 || ng >= 8) return 0;
        g[ng++] = (unsigned short)v;
        if (i == n) break;
        if (s[i] != ':') return 0;
        i++;
        if (i < n && s[i] == ':') {
            if (gap >= 0) return 0;
            gap = ng;
            i++;
            if (i == n) break;
        } else if (i == n) {
            return 0; /* trailing single colon */
        }
    }
done:
    if (gap < 0 ? ng != 8 : ng > 7) return 0;
    memset(out, 0, 16);
    int tail = gap < 0 ? 0 : ng - gap;
    for (int k = 0; k < ng; k++) {
        size_t pos = (size_t)((gap >= 0 && k >= gap) ? 8 - tail + (k - gap) : k);
        out[2 * pos] = (unsigned char)(g[k] >> 8);
        out[2 * pos + 1] = (unsigned char)(g[k] & 0xff);
    }
    return 1;
}

/* Canonical text of a 16-byte address (RFC 5952; IPv4-mapped as dotted quad,
 * as Elasticsearch prints them). Returns the length written into buf[64]. */
static size_t format_ipv6(const unsigned char a[16], char buf[64])
{
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (memcmp(a, mapped, 12) == 0)
        return (size_t)snprintf(buf, 64, "%u.%u.%u.%u", a[12], a[13], a[14], a[15]);
    unsigned g[8];
    for (size_t k = 0; k < 8; k++)
        g[k] = (unsigned)a[2 * k] << 8 | a[2 * k + 1];
    int best = -1, best_len = 1;
    for (int k = 0; k < 8;) {
        if (g[k] != 0) {
            k++;
            continue;
        }
        int j = k;
        while (j < 8 && g[j] == 0)
            j++;
        if (j - k > best_len) {
            best = k;
            best_len = j - k;
        }
        k = j;
    }
    size_t len = 0;
    for (int k = 0; k < 8; k++) {
        if (k == best) {
            len += (size_t)snprintf(buf + len, 64 - len, "::");
            k += best_len - 1;
            continue;
        }
        if (len > 0 && buf[len - 1] != ':') buf[len++] = ':';
        len += (size_t)snprintf(buf + len, 64 - len, "%x", g[k]);
    }
    buf[len] = '\0';
    return len;
}

/* source.ip: the canonical address when sourceIPAddress is a literal IP. */
static ct_str source_ip(ct_event *ev)
{
    ct_str raw = get_str(ev->record, "sourceIPAddress"), none = {NULL, 0}, memo;
    if (!raw.ptr) return none;
    unsigned char a[16];
    if (parse_ipv4(raw.ptr, raw.len, a)) return raw;
    if (memo_find(ev, MEMO_FIELD(F_SOURCE_IP), &memo)) return memo;
    if (!parse_ipv6(raw.ptr, raw.len, a)) return none;
    char buf[64];
    size_t n = format_ipv6(a, buf);
    if (n == raw.len && memcmp(buf, raw.ptr, n) == 0) return raw;
    return memo_store(ev, MEMO_FIELD(F_SOURCE_IP), buf, n);
}

/* The address of source.ip as 16 bytes (IPv4 as ::ffff:a.b.c.d); 0 when
 * source.ip is missing. */
static int source_addr(ct_event *ev, unsigned char a[16])
{
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    ct_str raw = get_str(ev->record, "sourceIPAddress");
    if (!raw.ptr) return 0;
    if (parse_ipv4(raw.ptr, raw.len, a + 12)) {
        memcpy(a, mapped, sizeof mapped);
        return 1;
    }
    return parse_ipv6(raw.ptr, raw.len, a);
}

/* source.as.* / source.geo.*: one lookup per event, on first use. */
static void get_geo(ct_event *ev, int f, vout *o)
{
    if (!geo_available(ev->schema, f)) return;
    if (!ev->geo_done) {
        unsigned char a[16];
        ev->geo_done = 1;
        if (source_addr(ev, a))
            geoip_lookup(ev->schema->geoip, a, &ev->geo);
        else
            ev->geo.present = 0;
    }
    geoip_field g = (geoip_field)(f - F_SOURCE_AS_NUMBER);
    if (!((ev->geo.present >> g) & 1u)) return;
    vput(o, ev->geo.ptr[g], ev->geo.len[g], g == GEOIP_AS_NUMBER ? NT_VAL_NUMBER : NT_VAL_STRING,
         NULL);
}

/* Text of a JSON number or boolean leaf: static for booleans, memoised in the
 * arena (keyed by the node) for numbers. */
static ct_str scalar_text(ct_event *ev, json_t *v)
{
    ct_str s = {NULL, 0};
    if (json_is_true(v)) return (ct_str){"true", 4};
    if (json_is_false(v)) return (ct_str){"false", 5};
    if (!json_is_number(v)) return s;
    if (memo_find(ev, (uintptr_t)v, &s)) return s;
    char buf[40];
    size_t n = json_is_integer(v) ? (size_t)snprintf(buf, sizeof buf, "%" JSON_INTEGER_FORMAT,
                                                     json_integer_value(v))
                                  : javamap_double(json_real_value(v), buf);
    return memo_store(ev, (uintptr_t)v, buf, n);
}

static json_t *payload_json(ct_event *ev, int p)
{
    json_t *v = obj_obj(ev->record, payloads[p].raw);
    return v;
}

static const char *payload_hide(ct_event *ev, int p)
{
    if (p != P_ADDITIONAL) return NULL;
    identity_full(ev);
    return ev->hide_additional_username ? "UserName" : NULL;
}

/* Measure the Java rendering once: ok = the payload is an object with
 * something left after clean-up, within the depth limit. */
static ct_payload_cache *payload_measure(ct_event *ev, int p)
{
    ct_payload_cache *c = &ev->payload[p];
    if (c->measured) return c;
    c->measured = 1;
    json_t *v = payload_json(ev, p);
    if (!v) return c;
    javamap_writer w = {.absent = empty_text, .depth_limit = CT_MAX_DEPTH};
    int any = javamap_write(&w, v, payload_hide(ev, p));
    if (!any || w.fail) return c;
    c->ok = 1;
    c->bytes = w.len;
    c->units = w.units;
    return c;
}

static ct_str payload_string(ct_event *ev, int p)
{
    ct_str none = {NULL, 0};
    ct_payload_cache *c = payload_measure(ev, p);
    if (!c->ok || c->render_failed) return none;
    if (c->text) return (ct_str){c->text, c->bytes};
    size_t mark = ev->arena_used;
    char *dst = arena_alloc(ev, c->bytes);
    if (!dst) {
        c->render_failed = 1;
        return none;
    }
    javamap_writer w = {.absent = empty_text, .depth_limit = CT_MAX_DEPTH};
    w.buf = dst;
    w.cap = c->bytes;
    w.tmp = ev->arena + ev->arena_used;
    w.tmp_cap = ev->arena_cap - ev->arena_used;
    int any = javamap_write(&w, payload_json(ev, p), payload_hide(ev, p));
    if (!any || w.fail || w.len != c->bytes) {
        ev->arena_used = mark;
        ev->dropped++;
        c->render_failed = 1;
        return none;
    }
    c->text = dst;
    return (ct_str){dst, c->bytes};
}

/* ---- flattened paths ------------------------------------------------------------ */

/* Leaf values of v at path (dots walk objects, arrays are transparent). With
 * plen == 0 at the start (`all`), every leaf below v. */
static void flat_collect(ct_event *ev, json_t *v, const char *path, size_t plen, int all,
                         unsigned depth, const char *hide, vout *o)
{
    if (depth > CT_MAX_DEPTH || o->n >= o->max) return;
    if (json_is_array(v)) {
        size_t i;
        json_t *m;
        json_array_foreach(v, i, m) flat_collect(ev, m, path, plen, all, depth + 1, NULL, o);
        return;
    }
    if (json_is_object(v)) {
        const char *key;
        json_t *m;
        void *tmp;
        size_t klen;
        json_object_keylen_foreach_safe(v, tmp, key, klen, m)
        {
            if (hide && strlen(hide) == klen && memcmp(key, hide, klen) == 0) continue;
            if (all) {
                flat_collect(ev, m, path, 0, 1, depth + 1, NULL, o);
            } else if (plen >= klen && memcmp(path, key, klen) == 0) {
                if (plen == klen)
                    flat_collect(ev, m, path + klen, 0, 0, depth + 1, NULL, o);
                else if (path[klen] == '.')
                    flat_collect(ev, m, path + klen + 1, plen - klen - 1, 0, depth + 1, NULL, o);
            }
        }
        return;
    }
    if (!all && plen > 0) return;
    if (json_is_string(v)) {
        ct_str s = str_of(v);
        if (s.ptr) vput(o, s.ptr, s.len, NT_VAL_STRING, v);
    } else {
        ct_str s = scalar_text(ev, v);
        if (s.ptr) vput(o, s.ptr, s.len, NT_VAL_STRING, v);
    }
}

static int flattened_allowed(ct_event *ev, int p)
{
    ct_payload_cache *c = payload_measure(ev, p);
    return c->ok && c->units < CT_FLATTENED_MAX_UNITS;
}

static void get_flattened(ct_event *ev, const ct_spec *spec, vout *o)
{
    if (!flattened_allowed(ev, spec->payload)) return;
    flat_collect(ev, payload_json(ev, spec->payload), spec->path, spec->plen, spec->plen == 0, 1,
                 payload_hide(ev, spec->payload), o);
}

/* ---- dates -------------------------------------------------------------------------- */

static ct_str memo_time(ct_event *ev, int field, nt_time_ms t)
{
    ct_str s;
    if (memo_find(ev, MEMO_FIELD(field), &s)) return s;
    char buf[NT_TIME_BUF];
    nt_time_format(t, buf);
    return memo_store(ev, MEMO_FIELD(field), buf, strlen(buf));
}

/* creationDate in extended ("2019-10-02T21:50:54Z") or basic
 * ("20131102T010628Z") ISO 8601. */
static int parse_creation_date(ct_str s, nt_time_ms *out)
{
    if (s.len == 16 && s.ptr[8] == 'T' && s.ptr[15] == 'Z') {
        char ext[21];
        memcpy(ext, s.ptr, 4);
        ext[4] = '-';
        memcpy(ext + 5, s.ptr + 4, 2);
        ext[7] = '-';
        memcpy(ext + 8, s.ptr + 6, 2);
        ext[10] = 'T';
        memcpy(ext + 11, s.ptr + 9, 2);
        ext[13] = ':';
        memcpy(ext + 14, s.ptr + 11, 2);
        ext[16] = ':';
        memcpy(ext + 17, s.ptr + 13, 2);
        ext[19] = 'Z';
        return nt_time_parse(ext, 20, out, NULL) == NT_OK;
    }
    return nt_time_parse(s.ptr, s.len, out, NULL) == NT_OK;
}

nt_time_ms ct_event_time(ct_event *ev)
{
    if (!ev->time_done) {
        ev->time_done = 1;
        ev->event_time = -1;
        ct_str t = get_str(ev->record, "eventTime");
        nt_time_ms ms;
        if (t.ptr && nt_time_parse(t.ptr, t.len, &ms, NULL) == NT_OK) ev->event_time = ms;
    }
    return ev->event_time;
}

/* ---- lowercase copies ----------------------------------------------------------------- */

static ct_str lower_copy(ct_event *ev, int field, ct_str s)
{
    ct_str m;
    if (!s.ptr) return s;
    int has_upper = 0;
    for (size_t i = 0; i < s.len; i++)
        if (s.ptr[i] >= 'A' && s.ptr[i] <= 'Z') has_upper = 1;
    if (!has_upper) return s;
    if (memo_find(ev, MEMO_FIELD(field), &m)) return m;
    char *dst = arena_alloc(ev, s.len);
    if (!dst) return (ct_str){NULL, 0};
    for (size_t i = 0; i < s.len; i++) {
        char c = s.ptr[i];
        if (c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
        dst[i] = c;
    }
    memo_put(ev, MEMO_FIELD(field), dst, s.len);
    return (ct_str){dst, s.len};
}

/* ---- the fields ------------------------------------------------------------------------ */

void ct_event_init(ct_event *ev, const ct_schema *s, json_t *record, nt_time_ms arrival)
{
    memset(ev, 0, offsetof(ct_event, memo));
    ev->schema = s;
    ev->record = record;
    ev->arrival = arrival;
    ev->event_time = -1;
    ev->arena = ev->scratch;
    ev->arena_cap = sizeof ev->scratch;
}

void ct_event_set_scratch(ct_event *ev, char *buf, size_t cap)
{
    if (!buf) return;
    ev->arena = buf;
    ev->arena_cap = cap;
    ev->arena_used = 0;
}

size_t ct_event_dropped(const ct_event *ev)
{
    return ev->dropped;
}

const char *ct_event_id(const ct_event *ev)
{
    return get_str(ev->record, "eventID").ptr;
}

static json_t *ui_get(ct_event *ev, const char *key)
{
    return obj_get(user_identity(ev), key);
}

static json_t *session_context(ct_event *ev)
{
    return obj_obj(user_identity(ev), "sessionContext");
}

static void get_outcome(ct_event *ev, vout *o)
{
    json_t *r = ev->record;
    if (str_eq(get_str(r, "eventName"), "ConsoleLogin")) {
        ct_str cl = get_str(obj_obj(r, "responseElements"), "ConsoleLogin");
        if (cl.ptr) {
            vput_str(o, lower_copy(ev, F_EVENT_OUTCOME, cl));
            return;
        }
    }
    int failed = json_present(json_object_get(r, "errorCode"), 0) ||
                 json_present(json_object_get(r, "errorMessage"), 0);
    vput_lit(o, failed ? "failure" : "success");
}

static void get_related_user(ct_event *ev, vout *o)
{
    identity_full(ev);
    json_t *rp = obj_obj(ev->record, "requestParameters");
    json_t *re = obj_obj(ev->record, "responseElements");
    ct_str s = ev->session_name;
    vput_str(o, s);
    if (is_email(s))
        vput(o, s.ptr, (size_t)((const char *)memchr(s.ptr, '@', s.len) - s.ptr), NT_VAL_STRING,
             NULL);
    vput_str(o, get_str(rp, "userName"));
    vput_str(o, get_str(rp, "newUserName"));
    vput_str(o, get_str(obj_obj(re, "user"), "userId"));
    vput_str(o, ev->user_id);
    vput_str(o, ev->user_name);
    vput_str(o, get_str(rp, "newUserName"));
    vput_str(o, get_str(obj_obj(user_identity(ev), "onBehalfOf"), "userId"));
}

static void get_related_hosts(ct_event *ev, vout *o)
{
    ct_str a = get_str(ev->record, "sourceIPAddress");
    static const char aws[] = ".amazonaws.com";
    if (!a.ptr || source_ip(ev).ptr || !memchr(a.ptr, '.', a.len) || memchr(a.ptr, ' ', a.len))
        return;
    if (a.len >= sizeof aws - 1 &&
        memcmp(a.ptr + a.len - (sizeof aws - 1), aws, sizeof aws - 1) == 0)
        return;
    vput_str(o, a);
}

static void get_resources(ct_event *ev, const char *key, vout *o)
{
    json_t *res = json_object_get(ev->record, "resources");
    if (!json_is_array(res)) return;
    size_t i;
    json_t *m;
    json_array_foreach(res, i, m) vput_str(o, get_str(m, key));
}

/* "TLSv1.3" → protocol "tls", version "1.3". */
static void get_tls_version(ct_event *ev, int want_protocol, vout *o)
{
    ct_str v = get_str(obj_obj(ev->record, "tlsDetails"), "tlsVersion");
    if (!v.ptr) return;
    const char *sep = memchr(v.ptr, 'v', v.len);
    if (!sep || sep == v.ptr || sep + 1 == v.ptr + v.len) return;
    if (want_protocol)
        vput_str(o, lower_copy(ev, F_TLS_VERSION_PROTOCOL, (ct_str){v.ptr, (size_t)(sep - v.ptr)}));
    else
        vput_str(o, (ct_str){sep + 1, (size_t)(v.ptr + v.len - sep - 1)});
}

static void get_bool(json_t *v, vout *o)
{
    if (json_is_boolean(v)) {
        vput(o, json_is_true(v) ? "true" : "false", json_is_true(v) ? 4 : 5, NT_VAL_BOOL, NULL);
    } else if (json_is_string(v)) {
        const char *s = json_string_value(v);
        if (strcmp(s, "true") == 0) vput(o, "true", 4, NT_VAL_BOOL, NULL);
        if (strcmp(s, "false") == 0) vput(o, "false", 5, NT_VAL_BOOL, NULL);
    }
}

/* ConsoleLogin additionalEventData "Yes"/"No" flags. */
static void get_console_flag(ct_event *ev, const char *key, vout *o)
{
    if (!str_eq(get_str(ev->record, "eventName"), "ConsoleLogin")) return;
    ct_str v = get_str(obj_obj(ev->record, "additionalEventData"), key);
    if (str_eq(v, "Yes")) vput(o, "true", 4, NT_VAL_BOOL, NULL);
    if (str_eq(v, "No")) vput(o, "false", 5, NT_VAL_BOOL, NULL);
}

/* Fields that are a string of the record copied unchanged, by path. */
#define UI "userIdentity"
#define SC UI, "sessionContext"
static const char *const copies[F_STATIC_COUNT][5] = {
    [F_EVENT_ACTION] = {"eventName"},
    [F_EVENT_PROVIDER] = {"eventSource"},
    [F_EVENT_ID] = {"eventID"},
    [F_CLOUD_REGION] = {"awsRegion"},
    [F_USER_CHANGES_NAME] = {"requestParameters", "newUserName"},
    [F_USER_TARGET_NAME] = {"requestParameters", "userName"},
    [F_USER_TARGET_ID] = {"responseElements", "user", "userId"},
    [F_GROUP_NAME] = {"requestParameters", "groupName"},
    [F_GROUP_ID] = {"responseElements", "group", "groupId"},
    [F_SOURCE_ADDRESS] = {"sourceIPAddress"},
    [F_USER_AGENT_ORIGINAL] = {"userAgent"},
    [F_TLS_CIPHER] = {"tlsDetails", "cipherSuite"},
    [F_TLS_CLIENT_SERVER_NAME] = {"tlsDetails", "clientProvidedHostHeader"},
    [F_CT_EVENT_VERSION] = {"eventVersion"},
    [F_CT_EVENT_TYPE] = {"eventType"},
    [F_CT_EVENT_CATEGORY] = {"eventCategory"},
    [F_CT_UI_TYPE] = {UI, "type"},
    [F_CT_UI_ARN] = {UI, "arn"},
    [F_CT_UI_ACCESS_KEY_ID] = {UI, "accessKeyId"},
    [F_CT_UI_INVOKED_BY] = {UI, "invokedBy"},
    [F_CT_UI_MFA_AUTHENTICATED] = {SC, "attributes", "mfaAuthenticated"},
    [F_CT_UI_SOURCE_IDENTITY] = {SC, "sourceIdentity"},
    [F_CT_UI_EC2_ROLE_DELIVERY] = {SC, "ec2RoleDelivery"},
    [F_CT_UI_ISSUER_TYPE] = {SC, "sessionIssuer", "type"},
    [F_CT_UI_ISSUER_ARN] = {SC, "sessionIssuer", "arn"},
    [F_CT_UI_ISSUER_PRINCIPAL_ID] = {SC, "sessionIssuer", "principalId"},
    [F_CT_UI_ISSUER_ACCOUNT_ID] = {SC, "sessionIssuer", "accountId"},
    [F_CT_UI_OBO_USER_ID] = {UI, "onBehalfOf", "userId"},
    [F_CT_UI_OBO_STORE_ARN] = {UI, "onBehalfOf", "identityStoreArn"},
    [F_CT_UI_CREDENTIAL_ID] = {UI, "credentialId"},
    [F_CT_UI_IDENTITY_PROVIDER] = {UI, "identityProvider"},
    [F_CT_SESSION_CRED_CONSOLE] = {"sessionCredentialFromConsole"},
    [F_CT_ERROR_CODE] = {"errorCode"},
    [F_CT_ERROR_MESSAGE] = {"errorMessage"},
    [F_CT_RECIPIENT_ACCOUNT_ID] = {"recipientAccountId"},
    [F_CT_REQUEST_ID] = {"requestID"},
    [F_CT_VPC_ENDPOINT_ID] = {"vpcEndpointId"},
};
#undef SC
#undef UI

static ct_str path_str(json_t *v, const char *const *path)
{
    size_t i = 0;
    for (; i + 1 < 5 && path[i + 1]; i++)
        v = obj_obj(v, path[i]);
    return get_str(v, path[i]);
}

static const char *const constants[F_STATIC_COUNT] = {
    [F_EVENT_KIND] = "event",
    [F_EVENT_DATASET] = "aws.cloudtrail",
    [F_DATA_STREAM_DATASET] = "aws.cloudtrail",
    [F_ECS_VERSION] = "8.11.0",
    [F_CLOUD_PROVIDER] = "aws",
};

static void get_static(ct_event *ev, int f, vout *o)
{
    json_t *r = ev->record;
    ct_str s;
    if (copies[f][0]) {
        vput_str(o, path_str(r, copies[f]));
        return;
    }
    if (constants[f]) {
        vput_lit(o, constants[f]);
        return;
    }
    switch ((enum ct_field)f) {
    case F_TIMESTAMP:
        if (ct_event_time(ev) >= 0) vput_str(o, memo_time(ev, F_TIMESTAMP, ev->event_time));
        break;
    case F_EVENT_INGESTED:
        if (ev->arrival >= 0)
            vput_str(o, memo_time(ev, F_EVENT_INGESTED, ev->arrival - ev->arrival % 1000));
        break;
    case F_EVENT_OUTCOME:
        get_outcome(ev, o);
        break;
    case F_CLOUD_ACCOUNT_ID:
        s = str_of(ui_get(ev, "accountId"));
        if (!s.ptr) s = get_str(r, "recipientAccountId");
        if (!s.ptr) s = get_str(r, "awsAccountId"); /* digest records */
        vput_str(o, s);
        break;
    case F_CLOUD_SERVICE_NAME: {
        static const char sfx[] = ".amazonaws.com";
        s = get_str(r, "eventSource");
        if (s.ptr && s.len > sizeof sfx - 1 &&
            memcmp(s.ptr + s.len - (sizeof sfx - 1), sfx, sizeof sfx - 1) == 0)
            vput_str(o, (ct_str){s.ptr, s.len - (sizeof sfx - 1)});
        break;
    }
    case F_USER_NAME:
        identity_full(ev);
        vput_str(o, ev->user_name);
        break;
    case F_USER_ID:
        identity_full(ev);
        vput_str(o, ev->user_id);
        break;
    case F_USER_EMAIL:
        identity_full(ev);
        vput_str(o, ev->email);
        break;
    case F_SERVICE_NAME:
        identity(ev);
        vput_str(o, ev->service_name);
        break;
    case F_RELATED_USER:
        get_related_user(ev, o);
        break;
    case F_RELATED_IP:
    case F_SOURCE_IP:
        vput_str(o, source_ip(ev));
        break;
    case F_RELATED_HOSTS:
        get_related_hosts(ev, o);
        break;
    case F_SOURCE_AS_NUMBER:
    case F_SOURCE_AS_ORG_NAME:
    case F_SOURCE_GEO_COUNTRY_ISO_CODE:
    case F_SOURCE_GEO_COUNTRY_NAME:
    case F_SOURCE_GEO_CONTINENT_CODE:
    case F_SOURCE_GEO_CONTINENT_NAME:
    case F_SOURCE_GEO_REGION_ISO_CODE:
    case F_SOURCE_GEO_REGION_NAME:
    case F_SOURCE_GEO_CITY_NAME:
    case F_SOURCE_GEO_LOCATION:
        get_geo(ev, f, o);
        break;
    case F_TLS_VERSION:
        get_tls_version(ev, 0, o);
        break;
    case F_TLS_VERSION_PROTOCOL:
        get_tls_version(ev, 1, o);
        break;
    case F_CT_UI_CREATION_DATE: {
        nt_time_ms t;
        s = get_str(obj_obj(session_context(ev), "attributes"), "creationDate");
        if (s.ptr && parse_creation_date(s, &t)) vput_str(o, memo_time(ev, f, t));
        break;
    }
    case F_CT_SHARED_EVENT_ID:
        s = get_str(r, "sharedEventID");
        vput_str(o, s.ptr ? s : get_str(r, "sharedEventId"));
        break;
    case F_CT_MANAGEMENT_EVENT:
        get_bool(json_object_get(r, "managementEvent"), o);
        break;
    case F_CT_READ_ONLY:
        get_bool(json_object_get(r, "readOnly"), o);
        break;
    case F_CT_RESOURCES_ARN:
        get_resources(ev, "ARN", o);
        break;
    case F_CT_RESOURCES_ACCOUNT_ID:
        get_resources(ev, "accountId", o);
        break;
    case F_CT_RESOURCES_TYPE:
        get_resources(ev, "type", o);
        break;
    case F_CT_REQUEST_PARAMETERS:
    case F_CT_RESPONSE_ELEMENTS:
    case F_CT_ADDITIONAL_EVENTDATA:
    case F_CT_SERVICE_EVENT_DETAILS:
        vput_str(o, payload_string(ev, f - F_CT_REQUEST_PARAMETERS));
        break;
    case F_CT_CONSOLE_MFA_USED:
        get_console_flag(ev, "MFAUsed", o);
        break;
    case F_CT_CONSOLE_MOBILE_VERSION:
        get_console_flag(ev, "MobileVersion", o);
        break;
    case F_CT_CONSOLE_LOGIN_TO:
        if (str_eq(get_str(r, "eventName"), "ConsoleLogin"))
            vput_str(o, get_str(obj_obj(r, "additionalEventData"), "LoginTo"));
        break;
    default: /* copies, constants and the flattened roots (handled as specs) */
        break;
    }
}

static size_t get_spec(ct_event *ev, const ct_spec *spec, nt_value *out, size_t max, json_t **nodes)
{
    vout o = {out, max, 0, ev, nodes};
    if (!json_is_object(ev->record) || max == 0) return 0;
    if (spec->field >= 0)
        get_static(ev, spec->field, &o);
    else
        get_flattened(ev, spec, &o);
    return o.n;
}

size_t ct_view_get(ct_event *ev, int field, nt_value *out, size_t max)
{
    ct_spec spec;
    if (!ev || !out || spec_by_id(ev->schema, field, &spec) != 0) return 0;
    return get_spec(ev, &spec, out, max, NULL);
}

/* ---- record shape -------------------------------------------------------------------------- */

nt_status ct_record_valid(const json_t *record, nt_err *err)
{
    static const struct {
        const char *key, *missing, *not_string, *empty;
    } required[] = {
        {"eventVersion", "missing eventVersion", "eventVersion is not a string",
         "eventVersion is empty"},
        {"eventSource", "missing eventSource", "eventSource is not a string",
         "eventSource is empty"},
        {"eventName", "missing eventName", "eventName is not a string", "eventName is empty"},
        {"eventTime", "missing eventTime", "eventTime is not a string", "eventTime is empty"},
    };
    const char *reason = NULL;
    if (!json_is_object(record)) {
        reason = "record is not a JSON object";
        goto bad;
    }
    for (size_t i = 0; i < sizeof required / sizeof required[0]; i++) {
        const json_t *v = json_object_get(record, required[i].key);
        if (!v || json_typeof(v) == JSON_NULL) {
            reason = required[i].missing;
            goto bad;
        }
        if (!json_is_string(v)) {
            reason = required[i].not_string;
            goto bad;
        }
        if (json_string_length(v) == 0) {
            reason = required[i].empty;
            goto bad;
        }
    }
    const json_t *t = json_object_get(record, "eventTime");
    nt_time_ms ms;
    if (nt_time_parse(json_string_value(t), json_string_length(t), &ms, NULL) != NT_OK) {
        reason = "eventTime is not an RFC 3339 date-time";
        goto bad;
    }
    return NT_OK;
bad:
    return nt_fail(err, NT_ERR_INVALID, "%s", reason);
}

/* ---- fields for the alert ------------------------------------------------------------------- */

/* A copy of v without the values the clean-up pass removes; NULL when nothing
 * is left (or out of memory). */
static json_t *clean_copy(json_t *v, unsigned depth, const char *hide)
{
    if (depth > CT_MAX_DEPTH || !json_present(v, 0)) return NULL;
    if (json_is_object(v)) {
        json_t *o = json_object();
        const char *k;
        size_t klen;
        json_t *m;
        void *tmp;
        if (!o) return NULL;
        json_object_keylen_foreach_safe(v, tmp, k, klen, m)
        {
            if (hide && strlen(hide) == klen && memcmp(k, hide, klen) == 0) continue;
            json_t *c = clean_copy(m, depth + 1, NULL);
            if (c) json_object_setn_new(o, k, klen, c);
        }
        if (json_object_size(o) == 0) {
            json_decref(o);
            return NULL;
        }
        return o;
    }
    if (json_is_array(v)) {
        json_t *a = json_array();
        size_t i;
        json_t *m;
        if (!a) return NULL;
        json_array_foreach(v, i, m)
        {
            json_t *c = clean_copy(m, depth + 1, NULL);
            if (c) json_array_append_new(a, c);
        }
        if (json_array_size(a) == 0) {
            json_decref(a);
            return NULL;
        }
        return a;
    }
    return json_copy(v);
}

static json_t *value_to_json(const nt_value *v, json_t *node)
{
    if (node) return json_copy(node);
    if (v->type == NT_VAL_BOOL) return json_boolean(v->len == 4 && memcmp(v->ptr, "true", 4) == 0);
    if (v->type == NT_VAL_NUMBER && v->len > 0 && v->len < 20) {
        char buf[24];
        memcpy(buf, v->ptr, v->len);
        buf[v->len] = '\0';
        char *end;
        long long n = strtoll(buf, &end, 10);
        if (*end == '\0') return json_integer(n);
    }
    return json_stringn(v->ptr, v->len);
}

json_t *ct_view_fields_json(ct_event *ev, const char *const *names, size_t n)
{
    json_t *obj = json_object();
    if (!obj || !ev) return obj;
    for (size_t i = 0; i < n; i++) {
        ct_spec spec;
        if (!names[i] || spec_lookup(ev->schema, names[i], strlen(names[i]), &spec) != 0) continue;
        json_t *val = NULL;
        if (spec.field == F_SOURCE_GEO_LOCATION) {
            nt_value v[1];
            if (get_spec(ev, &spec, v, 1, NULL) == 1)
                val = json_pack("{s:f,s:f}", "lat", ev->geo.lat, "lon", ev->geo.lon);
        } else if (spec.field < 0 && spec.plen == 0) {
            if (flattened_allowed(ev, spec.payload))
                val = clean_copy(payload_json(ev, spec.payload), 1, payload_hide(ev, spec.payload));
        } else {
            nt_value v[NT_FIELD_MAX_VALUES];
            json_t *nodes[NT_FIELD_MAX_VALUES];
            size_t k = get_spec(ev, &spec, v, NT_FIELD_MAX_VALUES, spec.field < 0 ? nodes : NULL);
            if (k == 1) {
                val = value_to_json(&v[0], spec.field < 0 ? nodes[0] : NULL);
            } else if (k > 1 && (val = json_array())) {
                for (size_t j = 0; j < k; j++)
                    json_array_append_new(val,
                                          value_to_json(&v[j], spec.field < 0 ? nodes[j] : NULL));
            }
        }
        if (val && json_object_set_new(obj, names[i], val) != 0) {
            json_decref(obj);
            return NULL;
        }
    }
    return obj;
}

/*
 * ctview.h — the CloudTrail→ECS "view": the ECS fields of Elastic's AWS
 * CloudTrail integration (package 8.9.0 pipeline, see
 * docs/cloudtrail-ecs.md), computed lazily from one parsed CloudTrail
 * record instead of building an ECS document.
 *
 * Two objects:
 * - ct_schema: the field registry. Every static ECS field the mapping can
 *   produce has a fixed id; flattened payload paths
 *   (aws.cloudtrail.flattened.{request_parameters,response_elements,
 *   additional_eventdata,service_event_details}.<path>) are registered on
 *   first resolve (at most CT_SCHEMA_MAX_DYNAMIC). Registration is
 *   thread-safe and never moves existing entries, so an exception created at
 *   run time may name a new path while other threads read events.
 * - ct_event: one record seen through the schema. It borrows the record,
 *   caches what it derives (identity, Java-map renderings, formatted dates)
 *   and keeps derived strings in a scratch arena inside the struct (or in a
 *   caller buffer, ct_event_set_scratch). It lives on the caller's stack;
 *   there is nothing to free. Values returned by ct_view_get stay valid while
 *   the event and its record live.
 *
 * Value types: keywords and dates are NT_VAL_STRING (dates as
 * "YYYY-MM-DDTHH:MM:SS.mmmZ"); aws.cloudtrail.read_only, .management_event and
 * .console_login.additional_eventdata.{mfa_used,mobile_version} are
 * NT_VAL_BOOL. Flattened leaves are NT_VAL_STRING even for JSON numbers and
 * booleans ("3600", "true"), because Elastic indexes flattened leaves as
 * keywords. Multi-valued fields are de-duplicated, in record order.
 *
 * Elastic's clean-up pass is applied everywhere: null, "", "-", "none" and
 * objects/arrays left empty by that rule count as absent. A value of the wrong
 * JSON type (a number where CloudTrail has a string, an array where it has an
 * object) counts as absent too.
 */
#ifndef NT_CTVIEW_H
#define NT_CTVIEW_H

#include "common.h"
#include "geoip.h"

#include <jansson.h>

typedef struct ct_schema ct_schema;

/* A new registry holding the static fields; NULL when out of memory. Free with
 * ct_schema_free (NULL is a no-op). */
ct_schema *ct_schema_new(void);
void ct_schema_free(ct_schema *s);

/* IP enrichment: let the schema answer source.as.number,
 * source.as.organization.name and source.geo.{country_iso_code, country_name,
 * continent_code, continent_name, region_iso_code, region_name, city_name,
 * location} from `g` (borrowed: it must outlive the schema; NULL = none, the
 * default). Call it before resolving any name: only the fields g's files can
 * answer (geoip_kinds) resolve, so rule lint still warns about the others.
 * The view looks an address up only when one of these fields is read, once
 * per event; source.geo.location reads as "lat,lon" (Elasticsearch's
 * geo_point text) and as {"lat": …, "lon": …} in ct_view_fields_json;
 * source.as.number is NT_VAL_NUMBER. */
void ct_schema_set_geoip(ct_schema *s, const geoip_db *g);
const geoip_db *ct_schema_geoip(const ct_schema *s);

/* Field id for a dotted ECS name (not NUL-terminated: len bytes), or -1 when
 * the view can never produce it (source.as.* and source.geo.* without a
 * GeoIP database that has them, user_agent.name,
 * host.*, event.category, related.entity, entity.target.id, … and any name not
 * listed in ctview.c). Flattened payload paths are registered on first use and
 * keep their id; at most CT_SCHEMA_MAX_DYNAMIC of them, each name at most
 * CT_FIELD_NAME_MAX bytes (beyond that, and on allocation failure: -1). */
#define CT_SCHEMA_MAX_DYNAMIC 4096
#define CT_FIELD_NAME_MAX 1024
int ct_schema_resolve(ct_schema *s, const char *name, size_t len);

/* The name of a field id (owned by the schema), or NULL for an unknown id. */
const char *ct_schema_field_name(const ct_schema *s, int field);
/* Number of ids handed out so far (static + registered); ids are 0..count-1. */
size_t ct_schema_field_count(const ct_schema *s);

/* The nt_field_source for KQL, exceptions and new terms: ctx = s, the event
 * argument of get() is a ct_event *. verbatim() is 1 for fields whose values
 * are always JSON strings of the record copied unchanged (event.action,
 * user.name, cloud.account.id, …) and 0 for derived or constant ones. */
nt_field_source ct_schema_source(ct_schema *s);
int ct_schema_verbatim(const ct_schema *s, int field);

/* ---- per event ---------------------------------------------------------- */

/* Built-in scratch bytes per event. The Java-map renderings of large payloads
 * (aws.cloudtrail.request_parameters, …) may need more: give a bigger buffer
 * with ct_event_set_scratch, else such a field is missing and counted in
 * ct_event_dropped. */
#define CT_EVENT_SCRATCH 16384
#define CT_EVENT_MEMO 48

/* Everything below is private to ctview.c except `schema` and `record`. */
typedef struct ct_str {
    const char *ptr; /* NULL = absent */
    size_t len;
} ct_str;

typedef struct ct_memo {
    uintptr_t key;
    const char *ptr;
    size_t len;
} ct_memo;

typedef struct ct_payload_cache {
    unsigned char measured, ok, render_failed;
    size_t bytes;     /* UTF-8 length of the Java-map rendering */
    size_t units;     /* its length in UTF-16 code units (Elastic's 32766 limit) */
    const char *text; /* rendered string in the arena, or NULL */
} ct_payload_cache;

typedef struct ct_event {
    const ct_schema *schema; /* borrowed */
    json_t *record;          /* borrowed; must outlive the event */
    nt_time_ms arrival;      /* event.ingested */

    unsigned char ui_done, identity_done, time_done, hide_additional_username, service_actor;
    unsigned char geo_done; /* `geo` below holds the lookup of source.ip */
    json_t *user_identity;  /* the userIdentity object or NULL */
    ct_str user_name, user_id, session_name, email, service_name;
    nt_time_ms event_time;
    ct_payload_cache payload[4];
    char *arena;
    size_t arena_cap, arena_used;
    size_t dropped; /* values not produced for lack of scratch or over `max` */
    size_t memo_used;
    /* not cleared by ct_event_init: only memo[0..memo_used) and the used part
     * of the scratch are ever read */
    ct_memo memo[CT_EVENT_MEMO];
    geoip_result geo;
    _Alignas(8) char scratch[CT_EVENT_SCRATCH];
} ct_event;

/* Start viewing `record` (borrowed, not modified) through schema `s`.
 * `arrival` is the ingest time (event.ingested). Never fails. */
void ct_event_init(ct_event *ev, const ct_schema *s, json_t *record, nt_time_ms arrival);

/* Use buf[0..cap) (owned by the caller, must outlive the event) for derived
 * strings produced from now on. Values produced earlier stay valid. */
void ct_event_set_scratch(ct_event *ev, char *buf, size_t cap);

/* Values the view had to leave out so far: scratch exhausted, or a field with
 * more than `max` values. For a metric; 0 in normal operation. */
size_t ct_event_dropped(const ct_event *ev);

/* Fill out[0..max) with the values of `field` and return how many (0 =
 * missing). No heap allocation; values point into the record, into static
 * storage or into the event's scratch. */
size_t ct_view_get(ct_event *ev, int field, nt_value *out, size_t max);

/* NT_OK when `record` looks like a CloudTrail record: a JSON object whose
 * eventVersion, eventSource, eventName and eventTime are non-empty strings and
 * whose eventTime is an RFC 3339 date-time. Nothing else is required (unknown
 * fields, newer eventVersions and odd userIdentity shapes are fine). Else
 * NT_ERR_INVALID, and err (may be NULL) names the first problem, such as
 * "missing eventName" or "eventTime is not a string". */
nt_status ct_record_valid(const json_t *record, nt_err *err);

/* eventID (pointer into the record; NUL-terminated) or NULL. */
const char *ct_event_id(const ct_event *ev);
/* eventTime in ms since the epoch, or -1 when missing or unparseable. */
nt_time_ms ct_event_time(ct_event *ev);

/* The ECS values of the given field names as a new JSON object
 * ({"user.name": "x", "related.user": ["a", "b"]}); the caller owns the
 * reference. Missing or unknown fields are omitted; one value gives a scalar,
 * several an array. Booleans come out as JSON booleans. A flattened root
 * (aws.cloudtrail.flattened.request_parameters) gives the cleaned payload
 * object; a flattened path its leaf values with their JSON types. Does not
 * register names in the schema (safe at run time). NULL when out of memory. */
json_t *ct_view_fields_json(ct_event *ev, const char *const *names, size_t n);

#endif

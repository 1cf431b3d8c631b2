/*
 * geoip.h — IP enrichment from MaxMind DB files (GeoLite2-ASN, -City,
 * -Country and files in the same format), read with libmaxminddb.
 *
 * A geoip_db is a list of opened .mmdb files, in the order given. Opening
 * reads each file's metadata: `database_type` says what the file can answer
 * ("…ASN…"/"…ISP…": the autonomous system; "…City…": city, region, location
 * and the country; "…Country…": country and continent; any other type is
 * assumed to answer everything and simply yields what its records hold).
 *
 * geoip_lookup answers the ECS fields Elastic's geoip processor writes for
 * source.ip (source.as.number, source.as.organization.name, source.geo.*) for
 * one address: each field comes from the first file, in order, that has it for
 * that address. Lookups only read the memory-mapped files, so one geoip_db
 * may serve any number of threads at once; nothing in it changes after
 * geoip_open.
 *
 * This module owns no policy: the CloudTrail view (ctview.c) decides when to
 * look up (only when a rule, an exception or an alert asks for one of these
 * fields) and caches the answer per record.
 */
#ifndef NT_GEOIP_H
#define NT_GEOIP_H

#include "common.h"

#include <stdint.h>

typedef struct geoip_db geoip_db;

/* The fields, in the order of geoip_field_name. */
typedef enum geoip_field {
    GEOIP_AS_NUMBER = 0,    /* source.as.number (NT_VAL_NUMBER text) */
    GEOIP_AS_ORG_NAME,      /* source.as.organization.name */
    GEOIP_COUNTRY_ISO_CODE, /* source.geo.country_iso_code */
    GEOIP_COUNTRY_NAME,     /* source.geo.country_name (English) */
    GEOIP_CONTINENT_CODE,   /* source.geo.continent_code */
    GEOIP_CONTINENT_NAME,   /* source.geo.continent_name */
    GEOIP_REGION_ISO_CODE,  /* source.geo.region_iso_code: "<country>-<subdivision>" */
    GEOIP_REGION_NAME,      /* source.geo.region_name */
    GEOIP_CITY_NAME,        /* source.geo.city_name */
    GEOIP_LOCATION,         /* source.geo.location: "lat,lon" (geo_point text form) */
    GEOIP_FIELD_COUNT
} geoip_field;

/* What a file (or a set of files) can answer; a bit per kind. */
#define GEOIP_KIND_ASN 1u     /* source.as.* */
#define GEOIP_KIND_COUNTRY 2u /* country and continent */
#define GEOIP_KIND_CITY 4u    /* city, region, location */
#define GEOIP_KIND_ALL (GEOIP_KIND_ASN | GEOIP_KIND_COUNTRY | GEOIP_KIND_CITY)

#define GEOIP_MAX_FILES 8

/* The ECS name of a field ("source.as.number"), or NULL out of range. */
const char *geoip_field_name(geoip_field f);
/* The field with this ECS name (len bytes, not NUL-terminated), or -1. */
int geoip_field_lookup(const char *name, size_t len);
/* The kind of file a field needs (GEOIP_KIND_ASN, _COUNTRY or _CITY). */
unsigned geoip_field_kind(geoip_field f);

/* Open paths[0..n) (1..GEOIP_MAX_FILES) with libmaxminddb (memory-mapped).
 * On success *out owns every file; free with geoip_free. On failure *out is
 * NULL, nothing stays open and err names the file and libmaxminddb's reason. */
nt_status geoip_open(const char *const *paths, size_t n, geoip_db **out, nt_err *err);
/* Close every file. NULL is a no-op. Results from geoip_lookup become invalid. */
void geoip_free(geoip_db *g);

/* The kinds the open files can answer together (0 for NULL). */
unsigned geoip_kinds(const geoip_db *g);
/* Number of files, and the path / metadata database_type of file i (owned by
 * g; NULL out of range). For the startup log. */
size_t geoip_file_count(const geoip_db *g);
const char *geoip_file_path(const geoip_db *g, size_t i);
const char *geoip_file_type(const geoip_db *g, size_t i);

/* The answer for one address. Strings point into the memory-mapped file or
 * into this struct's own buffers, so they stay valid while both the result and
 * the geoip_db live; they are not NUL-terminated. */
typedef struct geoip_result {
    unsigned present; /* bit (1u << geoip_field) per field found */
    const char *ptr[GEOIP_FIELD_COUNT];
    size_t len[GEOIP_FIELD_COUNT];
    char as_number[24];  /* decimal text of the AS number */
    char region_iso[40]; /* "US-CA" */
    char location[64];   /* "47.6062,-122.3321" */
    double lat, lon;     /* when GEOIP_LOCATION is present */
} geoip_result;

/* Look up a 16-byte IPv6 address (IPv4 as an IPv4-mapped ::ffff:a.b.c.d
 * address, which is looked up as IPv4) and fill *out with every field the
 * files have for it (present = 0 when none do, for a private address, or for
 * g == NULL). Never allocates; thread-safe. */
void geoip_lookup(const geoip_db *g, const unsigned char addr[16], geoip_result *out);

#endif

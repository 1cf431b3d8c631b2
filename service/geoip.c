/*
 * geoip.c — source.as.* and source.geo.* from MaxMind DB files.
 *
 * Why libmaxminddb: the .mmdb format is a binary search tree over address
 * bits plus a typed data section; libmaxminddb (Debian's libmaxminddb0) maps
 * the file read-only and walks it without allocating, so a lookup is a few
 * dozen memory reads and any number of threads may share one open file.
 *
 * The paths below are the ones MaxMind's GeoLite2/GeoIP2 files use and that
 * Elasticsearch's geoip processor reads:
 *   autonomous_system_number, autonomous_system_organization   (ASN, ISP)
 *   country.iso_code, country.names.en, continent.code, continent.names.en
 *   subdivisions[0].iso_code / .names.en, city.names.en,
 *   location.latitude / .longitude                              (City)
 * region_iso_code is "<country iso>-<subdivision iso>", as Elastic writes it.
 * A value of an unexpected type (a number where a string belongs) is skipped,
 * so a "compatible" file with odd records yields fewer fields, never garbage.
 */
#include "geoip.h"

#include <maxminddb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct geoip_file {
    MMDB_s mmdb;
    char *path;
    unsigned kinds;
} geoip_file;

struct geoip_db {
    geoip_file files[GEOIP_MAX_FILES];
    size_t n;
    unsigned kinds;
};

static const struct {
    const char *name;
    unsigned kind;
} fields[GEOIP_FIELD_COUNT] = {
    [GEOIP_AS_NUMBER] = {"source.as.number", GEOIP_KIND_ASN},
    [GEOIP_AS_ORG_NAME] = {"source.as.organization.name", GEOIP_KIND_ASN},
    [GEOIP_COUNTRY_ISO_CODE] = {"source.geo.country_iso_code", GEOIP_KIND_COUNTRY},
    [GEOIP_COUNTRY_NAME] = {"source.geo.country_name", GEOIP_KIND_COUNTRY},
    [GEOIP_CONTINENT_CODE] = {"source.geo.continent_code", GEOIP_KIND_COUNTRY},
    [GEOIP_CONTINENT_NAME] = {"source.geo.continent_name", GEOIP_KIND_COUNTRY},
    [GEOIP_REGION_ISO_CODE] = {"source.geo.region_iso_code", GEOIP_KIND_CITY},
    [GEOIP_REGION_NAME] = {"source.geo.region_name", GEOIP_KIND_CITY},
    [GEOIP_CITY_NAME] = {"source.geo.city_name", GEOIP_KIND_CITY},
    [GEOIP_LOCATION] = {"source.geo.location", GEOIP_KIND_CITY},
};

const char *geoip_field_name(geoip_field f)
{
    return (unsigned)f < GEOIP_FIELD_COUNT ? fields[f].name : NULL;
}

int geoip_field_lookup(const char *name, size_t len)
{
    if (!name) return -1;
    for (int i = 0; i < GEOIP_FIELD_COUNT; i++)
        if (strlen(fields[i].name) == len && memcmp(fields[i].name, name, len) == 0) return i;
    return -1;
}

unsigned geoip_field_kind(geoip_field f)
{
    return (unsigned)f < GEOIP_FIELD_COUNT ? fields[f].kind : 0;
}

/* What a file answers, from its metadata database_type. */
static unsigned kinds_of_type(const char *type)
{
    if (!type) return GEOIP_KIND_ALL;
    if (strcasestr(type, "ASN") || strcasestr(type, "ISP")) return GEOIP_KIND_ASN;
    if (strcasestr(type, "City")) return GEOIP_KIND_CITY | GEOIP_KIND_COUNTRY;
    if (strcasestr(type, "Country")) return GEOIP_KIND_COUNTRY;
    return GEOIP_KIND_ALL; /* Enterprise or an unknown compatible file */
}

void geoip_free(geoip_db *g)
{
    if (!g) return;
    for (size_t i = 0; i < g->n; i++) {
        MMDB_close(&g->files[i].mmdb);
        free(g->files[i].path);
    }
    free(g);
}

nt_status geoip_open(const char *const *paths, size_t n, geoip_db **out, nt_err *err)
{
    *out = NULL;
    if (!paths || n == 0) return nt_fail(err, NT_ERR_INVALID, "no GeoIP database given");
    if (n > GEOIP_MAX_FILES)
        return nt_fail(err, NT_ERR_LIMIT, "at most %d GeoIP databases, not %zu", GEOIP_MAX_FILES,
                       n);
    geoip_db *g = calloc(1, sizeof *g);
    if (!g) return nt_fail(err, NT_ERR_NOMEM, "out of memory");
    nt_status st = NT_OK;
    for (size_t i = 0; i < n; i++) {
        geoip_file *f = &g->files[g->n];
        if (!paths[i] || !*paths[i]) {
            st = nt_fail(err, NT_ERR_INVALID, "GeoIP database %zu: empty path", i + 1);
            goto fail;
        }
        int rc = MMDB_open(paths[i], MMDB_MODE_MMAP, &f->mmdb);
        if (rc != MMDB_SUCCESS) {
            st = nt_fail(err, rc == MMDB_FILE_OPEN_ERROR ? NT_ERR_IO : NT_ERR_PARSE,
                         "GeoIP database %s: %s", paths[i], MMDB_strerror(rc));
            goto fail;
        }
        if (!(f->path = strdup(paths[i]))) {
            MMDB_close(&f->mmdb);
            st = nt_fail(err, NT_ERR_NOMEM, "out of memory");
            goto fail;
        }
        f->kinds = kinds_of_type(f->mmdb.metadata.database_type);
        g->kinds |= f->kinds;
        g->n++;
    }
    *out = g;
    return NT_OK;
fail:
    geoip_free(g);
    return st;
}

unsigned geoip_kinds(const geoip_db *g)
{
    return g ? g->kinds : 0;
}

size_t geoip_file_count(const geoip_db *g)
{
    return g ? g->n : 0;
}

const char *geoip_file_path(const geoip_db *g, size_t i)
{
    return g && i < g->n ? g->files[i].path : NULL;
}

const char *geoip_file_type(const geoip_db *g, size_t i)
{
    if (!g || i >= g->n) return NULL;
    const char *t = g->files[i].mmdb.metadata.database_type;
    return t ? t : "";
}

/* ---- lookup ------------------------------------------------------------------ */

static int get_string(MMDB_entry_s *e, const char *const *path, const char **p, size_t *n)
{
    MMDB_entry_data_s d;
    if (MMDB_aget_value(e, &d, path) != MMDB_SUCCESS || !d.has_data ||
        d.type != MMDB_DATA_TYPE_UTF8_STRING || d.data_size == 0)
        return 0;
    *p = d.utf8_string;
    *n = d.data_size;
    return 1;
}

static int get_unsigned(MMDB_entry_s *e, const char *const *path, uint64_t *v)
{
    MMDB_entry_data_s d;
    if (MMDB_aget_value(e, &d, path) != MMDB_SUCCESS || !d.has_data) return 0;
    switch (d.type) {
    case MMDB_DATA_TYPE_UINT16:
        *v = d.uint16;
        return 1;
    case MMDB_DATA_TYPE_UINT32:
        *v = d.uint32;
        return 1;
    case MMDB_DATA_TYPE_UINT64:
        *v = d.uint64;
        return 1;
    case MMDB_DATA_TYPE_INT32:
        if (d.int32 < 0) return 0;
        *v = (uint64_t)d.int32;
        return 1;
    default:
        return 0;
    }
}

static int get_double(MMDB_entry_s *e, const char *const *path, double *v)
{
    MMDB_entry_data_s d;
    if (MMDB_aget_value(e, &d, path) != MMDB_SUCCESS || !d.has_data) return 0;
    if (d.type == MMDB_DATA_TYPE_DOUBLE)
        *v = d.double_value;
    else if (d.type == MMDB_DATA_TYPE_FLOAT)
        *v = d.float_value;
    else
        return 0;
    return 1;
}

/* Shortest %g text that reads back as the same double. */
static size_t format_double(double d, char *buf, size_t cap)
{
    int n = 0;
    for (int p = 1; p <= 17; p++) {
        n = snprintf(buf, cap, "%.*g", p, d);
        if (strtod(buf, NULL) == d) break;
    }
    return n > 0 ? (size_t)n : 0;
}

static void put(geoip_result *r, geoip_field f, const char *p, size_t n)
{
    r->ptr[f] = p;
    r->len[f] = n;
    r->present |= 1u << f;
}

static int has(const geoip_result *r, geoip_field f)
{
    return (r->present >> f) & 1u;
}

/* Fill the fields of *r still missing from one found record. */
static void fill_from(MMDB_entry_s *e, unsigned kinds, geoip_result *r)
{
    static const char *const asn_path[] = {"autonomous_system_number", NULL};
    static const char *const org_path[] = {"autonomous_system_organization", NULL};
    static const char *const ciso_path[] = {"country", "iso_code", NULL};
    static const char *const cname_path[] = {"country", "names", "en", NULL};
    static const char *const kcode_path[] = {"continent", "code", NULL};
    static const char *const kname_path[] = {"continent", "names", "en", NULL};
    static const char *const siso_path[] = {"subdivisions", "0", "iso_code", NULL};
    static const char *const sname_path[] = {"subdivisions", "0", "names", "en", NULL};
    static const char *const city_path[] = {"city", "names", "en", NULL};
    static const char *const lat_path[] = {"location", "latitude", NULL};
    static const char *const lon_path[] = {"location", "longitude", NULL};
    const char *p;
    size_t n;
    if (kinds & GEOIP_KIND_ASN) {
        uint64_t asn;
        if (!has(r, GEOIP_AS_NUMBER) && get_unsigned(e, asn_path, &asn)) {
            int w = snprintf(r->as_number, sizeof r->as_number, "%llu", (unsigned long long)asn);
            put(r, GEOIP_AS_NUMBER, r->as_number, (size_t)w);
        }
        if (!has(r, GEOIP_AS_ORG_NAME) && get_string(e, org_path, &p, &n))
            put(r, GEOIP_AS_ORG_NAME, p, n);
    }
    if (kinds & (GEOIP_KIND_COUNTRY | GEOIP_KIND_CITY)) {
        static const struct {
            geoip_field f;
            const char *const *path;
        } strings[] = {
            {GEOIP_COUNTRY_ISO_CODE, ciso_path}, {GEOIP_COUNTRY_NAME, cname_path},
            {GEOIP_CONTINENT_CODE, kcode_path},  {GEOIP_CONTINENT_NAME, kname_path},
            {GEOIP_REGION_NAME, sname_path},     {GEOIP_CITY_NAME, city_path},
        };
        for (size_t i = 0; i < sizeof strings / sizeof strings[0]; i++) {
            if ((kinds & fields[strings[i].f].kind) && !has(r, strings[i].f) &&
                get_string(e, strings[i].path, &p, &n))
                put(r, strings[i].f, p, n);
        }
    }
    if (kinds & GEOIP_KIND_CITY) {
        const char *cp;
        size_t cn;
        if (!has(r, GEOIP_REGION_ISO_CODE) && get_string(e, siso_path, &p, &n) &&
            get_string(e, ciso_path, &cp, &cn) && cn + n + 2 <= sizeof r->region_iso) {
            int w =
                snprintf(r->region_iso, sizeof r->region_iso, "%.*s-%.*s", (int)cn, cp, (int)n, p);
            put(r, GEOIP_REGION_ISO_CODE, r->region_iso, (size_t)w);
        }
        double lat, lon;
        if (!has(r, GEOIP_LOCATION) && get_double(e, lat_path, &lat) &&
            get_double(e, lon_path, &lon) && lat >= -90 && lat <= 90 && lon >= -180 && lon <= 180) {
            char a[32], b[32];
            size_t la = format_double(lat, a, sizeof a), lb = format_double(lon, b, sizeof b);
            int w = snprintf(r->location, sizeof r->location, "%.*s,%.*s", (int)la, a, (int)lb, b);
            r->lat = lat;
            r->lon = lon;
            put(r, GEOIP_LOCATION, r->location, (size_t)w);
        }
    }
}

void geoip_lookup(const geoip_db *g, const unsigned char addr[16], geoip_result *out)
{
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    memset(out, 0, sizeof *out);
    if (!g || !addr) return;
    struct sockaddr_in v4;
    struct sockaddr_in6 v6;
    const struct sockaddr *sa;
    if (memcmp(addr, mapped, sizeof mapped) == 0) {
        memset(&v4, 0, sizeof v4);
        v4.sin_family = AF_INET;
        memcpy(&v4.sin_addr, addr + 12, 4);
        sa = (const struct sockaddr *)&v4;
    } else {
        memset(&v6, 0, sizeof v6);
        v6.sin6_family = AF_INET6;
        memcpy(&v6.sin6_addr, addr, 16);
        sa = (const struct sockaddr *)&v6;
    }
    unsigned all = (1u << GEOIP_FIELD_COUNT) - 1;
    for (size_t i = 0; i < g->n && out->present != all; i++) {
        const geoip_file *f = &g->files[i];
        /* Skip a file that can only answer fields already found. */
        unsigned wanted = 0;
        for (int k = 0; k < GEOIP_FIELD_COUNT; k++)
            if (!has(out, (geoip_field)k)) wanted |= fields[k].kind;
        if (!(wanted & f->kinds)) continue;
        int mmdb_err = MMDB_SUCCESS;
        MMDB_lookup_result_s res = MMDB_lookup_sockaddr(&f->mmdb, sa, &mmdb_err);
        /* An IPv6 address in an IPv4-only file is simply not found. */
        if (mmdb_err != MMDB_SUCCESS || !res.found_entry) continue;
        fill_from(&res.entry, f->kinds, out);
    }
}

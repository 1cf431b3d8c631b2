/*
 * redis_url.c — the Redis URL (redis_url.h): redis://, rediss:// and
 * unix:// parsed into their parts. Pure: no socket, no Redis.
 */
#include "redis_url.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

void redis_url_clear(redis_url *u)
{
    if (!u) return;
    free(u->host);
    free(u->path);
    free(u->username);
    free(u->password);
    memset(u, 0, sizeof *u);
}

/* Percent-decodes s[0..n) into a new string; NULL on a bad escape (*bad = 1) or OOM. */
static char *pct_decode(const char *s, size_t n, int *bad)
{
    char *out = malloc(n + 1);
    if (!out) return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%') {
            int hi = i + 2 < n ? nt_hex_digit((unsigned char)s[i + 1]) : -1;
            int lo = i + 2 < n ? nt_hex_digit((unsigned char)s[i + 2]) : -1;
            if (hi < 0 || lo < 0 || hi + lo == 0) { /* bad escape, or %00 */
                free(out);
                *bad = 1;
                return NULL;
            }
            out[o++] = (char)(hi * 16 + lo);
            i += 2;
        } else {
            out[o++] = s[i];
        }
    }
    out[o] = '\0';
    return out;
}

static int has_ctl_or_space(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= ' ' || s[i] == 0x7f) return 1;
    return 0;
}

static nt_status url_parse_unix(const char *rest, redis_url *u, nt_err *err)
{
    const char *q = strchr(rest, '?');
    size_t plen = q ? (size_t)(q - rest) : strlen(rest);
    if (plen == 0 || rest[0] != '/')
        return nt_fail(err, NT_ERR_INVALID,
                       "redis URL unix:// needs an absolute socket path (unix:///run/redis.sock)");
    if (plen > 107)
        return nt_fail(err, NT_ERR_INVALID,
                       "redis URL unix socket path is %zu bytes long; the limit is 107", plen);
    if (has_ctl_or_space(rest, plen))
        return nt_fail(err, NT_ERR_INVALID,
                       "redis URL unix socket path contains a space or control character");
    if (q) {
        const char *p = q + 1;
        while (*p) {
            const char *amp = strchr(p, '&');
            size_t n = amp ? (size_t)(amp - p) : strlen(p);
            if (n > 3 && strncmp(p, "db=", 3) == 0) {
                long long db = nt_decimal_parse(p + 3, n - 3, 0, INT_MAX);
                if (db < 0)
                    return nt_fail(err, NT_ERR_INVALID,
                                   "redis URL database must be a number from 0 to %d", INT_MAX);
                u->db = (int)db;
            } else {
                int shown = (int)(n > 40 ? 40 : n);
                return nt_fail(err, NT_ERR_INVALID,
                               "redis URL has unknown query parameter '%.*s' (only db=N is "
                               "supported)",
                               shown, p);
            }
            p = amp ? amp + 1 : p + n;
        }
    }
    u->path = strndup(rest, plen);
    if (!u->path) return nt_fail(err, NT_ERR_NOMEM, "out of memory");
    u->is_unix = 1;
    return NT_OK;
}

/* "user", "user:password" or ":password" in auth[0..at), percent-decoded. */
static nt_status url_parse_userinfo(const char *auth, const char *at, redis_url *u, nt_err *err)
{
    const char *colon = memchr(auth, ':', (size_t)(at - auth));
    const char *uend = colon ? colon : at;
    int bad = 0;
    if (!colon && uend == auth)
        return nt_fail(err, NT_ERR_INVALID,
                       "redis URL has an empty user name before '@' (redis://user@host)");
    if (uend > auth) {
        u->username = pct_decode(auth, (size_t)(uend - auth), &bad);
        if (!u->username) goto fail;
        if (has_ctl_or_space(u->username, strlen(u->username)))
            return nt_fail(err, NT_ERR_INVALID,
                           "redis URL user name contains a space or control character");
    }
    if (!colon) return NT_OK;
    u->password = pct_decode(colon + 1, (size_t)(at - colon - 1), &bad);
    if (!u->password) goto fail;
    if (u->password[0] == '\0')
        return nt_fail(err, NT_ERR_INVALID, "redis URL has an empty password");
    return NT_OK;
fail:
    if (bad) return nt_fail(err, NT_ERR_INVALID, "redis URL credentials have a bad percent-escape");
    return nt_fail(err, NT_ERR_NOMEM, "out of memory");
}

static nt_status url_parse_tcp(const char *rest, redis_url *u, nt_err *err)
{
    if (strpbrk(rest, "?#"))
        return nt_fail(err, NT_ERR_INVALID,
                       "redis URL has a query or fragment; use redis://host:port/db");
    size_t alen = strcspn(rest, "/");
    const char *auth = rest, *tail = rest + alen;
    /* userinfo: everything before the last '@' of the authority. */
    const char *at = NULL;
    for (const char *p = auth; p < tail; p++)
        if (*p == '@') at = p;
    const char *host = auth;
    if (at) {
        nt_status st = url_parse_userinfo(auth, at, u, err);
        if (st != NT_OK) return st;
        host = at + 1;
    }
    const char *hend, *portp = NULL;
    const char *hstart = host;
    if (*host == '[') {
        const char *close = memchr(host, ']', (size_t)(tail - host));
        if (!close)
            return nt_fail(err, NT_ERR_INVALID, "redis URL has an unclosed '[' in the host");
        hstart = host + 1;
        hend = close;
        if (close + 1 < tail) {
            if (close[1] != ':')
                return nt_fail(err, NT_ERR_INVALID, "redis URL has junk after ']' in the host");
            portp = close + 2;
        }
    } else {
        const char *colon = memchr(host, ':', (size_t)(tail - host));
        hend = colon ? colon : tail;
        if (colon) portp = colon + 1;
    }
    if (hend == hstart) return nt_fail(err, NT_ERR_INVALID, "redis URL has no host");
    if (has_ctl_or_space(hstart, (size_t)(hend - hstart)) ||
        memchr(hstart, '@', (size_t)(hend - hstart)) || (size_t)(hend - hstart) > 253)
        return nt_fail(err, NT_ERR_INVALID, "redis URL host is not a valid host name or address");
    u->port = 6379;
    if (portp) {
        long long port = nt_decimal_parse(portp, (size_t)(tail - portp), 1, 65535);
        if (port < 0) {
            int shown = (int)((size_t)(tail - portp) > 20 ? 20 : (size_t)(tail - portp));
            return nt_fail(err, NT_ERR_INVALID,
                           "redis URL port '%.*s' is not a number from 1 to 65535", shown, portp);
        }
        u->port = (int)port;
    }
    if (*tail == '/' && tail[1] != '\0') {
        long long db = nt_decimal_parse(tail + 1, strlen(tail + 1), 0, INT_MAX);
        if (db < 0)
            return nt_fail(
                err, NT_ERR_INVALID,
                "redis URL database must be a number from 0 to %d (redis://host:port/db)", INT_MAX);
        u->db = (int)db;
    }
    u->host = strndup(hstart, (size_t)(hend - hstart));
    if (!u->host) return nt_fail(err, NT_ERR_NOMEM, "out of memory");
    return NT_OK;
}

nt_status redis_url_parse(const char *url, redis_url *out, nt_err *err)
{
    memset(out, 0, sizeof *out);
    if (!url || !*url) return nt_fail(err, NT_ERR_INVALID, "redis URL is empty");
    nt_status st;
    if (strncmp(url, "redis://", 8) == 0) {
        st = url_parse_tcp(url + 8, out, err);
    } else if (strncmp(url, "rediss://", 9) == 0) {
        st = url_parse_tcp(url + 9, out, err);
        out->is_tls = 1;
    } else if (strncmp(url, "unix://", 7) == 0) {
        st = url_parse_unix(url + 7, out, err);
    } else {
        const char *sep = strstr(url, "://");
        int shown = sep && sep - url <= 16 ? (int)(sep - url) : 0;
        if (shown)
            return nt_fail(err, NT_ERR_INVALID,
                           "redis URL scheme '%.*s' is not supported; use redis://host:port/db, "
                           "rediss://host:port/db (TLS) or unix:///path",
                           shown, url);
        return nt_fail(err, NT_ERR_INVALID,
                       "redis URL must start with redis://, rediss:// or unix:// "
                       "(redis://host:port/db)");
    }
    if (st != NT_OK) redis_url_clear(out);
    return st;
}

/*
 * redis_url.h — the Redis URL of --redis-url, parsed (store.c connects to
 * what it names; config.c checks it early). Pure: part of the core.
 *
 * Accepted: redis[s]://[user[:password]@]host[:port][/db] (IPv6 in
 * brackets; credentials percent-decoded) and unix:///path[?db=N].
 */
#ifndef NT_REDIS_URL_H
#define NT_REDIS_URL_H

#include "common.h"

/* A parsed Redis URL. Strings are owned (redis_url_clear frees them). */
typedef struct redis_url {
    int is_unix;
    int is_tls;     /* rediss:// */
    char *host;     /* TCP: host name or IP literal (IPv6 without brackets) */
    int port;       /* TCP: 1..65535, default 6379 */
    char *path;     /* unix: absolute socket path */
    int db;         /* 0.. */
    char *username; /* NULL unless the URL has user@ or user:password@ */
    char *password; /* NULL when absent; percent-decoded */
} redis_url;

/* Parse url (redis://, rediss:// or unix://) into *out (zeroed first). Errors:
 * NT_ERR_INVALID with a sentence naming the bad part (never echoing a
 * password). On error *out holds nothing to free. */
nt_status redis_url_parse(const char *url, redis_url *out, nt_err *err);
void redis_url_clear(redis_url *u);

#endif

/*
 * http.h — `newtermsd serve`: the libmicrohttpd front end.
 *
 * http_server_start loads nothing itself: main gives it a configuration and a
 * loaded rule set. It starts the shared server state (server.h: the Redis
 * pool, the exception poller, the outputs) and the MHD thread pool.
 * http_server_stop stops accepting connections, lets in-flight requests
 * finish (up to --drain-timeout-s), then tears everything down.
 */
#ifndef NT_HTTP_H
#define NT_HTTP_H

#include "common.h"
#include "config.h"
#include "rule.h"

typedef struct http_server http_server;

/* Takes ownership of rules. On failure everything is released. */
nt_status http_server_start(http_server **out, config *cfg, nt_ruleset *rules, nt_err *err);
/* NULL is fine. */
void http_server_stop(http_server *h);

#endif

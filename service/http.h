/*
 * http.h — `newtermsd serve`: the libmicrohttpd front end.
 *
 * http_server_start loads nothing itself: main gives it a configuration and a
 * loaded rule set. It opens the Redis pool (one connection per worker),
 * starts the exception poller and the MHD thread pool. http_server_stop
 * stops accepting connections, lets in-flight requests finish (up to the
 * request timeout), then tears everything down.
 */
#ifndef NT_HTTP_H
#define NT_HTTP_H

#include "server.h"

/* Takes ownership of rules. On failure everything is released. */
nt_status http_server_start(server **out, config *cfg, nt_ruleset *rules, nt_err *err);
void http_server_stop(server *s);

#endif

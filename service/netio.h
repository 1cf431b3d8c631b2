/*
 * netio.h — one byte stream to a server: TCP or a unix socket, plain or TLS
 * (OpenSSL), every operation bounded by a timeout.
 *
 * The Redis store (store.c) speaks RESP through hiredis' parser and formatter
 * but moves the bytes itself through this module, so plain TCP, unix sockets
 * and TLS share one code path: the same write/read loop, the same timeouts,
 * the same error sentences. Sockets are non-blocking and every wait is a
 * poll(), so a TLS handshake or a read can never block past its timeout.
 *
 * TLS: the server certificate is always verified (against ca_file, or the
 * system store when it is NULL), and so is its name (DNS name or IP address,
 * SSL_set1_host / X509_VERIFY_PARAM_set1_ip_asc) — unless `insecure` is set,
 * which exists for tests and is the caller's to log loudly. SNI is sent when
 * the name is a DNS name. Client certificates are optional (both files or
 * neither).
 *
 * Errors: every function returns NT_OK or an nt_status with a sentence in err
 * that names the cause without the endpoint (the caller prefixes that):
 * "Connection refused", "timed out after 500 ms", "connection closed by the
 * server", "TLS handshake failed: certificate verify failed: certificate has
 * expired".
 *
 * Ownership: a netio_tls is an SSL_CTX (configuration, CA store) owned by its
 * creator; a netio borrows it, so free every netio before its netio_tls. Both
 * free functions accept NULL. Strings in netio_tls_config are only read by
 * netio_tls_new.
 */
#ifndef NT_NETIO_H
#define NT_NETIO_H

#include "common.h"

#include <stddef.h>

typedef struct netio_tls_config {
    char *ca_file;     /* PEM CA bundle to verify the server; NULL = the system store */
    char *cert_file;   /* PEM client certificate (chain); NULL = none */
    char *key_file;    /* its private key; set exactly when cert_file is */
    char *server_name; /* name to verify and send as SNI; NULL = the host connected to */
    int insecure;      /* 1 = accept any server certificate (tests only) */
} netio_tls_config;

typedef struct netio_tls netio_tls;
typedef struct netio netio;

/* Builds the TLS configuration: loads the CA bundle (or the system store) and
 * the client certificate and key. NT_ERR_INVALID for a missing half of the
 * client pair; NT_ERR_IO when a file cannot be read or parsed (the sentence
 * names the file and OpenSSL's reason). */
nt_status netio_tls_new(netio_tls **out, const netio_tls_config *cfg, nt_err *err);
void netio_tls_free(netio_tls *t);

/* Connects to host:port (a DNS name or an IP literal, every address tried in
 * turn) and, with tls, completes the TLS handshake, all within timeout_ms. */
nt_status netio_connect_tcp(netio **out, const char *host, int port, const netio_tls *tls,
                            int timeout_ms, nt_err *err);
nt_status netio_connect_unix(netio **out, const char *path, int timeout_ms, nt_err *err);

/* Writes all n bytes; each wait for the socket is at most timeout_ms. */
nt_status netio_write(netio *io, const void *buf, size_t n, int timeout_ms, nt_err *err);

/* Reads at least one byte (at most cap) into buf; *got = the count. Waits at
 * most timeout_ms for data. End of stream is an error. */
nt_status netio_read(netio *io, void *buf, size_t cap, size_t *got, int timeout_ms, nt_err *err);

/* 1 when the stream runs TLS. */
int netio_is_tls(const netio *io);

/* Closes the stream (a TLS close_notify is sent without waiting). */
void netio_close(netio *io);

#endif

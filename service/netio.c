/*
 * netio.c — a byte stream over TCP or a unix socket, plain or TLS (see netio.h).
 *
 * How it works:
 * - Sockets are created non-blocking: connect() and the TLS handshake wait in
 *   poll() until one deadline (OpenSSL's SSL_ERROR_WANT_READ / WANT_WRITE say
 *   which way). Once connected the socket turns blocking with SO_RCVTIMEO /
 *   SO_SNDTIMEO, so a read is a single recv() or SSL_read() as with hiredis'
 *   own I/O; a timed-out call comes back as EAGAIN (OpenSSL: WANT_READ /
 *   WANT_WRITE) and is reported as such.
 * - The plain path uses recv/send(MSG_NOSIGNAL); the TLS path SSL_read /
 *   SSL_write with partial writes enabled. Nothing above this file knows which.
 * - Error sentences come from errno, from the X509 verify result (the reason a
 *   certificate was refused: "certificate has expired", "unable to get local
 *   issuer certificate", "hostname mismatch"), or from the first OpenSSL error
 *   on the thread's queue, which is cleared before every TLS call.
 */
#include "netio.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

struct netio_tls {
    SSL_CTX *ctx;
    char *server_name; /* owned; NULL = the host connected to */
    int insecure;
};

struct netio {
    int fd;
    SSL *ssl;           /* NULL on a plain stream */
    int broken;         /* a fatal TLS error or a timeout happened: no close_notify */
    int rcv_ms, snd_ms; /* the socket's current SO_RCVTIMEO / SO_SNDTIMEO; 0 = none */
};

static int64_t netio_mono_ms(void)
{
    return nt_mono_ns() / 1000000;
}

/* Waits for events on fd: 1 ready, 0 timed out, -1 error (errno set). */
static int netio_poll(int fd, short events, int timeout_ms)
{
    int64_t deadline = netio_mono_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    for (;;) {
        int64_t left = deadline - netio_mono_ms();
        struct pollfd p = {.fd = fd, .events = events};
        int rc = poll(&p, 1, left > 0 ? (int)left : 0);
        if (rc > 0) return 1; /* POLLERR/POLLHUP too: the next call reports the cause */
        if (rc == 0) return 0;
        if (errno != EINTR) return -1;
    }
}

/* The reason of the oldest queued OpenSSL error ("unknown error" when none);
 * the queue is cleared. */
static void netio_ssl_reason(char *buf, size_t n)
{
    unsigned long code = ERR_get_error();
    const char *reason = code ? ERR_reason_error_string(code) : NULL;
    snprintf(buf, n, "%s", reason ? reason : "unknown error");
    ERR_clear_error();
}

/* ---- TLS configuration ----------------------------------------------------- */

nt_status netio_tls_new(netio_tls **out, const netio_tls_config *cfg, nt_err *err)
{
    *out = NULL;
    if (!cfg->cert_file != !cfg->key_file)
        return nt_fail(err, NT_ERR_INVALID,
                       "a TLS client certificate needs both a certificate file and a key file");
    char why[160];
    nt_status st = NT_OK;
    netio_tls *t = calloc(1, sizeof *t);
    if (!t) return nt_fail(err, NT_ERR_NOMEM, "out of memory");
    ERR_clear_error();
    t->ctx = SSL_CTX_new(TLS_client_method());
    if (!t->ctx) {
        netio_ssl_reason(why, sizeof why);
        st = nt_fail(err, NT_ERR_NOMEM, "cannot create a TLS context: %s", why);
        goto fail;
    }
    SSL_CTX_set_min_proto_version(t->ctx, TLS1_2_VERSION);
    SSL_CTX_set_mode(t->ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (cfg->ca_file) {
        if (SSL_CTX_load_verify_locations(t->ctx, cfg->ca_file, NULL) != 1) {
            netio_ssl_reason(why, sizeof why);
            st = nt_fail(err, NT_ERR_IO, "cannot load the TLS CA bundle '%.200s': %s", cfg->ca_file,
                         why);
            goto fail;
        }
    } else if (SSL_CTX_set_default_verify_paths(t->ctx) != 1) {
        netio_ssl_reason(why, sizeof why);
        st = nt_fail(err, NT_ERR_IO, "cannot load the system CA store: %s", why);
        goto fail;
    }
    if (cfg->cert_file) {
        if (SSL_CTX_use_certificate_chain_file(t->ctx, cfg->cert_file) != 1) {
            netio_ssl_reason(why, sizeof why);
            st = nt_fail(err, NT_ERR_IO, "cannot load the TLS client certificate '%.200s': %s",
                         cfg->cert_file, why);
            goto fail;
        }
        if (SSL_CTX_use_PrivateKey_file(t->ctx, cfg->key_file, SSL_FILETYPE_PEM) != 1 ||
            SSL_CTX_check_private_key(t->ctx) != 1) {
            netio_ssl_reason(why, sizeof why);
            st = nt_fail(err, NT_ERR_IO, "cannot use the TLS client key '%.200s': %s",
                         cfg->key_file, why);
            goto fail;
        }
    }
    SSL_CTX_set_verify(t->ctx, cfg->insecure ? SSL_VERIFY_NONE : SSL_VERIFY_PEER, NULL);
    t->insecure = cfg->insecure;
    if (cfg->server_name && !(t->server_name = strdup(cfg->server_name))) {
        st = nt_fail(err, NT_ERR_NOMEM, "out of memory");
        goto fail;
    }
    *out = t;
    return NT_OK;
fail:
    netio_tls_free(t);
    return st;
}

void netio_tls_free(netio_tls *t)
{
    if (!t) return;
    SSL_CTX_free(t->ctx);
    free(t->server_name);
    free(t);
}

/* ---- TLS errors -------------------------------------------------------------- */

/* The sentence for a failed TLS call whose SSL_get_error() was e. */
static nt_status netio_tls_fail(netio *io, int e, const char *what, const char *name, nt_err *err)
{
    int saved = errno;
    io->broken = 1;
    long vr = SSL_get_verify_result(io->ssl);
    if (vr != X509_V_OK) {
        ERR_clear_error();
        if (vr == X509_V_ERR_HOSTNAME_MISMATCH || vr == X509_V_ERR_IP_ADDRESS_MISMATCH)
            return nt_fail(
                err, NT_ERR_IO,
                "%s: certificate verify failed: %s (the certificate is not for '%.100s'; "
                "set the TLS server name when connecting by address)",
                what, X509_verify_cert_error_string(vr), name ? name : "?");
        return nt_fail(err, NT_ERR_IO, "%s: certificate verify failed: %s", what,
                       X509_verify_cert_error_string(vr));
    }
    if (e == SSL_ERROR_SSL) {
        char why[160];
        netio_ssl_reason(why, sizeof why);
        if (strstr(why, "certificate required"))
            return nt_fail(err, NT_ERR_IO, "%s: %s (the server requires a TLS client certificate)",
                           what, why);
        return nt_fail(err, NT_ERR_IO, "%s: %s", what, why);
    }
    ERR_clear_error();
    if (e == SSL_ERROR_SYSCALL && saved != 0)
        return nt_fail(err, NT_ERR_IO, "%s: %s", what, strerror(saved));
    if (strcmp(what, "TLS handshake failed") == 0)
        return nt_fail(err, NT_ERR_IO, "connection closed by the server during the TLS handshake");
    return nt_fail(err, NT_ERR_IO, "connection closed by the server");
}

/* A TLS 1.3 server that refuses the client (no client certificate) says so
 * with an alert sent after the client's handshake has finished; when our
 * first write meets the closed connection instead, the alert is usually
 * still unread in the socket. Report it rather than "connection reset". */
static nt_status netio_tls_write_fail(netio *io, int e, nt_err *err)
{
    if (e == SSL_ERROR_SYSCALL) {
        int saved = errno;
        char tmp[512];
        /* Only what is already there: the stream is failing anyway. */
        int flags = fcntl(io->fd, F_GETFL);
        if (flags >= 0) fcntl(io->fd, F_SETFL, flags | O_NONBLOCK);
        ERR_clear_error();
        int rc = SSL_read(io->ssl, tmp, sizeof tmp);
        if (rc <= 0 && SSL_get_error(io->ssl, rc) == SSL_ERROR_SSL)
            return netio_tls_fail(io, SSL_ERROR_SSL, "TLS connection failed", NULL, err);
        errno = saved;
    }
    return netio_tls_fail(io, e, "TLS connection failed", NULL, err);
}

static int netio_is_ip(const char *name)
{
    unsigned char buf[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, name, buf) == 1 || inet_pton(AF_INET6, name, buf) == 1;
}

static nt_status netio_tls_start(netio *io, const netio_tls *t, const char *host, int64_t deadline,
                                 int timeout_ms, nt_err *err)
{
    const char *name = t->server_name ? t->server_name : host;
    ERR_clear_error();
    io->ssl = SSL_new(t->ctx);
    if (!io->ssl || SSL_set_fd(io->ssl, io->fd) != 1)
        return nt_fail(err, NT_ERR_NOMEM, "cannot create a TLS session");
    int is_ip = netio_is_ip(name);
    if (!t->insecure) {
        int ok;
        if (is_ip) {
            ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(io->ssl), name) == 1;
        } else {
            SSL_set_hostflags(io->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
            ok = SSL_set1_host(io->ssl, name) == 1;
        }
        if (!ok)
            return nt_fail(err, NT_ERR_INVALID, "TLS server name '%.100s' cannot be verified",
                           name);
    }
    /* SNI carries DNS names only (RFC 6066). */
    if (!is_ip && SSL_set_tlsext_host_name(io->ssl, name) != 1)
        return nt_fail(err, NT_ERR_INVALID, "TLS server name '%.100s' is not valid", name);
    for (;;) {
        ERR_clear_error();
        int rc = SSL_connect(io->ssl);
        if (rc == 1) return NT_OK;
        int e = SSL_get_error(io->ssl, rc);
        if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
            return netio_tls_fail(io, e, "TLS handshake failed", name, err);
        int64_t left = deadline - netio_mono_ms();
        int p = left > 0
                    ? netio_poll(io->fd, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, (int)left)
                    : 0;
        if (p == 0) {
            io->broken = 1;
            return nt_fail(err, NT_ERR_IO, "TLS handshake timed out after %d ms", timeout_ms);
        }
        if (p < 0) return nt_fail(err, NT_ERR_IO, "%s", strerror(errno));
    }
}

/* ---- connecting -------------------------------------------------------------- */

/* Non-blocking connect of fd to addr, finished by deadline. 0, or -1 with why. */
static int netio_connect_fd(int fd, const struct sockaddr *addr, socklen_t len, int64_t deadline,
                            int timeout_ms, char *why, size_t n)
{
    if (connect(fd, addr, len) == 0) return 0;
    if (errno != EINPROGRESS && errno != EINTR) {
        snprintf(why, n, "%s", strerror(errno));
        return -1;
    }
    int64_t left = deadline - netio_mono_ms();
    int p = left > 0 ? netio_poll(fd, POLLOUT, (int)left) : 0;
    if (p == 0) {
        snprintf(why, n, "connect timed out after %d ms", timeout_ms);
        return -1;
    }
    int so = 0;
    socklen_t sl = sizeof so;
    if (p < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &so, &sl) != 0) so = errno;
    if (so == 0) return 0;
    snprintf(why, n, "%s", strerror(so));
    return -1;
}

/* A netio owning fd; NULL (fd closed) when out of memory. */
static netio *netio_wrap(int fd)
{
    netio *io = calloc(1, sizeof *io);
    if (!io) {
        close(fd);
        return NULL;
    }
    io->fd = fd;
    return io;
}

/* Connected (and handshaken): from now on blocking I/O with socket timeouts. */
static nt_status netio_make_blocking(netio *io, nt_err *err)
{
    int flags = fcntl(io->fd, F_GETFL);
    if (flags < 0 || fcntl(io->fd, F_SETFL, flags & ~O_NONBLOCK) != 0)
        return nt_fail(err, NT_ERR_IO, "cannot make the socket blocking: %s", strerror(errno));
    return NT_OK;
}

nt_status netio_connect_tcp(netio **out, const char *host, int port, const netio_tls *tls,
                            int timeout_ms, nt_err *err)
{
    *out = NULL;
    int64_t deadline = netio_mono_ms() + timeout_ms;
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    char portstr[8];
    snprintf(portstr, sizeof portstr, "%d", port);
    int rc = getaddrinfo(host, portstr, &hints, &res);
    if (rc != 0)
        return nt_fail(err, NT_ERR_IO, "cannot resolve '%.100s': %s", host,
                       rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
    char why[160] = "no address to connect to";
    int fd = -1;
    for (const struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            snprintf(why, sizeof why, "%s", strerror(errno));
            continue;
        }
        if (netio_connect_fd(fd, ai->ai_addr, ai->ai_addrlen, deadline, timeout_ms, why,
                             sizeof why) == 0)
            break;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) return nt_fail(err, NT_ERR_IO, "%s", why);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    netio *io = netio_wrap(fd);
    if (!io) return nt_fail(err, NT_ERR_NOMEM, "out of memory");
    nt_status st = NT_OK;
    if (tls) st = netio_tls_start(io, tls, host, deadline, timeout_ms, err);
    if (st == NT_OK) st = netio_make_blocking(io, err);
    if (st != NT_OK) {
        netio_close(io);
        return st;
    }
    *out = io;
    return NT_OK;
}

nt_status netio_connect_unix(netio **out, const char *path, int timeout_ms, nt_err *err)
{
    *out = NULL;
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof sa.sun_path)
        return nt_fail(err, NT_ERR_INVALID, "unix socket path is too long");
    memcpy(sa.sun_path, path, strlen(path));
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return nt_fail(err, NT_ERR_IO, "%s", strerror(errno));
    char why[160];
    if (netio_connect_fd(fd, (const struct sockaddr *)&sa, sizeof sa, netio_mono_ms() + timeout_ms,
                         timeout_ms, why, sizeof why) != 0) {
        close(fd);
        return nt_fail(err, NT_ERR_IO, "%s", why);
    }
    netio *io = netio_wrap(fd);
    if (!io) return nt_fail(err, NT_ERR_NOMEM, "out of memory");
    nt_status st = netio_make_blocking(io, err);
    if (st != NT_OK) {
        netio_close(io);
        return st;
    }
    *out = io;
    return NT_OK;
}

/* ---- reading and writing -------------------------------------------------------- */

/* After connecting, the socket is blocking with SO_RCVTIMEO / SO_SNDTIMEO: a
 * read is then one recv() (or SSL_read) instead of recv + poll + recv, which
 * is what a plain round trip costs with hiredis' own blocking I/O. The
 * timeout is set only when it changes. */
static int netio_set_timeout(netio *io, int opt, int *cached, int timeout_ms)
{
    if (*cached == timeout_ms) return 0;
    struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
    if (setsockopt(io->fd, SOL_SOCKET, opt, &tv, sizeof tv) != 0) return -1;
    *cached = timeout_ms;
    return 0;
}

nt_status netio_write(netio *io, const void *buf, size_t n, int timeout_ms, nt_err *err)
{
    if (netio_set_timeout(io, SO_SNDTIMEO, &io->snd_ms, timeout_ms) != 0)
        return nt_fail(err, NT_ERR_IO, "cannot set the socket timeout: %s", strerror(errno));
    const char *p = buf;
    while (n > 0) {
        if (io->ssl) {
            ERR_clear_error();
            int rc = SSL_write(io->ssl, p, n > INT_MAX ? INT_MAX : (int)n);
            if (rc > 0) {
                p += rc;
                n -= (size_t)rc;
                continue;
            }
            int e = SSL_get_error(io->ssl, rc);
            if (e != SSL_ERROR_WANT_WRITE && e != SSL_ERROR_WANT_READ)
                return netio_tls_write_fail(io, e, err);
        } else {
            ssize_t rc = send(io->fd, p, n, MSG_NOSIGNAL);
            if (rc >= 0) {
                p += rc;
                n -= (size_t)rc;
                continue;
            }
            if (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK)
                return nt_fail(err, NT_ERR_IO, "%s", strerror(errno));
        }
        if (errno != EINTR) {
            io->broken = 1;
            return nt_fail(err, NT_ERR_IO, "timed out after %d ms", timeout_ms);
        }
    }
    return NT_OK;
}

nt_status netio_read(netio *io, void *buf, size_t cap, size_t *got, int timeout_ms, nt_err *err)
{
    *got = 0;
    if (netio_set_timeout(io, SO_RCVTIMEO, &io->rcv_ms, timeout_ms) != 0)
        return nt_fail(err, NT_ERR_IO, "cannot set the socket timeout: %s", strerror(errno));
    for (;;) {
        if (io->ssl) {
            ERR_clear_error();
            int rc = SSL_read(io->ssl, buf, cap > INT_MAX ? INT_MAX : (int)cap);
            if (rc > 0) {
                *got = (size_t)rc;
                return NT_OK;
            }
            int e = SSL_get_error(io->ssl, rc);
            if (e == SSL_ERROR_ZERO_RETURN)
                return nt_fail(err, NT_ERR_IO, "connection closed by the server");
            if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
                return netio_tls_fail(io, e, "TLS connection failed", NULL, err);
        } else {
            ssize_t rc = recv(io->fd, buf, cap, 0);
            if (rc > 0) {
                *got = (size_t)rc;
                return NT_OK;
            }
            if (rc == 0) return nt_fail(err, NT_ERR_IO, "connection closed by the server");
            if (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK)
                return nt_fail(err, NT_ERR_IO, "%s", strerror(errno));
        }
        if (errno != EINTR) {
            io->broken = 1;
            return nt_fail(err, NT_ERR_IO, "timed out after %d ms", timeout_ms);
        }
    }
}

int netio_is_tls(const netio *io)
{
    return io && io->ssl != NULL;
}

void netio_close(netio *io)
{
    if (!io) return;
    if (io->ssl) {
        /* One non-blocking close_notify; the peer's answer is not awaited. */
        if (!io->broken && SSL_is_init_finished(io->ssl)) SSL_shutdown(io->ssl);
        ERR_clear_error();
        SSL_free(io->ssl);
    }
    close(io->fd);
    free(io);
}

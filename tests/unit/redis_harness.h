/*
 * redis_harness.h — a throwaway redis-server for tests (header-only).
 *
 * redis_harness_start() picks a free TCP port (bind port 0, read it back,
 * close), makes a private temp directory and runs
 *   redis-server --port P --bind 127.0.0.1 --save '' --appendonly no
 *                --daemonize no --dir DIR [--requirepass PW] [--unixsocket DIR/redis.sock]
 * as a child process, then waits (up to 10 s) until it answers PING. The
 * binary is $REDIS_SERVER or `redis-server` from PATH.
 *
 * Lifetime: redis_harness_stop() sends SIGTERM and reaps the child;
 * redis_harness_restart() starts it again on the same port and socket (for
 * outage tests); redis_harness_cleanup() stops it and removes the directory.
 * Every started server is also stopped at exit (atexit) by the process that
 * started it — not by forked check test children — and on Linux the server gets
 * PR_SET_PDEATHSIG so a killed test run does not leave it behind.
 *
 * The redis_harness struct is registered by address: keep it alive (static, or
 * in scope) until redis_harness_cleanup(). Start it from the main thread (the
 * death signal follows the thread that forked).
 *
 * Functions return 0 on success and -1 with a message on stderr otherwise.
 * redis_harness_command() runs one command on a fresh connection (AUTH first
 * when the harness has a password) and returns the reply (freeReplyObject it)
 * or NULL.
 */
#ifndef NT_REDIS_HARNESS_H
#define NT_REDIS_HARNESS_H

#include <hiredis/hiredis.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

typedef struct redis_harness_opts {
    const char *password; /* NULL = no AUTH */
    int unix_socket;      /* 1 = also listen on DIR/redis.sock */
} redis_harness_opts;

typedef struct redis_harness {
    pid_t pid;   /* 0 when not running */
    pid_t owner; /* the process that started it */
    int port;
    int unix_socket;
    char password[128];
    char dir[64];
    char sock[128];
    char url[256];      /* redis://127.0.0.1:PORT (no password) */
    char unix_url[192]; /* unix://DIR/redis.sock when unix_socket */
} redis_harness;

#define REDIS_HARNESS_MAX 8

/* The servers to stop at exit. Test-only state. */
static inline redis_harness **redis_harness_registry(void)
{
    static redis_harness *registry[REDIS_HARNESS_MAX];
    return registry;
}

static inline void redis_harness_kill_all(void)
{
    redis_harness **reg = redis_harness_registry();
    for (int i = 0; i < REDIS_HARNESS_MAX; i++) {
        redis_harness *h = reg[i];
        if (h && h->pid > 0 && h->owner == getpid()) {
            kill(h->pid, SIGTERM);
            waitpid(h->pid, NULL, 0);
            h->pid = 0;
        }
    }
}

static inline void redis_harness_register(redis_harness *h)
{
    static int registered;
    redis_harness **reg = redis_harness_registry();
    for (int i = 0; i < REDIS_HARNESS_MAX; i++)
        if (reg[i] == h) return;
    for (int i = 0; i < REDIS_HARNESS_MAX; i++) {
        if (!reg[i]) {
            reg[i] = h;
            break;
        }
    }
    if (!registered) {
        registered = 1;
        atexit(redis_harness_kill_all);
    }
}

static inline int redis_harness_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    socklen_t len = sizeof a;
    int port = -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

static inline void redis_harness_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* A fresh connection to the harness, authenticated; NULL on failure. */
static inline redisContext *redis_harness_connect(const redis_harness *h)
{
    struct timeval tv = {1, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", h->port, tv);
    if (!c || c->err) {
        if (c) redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, tv);
    if (h->password[0]) {
        redisReply *r = redisCommand(c, "AUTH %s", h->password);
        int ok = r && r->type == REDIS_REPLY_STATUS;
        if (r) freeReplyObject(r);
        if (!ok) {
            redisFree(c);
            return NULL;
        }
    }
    return c;
}

static inline redisReply *redis_harness_command(const redis_harness *h, const char *fmt, ...)
{
    redisContext *c = redis_harness_connect(h);
    if (!c) return NULL;
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    redisFree(c);
    return r;
}

/* Starts redis-server on h->port and waits for PING. */
static inline int redis_harness_spawn(redis_harness *h)
{
    char port[16], log[96];
    snprintf(port, sizeof port, "%d", h->port);
    snprintf(log, sizeof log, "%s/redis.log", h->dir);
    const char *bin = getenv("REDIS_SERVER");
    if (!bin || !*bin) bin = "redis-server";
    const char *argv[24];
    int n = 0;
    argv[n++] = bin;
    argv[n++] = "--port";
    argv[n++] = port;
    argv[n++] = "--bind";
    argv[n++] = "127.0.0.1";
    argv[n++] = "--save";
    argv[n++] = "";
    argv[n++] = "--appendonly";
    argv[n++] = "no";
    argv[n++] = "--daemonize";
    argv[n++] = "no";
    argv[n++] = "--dir";
    argv[n++] = h->dir;
    if (h->password[0]) {
        argv[n++] = "--requirepass";
        argv[n++] = h->password;
    }
    if (h->unix_socket) {
        argv[n++] = "--unixsocket";
        argv[n++] = h->sock;
        argv[n++] = "--unixsocketperm";
        argv[n++] = "700";
    }
    argv[n] = NULL;

    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "redis_harness: fork: %s\n", strerror(errno));
        return -1;
    }
    if (pid == 0) {
#ifdef __linux__
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent) _exit(127);
#else
        (void)parent;
#endif
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        execvp(bin, (char *const *)argv);
        _exit(127);
    }
    h->pid = pid;
    h->owner = parent;
    redis_harness_register(h);
    for (int i = 0; i < 200; i++) {
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            h->pid = 0;
            fprintf(stderr, "redis_harness: redis-server exited at start (see %s)\n", log);
            return -1;
        }
        redisReply *r = redis_harness_command(h, "PING");
        int ok = r && r->type == REDIS_REPLY_STATUS && strcmp(r->str, "PONG") == 0;
        if (r) freeReplyObject(r);
        if (ok) return 0;
        redis_harness_sleep_ms(50);
    }
    fprintf(stderr, "redis_harness: redis-server did not answer PING within 10 s\n");
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    h->pid = 0;
    return -1;
}

static inline int redis_harness_stop(redis_harness *h)
{
    if (h->pid <= 0) return 0;
    kill(h->pid, SIGTERM);
    for (int i = 0; i < 100; i++) {
        if (waitpid(h->pid, NULL, WNOHANG) == h->pid) {
            h->pid = 0;
            return 0;
        }
        redis_harness_sleep_ms(50);
    }
    kill(h->pid, SIGKILL);
    waitpid(h->pid, NULL, 0);
    h->pid = 0;
    return 0;
}

static inline int redis_harness_restart(redis_harness *h)
{
    redis_harness_stop(h);
    return redis_harness_spawn(h);
}

static inline int redis_harness_start(redis_harness *h, const redis_harness_opts *opts)
{
    memset(h, 0, sizeof *h);
    snprintf(h->dir, sizeof h->dir, "/tmp/nt-redis-XXXXXX");
    if (!mkdtemp(h->dir)) {
        fprintf(stderr, "redis_harness: mkdtemp: %s\n", strerror(errno));
        return -1;
    }
    if (opts && opts->password) snprintf(h->password, sizeof h->password, "%s", opts->password);
    h->unix_socket = opts && opts->unix_socket;
    snprintf(h->sock, sizeof h->sock, "%s/redis.sock", h->dir);
    snprintf(h->unix_url, sizeof h->unix_url, "unix://%s", h->sock);
    /* Another process may grab the port between probe and bind: try a few. */
    for (int attempt = 0; attempt < 3; attempt++) {
        h->port = redis_harness_free_port();
        if (h->port <= 0) continue;
        snprintf(h->url, sizeof h->url, "redis://127.0.0.1:%d", h->port);
        if (redis_harness_spawn(h) == 0) return 0;
    }
    return -1;
}

static inline void redis_harness_cleanup(redis_harness *h)
{
    redis_harness_stop(h);
    redis_harness **reg = redis_harness_registry();
    for (int i = 0; i < REDIS_HARNESS_MAX; i++)
        if (reg[i] == h) reg[i] = NULL;
    if (!h->dir[0]) return;
    char path[128];
    static const char *const files[] = {"redis.log", "redis.sock", "dump.rdb"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", h->dir, files[i]);
        unlink(path);
    }
    rmdir(h->dir);
    h->dir[0] = '\0';
}

#endif

/*
 * store_loop.c — the Redis store's round-trip cost in a tight loop, to compare
 * transports (plain TCP, TLS) and the price of WAIT, without HTTP or decoding.
 *
 *   store_loop URL ROUNDS BATCH [WAIT_REPLICAS]
 *
 * One round = one store_observe of BATCH LIVE observations (one pipelined round
 * trip of BATCH EVALSHAs, plus WAIT when WAIT_REPLICAS > 0), every term new, so
 * every observation writes an alert — the delivery path's worst case. Then
 * ROUNDS store_ping calls (the smallest round trip). Prints one JSON line.
 * NEWTERMSD_REDIS_PASSWORD / NEWTERMSD_REDIS_CA_FILE /
 * NEWTERMSD_REDIS_TLS_SERVER_NAME are read from the environment. Loopback use
 * only; the caller owns the Redis it points at (its data is overwritten).
 *
 * Built on demand: cmake --build build --target store_loop.
 */
#include "store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

/* This process's user + system CPU seconds: the client's cost of a round trip,
 * which scheduling noise on a shared machine does not inflate the way it
 * inflates wall time. */
static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: store_loop URL ROUNDS BATCH [WAIT_REPLICAS]\n");
        return 2;
    }
    int rounds = atoi(argv[2]), batch = atoi(argv[3]);
    if (rounds < 1 || batch < 1 || batch > 10000) return 2;
    store_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.url = argv[1];
    cfg.password = getenv("NEWTERMSD_REDIS_PASSWORD");
    cfg.tls.ca_file = getenv("NEWTERMSD_REDIS_CA_FILE");
    cfg.tls.server_name = getenv("NEWTERMSD_REDIS_TLS_SERVER_NAME");
    cfg.wait_replicas = argc > 4 ? atoi(argv[4]) : 0;
    cfg.wait_timeout_ms = 1000;
    store *s = NULL;
    nt_err err = {{0}};
    if (store_open(&s, &cfg, &err) != NT_OK || store_ping(s, &err) != NT_OK) {
        fprintf(stderr, "store_loop: %s\n", err.msg);
        store_free(s);
        return 1;
    }
    int rc = 1;
    store_obs *obs = calloc((size_t)batch, sizeof *obs);
    char(*terms)[32] = calloc((size_t)batch, sizeof *terms);
    char(*ids)[48] = calloc((size_t)batch, sizeof *ids);
    if (!obs || !terms || !ids) goto done;
    long long t0 = 1795843752000LL;
    double start = now_s(), cpu0 = cpu_s();
    for (int r = 0; r < rounds; r++) {
        for (int i = 0; i < batch; i++) {
            snprintf(terms[i], sizeof terms[i], "t%d-%d-%ld", r, i, (long)start);
            snprintf(ids[i], sizeof ids[i], "bench-%d-%d-%ld", r, i, (long)start);
            memset(&obs[i], 0, sizeof obs[i]);
            obs[i].rule_id = "bench-rule";
            obs[i].term_hash = terms[i];
            obs[i].ttl_ms = 3600 * 1000;
            obs[i].seen_ms = obs[i].created_ms = t0 + r;
            obs[i].mode = STORE_OBS_LIVE;
            obs[i].alert_id = ids[i];
            obs[i].alert_json = "{\"bench\":true}";
            obs[i].account = "111122223333";
            obs[i].user = "bench";
        }
        if (store_observe(s, obs, (size_t)batch, &err) != NT_OK) {
            fprintf(stderr, "store_loop: round %d: %s\n", r, err.msg);
            goto done;
        }
    }
    double observe_s = now_s() - start, observe_cpu = cpu_s() - cpu0;
    start = now_s();
    cpu0 = cpu_s();
    for (int r = 0; r < rounds; r++) {
        if (store_ping(s, &err) != NT_OK) {
            fprintf(stderr, "store_loop: ping: %s\n", err.msg);
            goto done;
        }
    }
    double ping_s = now_s() - start, ping_cpu = cpu_s() - cpu0;
    printf("{\"url_scheme\":\"%.*s\",\"rounds\":%d,\"batch\":%d,\"wait_replicas\":%d,"
           "\"observe_rounds_per_s\":%.0f,\"observe_ms_per_round\":%.3f,"
           "\"observe_cpu_us_per_round\":%.1f,\"ping_per_s\":%.0f,\"ping_us\":%.1f,"
           "\"ping_cpu_us\":%.2f}\n",
           (int)strcspn(argv[1], ":"), argv[1], rounds, batch, cfg.wait_replicas,
           rounds / observe_s, observe_s * 1000 / rounds, observe_cpu * 1e6 / rounds,
           rounds / ping_s, ping_s * 1e6 / rounds, ping_cpu * 1e6 / rounds);
    rc = 0;
done:
    free(obs);
    free(terms);
    free(ids);
    store_free(s);
    return rc;
}

/*
 * jfast_bench.c — what parsing a record into json_t costs, split into its
 * parts, for callgrind (wall-clock times are meaningless on a shared machine).
 *
 *   cmake --build build --target jfast_bench
 *   build/jfast_bench MODE FILE.ndjson [ROUNDS]
 *
 * FILE holds Firehose deliveries (tests/bench/out/, e.g. Mix B); the first 500
 * "data" strings of the first delivery are base64-decoded once (outside the
 * measured functions) into units. MODE jansson parses each unit with
 * json_loadb, jfast with jfast_loadb (dec_split's flags both), ROUNDS times
 * (default 4), and frees each tree with bench_free. Each step is its own
 * non-inlined function, so callgrind can count it alone:
 *
 *   valgrind --tool=callgrind --toggle-collect=bench_parse build/jfast_bench jfast F
 *   valgrind --tool=callgrind --toggle-collect=bench_free  build/jfast_bench jfast F
 *   valgrind --tool=callgrind --toggle-collect=bench_parse \
 *       --toggle-collect='json_object_setn_new_nocheck' ...   (and so on)
 *
 * and prints the number of units and bytes parsed per round, to divide by,
 * and how many of the units jfast would hand to json_loadb.
 */
#include "base64.h"
#include "decode.h"
#include "jfast.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BENCH_FLAGS (JSON_DECODE_ANY | JSON_DISABLE_EOF_CHECK | JSON_ALLOW_NUL)
#define BENCH_UNITS 500

__attribute__((noinline)) static json_t *bench_parse(int fast, const char *text, size_t len)
{
    json_error_t je;
    return fast ? jfast_loadb(text, len, BENCH_FLAGS, &je)
                : json_loadb(text, len, BENCH_FLAGS, &je);
}

__attribute__((noinline)) static void bench_free(json_t *v)
{
    json_decref(v);
}

int main(int argc, char **argv)
{
    if (argc < 3 || (strcmp(argv[1], "jansson") != 0 && strcmp(argv[1], "jfast") != 0)) {
        fprintf(stderr, "usage: %s jansson|jfast FILE.ndjson [ROUNDS]\n", argv[0]);
        return 2;
    }
    int fast = strcmp(argv[1], "jfast") == 0;
    int rounds = argc > 3 ? atoi(argv[3]) : 4;
    FILE *f = fopen(argv[2], "rb");
    if (!f) {
        perror(argv[2]);
        return 1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n = getline(&line, &cap, f);
    fclose(f);
    json_t *body = n > 0 ? json_loadb(line, (size_t)n, JSON_DISABLE_EOF_CHECK, NULL) : NULL;
    free(line);
    json_t *records = json_object_get(body, "records");
    if (!json_is_array(records)) {
        fprintf(stderr, "%s: no Firehose delivery on the first line\n", argv[2]);
        json_decref(body);
        return 1;
    }
    char *units[BENCH_UNITS];
    size_t lens[BENCH_UNITS], count = 0, bytes = 0;
    for (size_t i = 0; i < json_array_size(records) && count < BENCH_UNITS; i++) {
        const char *b64 = json_string_value(json_object_get(json_array_get(records, i), "data"));
        if (!b64) continue;
        size_t blen = strlen(b64), out = 0;
        char *u = malloc(blen + 1);
        nt_err e;
        if (!u || b64_decode(b64, blen, (unsigned char *)u, blen + 1, &out, &e) != NT_OK) {
            free(u);
            continue;
        }
        units[count] = u;
        lens[count++] = out;
        bytes += out;
    }
    json_decref(body);
    /* How many units jfast hands to jansson (outside the measured functions). */
    size_t fallbacks = 0;
    for (size_t i = 0; i < count; i++) {
        json_error_t je;
        json_t *v = jfast_try_loadb(units[i], lens[i], BENCH_FLAGS, &je);
        if (!v) fallbacks++;
        json_decref(v);
    }
    size_t failed = 0;
    for (int r = 0; r < rounds; r++)
        for (size_t i = 0; i < count; i++) {
            json_t *v = bench_parse(fast, units[i], lens[i]);
            if (!v) failed++;
            bench_free(v);
        }
    printf("%s: %d rounds of %zu units, %zu bytes per round, %zu failed, %zu would fall back to "
           "jansson\n",
           argv[1], rounds, count, bytes, failed, fallbacks);
    for (size_t i = 0; i < count; i++)
        free(units[i]);
    return failed ? 1 : 0;
}

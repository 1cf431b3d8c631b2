/*
 * targets.h — the bodies of the libFuzzer targets (the library ntfuzz), shared
 * by the fuzzers (tests/fuzz/fuzz_main.c, built once per target with clang
 * -fsanitize=fuzzer) and by the regression test
 * (tests/unit/test_fuzz_regressions.c, built by the normal gcc build), so
 * that every input a fuzzer ever crashed on is replayed through exactly the
 * same code on every test run.
 *
 * Each target takes arbitrary bytes, drives one parser or view of the service
 * with them and checks invariants that must hold for any input (slices stay
 * inside their buffers, the KQL prefilter never rejects a record the query
 * matches, …). A broken invariant prints what broke and calls abort(), which
 * libFuzzer reports as a crash and check reports as a failed test.
 *
 * Nothing here needs libFuzzer, reads files or keeps global state: the shared,
 * read-only setup (a rule set, parsed fixed events, a view schema) lives in a
 * fuzz_env that the caller creates once and passes to every call.
 */
#ifndef NT_FUZZ_TARGETS_H
#define NT_FUZZ_TARGETS_H

#include <stddef.h>
#include <stdint.h>

typedef struct fuzz_env fuzz_env;

/* The shared setup for every target; NULL when out of memory or when a
 * built-in fixture fails to load (a message is printed to stderr). Free with
 * fuzz_env_free (NULL is a no-op). The env is not modified by the targets. */
fuzz_env *fuzz_env_new(void);
void fuzz_env_free(fuzz_env *env);

/* How many rules the env's built-in rule set holds (3), so a test can see
 * that the setup really loaded them. */
size_t fuzz_env_rule_count(const fuzz_env *env);

/* One target: a name (also the folder under tests/data/fuzz-regressions/
 * and the suffix of the fuzz_<name> executable) and its body. */
typedef struct fuzz_target {
    const char *name;
    void (*run)(const fuzz_env *env, const uint8_t *data, size_t size);
} fuzz_target;

/* Firehose envelope: fh_scan with and without a callback, fh_unescape on
 * escaped "data" slices, dec_escape_prefix. */
void fuzz_firehose(const fuzz_env *env, const uint8_t *data, size_t size);

/* One Firehose record and the shape of its units. The first byte picks how the
 * rest is fed in (mod 5): 0 as the base64 "data" slice itself; 1 base64-encoded
 * by the harness; 2 gzip'd and then base64-encoded (so the fuzzer explores the
 * CloudWatch Logs envelope without having to forge gzip); 3 as a unit for
 * dec_split / a /v1/events body for pipe_body; 4 as a Content-Encoding: gzip
 * body for dec_body_inflate. Modes 0–2 go through dec_record + dec_split and
 * through the whole pipeline (engine and in-memory history) twice, with and
 * without the KQL prefilter, which must not change the observations. */
void fuzz_record(const fuzz_env *env, const uint8_t *data, size_t size);

/* CloudTrail→ECS view: jansson parse, ct_record_valid, every static field,
 * a few flattened paths and ct_view_fields_json, once with the built-in
 * scratch and once with a tiny caller scratch. Verbatim fields are checked to
 * appear quoted in the raw input when it has no JSON escapes. */
void fuzz_ctview(const fuzz_env *env, const uint8_t *data, size_t size);

/* KQL: kql_parse_json; kql_compile against a fresh view schema; kql_match on
 * the fixed events (a match must pass kql_prefilter on that event's bytes);
 * kql_prefilter on the input itself; the accessors and describers. */
void fuzz_kql(const fuzz_env *env, const uint8_t *data, size_t size);

/* TOML: toml_parse, then rule_load (and rule_to_json) when it parsed. */
void fuzz_toml(const fuzz_env *env, const uint8_t *data, size_t size);

/* Exception items: json_loadb as the API does, exc_item_parse against a fresh
 * view schema, exc_item_match on the fixed events (expiry must be honoured);
 * a JSON array goes through exc_set_from_json and exc_set_match too. */
void fuzz_exception(const fuzz_env *env, const uint8_t *data, size_t size);

/* All of the above, in a constant table ended by a {NULL} row. */
extern const fuzz_target fuzz_targets[];

/* The row for name, or NULL. */
const fuzz_target *fuzz_target_find(const char *name);

#endif

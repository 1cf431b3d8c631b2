/*
 * jfast.h — a faster json_loadb for the records that reach the rules.
 *
 * jfast_loadb builds the same jansson tree as json_loadb(buf, len, flags,
 * error) for ordinary CloudTrail (a top-level object or array of strings,
 * integers, reals, literals, nested at most JFAST_MAX_DEPTH containers deep)
 * at a fraction of jansson's cost: one pass over the bytes, plain string runs
 * found 16 or 32 bytes at a time (SSE2, AVX2 where the CPU has it), values
 * built with jansson's own constructors.
 *
 * The contract is exact equivalence: whenever the fast path is not certain it
 * produces jansson's result (any syntax error, a number it does not convert
 * itself, a flag it does not implement, deeper nesting, an object key holding
 * U+0000, a top-level scalar), it frees what it built and returns
 * json_loadb(buf, len, flags, error) on the same bytes. So the accept/reject
 * decision, the error text, line, column and position are always jansson's.
 * tests/unit/test_jfast.c and the "jfast" fuzz target check the trees with
 * json_equal.
 */
#ifndef NT_JFAST_H
#define NT_JFAST_H

#include <jansson.h>
#include <stddef.h>

/* Containers nested deeper than this go to jansson (its own limit is
 * JSON_PARSER_MAX_DEPTH, 2048; CloudTrail nests well under 20). */
#define JFAST_MAX_DEPTH 64

/* As json_loadb. Returns a new reference the caller json_decref()s, or NULL
 * with *error filled by jansson. On success error (if not NULL) is set as
 * jansson sets it: empty text, source "<buffer>", line and column -1, and
 * position = the bytes consumed (just past the value with
 * JSON_DISABLE_EOF_CHECK, else len). Flags handled on the fast path:
 * JSON_DECODE_ANY, JSON_DISABLE_EOF_CHECK, JSON_ALLOW_NUL; any other flag
 * sends the whole call to jansson. Thread-safe; reads no global state but the
 * CPU's features and (for reals) the locale's decimal point. */
json_t *jfast_loadb(const char *buf, size_t len, size_t flags, json_error_t *error);

/* The same without the fallback, for tests and measurements: the tree, or
 * NULL where jfast_loadb would have called jansson. */
json_t *jfast_try_loadb(const char *buf, size_t len, size_t flags, json_error_t *error);

#endif

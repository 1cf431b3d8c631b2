/*
 * toml.h — a small strict TOML 1.0 reader that yields a jansson tree.
 *
 * It reads what Elastic detection-rule files are written in: tables, arrays of
 * tables (nested ones attach to the last element of the enclosing array),
 * bare/quoted/dotted keys, the four string forms, arrays, inline tables,
 * integers (decimal, 0x, 0o, 0b, with '_'), floats and booleans. Anything
 * else a TOML document may hold is refused with a message, never guessed at:
 * offset date-times, local dates and times (NT_ERR_UNSUPPORTED: the rules write
 * dates as strings), and inf/nan (NT_ERR_UNSUPPORTED: JSON has no such number).
 *
 * Mapping: table -> object (keys in document order), array -> array,
 * string -> string (may hold U+0000), integer -> integer (64-bit; larger is an
 * error), float -> real, boolean -> true/false. Keys may not hold U+0000 (a
 * jansson key is a C string to most callers), so that is refused too.
 */
#ifndef NT_TOML_H
#define NT_TOML_H

#include "common.h"

#include <jansson.h>
#include <stddef.h>

/* Largest document toml_parse accepts, in bytes (NT_ERR_LIMIT beyond). */
#define TOML_MAX_BYTES ((size_t)1 << 20)
/* Deepest nesting accepted (NT_ERR_LIMIT beyond): the root table is depth 0,
 * each part of a header or key adds one, and so does each array or inline
 * table a value opens. */
#define TOML_MAX_DEPTH 32

/* Parse text[0..len) (need not be NUL-terminated; may start with a UTF-8
 * byte-order mark, which is skipped). On NT_OK *out is a new JSON object that
 * the caller owns and releases with json_decref. On failure *out is NULL and,
 * when err is not NULL, err->msg reads "line L, column C: <what>" (columns
 * count characters, from 1) — except the size-limit message, which has no
 * position. Status: NT_ERR_PARSE for a malformed document (syntax, invalid
 * UTF-8, control characters, duplicate keys, redefined tables),
 * NT_ERR_UNSUPPORTED for dates/times and inf/nan, NT_ERR_LIMIT for size and
 * depth, NT_ERR_NOMEM when memory runs out. */
nt_status toml_parse(const char *text, size_t len, json_t **out, nt_err *err);

#endif

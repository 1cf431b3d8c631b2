/*
 * log.h — structured logging: one JSON object per line.
 *
 * Every line is {"ts": "YYYY-MM-DDTHH:MM:SS.mmmZ", "level": "info", "event": "...",
 * "msg": "...", ...fields}. Lines are written with one fwrite under a mutex, so
 * lines from different threads never interleave. Secrets registered with
 * log_add_secret() are replaced by "[REDACTED]" wherever they appear in the
 * event, the message, or any key or string value of the fields (at any depth).
 * Bytes that are not valid UTF-8 are written as \u00XX escapes, so every line
 * is valid JSON whatever the input.
 *
 * The logger is process-wide state (level, output, secrets); every function is
 * thread-safe. Nothing here allocates memory the caller must free.
 */
#ifndef NT_LOG_H
#define NT_LOG_H

#include "common.h"

#include <jansson.h>
#include <stdio.h>

typedef enum { NT_LOG_DEBUG, NT_LOG_INFO, NT_LOG_WARN, NT_LOG_ERROR } log_level;

/* Lines below `lvl` are dropped. Default NT_LOG_INFO. */
void log_set_level(log_level lvl);
log_level log_get_level(void);

/* Where lines go; NULL = stderr (the default). The FILE stays the caller's. */
void log_set_output(FILE *f);

/* "debug" | "info" | "warn" | "error" (also "warning"; case-insensitive).
 * NT_OK and *out set on success; NT_ERR_INVALID with a message naming the
 * accepted levels otherwise (at most 64 bytes of s are quoted). */
nt_status log_level_parse(const char *s, log_level *out, nt_err *err);

/* "debug", "info", "warn" or "error"; a static string. */
const char *log_level_name(log_level lvl);

/* printf-style message. `event` is a short snake_case name ("delivery", "startup"). */
void log_msg(log_level lvl, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Message plus extra fields. `fields` must be a JSON object or NULL; the
 * reference is stolen (decref'd here, also when the line is filtered out).
 * Keys "ts", "level", "event" and "msg" in fields are ignored: they cannot
 * override the envelope. `msg` may be NULL (written as ""). */
void log_json(log_level lvl, const char *event, const char *msg, json_t *fields);

/* Register a secret (copied) to redact from every future line. Strings shorter
 * than 4 bytes are ignored (redacting "a" would shred every line); duplicates
 * are kept once. */
void log_add_secret(const char *s);

/* Forget every registered secret. */
void log_reset_secrets(void);

/* Format one line into a malloc'd NUL-terminated string ending in '\n', with
 * the current secrets applied, without writing it (for tests and for callers
 * that want the exact bytes). `ts` is the timestamp to use. Caller frees;
 * NULL on allocation failure. Steals `fields` like log_json. */
char *log_format_line(long long ts_ms, log_level lvl, const char *event, const char *msg,
                      json_t *fields);

#endif

/*
 * glob.h — case-sensitive wildcard patterns in Elasticsearch `wildcard` query
 * syntax: `*` matches any run of bytes (including none), `?` one character
 * (one UTF-8 sequence), and `\` makes the next character literal.
 *
 * KQL wildcards and exception `wildcard` entries both compile to this form
 * (KQL turns its literal `?` into `\?`). A pattern compiles once; matching
 * allocates nothing. Common shapes (exact, `abc*`, `*abc`, `*abc*`) take a fast
 * path.
 */
#ifndef NT_GLOB_H
#define NT_GLOB_H

#include "common.h"

typedef enum nt_glob_kind {
    NT_GLOB_EXACT,    /* no wildcard at all */
    NT_GLOB_PREFIX,   /* lit*     */
    NT_GLOB_SUFFIX,   /* *lit     */
    NT_GLOB_CONTAINS, /* *lit*    */
    NT_GLOB_ANY,      /* * alone: any value */
    NT_GLOB_GENERAL,
} nt_glob_kind;

#define NT_GLOB_OP_STAR 256
#define NT_GLOB_OP_ONE 257

typedef struct nt_glob {
    nt_glob_kind kind;
    char *lit; /* fast paths: the literal, unescaped; GENERAL: ops as bytes (owned) */
    size_t lit_len;
    size_t stars, ones; /* number of `*` runs and of `?` */
    uint16_t *ops;      /* GENERAL: one op per element: 0..255 a literal byte, NT_GLOB_OP_STAR,
                           NT_GLOB_OP_ONE (owned) */
    size_t ops_len;
} nt_glob;

/* Compile pattern (ES wildcard syntax). On success *g owns memory freed by
 * nt_glob_free. A trailing lone backslash is a parse error. */
nt_status nt_glob_compile(nt_glob *g, const char *pattern, size_t len, nt_err *err);
void nt_glob_free(nt_glob *g);

/* 1 when text matches the whole pattern. Linear in len except for segments
 * between two stars that contain `?`: those cost up to len × their length
 * (see glob.c), so callers facing hostile input bound both. */
int nt_glob_match(const nt_glob *g, const char *text, size_t len);

/* A run of literal bytes that every match must contain (unescaped),
 * for prefilters: points into the glob, valid while it lives; len 0 when the
 * pattern is not a single literal with stars only at its ends. */
void nt_glob_longest_literal(const nt_glob *g, const char **lit, size_t *len);

#endif

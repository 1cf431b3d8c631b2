/*
 * kql.h — Kibana Query Language: parse a rule query, compile it against a
 * field source, and match events without allocating.
 *
 * The grammar is Kibana's grammar.peggy (docs/kql.md): or/and/not,
 * groups, field:value, value lists `f:(a or (b and not c))`, quoted phrases,
 * wildcards, escapes, `f:*`, ranges, booleans, null and nested `f:{…}`.
 * Parse errors name the line and column and list what the grammar expected
 * there, in the words Kibana uses ("line 1, column 5: expected \"(\", \"{\",
 * value, or whitespace but \"n\" found").
 *
 * Evaluation follows the detection engine on keyword fields: exact,
 * byte-for-byte, case-sensitive; a field matches when any of its values
 * matches; `not` over a missing field is true. Nested `a:{b:c}` evaluates as
 * the dotted field `a.b:c` (no same-object check). Free text (`foo`), field
 * name wildcards (`user.*:x`), `f:null`, wildcard range bounds and date math
 * (`now-1d`) parse but are refused by kql_compile with NT_ERR_UNSUPPORTED.
 *
 * Ownership: kql_compile returns a query the caller frees with kql_free. The
 * query copies the nt_field_source struct, but src->ctx must outlive it.
 * Strings handed out by accessors and visitors point into the query and live
 * as long as it does. kql_ast_json and kql_parse_json return malloc'd strings
 * the caller frees with free().
 */
#ifndef NT_KQL_H
#define NT_KQL_H

#include "common.h"

#define KQL_MAX_QUERY_BYTES 65536 /* longer queries fail with NT_ERR_LIMIT */
#define KQL_MAX_DEPTH 64          /* nesting of ( ) and { }; deeper fails with NT_ERR_LIMIT */

typedef struct kql_query kql_query;

/* Parse text[0..len) and compile it against src (field names are resolved
 * once, here). Errors: NT_ERR_PARSE (syntax, invalid UTF-8), NT_ERR_LIMIT,
 * NT_ERR_UNSUPPORTED, NT_ERR_NOMEM; err gets one sentence. An empty or
 * whitespace-only query matches every event. */
nt_status kql_compile(const char *text, size_t len, const nt_field_source *src, kql_query **out,
                      nt_err *err);

/* 1 when event matches, else 0. Calls src->get into a stack buffer; never
 * allocates. Safe to call from several threads on one query when src->get is. */
int kql_match(const kql_query *q, void *event);

/* Frees the query; NULL is a no-op. */
void kql_free(kql_query *q);

/* Field names the query uses for which src->resolve returned -1, each once, in
 * order of appearance (nested paths already joined with dots). Returns the
 * count; *names points into the query. */
size_t kql_unknown_fields(const kql_query *q, const char *const **names);

/* Calls fn for every field/value equality or wildcard comparison, in query
 * order (also those under `not`; never for `f:*` or ranges). field is the full
 * dotted name, NUL-terminated. value[0..len) is the decoded value for an
 * equality (booleans as "true"/"false"), or for a wildcard the pattern in ES
 * wildcard syntax (`*` any run, `\*` `\?` `\\` literal characters). line and
 * column (from 1, in characters) locate the value in the query text. */
typedef void (*kql_term_fn)(void *ud, const char *field, const char *value, size_t len,
                            int is_wildcard, int line, int column);
void kql_visit_terms(const kql_query *q, kql_term_fn fn, void *ud);

/* The parsed tree as compact JSON in Kibana's KQL node shape:
 *   {"type":"function","function":"is"|"range"|"nested"|"and"|"or"|"not","arguments":[…]}
 *   {"type":"literal","value":"x"|true|false|null,"isQuoted":bool}
 *   {"type":"wildcard","value":"ba@kuery-wildcard@"}   (wildcard stars as Kibana's marker)
 * is: [field, value] (free text has a null literal field); range: [field, "gt"|"gte"|"lt"|"lte",
 * value]; nested: [path, query]; and/or: [children…]; not: [child]. The empty query is
 * is(*, *). Returns a malloc'd string (caller frees), NULL when out of memory. */
char *kql_ast_json(const kql_query *q);

/* Parse only (no field source, no evaluation): accepts everything Kibana
 * accepts, including free text and field wildcards, and writes the tree as in
 * kql_ast_json to *json (caller frees). Same parse errors as kql_compile. */
nt_status kql_parse_json(const char *text, size_t len, char **json, nt_err *err);

/* Conservative raw-record prefilter: 0 when the raw record bytes cannot match
 * the query, 1 when they may. The query is reduced at compile time to byte
 * strings (from fields src->verbatim declares) combined with the query's own
 * and/or structure: a record passes when that formula holds with "the string
 * is in raw" for each of its leaves (so every clause kql_prefilter_describe
 * lists has one of its strings in raw, but not every such record passes).
 * Records containing the bytes `\u` always pass (a JSON escape could hide a
 * string). Never allocates. */
int kql_prefilter(const kql_query *q, const char *raw, size_t len);

/* The prefilter literals of many queries (a ruleset's), deduplicated, so
 * that one search per record serves every query using a literal: the common
 * work of a large rule pack is done once per record, not once per rule. The
 * table points into the queries, which must outlive it. */
typedef struct kql_pfshare kql_pfshare;

/* Per-record state for kql_prefilter_shared: memo has
 * kql_pfshare_nlits(share) bytes; kql_pfrec_reset before each record. */
typedef struct kql_pfrec {
    const char *raw;
    size_t len;
    int clean;   /* a full search saw no backslash in raw */
    int uescape; /* 0 not checked, 1 raw has `\u`, 2 it has not */
    unsigned char
        *memo; /* per shared literal: 0 not searched, 1 found, 2 absent (owned by caller) */
} kql_pfrec;

/* NULL when out of memory (callers then use kql_prefilter). Queries may be
 * NULL (no prefilter). scan: answer every exact literal ("v", quoted on
 * both sides) by one pass per record over raw's quoted segments (hash
 * lookups) instead of one search each; same answers. 1: only when there are
 * enough exact literals to pay for the pass (a large pack); 2: always;
 * 0: never. */
kql_pfshare *kql_pfshare_new(const kql_query *const *qs, size_t n, int scan);

/* With scan: the pass without AVX2 whatever the CPU (the SSE2 loop, which
 * answers exact literals only), so the tests hold both passes to one
 * reference. */
#define KQL_PF_PORTABLE 8
void kql_pfshare_free(kql_pfshare *s);
size_t kql_pfshare_nlits(const kql_pfshare *s);
/* The bytes (*len of them, not NUL-terminated, owned by the query they came
 * from) of shared literal i < kql_pfshare_nlits: what memo[i] says is or is
 * not in the record. */
const char *kql_pfshare_lit(const kql_pfshare *s, size_t i, size_t *len);
void kql_pfrec_reset(kql_pfrec *r, const kql_pfshare *s, const char *raw, size_t len);

/* kql_prefilter(qs[qi], r->raw, r->len) for the qi-th query of the table,
 * with every literal searched at most once per record across all queries. */
int kql_prefilter_shared(const kql_pfshare *s, size_t qi, kql_pfrec *r);

/* Every query's verdict on one record at once: resets r for raw[0..len)
 * and sets may[qi] = kql_prefilter_shared(s, qi, r) for each of the
 * table's queries (may has one byte per query, owned by the caller);
 * returns 1 when any may match. With the exact-literal pass (scan) it walks
 * only the trees of queries whose guard literals the pass found (see
 * kql.c), so the cost follows what the record contains, not the number of
 * queries. */
int kql_prefilter_all(const kql_pfshare *s, kql_pfrec *r, const char *raw, size_t len,
                      unsigned char *may);

/* Writes the prefilter clauses as text, e.g.
 *   "aws.cloudtrail" AND ("ListRoots" OR "ListAccounts")
 * into buf (always NUL-terminated when cap > 0, truncated to fit) and returns
 * the full length, like snprintf. An empty string means no clauses: every
 * record passes. */
size_t kql_prefilter_describe(const kql_query *q, char *buf, size_t cap);

/* How many clauses the prefilter checks (0 = none, every record passes). */
size_t kql_prefilter_clauses(const kql_query *q);

#endif

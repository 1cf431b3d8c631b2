/*
 * kql.c — Kibana Query Language parser, compiler, matcher and prefilter.
 *
 * Parsing. The parser is a hand-written recursive descent that mirrors
 * Kibana's grammar.peggy rule by rule (docs/kql.md §2), including the
 * PEG backtracking: every rule either succeeds and advances `pos`, or fails
 * and leaves `pos` where it was. Error reporting copies peggy's method: each
 * failed terminal or named rule ("value", "field name", "AND", "whitespace",
 * …) records itself at the position it was tried; only the furthest position
 * is kept. When the parse fails, the message lists what was expected there,
 * sorted and joined as peggy does, so messages match Kibana's word for word.
 * Left-recursive-looking rules (`A (OR A)+ / A`) are parsed as `A (OR A)*`,
 * which builds the same tree and records the same failures. The four
 * alternatives that start with a field (nested, range, field:value, free
 * text) share one parse of the leading literal, since it is deterministic.
 * That keeps parsing linear: no sub-query is parsed more than a constant
 * number of times. Unquoted literals are decoded into a scratch buffer with a
 * parallel "this byte is a wildcard star" flag, then trimmed like JavaScript's
 * String.prototype.trim, as Kibana does.
 *
 * The tree (kql_node, kql_lit) lives in an arena owned by the query, so
 * abandoned alternatives and the final tree are freed in one sweep.
 *
 * Compiling. The tree compiles to a small array program (kql_enode): AND, OR,
 * NOT, EXISTS, TERMS and RANGE nodes linked by indices. A TERMS node holds one
 * field id and a list of values (exact or glob); OR siblings on the same field
 * merge into one TERMS node, so a value list `f:("a" or "b" or …)` fetches the
 * field once. Numbers, dates and globs are all prepared here, so kql_match
 * only walks the program with values fetched into stack buffers.
 *
 * Prefilter. From the program we derive conjunctive clauses of byte strings
 * (see kql_prefilter in kql.h): AND unions its children's clauses, OR merges
 * one clause from each child (only if every child has one), NOT/EXISTS/RANGE
 * give none. Strings come only from fields the source declares verbatim:
 * `"v"` for an exact value, the glob's literal with the quote on the anchored
 * side(s) for a wildcard. Bytes JSON might escape (`"`, `\`, `/`, controls,
 * non-ASCII) are never searched: the literal is the value's longest run
 * without them (a general glob's too, between its wildcards), quoted only on
 * a side where the run is anchored; a value made only of such bytes gives
 * no clause. So the filter stays conservative.
 * The clauses describe the filter (kql_prefilter_describe); kql_prefilter
 * itself evaluates a tree with the query's own and/or structure, built from
 * the same literals (pf_build): an and/or of "one of these literals is in the
 * record" leaves, where anything else is true. It is at least as strict as the
 * clauses, and stricter where they lose the structure: the CNF of the seed rule
 * (organizations ∧ its actions) ∨ (iam ∧ its actions) keeps only
 * "organizations" ∨ "iam", so an iam GetRole record passed it; the tree drops
 * it. Conjuncts are ordered cheapest first and each literal is searched at
 * most once per record (a stack memo, so kql_prefilter never allocates).
 * A rule pack shares its literals (kql_pfshare): one pass over the record's
 * quoted segments answers every exact literal, and kql_prefilter_all walks
 * only the trees whose guard literals that pass found (see above
 * kql_pfshare), so the work per record follows what the record holds rather
 * than the number of rules. With AVX2 the pass also answers prefix literals
 * and visits only the quotes that can open a literal; the literals left to
 * searches are searched only when a tree that needs them is walked.
 */
#include "kql.h"

#include "search.h"

#include "glob.h"

#include <stdalign.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#endif

/* ------------------------------------------------------------------ arena */

typedef struct kql_chunk {
    struct kql_chunk *next;
    size_t used, cap;
    max_align_t data[];
} kql_chunk;

typedef struct kql_arena {
    kql_chunk *head;
} kql_arena;

static void *arena_alloc(kql_arena *a, size_t n)
{
    const size_t align = alignof(max_align_t);
    if (n > SIZE_MAX / 2) return NULL;
    n = n == 0 ? align : (n + align - 1) & ~(align - 1);
    kql_chunk *c = a->head;
    if (!c || c->cap - c->used < n) {
        size_t cap = n > 8192 ? n : 8192;
        c = malloc(sizeof *c + cap);
        if (!c) return NULL;
        c->next = a->head;
        c->used = 0;
        c->cap = cap;
        a->head = c;
    }
    void *p = (char *)c->data + c->used;
    c->used += n;
    memset(p, 0, n);
    return p;
}

static char *arena_strndup(kql_arena *a, const char *s, size_t n)
{
    char *d = arena_alloc(a, n + 1);
    if (!d) return NULL;
    if (n) memcpy(d, s, n);
    d[n] = 0;
    return d;
}

static void arena_free(kql_arena *a)
{
    kql_chunk *c = a->head;
    while (c) {
        kql_chunk *next = c->next;
        free(c);
        c = next;
    }
    a->head = NULL;
}

/* ------------------------------------------------------------- the tree */

typedef enum kql_lit_kind { KL_STRING, KL_BOOL, KL_NULL, KL_WILDCARD } kql_lit_kind;

typedef struct kql_lit {
    kql_lit_kind kind;
    int quoted; /* a "…" phrase */
    char *text; /* decoded, NUL-terminated ("true"/"false"/"null" for those kinds) */
    size_t len;
    unsigned char *star; /* KL_WILDCARD: star[i] = 1 where text[i] is a wildcard `*` */
    size_t pos;          /* byte offset of the literal in the query */
} kql_lit;

typedef enum kql_node_type { KN_IS, KN_RANGE, KN_NESTED, KN_AND, KN_OR, KN_NOT } kql_node_type;
typedef enum kql_range_op { KR_GT, KR_GTE, KR_LT, KR_LTE } kql_range_op;
typedef enum kql_visit_kind { KV_NONE, KV_EXACT, KV_WILD } kql_visit_kind;

typedef struct kql_node {
    kql_node_type type;
    kql_lit *field; /* IS/RANGE: NULL = free text; NESTED: the path */
    kql_lit *value; /* IS/RANGE */
    kql_range_op op;
    struct kql_node *kids; /* AND/OR: first child; NOT/NESTED: the child */
    struct kql_node *next; /* next sibling */
    /* Filled by the compiler, for kql_visit_terms. */
    kql_visit_kind visit;
    const char *full; /* dotted field name including nested paths */
    const char *pattern;
    size_t pattern_len;
} kql_node;

/* ------------------------------------------------------ compiled program */

typedef struct kql_num {
    double d;
    int64_t i;
    int is_int; /* i is exact (integer text of at most 18 digits) */
} kql_num;

typedef struct kql_term {
    int next; /* next term of the same TERMS node, -1 at the end */
    int wild;
    const char *text; /* exact value, points into the tree */
    size_t len;
    nt_glob glob; /* wild */
    int num_ok;
    kql_num num;
} kql_term;

typedef struct kql_range {
    kql_range_op op;
    const char *text;
    size_t len;
    int num_ok, time_ok;
    kql_num num;
    nt_time_ms time;
} kql_range;

typedef enum kql_eop { E_TRUE, E_AND, E_OR, E_NOT, E_EXISTS, E_TERMS, E_RANGE } kql_eop;

typedef struct kql_enode {
    kql_eop op;
    int field;
    int kid, next; /* first child, next sibling; -1 = none */
    int arg;       /* E_TERMS: first term; E_RANGE: index into ranges */
} kql_enode;

typedef struct kql_pflit {
    const char *s;
    size_t n;
} kql_pflit;

typedef struct kql_clause {
    kql_pflit *lits;
    size_t n;
    size_t minlen; /* length of the shortest literal */
} kql_clause;

/* The prefilter as a tree that keeps the query's and/or structure (see
 * kql_prefilter): PF_LITS is true when one of its literals is in the record. */
typedef enum kql_pfop { PF_LITS, PF_AND, PF_OR } kql_pfop;

typedef struct kql_pfnode {
    kql_pfop op;
    int kid, next; /* first child, next sibling; -1 = none (PF_AND, PF_OR) */
    int *lit;      /* PF_LITS: indices into pflits */
    size_t nlit;
    int common; /* PF_LITS: index of a literal each of lit holds, tested first (-1: none) */
} kql_pfnode;

#define KQL_PF_MEMO 256 /* literals whose search result kql_prefilter remembers per record */

struct kql_query {
    kql_arena arena;
    nt_field_source src;
    const char *text; /* copy of the query, for line/column of terms */
    size_t text_len;
    kql_node *ast;
    kql_enode *nodes;
    size_t nnodes, nodes_cap;
    kql_term *terms;
    size_t nterms, terms_cap;
    kql_range *ranges;
    size_t nranges, ranges_cap;
    int root;
    const char **unknown;
    size_t nunknown, unknown_cap;
    kql_clause *clauses;
    size_t nclauses;
    kql_pfnode *pfnodes; /* in the arena; pfroot -1 = every record passes */
    size_t npfnodes;
    int pfroot;
    kql_pflit *pflits; /* distinct literals of the tree, in the arena */
    size_t npflits;
};

/* ------------------------------------------------------- text utilities */

/* Line and column (from 1, counting UTF-8 characters) of byte offset pos;
 * lines end at LF, as in peggy. */
static void kql_linecol(const char *s, size_t pos, int *line, int *col)
{
    int l = 1, c = 1;
    for (size_t i = 0; i < pos; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '\n') {
            l++;
            c = 1;
        } else if ((ch & 0xC0) != 0x80) {
            c++;
        }
    }
    *line = l;
    *col = c;
}

/* Length of the (valid) UTF-8 sequence starting with lead byte c. */
static size_t utf8_seq_len(unsigned char c)
{
    return c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
}

static uint32_t utf8_decode(const unsigned char *s, size_t k)
{
    if (k == 1) return s[0];
    uint32_t cp = s[0] & (k == 2 ? 0x1Fu : k == 3 ? 0x0Fu : 0x07u);
    for (size_t j = 1; j < k; j++)
        cp = cp << 6 | (s[j] & 0x3Fu);
    return cp;
}

static size_t utf8_encode(uint32_t cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | cp >> 6);
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | cp >> 12);
        out[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | cp >> 18);
    out[1] = (char)(0x80 | (cp >> 12 & 0x3F));
    out[2] = (char)(0x80 | (cp >> 6 & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* White space as JavaScript's String.prototype.trim sees it. */
static int js_space(uint32_t cp)
{
    return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0xA0 || cp == 0x1680 ||
           (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
           cp == 0x205F || cp == 0x3000 || cp == 0xFEFF;
}

static int ascii_lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

static int bytes_eq(const char *a, size_t an, const char *b, size_t bn)
{
    return an == bn && (an == 0 || memcmp(a, b, an) == 0);
}

static int bytes_cmp(const char *a, size_t an, const char *b, size_t bn)
{
    size_t m = an < bn ? an : bn;
    int c = m ? memcmp(a, b, m) : 0;
    if (c) return c < 0 ? -1 : 1;
    return (an > bn) - (an < bn);
}

/* Parses a decimal number: [+-] digits [. digits] [e [+-] digits], with at
 * least one mantissa digit ("3." and ".3" count, as in Java and JavaScript).
 * Returns 1 and fills out, or 0. Assumes the C locale for strtod. */
static int kql_number_parse(const char *s, size_t len, kql_num *out)
{
    char buf[72];
    size_t i = 0, int_digits = 0, frac_digits = 0;
    int neg = 0, is_int = 1;
    if (len == 0 || len > 64) return 0;
    if (s[0] == '+' || s[0] == '-') neg = s[i++] == '-';
    size_t first_digit = i;
    while (i < len && s[i] >= '0' && s[i] <= '9')
        i++, int_digits++;
    if (i < len && s[i] == '.') {
        is_int = 0;
        i++;
        while (i < len && s[i] >= '0' && s[i] <= '9')
            i++, frac_digits++;
    }
    if (int_digits + frac_digits == 0) return 0;
    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        size_t exp_digits = 0;
        is_int = 0;
        i++;
        if (i < len && (s[i] == '+' || s[i] == '-')) i++;
        while (i < len && s[i] >= '0' && s[i] <= '9')
            i++, exp_digits++;
        if (exp_digits == 0) return 0;
    }
    if (i != len) return 0;
    memcpy(buf, s, len);
    buf[len] = 0;
    out->d = strtod(buf, NULL);
    out->is_int = 0;
    out->i = 0;
    if (is_int && int_digits <= 18) {
        int64_t v = 0;
        for (size_t j = first_digit; j < len; j++)
            v = v * 10 + (s[j] - '0');
        out->i = neg ? -v : v;
        out->is_int = 1;
    }
    return 1;
}

static int num_cmp(const kql_num *a, const kql_num *b)
{
    if (a->is_int && b->is_int) return (a->i > b->i) - (a->i < b->i);
    return (a->d > b->d) - (a->d < b->d);
}

/* --------------------------------------------------------------- parser */

/* What the grammar expected at the failure position, in peggy's sort order. */
enum {
    EX_LPAREN,
    EX_RPAREN,
    EX_COLON,
    EX_LT,
    EX_LTE,
    EX_GT,
    EX_GTE,
    EX_LBRACE,
    EX_RBRACE,
    EX_AND,
    EX_NOT,
    EX_OR,
    EX_END,
    EX_FIELD,
    EX_LITERAL,
    EX_VALUE,
    EX_WS,
    EX_COUNT
};

static const char *const kql_expect_names[EX_COUNT] = {
    "\"(\"",        "\")\"",      "\":\"",   "\"<\"", "\"<=\"",     "\">\"",
    "\">=\"",       "\"{\"",      "\"}\"",   "AND",   "NOT",        "OR",
    "end of input", "field name", "literal", "value", "whitespace",
};

typedef struct kql_parser {
    const char *s;
    size_t n, pos;
    kql_arena *arena;
    size_t fail_pos;
    unsigned expected; /* bit set of EX_* recorded at fail_pos */
    int depth;
    nt_status fatal; /* a non-syntax error (limit, memory, bad escape) stops everything */
    nt_err *err;
    char *buf;           /* scratch: one decoded literal (at most n bytes) */
    unsigned char *star; /* scratch: 1 where buf holds a wildcard star */
} kql_parser;

static void *parser_fatal(kql_parser *p, nt_status st, size_t pos, const char *what)
{
    if (p->fatal == NT_OK) {
        int line, col;
        kql_linecol(p->s, pos, &line, &col);
        p->fatal = nt_fail(p->err, st, "line %d, column %d: %s", line, col, what);
    }
    return NULL;
}

static void *parser_oom(kql_parser *p)
{
    if (p->fatal == NT_OK) p->fatal = nt_fail(p->err, NT_ERR_NOMEM, "out of memory parsing KQL");
    return NULL;
}

static void expect(kql_parser *p, size_t pos, unsigned ex)
{
    if (pos > p->fail_pos) {
        p->fail_pos = pos;
        p->expected = 1u << ex;
    } else if (pos == p->fail_pos) {
        p->expected |= 1u << ex;
    }
}

static int take_char(kql_parser *p, char c, unsigned ex)
{
    if (p->pos < p->n && p->s[p->pos] == c) {
        p->pos++;
        return 1;
    }
    expect(p, p->pos, ex);
    return 0;
}

/* Length of the grammar's whitespace character at i (space, TAB, CR, LF, NBSP), or 0. */
static size_t ws_len(const kql_parser *p, size_t i)
{
    if (i >= p->n) return 0;
    unsigned char c = (unsigned char)p->s[i];
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n') return 1;
    if (c == 0xC2 && i + 1 < p->n && (unsigned char)p->s[i + 1] == 0xA0) return 2;
    return 0;
}

static size_t ws_end(const kql_parser *p, size_t i)
{
    size_t w;
    while ((w = ws_len(p, i)) > 0)
        i += w;
    return i;
}

/* Space* — records "whitespace" where the run stops, as peggy does. */
static void space_star(kql_parser *p)
{
    p->pos = ws_end(p, p->pos);
    expect(p, p->pos, EX_WS);
}

static int word_at(const kql_parser *p, size_t i, const char *w, size_t wl)
{
    if (i > p->n || p->n - i < wl) return 0;
    for (size_t j = 0; j < wl; j++)
        if (ascii_lower((unsigned char)p->s[i + j]) != w[j]) return 0;
    return 1;
}

/* OR / AND: Space+ word Space+ starting at i; returns the end, or 0. */
static size_t binop_end(const kql_parser *p, size_t i, const char *w, size_t wl)
{
    size_t j = ws_end(p, i);
    if (j == i || !word_at(p, j, w, wl)) return 0;
    size_t e = ws_end(p, j + wl);
    return e == j + wl ? 0 : e;
}

/* NOT: 'not'i Space+ starting at i; returns the end, or 0. */
static size_t not_end(const kql_parser *p, size_t i)
{
    if (!word_at(p, i, "not", 3)) return 0;
    size_t e = ws_end(p, i + 3);
    return e == i + 3 ? 0 : e;
}

static int keyword(kql_parser *p, unsigned which)
{
    size_t e = which == EX_NOT  ? not_end(p, p->pos)
               : which == EX_OR ? binop_end(p, p->pos, "or", 2)
                                : binop_end(p, p->pos, "and", 3);
    if (!e) {
        expect(p, p->pos, which);
        return 0;
    }
    p->pos = e;
    return 1;
}

static int is_special(unsigned char c)
{
    return c == '\\' || c == '(' || c == ')' || c == ':' || c == '<' || c == '>' || c == '"' ||
           c == '*' || c == '{' || c == '}';
}

/* "\uXXXX" at i (lowercase u, four hex digits of either case). */
static int hex_escape(const kql_parser *p, size_t i, uint32_t *v)
{
    if (i > p->n || p->n - i < 6 || p->s[i] != '\\' || p->s[i + 1] != 'u') return 0;
    uint32_t x = 0;
    for (size_t j = 2; j < 6; j++) {
        int d = nt_hex_digit((unsigned char)p->s[i + j]);
        if (d < 0) return 0;
        x = x << 4 | (uint32_t)d;
    }
    *v = x;
    return 1;
}

/* A \u escape at i, decoded to UTF-8 at buf[*o]. A UTF-16 surrogate pair
 * written as two escapes becomes one character; a lone surrogate cannot be
 * written in UTF-8 and is a fatal error. Returns source bytes used, 0 if none. */
static size_t unicode_escape(kql_parser *p, size_t i, size_t *o)
{
    uint32_t cp, lo;
    size_t used = 6;
    if (!hex_escape(p, i, &cp)) return 0;
    if (cp >= 0xD800 && cp <= 0xDBFF && hex_escape(p, i + 6, &lo) && lo >= 0xDC00 && lo <= 0xDFFF) {
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        used = 12;
    } else if (cp >= 0xD800 && cp <= 0xDFFF) {
        char what[96];
        snprintf(what, sizeof what,
                 "\\u%.4s is half of a UTF-16 surrogate pair without its other half", p->s + i + 2);
        parser_fatal(p, NT_ERR_PARSE, i, what);
        return 0;
    }
    size_t k = utf8_encode(cp, p->buf + *o);
    memset(p->star + *o, 0, k);
    *o += k;
    return used;
}

static void emit(kql_parser *p, size_t *o, const char *src, size_t n)
{
    memcpy(p->buf + *o, src, n);
    memset(p->star + *o, 0, n);
    *o += n;
}

/* One escape in unquoted text at i: \t \r \n, \<special>, \uXXXX, \or \and
 * \not (any case). The grammar tries them in this order, which is why `\not`
 * reads as LF + "ot". Returns source bytes used, 0 when not an escape. */
static size_t unquoted_escape(kql_parser *p, size_t i, size_t *o)
{
    static const char *const words[] = {"or", "and", "not"};
    if (i + 1 >= p->n) return 0;
    char d = p->s[i + 1];
    if (d == 't' || d == 'r' || d == 'n') {
        char c = d == 't' ? '\t' : d == 'r' ? '\r' : '\n';
        emit(p, o, &c, 1);
        return 2;
    }
    if (is_special((unsigned char)d)) {
        emit(p, o, &d, 1);
        return 2;
    }
    size_t u = unicode_escape(p, i, o);
    if (u || p->fatal) return u;
    for (size_t w = 0; w < 3; w++) {
        size_t wl = strlen(words[w]);
        if (word_at(p, i + 1, words[w], wl)) {
            emit(p, o, p->s + i + 1, wl);
            return 1 + wl;
        }
    }
    return 0;
}

/* Builds the literal for decoded text buf[0..o): trims it like JavaScript,
 * then classifies it as null, boolean, wildcard or string. */
static kql_lit *make_unquoted(kql_parser *p, size_t start, size_t o)
{
    const unsigned char *b = (const unsigned char *)p->buf;
    size_t lo = 0, hi = o;
    while (lo < hi) {
        size_t k = utf8_seq_len(b[lo]);
        if (k > hi - lo || p->star[lo] || !js_space(utf8_decode(b + lo, k))) break;
        lo += k;
    }
    while (hi > lo) {
        size_t s = hi - 1;
        while (s > lo && (b[s] & 0xC0) == 0x80)
            s--;
        if (p->star[s] || !js_space(utf8_decode(b + s, hi - s))) break;
        hi = s;
    }
    kql_lit *l = arena_alloc(p->arena, sizeof *l);
    if (!l) return parser_oom(p);
    l->pos = start;
    l->len = hi - lo;
    l->text = arena_strndup(p->arena, p->buf + lo, l->len);
    if (!l->text) return parser_oom(p);
    int wild = memchr(p->star + lo, 1, l->len) != NULL;
    if (wild) {
        l->kind = KL_WILDCARD;
        l->star = arena_alloc(p->arena, l->len);
        if (!l->star) return parser_oom(p);
        memcpy(l->star, p->star + lo, l->len);
    } else if (bytes_eq(l->text, l->len, "null", 4)) {
        l->kind = KL_NULL;
    } else if (bytes_eq(l->text, l->len, "true", 4) || bytes_eq(l->text, l->len, "false", 5)) {
        l->kind = KL_BOOL;
    } else {
        l->kind = KL_STRING;
    }
    return l;
}

/* UnquotedLiteral: a run of ordinary characters, escapes, stars and inner
 * whitespace, ending at a special character or a keyword. */
static kql_lit *parse_unquoted(kql_parser *p)
{
    size_t i = p->pos, o = 0;
    while (i < p->n) {
        unsigned char c = (unsigned char)p->s[i];
        if (c == '\\') {
            size_t used = unquoted_escape(p, i, &o);
            if (!used) break;
            i += used;
            continue;
        }
        if (c == '*') {
            p->buf[o] = '*';
            p->star[o++] = 1;
            i++;
            continue;
        }
        if (is_special(c)) break;
        if (ws_len(p, i)) {
            /* Every position of a whitespace run sees the same text after the
             * run, so the whole run either starts `or`/`and` or is kept. */
            size_t j = ws_end(p, i);
            if ((word_at(p, j, "or", 2) && ws_len(p, j + 2)) ||
                (word_at(p, j, "and", 3) && ws_len(p, j + 3)))
                break;
            emit(p, &o, p->s + i, j - i);
            i = j;
            continue;
        }
        if (not_end(p, i)) break;
        size_t k = utf8_seq_len(c);
        emit(p, &o, p->s + i, k);
        i += k;
    }
    if (p->fatal || i == p->pos) return NULL;
    kql_lit *l = make_unquoted(p, p->pos, o);
    if (l) p->pos = i;
    return l;
}

/* QuotedString: "…" with \\ \" \t \r \n \uXXXX; any other backslash is literal. */
static kql_lit *parse_quoted(kql_parser *p)
{
    size_t i = p->pos, o = 0;
    if (i >= p->n || p->s[i] != '"') return NULL;
    i++;
    for (;;) {
        if (i >= p->n) return NULL; /* unterminated */
        char c = p->s[i];
        if (c == '"') break;
        if (c == '\\' && i + 1 < p->n) {
            char d = p->s[i + 1];
            if (d == 't' || d == 'r' || d == 'n') {
                char w = d == 't' ? '\t' : d == 'r' ? '\r' : '\n';
                emit(p, &o, &w, 1);
                i += 2;
                continue;
            }
            size_t u = unicode_escape(p, i, &o);
            if (p->fatal) return NULL;
            if (u) {
                i += u;
                continue;
            }
            if (d == '\\' || d == '"') {
                emit(p, &o, &d, 1);
                i += 2;
                continue;
            }
        }
        emit(p, &o, &c, 1);
        i++;
    }
    kql_lit *l = arena_alloc(p->arena, sizeof *l);
    if (!l) return parser_oom(p);
    l->kind = KL_STRING;
    l->quoted = 1;
    l->pos = p->pos;
    l->len = o;
    l->text = arena_strndup(p->arena, p->buf, o);
    if (!l->text) return parser_oom(p);
    p->pos = i + 1;
    return l;
}

/* Literal (also Field and Value): QuotedString / UnquotedLiteral. Records
 * nothing; the callers record the rule name they stand for. */
static kql_lit *parse_literal(kql_parser *p)
{
    kql_lit *l = parse_quoted(p);
    if (l || p->fatal) return l;
    return parse_unquoted(p);
}

static kql_node *new_node(kql_parser *p, kql_node_type t)
{
    kql_node *n = arena_alloc(p->arena, sizeof *n);
    if (!n) return parser_oom(p);
    n->type = t;
    return n;
}

static int enter(kql_parser *p, size_t pos)
{
    if (++p->depth > KQL_MAX_DEPTH) {
        char what[64];
        snprintf(what, sizeof what, "the query nests deeper than %d levels", KQL_MAX_DEPTH);
        parser_fatal(p, NT_ERR_LIMIT, pos, what);
        return 0;
    }
    return 1;
}

typedef kql_node *(*kql_rule)(kql_parser *p);

/* head ( <keyword> item )* — a flat n-ary node when there is more than one item. */
static kql_node *parse_chain(kql_parser *p, kql_rule item, unsigned kw, kql_node_type type)
{
    kql_node *head = item(p);
    if (!head) return NULL;
    kql_node *tail = head;
    size_t count = 1;
    for (;;) {
        size_t save = p->pos;
        if (!keyword(p, kw)) break;
        kql_node *n = item(p);
        if (p->fatal) return NULL;
        if (!n) {
            p->pos = save;
            break;
        }
        tail->next = n;
        tail = n;
        count++;
    }
    if (count == 1) return head;
    kql_node *list = new_node(p, type);
    if (list) list->kids = head;
    return list;
}

static kql_node *or_values(kql_parser *p);

/* The value tree of a value list: IS leaves whose field is set afterwards. */
static kql_node *value_leaf(kql_parser *p)
{
    size_t start = p->pos;
    kql_lit *l = parse_literal(p);
    if (!l) {
        if (!p->fatal) expect(p, start, EX_VALUE);
        return NULL;
    }
    kql_node *n = new_node(p, KN_IS);
    if (n) n->value = l;
    return n;
}

/* ListOfValues: '(' OrListOfValues ')' / Value */
static kql_node *list_of_values(kql_parser *p)
{
    size_t save = p->pos;
    if (take_char(p, '(', EX_LPAREN)) {
        if (!enter(p, save)) return NULL;
        space_star(p);
        kql_node *v = or_values(p);
        if (v) {
            space_star(p);
            if (take_char(p, ')', EX_RPAREN)) {
                p->depth--;
                return v;
            }
        }
        p->depth--;
        if (p->fatal) return NULL;
        p->pos = save;
    }
    return value_leaf(p);
}

/* NotListOfValues: NOT ListOfValues / ListOfValues */
static kql_node *not_values(kql_parser *p)
{
    size_t save = p->pos;
    if (keyword(p, EX_NOT)) {
        kql_node *v = list_of_values(p);
        if (v) {
            kql_node *n = new_node(p, KN_NOT);
            if (n) n->kids = v;
            return n;
        }
        if (p->fatal) return NULL;
        p->pos = save;
    }
    return list_of_values(p);
}

static kql_node *and_values(kql_parser *p)
{
    return parse_chain(p, not_values, EX_AND, KN_AND);
}

static kql_node *or_values(kql_parser *p)
{
    return parse_chain(p, and_values, EX_OR, KN_OR);
}

static void apply_field(kql_node *n, kql_lit *field)
{
    if (n->type == KN_IS) {
        n->field = field;
        return;
    }
    for (kql_node *k = n->kids; k; k = k->next)
        apply_field(k, field);
}

static kql_node *or_query(kql_parser *p);

static int range_op(kql_parser *p, kql_range_op *op)
{
    static const struct {
        const char *text;
        unsigned ex;
        kql_range_op op;
    } ops[] = {
        {"<=", EX_LTE, KR_LTE}, {">=", EX_GTE, KR_GTE}, {"<", EX_LT, KR_LT}, {">", EX_GT, KR_GT}};
    for (size_t i = 0; i < 4; i++) {
        size_t l = strlen(ops[i].text);
        if (p->n - p->pos >= l && memcmp(p->s + p->pos, ops[i].text, l) == 0) {
            p->pos += l;
            *op = ops[i].op;
            return 1;
        }
        expect(p, p->pos, ops[i].ex);
    }
    return 0;
}

/* NestedQuery / FieldRangeExpression / FieldValueExpression / ValueExpression,
 * all starting with the same literal, which is parsed once. */
static kql_node *field_expression(kql_parser *p)
{
    size_t start = p->pos;
    kql_lit *field = parse_literal(p);
    if (!field) {
        if (p->fatal) return NULL;
        expect(p, start, EX_FIELD);
        expect(p, start, EX_VALUE);
        return NULL;
    }
    size_t end = p->pos;

    space_star(p); /* field:{ query } */
    if (take_char(p, ':', EX_COLON)) {
        space_star(p);
        size_t brace = p->pos;
        if (take_char(p, '{', EX_LBRACE)) {
            if (!enter(p, brace)) return NULL;
            space_star(p);
            kql_node *q = or_query(p);
            if (q) {
                space_star(p);
                if (take_char(p, '}', EX_RBRACE)) {
                    p->depth--;
                    kql_node *n = new_node(p, KN_NESTED);
                    if (n) n->field = field, n->kids = q;
                    return n;
                }
            }
            p->depth--;
            if (p->fatal) return NULL;
        }
    }

    p->pos = end; /* field <op> literal */
    space_star(p);
    kql_range_op op;
    if (range_op(p, &op)) {
        space_star(p);
        size_t vstart = p->pos;
        kql_lit *v = parse_literal(p);
        if (v) {
            kql_node *n = new_node(p, KN_RANGE);
            if (n) n->field = field, n->op = op, n->value = v;
            return n;
        }
        if (p->fatal) return NULL;
        expect(p, vstart, EX_LITERAL);
    }

    p->pos = end; /* field: value-list */
    space_star(p);
    if (take_char(p, ':', EX_COLON)) {
        space_star(p);
        kql_node *v = list_of_values(p);
        if (v) {
            apply_field(v, field);
            return v;
        }
        if (p->fatal) return NULL;
    }

    p->pos = end; /* free text */
    kql_node *n = new_node(p, KN_IS);
    if (n) n->value = field;
    return n;
}

/* SubQuery: '(' OrQuery ')' / NestedQuery */
static kql_node *sub_query(kql_parser *p)
{
    size_t save = p->pos;
    if (take_char(p, '(', EX_LPAREN)) {
        if (!enter(p, save)) return NULL;
        space_star(p);
        kql_node *q = or_query(p);
        if (q) {
            space_star(p);
            if (take_char(p, ')', EX_RPAREN)) {
                p->depth--;
                return q;
            }
        }
        p->depth--;
        if (p->fatal) return NULL;
        p->pos = save;
    }
    return field_expression(p);
}

/* NotQuery: NOT SubQuery / SubQuery */
static kql_node *not_query(kql_parser *p)
{
    size_t save = p->pos;
    if (keyword(p, EX_NOT)) {
        kql_node *q = sub_query(p);
        if (q) {
            kql_node *n = new_node(p, KN_NOT);
            if (n) n->kids = q;
            return n;
        }
        if (p->fatal) return NULL;
        p->pos = save;
    }
    return sub_query(p);
}

static kql_node *and_query(kql_parser *p)
{
    return parse_chain(p, not_query, EX_AND, KN_AND);
}

static kql_node *or_query(kql_parser *p)
{
    return parse_chain(p, and_query, EX_OR, KN_OR);
}

/* Appends peggy's escaped form of the character at pos to out. */
static size_t describe_found(const kql_parser *p, char *out, size_t cap)
{
    if (p->fail_pos >= p->n) return (size_t)snprintf(out, cap, "end of input");
    unsigned char c = (unsigned char)p->s[p->fail_pos];
    size_t k = utf8_seq_len(c);
    if (k > p->n - p->fail_pos) k = 1;
    char esc[16];
    if (c == '\\' || c == '"') {
        snprintf(esc, sizeof esc, "\\%c", c);
    } else if (c == 0) {
        snprintf(esc, sizeof esc, "\\0");
    } else if (c == '\t' || c == '\n' || c == '\r') {
        snprintf(esc, sizeof esc, "\\%c", c == '\t' ? 't' : c == '\n' ? 'n' : 'r');
    } else if (c < 0x20 || c == 0x7F) {
        snprintf(esc, sizeof esc, "\\x%02X", c);
    } else {
        uint32_t cp = utf8_decode((const unsigned char *)p->s + p->fail_pos, k);
        if (cp >= 0x80 && cp <= 0x9F)
            snprintf(esc, sizeof esc, "\\x%02X", (unsigned)cp);
        else
            snprintf(esc, sizeof esc, "%.*s", (int)k, p->s + p->fail_pos);
    }
    return (size_t)snprintf(out, cap, "\"%s\"", esc);
}

static nt_status syntax_error(kql_parser *p)
{
    char list[256], found[32];
    size_t o = 0, m = 0, j = 0;
    for (unsigned e = 0; e < EX_COUNT; e++)
        m += (p->expected >> e) & 1u;
    list[0] = 0;
    for (unsigned e = 0; e < EX_COUNT; e++) {
        if (!((p->expected >> e) & 1u)) continue;
        const char *sep = j == 0 ? "" : m == 2 ? " or " : j == m - 1 ? ", or " : ", ";
        int w = snprintf(list + o, sizeof list - o, "%s%s", sep, kql_expect_names[e]);
        if (w > 0 && (size_t)w < sizeof list - o) o += (size_t)w;
        j++;
    }
    describe_found(p, found, sizeof found);
    int line, col;
    kql_linecol(p->s, p->fail_pos, &line, &col);
    return nt_fail(p->err, NT_ERR_PARSE, "line %d, column %d: expected %s but %s found", line, col,
                   list, found);
}

static kql_lit *match_all_lit(kql_arena *a)
{
    kql_lit *l = arena_alloc(a, sizeof *l);
    if (!l) return NULL;
    l->kind = KL_WILDCARD;
    l->len = 1;
    l->text = arena_strndup(a, "*", 1);
    l->star = arena_alloc(a, 1);
    if (!l->text || !l->star) return NULL;
    l->star[0] = 1;
    return l;
}

/* Parses text into a tree allocated in arena. */
static nt_status kql_parse_text(kql_arena *arena, const char *text, size_t len, kql_node **root,
                                nt_err *err)
{
    kql_parser p = {0};
    nt_status st = NT_OK;
    *root = NULL;
    if (!text && len) return nt_fail(err, NT_ERR_INVALID, "query text is NULL");
    if (len > KQL_MAX_QUERY_BYTES)
        return nt_fail(err, NT_ERR_LIMIT, "the query is %zu bytes; the limit is %d", len,
                       KQL_MAX_QUERY_BYTES);
    size_t bad = nt_utf8_invalid_at((const unsigned char *)text, len);
    if (bad < len) {
        int line, col;
        kql_linecol(text, bad, &line, &col);
        return nt_fail(err, NT_ERR_PARSE, "line %d, column %d: the query is not valid UTF-8", line,
                       col);
    }
    p.s = text ? text : "";
    p.n = len;
    p.arena = arena;
    p.err = err;
    p.buf = malloc(len + 1);
    p.star = malloc(len + 1);
    if (!p.buf || !p.star) {
        st = nt_fail(err, NT_ERR_NOMEM, "out of memory parsing KQL");
        goto done;
    }

    space_star(&p);
    size_t save = p.pos;
    kql_node *q = or_query(&p);
    if (p.fatal) {
        st = p.fatal;
        goto done;
    }
    if (!q) p.pos = save;
    space_star(&p);
    if (p.pos < p.n) {
        expect(&p, p.pos, EX_END);
        st = syntax_error(&p);
        goto done;
    }
    if (!q) {
        q = new_node(&p, KN_IS);
        kql_lit *all = match_all_lit(arena);
        if (!q || !all) {
            st = nt_fail(err, NT_ERR_NOMEM, "out of memory parsing KQL");
            goto done;
        }
        q->field = all;
        q->value = all;
    }
    *root = q;
done:
    free(p.buf);
    free(p.star);
    return st;
}

/* ------------------------------------------------------------ JSON dump */

/* A JSON string; bytes flagged in star become Kibana's wildcard marker. */
static void sb_json_string(nt_buf *b, const char *s, size_t n, const unsigned char *star)
{
    nt_buf_add(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[8];
        if (star && star[i]) {
            nt_buf_str(b, "@kuery-wildcard@");
        } else if (c == '"' || c == '\\') {
            esc[0] = '\\', esc[1] = (char)c;
            nt_buf_add(b, esc, 2);
        } else if (c == '\n') {
            nt_buf_str(b, "\\n");
        } else if (c == '\r') {
            nt_buf_str(b, "\\r");
        } else if (c == '\t') {
            nt_buf_str(b, "\\t");
        } else if (c < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            nt_buf_str(b, esc);
        } else {
            nt_buf_add(b, s + i, 1);
        }
    }
    nt_buf_add(b, "\"", 1);
}

static void sb_lit(nt_buf *b, const kql_lit *l)
{
    if (!l) {
        nt_buf_str(b, "{\"type\":\"literal\",\"value\":null,\"isQuoted\":false}");
        return;
    }
    if (l->kind == KL_WILDCARD) {
        nt_buf_str(b, "{\"type\":\"wildcard\",\"value\":");
        sb_json_string(b, l->text, l->len, l->star);
        nt_buf_str(b, "}");
        return;
    }
    nt_buf_str(b, "{\"type\":\"literal\",\"value\":");
    if (l->kind == KL_STRING)
        sb_json_string(b, l->text, l->len, NULL);
    else
        nt_buf_str(b, l->text); /* true, false, null */
    nt_buf_str(b, l->quoted ? ",\"isQuoted\":true}" : ",\"isQuoted\":false}");
}

static void sb_node(nt_buf *b, const kql_node *n)
{
    static const char *const names[] = {"is", "range", "nested", "and", "or", "not"};
    static const char *const ops[] = {"gt", "gte", "lt", "lte"};
    nt_buf_str(b, "{\"type\":\"function\",\"function\":\"");
    nt_buf_str(b, names[n->type]);
    nt_buf_str(b, "\",\"arguments\":[");
    switch (n->type) {
    case KN_IS:
        sb_lit(b, n->field);
        nt_buf_str(b, ",");
        sb_lit(b, n->value);
        break;
    case KN_RANGE:
        sb_lit(b, n->field);
        nt_buf_str(b, ",\"");
        nt_buf_str(b, ops[n->op]);
        nt_buf_str(b, "\",");
        sb_lit(b, n->value);
        break;
    case KN_NESTED:
        sb_lit(b, n->field);
        nt_buf_str(b, ",");
        sb_node(b, n->kids);
        break;
    case KN_AND:
    case KN_OR:
    case KN_NOT:
        for (const kql_node *k = n->kids; k; k = k->next) {
            if (k != n->kids) nt_buf_str(b, ",");
            sb_node(b, k);
        }
        break;
    }
    nt_buf_str(b, "]}");
}

static char *tree_json(const kql_node *root)
{
    nt_buf b = {0};
    sb_node(&b, root);
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    return b.p;
}

char *kql_ast_json(const kql_query *q)
{
    return q ? tree_json(q->ast) : NULL;
}

nt_status kql_parse_json(const char *text, size_t len, char **json, nt_err *err)
{
    kql_arena arena = {0};
    kql_node *root;
    *json = NULL;
    nt_status st = kql_parse_text(&arena, text, len, &root, err);
    if (st == NT_OK && root) {
        *json = tree_json(root);
        if (!*json) st = nt_fail(err, NT_ERR_NOMEM, "out of memory writing the KQL tree");
    }
    arena_free(&arena);
    return st;
}

/* ------------------------------------------------------------- compiler */

typedef struct kql_compiler {
    kql_query *q;
    nt_err *err;
    nt_status st;
} kql_compiler;

__attribute__((format(printf, 4, 5))) static int compile_fail(kql_compiler *c, nt_status st,
                                                              size_t pos, const char *fmt, ...)
{
    if (c->st == NT_OK) {
        int line, col;
        char what[200];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(what, sizeof what, fmt, ap);
        va_end(ap);
        kql_linecol(c->q->text, pos, &line, &col);
        c->st = nt_fail(c->err, st, "line %d, column %d: %s", line, col, what);
    }
    return -1;
}

static int compile_oom(kql_compiler *c)
{
    if (c->st == NT_OK) c->st = nt_fail(c->err, NT_ERR_NOMEM, "out of memory compiling KQL");
    return -1;
}

static int grow(void **arr, size_t *cap, size_t n, size_t elem)
{
    if (n < *cap) return 1;
    size_t nc = *cap ? *cap * 2 : 16;
    void *p = realloc(*arr, nc * elem);
    if (!p) return 0;
    *arr = p;
    *cap = nc;
    return 1;
}

static int push_node(kql_compiler *c, kql_eop op, int field)
{
    kql_query *q = c->q;
    if (!grow((void **)&q->nodes, &q->nodes_cap, q->nnodes, sizeof *q->nodes))
        return compile_oom(c);
    kql_enode *e = &q->nodes[q->nnodes];
    e->op = op;
    e->field = field;
    e->kid = e->next = e->arg = -1;
    return (int)q->nnodes++;
}

static int push_term(kql_compiler *c)
{
    kql_query *q = c->q;
    if (!grow((void **)&q->terms, &q->terms_cap, q->nterms, sizeof *q->terms))
        return compile_oom(c);
    memset(&q->terms[q->nterms], 0, sizeof *q->terms);
    q->terms[q->nterms].next = -1;
    return (int)q->nterms++;
}

/* field id for a full name, remembering names the source cannot produce. */
static int resolve_field(kql_compiler *c, const char *name, size_t len)
{
    kql_query *q = c->q;
    int id = q->src.resolve(q->src.ctx, name, len);
    if (id >= 0) return id;
    for (size_t i = 0; i < q->nunknown; i++)
        if (strcmp(q->unknown[i], name) == 0) return -1;
    if (!grow((void **)&q->unknown, &q->unknown_cap, q->nunknown, sizeof *q->unknown)) {
        compile_oom(c);
        return -1;
    }
    q->unknown[q->nunknown++] = name;
    return -1;
}

static int all_stars(const kql_lit *l)
{
    if (!l || l->kind != KL_WILDCARD) return 0;
    for (size_t i = 0; i < l->len; i++)
        if (!l->star[i]) return 0;
    return 1;
}

/* The dotted name of a field literal under the nested path prefix. */
static const char *full_name(kql_compiler *c, const char *prefix, const kql_lit *f, size_t *len)
{
    size_t pl = prefix ? strlen(prefix) : 0;
    size_t n = pl + (pl ? 1 : 0) + f->len;
    char *s = arena_alloc(&c->q->arena, n + 1);
    if (!s) {
        compile_oom(c);
        return NULL;
    }
    if (pl) memcpy(s, prefix, pl), s[pl] = '.';
    if (f->len) memcpy(s + n - f->len, f->text, f->len);
    s[n] = 0;
    *len = n;
    return s;
}

/* Checks a field literal of an is/range clause and returns its full name. */
static const char *field_of(kql_compiler *c, const kql_node *n, const char *prefix, size_t *len)
{
    const kql_lit *f = n->field;
    if (!f || (n->type == KN_IS && f->kind == KL_NULL)) {
        compile_fail(c, NT_ERR_UNSUPPORTED, n->value->pos,
                     "free-text search without a field is not supported; name the field, as in "
                     "field: value");
        return NULL;
    }
    if (f->kind == KL_WILDCARD) {
        compile_fail(c, NT_ERR_UNSUPPORTED, f->pos,
                     "field-name wildcards such as '%s' are not supported; name each field",
                     f->text);
        return NULL;
    }
    return full_name(c, prefix, f, len);
}

/* Glob pattern (ES wildcard syntax) for a KQL wildcard literal. */
static const char *glob_pattern(kql_compiler *c, const kql_lit *l, size_t *len)
{
    char *g = arena_alloc(&c->q->arena, 2 * l->len + 1);
    size_t o = 0;
    if (!g) {
        compile_oom(c);
        return NULL;
    }
    for (size_t i = 0; i < l->len; i++) {
        char ch = l->text[i];
        if (!l->star[i] && (ch == '*' || ch == '?' || ch == '\\')) g[o++] = '\\';
        g[o++] = ch;
    }
    g[o] = 0;
    *len = o;
    return g;
}

static int compile_is(kql_compiler *c, kql_node *n, const char *prefix)
{
    kql_query *q = c->q;
    const kql_lit *v = n->value;
    if (n->field && n->field->kind == KL_WILDCARD && all_stars(n->field) && all_stars(v) && !prefix)
        return push_node(c, E_TRUE, -1); /* *:* */
    size_t flen;
    const char *full = field_of(c, n, prefix, &flen);
    if (!full) return -1;
    n->full = full;
    if (v->kind == KL_NULL)
        return compile_fail(c, NT_ERR_UNSUPPORTED, v->pos,
                            "%s: null as a value is not supported (Elasticsearch rejects it)",
                            full);
    int field = resolve_field(c, full, flen);
    if (c->st) return -1;
    if (v->kind == KL_WILDCARD) {
        size_t plen;
        const char *pat = glob_pattern(c, v, &plen);
        if (!pat) return -1;
        int t = push_term(c);
        if (t < 0) return -1;
        nt_err gerr;
        if (nt_glob_compile(&q->terms[t].glob, pat, plen, &gerr) != NT_OK)
            return compile_fail(c, NT_ERR_INVALID, v->pos, "%s", gerr.msg);
        q->terms[t].wild = 1;
        if (q->terms[t].glob.kind == NT_GLOB_ANY) {
            nt_glob_free(&q->terms[t].glob);
            q->nterms--;
            return push_node(c, E_EXISTS, field);
        }
        n->visit = KV_WILD;
        n->pattern = pat;
        n->pattern_len = plen;
        int e = push_node(c, E_TERMS, field);
        if (e >= 0) q->nodes[e].arg = t;
        return e;
    }
    int t = push_term(c);
    if (t < 0) return -1;
    q->terms[t].text = v->text;
    q->terms[t].len = v->len;
    q->terms[t].num_ok = kql_number_parse(v->text, v->len, &q->terms[t].num);
    n->visit = KV_EXACT;
    int e = push_node(c, E_TERMS, field);
    if (e >= 0) q->nodes[e].arg = t;
    return e;
}

static int is_date_math(const kql_lit *v)
{
    if (v->len >= 3 && memcmp(v->text, "now", 3) == 0 &&
        (v->len == 3 || strchr("+-/|", v->text[3]) != NULL))
        return 1;
    for (size_t i = 0; i + 1 < v->len; i++)
        if (v->text[i] == '|' && v->text[i + 1] == '|') return 1;
    return 0;
}

static int compile_range(kql_compiler *c, kql_node *n, const char *prefix)
{
    kql_query *q = c->q;
    const kql_lit *v = n->value;
    size_t flen;
    const char *full = field_of(c, n, prefix, &flen);
    if (!full) return -1;
    n->full = full;
    if (v->kind == KL_WILDCARD)
        return compile_fail(c, NT_ERR_UNSUPPORTED, v->pos,
                            "a range bound cannot be a wildcard ('%s'); escape a literal * as \\*",
                            v->text);
    if (v->kind == KL_NULL)
        return compile_fail(c, NT_ERR_UNSUPPORTED, v->pos, "%s: a range bound cannot be null",
                            full);
    if (is_date_math(v))
        return compile_fail(c, NT_ERR_UNSUPPORTED, v->pos,
                            "date math ('%s') in a range is not supported; use an RFC 3339 date",
                            v->text);
    int field = resolve_field(c, full, flen);
    if (c->st) return -1;
    if (!grow((void **)&q->ranges, &q->ranges_cap, q->nranges, sizeof *q->ranges))
        return compile_oom(c);
    kql_range *r = &q->ranges[q->nranges];
    memset(r, 0, sizeof *r);
    r->op = n->op;
    r->text = v->text;
    r->len = v->len;
    r->num_ok = kql_number_parse(v->text, v->len, &r->num);
    r->time_ok = nt_time_parse(v->text, v->len, &r->time, NULL) == NT_OK;
    int e = push_node(c, E_RANGE, field);
    if (e >= 0) q->nodes[e].arg = (int)q->nranges++;
    return e;
}

/* Folds OR children that test the same field into the first such child, so
 * the field is fetched once for the whole value list. */
static void merge_or_terms(kql_query *q, int or_node)
{
    for (int a = q->nodes[or_node].kid; a >= 0; a = q->nodes[a].next) {
        if (q->nodes[a].op != E_TERMS) continue;
        int tail = q->nodes[a].arg;
        while (q->terms[tail].next >= 0)
            tail = q->terms[tail].next;
        int prev = a;
        for (int b = q->nodes[a].next; b >= 0; b = q->nodes[prev].next) {
            if (q->nodes[b].op == E_TERMS && q->nodes[b].field == q->nodes[a].field) {
                q->terms[tail].next = q->nodes[b].arg;
                while (q->terms[tail].next >= 0)
                    tail = q->terms[tail].next;
                q->nodes[prev].next = q->nodes[b].next;
            } else {
                prev = b;
            }
        }
    }
}

static int compile_node(kql_compiler *c, kql_node *n, const char *prefix)
{
    kql_query *q = c->q;
    switch (n->type) {
    case KN_IS:
        return compile_is(c, n, prefix);
    case KN_RANGE:
        return compile_range(c, n, prefix);
    case KN_NESTED: {
        const kql_lit *path = n->field;
        if (path->kind == KL_WILDCARD || path->kind == KL_NULL)
            return compile_fail(c, NT_ERR_UNSUPPORTED, path->pos,
                                "a nested path must be a field name, not '%s'", path->text);
        size_t len;
        const char *full = full_name(c, prefix, path, &len);
        if (!full) return -1;
        return compile_node(c, n->kids, full);
    }
    case KN_AND:
    case KN_OR:
    case KN_NOT: {
        int e = push_node(c, n->type == KN_AND ? E_AND : n->type == KN_OR ? E_OR : E_NOT, -1);
        if (e < 0) return -1;
        int last = -1;
        for (kql_node *k = n->kids; k; k = k->next) {
            int ke = compile_node(c, k, prefix);
            if (ke < 0) return -1;
            if (last < 0)
                q->nodes[e].kid = ke;
            else
                q->nodes[last].next = ke;
            last = ke;
        }
        if (n->type == KN_OR) merge_or_terms(q, e);
        return e;
    }
    }
    return compile_fail(c, NT_ERR_INVALID, 0, "%s", "unknown KQL node");
}

/* ------------------------------------------------------------- matching */

static size_t field_values(const kql_query *q, int field, void *ev, nt_value *v, size_t max)
{
    if (field < 0) return 0;
    size_t n = q->src.get(q->src.ctx, ev, field, v, max);
    if (n > max) n = max;
    for (size_t i = 0; i < n; i++)
        if (!v[i].ptr) v[i].ptr = "", v[i].len = 0;
    return n;
}

/* Leaves keep their value buffers out of the recursive frames. */
__attribute__((noinline)) static int eval_terms(const kql_query *q, const kql_enode *e, void *ev)
{
    nt_value v[NT_FIELD_MAX_VALUES];
    size_t nv = field_values(q, e->field, ev, v, NT_FIELD_MAX_VALUES);
    for (size_t i = 0; i < nv; i++) {
        int vnum = 0; /* 0 = not parsed yet, 1 = number, -1 = not a number */
        kql_num vn;
        for (int t = e->arg; t >= 0; t = q->terms[t].next) {
            const kql_term *tm = &q->terms[t];
            if (tm->wild) {
                if (nt_glob_match(&tm->glob, v[i].ptr, v[i].len)) return 1;
                continue;
            }
            if (bytes_eq(v[i].ptr, v[i].len, tm->text, tm->len)) return 1;
            if (v[i].type == NT_VAL_NUMBER && tm->num_ok) {
                if (vnum == 0) vnum = kql_number_parse(v[i].ptr, v[i].len, &vn) ? 1 : -1;
                if (vnum == 1 && num_cmp(&vn, &tm->num) == 0) return 1;
            }
        }
    }
    return 0;
}

__attribute__((noinline)) static int eval_range(const kql_query *q, const kql_enode *e, void *ev)
{
    nt_value v[NT_FIELD_MAX_VALUES];
    const kql_range *r = &q->ranges[e->arg];
    size_t nv = field_values(q, e->field, ev, v, NT_FIELD_MAX_VALUES);
    for (size_t i = 0; i < nv; i++) {
        kql_num vn;
        nt_time_ms t;
        int c;
        if (r->num_ok && kql_number_parse(v[i].ptr, v[i].len, &vn))
            c = num_cmp(&vn, &r->num);
        else if (r->time_ok && nt_time_parse(v[i].ptr, v[i].len, &t, NULL) == NT_OK)
            c = (t > r->time) - (t < r->time);
        else
            c = bytes_cmp(v[i].ptr, v[i].len, r->text, r->len);
        if ((r->op == KR_GT && c > 0) || (r->op == KR_GTE && c >= 0) || (r->op == KR_LT && c < 0) ||
            (r->op == KR_LTE && c <= 0))
            return 1;
    }
    return 0;
}

static int eval(const kql_query *q, int idx, void *ev)
{
    const kql_enode *e = &q->nodes[idx];
    switch (e->op) {
    case E_TRUE:
        return 1;
    case E_AND:
        for (int k = e->kid; k >= 0; k = q->nodes[k].next)
            if (!eval(q, k, ev)) return 0;
        return 1;
    case E_OR:
        for (int k = e->kid; k >= 0; k = q->nodes[k].next)
            if (eval(q, k, ev)) return 1;
        return 0;
    case E_NOT:
        return !eval(q, e->kid, ev);
    case E_EXISTS: {
        nt_value one;
        return field_values(q, e->field, ev, &one, 1) > 0;
    }
    case E_TERMS:
        return eval_terms(q, e, ev);
    case E_RANGE:
        return eval_range(q, e, ev);
    }
    return 0;
}

int kql_match(const kql_query *q, void *event)
{
    if (!q || q->root < 0) return 0;
    return eval(q, q->root, event);
}

/* ------------------------------------------------------------ prefilter */

typedef struct pf_set {
    kql_clause *c;
    size_t n;
} pf_set;

/* 1 when JSON may write byte ch escaped (so it is not searched verbatim). */
static int pf_escapable(unsigned char ch)
{
    return ch == '"' || ch == '\\' || ch == '/' || ch < 0x20 || ch >= 0x7F;
}

/* The literal every JSON encoding of a matching value contains: the longest
 * run of bytes JSON never escapes, with the quote on each side the run is
 * anchored at (the value's start or end). An exact value or a glob's single
 * literal is one candidate run; a general glob's literal runs between its
 * wildcards are the others. An empty run gives a literal only when anchored
 * on both sides (the empty value, `""`). */
#define PF_MIN_RUN 1
static int pf_literal(kql_arena *ta, const kql_term *t, kql_pflit *out)
{
    const char *best = NULL;
    size_t best_n = 0;
    int best_lead = 0, best_trail = 0;
    /* A candidate run [s, s+n) that may start at the value's start (lead)
     * and/or end at its end (trail): split it at escapable bytes. */
#define PF_RUNS(S, N, LEAD, TRAIL)                                                                 \
    do {                                                                                           \
        const char *rs_ = (S);                                                                     \
        size_t rn_ = (N), st_ = 0;                                                                 \
        for (size_t i_ = 0; i_ <= rn_; i_++) {                                                     \
            if (i_ < rn_ && !pf_escapable((unsigned char)rs_[i_])) continue;                       \
            size_t len_ = i_ - st_;                                                                \
            int l_ = (LEAD) && st_ == 0, t_ = (TRAIL) && i_ == rn_;                                \
            if (len_ + (size_t)l_ + (size_t)t_ >                                                   \
                    best_n + (size_t)best_lead + (size_t)best_trail &&                             \
                (len_ > 0 || (l_ && t_))) {                                                        \
                best = rs_ + st_;                                                                  \
                best_n = len_;                                                                     \
                best_lead = l_;                                                                    \
                best_trail = t_;                                                                   \
            }                                                                                      \
            st_ = i_ + 1;                                                                          \
        }                                                                                          \
    } while (0)
    if (!t->wild) {
        PF_RUNS(t->text, t->len, 1, 1);
    } else if (t->glob.kind == NT_GLOB_GENERAL) {
        /* Each run of literal bytes between wildcard ops, copied (the arena
         * keeps the one chosen). */
        const uint16_t *ops = t->glob.ops;
        size_t i = 0, m = t->glob.ops_len;
        while (i < m) {
            if (ops[i] > 255) {
                i++;
                continue;
            }
            size_t j = i;
            while (j < m && ops[j] <= 255)
                j++;
            char *seg = arena_alloc(ta, j - i);
            if (!seg) return -1;
            for (size_t k = i; k < j; k++)
                seg[k - i] = (char)ops[k];
            PF_RUNS(seg, j - i, i == 0, j == m);
            i = j;
        }
    } else {
        const char *s;
        size_t n;
        nt_glob_longest_literal(&t->glob, &s, &n);
        if (!s || n == 0) return 0;
        int exact = t->glob.kind == NT_GLOB_EXACT; /* a wildcard-free pattern (escaped stars) */
        PF_RUNS(s, n, exact || t->glob.kind == NT_GLOB_PREFIX,
                exact || t->glob.kind == NT_GLOB_SUFFIX);
    }
#undef PF_RUNS
    if (!best || (best_n < PF_MIN_RUN && !(best_lead && best_trail))) return 0;
    char *d = arena_alloc(ta, best_n + 2);
    if (!d) return -1;
    size_t o = 0;
    if (best_lead) d[o++] = '"';
    if (best_n) memcpy(d + o, best, best_n);
    o += best_n;
    if (best_trail) d[o++] = '"';
    out->s = d;
    out->n = o;
    return 1;
}

static nt_status pf_derive(const kql_query *q, kql_arena *ta, int idx, pf_set *out)
{
    const kql_enode *e = &q->nodes[idx];
    out->c = NULL;
    out->n = 0;
    if (e->op == E_TERMS) {
        if (e->field < 0 || !q->src.verbatim || q->src.verbatim(q->src.ctx, e->field) != 1)
            return NT_OK;
        size_t k = 0;
        for (int t = e->arg; t >= 0; t = q->terms[t].next)
            k++;
        kql_clause *c = arena_alloc(ta, sizeof *c);
        kql_pflit *lits = arena_alloc(ta, k * sizeof *lits);
        if (!c || !lits) return NT_ERR_NOMEM;
        size_t i = 0;
        for (int t = e->arg; t >= 0; t = q->terms[t].next) {
            int r = pf_literal(ta, &q->terms[t], &lits[i++]);
            if (r < 0) return NT_ERR_NOMEM;
            if (r == 0) return NT_OK;
        }
        c->lits = lits;
        c->n = k;
        out->c = c;
        out->n = 1;
        return NT_OK;
    }
    if (e->op == E_AND) {
        for (int k = e->kid; k >= 0; k = q->nodes[k].next) {
            pf_set kid;
            if (pf_derive(q, ta, k, &kid) != NT_OK) return NT_ERR_NOMEM;
            if (kid.n == 0) continue;
            kql_clause *all = arena_alloc(ta, (out->n + kid.n) * sizeof *all);
            if (!all) return NT_ERR_NOMEM;
            if (out->n) memcpy(all, out->c, out->n * sizeof *all);
            memcpy(all + out->n, kid.c, kid.n * sizeof *all);
            out->c = all;
            out->n += kid.n;
        }
        return NT_OK;
    }
    if (e->op == E_OR) {
        /* One clause: from each child its most selective clause, merged. */
        kql_pflit *lits = NULL;
        size_t nl = 0;
        for (int k = e->kid; k >= 0; k = q->nodes[k].next) {
            pf_set kid;
            if (pf_derive(q, ta, k, &kid) != NT_OK) return NT_ERR_NOMEM;
            if (kid.n == 0) return NT_OK;
            const kql_clause *best = NULL;
            size_t best_min = 0;
            for (size_t i = 0; i < kid.n; i++) {
                size_t mn = SIZE_MAX;
                for (size_t j = 0; j < kid.c[i].n; j++)
                    if (kid.c[i].lits[j].n < mn) mn = kid.c[i].lits[j].n;
                if (!best || kid.c[i].n < best->n || (kid.c[i].n == best->n && mn > best_min))
                    best = &kid.c[i], best_min = mn;
            }
            if (!best) return NT_OK;
            kql_pflit *all = arena_alloc(ta, (nl + best->n) * sizeof *all);
            if (!all) return NT_ERR_NOMEM;
            if (nl) memcpy(all, lits, nl * sizeof *all);
            memcpy(all + nl, best->lits, best->n * sizeof *all);
            lits = all;
            nl += best->n;
        }
        kql_clause *c = arena_alloc(ta, sizeof *c);
        if (!c) return NT_ERR_NOMEM;
        c->lits = lits;
        c->n = nl;
        out->c = c;
        out->n = nl ? 1 : 0;
        return NT_OK;
    }
    return NT_OK; /* NOT, EXISTS, RANGE, TRUE constrain no bytes */
}

static int pflit_eq(const kql_pflit *a, const kql_pflit *b)
{
    return bytes_eq(a->s, a->n, b->s, b->n);
}

static int clause_has(const kql_clause *c, const kql_pflit *l)
{
    for (size_t i = 0; i < c->n; i++)
        if (pflit_eq(&c->lits[i], l)) return 1;
    return 0;
}

/* 1 when every literal of a is in b (then b is implied by a). */
static int clause_subset(const kql_clause *a, const kql_clause *b)
{
    for (size_t i = 0; i < a->n; i++)
        if (!clause_has(b, &a->lits[i])) return 0;
    return 1;
}

/* Dedupes literals, drops implied clauses, orders by selectivity and copies
 * the result into the query's arena. */
static nt_status pf_finish(kql_query *q, pf_set *set)
{
    for (size_t i = 0; i < set->n; i++) {
        kql_clause *c = &set->c[i];
        size_t k = 0;
        c->minlen = SIZE_MAX;
        for (size_t j = 0; j < c->n; j++) {
            kql_clause seen = {c->lits, k, 0};
            if (clause_has(&seen, &c->lits[j])) continue;
            c->lits[k++] = c->lits[j];
            if (c->lits[j].n < c->minlen) c->minlen = c->lits[j].n;
        }
        c->n = k;
    }
    size_t keep = 0;
    for (size_t i = 0; i < set->n; i++) {
        int implied = 0;
        for (size_t j = 0; j < set->n && !implied && set->n <= 1024; j++) {
            if (i == j || !clause_subset(&set->c[j], &set->c[i])) continue;
            /* j ⊆ i: i is implied, unless they are equal and i comes first */
            implied = !(i < j && clause_subset(&set->c[i], &set->c[j]));
        }
        if (!implied) set->c[keep++] = set->c[i];
    }
    set->n = keep;
    for (size_t i = 1; i < set->n; i++) { /* insertion sort, longest shortest literal first */
        kql_clause c = set->c[i];
        size_t j = i;
        while (j > 0 && set->c[j - 1].minlen < c.minlen) {
            set->c[j] = set->c[j - 1];
            j--;
        }
        set->c[j] = c;
    }
    if (set->n == 0) return NT_OK;
    q->clauses = arena_alloc(&q->arena, set->n * sizeof *q->clauses);
    if (!q->clauses) return NT_ERR_NOMEM;
    for (size_t i = 0; i < set->n; i++) {
        kql_clause *d = &q->clauses[i];
        *d = set->c[i];
        d->lits = arena_alloc(&q->arena, d->n * sizeof *d->lits);
        if (!d->lits) return NT_ERR_NOMEM;
        for (size_t j = 0; j < d->n; j++) {
            d->lits[j].n = set->c[i].lits[j].n;
            d->lits[j].s = arena_strndup(&q->arena, set->c[i].lits[j].s, d->lits[j].n);
            if (!d->lits[j].s) return NT_ERR_NOMEM;
        }
    }
    q->nclauses = set->n;
    return NT_OK;
}

/* ---- the tree: the query's and/or structure over literal presence ---- */

/* Index of literal l in q->pflits, added when new; -1 when out of memory. */
static int pf_lit_index(kql_query *q, size_t *cap, const kql_pflit *l)
{
    for (size_t i = 0; i < q->npflits; i++)
        if (pflit_eq(&q->pflits[i], l)) return (int)i;
    if (q->npflits == *cap) {
        size_t nc = *cap ? *cap * 2 : 8;
        kql_pflit *n = arena_alloc(&q->arena, nc * sizeof *n);
        if (!n) return -1;
        if (q->npflits) memcpy(n, q->pflits, q->npflits * sizeof *n);
        q->pflits = n;
        *cap = nc;
    }
    char *d = arena_strndup(&q->arena, l->s, l->n);
    if (!d) return -1;
    q->pflits[q->npflits].s = d;
    q->pflits[q->npflits].n = l->n;
    return (int)q->npflits++;
}

typedef struct pf_tree_builder {
    kql_query *q;
    kql_arena *ta;
    size_t nodes_cap, lits_cap;
} pf_tree_builder;

static int pf_new_node(pf_tree_builder *b, kql_pfop op)
{
    kql_query *q = b->q;
    if (q->npfnodes == b->nodes_cap) {
        size_t nc = b->nodes_cap ? b->nodes_cap * 2 : 8;
        kql_pfnode *n = arena_alloc(&q->arena, nc * sizeof *n);
        if (!n) return -1;
        if (q->npfnodes) memcpy(n, q->pfnodes, q->npfnodes * sizeof *n);
        q->pfnodes = n;
        b->nodes_cap = nc;
    }
    kql_pfnode *n = &q->pfnodes[q->npfnodes];
    memset(n, 0, sizeof *n);
    n->op = op;
    n->kid = n->next = -1;
    n->common = -1;
    return (int)q->npfnodes++;
}

/* Rough cost of proving a node false or true: literal searches it may do. */
static size_t pf_cost(const kql_query *q, int node)
{
    const kql_pfnode *n = &q->pfnodes[node];
    if (n->op == PF_LITS) return n->nlit;
    size_t c = 0;
    for (int k = n->kid; k >= 0; k = q->pfnodes[k].next)
        c += pf_cost(q, k);
    return c;
}

/* Builds the tree of program node idx into *out: -1 when it constrains no
 * bytes (TRUE). Returns NT_ERR_NOMEM or NT_OK. */
/* For a field whose values are verbatim strings or the texts of number and
 * boolean leaves (verbatim == 2): 1 when no such text can contain literal
 * l's bytes (a byte no number text has, and not part of true, false,
 * Infinity or NaN), so a matching value is a verbatim string. */
static int pf_string_only(const kql_pflit *l)
{
    char run[64];
    size_t n = 0;
    int other = 0;
    for (size_t i = 0; i < l->n; i++) {
        char c = l->s[i];
        if (c == '"') continue;
        if (!strchr("0123456789.eE+-", c)) other = 1;
        if (n < sizeof run - 1) run[n++] = c;
    }
    run[n] = 0;
    if (!other || n >= sizeof run - 1) return other;
    static const char *const words[] = {"true", "false", "-Infinity", "NaN"};
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (strstr(words[i], run)) return 0;
    return 1;
}

/* The PF_LITS node of a TERMS node's values (*out = -1: unconstrained). */
#define PF_COMMON_MIN 4 /* shortest common run worth a search of its own */

/* The longest run (at least PF_COMMON_MIN bytes) that every literal of a
 * leaf of inner runs (no quote at either end, so none the pass answers)
 * holds, as a literal index in *out, else -1: when the run is not in a
 * record, none of the leaf's literals is, and one search answers them all
 * (AgentCore- and BedrockAgentCore share AgentCore). */
static nt_status pf_common(pf_tree_builder *b, const int *lits, size_t n, int *out)
{
    kql_query *q = b->q;
    *out = -1;
    if (n < 2) return NT_OK;
    size_t shortest = 0;
    for (size_t i = 0; i < n; i++) {
        const kql_pflit *l = &q->pflits[lits[i]];
        if (l->n < PF_COMMON_MIN || l->s[0] == '"' || l->s[l->n - 1] == '"') return NT_OK;
        if (l->n < q->pflits[lits[shortest]].n) shortest = i;
    }
    const kql_pflit *sh = &q->pflits[lits[shortest]];
    for (size_t len = sh->n; len >= PF_COMMON_MIN; len--)
        for (size_t at = 0; at + len <= sh->n; at++) {
            size_t i = 0;
            while (i < n && (i == shortest || nt_search(q->pflits[lits[i]].s, q->pflits[lits[i]].n,
                                                        sh->s + at, len)))
                i++;
            if (i < n) continue;
            kql_pflit c = {sh->s + at, len};
            int ci = pf_lit_index(q, &b->lits_cap, &c);
            if (ci < 0) return NT_ERR_NOMEM;
            *out = ci;
            return NT_OK;
        }
    return NT_OK;
}

static nt_status pf_values_node(pf_tree_builder *b, const kql_enode *e, int *out)
{
    kql_query *q = b->q;
    *out = -1;
    int vb = e->field >= 0 && q->src.verbatim ? q->src.verbatim(q->src.ctx, e->field) : 0;
    if (vb != 1 && vb != 2) return NT_OK;
    size_t k = 0;
    for (int t = e->arg; t >= 0; t = q->terms[t].next)
        k++;
    int *lits = arena_alloc(&q->arena, k * sizeof *lits);
    if (!lits) return NT_ERR_NOMEM;
    size_t i = 0;
    for (int t = e->arg; t >= 0; t = q->terms[t].next) {
        kql_pflit l;
        int r = pf_literal(b->ta, &q->terms[t], &l);
        if (r < 0) return NT_ERR_NOMEM;
        if (r == 0) return NT_OK; /* one unusable value: any record may match */
        if (vb == 2 && !pf_string_only(&l)) return NT_OK;
        int li = pf_lit_index(q, &b->lits_cap, &l);
        if (li < 0) return NT_ERR_NOMEM;
        int dup = 0;
        for (size_t j = 0; j < i && !dup; j++)
            dup = lits[j] == li;
        if (!dup) lits[i++] = li;
    }
    int common;
    if (pf_common(b, lits, i, &common) != NT_OK) return NT_ERR_NOMEM;
    int n = pf_new_node(b, PF_LITS);
    if (n < 0) return NT_ERR_NOMEM;
    q->pfnodes[n].lit = lits;
    q->pfnodes[n].nlit = i;
    q->pfnodes[n].common = common;
    *out = n;
    return NT_OK;
}

/* A PF_LITS node with the field's key literal `key"` when the source names a
 * key every record with a value of the field carries (*out = -1: none). */
static nt_status pf_key_node(pf_tree_builder *b, int field, int *out)
{
    kql_query *q = b->q;
    *out = -1;
    size_t n = 0;
    const char *k =
        field >= 0 && q->src.key_suffix ? q->src.key_suffix(q->src.ctx, field, &n) : NULL;
    if (!k || n == 0) return NT_OK;
    for (size_t i = 0; i < n; i++)
        if (pf_escapable((unsigned char)k[i])) return NT_OK;
    char *d = arena_alloc(b->ta, n + 1);
    int *lits = arena_alloc(&q->arena, sizeof *lits);
    if (!d || !lits) return NT_ERR_NOMEM;
    memcpy(d, k, n);
    d[n] = '"';
    kql_pflit l = {d, n + 1};
    int li = pf_lit_index(q, &b->lits_cap, &l);
    if (li < 0) return NT_ERR_NOMEM;
    lits[0] = li;
    int node = pf_new_node(b, PF_LITS);
    if (node < 0) return NT_ERR_NOMEM;
    q->pfnodes[node].lit = lits;
    q->pfnodes[node].nlit = 1;
    *out = node;
    return NT_OK;
}

static nt_status pf_build(pf_tree_builder *b, int idx, int *out)
{
    kql_query *q = b->q;
    const kql_enode *e = &q->nodes[idx];
    *out = -1;
    if (e->op == E_TERMS || e->op == E_EXISTS) {
        int key = -1, vals = -1;
        if (pf_key_node(b, e->field, &key) != NT_OK) return NT_ERR_NOMEM;
        if (e->op == E_TERMS && pf_values_node(b, e, &vals) != NT_OK) return NT_ERR_NOMEM;
        if (key < 0 || vals < 0) {
            *out = key >= 0 ? key : vals;
            return NT_OK;
        }
        /* both: the key literal (one search, shared by the pack) first */
        int n = pf_new_node(b, PF_AND);
        if (n < 0) return NT_ERR_NOMEM;
        q->pfnodes[n].kid = key;
        q->pfnodes[key].next = vals;
        *out = n;
        return NT_OK;
    }
    if (e->op != E_AND && e->op != E_OR) return NT_OK; /* NOT, RANGE, TRUE */
    int first = -1, count = 0;
    for (int k = e->kid; k >= 0; k = q->nodes[k].next) {
        int kid;
        if (pf_build(b, k, &kid) != NT_OK) return NT_ERR_NOMEM;
        if (kid < 0) {
            if (e->op == E_OR) return NT_OK; /* one unconstrained alternative */
            continue;                        /* AND: drop the unconstrained part */
        }
        /* insert by cost, cheapest first, so a conjunction fails early */
        size_t c = pf_cost(q, kid);
        int *link = &first;
        while (*link >= 0 && pf_cost(q, *link) <= c)
            link = &q->pfnodes[*link].next;
        q->pfnodes[kid].next = *link;
        *link = kid;
        count++;
    }
    if (count == 0) return NT_OK;
    if (count == 1) {
        *out = first;
        return NT_OK;
    }
    int n = pf_new_node(b, e->op == E_AND ? PF_AND : PF_OR);
    if (n < 0) return NT_ERR_NOMEM;
    q->pfnodes[n].kid = first;
    *out = n;
    return NT_OK;
}

static nt_status pf_tree(kql_query *q, kql_arena *ta)
{
    pf_tree_builder b = {q, ta, 0, 0};
    q->pfroot = -1;
    return pf_build(&b, q->root, &q->pfroot);
}

typedef struct pf_eval {
    const kql_query *q;
    const char *raw;
    size_t len;
    int clean;                       /* a full search saw no backslash in raw */
    unsigned char memo[KQL_PF_MEMO]; /* 0 not searched, 1 found, 2 absent */
    const int *gmap;                 /* shared: query literal -> table literal, else NULL */
    kql_pfrec *rec;                  /* shared: the record's memo and clean flag */
} pf_eval;

static int pf_has(pf_eval *ev, int li)
{
    if (ev->gmap) {
        int gi = ev->gmap[li];
        kql_pfrec *r = ev->rec;
        if (r->memo[gi]) return r->memo[gi] == 1;
        const kql_pflit *l = &ev->q->pflits[li];
        int found =
            nt_search_clean(r->raw, r->len, l->s, l->n, r->clean ? NULL : &r->clean) != NULL;
        r->memo[gi] = found ? 1 : 2;
        return found;
    }
    if (li < KQL_PF_MEMO && ev->memo[li]) return ev->memo[li] == 1;
    const kql_pflit *l = &ev->q->pflits[li];
    int found =
        nt_search_clean(ev->raw, ev->len, l->s, l->n, ev->clean ? NULL : &ev->clean) != NULL;
    if (li < KQL_PF_MEMO) ev->memo[li] = found ? 1 : 2;
    return found;
}

static int pf_eval_node(pf_eval *ev, int node)
{
    const kql_pfnode *n = &ev->q->pfnodes[node];
    if (n->op == PF_LITS) {
        if (n->common >= 0 && !pf_has(ev, n->common)) return 0;
        for (size_t i = 0; i < n->nlit; i++)
            if (pf_has(ev, n->lit[i])) return 1;
        return 0;
    }
    for (int k = n->kid; k >= 0; k = ev->q->pfnodes[k].next) {
        int v = pf_eval_node(ev, k);
        if (n->op == PF_AND && !v) return 0;
        if (n->op == PF_OR && v) return 1;
    }
    return n->op == PF_AND;
}

int kql_prefilter(const kql_query *q, const char *raw, size_t len)
{
    if (!q || q->pfroot < 0) return 1;
    if (!raw || len == 0) return 0;
    pf_eval ev;
    ev.q = q;
    ev.raw = raw;
    ev.len = len;
    ev.clean = 0;
    ev.gmap = NULL;
    ev.rec = NULL;
    memset(ev.memo, 0, q->npflits < KQL_PF_MEMO ? q->npflits : KQL_PF_MEMO);
    if (pf_eval_node(&ev, q->pfroot)) return 1;
    /* The record cannot match, unless a JSON \u escape could be hiding one
     * of the literals (a search that read all of raw may already know there
     * is no backslash at all). */
    return ev.clean ? 0 : nt_has_unicode_escape(raw, len);
}

/* Exact literals ("v" with both quotes) are answered by one pass per record
 * instead of one search each: `"v"` occurs in raw exactly when two adjacent
 * quotes of raw enclose v (v has no quote), so looking up the bytes from
 * every quote to the next one gives the same answer as the searches. The pass
 * finds quotes and backslashes 64 bytes at a time (SSE2 where there is), skips
 * a segment unless some exact literal has its length, first and last content
 * bytes (a bit map), and hashes the rest in constant time (the first and last
 * 8 bytes and the length; equal hashes are confirmed with memcmp).
 * Where the CPU has AVX2 (checked once per table) the pass looks only at the
 * segments whose first two content bytes may start some literal it answers
 * (a Teddy-style nibble-table test of the two bytes after every quote, 32
 * quotes at a time: on the pack's Mix B records 55 of 176 quotes), and it
 * also answers the prefix
 * literals ("X: X without a quote, e.g. "AKIA from AKIA*), which are in raw
 * exactly when some quote is followed by X, at those same quotes. Literals
 * the pass does not answer (X", inner runs, and prefixes without AVX2) are
 * searched when a tree asks for them, as without the pass; a leaf made only
 * of inner runs first searches the run they all hold (pf_common).
 *
 * Dispatch (kql_prefilter_all): a node of a query's tree can only be true
 * when one of its guard literals is in the record. A guard is a set of
 * literals the pass answers, read off the tree: a leaf of those is its own
 * guard, an OR's is the union of its children's (none if a child has none),
 * an AND's is its child's guard that the fewest queries share (a provider
 * every iam rule names says less than an action). A query has up to PF_MAX_GUARDS guards:
 * those of the leaves and ORs its tree requires through ANDs (provider,
 * action, identity type...), the cheapest kept. Each such literal lists the
 * (query, guard) pairs it belongs to; the pass sets that guard's bit in the
 * query's byte of may when it finds the literal, and only queries with every
 * guard bit set (and those without a guard) walk their trees. The others
 * cannot match: their verdict is the one for a false tree (0, or 1 when a
 * `\u` escape could hide a literal). */
#define PF_EXACT_MAXLEN 255
#define PF_SCAN_MIN 16      /* exact literals from which scan = 1 uses the pass */
#define PF_BLOOM_BITS 8192u /* (length, first, last byte) filter of the pass */
#define PF_MAX_GUARDS 8     /* guards per query: the bits of its byte of may */

enum { PFQ_GUARDED, PFQ_WALK, PFQ_PASS }; /* kql_pfshare.qkind */

/* A prefix literal in its row: its first four bytes (the quote first, fewer
 * when shorter) as a little-endian word key, mask the bytes that count. */
typedef struct pf_prefix_lit {
    uint32_t key, mask;
    int gi;
} pf_prefix_lit;

typedef struct pf_eslot {
    uint32_t tag; /* high bits of the hash */
    int gi;       /* table index, -1 = empty */
} pf_eslot;

struct kql_pfshare {
    const kql_query **qs; /* owned array; the queries are not */
    size_t nq;
    int **map;      /* map[qi][li]: table index of the query's literal li (NULL: none) */
    size_t nlits;   /* distinct literals */
    kql_pflit *lit; /* the distinct literals, pointing into the queries */
    /* the exact-literal pass (scan != 0) */
    int scan;
    unsigned char *memo0; /* memo template: 2 (absent) for the literals the pass answers, else 0 */
    size_t nexact;        /* exact literals */
    pf_eslot *eslot;      /* open addressing over the quoted literals */
    size_t ecap;          /* power of two */
    uint64_t bloom[PF_BLOOM_BITS / 64];
    /* the first two content bytes a literal the AVX2 pass answers may start
     * with (the closing quote for `""` and for a one-byte value), as Teddy
     * nibble tables: 8 buckets by the first byte's low 3 bits; byte k of the
     * content may be c for bucket b when pair_lo[k][c & 15] & pair_hi[k][c >>
     * 4] has bit b (each 16-byte row twice, for both lanes) */
    unsigned char pair_lo[2][32], pair_hi[2][32];
    int avx2; /* the CPU has AVX2 (checked once, by kql_pfshare_new) */
    /* prefix literals ("X, X without a quote, not exact), also answered by
     * the AVX2 pass at the opening quotes it looks at (X's first byte is in
     * pair_lo/pair_hi): X's first byte picks a row of pre, X's second one
     * (& 63) a bit (every bit for a one-byte X); a quote whose next two bytes
     * hit a set bit is compared with the row's literals (pre_lit[pre_off[c]
     * .. pre_off[c + 1])) */
    uint64_t *pre;                 /* 256 rows, NULL: no prefix literal */
    unsigned *pre_off;             /* 257 */
    struct pf_prefix_lit *pre_lit; /* the rows' literals */
    size_t npass;                  /* literals the pass answers (memo0 2) */
    /* dispatch (when the pass is used) */
    unsigned char *qkind; /* per query: PFQ_* */
    unsigned char *qneed; /* per query: one bit per guard */
    size_t *toff;         /* nlits + 1: tq[toff[gi]..toff[gi+1]) are the guards gi is in, */
    int *tq;              /* each query << 3 | its guard's bit */
};

void kql_pfshare_free(kql_pfshare *s)
{
    if (!s) return;
    if (s->map)
        for (size_t i = 0; i < s->nq; i++)
            free(s->map[i]);
    free(s->map);
    free(s->qs);
    free(s->lit);
    free(s->memo0);
    free(s->eslot);
    free(s->pre);
    free(s->pre_off);
    free(s->pre_lit);
    free(s->qkind);
    free(s->qneed);
    free(s->toff);
    free(s->tq);
    free(s);
}

static uint64_t pf_hash_bytes(const char *p, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)p[i]) * 1099511628211ULL;
    return h;
}

static uint64_t pf_hash(const kql_pflit *l)
{
    return pf_hash_bytes(l->s, l->n);
}

/* Hash of a quoted segment w[0..m) (m >= 2, w[0] and w[m-1] quotes): its
 * first and last 8 bytes (fewer when shorter) and its length. */
static uint64_t pf_seg_hash(const char *w, size_t m)
{
    uint64_t a, b;
    if (m >= 8) {
        memcpy(&a, w, 8);
        memcpy(&b, w + m - 8, 8);
    } else if (m >= 4) {
        uint32_t x, y;
        memcpy(&x, w, 4);
        memcpy(&y, w + m - 4, 4);
        a = x;
        b = y;
    } else {
        a = (unsigned char)w[1];
        b = (unsigned char)w[m - 2];
    }
    uint64_t h = a * 0x9E3779B97F4A7C15ULL ^ (b + m) * 0xC2B2AE3D27D4EB4FULL;
    return h ^ h >> 29;
}

/* Bit of the pass's filter for a segment of content length n whose content
 * starts with byte f and ends with byte l (both the closing quote when n = 0). */
static size_t pf_bloom_bit(size_t n, unsigned char f, unsigned char l)
{
    uint32_t x = ((uint32_t)f | (uint32_t)l << 8 | (uint32_t)n << 16) * 0x9E3779B1u;
    return x >> 19; /* 13 bits: PF_BLOOM_BITS */
}

static int pf_exact(const kql_pflit *l)
{
    return l->n >= 2 && l->n - 2 <= PF_EXACT_MAXLEN && l->s[0] == '"' && l->s[l->n - 1] == '"' &&
           !memchr(l->s + 1, '"', l->n - 2);
}

/* Adds a literal whose content starts with c1, c2 (any second byte when
 * any2) to the pass's pair filter. */
static void pf_pair_add(kql_pfshare *s, unsigned char c1, unsigned char c2, int any2)
{
    unsigned char bit = (unsigned char)(1u << (c1 & 7));
    for (int lane = 0; lane < 32; lane += 16) {
        s->pair_lo[0][lane + (c1 & 15)] |= bit;
        s->pair_hi[0][lane + (c1 >> 4)] |= bit;
        for (int x = 0; x < 16; x++) {
            if (any2 || x == (c2 & 15)) s->pair_lo[1][lane + x] |= bit;
            if (any2 || x == (c2 >> 4)) s->pair_hi[1][lane + x] |= bit;
        }
    }
}

/* A prefix literal: `"X` with X not empty and without a quote, or `"X"`
 * too long for the exact table. `"X` is in raw exactly when some quote of
 * raw is followed by X; as X's first two bytes (or its one byte) are in the
 * pass's pair filter, that quote is one the AVX2 pass looks at. */
static int pf_prefix(const kql_pflit *l)
{
    if (l->n < 2 || l->s[0] != '"' || l->s[1] == '"' || pf_exact(l)) return 0;
    size_t body = l->s[l->n - 1] == '"' ? l->n - 2 : l->n - 1;
    return !memchr(l->s + 1, '"', body);
}

static uint32_t pf_load32(const char *p, size_t n)
{
    unsigned char b[4] = {0, 0, 0, 0};
    memcpy(b, p, n < 4 ? n : 4);
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

/* The rows of the prefix literals (AVX2 pass only). */
static nt_status pf_prefix_table(kql_pfshare *s)
{
    size_t k = 0;
    for (size_t i = 0; i < s->nlits; i++)
        k += (size_t)pf_prefix(&s->lit[i]);
    if (!k) return NT_OK;
    s->pre = calloc(256, sizeof *s->pre);
    s->pre_off = calloc(257, sizeof *s->pre_off);
    s->pre_lit = malloc(k * sizeof *s->pre_lit);
    if (!s->pre || !s->pre_off || !s->pre_lit) return NT_ERR_NOMEM;
    for (size_t i = 0; i < s->nlits; i++) { /* count per row */
        const kql_pflit *l = &s->lit[i];
        if (!pf_prefix(l)) continue;
        unsigned char c = (unsigned char)l->s[1];
        s->pre_off[c + 1]++;
        int one = l->n == 2 || l->s[2] == '"'; /* X is one byte */
        s->pre[c] |= one ? ~0ULL : 1ULL << ((unsigned char)l->s[2] & 63);
        pf_pair_add(s, c, one ? 0 : (unsigned char)l->s[2], one);
        s->memo0[i] = 2;
        s->npass++;
    }
    unsigned next[256];
    for (size_t c = 0; c < 256; c++) {
        s->pre_off[c + 1] += s->pre_off[c];
        next[c] = s->pre_off[c];
    }
    for (size_t i = 0; i < s->nlits; i++) {
        const kql_pflit *l = &s->lit[i];
        if (!pf_prefix(l)) continue;
        pf_prefix_lit *e = &s->pre_lit[next[(unsigned char)l->s[1]]++];
        size_t kb = l->n < 4 ? l->n : 4;
        e->key = pf_load32(l->s, kb);
        e->mask = kb >= 4 ? ~0u : (1u << (8 * kb)) - 1; /* kb >= 2: "X */
        e->gi = (int)i;
    }
    return NT_OK;
}

static nt_status pf_exact_table(kql_pfshare *s)
{
    s->memo0 = calloc(s->nlits ? s->nlits : 1, 1);
    if (!s->memo0) return NT_ERR_NOMEM;
    for (size_t i = 0; i < s->nlits; i++)
        if (pf_exact(&s->lit[i])) s->nexact++;
    s->ecap = 16;
    while (s->ecap < s->nexact * 4)
        s->ecap *= 2;
    s->eslot = malloc(s->ecap * sizeof *s->eslot);
    if (!s->eslot) return NT_ERR_NOMEM;
    for (size_t i = 0; i < s->ecap; i++)
        s->eslot[i].gi = -1;
    for (size_t i = 0; i < s->nlits; i++) {
        const kql_pflit *l = &s->lit[i];
        if (!pf_exact(l)) continue;
        uint64_t hv = pf_seg_hash(l->s, l->n);
        size_t h = (size_t)(hv & (s->ecap - 1));
        while (s->eslot[h].gi >= 0)
            h = (h + 1) & (s->ecap - 1); /* distinct: no equal key */
        s->eslot[h].gi = (int)i;
        s->eslot[h].tag = (uint32_t)(hv >> 32);
        s->memo0[i] = 2;
        size_t bit = pf_bloom_bit(l->n - 2, (unsigned char)l->s[1], (unsigned char)l->s[l->n - 2]);
        s->bloom[bit / 64] |= 1ULL << (bit % 64);
        /* `""`: the closing quote, then anything */
        pf_pair_add(s, (unsigned char)l->s[1], l->n > 2 ? (unsigned char)l->s[2] : 0, l->n == 2);
    }
    s->npass = s->nexact;
    if (s->avx2 && pf_prefix_table(s) != NT_OK) return NT_ERR_NOMEM;
    return NT_OK;
}

/* ---- dispatch: each query's guard literals ---- */

#define PF_NO_GUARD SIZE_MAX

typedef struct pf_guard_ctx {
    const kql_pfshare *s;
    const kql_query *q;
    const int *map;       /* the query's literal -> table literal */
    const unsigned *uses; /* per table literal: queries using it */
} pf_guard_ctx;

/* How many query uses the guard of node sums to (PF_NO_GUARD: none). */
static size_t pf_guard_cost(const pf_guard_ctx *g, int node)
{
    const kql_pfnode *n = &g->q->pfnodes[node];
    if (n->op == PF_LITS) {
        size_t c = 0;
        for (size_t i = 0; i < n->nlit; i++) {
            int gi = g->map[n->lit[i]];
            if (g->s->memo0[gi] != 2) return PF_NO_GUARD; /* not answered by the pass */
            c += g->uses[gi];
        }
        return c;
    }
    size_t best = n->op == PF_AND ? PF_NO_GUARD : 0;
    for (int k = n->kid; k >= 0; k = g->q->pfnodes[k].next) {
        size_t c = pf_guard_cost(g, k);
        if (n->op == PF_AND) {
            if (c < best) best = c;
        } else {
            if (c == PF_NO_GUARD) return PF_NO_GUARD;
            best += c;
        }
    }
    return best;
}

/* Calls add(ud, table literal) for every literal of node's guard (which
 * pf_guard_cost found to exist). */
static void pf_guard_each(const pf_guard_ctx *g, int node, void (*add)(void *, int), void *ud)
{
    const kql_pfnode *n = &g->q->pfnodes[node];
    if (n->op == PF_LITS) {
        for (size_t i = 0; i < n->nlit; i++)
            add(ud, g->map[n->lit[i]]);
        return;
    }
    int pick = -1;
    size_t best = PF_NO_GUARD;
    for (int k = n->kid; k >= 0; k = g->q->pfnodes[k].next) {
        if (n->op == PF_OR) {
            pf_guard_each(g, k, add, ud);
            continue;
        }
        size_t c = pf_guard_cost(g, k);
        if (c < best) best = c, pick = k;
    }
    if (pick >= 0) pf_guard_each(g, pick, add, ud);
}

/* Adds node to the query's guards sets[0..*n) when it has a guard, or the
 * guards of the nodes it requires when it is an AND; beyond PF_MAX_GUARDS
 * the cheapest are kept. */
static void pf_guards(const pf_guard_ctx *g, int node, int *sets, size_t *cost, size_t *n)
{
    const kql_pfnode *nd = &g->q->pfnodes[node];
    if (nd->op == PF_AND) {
        for (int k = nd->kid; k >= 0; k = g->q->pfnodes[k].next)
            pf_guards(g, k, sets, cost, n);
        return;
    }
    size_t c = pf_guard_cost(g, node);
    if (c == PF_NO_GUARD) return;
    size_t at = *n;
    if (at == PF_MAX_GUARDS) {
        size_t worst = 0;
        for (size_t i = 1; i < at; i++)
            if (cost[i] > cost[worst]) worst = i;
        if (c >= cost[worst]) return;
        at = worst;
    } else {
        (*n)++;
    }
    sets[at] = node;
    cost[at] = c;
}

typedef struct pf_trig_fill {
    kql_pfshare *s;
    size_t *next; /* per table literal: next free slot of its list */
    int entry;    /* query << 3 | guard bit */
} pf_trig_fill;

static void pf_trig_count(void *ud, int gi)
{
    pf_trig_fill *f = ud;
    f->s->toff[gi + 1]++;
}

static void pf_trig_add(void *ud, int gi)
{
    pf_trig_fill *f = ud;
    f->s->tq[f->next[gi]++] = f->entry;
}

/* Fills qkind, toff and tq (needs memo0, the exact literals). */
static nt_status pf_dispatch_table(kql_pfshare *s)
{
    nt_status st = NT_ERR_NOMEM;
    unsigned *uses = calloc(s->nlits ? s->nlits : 1, sizeof *uses);
    size_t *next = malloc((s->nlits ? s->nlits : 1) * sizeof *next);
    s->qkind = malloc(s->nq ? s->nq : 1);
    s->qneed = calloc(s->nq ? s->nq : 1, 1);
    s->toff = calloc(s->nlits + 1, sizeof *s->toff);
    if (!uses || !next || !s->qkind || !s->qneed || !s->toff) goto done;
    for (size_t qi = 0; qi < s->nq; qi++)
        for (size_t li = 0; s->qs[qi] && li < s->qs[qi]->npflits; li++)
            uses[s->map[qi][li]]++;
    pf_trig_fill f = {s, next, 0};
    for (int pass = 0; pass < 2; pass++) { /* count the list entries, then fill them */
        if (pass == 1) {
            for (size_t i = 0; i < s->nlits; i++) {
                s->toff[i + 1] += s->toff[i];
                next[i] = s->toff[i];
            }
            s->tq = malloc((s->toff[s->nlits] ? s->toff[s->nlits] : 1) * sizeof *s->tq);
            if (!s->tq) goto done;
        }
        for (size_t qi = 0; qi < s->nq; qi++) {
            const kql_query *q = s->qs[qi];
            s->qkind[qi] = PFQ_PASS;
            if (!q || q->pfroot < 0) continue;
            pf_guard_ctx g = {s, q, s->map[qi], uses};
            int sets[PF_MAX_GUARDS];
            size_t cost[PF_MAX_GUARDS], n = 0;
            pf_guards(&g, q->pfroot, sets, cost, &n);
            s->qkind[qi] = n ? PFQ_GUARDED : PFQ_WALK;
            s->qneed[qi] = (unsigned char)((1u << n) - 1);
            for (size_t j = 0; j < n; j++) {
                f.entry = (int)(qi << 3 | j);
                pf_guard_each(&g, sets[j], pass ? pf_trig_add : pf_trig_count, &f);
            }
        }
    }
    st = NT_OK;
done:
    free(uses);
    free(next);
    return st;
}

static int pf_have_avx2(void);

kql_pfshare *kql_pfshare_new(const kql_query *const *qs, size_t n, int scan)
{
    kql_pfshare *s = calloc(1, sizeof *s);
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        if (qs[i]) total += qs[i]->npflits;
    size_t hcap = 16;
    while (hcap < total * 2)
        hcap *= 2;
    int *slot = malloc(hcap * sizeof *slot); /* open addressing: table index or -1 */
    if (!s || !slot) goto fail;
    s->nq = n;
    s->qs = malloc((n ? n : 1) * sizeof *s->qs);
    s->map = calloc(n ? n : 1, sizeof *s->map);
    s->lit = malloc((total ? total : 1) * sizeof *s->lit);
    if (!s->qs || !s->map || !s->lit) goto fail;
    for (size_t i = 0; i < n; i++)
        s->qs[i] = qs[i];
    for (size_t i = 0; i < hcap; i++)
        slot[i] = -1;
    for (size_t qi = 0; qi < n; qi++) {
        const kql_query *q = qs[qi];
        if (!q || !q->npflits) continue;
        s->map[qi] = malloc(q->npflits * sizeof *s->map[qi]);
        if (!s->map[qi]) goto fail;
        for (size_t li = 0; li < q->npflits; li++) {
            const kql_pflit *l = &q->pflits[li];
            size_t h = (size_t)(pf_hash(l) & (hcap - 1));
            while (slot[h] >= 0 && !pflit_eq(&s->lit[slot[h]], l))
                h = (h + 1) & (hcap - 1);
            if (slot[h] < 0) {
                slot[h] = (int)s->nlits;
                s->lit[s->nlits++] = *l;
            }
            s->map[qi][li] = slot[h];
        }
    }
    s->avx2 = !(scan & KQL_PF_PORTABLE) && pf_have_avx2();
    scan &= ~KQL_PF_PORTABLE;
    if (scan && pf_exact_table(s) != NT_OK) goto fail;
    /* A few literals are cheaper searched (a search stops at its first hit,
     * and a conjunction at its first miss) than one full pass. */
    s->scan = scan >= 2 || (scan == 1 && s->nexact >= PF_SCAN_MIN);
    if (s->scan && pf_dispatch_table(s) != NT_OK) goto fail;
    free(slot);
    return s;
fail:
    free(slot);
    kql_pfshare_free(s);
    return NULL;
}

size_t kql_pfshare_nlits(const kql_pfshare *s)
{
    return s ? s->nlits : 0;
}

const char *kql_pfshare_lit(const kql_pfshare *s, size_t i, size_t *len)
{
    *len = s->lit[i].n;
    return s->lit[i].s;
}

/* Bit k of *quote / *bslash: s[k] is a quote / a backslash, for k < n (n <= 64). */
static void pf_masks64(const char *s, size_t n, uint64_t *quote, uint64_t *bslash)
{
    char pad[64];
    if (n < 64) {
        memset(pad, 0, sizeof pad);
        memcpy(pad, s, n);
        s = pad;
    }
#if defined(__SSE2__)
    uint64_t q = 0, b = 0;
    for (unsigned k = 0; k < 64; k += 16) {
        const __m128i x = _mm_loadu_si128((const __m128i *)(const void *)(s + k));
        q |= (uint64_t)(unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(x, _mm_set1_epi8('"'))) << k;
        b |= (uint64_t)(unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(x, _mm_set1_epi8('\\'))) << k;
    }
    *quote = q;
    *bslash = b;
#else
    uint64_t q = 0, b = 0;
    for (unsigned k = 0; k < 64; k++) {
        q |= (uint64_t)(s[k] == '"') << k;
        b |= (uint64_t)(s[k] == '\\') << k;
    }
    *quote = q;
    *bslash = b;
#endif
}

static unsigned pf_ctz64(uint64_t x)
{
#if defined(__GNUC__) || defined(__clang__)
    return (unsigned)__builtin_ctzll(x);
#else
    unsigned k = 0;
    while (!(x & 1)) {
        x >>= 1;
        k++;
    }
    return k;
#endif
}

/* Literal gi (one the pass answers) is in the record: its memo and its
 * guards' bits in may (NULL: none). */
static void pf_found(const kql_pfshare *s, kql_pfrec *r, int gi, unsigned char *may)
{
    if (r->memo[gi] == 1) return;
    r->memo[gi] = 1;
    if (may)
        for (size_t t = s->toff[gi]; t < s->toff[gi + 1]; t++)
            may[s->tq[t] >> 3] |= (unsigned char)(1u << (s->tq[t] & 7));
}

/* A quoted segment w[0..m) of the record (quote to next quote) that passed
 * the filter: marks the exact literal equal to it found, and its guards' bits
 * in may (NULL: none). */
static void pf_segment(const kql_pfshare *s, kql_pfrec *r, const char *w, size_t m,
                       unsigned char *may)
{
    uint64_t hv = pf_seg_hash(w, m);
    uint32_t tag = (uint32_t)(hv >> 32);
    for (size_t h = (size_t)(hv & (s->ecap - 1));; h = (h + 1) & (s->ecap - 1)) {
        const pf_eslot *e = &s->eslot[h];
        if (e->gi < 0) return;
        const kql_pflit *l = &s->lit[e->gi];
        if (e->tag != tag || l->n != m || memcmp(l->s, w, m) != 0) continue;
        pf_found(s, r, e->gi, may);
        return;
    }
}

/* The prefix literals of row c that start at the quote raw[at]. */
#if defined(__GNUC__) || defined(__clang__)
__attribute__((noinline)) /* out of the pass's loop, which has few registers to spare */
#endif
static void
pf_prefix_at(const kql_pfshare *s, kql_pfrec *r, size_t at, unsigned char c, unsigned char *may)
{
    uint32_t w = pf_load32(r->raw + at, r->len - at);
    for (unsigned k = s->pre_off[c]; k < s->pre_off[c + 1]; k++) {
        const pf_prefix_lit *e = &s->pre_lit[k];
        const kql_pflit *l = &s->lit[e->gi];
        if ((w & e->mask) == e->key && at + l->n <= r->len && memcmp(r->raw + at, l->s, l->n) == 0)
            pf_found(s, r, e->gi, may);
    }
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define PF_AVX2 1
/* The masks of the 64 bytes at p (p[0..66) readable): quotes, backslashes,
 * and the quotes whose next two bytes may start the content of a literal
 * the pass answers (pair_lo, pair_hi). */
typedef struct pf_block {
    uint64_t quote, bslash, open;
} pf_block;

/* Bucket bits of the 32 bytes at p for content byte k. */
__attribute__((target("avx2"))) static inline __m256i pf_pair_avx2(const kql_pfshare *s, int k,
                                                                   const char *p)
{
    const __m256i x = _mm256_loadu_si256((const __m256i *)(const void *)p);
    const __m256i nib = _mm256_set1_epi8(0x0F);
    const __m256i lo = _mm256_loadu_si256((const __m256i *)(const void *)s->pair_lo[k]);
    const __m256i hi = _mm256_loadu_si256((const __m256i *)(const void *)s->pair_hi[k]);
    return _mm256_and_si256(
        _mm256_shuffle_epi8(lo, _mm256_and_si256(x, nib)),
        _mm256_shuffle_epi8(hi, _mm256_and_si256(_mm256_srli_epi16(x, 4), nib)));
}

/* 0xFF where the two bytes at p + [0, 32) and the next cannot start a literal. */
__attribute__((target("avx2"))) static inline __m256i pf_first_avx2(const kql_pfshare *s,
                                                                    const char *p)
{
    const __m256i in = _mm256_and_si256(pf_pair_avx2(s, 0, p), pf_pair_avx2(s, 1, p + 1));
    return _mm256_cmpeq_epi8(in, _mm256_setzero_si256());
}

__attribute__((target("avx2"))) static inline pf_block
pf_block_avx2(const kql_pfshare *s, const char *raw, size_t len, size_t base, char *pad)
{
    const char *p = raw + base;
    if (len - base < 66) { /* the last block: from a copy padded with zero bytes */
        memset(pad, 0, 96);
        memcpy(pad, p, len - base);
        p = pad;
    }
    const __m256i a = _mm256_loadu_si256((const __m256i *)(const void *)p);
    const __m256i b = _mm256_loadu_si256((const __m256i *)(const void *)(p + 32));
    const __m256i q = _mm256_set1_epi8('"'), k = _mm256_set1_epi8('\\');
    pf_block m;
    m.quote = (uint64_t)(uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(a, q)) |
              (uint64_t)(uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(b, q)) << 32;
    m.bslash = (uint64_t)(uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(a, k)) |
               (uint64_t)(uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(b, k)) << 32;
    uint64_t no = (uint64_t)(uint32_t)_mm256_movemask_epi8(pf_first_avx2(s, p + 1)) |
                  (uint64_t)(uint32_t)_mm256_movemask_epi8(pf_first_avx2(s, p + 33)) << 32;
    m.open = m.quote & ~no;
    return m;
}

#define PF_SCAN_BLOCKS 64 /* blocks of masks per round of the AVX2 pass (4 KB of record) */

/* pf_exact_scan's loop with AVX2, in rounds of up to PF_SCAN_BLOCKS blocks:
 * first the masks of every block of the round, then the segments whose
 * opening quote passed the pair filter (on Mix B 55 of 176 a record), each closed
 * by the next quote in the masks (a segment that runs past the round's
 * masks by memchr). The prefix literals are tried at each of these quotes. */
__attribute__((target("avx2"))) static uint64_t pf_scan_avx2(const kql_pfshare *s, kql_pfrec *r,
                                                             unsigned char *may)
{
    const char *raw = r->raw;
    const size_t len = r->len;
    uint64_t anyb = 0;
    char pad[96];
    uint64_t qm[PF_SCAN_BLOCKS + 1], om[PF_SCAN_BLOCKS];
    for (size_t round = 0; round < len; round += 64 * PF_SCAN_BLOCKS) {
        size_t nb = (len - round + 63) / 64;
        if (nb > PF_SCAN_BLOCKS) nb = PF_SCAN_BLOCKS;
        for (size_t k = 0; k < nb; k++) {
            pf_block m = pf_block_avx2(s, raw, len, round + 64 * k, pad);
            qm[k] = m.quote;
            om[k] = m.open;
            anyb |= m.bslash;
        }
        qm[nb] = 0;
        for (size_t k = 0; k < nb; k++) {
            for (uint64_t open = om[k]; open; open &= open - 1) {
                unsigned b = pf_ctz64(open);
                size_t from = round + 64 * k + b, at;
                /* raw[from + 1] is in first, so from + 1 < len */
                unsigned char c = (unsigned char)raw[from + 1];
                if (s->pre) {
                    unsigned char d = (unsigned char)raw[from + 2 < len ? from + 2 : from + 1];
                    if (s->pre[c] >> (d & 63) & 1) pf_prefix_at(s, r, from, c, may);
                }
                uint64_t rest = qm[k] >> b >> 1;
                if (rest) {
                    at = from + 1 + pf_ctz64(rest);
                } else if (qm[k + 1]) {
                    at = round + 64 * (k + 1) + pf_ctz64(qm[k + 1]);
                } else {
                    size_t room = len - from - 1;
                    const char *q = memchr(raw + from + 1, '"',
                                           room < PF_EXACT_MAXLEN + 1 ? room : PF_EXACT_MAXLEN + 1);
                    if (!q) continue;
                    at = (size_t)(q - raw);
                }
                size_t n = at - from - 1;
                if (n > PF_EXACT_MAXLEN) continue;
                size_t bit = pf_bloom_bit(n, c, (unsigned char)raw[at - 1]);
                if (s->bloom[bit / 64] >> (bit % 64) & 1)
                    pf_segment(s, r, raw + from, at - from + 1, may);
            }
        }
    }
    return anyb;
}

static int pf_have_avx2(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") ? 1 : 0;
}
#else
static int pf_have_avx2(void)
{
    return 0;
}
#endif

/* The exact-literal pass over r->raw (memo already from memo0): memo[i] = 1
 * for each exact literal found, its guards' bits in may (may may be NULL),
 * r->clean = no backslash in raw. */
static void pf_exact_scan(const kql_pfshare *s, kql_pfrec *r, unsigned char *may)
{
    const char *raw = r->raw;
    /* before the first quote, a "previous" one so far back that the first
     * segment is over PF_EXACT_MAXLEN and skipped (no test per quote) */
    size_t len = r->len, prev = (size_t)0 - (PF_EXACT_MAXLEN + 2);
    uint64_t anyb = 0;
#ifdef PF_AVX2
    if (s->avx2) {
        anyb = pf_scan_avx2(s, r, may);
        len = 0; /* done */
    }
#endif
    for (size_t base = 0; base < len; base += 64) {
        uint64_t quote, bslash;
        pf_masks64(raw + base, len - base < 64 ? len - base : 64, &quote, &bslash);
        anyb |= bslash;
        while (quote) {
            size_t at = base + pf_ctz64(quote), from = prev;
            quote &= quote - 1;
            prev = at;
            if (at - from - 1 > PF_EXACT_MAXLEN) continue;
            size_t bit = pf_bloom_bit(at - from - 1, (unsigned char)raw[from + 1],
                                      (unsigned char)raw[at - 1]);
            if (s->bloom[bit / 64] >> (bit % 64) & 1)
                pf_segment(s, r, raw + from, at - from + 1, may);
        }
    }
    r->clean = r->len && !anyb;
}

void kql_pfrec_reset(kql_pfrec *r, const kql_pfshare *s, const char *raw, size_t len)
{
    r->raw = raw;
    r->len = len;
    r->clean = 0;
    r->uescape = 0;
    if (!s->nlits) return;
    if (s->scan && s->npass && raw) {
        memcpy(r->memo, s->memo0, s->nlits);
        /* also learns what a full search would have: no backslash, no \u escape */
        pf_exact_scan(s, r, NULL);
    } else {
        memset(r->memo, 0, s->nlits);
    }
}

/* The tree of query qi on the record (memo shared): 1 true, 0 false. */
static int pf_tree_shared(const kql_pfshare *s, size_t qi, kql_pfrec *r)
{
    pf_eval ev;
    ev.q = s->qs[qi];
    ev.raw = r->raw;
    ev.len = r->len;
    ev.clean = 0;
    ev.gmap = s->map[qi];
    ev.rec = r;
    return pf_eval_node(&ev, ev.q->pfroot);
}

/* The dispatch's verdict for a query whose guards were all found: its tree
 * (or 1 for a query without one). */
static unsigned char pf_verdict_tree(const kql_pfshare *s, size_t qi, kql_pfrec *r)
{
    return s->qkind[qi] == PFQ_PASS ? 1 : (unsigned char)pf_tree_shared(s, qi, r);
}

int kql_prefilter_shared(const kql_pfshare *s, size_t qi, kql_pfrec *r)
{
    const kql_query *q = s->qs[qi];
    if (!q || q->pfroot < 0) return 1;
    if (!r->raw || r->len == 0) return 0;
    if (pf_tree_shared(s, qi, r)) return 1;
    if (r->clean) return 0;
    if (!r->uescape) r->uescape = nt_has_unicode_escape(r->raw, r->len) ? 1 : 2;
    return r->uescape == 1;
}

int kql_prefilter_all(const kql_pfshare *s, kql_pfrec *r, const char *raw, size_t len,
                      unsigned char *may)
{
    int any = 0;
    if (!s->scan || !s->npass || !raw || len == 0) {
        kql_pfrec_reset(r, s, raw, len);
        for (size_t qi = 0; qi < s->nq; qi++)
            any |= may[qi] = (unsigned char)kql_prefilter_shared(s, qi, r);
        return any;
    }
    r->raw = raw;
    r->len = len;
    r->uescape = 0;
    memcpy(r->memo, s->memo0, s->nlits);
    memset(may, 0, s->nq);
    pf_exact_scan(s, r, may);
    if (!r->clean) {
        r->uescape = nt_has_unicode_escape(raw, len) ? 1 : 2;
        if (r->uescape == 1) { /* a false tree's verdict is 1 too: every query may match */
            memset(may, 1, s->nq);
            return s->nq > 0;
        }
    }
    /* may[qi] == qneed[qi]: every guard found, or none to find (qneed 0) */
    size_t qi = 0;
#if defined(__SSE2__)
    for (; qi + 16 <= s->nq; qi += 16) {
        const __m128i got = _mm_loadu_si128((const __m128i *)(const void *)(may + qi));
        const __m128i need = _mm_loadu_si128((const __m128i *)(const void *)(s->qneed + qi));
        uint64_t walk = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(got, need));
        _mm_storeu_si128((__m128i *)(void *)(may + qi), _mm_setzero_si128());
        while (walk) {
            size_t q = qi + pf_ctz64(walk);
            walk &= walk - 1;
            any |= may[q] = pf_verdict_tree(s, q, r);
        }
    }
#endif
    for (; qi < s->nq; qi++) {
        may[qi] = may[qi] == s->qneed[qi] ? pf_verdict_tree(s, qi, r) : 0;
        any |= may[qi];
    }
    return any;
}

static void put_bounded(char *buf, size_t cap, size_t *o, const char *s, size_t n)
{
    if (*o < cap) {
        size_t room = cap - 1 - *o;
        memcpy(buf + *o, s, n < room ? n : room);
    }
    *o += n;
}

size_t kql_prefilter_describe(const kql_query *q, char *buf, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; q && i < q->nclauses; i++) {
        const kql_clause *c = &q->clauses[i];
        if (i) put_bounded(buf, cap, &o, " AND ", 5);
        if (c->n > 1) put_bounded(buf, cap, &o, "(", 1);
        for (size_t j = 0; j < c->n; j++) {
            if (j) put_bounded(buf, cap, &o, " OR ", 4);
            put_bounded(buf, cap, &o, c->lits[j].s, c->lits[j].n);
        }
        if (c->n > 1) put_bounded(buf, cap, &o, ")", 1);
    }
    if (cap) buf[o < cap ? o : cap - 1] = 0;
    return o;
}

size_t kql_prefilter_clauses(const kql_query *q)
{
    return q ? q->nclauses : 0;
}

/* ------------------------------------------------- lifecycle and visits */

nt_status kql_compile(const char *text, size_t len, const nt_field_source *src, kql_query **out,
                      nt_err *err)
{
    kql_arena ta = {0};
    nt_status st;
    if (!out) return nt_fail(err, NT_ERR_INVALID, "kql_compile needs somewhere to put the query");
    *out = NULL;
    if (!src || !src->resolve || !src->get)
        return nt_fail(err, NT_ERR_INVALID,
                       "kql_compile needs a field source with resolve and get");
    kql_query *q = calloc(1, sizeof *q);
    if (!q) return nt_fail(err, NT_ERR_NOMEM, "out of memory compiling KQL");
    q->src = *src;
    q->root = -1;
    q->pfroot = -1;
    st = kql_parse_text(&q->arena, text, len, &q->ast, err);
    if (st != NT_OK || !q->ast) {
        if (st == NT_OK) st = nt_fail(err, NT_ERR_INVALID, "the query parsed to nothing");
        goto fail;
    }
    q->text = arena_strndup(&q->arena, text ? text : "", len);
    if (!q->text) goto oom;
    q->text_len = len;

    kql_compiler c = {q, err, NT_OK};
    q->root = compile_node(&c, q->ast, NULL);
    if (c.st != NT_OK || q->root < 0) {
        st = c.st != NT_OK ? c.st : NT_ERR_INVALID;
        goto fail;
    }
    pf_set set;
    if (pf_derive(q, &ta, q->root, &set) != NT_OK || pf_finish(q, &set) != NT_OK ||
        pf_tree(q, &ta) != NT_OK)
        goto oom;
    arena_free(&ta);
    *out = q;
    return NT_OK;
oom:
    st = nt_fail(err, NT_ERR_NOMEM, "out of memory compiling KQL");
fail:
    arena_free(&ta);
    kql_free(q);
    return st;
}

void kql_free(kql_query *q)
{
    if (!q) return;
    for (size_t i = 0; i < q->nterms; i++)
        if (q->terms[i].wild) nt_glob_free(&q->terms[i].glob);
    free(q->terms);
    free(q->nodes);
    free(q->ranges);
    free(q->unknown);
    arena_free(&q->arena);
    free(q);
}

size_t kql_unknown_fields(const kql_query *q, const char *const **names)
{
    if (names) *names = q ? (const char *const *)q->unknown : NULL;
    return q ? q->nunknown : 0;
}

typedef struct kql_cursor {
    const char *s;
    size_t pos;
    int line, col;
} kql_cursor;

/* Moves the cursor to byte offset to, counting lines and characters; visits
 * go forward through the text, so the whole walk is linear. */
static void cursor_seek(kql_cursor *c, size_t to)
{
    if (to < c->pos) c->pos = 0, c->line = 1, c->col = 1;
    for (; c->pos < to; c->pos++) {
        unsigned char ch = (unsigned char)c->s[c->pos];
        if (ch == '\n')
            c->line++, c->col = 1;
        else if ((ch & 0xC0) != 0x80)
            c->col++;
    }
}

static void visit_node(const kql_node *n, kql_cursor *cur, kql_term_fn fn, void *ud)
{
    if (n->type == KN_IS) {
        if (n->visit == KV_NONE) return;
        cursor_seek(cur, n->value->pos);
        if (n->visit == KV_EXACT)
            fn(ud, n->full, n->value->text, n->value->len, 0, cur->line, cur->col);
        else
            fn(ud, n->full, n->pattern, n->pattern_len, 1, cur->line, cur->col);
        return;
    }
    if (n->type == KN_RANGE) return;
    for (const kql_node *k = n->kids; k; k = k->next)
        visit_node(k, cur, fn, ud);
}

void kql_visit_terms(const kql_query *q, kql_term_fn fn, void *ud)
{
    if (!q || !fn) return;
    kql_cursor cur = {q->text, 0, 1, 1};
    visit_node(q->ast, &cur, fn, ud);
}

/*
 * toml.c — a small strict TOML 1.0 reader that builds a jansson tree.
 *
 * How it works. The document is first checked to be valid UTF-8 as a whole
 * (jansson needs valid UTF-8, and TOML requires it), then read once, top to
 * bottom, by a recursive-descent parser with a cursor. Each line is blank, a
 * comment, a [table] or [[array of tables]] header, or a `key = value` pair.
 * Values are built straight into jansson nodes; only arrays and inline tables
 * recurse, and that recursion is bounded by TOML_MAX_DEPTH.
 *
 * The hard part of TOML is not the syntax but which tables may still be
 * written to. jansson nodes carry no flags, so the parser keeps a side table
 * (a small open-addressing hash keyed by node address) with one entry per
 * *open* container:
 *   IMPLICIT  a table created on the way to a header ([a.b] creates a); a
 *             later [a] header may still define it once, or dotted keys of
 *             an enclosing section may take it over (it becomes DOTTED);
 *   EXPLICIT  a table defined by a header or an [[array]] element; a second
 *             header for it is an error, and dotted keys written in an
 *             enclosing section may not reach into it;
 *   DOTTED    a table created by a dotted key (a.b = 1 creates a); only
 *             dotted keys of the same section (header block, or the same
 *             inline table) may add to it, and no header may define it;
 *   AOT       an array created by [[...]]; headers walking through it enter
 *             its last element.
 * A container with no entry was built by a value — an inline table or a
 * static array — and is frozen: nothing may be added to it afterwards. Nodes
 * are never removed from the tree while parsing, so addresses stay valid.
 *
 * Errors name the line and column (in characters) of the offending token.
 * The first error wins; every function returns an nt_status and the caller
 * unwinds, dropping its references, so the one cleanup is in toml_parse.
 */
#include "toml.h"

#include <errno.h>
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
    NODE_IMPLICIT = 1u,
    NODE_EXPLICIT = 2u,
    NODE_DOTTED = 4u,
    NODE_AOT = 8u,
};

typedef struct toml_node {
    const json_t *json; /* NULL = empty slot */
    unsigned flags;
    unsigned section; /* for NODE_DOTTED: the section that created it */
} toml_node;

typedef struct toml_nodes {
    toml_node *slots;
    size_t cap; /* a power of two, or 0 */
    size_t used;
} toml_nodes;

/* A parsed (possibly dotted) key: part i is buf.p[off[i] .. off[i]+len[i])
 * and was written at source position at[i]. */
typedef struct toml_key {
    size_t n;
    size_t off[TOML_MAX_DEPTH];
    size_t len[TOML_MAX_DEPTH];
    const char *at[TOML_MAX_DEPTH];
    nt_buf buf;
} toml_key;

typedef struct toml_parser {
    const char *text; /* document start (after any BOM) */
    const char *p;    /* cursor */
    const char *end;
    nt_err *err;
    nt_status status; /* first failure, NT_OK until then */
    json_t *root;
    json_t *table;         /* where key/value lines of this section go */
    unsigned section;      /* id of the current section; 0 = before any header */
    unsigned next_section; /* ids for headers and inline tables */
    size_t table_depth;    /* depth of `table` below the root */
    toml_nodes nodes;
    nt_buf str; /* scratch for string values and numbers */
} toml_parser;

/* ---- errors ------------------------------------------------------------- */

/* Propagates a failed call's own status (the convention everywhere: a
 * function's result is what it returns). P->status is only toml_fail's
 * "first error wins" memory, and what a function that builds a json_t (and
 * returns NULL on failure) leaves behind for its caller. */
#define TOML_TRY(call)                                                                             \
    do {                                                                                           \
        nt_status toml_try_st_ = (call);                                                           \
        if (toml_try_st_ != NT_OK) return toml_try_st_;                                            \
    } while (0)

static nt_status toml_fail(toml_parser *P, const char *at, nt_status status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static nt_status toml_fail(toml_parser *P, const char *at, nt_status status, const char *fmt, ...)
{
    if (P->status != NT_OK) return P->status; /* the first error wins */
    char what[NT_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);

    size_t line = 1, column = 1;
    for (const char *q = P->text; q < at && q < P->end; q++) {
        if (*q == '\n') {
            line++;
            column = 1;
        } else if (((unsigned char)*q & 0xC0) != 0x80) {
            column++; /* count characters, not continuation bytes */
        }
    }
    P->status = status;
    return nt_fail(P->err, status, "line %zu, column %zu: %s", line, column, what);
}

static nt_status toml_nomem(toml_parser *P)
{
    return toml_fail(P, P->p, NT_ERR_NOMEM, "out of memory");
}

/* Name the character at `at` for a message: 'x' when printable ASCII, else
 * U+XXXX (the document is valid UTF-8 by the time anything is named). */
typedef struct toml_char_name {
    char text[16];
} toml_char_name;

static toml_char_name char_name(const toml_parser *P, const char *at)
{
    toml_char_name n;
    const unsigned char *s = (const unsigned char *)at;
    size_t avail = (size_t)(P->end - at);
    if (avail == 0) {
        snprintf(n.text, sizeof n.text, "the end");
    } else if (s[0] >= 0x20 && s[0] < 0x7F) {
        snprintf(n.text, sizeof n.text, "'%c'", s[0]);
    } else {
        uint32_t cp = s[0];
        size_t more = s[0] >= 0xF0 ? 3 : s[0] >= 0xE0 ? 2 : s[0] >= 0xC0 ? 1 : 0;
        if (more) cp &= 0x3Fu >> more;
        for (size_t i = 1; i <= more && i < avail; i++)
            cp = (cp << 6) | (s[i] & 0x3Fu);
        snprintf(n.text, sizeof n.text, "U+%04X", (unsigned)cp);
    }
    return n;
}

/* Write a key path (parts 0..upto of key, joined with '.') into out for
 * messages; long paths are cut with "...". */
static const char *key_text(const toml_key *key, size_t upto, char *out, size_t cap)
{
    size_t used = 0;
    for (size_t i = 0; i <= upto && i < key->n; i++) {
        const char *part = key->buf.p + key->off[i];
        size_t len = key->len[i];
        if (i > 0 && used + 1 < cap) out[used++] = '.';
        for (size_t k = 0; k < len; k++) {
            unsigned char c = (unsigned char)part[k];
            size_t clen = c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
            if (used + clen + 4 > cap) { /* keep room for "..." and NUL */
                memcpy(out + used, "...", 4);
                return out;
            }
            if (c < 0x20 || c == 0x7F) {
                out[used++] = '?'; /* keep control characters out of messages */
            } else {
                memcpy(out + used, part + k, clen);
                used += clen;
                k += clen - 1;
            }
        }
    }
    out[used] = '\0';
    return out;
}

/* ---- small helpers ------------------------------------------------------ */

static nt_status buf_reserve(toml_parser *P, nt_buf *b, size_t more)
{
    return nt_buf_reserve(b, more) == 0 ? NT_OK : toml_nomem(P);
}

static nt_status buf_put(toml_parser *P, nt_buf *b, const char *s, size_t n)
{
    /* An empty run (e.g. the body of """\n""") may come before the first byte:
     * b->p is still NULL then, and nothing needs to be written. */
    if (n == 0) return NT_OK;
    nt_buf_add(b, s, n);
    return b->oom ? toml_nomem(P) : NT_OK;
}

static int is_bare_key_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
}

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int at_eof(const toml_parser *P)
{
    return P->p >= P->end;
}

static int remaining_starts(const toml_parser *P, const char *s)
{
    size_t n = strlen(s);
    return (size_t)(P->end - P->p) >= n && memcmp(P->p, s, n) == 0;
}

/* 1 at a line break (LF or CRLF). */
static int at_newline(const toml_parser *P)
{
    return !at_eof(P) && (*P->p == '\n' || (*P->p == '\r' && P->p + 1 < P->end && P->p[1] == '\n'));
}

static void skip_newline(toml_parser *P)
{
    P->p += (*P->p == '\r') ? 2 : 1;
}

static void skip_ws(toml_parser *P)
{
    while (!at_eof(P) && (*P->p == ' ' || *P->p == '\t'))
        P->p++;
}

/* Fail on the control character (or lone carriage return) at the cursor;
 * `where` finishes the sentence. */
static nt_status fail_control(toml_parser *P, const char *where)
{
    unsigned char c = (unsigned char)*P->p;
    if (c == '\r')
        return toml_fail(P, P->p, NT_ERR_PARSE, "carriage return not followed by a line feed %s",
                         where);
    return toml_fail(P, P->p, NT_ERR_PARSE, "control character U+%04X %s", c, where);
}

static int is_control(unsigned char c)
{
    return (c < 0x20 && c != '\t') || c == 0x7F;
}

/* A comment runs to the end of the line; it may hold any character but the
 * control characters. The cursor is on '#'. */
static nt_status skip_comment(toml_parser *P)
{
    while (!at_eof(P) && !at_newline(P)) {
        if (is_control((unsigned char)*P->p)) return fail_control(P, "in a comment");
        P->p++;
    }
    return NT_OK;
}

/* After a header or key/value pair: spaces, an optional comment, then a line
 * break or the end of the document. */
static nt_status expect_line_end(toml_parser *P, const char *after)
{
    skip_ws(P);
    TOML_TRY(!at_eof(P) && *P->p == '#' && skip_comment(P));
    if (at_eof(P)) return NT_OK;
    if (at_newline(P)) {
        skip_newline(P);
        return NT_OK;
    }
    if (*P->p == '\r') return fail_control(P, "outside a string");
    return toml_fail(P, P->p, NT_ERR_PARSE, "expected the end of the line after %s, found %s",
                     after, char_name(P, P->p).text);
}

/* Inside arrays: spaces, line breaks and comments. */
static nt_status skip_ws_lines_comments(toml_parser *P)
{
    for (;;) {
        skip_ws(P);
        if (at_eof(P)) return NT_OK;
        if (at_newline(P)) {
            skip_newline(P);
        } else if (*P->p == '#') {
            TOML_TRY(skip_comment(P));
        } else {
            return NT_OK;
        }
    }
}

/* ---- the node side table ------------------------------------------------ */

static size_t node_hash(const json_t *json, size_t mask)
{
    uint64_t h = (uint64_t)(uintptr_t)json;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return (size_t)h & mask;
}

static toml_node *node_find(const toml_parser *P, const json_t *json)
{
    if (P->nodes.cap == 0) return NULL;
    size_t mask = P->nodes.cap - 1;
    for (size_t i = node_hash(json, mask);; i = (i + 1) & mask) {
        toml_node *slot = &P->nodes.slots[i];
        if (slot->json == json) return slot;
        if (slot->json == NULL) return NULL;
    }
}

static nt_status node_add(toml_parser *P, const json_t *json, unsigned flags, unsigned section)
{
    toml_nodes *t = &P->nodes;
    if ((t->used + 1) * 2 > t->cap) { /* keep the load under one half */
        size_t cap = t->cap ? t->cap * 2 : 64;
        toml_node *slots = calloc(cap, sizeof *slots);
        if (!slots) return toml_nomem(P);
        for (size_t i = 0; i < t->cap; i++) {
            if (!t->slots[i].json) continue;
            size_t j = node_hash(t->slots[i].json, cap - 1);
            while (slots[j].json)
                j = (j + 1) & (cap - 1);
            slots[j] = t->slots[i];
        }
        free(t->slots);
        t->slots = slots;
        t->cap = cap;
    }
    size_t mask = t->cap - 1;
    size_t i = node_hash(json, mask);
    while (t->slots[i].json)
        i = (i + 1) & mask;
    t->slots[i] = (toml_node){json, flags, section};
    t->used++;
    return NT_OK;
}

/* Create an empty table, register it with flags and insert it under key part
 * `part` of key into parent. Returns the new table (borrowed) or NULL. */
static json_t *table_add(toml_parser *P, json_t *parent, const toml_key *key, size_t part,
                         unsigned flags, unsigned section)
{
    json_t *t = json_object();
    if (!t || json_object_setn_new(parent, key->buf.p + key->off[part], key->len[part], t) != 0) {
        toml_nomem(P);
        return NULL;
    }
    if (node_add(P, t, flags, section) != NT_OK) return NULL;
    return t;
}

/* ---- strings ------------------------------------------------------------ */

static nt_status put_code_point(toml_parser *P, nt_buf *out, uint32_t cp)
{
    char u[4];
    size_t n;
    if (cp < 0x80) {
        u[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xC0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | (cp >> 12));
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        u[0] = (char)(0xF0 | (cp >> 18));
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    return buf_put(P, out, u, n);
}

/* One escape sequence; the cursor is on the backslash. */
static nt_status parse_escape(toml_parser *P, nt_buf *out)
{
    const char *at = P->p;
    if (P->end - P->p < 2) return toml_fail(P, at, NT_ERR_PARSE, "unterminated string");
    char c = P->p[1];
    char simple = 0;
    switch (c) {
    case 'b':
        simple = '\b';
        break;
    case 't':
        simple = '\t';
        break;
    case 'n':
        simple = '\n';
        break;
    case 'f':
        simple = '\f';
        break;
    case 'r':
        simple = '\r';
        break;
    case '"':
        simple = '"';
        break;
    case '\\':
        simple = '\\';
        break;
    case 'u':
    case 'U': {
        int digits = c == 'u' ? 4 : 8;
        uint32_t cp = 0;
        for (int i = 0; i < digits; i++) {
            int v = P->p + 2 + i < P->end ? nt_hex_digit(P->p[2 + i]) : -1;
            if (v < 0)
                return toml_fail(P, at, NT_ERR_PARSE,
                                 "invalid escape: \\%c needs exactly %d hex digits", c, digits);
            cp = (cp << 4) | (uint32_t)v;
        }
        if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return toml_fail(P, at, NT_ERR_PARSE,
                             "invalid escape: \\%c%0*X is not a Unicode scalar value", c, digits,
                             (unsigned)cp);
        P->p += 2 + digits;
        return put_code_point(P, out, cp);
    }
    default:
        if ((unsigned char)c < 0x20 || c == 0x7F)
            return toml_fail(P, at, NT_ERR_PARSE,
                             "invalid escape: backslash before a control character");
        if ((unsigned char)c >= 0x80)
            return toml_fail(P, at, NT_ERR_PARSE,
                             "invalid escape: backslash before a non-ASCII character");
        return toml_fail(
            P, at, NT_ERR_PARSE,
            "invalid escape '\\%c' (allowed: \\b \\t \\n \\f \\r \\\" \\\\ \\uXXXX \\UXXXXXXXX)",
            c);
    }
    P->p += 2;
    return buf_put(P, out, &simple, 1);
}

/* "basic string": the cursor is on the opening quote. */
static nt_status parse_basic_string(toml_parser *P, nt_buf *out)
{
    const char *open = P->p++;
    for (;;) {
        if (at_eof(P)) return toml_fail(P, open, NT_ERR_PARSE, "unterminated string");
        char c = *P->p;
        if (c == '"') {
            P->p++;
            return NT_OK;
        }
        if (c == '\\') {
            TOML_TRY(parse_escape(P, out));
            continue;
        }
        if (at_newline(P))
            return toml_fail(
                P, P->p, NT_ERR_PARSE,
                "newline in a basic string (unterminated string? use \"\"\" for multi-line text)");
        if (is_control((unsigned char)c))
            return fail_control(P, "in a string (write it as an escape)");
        const char *run = P->p;
        while (!at_eof(P) && *P->p != '"' && *P->p != '\\' && !is_control((unsigned char)*P->p))
            P->p++;
        TOML_TRY(buf_put(P, out, run, (size_t)(P->p - run)));
    }
}

/* 'literal string': the cursor is on the opening quote. */
static nt_status parse_literal_string(toml_parser *P, nt_buf *out)
{
    const char *open = P->p++;
    const char *run = P->p;
    for (;;) {
        if (at_eof(P)) return toml_fail(P, open, NT_ERR_PARSE, "unterminated string");
        if (*P->p == '\'') break;
        if (at_newline(P))
            return toml_fail(
                P, P->p, NT_ERR_PARSE,
                "newline in a literal string (unterminated string? use ''' for multi-line text)");
        if (is_control((unsigned char)*P->p)) return fail_control(P, "in a literal string");
        P->p++;
    }
    nt_status st = buf_put(P, out, run, (size_t)(P->p - run));
    P->p++;
    return st;
}

/* """multi-line basic""" or '''multi-line literal''': the cursor is on the
 * first of the three opening quotes. A newline right after the opening
 * delimiter is dropped; CRLF is stored as LF; up to two quotes may sit right
 * before the closing delimiter. */
static nt_status parse_multiline_string(toml_parser *P, nt_buf *out, char quote)
{
    const char *open = P->p;
    int basic = quote == '"';
    P->p += 3;
    if (at_newline(P)) skip_newline(P);
    for (;;) {
        if (at_eof(P)) return toml_fail(P, open, NT_ERR_PARSE, "unterminated multi-line string");
        char c = *P->p;
        if (c == quote) {
            size_t run = 0;
            while (P->p + run < P->end && P->p[run] == quote)
                run++;
            if (run >= 3) {
                if (run > 5)
                    return toml_fail(P, P->p + 5, NT_ERR_PARSE,
                                     "too many quotes at the end of a multi-line string");
                TOML_TRY(buf_put(P, out, P->p, run - 3));
                P->p += run;
                return NT_OK;
            }
            TOML_TRY(buf_put(P, out, P->p, run));
            P->p += run;
        } else if (basic && c == '\\') {
            /* A backslash that ends a line (spaces may follow it) swallows
             * the line break and all whitespace up to the next text. */
            const char *q = P->p + 1;
            while (q < P->end && (*q == ' ' || *q == '\t'))
                q++;
            if (q < P->end && (*q == '\n' || (*q == '\r' && q + 1 < P->end && q[1] == '\n'))) {
                P->p = q;
                while (!at_eof(P) && (*P->p == ' ' || *P->p == '\t' || at_newline(P)))
                    P->p += (*P->p == '\r') ? 2 : 1;
            } else {
                TOML_TRY(parse_escape(P, out));
            }
        } else if (at_newline(P)) {
            skip_newline(P);
            TOML_TRY(buf_put(P, out, "\n", 1));
        } else if (is_control((unsigned char)c)) {
            return fail_control(P, "in a multi-line string");
        } else {
            const char *run = P->p;
            while (!at_eof(P) && *P->p != quote && !(basic && *P->p == '\\') &&
                   !is_control((unsigned char)*P->p))
                P->p++;
            TOML_TRY(buf_put(P, out, run, (size_t)(P->p - run)));
        }
    }
}

/* Any string form; the cursor is on a quote. Single-line only when keys. */
static nt_status parse_string(toml_parser *P, nt_buf *out, int allow_multiline)
{
    char q = *P->p;
    if (remaining_starts(P, q == '"' ? "\"\"\"" : "'''")) {
        if (!allow_multiline)
            return toml_fail(P, P->p, NT_ERR_PARSE, "a multi-line string cannot be a key");
        return parse_multiline_string(P, out, q);
    }
    return q == '"' ? parse_basic_string(P, out) : parse_literal_string(P, out);
}

/* ---- keys --------------------------------------------------------------- */

/* bare, "quoted", 'literal' and dotted keys. Leaves the cursor after the
 * last part and any spaces. */
static nt_status parse_key(toml_parser *P, toml_key *key)
{
    key->n = 0;
    key->buf.len = 0;
    TOML_TRY(buf_reserve(P, &key->buf, 1)); /* "" is a key too: data must not be NULL */
    for (;;) {
        skip_ws(P);
        if (key->n == TOML_MAX_DEPTH)
            return toml_fail(P, P->p, NT_ERR_LIMIT, "key has more than %d parts", TOML_MAX_DEPTH);
        const char *at = P->p;
        size_t off = key->buf.len;
        if (!at_eof(P) && (*P->p == '"' || *P->p == '\'')) {
            TOML_TRY(parse_string(P, &key->buf, 0));
        } else {
            while (!at_eof(P) && is_bare_key_char(*P->p))
                P->p++;
            if (P->p == at) {
                if (at_eof(P) || at_newline(P))
                    return toml_fail(P, at, NT_ERR_PARSE,
                                     "expected a key, found the end of the line");
                if (*P->p == '=')
                    return toml_fail(P, at, NT_ERR_PARSE, "expected a key before '='");
                if ((unsigned char)*P->p >= 0x80 || is_control((unsigned char)*P->p))
                    return toml_fail(
                        P, at, NT_ERR_PARSE,
                        "expected a key (bare keys are A-Z a-z 0-9 _ -; quote others)");
                return toml_fail(P, at, NT_ERR_PARSE, "expected a key, found '%c'", *P->p);
            }
            TOML_TRY(buf_put(P, &key->buf, at, (size_t)(P->p - at)));
        }
        if (memchr(key->buf.p + off, '\0', key->buf.len - off))
            return toml_fail(P, at, NT_ERR_PARSE, "a key may not contain U+0000");
        key->off[key->n] = off;
        key->len[key->n] = key->buf.len - off;
        key->at[key->n] = at;
        key->n++;
        skip_ws(P);
        if (at_eof(P) || *P->p != '.') return NT_OK;
        P->p++;
    }
}

/* ---- values ------------------------------------------------------------- */

static json_t *parse_value(toml_parser *P, size_t depth);

static int looks_like_date_or_time(const toml_parser *P)
{
    const char *s = P->p;
    size_t n = (size_t)(P->end - s);
    if (n >= 5 && is_digit(s[0]) && is_digit(s[1]) && is_digit(s[2]) && is_digit(s[3]) &&
        s[4] == '-')
        return 1;
    return n >= 3 && is_digit(s[0]) && is_digit(s[1]) && s[2] == ':';
}

/* Digits of one base with single underscores between them, from s to the end
 * of the token; copies the digits (without '_') to P->str. */
static nt_status scan_digits(toml_parser *P, const char *s, const char *end, int base,
                             const char *what)
{
    int need_digit = 1; /* at the start and after '_' */
    for (const char *q = s; q < end; q++) {
        int v = *q == '_' ? -2 : nt_hex_digit(*q);
        if (v == -2) {
            if (need_digit)
                return toml_fail(P, q, NT_ERR_PARSE,
                                 "an underscore in a number must sit between two digits");
            need_digit = 1;
            continue;
        }
        if (v < 0 || v >= base)
            return toml_fail(P, q, NT_ERR_PARSE, "invalid character '%c' in %s", *q, what);
        TOML_TRY(buf_put(P, &P->str, q, 1));
        need_digit = 0;
    }
    if (need_digit) return toml_fail(P, end, NT_ERR_PARSE, "%s ends without a digit", what);
    return NT_OK;
}

static json_t *parse_number(toml_parser *P)
{
    const char *start = P->p;
    const char *end = start;
    while (end < P->end && (is_bare_key_char(*end) || *end == '+' || *end == '.'))
        end++;
    const char *s = start;
    int negative = 0;
    if (*s == '+' || *s == '-') {
        negative = *s == '-';
        s++;
    }
    size_t n = (size_t)(end - s);
    if ((n == 3 && memcmp(s, "inf", 3) == 0) || (n == 3 && memcmp(s, "nan", 3) == 0)) {
        toml_fail(P, start, NT_ERR_UNSUPPORTED,
                  "inf and nan are not supported (JSON cannot hold them)");
        return NULL;
    }
    P->str.len = 0;

    if (n >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'o' || s[1] == 'b')) {
        int base = s[1] == 'x' ? 16 : s[1] == 'o' ? 8 : 2;
        const char *what = base == 16  ? "a hexadecimal integer"
                           : base == 8 ? "an octal integer"
                                       : "a binary integer";
        if (s != start) {
            toml_fail(P, start, NT_ERR_PARSE, "%s may not have a sign", what);
            return NULL;
        }
        if (scan_digits(P, s + 2, end, base, what) != NT_OK) return NULL;
        uint64_t v = 0;
        for (size_t i = 0; i < P->str.len; i++) {
            uint64_t d = (uint64_t)nt_hex_digit(P->str.p[i]);
            if (v > (UINT64_C(0x7FFFFFFFFFFFFFFF) - d) / (uint64_t)base) {
                toml_fail(P, start, NT_ERR_PARSE, "integer does not fit in 64 bits");
                return NULL;
            }
            v = v * (uint64_t)base + d;
        }
        P->p = end;
        json_t *j = json_integer((json_int_t)v);
        if (!j) toml_nomem(P);
        return j;
    }

    /* decimal: int-part [. frac] [e exp] */
    const char *q = s;
    while (q < end && (is_digit(*q) || *q == '_'))
        q++;
    if (q == s) {
        toml_fail(P, start, NT_ERR_PARSE,
                  "invalid value (expected a string, number, boolean, array or inline table)");
        return NULL;
    }
    if (*s == '0' && q - s > 1) {
        toml_fail(P, start, NT_ERR_PARSE, "leading zeros are not allowed in a decimal number");
        return NULL;
    }
    if (negative && buf_put(P, &P->str, "-", 1) != NT_OK) return NULL;
    if (scan_digits(P, s, q, 10, "a decimal number") != NT_OK) return NULL;
    int is_float = 0;
    if (q < end && *q == '.') {
        const char *f = ++q;
        while (q < end && (is_digit(*q) || *q == '_'))
            q++;
        if (q == f) {
            toml_fail(P, f, NT_ERR_PARSE, "a decimal point must be followed by a digit");
            return NULL;
        }
        if (buf_put(P, &P->str, ".", 1) != NT_OK || scan_digits(P, f, q, 10, "a fraction") != NT_OK)
            return NULL;
        is_float = 1;
    }
    if (q < end && (*q == 'e' || *q == 'E')) {
        if (buf_put(P, &P->str, "e", 1) != NT_OK) return NULL;
        q++;
        if (q < end && (*q == '+' || *q == '-')) {
            if (buf_put(P, &P->str, q, 1) != NT_OK) return NULL;
            q++;
        }
        const char *e = q;
        while (q < end && (is_digit(*q) || *q == '_'))
            q++;
        if (scan_digits(P, e, q, 10, "an exponent") != NT_OK) return NULL;
        is_float = 1;
    }
    if (q != end) {
        toml_fail(P, q, NT_ERR_PARSE, "invalid character '%c' in a number", *q);
        return NULL;
    }
    if (buf_put(P, &P->str, "", 1) != NT_OK) return NULL;

    json_t *j;
    errno = 0;
    if (is_float) {
        /* P->str holds plain C syntax now; read it in the "C" locale so a
         * process-wide LC_NUMERIC with a decimal comma cannot change it */
        locale_t c_locale = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
        if (!c_locale) {
            toml_nomem(P);
            return NULL;
        }
        double d = strtod_l(P->str.p, NULL, c_locale);
        freelocale(c_locale);
        if (isinf(d)) {
            toml_fail(P, start, NT_ERR_PARSE, "float is out of range");
            return NULL;
        }
        j = json_real(d);
    } else {
        long long v = strtoll(P->str.p, NULL, 10);
        if (errno == ERANGE) {
            toml_fail(P, start, NT_ERR_PARSE, "integer does not fit in 64 bits");
            return NULL;
        }
        j = json_integer((json_int_t)v);
    }
    if (!j) toml_nomem(P);
    P->p = end;
    return j;
}

static json_t *parse_array(toml_parser *P, size_t depth)
{
    const char *open = P->p++;
    json_t *arr = json_array();
    if (!arr) {
        toml_nomem(P);
        return NULL;
    }
    for (;;) {
        if (skip_ws_lines_comments(P) != NT_OK) goto fail;
        if (at_eof(P)) {
            toml_fail(P, open, NT_ERR_PARSE, "unterminated array");
            goto fail;
        }
        if (*P->p == ']') break;
        json_t *v = parse_value(P, depth + 1);
        if (!v) goto fail;
        if (json_array_append_new(arr, v) != 0) {
            toml_nomem(P);
            goto fail;
        }
        if (skip_ws_lines_comments(P) != NT_OK) goto fail;
        if (at_eof(P)) {
            toml_fail(P, open, NT_ERR_PARSE, "unterminated array");
            goto fail;
        }
        if (*P->p == ',') {
            P->p++;
            continue;
        }
        if (*P->p == ']') break;
        toml_fail(P, P->p, NT_ERR_PARSE, "expected ',' or ']' after an array element, found %s",
                  char_name(P, P->p).text);
        goto fail;
    }
    P->p++;
    return arr;
fail:
    json_decref(arr);
    return NULL;
}

/* Add key = value below table, creating the tables a dotted key names.
 * `section` says which section is writing, for the DOTTED rule (see the top
 * of the file). Always consumes the reference to value. */
static nt_status put_keyval(toml_parser *P, json_t *table, unsigned section, const toml_key *key,
                            json_t *value)
{
    char path[128];
    json_t *t = table;
    for (size_t i = 0; i + 1 < key->n; i++) {
        json_t *child = json_object_getn(t, key->buf.p + key->off[i], key->len[i]);
        if (!child) {
            child = table_add(P, t, key, i, NODE_DOTTED, section);
            if (!child) goto fail;
            t = child;
            continue;
        }
        toml_node *node = json_is_object(child) ? node_find(P, child) : NULL;
        if (node && (node->flags & NODE_IMPLICIT)) {
            node->flags = NODE_DOTTED; /* now defined here, by dotted keys */
            node->section = section;
        }
        if (node && (node->flags & NODE_DOTTED) && node->section == section) {
            t = child;
            continue;
        }
        key_text(key, i, path, sizeof path);
        if (!json_is_object(child) && !json_is_array(child))
            toml_fail(P, key->at[i], NT_ERR_PARSE, "key '%s' already holds a value, not a table",
                      path);
        else if (json_is_array(child))
            toml_fail(P, key->at[i], NT_ERR_PARSE, "key '%s' is an array, not a table", path);
        else if (!node)
            toml_fail(P, key->at[i], NT_ERR_PARSE, "cannot add keys to inline table '%s'", path);
        else if (node->flags & NODE_DOTTED)
            toml_fail(
                P, key->at[i], NT_ERR_PARSE,
                "cannot add keys to table '%s': it was defined by dotted keys in another section",
                path);
        else
            toml_fail(P, key->at[i], NT_ERR_PARSE,
                      "cannot add dotted keys to table '%s': it is defined by a [header]", path);
        goto fail;
    }
    size_t last = key->n - 1;
    if (json_object_getn(t, key->buf.p + key->off[last], key->len[last])) {
        toml_fail(P, key->at[last], NT_ERR_PARSE, "duplicate key '%s'",
                  key_text(key, last, path, sizeof path));
        goto fail;
    }
    if (json_object_setn_new(t, key->buf.p + key->off[last], key->len[last], value) != 0)
        return toml_nomem(P);
    return NT_OK;
fail:
    json_decref(value);
    return P->status;
}

/* { key = value, ... } on one line; the cursor is on '{'. */
static json_t *parse_inline_table(toml_parser *P, size_t depth)
{
    const char *open = P->p++;
    unsigned section = P->next_section++;
    toml_key key = {0};
    json_t *obj = json_object();
    if (!obj) {
        toml_nomem(P);
        return NULL;
    }
    skip_ws(P);
    if (!at_eof(P) && *P->p == '}') {
        P->p++;
        return obj;
    }
    for (;;) {
        if (at_newline(P)) {
            toml_fail(P, P->p, NT_ERR_PARSE,
                      "newline in an inline table (inline tables are one line)");
            goto fail;
        }
        if (parse_key(P, &key) != NT_OK) goto fail;
        if (depth + key.n > TOML_MAX_DEPTH) {
            toml_fail(P, key.at[0], NT_ERR_LIMIT, "nesting deeper than %d levels", TOML_MAX_DEPTH);
            goto fail;
        }
        if (at_eof(P) || *P->p != '=') {
            toml_fail(P, P->p, NT_ERR_PARSE, "expected '=' after a key in an inline table");
            goto fail;
        }
        P->p++;
        skip_ws(P);
        json_t *v = parse_value(P, depth + key.n);
        if (!v || put_keyval(P, obj, section, &key, v) != NT_OK) goto fail;
        skip_ws(P);
        if (at_eof(P)) {
            toml_fail(P, open, NT_ERR_PARSE, "unterminated inline table");
            goto fail;
        }
        if (*P->p == '}') {
            P->p++;
            break;
        }
        if (*P->p != ',') {
            if (at_newline(P))
                toml_fail(P, P->p, NT_ERR_PARSE,
                          "newline in an inline table (inline tables are one line)");
            else
                toml_fail(P, P->p, NT_ERR_PARSE, "expected ',' or '}' in an inline table, found %s",
                          char_name(P, P->p).text);
            goto fail;
        }
        P->p++;
        skip_ws(P);
        if (!at_eof(P) && *P->p == '}') {
            toml_fail(P, P->p, NT_ERR_PARSE, "trailing comma in an inline table");
            goto fail;
        }
    }
    free(key.buf.p);
    return obj;
fail:
    free(key.buf.p);
    json_decref(obj);
    return NULL;
}

/* Any value; depth is the nesting depth it will sit at. */
static json_t *parse_value(toml_parser *P, size_t depth)
{
    if (at_eof(P) || at_newline(P) || *P->p == '#') {
        toml_fail(P, P->p, NT_ERR_PARSE, "missing value");
        return NULL;
    }
    char c = *P->p;
    if (c == '"' || c == '\'') {
        P->str.len = 0;
        if (parse_string(P, &P->str, 1) != NT_OK) return NULL;
        json_t *s = json_stringn(P->str.p ? P->str.p : "", P->str.len);
        if (!s) toml_nomem(P);
        return s;
    }
    if (c == '[' || c == '{') {
        if (depth > TOML_MAX_DEPTH) {
            toml_fail(P, P->p, NT_ERR_LIMIT, "nesting deeper than %d levels", TOML_MAX_DEPTH);
            return NULL;
        }
        return c == '[' ? parse_array(P, depth) : parse_inline_table(P, depth);
    }
    if (c == 't' || c == 'f') {
        const char *word = c == 't' ? "true" : "false";
        size_t n = strlen(word);
        if (remaining_starts(P, word) && (P->p + n == P->end || !is_bare_key_char(P->p[n]))) {
            P->p += n;
            return c == 't' ? json_true() : json_false();
        }
    }
    if (looks_like_date_or_time(P)) {
        toml_fail(P, P->p, NT_ERR_UNSUPPORTED,
                  "dates and times are not supported; write the value as a quoted string");
        return NULL;
    }
    if (is_digit(c) || c == '+' || c == '-' || remaining_starts(P, "inf") ||
        remaining_starts(P, "nan"))
        return parse_number(P);
    if (is_bare_key_char(c))
        toml_fail(P, P->p, NT_ERR_PARSE, "invalid value (strings must be quoted)");
    else
        toml_fail(P, P->p, NT_ERR_PARSE,
                  "invalid value (expected a string, number, boolean, array or inline table)");
    return NULL;
}

/* ---- lines -------------------------------------------------------------- */

/* [a.b.c] or [[a.b.c]]; the cursor is on the first '['. */
static nt_status parse_header(toml_parser *P, toml_key *key)
{
    char path[128];
    int aot = P->p + 1 < P->end && P->p[1] == '[';
    P->p += aot ? 2 : 1;
    TOML_TRY(parse_key(P, key));
    if (aot ? !remaining_starts(P, "]]") : (at_eof(P) || *P->p != ']'))
        return toml_fail(P, P->p, NT_ERR_PARSE, "expected '%s' to close the %s header",
                         aot ? "]]" : "]", aot ? "array of tables" : "table");
    P->p += aot ? 2 : 1;

    json_t *t = P->root;
    for (size_t i = 0; i + 1 < key->n; i++) {
        json_t *child = json_object_getn(t, key->buf.p + key->off[i], key->len[i]);
        if (!child) {
            t = table_add(P, t, key, i, NODE_IMPLICIT, 0);
            if (!t) return P->status;
            continue;
        }
        toml_node *node =
            (json_is_object(child) || json_is_array(child)) ? node_find(P, child) : NULL;
        if (node && (node->flags & NODE_AOT)) {
            t = json_array_get(child, json_array_size(child) - 1);
            continue;
        }
        if (node && json_is_object(child)) {
            t = child;
            continue;
        }
        key_text(key, i, path, sizeof path);
        if (json_is_object(child)) {
            return toml_fail(P, key->at[i], NT_ERR_PARSE, "cannot add a table to inline table '%s'",
                             path);
        } else if (json_is_array(child)) {
            return toml_fail(
                P, key->at[i], NT_ERR_PARSE,
                "cannot add a table to '%s': it is an array value, not an array of tables", path);
        } else {
            return toml_fail(P, key->at[i], NT_ERR_PARSE,
                             "key '%s' already holds a value, not a table", path);
        }
    }

    size_t last = key->n - 1;
    const char *name = key->buf.p + key->off[last];
    json_t *child = json_object_getn(t, name, key->len[last]);
    toml_node *node = child ? node_find(P, child) : NULL;
    if (child) /* every branch below that meets an existing key may fail */
        key_text(key, last, path, sizeof path);
    if (aot) {
        if (!child) {
            json_t *arr = json_array();
            if (!arr || json_object_setn_new(t, name, key->len[last], arr) != 0)
                return toml_nomem(P);
            TOML_TRY(node_add(P, arr, NODE_AOT, 0));
            child = arr;
        } else if (!node || !(node->flags & NODE_AOT)) {
            if (json_is_array(child))
                return toml_fail(
                    P, key->at[last], NT_ERR_PARSE,
                    "cannot append to '%s': it is an array value, not an array of tables", path);
            if (json_is_object(child))
                return toml_fail(P, key->at[last], NT_ERR_PARSE,
                                 "'%s' is already a table; it cannot become an array of tables",
                                 path);
            return toml_fail(P, key->at[last], NT_ERR_PARSE, "key '%s' already holds a value",
                             path);
        }
        json_t *elem = json_object();
        if (!elem || json_array_append_new(child, elem) != 0) return toml_nomem(P);
        TOML_TRY(node_add(P, elem, NODE_EXPLICIT, 0));
        t = elem;
    } else {
        if (!child) {
            t = table_add(P, t, key, last, NODE_EXPLICIT, 0);
            if (!t) return P->status;
        } else if (node && (node->flags & NODE_IMPLICIT)) {
            node->flags = NODE_EXPLICIT;
            t = child;
        } else if (node && (node->flags & NODE_EXPLICIT)) {
            return toml_fail(P, key->at[last], NT_ERR_PARSE, "table [%s] is defined twice", path);
        } else if (node && (node->flags & NODE_DOTTED)) {
            return toml_fail(P, key->at[last], NT_ERR_PARSE,
                             "table [%s] was already defined by dotted keys", path);
        } else if (node && (node->flags & NODE_AOT)) {
            return toml_fail(P, key->at[last], NT_ERR_PARSE,
                             "[%s] is an array of tables; write [[%s]] to add an element", path,
                             path);
        } else if (json_is_object(child)) {
            return toml_fail(P, key->at[last], NT_ERR_PARSE,
                             "table [%s] is already defined as an inline table", path);
        } else {
            return toml_fail(P, key->at[last], NT_ERR_PARSE, "key '%s' already holds a value",
                             path);
        }
    }
    P->table = t;
    P->table_depth = key->n;
    P->section = P->next_section++;
    return expect_line_end(P, aot ? "an array-of-tables header" : "a table header");
}

/* key = value; the cursor is on the key. */
static nt_status parse_keyval_line(toml_parser *P, toml_key *key)
{
    TOML_TRY(parse_key(P, key));
    if (P->table_depth + key->n > TOML_MAX_DEPTH)
        return toml_fail(P, key->at[0], NT_ERR_LIMIT, "nesting deeper than %d levels",
                         TOML_MAX_DEPTH);
    if (at_eof(P) || *P->p != '=') {
        if (at_eof(P) || at_newline(P) || *P->p == '#')
            return toml_fail(P, P->p, NT_ERR_PARSE, "missing '=' after the key");
        return toml_fail(P, P->p, NT_ERR_PARSE, "expected '=' after the key, found %s",
                         char_name(P, P->p).text);
    }
    P->p++;
    skip_ws(P);
    json_t *value = parse_value(P, P->table_depth + key->n);
    if (!value) return P->status;
    TOML_TRY(put_keyval(P, P->table, P->section, key, value));
    return expect_line_end(P, "a value");
}

nt_status toml_parse(const char *text, size_t len, json_t **out, nt_err *err)
{
    *out = NULL;
    if (len > TOML_MAX_BYTES)
        return nt_fail(err, NT_ERR_LIMIT,
                       "TOML document is %zu bytes; the limit is %zu bytes (1 MiB)", len,
                       TOML_MAX_BYTES);
    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) {
        text += 3;
        len -= 3;
    }
    toml_parser P = {.text = text, .p = text, .end = text + len, .err = err, .next_section = 1};
    toml_key key = {0};

    size_t bad = nt_utf8_invalid_at((const unsigned char *)text, len);
    if (bad < len) {
        toml_fail(&P, text + bad, NT_ERR_PARSE, "invalid UTF-8 (byte 0x%02X)",
                  (unsigned char)text[bad]);
        goto done;
    }
    P.root = P.table = json_object();
    if (!P.root) {
        toml_nomem(&P);
        goto done;
    }
    while (P.status == NT_OK) {
        skip_ws(&P);
        if (at_eof(&P)) break;
        if (at_newline(&P))
            skip_newline(&P);
        else if (*P.p == '#')
            expect_line_end(&P, "a comment");
        else if (*P.p == '[')
            parse_header(&P, &key);
        else if (is_control((unsigned char)*P.p))
            fail_control(&P, "outside a string");
        else
            parse_keyval_line(&P, &key);
    }
done:
    free(key.buf.p);
    free(P.str.p);
    free(P.nodes.slots);
    if (P.status != NT_OK) {
        json_decref(P.root);
        return P.status;
    }
    *out = P.root;
    return NT_OK;
}

/* nt_search must agree with memmem everywhere; nt_has_unicode_escape with a plain scan. */
#include "search.h"
#include "testutil.h"

#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const needles[] = {
    "\"iam.amazonaws.com\"", "\"ListAccounts\"", "ab", "a", "\"x\"", "Terraform", "\"\"", "aaaa"};

START_TEST(agrees_with_memmem_on_random_text)
{
    /* Small alphabets make near-misses and overlaps frequent. */
    const char alphabet[] = "\"ab.xiListAcounts";
    unsigned seed = 12345u + (unsigned)_i;
    char hay[300];
    for (int round = 0; round < 4000; round++) {
        size_t n = (size_t)(rand_r(&seed) % (int)sizeof hay);
        for (size_t k = 0; k < n; k++)
            hay[k] = alphabet[rand_r(&seed) % (int)(sizeof alphabet - 1)];
        const char *nd = needles[round % (int)(sizeof needles / sizeof needles[0])];
        size_t m = strlen(nd);
        /* Plant the needle sometimes, at the very end too. */
        if (n >= m && round % 3 == 0)
            memcpy(hay + n - m - (size_t)(rand_r(&seed) % 2 ? 0 : (n - m) / 2), nd, m);
        const char *want = memmem(hay, n, nd, m);
        const char *got = nt_search(hay, n, nd, m);
        ck_assert_msg(want == got, "round %d n %zu needle %s: %td vs %td", round, n, nd,
                      want ? want - hay : -1, got ? got - hay : -1);
    }
}
END_TEST

/* nt_search_clean finds what nt_search finds, and sets *clean exactly when
 * there is no match and no backslash anywhere: a backslash at every position
 * of every length up to 200 (the vector loop's first and last bytes, the
 * tail after it) must be seen. */
START_TEST(clean_is_set_only_without_a_match_and_without_a_backslash)
{
    char hay[201];
    for (size_t n = 0; n <= 200; n++) {
        for (size_t bs = 0; bs <= n; bs++) { /* bs == n: no backslash */
            for (size_t k = 0; k < n; k++)
                hay[k] = "abcdefgh.\"ListAccounts"[k % 8];
            if (bs < n) hay[bs] = '\\';
            for (size_t w = 0; w < sizeof needles / sizeof needles[0]; w++) {
                const char *nd = needles[w];
                size_t m = strlen(nd);
                int clean = 0;
                const char *got = nt_search_clean(hay, n, nd, m, &clean);
                ck_assert_ptr_eq(got, memmem(hay, n, nd, m));
                int want = !got && bs == n;
                ck_assert_msg(clean == want, "n %zu backslash at %zu needle %s: clean %d", n, bs,
                              nd, clean);
            }
        }
    }
}
END_TEST

/* Needles of every length from 1 to 140 (the second probe byte past the
 * padded tail's reach too) in haystacks of every length up to 420, planted
 * at the start, across 32- and 64-byte steps and at the very end; the
 * haystack is an exact-size heap copy, so a read past it is a sanitizer
 * error. With and without the clean flag. */
START_TEST(long_needles_and_every_tail_agree_with_memmem)
{
    const char alphabet[] = "\"ab";
    unsigned seed = 777u + (unsigned)_i;
    char needle[141], text[421];
    for (int round = 0; round < 3000; round++) {
        size_t m = 1 + (size_t)(rand_r(&seed) % 140), n = (size_t)(rand_r(&seed) % 421);
        for (size_t k = 0; k < m; k++)
            needle[k] = alphabet[rand_r(&seed) % 3];
        if (round % 2) needle[0] = needle[m - 1] = '"'; /* quoted: the probes move inward */
        for (size_t k = 0; k < n; k++)
            text[k] = alphabet[rand_r(&seed) % 3];
        if (n >= m && round % 4 != 3) {
            size_t at[] = {0, n - m, (n - m) / 2, (size_t)(rand_r(&seed) % (int)(n - m + 1))};
            memcpy(text + at[round % 4], needle, m);
        }
        char *hay = malloc(n ? n : 1);
        ck_assert_ptr_nonnull(hay);
        memcpy(hay, text, n);
        const char *want = memmem(hay, n, needle, m);
        int clean = 0;
        const char *got =
            round % 2 ? nt_search(hay, n, needle, m) : nt_search_clean(hay, n, needle, m, &clean);
        ck_assert_msg(want == got, "round %d n %zu m %zu: %td vs %td", round, n, m,
                      want ? want - hay : -1, got ? got - hay : -1);
        if (!(round % 2)) ck_assert_int_eq(clean, !want); /* the alphabet has no backslash */
        free(hay);
    }
}
END_TEST

START_TEST(edge_lengths)
{
    ck_assert_ptr_null(nt_search("abc", 3, "abcd", 4));
    ck_assert_ptr_nonnull(nt_search("abc", 3, "", 0));
    const char *h = "0123456789abcdef0123456789abcdef\"ListAccounts\"";
    ck_assert_ptr_eq(nt_search(h, strlen(h), "\"ListAccounts\"", 14), h + 32);
    ck_assert_ptr_null(nt_search(h, strlen(h) - 1, "\"ListAccounts\"", 14));
}
END_TEST

START_TEST(unicode_escapes_are_found)
{
    ck_assert(nt_has_unicode_escape("x\\u0041", 7));
    ck_assert(!nt_has_unicode_escape("x\\\\u0041", 8)); /* an escaped backslash, then u */
    ck_assert(nt_has_unicode_escape("x\\\\\\u0041", 9));
    ck_assert(!nt_has_unicode_escape("\\\"quoted\\\"", 10));
    ck_assert(!nt_has_unicode_escape("trailing\\", 9));
    ck_assert(!nt_has_unicode_escape("", 0));
}
END_TEST

/* The structural scan: (text, 1 when structurally complete JSON). */
static const struct {
    const char *text;
    int want;
} structure_cases[] = {
    {"{}", 1},
    {"[]", 1},
    {" {\"eventVersion\": \"1.11\"} ", 1},
    {"{\"a\":[1,2.5e-3,true,false,null,{\"b\":\"\\u00e9\\\"\\\\\\/\\b\\f\\n\\r\\t\"}]}", 1},
    {"{\"a\":1}\n{\"b\":2}\n", 1}, /* NDJSON */
    {"{\"a\":1}{\"b\":2}", 1},     /* concatenated */
    {"{\"s\":\"caf\xc3\xa9 \xe2\x82\xac\"}", 1},
    {"{\"eventVersion\": \"1.11\", \"truncated", 0}, /* issue 10 */
    {"{\"eventVersion\": \"1.11\", \"a\": 1", 0},
    {"{\"eventVersion\": \"1.11\"}}", 0},
    {"{\"a\": [1, 2}", 0},
    {"{\"a\": {1, 2]}", 0},
    {"[{\"a\":1]}", 0},
    {"{\"a\": \"\\x\"}", 0},       /* bad escape */
    {"{\"a\": \"\\u12g4\"}", 0},   /* bad \\u escape */
    {"{\"a\": \"\\u12\"}", 0},     /* short \\u escape */
    {"{\"a\": \"tab\there\"}", 0}, /* raw control byte in a string */
    {"{\"a\": \"ends in a backslash\\", 0},
    {"{\"a\": 1} x", 0},
    {"{\"a\": 1}, {}", 0},
    {"{\"a\": @}", 1}, /* not a parse: bytes between tokens are not checked */
    {"{\"a\": \x01}", 0},
    {"[\"0123456789abcdef\", \"0123456789abcdef0123456789\", {\"k\": [\"\\\"}\"]}]", 1},
    {"[\"0123456789abcdef\", \"0123456789abcdef0123456789\", {\"k\": [\"\\\"}\"}]]", 0},
    {"", 0},
    {"   ", 0},
    {"\"just a string\"", 0},
    {"42", 0},
};

START_TEST(the_structure_scan_accepts_complete_json_and_refuses_broken_units)
{
    const char *t = structure_cases[_i].text;
    ck_assert_msg(nt_json_structure_ok(t, strlen(t)) == structure_cases[_i].want, "%s -> %d", t,
                  !structure_cases[_i].want);
}
END_TEST

START_TEST(nesting_deeper_than_64_is_refused)
{
    char deep[2 * 65 + 1];
    for (int d = 64; d <= 65; d++) {
        memset(deep, '[', (size_t)d);
        memset(deep + d, ']', (size_t)d);
        ck_assert_int_eq(nt_json_structure_ok(deep, 2 * (size_t)d), d <= 64);
    }
}
END_TEST

/* Every real record passes, and every proper prefix of it (a truncated record)
 * fails, also once the record is compact JSON, at every cut. */
START_TEST(every_truncation_of_a_real_record_is_refused)
{
    static const char *const files[] = {"organizations_ListAccounts_IAMUser.json",
                                        "s3_GetObject_AssumedRole.json"};
    for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
        char path[512];
        snprintf(path, sizeof path, "%s/cloudtrail/%s", NT_TEST_DATA, files[f]);
        size_t n;
        char *text = tu_read_file(path, &n);
        json_error_t jerr;
        json_t *doc = json_loadb(text, n, 0, &jerr);
        ck_assert_ptr_nonnull(doc);
        char *compact = json_dumps(doc, JSON_COMPACT | JSON_ENSURE_ASCII);
        const char *forms[] = {text, compact};
        size_t lens[] = {n, strlen(compact)};
        for (int k = 0; k < 2; k++) {
            size_t end = lens[k];
            while (end > 0 && strchr(" \n\r\t", forms[k][end - 1]))
                end--;
            ck_assert(nt_json_structure_ok(forms[k], lens[k]));
            for (size_t cut = 0; cut < end; cut++)
                ck_assert_msg(!nt_json_structure_ok(forms[k], cut), "%s cut at %zu", files[f], cut);
        }
        free(compact);
        json_decref(doc);
        free(text);
    }
}
END_TEST

/* An independent byte-at-a-time reference of the documented rules. */
static int ref_structure_ok(const unsigned char *s, size_t n)
{
    char stack[64];
    size_t depth = 0;
    int values = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = s[i];
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r') continue;
        if (c == '{' || c == '[') {
            if (depth == 64) return 0;
            values += depth == 0;
            stack[depth++] = (char)c;
        } else if (depth == 0 || c < 0x20) {
            return 0;
        } else if (c == '}' || c == ']') {
            if (stack[--depth] != (c == '}' ? '{' : '[')) return 0;
        } else if (c == '"') {
            for (i++;; i++) {
                if (i >= n || s[i] < 0x20) return 0;
                if (s[i] == '"') break;
                if (s[i] != '\\') continue;
                if (++i >= n) return 0;
                if (s[i] == 'u') {
                    for (int k = 0; k < 4; k++)
                        if (++i >= n || !strchr("0123456789abcdefABCDEF", s[i]) || !s[i]) return 0;
                } else if (!s[i] || !strchr("\"\\/bfnrt", s[i])) {
                    return 0;
                }
            }
        }
    }
    return depth == 0 && values > 0;
}

START_TEST(the_block_scan_agrees_with_a_byte_reference_on_mutated_records)
{
    char path[512];
    snprintf(path, sizeof path, "%s/cloudtrail/s3_GetObject_AssumedRole.json", NT_TEST_DATA);
    size_t n;
    char *text = tu_read_file(path, &n);
    json_error_t jerr;
    json_t *doc = json_loadb(text, n, 0, &jerr);
    char *compact = json_dumps(doc, JSON_COMPACT);
    size_t m = strlen(compact);
    char *buf = malloc(2 * m + 96);
    static const char edits[] = {'"', '\\', '{', '}', '[', ']', 'u', '\n', 1, 'a', '0', ' '};
    unsigned seed = 7;
    int agree_ok = 0, agree_bad = 0;
    for (int it = 0; it < 20000; it++) {
        seed = seed * 1103515245u + 12345u;
        size_t pad = (seed >> 16) % 16, len = m;
        memset(buf, ' ', pad);
        memcpy(buf + pad, compact, m);
        if (it % 2) { /* NDJSON: a second copy after 0..70 bytes of whitespace */
            size_t gap = (seed >> 5) % 71;
            memset(buf + pad + m, '\n', gap);
            memcpy(buf + pad + m + gap, compact, m);
            len = 2 * m + gap;
        }
        int nedits = (int)((seed >> 8) % 4);
        for (int e = 0; e < nedits; e++) {
            seed = seed * 1103515245u + 12345u;
            size_t at = pad + (seed >> 12) % len;
            buf[at] = edits[(seed >> 4) % sizeof edits];
        }
        seed = seed * 1103515245u + 12345u;
        if ((seed >> 16) % 4 == 0) len = (seed >> 3) % len;
        int want = ref_structure_ok((const unsigned char *)buf, pad + len);
        ck_assert_msg(nt_json_structure_ok(buf, pad + len) == want, "iteration %d", it);
        ck_assert_msg(nt_json_structure_ok_portable(buf, pad + len) == want, "iteration %d", it);
        want ? agree_ok++ : agree_bad++;
    }
    ck_assert_int_gt(agree_ok, 1000); /* both outcomes are exercised */
    ck_assert_int_gt(agree_bad, 1000);
    free(buf);
    free(compact);
    json_decref(doc);
    free(text);
}
END_TEST

/* --- The AVX2 scan and the portable one against the byte reference ---
 *
 * nt_json_structure_ok takes a different path per CPU (AVX2+PCLMUL, SSE2,
 * byte by byte) and per block (deep inside a document, at the top level,
 * with a backslash or a control byte, the padded last block): every input
 * below goes to nt_json_structure_ok and nt_json_structure_ok_portable, each
 * on an exact-size copy (so AddressSanitizer sees a read past the end), and
 * both must give ref_structure_ok's verdict. */

typedef struct agree_counts {
    size_t ok, bad;
} agree_counts;

static void agree(const unsigned char *text, size_t n, agree_counts *counts, const char *what,
                  size_t detail)
{
    unsigned char *copy = malloc(n ? n : 1);
    ck_assert_ptr_nonnull(copy);
    if (n) memcpy(copy, text, n);
    int want = ref_structure_ok(copy, n);
    int got = nt_json_structure_ok((const char *)copy, n);
    int portable = nt_json_structure_ok_portable((const char *)copy, n);
    free(copy);
    ck_assert_msg(got == want && portable == want,
                  "%s [%zu] (%zu bytes): reference %d, nt_json_structure_ok %d, portable %d", what,
                  detail, n, want, got, portable);
    if (counts) want ? counts->ok++ : counts->bad++;
}

/* The bytes mutations write: every class the scan tells apart. */
static const unsigned char mutation_bytes[] = {'"',  '\\', '{',  '}', '[', ']',  'u', ' ',
                                               '\n', 0x01, 0x1f, 'a', '0', 0x80, ','};

/* A text, its truncations and its single-byte mutations. all = 1: every cut,
 * and every mutation byte at every position. Else, bounded: about 100 cuts
 * and 100 mutated positions spread over the text plus every cut in its last
 * 130 bytes (where the padded block and the portable scan's 16-byte and byte
 * tails fall), each of the three fewer for a big file, so that none scans
 * more than about 256 KB. */
static void agree_variants(const char *name, const unsigned char *text, size_t n, int all,
                           agree_counts *counts)
{
    agree(text, n, counts, name, n);
    size_t spread = 100, tail = 130, budget = (size_t)256 << 10;
    if (!all && n * spread > budget) spread = budget / n + 1;
    if (!all && n * tail > budget) tail = budget / n + 1;
    size_t step = all || n < spread ? 1 : n / spread;
    for (size_t cut = 0; cut < n; cut += step)
        agree(text, cut, counts, name, cut);
    for (size_t cut = n > tail ? n - tail : 0; cut < n; cut++)
        agree(text, cut, counts, name, cut);
    unsigned char *buf = malloc(n ? n : 1);
    ck_assert_ptr_nonnull(buf);
    if (n) memcpy(buf, text, n);
    size_t k = 0;
    for (size_t pos = 0; pos < n; pos += step) {
        unsigned char keep = buf[pos];
        for (size_t b = 0; b < sizeof mutation_bytes; b++) {
            /* bounded: one mutation byte per position, in turn, unless all */
            if (!all && b != k % sizeof mutation_bytes) continue;
            buf[pos] = mutation_bytes[b];
            agree(buf, n, counts, name, pos);
        }
        buf[pos] = keep;
        k++;
    }
    free(buf);
}

/* The files are shared among FILE_PARTS runs of the test (file k goes to
 * run k % FILE_PARTS), which keeps each run well inside the test timeout
 * under AddressSanitizer on a busy machine. */
#define FILE_PARTS 4

typedef struct file_ctx {
    agree_counts counts;
    size_t seen, files;
    int part;
} file_ctx;

/* A file as written, and for a JSON document also its one-line forms:
 * jansson's default separators (", " and ": ", as in the bench's Mix B,
 * which keeps every block off the general path) and compact. */
static void agree_file(const char *path, void *ud)
{
    file_ctx *ctx = ud;
    if (ctx->seen++ % FILE_PARTS != (size_t)ctx->part) return;
    size_t n;
    char *text = tu_read_file(path, &n);
    agree_variants(path, (const unsigned char *)text, n, 0, &ctx->counts);
    json_error_t jerr;
    json_t *doc = json_loadb(text, n, JSON_DECODE_ANY, &jerr);
    if (doc) {
        static const size_t flags[] = {JSON_ENCODE_ANY, JSON_ENCODE_ANY | JSON_COMPACT};
        for (size_t f = 0; f < sizeof flags / sizeof flags[0]; f++) {
            char *line = json_dumps(doc, flags[f]);
            ck_assert_ptr_nonnull(line);
            agree_variants(path, (const unsigned char *)line, strlen(line), 0, &ctx->counts);
            free(line);
        }
        json_decref(doc);
    }
    free(text);
    ctx->files++;
}

START_TEST(every_json_file_under_tests_data_and_its_cuts_and_mutations_agree)
{
    file_ctx ctx = {.part = _i};
    tu_walk(NT_TEST_DATA, ".json", 8, agree_file, &ctx);
    ck_assert_uint_ge(ctx.seen, 100);
    ck_assert_uint_ge(ctx.files, ctx.seen / FILE_PARTS);
    ck_assert_uint_gt(ctx.counts.ok, 2000); /* both outcomes are exercised */
    ck_assert_uint_gt(ctx.counts.bad, 10000);
}
END_TEST

/* Every cut, and every mutation byte at every position, of a few records in
 * their one-line form (the bench's shape) and as written. */
START_TEST(every_cut_and_every_single_byte_mutation_of_a_few_records_agree)
{
    static const char *const files[] = {"cloudtrail/organizations_ListAccounts_IAMUser.json",
                                        "cloudtrail/s3_GetObject_AssumedRole.json"};
    agree_counts counts = {0, 0};
    for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
        char path[512];
        tu_path(path, sizeof path, "%s/%s", NT_TEST_DATA, files[f]);
        size_t n;
        char *text = tu_read_file(path, &n);
        json_t *doc = tu_load_json(path, 0);
        char *line = json_dumps(doc, 0);
        ck_assert_ptr_nonnull(line);
        agree_variants(files[f], (const unsigned char *)line, strlen(line), 1, &counts);
        agree_variants(files[f], (const unsigned char *)text, n, 1, &counts);
        free(line);
        json_decref(doc);
        free(text);
    }
    ck_assert_uint_gt(counts.ok, 20000);
    ck_assert_uint_gt(counts.bad, 20000);
}
END_TEST

/* Random bytes of a JSON-ish alphabet and control bytes, every length 0..300
 * (so the end falls at every place of a 16-, 32- and 64-byte block), half of
 * them opening with a bracket so that more get past the first byte. */
START_TEST(random_json_ish_bytes_of_every_length_agree)
{
    static const char alphabet[] = "{}[]\":,\\ u0123456789abcdefxyz\n\t\r\x01\x1f";
    unsigned seed = 4242;
    unsigned char buf[301];
    agree_counts counts = {0, 0};
    for (size_t n = 0; n <= 300; n++) {
        for (int round = 0; round < 200; round++) {
            for (size_t k = 0; k < n; k++)
                buf[k] = (unsigned char)alphabet[rand_r(&seed) % (int)(sizeof alphabet - 1)];
            if (n && round % 2) buf[0] = round % 4 == 1 ? '{' : '[';
            agree(buf, n, &counts, "random length", n);
        }
    }
    ck_assert_uint_gt(counts.ok, 0); /* a few complete ones, by chance (a fixed seed) */
    ck_assert_uint_gt(counts.bad, 50000);
}
END_TEST

/* Random JSON-like documents (nested objects and arrays, strings with and
 * without escapes, brackets inside strings, whitespace of every kind), most
 * of them complete, then 0..2 bytes mutated and a quarter cut short, behind
 * 0..63 bytes of leading whitespace so blocks fall everywhere. */
typedef struct gen {
    unsigned seed;
    unsigned char *out;
    size_t n, cap;
} gen;

static unsigned gen_rand(gen *g, unsigned below)
{
    return (unsigned)rand_r(&g->seed) % below;
}

static void gen_put(gen *g, const char *bytes, size_t len)
{
    for (size_t k = 0; k < len && g->n < g->cap; k++)
        g->out[g->n++] = (unsigned char)bytes[k];
}

static void gen_ws(gen *g)
{
    static const char *const ws[] = {"", "", "", " ", "  ", "\n", "\t", "\r\n    "};
    const char *w = ws[gen_rand(g, 8)];
    gen_put(g, w, strlen(w));
}

static void gen_string(gen *g)
{
    static const char *const parts[] = {"abc",
                                        "ListAccounts",
                                        "{",
                                        "}",
                                        "[",
                                        "]",
                                        "{\"x\": [1]}",
                                        " ",
                                        "\\\"",
                                        "\\\\",
                                        "\\/",
                                        "\\n",
                                        "\\u00e9",
                                        "\\uD83D\\uDE00",
                                        "caf\xc3\xa9",
                                        "0123456789abcdef0123456789abcdef"};
    gen_put(g, "\"", 1);
    for (unsigned k = gen_rand(g, 5); k > 0; k--) {
        const char *p = parts[gen_rand(g, sizeof parts / sizeof parts[0])];
        gen_put(g, p, strlen(p));
    }
    gen_put(g, "\"", 1);
}

static void gen_value(gen *g, unsigned depth)
{
    unsigned kind = depth >= 6 ? gen_rand(g, 3) : gen_rand(g, 6);
    if (kind == 0) {
        gen_string(g);
    } else if (kind == 1) {
        static const char *const atoms[] = {"1", "-2.5e3", "true", "false", "null", "123456"};
        const char *a = atoms[gen_rand(g, 6)];
        gen_put(g, a, strlen(a));
    } else if (kind == 2) {
        gen_put(g, "[]", 2);
    } else if (kind == 3 || kind == 4) {
        gen_put(g, "{", 1);
        for (unsigned k = gen_rand(g, 4); k > 0; k--) {
            gen_ws(g);
            gen_string(g);
            gen_put(g, ": ", 1 + gen_rand(g, 2));
            gen_value(g, depth + 1);
            if (k > 1) gen_put(g, ", ", 1 + gen_rand(g, 2));
        }
        gen_ws(g);
        gen_put(g, "}", 1);
    } else {
        gen_put(g, "[", 1);
        for (unsigned k = gen_rand(g, 4); k > 0; k--) {
            gen_ws(g);
            gen_value(g, depth + 1);
            if (k > 1) gen_put(g, ",", 1);
        }
        gen_put(g, "]", 1);
    }
}

START_TEST(random_json_documents_mutated_and_cut_agree)
{
    unsigned char buf[1024];
    gen g = {.seed = 99u + (unsigned)_i, .out = buf, .cap = sizeof buf};
    agree_counts counts = {0, 0};
    for (int it = 0; it < 20000; it++) {
        g.n = 0;
        size_t pad = gen_rand(&g, 64);
        memset(buf, gen_rand(&g, 2) ? ' ' : '\n', pad);
        g.n = pad;
        unsigned values = 1 + gen_rand(&g, 3); /* NDJSON or concatenated */
        for (unsigned v = 0; v < values; v++) {
            if (gen_rand(&g, 2)) { /* an object or an array at the top */
                gen_put(&g, "{\"k\": ", 6);
                gen_value(&g, 0);
                gen_put(&g, "}", 1);
            } else {
                gen_put(&g, "[", 1);
                gen_value(&g, 0);
                gen_put(&g, "]", 1);
            }
            gen_ws(&g);
        }
        if (g.n == g.cap) continue; /* cut by the buffer: not a document */
        for (unsigned e = gen_rand(&g, 4); e > 0 && e < 3; e--)
            buf[gen_rand(&g, (unsigned)g.n)] = mutation_bytes[gen_rand(&g, sizeof mutation_bytes)];
        size_t len = g.n;
        if (gen_rand(&g, 4) == 0) len = gen_rand(&g, (unsigned)g.n);
        agree(buf, len, &counts, "generated document", (size_t)it);
    }
    ck_assert_uint_gt(counts.ok, 5000);
    ck_assert_uint_gt(counts.bad, 5000);
}
END_TEST

/* Nesting to 62..66 levels (the limit is 64) of arrays, of objects and of
 * both, with and without strings holding brackets in between, a wrong closer
 * at the deepest level, one closer too many or too few, and a second
 * document after the first, each behind 0..64 bytes of whitespace so the
 * 64th opener falls at every place of a block. */
START_TEST(nesting_at_the_64_limit_agrees)
{
    unsigned char buf[2048];
    agree_counts counts = {0, 0};
    for (int depth = 62; depth <= 66; depth++) {
        for (int shape = 0; shape < 3; shape++) {
            for (int twist = 0; twist < 6; twist++) {
                for (size_t pad = 0; pad <= 64; pad++) {
                    size_t n = 0;
                    memset(buf, ' ', pad);
                    n = pad;
                    char closers[70];
                    for (int d = 0; d < depth; d++) {
                        int object = shape == 1 || (shape == 2 && d % 2);
                        if (object) {
                            memcpy(buf + n, "{\"k[\": ", 7);
                            n += 7;
                        } else {
                            buf[n++] = '[';
                            if (shape == 2) {
                                memcpy(buf + n, "\"]}\", ", 6);
                                n += 6;
                            }
                        }
                        closers[d] = object ? '}' : ']';
                    }
                    buf[n++] = '1';
                    int from = depth - 1, to = 0;
                    if (twist == 1) closers[depth - 1] = closers[depth - 1] == '}' ? ']' : '}';
                    if (twist == 2) from--; /* one closer too few */
                    for (int d = from; d >= to; d--)
                        buf[n++] = (unsigned char)closers[d];
                    if (twist == 3) buf[n++] = ']'; /* one too many */
                    if (twist == 4) {               /* a second document */
                        memcpy(buf + n, "\n[[{}]]", 7);
                        n += 7;
                    }
                    if (twist == 5) { /* the same again, glued on */
                        memcpy(buf + n, buf + pad, n - pad);
                        n += n - pad;
                    }
                    ck_assert_uint_le(n, sizeof buf);
                    agree(buf, n, &counts, "nesting",
                          (size_t)depth * 1000 + (size_t)shape * 100 + (size_t)twist);
                }
            }
        }
    }
    ck_assert_uint_gt(counts.ok, 1000);
    ck_assert_uint_gt(counts.bad, 2000);
}
END_TEST

static Suite *search_suite(void)
{
    Suite *s = suite_create("search");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60); /* the backslash-at-every-position sweep, on a shared machine */
    tcase_add_loop_test(tc, agrees_with_memmem_on_random_text, 0, 8);
    tcase_add_test(tc, edge_lengths);
    tcase_add_loop_test(tc, long_needles_and_every_tail_agree_with_memmem, 0, 4);
    tcase_add_test(tc, clean_is_set_only_without_a_match_and_without_a_backslash);
    tcase_add_test(tc, unicode_escapes_are_found);
    tcase_add_loop_test(tc, the_structure_scan_accepts_complete_json_and_refuses_broken_units, 0,
                        (int)(sizeof structure_cases / sizeof structure_cases[0]));
    tcase_add_test(tc, nesting_deeper_than_64_is_refused);
    tcase_add_test(tc, every_truncation_of_a_real_record_is_refused);
    tcase_add_test(tc, the_block_scan_agrees_with_a_byte_reference_on_mutated_records);
    tcase_add_loop_test(tc, every_json_file_under_tests_data_and_its_cuts_and_mutations_agree, 0,
                        FILE_PARTS);
    tcase_add_test(tc, every_cut_and_every_single_byte_mutation_of_a_few_records_agree);
    tcase_add_test(tc, random_json_ish_bytes_of_every_length_agree);
    tcase_add_loop_test(tc, random_json_documents_mutated_and_cut_agree, 0, 4);
    tcase_add_test(tc, nesting_at_the_64_limit_agrees);
    suite_add_tcase(s, tc);
    return s;
}

NT_TEST_MAIN(search_suite)

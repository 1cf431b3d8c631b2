/*
 * jfast.c — a single-pass JSON parser that builds jansson trees (see jfast.h).
 *
 * Why: the records that pass a rule's prefilter are parsed into json_t, and
 * json_loadb reads them one byte at a time through a stream callback, copies
 * every token into a growing buffer, mallocs every key before the object
 * copies it again, and so costs ~190 instructions per byte. Here the bytes are
 * read in place: recursive descent over a (pointer, end) pair, a string is
 * found with a vector scan for its first byte that is '"', '\\', below 0x20
 * or above 0x7f (one signed compare catches the last two) and, when that byte
 * is the closing quote, handed to json_stringn_nocheck / the object straight
 * from the input. Only strings with escapes or non-ASCII bytes are decoded,
 * into a scratch buffer owned by the parse.
 *
 * What is jansson's behaviour and is reproduced here (load.c of 2.14):
 * - strings: raw bytes below 0x20 are errors; non-ASCII must be valid UTF-8
 *   (no overlong forms, no surrogates, nothing above U+10FFFF); escapes are
 *   \" \\ \/ \b \f \n \r \t \uXXXX, a high surrogate must be followed by a
 *   \u low surrogate, a lone low surrogate is an error; \u0000 only with
 *   JSON_ALLOW_NUL, and never in an object key;
 * - numbers: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?; without '.',
 *   'e' or 'E' an integer (strtoll; out of json_int_t's range is an error),
 *   else a real (strtod on the token with the locale's decimal point;
 *   overflow to infinity is an error, underflow is not);
 * - literals: true, false, null, and a token that runs on into more letters
 *   is an error;
 * - objects: a later duplicate key replaces the earlier value in place
 *   (json_object_setn_new_nocheck does exactly that).
 * Every error, and everything not handled (see jfast.h), is left to jansson:
 * the partial tree is freed and json_loadb runs on the same bytes.
 */
#include "jfast.h"

#include "jarena.h"

#include <errno.h>
#include <langinfo.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define JF_AVX2 1
#endif

#define JF_FLAGS (JSON_DECODE_ANY | JSON_DISABLE_EOF_CHECK | JSON_ALLOW_NUL)

/* A number token longer than this is left to jansson (the copy for strtod
 * lives on the stack). */
#define JF_MAX_NUMBER 64

typedef struct jf_parse {
    const char *p;   /* next byte */
    const char *end; /* one past the last byte */
    size_t flags;
    int avx2;
    int depth;  /* containers open around p */
    char *buf;  /* decoded strings (escapes, UTF-8), owned; free()d at the end */
    size_t cap; /* bytes allocated at buf */
    size_t len; /* bytes of the string being decoded */
} jf_parse;

/* ========================================================================= */
/* Plain-run scan                                                            */

/* 1 for a byte that ends a plain run: '"', '\\', below 0x20 or above 0x7f. */
static int jf_special(unsigned char c)
{
    return c == '"' || c == '\\' || c < 0x20 || c >= 0x80;
}

static const char *jf_plain_tail(const char *p, const char *end)
{
    while (p < end && !jf_special((unsigned char)*p))
        p++;
    return p;
}

#if defined(__SSE2__)
static const char *jf_plain_sse2(const char *p, const char *end)
{
    const __m128i quote = _mm_set1_epi8('"');
    const __m128i bsl = _mm_set1_epi8('\\');
    /* Signed: bytes >= 0x80 are negative, so "< 0x20" catches them too. */
    const __m128i space = _mm_set1_epi8(0x20);
    while (end - p >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
        __m128i m = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, bsl)),
                                 _mm_cmplt_epi8(v, space));
        unsigned mask = (unsigned)_mm_movemask_epi8(m);
        if (mask) return p + __builtin_ctz(mask);
        p += 16;
    }
    return jf_plain_tail(p, end);
}
#endif

#ifdef JF_AVX2
__attribute__((target("avx2"))) static const char *jf_plain_avx2(const char *p, const char *end)
{
    const __m256i quote = _mm256_set1_epi8('"');
    const __m256i bsl = _mm256_set1_epi8('\\');
    const __m256i space = _mm256_set1_epi8(0x20);
    while (end - p >= 32) {
        __m256i v = _mm256_loadu_si256((const __m256i *)(const void *)p);
        __m256i m =
            _mm256_or_si256(_mm256_or_si256(_mm256_cmpeq_epi8(v, quote), _mm256_cmpeq_epi8(v, bsl)),
                            _mm256_cmpgt_epi8(space, v));
        unsigned mask = (unsigned)_mm256_movemask_epi8(m);
        if (mask) return p + __builtin_ctz(mask);
        p += 32;
    }
    /* A short last run is usual (CloudTrail strings are short): one SSE2
     * step is cheaper than up to 31 bytes one by one. */
    return jf_plain_sse2(p, end);
}

static int jf_have_avx2(void)
{
    /* As in search.c: idempotent and cheap once done, no cache of our own. */
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") ? 1 : 0;
}
#endif

/* First byte at or after p that ends a plain string run, or end. */
static const char *jf_plain(const jf_parse *s, const char *p)
{
#ifdef JF_AVX2
    if (s->avx2) return jf_plain_avx2(p, s->end);
#else
    (void)s;
#endif
#if defined(__SSE2__)
    return jf_plain_sse2(p, s->end);
#else
    return jf_plain_tail(p, s->end);
#endif
}

/* ========================================================================= */
/* Strings                                                                   */

/* Room for n more bytes of the string being decoded; 0 on success. */
static int jf_reserve(jf_parse *s, size_t n)
{
    if (s->len + n <= s->cap) return 0;
    size_t cap = s->cap ? s->cap : 256;
    while (cap < s->len + n)
        cap *= 2;
    char *b = realloc(s->buf, cap);
    if (!b) return -1;
    s->buf = b;
    s->cap = cap;
    return 0;
}

static int jf_append(jf_parse *s, const char *src, size_t n)
{
    if (n == 0) return 0; /* s->buf may still be NULL: no memcpy to NULL + 0 */
    if (jf_reserve(s, n)) return -1;
    memcpy(s->buf + s->len, src, n);
    s->len += n;
    return 0;
}

static long jf_hex4(const char *p)
{
    long v = 0;
    for (int k = 0; k < 4; k++) {
        unsigned char c = (unsigned char)p[k];
        int h;
        if (c >= '0' && c <= '9')
            h = c - '0';
        else if (c >= 'a' && c <= 'f')
            h = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            h = c - 'A' + 10;
        else
            return -1;
        v = v << 4 | h;
    }
    return v;
}

/* Length of the valid UTF-8 sequence at p (2..4), 0 if it is not one. */
static size_t jf_utf8_len(const unsigned char *p, const unsigned char *end)
{
    unsigned char u = p[0];
    size_t n;
    uint32_t v;
    if (u >= 0xC2 && u <= 0xDF) {
        n = 2;
        v = u & 0x1Fu;
    } else if (u >= 0xE0 && u <= 0xEF) {
        n = 3;
        v = u & 0x0Fu;
    } else if (u >= 0xF0 && u <= 0xF4) {
        n = 4;
        v = u & 0x07u;
    } else {
        return 0;
    }
    if ((size_t)(end - p) < n) return 0;
    for (size_t i = 1; i < n; i++) {
        if (p[i] < 0x80 || p[i] > 0xBF) return 0;
        v = v << 6 | (p[i] & 0x3Fu);
    }
    if (v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
    if ((n == 3 && v < 0x800) || (n == 4 && v < 0x10000)) return 0;
    return n;
}

/* Append code point v (valid, not a surrogate) as UTF-8. */
static int jf_put_utf8(jf_parse *s, uint32_t v)
{
    char b[4];
    size_t n;
    if (v < 0x80) {
        b[0] = (char)v;
        n = 1;
    } else if (v < 0x800) {
        b[0] = (char)(0xC0 | (v >> 6));
        b[1] = (char)(0x80 | (v & 0x3F));
        n = 2;
    } else if (v < 0x10000) {
        b[0] = (char)(0xE0 | (v >> 12));
        b[1] = (char)(0x80 | ((v >> 6) & 0x3F));
        b[2] = (char)(0x80 | (v & 0x3F));
        n = 3;
    } else {
        b[0] = (char)(0xF0 | (v >> 18));
        b[1] = (char)(0x80 | ((v >> 12) & 0x3F));
        b[2] = (char)(0x80 | ((v >> 6) & 0x3F));
        b[3] = (char)(0x80 | (v & 0x3F));
        n = 4;
    }
    return jf_append(s, b, n);
}

/* The escape at p (a backslash) appended decoded; returns the byte after it,
 * or NULL when it is invalid or incomplete. */
static const char *jf_escape(jf_parse *s, const char *p)
{
    if (s->end - p < 2) return NULL;
    char c = p[1], out;
    switch (c) {
    case '"':
    case '\\':
    case '/':
        out = c;
        break;
    case 'b':
        out = '\b';
        break;
    case 'f':
        out = '\f';
        break;
    case 'n':
        out = '\n';
        break;
    case 'r':
        out = '\r';
        break;
    case 't':
        out = '\t';
        break;
    case 'u': {
        if (s->end - p < 6) return NULL;
        long v = jf_hex4(p + 2);
        if (v < 0 || (v >= 0xDC00 && v <= 0xDFFF)) return NULL;
        p += 6;
        if (v >= 0xD800 && v <= 0xDBFF) {
            if (s->end - p < 6 || p[0] != '\\' || p[1] != 'u') return NULL;
            long lo = jf_hex4(p + 2);
            if (lo < 0xDC00 || lo > 0xDFFF) return NULL;
            v = ((v - 0xD800) << 10) + (lo - 0xDC00) + 0x10000;
            p += 6;
        }
        return jf_put_utf8(s, (uint32_t)v) ? NULL : p;
    }
    default:
        return NULL;
    }
    return jf_append(s, &out, 1) ? NULL : p + 2;
}

/* The string whose opening quote is just before s->p. On success *str, *n are
 * its decoded bytes (in the input when it needs no decoding, else in s->buf,
 * valid until the next string), s->p is past the closing quote, and 0 is
 * returned; -1 for anything jansson must judge. */
static int jf_string(jf_parse *s, const char **str, size_t *n)
{
    const char *start = s->p;
    const char *q = jf_plain(s, start);
    if (q < s->end && *q == '"') {
        *str = start;
        *n = (size_t)(q - start);
        s->p = q + 1;
        return 0;
    }
    s->len = 0;
    for (;;) {
        if (q >= s->end) return -1;
        if (jf_append(s, start, (size_t)(q - start))) return -1;
        unsigned char c = (unsigned char)*q;
        if (c == '"') break;
        if (c == '\\') {
            q = jf_escape(s, q);
            if (!q) return -1;
        } else if (c >= 0x80) {
            size_t k = jf_utf8_len((const unsigned char *)q, (const unsigned char *)s->end);
            if (!k || jf_append(s, q, k)) return -1;
            q += k;
        } else {
            return -1; /* a raw control byte */
        }
        start = q;
        q = jf_plain(s, start);
    }
    *str = s->buf;
    *n = s->len;
    s->p = q + 1;
    return 0;
}

/* ========================================================================= */
/* Values                                                                    */

static int jf_digit(const char *p, const char *end)
{
    return p < end && *p >= '0' && *p <= '9';
}

static json_t *jf_number(jf_parse *s)
{
    const char *p = s->p, *start = p, *end = s->end;
    int neg = 0, real = 0;
    if (*p == '-') {
        neg = 1;
        p++;
    }
    if (!jf_digit(p, end)) return NULL;
    if (*p == '0') {
        p++;
        if (jf_digit(p, end)) return NULL;
    } else {
        while (jf_digit(p, end))
            p++;
    }
    const char *int_end = p;
    if (p < end && *p == '.') {
        p++;
        if (!jf_digit(p, end)) return NULL;
        while (jf_digit(p, end))
            p++;
        real = 1;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-')) p++;
        if (!jf_digit(p, end)) return NULL;
        while (jf_digit(p, end))
            p++;
        real = 1;
    }
    size_t n = (size_t)(p - start);
    json_t *v;
    if (!real && int_end - start - neg <= 18) {
        /* At most 18 digits cannot overflow json_int_t (long long). */
        long long acc = 0;
        for (const char *d = start + neg; d < int_end; d++)
            acc = acc * 10 + (*d - '0');
        v = json_integer(neg ? -acc : acc);
    } else {
        if (n >= JF_MAX_NUMBER) return NULL;
        char tok[JF_MAX_NUMBER];
        memcpy(tok, start, n);
        tok[n] = '\0';
        char *stop;
        errno = 0;
        if (!real) {
            long long x = strtoll(tok, &stop, 10);
            if (errno == ERANGE || stop != tok + n) return NULL;
            v = json_integer(x);
        } else {
            /* jansson hands strtod the token with '.' turned into the
             * locale's decimal point; only the "C"-like one is done here.
             * nl_langinfo, not localeconv: glibc's localeconv rewrites a
             * static struct on every call (a data race between workers). */
            const char *dp = nl_langinfo(RADIXCHAR);
            if (!dp || dp[0] != '.' || dp[1] != '\0') return NULL;
            double x = strtod(tok, &stop);
            if (stop != tok + n || ((x == HUGE_VAL || x == -HUGE_VAL) && errno == ERANGE))
                return NULL;
            v = json_real(x);
        }
    }
    if (v) s->p = p;
    return v;
}

/* The literal word at s->p: must be exactly `word`, not followed by a letter
 * (jansson reads letters on and rejects the longer token). */
static int jf_word(jf_parse *s, const char *word, size_t n)
{
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0) return -1;
    const char *after = s->p + n;
    if (after < s->end) {
        char c = *after;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return -1;
    }
    s->p = after;
    return 0;
}

static void jf_space(jf_parse *s)
{
    const char *p = s->p, *end = s->end;
    while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
        p++;
    s->p = p;
}

static json_t *jf_value(jf_parse *s);

/* s->p just past '{'. */
static json_t *jf_object(jf_parse *s)
{
    json_t *obj = json_object();
    char *key_copy = NULL;
    if (!obj) return NULL;
    jf_space(s);
    if (s->p < s->end && *s->p == '}') {
        s->p++;
        return obj;
    }
    for (;;) {
        if (s->p >= s->end || *s->p != '"') goto fail;
        s->p++;
        const char *key;
        size_t klen;
        if (jf_string(s, &key, &klen)) goto fail;
        if (key == s->buf) {
            /* Decoded keys live in s->buf, which the value may overwrite:
             * keep a copy (rare: a key with an escape or non-ASCII). */
            if (memchr(key, '\0', klen)) goto fail; /* jansson refuses these */
            key_copy = malloc(klen ? klen : 1);
            if (!key_copy) goto fail;
            memcpy(key_copy, key, klen);
            key = key_copy;
        }
        jf_space(s);
        if (s->p >= s->end || *s->p != ':') goto fail;
        s->p++;
        jf_space(s);
        json_t *v = jf_value(s);
        if (!v) goto fail;
        /* Steals v even when it fails. */
        if (json_object_setn_new_nocheck(obj, key, klen, v)) goto fail;
        free(key_copy);
        key_copy = NULL;
        jf_space(s);
        if (s->p >= s->end) goto fail;
        char c = *s->p++;
        if (c == '}') return obj;
        if (c != ',') goto fail;
        jf_space(s);
    }
fail:
    free(key_copy);
    json_decref(obj);
    return NULL;
}

/* s->p just past '['. */
static json_t *jf_array(jf_parse *s)
{
    json_t *arr = json_array();
    if (!arr) return NULL;
    jf_space(s);
    if (s->p < s->end && *s->p == ']') {
        s->p++;
        return arr;
    }
    for (;;) {
        json_t *v = jf_value(s);
        if (!v) goto fail;
        if (json_array_append_new(arr, v)) goto fail;
        jf_space(s);
        if (s->p >= s->end) goto fail;
        char c = *s->p++;
        if (c == ']') return arr;
        if (c != ',') goto fail;
        jf_space(s);
    }
fail:
    json_decref(arr);
    return NULL;
}

/* The value at s->p (no leading space), or NULL for jansson to judge. */
static json_t *jf_value(jf_parse *s)
{
    if (s->p >= s->end) return NULL;
    switch (*s->p) {
    case '"': {
        s->p++;
        const char *str;
        size_t n;
        if (jf_string(s, &str, &n)) return NULL;
        if (!(s->flags & JSON_ALLOW_NUL) && str == s->buf && memchr(str, '\0', n)) return NULL;
        return json_stringn_nocheck(str, n);
    }
    case '{':
    case '[': {
        if (s->depth >= JFAST_MAX_DEPTH) return NULL;
        s->depth++;
        int obj = *s->p++ == '{';
        json_t *v = obj ? jf_object(s) : jf_array(s);
        s->depth--;
        return v;
    }
    case 't':
        return jf_word(s, "true", 4) ? NULL : json_true();
    case 'f':
        return jf_word(s, "false", 5) ? NULL : json_false();
    case 'n':
        return jf_word(s, "null", 4) ? NULL : json_null();
    default:
        return jf_number(s);
    }
}

/* ========================================================================= */
/* Entry points                                                              */

json_t *jfast_try_loadb(const char *buf, size_t len, size_t flags, json_error_t *error)
{
    if (!buf || (flags & ~(size_t)JF_FLAGS)) return NULL;
    jf_parse s = {.p = buf, .end = buf + len, .flags = flags};
#ifdef JF_AVX2
    s.avx2 = jf_have_avx2();
#endif
    jf_space(&s);
    /* Top-level scalars are left to jansson: where it stops reading after
     * one depends on what follows, and records are never scalars. */
    if (s.p >= s.end || (*s.p != '{' && *s.p != '[')) return NULL;
    json_t *v = jf_value(&s);
    free(s.buf);
    if (!v) return NULL;
    if (!(flags & JSON_DISABLE_EOF_CHECK)) {
        jf_space(&s);
        if (s.p != s.end) {
            json_decref(v);
            return NULL;
        }
    }
    if ((size_t)(s.p - buf) > (size_t)INT32_MAX) {
        /* jansson's position is an int; let it say what it says. */
        json_decref(v);
        return NULL;
    }
    if (error) {
        error->text[0] = '\0';
        error->line = -1;
        error->column = -1;
        error->position = (int)(s.p - buf);
        strcpy(error->source, "<buffer>");
    }
    return v;
}

json_t *jfast_loadb(const char *buf, size_t len, size_t flags, json_error_t *error)
{
    /* records are short-lived trees: their blocks come from the thread's
     * chunks (jarena.h) */
    int scope = jarena_begin();
    json_t *v = jfast_try_loadb(buf, len, flags, error);
    if (!v) v = json_loadb(buf, len, flags, error);
    jarena_end(scope);
    return v;
}

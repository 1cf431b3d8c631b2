/*
 * sha256.c — a straightforward SHA-256 after FIPS 180-4 §6.2: a 64-byte
 * block buffer, the 64-round compression function, big-endian length padding.
 *
 * On x86-64 CPUs with the SHA extensions (Intel since Goldmont/Ice Lake, every
 * AMD Zen) the compression runs on SHA256RNDS2/SHA256MSG1/SHA256MSG2: the
 * engine hashes two or three short inputs per candidate (term hash, alert id,
 * cardinality value), and the portable rounds were ~10% of the whole pack's
 * instructions per record. Both paths give the same digest (test_sha256
 * compares them on random inputs).
 */
#include "sha256.h"

#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define SHA_HAVE_NI 1
#include <cpuid.h>
#include <immintrin.h>
#include <stdatomic.h>
#endif

static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void sha256_block_portable(uint32_t s[8], const unsigned char *p)
{
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = s[0], b = s[1], c = s[2], d = s[3], e = s[4], f = s[5], g = s[6], h = s[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 =
            h + (ROR(e, 6) ^ ROR(e, 11) ^ ROR(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i];
        uint32_t t2 = (ROR(a, 2) ^ ROR(a, 13) ^ ROR(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        h = g, g = f, f = e, e = d + t1, d = c, c = b, b = a, a = t1 + t2;
    }
    s[0] += a, s[1] += b, s[2] += c, s[3] += d, s[4] += e, s[5] += f, s[6] += g, s[7] += h;
}

#ifdef SHA_HAVE_NI
/* One block on the SHA extensions. The state lives as ABEF/CDGH halves, the
 * layout SHA256RNDS2 works on; each step of the loop is four rounds. */
__attribute__((target("sha,sse4.1,ssse3"))) static void sha256_block_ni(uint32_t s[8],
                                                                        const unsigned char *p)
{
    const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bLL, 0x0405060700010203LL);
    __m128i t = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)&s[0]), 0xB1); /* CDAB */
    __m128i efgh = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)&s[4]), 0x1B);
    __m128i abef = _mm_alignr_epi8(t, efgh, 8);
    __m128i cdgh = _mm_blend_epi16(efgh, t, 0xF0);
    const __m128i abef0 = abef, cdgh0 = cdgh;
    __m128i m[4];
    for (int i = 0; i < 4; i++)
        m[i] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 16 * i)), bswap);
    for (int i = 0; i < 16; i++) {
        __m128i w = m[i & 3];
        __m128i k = _mm_add_epi32(w, _mm_loadu_si128((const __m128i *)&K[4 * i]));
        cdgh = _mm_sha256rnds2_epu32(cdgh, abef, k);
        abef = _mm_sha256rnds2_epu32(abef, cdgh, _mm_shuffle_epi32(k, 0x0E));
        if (i < 12) {
            /* W[t..t+3] for the group four steps on, from the last sixteen words */
            __m128i x = _mm_sha256msg1_epu32(m[i & 3], m[(i + 1) & 3]);
            x = _mm_add_epi32(x, _mm_alignr_epi8(m[(i + 3) & 3], m[(i + 2) & 3], 4));
            m[i & 3] = _mm_sha256msg2_epu32(x, m[(i + 3) & 3]);
        }
    }
    abef = _mm_add_epi32(abef, abef0);
    cdgh = _mm_add_epi32(cdgh, cdgh0);
    t = _mm_shuffle_epi32(abef, 0x1B);     /* FEBA */
    cdgh = _mm_shuffle_epi32(cdgh, 0xB1);  /* DCHG */
    abef = _mm_blend_epi16(t, cdgh, 0xF0); /* DCBA */
    cdgh = _mm_alignr_epi8(cdgh, t, 8);    /* HGFE */
    _mm_storeu_si128((__m128i *)&s[0], abef);
    _mm_storeu_si128((__m128i *)&s[4], cdgh);
}

/* -1 not asked yet, else 0/1. CPUID traps to the hypervisor in a VM (about a
 * microsecond), so the answer is kept; the race between first callers is
 * benign (they store the same value). */
static atomic_int sha_ni_state = -1;
static atomic_int sha_ni_forced_off;

static int sha_ni_ok(void)
{
    int v = atomic_load_explicit(&sha_ni_state, memory_order_relaxed);
    if (v < 0) {
        unsigned a, b, c, d;
        int sse = __get_cpuid(1, &a, &b, &c, &d) && (c & bit_SSE4_1) && (c & bit_SSSE3);
        int sha = __get_cpuid_count(7, 0, &a, &b, &c, &d) && (b & bit_SHA);
        v = sse && sha;
        atomic_store_explicit(&sha_ni_state, v, memory_order_relaxed);
    }
    return v && !atomic_load_explicit(&sha_ni_forced_off, memory_order_relaxed);
}
#endif

static void sha256_block(uint32_t s[8], const unsigned char *p)
{
#ifdef SHA_HAVE_NI
    if (sha_ni_ok()) {
        sha256_block_ni(s, p);
        return;
    }
#endif
    sha256_block_portable(s, p);
}

int sha256_accelerated(int enable)
{
#ifdef SHA_HAVE_NI
    if (enable >= 0) atomic_store_explicit(&sha_ni_forced_off, !enable, memory_order_relaxed);
    return sha_ni_ok();
#else
    (void)enable;
    return 0;
#endif
}

void sha256_init(sha256_ctx *c)
{
    static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(c->state, iv, sizeof iv);
    c->bytes = 0;
    c->buflen = 0;
}

void sha256_update(sha256_ctx *c, const void *data, size_t len)
{
    const unsigned char *p = data;
    c->bytes += len;
    if (c->buflen) {
        size_t take = 64 - c->buflen < len ? 64 - c->buflen : len;
        memcpy(c->buf + c->buflen, p, take);
        c->buflen += take, p += take, len -= take;
        if (c->buflen < 64) return;
        sha256_block(c->state, c->buf);
        c->buflen = 0;
    }
    for (; len >= 64; p += 64, len -= 64)
        sha256_block(c->state, p);
    memcpy(c->buf, p, len);
    c->buflen = len;
}

void sha256_final(sha256_ctx *c, unsigned char out[32])
{
    static const unsigned char padding[64] = {0x80};
    uint64_t bits = c->bytes * 8;
    /* 0x80, then zeros up to 56 bytes mod 64, then the 64-bit length. */
    size_t padlen = c->buflen < 56 ? 56 - c->buflen : 120 - c->buflen;
    sha256_update(c, padding, padlen);
    unsigned char len[8];
    for (int i = 0; i < 8; i++)
        len[i] = (unsigned char)(bits >> (56 - 8 * i));
    sha256_update(c, len, 8);
    for (int i = 0; i < 8; i++) {
        out[4 * i] = (unsigned char)(c->state[i] >> 24);
        out[4 * i + 1] = (unsigned char)(c->state[i] >> 16);
        out[4 * i + 2] = (unsigned char)(c->state[i] >> 8);
        out[4 * i + 3] = (unsigned char)c->state[i];
    }
}

void sha256_hex(const unsigned char digest[32], size_t nbytes, char *out)
{
    static const char hex[] = "0123456789abcdef";
    if (nbytes > 32) nbytes = 32;
    for (size_t i = 0; i < nbytes; i++) {
        out[2 * i] = hex[digest[i] >> 4];
        out[2 * i + 1] = hex[digest[i] & 15];
    }
    out[2 * nbytes] = 0;
}

void hmac_sha256(const void *key, size_t keylen, const void *msg, size_t msglen,
                 unsigned char out[32])
{
    unsigned char k[64] = {0}, pad[64], inner[32];
    sha256_ctx c;
    if (keylen > sizeof k) {
        sha256_init(&c);
        sha256_update(&c, key, keylen);
        sha256_final(&c, k);
    } else if (keylen) {
        memcpy(k, key, keylen);
    }
    for (size_t i = 0; i < sizeof pad; i++)
        pad[i] = k[i] ^ 0x36;
    sha256_init(&c);
    sha256_update(&c, pad, sizeof pad);
    sha256_update(&c, msg, msglen);
    sha256_final(&c, inner);
    for (size_t i = 0; i < sizeof pad; i++)
        pad[i] = k[i] ^ 0x5c;
    sha256_init(&c);
    sha256_update(&c, pad, sizeof pad);
    sha256_update(&c, inner, sizeof inner);
    sha256_final(&c, out);
    /* the padded key is secret material: do not leave it on the stack */
    volatile unsigned char *v = k;
    for (size_t i = 0; i < sizeof k; i++)
        v[i] = 0;
}

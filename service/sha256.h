/*
 * sha256.h — SHA-256 (FIPS 180-4), used for deterministic alert ids and
 * term keys, and HMAC-SHA256 for signing outgoing webhooks. Small and dependency-free so the core
 * needs no crypto library.
 */
#ifndef NT_SHA256_H
#define NT_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct sha256_ctx {
    uint32_t state[8];
    uint64_t bytes;
    unsigned char buf[64];
    size_t buflen;
} sha256_ctx;

void sha256_init(sha256_ctx *c);
void sha256_update(sha256_ctx *c, const void *data, size_t len);
void sha256_final(sha256_ctx *c, unsigned char out[32]);
/* HMAC-SHA256 (RFC 2104) of msg under key: signs webhook deliveries
 * (X-Newtermsd-Signature-256). Keys longer than the 64-byte block are hashed
 * first, as the RFC says. */
void hmac_sha256(const void *key, size_t keylen, const void *msg, size_t msglen,
                 unsigned char out[32]);

/* Whether the compression runs on the CPU's SHA extensions. enable 0 forces
 * the portable rounds and 1 allows the extensions again (tests compare both;
 * not thread-safe: call it before hashing starts); -1 only asks. */
int sha256_accelerated(int enable);

/* Lower-case hex of the first `nbytes` of the digest into out (2*nbytes+1 bytes). */
void sha256_hex(const unsigned char digest[32], size_t nbytes, char *out);

#endif

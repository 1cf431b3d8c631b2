/*
 * base64.h — strict RFC 4648 base64 (standard alphabet "A–Z a–z 0–9 + /",
 * '=' padding), as carried in Firehose records' "data".
 *
 * Decoding is strict on purpose:
 * - the input length must be a multiple of 4 and the padding must be present.
 *   Firehose (and every AWS SDK) always pads, so a missing pad is almost always a
 *   truncated record — the Grafana Alloy fixture with a 67-character "data" is
 *   caught only because of this rule;
 * - no whitespace, no URL-safe alphabet ('-', '_'), no '=' except as the last one
 *   or two characters;
 * - the unused bits of the last character before the padding must be zero, so
 *   every byte string has exactly one accepted encoding.
 * Errors name the offending offset ("invalid base64 character 0x2a ('*') at offset 17").
 *
 * Nothing here allocates; the caller owns every buffer.
 */
#ifndef NT_BASE64_H
#define NT_BASE64_H

#include "common.h"

#include <stddef.h>

/* Bytes needed to hold the decoding of `len` base64 characters (an upper bound
 * that does not look at the padding). */
static inline size_t b64_decoded_max(size_t len)
{
    return (len / 4 + (len % 4 != 0)) * 3;
}

/* Exact decoded size of a well-padded input (looks at the last two characters);
 * meaningful only when len % 4 == 0. */
static inline size_t b64_decoded_len(const char *in, size_t len)
{
    size_t n = len / 4 * 3;
    if (len >= 4 && in[len - 1] == '=') n -= 1 + (in[len - 2] == '=');
    return n;
}

/* Characters needed to encode `len` bytes, without the terminating NUL. */
static inline size_t b64_encoded_len(size_t len)
{
    return (len + 2) / 3 * 4;
}

/* Decode in[0..len) into out[0..cap). On success *outlen is the decoded size.
 * NT_ERR_PARSE: bad length, invalid character (with its offset), misplaced '=',
 *               non-zero padding bits.
 * NT_ERR_LIMIT: cap < the decoded size.
 * An empty input decodes to zero bytes. out is unspecified on failure. */
nt_status b64_decode(const char *in, size_t len, unsigned char *out, size_t cap, size_t *outlen,
                     nt_err *err);

/* Encode in[0..len) into out with padding and a terminating NUL; needs
 * cap >= b64_encoded_len(len) + 1 (else NT_ERR_LIMIT). *outlen (may be NULL)
 * receives the length without the NUL. */
nt_status b64_encode(const unsigned char *in, size_t len, char *out, size_t cap, size_t *outlen,
                     nt_err *err);

/* ---- base64url (RFC 4648 §5: '-' and '_' for '+' and '/', no padding) ----
 * For opaque tokens that travel in URLs, such as the alert list's cursor.
 * Decoding is as strict as above: no '=', no character of the standard
 * alphabet's '+' '/', no whitespace, a length that is not 1 mod 4, and zero
 * unused bits in the last character, so every byte string has one encoding. */

/* Characters needed to encode `len` bytes, without the terminating NUL. */
static inline size_t b64url_encoded_len(size_t len)
{
    return len / 3 * 4 + (len % 3 ? len % 3 + 1 : 0);
}

/* Encode in[0..len) into out with a terminating NUL; needs
 * cap >= b64url_encoded_len(len) + 1 (else NT_ERR_LIMIT). *outlen (may be
 * NULL) receives the length without the NUL. */
nt_status b64url_encode(const unsigned char *in, size_t len, char *out, size_t cap, size_t *outlen,
                        nt_err *err);

/* Decode in[0..len) into out[0..cap); *outlen is the decoded size.
 * NT_ERR_PARSE: a character outside the alphabet (with its offset), a length
 * of 1 mod 4, non-zero unused bits. NT_ERR_LIMIT: cap is too small. */
nt_status b64url_decode(const char *in, size_t len, unsigned char *out, size_t cap, size_t *outlen,
                        nt_err *err);

#endif

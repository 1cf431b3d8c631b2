/*
 * gz.h — bounded gzip/zlib decompression (zlib's inflate) for Firehose records
 * (CloudWatch Logs subscription payloads are gzip level 6) and for request
 * bodies sent with Content-Encoding: gzip.
 *
 * - Format: gzip, or zlib (RFC 1950, what HTTP calls "deflate"), detected from
 *   the header. Several concatenated gzip members decode as their
 *   concatenation, like gzip(1). Bytes after the last member that are not
 *   another gzip member are an error.
 * - Bound: output never grows past max_out + 1 bytes: a stream that would
 *   inflate to more than max_out bytes fails with NT_ERR_LIMIT
 *   ("gzip expands beyond N bytes") as soon as byte max_out + 1 appears, so a
 *   gzip bomb costs at most max_out bytes of work and memory.
 * - Errors: a stream that ends early → NT_ERR_PARSE "truncated gzip stream";
 *   bad header, bad data, bad checksum → NT_ERR_PARSE "corrupt gzip stream: …".
 */
#ifndef NT_GZ_H
#define NT_GZ_H

#include "common.h"

#include <stddef.h>

/* 1 when p starts with the gzip magic bytes 1f 8b. */
static inline int gz_is_gzip(const unsigned char *p, size_t len)
{
    return len >= 2 && p[0] == 0x1f && p[1] == 0x8b;
}

/* Inflate in[0..len). On success *out is a new malloc'd buffer of *outlen bytes
 * (plus one spare byte set to NUL, so text can be used as a C string); the
 * caller frees it with free(). On failure *out is NULL. */
nt_status gz_inflate(const unsigned char *in, size_t len, size_t max_out, unsigned char **out,
                     size_t *outlen, nt_err *err);

/* Same, into a reusable buffer: *buf (malloc'd, capacity *cap, both may start
 * as NULL/0) is grown with realloc as needed and stays owned by the caller, who
 * frees it with free() when done — also after a failure. The output is
 * followed by a NUL byte. No allocation happens once *buf is large enough. */
nt_status gz_inflate_into(const unsigned char *in, size_t len, size_t max_out, unsigned char **buf,
                          size_t *cap, size_t *outlen, nt_err *err);

#endif

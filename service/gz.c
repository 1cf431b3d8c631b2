/*
 * gz.c — bounded inflate on top of zlib (see gz.h for the contract).
 *
 * inflateInit2 with windowBits 15 + 32 makes zlib detect gzip or zlib framing
 * from the header. The output window handed to inflate() never reaches beyond
 * max_out + 1 bytes in total, so the moment the stream produces one byte more
 * than allowed we stop: a bomb is refused after max_out bytes of work, not after
 * it has been fully expanded. The buffer starts at four times the input (at
 * least 16 KiB) and doubles, capped at the limit.
 *
 * When inflate() reports the end of a member and input remains, the rest must
 * be another gzip member (magic 1f 8b): inflateReset() and go on. Anything else
 * after the stream is trailing garbage and an error, since a silently ignored
 * tail could hide records.
 */
#include "gz.h"

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define GZ_MIN_BUF 16384

static uInt gz_clamp(size_t n)
{
    return n > UINT_MAX ? UINT_MAX : (uInt)n;
}

/* Make room for at least `want` bytes (including the spare NUL) in *buf. */
static nt_status gz_reserve(unsigned char **buf, size_t *cap, size_t want, nt_err *err)
{
    if (*cap >= want) return NT_OK;
    unsigned char *p = realloc(*buf, want);
    if (!p) {
        nt_fail(err, NT_ERR_NOMEM, "out of memory inflating %zu bytes", want);
        return NT_ERR_NOMEM;
    }
    *buf = p;
    *cap = want;
    return NT_OK;
}

nt_status gz_inflate_into(const unsigned char *in, size_t len, size_t max_out, unsigned char **buf,
                          size_t *cap, size_t *outlen, nt_err *err)
{
    /* The largest output we let inflate() write: one byte past the limit,
     * which proves the limit is exceeded. */
    size_t limit = max_out < SIZE_MAX - 2 ? max_out + 1 : SIZE_MAX - 2;
    size_t want = len < SIZE_MAX / 4 ? len * 4 : SIZE_MAX / 4;
    if (want < GZ_MIN_BUF) want = GZ_MIN_BUF;
    if (want > limit) want = limit;
    nt_status st = gz_reserve(buf, cap, want + 1, err);
    if (st != NT_OK) return st;

    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (inflateInit2(&zs, 15 + 32) != Z_OK)
        return nt_fail(err, NT_ERR_NOMEM, "cannot initialise zlib inflate");

    size_t pos = 0, out = 0;
    for (;;) {
        if (out >= limit) {
            st = nt_fail(err, NT_ERR_LIMIT, "gzip expands beyond %zu bytes", max_out);
            break;
        }
        if (out + 1 >= *cap) {
            size_t grow = *cap < limit / 2 ? *cap * 2 : limit + 1;
            st = gz_reserve(buf, cap, grow, err);
            if (st != NT_OK) break;
        }
        size_t room = (*cap - 1 < limit ? *cap - 1 : limit) - out;
        zs.next_in = (Bytef *)(uintptr_t)(in + pos);
        zs.avail_in = gz_clamp(len - pos);
        zs.next_out = *buf + out;
        zs.avail_out = gz_clamp(room);
        uInt in_before = zs.avail_in, out_before = zs.avail_out;
        int rc = inflate(&zs, Z_NO_FLUSH);
        pos += in_before - zs.avail_in;
        out += out_before - zs.avail_out;

        if (rc == Z_STREAM_END) {
            if (out > max_out) {
                st = nt_fail(err, NT_ERR_LIMIT, "gzip expands beyond %zu bytes", max_out);
                break;
            }
            if (pos == len) {
                st = NT_OK;
                break;
            }
            if (!gz_is_gzip(in + pos, len - pos)) {
                st = nt_fail(err, NT_ERR_PARSE,
                             "corrupt gzip stream: %zu bytes of trailing data at offset %zu",
                             len - pos, pos);
                break;
            }
            inflateReset(&zs);
            continue;
        }
        if (rc == Z_OK) continue;
        if (rc == Z_BUF_ERROR) {
            /* No progress: either the output is full (grow or hit the limit at
             * the top of the loop) or the input ran out mid-stream. */
            if (pos == len && zs.avail_out > 0) {
                st = nt_fail(err, NT_ERR_PARSE, "truncated gzip stream");
                break;
            }
            continue;
        }
        if (rc == Z_MEM_ERROR) {
            st = nt_fail(err, NT_ERR_NOMEM, "out of memory in zlib inflate");
            break;
        }
        if (rc == Z_NEED_DICT) {
            st = nt_fail(err, NT_ERR_PARSE, "corrupt gzip stream: needs a preset dictionary");
            break;
        }
        st =
            nt_fail(err, NT_ERR_PARSE, "corrupt gzip stream: %s", zs.msg ? zs.msg : "invalid data");
        break;
    }
    inflateEnd(&zs);
    if (st != NT_OK) return st;
    (*buf)[out] = '\0';
    *outlen = out;
    return NT_OK;
}

nt_status gz_inflate(const unsigned char *in, size_t len, size_t max_out, unsigned char **out,
                     size_t *outlen, nt_err *err)
{
    unsigned char *buf = NULL;
    size_t cap = 0;
    nt_status st = gz_inflate_into(in, len, max_out, &buf, &cap, outlen, err);
    if (st != NT_OK) {
        free(buf);
        buf = NULL;
    }
    *out = buf;
    return st;
}

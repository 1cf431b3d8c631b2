/*
 * bufcache.h — one reusable request-body buffer per thread.
 *
 * A Firehose delivery is ~1.3 MB. malloc'ing and freeing that per request
 * lands above glibc's mmap threshold (or gets trimmed back to the kernel), so
 * every delivery paid for fresh pages: page faults and TLB shootdowns that a
 * perf profile of the service under load put above any of our own functions.
 * The HTTP layer instead takes its body buffer from here and gives it back when
 * the request completes; the next request on the same thread reuses it, pages
 * already mapped (a few spares per thread, since one worker reads the bodies
 * of several connections at once).
 *
 * Ownership: bufcache_take returns a malloc'd buffer the caller owns (free()
 * is always a valid way to dispose of it); bufcache_give takes ownership back
 * and either keeps it as one of the calling thread's spares or frees it. A
 * thread's spares are freed when the thread exits. At most BUFCACHE_MAX_BYTES
 * is kept per thread, so the peak RSS grows by at most that per worker.
 */
#ifndef NT_BUFCACHE_H
#define NT_BUFCACHE_H

#include <stddef.h>

#define BUFCACHE_MAX_BYTES ((size_t)16 << 20)

/* A buffer of at least need bytes (the thread's spare when it is large
 * enough, else a fresh malloc); *cap gets its capacity. NULL when out of
 * memory (*cap = 0). */
char *bufcache_take(size_t need, size_t *cap);

/* Hand buf (capacity cap, may be NULL) back: kept as a spare of the calling
 * thread while the thread's spares stay within BUFCACHE_MAX_BYTES and their
 * slots, otherwise freed. */
void bufcache_give(char *buf, size_t cap);

#endif

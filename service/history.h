/*
 * history.h — where new-terms history lives, behind one interface.
 *
 * The engine never talks to a backend directly: the pipeline hands a batch of
 * observations (store_obs, see store.h) to an nt_history, which decides for
 * each one whether its term is new and, in LIVE mode, records the alert in the
 * same atomic step. Two backends implement it:
 *   - store.c: Redis, one Lua script per observation, one round trip per batch;
 *   - memhist (below): a hash table in memory, for `replay` and unit tests. Its
 *     clock is the observation's seen_ms (event time in replay), and a term is
 *     new when it has no sighting in [seen_ms − window, seen_ms), i.e. the
 *     Redis TTL semantics: a key written at t expires at t + window.
 */
#ifndef NT_HISTORY_H
#define NT_HISTORY_H

#include "common.h"
#include "store.h"

typedef struct nt_history {
    void *ctx;
    nt_status (*observe)(void *ctx, store_obs *obs, size_t n, nt_err *err);
} nt_history;

/* The nt_history view of a Redis connection (st must outlive it). */
nt_history store_history(store *st);

typedef struct memhist memhist;

memhist *memhist_new(void);
void memhist_free(memhist *h);
/* The nt_history view of h (h must outlive it). */
nt_history memhist_history(memhist *h);
/* Number of live terms (for tests). */
size_t memhist_size(const memhist *h);

#endif

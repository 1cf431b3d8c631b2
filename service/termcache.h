/*
 * termcache.h — which new_terms terms this process has seen in Redis lately.
 *
 * A hint, never the truth: the pipeline uses it to skip building the alert
 * document of a sighting whose term is known to exist in the history (nearly
 * every sighting, in steady state), and sends that observation with
 * store_obs.defer_doc. When the hint is wrong (the key was deleted, Redis was
 * flushed, two rules' keys collide here), the history answers needs_doc and
 * the pipeline sends the observation again with its document, so a wrong
 * hint costs a second round trip and never an alert.
 *
 * Fixed size (no allocation after termcache_new), 4-way set associative on a
 * 128-bit key made of the term hash and the rule id; a full set drops the
 * entry that expires first. Not thread-safe: one per worker thread.
 */
#ifndef NT_TERMCACHE_H
#define NT_TERMCACHE_H

#include "common.h"

typedef struct nt_termcache nt_termcache;

/* A cache of about `entries` terms (rounded up to a power of two, at least
 * 4); NULL when entries is 0 or out of memory. Free with termcache_free
 * (NULL is a no-op). */
nt_termcache *termcache_new(size_t entries);
void termcache_free(nt_termcache *tc);

/* Margin kept before an entry's expiry: a term whose key expires within it
 * counts as unknown. */
#define TERMCACHE_MARGIN_MS 5000

/* 1 when (rule_id, term_hash) was put with an expiry later than now +
 * TERMCACHE_MARGIN_MS. term_hash: the engine's 64 hex digits. */
int termcache_known(const nt_termcache *tc, const char *rule_id, const char *term_hash,
                    nt_time_ms now);

/* Remember that the history holds (rule_id, term_hash) until `until` (the
 * sighting's time + the rule's window). A later expiry replaces an earlier. */
void termcache_put(nt_termcache *tc, const char *rule_id, const char *term_hash, nt_time_ms until);

/* Entries in use (for tests). */
size_t termcache_size(const nt_termcache *tc);

#endif

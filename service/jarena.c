/*
 * jarena.c — chunk allocation for parsed records' jansson trees (see
 * jarena.h for the contract).
 *
 * Layout: one reserved range, cut into 64 KB chunks aligned on 64 KB; a
 * chunk's first 64 bytes are its header, so the header of any block is at
 * (address & ~(JA_CHUNK - 1)).
 *
 * Counting: while a chunk is a thread's current one, its owner counts the
 * blocks it hands out and frees itself in plain thread-local counters, and
 * the chunk's atomic `live` holds JA_BIAS minus the blocks other threads
 * freed; when all are freed the chunk starts over from its first byte (still
 * in cache). On retiring the chunk the owner folds its counters in, and from
 * then on `live` is the number of blocks not yet freed: the decrement that
 * takes it to zero hands the chunk back, to the freeing thread's spares when
 * that thread owns it, else to a shared list under a mutex (rare: trees die
 * on the thread that parsed them). No atomic read-modify-write on the
 * owner's path.
 */
#include "jarena.h"

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

#if defined(__SANITIZE_ADDRESS__)
#define JA_COMPILED_OUT 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define JA_COMPILED_OUT 1
#endif
#endif

#define JA_CHUNK ((size_t)64 * 1024)
#define JA_HEAD ((size_t)64)                 /* header bytes at a chunk's start */
#define JA_BIG ((size_t)4096)                /* larger blocks come from malloc */
#define JA_RANGE ((size_t)256 * 1024 * 1024) /* reserved address space */
#define JA_SPARES 16                         /* free chunks a thread keeps */
#define JA_BIAS ((long)1 << 40)              /* a current chunk's live count, less foreign frees */

typedef struct ja_thread ja_thread;

typedef struct ja_chunk {
    atomic_long live;
    ja_thread *owner; /* compared with the freeing thread's state, never followed */
    struct ja_chunk *next;
    size_t used; /* bytes handed out after the header */
} ja_chunk;

_Static_assert(sizeof(ja_chunk) <= JA_HEAD, "chunk header fits its reserved bytes");

struct ja_thread {
    ja_chunk *cur;
    long handed, freed_here; /* blocks of cur handed out / freed by this thread */
    ja_chunk *spare;
    int nspare;
    int depth;
    int registered;
    unsigned long blocks;
};

static _Thread_local ja_thread tl;

static unsigned char *range_lo, *range_hi; /* written once, before any other thread runs */
static atomic_size_t range_next;           /* chunks taken from the range */
static atomic_int installed;
static pthread_mutex_t shared_mu = PTHREAD_MUTEX_INITIALIZER;
static ja_chunk *shared_free; /* under shared_mu */
static pthread_key_t exit_key;
static pthread_once_t exit_once = PTHREAD_ONCE_INIT;

static int in_range(const void *p)
{
    const unsigned char *b = p;
    return b >= range_lo && b < range_hi;
}

static ja_chunk *chunk_of(const void *p)
{
    return (ja_chunk *)((uintptr_t)p & ~(uintptr_t)(JA_CHUNK - 1));
}

static void shared_push(ja_chunk *c)
{
    pthread_mutex_lock(&shared_mu);
    c->next = shared_free;
    shared_free = c;
    pthread_mutex_unlock(&shared_mu);
}

/* c has no live block and no thread using it. */
static void chunk_release(ja_chunk *c)
{
    ja_thread *t = &tl;
    if (c->owner == t && t->nspare < JA_SPARES) {
        c->next = t->spare;
        t->spare = c;
        t->nspare++;
        return;
    }
    shared_push(c);
}

static void chunk_unref(ja_chunk *c)
{
    if (atomic_fetch_sub_explicit(&c->live, 1, memory_order_acq_rel) == 1) chunk_release(c);
}

/* Takes t's current chunk from it, folding t's counters into the chunk's
 * live count: the chunk when that leaves no block in it (the caller hands it
 * back), else NULL (its last free will). */
static ja_chunk *cur_retire(ja_thread *t)
{
    ja_chunk *c = t->cur;
    t->cur = NULL;
    if (!c) return NULL;
    long adj = JA_BIAS - t->handed + t->freed_here;
    return atomic_fetch_sub_explicit(&c->live, adj, memory_order_acq_rel) == adj ? c : NULL;
}

/* Thread exit: its spares and its current chunk go to the shared list. */
static void thread_gone(void *arg)
{
    ja_thread *t = arg;
    while (t->spare) {
        ja_chunk *c = t->spare;
        t->spare = c->next;
        shared_push(c);
    }
    t->nspare = 0;
    /* still holding the bias: nobody else releases it before cur_retire */
    if (t->cur) t->cur->owner = NULL;
    ja_chunk *c = cur_retire(t);
    if (c) shared_push(c);
}

static void make_exit_key(void)
{
    if (pthread_key_create(&exit_key, thread_gone) != 0) exit_key = 0;
}

static ja_chunk *chunk_take(ja_thread *t)
{
    ja_chunk *c = t->spare;
    if (c) {
        t->spare = c->next;
        t->nspare--;
        return c;
    }
    pthread_mutex_lock(&shared_mu);
    c = shared_free;
    if (c) shared_free = c->next;
    pthread_mutex_unlock(&shared_mu);
    if (c) return c;
    size_t i = atomic_fetch_add_explicit(&range_next, 1, memory_order_relaxed);
    if (i >= (size_t)(range_hi - range_lo) / JA_CHUNK) return NULL;
    return (ja_chunk *)(range_lo + i * JA_CHUNK);
}

/* Moves t to a fresh chunk; NULL when the range is used up. */
static ja_chunk *chunk_next(ja_thread *t)
{
    if (!t->registered) {
        pthread_once(&exit_once, make_exit_key);
        pthread_setspecific(exit_key, t);
        t->registered = 1;
    }
    ja_chunk *old = cur_retire(t);
    if (old) chunk_release(old);
    ja_chunk *c = chunk_take(t);
    if (!c) return NULL;
    c->owner = t;
    c->next = NULL;
    c->used = 0;
    atomic_store_explicit(&c->live, JA_BIAS, memory_order_relaxed);
    t->handed = t->freed_here = 0;
    t->cur = c;
    return c;
}

static void *ja_malloc(size_t n)
{
    ja_thread *t = &tl;
    if (t->depth > 0 && n <= JA_BIG) {
        size_t need = (n + 15) & ~(size_t)15;
        ja_chunk *c = t->cur;
        if (!c || c->used + need > JA_CHUNK - JA_HEAD) c = chunk_next(t);
        if (c) {
            void *p = (unsigned char *)c + JA_HEAD + c->used;
            c->used += need;
            t->handed++;
            t->blocks++;
            return p;
        }
    }
    return malloc(n);
}

static void ja_free(void *p)
{
    if (!p) return;
    if (!in_range(p)) {
        free(p);
        return;
    }
    ja_chunk *c = chunk_of(p);
    ja_thread *t = &tl;
    if (c != t->cur) {
        chunk_unref(c);
        return;
    }
    /* every block of the current chunk freed here (none can be left for
     * another thread then: its frees would be on top of these): nobody holds
     * one, start the chunk over */
    if (++t->freed_here == t->handed) {
        c->used = 0;
        t->handed = t->freed_here = 0;
    }
}

int jarena_install(void)
{
#ifdef JA_COMPILED_OUT
    (void)ja_malloc, (void)ja_free; /* built, never installed */
    return 0;
#else
    if (atomic_load(&installed)) return 1;
    void *m = mmap(NULL, JA_RANGE + JA_CHUNK, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) return 0;
    uintptr_t lo = ((uintptr_t)m + JA_CHUNK - 1) & ~(uintptr_t)(JA_CHUNK - 1);
    range_lo = (unsigned char *)lo;
    range_hi = range_lo + JA_RANGE;
    json_set_alloc_funcs(ja_malloc, ja_free);
    atomic_store(&installed, 1);
    return 1;
#endif
}

int jarena_begin(void)
{
    if (!atomic_load_explicit(&installed, memory_order_relaxed)) return 0;
    tl.depth++;
    return 1;
}

void jarena_end(int token)
{
    if (token) tl.depth--;
}

unsigned long jarena_blocks_total(void)
{
    return tl.blocks;
}

unsigned long jarena_chunks_total(void)
{
    return (unsigned long)atomic_load(&range_next);
}

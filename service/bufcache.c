/*
 * bufcache.c — reusable request-body buffers per thread (see bufcache.h).
 *
 * Each thread keeps up to BUFCACHE_SLOTS spares (one worker serves several
 * connections whose bodies arrive interleaved, so several are live at once),
 * at most BUFCACHE_MAX_BYTES in all. They live behind a pthread key whose
 * destructor frees them when the thread exits, so no buffer outlives its
 * worker.
 */
#include "bufcache.h"

#include <pthread.h>
#include <stdlib.h>

#define BUFCACHE_SLOTS 8

typedef struct spares {
    char *buf[BUFCACHE_SLOTS];
    size_t cap[BUFCACHE_SLOTS];
    size_t n, total;
} spares;

static pthread_key_t spares_key;
static pthread_once_t spares_once = PTHREAD_ONCE_INIT;
static int spares_key_ok;

static void spares_free(void *p)
{
    spares *s = p;
    if (!s) return;
    for (size_t i = 0; i < s->n; i++)
        free(s->buf[i]);
    free(s);
}

static void spares_init(void)
{
    spares_key_ok = pthread_key_create(&spares_key, spares_free) == 0;
}

static spares *spares_get(int create)
{
    pthread_once(&spares_once, spares_init);
    if (!spares_key_ok) return NULL;
    spares *s = pthread_getspecific(spares_key);
    if (!s && create) {
        s = calloc(1, sizeof *s);
        if (s && pthread_setspecific(spares_key, s) != 0) {
            free(s);
            s = NULL;
        }
    }
    return s;
}

char *bufcache_take(size_t need, size_t *cap)
{
    if (need == 0) need = 1;
    spares *s = spares_get(0);
    size_t best = BUFCACHE_SLOTS;
    for (size_t i = 0; s && i < s->n; i++) /* the smallest spare that fits */
        if (s->cap[i] >= need && (best == BUFCACHE_SLOTS || s->cap[i] < s->cap[best])) best = i;
    if (best < BUFCACHE_SLOTS) {
        char *b = s->buf[best];
        *cap = s->cap[best];
        s->total -= s->cap[best];
        s->n--;
        s->buf[best] = s->buf[s->n];
        s->cap[best] = s->cap[s->n];
        return b;
    }
    char *b = malloc(need);
    *cap = b ? need : 0;
    return b;
}

void bufcache_give(char *buf, size_t cap)
{
    if (!buf) return;
    spares *s = cap <= BUFCACHE_MAX_BYTES ? spares_get(1) : NULL;
    if (!s || s->n == BUFCACHE_SLOTS || s->total + cap > BUFCACHE_MAX_BYTES) {
        free(buf);
        return;
    }
    s->buf[s->n] = buf;
    s->cap[s->n] = cap;
    s->n++;
    s->total += cap;
}

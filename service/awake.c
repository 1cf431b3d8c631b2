/*
 * awake.c — the --busy-poll-us spinner; see awake.h for why it exists.
 *
 * Sleeping and waking: the spinner publishes `sleeping` and then re-reads
 * `last_ns`; awake_touch stores `last_ns` and then reads `sleeping` (all
 * sequentially consistent), so at least one of them sees the other: either
 * the spinner sees the fresh activity and stays up, or the toucher sees it
 * asleep and signals it under the mutex.
 */
#include "awake.h"

#include "log.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CPU_RELAX() _mm_pause()
#elif defined(__aarch64__)
#define CPU_RELAX() __asm__ __volatile__("yield")
#else
#define CPU_RELAX() ((void)0)
#endif

struct nt_awake {
    long long window_ns;
    atomic_llong last_ns; /* CLOCK_MONOTONIC of the last touch */
    atomic_int cpu;       /* CPU of the last touch; -1 unknown */
    atomic_int sleeping;  /* the spinner waits on cv */
    atomic_int stop;
    atomic_llong spun_ns; /* total time spent spinning */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int kick; /* under mu: a touch since the spinner went to sleep */
    pthread_t thread;
};

/* True while the last touch is less than a window old. */
static int recent(nt_awake *a, long long now)
{
    return now - atomic_load(&a->last_ns) <= a->window_ns;
}

static void follow_cpu(int *mine, int want)
{
    if (want < 0 || want == *mine) return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(want, &set);
    /* A CPU outside our cpuset (it cannot be: the toucher ran there) or a
     * refusal leaves the spinner where it is; *mine records the attempt so
     * it is not retried on every turn. */
    (void)pthread_setaffinity_np(pthread_self(), sizeof set, &set);
    *mine = want;
}

static void *spinner_main(void *arg)
{
    nt_awake *a = arg;
    /* Never spin at normal priority: that would take the CPU from the very
     * thread it is meant to help. Without SCHED_IDLE the spinner just ends. */
    struct sched_param sp = {0};
    if (pthread_setschedparam(pthread_self(), SCHED_IDLE, &sp) != 0) {
        log_msg(NT_LOG_WARN, "busy-poll",
                "cannot lower the spinner to SCHED_IDLE; busy polling is off");
        return NULL;
    }
    int mine = -1;
    long long since = nt_mono_ns();
    while (!atomic_load(&a->stop)) {
        long long now = nt_mono_ns();
        atomic_fetch_add_explicit(&a->spun_ns, now - since, memory_order_relaxed);
        since = now;
        if (!recent(a, now)) {
            atomic_store(&a->sleeping, 1);
            pthread_mutex_lock(&a->mu);
            while (!a->kick && !atomic_load(&a->stop) && !recent(a, nt_mono_ns()))
                pthread_cond_wait(&a->cv, &a->mu);
            a->kick = 0;
            atomic_store(&a->sleeping, 0);
            pthread_mutex_unlock(&a->mu);
            since = nt_mono_ns();
            continue;
        }
        follow_cpu(&mine, atomic_load_explicit(&a->cpu, memory_order_relaxed));
        for (int i = 0; i < 256; i++)
            CPU_RELAX();
    }
    atomic_fetch_add(&a->spun_ns, nt_mono_ns() - since);
    return NULL;
}

nt_status awake_start(nt_awake **out, long window_us, nt_err *err)
{
    *out = NULL;
    if (window_us <= 0) return nt_fail(err, NT_ERR_INVALID, "busy-poll window must be positive");
    nt_awake *a = calloc(1, sizeof *a);
    if (!a) return nt_fail(err, NT_ERR_NOMEM, "out of memory");
    a->window_ns = (long long)window_us * 1000;
    atomic_init(&a->last_ns, 0);
    atomic_init(&a->cpu, -1);
    atomic_init(&a->sleeping, 0);
    atomic_init(&a->stop, 0);
    atomic_init(&a->spun_ns, 0);
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->cv, NULL);
    if (pthread_create(&a->thread, NULL, spinner_main, a) != 0) {
        pthread_cond_destroy(&a->cv);
        pthread_mutex_destroy(&a->mu);
        free(a);
        return nt_fail(err, NT_ERR_IO, "cannot start the busy-poll thread");
    }
    *out = a;
    return NT_OK;
}

void awake_touch(nt_awake *a)
{
    if (!a) return;
    atomic_store(&a->last_ns, nt_mono_ns());
    int cpu = sched_getcpu();
    if (cpu >= 0 && cpu != atomic_load_explicit(&a->cpu, memory_order_relaxed))
        atomic_store_explicit(&a->cpu, cpu, memory_order_relaxed);
    if (atomic_load(&a->sleeping)) {
        pthread_mutex_lock(&a->mu);
        a->kick = 1;
        pthread_cond_signal(&a->cv);
        pthread_mutex_unlock(&a->mu);
    }
}

double awake_spin_seconds(nt_awake *a)
{
    if (!a) return 0;
    return (double)atomic_load_explicit(&a->spun_ns, memory_order_relaxed) / 1e9;
}

void awake_stop(nt_awake *a)
{
    if (!a) return;
    pthread_mutex_lock(&a->mu);
    atomic_store(&a->stop, 1);
    pthread_cond_signal(&a->cv);
    pthread_mutex_unlock(&a->mu);
    pthread_join(a->thread, NULL);
    pthread_cond_destroy(&a->cv);
    pthread_mutex_destroy(&a->mu);
    free(a);
}

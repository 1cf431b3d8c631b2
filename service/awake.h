/*
 * awake.h — keep the HTTP thread's CPU from going idle between requests
 * (--busy-poll-us).
 *
 * On a virtual machine an idle vCPU halts, and the hypervisor has to schedule
 * it again when the next packet arrives. On a shared host that wake-up is
 * usually microseconds but now and then several milliseconds, and at half
 * load every delivery that finds the core idle pays it. Measured on the bench
 * machine (tests/bench/README.md, "Half-load p99"): the service's own time per
 * delivery stays ~1 ms, yet wrk's p99 at half load was 10–17 ms, and a
 * lowest-priority spinning process on the service's core brought it to 4–7 ms.
 *
 * This module is that spinner, inside the service and bounded: one thread at
 * SCHED_IDLE priority (it runs only when nothing else on the CPU wants to, and
 * any wake-up preempts it at once) that spins on the CPU where the HTTP thread
 * last ran, for window_us after the last request began or ended, then sleeps
 * until the next one. The cost is that CPU time: while requests keep coming
 * less than a window apart, the core shows busy, and in a container with a
 * CPU limit the spin counts against the quota. Off by default.
 *
 * Ownership: awake_start returns a handle the caller frees with awake_stop
 * (which joins the thread). awake_touch may be called from any thread.
 */
#ifndef NT_AWAKE_H
#define NT_AWAKE_H

#include "common.h"

typedef struct nt_awake nt_awake;

/* Starts the spinner thread; window_us > 0. */
nt_status awake_start(nt_awake **out, long window_us, nt_err *err);

/* Activity on the calling thread's CPU: spin there for the next window_us.
 * Cheap (two vDSO calls and an atomic store) unless the spinner is asleep,
 * when it also signals it. a may be NULL (off). */
void awake_touch(nt_awake *a);

/* Seconds the spinner has spent awake so far (CPU it took, at most). */
double awake_spin_seconds(nt_awake *a);

/* Stops and joins the thread, frees a. a may be NULL. */
void awake_stop(nt_awake *a);

#endif

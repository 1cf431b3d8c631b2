/*
 * metrics.h — a process-wide Prometheus registry: counters, gauges and
 * latency histograms, rendered in the text exposition format 0.0.4.
 *
 * A series is a metric name plus a label string the caller formats, e.g.
 *   metrics_counter_add("newtermsd_http_requests_total", "route=\"firehose\",code=\"200\"", 1);
 * Label values that come from outside must go through metrics_label_escape().
 * The first call for a (name, labels) pair creates the series; later calls
 * only touch atomics (no lock). Names must match [a-zA-Z_:][a-zA-Z0-9_:]* and
 * label strings be shorter than METRICS_LABELS_MAX; a call that breaks these,
 * that uses a name with another type than it was created with, or that would
 * exceed METRICS_MAX_SERIES series, is counted in newtermsd_metrics_dropped_total
 * and otherwise ignored. Every function is thread-safe except metrics_reset().
 */
#ifndef NT_METRICS_H
#define NT_METRICS_H

#include <stddef.h>

#define METRICS_MAX_SERIES 4096
#define METRICS_LABELS_MAX 512

/* Record HELP and TYPE for a metric name ("counter", "gauge" or "histogram").
 * May be called before or after the first sample; the last call wins. Strings
 * are copied. */
void metrics_describe(const char *name, const char *type, const char *help);

/* labels: NULL or "" for none, else `key="value",key2="value2"` (already escaped). */
void metrics_counter_add(const char *name, const char *labels, unsigned long long delta);
void metrics_gauge_set(const char *name, const char *labels, double v);
/* Buckets (seconds): .0005 .001 .0025 .005 .01 .025 .05 .1 .25 .5 1 2.5 5 10 +Inf. */
void metrics_histogram_observe(const char *name, const char *labels, double seconds);

/* Every series, sorted by name then label string, with # HELP / # TYPE per
 * name, histograms as cumulative _bucket{le=…} lines, _sum and _count.
 * Malloc'd; the caller frees. NULL only on allocation failure. */
char *metrics_render(void);

/* Refresh the process_* gauges: process_resident_memory_bytes (/proc/self/statm),
 * process_open_fds (/proc/self/fd), process_start_time_seconds (/proc/self/stat
 * and the boot time in /proc/stat). A value that cannot be read is left alone. */
void metrics_update_process(void);

/* Drop every series and description. Tests only: must not run concurrently
 * with any other metrics_* call. */
void metrics_reset(void);

/* Escape a label value for the text format (\ → \\, " → \", newline → \n;
 * bytes that are not valid UTF-8 become '?'). Writes at most cap-1 bytes and a
 * NUL (nothing when cap is 0); truncation never splits an escape or a UTF-8
 * character. Returns the number of bytes written, without the NUL. */
size_t metrics_label_escape(const char *in, size_t len, char *out, size_t cap);

#endif

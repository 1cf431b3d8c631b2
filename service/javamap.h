/*
 * javamap.h — a JSON value printed as Java prints what Elasticsearch parsed
 * from it: Map.toString() of nested HashMaps and ArrayLists, "{k=v, k2=[a,
 * b]}" in HashMap iteration order, integers in decimal and doubles as
 * Double.toString. The CloudTrail view (ctview.c) renders
 * aws.cloudtrail.request_parameters and its siblings with it.
 *
 * Two passes over the same writer settings: measure (buf NULL: len, UTF-16
 * units and depth are counted, nothing is written), then write into exactly
 * len bytes of buf, with tmp as the scratch space that orders each map's
 * keys. Nothing is allocated. Pure: part of the core.
 */
#ifndef NT_JAVAMAP_H
#define NT_JAVAMAP_H

#include <jansson.h>
#include <stddef.h>

typedef struct javamap_writer {
    /* settings */
    char *buf;  /* NULL while measuring */
    size_t cap; /* bytes of buf */
    char *tmp;  /* write pass: sort space for the map keys */
    size_t tmp_cap;
    /* A string value that counts as absent (left out like null), or NULL. */
    int (*absent)(const char *s, size_t n);
    unsigned depth_limit; /* deeper nesting fails the rendering */
    /* results */
    size_t len, units; /* bytes and UTF-16 code units of the rendering */
    size_t tmp_used;
    unsigned max_depth;
    int fail; /* too deep, or the sort space ran out */
} javamap_writer;

/* Render v. 1 when something was written, 0 when v is absent after clean-up
 * (null, absent strings, empty containers) or w->fail. `hide` is a top-level
 * key to leave out (NULL = none). */
int javamap_write(javamap_writer *w, json_t *v, const char *hide);

/* Double.toString (JDK 19+: the shortest digits that round-trip) into out;
 * returns the length. */
#define JAVAMAP_DOUBLE_BUF 40
size_t javamap_double(double d, char out[JAVAMAP_DOUBLE_BUF]);

#endif

/*
 * jsonout.h — compact JSON text of a jansson value, fast.
 *
 * json_dumps(v, JSON_COMPACT) walks every string a code point at a time
 * (~90 instructions per byte of output): with a large rule pack a quarter of
 * all records become an observation, each carrying a 3 KB alert document, and
 * that walk was a quarter of the service's work. nt_json_dumps writes the
 * same bytes (keys in the object's order, the same escapes: `\"`, `\\`, `\b`,
 * `\f`, `\n`, `\r`, `\t`, other controls as `\u00XX`, everything else as is;
 * integers as %lld; reals through jansson itself) copying unescaped runs
 * whole. tests/unit/test_prefilter_parity.c compares it with json_dumps on
 * every alert of the rule pack.
 */
#ifndef NT_JSONOUT_H
#define NT_JSONOUT_H

#include <jansson.h>

/* Compact JSON text of an object or array (caller frees); NULL when out of
 * memory, or for any other root (as json_dumps without JSON_ENCODE_ANY). */
char *nt_json_dumps(const json_t *v);

#endif

/*
 * jarena.h — chunk allocation for the jansson trees of parsed records.
 *
 * A parsed 1.6 KB CloudTrail record is about 170 jansson allocations (every
 * value, every object's hash table, every key/value pair), each a malloc and
 * later a free: with the whole rule pack loaded, a third of the records are
 * parsed and those calls were ~15% of the instructions per record. Inside
 * jarena_begin/jarena_end, jansson allocations of this thread are carved from
 * the thread's current 64 KB chunk instead; free only counts down the chunk's
 * live blocks, and a chunk whose count reaches zero once the thread has moved
 * on is reused.
 *
 * Chunks come from one address range reserved at install (256 MiB of address
 * space, MAP_NORESERVE: only chunks in use are resident), so free tells a
 * chunk block from a malloc one by its address alone — blocks carry no
 * header, and everything outside a scope (json_dumps' strings, which callers
 * free() themselves, among them) stays plain malloc. A tree may be freed at
 * any time on any thread, and a value may outlive the scope it was built in:
 * its chunk stays until the last of its blocks is freed. When the range is
 * used up, allocations fall back to malloc.
 *
 * jarena_install must run before the process's first jansson allocation
 * (first thing in main): it switches jansson to these hooks for the rest of
 * the process. Without it, jarena_begin/jarena_end do nothing. Under
 * AddressSanitizer it installs nothing, so every jansson block stays a
 * separate malloc that ASan can watch.
 */
#ifndef NT_JARENA_H
#define NT_JARENA_H

/* Routes jansson's allocations through the hooks (idempotent). Returns 1 when
 * installed, 0 when compiled out (sanitizer builds). */
int jarena_install(void);

/* Starts a scope on this thread: jansson values built until the matching
 * jarena_end come from the thread's chunks. Scopes nest; pass jarena_end what
 * jarena_begin returned. */
int jarena_begin(void);
void jarena_end(int token);

/* Blocks this thread has handed out from chunks so far (tests). */
unsigned long jarena_blocks_total(void);
/* Chunks taken from the reserved range so far, process-wide (tests). */
unsigned long jarena_chunks_total(void);

#endif

/*
 * alloc.h — the allocator of every layer that a test can make fail at the
 * N-th call (STYLE rule 9): vc_buf, engine/, store/ and fs/ allocate
 * through it, so one counter reaches them all and an allocation sweep runs
 * every error path between them.
 */
#ifndef VECFS_COMMON_ALLOC_H
#define VECFS_COMMON_ALLOC_H

#include <stddef.h>
#include <stdint.h>

/* malloc, calloc and realloc that fail on demand; memory is released with
 * free(). A size of 0 allocates 1 byte, so NULL always means ENOMEM (and
 * vc_realloc leaves p untouched when it returns NULL). */
void *vc_malloc(size_t n);
void *vc_calloc(size_t n, size_t size);
void *vc_realloc(void *p, size_t n);

/* Grows the array *p of old_n elements of elem bytes to n > old_n
 * (one vc_realloc), zeroing the new tail. 0, or -ENOMEM with *p
 * untouched. */
int vc_grow_zeroed(void **p, size_t old_n, size_t n, size_t elem);

/* strdup through vc_malloc (one counted call); NULL means ENOMEM. */
char *vc_strdup(const char *s);

/* Testing only: the n-th of the calls above from now on (1 = the next
 * one), in whichever thread makes it, returns NULL, once; 0 disarms.
 * Process-wide. Returns how many calls the previous arming still had to
 * go: 0 when it fired (or none was armed), so a test knows whether it hit. */
uint64_t vc_alloc_fail_at(uint64_t n);

#endif /* VECFS_COMMON_ALLOC_H */

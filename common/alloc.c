/*
 * alloc.c — allocation through one counter tests can arm (see alloc.h).
 *
 * Invariants
 *   1. Disarmed (the counter at 0), every call behaves as the libc call it
 *      wraps, except that a size of 0 is rounded up to 1.
 *   2. An armed failure fires once, at the n-th call counted from
 *      vc_alloc_fail_at, in whichever thread makes that call, then
 *      disarms: the counter only moves down by compare-and-swap, so two
 *      threads never both see the 1.
 */
#include "alloc.h"

#include <assert.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static _Atomic uint64_t fail_at;

uint64_t vc_alloc_fail_at(uint64_t n)
{
    return atomic_exchange(&fail_at, n);
}

/* True when this call is the armed one. */
static bool fail_now(void)
{
    uint64_t cur = atomic_load_explicit(&fail_at, memory_order_relaxed);
    while (cur != 0) {
        if (atomic_compare_exchange_weak(&fail_at, &cur, cur - 1))
            return cur == 1;
    }
    return false;
}

void *vc_malloc(size_t n)
{
    return fail_now() ? NULL : malloc(n ? n : 1);
}

void *vc_calloc(size_t n, size_t size)
{
    return fail_now() ? NULL : calloc(n ? n : 1, size ? size : 1);
}

void *vc_realloc(void *p, size_t n)
{
    return fail_now() ? NULL : realloc(p, n ? n : 1);
}

int vc_grow_zeroed(void **p, size_t old_n, size_t n, size_t elem)
{
    assert(n > old_n && elem > 0 && n <= SIZE_MAX / elem);
    void *grown = vc_realloc(*p, n * elem);
    if (!grown)
        return -ENOMEM;
    memset((char *)grown + old_n * elem, 0, (n - old_n) * elem);
    *p = grown;
    return 0;
}

char *vc_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = vc_malloc(n);
    if (p != NULL)
        memcpy(p, s, n);
    return p;
}

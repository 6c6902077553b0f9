/*
 * fuzz_store_filter.c — fuzz target for the filter language
 * (store/filter.c, st_filter_parse).
 *
 * Input: the filter text. Checks invariant 2 of filter.c on success
 * (bounded nodes and literals, a root, children inside the array and
 * acyclic by index order or depth, non-empty keys without NUL, NUL-
 * terminated literals that compare equal to themselves) and invariant 3
 * on failure (no filter, a message).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

/* Traps (the fuzzer's crash) after saying which check failed. */
#define check(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_store_filter: check failed at line %d: %s\n", __LINE__, #cond);  \
            __builtin_trap();                                                                      \
        }                                                                                          \
    } while (0)

/* Walks node i, checking links; returns the nodes seen. */
static size_t walk(const st_filter *f, int i, unsigned depth)
{
    check(i >= 0 && (size_t)i < f->nnodes);
    check(depth <= 2 * ST_FILTER_DEPTH_MAX + 2);
    const st_fnode *n = &f->nodes[i];
    size_t seen = 1;
    if (n->kind == ST_FK_AND || n->kind == ST_FK_OR || n->kind == ST_FK_NOT) {
        size_t kids = 0;
        for (int c = n->first; c >= 0; c = f->nodes[c].next) {
            seen += walk(f, c, depth + 1);
            kids++;
            check(kids <= f->nnodes);
        }
        check(kids >= 1);
        check(n->kind != ST_FK_NOT || kids == 1);
        return seen;
    }
    check(n->key < f->nkeys);
    const st_fstr *k = &f->keys[n->key];
    check(k->len > 0 && k->len <= ST_XATTR_NAME_MAX - 5 && strlen(k->p) == k->len);
    if (n->kind == ST_FK_EXISTS)
        return seen;
    check(n->nlit >= 1 && n->lit + n->nlit <= f->nlits);
    for (uint32_t j = 0; j < n->nlit; j++) {
        const st_flit *l = &f->lits[n->lit + j];
        check(l->len <= ST_XATTR_VALUE_MAX && l->p[l->len] == '\0');
        check(st_filter_cmp(l->p, l->len, l) == 0);
    }
    return seen;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    st_filter *f = (st_filter *)1;
    char err[ST_FILTER_ERR_MAX];
    int rc = st_filter_parse((const char *)data, size, &f, err, sizeof err);
    if (rc) {
        check(f == NULL);
        check(rc == -EINVAL || rc == -E2BIG || rc == -ENOMEM);
        check(rc == -ENOMEM || (err[0] != '\0' && memchr(err, '\0', sizeof err)));
        return 0;
    }
    check(err[0] == '\0');
    if (f) {
        check(f->nnodes <= ST_FILTER_NODES_MAX && f->nlits <= ST_FILTER_LITS_MAX);
        check(walk(f, f->root, 0) <= f->nnodes);
    }
    st_filter_free(f);
    return 0;
}

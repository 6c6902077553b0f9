/*
 * apply_order.c — the order in which committed operations change a
 * collection's memory (its index, names and counters): commit order.
 *
 * With group commit an operation's records are written (under the
 * collection's wlock) some time before its group commits, and the
 * operation changes the memory only after the commit, without the wlock,
 * so the next operation of the collection can join the same group. The
 * wlock hands out tickets in the order the operations wrote, which is
 * the order LMDB commits them; each operation waits for its ticket's turn
 * before it applies.
 *
 * Invariants
 *   1. tickets_done <= tickets_issued; a ticket's turn comes after every
 *      earlier ticket's turn ended, whether it applied or its group failed.
 *   2. With the wlock held and tickets_done == tickets_issued, the memory
 *      equals the committed records, and stays so until the wlock is
 *      released (new tickets need the wlock).
 *
 * Lock: c->mu protects the counters (apply_cv signals turn ends).
 */
#include "internal.h"

uint64_t st_apply_ticket(st_coll *c)
{
    pthread_mutex_lock(&c->mu);
    uint64_t t = c->tickets_issued++;
    pthread_mutex_unlock(&c->mu);
    return t;
}

void st_apply_turn(st_coll *c, uint64_t ticket)
{
    pthread_mutex_lock(&c->mu);
    while (c->tickets_done != ticket)
        pthread_cond_wait(&c->apply_cv, &c->mu);
    pthread_mutex_unlock(&c->mu);
}

void st_apply_turn_end(st_coll *c)
{
    pthread_mutex_lock(&c->mu);
    c->tickets_done++;
    pthread_cond_broadcast(&c->apply_cv);
    pthread_mutex_unlock(&c->mu);
}

void st_coll_lock_settled(st_coll *c)
{
    pthread_mutex_lock(&c->wlock);
    pthread_mutex_lock(&c->mu);
    while (c->tickets_done != c->tickets_issued)
        pthread_cond_wait(&c->apply_cv, &c->mu);
    pthread_mutex_unlock(&c->mu);
}

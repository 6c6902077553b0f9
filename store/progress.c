/*
 * progress.c — how long work (a check, an index rebuild) tells its caller
 * how far it got, through st_options.progress.
 *
 * The caller's callback is called at most about PROGRESS_STEPS times per
 * piece of work, plus once at its end, so a fast loop pays one compare per
 * item; rates and terminal output are the caller's (fs/progress.c).
 */
#include "internal.h"

/* Reports per piece of work, besides the last. */
#define PROGRESS_STEPS 200u

void st_progress_start(st_progress *p, const st_options *o, const char *what, uint64_t total)
{
    *p = (st_progress){.fn = o->progress, .ctx = o->progress_ctx, .what = what, .total = total};
    p->step = total / PROGRESS_STEPS > 0 ? total / PROGRESS_STEPS : 1;
    p->next = p->step;
    if (p->fn)
        p->fn(p->ctx, what, 0, total);
}

void st_progress_add(st_progress *p, uint64_t n)
{
    p->done += n;
    if (p->fn == NULL || p->done < p->next)
        return;
    p->next = p->done + p->step;
    /* Totals are estimates taken at the start: never show more than all. */
    p->fn(p->ctx, p->what, p->done < p->total ? p->done : p->total, p->total);
}

void st_progress_end(st_progress *p)
{
    if (p->fn)
        p->fn(p->ctx, p->what, p->total, p->total);
}

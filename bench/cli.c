/*
 * cli.c — bench_usage_error (cli.h). No state.
 */
#include "cli.h"

#include <stdarg.h>
#include <stdio.h>

int bench_usage_error(const char *prog, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "%s: ", prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\ntry '%s --help'\n", prog);
    return 2;
}

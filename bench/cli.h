/*
 * cli.h — what the benchmark programs' command lines share: the one way
 * a bad argument is reported (exit status 2 and a first stderr line
 * "<program>: <what is wrong>", which bench/expect-usage-error.sh checks).
 */
#ifndef VECFS_BENCH_CLI_H
#define VECFS_BENCH_CLI_H

/* Prints "<prog>: <message>" and a hint to run `<prog> --help` on stderr;
 * returns 2, the exit status of a usage error. */
int bench_usage_error(const char *prog, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif /* VECFS_BENCH_CLI_H */

/*
 * http.h — the metrics and health endpoint (--metrics-listen, SPEC §6):
 *
 *   GET /metrics   Prometheus text, the same document as .vecfs/metrics
 *   GET /livez     200 "ok\n" while the process serves requests
 *   GET /readyz    200 "ok\n" when mounted, the store is open and healthy;
 *                  503 with the reasons (one per line) otherwise
 *   GET /health    the text of .vecfs/health
 *
 * With a certificate and key the endpoint speaks only TLS; with a client CA
 * as well, a request without a client certificate that this CA signed gets
 * 403. The server runs on its own thread (libmicrohttpd) and only calls the
 * non-blocking renderers of ops_admin.c, so a scrape never waits for writers.
 */
#ifndef VECFS_FS_HTTP_H
#define VECFS_FS_HTTP_H

#include <stdbool.h>
#include <stddef.h>

struct fsd;
typedef struct fsd_http fsd_http;

typedef struct fsd_http_params {
    const char *listen;    /* "HOST:PORT", "[v6]:PORT" or ":PORT" (all addresses) */
    const char *tls_cert;  /* PEM file or NULL (plain HTTP) */
    const char *tls_key;   /* PEM file; required with tls_cert */
    const char *client_ca; /* PEM file or NULL: require client certs it signed */
} fsd_http_params;

/* true if this build has the endpoint (libmicrohttpd and GnuTLS found). */
bool fsd_http_available(void);

/* Starts the endpoint for daemon d. On error writes one line into msg.
 * Returns 0, -EINVAL (bad listen address or option combination), -ENOENT
 * or -EACCES (a PEM file), -EADDRINUSE or another errno when the socket
 * cannot be bound, -ENOTSUP (built without the endpoint). */
int fsd_http_start(struct fsd *d, const fsd_http_params *p, fsd_http **out, char *msg,
                   size_t msglen);

/* Marks the filesystem as mounted (ready) or not. */
void fsd_http_set_ready(fsd_http *h, bool ready);

/* Stops the server thread and frees h. NULL is a no-op. */
void fsd_http_stop(fsd_http *h);

#endif /* VECFS_FS_HTTP_H */

/*
 * http.c — /metrics, /livez, /readyz, /health over HTTP or HTTPS (see
 * http.h), on libmicrohttpd's internal polling thread.
 *
 * Invariants
 *   1. Every response is built from a fresh render into a private buffer
 *      that libmicrohttpd copies (MHD_RESPMEM_MUST_COPY); nothing a
 *      response points at is shared with FUSE threads.
 *   2. `ready` is an atomic written by the main thread (mounted /
 *      unmounting) and read by the server thread.
 *   3. With a client CA, no handler runs for a connection whose client
 *      certificate does not verify against it.
 */
#include "http.h"

#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsd.h"
#include "alloc.h"

#ifdef VECFS_HAVE_HTTP

#include <arpa/inet.h>
#include <gnutls/gnutls.h>
#include <microhttpd.h>
#include <netdb.h>
#include <sys/socket.h>

struct fsd_http {
    struct MHD_Daemon *mhd; /* immutable after start */
    fsd *d;                 /* immutable */
    bool need_client_cert;  /* immutable */
    atomic_bool ready;
    char *cert, *key, *ca; /* PEM texts, kept for the daemon's lifetime */
};

bool fsd_http_available(void)
{
    return true;
}

/* Reads a PEM file whole into a NUL-terminated vc_malloc'd string; NULL
 * with *err set on failure. */
static char *read_pem(const char *path, int *err)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        *err = -errno;
        return NULL;
    }
    vc_buf b = VC_BUF_INIT;
    char chunk[4096];
    size_t n;
    int rc = 0;
    while (rc == 0 && (n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (b.len + n > (1u << 20))
            rc = -EFBIG;
        else
            rc = vc_buf_append(&b, chunk, n);
    }
    fclose(f);
    if (rc == 0 && b.len == 0)
        rc = -EINVAL;
    if (rc < 0) {
        vc_buf_release(&b);
        *err = rc;
        return NULL;
    }
    size_t len;
    return vc_buf_detach(&b, &len);
}

/* Queues a response of status with len bytes of text (copied). */
static enum MHD_Result send_text(struct MHD_Connection *c, unsigned status, const char *ctype,
                                 const char *text, size_t len)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)text, MHD_RESPMEM_MUST_COPY);
    if (r == NULL)
        return MHD_NO;
    MHD_add_response_header(r, "Content-Type", ctype);
    MHD_add_response_header(r, "Cache-Control", "no-store");
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

/* True if the connection's client certificate verifies against the CA. */
static bool client_cert_ok(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    if (ci == NULL || ci->tls_session == NULL)
        return false;
    gnutls_session_t s = (gnutls_session_t)ci->tls_session;
    unsigned int n = 0;
    if (gnutls_certificate_get_peers(s, &n) == NULL || n == 0)
        return false;
    unsigned int status = 0;
    return gnutls_certificate_verify_peers2(s, &status) == GNUTLS_E_SUCCESS && status == 0;
}

/* libmicrohttpd's request handler: GET /metrics, /livez, /readyz, /health. */
static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **con_cls)
{
    (void)version;
    (void)upload;
    fsd_http *h = cls;
    if (*con_cls == NULL) {
        /* First call for this request: headers only. */
        *con_cls = h;
        return MHD_YES;
    }
    if (*upload_size != 0) {
        *upload_size = 0;
        return MHD_YES;
    }
    static const char text[] = "text/plain; charset=utf-8";
    if (h->need_client_cert && !client_cert_ok(c))
        return send_text(c, MHD_HTTP_FORBIDDEN, text, "client certificate required\n", 28);
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return send_text(c, MHD_HTTP_METHOD_NOT_ALLOWED, text, "GET only\n", 9);
    if (strcmp(url, "/livez") == 0)
        return send_text(c, MHD_HTTP_OK, text, "ok\n", 3);
    vc_buf b = VC_BUF_INIT;
    enum MHD_Result ret;
    if (strcmp(url, "/metrics") == 0) {
        int rc = fsd_admin_render(h->d, FSD_K_ADMIN_METRICS, &b);
        ret = rc == 0 ? send_text(c, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8",
                                  b.p ? b.p : "", b.len)
                      : send_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, text, "error\n", 6);
    } else if (strcmp(url, "/health") == 0 || strcmp(url, "/readyz") == 0) {
        int rc = fsd_admin_render(h->d, FSD_K_ADMIN_HEALTH, &b);
        bool healthy = rc == 0 && b.len == 3 && memcmp(b.p, "ok\n", 3) == 0;
        if (strcmp(url, "/readyz") == 0 && !atomic_load(&h->ready)) {
            vc_buf_reset(&b);
            rc = vc_buf_printf(&b, "not mounted\n");
            healthy = false;
        }
        if (rc < 0)
            ret = send_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, text, "error\n", 6);
        else
            ret = send_text(c, healthy ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE, text,
                            b.p ? b.p : "", b.len);
    } else {
        ret = send_text(c, MHD_HTTP_NOT_FOUND, text, "not found\n", 10);
    }
    vc_buf_release(&b);
    return ret;
}

/* Parses "HOST:PORT" / "[V6]:PORT" / ":PORT" into an address. */
static int parse_listen(const char *s, struct sockaddr_storage *ss, char *msg, size_t msglen)
{
    char host[256];
    const char *colon = strrchr(s, ':');
    if (colon == NULL || colon[1] == '\0') {
        snprintf(msg, msglen, "--metrics-listen %s: expected HOST:PORT", s);
        return -EINVAL;
    }
    size_t hl = (size_t)(colon - s);
    if (hl >= sizeof host) {
        snprintf(msg, msglen, "--metrics-listen %s: host too long", s);
        return -EINVAL;
    }
    memcpy(host, s, hl);
    host[hl] = '\0';
    if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
        memmove(host, host + 1, hl - 2);
        host[hl - 2] = '\0';
    }
    /* getaddrinfo takes "99999" and wraps it to a 16-bit port: check first. */
    const char *ps = colon + 1;
    char *end = NULL;
    errno = 0;
    unsigned long port = ps[0] >= '0' && ps[0] <= '9' ? strtoul(ps, &end, 10) : ULONG_MAX;
    if (errno != 0 || end == NULL || *end != '\0' || port > 65535) {
        snprintf(msg, msglen, "--metrics-listen %s: port must be 0..65535 (0: any free port)", s);
        return -EINVAL;
    }
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int g = getaddrinfo(host[0] ? host : NULL, colon + 1, &hints, &res);
    if (g != 0 || res == NULL) {
        snprintf(msg, msglen, "--metrics-listen %s: %s", s, gai_strerror(g));
        return -EINVAL;
    }
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    return 0;
}

int fsd_http_start(fsd *d, const fsd_http_params *p, fsd_http **out, char *msg, size_t msglen)
{
    *out = NULL;
    if ((p->tls_cert == NULL) != (p->tls_key == NULL)) {
        snprintf(msg, msglen, "--tls-cert and --tls-key go together");
        return -EINVAL;
    }
    if (p->client_ca != NULL && p->tls_cert == NULL) {
        snprintf(msg, msglen, "--tls-client-ca needs --tls-cert and --tls-key");
        return -EINVAL;
    }
    struct sockaddr_storage ss;
    int rc = parse_listen(p->listen, &ss, msg, msglen);
    if (rc < 0)
        return rc;
    fsd_http *h = vc_calloc(1, sizeof *h);
    if (h == NULL) {
        snprintf(msg, msglen, "out of memory");
        return -ENOMEM;
    }
    h->d = d;
    atomic_init(&h->ready, false);
    const char *files[3] = {p->tls_cert, p->tls_key, p->client_ca};
    char **texts[3] = {&h->cert, &h->key, &h->ca};
    for (int i = 0; i < 3; i++) {
        if (files[i] == NULL)
            continue;
        *texts[i] = read_pem(files[i], &rc);
        if (*texts[i] == NULL) {
            snprintf(msg, msglen, "%s: %s", files[i], strerror(-rc));
            fsd_http_stop(h);
            return rc;
        }
    }
    h->need_client_cert = h->ca != NULL;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
    if (h->cert != NULL)
        flags |= MHD_USE_TLS;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    uint16_t port = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                             : ntohs(((struct sockaddr_in *)&ss)->sin_port);
    struct MHD_OptionItem opts[8];
    int n = 0;
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_SOCK_ADDR, 0, &ss};
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_TIMEOUT, 10, NULL};
    if (h->cert != NULL) {
        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, h->cert};
        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, h->key};
    }
    if (h->ca != NULL)
        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_TRUST, 0, h->ca};
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
    errno = 0;
    h->mhd = MHD_start_daemon(flags, port, NULL, NULL, handle, h, MHD_OPTION_ARRAY, opts,
                              MHD_OPTION_END);
    if (h->mhd == NULL) {
        rc = errno ? -errno : -EINVAL;
        snprintf(msg, msglen, "--metrics-listen %s: cannot serve there (%s)", p->listen,
                 errno ? strerror(errno) : "bad TLS certificate or key?");
        fsd_http_stop(h);
        return rc;
    }
    /* Log where it listens: with port 0 the kernel chose the port. */
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->mhd, MHD_DAEMON_INFO_BIND_PORT);
    char host[INET6_ADDRSTRLEN] = "?";
    const void *addr = ss.ss_family == AF_INET6
                           ? (const void *)&((struct sockaddr_in6 *)&ss)->sin6_addr
                           : (const void *)&((struct sockaddr_in *)&ss)->sin_addr;
    (void)inet_ntop(ss.ss_family, addr, host, sizeof host);
    fsd_log(FSD_LOG_INFO, "metrics endpoint on %s%s%s:%u%s", ss.ss_family == AF_INET6 ? "[" : "",
            host, ss.ss_family == AF_INET6 ? "]" : "", info != NULL ? info->port : port,
            h->cert != NULL ? " (TLS)" : "");
    *out = h;
    return 0;
}

void fsd_http_set_ready(fsd_http *h, bool ready)
{
    if (h != NULL)
        atomic_store(&h->ready, ready);
}

void fsd_http_stop(fsd_http *h)
{
    if (h == NULL)
        return;
    if (h->mhd != NULL)
        MHD_stop_daemon(h->mhd);
    free(h->cert);
    if (h->key != NULL)
        memset(h->key, 0, strlen(h->key));
    free(h->key);
    free(h->ca);
    free(h);
}

#else /* !VECFS_HAVE_HTTP */

struct fsd_http {
    int unused;
};

bool fsd_http_available(void)
{
    return false;
}

int fsd_http_start(fsd *d, const fsd_http_params *p, fsd_http **out, char *msg, size_t msglen)
{
    (void)d;
    (void)p;
    *out = NULL;
    snprintf(msg, msglen,
             "--metrics-listen: this build has no HTTP endpoint "
             "(install libmicrohttpd-dev and rebuild)");
    return -ENOTSUP;
}

void fsd_http_set_ready(fsd_http *h, bool ready)
{
    (void)h;
    (void)ready;
}

void fsd_http_stop(fsd_http *h)
{
    (void)h;
}

#endif /* VECFS_HAVE_HTTP */

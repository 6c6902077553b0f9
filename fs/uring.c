/*
 * uring.c — FUSE requests through the kernel's io_uring queues (vecfs
 * --io-uring); libfuse still parses and dispatches every request.
 *
 * Why: through /dev/fuse a one-at-a-time client pays, per request, the
 * kernel's wake-up of a worker asleep in read(/dev/fuse) (which then often
 * finds the request taken by the polling worker of dev_read.c) besides the
 * wake-up of the client by the answer (docs/performance.md, "Fewer
 * wake-ups per query"). With FUSE over io_uring (Linux 6.14+, module
 * parameter enable_uring) the kernel queues a request on the queue of the
 * CPU its caller runs on and completes one waiting command of that queue:
 * exactly one thread, pinned to that CPU, is woken, and nobody else.
 *
 * How (libfuse 3.14 has no io_uring): libfuse's custom I/O stays installed
 * (dev_read.c reads /dev/fuse, which keeps carrying INIT, FORGET and
 * INTERRUPT). This file wraps it: the INIT reply gets FUSE_OVER_IO_URING
 * when the kernel offered it and every entry's buffers exist; then each
 * entry's thread registers its entry (REGISTER), and once every queue has
 * one the kernel sends all other requests through them. A thread copies a
 * request's header and first argument just in front of its payload, so
 * the request is one buffer as read(/dev/fuse) returns it, and hands it to
 * fuse_session_process_buf; the reply (writev with the request's unique)
 * is copied into the entry and committed with COMMIT_AND_FETCH, which also
 * waits for the next request, in one io_uring_enter.
 *
 * States of the transport
 *   WAIT (installed; threads wait for INIT's reply) -> GO (the reply asked
 *   for the queues: each thread registers its entry and serves it until
 *   its command ends: unmount, abort, or fsd_uring_stop) or OFF (the
 *   kernel did not offer the queues, or buffers failed: threads end,
 *   requests keep coming through /dev/fuse).
 *
 * Invariants
 *   1. Everything that can fail is done before the INIT reply asks for the
 *      queues: rings, buffers and threads exist. The kernel blocks every
 *      request from the reply until each queue has an entry, so a queue
 *      that never registered would hang the mount.
 *   2. An entry belongs to one thread: only it submits on its ring; a
 *      reply is committed by the thread that handles the request (vecfs'
 *      handlers reply before they return); a handler that returns without
 *      a reply gets EIO committed, so the entry is never lost.
 *   3. Writes that are not the reply of the thread's ring request
 *      (notifications, replies to /dev/fuse requests) go to dev_read.c.
 *   4. One session per process: the state below is the process's.
 */
#include "uring.h"

#include "alloc.h"
#include "dev_read.h"
#include "fanout.h"
#include "fuse_uring_abi.h"
#include "log.h"
#include "metrics.h"

#include <errno.h>
#include <liburing.h>
#include <poll.h>
#include <linux/fuse.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/sysinfo.h>
#include <unistd.h>

/* user_data of the two kinds of completions on an entry's ring. */
enum { CQE_FUSE = 1, CQE_STOP = 2 };

/* Room in front of the payload for a request's header and first argument
 * (the kernel delivers these apart from the payload). */
#define HEAD_ROOM (sizeof(struct fuse_in_header) + FSD_FUSE_URING_OP_IN_OUT_SZ)

/* The kernel's FUSE_MIN_READ_BUFFER and FUSE_DEFAULT_MAX_PAGES_PER_REQ,
 * from which it computes the payload size an entry must have. */
#define KERNEL_MIN_PAYLOAD 8192u
#define KERNEL_DEFAULT_MAX_PAGES 32u

typedef enum rings_state { RINGS_WAIT, RINGS_GO, RINGS_OFF } rings_state;

/* One ring entry with its own thread and io_uring. */
typedef struct ring_ent {
    struct io_uring ring;
    bool ring_made;
    bool thread_made;
    pthread_t thread;
    unsigned qid;                   /* the CPU whose requests it serves */
    fsd_fuse_uring_req_header *hdr; /* iov[0] */
    char *area;                     /* HEAD_ROOM, then the payload: iov[1] */
    struct iovec iov[2];
    uint64_t unique; /* the request in hand; 0 when none */
} ring_ent;

static struct {
    struct fuse_session *se;
    int stop_fd; /* eventfd: written once by fsd_uring_stop */
    ring_ent *ents;
    unsigned n, nqueues;
    size_t payload; /* bytes of each entry's payload buffer */
    pthread_mutex_t lock;
    pthread_cond_t changed;
    rings_state state;
    uint64_t init_unique; /* INIT's unique while its reply is due */
    bool offered;         /* the INIT request offered the queues */
} U = {.stop_fd = -1,
       .lock = PTHREAD_MUTEX_INITIALIZER,
       .changed = PTHREAD_COND_INITIALIZER,
       .state = RINGS_WAIT};

/* The entry whose request this thread handles. */
static _Thread_local ring_ent *current;

/* How many queues the kernel makes: its num_possible_cpus(). */
static unsigned possible_cpus(void)
{
    FILE *f = fopen("/sys/devices/system/cpu/possible", "re");
    unsigned n = 0;
    if (f != NULL) {
        unsigned a, b;
        char sep;
        while (fscanf(f, "%u", &a) == 1) {
            b = a;
            int c = fscanf(f, "%c", &sep);
            if (c == 1 && sep == '-' && fscanf(f, "%u", &b) == 1)
                c = fscanf(f, "%c", &sep);
            n += b >= a ? b - a + 1 : 0;
            if (c != 1 || sep != ',')
                break;
        }
        fclose(f);
    }
    return n > 0 ? n : (unsigned)get_nprocs_conf();
}

static void set_state(rings_state s)
{
    pthread_mutex_lock(&U.lock);
    U.state = s;
    pthread_cond_broadcast(&U.changed);
    pthread_mutex_unlock(&U.lock);
}

/* Queues one FUSE command of e (REGISTER, or COMMIT_AND_FETCH of unique). */
static void queue_cmd(ring_ent *e, uint32_t op, uint64_t unique)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&e->ring);
    /* The ring has room: at most this command and the stop poll. */
    io_uring_prep_rw(IORING_OP_URING_CMD, sqe, fuse_session_fd(U.se), e->iov, 2, 0);
    sqe->cmd_op = op;
    fsd_fuse_uring_cmd_req req = {.commit_id = unique, .qid = (uint16_t)e->qid};
    memcpy(sqe->cmd, &req, sizeof req);
    io_uring_sqe_set_data64(sqe, CQE_FUSE);
}

/* Commits the reply iov[0..count) (out header, then its arguments) of e's
 * request. Returns the bytes taken, or -1 with errno EINVAL when the
 * arguments exceed the payload buffer (then EIO is committed instead). */
static ssize_t commit_reply(ring_ent *e, const struct iovec *iov, int count)
{
    struct fuse_out_header oh;
    memcpy(&oh, iov[0].iov_base, sizeof oh);
    size_t len = 0;
    for (int i = 1; i < count; i++)
        len += iov[i].iov_len;
    ssize_t rc = (ssize_t)(sizeof oh + len);
    if (len > U.payload) {
        oh.error = -EIO;
        len = 0;
        rc = -1;
    }
    char *to = e->area + HEAD_ROOM;
    for (int i = 1; i < count && len > 0; i++) {
        memmove(to, iov[i].iov_base, iov[i].iov_len); /* may come from the request */
        to += iov[i].iov_len;
    }
    memcpy(e->hdr->in_out, &oh, sizeof oh);
    e->hdr->ring_ent_in_out.payload_sz = (uint32_t)len;
    queue_cmd(e, FSD_FUSE_IO_URING_CMD_COMMIT_AND_FETCH, e->unique);
    e->unique = 0;
    if (rc < 0)
        errno = EINVAL;
    return rc;
}

/* Commits an error reply err (negative errno) for e's request. */
static void commit_error(ring_ent *e, int err)
{
    struct fuse_out_header oh = {.len = sizeof oh, .error = err, .unique = e->unique};
    struct iovec iov = {.iov_base = &oh, .iov_len = sizeof oh};
    commit_reply(e, &iov, 1);
}

/* The request the kernel put in e: one buffer as /dev/fuse gives it,
 * handed to libfuse (which replies through uring_writev). */
static void handle_request(ring_ent *e)
{
    struct fuse_in_header ih;
    memcpy(&ih, e->hdr->in_out, sizeof ih);
    uint32_t payload = e->hdr->ring_ent_in_out.payload_sz;
    e->unique = e->hdr->ring_ent_in_out.commit_id;
    if (ih.len < sizeof ih + payload || payload > U.payload ||
        ih.len - sizeof ih - payload > FSD_FUSE_URING_OP_IN_OUT_SZ) {
        fsd_log(FSD_LOG_ERROR, "io_uring queue %u: request of %u bytes with %u of payload: refused",
                e->qid, ih.len, payload);
        commit_error(e, -EIO);
        return;
    }
    size_t op_len = ih.len - sizeof ih - payload;
    char *start = e->area + HEAD_ROOM - op_len - sizeof ih;
    memcpy(start, &ih, sizeof ih);
    memcpy(start + sizeof ih, e->hdr->op_in, op_len);
    struct fuse_buf buf = {.size = ih.len, .mem = start};
    fsd_metrics_ring_request();
    current = e;
    fuse_session_process_buf(U.se, &buf);
    current = NULL;
    if (e->unique != 0) /* invariant 2: no reply came */
        commit_error(e, -EIO);
}

/* GO: registers e and serves its requests until its command ends or
 * fsd_uring_stop. */
static void serve_entry(ring_ent *e)
{
    cpu_set_t cpus;
    CPU_ZERO(&cpus);
    CPU_SET(e->qid, &cpus);
    /* On a CPU that is not online the thread runs anywhere: its queue only
     * gets requests once that CPU runs callers. */
    (void)pthread_setaffinity_np(pthread_self(), sizeof cpus, &cpus);
    struct io_uring_sqe *sqe = io_uring_get_sqe(&e->ring);
    io_uring_prep_poll_add(sqe, U.stop_fd, POLLIN);
    io_uring_sqe_set_data64(sqe, CQE_STOP);
    queue_cmd(e, FSD_FUSE_IO_URING_CMD_REGISTER, 0);
    for (;;) {
        int rc = io_uring_submit_and_wait(&e->ring, 1);
        if (rc < 0 && rc != -EINTR) {
            fsd_log(FSD_LOG_ERROR, "io_uring queue %u: %s", e->qid, strerror(-rc));
            return;
        }
        struct io_uring_cqe *cqe;
        while (io_uring_peek_cqe(&e->ring, &cqe) == 0) {
            uint64_t kind = io_uring_cqe_get_data64(cqe);
            int res = cqe->res;
            io_uring_cqe_seen(&e->ring, cqe);
            if (kind == CQE_STOP)
                return;
            if (res < 0) {
                /* ENOTCONN and ECONNABORTED: unmounted or aborted. */
                if (res != -ENOTCONN && res != -ECONNABORTED && res != -ECANCELED)
                    fsd_log(FSD_LOG_WARN, "io_uring queue %u: the kernel ended its entry: %s",
                            e->qid, strerror(-res));
                return;
            }
            handle_request(e);
        }
    }
}

static void *entry_thread(void *arg)
{
    ring_ent *e = arg;
    pthread_mutex_lock(&U.lock);
    while (U.state == RINGS_WAIT)
        pthread_cond_wait(&U.changed, &U.lock);
    bool go = U.state == RINGS_GO;
    pthread_mutex_unlock(&U.lock);
    if (go)
        serve_entry(e);
    return NULL;
}

/* Allocates every entry's buffers for the payload size the INIT reply
 * out sets. Returns 0 or -ENOMEM. */
static int make_buffers(const struct fuse_init_out *out)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t pages = out->flags & FUSE_MAX_PAGES ? (out->max_pages ? out->max_pages : 1)
                                               : KERNEL_DEFAULT_MAX_PAGES;
    size_t payload = KERNEL_MIN_PAYLOAD;
    if (out->max_write > payload)
        payload = out->max_write;
    if (pages * page > payload)
        payload = pages * page;
    U.payload = payload;
    for (unsigned i = 0; i < U.n; i++) {
        ring_ent *e = &U.ents[i];
        e->hdr = vc_calloc(1, sizeof *e->hdr);
        e->area = vc_malloc(HEAD_ROOM + payload);
        if (e->hdr == NULL || e->area == NULL)
            return -ENOMEM;
        e->iov[0] = (struct iovec){.iov_base = e->hdr, .iov_len = sizeof *e->hdr};
        e->iov[1] = (struct iovec){.iov_base = e->area + HEAD_ROOM, .iov_len = payload};
    }
    return 0;
}

/* The INIT reply iov: asks for the queues when the kernel offered them and
 * the buffers exist. Returns the state the threads go to once it is
 * written. */
static rings_state patch_init_reply(struct iovec *iov, int count)
{
    if (!U.offered) {
        fsd_log(FSD_LOG_WARN,
                "--io-uring: the kernel does not offer FUSE over io_uring (needs Linux 6.14+ "
                "and /sys/module/fuse/parameters/enable_uring = Y); requests go through "
                "/dev/fuse");
        return RINGS_OFF;
    }
    if (count < 2 || iov[1].iov_len < offsetof(struct fuse_init_out, flags2) + 4) {
        fsd_log(FSD_LOG_WARN, "--io-uring: INIT reply without flags2; requests go through "
                              "/dev/fuse");
        return RINGS_OFF;
    }
    struct fuse_init_out *out = iov[1].iov_base;
    if (make_buffers(out) < 0) {
        fsd_log(FSD_LOG_WARN,
                "--io-uring: no memory for %u buffers of %zu bytes; requests go "
                "through /dev/fuse",
                U.n, U.payload);
        return RINGS_OFF;
    }
    out->flags |= FUSE_INIT_EXT;
    out->flags2 |= FSD_FUSE_OVER_IO_URING_FLAGS2;
    return RINGS_GO;
}

/* fuse_custom_io.read: dev_read.c's, noting whether INIT offers the
 * queues. */
static ssize_t uring_read(int fd, void *buf, size_t len, void *userdata)
{
    ssize_t n = fsd_dev_read(fd, buf, len, userdata);
    const struct fuse_in_header *ih = buf;
    if (n >= (ssize_t)(sizeof *ih + sizeof(struct fuse_init_in)) && ih->opcode == FUSE_INIT) {
        const struct fuse_init_in *in = (const void *)(ih + 1);
        U.offered = (in->flags & FUSE_INIT_EXT) && (in->flags2 & FSD_FUSE_OVER_IO_URING_FLAGS2);
        U.init_unique = ih->unique;
    }
    return n;
}

/* fuse_custom_io.writev: the reply of this thread's ring request is
 * committed to its entry; everything else goes to dev_read.c. */
static ssize_t uring_writev(int fd, struct iovec *iov, int count, void *userdata)
{
    const struct fuse_out_header *oh = iov[0].iov_base;
    if (current != NULL && oh->unique == current->unique && oh->unique != 0)
        return commit_reply(current, iov, count);
    if (U.init_unique == 0 || oh->unique != U.init_unique || oh->error != 0)
        return fsd_dev_writev(fd, iov, count, userdata);
    U.init_unique = 0;
    rings_state next = patch_init_reply(iov, count);
    ssize_t n = fsd_dev_writev(fd, iov, count, userdata);
    if (n < 0)
        next = RINGS_OFF;
    if (next == RINGS_GO) {
        fsd_dev_read_set_polling(false);
        fsd_log(FSD_LOG_INFO, "--io-uring: %u queues of %u entries, %zu-byte payloads", U.nqueues,
                U.n / U.nqueues, U.payload);
    }
    set_state(next);
    return n;
}

int fsd_uring_install(struct fuse_session *se, unsigned threads)
{
    if (U.ents != NULL || fuse_session_fd(se) < 0)
        return -EINVAL;
    U.se = se;
    /* Batches fanned out from a pinned thread (an import's index build, a
     * batch query) run on every CPU the daemon was given, not on the one
     * its caller's queue pins: 47 % of a direct import against 79-82 %
     * before (docs/performance.md, "Quiet reruns ... seventh session"). */
    cpu_set_t cpus;
    if (sched_getaffinity(0, sizeof cpus, &cpus) == 0)
        vc_fanout_set_cpus(&cpus);
    U.nqueues = possible_cpus();
    U.n = threads > U.nqueues ? threads - threads % U.nqueues : U.nqueues;
    U.ents = vc_calloc(U.n, sizeof *U.ents);
    U.stop_fd = eventfd(0, EFD_CLOEXEC);
    int rc = U.ents == NULL ? -ENOMEM : U.stop_fd < 0 ? -errno : 0;
    for (unsigned i = 0; i < U.n && rc == 0; i++) {
        ring_ent *e = &U.ents[i];
        e->qid = i % U.nqueues;
        struct io_uring_params p = {.flags = IORING_SETUP_SQE128 | IORING_SETUP_COOP_TASKRUN};
        rc = io_uring_queue_init_params(4, &e->ring, &p);
        e->ring_made = rc == 0;
    }
    for (unsigned i = 0; i < U.n && rc == 0; i++) {
        ring_ent *e = &U.ents[i];
        rc = -pthread_create(&e->thread, NULL, entry_thread, e);
        e->thread_made = rc == 0;
    }
    static const struct fuse_custom_io io = {.writev = uring_writev, .read = uring_read};
    if (rc == 0)
        rc = fsd_dev_read_install(se, &io);
    if (rc < 0)
        fsd_uring_stop();
    return rc;
}

void fsd_uring_stop(void)
{
    if (U.ents == NULL)
        return;
    pthread_mutex_lock(&U.lock);
    if (U.state == RINGS_WAIT)
        U.state = RINGS_OFF;
    pthread_cond_broadcast(&U.changed);
    pthread_mutex_unlock(&U.lock);
    if (U.stop_fd >= 0) {
        uint64_t one = 1;
        ssize_t w = write(U.stop_fd, &one, sizeof one);
        (void)w;
    }
    for (unsigned i = 0; i < U.n; i++) {
        ring_ent *e = &U.ents[i];
        if (e->thread_made)
            pthread_join(e->thread, NULL);
        if (e->ring_made)
            io_uring_queue_exit(&e->ring);
        free(e->hdr);
        free(e->area);
    }
    free(U.ents);
    U.ents = NULL;
    if (U.stop_fd >= 0)
        close(U.stop_fd);
    U.stop_fd = -1;
}

/*
 * fuse_uring_abi.h — the kernel's FUSE-over-io_uring interface (FUSE
 * protocol 7.42, Linux 6.14 and later), for uring.c.
 *
 * Why our own header: Debian 12's linux-libc-dev (6.1) predates it, and
 * libfuse 3.14 does not speak it. The layouts below are the kernel's
 * (include/uapi/linux/fuse.h); names carry our prefix so that a newer
 * <linux/fuse.h> never clashes with them.
 */
#ifndef FSD_FUSE_URING_ABI_H
#define FSD_FUSE_URING_ABI_H

#include <stdint.h>

/* FUSE_OVER_IO_URING, bit 41 of the INIT flags: as it sits in flags2 (the
 * upper 32 bits), in the kernel's INIT request (the kernel offers it: the
 * module parameter enable_uring is Y) and in the daemon's reply (the
 * daemon will register queues). Both need FUSE_INIT_EXT in flags. */
#define FSD_FUSE_OVER_IO_URING_FLAGS2 (1u << (41 - 32))

/* Sizes of the two fixed areas at the start of an entry's header buffer. */
#define FSD_FUSE_URING_IN_OUT_HEADER_SZ 128
#define FSD_FUSE_URING_OP_IN_OUT_SZ 128

/* The kernel reads and writes this at the end of an entry's header. */
typedef struct fsd_fuse_uring_ent_in_out {
    uint64_t flags;
    uint64_t commit_id;  /* the request's unique: echoed in the commit */
    uint32_t payload_sz; /* bytes used in the payload buffer, either way */
    uint32_t padding;
    uint64_t reserved;
} fsd_fuse_uring_ent_in_out;

/* iov[0] of a REGISTER: one entry's header buffer. */
typedef struct fsd_fuse_uring_req_header {
    /* struct fuse_in_header on a request, struct fuse_out_header on a reply */
    char in_out[FSD_FUSE_URING_IN_OUT_HEADER_SZ];
    /* the request's first argument (its per-operation struct), if any */
    char op_in[FSD_FUSE_URING_OP_IN_OUT_SZ];
    fsd_fuse_uring_ent_in_out ring_ent_in_out;
} fsd_fuse_uring_req_header;

/* sqe->cmd_op of an IORING_OP_URING_CMD on the /dev/fuse descriptor. */
enum {
    FSD_FUSE_IO_URING_CMD_REGISTER = 1,         /* give the kernel an entry */
    FSD_FUSE_IO_URING_CMD_COMMIT_AND_FETCH = 2, /* reply, and wait for the next */
};

/* In the command area of a 128-byte SQE (IORING_SETUP_SQE128). */
typedef struct fsd_fuse_uring_cmd_req {
    uint64_t flags;
    uint64_t commit_id; /* COMMIT_AND_FETCH: the unique being answered */
    uint16_t qid;       /* the queue: a possible CPU's number */
    uint8_t padding[6];
} fsd_fuse_uring_cmd_req;

_Static_assert(sizeof(fsd_fuse_uring_ent_in_out) == 32, "kernel ABI");
_Static_assert(sizeof(fsd_fuse_uring_req_header) == 288, "kernel ABI");
_Static_assert(sizeof(fsd_fuse_uring_cmd_req) == 24, "kernel ABI");

#endif

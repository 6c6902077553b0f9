/*
 * test_buf.c — vc_buf: positional writes and resizes within a bound, text
 * and little-endian appends, the sticky error of appends under an injected
 * allocation failure (and that positional writes do not stick), detach and
 * attach handing the storage over, release leaving the buffer reusable.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "alloc.h"
#include "buf.h"

static void test_write_resize(void **state)
{
    (void)state;
    vc_buf b = VC_BUF_INIT;
    assert_int_equal(vc_buf_write_at(&b, 4, "xy", 2, 100), 0);
    assert_int_equal(b.len, 6);
    assert_memory_equal(b.p, "\0\0\0\0xy", 6);
    assert_int_equal(b.p[6], '\0');
    assert_int_equal(vc_buf_write_at(&b, 99, "ab", 2, 100), -EFBIG);
    assert_int_equal(vc_buf_write_at(&b, 1, "Q", 1, 100), 0);
    assert_int_equal(b.len, 6);
    assert_int_equal(vc_buf_resize(&b, 101, 100), -EFBIG);
    assert_int_equal(vc_buf_resize(&b, 2, 100), 0);
    assert_int_equal(b.len, 2);
    assert_int_equal(vc_buf_printf(&b, "%d-%s", 42, "z"), 0);
    assert_memory_equal(b.p, "\0Q42-z", 7);
    assert_int_equal(b.err, 0);
    size_t len;
    char *p = vc_buf_detach(&b, &len);
    assert_int_equal(len, 6);
    assert_null(b.p);
    assert_int_equal(b.cap, 0);
    vc_buf_attach(&b, p, len);
    assert_ptr_equal(b.p, p);
    assert_int_equal(b.len, 6);
    vc_buf_release(&b);
    assert_null(b.p);
    vc_buf_release(NULL);
    /* An empty resize of an empty buffer allocates nothing. */
    assert_int_equal(vc_buf_resize(&b, 0, 100), 0);
    assert_null(b.p);
}

static void test_append(void **state)
{
    (void)state;
    vc_buf b = VC_BUF_INIT;
    assert_int_equal(vc_buf_append_u8(&b, 0x11), 0);
    assert_int_equal(vc_buf_append_le16(&b, 0x2233), 0);
    assert_int_equal(vc_buf_append_le32(&b, 0x44556677u), 0);
    assert_int_equal(vc_buf_append_le64(&b, 0x8899aabbccddeeffull), 0);
    assert_int_equal(vc_buf_append(&b, NULL, 0), 0);
    static const unsigned char want[] = {0x11, 0x33, 0x22, 0x77, 0x66, 0x55, 0x44, 0xff,
                                         0xee, 0xdd, 0xcc, 0xbb, 0xaa, 0x99, 0x88};
    assert_int_equal(b.len, sizeof want);
    assert_memory_equal(b.p, want, sizeof want);
    /* Long text takes the second vsnprintf. */
    char big[1000];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    vc_buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_int_equal(vc_buf_printf(&b, "<%s>", big), 0);
    assert_int_equal(b.len, sizeof big + 1);
    assert_int_equal(strlen(b.p), b.len);
    /* Direct writes into the room grow makes. */
    assert_int_equal(vc_buf_grow(&b, 5000), 0);
    assert_true(b.cap > b.len + 5000);
    memset(b.p + b.len, 'b', 5000);
    vc_buf_setlen(&b, b.len + 5000);
    assert_int_equal(strlen(b.p), sizeof big + 1 + 5000);
    assert_int_equal(vc_buf_grow(&b, SIZE_MAX - 2), -ENOMEM);
    vc_buf_release(&b);
}

static void test_alloc_failure(void **state)
{
    (void)state;
    vc_buf b = VC_BUF_INIT;
    vc_alloc_fail_at(1);
    assert_int_equal(vc_buf_append_le32(&b, 7), -ENOMEM);
    /* Sticky: the next append does nothing although memory is back. */
    assert_int_equal(vc_buf_append_le32(&b, 8), -ENOMEM);
    assert_int_equal(vc_buf_printf(&b, "x"), -ENOMEM);
    assert_int_equal(b.err, -ENOMEM);
    assert_null(b.p);
    assert_int_equal(b.len, 0);
    vc_buf_reset(&b);
    assert_int_equal(vc_buf_append_le32(&b, 9), 0);
    assert_int_equal(b.len, 4);
    /* A write that could not grow leaves the content and err alone. */
    vc_alloc_fail_at(1);
    assert_int_equal(vc_buf_write_at(&b, 4, "0123456789", 10, 1 << 20), 0);
    assert_int_equal(vc_buf_write_at(&b, 1000, "z", 1, 1 << 20), -ENOMEM);
    assert_int_equal(b.len, 14);
    assert_int_equal(b.err, 0);
    vc_alloc_fail_at(1);
    assert_int_equal(vc_buf_resize(&b, 5000, 1 << 20), -ENOMEM);
    assert_int_equal(b.len, 14);
    assert_int_equal(vc_buf_write_at(&b, 1000, "z", 1, 1 << 20), 0);
    assert_int_equal(b.len, 1001);
    vc_buf_release(&b);
    assert_int_equal(b.err, 0);
    /* The armed failure fires once, at the n-th call. */
    vc_alloc_fail_at(2);
    void *a = vc_malloc(8);
    assert_non_null(a);
    assert_null(vc_calloc(2, 8));
    void *c = vc_realloc(a, 16);
    assert_non_null(c);
    free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_write_resize),
        cmocka_unit_test(test_append),
        cmocka_unit_test(test_alloc_failure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

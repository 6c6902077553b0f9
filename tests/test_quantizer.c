/*
 * test_quantizer.c — the int8 codec (engine/quantizer.h) on its own: codes
 * within half a step of the values and code distances equal to the decoded
 * vectors' distances, the 16-bit fixed-point correction within half its
 * step of a_x, its bound holding for unit vectors even where values clip,
 * and vf_quant_dot within a tolerance derived from the step and float32
 * rounding, for a quantizer of unit vectors (cosine) and one of any
 * vectors (dot, l2).
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engine.h"
#include "quantizer.h"
#include "test_rng.h"

/* n x dim values uniform in [shift - 1, shift + 1), every eleventh one
 * scaled by a quarter (dimensions of different spread); made unit length
 * row by row when `unit`. */
static float *random_rows(size_t n, size_t dim, float shift, bool unit)
{
    float *m = malloc(n * dim * sizeof(float));
    assert_non_null(m);
    for (size_t i = 0; i < n * dim; i++)
        m[i] = (rng_float() + shift) * (i % 11 == 0 ? 0.25f : 1.0f);
    if (unit)
        for (size_t r = 0; r < n; r++)
            vf_normalize(m + r * dim, m + r * dim, dim);
    return m;
}

/* a_x of the codes at rec, by its definition s * sum o_i c_i, in double. */
static double exact_corr(const vf_quant *q, const uint8_t *rec)
{
    double acc = 0.0;
    for (uint32_t i = 0; i < q->dim; i++)
        acc += (double)q->offset[i] * rec[i];
    return acc * q->scale;
}

/* The box bound's width, s * 255 * sum |o_i|: what the unit bound beats. */
static double box_width(const vf_quant *q)
{
    double sum = 0.0;
    for (uint32_t i = 0; i < q->dim; i++)
        sum += fabs((double)q->offset[i]);
    return 255.0 * q->scale * sum;
}

/* How far vf_quant_dot(ra, rb) may be from the dot of da and db, the
 * records' vf_quant_decode: half a step for each record's fixed-point
 * correction, plus float32 rounding. vf_quant_dot's value is made of at
 * most 8 roundings of 2^-24 each (dot_base, dot_step and scale_sq rounded
 * from double, the u32 sum to float, two products, two sums), none of a
 * magnitude past m = |dot_base| + step (k_a + k_b) + s^2 sum c_a c_b; a
 * decoded value o_i + s c_i is 2 roundings off, relative to |o_i| + s c_i,
 * which the dot weighs by the other vector's value. */
static double dot_tolerance(const vf_quant *q, const uint8_t *ra, const uint8_t *rb,
                            const float *da, const float *db)
{
    const double u = 0x1.0p-24;
    double codes = 0.0, decode = 0.0;
    for (uint32_t i = 0; i < q->dim; i++) {
        const double o = fabs((double)q->offset[i]);
        codes += (double)ra[i] * rb[i];
        decode += (o + q->scale * ra[i]) * fabs(db[i]) + (o + q->scale * rb[i]) * fabs(da[i]);
    }
    const double m = fabs(q->dot_base) +
                     q->dot_step * ((double)vf_quant_corr(q, ra) + vf_quant_corr(q, rb)) +
                     q->scale_sq * codes;
    return q->corr_step + 8.0 * u * m + 2.0 * u * decode;
}

static double dot_of(const float *a, const float *b, size_t dim)
{
    double dot = 0.0;
    for (size_t i = 0; i < dim; i++)
        dot += (double)a[i] * b[i];
    return dot;
}

static void test_codec_bounds_and_exact_sums(void **state)
{
    (void)state;
    const size_t n = 3000, dim = 37; /* the u16 correction at an odd offset */
    rng_state = 7;
    float *x = random_rows(n, dim, 0.0f, false);
    vf_quant q;
    assert_int_equal(vf_quant_init(&q, (uint32_t)dim, false), 0);
    assert_int_equal(vf_quant_learn(&q, x, n), 0);
    assert_true(q.scale > 0.0f);
    assert_int_equal(q.rec_bytes, dim + 2);
    assert_true(q.train_clip_share < 0.01);

    uint8_t *ra = malloc(q.rec_bytes), *rb = malloc(q.rec_bytes);
    float *da = malloc(dim * sizeof(float)), *db = malloc(dim * sizeof(float));
    for (size_t r = 0; r + 1 < 200; r++) {
        const float *a = x + r * dim, *b = x + (r + 1) * dim;
        vf_quant_encode(&q, a, ra, false);
        vf_quant_encode(&q, b, rb, false);
        vf_quant_decode(&q, ra, da);
        vf_quant_decode(&q, rb, db);
        for (size_t i = 0; i < dim; i++) {
            /* Inside the range a value is within half a step; outside it
             * saturates at the end code. */
            float lo = q.offset[i], hi = q.offset[i] + 255.0f * q.scale;
            if (a[i] >= lo && a[i] <= hi)
                assert_true(fabsf(da[i] - a[i]) <= 0.5f * q.scale * 1.001f);
            else
                assert_true(ra[i] == (a[i] < lo ? 0 : 255));
        }
        /* Code distances are the decoded vectors' distances. */
        double l2 = 0.0;
        for (size_t i = 0; i < dim; i++)
            l2 += ((double)da[i] - db[i]) * ((double)da[i] - db[i]);
        assert_true(fabs(vf_quant_l2sq(&q, ra, rb) - l2) <= 1e-4 * (1.0 + l2));
        assert_true(fabs(vf_quant_dot(&q, ra, rb) - dot_of(da, db, dim)) <=
                    dot_tolerance(&q, ra, rb, da, db));
    }
    /* A query's encoding (untracked) skips the error figure, not the
     * record: a tracked encoding of the same vector writes the same bytes,
     * and only it counts. */
    uint64_t since = atomic_load(&q.encoded_since);
    vf_quant_encode(&q, x, ra, false);
    assert_int_equal(atomic_load(&q.encoded_since), since);
    vf_quant_encode(&q, x, rb, true);
    assert_memory_equal(ra, rb, q.rec_bytes);
    assert_int_equal(atomic_load(&q.encoded_since), since + 1);
    /* Far outside the range: every value clips, and the window says so. */
    float *far = random_rows(VF_QUANT_WINDOW, dim, 50.0f, false);
    for (size_t r = 0; r < VF_QUANT_WINDOW; r++)
        vf_quant_encode(&q, far + r * dim, ra, true);
    assert_true(vf_quant_drifted(&q, n));
    free(far);
    free(ra);
    free(rb);
    free(da);
    free(db);
    vf_quant_release(&q);
    free(x);
}

/* Encodes the n rows of x with q and checks each record's correction:
 * a_x inside the bound [lo, lo + 65535 step], no wider than the box, and
 * the kept lo + step k_x within half a step of a_x. Returns the largest
 * error in steps. */
static double check_corrections(const vf_quant *q, const float *x, size_t n)
{
    const double lo = q->corr_lo, hi = q->corr_lo + 65535.0 * q->corr_step;
    /* Never wider than the box, which always holds. */
    assert_true(hi - lo <= box_width(q) * (1.0 + 1e-9));
    uint8_t *rec = malloc(q->rec_bytes);
    assert_non_null(rec);
    double worst = 0.0;
    for (size_t r = 0; r < n; r++) {
        vf_quant_encode((vf_quant *)q, x + r * q->dim, rec, false);
        const double a = exact_corr(q, rec);
        assert_true(a >= lo && a <= hi);
        const double kept = lo + q->corr_step * vf_quant_corr(q, rec);
        /* Past half a step by double rounding at most. */
        assert_true(fabs(kept - a) <= 0.5 * q->corr_step + 1e-12 * (fabs(a) + fabs(lo)));
        worst = fmax(worst, fabs(kept - a) / q->corr_step);
    }
    free(rec);
    return worst;
}

/* Unit vectors (cosine): the correction stays inside the unit bound, also
 * for vectors unlike the training ones whose values clip, with ranges
 * that hold 0 (training shift 0.3) and ranges that do not (shift 2: a
 * clipped value can land further from 0 than it was, the gap term), and
 * the bound is tighter than the box (about 2x at dim 50 here; the ratio
 * grows with the square root of dim). A vector longer than unit is
 * clamped to the bound, not wrapped. */
static void test_corr_unit_bound_holds(void **state)
{
    (void)state;
    const size_t n = 2000, dim = 50;
    const float shifts[] = {0.3f, 2.0f};
    for (size_t sh = 0; sh < 2; sh++) {
        rng_state = 17 + sh;
        float *train = random_rows(n, dim, shifts[sh], true);
        float *other = random_rows(n, dim, -0.5f, true);
        vf_quant q;
        assert_int_equal(vf_quant_init(&q, (uint32_t)dim, true), 0);
        assert_int_equal(vf_quant_learn(&q, train, n), 0);
        double worst = check_corrections(&q, train, n);
        size_t clipped_rows = 0;
        for (size_t r = 0; r < n; r++) {
            size_t clipped;
            double err;
            vf_quant_measure(&q, other + r * dim, &clipped, &err);
            clipped_rows += clipped > 0;
        }
        assert_true(clipped_rows > n / 2);
        worst = fmax(worst, check_corrections(&q, other, n));
        const double width = 65535.0 * q.corr_step;
        print_message("unit bound, shift %.1f: %.4g wide, the box %.4g (%.1fx); worst error "
                      "%.3f steps, %zu of %zu rows clipping\n",
                      shifts[sh], width, box_width(&q), box_width(&q) / width, worst, clipped_rows,
                      n);
        assert_true(width < box_width(&q));

        /* Longer than unit, with the box's largest a_x: clamped to the
         * top of the bound. */
        uint8_t *rec = malloc(q.rec_bytes);
        float *long_row = malloc(dim * sizeof(float));
        assert_non_null(rec);
        assert_non_null(long_row);
        for (size_t i = 0; i < dim; i++)
            long_row[i] = q.offset[i] > 0.0f ? 1000.0f : -1000.0f;
        vf_quant_encode(&q, long_row, rec, false);
        assert_int_equal(vf_quant_corr(&q, rec), 65535);
        free(long_row);
        free(rec);
        vf_quant_release(&q);
        free(train);
        free(other);
    }
}

/* A quantizer whose ranges all lie above 0 (set by hand): every vector of
 * length <= 1 clips to the range's lower end where it is small, and the
 * zero vector (a cosine index keeps it as it is) decodes to o itself, of
 * length 1.2: a_x = o . o - C = 0, past |o| (1 + s sqrt(dim)) - C < 0.
 * The gap term keeps it, and unit vectors that clip, inside the bound. */
static void test_corr_unit_bound_ranges_above_zero(void **state)
{
    (void)state;
    const size_t dim = 4, n = 500;
    vf_quant q;
    assert_int_equal(vf_quant_init(&q, (uint32_t)dim, true), 0);
    for (size_t i = 0; i < dim; i++)
        q.offset[i] = 0.6f;
    q.scale = 0.001f;
    vf_quant_derive(&q);
    rng_state = 29;
    float *x = random_rows(n, dim, 0.0f, true);
    memset(x, 0, dim * sizeof(float));
    double worst = check_corrections(&q, x, n);
    print_message("ranges above 0: worst error %.3f steps\n", worst);
    free(x);
    vf_quant_release(&q);
}

/* Any vectors (dot, l2): the box bound holds for every code, even for
 * values far outside the learned ranges. */
static void test_corr_box_bound_holds(void **state)
{
    (void)state;
    const size_t n = 2000, dim = 29;
    rng_state = 19;
    float *train = random_rows(n, dim, 0.4f, false);
    float *far = random_rows(n, dim, 30.0f, false);
    for (size_t i = 0; i < n * dim; i += 2)
        far[i] = -far[i]; /* clipped at both ends */
    vf_quant q;
    assert_int_equal(vf_quant_init(&q, (uint32_t)dim, false), 0);
    assert_int_equal(vf_quant_learn(&q, train, n), 0);
    assert_true(fabs(65535.0 * q.corr_step - box_width(&q)) <= 1e-9 * box_width(&q));
    double worst = fmax(check_corrections(&q, train, n), check_corrections(&q, far, n));
    print_message("box bound: %.4g wide; worst error %.3f steps\n", box_width(&q), worst);
    vf_quant_release(&q);
    free(train);
    free(far);
}

/* vf_quant_dot against the dot of the decoded vectors, within
 * dot_tolerance, for both bounds; the figures printed show how much of
 * the tolerance is used. */
static void test_dot_matches_decoded(void **state)
{
    (void)state;
    const size_t n = 1500, dim = 100;
    for (int unit = 0; unit <= 1; unit++) {
        rng_state = 23 + (uint64_t)unit;
        float *x = random_rows(n, dim, 0.2f, unit);
        vf_quant q;
        assert_int_equal(vf_quant_init(&q, (uint32_t)dim, unit), 0);
        assert_int_equal(vf_quant_learn(&q, x, n), 0);
        uint8_t *ra = malloc(q.rec_bytes), *rb = malloc(q.rec_bytes);
        float *da = malloc(dim * sizeof(float)), *db = malloc(dim * sizeof(float));
        double worst = 0.0, worst_tol = 0.0;
        for (size_t r = 0; r + 1 < n; r++) {
            vf_quant_encode(&q, x + r * dim, ra, false);
            vf_quant_encode(&q, x + (r + 1) * dim, rb, false);
            vf_quant_decode(&q, ra, da);
            vf_quant_decode(&q, rb, db);
            const double err = fabs(vf_quant_dot(&q, ra, rb) - dot_of(da, db, dim));
            const double tol = dot_tolerance(&q, ra, rb, da, db);
            assert_true(err <= tol);
            worst = fmax(worst, err);
            worst_tol = fmax(worst_tol, tol);
            /* A record with itself: the squared norm, the same way. */
            assert_true(fabs(vf_quant_dot(&q, ra, ra) - dot_of(da, da, dim)) <=
                        dot_tolerance(&q, ra, ra, da, da));
        }
        print_message("%s: step %.3g, dot error at most %.3g (tolerance up to %.3g)\n",
                      unit ? "unit" : "box", q.corr_step, worst, worst_tol);
        free(ra);
        free(rb);
        free(da);
        free(db);
        vf_quant_release(&q);
        free(x);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_codec_bounds_and_exact_sums),
        cmocka_unit_test(test_corr_unit_bound_holds),
        cmocka_unit_test(test_corr_unit_bound_ranges_above_zero),
        cmocka_unit_test(test_corr_box_bound_holds),
        cmocka_unit_test(test_dot_matches_decoded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

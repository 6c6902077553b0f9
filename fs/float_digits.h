/*
 * float_digits.h — the shortest decimal digits of a float32, from the
 * double-conversion library (C++, wrapped in float_digits.cc).
 */
#ifndef VECFS_FS_FLOAT_DIGITS_H
#define VECFS_FS_FLOAT_DIGITS_H

#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Most significant digits a float32 needs to read back exactly. */
#define FSD_FLOAT_DIGITS_MAX 9

/*
 * The shortest digit string d1 d2 ... dk such that d1.d2...dk x 10^exponent
 * reads back (correctly rounded, as strtof does) to f; of several such
 * strings of that length, the one nearest to f.
 *   f         a finite float (0 gives "0", exponent 0)
 *   digits    out: k ASCII digits and a NUL; no trailing zeros but for "0"
 *   exponent  out: the decimal exponent of the first digit
 *   negative  out: f's sign bit (true for -0.0)
 * Returns k, 1..FSD_FLOAT_DIGITS_MAX. Non-finite f is the caller's to
 * handle (the result is unspecified).
 */
int fsd_float_digits(float f, char digits[FSD_FLOAT_DIGITS_MAX + 1], int *exponent, bool *negative);

#ifdef __cplusplus
}
#endif

#endif /* VECFS_FS_FLOAT_DIGITS_H */

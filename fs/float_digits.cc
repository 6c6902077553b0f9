// float_digits.cc — fsd_float_digits (float_digits.h) on double-conversion's
// SHORTEST_SINGLE mode: the C face of a C++ library, nothing more.
#include "float_digits.h"

#include <double-conversion/double-to-string.h>

int fsd_float_digits(float f, char digits[FSD_FLOAT_DIGITS_MAX + 1], int *exponent, bool *negative)
{
    using double_conversion::DoubleToStringConverter;
    int length = 0, point = 0;
    DoubleToStringConverter::DoubleToAscii(f, DoubleToStringConverter::SHORTEST_SINGLE, 0, digits,
                                           FSD_FLOAT_DIGITS_MAX + 1, negative, &length, &point);
    *exponent = point - 1;
    return length;
}

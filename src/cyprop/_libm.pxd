"""Elementary functions in one fused type, for the activations.

``exp_`` is computed inline: the activations call it once per unit, and
glibc's ``exp`` behind a call costs about 48 instructions and a call that
spills the loop's registers (the lesson's network: benchmarks/README.md,
profile_core.py on W1). Its error stays below 0.91 units in the last place
in float64 and 0.51 in float32 (measured against a 120-bit reference;
tests/test_core.py checks both against numpy's extended precision); inputs
beyond the range where 2 ** k is a normal number, and NaN, go to the C
library.

``tanh_`` calls the C library: the float version for float32, which costs
about half of the double one and loses nothing at float32's precision.
"""

from cython cimport floating
from libc.math cimport exp, expf, tanh, tanhf
from libc.stdint cimport int64_t


cdef extern from *:
    """
    #include <stdint.h>
    #include <string.h>
    /* The double whose bits are `bits` (memcpy is the defined way to pun). */
    static inline double cyprop_double_from_bits(int64_t bits) {
        double value;
        memcpy(&value, &bits, sizeof value);
        return value;
    }
    """
    double double_from_bits "cyprop_double_from_bits"(int64_t bits) noexcept nogil


cdef inline double exp_taylor(double x, bint single) noexcept nogil:
    """e ** x for -708 <= x <= 709, by range reduction and a Taylor polynomial.

    e ** x = 2 ** k * e ** r, with k the integer nearest x / ln 2 and
    r = x - k ln 2 in [-ln 2 / 2, ln 2 / 2], where the terms after
    r ** 13 / 13! add less than 5e-18 relative error (7e-11 after r ** 8 / 8!,
    enough for single precision).
    """
    # Adding and subtracting 1.5 * 2 ** 52 rounds to the nearest integer.
    cdef double k = (x * 1.4426950408889634 + 6755399441055744.0) - 6755399441055744.0
    # ln 2 in two parts (Cody and Waite): the first has 32 significant bits,
    # so k times it is exact and r carries no cancellation error.
    cdef double r = (x - k * 6.93147180369123816490e-01) - k * 1.90821492927058770002e-10
    cdef double p
    if single:
        p = 1.0 / 40320.0
    else:
        p = 1.0 / 6227020800.0
        p = p * r + 1.0 / 479001600.0
        p = p * r + 1.0 / 39916800.0
        p = p * r + 1.0 / 3628800.0
        p = p * r + 1.0 / 362880.0
        p = p * r + 1.0 / 40320.0
    p = p * r + 1.0 / 5040.0
    p = p * r + 1.0 / 720.0
    p = p * r + 1.0 / 120.0
    p = p * r + 1.0 / 24.0
    p = p * r + 1.0 / 6.0
    p = p * r + 0.5
    # 1 + (r + r**2 p): the rounding error of the small part stays below a
    # quarter of a unit of the result.
    p = 1.0 + (r + (r * r) * p)
    # 2**k from its bits: k + 1023 is a normal exponent for every k here.
    return p * double_from_bits((<int64_t>k + 1023) << 52)


cdef inline floating exp_(floating x) noexcept nogil:
    """e ** x."""
    if floating is float:
        # Computed in double and rounded once, as glibc's expf does.
        if -87.0 <= x <= 88.0:
            return <float>exp_taylor(x, True)
        return expf(x)
    else:
        if -708.0 <= x <= 709.0:
            return exp_taylor(x, False)
        return exp(x)


cdef inline floating tanh_(floating x) noexcept nogil:
    """tanh(x)."""
    if floating is float:
        return tanhf(x)
    else:
        return tanh(x)

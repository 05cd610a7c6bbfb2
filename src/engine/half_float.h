/* half_float.h: IEEE 754 binary16 (the V2 datatype FP16) to and from wider floats, exactly
 * and portably (no _Float16, no F16C). Both directions are exact or correctly rounded, so
 * an FP16 tensor sent as JSON numbers and the same tensor sent in binary give the same
 * float bit for bit. */
#ifndef KSV_ENGINE_HALF_FLOAT_H
#define KSV_ENGINE_HALF_FLOAT_H

#include <math.h>
#include <stdint.h>

/* Every half is exactly a float. */
static inline float ksv_half_to_float(uint16_t h)
{
    float sign = (h & 0x8000) ? -1.0f : 1.0f;
    unsigned exp = (h >> 10) & 0x1F, man = h & 0x3FF;
    if (exp == 0x1F)
        return man ? NAN : sign * INFINITY;
    if (exp == 0)
        return sign * ldexpf((float)man, -24); /* subnormal (and zero) */
    return sign * ldexpf((float)(man | 0x400), (int)exp - 25);
}

/* d rounded to the nearest half, ties to even (the IEEE default, so the C default rounding
 * mode is assumed); magnitudes past the largest half become infinity, NaN stays NaN. */
static inline uint16_t ksv_double_to_half(double d)
{
    uint16_t sign = signbit(d) ? 0x8000 : 0;
    double a = fabs(d);
    if (isnan(d))
        return 0x7E00;
    if (a >= 65520.0) /* 65504 + half an ulp and up round to infinity */
        return sign | 0x7C00;
    if (a < 0x1p-14) {
        /* Subnormal range: the result is a multiple of 2^-24; scaling is exact. */
        double q = nearbyint(ldexp(a, 24));
        return sign | (uint16_t)q; /* q == 1024 is the smallest normal, bits included */
    }
    int e;
    (void)frexp(a, &e); /* a = m * 2^e, m in [0.5, 1): the half exponent is e - 1 */
    int E = e - 1;
    double q = nearbyint(ldexp(a, 10 - E)); /* in [1024, 2048] */
    if (q >= 2048.0) {
        q = 1024.0;
        E++;
    }
    if (E > 15)
        return sign | 0x7C00;
    return sign | (uint16_t)((unsigned)(E + 15) << 10) | (uint16_t)((unsigned)q - 1024);
}

#endif

/* float_format.h: the text ksv writes for a float prediction, without printf or strtof.
 *
 * Responses used to print each float by trying snprintf("%.*g") for 6, 7, 8 and 9
 * significant digits and keeping the first that strtof read back as the same float. That
 * cost a few percent of a request, so ksv_format_float_g computes the same text with
 * integer arithmetic; the old loop is kept in tests/test_float_format.c as the oracle. */
#ifndef KSV_COMMON_FLOAT_FORMAT_H
#define KSV_COMMON_FLOAT_FORMAT_H

#include <stddef.h>

/* Writes v as text into out, NUL-terminated, and returns its length (without the NUL),
 * at most 15 ("-1.23456789e-38", "-0.000123456789"). All 32 bytes of out may be written:
 * the digits are moved with fixed-size copies, and the bytes past the NUL are scratch.
 *
 * For every finite v the bytes are exactly those of the first P in 6, 7, 8, 9 such that
 * snprintf("%.*g", P, (double)v) read back by strtof (round to nearest) gives v again, or
 * of P = 9 if none does; as in the C locale (the decimal point is always '.'):
 *   - the decimal value is v rounded to P significant digits, ties to even;
 *   - with X its decimal exponent, "%f" layout when -4 <= X < P, else d.ddde[+-]XX with at
 *     least two exponent digits;
 *   - trailing zeros of the fraction are dropped, and the point if nothing follows it;
 *   - a '-' for negative values, -0 included ("-0").
 * Examples: 1 -> "1", 0.1f -> "0.1", 1e-5f -> "1e-05", 1234567.0f -> "1234567",
 * 0.3f * 3 -> "0.90000004", FLT_MAX -> "3.4028235e+38", denormal min -> "1.4013e-45".
 *
 * For NaN and infinities nothing is written but the NUL, and the return is 0: the caller
 * picks the spelling (JSON has none, so ksv_sb_json_float writes null).
 *
 * Pure function: no allocation, no locale, no global state; safe from any thread. */
size_t ksv_format_float_g(float v, char out[32]);

#endif

/* float_format.c: "%.Pg" of a float, P the fewest of 6..9 digits that read back as it.
 *
 * Method. A finite float is m * 2^e exactly (m < 2^24). q = floor(|v| * 10^k), with k
 * chosen so that q has exactly 10 digits, comes from one integer multiply by 5^k (or a
 * divide, for large v) and a shift, together with a flag saying whether the floor dropped
 * a nonzero fraction: nothing is rounded on the way. From q and that flag, rounding to
 * P <= 9 digits is exact, ties to even, as glibc's printf does in the default rounding
 * mode. The two points halfway to the neighbouring floats are scaled the same way; strtof
 * gives back v exactly when the rounded decimal lies strictly between them, or on one of
 * them when m is even (ties go to the even mantissa). The first P that passes is printed
 * in %g layout. */
#include "common/float_format.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

__extension__ typedef unsigned __int128 u128;

/* 5^0 .. 5^27, the powers of five that fit in 64 bits; 5^28 .. 5^54 are products of two. */
static const uint64_t pow5[28] = {
    UINT64_C(1), UINT64_C(5), UINT64_C(25), UINT64_C(125), UINT64_C(625),
    UINT64_C(3125), UINT64_C(15625), UINT64_C(78125), UINT64_C(390625),
    UINT64_C(1953125), UINT64_C(9765625), UINT64_C(48828125), UINT64_C(244140625),
    UINT64_C(1220703125), UINT64_C(6103515625), UINT64_C(30517578125),
    UINT64_C(152587890625), UINT64_C(762939453125), UINT64_C(3814697265625),
    UINT64_C(19073486328125), UINT64_C(95367431640625), UINT64_C(476837158203125),
    UINT64_C(2384185791015625), UINT64_C(11920928955078125),
    UINT64_C(59604644775390625), UINT64_C(298023223876953125),
    UINT64_C(1490116119384765625), UINT64_C(7450580596923828125),
};

#define POW10_10 UINT64_C(10000000000)

/* A nonnegative real known as its floor and whether the fraction dropped was nonzero. */
typedef struct scaled {
    uint64_t n;
    bool inexact;
} scaled;

/* floor(c * 2^f * 10^k), exactly. c < 2^26; -29 <= k <= 54 and the result is below 2^40
 * (the caller's choice of k), which bounds every intermediate as noted. */
static scaled scale(uint64_t c, int f, int k)
{
    scaled r;
    if (k < 0) {
        /* Only for |v| >= 10^10, so f >= 9: the value is an integer, below 2^128 (the
         * largest is FLT_MAX's upper midpoint, 2^128 - 2^103). 10^j = 2^j * 5^j: shift
         * first, keeping the bits shifted out for the flag, then divide by 5^j, in two
         * steps past 5^27; the floor of a floor quotient is the floor of the whole. */
        int j = -k;
        u128 n = (u128)c << f;
        bool lost = (n & (((u128)1 << j) - 1)) != 0;
        n >>= j;
        if (j > 27) {
            lost |= n % pow5[27] != 0;
            n /= pow5[27];
            j -= 27;
        }
        lost |= n % pow5[j] != 0;
        r.n = (uint64_t)(n / pow5[j]);
        r.inexact = lost;
        return r;
    }

    /* c * 5^k = top * 2^64 + bot. Past 5^27, c * 5^27 < 2^89 times 5^(k-27) < 2^63 is
     * done as two 64 x 64 products; top stays below 2^89. */
    u128 top;
    uint64_t bot;
    if (k <= 27) {
        u128 p = (u128)c * pow5[k];
        top = p >> 64;
        bot = (uint64_t)p;
    } else {
        u128 p = (u128)c * pow5[27];
        u128 lo = (u128)(uint64_t)p * pow5[k - 27];
        top = (p >> 64) * pow5[k - 27] + (lo >> 64);
        bot = (uint64_t)lo;
    }

    /* Times 2^(f+k). The result is below 2^40, so a left shift only happens when top is 0,
     * and a right shift by s < 64 leaves top < 2^(s-24): neither overflows. */
    int t = f + k;
    if (t >= 0) {
        r.n = bot << t;
        r.inexact = false;
    } else if (t > -64) {
        int s = -t;
        r.n = (uint64_t)(top << (64 - s)) | (bot >> s);
        r.inexact = (bot & ((UINT64_C(1) << s) - 1)) != 0;
    } else {
        int s = -t - 64;
        r.n = (uint64_t)(top >> s);
        r.inexact = bot != 0 || (top & (((u128)1 << s) - 1)) != 0;
    }
    return r;
}

/* The same real at one power of ten less: floor(floor(x) / 10) = floor(x / 10). */
static scaled div10(scaled x)
{
    scaled r = {x.n / 10, x.inexact || x.n % 10 != 0};
    return r;
}

/* v rounded to the digits of q above p (a power of ten), ties to even; the result is the
 * digit string as an integer, which may be 10^P when rounding carries out. */
static inline uint64_t round_at(scaled q, uint64_t p)
{
    uint64_t d = q.n / p;
    uint64_t rem = q.n - d * p;
    uint64_t half = p / 2;
    if (rem > half || (rem == half && (q.inexact || (d & 1))))
        d++;
    return d;
}

/* Whether strtof reads the decimal d * p (same scale as lo and hi) back as v: strictly
 * between the midpoints, or on one when v's mantissa is even. */
static inline bool reads_back(uint64_t d, uint64_t p, scaled lo, scaled hi, bool even)
{
    uint64_t x = d * p;
    bool above = x > lo.n || (even && x == lo.n && !lo.inexact);
    bool below = x < hi.n || (x == hi.n && (hi.inexact || even));
    return above && below;
}

/* Writes the prec digits d (or 10^prec after a carry), the first at 10^x, as %g does.
 * The digits are laid out in a zero-filled scratch array and moved with fixed-size copies
 * (single stores once compiled) into out, which the contract lets us use in full. */
static size_t emit(char *out, size_t pos, uint64_t d, int prec, int x)
{
    static const uint32_t p10[] = {1, 10, 100, 1000, 10000, 100000, 1000000, 10000000,
                                   100000000, 1000000000};
    if (d == p10[prec]) {
        d = p10[prec - 1];
        x++;
    }
    /* As 9 digits, the first nonzero; nd counts up to the last nonzero one. */
    uint32_t d9 = (uint32_t)d * p10[9 - prec];
    char dig[24];
    memset(dig, '0', sizeof dig);
    for (int i = 8; i >= 0; i--) {
        dig[i] = (char)('0' + d9 % 10);
        d9 /= 10;
    }
    int nd = 9;
    while (dig[nd - 1] == '0')
        nd--;

    if (x >= -4 && x < prec) {
        if (x < 0) {
            /* 0.000ddd: "0." and -x - 1 zeros, the first 1 - x characters of the prefix. */
            memcpy(out + pos, "0.0000", 6);
            pos += (size_t)(1 - x);
            memcpy(out + pos, dig, 16);
            pos += (size_t)nd;
        } else if (nd <= x + 1) {
            /* An integer: its zeros past the last nonzero digit are in dig already. */
            memcpy(out + pos, dig, 16);
            pos += (size_t)x + 1;
        } else {
            memcpy(out + pos, dig, 16);
            pos += (size_t)x + 1;
            out[pos++] = '.';
            memcpy(out + pos, dig + x + 1, 8);
            pos += (size_t)(nd - x - 1);
        }
    } else {
        out[pos++] = dig[0];
        out[pos] = '.';
        memcpy(out + pos + 1, dig + 1, 8);
        pos += nd > 1 ? (size_t)nd : 0;
        out[pos++] = 'e';
        out[pos++] = x < 0 ? '-' : '+';
        int ax = x < 0 ? -x : x; /* at most 45 for a float: always two digits */
        out[pos++] = (char)('0' + ax / 10);
        out[pos++] = (char)('0' + ax % 10);
    }
    out[pos] = '\0';
    return pos;
}

size_t ksv_format_float_g(float v, char out[32])
{
    uint32_t bits;
    memcpy(&bits, &v, sizeof bits);
    uint32_t field = (bits >> 23) & 0xff;
    uint32_t frac = bits & 0x7fffff;
    if (field == 0xff) {
        out[0] = '\0';
        return 0;
    }

    size_t pos = 0;
    if (bits >> 31)
        out[pos++] = '-';
    if (field == 0 && frac == 0) {
        out[pos++] = '0';
        out[pos] = '\0';
        return pos;
    }

    /* |v| = m * 2^e; the midpoints are (4m -+ 2) * 2^(e-2), except below a power of two
     * whose lower neighbour is half as far (not at the smallest normal: the denormals
     * below it keep the same spacing). */
    uint64_t m = field ? (frac | 0x800000) : frac;
    int e = field ? (int)field - 150 : -149;
    uint64_t c_lo = 4 * m - (frac == 0 && field > 1 ? 1 : 2);
    bool even = (m & 1) == 0;

    /* b = floor(log2 |v|); x = floor(b * log10 2) by a fixed-point product, exact for
     * every b a float has (offset by 64 * 2^18 to floor negatives without signed shifts).
     * Then 10^x <= |v| < 10^(x+2), so q has 10 or 11 digits, and 10 after one division. */
    int b = e + 31 - __builtin_clz((unsigned)m);
    int x = (int)(((unsigned)(b * 78913 + 64 * 262144)) >> 18) - 64;
    int k = 9 - x;
    scaled q = scale(4 * m, e - 2, k);
    scaled lo = scale(c_lo, e - 2, k);
    scaled hi = scale(4 * m + 2, e - 2, k);
    if (q.n >= POW10_10) {
        q = div10(q);
        lo = div10(lo);
        hi = div10(hi);
        x++;
    }

    /* q has 10 digits, the first at 10^x. Written out so each division is by a constant. */
    uint64_t d = round_at(q, 10000);
    if (reads_back(d, 10000, lo, hi, even))
        return emit(out, pos, d, 6, x);
    d = round_at(q, 1000);
    if (reads_back(d, 1000, lo, hi, even))
        return emit(out, pos, d, 7, x);
    d = round_at(q, 100);
    if (reads_back(d, 100, lo, hi, even))
        return emit(out, pos, d, 8, x);
    return emit(out, pos, round_at(q, 10), 9, x);
}

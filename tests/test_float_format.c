/* test_float_format.c: ksv_format_float_g (common/float_format.h) against the code it
 * replaced, kept here verbatim as the oracle: snprintf("%.*g") for 6..9 digits, the first
 * that strtof reads back as the same float. Every string must match byte for byte.
 *
 * Inputs: hand-picked edge cases; every power of two and of ten a float holds, with the
 * floats a few steps either side; decimals halfway between two P-digit numbers (where the
 * ties-to-even rule and the carry into a new decade decide the output); every float in a
 * few 2^15-wide windows chosen for their structure; 500k pseudo-random bit patterns and
 * 250k random floats of typical magnitude (argv[1] sets the first count); and the null
 * that ksv_sb_json_float writes around it for NaN and Inf. Sized to run in
 * about 2 s, as the oracle's snprintf costs 1 to 2 us a float; the whole 2^32 sweep is
 * bench/float_format_bench --check, run by hand. */
#include "common/float_format.h"
#include "common/random.h"
#include "common/strbuf.h"

#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Counts, passed down rather than global. */
typedef struct tally {
    unsigned long checked;
    unsigned long failures;
} tally;

/* The old ksv_sb_json_float, minus the null for non-finite values. */
static size_t reference(float v, char buf[32])
{
    for (int prec = 6; prec <= 9; prec++) {
        int n = snprintf(buf, 32, "%.*g", prec, (double)v);
        if (prec == 9 || strtof(buf, NULL) == v)
            return (size_t)n;
    }
    return 0;
}

static float from_bits(uint32_t bits)
{
    float v;
    memcpy(&v, &bits, sizeof v);
    return v;
}

static uint32_t to_bits(float v)
{
    uint32_t bits;
    memcpy(&bits, &v, sizeof bits);
    return bits;
}

static void check_one(tally *t, uint32_t bits)
{
    float v = from_bits(bits);
    char want[32], got[32];
    memset(got, 'X', sizeof got);
    size_t n = ksv_format_float_g(v, got);
    t->checked++;
    if (!isfinite(v)) {
        if (n != 0 || got[0] != '\0') {
            t->failures++;
            printf("FAIL 0x%08x: non-finite gave length %zu\n", (unsigned)bits, n);
        }
        return;
    }
    size_t wn = reference(v, want);
    if (n != wn || strlen(got) != n || memcmp(got, want, n) != 0) {
        t->failures++;
        if (t->failures <= 50)
            printf("FAIL 0x%08x: want \"%s\" (%zu), got \"%.*s\" (%zu)\n", (unsigned)bits,
                   want, wn, (int)(n < 31 ? n : 31), got, n);
    }
}

/* The hand-picked inputs are checked with both signs: cheap, and the sign is the one
 * part of the text the new code writes on its own. */
static void check_both(tally *t, uint32_t bits)
{
    check_one(t, bits & 0x7fffffffu);
    check_one(t, bits | 0x80000000u);
}

static void check_float(tally *t, float v)
{
    check_both(t, to_bits(v));
}

/* v and the `steps` floats either side of it (stopping at 0 and at the infinities). */
static void check_around(tally *t, float v, int steps)
{
    uint32_t bits = to_bits(v) & 0x7fffffffu;
    for (int i = -steps; i <= steps; i++) {
        int64_t b = (int64_t)bits + i;
        if (b >= 0 && b <= 0x7f800000)
            check_both(t, (uint32_t)b);
    }
}

static void check_edges(tally *t)
{
    static const float named[] = {
        0.0f, 1.0f, 0.5f, 0.1f, 0.2f, 0.3f, 0.7f, 1.0f / 3.0f, 2.0f / 3.0f, 0.3f * 3.0f,
        1e-5f, 1e-4f, 1.5e-4f, 9.99999e-5f, 0.001f, 123456.5f, 1234565.0f, 1234575.0f,
        9.9999995e5f, 999999.5f, 999999.4f, 999999.6f, 9999999.0f, 9999999.5f, 99999995.0f,
        16777216.0f, 16777217.0f, 16777215.0f, 33554430.0f, 3.14159265f, 2.71828183f,
        1e10f, 1e-10f, 1e20f, 1e30f, 1e38f, 3.4028235e38f, 1.17549435e-38f, 1e-38f,
        1e-40f, 1e-45f, FLT_MAX, FLT_MIN, FLT_EPSILON, FLT_TRUE_MIN,
        INFINITY, NAN,
    };
    for (size_t i = 0; i < sizeof named / sizeof named[0]; i++)
        check_around(t, named[i], 8);

    /* Denormals: the first and last few, and the normal/denormal seam. */
    for (uint32_t b = 0; b < 4096; b++)
        check_both(t, b);
    for (uint32_t b = 0x007ff000u; b < 0x00801000u; b++)
        check_both(t, b);
    /* Largest finite floats and the infinities and NaNs right after them. */
    for (uint32_t b = 0x7f7ff000u; b < 0x7f801000u; b++)
        check_both(t, b);
    check_both(t, 0x7fc00000u);
    check_both(t, 0x7fffffffu);

    /* Integers: the small ones a classifier returns, then around 2^24 where floats stop
     * holding every integer. */
    for (int i = 0; i <= 100000; i++)
        check_float(t, (float)i);
    for (int i = (1 << 24) - 20000; i <= (1 << 24) + 20000; i++)
        check_float(t, (float)i);

    /* Every power of two and the nearest powers of ten, with neighbours. */
    for (int e = -149; e <= 127; e++)
        check_around(t, ldexpf(1.0f, e), 4);
    for (int e = -45; e <= 38; e++) {
        char text[16];
        snprintf(text, sizeof text, "1e%d", e);
        check_around(t, strtof(text, NULL), 4);
    }
}

/* Decimals halfway between two P-digit numbers, and those where rounding carries into the
 * next decade (9.99..95eX), with the floats nearest them: where exact rounding matters. */
static void check_ties(tally *t)
{
    uint64_t state = 7;
    for (int x = -45; x <= 38; x++) {
        for (int p = 6; p <= 9; p++) {
            char text[48];
            snprintf(text, sizeof text, "%.*s5e%d", p, "9999999999", x - p);
            check_around(t, strtof(text, NULL), 3);
            for (int i = 0; i < 20; i++) {
                uint64_t d = ksv_splitmix64(&state) % 9000000000u + 1000000000u;
                char digits[16];
                snprintf(digits, sizeof digits, "%llu", (unsigned long long)d);
                snprintf(text, sizeof text, "%.*s5e%d", p, digits, x - p);
                check_around(t, strtof(text, NULL), 2);
            }
        }
    }
    /* Floats that are exact ties: integers and halves with 7 to 10 significant digits that
     * end in 5 (a P-digit rounding lands exactly on the midpoint). */
    for (int i = 0; i < 20000; i++) {
        uint64_t r = ksv_splitmix64(&state);
        check_float(t, (float)(r % 1677721u * 10u + 5u));             /* up to 2^24 */
        check_float(t, (float)(r % 1677721u * 10u + 5u) / 2.0f);
        check_float(t, (float)(r % 1677721u * 10u + 5u) * 0.25f);
        check_float(t, ldexpf((float)(r % 1677721u * 10u + 5u), -(int)(r >> 59)));
    }
}

/* Every float in a window of 2^15 around a few structural points. */
static void check_windows(tally *t)
{
    static const float centres[] = {1.0f, 0.1f, 0.5f, 999999.5f, 1e-4f, 1e6f, 1e9f, 1e10f};
    for (size_t i = 0; i < sizeof centres / sizeof centres[0]; i++) {
        uint32_t c = to_bits(centres[i]);
        for (uint32_t b = c - (1u << 14); b < c + (1u << 14); b++)
            check_one(t, b);
    }
}

/* count bit patterns uniform over all 2^32, then count / 2 floats in 2^-10 .. 2^20, the
 * magnitudes of typical predictions. The seed is fixed: the same inputs every run. */
static void check_random(tally *t, unsigned long count)
{
    uint64_t state = UINT64_C(0x6b73762d666c6f61);
    for (unsigned long i = 0; i < count; i += 2) {
        uint64_t r = ksv_splitmix64(&state);
        check_one(t, (uint32_t)r);
        check_one(t, (uint32_t)(r >> 32));
    }
    for (unsigned long i = 0; i < count / 2; i++) {
        uint64_t r = ksv_splitmix64(&state);
        uint32_t field = 117 + (uint32_t)(r >> 32) % 30;
        check_one(t, ((uint32_t)r & 0x807fffffu) | field << 23);
    }
}

/* ksv_sb_json_float is now a thin wrapper: check the wrapping (null, no NUL appended). */
static void check_json(tally *t)
{
    ksv_sb sb;
    ksv_sb_init(&sb);
    ksv_sb_json_float(&sb, 0.25f);
    ksv_sb_putc(&sb, ',');
    ksv_sb_json_float(&sb, NAN);
    ksv_sb_putc(&sb, ',');
    ksv_sb_json_float(&sb, -INFINITY);
    ksv_sb_putc(&sb, ',');
    ksv_sb_json_float(&sb, 16777217.0f);
    const char *want = "0.25,null,null,16777216";
    t->checked++;
    if (sb.oom || sb.len != strlen(want) || strcmp(sb.data, want) != 0) {
        t->failures++;
        printf("FAIL ksv_sb_json_float: want \"%s\", got \"%s\"\n", want,
               sb.data ? sb.data : "(null)");
    }
    ksv_sb_free(&sb);
}

int main(int argc, char **argv)
{
    unsigned long random_count = argc > 1 ? strtoul(argv[1], NULL, 10) : 500000ul;
    tally t = {0, 0};

    /* The examples the header gives. */
    static const struct {
        float v;
        const char *text;
    } examples[] = {
        {1.0f, "1"}, {0.1f, "0.1"}, {1e-5f, "1e-05"}, {1234567.0f, "1234567"},
        {0.3f * 3.0f, "0.90000004"}, {FLT_MAX, "3.4028235e+38"}, {FLT_TRUE_MIN, "1.4013e-45"},
        {-0.0f, "-0"}, {0.5f, "0.5"}, {12345670.0f, "1.234567e+07"},
    };
    for (size_t i = 0; i < sizeof examples / sizeof examples[0]; i++) {
        char got[32];
        size_t n = ksv_format_float_g(examples[i].v, got);
        t.checked++;
        if (n != strlen(examples[i].text) || strcmp(got, examples[i].text) != 0) {
            t.failures++;
            printf("FAIL example %zu: want \"%s\", got \"%s\"\n", i, examples[i].text, got);
        }
    }

    check_json(&t);
    check_edges(&t);
    check_ties(&t);
    check_windows(&t);
    check_random(&t, random_count);

    printf("test_float_format: %lu floats checked, %lu mismatches: %s\n", t.checked,
           t.failures, t.failures ? "FAIL" : "PASS");
    return t.failures ? 1 : 0;
}

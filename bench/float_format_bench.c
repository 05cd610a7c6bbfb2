/* float_format_bench.c: time of ksv_format_float_g against the snprintf/strtof loop it
 * replaced in ksv_sb_json_float, on the values a model returns.
 *
 * Values: 10M floats, half probabilities (the logistic of a normal logit, as a classifier
 * outputs), half regression outputs log-uniform over 1e-3 .. 1e6; fixed seed. Each figure
 * is CPU time of this thread over a half, in ns per value: best of 3 passes for the new
 * code, 1 pass for the old (15 s of it already, and steady at that length).
 *
 * Usage: float_format_bench                      the timing
 *        float_format_bench --check LO HI [STEP] compare the two on every STEP-th bit
 *                                                pattern in [LO, HI) (hex, HI <= 1 << 32):
 *                                                the exhaustive check, run by hand in
 *                                                slices */
#include "common/float_format.h"

#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define COUNT 10000000

/* CPU time of this thread: the build machines are shared. */
static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The old ksv_sb_json_float body, minus the null for non-finite values. */
static size_t reference(float v, char buf[32])
{
    for (int prec = 6; prec <= 9; prec++) {
        int n = snprintf(buf, 32, "%.*g", prec, (double)v);
        if (prec == 9 || strtof(buf, NULL) == v)
            return (size_t)n;
    }
    return 0;
}

static uint64_t splitmix(uint64_t *state)
{
    uint64_t z = (*state += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

static double unit(uint64_t *state)
{
    return ((double)(splitmix(state) >> 11) + 0.5) * 0x1p-53;
}

/* A checksum of the text, so neither loop can be optimised away and the two can be
 * compared: cheap next to either formatter. */
static uint64_t mix(uint64_t h, const char *s, size_t n)
{
    uint64_t w = 0;
    memcpy(&w, s + (n > 8 ? n - 8 : 0), n > 8 ? 8 : n);
    return (h ^ w ^ n) * UINT64_C(0x100000001b3);
}

typedef size_t (*format_fn)(float v, char buf[32]);

/* Best ns per value of `passes` timed passes of fmt over v; *sum gets the text's checksum. */
static double time_format(format_fn fmt, int passes, const float *v, size_t n, uint64_t *sum)
{
    char buf[32];
    double best = 1e30;
    for (int pass = 0; pass < passes; pass++) {
        uint64_t h = 0;
        double t0 = now_s();
        for (size_t i = 0; i < n; i++) {
            memset(buf, 0, 8);
            h = mix(h, buf, fmt(v[i], buf));
        }
        double t = now_s() - t0;
        best = t < best ? t : best;
        *sum = h;
    }
    return best * 1e9 / (double)n;
}

static int check(uint64_t lo, uint64_t hi, uint64_t step)
{
    uint64_t checked = 0, bad = 0;
    double t0 = now_s();
    for (uint64_t b = lo; b < hi; b += step) {
        uint32_t bits = (uint32_t)b;
        float v;
        memcpy(&v, &bits, sizeof v);
        char want[32], got[32];
        size_t n = ksv_format_float_g(v, got);
        checked++;
        if (!isfinite(v)) {
            if (n != 0 || got[0] != '\0')
                bad++;
            continue;
        }
        size_t wn = reference(v, want);
        if (n != wn || memcmp(got, want, n + 1) != 0) {
            if (++bad <= 50)
                printf("MISMATCH 0x%08" PRIx32 ": want \"%s\", got \"%s\"\n", bits, want, got);
        }
    }
    printf("checked %" PRIu64 " patterns in [0x%" PRIx64 ", 0x%" PRIx64 ") step %" PRIu64
           ": %" PRIu64 " mismatches, %.0f s\n", checked, lo, hi, step, bad, now_s() - t0);
    return bad ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc >= 4 && strcmp(argv[1], "--check") == 0) {
        uint64_t lo = strtoull(argv[2], NULL, 16), hi = strtoull(argv[3], NULL, 16);
        uint64_t step = argc > 4 ? strtoull(argv[4], NULL, 10) : 1;
        if (hi > UINT64_C(1) << 32 || lo > hi || step == 0) {
            fprintf(stderr, "usage: %s --check LO HI [STEP]\n", argv[0]);
            return 2;
        }
        return check(lo, hi, step);
    }

    float *v = malloc(COUNT * sizeof *v);
    if (!v)
        return 1;
    uint64_t state = 42;
    size_t half = COUNT / 2;
    for (size_t i = 0; i < half; i++) {
        double z = sqrt(-2.0 * log(unit(&state))) * cos(6.283185307179586 * unit(&state));
        v[i] = 1.0f / (1.0f + expf((float)(-2.0 * z)));
    }
    for (size_t i = half; i < COUNT; i++)
        v[i] = (float)pow(10.0, -3.0 + 9.0 * unit(&state));

    static const char *names[] = {"probabilities", "regression 1e-3..1e6"};
    const float *start[] = {v, v + half};
    size_t len[] = {half, COUNT - half};
    double sum_old = 0, sum_new = 0;
    int rc = 0;
    printf("%-22s %12s %12s %8s\n", "values", "old ns/val", "new ns/val", "ratio");
    for (int s = 0; s < 2; s++) {
        uint64_t h_old, h_new;
        double t_old = time_format(reference, 1, start[s], len[s], &h_old);
        double t_new = time_format(ksv_format_float_g, 3, start[s], len[s], &h_new);
        printf("%-22s %12.1f %12.1f %7.1fx%s\n", names[s], t_old, t_new, t_old / t_new,
               h_old == h_new ? "" : "  OUTPUT DIFFERS");
        rc |= h_old != h_new;
        sum_old += t_old * (double)len[s];
        sum_new += t_new * (double)len[s];
    }
    printf("%-22s %12.1f %12.1f %7.1fx\n", "all 10M", sum_old / COUNT, sum_new / COUNT,
           sum_old / sum_new);
    free(v);
    return rc;
}

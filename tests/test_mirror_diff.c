/* test_mirror_diff.c: prediction-disagreement's rule (engine/mirror.c, DESIGN.md section
 * 10): for classifiers a row differs when its predicted class differs (argmax for
 * probabilities, the class index for multi:softmax, the 0.5 cut for binary:logistic and
 * 0 for binary:logitraw); otherwise when the relative difference exceeds 1e-3. Edge cases:
 * the 1e-3 boundary from both sides, NaN and infinities (no undefined float-to-integer
 * conversion: UBSan runs this), multi-output rows. */
#include <math.h>
#include <stdio.h>

#include "engine/mirror.h"
#include "ktest.h"

typedef struct diff_case {
    const char *what, *objective;
    size_t rows, width;
    float a[6], b[6];
    unsigned want;
} diff_case;

int main(void)
{
    const float nan = NAN, inf = INFINITY;
    const diff_case cases[] = {
        {"binary: same side of 0.5", "binary:logistic", 2, 1, {0.2f, 0.7f}, {0.4f, 0.6f}, 0},
        {"binary: across 0.5", "binary:logistic", 2, 1, {0.49f, 0.9f}, {0.51f, 0.9f}, 1},
        {"binary: NaN names no class", "binary:logistic", 2, 1, {nan, nan}, {0.2f, nan}, 1},
        {"logitraw: the cut is 0", "binary:logitraw", 3, 1, {-0.1f, 0.3f, 0.4f},
         {0.1f, 2.0f, 0.6f}, 1},
        {"softprob: argmax", "multi:softprob", 2, 3, {0.1f, 0.7f, 0.2f, 0.5f, 0.3f, 0.2f},
         {0.2f, 0.6f, 0.2f, 0.2f, 0.3f, 0.5f}, 1},
        {"softprob: a NaN is skipped", "multi:softprob", 1, 3, {nan, 0.3f, 0.7f},
         {0.1f, 0.2f, 0.7f}, 0},
        {"softmax: class index", "multi:softmax", 4, 1, {2, 1, 0, 3}, {2, 2, 0, 3}, 1},
        {"softmax: NaN, inf, negative, huge", "multi:softmax", 4, 1, {nan, inf, -1, 3e30f},
         {1, 1, 1, 1}, 4},
        {"softmax: both broken alike", "multi:softmax", 2, 1, {nan, -inf}, {nan, -2}, 0},
        {"regression: inside 1e-3", "reg:squarederror", 3, 1, {1.0f, -50, 0},
         {1.0009f, -50.04f, 0}, 0},
        {"regression: past 1e-3", "reg:squarederror", 3, 1, {1.0f, -50, 0},
         {1.0011f, -50.06f, 1e-9f}, 3},
        {"regression: NaN and infinities", "reg:squarederror", 5, 1,
         {nan, nan, inf, inf, -inf}, {nan, 1, inf, 1e30f, inf}, 3},
        {"regression: any output of a row", "reg:squarederror", 2, 2, {1, 2, 3, 4},
         {1, 2.01f, 3, 4}, 1},
        {"ranking is regression-like", "rank:pairwise", 2, 1, {0.5f, 1.0f}, {0.5f, 1.5f}, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const diff_case *c = &cases[i];
        uint64_t got = ksv_mirror_count_diff(c->objective, c->a, c->b, c->rows, c->width);
        uint64_t back = ksv_mirror_count_diff(c->objective, c->b, c->a, c->rows, c->width);
        KT_CHECK(got == c->want && back == c->want, "%s: %llu and %llu differing rows, want %u",
                 c->what, (unsigned long long)got, (unsigned long long)back, c->want);
    }
    return kt_summary("test_mirror_diff");
}

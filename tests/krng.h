/* krng.h: a small seeded generator (splitmix64) for the C tests that simulate traffic,
 * header-only: the same seed gives the same sequence on every machine, so a failure is
 * reproduced by running the test again. */
#ifndef KSV_TESTS_KRNG_H
#define KSV_TESTS_KRNG_H

#include <stdint.h>

typedef struct rng {
    uint64_t state;
} rng;

static inline uint64_t rng_next(rng *r)
{
    uint64_t z = (r->state += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

/* Uniform in (0, 1), never 0 (a log of it stays finite). */
static inline double rng_unit(rng *r)
{
    return ((double)(rng_next(r) >> 11) + 0.5) * 0x1p-53;
}

#endif

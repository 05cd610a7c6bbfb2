/* random.h: ksv's one small pseudo-random generator, splitmix64 (Steele, Lea and Flood):
 * seedable, any seed (0 included) is fine, good enough for traffic draws, jitter, test
 * data and probes; never for secrets (tokens come from the kernel). Header-only: the
 * request path draws one number per request. */
#ifndef KSV_COMMON_RANDOM_H
#define KSV_COMMON_RANDOM_H

#include <stdint.h>

static inline uint64_t ksv_splitmix64(uint64_t *state)
{
    uint64_t z = (*state += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

/* Uniform in [0, 1), 53 random bits. */
static inline double ksv_random_unit(uint64_t *state)
{
    return (double)(ksv_splitmix64(state) >> 11) * 0x1p-53;
}

#endif

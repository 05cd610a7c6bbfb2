/* clock.h: the clocks ksv reads, one name each.
 *
 * Monotonic time (never jumps, meaningless across processes) measures durations, deadlines
 * and rates; wall time (CLOCK_REALTIME) is what people and files see: timestamps in the
 * store and the API, ages. A pthread_cond_timedwait deadline is a timespec on the clock the
 * condition variable was made with (ksv_timespec_in). */
#ifndef KSV_COMMON_CLOCK_H
#define KSV_COMMON_CLOCK_H

#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

double ksv_mono_s(void);
double ksv_mono_ms(void);
int64_t ksv_mono_ns(void);
double ksv_wall_s(void);
int64_t ksv_wall_ms(void);
/* A clock that tests may move forward: the real clocks plus an offset. ksv-engine makes one
 * only when KSV_TEST_CLOCK is set (its value: the starting offset in seconds, e.g. -86400
 * to begin a scripted day yesterday), and then POST /ksv/v1/test/clock advances it; the
 * elastic bookkeeping (idle windows, scale to zero, load and unload event times) reads it,
 * so a test plays a day of residency in seconds. NULL everywhere means the real clocks. */
typedef struct ksv_clock {
    _Atomic int64_t offset_ns;
} ksv_clock;

void ksv_clock_init(ksv_clock *c, double offset_s);
void ksv_clock_advance(ksv_clock *c, double seconds);
int64_t ksv_clock_mono_ns(const ksv_clock *c);
double ksv_clock_mono_s(const ksv_clock *c);
int64_t ksv_clock_wall_ms(const ksv_clock *c);

/* The moment `seconds` from now on `clock`, as a timespec (for timed waits). */
struct timespec ksv_timespec_in(clockid_t clock, double seconds);

#endif

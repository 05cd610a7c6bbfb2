/* clock.h: the clocks ksv reads, one name each.
 *
 * Monotonic time (never jumps, meaningless across processes) measures durations, deadlines
 * and rates; wall time (CLOCK_REALTIME) is what people and files see: timestamps in the
 * store and the API, ages. A pthread_cond_timedwait deadline is a timespec on the clock the
 * condition variable was made with (ksv_timespec_in). */
#ifndef KSV_COMMON_CLOCK_H
#define KSV_COMMON_CLOCK_H

#include <stdint.h>
#include <time.h>

double ksv_mono_s(void);
double ksv_mono_ms(void);
int64_t ksv_mono_ns(void);
double ksv_wall_s(void);
int64_t ksv_wall_ms(void);
/* The moment `seconds` from now on `clock`, as a timespec (for timed waits). */
struct timespec ksv_timespec_in(clockid_t clock, double seconds);

#endif

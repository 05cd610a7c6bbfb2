/* clock.c: monotonic and wall time (clock.h). */
#include "common/clock.h"

static struct timespec read_clock(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return ts;
}

double ksv_mono_s(void)
{
    struct timespec ts = read_clock(CLOCK_MONOTONIC);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

double ksv_mono_ms(void)
{
    struct timespec ts = read_clock(CLOCK_MONOTONIC);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

int64_t ksv_mono_ns(void)
{
    struct timespec ts = read_clock(CLOCK_MONOTONIC);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

double ksv_wall_s(void)
{
    struct timespec ts = read_clock(CLOCK_REALTIME);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int64_t ksv_wall_ms(void)
{
    struct timespec ts = read_clock(CLOCK_REALTIME);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct timespec ksv_timespec_in(clockid_t clock, double seconds)
{
    struct timespec ts = read_clock(clock);
    if (!(seconds > 0))
        return ts;
    if (seconds > 1e9)
        seconds = 1e9; /* a wait of 30 years is a wait forever */
    long long ns = (long long)ts.tv_nsec + (long long)((seconds - (double)(long long)seconds) * 1e9);
    ts.tv_sec += (time_t)(long long)seconds + (time_t)(ns / 1000000000LL);
    ts.tv_nsec = (long)(ns % 1000000000LL);
    return ts;
}

void ksv_clock_init(ksv_clock *c, double offset_s)
{
    atomic_init(&c->offset_ns, (int64_t)(offset_s * 1e9));
}

void ksv_clock_advance(ksv_clock *c, double seconds)
{
    atomic_fetch_add(&c->offset_ns, (int64_t)(seconds * 1e9));
}

static int64_t offset_of(const ksv_clock *c)
{
    return c ? atomic_load_explicit(&((ksv_clock *)c)->offset_ns, memory_order_relaxed) : 0;
}

int64_t ksv_clock_mono_ns(const ksv_clock *c)
{
    return ksv_mono_ns() + offset_of(c);
}

double ksv_clock_mono_s(const ksv_clock *c)
{
    return (double)ksv_clock_mono_ns(c) * 1e-9;
}

int64_t ksv_clock_wall_ms(const ksv_clock *c)
{
    return ksv_wall_ms() + offset_of(c) / 1000000;
}

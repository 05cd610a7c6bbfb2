/* format.c: figures as ksv-top writes them. */
#include "tui/format.h"

#include <math.h>
#include <stdio.h>
#include <time.h>

void tui_fmt_qps(bool has, double qps, char *out, size_t cap)
{
    if (!has || isnan(qps))
        snprintf(out, cap, "-");
    else
        snprintf(out, cap, "%.1f", qps);
}

void tui_fmt_ms(double ms, char *out, size_t cap)
{
    if (isnan(ms))
        snprintf(out, cap, "-");
    else
        snprintf(out, cap, "%.1fms", ms);
}

void tui_fmt_pct(double pct, char *out, size_t cap)
{
    if (isnan(pct))
        snprintf(out, cap, "-");
    else
        snprintf(out, cap, "%.2f%%", pct);
}

void tui_fmt_age(int64_t ms, char *out, size_t cap)
{
    if (ms < 0) {
        snprintf(out, cap, "-");
        return;
    }
    long long s = (long long)(ms / 1000);
    if (s < 120)
        snprintf(out, cap, "%llds", s);
    else if (s < 7200)
        snprintf(out, cap, "%lldm", s / 60);
    else if (s < 172800)
        snprintf(out, cap, "%lldh", s / 3600);
    else
        snprintf(out, cap, "%lldd", s / 86400);
}

void tui_fmt_bytes(long long bytes, char *out, size_t cap)
{
    static const char units[] = "BKMGTP";
    if (bytes < 0) {
        snprintf(out, cap, "-");
        return;
    }
    double v = (double)bytes;
    int u = 0;
    while (v >= 1024 && u < 5) {
        v /= 1024;
        u++;
    }
    if (u == 0 || v >= 10)
        snprintf(out, cap, "%.0f%c", v, units[u]);
    else
        snprintf(out, cap, "%.1f%c", v, units[u]);
}

void tui_fmt_clock(int64_t at_ms, int64_t now_ms, char *out, size_t cap)
{
    if (at_ms <= 0) {
        snprintf(out, cap, "-");
        return;
    }
    time_t t = (time_t)(at_ms / 1000), now = (time_t)(now_ms / 1000);
    struct tm tm, tn;
    localtime_r(&t, &tm);
    localtime_r(&now, &tn);
    if (tm.tm_year == tn.tm_year && tm.tm_yday == tn.tm_yday)
        strftime(out, cap, "%H:%M:%S", &tm);
    else
        strftime(out, cap, "%Y-%m-%d %H:%M", &tm);
}

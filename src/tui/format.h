/* format.h: how ksv-top writes figures (README.md, "The console"): QPS with one decimal ("12.3"),
 * latencies in ms with one decimal ("3.2ms"), error rates in percent with two decimals
 * ("0.25%"), ages ("42s", "5m", "3h", "2d"); "-" wherever a window has no data. Pure
 * functions, no curses, so they are unit-tested directly. */
#ifndef KSV_TUI_FORMAT_H
#define KSV_TUI_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* has false or a NaN value: "-". */
void tui_fmt_qps(bool has, double qps, char *out, size_t cap);
void tui_fmt_ms(double ms, char *out, size_t cap);
void tui_fmt_pct(double pct, char *out, size_t cap);
/* An age in milliseconds; negative: "-". */
void tui_fmt_age(int64_t ms, char *out, size_t cap);
/* Bytes as "512M", "1.5G"; negative: "-". */
void tui_fmt_bytes(long long bytes, char *out, size_t cap);
/* A wall-clock time (ms since the epoch) as local "HH:MM:SS", or "YYYY-MM-DD HH:MM" when
 * it is not today. */
void tui_fmt_clock(int64_t at_ms, int64_t now_ms, char *out, size_t cap);

#endif

/* spark.h: sparklines as text. Braille (UTF-8): each cell holds two consecutive samples,
 * each drawn 0..4 dots high from the bottom (U+2800 + dot bits), as htop's graph meters do.
 * ASCII (no UTF-8 locale): one sample per cell, levels " ._-=" ... "#". Values scale to
 * `max` (<= 0: the largest value shown); NaN draws as empty. Pure, no curses. */
#ifndef KSV_TUI_SPARK_H
#define KSV_TUI_SPARK_H

#include <stdbool.h>
#include <stddef.h>

/* The level 0..4 of v against max (v > 0 gets at least 1). */
int tui_spark_level(double v, double max);
/* Renders the newest samples of v[0..n) (oldest first) into `cells` cells, right-aligned
 * (missing history is blank). Writes a NUL-terminated string into out (braille needs 3
 * bytes per cell) and returns its length in bytes; truncates to cap. */
size_t tui_spark_render(const double *v, size_t n, size_t cells, double max, bool utf8,
                        char *out, size_t cap);

#endif

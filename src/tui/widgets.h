/* widgets.h: the drawing pieces of ksv-top, above the terminal layer: a text cell clipped
 * to a width (UTF-8 aware), a table heading and rows, a framed dialog with buttons, the
 * status line, the input line of `/` and `:`, and a sparkline. They draw on stdscr. */
#ifndef KSV_TUI_WIDGETS_H
#define KSV_TUI_WIDGETS_H

#include <stdbool.h>
#include <stddef.h>

#include "tui/crt.h"

/* Display columns of a UTF-8 string (each code point one column: ksv-top prints no wide
 * characters). */
size_t tui_text_width(const char *s);
/* Draws s at (y, x) in at most w columns, padded with spaces to w when pad; right-aligned
 * when right. Returns the columns written. */
int tui_put(int y, int x, int w, const char *s, int attr, bool pad, bool right);
/* Fills row y with spaces in attr. */
void tui_fill_row(int y, int attr);

/* A column of a table. */
typedef struct tui_column {
    const char *title;
    int width;
    bool right;
    int priority;          /* lower is dropped first when the screen is narrow */
    bool flex;             /* takes what is left (at least width) */
} tui_column;

/* Decides the visible columns for screen width cols: drops the lowest priority until the
 * rest fits (one space between columns), then gives the flex column what is left.
 * widths[i] = 0 for a dropped column. Pure, unit-tested. */
void tui_layout_columns(const tui_column *cols, size_t n, int screen_cols, int *widths);

/* A centred box with a title, lines of text, and buttons; focus is the focused button. */
void tui_draw_dialog(const tui_crt *crt, const char *title, const char *const *lines,
                     size_t n_lines, const char *const *buttons, size_t n_buttons, int focus);

#endif

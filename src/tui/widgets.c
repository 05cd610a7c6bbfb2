/* widgets.c: cells, tables, dialogs. */
#include "tui/widgets.h"

#include <curses.h>
#include <stdio.h>
#include <string.h>

#include "common/sanitize.h"

size_t tui_text_width(const char *s)
{
    size_t w = 0;
    for (; *s; s++)
        w += ((unsigned char)*s & 0xC0) != 0x80;
    return w;
}

/* Byte length of the first `cols` columns of s. */
static size_t bytes_for_cols(const char *s, size_t cols)
{
    size_t i = 0, c = 0;
    while (s[i]) {
        if (((unsigned char)s[i] & 0xC0) != 0x80) {
            if (c == cols)
                break;
            c++;
        }
        i++;
    }
    return i;
}

int tui_put(int y, int x, int w, const char *s, int attr, bool pad, bool right)
{
    if (w <= 0 || y < 0 || x < 0 || y >= LINES || x >= COLS)
        return 0;
    if (x + w > COLS)
        w = COLS - x;
    if (!s)
        s = "";
    /* Everything on screen may come from a node or a file: never an escape sequence. */
    char safe[4096];
    if (!ksv_is_terminal_safe(s))
        s = (ksv_sanitize_copy(safe, sizeof safe, s), safe);
    size_t tw = tui_text_width(s);
    size_t shown = tw > (size_t)w ? (size_t)w : tw;
    attron(attr);
    int col = x;
    if (right && pad && shown < (size_t)w) {
        mvhline(y, x, ' ', w - (int)shown);
        col += w - (int)shown;
    }
    mvaddnstr(y, col, s, (int)bytes_for_cols(s, shown));
    col += (int)shown;
    if (pad && !right && col < x + w)
        mvhline(y, col, ' ', x + w - col);
    attroff(attr);
    return pad ? w : (int)shown;
}

void tui_fill_row(int y, int attr)
{
    attron(attr);
    mvhline(y, 0, ' ', COLS);
    attroff(attr);
}

void tui_layout_columns(const tui_column *cols, size_t n, int screen_cols, int *widths)
{
    bool on[64];
    for (size_t i = 0; i < n && i < 64; i++) {
        on[i] = true;
        widths[i] = cols[i].width;
    }
    for (;;) {
        int total = 0, shown = 0;
        for (size_t i = 0; i < n; i++)
            if (on[i]) {
                total += cols[i].width;
                shown++;
            }
        total += shown > 0 ? shown - 1 : 0;
        if (total <= screen_cols) {
            for (size_t i = 0; i < n; i++)
                if (on[i] && cols[i].flex)
                    widths[i] += screen_cols - total;
            break;
        }
        /* Drop the lowest priority column still shown. */
        long drop = -1;
        for (size_t i = 0; i < n; i++)
            if (on[i] && (drop < 0 || cols[i].priority < cols[drop].priority))
                drop = (long)i;
        if (drop < 0 || shown == 1) {
            break;
        }
        on[drop] = false;
    }
    for (size_t i = 0; i < n; i++)
        if (!on[i])
            widths[i] = 0;
}

void tui_draw_dialog(const tui_crt *crt, const char *title, const char *const *lines,
                     size_t n_lines, const char *const *buttons, size_t n_buttons, int focus)
{
    int w = (int)tui_text_width(title) + 4;
    for (size_t i = 0; i < n_lines; i++)
        if ((int)tui_text_width(lines[i]) + 4 > w)
            w = (int)tui_text_width(lines[i]) + 4;
    int bw = 0;
    for (size_t i = 0; i < n_buttons; i++)
        bw += (int)tui_text_width(buttons[i]) + 5;
    if (bw + 4 > w)
        w = bw + 4;
    if (w > COLS - 2)
        w = COLS - 2;
    int h = (int)n_lines + 4;
    int y0 = (LINES - h) / 2, x0 = (COLS - w) / 2;
    int attr = tui_crt_attr(crt, TUI_C_DIALOG);
    for (int y = 0; y < h; y++)
        tui_put(y0 + y, x0, w, "", attr, true, false);
    attron(attr);
    mvhline(y0, x0, ACS_HLINE, w);
    mvhline(y0 + h - 1, x0, ACS_HLINE, w);
    mvvline(y0, x0, ACS_VLINE, h);
    mvvline(y0, x0 + w - 1, ACS_VLINE, h);
    mvaddch(y0, x0, ACS_ULCORNER);
    mvaddch(y0, x0 + w - 1, ACS_URCORNER);
    mvaddch(y0 + h - 1, x0, ACS_LLCORNER);
    mvaddch(y0 + h - 1, x0 + w - 1, ACS_LRCORNER);
    attroff(attr);
    tui_put(y0, x0 + 2, w - 4, title, attr | A_BOLD, false, false);
    for (size_t i = 0; i < n_lines; i++)
        tui_put(y0 + 1 + (int)i, x0 + 2, w - 4, lines[i], attr, false, false);
    int x = x0 + (w - bw) / 2;
    for (size_t i = 0; i < n_buttons; i++) {
        char b[64];
        snprintf(b, sizeof b, "[ %s ]", buttons[i]);
        int battr = (int)i == focus ? tui_crt_attr(crt, TUI_C_BUTTON_FOCUS) : attr;
        x += tui_put(y0 + h - 2, x, (int)tui_text_width(b), b, battr, false, false) + 1;
    }
}

/* crt.c: curses setup, colours by meaning, suspend/resume. */
#include "tui/crt.h"

#include <curses.h>
#include <langinfo.h>
#include <locale.h>
#include <stdlib.h>
#include <string.h>

/* Foreground per meaning on the terminal's own background (-1), so light and dark
 * terminals both stay readable; no dark blue on black. */
static const struct {
    short fg, bg;
    int extra;
} scheme[TUI_C_COUNT] = {
    [TUI_C_DEFAULT] = {-1, -1, 0},
    [TUI_C_HEADER] = {COLOR_BLACK, COLOR_CYAN, 0},
    [TUI_C_TITLE] = {COLOR_CYAN, -1, A_BOLD},
    [TUI_C_SELECTED] = {COLOR_BLACK, COLOR_CYAN, 0},
    [TUI_C_OK] = {COLOR_GREEN, -1, 0},
    [TUI_C_WARN] = {COLOR_YELLOW, -1, A_BOLD},
    [TUI_C_BAD] = {COLOR_RED, -1, A_BOLD},
    [TUI_C_DIM] = {-1, -1, A_DIM},
    [TUI_C_PENDING] = {COLOR_MAGENTA, -1, A_BOLD},
    [TUI_C_CANARY] = {COLOR_YELLOW, -1, 0},
    [TUI_C_SPARK] = {COLOR_GREEN, -1, 0},
    [TUI_C_KEY] = {COLOR_BLACK, COLOR_CYAN, 0},
    [TUI_C_DIALOG] = {COLOR_WHITE, COLOR_BLUE, 0},
    [TUI_C_BUTTON_FOCUS] = {COLOR_BLACK, COLOR_YELLOW, A_BOLD},
};

/* Monochrome: meaning through attributes only. */
static const int mono_attr[TUI_C_COUNT] = {
    [TUI_C_DEFAULT] = A_NORMAL,  [TUI_C_HEADER] = A_REVERSE, [TUI_C_TITLE] = A_BOLD,
    [TUI_C_SELECTED] = A_REVERSE, [TUI_C_OK] = A_NORMAL,     [TUI_C_WARN] = A_BOLD,
    [TUI_C_BAD] = A_BOLD | A_UNDERLINE, [TUI_C_DIM] = A_DIM,  [TUI_C_PENDING] = A_BOLD,
    [TUI_C_CANARY] = A_NORMAL,   [TUI_C_SPARK] = A_NORMAL,   [TUI_C_KEY] = A_REVERSE,
    [TUI_C_DIALOG] = A_NORMAL,   [TUI_C_BUTTON_FOCUS] = A_REVERSE | A_BOLD,
};

bool tui_locale_is_utf8(void)
{
    const char *cs = nl_langinfo(CODESET);
    return cs && (strcmp(cs, "UTF-8") == 0 || strcmp(cs, "utf8") == 0);
}

/* Only the character type follows the user's locale (for UTF-8 and braille): numbers keep
 * the C locale's '.' so figures read "12.3" everywhere, as README.md's console section writes them. */
void tui_crt_locale_init(void)
{
    setlocale(LC_CTYPE, "");
}

int tui_crt_init(tui_crt *crt, bool mono)
{
    memset(crt, 0, sizeof *crt);
    crt->utf8 = tui_locale_is_utf8();
    const char *no_color = getenv("NO_COLOR");
    crt->mono = mono || (no_color && *no_color);
    if (!getenv("ESCDELAY"))
        set_escdelay(25);
    if (!initscr())
        return -1;
    crt->active = true;
    cbreak();
    noecho();
    nonl();
    keypad(stdscr, TRUE);
    curs_set(0);
    if (!crt->mono && has_colors()) {
        start_color();
        use_default_colors();
        for (int c = 1; c < TUI_C_COUNT; c++)
            init_pair((short)c, scheme[c].fg, scheme[c].bg);
    } else {
        crt->mono = true;
    }
    return 0;
}

void tui_crt_done(tui_crt *crt)
{
    if (crt->active) {
        endwin();
        crt->active = false;
    }
}

void tui_crt_suspend(tui_crt *crt)
{
    if (crt->active) {
        def_prog_mode();
        endwin();
    }
}

void tui_crt_resume(tui_crt *crt)
{
    if (crt->active) {
        reset_prog_mode();
        clearok(stdscr, TRUE);
        refresh();
    }
}

int tui_crt_attr(const tui_crt *crt, tui_color c)
{
    if (c <= TUI_C_DEFAULT || c >= TUI_C_COUNT)
        return A_NORMAL;
    if (crt->mono)
        return mono_attr[c];
    return COLOR_PAIR(c) | scheme[c].extra;
}

int tui_crt_getkey(int timeout_ms)
{
    timeout(timeout_ms);
    return getch();
}

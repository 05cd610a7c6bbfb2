/* crt.h: ksv-top's terminal layer (htop's CRT in spirit). The only place that calls
 * initscr/endwin and decides colours: everything above asks for a colour *meaning*
 * (tui_color) and gets the attribute for the active scheme (colour, or monochrome for -C
 * and NO_COLOR, where meaning is carried by bold/reverse/underline). */
#ifndef KSV_TUI_CRT_H
#define KSV_TUI_CRT_H

#include <stdbool.h>

typedef enum {
    TUI_C_DEFAULT,
    TUI_C_HEADER,        /* top bar */
    TUI_C_TITLE,         /* panel titles, column headings */
    TUI_C_SELECTED,      /* the cursor row */
    TUI_C_OK,            /* healthy, ready, up */
    TUI_C_WARN,          /* elevated error rate, loading, stale */
    TUI_C_BAD,           /* errors, down, failed */
    TUI_C_DIM,           /* secondary text, no data */
    TUI_C_PENDING,       /* a change not yet applied */
    TUI_C_CANARY,        /* canary revision */
    TUI_C_SPARK,
    TUI_C_KEY,           /* key names in the function bar */
    TUI_C_DIALOG,
    TUI_C_BUTTON_FOCUS,
    TUI_C_COUNT
} tui_color;

typedef struct tui_crt {
    bool active;         /* curses is running */
    bool mono;
    bool utf8;           /* the locale's charset is UTF-8: braille and arrows */
} tui_crt;

/* Adopts the environment's locale (setlocale(LC_ALL, "")), which curses needs for UTF-8.
 * Call it before any thread starts: glibc's setlocale is not thread-safe, and a
 * duplocale(LC_GLOBAL_LOCALE) running beside it (json-c makes one on every parse, in the
 * worker threads) sizes the locale names before the change and copies them after it,
 * writing past its allocation. */
void tui_crt_locale_init(void);
/* Decides utf8 from the locale already set, starts curses (cbreak, no echo, keypad, short
 * ESC delay). mono: -C or NO_COLOR. */
int tui_crt_init(tui_crt *crt, bool mono);
void tui_crt_done(tui_crt *crt);
/* Leaves curses for a child program (an editor) and comes back. */
void tui_crt_suspend(tui_crt *crt);
void tui_crt_resume(tui_crt *crt);
int tui_crt_attr(const tui_crt *crt, tui_color c);
/* Waits up to timeout_ms for a key; -1 (ERR) when none came. */
int tui_crt_getkey(int timeout_ms);
/* Whether the locale (as set) is UTF-8; no curses needed. */
bool tui_locale_is_utf8(void);

#endif

/* keys.h: the one key-binding table of ksv-top. Dispatch and the `?` help screen are both
 * generated from it, so a key cannot work without being documented (or the reverse). */
#ifndef KSV_TUI_KEYS_H
#define KSV_TUI_KEYS_H

#include <stdbool.h>
#include <stddef.h>

typedef enum {
    TUI_SCREEN_MODELS = 1 << 0,
    TUI_SCREEN_DETAIL = 1 << 1,
    TUI_SCREEN_HISTORY = 1 << 2,
    TUI_SCREEN_NODES = 1 << 3,
    TUI_SCREEN_HELP = 1 << 4,
    TUI_SCREEN_NAMESPACES = 1 << 5,
    TUI_SCREEN_COST = 1 << 6,
    TUI_SCREEN_ALL = 0x7f,
} tui_screen;

typedef enum {
    TUI_ACT_NONE,
    TUI_ACT_QUIT,
    TUI_ACT_HELP,
    TUI_ACT_UP,
    TUI_ACT_DOWN,
    TUI_ACT_PAGE_UP,
    TUI_ACT_PAGE_DOWN,
    TUI_ACT_HOME,
    TUI_ACT_END,
    TUI_ACT_OPEN,          /* Enter: open the model, or apply a pending slider */
    TUI_ACT_EXPAND,
    TUI_ACT_BACK,          /* Esc: cancel a pending slider, clear the filter, go back */
    TUI_ACT_CANARY_UP5,
    TUI_ACT_CANARY_DOWN5,
    TUI_ACT_CANARY_UP1,
    TUI_ACT_CANARY_DOWN1,
    TUI_ACT_PROMOTE,
    TUI_ACT_ROLLBACK,
    TUI_ACT_GATE_PAUSE,    /* pause or resume the release gate (confirm dialog) */
    TUI_ACT_GATE_ABORT,    /* abort the release gate (confirm dialog) */
    TUI_ACT_EDIT,
    TUI_ACT_MODELS,
    TUI_ACT_HISTORY,
    TUI_ACT_NODES,
    TUI_ACT_NAMESPACES,
    TUI_ACT_COST,
    TUI_ACT_FILTER,
    TUI_ACT_GROUP,         /* nodes screen: group by the next label key (then none) */
    TUI_ACT_COMMAND,
    TUI_ACT_SORT_NEXT,
    TUI_ACT_SORT_PREV,
    TUI_ACT_SORT_INVERT,
    TUI_ACT_REFRESH,
    TUI_ACT_REDRAW,
} tui_action;

typedef struct tui_binding {
    int key;               /* a curses key code or a character */
    const char *label;     /* as the help screen shows it */
    unsigned screens;      /* tui_screen bits where it acts */
    tui_action action;
    bool changes;          /* changes desired state: refused by --readonly */
    const char *help;
} tui_binding;

/* The table, in help-screen order. */
const tui_binding *tui_bindings(size_t *n);
/* The action of key on screen, TUI_ACT_NONE when unbound there. *binding (may be NULL)
 * receives the entry. */
tui_action tui_key_action(int key, tui_screen screen, const tui_binding **binding);
/* Help lines: "LABEL  help" for each distinct (label, help), one per line into out. Lines
 * for keys that change state get " (disabled: --readonly)" when readonly. Returns the count;
 * out[i] are malloc'd (caller frees each and the array). */
size_t tui_help_lines(bool readonly, char ***out);

#endif

/* keys.c: the key-binding table. */
#include "tui/keys.h"

#include <curses.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ESC_KEY 27
#define CTRL(c) ((c) & 0x1f)

static const tui_binding bindings[] = {
    {'q', "q", TUI_SCREEN_ALL, TUI_ACT_QUIT, false, "quit"},
    {KEY_F(10), "F10", TUI_SCREEN_ALL, TUI_ACT_QUIT, false, "quit"},
    {'?', "?", TUI_SCREEN_ALL, TUI_ACT_HELP, false, "this help"},
    {KEY_F(1), "F1", TUI_SCREEN_ALL, TUI_ACT_HELP, false, "this help"},
    {KEY_UP, "Up", TUI_SCREEN_ALL, TUI_ACT_UP, false, "move up"},
    {'k', "k", TUI_SCREEN_ALL, TUI_ACT_UP, false, "move up"},
    {KEY_DOWN, "Down", TUI_SCREEN_ALL, TUI_ACT_DOWN, false, "move down"},
    {'j', "j", TUI_SCREEN_ALL, TUI_ACT_DOWN, false, "move down"},
    {KEY_PPAGE, "PgUp", TUI_SCREEN_ALL, TUI_ACT_PAGE_UP, false, "page up"},
    {KEY_NPAGE, "PgDn", TUI_SCREEN_ALL, TUI_ACT_PAGE_DOWN, false, "page down"},
    {KEY_HOME, "Home", TUI_SCREEN_ALL, TUI_ACT_HOME, false, "first row"},
    {'g', "g", TUI_SCREEN_ALL, TUI_ACT_HOME, false, "first row"},
    {KEY_END, "End", TUI_SCREEN_ALL, TUI_ACT_END, false, "last row"},
    {'G', "G", TUI_SCREEN_ALL, TUI_ACT_END, false, "last row"},
    {'\n', "Enter", TUI_SCREEN_MODELS | TUI_SCREEN_DETAIL, TUI_ACT_OPEN, false,
     "open the model; with a pending canary share: apply it"},
    {KEY_ENTER, "Enter", TUI_SCREEN_MODELS | TUI_SCREEN_DETAIL, TUI_ACT_OPEN, false,
     "open the model; with a pending canary share: apply it"},
    {'\r', "Enter", TUI_SCREEN_MODELS | TUI_SCREEN_DETAIL, TUI_ACT_OPEN, false,
     "open the model; with a pending canary share: apply it"},
    {' ', "Space", TUI_SCREEN_MODELS, TUI_ACT_EXPAND, false, "show/hide the model's revisions"},
    {KEY_RIGHT, "Right", TUI_SCREEN_MODELS, TUI_ACT_EXPAND, false,
     "show/hide the model's revisions"},
    {ESC_KEY, "Esc", TUI_SCREEN_ALL, TUI_ACT_BACK, false,
     "cancel the pending share / clear the filter / back"},
    {KEY_LEFT, "Left", TUI_SCREEN_ALL, TUI_ACT_BACK, false,
     "cancel the pending share / clear the filter / back"},
    {'+', "+", TUI_SCREEN_MODELS | TUI_SCREEN_DETAIL, TUI_ACT_CANARY_UP5, true,
     "canary share +5 (pending until Enter)"},
    {'=', "=", TUI_SCREEN_MODELS | TUI_SCREEN_DETAIL, TUI_ACT_CANARY_UP5, true,
     "canary share +5 (pending until Enter)"},
    {'-', "-", TUI_SCREEN_MODELS | TUI_SCREEN_DETAIL, TUI_ACT_CANARY_DOWN5, true,
     "canary share -5 (pending until Enter)"},
    {']', "]", TUI_SCREEN_MODELS | TUI_SCREEN_DETAIL, TUI_ACT_CANARY_UP1, true,
     "canary share +1 (pending until Enter)"},
    {'[', "[", TUI_SCREEN_MODELS | TUI_SCREEN_DETAIL, TUI_ACT_CANARY_DOWN1, true,
     "canary share -1 (pending until Enter)"},
    {'P', "P", TUI_SCREEN_MODELS | TUI_SCREEN_DETAIL, TUI_ACT_PROMOTE, true,
     "promote the canary (confirm dialog)"},
    {'R', "R", TUI_SCREEN_MODELS | TUI_SCREEN_DETAIL, TUI_ACT_ROLLBACK, true,
     "roll back (confirm dialog)"},
    {'p', "p", TUI_SCREEN_MODELS | TUI_SCREEN_DETAIL, TUI_ACT_GATE_PAUSE, true,
     "pause / resume the release gate (confirm dialog)"},
    {'A', "A", TUI_SCREEN_MODELS | TUI_SCREEN_DETAIL, TUI_ACT_GATE_ABORT, true,
     "abort the release gate: 100% back to stable (confirm dialog)"},
    {'e', "e", TUI_SCREEN_MODELS | TUI_SCREEN_DETAIL, TUI_ACT_EDIT, true,
     "edit the spec in $VISUAL/$EDITOR (a new revision on save)"},
    {'M', "M", TUI_SCREEN_ALL, TUI_ACT_MODELS, false, "models"},
    {'H', "H", TUI_SCREEN_ALL, TUI_ACT_HISTORY, false, "history"},
    {'N', "N", TUI_SCREEN_ALL, TUI_ACT_NODES, false, "nodes"},
    {'Q', "Q", TUI_SCREEN_ALL, TUI_ACT_NAMESPACES, false,
     "namespaces: models, memory, cold starts, quota used/hard"},
    {'C', "C", TUI_SCREEN_ALL, TUI_ACT_COST, false,
     "cost of the last 24 h: hours loaded, idle, at zero, GB-hours, requests"},
    {'/', "/", TUI_SCREEN_ALL & ~TUI_SCREEN_HELP, TUI_ACT_FILTER, false,
     "filter models (!text inverts); on nodes: a name or a label selector (region=eu,gpu)"},
    {'L', "L", TUI_SCREEN_NODES, TUI_ACT_GROUP, false, "nodes: group by the next label key, then none"},
    {':', ":", TUI_SCREEN_ALL, TUI_ACT_COMMAND, false,
     "command: rollback M, promote M, traffic M PCT, models, history, nodes, namespaces, "
     "cost, quit; --demo: badcanary"},
    {'>', ">", TUI_SCREEN_MODELS, TUI_ACT_SORT_NEXT, false, "sort by the next column"},
    {'<', "<", TUI_SCREEN_MODELS, TUI_ACT_SORT_PREV, false, "sort by the previous column"},
    {'I', "I", TUI_SCREEN_MODELS, TUI_ACT_SORT_INVERT, false, "invert the sort order"},
    {'r', "r", TUI_SCREEN_ALL, TUI_ACT_REFRESH, false, "refresh now"},
    {CTRL('l'), "^L", TUI_SCREEN_ALL, TUI_ACT_REDRAW, false, "redraw the screen"},
};

const tui_binding *tui_bindings(size_t *n)
{
    *n = sizeof bindings / sizeof bindings[0];
    return bindings;
}

tui_action tui_key_action(int key, tui_screen screen, const tui_binding **binding)
{
    for (size_t i = 0; i < sizeof bindings / sizeof bindings[0]; i++)
        if (bindings[i].key == key && (bindings[i].screens & (unsigned)screen)) {
            if (binding)
                *binding = &bindings[i];
            return bindings[i].action;
        }
    if (binding)
        *binding = NULL;
    return TUI_ACT_NONE;
}

size_t tui_help_lines(bool readonly, char ***out)
{
    size_t n_b = sizeof bindings / sizeof bindings[0], n = 0;
    char **lines = calloc(n_b, sizeof *lines);
    *out = lines;
    if (!lines)
        return 0;
    for (size_t i = 0; i < n_b; i++) {
        bool dup = false;
        for (size_t k = 0; k < i && !dup; k++)
            dup = bindings[k].action == bindings[i].action && strcmp(bindings[k].help, bindings[i].help) == 0;
        if (dup)
            continue;
        /* All labels of this action, "Up k". */
        char labels[64] = "";
        size_t len = 0;
        for (size_t k = i; k < n_b; k++)
            if (bindings[k].action == bindings[i].action && strstr(labels, bindings[k].label) == NULL) {
                int w = snprintf(labels + len, sizeof labels - len, "%s%s", len ? " " : "",
                                 bindings[k].label);
                if (w < 0 || (size_t)w >= sizeof labels - len)
                    break;
                len += (size_t)w;
            }
        char line[256];
        snprintf(line, sizeof line, "%-14s %s%s", labels, bindings[i].help,
                 readonly && bindings[i].changes ? " (disabled: --readonly)" : "");
        lines[n] = strdup(line);
        if (lines[n])
            n++;
    }
    return n;
}

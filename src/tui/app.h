/* app.h: ksv-top's UI thread: the state of the screens, the event loop, key dispatch
 * through the binding table, the confirm dialog, the `/` and `:` input lines, and the edit
 * flow. Everything slow happens on the worker (worker.h). */
#ifndef KSV_TUI_APP_H
#define KSV_TUI_APP_H

#include <stdbool.h>
#include <stdint.h>

#include "tui/crt.h"
#include "tui/keys.h"
#include "tui/model.h"
#include "tui/quit_signal.h"
#include "tui/worker.h"

#define TUI_MIN_COLS 80
#define TUI_MIN_LINES 24

typedef enum { TUI_MODE_NORMAL, TUI_MODE_FILTER, TUI_MODE_COMMAND, TUI_MODE_DIALOG } tui_mode;

typedef struct tui_app {
    tui_crt crt;
    tui_worker *worker;
    tui_snapshot *snap;
    tui_view view;
    tui_slider slider;
    tui_screen screen, back;
    char detail_key[TUI_KEY_LEN];
    bool readonly;
    bool quit;
    tui_mode mode;
    char input[128];
    size_t input_len;
    /* the confirm dialog */
    char dialog_title[96];
    char dialog_lines[8][256];
    size_t dialog_n;
    char dialog_ok[24];
    int dialog_focus;              /* 0: Cancel (the default), 1: the action, 2: the reason */
    char dialog_reason[200];       /* why, typed in the dialog: recorded in history */
    size_t dialog_reason_len;
    tui_job dialog_job;
    /* the status line */
    char status[1024];
    tui_color status_color;
    bool dirty;                    /* the screen shows less than the state: draw it again */
    /* scroll positions of the list screens */
    size_t list_cursor, list_top;
    /* the nodes screen: `/` there filters nodes (a label selector or a name), `L` groups */
    char node_filter[64];
    char node_group[80];
    bool filter_nodes;             /* the filter line being typed is the nodes screen's */
    const char *banner;            /* "demo" etc., shown in the header */
    const char *demo_bad_canary;   /* --demo: the manifest `:badcanary` applies */
} tui_app;

typedef struct tui_app_options {
    bool readonly;
    bool mono;
    const char *banner;
    const char *demo_bad_canary;  /* --demo: a bad canary's manifest for `:badcanary` */
    const tui_quit_signal *quit;  /* a quit signal ends the loop as q does; NULL: none */
} tui_app_options;

/* Runs the console on worker w until q. Returns the exit status. */
int tui_app_run(tui_worker *w, const tui_app_options *o);

/* Drawing (screens.c). */
void tui_draw(tui_app *a);

#endif

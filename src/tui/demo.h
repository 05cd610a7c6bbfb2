/* demo.h: `ksv-top --demo`: a temporary directory with its own database, one local engine
 * serving the demo models of data/ (churn with a slower canary: the stable revision on
 * ksv-forest, the canary on ksv-xgboost), and demo traffic (50 rps per model, 1% malformed
 * requests) from the load generator on background threads. Everything is removed by
 * tui_demo_stop. */
#ifndef KSV_TUI_DEMO_H
#define KSV_TUI_DEMO_H

#include "common/error.h"

typedef struct tui_demo tui_demo;

/* progress (may be NULL) gets a line per step, for the terminal before curses starts. */
int tui_demo_start(const char *argv0, void (*progress)(const char *line), tui_demo **out,
                   ksv_err *err);
const char *tui_demo_db(const tui_demo *d);
/* The demo's folder: its manifests, churn-bad-canary.yaml among them (`:badcanary`). */
const char *tui_demo_dir(const tui_demo *d);
/* Stops the traffic and the engine and deletes the directory. NULL is a no-op. */
void tui_demo_stop(tui_demo *d);

#endif

/* app.c: the UI loop of ksv-top: keys through the binding table, the confirm dialog, the
 * `/` filter and `:` command lines, the canary slider and the edit flow. */
#include "common/clock.h"
#include "tui/app.h"

#include <curses.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/fileutil.h"
#include "control/control.h"

#define UI_TICK_MS 100
#define ESC_KEY 27

static void set_status(tui_app *a, tui_color c, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_status(tui_app *a, tui_color c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(a->status, sizeof a->status, fmt, ap);
    va_end(ap);
    a->status_color = c;
    a->dirty = true;
}

static const tui_model *current_model(tui_app *a)
{
    if (a->screen == TUI_SCREEN_DETAIL)
        return tui_snapshot_find(a->snap, a->detail_key);
    return tui_view_current(&a->view, a->snap);
}

static void submit(tui_app *a, const tui_job *job, const char *what)
{
    ksv_err err;
    if (tui_worker_submit(a->worker, job, &err) != 0)
        set_status(a, TUI_C_BAD, "%s", err.msg);
    else
        set_status(a, TUI_C_PENDING, "%s ...", what);
}

/* ---- dialog ---- */

static void dialog_line(tui_app *a, const char *text)
{
    if (a->dialog_n < 8)
        snprintf(a->dialog_lines[a->dialog_n++], sizeof a->dialog_lines[0], "%s", text);
}

static void split_line(const tui_model *m, int stable_pct_override, int target, char *out,
                       size_t cap)
{
    size_t len = 0;
    out[0] = '\0';
    for (size_t i = 0; i < m->n_revs; i++) {
        int pct = stable_pct_override >= 0 ? ((int)i == target ? 100 : 0) : m->revs[i].percent;
        if (pct == 0)
            continue;
        int n = snprintf(out + len, cap - len, "%s%s %d%%", len ? ", " : "", m->revs[i].name, pct);
        if (n < 0 || (size_t)n >= cap - len)
            break;
        len += (size_t)n;
    }
    if (!len)
        snprintf(out, cap, "-");
}

/* Every confirm dialog about a model starts with its title and the model's and nodes' lines... */
static void dialog_begin(tui_app *a, const char *title, const tui_model *m)
{
    char line[256];
    a->dialog_n = 0;
    snprintf(a->dialog_title, sizeof a->dialog_title, " %s? ", title);
    snprintf(line, sizeof line, "model:   %s", m->key);
    dialog_line(a, line);
    snprintf(line, sizeof line, "node(s): %s", m->nodes[0] ? m->nodes : "-");
    dialog_line(a, line);
}

/* ...and ends the same way: focus on Cancel, an empty reason, the job it will run on OK. */
static void dialog_finish(tui_app *a, const tui_model *m, tui_job_kind kind, const char *ok)
{
    snprintf(a->dialog_ok, sizeof a->dialog_ok, "%s", ok);
    a->dialog_focus = 0;
    a->dialog_reason[0] = '\0';
    a->dialog_reason_len = 0;
    memset(&a->dialog_job, 0, sizeof a->dialog_job);
    a->dialog_job.kind = kind;
    snprintf(a->dialog_job.model, sizeof a->dialog_job.model, "%s", m->key);
    a->mode = TUI_MODE_DIALOG;
}

static void open_change_dialog(tui_app *a, const tui_model *m, tui_job_kind kind)
{
    char line[256], from[200], to[200];
    int target = kind == TUI_JOB_PROMOTE ? m->canary : tui_rollback_target(m);
    if (target < 0) {
        set_status(a, TUI_C_WARN, kind == TUI_JOB_PROMOTE ? "%s: no canary to promote"
                                                          : "%s: nothing to roll back to",
                   m->key);
        return;
    }
    char title[200];
    snprintf(title, sizeof title, "%s %.80s", kind == TUI_JOB_PROMOTE ? "Promote" : "Roll back",
             m->key);
    dialog_begin(a, title, m);
    split_line(m, -1, -1, from, sizeof from);
    split_line(m, 100, target, to, sizeof to);
    snprintf(line, sizeof line, "from:    %s", from);
    dialog_line(a, line);
    snprintf(line, sizeof line, "to:      %s%s", to,
             kind == TUI_JOB_PROMOTE ? " (becomes stable)" : "");
    dialog_line(a, line);
    dialog_finish(a, m, kind, kind == TUI_JOB_PROMOTE ? "Promote" : "Rollback");
}

static bool gate_active(const tui_gate *g)
{
    return g->present && strcmp(g->state.phase, "Succeeded") != 0 && strcmp(g->state.phase, "Failed") != 0;
}

/* The release gate's pause/resume or abort, shown as exactly as rollback's dialog. */
static void open_gate_dialog(tui_app *a, const tui_model *m, bool abort_it)
{
    const tui_gate *g = &m->gate;
    if (!gate_active(g)) {
        set_status(a, TUI_C_WARN, "%s: no release gate is rolling it out", m->key);
        return;
    }
    bool resume = !abort_it && strcmp(g->state.phase, "Paused") == 0;
    tui_job_kind kind = abort_it ? TUI_JOB_GATE_ABORT : resume ? TUI_JOB_GATE_RESUME
                                                                : TUI_JOB_GATE_PAUSE;
    const char *verb = abort_it ? "Abort" : resume ? "Resume" : "Pause";
    char line[256];
    char title[200];
    snprintf(title, sizeof title, "%s the gate of %.60s", verb, m->key);
    dialog_begin(a, title, m);
    snprintf(line, sizeof line, "from:    %s, %.60s at %d%%", g->state.phase, g->state.canary, g->state.actual_weight);
    dialog_line(a, line);
    if (abort_it)
        snprintf(line, sizeof line, "to:      Failed, %.60s at 0%% (stable takes 100%%)", g->state.canary);
    else if (resume)
        snprintf(line, sizeof line, "to:      %s, judged again from now", "Progressing");
    else
        snprintf(line, sizeof line, "to:      Paused, %.60s held at %d%%", g->state.canary, g->state.set_weight);
    dialog_line(a, line);
    dialog_finish(a, m, kind, verb);
}

static const char *job_doing(tui_job_kind kind)
{
    switch (kind) {
    case TUI_JOB_PROMOTE: return "promoting";
    case TUI_JOB_GATE_PAUSE: return "pausing the gate";
    case TUI_JOB_GATE_RESUME: return "resuming the gate";
    case TUI_JOB_GATE_ABORT: return "aborting the gate";
    default: return "rolling back";
    }
}

/* The reason field (focus 2) takes what is typed; Enter there moves to the action button,
 * so a reason is never sent by the key that ends it. */
static void reason_key(tui_app *a, int key)
{
    if (key == '\t' || key == '\n' || key == '\r' || key == KEY_ENTER) {
        a->dialog_focus = key == '\t' ? 0 : 1;
    } else if (key == KEY_BTAB) {
        a->dialog_focus = 1;
    } else if (key == ESC_KEY) {
        a->mode = TUI_MODE_NORMAL;
        set_status(a, TUI_C_DIM, "%s", "cancelled");
    } else if ((key == KEY_BACKSPACE || key == 127 || key == 8) && a->dialog_reason_len > 0) {
        a->dialog_reason[--a->dialog_reason_len] = '\0';
    } else if (key >= 32 && key < 127 && a->dialog_reason_len + 1 < sizeof a->dialog_reason) {
        a->dialog_reason[a->dialog_reason_len++] = (char)key;
        a->dialog_reason[a->dialog_reason_len] = '\0';
    }
}

static void dialog_key(tui_app *a, int key)
{
    if (a->dialog_focus == 2)
        return reason_key(a, key);
    switch (key) {
    case '\t':
        a->dialog_focus = (a->dialog_focus + 1) % 3; /* Cancel, the action, the reason */
        break;
    case KEY_BTAB:
        a->dialog_focus = (a->dialog_focus + 2) % 3;
        break;
    case 'r':
        a->dialog_focus = 2;
        break;
    case KEY_LEFT:
    case KEY_RIGHT:
    case 'h':
    case 'l':
        a->dialog_focus = !a->dialog_focus;
        break;
    case '\n':
    case '\r':
    case KEY_ENTER:
        a->mode = TUI_MODE_NORMAL;
        if (a->dialog_focus == 1) {
            snprintf(a->dialog_job.reason, sizeof a->dialog_job.reason, "%s", a->dialog_reason);
            submit(a, &a->dialog_job, job_doing(a->dialog_job.kind));
        } else {
            set_status(a, TUI_C_DIM, "%s", "cancelled");
        }
        break;
    case ESC_KEY:
    case 'q':
    case 'n':
        a->mode = TUI_MODE_NORMAL;
        set_status(a, TUI_C_DIM, "%s", "cancelled");
        break;
    default:
        break;
    }
}

/* ---- edit ---- */

static int run_editor(const char *path)
{
    const char *ed = getenv("VISUAL");
    if (!ed || !*ed)
        ed = getenv("EDITOR");
    if (!ed || !*ed)
        ed = "vi";
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        /* Through the shell, as git and kubectl do, so EDITOR may carry arguments. */
        tui_quit_signal_unblock_in_child();
        execl("/bin/sh", "sh", "-c", "exec $0 \"$1\"", ed, path, (char *)NULL);
        _exit(127);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

/* Drops the error comment lines edit_model put on top. */
static const char *skip_error_comment(const char *text)
{
    while (strncmp(text, "# ksv-top: ", 11) == 0) {
        const char *nl = strchr(text, '\n');
        if (!nl)
            return text + strlen(text);
        text = nl + 1;
    }
    return text;
}

static void edit_model(tui_app *a, const tui_model *m)
{
    ksv_sb doc;
    ksv_sb_init(&doc);
    ksv_err err;
    const char *uri = m->n_revs ? m->revs[m->n_revs - 1].storage_uri : NULL;
    if (ksv_console_spec_yaml(m->spec_json, uri, &doc, &err) != 0) {
        set_status(a, TUI_C_BAD, "edit: %s", err.msg);
        ksv_sb_free(&doc);
        return;
    }
    char key[TUI_KEY_LEN], ns[64], name[96];
    snprintf(key, sizeof key, "%s", m->key);
    snprintf(ns, sizeof ns, "%s", m->ns);
    snprintf(name, sizeof name, "%s", m->name);
    char path[] = "/tmp/ksv-top-edit-XXXXXX.yaml";
    int fd = mkstemps(path, 5);
    if (fd < 0) {
        set_status(a, TUI_C_BAD, "edit: cannot create a temporary file: %s", strerror(errno));
        ksv_sb_free(&doc);
        return;
    }
    close(fd);
    ksv_sb original;
    ksv_sb_init(&original);
    ksv_sb_append(&original, doc.data, doc.len);
    tui_crt_suspend(&a->crt);
    bool applied = false, cancelled = false;
    for (;;) {
        if (ksv_write_file_atomic(path, doc.data, doc.len, 0600, &err) != 0 ||
            run_editor(path) != 0) {
            cancelled = true;
            set_status(a, TUI_C_BAD, "edit: the editor failed; nothing changed%s", "");
            break;
        }
        char *text = NULL;
        size_t len = 0;
        if (ksv_read_file(path, 4 << 20, &text, &len, &err) != 0) {
            set_status(a, TUI_C_BAD, "edit: %s", err.msg);
            cancelled = true;
            break;
        }
        const char *body = skip_error_comment(text);
        size_t body_len = len - (size_t)(body - text);
        if (body_len == original.len && memcmp(body, original.data, body_len) == 0) {
            free(text);
            cancelled = true;
            set_status(a, TUI_C_DIM, "edit: %s unchanged, nothing applied", key);
            break;
        }
        ksv_manifest_list list;
        if (ksv_console_parse_edit(body, body_len, ns, name, &list, &err) == 0) {
            ksv_manifest_list_free(&list);
            tui_job job = {.kind = TUI_JOB_APPLY, .manifest = body, .manifest_len = body_len};
            snprintf(job.model, sizeof job.model, "%s", key);
            submit(a, &job, "applying the edited spec");
            free(text);
            applied = true;
            break;
        }
        /* As kubectl edit does: the file again, the error as a comment on top. */
        for (char *c = err.msg; *c; c++)
            if (*c == '\n' || *c == '\r')
                *c = ' ';
        ksv_sb_reset(&doc);
        ksv_sb_printf(&doc, "# ksv-top: %s\n# ksv-top: fix it and save, or save it unchanged "
                            "(or empty) to cancel\n", err.msg);
        ksv_sb_append(&doc, body, body_len);
        ksv_sb_reset(&original);
        ksv_sb_append(&original, body, body_len);
        if (body_len == 0) {
            free(text);
            cancelled = true;
            set_status(a, TUI_C_DIM, "edit: empty file, nothing applied%s", "");
            break;
        }
        free(text);
    }
    (void)applied;
    (void)cancelled;
    unlink(path);
    ksv_sb_free(&doc);
    ksv_sb_free(&original);
    tui_crt_resume(&a->crt);
}

/* ---- command line ---- */

static void run_command(tui_app *a, char *line)
{
    char *argv[8];
    int argc = 0;
    for (char *tok = strtok(line, " \t"); tok && argc < 8; tok = strtok(NULL, " \t"))
        argv[argc++] = tok;
    if (argc == 0)
        return;
    const char *cmd = argv[0];
    if (strcmp(cmd, "q") == 0 || strcmp(cmd, "quit") == 0) {
        a->quit = true;
    } else if (strcmp(cmd, "models") == 0 || strcmp(cmd, "m") == 0) {
        a->screen = TUI_SCREEN_MODELS;
    } else if (strcmp(cmd, "history") == 0) {
        a->screen = TUI_SCREEN_HISTORY;
    } else if (strcmp(cmd, "nodes") == 0) {
        a->screen = TUI_SCREEN_NODES;
    } else if (strcmp(cmd, "namespaces") == 0 || strcmp(cmd, "ns") == 0) {
        a->screen = TUI_SCREEN_NAMESPACES;
    } else if (strcmp(cmd, "cost") == 0) {
        a->screen = TUI_SCREEN_COST;
    } else if (strcmp(cmd, "help") == 0) {
        a->screen = TUI_SCREEN_HELP;
    } else if (strcmp(cmd, "badcanary") == 0) {
        /* --demo: a canary that answers 400 to everything, for the gate to roll back. */
        char *text = NULL;
        size_t len = 0;
        ksv_err err;
        if (!a->demo_bad_canary) {
            set_status(a, TUI_C_WARN, "%s", ":badcanary is a --demo command");
        } else if (a->readonly) {
            set_status(a, TUI_C_WARN, "%s: disabled by --readonly", cmd);
        } else if (ksv_read_file(a->demo_bad_canary, 1u << 20, &text, &len, &err) != 0) {
            set_status(a, TUI_C_BAD, "%s", err.msg);
        } else {
            tui_job job = {.kind = TUI_JOB_APPLY, .manifest = text, .manifest_len = len};
            snprintf(job.model, sizeof job.model, "%s", "default/churn");
            submit(a, &job, "applying a bad canary (the gate should roll it back)");
        }
        free(text);
    } else if (strcmp(cmd, "rollback") == 0 || strcmp(cmd, "promote") == 0 ||
               strcmp(cmd, "traffic") == 0) {
        if (a->readonly) {
            set_status(a, TUI_C_WARN, "%s: disabled by --readonly", cmd);
            return;
        }
        if (argc < 2) {
            set_status(a, TUI_C_WARN, ":%s needs a MODEL", cmd);
            return;
        }
        const tui_model *m = NULL;
        for (size_t i = 0; a->snap && i < a->snap->n_models && !m; i++)
            if (strcmp(a->snap->models[i].key, argv[1]) == 0 ||
                strcmp(a->snap->models[i].name, argv[1]) == 0)
                m = &a->snap->models[i];
        if (!m) {
            set_status(a, TUI_C_BAD, "no model %s", argv[1]);
            return;
        }
        if (strcmp(cmd, "traffic") == 0) {
            char *end = NULL;
            long pct = argc == 3 ? strtol(argv[2], &end, 10) : -1;
            if (argc != 3 || *end || pct < 0 || pct > 100) {
                set_status(a, TUI_C_WARN, "%s", "usage: :traffic MODEL PERCENT (0..100)");
                return;
            }
            tui_job job = {.kind = TUI_JOB_SET_TRAFFIC, .percent = (int)pct};
            snprintf(job.model, sizeof job.model, "%s", m->key);
            submit(a, &job, "setting traffic");
        } else {
            open_change_dialog(a, m, strcmp(cmd, "promote") == 0 ? TUI_JOB_PROMOTE
                                                                 : TUI_JOB_ROLLBACK);
        }
    } else {
        set_status(a, TUI_C_WARN, "unknown command :%s (? lists keys and commands)", cmd);
    }
}

static void input_key(tui_app *a, int key)
{
    if (key == ESC_KEY) {
        if (a->mode == TUI_MODE_FILTER && a->filter_nodes) {
            a->node_filter[0] = '\0';
        } else if (a->mode == TUI_MODE_FILTER) {
            a->view.filter[0] = '\0';
            a->view.force_sort = true;
        }
        a->mode = TUI_MODE_NORMAL;
        return;
    }
    if (key == '\n' || key == '\r' || key == KEY_ENTER) {
        tui_mode was = a->mode;
        a->mode = TUI_MODE_NORMAL;
        if (was == TUI_MODE_COMMAND)
            run_command(a, a->input);
        return;
    }
    if ((key == KEY_BACKSPACE || key == 127 || key == 8) && a->input_len > 0)
        a->input[--a->input_len] = '\0';
    else if (key >= 32 && key < 127 && a->input_len + 1 < sizeof a->input) {
        a->input[a->input_len++] = (char)key;
        a->input[a->input_len] = '\0';
    }
    if (a->mode == TUI_MODE_FILTER && a->filter_nodes) {
        snprintf(a->node_filter, sizeof a->node_filter, "%.63s", a->input);
        a->list_cursor = a->list_top = 0;
    } else if (a->mode == TUI_MODE_FILTER) {
        snprintf(a->view.filter, sizeof a->view.filter, "%.63s", a->input);
        a->view.force_sort = true;
    }
}

/* ---- normal keys ---- */

static void move_cursor(tui_app *a, long delta)
{
    if (a->screen == TUI_SCREEN_MODELS) {
        tui_view_move(&a->view, delta);
    } else {
        long c = (long)a->list_cursor + delta;
        a->list_cursor = c < 0 ? 0 : (size_t)c;
    }
}

static void canary(tui_app *a, int delta)
{
    const tui_model *m = current_model(a);
    if (!m)
        return;
    if (!tui_slider_move(&a->slider, m, delta))
        set_status(a, TUI_C_WARN, "%s has no canary revision to move", m->key);
    else {
        char msg[256];
        snprintf(msg, sizeof msg, "%s canary %d%% -> %d%% pending: Enter applies, Esc cancels",
                 m->key, a->slider.live, a->slider.pending);
        set_status(a, TUI_C_PENDING, "%s", msg);
    }
}

static void normal_key(tui_app *a, int key)
{
    const tui_binding *b;
    tui_action act = tui_key_action(key, a->screen, &b);
    if (act == TUI_ACT_NONE)
        return;
    if (b && b->changes && a->readonly) {
        set_status(a, TUI_C_WARN, "%s: disabled by --readonly", b->help);
        return;
    }
    if (act != TUI_ACT_REFRESH && act != TUI_ACT_REDRAW)
        a->view.last_key_ms = ksv_wall_ms();
    int page = LINES > 6 ? LINES - 5 : 1;
    switch (act) {
    case TUI_ACT_QUIT:
        if (a->screen == TUI_SCREEN_HELP) {
            a->screen = a->back;
            break;
        }
        a->quit = true;
        break;
    case TUI_ACT_HELP:
        if (a->screen != TUI_SCREEN_HELP)
            a->back = a->screen;
        a->screen = TUI_SCREEN_HELP;
        a->list_cursor = a->list_top = 0;
        break;
    case TUI_ACT_UP: move_cursor(a, -1); break;
    case TUI_ACT_DOWN: move_cursor(a, 1); break;
    case TUI_ACT_PAGE_UP: move_cursor(a, -page); break;
    case TUI_ACT_PAGE_DOWN: move_cursor(a, page); break;
    case TUI_ACT_HOME: move_cursor(a, -1000000); break;
    case TUI_ACT_END: move_cursor(a, 1000000); break;
    case TUI_ACT_OPEN: {
        const tui_model *m = current_model(a);
        if (!m)
            break;
        if (a->slider.active && strcmp(a->slider.key, m->key) == 0) {
            if (a->readonly)
                break;
            if (a->slider.pending == a->slider.live) {
                tui_slider_cancel(&a->slider);
                set_status(a, TUI_C_DIM, "%s", "no change");
                break;
            }
            tui_job job = {.kind = TUI_JOB_SET_TRAFFIC, .percent = a->slider.pending};
            snprintf(job.model, sizeof job.model, "%s", m->key);
            submit(a, &job, "setting traffic");
            tui_slider_cancel(&a->slider);
        } else if (a->screen == TUI_SCREEN_MODELS) {
            snprintf(a->detail_key, sizeof a->detail_key, "%s", m->key);
            a->screen = TUI_SCREEN_DETAIL;
            tui_worker_set_focus(a->worker, m->key);
        }
        break;
    }
    case TUI_ACT_EXPAND: {
        const tui_model *m = current_model(a);
        if (m) {
            tui_view_toggle_expanded(&a->view, m->key);
            tui_view_rebuild(&a->view, a->snap, ksv_wall_ms());
        }
        break;
    }
    case TUI_ACT_BACK:
        if (a->slider.active) {
            tui_slider_cancel(&a->slider);
            set_status(a, TUI_C_DIM, "%s", "canary change cancelled");
        } else if (a->screen == TUI_SCREEN_HELP) {
            a->screen = a->back;
        } else if (a->screen == TUI_SCREEN_NODES && a->node_filter[0]) {
            a->node_filter[0] = '\0'; /* the nodes' filter first, as the models' */
            a->list_cursor = a->list_top = 0;
        } else if (a->screen != TUI_SCREEN_MODELS) {
            a->screen = TUI_SCREEN_MODELS;
            tui_worker_set_focus(a->worker, NULL);
        } else if (a->view.filter[0]) {
            a->view.filter[0] = '\0';
            a->view.force_sort = true;
        }
        break;
    case TUI_ACT_CANARY_UP5: canary(a, 5); break;
    case TUI_ACT_CANARY_DOWN5: canary(a, -5); break;
    case TUI_ACT_CANARY_UP1: canary(a, 1); break;
    case TUI_ACT_CANARY_DOWN1: canary(a, -1); break;
    case TUI_ACT_PROMOTE:
    case TUI_ACT_ROLLBACK: {
        const tui_model *m = current_model(a);
        if (m)
            open_change_dialog(a, m, act == TUI_ACT_PROMOTE ? TUI_JOB_PROMOTE : TUI_JOB_ROLLBACK);
        break;
    }
    case TUI_ACT_GATE_PAUSE:
    case TUI_ACT_GATE_ABORT: {
        const tui_model *m = current_model(a);
        if (m)
            open_gate_dialog(a, m, act == TUI_ACT_GATE_ABORT);
        break;
    }
    case TUI_ACT_EDIT: {
        const tui_model *m = current_model(a);
        if (m)
            edit_model(a, m);
        break;
    }
    case TUI_ACT_MODELS:
        a->screen = TUI_SCREEN_MODELS;
        tui_worker_set_focus(a->worker, NULL);
        break;
    case TUI_ACT_HISTORY:
    case TUI_ACT_NODES:
    case TUI_ACT_NAMESPACES:
    case TUI_ACT_COST:
        a->screen = act == TUI_ACT_HISTORY      ? TUI_SCREEN_HISTORY
                    : act == TUI_ACT_NODES      ? TUI_SCREEN_NODES
                    : act == TUI_ACT_NAMESPACES ? TUI_SCREEN_NAMESPACES
                                                : TUI_SCREEN_COST;
        a->list_cursor = a->list_top = 0;
        break;
    case TUI_ACT_GROUP:
        if (a->snap) {
            char next[sizeof a->node_group];
            tui_next_group_key(a->snap, a->node_group, next, sizeof next);
            snprintf(a->node_group, sizeof a->node_group, "%s", next);
            a->list_cursor = a->list_top = 0;
        }
        break;
    case TUI_ACT_FILTER:
    case TUI_ACT_COMMAND:
        a->filter_nodes = act == TUI_ACT_FILTER && a->screen == TUI_SCREEN_NODES;
        if (act == TUI_ACT_FILTER && a->screen != TUI_SCREEN_MODELS && !a->filter_nodes) {
            a->screen = TUI_SCREEN_MODELS;
            tui_worker_set_focus(a->worker, NULL);
        }
        a->mode = act == TUI_ACT_FILTER ? TUI_MODE_FILTER : TUI_MODE_COMMAND;
        snprintf(a->input, sizeof a->input, "%.63s",
                 act != TUI_ACT_FILTER ? "" : a->filter_nodes ? a->node_filter : a->view.filter);
        a->input_len = strlen(a->input);
        break;
    case TUI_ACT_SORT_NEXT:
        a->view.sort = (tui_sort_key)((a->view.sort + 1) % TUI_SORT_COUNT);
        a->view.descending = a->view.sort != TUI_SORT_NAME;
        a->view.force_sort = true;
        break;
    case TUI_ACT_SORT_PREV:
        a->view.sort = (tui_sort_key)((a->view.sort + TUI_SORT_COUNT - 1) % TUI_SORT_COUNT);
        a->view.descending = a->view.sort != TUI_SORT_NAME;
        a->view.force_sort = true;
        break;
    case TUI_ACT_SORT_INVERT:
        a->view.descending = !a->view.descending;
        a->view.force_sort = true;
        break;
    case TUI_ACT_REFRESH:
        tui_worker_refresh(a->worker);
        break;
    case TUI_ACT_REDRAW:
        clearok(stdscr, TRUE);
        break;
    default:
        break;
    }
}

int tui_app_run(tui_worker *w, const tui_app_options *o)
{
    tui_app *a = calloc(1, sizeof *a);
    if (!a)
        return 1;
    a->worker = w;
    a->readonly = o->readonly;
    a->banner = o->banner;
    a->demo_bad_canary = o->demo_bad_canary;
    a->screen = a->back = TUI_SCREEN_MODELS;
    tui_view_init(&a->view);
    if (tui_crt_init(&a->crt, o->mono) != 0) {
        free(a);
        fprintf(stderr, "ksv-top: cannot initialise the terminal\n");
        return 1;
    }
    uint64_t seen = 0, transfer_seen = 0;
    int64_t drawn_s = -1;
    a->dirty = true;
    while (!a->quit && !(o->quit && tui_quit_requested(o->quit))) {
        tui_snapshot *s = tui_worker_snapshot(w);
        if (s && s->seq != seen) {
            seen = s->seq;
            tui_snapshot_unref(a->snap);
            a->snap = s;
            tui_view_rebuild(&a->view, a->snap, ksv_wall_ms());
            a->dirty = true;
        } else {
            tui_snapshot_unref(s);
        }
        char transfer[256];
        bool transfer_done;
        if (tui_worker_take_transfer(w, &transfer_seen, transfer, sizeof transfer,
                                     &transfer_done))
            set_status(a, transfer_done ? TUI_C_OK : TUI_C_PENDING, "%s", transfer);
        tui_job_result r;
        if (tui_worker_take_result(w, &r))
            set_status(a, r.ok ? TUI_C_OK : TUI_C_BAD, "%s", r.text);
        /* Drawn again only when something changed (a snapshot, a key, the status line) or
         * the header's clock moved on: a 200-line nodes screen redrawn ten times a second
         * for nothing was a good part of the console's cost at 100 nodes. */
        int64_t now_s = ksv_wall_ms() / 1000;
        if (a->dirty || now_s != drawn_s) {
            tui_draw(a);
            a->dirty = false;
            drawn_s = now_s;
        }
        int key = tui_crt_getkey(UI_TICK_MS);
        if (key == ERR)
            continue;
        a->dirty = true;
        if (key == KEY_RESIZE) {
            clearok(stdscr, TRUE);
            continue;
        }
        if (COLS < TUI_MIN_COLS || LINES < TUI_MIN_LINES) {
            if (key == 'q')
                a->quit = true;
            continue;
        }
        if (a->mode == TUI_MODE_DIALOG)
            dialog_key(a, key);
        else if (a->mode == TUI_MODE_FILTER || a->mode == TUI_MODE_COMMAND)
            input_key(a, key);
        else
            normal_key(a, key);
        if (a->snap)
            tui_view_rebuild(&a->view, a->snap, ksv_wall_ms());
    }
    tui_crt_done(&a->crt);
    tui_snapshot_unref(a->snap);
    tui_view_free(&a->view);
    free(a);
    return 0;
}

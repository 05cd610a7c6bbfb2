/* quit_signal.h: SIGHUP, SIGTERM and SIGINT ask ksv-top to quit the way q does.
 *
 * Why: the default action kills the process on the spot, so a closed terminal window, a
 * dropped SSH session or a `kill` left `ksv-top --demo`'s engine running and its
 * temporary directory behind, and the terminal in curses mode. The signals are blocked in
 * every thread (so call tui_quit_signal_start before any thread starts: the mask is
 * inherited) and one thread takes them with sigwait, which needs no handler and no global
 * flag. A second signal ends the process at once (exit status 128 + signal), for a quit
 * that hangs. Children must unblock them before exec (the mask is inherited). */
#ifndef KSV_TUI_QUIT_SIGNAL_H
#define KSV_TUI_QUIT_SIGNAL_H

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>

typedef struct tui_quit_signal {
    sigset_t set;
    atomic_bool requested;
    pthread_t thread;
    bool started;
} tui_quit_signal;

/* 0, or -1 when the watcher cannot start (the signals then keep their default action). */
int tui_quit_signal_start(tui_quit_signal *q);
bool tui_quit_requested(const tui_quit_signal *q);
/* For a child about to exec: the signals as they were before ksv-top blocked them. */
void tui_quit_signal_unblock_in_child(void);

#endif

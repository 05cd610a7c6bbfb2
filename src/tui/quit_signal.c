/* quit_signal.c: quit signals taken by one thread with sigwait (quit_signal.h says why). */
#include "tui/quit_signal.h"

#include <unistd.h>

static void quit_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGHUP);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGINT);
}

static void *watch_main(void *arg)
{
    tui_quit_signal *q = arg;
    for (;;) {
        int sig;
        if (sigwait(&q->set, &sig) != 0)
            continue;
        if (atomic_exchange(&q->requested, true))
            _exit(128 + sig); /* asked twice: the clean quit is stuck */
    }
    return NULL;
}

int tui_quit_signal_start(tui_quit_signal *q)
{
    atomic_init(&q->requested, false);
    q->started = false;
    quit_signals(&q->set);
    if (pthread_sigmask(SIG_BLOCK, &q->set, NULL) != 0)
        return -1;
    if (pthread_create(&q->thread, NULL, watch_main, q) != 0) {
        pthread_sigmask(SIG_UNBLOCK, &q->set, NULL);
        return -1;
    }
    pthread_detach(q->thread); /* it ends with the process */
    q->started = true;
    return 0;
}

bool tui_quit_requested(const tui_quit_signal *q)
{
    return atomic_load(&q->requested);
}

void tui_quit_signal_unblock_in_child(void)
{
    sigset_t set;
    quit_signals(&set);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
}
